//! The Developer API routes under `/v2/redis`.

use std::sync::Arc;

use axum::{
    Json, Router,
    body::{Body, to_bytes},
    extract::{Path, RawQuery, State},
    http::{HeaderMap, header::AUTHORIZATION},
    routing::{get, post},
};
use serde_json::Value;

use super::{error::ApiError, state::SimState};

/// Largest create body accepted; larger ones get a 400, not a crash.
pub const MAX_BODY: usize = 64 * 1024;

type ApiResult = Result<Json<Value>, ApiError>;

pub fn routes() -> Router<Arc<SimState>> {
    Router::new()
        .route("/v2/redis/database", post(create))
        .route("/v2/redis/databases", get(list))
        .route("/v2/redis/database/{id}", get(read).delete(delete))
        .route("/v2/redis/reset-password/{id}", post(reset_password))
}

fn auth(headers: &HeaderMap) -> Option<&str> {
    headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok())
}

async fn create(State(state): State<Arc<SimState>>, headers: HeaderMap, body: Body) -> ApiResult {
    // Authenticate before reading the body, so bad keys get 401 whatever they send.
    state.authorize(auth(&headers), false)?;
    let bytes = to_bytes(body, MAX_BODY).await.map_err(|_| ApiError::BodyTooLarge(MAX_BODY))?;
    state.create(auth(&headers), &bytes).await.map(Json)
}

async fn list(State(state): State<Arc<SimState>>, headers: HeaderMap) -> ApiResult {
    state.list(auth(&headers)).await.map(Json)
}

async fn read(
    State(state): State<Arc<SimState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> ApiResult {
    let hide = query.as_deref().unwrap_or("").split('&').any(|pair| pair == "credentials=hide");
    state.get(auth(&headers), &id, hide).await.map(Json)
}

/// Ignores any body: none, `{}` and `null` are all sent by real clients.
async fn reset_password(
    State(state): State<Arc<SimState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    state.reset_password(auth(&headers), &id).await.map(Json)
}

async fn delete(State(state): State<Arc<SimState>>, headers: HeaderMap, Path(id): Path<String>) -> ApiResult {
    state.delete(auth(&headers), &id).await.map(Json)
}
