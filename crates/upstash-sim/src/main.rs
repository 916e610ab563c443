//! `upstash-sim`: runs the Upstash Developer API simulator on loopback.

use std::{net::SocketAddr, path::PathBuf, process::ExitCode, sync::Arc};

use clap::Parser;
use upstash_sim::{self as sim, Access, Account, SimConfig};

/// A local simulator of Upstash's Developer API (management routes under /v2,
/// REST data plane, fault injection under /_sim), over HTTP or HTTPS. For
/// tests and local development; never expose it beyond this machine.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Address to listen on; port 0 picks a free one. The bound address is
    /// printed on the first line of standard output. Must be a loopback
    /// address unless --allow-remote is given.
    #[arg(long, default_value = "127.0.0.1:8910")]
    listen: SocketAddr,
    /// Allows a --listen address outside loopback. Its control API (/_sim,
    /// fault injection) has no authentication, even with TLS.
    #[arg(long)]
    allow_remote: bool,
    /// PEM certificate chain (leaf first) to serve HTTPS with; needs
    /// --tls-key. Every route (/v2, the data plane, /_sim) is then HTTPS only.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Host name or IP address clients reach the simulator at. Each database
    /// reports `rest_url: https://HOST:PORT` (http:// without TLS), PORT being
    /// the port listened on. Default: the --listen IP (required when that is
    /// 0.0.0.0 or [::]). The TLS certificate must name it.
    #[arg(long)]
    advertise_host: Option<String>,
    /// An account with a read/write API key, as EMAIL:API_KEY (repeatable).
    #[arg(long = "account", env = "UPSTASH_SIM_ACCOUNTS", value_delimiter = ',', hide_env_values = true)]
    accounts: Vec<String>,
    /// An account with a read-only API key, as EMAIL:API_KEY (repeatable).
    #[arg(
        long = "readonly-account",
        env = "UPSTASH_SIM_READONLY_ACCOUNTS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    readonly_accounts: Vec<String>,
    /// A real redis-server (HOST:PORT) whose `default` password tracks one
    /// database's password (repeatable: one server per database). The
    /// database reports HOST and PORT as its endpoint and port, so give the
    /// address its clients reach it at.
    #[arg(long = "redis")]
    redis: Vec<String>,
    /// Keeps databases across restarts in this file (written with mode 0600).
    #[arg(long)]
    state_file: Option<PathBuf>,
}

/// Refuses a listen address outside loopback unless --allow-remote is given.
fn check_listen(args: &Args) -> Result<(), String> {
    if args.allow_remote || args.listen.ip().to_canonical().is_loopback() {
        return Ok(());
    }
    Err(format!(
        "--listen {}: not a loopback address. The simulator's control API (/_sim: fault injection, request \
         log) has no authentication, with or without --tls-cert, and without it API keys and passwords \
         cross the network in clear; listen on 127.0.0.1 or [::1], or pass --allow-remote to listen there \
         anyway",
        args.listen
    ))
}

/// The TLS configuration, when --tls-cert and --tls-key are given.
fn tls(args: &Args) -> Result<Option<Arc<rustls::ServerConfig>>, String> {
    match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => sim::server_config(cert, key).map(Some).map_err(|e| e.to_string()),
        _ => Ok(None),
    }
}

/// A redis-server on loopback cannot be reached from elsewhere, yet its
/// address is what databases report: say so when clients come from elsewhere.
fn warn_unreachable_redis(args: &Args, host: &str) {
    let loopback = |h: &str| {
        h == "localhost"
            || h.trim_matches(|c| c == '[' || c == ']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    };
    if loopback(host) {
        return;
    }
    for address in &args.redis {
        if address.rsplit_once(':').is_some_and(|(h, _)| loopback(h)) {
            tracing::warn!(
                "--redis {address} is a loopback address, which databases report as their endpoint: clients at \
                 {host} cannot reach it; give the redis-server's address on their network instead"
            );
        }
    }
}

fn accounts(args: &Args) -> Result<Vec<Account>, String> {
    let rw = args
        .accounts
        .iter()
        .map(|a| Account::parse(a, Access::ReadWrite).map_err(|e| format!("--account: {e}")));
    let ro = args
        .readonly_accounts
        .iter()
        .map(|a| Account::parse(a, Access::ReadOnly).map_err(|e| format!("--readonly-account: {e}")));
    let all = rw.chain(ro).collect::<Result<Vec<_>, _>>()?;
    if all.is_empty() {
        return Err("at least one --account or --readonly-account is required".into());
    }
    Ok(all)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();

    let usage = |e: String| {
        eprintln!("upstash-sim: {e}");
        ExitCode::from(2)
    };
    if let Err(e) = check_listen(&args) {
        return usage(e);
    }
    let accounts = match accounts(&args) {
        Ok(a) => a,
        Err(e) => return usage(e),
    };
    let tls = match tls(&args) {
        Ok(t) => t,
        Err(e) => return usage(e),
    };
    let host = match sim::advertised_host(args.advertise_host.as_deref(), args.listen) {
        Ok(h) => h,
        Err(e) => return usage(e),
    };
    warn_unreachable_redis(&args, &host);
    // Bound first: the advertised URL carries the port actually bound.
    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("upstash-sim: cannot listen on {}: {e}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    let bound = match listener.local_addr() {
        Ok(addr) => addr,
        Err(e) => {
            eprintln!("upstash-sim: {e}");
            return ExitCode::FAILURE;
        }
    };
    let rest_url = sim::rest_url(tls.is_some(), &host, bound.port());
    let config = SimConfig {
        accounts,
        redis: args.redis.clone(),
        state_file: args.state_file.clone(),
        rest_url: Some(rest_url.clone()),
    };
    let state = match sim::prepare(config).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("upstash-sim: {e}");
            return ExitCode::FAILURE;
        }
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!("upstash-sim listening on {scheme}://{bound}");
    tracing::info!("databases report rest_url {rest_url}");
    sim::serve(listener, state, tls, terminated()).await;
    tracing::info!("upstash-sim stopped");
    ExitCode::SUCCESS
}

/// Resolves on SIGTERM or Ctrl-C (never, if SIGTERM cannot be watched).
async fn terminated() {
    let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
