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

/// `next_page_token` as served, checked while the body is parsed so that a bad one is a malformed page
/// (retried, then the window fails) and never mistaken for the last page. Zoom ends a walk with `""`,
/// `null` or no token at all; any other value must be a string we can send back as it is. The value is
/// never quoted: it may be huge or hostile.
pub fn page_token<'de, D>(deserializer: D) -> Result<Option<String>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    use serde::de::Error;
    use serde::Deserialize;
    match Option::<Value>::deserialize(deserializer)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Err(D::Error::custom(
            "next_page_token is only whitespace: neither a token nor the end of the walk",
        )),
        Some(Value::String(s)) if s.chars().any(char::is_control) => Err(D::Error::custom(
            "next_page_token holds control characters (NUL or the like): it cannot be sent back",
        )),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(D::Error::custom(format!(
            "next_page_token is {}, not a string",
            json_kind(&other)
        ))),
    }
}

/// A page's list (`users`, `sessions`): it must be there and be an array. A missing or `null` list is a
/// malformed page, never an empty one: reading it as empty would let the mirror step delete history.
pub fn required_list<'de, D>(deserializer: D) -> Result<Vec<Value>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    use serde::de::Error;
    use serde::Deserialize;
    match Option::<Value>::deserialize(deserializer)? {
        Some(Value::Array(items)) => Ok(items),
        // Reached only for an explicit `null` (a missing field is serde's "missing field" error, since
        // the field has no default).
        None => Err(D::Error::custom("the list is null, not an array")),
        Some(other) => Err(D::Error::custom(format!(
            "the list is {}, not an array",
            json_kind(&other)
        ))),
    }
}

/// [`required_list`] whose items stay the served JSON text: a page's rows are typed from the few fields
/// rollcall reads and stored as served, without building a tree of every row (most of a big walk's CPU).
pub fn required_raw_list<'de, D>(
    deserializer: D,
) -> Result<Vec<Box<serde_json::value::RawValue>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    struct Items;
    impl<'de> serde::de::Visitor<'de> for Items {
        type Value = Vec<Box<serde_json::value::RawValue>>;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an array")
        }

        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
            while let Some(item) = seq.next_element()? {
                items.push(item);
            }
            Ok(items)
        }

        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Err(E::custom("the list is null, not an array"))
        }

        fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Err(E::custom("the list is a boolean, not an array"))
        }

        fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Err(E::custom("the list is a number, not an array"))
        }

        fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Err(E::custom("the list is a number, not an array"))
        }

        fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Err(E::custom("the list is a number, not an array"))
        }

        fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Err(E::custom("the list is a string, not an array"))
        }

        fn visit_map<A: serde::de::MapAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
            Err(serde::de::Error::custom(
                "the list is an object, not an array",
            ))
        }
    }
    deserializer.deserialize_any(Items)
}

pub fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
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
        assert!(timestamp(Some(&json!("2021-12-07T05:42:28Z"))).is_some());
    }

    #[derive(serde::Deserialize, Debug)]
    struct Page {
        #[serde(default, deserialize_with = "page_token")]
        next_page_token: Option<String>,
        #[serde(deserialize_with = "required_list")]
        users: Vec<Value>,
    }

    fn parse(body: Value) -> Result<Page, String> {
        serde_json::from_value(body).map_err(|e| e.to_string())
    }

    #[test]
    fn only_a_string_token_or_its_absence_is_accepted() {
        assert_eq!(parse(json!({"users": [1]})).unwrap().users.len(), 1);
        for end in [
            json!({"users": []}),
            json!({"users": [], "next_page_token": null}),
            json!({"users": [], "next_page_token": ""}),
        ] {
            assert_eq!(parse(end).unwrap().next_page_token, None);
        }
        assert_eq!(
            parse(json!({"users": [], "next_page_token": "abc"}))
                .unwrap()
                .next_page_token
                .as_deref(),
            Some("abc")
        );
        for bad in [
            json!(5),
            json!(true),
            json!({"t": 1}),
            json!("  "),
            json!("a\u{0}b"),
        ] {
            assert!(
                parse(json!({"users": [], "next_page_token": bad})).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_missing_or_null_list_is_malformed_not_empty() {
        assert!(parse(json!({"next_page_token": ""}))
            .unwrap_err()
            .contains("missing"));
        assert!(parse(json!({"users": null})).unwrap_err().contains("null"));
        assert!(parse(json!({"users": {"a": 1}}))
            .unwrap_err()
            .contains("object"));
        assert!(parse(json!({"users": "x"})).unwrap_err().contains("string"));
    }
}
