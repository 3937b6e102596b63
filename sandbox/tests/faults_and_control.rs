//! Scripted faults, the request log and the HTTP control routes.

mod common;

use std::time::Duration;

use common::*;
use rollcall_sandbox::{Endpoint, FaultKind, FaultRule, ReportType, SandboxConfig};
use serde_json::{json, Value};

const JUNE: [(&str, &str); 4] = [
    ("type", "active"),
    ("from", "2024-06-01"),
    ("to", "2024-06-30"),
    ("page_size", "100"),
];

fn on_page(page: u32, kind: FaultKind) -> FaultRule {
    FaultRule::on(Endpoint::ReportUsers, kind)
        .account(ACME)
        .report_type(ReportType::Active)
        .page(page)
        .times(1)
}

/// The token that fetches page 2 of June's active report (100 a page).
async fn page2_token(h: &Harness, token: &str) -> String {
    let (status, body) = h.report_json(token, &JUNE).await;
    assert_eq!(status, 200);
    body["next_page_token"].as_str().unwrap().to_owned()
}

async fn page2(h: &Harness, token: &str, next: &str) -> reqwest::Response {
    let mut params = JUNE.to_vec();
    params.push(("next_page_token", next));
    h.report(token, &params).await
}

/// Fetches page 2 twice: the fault fires on the first try only.
async fn fire_once(h: &Harness, kind: FaultKind) -> (reqwest::Response, Value) {
    let token = h.mint("acme").await;
    let next = page2_token(h, &token).await;
    h.sandbox.control().add_fault(on_page(2, kind));
    let faulty = page2(h, &token, &next).await;
    let retry = page2(h, &token, &next).await;
    assert_eq!(retry.status(), 200);
    let retry: Value = retry.json().await.unwrap();
    assert_eq!(retry["page_number"], 2);
    (faulty, retry)
}

fn last_status(h: &Harness) -> Vec<u16> {
    h.sandbox
        .control()
        .requests()
        .iter()
        .map(|r| r.status)
        .collect()
}

#[tokio::test]
async fn error_faults_fire_on_the_chosen_page_only_times_times() {
    let h = Harness::start().await;

    let (r, _) = fire_once(
        &h,
        FaultKind::Status {
            status: 503,
            body: "{\"oops\":true}".into(),
        },
    )
    .await;
    assert_eq!(r.status(), 503);
    assert_eq!(r.text().await.unwrap(), "{\"oops\":true}");

    let (r, _) = fire_once(&h, FaultKind::ServerError).await;
    assert_eq!(r.status(), 500);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"code": 500, "message": "Internal server error"})
    );

    let (r, _) = fire_once(&h, FaultKind::RateLimitQps { headers: true }).await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["x-ratelimit-type"], "QPS");
    assert_eq!(r.headers()["x-ratelimit-category"], "Heavy");
    assert!(r.headers().contains_key("x-ratelimit-limit"));
    assert_eq!(r.headers()["x-ratelimit-remaining"], "0");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], 429);
    assert!(body["message"].as_str().unwrap().contains("per-second"));

    let (r, _) = fire_once(&h, FaultKind::RateLimitQps { headers: false }).await;
    assert_eq!(r.status(), 429);
    assert!(!r.headers().contains_key("x-ratelimit-type"));

    let at = "2024-08-16T00:00:00Z".parse().unwrap();
    let (r, _) = fire_once(
        &h,
        FaultKind::RateLimitDaily {
            retry_after: Some(at),
        },
    )
    .await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["x-ratelimit-type"], "Daily-limit");
    assert_eq!(r.headers()["retry-after"], "2024-08-16T00:00:00Z");
    assert!(r.json::<Value>().await.unwrap()["message"]
        .as_str()
        .unwrap()
        .contains("daily"));

    let (r, _) = fire_once(&h, FaultKind::RateLimitDaily { retry_after: None }).await;
    assert_eq!(r.headers()["x-ratelimit-type"], "Daily-limit");
    assert!(!r.headers().contains_key("retry-after"));

    let (r, _) = fire_once(&h, FaultKind::ExpiredPageToken).await;
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body,
        json!({"code": 300, "message": "The next page token is invalid or expired."})
    );

    // Each fault: page 1 (200), page 2 faulty, page 2 again (200), plus the mint.
    let statuses = last_status(&h);
    assert_eq!(
        statuses,
        [503, 500, 429, 429, 429, 429, 400]
            .iter()
            .flat_map(|&s| [200, 200, s, 200])
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn body_faults_distort_the_real_answer() {
    let h = Harness::start().await;

    let (r, retry) = fire_once(&h, FaultKind::TruncatedBody).await;
    assert_eq!(r.status(), 200);
    let length: usize = r.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let body = r.bytes().await.unwrap();
    assert_eq!(body.len(), length);
    assert!(serde_json::from_slice::<Value>(&body).is_err());
    // The cut body is the first half of a real page.
    let full = serde_json::to_vec(&retry).unwrap();
    assert!((full.len() / 2).abs_diff(body.len()) < 200);
    assert!(body.starts_with(b"{\"from\":\"2024-06-01\""));

    let (r, _) = fire_once(&h, FaultKind::MalformedJson).await;
    assert_eq!(r.status(), 200);
    assert!(serde_json::from_slice::<Value>(&r.bytes().await.unwrap()).is_err());

    let (r, retry) = fire_once(&h, FaultKind::ClampFrom { days: 3 }).await;
    let clamped: Value = r.json().await.unwrap();
    assert_eq!(clamped["from"], "2024-06-04");
    assert_eq!(clamped["to"], "2024-06-30");
    assert_eq!(clamped["users"], retry["users"]);
    assert_eq!(retry["from"], "2024-06-01");

    let (r, retry) = fire_once(&h, FaultKind::Delay { ms: 50 }).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["users"], retry["users"]);
}

