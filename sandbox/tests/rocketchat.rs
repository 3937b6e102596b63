//! The fake Rocket.Chat over HTTP: the exact date format, both ends inclusive in the workspace's zone,
//! missing quiet days, retention, rate-limit headers and the error bodies.

use chrono::{Datelike, Duration, NaiveDate};
use rollcall_sandbox::{spawn, RocketChatWorkspaceSpec, SandboxConfig};
use serde_json::Value;

const PATH: &str = "/api/v1/engagement-dashboard/users/active-users";

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 8, 15).unwrap()
}

async fn get(
    base: &str,
    spec: &RocketChatWorkspaceSpec,
    query: &str,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let response = reqwest::Client::new()
        .get(format!("{base}/rocketchat/{}{PATH}?{query}", spec.name))
        .header("X-User-Id", &spec.user_id)
        .header("X-Auth-Token", &spec.auth_token)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (
        status,
        headers,
        response.json().await.unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn serves_local_days_inclusive_with_gaps_and_retention() {
    let ny = RocketChatWorkspaceSpec {
        quiet_day_percent: 0,
        ..RocketChatWorkspaceSpec::new("ny", "America/New_York")
    };
    let sandbox = spawn(SandboxConfig {
        listen: "127.0.0.1:0".into(),
        today: Some(today()),
        rocketchat: vec![ny.clone()],
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let control = sandbox.control();
    let base = sandbox.base_url();
    let quiet = today() - Duration::days(3);
    control.rc_clear_day("ny", quiet);

    // Local 2024-08-10 00:00 .. 2024-08-14 23:59:59.999 in New York (UTC-4).
    let (status, _, body) = get(
        &base,
        &ny,
        "start=2024-08-10T04:00:00.000Z&end=2024-08-15T03:59:59.999Z",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], true);
    let days: Vec<u32> = body["month"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["day"].as_u64().unwrap() as u32)
        .collect();
    assert_eq!(
        days,
        [14, 13, 11, 10],
        "newest first, the quiet 12th left out"
    );
    for entry in body["month"].as_array().unwrap() {
        let day = NaiveDate::from_ymd_opt(2024, 8, entry["day"].as_u64().unwrap() as u32).unwrap();
        let truth = control.rc_truth("ny", day);
        assert_eq!(entry["users"].as_u64().unwrap() as usize, truth.len());
        assert_eq!(entry["usersList"].as_array().unwrap().len(), truth.len());
    }
    assert_eq!(quiet.day(), 12);

    let old = today() - Duration::days(46);
    assert!(control.rc_truth("ny", old).is_empty(), "past the TTL");
    assert!(!control
        .rc_truth("ny", today() - Duration::days(45))
        .is_empty());

    for (query, needle) in [
        (
            "start=2024-08-10T04:00:00Z&end=2024-08-15T03:59:59.999Z",
            "Match error",
        ),
        ("start=2024-08-10&end=2024-08-15T03:59:59.999Z", "date-time"),
        ("end=2024-08-15T03:59:59.999Z", "required property 'start'"),
        (
            "start=2024-08-10T04:00:00.000Z&end=2024-08-15T03:59:59.999Z&utcOffset=2",
            "additional properties",
        ),
    ] {
        let (status, _, body) = get(&base, &ny, query).await;
        assert_eq!(status, 400, "{query}");
        assert!(body["error"].as_str().unwrap().contains(needle), "{body}");
    }
    let wrong = RocketChatWorkspaceSpec {
        auth_token: "nope".into(),
        ..ny.clone()
    };
    let (status, _, body) = get(
        &base,
        &wrong,
        "start=2024-08-10T04:00:00.000Z&end=2024-08-15T03:59:59.999Z",
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("You must be logged in to do this."))
    );
}

#[tokio::test]
async fn rate_limit_license_and_permission() {
    let limited = RocketChatWorkspaceSpec {
        rate_limit_calls: 2,
        rate_limit_window_ms: 60_000,
        ..RocketChatWorkspaceSpec::new("limited", "UTC")
    };
    let unlicensed = RocketChatWorkspaceSpec {
        licensed: false,
        ..RocketChatWorkspaceSpec::new("unlicensed", "UTC")
    };
    let forbidden = RocketChatWorkspaceSpec {
        permitted: false,
        ..RocketChatWorkspaceSpec::new("forbidden", "UTC")
    };
    let sandbox = spawn(SandboxConfig {
        listen: "127.0.0.1:0".into(),
        rocketchat: vec![limited.clone(), unlicensed.clone(), forbidden.clone()],
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let base = sandbox.base_url();
    let q = "start=2024-08-10T00:00:00.000Z&end=2024-08-10T23:59:59.999Z";
    let remaining: Vec<(u16, String)> = {
        let mut out = Vec::new();
        for _ in 0..3 {
            let (status, headers, _) = get(&base, &limited, q).await;
            out.push((
                status,
                headers["x-ratelimit-remaining"]
                    .to_str()
                    .unwrap()
                    .to_string(),
            ));
        }
        out
    };
    assert_eq!(
        remaining,
        [(200, "1".into()), (200, "0".into()), (429, "0".into())]
    );
    let (_, headers, body) = get(&base, &limited, q).await;
    let reset: i64 = headers["x-ratelimit-reset"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        reset > chrono::Utc::now().timestamp_millis(),
        "epoch milliseconds"
    );
    assert!(body["error"].as_str().unwrap().contains("You must wait"));

    let (status, _, body) = get(&base, &unlicensed, q).await;
    assert_eq!(
        (status, body["errorType"].as_str()),
        (400, Some("error-action-not-allowed"))
    );
    let (status, _, body) = get(&base, &forbidden, q).await;
    assert_eq!(status, 403);
    assert!(body["error"]
        .as_str()
        .unwrap()
        .ends_with("[error-unauthorized]"));
}
