//! `upstash-rotator run`: the operator process (HTTP endpoints, optional
//! leader election, controllers, bounded graceful shutdown).

use std::{net::SocketAddr, num::NonZeroU32, path::PathBuf, process::ExitCode, time::Duration};

use clap::Args;
use tokio::sync::watch;

use super::{exit, telemetry};
use crate::{
    controller::{self, Runtime, Settings, StartError},
    http,
    leader::Election,
    reconcile::drift::DriftSettings,
    trust,
};

#[derive(Args)]
pub struct RunArgs {
    /// Base URL of the Upstash Developer API. Deliberately not settable from a
    /// resource: only whoever runs the operator chooses where API keys go.
    /// Checked after parsing, so a rejected value is never echoed (it may
    /// hold credentials).
    #[arg(long, env = "UPSTASH_API_URL", default_value = "https://api.upstash.com", hide_env_values = true)]
    upstash_api_url: String,
    /// Accept an `http://` API URL. Only for `upstash-sim` on this machine:
    /// over plain HTTP the API key and every new password travel in clear.
    #[arg(long, env = "ALLOW_INSECURE_UPSTASH_URL")]
    allow_insecure_upstash_url: bool,
    /// PEM file of CA certificates (one or more) trusted for the Upstash API
    /// in addition to the system's store (/etc/ssl/certs, or SSL_CERT_FILE /
    /// SSL_CERT_DIR when set): a TLS-inspecting proxy's CA, or upstash-sim's.
    #[arg(long, env = "UPSTASH_CA_FILE")]
    ca_file: Option<PathBuf>,
    /// Namespace to watch (repeatable, or comma-separated); all when absent.
    #[arg(long = "namespace", env = "WATCH_NAMESPACES", value_delimiter = ',')]
    namespaces: Vec<String>,
    /// Upper bound of one Upstash API request, in seconds.
    #[arg(long, env = "UPSTASH_REQUEST_TIMEOUT", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=300))]
    request_timeout: u64,
    /// Resources reconciled at the same time.
    #[arg(long, env = "CONCURRENCY", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    concurrency: u16,
    /// Address of /healthz, /readyz and /metrics.
    #[arg(long, env = "HTTP_BIND_ADDRESS", default_value = "0.0.0.0:8080")]
    http_bind_address: SocketAddr,
    /// Elect a leader among replicas on a Lease; only the leader reconciles.
    #[arg(long, env = "LEADER_ELECT")]
    leader_elect: bool,
    /// Namespace of the Lease (the operator's own namespace).
    #[arg(long, env = "POD_NAMESPACE", required_if_eq("leader_elect", "true"))]
    lease_namespace: Option<String>,
    /// Name of the Lease.
    #[arg(long, env = "LEASE_NAME", default_value = "upstash-rotator")]
    lease_name: String,
    /// Seconds a lease stays valid without renewal: the longest a handover takes.
    #[arg(long, env = "LEASE_DURATION", default_value_t = 15, value_parser = clap::value_parser!(u64).range(3..=300))]
    lease_duration: u64,
    /// Identity of this replica in the election; defaults to the host name.
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Seconds reconciles in progress may take to finish after SIGTERM; keep it
    /// below the pod's terminationGracePeriodSeconds.
    #[arg(long, env = "SHUTDOWN_TIMEOUT", default_value_t = 40, value_parser = clap::value_parser!(u64).range(1..=600))]
    shutdown_timeout: u64,
    /// Reconcile and report what would be done, as events (reason DryRun)
    /// and log lines, without resetting any password or writing any Secret
    /// or status. Takes no part in leader election, so it can run beside the
    /// real operator.
    #[arg(long, env = "DRY_RUN")]
    dry_run: bool,
    /// Namespace holding the Secrets of `ClusterUpstashAccount`s (the
    /// operator's own, where application teams cannot write). Without it,
    /// cluster accounts are turned off.
    #[arg(long, env = "CLUSTER_RESOURCE_NAMESPACE")]
    cluster_resource_namespace: Option<String>,
    /// Seconds after which a resource at rest is compared with Upstash again
    /// (finds a password reset in the Upstash console); 0, the default,
    /// never: at rest, resources then cost no Upstash call at all.
    #[arg(long, env = "DRIFT_CHECK_INTERVAL", default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=31_536_000))]
    drift_check_interval: u64,
    /// Drift checks per minute on one Upstash account, shared by all the
    /// resources using it.
    #[arg(long, env = "DRIFT_CHECK_RATE", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=6000))]
    drift_check_rate: u32,
    /// Log line format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = telemetry::LogFormat::Text)]
    log_format: telemetry::LogFormat,
}

