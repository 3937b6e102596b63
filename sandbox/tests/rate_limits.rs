//! Zoom's per-account rate limits, enforced when an account's spec has `rate_limits`: the per-second Heavy
//! window, the per-minute Resource-intensive window and the daily pool they share, with Zoom's 429 body and
//! headers; faults and accounts without limits are not counted.

mod common;

use chrono::{Days, NaiveTime, Utc};
use common::*;
use reqwest::Response;
use rollcall_sandbox::{
    Endpoint, FaultKind, FaultRule, SandboxConfig, VideoSdkAccountSpec, ZoomRateLimits,
};
use serde_json::{json, Value};

const JUNE: [(&str, &str); 4] = [
    ("type", "active"),
    ("from", "2024-06-01"),
    ("to", "2024-06-30"),
    ("page_size", "300"),
];

fn limits(heavy: u32, resource_intensive: u32, daily: u32) -> Option<ZoomRateLimits> {
    Some(ZoomRateLimits {
        heavy_per_second: Some(heavy),
        resource_intensive_per_minute: Some(resource_intensive),
        daily_requests: Some(daily),
        ..ZoomRateLimits::default()
    })
}

fn with_zoom_limits(rate_limits: Option<ZoomRateLimits>) -> SandboxConfig {
    let mut config = config();
    config.zoom[0].rate_limits = rate_limits;
    config
}

fn with_sdk_limits(rate_limits: Option<ZoomRateLimits>) -> SandboxConfig {
    SandboxConfig {
        videosdk: vec![VideoSdkAccountSpec {
            api_key: "studio-key".into(),
            api_secret: "studio-secret".into(),
            sessions_per_month: 12,
            users_per_session: 3,
            rate_limits,
        }],
        ..config()
    }
}

fn header(response: &Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

fn jwt() -> String {
    let now = Utc::now().timestamp();
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({ "iss": "studio-key", "iat": now, "exp": now + 3600 }),
        &jsonwebtoken::EncodingKey::from_secret(b"studio-secret"),
    )
    .unwrap()
}

/// `GET /videosdk/sessions` (Resource-intensive).
async fn list(h: &Harness, jwt: &str) -> Response {
    h.client
        .get(format!("{}/videosdk/sessions", h.sandbox.zoom_api_url()))
        .bearer_auth(jwt)
        .query(&[
            ("type", "past"),
            ("from", "2024-06-01"),
            ("to", "2024-06-30"),
        ])
        .send()
        .await
        .unwrap()
}

/// `GET /videosdk/sessions/{id}/users` (Heavy). A made-up id is enough: the real handler answers it
/// (404), and what the real handler answers is what counts.
async fn users(h: &Harness, jwt: &str) -> Response {
    h.client
        .get(format!(
            "{}/videosdk/sessions/no-such-session/users",
            h.sandbox.zoom_api_url()
        ))
        .bearer_auth(jwt)
        .query(&[("type", "past")])
        .send()
        .await
        .unwrap()
}

fn logged_429s(h: &Harness) -> usize {
    h.sandbox
        .control()
        .requests()
        .iter()
        .filter(|r| r.status == 429)
        .count()
}

#[tokio::test]
async fn heavy_refuses_the_request_over_n_in_one_second() {
    const N: usize = 5;
    let h = Harness::with(with_zoom_limits(limits(N as u32, 0, 0))).await;
    let token = h.mint("acme").await;
    // Sent together, so all N + 1 land well inside one second.
    let responses = at_once(&h, &token, N + 1).await;
    let (refused, served): (Vec<_>, Vec<_>) =
        responses.into_iter().partition(|r| r.status() == 429);
    assert_eq!(refused.len(), 1, "exactly one of {} refused", N + 1);
    assert!(served.iter().all(|r| r.status() == 200));
    let refused = refused.into_iter().next().unwrap();
    assert_eq!(header(&refused, "x-ratelimit-category"), "Heavy");
    assert_eq!(header(&refused, "x-ratelimit-type"), "QPS");
    assert_eq!(header(&refused, "x-ratelimit-limit"), N.to_string());
    assert_eq!(header(&refused, "x-ratelimit-remaining"), "0");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["code"], 429);
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("per-second rate limit"));
    assert_eq!(logged_429s(&h), 1, "the refusal is in the request log");
}

#[tokio::test]
async fn resource_intensive_allows_m_per_minute() {
    let h = Harness::with(with_sdk_limits(limits(0, 2, 0))).await;
    let jwt = jwt();
    assert_eq!(list(&h, &jwt).await.status(), 200);
    assert_eq!(list(&h, &jwt).await.status(), 200);
    let refused = list(&h, &jwt).await;
    assert_eq!(refused.status(), 429);
    assert_eq!(
        header(&refused, "x-ratelimit-category"),
        "Resource-intensive"
    );
    assert_eq!(header(&refused, "x-ratelimit-type"), "QPS");
    assert_eq!(header(&refused, "x-ratelimit-limit"), "2");
    // Heavy is another category: the users call still goes through.
    assert_eq!(users(&h, &jwt).await.status(), 404);
    let log = h.sandbox.control().requests();
    let statuses: Vec<(Endpoint, u16)> = log.iter().map(|r| (r.endpoint, r.status)).collect();
    assert_eq!(
        statuses,
        [
            (Endpoint::SdkSessions, 200),
            (Endpoint::SdkSessions, 200),
            (Endpoint::SdkSessions, 429),
            (Endpoint::SdkSessionUsers, 404),
        ]
    );
    assert!(
        log.windows(2).all(|w| w[0].at_ms <= w[1].at_ms),
        "timestamps follow the log's order"
    );
}

