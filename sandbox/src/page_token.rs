//! Zoom-like `next_page_token`s.
//!
//! The token carries its own state (the scan cursor, the page number, the
//! query it belongs to and when it was issued) and a keyed checksum, so the
//! server keeps nothing per walk: a million-user walk costs no memory, and a
//! page costs O(page size / share of the type) however deep it is.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// The state a page token carries. Field names are short because clients
/// send the token back on every page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PageToken {
    /// account id
    pub a: String,
    /// report type and dates, as sent (the "same query parameters" rule)
    pub t: String,
    pub f: String,
    pub to: String,
    /// effective page size
    pub s: u32,
    /// page number this token fetches
    pub p: u32,
    /// next user index to scan
    pub c: u64,
    /// rows served before this page
    pub r: u64,
    /// expiry epoch: `expire_page_tokens` bumps the server's epoch
    pub e: u64,
    /// issued at, unix milliseconds
    pub i: i64,
}

/// Signs and checks tokens with a per-process random key, so tokens cannot be
/// forged or carried over from another sandbox run.
pub(crate) struct TokenCodec {
    key: RandomState,
}

impl TokenCodec {
    pub fn new() -> Self {
        Self {
            key: RandomState::new(),
        }
    }

    fn mac(&self, payload: &str) -> u64 {
        self.key.hash_one(payload)
    }

    pub fn encode(&self, token: &PageToken) -> String {
        // Serialising a plain struct of strings and integers cannot fail.
        let json = serde_json::to_vec(token).unwrap_or_default();
        let payload = URL_SAFE_NO_PAD.encode(json);
        let mac = URL_SAFE_NO_PAD.encode(self.mac(&payload).to_be_bytes());
        format!("{payload}.{mac}")
    }

    /// The token if it was issued by this process and not tampered with;
    /// freshness and the query are checked by the caller.
    pub fn decode(&self, s: &str) -> Option<PageToken> {
        let (payload, mac) = s.split_once('.')?;
        let mac: [u8; 8] = URL_SAFE_NO_PAD.decode(mac).ok()?.try_into().ok()?;
        if u64::from_be_bytes(mac) != self.mac(payload) {
            return None;
        }
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper() {
        let codec = TokenCodec::new();
        let token = PageToken {
            a: "acme".into(),
            t: "active".into(),
            f: "2024-06-01".into(),
            to: "2024-06-30".into(),
            s: 300,
            p: 2,
            c: 751,
            r: 300,
            e: 0,
            i: 1_700_000_000_000,
        };
        let s = codec.encode(&token);
        assert_eq!(codec.decode(&s), Some(token.clone()));
        let mut forged = s.clone();
        forged.insert(3, 'x');
        assert_eq!(codec.decode(&forged), None);
        assert_eq!(TokenCodec::new().decode(&s), None);
        assert_eq!(codec.decode("garbage"), None);
    }
}