/// Why `--upstash-api-url` is refused.
#[derive(Debug, thiserror::Error)]
enum InvalidUrl {
    #[error("not a URL ({0})")]
    Unparsable(String),
    #[error("expected an https URL such as https://api.upstash.com")]
    NotHttps,
    #[error(
        "http:// would send the API key and new passwords in clear; use https, or pass \
         --allow-insecure-upstash-url for upstash-sim on this machine"
    )]
    Insecure,
    #[error("must not carry credentials; they come from each resource's Secret")]
    CarriesCredentials,
}

fn parse_base_url(value: &str, allow_insecure: bool) -> Result<String, InvalidUrl> {
    let url = reqwest::Url::parse(value).map_err(|e| InvalidUrl::Unparsable(e.to_string()))?;
    if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none() {
        return Err(InvalidUrl::NotHttps);
    }
    if url.scheme() == "http" && !allow_insecure {
        return Err(InvalidUrl::Insecure);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(InvalidUrl::CarriesCredentials);
    }
    Ok(value.trim_end_matches('/').to_owned())
}

pub async fn run(args: RunArgs) -> ExitCode {
    let RunArgs {
        upstash_api_url,
        allow_insecure_upstash_url,
        ca_file,
        namespaces,
        request_timeout,
        concurrency,
        http_bind_address,
        leader_elect,
        lease_namespace,
        lease_name,
        lease_duration,
        identity,
        shutdown_timeout,
        dry_run,
        cluster_resource_namespace,
        drift_check_interval,
        drift_check_rate,
        log_format,
    } = args;
    let upstash_api_url = match parse_base_url(&upstash_api_url, allow_insecure_upstash_url) {
        Ok(url) => url,
        Err(e) => {
            eprintln!("upstash-rotator: invalid --upstash-api-url: {e}");
            return ExitCode::from(exit::USAGE);
        }
    };
    let extra_roots = match ca_file.as_deref().map(trust::load_ca_file).transpose() {
        Ok(roots) => roots.unwrap_or_default(),
        Err(e) => {
            eprintln!("upstash-rotator: {e}");
            return ExitCode::from(exit::USAGE);
        }
    };
    if shutdown_timeout < request_timeout {
        eprintln!(
            "upstash-rotator: --shutdown-timeout ({shutdown_timeout}s) must be at least --request-timeout \
             ({request_timeout}s), so that SIGTERM never cuts a password reset short"
        );
        return ExitCode::from(exit::USAGE);
    }
    telemetry::init(log_format);

    let runtime = Runtime::default();
    let client = match crate::client::counted(runtime.metrics.clone()).await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("cannot configure the Kubernetes client: {e}");
            return ExitCode::from(exit::CLUSTER);
        }
    };
    let identity = identity.unwrap_or_else(default_identity);
    if let Some(path) = &ca_file {
        tracing::info!(ca_file = %path.display(), certificates = extra_roots.len(), "trusting extra CA certificates");
    }
    let settings = Settings {
        upstash_api_url,
        extra_roots,
        namespaces: namespaces.into_iter().filter(|n| !n.trim().is_empty()).collect(),
        request_timeout: Duration::from_secs(request_timeout),
        concurrency,
        reporter: "upstash-rotator".into(),
        identity: identity.clone(),
        shutdown_timeout: Duration::from_secs(shutdown_timeout),
        dry_run,
        cluster_namespace: cluster_resource_namespace.filter(|n| !n.trim().is_empty()),
        drift_check: (drift_check_interval > 0).then(|| DriftSettings {
            interval: Duration::from_secs(drift_check_interval),
            per_account_per_minute: NonZeroU32::new(drift_check_rate).unwrap_or(NonZeroU32::MIN),
        }),
    };

    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    };

    let listener = match tokio::net::TcpListener::bind(http_bind_address).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("cannot listen on {http_bind_address}: {e}");
            return ExitCode::from(exit::USAGE);
        }
    };
    tracing::info!(address = %listener.local_addr().map_or(http_bind_address, |a| a), "serving /healthz, /readyz, /metrics");
    let server =
        tokio::spawn(http::serve(listener, runtime.metrics.clone(), runtime.readiness.clone(), stopped()));

    tracing::info!(
        upstash_api_url = %settings.upstash_api_url,
        namespaces = ?settings.namespaces,
        leader_elect,
        "starting upstash-rotator {}",
        env!("CARGO_PKG_VERSION")
    );
    if dry_run {
        tracing::info!(
            "dry run: reporting what would be done; no password is reset, no Secret or status written"
        );
    }
    let code = if leader_elect && !dry_run {
        let election = Election {
            namespace: lease_namespace.unwrap_or_default(),
            lease_name,
            identity,
            lease_duration: Duration::from_secs(lease_duration),
        };
        run_elected(client, settings, runtime, election, stopped).await
    } else {
        outcome(controller::run(client, settings, runtime, stopped()).await)
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), server).await;
    code
}

