//! Zoom OAuth and `GET /v2/report/users` over real HTTP.

mod common;

use std::collections::HashSet;

use common::*;
use rollcall_sandbox::{Endpoint, ReportType, SandboxConfig};
use serde_json::Value;

#[tokio::test]
async fn oauth_mints_tokens_from_the_body_or_the_query() {
    let h = Harness::start().await;
    let control = h.sandbox.control();

    let response = h
        .mint_raw(
            "acme-client",
            "acme-secret",
            &[("grant_type", "account_credentials"), ("account_id", ACME)],
        )
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert!(body["access_token"].as_str().unwrap().starts_with("sbx."));
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["scope"], "report:read:admin");
    assert_eq!(body["api_url"], h.sandbox.base_url());

    // The form of Zoom's docs and Postman collection: parameters in the query string.
    let response = h
        .client
        .post(format!(
            "{}?grant_type=account_credentials&account_id={ACME}",
            h.sandbox.zoom_oauth_url()
        ))
        .basic_auth("acme-client", Some("acme-secret"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let token = response.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _) = h
        .report_json(
            &token,
            &[
                ("type", "active"),
                ("from", "2024-06-01"),
                ("to", "2024-06-30"),
            ],
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(control.token_mints(ACME), 2);
    assert_eq!(control.token_mints(EMPTY), 0);

    let grant = [("grant_type", "account_credentials"), ("account_id", ACME)];
    for (client, secret) in [("acme-client", "wrong"), ("nobody", "acme-secret")] {
        let response = h.mint_raw(client, secret, &grant).await;
        assert_eq!(response.status(), 401);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid_client");
        assert_eq!(body["reason"], "Invalid client_id or client_secret");
    }
    let no_auth = h
        .client
        .post(h.sandbox.zoom_oauth_url())
        .form(&grant)
        .send()
        .await
        .unwrap();
    assert_eq!(no_auth.status(), 401);

    for form in [
        vec![
            ("grant_type", "account_credentials"),
            ("account_id", "nope"),
        ],
        vec![("grant_type", "account_credentials"), ("account_id", EMPTY)],
        vec![("grant_type", "client_credentials"), ("account_id", ACME)],
        vec![("account_id", ACME)],
    ] {
        let response = h.mint_raw("acme-client", "acme-secret", &form).await;
        assert_eq!(response.status(), 400, "{form:?}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid_request");
        assert!(body["reason"].is_string());
    }
    assert_eq!(control.token_mints(ACME), 2);

    let records = control.requests();
    assert!(records
        .iter()
        .all(|r| r.endpoint == Endpoint::OauthToken || r.endpoint == Endpoint::ReportUsers));
    assert_eq!(records[0].account_id.as_deref(), Some(ACME));
    assert_eq!(records[0].query["grant_type"], "account_credentials");
    assert_eq!(records[0].status, 200);
    assert_eq!(records[1].query["account_id"], ACME);
    assert!(records.windows(2).all(|w| w[0].seq < w[1].seq));
}

#[tokio::test]
async fn a_full_walk_returns_exactly_the_truth() {
    let h = Harness::start().await;
    let control = h.sandbox.control();
    let token = h.mint("acme").await;
    let mut all_ids = HashSet::new();
    for (t, name) in [
        (ReportType::Active, "active"),
        (ReportType::Inactive, "inactive"),
    ] {
        let pages = h
            .walk(&token, name, "2024-06-01", "2024-06-30", "300")
            .await;
        let truth = control.report_truth(ACME, date(2024, 6, 1), t);
        let users = users_of(&pages);
        assert_eq!(users, truth.users);
        assert_eq!(users.len() as u64, truth.total_records);
        let expected_pages = truth.total_records.div_ceil(300);
        assert_eq!(pages.len() as u64, expected_pages);
        for (n, page) in pages.iter().enumerate() {
            assert_eq!(page["from"], "2024-06-01");
            assert_eq!(page["to"], "2024-06-30");
            assert_eq!(page["page_number"], n as u64 + 1);
            assert_eq!(page["page_size"], 300);
            assert_eq!(page["page_count"], expected_pages);
            assert_eq!(page["total_records"], truth.total_records);
            assert_eq!(page["total_meetings"], truth.total_meetings);
            assert_eq!(page["total_participants"], truth.total_participants);
            assert_eq!(page["total_meeting_minutes"], truth.total_meeting_minutes);
        }
        let sum = |k: &str| users.iter().map(|u| u[k].as_u64().unwrap()).sum::<u64>();
        assert_eq!(sum("meetings"), truth.total_meetings);
        assert_eq!(sum("participants"), truth.total_participants);
        assert_eq!(sum("meeting_minutes"), truth.total_meeting_minutes);
        for u in &users {
            let active = u["meetings"].as_u64().unwrap() > 0;
            assert_eq!(active, t == ReportType::Active, "{u}");
            assert!(all_ids.insert(u["id"].as_str().unwrap().to_owned()));
        }
    }
    // Every user is in exactly one of the two reports, under its stable id.
    assert_eq!(all_ids.len(), 2500);
    for i in [0, 1, 1234, 2499] {
        assert!(all_ids.contains(&control.user_id(ACME, i)));
    }

    // The log shows page numbers and that `type` was sent.
    let pages: Vec<_> = control
        .requests()
        .into_iter()
        .filter(|r| r.endpoint == Endpoint::ReportUsers)
        .collect();
    assert_eq!(pages[0].page, Some(1));
    assert_eq!(pages[1].page, Some(2));
    assert!(pages
        .iter()
        .all(|r| r.query.contains_key("type") && r.status == 200));
    assert!(pages.iter().all(|r| r.account_id.as_deref() == Some(ACME)));
}

#[tokio::test]
async fn page_sizes_the_current_month_and_an_empty_account() {
    let h = Harness::start().await;
    let token = h.mint("acme").await;
    let month = [("from", "2024-08-01"), ("to", "2024-08-15")];

    let (status, body) = h.report_json(&token, &month).await;
    assert_eq!(status, 200);
    assert_eq!(body["page_size"], 30);
    assert_eq!(body["users"].as_array().unwrap().len(), 30);
    // `type` missing means active.
    let truth = h
        .sandbox
        .control()
        .report_truth(ACME, date(2024, 8, 1), ReportType::Active);
    assert_eq!(body["total_records"], truth.total_records);

    let (_, body) = h
        .report_json(&token, &[month[0], month[1], ("page_size", "1000")])
        .await;
    assert_eq!(body["page_size"], 300);
    assert_eq!(body["users"].as_array().unwrap().len(), 300);

    let pages = h
        .walk(&token, "inactive", "2024-08-01", "2024-08-15", "7")
        .await;
    let truth = h
        .sandbox
        .control()
        .report_truth(ACME, date(2024, 8, 1), ReportType::Inactive);
    assert_eq!(users_of(&pages), truth.users);

    let empty = h.mint("empty").await;
    for t in ["active", "inactive"] {
        let pages = h.walk(&empty, t, "2024-07-01", "2024-07-31", "300").await;
        assert_eq!(pages.len(), 1);
        assert_eq!(pages[0]["total_records"], 0);
        assert_eq!(pages[0]["next_page_token"], "");
        assert_eq!(pages[0]["users"], Value::Array(vec![]));
    }
}

#[tokio::test]
async fn bad_missing_and_expired_access_tokens_get_401() {
    let h = Harness::start().await;
    let params = [
        ("type", "active"),
        ("from", "2024-06-01"),
        ("to", "2024-06-30"),
    ];

    let response = h
        .client
        .get(format!("{}/report/users", h.sandbox.zoom_api_url()))
        .query(&params)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], 124);
    assert_eq!(body["message"], "Invalid access token.");

    let (status, body) = h.report_json("sbx.not-a-real-token", &params).await;
    assert_eq!((status, code_of(&body)), (401, 124));
    assert_eq!(body["message"], "Invalid access token.");

    let token = h.mint("acme").await;
    assert_eq!(h.report_json(&token, &params).await.0, 200);
    h.sandbox.control().expire_access_tokens();
    let (status, body) = h.report_json(&token, &params).await;
    assert_eq!((status, code_of(&body)), (401, 124));
    assert_eq!(body["message"], "Access token is expired.");
    // The expired token still identifies its account in the log.
    let last = h.sandbox.control().requests().pop().unwrap();
    assert_eq!((last.status, last.account_id.as_deref()), (401, Some(ACME)));

    // A TTL of 0 makes every token expire at once.
    let h = Harness::with(SandboxConfig {
        access_token_ttl_secs: 0,
        ..config()
    })
    .await;
    let token = h.mint("acme").await;
    let (status, body) = h.report_json(&token, &params).await;
    assert_eq!(status, 401);
    assert_eq!(body["message"], "Access token is expired.");
}

