//! Client for the parts of Upstash's Developer API the operator uses: read a
//! database, reset its password.

mod client;
mod database;
mod error;

pub use client::{ApiCredentials, Observer, UpstashClient};
pub use database::{DatabaseCredentials, RedisDatabase};
pub use error::UpstashError;
