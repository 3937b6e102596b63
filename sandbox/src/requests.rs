//! The log of API requests the sandbox received, which tests assert on.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::lock;

/// The API endpoints the sandbox serves (control routes are not logged).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    OauthToken,
    ReportUsers,
    /// Rocket.Chat `engagement-dashboard/users/active-users`; `account_id` is the workspace name.
    RcActiveUsers,
    /// Zoom `GET /v2/videosdk/sessions`; `account_id` is the JWT's API key.
    SdkSessions,
    /// Zoom `GET /v2/videosdk/sessions/{id}/users`; `account_id` is the JWT's API key.
    SdkSessionUsers,
    /// Zoom `GET /v2/report/daily` (the account's daily usage); `account_id` is the Zoom account id.
    ReportDaily,
    /// Zoom `GET /v2/videosdk/report/daily`; `account_id` is the JWT's API key.
    SdkReportDaily,
}

#[derive(Clone, Debug, Serialize)]
pub struct RequestRecord {
    /// Increases by one per request and is never reset, not even by `clear_requests`.
    pub seq: u64,
    pub endpoint: Endpoint,
    /// OAuth: the `account_id` asked for; API calls: the account of the bearer token.
    pub account_id: Option<String>,
    /// Query parameters (and, for OAuth, the form body); a repeated key keeps its last value.
    pub query: BTreeMap<String, String>,
    /// 1 = first page (no `next_page_token`); `None` for OAuth or an unreadable token.
    pub page: Option<u32>,
    /// The status sent; 0 when the request was hung or its connection dropped.
    pub status: u16,
    /// Milliseconds from the sandbox's start to the answer (or the hang/drop), for measuring rates.
    #[serde(default)]
    pub at_ms: u64,
    /// Video SDK session users: the session id as the API decoded it from the path; `None` elsewhere, and
    /// when the path did not name a session as itself (refused with "Session does not exist").
    #[serde(default)]
    pub session_id: Option<String>,
}

/// What a request looked like before it was answered.
#[derive(Clone, Debug)]
pub(crate) struct RequestMeta {
    pub endpoint: Endpoint,
    pub account_id: Option<String>,
    pub report_type: Option<crate::zoom::ReportType>,
    pub query: BTreeMap<String, String>,
    pub page: Option<u32>,
    /// The account whose *valid* credential the request carries (an index into the Zoom accounts for the
    /// report, into the Video SDK accounts for `/videosdk/*`): only such requests count against its rate
    /// limits.
    pub rate_account: Option<usize>,
    /// See [`RequestRecord::session_id`].
    pub session_id: Option<String>,
}

pub(crate) struct RequestLog {
    inner: Mutex<LogInner>,
    notify: Notify,
    started: Instant,
}

impl Default for RequestLog {
    fn default() -> Self {
        Self {
            inner: Mutex::default(),
            notify: Notify::new(),
            started: Instant::now(),
        }
    }
}

#[derive(Default)]
struct LogInner {
    next_seq: u64,
    records: Vec<RequestRecord>,
}

impl RequestLog {
    pub fn push(&self, meta: &RequestMeta, status: u16) -> u64 {
        let at_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let seq = {
            let mut inner = lock(&self.inner);
            let seq = inner.next_seq;
            inner.next_seq += 1;
            inner.records.push(RequestRecord {
                seq,
                endpoint: meta.endpoint,
                account_id: meta.account_id.clone(),
                query: meta.query.clone(),
                page: meta.page,
                status,
                at_ms,
                session_id: meta.session_id.clone(),
            });
            seq
        };
        self.notify.notify_waiters();
        seq
    }

    pub fn all(&self) -> Vec<RequestRecord> {
        lock(&self.inner).records.clone()
    }

    pub fn clear(&self) {
        lock(&self.inner).records.clear();
    }

    pub async fn wait_for(
        &self,
        pred: impl Fn(&RequestRecord) -> bool,
        timeout: Duration,
    ) -> Option<RequestRecord> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut scanned_up_to = 0_u64;
        loop {
            // Registered before scanning, so a record pushed between the scan
            // and the wait still wakes us.
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let inner = lock(&self.inner);
                if let Some(found) = inner
                    .records
                    .iter()
                    .filter(|r| r.seq >= scanned_up_to)
                    .find(|r| pred(r))
                {
                    return Some(found.clone());
                }
                scanned_up_to = inner.next_seq;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }
}
