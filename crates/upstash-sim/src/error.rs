//! Errors of the simulated API, rendered with Upstash's status codes and
//! (heterogeneous) bodies.

use axum::{
    Json,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("unauthorized")]
    Unauthorized,
    #[error("read-only API key")]
    ReadOnlyKey,
    #[error("database not found")]
    DatabaseNotFound,
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The body was not read to its end, so the connection cannot be reused.
    #[error("request body is larger than {0} bytes")]
    BodyTooLarge(usize),
    #[error("internal error: {0}")]
    Internal(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            Self::Unauthorized => {
                (StatusCode::UNAUTHORIZED, Json(json!({"error": "Unauthorized"}))).into_response()
            }
            Self::ReadOnlyKey => (
                StatusCode::FORBIDDEN,
                Json(json!({"error": "Readonly API key cannot be used for this operation"})),
            )
                .into_response(),
            // Upstash answers an unknown id with a bare JSON string.
            Self::DatabaseNotFound => {
                (StatusCode::NOT_FOUND, Json(json!("database not found"))).into_response()
            }
            Self::BadRequest(message) => {
                (StatusCode::BAD_REQUEST, Json(json!({"error": message}))).into_response()
            }
            Self::BodyTooLarge(_) => {
                let body = Json(json!({"error": self.to_string()}));
                (StatusCode::BAD_REQUEST, [(header::CONNECTION, "close")], body).into_response()
            }
            Self::Internal(message) => {
                (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({"error": message}))).into_response()
            }
        }
    }
}

/// Errors of the REST data plane, in Upstash's `{"error": ...}` format.
#[derive(Debug, thiserror::Error)]
pub enum DataPlaneError {
    #[error("WRONGPASS invalid or missing auth token")]
    WrongPass,
    #[error("{0}")]
    Command(String),
    #[error("ERR request body is larger than {0} bytes")]
    BodyTooLarge(usize),
}

impl IntoResponse for DataPlaneError {
    fn into_response(self) -> Response {
        let body = Json(json!({"error": self.to_string()}));
        match self {
            Self::WrongPass => (StatusCode::UNAUTHORIZED, body).into_response(),
            Self::Command(_) => (StatusCode::BAD_REQUEST, body).into_response(),
            Self::BodyTooLarge(_) => {
                (StatusCode::BAD_REQUEST, [(header::CONNECTION, "close")], body).into_response()
            }
        }
    }
}
