//! `upstash-rotator run`: the operator process.

use std::{process::ExitCode, time::Duration};

use clap::Args;

use super::{exit, telemetry};
use crate::controller::{self, Settings, StartError};

#[derive(Args)]
pub struct RunArgs {
    /// Base URL of the Upstash Developer API. Deliberately not settable from a
    /// resource: only whoever runs the operator chooses where API keys go.
    /// Checked after parsing, so a rejected value is never echoed (it may
    /// hold credentials).
    #[arg(long, env = "UPSTASH_API_URL", default_value = "https://api.upstash.com", hide_env_values = true)]
    upstash_api_url: String,
    /// Namespace to watch (repeatable, or comma-separated); all when absent.
    #[arg(long = "namespace", env = "WATCH_NAMESPACES", value_delimiter = ',')]
    namespaces: Vec<String>,
    /// Upper bound of one Upstash API request, in seconds.
    #[arg(long, env = "UPSTASH_REQUEST_TIMEOUT", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=300))]
    request_timeout: u64,
    /// Resources reconciled at the same time.
    #[arg(long, env = "CONCURRENCY", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    concurrency: u16,
    /// Log line format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = telemetry::LogFormat::Text)]
    log_format: telemetry::LogFormat,
}

fn parse_base_url(value: &str) -> Result<String, String> {
    let url = reqwest::Url::parse(value).map_err(|e| format!("not a URL ({e})"))?;
    if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none() {
        return Err("expected an http(s) URL such as https://api.upstash.com".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials; they come from each resource's Secret".into());
    }
    Ok(value.trim_end_matches('/').to_owned())
}

pub async fn run(args: RunArgs) -> ExitCode {
    let RunArgs { upstash_api_url, namespaces, request_timeout, concurrency, log_format } = args;
    let upstash_api_url = match parse_base_url(&upstash_api_url) {
        Ok(url) => url,
        Err(e) => {
            eprintln!("upstash-rotator: invalid --upstash-api-url: {e}");
            return ExitCode::from(exit::USAGE);
        }
    };
    telemetry::init(log_format);
    let client = match kube::Client::try_default().await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("cannot configure the Kubernetes client: {e}");
            return ExitCode::from(exit::CLUSTER);
        }
    };
    let settings = Settings {
        upstash_api_url,
        namespaces: namespaces.into_iter().filter(|n| !n.trim().is_empty()).collect(),
        request_timeout: Duration::from_secs(request_timeout),
        concurrency,
        reporter: "upstash-rotator".into(),
    };
    tracing::info!(
        upstash_api_url = %settings.upstash_api_url,
        namespaces = ?settings.namespaces,
        "starting upstash-rotator {}",
        env!("CARGO_PKG_VERSION")
    );
    match controller::run(client, settings, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e @ StartError::Config(_)) => {
            tracing::error!("{e}");
            ExitCode::from(exit::USAGE)
        }
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::from(exit::CLUSTER)
        }
    }
}

/// Resolves on the first SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => std::future::pending().await,
    }
    tracing::info!("shutdown requested; finishing reconciles in progress");
}