/// Waits for leadership (ready as a standby meanwhile), reconciles while
/// leading, and exits when leadership is lost so the pod restarts clean.
async fn run_elected<F, Fut>(
    client: kube::Client,
    settings: Settings,
    runtime: Runtime,
    election: Election,
    stopped: F,
) -> ExitCode
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let mut runtime = runtime;
    let mut leadership = match election.start(client.clone()).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("cannot start leader election: {e}");
            return ExitCode::from(exit::CLUSTER);
        }
    };
    runtime.readiness.set(true);
    tracing::info!(identity = %election.identity, lease = %election.lease_name, "waiting to lead");
    tokio::select! {
        leads = leadership.acquired() => if !leads {
            tracing::error!("leader election stopped");
            return ExitCode::from(exit::CLUSTER);
        },
        () = stopped() => {
            leadership.release().await;
            return ExitCode::SUCCESS;
        }
    }
    tracing::info!(identity = %election.identity, "leading: starting controllers");
    runtime.readiness.set(false);
    runtime.fence = leadership.fence();

    let controllers = controller::run(client, settings, runtime, stopped());
    tokio::pin!(controllers);
    let result = tokio::select! {
        r = &mut controllers => r,
        () = leadership.lost() => {
            // Another replica may lead already: stop at once, mid-reconcile if
            // need be. The fence already refuses every reset and write, and a
            // reset this replica sent is found by the new leader's check of
            // the recorded intent.
            tracing::error!("lost leadership; stopping now");
            return ExitCode::FAILURE;
        }
    };
    leadership.release().await;
    outcome(result)
}

fn outcome(result: Result<(), StartError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e @ StartError::HttpClient(_)) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::from(exit::CLUSTER)
        }
    }
}

fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    format!("{}-{}", host.trim(), &uuid::Uuid::new_v4().simple().to_string()[..8])
}

/// Resolves on the first SIGTERM or SIGINT.
async fn shutdown_signal() {
    crate::signal::terminated().await;
    tracing::info!("shutdown requested; finishing reconciles in progress");
}
