//! Reading response bodies with a size cap (DESIGN §7): a hostile or broken server must not make the
//! collector buffer an unbounded body in memory. One helper for every client, Zoom API, Zoom OAuth and
//! Rocket.Chat alike, so the cap and its message are the same everywhere.

use super::{describe_transport_error, ApiError};

/// Bytes per MiB, the unit of `http.max_body_mib`.
const MIB: u64 = 1024 * 1024;

/// The largest body the collector reads, from `http.max_body_mib`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BodyCap {
    mib: u64,
}

impl BodyCap {
    pub fn from_mib(mib: u64) -> BodyCap {
        BodyCap { mib }
    }

    pub fn bytes(self) -> u64 {
        self.mib.saturating_mul(MIB)
    }

    fn exceeded(self, what: &str) -> ApiError {
        ApiError::Malformed {
            what: what.to_string(),
            message: format!("body larger than http.max_body_mib = {} MiB", self.mib),
        }
    }
}

/// Reads the whole body, or fails as soon as it is known to exceed the cap: from `Content-Length` before
/// reading anything, else once the chunks read so far pass it. An oversized body is a malformed page
/// (retried like one, then the window fails), never a truncated one that could pass for a short page.
pub(super) async fn read_body(
    mut response: reqwest::Response,
    cap: BodyCap,
    what: &str,
) -> Result<Vec<u8>, ApiError> {
    let limit = cap.bytes();
    if response.content_length().is_some_and(|len| len > limit) {
        return Err(cap.exceeded(what));
    }
    let mut body: Vec<u8> = Vec::new();
    loop {
        let chunk = response.chunk().await.map_err(|e| ApiError::Transport {
            what: what.to_string(),
            message: describe_transport_error(&e),
        })?;
        let Some(chunk) = chunk else {
            return Ok(body);
        };
        if (body.len() as u64).saturating_add(chunk.len() as u64) > limit {
            return Err(cap.exceeded(what));
        }
        body.extend_from_slice(&chunk);
    }
}

/// The longest quotation of a server's text kept in an error: an error body, or a parser's message that
/// may echo the input, can be megabytes, and errors end up in logs and `collection_windows.last_error`.
pub const MAX_QUOTED_BYTES: usize = 512;

/// `text` on one line, cut to at most [`MAX_QUOTED_BYTES`] bytes on a character boundary, with "…" when cut.
pub fn quote_bounded(text: &str) -> String {
    let one_line: String = text
        .trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if one_line.len() <= MAX_QUOTED_BYTES {
        return one_line;
    }
    let mut cut = MAX_QUOTED_BYTES;
    while !one_line.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", &one_line[..cut])
}

/// A body that did not parse as the expected JSON. serde's message can quote the input, hence the bound.
pub fn malformed_json(what: &str, err: &serde_json::Error) -> ApiError {
    ApiError::Malformed {
        what: what.to_string(),
        message: quote_bounded(&err.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_are_cut_on_a_char_boundary_with_an_ellipsis() {
        assert_eq!(quote_bounded("  short\nline "), "short line");
        let long = "é".repeat(1000);
        let out = quote_bounded(&long);
        assert!(out.ends_with('…'));
        let kept = out.trim_end_matches('…');
        assert!(kept.len() <= MAX_QUOTED_BYTES && kept.len() >= MAX_QUOTED_BYTES - 1);
        assert!(kept.chars().all(|c| c == 'é'));
        let exact = "x".repeat(MAX_QUOTED_BYTES);
        assert_eq!(quote_bounded(&exact), exact);
    }

    #[test]
    fn serde_errors_that_echo_the_input_are_bounded() {
        let input = format!("\"{}\"", "A".repeat(100_000));
        let err = serde_json::from_str::<u32>(&input).unwrap_err();
        let message = malformed_json("GET /x", &err).to_string();
        assert!(message.len() < MAX_QUOTED_BYTES + 100, "{}", message.len());
        assert!(message.starts_with("GET /x: malformed response body: invalid type"));
    }

    #[test]
    fn the_cap_names_its_key() {
        let err = BodyCap::from_mib(32).exceeded("GET /x");
        assert!(matches!(err, ApiError::Malformed { .. }) && err.is_transient());
        assert_eq!(
            err.to_string(),
            "GET /x: malformed response body: body larger than http.max_body_mib = 32 MiB"
        );
        assert_eq!(BodyCap::from_mib(1).bytes(), 1_048_576);
    }
}
