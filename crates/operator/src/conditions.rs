//! Status conditions: their types and reasons, and an update that keeps
//! `lastTransitionTime` unless the condition's status really changes.

use k8s_openapi::{
    apimachinery::pkg::apis::meta::v1::{Condition, Time},
    jiff::Timestamp,
};

pub const READY: &str = "Ready";
pub const ROTATING: &str = "Rotating";

/// Reasons users see in `kubectl get rpr` and alert on; stable API.
pub mod reason {
    pub const SYNCED: &str = "Synced";
    pub const ROTATED: &str = "Rotated";
    pub const ROTATING: &str = "Rotating";
    pub const IDLE: &str = "Idle";
    pub const RESET_REQUESTED: &str = "ResetRequested";
    pub const RECOVERING: &str = "Recovering";
    pub const CREDENTIALS_UNAVAILABLE: &str = "CredentialsUnavailable";
    pub const INVALID_CREDENTIALS: &str = "InvalidCredentials";
    pub const DATABASE_NOT_FOUND: &str = "DatabaseNotFound";
    pub const CREDENTIALS_SECRET_MISSING: &str = "CredentialsSecretMissing";
    pub const RATE_LIMITED: &str = "RateLimited";
    pub const UPSTASH_UNAVAILABLE: &str = "UpstashUnavailable";
    pub const SECRET_CONFLICT: &str = "SecretConflict";
    pub const DATABASE_CONFLICT: &str = "DatabaseConflict";
    pub const KUBERNETES_ERROR: &str = "KubernetesError";
    /// The Secret cannot be written (immutable, another type, refused by a
    /// quota or webhook): found before any reset, so nothing is lost.
    pub const SECRET_NOT_WRITABLE: &str = "SecretNotWritable";
    /// The password was reset but the Secret write failed: the new
    /// credentials are held in memory and the write is retried.
    pub const SECRET_WRITE_FAILED: &str = "SecretWriteFailed";
    /// A reset sent earlier may still be answered: waiting before deciding.
    pub const RESET_IN_FLIGHT: &str = "ResetInFlight";
    /// The operator's caches are still loading.
    pub const STARTING: &str = "Starting";
    /// Blind resets are capped: a person has to decide.
    pub const ROTATION_NEEDS_ATTENTION: &str = "RotationNeedsAttention";
}

/// Sets one condition. `lastTransitionTime` moves only when `status` changes,
/// so a reconcile that finds nothing new writes nothing new.
pub fn set(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: bool,
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
    now: Timestamp,
) {
    let status = if status { "True" } else { "False" }.to_owned();
    let message = message.into();
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(existing) => {
            if existing.status != status {
                existing.last_transition_time = Time(now);
            }
            existing.status = status;
            existing.reason = reason.to_owned();
            existing.message = message;
            existing.observed_generation = generation;
        }
        None => conditions.push(Condition {
            type_: type_.to_owned(),
            status,
            reason: reason.to_owned(),
            message,
            observed_generation: generation,
            last_transition_time: Time(now),
        }),
    }
}

/// The condition of this type, if set.
pub fn get<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_time_moves_only_with_status() {
        let t0 = Timestamp::from_second(1_000).expect("valid");
        let t1 = Timestamp::from_second(2_000).expect("valid");
        let mut conditions = Vec::new();
        set(&mut conditions, READY, false, reason::RATE_LIMITED, "slow down", Some(1), t0);
        set(&mut conditions, READY, false, reason::UPSTASH_UNAVAILABLE, "down", Some(2), t1);
        let ready = get(&conditions, READY).expect("set");
        assert_eq!(ready.last_transition_time, Time(t0), "same status keeps the time");
        assert_eq!(
            (ready.reason.as_str(), ready.observed_generation),
            (reason::UPSTASH_UNAVAILABLE, Some(2))
        );
        set(&mut conditions, READY, true, reason::SYNCED, "ok", Some(2), t1);
        assert_eq!(get(&conditions, READY).expect("set").last_transition_time, Time(t1));
        assert_eq!(conditions.len(), 1);
    }
}
