//! Client for the parts of Upstash's Developer API the operator uses: read a
//! database, reset its password.

mod client;
mod database;
mod error;
mod resp;
mod tls;

pub use client::{ApiCredentials, Observer, Ping, UpstashClient};
pub use database::{DatabaseCredentials, RedisDatabase};
pub use error::UpstashError;
pub use resp::resp_ping;

/// Everything but RFC 3986's unreserved characters is percent-encoded: safe
/// in a URL path segment and in a URL's userinfo alike.
pub const UNRESERVED: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');
