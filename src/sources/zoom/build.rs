//! A Zoom account's streams: the host reports and the daily usage report, sharing one S2S token cache and
//! one pacer.

use super::auth::{S2sAuth, S2sCredentials};
use super::client::{ZoomAuth, ZoomClient};
use super::daily_usage::{self, DailyUsage};
use super::host_reports::{self, HostReports};
use super::months::{self, MonthWindows};
use super::pacing::ZoomPacer;
use crate::config::ZoomAccount;
use crate::engine::BuiltSource;
use crate::http::{ApiError, HttpClient, RetryPolicy};
use crate::sources::build::{BuildContext, SourceConfig, Verdict};
use chrono::{DateTime, NaiveDate, Utc};
use std::sync::Arc;

/// The client of `zoom[index]`: S2S OAuth and the account's own pacer.
pub fn client(
    index: usize,
    account: &ZoomAccount,
    http: &HttpClient,
    retry: RetryPolicy,
) -> Arc<ZoomClient> {
    let auth = S2sAuth::new(
        S2sCredentials {
            oauth_url: account.oauth_url.clone(),
            account_id: account.account_id.clone(),
            client_id: account.client_id.clone(),
            client_secret: account.client_secret.clone(),
            config_keys: format!(
                "zoom[{index}].account_id, zoom[{index}].client_id and zoom[{index}].client_secret"
            ),
            account_name: account.name.clone(),
        },
        http.clone(),
    );
    Arc::new(ZoomClient::new(
        account.name.clone(),
        account.api_url.clone(),
        http.clone(),
        ZoomAuth::S2s(auth),
        ZoomPacer::new(account.limits.resolve(account.plan)),
        retry,
    ))
}

/// How `check` words a Zoom or Video SDK credential probe: a refusal is its own message (it names the keys
/// to fix), anything else says the credentials could not be judged.
pub(super) fn credentials_verdict(probe: Result<(), ApiError>) -> Result<String, String> {
    match probe {
        Ok(()) => Ok("credentials accepted".to_owned()),
        Err(err @ ApiError::AuthRejected { .. }) => Err(err.to_string()),
        Err(err) => Err(format!("cannot verify credentials: {err}")),
    }
}

impl SourceConfig for ZoomAccount {
    fn name(&self) -> &str {
        &self.name
    }

    fn rate_budget(&self) -> crate::sources::build::RateBudget {
        // Host reports and daily usage are both Heavy.
        crate::sources::zoom::pacing::rate_budget(
            self.limits.resolve(self.plan),
            &[crate::sources::zoom::pacing::Category::Heavy],
        )
    }

    fn section(&self) -> &'static str {
        "zoom"
    }

    fn chosen_streams(&self) -> Option<&[String]> {
        self.streams.as_deref()
    }

    fn covered_stream(&self) -> &'static str {
        host_reports::STREAM
    }

    fn other_covered_streams(&self) -> &'static [&'static str] {
        &[daily_usage::STREAM]
    }

    /// A Server-to-Server token is minted by the OAuth endpoint alone: getting one proves all three keys
    /// without spending a report request.
    fn verify<'a>(&'a self, index: usize, http: &'a HttpClient, retry: RetryPolicy) -> Verdict<'a> {
        Box::pin(async move {
            let client = client(index, self, http, retry);
            credentials_verdict(client.verify_credentials().await)
        })
    }

    fn build(&self, index: usize, cx: &BuildContext<'_>) -> Vec<BuiltSource> {
        let client = client(index, self, cx.http, cx.retry);
        let months = MonthWindows::for_run(cx, self.settle_days, self.horizon_days);
        let daily = DailyUsage {
            client: client.clone(),
            report: daily_usage::Report::Meetings,
            account: self.name.clone(),
            months: months.clone(),
        };
        let reports = HostReports {
            client,
            account: self.name.clone(),
            page_size: self.page_size,
            months,
        };
        let built = vec![
            BuiltSource::new(Arc::new(daily)),
            BuiltSource::new(Arc::new(reports)),
        ];
        crate::sources::build::chosen(self, built)
    }

    fn backfill_streams(&self) -> &'static [&'static str] {
        &[host_reports::STREAM, daily_usage::STREAM]
    }

    fn backfill_refusal(&self, from: NaiveDate, now: DateTime<Utc>) -> Option<String> {
        months::horizon_refusal("zoom account", &self.name, self.horizon_days, from, now)
    }
}
