//! The simulator's HTTP server: an accept loop (plain or TLS) that can drop a
//! connection mid-request (to lose a response on purpose), shuts down
//! gracefully, and logs one line per request.

use std::{future::Future, sync::Arc, time::Duration};

use axum::{
    Router,
    body::Body,
    extract::{Request, State},
    http::{HeaderName, HeaderValue, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};
use hyper::{body::Incoming, server::conn::http1};
use hyper_util::{rt::TokioIo, service::TowerToHyperService};
use tokio::{net::TcpListener, sync::Notify, task::JoinSet};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;

use super::{
    faults::{FaultAction, route_of},
    request_log::RequestRecord,
    state::SimState,
};

/// Lets a handler close the TCP connection its request arrived on.
#[derive(Clone)]
struct ConnectionKill(Arc<Notify>);

/// How long in-flight connections may take to finish after a shutdown signal.
const DRAIN: Duration = Duration::from_secs(5);

/// How long a client may take to complete a TLS handshake.
const HANDSHAKE: Duration = Duration::from_secs(10);

/// Serves `router` on `listener` until `shutdown` completes; over TLS when
/// `tls` is given (then a failed handshake is recorded, nothing is served).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<TlsAcceptor>,
    state: Arc<SimState>,
    shutdown: impl Future<Output = ()>,
) {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(());
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Typically EMFILE: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let (router, stop, tls, state) = (router.clone(), stop_rx.clone(), tls.clone(), state.clone());
        connections.spawn(async move {
            let Some(acceptor) = tls else {
                return drive(stream, router, stop).await;
            };
            match tokio::time::timeout(HANDSHAKE, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => drive(stream, router, stop).await,
                Ok(Err(e)) => handshake_failed(&state, e.to_string()),
                Err(_) => handshake_failed(&state, format!("no TLS handshake within {HANDSHAKE:?}")),
            }
        });
        // Reap finished connections so the set stays small.
        while connections.try_join_next().is_some() {}
    }
    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(DRAIN, async { while connections.join_next().await.is_some() {} }).await;
}

/// Serves HTTP/1.1 on one connection until it ends, a handler kills it, or
/// a shutdown asks it to finish its request in progress.
async fn drive<I>(io: I, router: Router, mut stop: tokio::sync::watch::Receiver<()>)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let kill = Arc::new(Notify::new());
    let service = router.map_request({
        let kill = ConnectionKill(kill.clone());
        move |mut req: Request<Incoming>| {
            req.extensions_mut().insert(kill.clone());
            req
        }
    });
    let conn = http1::Builder::new().serve_connection(TokioIo::new(io), TowerToHyperService::new(service));
    tokio::pin!(conn);
    let mut stopping = false;
    loop {
        tokio::select! {
            _ = conn.as_mut() => break,
            // Dropping the connection closes the socket without an answer.
            () = kill.notified() => break,
            changed = stop.changed(), if !stopping => {
                stopping = true;
                if changed.is_ok() {
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// A client that does not trust the certificate aborts the handshake: the
/// only trace such a client leaves, so tests can see it tried (and how often).
fn handshake_failed(state: &SimState, error: String) {
    tracing::info!(route = "tls", "TLS handshake failed: {error}");
    state.requests().tls_failure(error);
}

/// Middleware on every API route: applies scripted faults, records the
/// request and logs it (method, path, status; never credentials).
pub async fn observe(State(state): State<Arc<SimState>>, req: Request, next: Next) -> Response {
    let method = req.method().as_str().to_owned();
    let path = req.uri().path().to_owned();
    let (route, database_id) = route_of(&method, &path);
    let kill = req.extensions().get::<ConnectionKill>().cloned();
    let fault = state.faults().take(route, database_id.as_deref());

    let mut record = RequestRecord {
        method,
        path: loggable_path(route, &path),
        route,
        database_id,
        status: None,
        fault: None,
    };
    let response = match fault {
        None => Some(next.run(req).await),
        Some(FaultAction::Respond { status, body, content_type, headers }) => {
            record.fault = Some("respond");
            Some(scripted_response(status, body, content_type, headers))
        }
        Some(FaultAction::Delay { ms }) => {
            record.fault = Some("delay");
            // Applied in its own task, so a client that gives up does not undo it.
            let response = tokio::spawn(next.run(req)).await.unwrap_or_else(|_| panicked());
            record.status = Some(response.status().as_u16());
            finish(&state, record.clone());
            tokio::time::sleep(Duration::from_millis(ms)).await;
            return response;
        }
        Some(FaultAction::DropAfterApply) => {
            record.fault = Some("drop_after_apply");
            let _ = tokio::spawn(next.run(req)).await;
            None
        }
        Some(FaultAction::Drop) => {
            record.fault = Some("drop");
            None
        }
    };
    record.status = response.as_ref().map(|r| r.status().as_u16());
    finish(&state, record);
    match (response, kill) {
        (Some(response), _) => response,
        (None, Some(kill)) => {
            kill.0.notify_one();
            std::future::pending().await
        }
        (None, None) => StatusCode::BAD_GATEWAY.into_response(),
    }
}

fn finish(state: &SimState, record: RequestRecord) {
    let status = record.status.map_or_else(|| "dropped".to_owned(), |s| s.to_string());
    tracing::info!(
        route = record.route,
        fault = record.fault.unwrap_or("-"),
        "{} {} {}",
        record.method,
        record.path,
        status
    );
    state.requests().record(record);
}

/// Data-plane paths carry command arguments (user data): log the command only.
fn loggable_path(route: &str, path: &str) -> String {
    if route != "data-plane" {
        return path.to_owned();
    }
    match path.trim_start_matches('/').split_once('/') {
        Some((command, _)) => format!("/{command}/…"),
        None => path.to_owned(),
    }
}

fn scripted_response(
    status: u16,
    body: String,
    content_type: Option<String>,
    headers: std::collections::BTreeMap<String, String>,
) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let content_type = content_type.unwrap_or_else(|| "application/json".into());
    let pairs = std::iter::once(("content-type".to_owned(), content_type)).chain(headers);
    for (name, value) in pairs {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

fn panicked() -> Response {
    (StatusCode::INTERNAL_SERVER_ERROR, "handler failed").into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_plane_arguments_are_not_logged() {
        assert_eq!(loggable_path("data-plane", "/set/key/secret-value"), "/set/…");
        assert_eq!(loggable_path("data-plane", "/ping"), "/ping");
        assert_eq!(loggable_path("get", "/v2/redis/database/x"), "/v2/redis/database/x");
    }
}
