//! Shared helpers: a sandbox on a random port and a plain reqwest client.
#![allow(dead_code)]

use chrono::NaiveDate;
use reqwest::{Client, Response};
use rollcall_sandbox::{spawn, Sandbox, SandboxConfig, ZoomAccountSpec};
use serde_json::Value;

pub const ACME: &str = "acme-account";
pub const EMPTY: &str = "empty-account";

pub fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

/// Fixed so the horizon is 2024-02-16.
pub fn today() -> NaiveDate {
    date(2024, 8, 15)
}

pub fn account(name: &str, users: u64, active_percent: u8) -> ZoomAccountSpec {
    ZoomAccountSpec {
        account_id: format!("{name}-account"),
        client_id: format!("{name}-client"),
        client_secret: format!("{name}-secret"),
        users,
        active_percent,
        rate_limits: None,
    }
}

pub fn config() -> SandboxConfig {
    SandboxConfig {
        listen: "127.0.0.1:0".into(),
        seed: 7,
        today: Some(today()),
        zoom: vec![account("acme", 2500, 40), account("empty", 0, 40)],
        ..SandboxConfig::default()
    }
}

pub struct Harness {
    pub sandbox: Sandbox,
    pub client: Client,
}

impl Harness {
    pub async fn start() -> Self {
        Self::with(config()).await
    }

    pub async fn with(config: SandboxConfig) -> Self {
        let sandbox = spawn(config).await.expect("sandbox starts");
        Self {
            sandbox,
            client: Client::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.sandbox.base_url())
    }

    pub async fn mint_raw(&self, client: &str, secret: &str, form: &[(&str, &str)]) -> Response {
        self.client
            .post(self.sandbox.zoom_oauth_url())
            .basic_auth(client, Some(secret))
            .form(form)
            .send()
            .await
            .expect("oauth request")
    }

    /// A token for account `name` ("acme" for "acme-account").
    pub async fn mint(&self, name: &str) -> String {
        let account_id = format!("{name}-account");
        let response = self
            .mint_raw(
                &format!("{name}-client"),
                &format!("{name}-secret"),
                &[
                    ("grant_type", "account_credentials"),
                    ("account_id", &account_id),
                ],
            )
            .await;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }

    pub async fn report(&self, token: &str, params: &[(&str, &str)]) -> Response {
        self.client
            .get(format!("{}/report/users", self.sandbox.zoom_api_url()))
            .bearer_auth(token)
            .query(params)
            .send()
            .await
            .expect("report request")
    }

    pub async fn report_json(&self, token: &str, params: &[(&str, &str)]) -> (u16, Value) {
        let response = self.report(token, params).await;
        let status = response.status().as_u16();
        (status, response.json().await.expect("a JSON body"))
    }

    /// Walks every page; returns the pages' bodies.
    pub async fn walk(
        &self,
        token: &str,
        report_type: &str,
        from: &str,
        to: &str,
        page_size: &str,
    ) -> Vec<Value> {
        let mut pages = Vec::new();
        let mut next = String::new();
        loop {
            let mut params = vec![
                ("type", report_type),
                ("from", from),
                ("to", to),
                ("page_size", page_size),
            ];
            if !next.is_empty() {
                params.push(("next_page_token", &next));
            }
            let (status, body) = self.report_json(token, &params).await;
            assert_eq!(status, 200, "{body}");
            next = body["next_page_token"].as_str().unwrap().to_owned();
            pages.push(body);
            if next.is_empty() {
                return pages;
            }
            assert!(pages.len() < 10_000, "walk does not end");
        }
    }
}

pub fn users_of(pages: &[Value]) -> Vec<Value> {
    pages
        .iter()
        .flat_map(|p| p["users"].as_array().unwrap().iter().cloned())
        .collect()
}

pub fn code_of(body: &Value) -> i64 {
    body["code"].as_i64().unwrap_or(-1)
}
