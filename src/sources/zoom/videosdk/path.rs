//! Session ids in URL paths (research/zoom-api.md §2c). Ids contain `/`, `+` and `=`, so the segment is
//! always percent-encoded; Zoom's gateway decodes once before routing, so an id that starts with `/` or
//! contains `//` would still be mangled there and must be encoded twice.
//!
//! The same holds for every id whose once-decoded form the gateway (or our own URL parser) would read as
//! something else: a `.` or `..` path component would be normalised away (`url` even treats `%2E%2E` as
//! `..`, per the WHATWG URL standard), and a `%` would be decoded a second time. Such ids are encoded twice,
//! dots included, so every layer sees an opaque segment and the API gets the id back intact. Ids that
//! cannot travel in a URL at all are refused with [`Unaddressable`]: asking for another URL would store
//! another session's users under this id.

use crate::http::Unaddressable;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Everything but RFC 3986's unreserved characters.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// [`SEGMENT`] with `.` encoded too, for the first layer of a double encoding: a dot-only segment is a
/// path traversal for any layer that sees it decoded.
const SEGMENT_AND_DOTS: &AsciiSet = &SEGMENT.add(b'.');

pub fn session_segment(id: &str) -> Result<String, Unaddressable> {
    if let Some(reason) = unaddressable(id) {
        return Err(Unaddressable {
            kind: "session",
            id: id.to_string(),
            reason,
        });
    }
    if needs_double_encoding(id) {
        let once = utf8_percent_encode(id, SEGMENT_AND_DOTS).to_string();
        Ok(utf8_percent_encode(&once, SEGMENT).to_string())
    } else {
        Ok(utf8_percent_encode(id, SEGMENT).to_string())
    }
}

fn unaddressable(id: &str) -> Option<&'static str> {
    if id.is_empty() {
        return Some("it is empty, which would address the session list instead");
    }
    if id.contains('\0') {
        return Some("it holds NUL, which servers refuse in a URL even percent-encoded");
    }
    if id.contains('\u{FFFD}') {
        // PostgreSQL cannot store NUL, so rollcall stores U+FFFD in its place (README, hostile data): the id
        // Zoom served is not known any more, and U+FFFD itself would address a different session.
        return Some("it holds U+FFFD, which stands in for a character PostgreSQL could not store (NUL), so the id Zoom served is not known");
    }
    if id.chars().any(char::is_control) {
        return Some("it holds a control character, which proxies and gateways refuse or rewrite");
    }
    None
}

/// True when one layer of decoding would leave a segment that is not the id as an opaque name.
fn needs_double_encoding(id: &str) -> bool {
    id.contains('%')
        || id.starts_with('/')
        || id.ends_with('/')
        || id
            .split('/')
            .any(|part| part == "." || part == ".." || (part.is_empty() && id.contains("//")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(id: &str) -> String {
        session_segment(id).unwrap()
    }

    #[test]
    fn ids_are_encoded_once_or_twice_as_zoom_requires() {
        assert_eq!(
            seg("sfk/aOFJSJSYhGwk1hnxgw=="),
            "sfk%2FaOFJSJSYhGwk1hnxgw%3D%3D"
        );
        assert_eq!(seg("/ab//c+d=="), "%252Fab%252F%252Fc%252Bd%253D%253D");
        assert_eq!(seg("ab//c"), "ab%252F%252Fc");
        assert_eq!(seg("plain-id_1.x~"), "plain-id_1.x~");
    }

    #[test]
    fn dot_segments_and_percent_are_never_read_as_syntax() {
        assert_eq!(seg("."), "%252E");
        assert_eq!(seg(".."), "%252E%252E");
        assert_eq!(seg("..."), "...");
        assert_eq!(seg("x/../y"), "x%252F%252E%252E%252Fy");
        assert_eq!(seg("a/./b"), "a%252F%252E%252Fb");
        assert_eq!(seg("ab/"), "ab%252F");
        assert_eq!(seg("%"), "%2525");
        assert_eq!(seg("a%2Fb"), "a%25252Fb");
        // What `url` (reqwest) makes of the path: the segment survives as one opaque segment.
        for id in [".", "..", "x/../y", "%", "a%2Fb", "/ab//c+d=="] {
            let url =
                reqwest::Url::parse(&format!("http://h/v2/videosdk/sessions/{}/users", seg(id)))
                    .unwrap();
            assert_eq!(url.path_segments().unwrap().count(), 5, "{id}: {url}");
        }
    }

    #[test]
    fn ids_that_cannot_travel_in_a_url_are_refused_by_name() {
        for (id, why) in [
            ("", "empty"),
            ("a\0b", "NUL"),
            ("a\u{FFFD}b", "U+FFFD"),
            ("a\nb", "control character"),
        ] {
            let err = session_segment(id).unwrap_err();
            assert!(err.reason.contains(why), "{id:?}: {err}");
            assert!(err
                .to_string()
                .starts_with(&format!("session id {id:?} cannot be addressed in a URL: ")));
        }
    }
}
