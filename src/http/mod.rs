//! HTTP plumbing shared by every source: one client with timeouts, a bounded retry loop for transient
//! failures, and the error vocabulary the engine uses to decide between "retry", "restart the window" and
//! "give up on this account".

mod body;
mod error;
pub mod pacing;
mod retry;
mod send;

pub use body::{malformed_json, quote_bounded, BodyCap, MAX_QUOTED_BYTES};
pub use error::{ApiError, ErrorBody, Unaddressable};
pub use retry::{with_retries, RetryPolicy};
pub use send::{code_suffix, describe_transport_error, header, status_error, Meter, Reply};

use crate::store::request_counts::RequestLedger;
use std::sync::Arc;
use std::time::Duration;

/// The one HTTP client a process uses, with the body cap every API response is read under.
#[derive(Clone, Debug)]
pub struct HttpClient {
    client: reqwest::Client,
    body_cap: BodyCap,
    /// Where a collection run counts its requests (`None` outside runs: `check`, the sandbox).
    ledger: Option<Arc<RequestLedger>>,
}

impl HttpClient {
    pub fn get(&self, url: &str) -> reqwest::RequestBuilder {
        self.client.get(url)
    }

    pub fn post(&self, url: &str) -> reqwest::RequestBuilder {
        self.client.post(url)
    }

    /// The same client, counting every metered request in `ledger`.
    pub fn counting_in(&self, ledger: Arc<RequestLedger>) -> HttpClient {
        HttpClient {
            ledger: Some(ledger),
            ..self.clone()
        }
    }

    pub fn ledger(&self) -> Option<&Arc<RequestLedger>> {
        self.ledger.as_ref()
    }
}

/// Builds the one client a process uses. Redirects are refused because reqwest strips `Authorization` on a
/// cross-host redirect, which would turn a moved endpoint into a confusing 401 (research/zoom-api.md §6.10).
pub fn build_client(timeout: Duration, max_body_mib: u64) -> Result<HttpClient, ApiError> {
    let client = reqwest::Client::builder()
        .user_agent(concat!("rollcall/", env!("CARGO_PKG_VERSION")))
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(16)
        .build()
        .map_err(|e| ApiError::Transport {
            what: "building the HTTP client".into(),
            message: e.to_string(),
        })?;
    Ok(HttpClient {
        client,
        body_cap: BodyCap::from_mib(max_body_mib),
        ledger: None,
    })
}
