//! Rocket.Chat's error bodies as a server before 8.0.0 sends them (research/rocketchat-api.md §2).

use axum::http::StatusCode;
use serde_json::json;

use crate::reply::Reply;

pub(crate) fn unauthorized() -> Reply {
    Reply::json(
        StatusCode::UNAUTHORIZED,
        &json!({
            "success": false,
            "error": "You must be logged in to do this.",
            "status": "error",
            "message": "You must be logged in to do this.",
        }),
    )
}

pub(crate) fn forbidden() -> Reply {
    Reply::json(
        StatusCode::FORBIDDEN,
        &json!({
            "success": false,
            "error": "User does not have the permissions required for this action [error-unauthorized]",
        }),
    )
}

pub(crate) fn not_licensed() -> Reply {
    Reply::json(
        StatusCode::BAD_REQUEST,
        &json!({
            "success": false,
            "error": "This is an enterprise feature [error-action-not-allowed]",
            "errorType": "error-action-not-allowed",
        }),
    )
}

/// What ajv's query schema says about a missing, extra or non-`date-time` parameter.
pub(crate) fn invalid_params(message: &str) -> Reply {
    Reply::json(
        StatusCode::BAD_REQUEST,
        &json!({ "success": false, "errorType": "error-invalid-params", "error": message }),
    )
}

/// `check(start, Match.Where(isDateISOString))`: anything but `Date.toISOString()` output.
pub(crate) fn match_error(field: &str) -> Reply {
    Reply::json(
        StatusCode::BAD_REQUEST,
        &json!({
            "success": false,
            "error": format!("Match error: Failed Match.Where validation in field {field}"),
        }),
    )
}

pub(crate) fn not_found(path: &str) -> Reply {
    Reply::json(
        StatusCode::NOT_FOUND,
        &json!({ "success": false, "error": format!("Not found: {path}") }),
    )
}

pub(crate) fn too_many_requests(wait_secs: u64) -> Reply {
    Reply::json(
        StatusCode::TOO_MANY_REQUESTS,
        &json!({
            "success": false,
            "error": format!(
                "Error, too many requests. Please slow down. You must wait {wait_secs} seconds before trying this endpoint again. [error-too-many-requests]"
            ),
        }),
    )
}
