//! Shared Upstash accounts (the SecretStore pattern): platform teams keep
//! one API key in an `UpstashAccount` or `ClusterUpstashAccount`, and
//! resources name the account instead of a Secret. `types` holds the
//! resources, `validate` the account controller's reconcile, `controller`
//! its watches, `keys` the versions of the key Secrets they delivered,
//! `triggers` which account events matter to resources.

mod controller;
mod keys;
mod triggers;
mod types;
mod validate;

pub use controller::{AccountScope, run_account_controllers};
pub use triggers::{Change, Changes};
pub use types::*;
pub use validate::AccountContext;
