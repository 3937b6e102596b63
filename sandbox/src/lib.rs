//! rollcall-sandbox: a fake of the APIs rollcall collects from (Zoom's S2S
//! OAuth and `GET /v2/report/users` so far), serving a seeded deterministic
//! data set so tests, benchmarks and the demo run without credentials.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use rollcall_sandbox::{spawn, SandboxConfig, ZoomAccountSpec};
//! let sandbox = spawn(SandboxConfig {
//!     listen: "127.0.0.1:0".into(),
//!     zoom: vec![ZoomAccountSpec {
//!         account_id: "acme-account".into(),
//!         client_id: "acme-client".into(),
//!         client_secret: "acme-secret".into(),
//!         users: 2500,
//!         active_percent: 40,
//!         rate_limits: None,
//!     }],
//!     ..SandboxConfig::default()
//! })
//! .await?;
//! println!("{}", sandbox.zoom_api_url());
//! sandbox.shutdown().await;
//! # Ok(()) }
//! ```

mod api;
mod config;
mod control;
mod data;
mod faults;
mod limits;
mod page_token;
mod reply;
mod requests;
mod rocketchat;
mod server;
mod videosdk;
mod zoom;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{NaiveDate, Utc};
use serde_json::json;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use config::{SandboxConfig, ZoomAccountSpec, MAX_USERS};
pub use control::Control;
pub use faults::{FaultKind, FaultRule};
pub use limits::{ZoomPlan, ZoomRateLimits};
pub use requests::{Endpoint, RequestRecord};
pub use rocketchat::{RocketChatWorkspaceSpec, MAX_RC_USERS};
pub use videosdk::VideoSdkAccountSpec;
pub use zoom::{ReportTruth, ReportType};

/// State shared by every handler and `Control`.
pub(crate) struct Shared {
    pub base_url: String,
    pub today: Option<NaiveDate>,
    pub calendar_shift: chrono::TimeDelta,
    pub token_clock_offset_secs: i64,
    pub reply_latency: std::time::Duration,
    pub log: requests::RequestLog,
    pub faults: faults::FaultSet,
    pub limits: limits::RateLimiters,
    pub shutdown: CancellationToken,
    pub zoom: zoom::ZoomState,
    pub rocketchat: rocketchat::RcState,
    pub videosdk: videosdk::SdkState,
}

impl Shared {
    /// "Today" is the UTC date for Zoom (DESIGN §3), never the host's zone.
    pub fn today(&self) -> NaiveDate {
        self.today.unwrap_or_else(|| self.now().date_naive())
    }

    /// The sandbox's clock for token times, in seconds since the epoch.
    pub fn token_clock(&self) -> i64 {
        Utc::now()
            .timestamp()
            .saturating_add(self.token_clock_offset_secs)
    }

    /// Now on the sandbox's calendar (the clock, moved by `calendar_shift_days`).
    pub fn now(&self) -> chrono::DateTime<Utc> {
        let now = Utc::now();
        now.checked_add_signed(self.calendar_shift).unwrap_or(now)
    }
}

/// A poisoned lock only means another request panicked mid-update; the data
/// guarded here stays usable, and a sandbox must keep serving.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A running sandbox. Dropping it stops the server (without waiting).
pub struct Sandbox {
    base_url: String,
    control: Control,
    shutdown: CancellationToken,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

/// Binds `config.listen` and serves in a tokio task.
pub async fn spawn(config: SandboxConfig) -> anyhow::Result<Sandbox> {
    config.validate()?;
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .map_err(|err| anyhow::anyhow!("sandbox: cannot listen on {}: {err}", config.listen))?;
    let base_url = base_url(listener.local_addr()?);
    let shutdown = CancellationToken::new();
    let state = Arc::new(Shared {
        base_url: base_url.clone(),
        today: config.today,
        calendar_shift: chrono::TimeDelta::try_days(config.calendar_shift_days).unwrap_or_default(),
        token_clock_offset_secs: config.token_clock_offset_secs,
        reply_latency: std::time::Duration::from_millis(config.reply_latency_ms),
        log: requests::RequestLog::default(),
        faults: faults::FaultSet::new(config.seed),
        limits: limits::RateLimiters::new(&config.zoom, &config.videosdk),
        shutdown: shutdown.clone(),
        zoom: zoom::ZoomState::new(
            config.seed,
            &config.zoom,
            config.access_token_ttl_secs,
            config.page_token_ttl_secs,
        ),
        rocketchat: rocketchat::RcState::new(config.seed, &config.rocketchat),
        videosdk: videosdk::SdkState::new(config.seed, &config.videosdk),
    });
    let router = router(state.clone());
    let task = tokio::spawn(server::serve(listener, router, shutdown.clone()));
    Ok(Sandbox {
        base_url,
        control: Control { state },
        shutdown,
        task: Some(task),
    })
}

/// Clients need an address they can connect to, not the wildcard bound to.
fn base_url(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => std::net::Ipv4Addr::LOCALHOST.into(),
        ip if ip.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, addr.port()))
}

fn router(state: Arc<Shared>) -> Router {
    Router::new()
        .route("/oauth/token", post(zoom::oauth::token))
        .route("/v2/report/users", get(zoom::reports::report_users))
        .route("/v2/report/daily", get(zoom::daily::report_daily))
        .merge(rocketchat::routes())
        .merge(videosdk::routes())
        .nest("/_sandbox", control::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

async fn not_found(method: Method, uri: Uri) -> Response {
    tracing::debug!(%method, %uri, "no such route");
    (
        StatusCode::NOT_FOUND,
        Json(json!({ "code": 404, "message": format!("No such route: {method} {}", uri.path()) })),
    )
        .into_response()
}

async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        Json(json!({ "code": 405, "message": format!("Method {method} not allowed on {}", uri.path()) })),
    )
        .into_response()
}

impl Sandbox {
    /// `http://127.0.0.1:PORT`
    pub fn base_url(&self) -> String {
        self.base_url.clone()
    }

    /// The Zoom REST base, as configured in rollcall's `api_url`.
    pub fn zoom_api_url(&self) -> String {
        format!("{}/v2", self.base_url)
    }

    /// A Rocket.Chat workspace's base URL, as configured in rollcall's `rocketchat[i].url`.
    pub fn rocketchat_url(&self, workspace: &str) -> String {
        format!("{}/rocketchat/{workspace}", self.base_url)
    }

    /// The Zoom OAuth endpoint, as configured in rollcall's `oauth_url`.
    pub fn zoom_oauth_url(&self) -> String {
        format!("{}/oauth/token", self.base_url)
    }

    pub fn control(&self) -> Control {
        self.control.clone()
    }

    /// Stops accepting, lets in-flight requests finish (hung ones are cut) and waits.
    pub async fn shutdown(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => tracing::warn!(%err, "sandbox server failed"),
                Err(err) => tracing::warn!(%err, "sandbox server task failed"),
            }
        }
    }

    /// Serves until SIGINT or SIGTERM, then shuts down gracefully (for the binary).
    pub async fn wait(mut self) -> anyhow::Result<()> {
        let Some(mut task) = self.task.take() else {
            return Ok(());
        };
        tokio::select! {
            result = &mut task => return result?,
            () = shutdown_signal() => {
                tracing::info!("shutting down the sandbox");
            }
        }
        self.shutdown.cancel();
        task.await?
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::warn!(%err, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(err) => {
                tracing::warn!(%err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
