//! `upstash-sim`: runs the Upstash Developer API simulator on loopback.

use std::{net::SocketAddr, path::PathBuf, process::ExitCode};

use clap::Parser;
use upstash_sim::{self as sim, Access, Account, SimConfig};

/// A local simulator of Upstash's Developer API (management routes under /v2,
/// REST data plane, fault injection under /_sim). For tests and local
/// development; never expose it beyond loopback.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Address to listen on; port 0 picks a free one. The bound address is
    /// printed on the first line of standard output. Must be a loopback
    /// address unless --allow-remote is given.
    #[arg(long, default_value = "127.0.0.1:8910")]
    listen: SocketAddr,
    /// Allows a --listen address outside loopback. The simulator has no TLS
    /// and its control API (/_sim, fault injection) has no authentication.
    #[arg(long)]
    allow_remote: bool,
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
    /// database's password (repeatable: one server per database).
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
        "--listen {}: not a loopback address. The simulator has no TLS and its control API (/_sim) has no \
         authentication; listen on 127.0.0.1 or [::1], or pass --allow-remote to listen there anyway",
        args.listen
    ))
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

    if let Err(e) = check_listen(&args) {
        eprintln!("upstash-sim: {e}");
        return ExitCode::from(2);
    }
    let accounts = match accounts(&args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("upstash-sim: {e}");
            return ExitCode::from(2);
        }
    };
    let config = SimConfig { accounts, redis: args.redis.clone(), state_file: args.state_file.clone() };
    let state = match sim::prepare(config).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("upstash-sim: {e}");
            return ExitCode::FAILURE;
        }
    };
    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("upstash-sim: cannot listen on {}: {e}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    match listener.local_addr() {
        Ok(addr) => println!("upstash-sim listening on http://{addr}"),
        Err(e) => {
            eprintln!("upstash-sim: {e}");
            return ExitCode::FAILURE;
        }
    }
    sim::serve(listener, state, terminated()).await;
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