#[tokio::test]
async fn the_daily_pool_is_shared_and_answers_daily_limit_with_retry_after() {
    let h = Harness::with(with_sdk_limits(limits(0, 0, 3))).await;
    let jwt = jwt();
    assert_eq!(list(&h, &jwt).await.status(), 200);
    assert_eq!(users(&h, &jwt).await.status(), 404);
    assert_eq!(list(&h, &jwt).await.status(), 200);
    let before = Utc::now().date_naive();
    let refused = users(&h, &jwt).await;
    let after = Utc::now().date_naive();
    assert_eq!(refused.status(), 429);
    assert_eq!(header(&refused, "x-ratelimit-category"), "Heavy");
    assert_eq!(header(&refused, "x-ratelimit-type"), "Daily-limit");
    assert_eq!(header(&refused, "x-ratelimit-limit"), "3");
    assert_eq!(header(&refused, "x-ratelimit-remaining"), "0");
    // Zoom's Retry-After is the next 00:00 UTC as an absolute ISO-8601 time (research §4); either side of
    // a midnight passing during the request is right.
    let midnight = |d: chrono::NaiveDate| {
        d.checked_add_days(Days::new(1))
            .unwrap()
            .and_time(NaiveTime::MIN)
            .and_utc()
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
    };
    let retry_after = header(&refused, "retry-after");
    assert!(
        [midnight(before), midnight(after)].contains(&retry_after),
        "{retry_after}"
    );
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["code"], 429);
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("daily rate limit"));
    // The pool is one for both categories.
    let refused = list(&h, &jwt).await;
    assert_eq!(refused.status(), 429);
    assert_eq!(
        header(&refused, "x-ratelimit-category"),
        "Resource-intensive"
    );
    assert_eq!(header(&refused, "x-ratelimit-type"), "Daily-limit");
    assert_eq!(logged_429s(&h), 2);
}

#[tokio::test]
async fn faults_and_bad_tokens_use_up_nothing() {
    let h = Harness::with(with_zoom_limits(limits(0, 0, 1))).await;
    h.sandbox
        .control()
        .add_fault(FaultRule::on(Endpoint::ReportUsers, FaultKind::ServerError).times(1));
    let token = h.mint("acme").await;
    assert_eq!(h.report(&token, &JUNE).await.status(), 500);
    assert_eq!(h.report("not-a-token", &JUNE).await.status(), 401);
    assert_eq!(h.report(&token, &JUNE).await.status(), 200);
    let refused = h.report(&token, &JUNE).await;
    assert_eq!(refused.status(), 429);
    assert_eq!(header(&refused, "x-ratelimit-type"), "Daily-limit");
    // Another account's pool is its own.
    let other = h.mint("empty").await;
    assert_eq!(h.report(&other, &JUNE).await.status(), 200);
}

#[tokio::test]
async fn accounts_without_limits_are_never_refused() {
    let h = Harness::with(with_zoom_limits(None)).await;
    let token = h.mint("acme").await;
    let responses = at_once(&h, &token, 40).await;
    assert!(responses.iter().all(|r| r.status() == 200));
    assert_eq!(logged_429s(&h), 0);
}

#[test]
fn limits_read_from_toml() {
    let config: SandboxConfig = toml::from_str(
        r#"
        [[zoom]]
        account_id = "a"
        client_id = "c"
        client_secret = "s"
        users = 1
        rate_limits = { plan = "business", daily_requests = 5 }

        [[videosdk]]
        api_key = "k"
        api_secret = "s"
        [videosdk.rate_limits]
        plan = "pro"
        "#,
    )
    .unwrap();
    let zoom = config.zoom[0].rate_limits.clone().unwrap();
    assert_eq!(zoom.plan, rollcall_sandbox::ZoomPlan::Business);
    assert_eq!(zoom.daily_requests, Some(5));
    assert_eq!(zoom.heavy_per_second, None);
    assert!(config.videosdk[0].rate_limits.is_some());
}

/// `n` report requests sent at once, each on a task of its own; their responses in completion order.
async fn at_once(h: &Harness, token: &str, n: usize) -> Vec<Response> {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..n {
        let request = h
            .client
            .get(format!("{}/report/users", h.sandbox.zoom_api_url()))
            .bearer_auth(token)
            .query(&JUNE);
        tasks.spawn(async move { request.send().await.unwrap() });
    }
    tasks.join_all().await
}
