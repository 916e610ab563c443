//! `upstash-sim`: a local stand-in for Upstash's Developer API and REST data
//! plane, with fault injection (specified in docs/upstash-api.md §16).

mod accounts;
mod advertise;
mod command_policy;
mod control;
mod data_plane;
mod database;
mod error;
mod faults;
mod management;
mod redis_backend;
mod request_log;
mod rest_value;
mod server;
mod state;
mod state_file;
mod tls;

use std::{future::Future, path::PathBuf, sync::Arc};

use axum::{Router, middleware};
use tokio::net::TcpListener;

pub use accounts::{Access, Account, InvalidAccount};
pub use advertise::{advertised_host, rest_url};
pub use state::{SimState, StartError};
pub use tls::{TlsError, server_config};

/// What a simulator is started with.
#[derive(Debug, Default)]
pub struct SimConfig {
    pub accounts: Vec<Account>,
    /// `host:port` of redis-servers the simulator may put behind databases.
    pub redis: Vec<String>,
    pub state_file: Option<PathBuf>,
    /// Base URL of the data plane as clients reach it, reported as each
    /// database's `rest_url` (none: the field is left out).
    pub rest_url: Option<String>,
}

/// Every route of the simulator.
pub fn router(state: Arc<SimState>) -> Router {
    let api = management::routes()
        .merge(data_plane::routes())
        .layer(middleware::from_fn_with_state(state.clone(), server::observe));
    control::routes().merge(api).with_state(state)
}

/// Prepares the state (loading the state file, connecting redis-servers).
pub async fn prepare(config: SimConfig) -> Result<Arc<SimState>, StartError> {
    SimState::new(config.accounts, &config.redis, config.state_file, config.rest_url).await.map(Arc::new)
}

/// Serves the simulator on `listener` until `shutdown` completes, over
/// HTTPS when `tls` is given.
pub async fn serve(
    listener: TcpListener,
    state: Arc<SimState>,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()>,
) {
    let tls = tls.map(tokio_rustls::TlsAcceptor::from);
    server::serve(listener, router(state.clone()), tls, state, shutdown).await;
}
