//! The REST data plane that stands in for `https://<endpoint>`: bearer-token
//! authentication against a database's current tokens, Upstash's JSON
//! command format, and forwarding to a real redis-server when one backs the
//! database.

use std::sync::Arc;

use axum::{
    Json, Router,
    body::{Body, to_bytes},
    extract::State,
    http::{HeaderMap, Method, Uri, header::AUTHORIZATION},
    response::{IntoResponse, Response},
    routing::post,
};
use percent_encoding::percent_decode_str;
use serde_json::{Value, json};

use super::{
    command_policy::{ErrorReply, refusal},
    error::DataPlaneError,
    management::MAX_BODY,
    rest_value::{Encoding, to_result},
    state::{SimState, TokenGrant, TokenKind},
};

/// Commands a read-only token may run.
const READ_ONLY: &[&str] = &[
    "PING",
    "ECHO",
    "GET",
    "MGET",
    "EXISTS",
    "TTL",
    "PTTL",
    "STRLEN",
    "GETRANGE",
    "TYPE",
    "KEYS",
    "SCAN",
    "DBSIZE",
    "HGET",
    "HMGET",
    "HGETALL",
    "HKEYS",
    "HVALS",
    "HLEN",
    "HEXISTS",
    "LRANGE",
    "LLEN",
    "LINDEX",
    "SMEMBERS",
    "SISMEMBER",
    "SCARD",
    "ZRANGE",
    "ZSCORE",
    "ZCARD",
    "ZRANK",
];

pub fn routes() -> Router<Arc<SimState>> {
    Router::new()
        .route("/", post(single))
        .route("/pipeline", post(pipeline))
        .route("/multi-exec", post(multi_exec))
        .fallback(path_command)
}

async fn grant(state: &SimState, headers: &HeaderMap) -> Result<TokenGrant, DataPlaneError> {
    let token = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or(DataPlaneError::WrongPass)?;
    state.resolve_token(token.trim_end()).await.ok_or(DataPlaneError::WrongPass)
}

fn encoding(headers: &HeaderMap) -> Encoding {
    Encoding::from_header(headers.get("upstash-encoding").and_then(|v| v.to_str().ok()))
}

async fn json_body(body: Body) -> Result<Value, DataPlaneError> {
    let bytes = to_bytes(body, MAX_BODY).await.map_err(|_| DataPlaneError::BodyTooLarge(MAX_BODY))?;
    serde_json::from_slice(&bytes).map_err(|_| DataPlaneError::Command("ERR failed to parse command".into()))
}

fn command_of(value: &Value) -> Result<Vec<String>, DataPlaneError> {
    let parse_error = || DataPlaneError::Command("ERR failed to parse command".into());
    let items = value.as_array().filter(|a| !a.is_empty()).ok_or_else(parse_error)?;
    items
        .iter()
        .map(|v| match v {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => Ok(n.to_string()),
            Value::Bool(b) => Ok(b.to_string()),
            _ => Err(parse_error()),
        })
        .collect()
}

async fn execute(grant: &TokenGrant, args: &[String]) -> Result<redis::Value, ErrorReply> {
    if let Some(error) = refusal(args) {
        return Err(error);
    }
    let name = args.first().map(|s| s.to_ascii_uppercase()).unwrap_or_default();
    if grant.kind == TokenKind::ReadOnly && !READ_ONLY.contains(&name.as_str()) {
        return Err(ErrorReply(format!(
            "NOPERM this user has no permissions to run the '{}' command",
            name.to_lowercase()
        )));
    }
    match &grant.backend {
        Some(backend) => backend.execute(args).await,
        None => match (name.as_str(), args.len()) {
            ("PING", 1) => Ok(redis::Value::SimpleString("PONG".into())),
            ("PING" | "ECHO", 2) => Ok(redis::Value::BulkString(args[1].clone().into_bytes())),
            _ => Err(ErrorReply(format!(
                "ERR upstash-sim runs only PING and ECHO for a database without --redis (got '{}')",
                name.to_lowercase()
            ))),
        },
    }
}

fn outcome(result: Result<redis::Value, ErrorReply>, encoding: Encoding) -> Value {
    match result {
        Ok(reply) => json!({"result": to_result(&reply, encoding)}),
        Err(ErrorReply(error)) => json!({"error": error}),
    }
}

async fn run_one(
    grant: &TokenGrant,
    headers: &HeaderMap,
    args: &[String],
) -> Result<Response, DataPlaneError> {
    match execute(grant, args).await {
        Ok(reply) => Ok(Json(json!({"result": to_result(&reply, encoding(headers))})).into_response()),
        Err(ErrorReply(error)) => Err(DataPlaneError::Command(error)),
    }
}

async fn single(
    State(state): State<Arc<SimState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, DataPlaneError> {
    let grant = grant(&state, &headers).await?;
    let args = command_of(&json_body(body).await?)?;
    run_one(&grant, &headers, &args).await
}

async fn many(
    state: &SimState,
    headers: &HeaderMap,
    body: Body,
    atomic: bool,
) -> Result<Response, DataPlaneError> {
    let grant = grant(state, headers).await?;
    let value = json_body(body).await?;
    let commands = value
        .as_array()
        .ok_or_else(|| DataPlaneError::Command("ERR failed to parse pipeline request".into()))?
        .iter()
        .map(command_of)
        .collect::<Result<Vec<_>, _>>()?;
    let encoding = encoding(headers);
    let results = match (&grant.backend, grant.kind) {
        (Some(backend), TokenKind::Standard) => backend.execute_many(&commands, atomic).await,
        _ => {
            let mut out = Vec::with_capacity(commands.len());
            for args in &commands {
                out.push(execute(&grant, args).await);
            }
            out
        }
    };
    Ok(Json(Value::Array(results.into_iter().map(|r| outcome(r, encoding)).collect())).into_response())
}

async fn pipeline(
    State(state): State<Arc<SimState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, DataPlaneError> {
    many(&state, &headers, body, false).await
}

async fn multi_exec(
    State(state): State<Arc<SimState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, DataPlaneError> {
    many(&state, &headers, body, true).await
}

/// `GET|POST /ping`, `/get/key`, `/set/key/value`: the command in the path.
async fn path_command(
    State(state): State<Arc<SimState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, DataPlaneError> {
    let path = uri.path();
    if path.starts_with("/v2/") || path.starts_with("/_sim/") || !matches!(method, Method::GET | Method::POST)
    {
        return Ok((axum::http::StatusCode::NOT_FOUND, Json(json!({"error": "not found"}))).into_response());
    }
    let grant = grant(&state, &headers).await?;
    let args = path
        .trim_matches('/')
        .split('/')
        .map(|segment| {
            percent_decode_str(segment)
                .decode_utf8()
                .map(|s| s.into_owned())
                .map_err(|_| DataPlaneError::Command("ERR invalid path".into()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if args.first().is_none_or(String::is_empty) {
        return Err(DataPlaneError::Command("ERR empty command".into()));
    }
    run_one(&grant, &headers, &args).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_accept_strings_numbers_and_booleans() {
        assert_eq!(command_of(&json!(["SET", "k", 1, true])).expect("valid"), ["SET", "k", "1", "true"]);
        assert!(command_of(&json!([])).is_err());
        assert!(command_of(&json!({"cmd": "PING"})).is_err());
        assert!(command_of(&json!(["SET", {"nested": 1}])).is_err());
    }
}
