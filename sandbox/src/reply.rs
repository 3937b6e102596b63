//! A fully buffered response, so faults can inspect and distort it before it is sent.

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Zoom's APIs answer with this content type, errors included.
pub(crate) const JSON_UTF8: &str = "application/json;charset=UTF-8";

#[derive(Clone, Debug)]
pub(crate) struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(status: StatusCode, value: &impl Serialize) -> Self {
        match serde_json::to_vec(value) {
            Ok(body) => Self::raw(status, body),
            Err(err) => {
                tracing::error!(%err, "cannot serialise a response");
                Self::raw(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    br#"{"code":500,"message":"Internal server error"}"#.to_vec(),
                )
            }
        }
    }

    /// A JSON-typed response with the body as given (which may not be JSON).
    pub fn raw(status: StatusCode, body: impl Into<Bytes>) -> Self {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_UTF8));
        Self {
            status,
            headers,
            body: body.into(),
        }
    }

    pub fn with_header(mut self, name: &'static str, value: &str) -> Self {
        if let Ok(value) = HeaderValue::from_str(value) {
            self.headers.insert(HeaderName::from_static(name), value);
        }
        self
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        // A `Bytes` body has an exact size, so hyper sends its Content-Length.
        let mut response = Response::new(Body::from(self.body));
        *response.status_mut() = self.status;
        *response.headers_mut() = self.headers;
        response
    }
}
