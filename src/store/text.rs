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
}