#[tokio::test]
async fn hang_and_drop_connection_answer_nothing() {
    let h = Harness::start().await;
    let control = h.sandbox.control();
    let token = h.mint("acme").await;
    let next = page2_token(&h, &token).await;

    control.add_fault(on_page(2, FaultKind::Hang));
    let mut params = JUNE.to_vec();
    params.push(("next_page_token", &next));
    let hung = h
        .client
        .get(format!("{}/report/users", h.sandbox.zoom_api_url()))
        .bearer_auth(&token)
        .query(&params)
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    assert!(hung.unwrap_err().is_timeout());

    control.add_fault(on_page(2, FaultKind::DropConnection));
    let dropped = h
        .client
        .get(format!("{}/report/users", h.sandbox.zoom_api_url()))
        .bearer_auth(&token)
        .query(&params)
        .send()
        .await;
    assert!(dropped.is_err(), "{dropped:?}");

    assert_eq!(page2(&h, &token, &next).await.status(), 200);
    let log: Vec<_> = control
        .requests()
        .iter()
        .map(|r| (r.page, r.status))
        .collect();
    assert_eq!(
        log[1..],
        [(Some(1), 200), (Some(2), 0), (Some(2), 0), (Some(2), 200)]
    );
}

#[tokio::test]
async fn rules_match_in_order_and_by_endpoint_account_and_probability() {
    let h = Harness::start().await;
    let control = h.sandbox.control();

    // An OAuth fault; an unsuccessful mint is not counted.
    control.add_fault(FaultRule::on(Endpoint::OauthToken, FaultKind::ServerError).times(1));
    let grant = [("grant_type", "account_credentials"), ("account_id", ACME)];
    assert_eq!(
        h.mint_raw("acme-client", "acme-secret", &grant)
            .await
            .status(),
        500
    );
    let token = h.mint("acme").await;
    assert_eq!(control.token_mints(ACME), 1);

    // Until cleared when `times` is None; another account is not affected.
    control.add_fault(FaultRule::anywhere(FaultKind::RateLimitQps { headers: true }).account(ACME));
    for _ in 0..3 {
        assert_eq!(h.report(&token, &JUNE).await.status(), 429);
    }
    let empty = h.mint("empty").await;
    assert_eq!(h.report(&empty, &JUNE).await.status(), 200);
    control.clear_faults();
    assert_eq!(h.report(&token, &JUNE).await.status(), 200);

    // The first matching rule wins; a rule for inactive leaves active alone.
    control.add_fault(on_page(1, FaultKind::ServerError).report_type(ReportType::Inactive));
    control.add_fault(on_page(1, FaultKind::ExpiredPageToken));
    control.add_fault(on_page(1, FaultKind::RateLimitQps { headers: false }));
    assert_eq!(h.report(&token, &JUNE).await.status(), 400);
    assert_eq!(h.report(&token, &JUNE).await.status(), 429);
    assert_eq!(h.report(&token, &JUNE).await.status(), 200);
    control.clear_faults();

    // A probability draws from the seed: the same requests fail the same way.
    let run = |seed: u64| async move {
        let h = Harness::with(SandboxConfig { seed, ..config() }).await;
        h.sandbox.control().add_fault(
            FaultRule::on(Endpoint::ReportUsers, FaultKind::ServerError)
                .account(ACME)
                .report_type(ReportType::Active)
                .probability(0.5),
        );
        let token = h.mint("acme").await;
        let mut statuses = Vec::new();
        for _ in 0..40 {
            statuses.push(h.report(&token, &JUNE).await.status().as_u16());
        }
        statuses
    };
    let a = run(3).await;
    assert_eq!(a, run(3).await);
    let failed = a.iter().filter(|&&s| s == 500).count();
    assert!((5..35).contains(&failed), "{a:?}");
}

