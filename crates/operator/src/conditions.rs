//! Status conditions: their types and reasons, and an update that keeps
//! `lastTransitionTime` unless the condition's status really changes.

use k8s_openapi::{
    apimachinery::pkg::apis::meta::v1::{Condition, Time},
    jiff::Timestamp,
};

pub const READY: &str = "Ready";
pub const ROTATING: &str = "Rotating";
pub const CONSUMERS_RESTARTED: &str = "ConsumersRestarted";
pub const SUSPENDED: &str = "Suspended";
pub const VERIFIED: &str = "Verified";
/// On accounts: whether the API key authenticates with Upstash.
pub const VALIDATED: &str = "Validated";

/// Why a condition has its status. Users see these in `kubectl get rpr` and
/// alert on them: a stable API, spelled by `as_str`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    Synced,
    Rotated,
    Rotating,
    Idle,
    ResetRequested,
    Recovering,
    CredentialsUnavailable,
    InvalidCredentials,
    DatabaseNotFound,
    CredentialsSecretMissing,
    /// The account named by `spec.accountRef` does not exist.
    AccountNotFound,
    /// The `ClusterUpstashAccount` does not allow the resource's namespace.
    AccountNotAllowed,
    /// An account's API key authenticates with Upstash.
    Validated,
    RateLimited,
    UpstashUnavailable,
    /// The Upstash API's TLS certificate is not trusted: nothing was sent.
    UpstashTLSUntrusted,
    SecretConflict,
    DatabaseConflict,
    KubernetesError,
    /// The Secret cannot be written (immutable, another type, refused by a
    /// quota or webhook): found before any reset, so nothing is lost.
    SecretNotWritable,
    /// The password was reset but the Secret write failed: the new
    /// credentials are held in memory and the write is retried.
    SecretWriteFailed,
    /// A reset sent earlier may still be answered: waiting before deciding.
    ResetInFlight,
    /// The operator's caches are still loading.
    Starting,
    /// Blind resets are capped: a person has to decide.
    RotationNeedsAttention,
    /// Every workload of `spec.rolloutRestart` was restarted.
    Restarted,
    /// A workload of `spec.rolloutRestart` does not exist.
    ConsumerNotFound,
    /// The operator may not patch a workload of `spec.rolloutRestart`.
    ConsumerForbidden,
    /// The apiserver refused the restart of a workload (invalid, or a webhook).
    ConsumerRestartRefused,
    /// `spec.suspend` is true: no calls to Upstash.
    Suspended,
    /// `spec.secretTemplate.data` cannot be rendered; nothing was reset.
    InvalidTemplate,
    /// `spec.schedule` cannot be used (a time zone or cron expression the
    /// operator does not know, a window that never opens); nothing was reset.
    InvalidSchedule,
    /// After a rotation the new credentials answer PING on the data plane
    /// and the old ones are refused.
    Verified,
    /// After a rotation the new credentials were refused, or the old ones
    /// still accepted, once propagation had time.
    VerificationFailed,
    /// The data plane could not be asked (unreachable, 5xx).
    VerificationUnavailable,
    /// The rotation was finished without the credentials at hand (by a
    /// restarted operator, from the Secret): nothing was checked.
    NotVerified,
}

