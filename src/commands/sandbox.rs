//! `rollcall sandbox`: the fake Zoom and Rocket.Chat APIs as a server of their own (docker compose's
//! sandbox profile, manual trials against a running daemon).

use anyhow::Context;
use std::path::PathBuf;
use tokio_util::sync::CancellationToken;

pub async fn serve(
    path: PathBuf,
    listen: Option<String>,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let mut config = rollcall_sandbox::SandboxConfig::from_toml_file(&path)
        .with_context(|| format!("reading the sandbox config {}", path.display()))?;
    if let Some(listen) = listen {
        config.listen = listen;
    }
    let sandbox = rollcall_sandbox::spawn(config).await?;
    println!("sandbox listening on {}", sandbox.base_url());
    println!("  Zoom API:   {}", sandbox.zoom_api_url());
    println!("  Zoom OAuth: {}", sandbox.zoom_oauth_url());
    tokio::select! {
        result = sandbox.wait() => result,
        _ = cancel.cancelled() => Ok(()),
    }
}