#[tokio::test]
async fn wait_for_request_sees_past_and_future_records() {
    let h = Harness::start().await;
    let control = h.sandbox.control();
    let token = h.mint("acme").await;

    let found = control
        .wait_for_request(
            |r| r.endpoint == Endpoint::OauthToken,
            Duration::from_secs(1),
        )
        .await;
    assert_eq!(found.unwrap().status, 200);

    let client = h.client.clone();
    let url = format!("{}/report/users", h.sandbox.zoom_api_url());
    let later = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        client
            .get(url)
            .bearer_auth(token)
            .query(&JUNE)
            .send()
            .await
            .unwrap()
            .status()
    });
    let found = control
        .wait_for_request(
            |r| r.endpoint == Endpoint::ReportUsers,
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert_eq!((found.page, found.status), (Some(1), 200));
    assert_eq!(found.query["page_size"], "100");
    assert_eq!(later.await.unwrap(), 200);

    let none = control
        .wait_for_request(|r| r.status == 418, Duration::from_millis(50))
        .await;
    assert!(none.is_none());
    control.clear_requests();
    assert!(control.requests().is_empty());
}

#[tokio::test]
async fn control_routes_work_over_http() {
    let h = Harness::start().await;
    let token = h.mint("acme").await;
    let url = |p: &str| h.url(&format!("/_sandbox{p}"));

    let rule = json!({"endpoint": "report_users", "page": 1, "times": 1,
        "kind": {"type": "rate_limit_daily", "retry_after": "2024-08-16T00:00:00Z"}});
    let r = h
        .client
        .post(url("/faults"))
        .json(&rule)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = h.report(&token, &JUNE).await;
    assert_eq!(
        (
            r.status().as_u16(),
            r.headers()["retry-after"].to_str().unwrap()
        ),
        (429, "2024-08-16T00:00:00Z")
    );
    let bad = h
        .client
        .post(url("/faults"))
        .json(&json!({"kind": {"type": "nope"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert!(bad.json::<Value>().await.unwrap()["error"].is_string());
    h.client
        .post(url("/faults"))
        .json(&json!({"kind": {"type": "server_error"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        h.client
            .delete(url("/faults"))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(h.report(&token, &JUNE).await.status(), 200);

    let log: Value = h
        .client
        .get(url("/requests"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let log = log.as_array().unwrap();
    assert_eq!(log.len(), 3);
    assert_eq!(log[0]["endpoint"], "oauth_token");
    assert_eq!(log[1]["endpoint"], "report_users");
    assert_eq!(log[1]["status"], 429);
    assert_eq!(log[1]["page"], 1);
    assert_eq!(log[1]["query"]["type"], "active");
    assert_eq!(log[2]["account_id"], ACME);
    assert_eq!(
        h.client
            .delete(url("/requests"))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert!(h.sandbox.control().requests().is_empty());

    let truth: Value = h
        .client
        .get(url("/truth/zoom/report_users"))
        .query(&[
            ("account_id", ACME),
            ("month", "2024-06-01"),
            ("type", "inactive"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let expected = h
        .sandbox
        .control()
        .report_truth(ACME, date(2024, 6, 1), ReportType::Inactive);
    assert_eq!(truth["total_records"], expected.total_records);
    assert_eq!(truth["users"], Value::Array(expected.users.clone()));
    let missing = h
        .client
        .get(url("/truth/zoom/report_users"))
        .query(&[("account_id", "nope"), ("month", "2024-06-01")])
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);

    let first_inactive = expected.users[0]["id"].as_str().unwrap().to_owned();
    let index = (0..2500)
        .find(|&i| h.sandbox.control().user_id(ACME, i) == first_inactive)
        .unwrap();
    let body =
        json!({"account_id": ACME, "month": "2024-06-01", "user_index": index, "type": "active"});
    let r = h
        .client
        .post(url("/zoom/user_type"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let after = h
        .sandbox
        .control()
        .report_truth(ACME, date(2024, 6, 1), ReportType::Inactive);
    assert_eq!(after.total_records + 1, expected.total_records);
    let body =
        json!({"account_id": ACME, "month": "2024-06-01", "user_index": 2500, "type": "active"});
    let r = h
        .client
        .post(url("/zoom/user_type"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    let mints: Value = h
        .client
        .get(url("/zoom/token_mints"))
        .query(&[("account_id", ACME)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(mints["mints"], 1);

    let (_, page1) = h.report_json(&token, &JUNE).await;
    assert_eq!(
        h.client
            .post(url("/expire_page_tokens"))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    let mut params = JUNE.to_vec();
    params.push((
        "next_page_token",
        page1["next_page_token"].as_str().unwrap(),
    ));
    assert_eq!(h.report(&token, &params).await.status(), 400);

    let r = h
        .client
        .get(h.url("/v2/no/such/thing"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], 404);
    let r = h.client.delete(h.url("/oauth/token")).send().await.unwrap();
    assert_eq!(r.status(), 405);
}

#[tokio::test]
async fn shutdown_ends_hung_requests() {
    let h = Harness::start().await;
    let control = h.sandbox.control();
    let token = h.mint("acme").await;
    control.add_fault(on_page(1, FaultKind::Hang));
    let client = h.client.clone();
    let url = format!("{}/report/users", h.sandbox.zoom_api_url());
    let hung =
        tokio::spawn(async move { client.get(url).bearer_auth(token).query(&JUNE).send().await });
    let record = control
        .wait_for_request(
            |r| r.endpoint == Endpoint::ReportUsers,
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert_eq!(record.status, 0);
    tokio::time::timeout(Duration::from_secs(4), h.sandbox.shutdown())
        .await
        .expect("shutdown does not wait for the hung request");
    assert!(hung.await.unwrap().is_err());
}

#[tokio::test]
async fn config_files_parse_and_reject_unknown_keys() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/sandbox.toml");
    let config = SandboxConfig::from_toml_file(&path).unwrap();
    assert_eq!(config.zoom.len(), 2);
    assert_eq!(config.zoom[0].account_id, ACME);
    assert_eq!(config.zoom[0].users, 2500);
    assert_eq!(config.zoom[1].users, 0);
    assert_eq!(config.page_token_ttl_secs, 900);

    let dir = std::env::temp_dir().join(format!("rollcall-sandbox-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let minimal = write("minimal.toml", "");
    let config = SandboxConfig::from_toml_file(&minimal).unwrap();
    assert_eq!(config.listen, "127.0.0.1:8090");
    assert_eq!(config.access_token_ttl_secs, 3600);

    let typo = write("typo.toml", "seeed = 3\n");
    let err = format!("{:#}", SandboxConfig::from_toml_file(&typo).unwrap_err());
    assert!(err.contains("seeed"), "{err}");

    let bad = write(
        "bad.toml",
        r#"
[[zoom]]
account_id = "a"
client_id = "c"
client_secret = "s"
users = 20000000
active_percent = 101
[[zoom]]
account_id = "a"
client_id = "c"
client_secret = "s"
users = 1
"#,
    );
    let err = format!("{:#}", SandboxConfig::from_toml_file(&bad).unwrap_err());
    for needle in [
        "zoom[0].users",
        "zoom[0].active_percent",
        "zoom[1].account_id",
        "zoom[1].client_id",
    ] {
        assert!(err.contains(needle), "{needle} in {err}");
    }
    std::fs::remove_dir_all(&dir).ok();
}
