//! `rollcall-sandbox --config FILE`: serve the fake APIs until SIGINT/SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;

use rollcall_sandbox::{spawn, SandboxConfig};

const USAGE: &str = "usage: rollcall-sandbox [--config FILE]   (default config/sandbox.toml)\n\
                     Log level: RUST_LOG (e.g. RUST_LOG=rollcall_sandbox=debug).";

fn config_path() -> Result<Option<PathBuf>, String> {
    let mut args = std::env::args().skip(1);
    let mut path = PathBuf::from("config/sandbox.toml");
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--config" | "-c" => {
                path = args.next().ok_or("--config needs a file")?.into();
            }
            other => match other.strip_prefix("--config=") {
                Some(p) => path = p.into(),
                None => return Err(format!("unexpected argument {other:?}")),
            },
        }
    }
    Ok(Some(path))
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let path = match config_path() {
        Ok(Some(path)) => path,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(err) => {
            eprintln!("rollcall-sandbox: {err}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let config = match SandboxConfig::from_toml_file(&path) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("rollcall-sandbox: {err:#}");
            return ExitCode::from(2);
        }
    };
    let sandbox = match spawn(config).await {
        Ok(sandbox) => sandbox,
        Err(err) => {
            eprintln!("rollcall-sandbox: {err:#}");
            return ExitCode::FAILURE;
        }
    };
    println!("sandbox listening on {}", sandbox.base_url());
    match sandbox.wait().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("rollcall-sandbox: {err:#}");
            ExitCode::FAILURE
        }
    }
}
