//! Checks that stop a reconcile before it acts: a Secret someone else owns,
//! another resource on the database, a reset that may still be answered.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt as _;

use super::{
    error::{Error, Result},
    observe::{Conflict, Observation},
};
use crate::{
    conditions::{self, ROTATING, Reason},
    crd::RedisPasswordRotation,
    secret::{self, Ownership},
};

/// An older resource already manages this database.
pub fn database_conflict(obs: &Observation, conflict: &Conflict) -> Error {
    let who = match conflict {
        Conflict::SameNamespace(name) => format!("RedisPasswordRotation {name}"),
        Conflict::OtherNamespace => "an older RedisPasswordRotation in another namespace".to_owned(),
    };
    Error::DatabaseConflict(format!(
        "database {} is already managed by {who}; delete this resource or that one",
        obs.resource.spec.database_id
    ))
}

/// Another process (a previous leader, a replica without election) may
/// still be waiting for the answer to a reset it sent for this intent. Until
/// that request must have ended, a read showing the old credentials proves
/// nothing, and resetting now could reset twice. Measured from the latest
/// attempt; a time in the future (clock skew) counts as in flight.
pub fn no_reset_in_flight(obs: &Observation, target: i64, window: Duration) -> Result<()> {
    let status = obs.resource.status.clone().unwrap_or_default();
    let since = match &status.reset {
        Some(reset) => reset.requested_at.0,
        None => match conditions::get(&status.conditions, ROTATING).filter(|c| c.status == "True") {
            Some(c) => c.last_transition_time.0,
            None => return Ok(()),
        },
    };
    let wait = match Duration::try_from(obs.now.duration_since(since)) {
        Ok(age) if age >= window => return Ok(()),
        Ok(age) => window - age,
        Err(_) => window,
    };
    Err(Error::Waiting {
        reason: Reason::ResetInFlight,
        message: format!(
            "the last reset for rotation {target} may still be answered; Upstash is asked again in {}s, before \
             any new reset",
            wait.as_secs().max(1)
        ),
        retry: wait,
    })
}

/// Whether this resource may write `existing` (its target Secret): `Ok(true)`
/// when the Secret is already ours, `Ok(false)` when it does not exist yet,
/// and `SecretConflict` when it belongs to someone else.
pub fn writable(existing: Option<&Secret>, resource: &RedisPasswordRotation) -> Result<bool> {
    let secret_name = resource.secret_name();
    match secret::ownership(existing, &resource.name_any()) {
        Ownership::Ours => Ok(true),
        Ownership::Absent => Ok(false),
        Ownership::Foreign => Err(Error::SecretConflict(format!(
            "Secret {secret_name} already exists and is not managed by this resource; annotate it with \
             {}=\"true\" to let the operator take it over, or set another spec.secretName",
            secret::ADOPT_ANNOTATION
        ))),
        Ownership::OtherResource(other) => Err(Error::SecretConflict(format!(
            "Secret {secret_name} is written by RedisPasswordRotation {other}; set another spec.secretName"
        ))),
    }
}
