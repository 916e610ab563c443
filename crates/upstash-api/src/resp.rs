//! `AUTH` + `PING` over RESP, as a Redis client sees the database: the
//! fallback of the check after a rotation when the REST data plane cannot be
//! reached. TLS when the database has it, against the system's CA store.

use std::time::Duration;

use redis::{AsyncConnectionConfig, ErrorKind};

use super::{client::Ping, error::UpstashError};

/// Whether `password` opens the database at `host:port` (user `default`).
/// Errors never quote the password: only the host, port and error kind.
pub async fn resp_ping(
    host: &str,
    port: u16,
    tls: bool,
    password: &str,
    timeout: Duration,
) -> Result<Ping, UpstashError> {
    let scheme = if tls { "rediss" } else { "redis" };
    let password = percent_encoding::utf8_percent_encode(password, crate::UNRESERVED);
    let unusable = |what: &str, kind: ErrorKind| {
        UpstashError::Transport(format!("RESP at {host}:{port}: {what} ({kind:?})"))
    };
    let client = redis::Client::open(format!("{scheme}://default:{password}@{host}:{port}/"))
        .map_err(|e| unusable("unusable address", e.kind()))?;
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout));
    let mut connection = match client.get_multiplexed_async_connection_with_config(&config).await {
        Ok(c) => c,
        Err(e) if e.kind() == ErrorKind::AuthenticationFailed => return Ok(Ping::Refused),
        Err(e) => return Err(unusable("cannot connect", e.kind())),
    };
    let pong: String = redis::cmd("PING")
        .query_async(&mut connection)
        .await
        .map_err(|e| unusable("PING failed", e.kind()))?;
    if pong == "PONG" {
        Ok(Ping::Pong)
    } else {
        Err(UpstashError::InvalidResponse(format!("RESP at {host}:{port}: PING did not answer PONG")))
    }
}
