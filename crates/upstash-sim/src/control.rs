//! Fault injection and inspection under `/_sim/` (never under `/v2`). It
//! never returns credentials.

use std::sync::Arc;

use axum::{
    Json, Router,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, put},
};
use serde::Deserialize;
use serde_json::json;

use super::{database::Shape, faults::Fault, state::SimState};

pub fn routes() -> Router<Arc<SimState>> {
    Router::new()
        .route("/_sim/faults", get(list_faults).post(add_fault).delete(clear_faults))
        .route("/_sim/requests", get(requests))
        .route("/_sim/databases/{id}", get(inspect))
        .route("/_sim/databases/{id}/credential-protection", put(credential_protection))
        .route("/_sim/databases/{id}/shape", put(shape))
        .route("/_sim/databases/{id}/propagation-lag", put(propagation_lag))
}

async fn add_fault(State(state): State<Arc<SimState>>, Json(fault): Json<Fault>) -> Response {
    let mut faults = state.faults();
    faults.push(fault);
    (StatusCode::CREATED, Json(json!({"pending": faults.pending()}))).into_response()
}

async fn list_faults(State(state): State<Arc<SimState>>) -> Response {
    Json(json!({"pending": state.faults().pending()})).into_response()
}

async fn clear_faults(State(state): State<Arc<SimState>>) -> StatusCode {
    state.faults().clear();
    StatusCode::NO_CONTENT
}

async fn requests(State(state): State<Arc<SimState>>) -> Response {
    Json(json!(&*state.requests())).into_response()
}

fn found(view: Option<serde_json::Value>) -> Response {
    match view {
        Some(view) => Json(view).into_response(),
        None => (StatusCode::NOT_FOUND, Json(json!("database not found"))).into_response(),
    }
}

async fn inspect(State(state): State<Arc<SimState>>, Path(id): Path<String>) -> Response {
    found(state.inspect(&id).await)
}

#[derive(Deserialize)]
struct Enabled {
    enabled: bool,
}

async fn credential_protection(
    State(state): State<Arc<SimState>>,
    Path(id): Path<String>,
    Json(body): Json<Enabled>,
) -> Response {
    match state.configure(&id, |db| db.credential_protection = body.enabled).await {
        Ok(view) => found(view),
        Err(e) => e.into_response(),
    }
}

#[derive(Deserialize)]
struct ShapeBody {
    shape: Shape,
}

async fn shape(
    State(state): State<Arc<SimState>>,
    Path(id): Path<String>,
    Json(body): Json<ShapeBody>,
) -> Response {
    match state.configure(&id, |db| db.shape = body.shape).await {
        Ok(view) => found(view),
        Err(e) => e.into_response(),
    }
}

#[derive(Deserialize)]
struct Lag {
    ms: u64,
}

async fn propagation_lag(
    State(state): State<Arc<SimState>>,
    Path(id): Path<String>,
    Json(body): Json<Lag>,
) -> Response {
    match state.configure(&id, |db| db.propagation_lag_ms = body.ms).await {
        Ok(view) => found(view),
        Err(e) => e.into_response(),
    }
}
