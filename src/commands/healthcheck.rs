//! `rollcall healthcheck`: asks a running `rollcall run` for `/healthz`, for container health checks.
//!
//! The runtime image has no curl, and Debian's /bin/sh has no /dev/tcp, so the binary checks itself. It
//! needs only `http.listen`: no database, no API.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// Short enough for Docker's default 30 s timeout, long enough for `/healthz`'s own 3 s database ping.
const TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    #[error("{url}: {message}")]
    Unreachable { url: String, message: String },
    #[error("{url} answered HTTP {status}: {body}")]
    Unhealthy {
        url: String,
        status: u16,
        body: String,
    },
}

/// The `/healthz` URL of a daemon listening on `listen`; a wildcard address is reached over loopback.
pub fn url_for(listen: SocketAddr) -> String {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}/healthz", SocketAddr::new(ip, listen.port()))
}

/// Ok with the status line when the daemon answers 200.
pub async fn run(url: &str) -> Result<String, HealthError> {
    let unreachable = |message: String| HealthError::Unreachable {
        url: url.to_string(),
        message,
    };
    let client = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .connect_timeout(TIMEOUT)
        .no_proxy()
        .build()
        .map_err(|e| unreachable(e.to_string()))?;
    let response = client.get(url).send().await.map_err(|e| {
        unreachable(if e.is_timeout() {
            format!("no answer within {} s", TIMEOUT.as_secs())
        } else if e.is_connect() {
            "nothing accepts connections there (is `rollcall run` running?)".to_string()
        } else {
            e.to_string()
        })
    })?;
    let status = response.status().as_u16();
    // The body is a short reason ("database not answering"); a long one is not ours.
    let body: String = response
        .text()
        .await
        .unwrap_or_default()
        .trim()
        .chars()
        .take(200)
        .collect();
    if status == 200 {
        Ok(format!("{url} answered HTTP 200"))
    } else {
        Err(HealthError::Unhealthy {
            url: url.to_string(),
            status,
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_listen_addresses_are_reached_over_loopback() {
        let url = |s: &str| url_for(s.parse().expect("address"));
        assert_eq!(url("0.0.0.0:9187"), "http://127.0.0.1:9187/healthz");
        assert_eq!(url("[::]:9187"), "http://[::1]:9187/healthz");
        assert_eq!(url("10.1.2.3:80"), "http://10.1.2.3:80/healthz");
        assert_eq!(url("[fd00::1]:9187"), "http://[fd00::1]:9187/healthz");
    }
}
