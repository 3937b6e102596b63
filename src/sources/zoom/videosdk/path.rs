//! Session ids in URL paths (research/zoom-api.md §2c). Ids contain `/`, `+` and `=`, so the segment is
//! always percent-encoded; Zoom's gateway decodes once before routing, so an id that starts with `/` or
//! contains `//` would still be mangled there and must be encoded twice.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Everything but RFC 3986's unreserved characters.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

pub fn session_segment(id: &str) -> String {
    let once = utf8_percent_encode(id, SEGMENT).to_string();
    if id.starts_with('/') || id.contains("//") {
        utf8_percent_encode(&once, SEGMENT).to_string()
    } else {
        once
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_encoded_once_or_twice_as_zoom_requires() {
        assert_eq!(
            session_segment("sfk/aOFJSJSYhGwk1hnxgw=="),
            "sfk%2FaOFJSJSYhGwk1hnxgw%3D%3D"
        );
        assert_eq!(
            session_segment("/ab//c+d=="),
            "%252Fab%252F%252Fc%252Bd%253D%253D"
        );
        assert_eq!(session_segment("ab//c"), "ab%252F%252Fc");
        assert_eq!(session_segment("plain-id_1.x~"), "plain-id_1.x~");
    }
}
