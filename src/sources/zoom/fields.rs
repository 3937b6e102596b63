//! Lenient typing of served JSON: a field of an unexpected type becomes NULL in its column (the raw row
//! keeps it), never a failed page.

use crate::store::text::clean_str;
use chrono::{DateTime, Utc};
use serde_json::Value;

pub fn field<'a>(raw: &'a Value, name: &str) -> Option<&'a Value> {
    raw.get(name).filter(|v| !v.is_null())
}

/// Text as served; a number or bool where text was documented is kept as its JSON text.
pub fn text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) => Some(clean_str(s).into_owned()),
        other @ (Value::Number(_) | Value::Bool(_)) => Some(other.to_string()),
        _ => None,
    }
}

/// Text that must identify a row: empty strings do not.
pub fn id(value: Option<&Value>) -> Option<String> {
    text(value).filter(|s| !s.is_empty())
}

pub fn int(value: Option<&Value>) -> Option<i64> {
    match value? {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e18)
                .map(|f| f as i64)
        }),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

pub fn boolean(value: Option<&Value>) -> Option<bool> {
    match value? {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_i64().map(|n| n != 0),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" => Some(true),
            "false" | "0" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

pub fn timestamp(value: Option<&Value>) -> Option<DateTime<Utc>> {
    match value? {
        Value::String(s) => DateTime::parse_from_rfc3339(s.trim())
            .ok()
            .map(|t| t.with_timezone(&Utc)),
        _ => None,
    }
}

/// Zoom ends a walk with `""`, `null` or no token at all.
pub fn next_token(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_are_typed_leniently() {
        assert_eq!(boolean(Some(&json!("true"))), Some(true));
        assert_eq!(boolean(Some(&json!(0))), Some(false));
        assert_eq!(boolean(Some(&json!("maybe"))), None);
        assert_eq!(int(Some(&json!("12"))), Some(12));
        assert_eq!(text(Some(&json!(3))), Some("3".into()));
        assert_eq!(id(Some(&json!(""))), None);
        assert_eq!(next_token(Some(&json!(""))), None);
        assert_eq!(next_token(Some(&json!(null))), None);
        assert!(timestamp(Some(&json!("2021-12-07T05:42:28Z"))).is_some());
    }
}
