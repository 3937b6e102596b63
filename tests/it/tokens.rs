//! Bearer tokens under real-world clocks and revocations: a Video SDK JWT signed on a host whose clock runs
//! ahead of Zoom's, and an OAuth token revoked while many windows share it.

use crate::common::*;
use rollcall_sandbox::{Endpoint, SandboxConfig};

/// Zoom refuses a JWT issued in its future; rollcall backdates `iat` by 30 s, so a host clock 20 s ahead
/// of Zoom's still collects everything.
#[tokio::test(flavor = "multi_thread")]
async fn a_host_clock_20_seconds_ahead_of_zooms_still_collects_the_video_sdk() {
    let specs = vec![sdk_account("studio", 6)];
    let sandbox = rollcall_sandbox::spawn(SandboxConfig {
        listen: "127.0.0.1:0".into(),
        seed: 7,
        videosdk: specs.clone(),
        token_clock_offset_secs: -20,
        ..sandbox_defaults()
    })
    .await
    .expect("sandbox");
    let app = TestApp::new(sandbox).await.videosdk(&specs, 300);
    let control = app.control();
    let report = app.collect_all().await;
    assert!(report.all_complete(), "{report:?}");
    let refused = control
        .requests()
        .iter()
        .filter(|r| r.status == 401)
        .count();
    assert_eq!(refused, 0, "no JWT is refused for its iat");
    let (sessions, users) = assert_sdk_mirror(app.pool(), &control, &specs[0]).await;
    assert!(sessions > 0 && users > 0);
}

/// The sandbox's own clock check is real: a JWT issued a minute in its future is refused, so the test
/// above would fail with a JWT whose `iat` is the host's now.
#[tokio::test(flavor = "multi_thread")]
async fn a_clock_far_ahead_of_zooms_is_refused_as_zoom_refuses_it() {
    let specs = vec![sdk_account("studio", 2)];
    let sandbox = rollcall_sandbox::spawn(SandboxConfig {
        listen: "127.0.0.1:0".into(),
        seed: 7,
        videosdk: specs.clone(),
        token_clock_offset_secs: -60,
        ..sandbox_defaults()
    })
    .await
    .expect("sandbox");
    let app = TestApp::new(sandbox).await.videosdk(&specs, 300);
    let report = app.collect_all().await;
    assert!(
        !report.all_complete(),
        "a JWT from Zoom's future is refused"
    );
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM rollcall.zoom_sdk_sessions")
        .fetch_one(app.pool())
        .await
        .expect("count");
    assert_eq!(stored, 0);
}

/// Zoom revokes a token after a few uses while 16 windows walk on it: each refusal of a token that had
/// worked is a revocation, not wrong credentials, so the run mints again and ends complete and exact.
#[tokio::test(flavor = "multi_thread")]
async fn a_token_revoked_while_16_windows_share_it_is_minted_again_and_the_run_completes() {
    let zoom = vec![zoom_account("acme", 400)];
    let mut app = TestApp::new(sandbox(zoom.clone()).await)
        .await
        .zoom(&zoom, 30);
    app.config.collector.windows_in_flight = 16;
    let control = app.control();
    control.revoke_access_tokens_after(5);
    let report = app.collect_all().await;
    assert!(report.all_complete(), "{report:?}");
    let requests = control.requests();
    let refused = requests.iter().filter(|r| r.status == 401).count();
    assert!(
        refused > 0,
        "tokens were really revoked mid-run (else the test proves nothing)"
    );
    let mints = control.token_mints(&zoom[0].account_id);
    assert!(mints > 1, "new tokens were minted: {mints}");
    assert_mirror(app.pool(), &control, &zoom[0]).await;
    assert!(requests
        .iter()
        .filter(|r| r.endpoint == Endpoint::ReportUsers)
        .all(|r| r.status == 200 || r.status == 401));
}