impl Reason {
    pub const ALL: [Self; 35] = [
        Self::Synced,
        Self::Rotated,
        Self::Rotating,
        Self::Idle,
        Self::ResetRequested,
        Self::Recovering,
        Self::CredentialsUnavailable,
        Self::InvalidCredentials,
        Self::DatabaseNotFound,
        Self::CredentialsSecretMissing,
        Self::AccountNotFound,
        Self::AccountNotAllowed,
        Self::Validated,
        Self::RateLimited,
        Self::UpstashUnavailable,
        Self::UpstashTLSUntrusted,
        Self::SecretConflict,
        Self::DatabaseConflict,
        Self::KubernetesError,
        Self::SecretNotWritable,
        Self::SecretWriteFailed,
        Self::ResetInFlight,
        Self::Starting,
        Self::RotationNeedsAttention,
        Self::Restarted,
        Self::ConsumerNotFound,
        Self::ConsumerForbidden,
        Self::ConsumerRestartRefused,
        Self::Suspended,
        Self::InvalidTemplate,
        Self::InvalidSchedule,
        Self::Verified,
        Self::VerificationFailed,
        Self::VerificationUnavailable,
        Self::NotVerified,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Synced => "Synced",
            Self::Rotated => "Rotated",
            Self::Rotating => "Rotating",
            Self::Idle => "Idle",
            Self::ResetRequested => "ResetRequested",
            Self::Recovering => "Recovering",
            Self::CredentialsUnavailable => "CredentialsUnavailable",
            Self::InvalidCredentials => "InvalidCredentials",
            Self::DatabaseNotFound => "DatabaseNotFound",
            Self::CredentialsSecretMissing => "CredentialsSecretMissing",
            Self::AccountNotFound => "AccountNotFound",
            Self::AccountNotAllowed => "AccountNotAllowed",
            Self::Validated => "Validated",
            Self::RateLimited => "RateLimited",
            Self::UpstashUnavailable => "UpstashUnavailable",
            Self::UpstashTLSUntrusted => "UpstashTLSUntrusted",
            Self::SecretConflict => "SecretConflict",
            Self::DatabaseConflict => "DatabaseConflict",
            Self::KubernetesError => "KubernetesError",
            Self::SecretNotWritable => "SecretNotWritable",
            Self::SecretWriteFailed => "SecretWriteFailed",
            Self::ResetInFlight => "ResetInFlight",
            Self::Starting => "Starting",
            Self::RotationNeedsAttention => "RotationNeedsAttention",
            Self::Restarted => "Restarted",
            Self::ConsumerNotFound => "ConsumerNotFound",
            Self::ConsumerForbidden => "ConsumerForbidden",
            Self::ConsumerRestartRefused => "ConsumerRestartRefused",
            Self::Suspended => "Suspended",
            Self::InvalidTemplate => "InvalidTemplate",
            Self::InvalidSchedule => "InvalidSchedule",
            Self::Verified => "Verified",
            Self::VerificationFailed => "VerificationFailed",
            Self::VerificationUnavailable => "VerificationUnavailable",
            Self::NotVerified => "NotVerified",
        }
    }

    /// The reason a stored condition names, if it is one of ours.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == text)
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Sets one condition. `lastTransitionTime` moves only when `status` changes,
/// so a reconcile that finds nothing new writes nothing new.
pub fn set(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: bool,
    reason: Reason,
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
            existing.reason = reason.as_str().to_owned();
            existing.message = message;
            existing.observed_generation = generation;
        }
        None => conditions.push(Condition {
            type_: type_.to_owned(),
            status,
            reason: reason.as_str().to_owned(),
            message,
            observed_generation: generation,
            last_transition_time: Time(now),
        }),
    }
}

/// Drops the condition of this type, if set.
pub fn remove(conditions: &mut Vec<Condition>, type_: &str) {
    conditions.retain(|c| c.type_ != type_);
}

/// The reason of the condition of this type, if set and one of ours.
pub fn reason_of(conditions: &[Condition], type_: &str) -> Option<Reason> {
    get(conditions, type_).and_then(|c| Reason::parse(&c.reason))
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
        set(&mut conditions, READY, false, Reason::RateLimited, "slow down", Some(1), t0);
        set(&mut conditions, READY, false, Reason::UpstashUnavailable, "down", Some(2), t1);
        let ready = get(&conditions, READY).expect("set");
        assert_eq!(ready.last_transition_time, Time(t0), "same status keeps the time");
        assert_eq!(
            (reason_of(&conditions, READY), ready.observed_generation),
            (Some(Reason::UpstashUnavailable), Some(2))
        );
        set(&mut conditions, READY, true, Reason::Synced, "ok", Some(2), t1);
        assert_eq!(get(&conditions, READY).expect("set").last_transition_time, Time(t1));
        assert_eq!(conditions.len(), 1);
    }

    #[test]
    fn every_reason_reads_back_as_itself() {
        for reason in Reason::ALL {
            assert_eq!(Reason::parse(reason.as_str()), Some(reason));
        }
        assert_eq!(Reason::parse("SomethingElse"), None);
    }
}
