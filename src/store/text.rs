//! PostgreSQL cannot store U+0000 in `text` or `jsonb`. The rule (DESIGN §4): every NUL becomes U+FFFD, in
//! typed columns and in `raw` alike, and nothing else is altered, so one hostile string cannot wedge a window.

use serde_json::Value;
use std::borrow::Cow;

pub const REPLACEMENT: char = '\u{FFFD}';

pub fn clean_str(text: &str) -> Cow<'_, str> {
    if text.contains('\0') {
        Cow::Owned(text.replace('\0', "\u{FFFD}"))
    } else {
        Cow::Borrowed(text)
    }
}

/// Cleans a JSON value in place, keys included, without reallocating the common NUL-free case.
pub fn clean_json(value: &mut Value) {
    match value {
        Value::String(s) => {
            if s.contains('\0') {
                *s = s.replace('\0', "\u{FFFD}");
            }
        }
        Value::Array(items) => items.iter_mut().for_each(clean_json),
        Value::Object(map) => {
            if map.keys().any(|k| k.contains('\0')) {
                let entries: Vec<(String, Value)> = std::mem::take(map).into_iter().collect();
                for (key, mut item) in entries {
                    clean_json(&mut item);
                    map.insert(clean_str(&key).into_owned(), item);
                }
            } else {
                map.values_mut().for_each(clean_json);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// The longest `last_error` stored: enough for any message of ours, bounded whatever a reply quotes.
pub const MAX_ERROR_BYTES: usize = 1024;

/// A window's `last_error` as stored: no NUL or other control character (PostgreSQL refuses NUL, and a
/// terminal should not obey what a hostile body put there), no bearer credential, at most
/// [`MAX_ERROR_BYTES`], cut on a character boundary with an ellipsis.
pub fn bounded_error(message: &str) -> String {
    let mut clean: String = message
        .chars()
        .map(|c| {
            if c.is_control() && c != '\n' {
                REPLACEMENT
            } else {
                c
            }
        })
        .collect();
    if let Some(at) = clean.find("Bearer ") {
        clean.truncate(at + "Bearer ".len());
        clean.push_str("[redacted]");
    }
    if clean.len() <= MAX_ERROR_BYTES {
        return clean;
    }
    const ELLIPSIS: &str = "…";
    let mut cut = MAX_ERROR_BYTES - ELLIPSIS.len();
    while !clean.is_char_boundary(cut) {
        cut -= 1;
    }
    clean.truncate(cut);
    clean.push_str(ELLIPSIS);
    clean
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nul_becomes_replacement_everywhere_and_nothing_else_changes() {
        let mut value = json!({"a\u{0}b": ["x\u{0}", 1, null, {"n": "ok"}], "plain": "Zoë"});
        clean_json(&mut value);
        assert_eq!(
            value,
            json!({"a\u{FFFD}b": ["x\u{FFFD}", 1, null, {"n": "ok"}], "plain": "Zoë"})
        );
        assert_eq!(clean_str("a\0"), "a\u{FFFD}");
        assert!(matches!(clean_str("clean"), Cow::Borrowed(_)));
    }

    #[test]
    fn stored_errors_are_bounded_and_clean() {
        let long = format!("bad {}", "é".repeat(5000));
        let bounded = bounded_error(&long);
        assert!(bounded.len() <= MAX_ERROR_BYTES, "{}", bounded.len());
        assert!(bounded.ends_with('…'));
        assert_eq!(bounded_error("a\0b\u{1b}[31m"), "a\u{FFFD}b\u{FFFD}[31m");
        assert_eq!(
            bounded_error("header Authorization: Bearer eyJsecret.token"),
            "header Authorization: Bearer [redacted]"
        );
        assert_eq!(bounded_error("two\nlines"), "two\nlines");
    }
}