#[tokio::test]
async fn dates_ranges_and_the_horizon_are_validated() {
    let h = Harness::start().await;
    let token = h.mint("acme").await;
    let get = |from: &'static str, to: &'static str, t: &'static str| {
        let h = &h;
        let token = token.clone();
        async move {
            h.report_json(&token, &[("type", t), ("from", from), ("to", to)])
                .await
        }
    };

    // today 2024-08-15: the horizon is 2024-02-16.
    let (status, body) = get("2024-02-15", "2024-02-29", "active").await;
    assert_eq!((status, code_of(&body)), (400, 300));
    assert_eq!(body["message"], "Only provide report in recent 6 months");
    assert_eq!(get("2024-02-16", "2024-02-29", "active").await.0, 200);

    for (from, to, t, field) in [
        ("2024-6-01", "2024-06-30", "active", Some("from")),
        ("2024-06-01", "2024-06-31", "active", Some("to")),
        ("junk", "2024-06-30", "active", Some("from")),
        ("2024-06-01", "2024-06-30", "everyone", Some("type")),
        ("2024-06-10", "2024-06-09", "active", Some("to")),
        ("2024-08-01", "2024-08-16", "active", Some("to")),
        ("2024-06-01", "2024-07-01", "inactive", None),
        ("2024-06-15", "2024-07-14", "active", None),
    ] {
        let (status, body) = get(from, to, t).await;
        assert_eq!(
            (status, code_of(&body)),
            (400, 300),
            "{from} {to} {t}: {body}"
        );
        if let Some(field) = field {
            assert_eq!(body["message"], "Invalid field.");
            assert_eq!(body["errors"][0]["field"], field, "{body}");
        }
    }
    let (status, body) = h
        .report_json(&token, &[("type", "active"), ("to", "2024-06-30")])
        .await;
    assert_eq!(
        (status, body["errors"][0]["field"].as_str()),
        (400, Some("from"))
    );
    let (status, body) = h
        .report_json(
            &token,
            &[
                ("from", "2024-06-01"),
                ("to", "2024-06-30"),
                ("page_size", "x"),
            ],
        )
        .await;
    assert_eq!((status, code_of(&body)), (400, 300));

    // A partial month is served from that month's data.
    let (status, body) = get("2024-06-10", "2024-06-20", "active").await;
    assert_eq!(status, 200);
    let truth = h
        .sandbox
        .control()
        .report_truth(ACME, date(2024, 6, 1), ReportType::Active);
    assert_eq!(body["total_records"], truth.total_records);
}

#[tokio::test]
async fn page_tokens_are_bound_to_their_query_and_expire() {
    let h = Harness::start().await;
    let token = h.mint("acme").await;
    let base = [
        ("type", "active"),
        ("from", "2024-06-01"),
        ("to", "2024-06-30"),
        ("page_size", "100"),
    ];
    let (_, page1) = h.report_json(&token, &base).await;
    let next = page1["next_page_token"].as_str().unwrap().to_owned();
    assert!(!next.is_empty());
    let with = |params: &[(&'static str, &'static str)]| {
        let mut v: Vec<(&str, &str)> = params.to_vec();
        v.push(("next_page_token", next.as_str()));
        v
    };

    // The same query may repeat a page (a retry); both answers agree.
    let (s1, a) = h.report_json(&token, &with(&base)).await;
    let (s2, b) = h.report_json(&token, &with(&base)).await;
    assert_eq!((s1, s2), (200, 200));
    assert_eq!(a["users"], b["users"]);
    assert_eq!(a["page_number"], 2);

    for changed in [
        [("type", "inactive"), base[1], base[2], base[3]],
        [base[0], ("from", "2024-06-02"), base[2], base[3]],
        [base[0], base[1], ("to", "2024-06-29"), base[3]],
        [base[0], base[1], base[2], ("page_size", "300")],
    ] {
        let (status, body) = h.report_json(&token, &with(&changed)).await;
        assert_eq!((status, code_of(&body)), (400, 300), "{changed:?}");
        assert_eq!(
            body["message"],
            "The next page token is invalid or expired."
        );
    }
    // Another account's token cannot continue this walk.
    let other = h.mint("empty").await;
    let (status, _) = h.report_json(&other, &with(&base)).await;
    assert_eq!(status, 400);
    let (status, _) = h
        .report_json(
            &token,
            &[base[0], base[1], base[2], ("next_page_token", "forged")],
        )
        .await;
    assert_eq!(status, 400);

    h.sandbox.control().expire_page_tokens();
    let (status, body) = h.report_json(&token, &with(&base)).await;
    assert_eq!((status, code_of(&body)), (400, 300));
    assert_eq!(
        body["message"],
        "The next page token is invalid or expired."
    );
    // A new walk gets fresh tokens.
    let truth = h
        .sandbox
        .control()
        .report_truth(ACME, date(2024, 6, 1), ReportType::Active);
    let walk = h
        .walk(&token, "active", "2024-06-01", "2024-06-30", "100")
        .await;
    assert_eq!(users_of(&walk), truth.users);

    // TTL 0: every token is expired when it comes back.
    let h = Harness::with(SandboxConfig {
        page_token_ttl_secs: 0,
        ..config()
    })
    .await;
    let token = h.mint("acme").await;
    let (_, page1) = h.report_json(&token, &base).await;
    let next = page1["next_page_token"].as_str().unwrap();
    let (status, body) = h
        .report_json(
            &token,
            &[
                base[0],
                base[1],
                base[2],
                base[3],
                ("next_page_token", next),
            ],
        )
        .await;
    assert_eq!((status, code_of(&body)), (400, 300));
}

#[tokio::test]
async fn set_user_type_moves_a_user_between_walks() {
    let h = Harness::start().await;
    let control = h.sandbox.control();
    let token = h.mint("acme").await;
    let june = date(2024, 6, 1);
    let ids = |pages: &[Value]| -> HashSet<String> {
        users_of(pages)
            .iter()
            .map(|u| u["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let before = h
        .walk(&token, "active", "2024-06-01", "2024-06-30", "300")
        .await;
    let active_before = ids(&before);
    let index = (0..2500)
        .find(|&i| active_before.contains(&control.user_id(ACME, i)))
        .unwrap();
    let moved = control.user_id(ACME, index);

    // Any day names the month.
    control.set_user_type(ACME, date(2024, 6, 17), index, ReportType::Inactive);
    let active = h
        .walk(&token, "active", "2024-06-01", "2024-06-30", "300")
        .await;
    let inactive = h
        .walk(&token, "inactive", "2024-06-01", "2024-06-30", "300")
        .await;
    assert!(!ids(&active).contains(&moved));
    assert!(ids(&inactive).contains(&moved));
    assert_eq!(
        active[0]["total_records"].as_u64().unwrap() + 1,
        before[0]["total_records"].as_u64().unwrap()
    );
    assert_eq!(
        users_of(&active),
        control.report_truth(ACME, june, ReportType::Active).users
    );
    let truth = control.report_truth(ACME, june, ReportType::Inactive);
    assert_eq!(users_of(&inactive), truth.users);
    assert_eq!(inactive[0]["total_records"], truth.total_records);
    let row = truth
        .users
        .iter()
        .find(|u| u["id"] == moved.as_str())
        .unwrap();
    assert_eq!(
        (row["meetings"].as_u64(), row["meeting_minutes"].as_u64()),
        (Some(0), Some(0))
    );

    // Other months are untouched, and the move can be undone.
    let july = control.report_truth(ACME, date(2024, 7, 1), ReportType::Active);
    let july_pages = h
        .walk(&token, "active", "2024-07-01", "2024-07-31", "300")
        .await;
    assert_eq!(users_of(&july_pages), july.users);
    control.set_user_type(ACME, june, index, ReportType::Active);
    let again = h
        .walk(&token, "active", "2024-06-01", "2024-06-30", "300")
        .await;
    assert_eq!(users_of(&again), users_of(&before));
    assert_eq!(again[0]["total_meetings"], before[0]["total_meetings"]);
}

#[tokio::test]
async fn a_million_users_are_paged_lazily() {
    let h = Harness::with(SandboxConfig {
        zoom: vec![account("big", 1_000_000, 1)],
        ..config()
    })
    .await;
    let token = h.mint("big").await;

    // Page 1 of the 99% report: only ~300 users are generated for it.
    let (status, page) = h
        .report_json(
            &token,
            &[
                ("type", "inactive"),
                ("from", "2024-07-01"),
                ("to", "2024-07-31"),
                ("page_size", "300"),
            ],
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(page["users"].as_array().unwrap().len(), 300);
    let inactive_total = page["total_records"].as_u64().unwrap();
    assert!(
        (985_000..995_000).contains(&inactive_total),
        "{inactive_total}"
    );

    // The 1% report: a walk of ~34 pages whose last page sits at the end of
    // the account; each page scans ~30,000 users.
    let pages = h
        .walk(&token, "active", "2024-07-01", "2024-07-31", "300")
        .await;
    let users = users_of(&pages);
    let total = pages[0]["total_records"].as_u64().unwrap();
    assert_eq!(total + inactive_total, 1_000_000);
    assert_eq!(users.len() as u64, total);
    assert_eq!(pages.len() as u64, total.div_ceil(300));
    let ids: HashSet<_> = users.iter().map(|u| u["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), users.len());
    let meetings: u64 = users.iter().map(|u| u["meetings"].as_u64().unwrap()).sum();
    assert_eq!(pages.last().unwrap()["total_meetings"], meetings);
    let last_user = users.last().unwrap()["email"].as_str().unwrap();
    let index: u64 = last_user[1..last_user.find('.').unwrap()].parse().unwrap();
    assert!(index > 990_000, "{last_user}");
}
