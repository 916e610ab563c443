//! Why a reconcile did not complete, and the condition reason users see.

use std::time::Duration;

use upstash_api::UpstashError;

use crate::{conditions::Reason, leader::LeaseExpired};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Upstash API credentials Secret or one of its keys is missing.
    #[error("{0}")]
    CredentialsSecretMissing(String),
    /// The account named by `spec.accountRef` does not exist.
    #[error("{0}")]
    AccountNotFound(String),
    /// The `ClusterUpstashAccount` does not allow this namespace.
    #[error("{0}")]
    AccountNotAllowed(String),
    #[error("{0}")]
    Upstash(#[from] UpstashError),
    /// The target Secret belongs to someone else.
    #[error("{0}")]
    SecretConflict(String),
    /// An older resource already manages this database.
    #[error("{0}")]
    DatabaseConflict(String),
    #[error("Kubernetes API: {}", kube_message(.0))]
    Kube(#[from] kube::Error),
    /// The Secret cannot be written; found before any reset.
    #[error("{0}")]
    SecretNotWritable(String),
    /// A reset happened and its Secret write failed; the answer is in memory.
    #[error("{0}")]
    SecretWriteFailed(String),
    /// The resource or its Secret changed since this reconcile read them
    /// (another writer, a stale view): read again and decide again.
    #[error("{0}")]
    Stale(String),
    /// This process may no longer lead: it must not act.
    #[error(transparent)]
    LeaseExpired(#[from] LeaseExpired),
    /// A deliberate wait (caches loading, a reset that may still be
    /// answered): not a failure, retried after `retry`.
    #[error("{message}")]
    Waiting { reason: Reason, message: String, retry: Duration },
    /// Blind resets are capped: nothing more is done until a person acts.
    #[error("{0}")]
    NeedsAttention(String),
    /// `spec.secretTemplate.data` cannot be rendered; found before any reset.
    #[error("{0}")]
    InvalidTemplate(#[from] crate::template::TemplateError),
    /// `spec.schedule` cannot be used; found before any reset.
    #[error("{0}")]
    InvalidSchedule(#[from] crate::schedule::ScheduleError),
}

/// How long a resource in `RotationNeedsAttention` waits before checking
/// again (with a GET only) whether Upstash shows its credentials by now.
const ATTENTION_RECHECK: Duration = Duration::from_secs(600);
/// How often a held reset answer's Secret write is tried, at the longest.
const HELD_ANSWER_RETRY: Duration = Duration::from_secs(10);

impl Error {
    /// The `Ready` condition reason for this error.
    pub fn reason(&self) -> Reason {
        match self {
            Self::CredentialsSecretMissing(_) => Reason::CredentialsSecretMissing,
            Self::AccountNotFound(_) => Reason::AccountNotFound,
            Self::AccountNotAllowed(_) => Reason::AccountNotAllowed,
            Self::SecretConflict(_) => Reason::SecretConflict,
            Self::DatabaseConflict(_) => Reason::DatabaseConflict,
            Self::Kube(_) | Self::Stale(_) | Self::LeaseExpired(_) => Reason::KubernetesError,
            Self::SecretNotWritable(_) => Reason::SecretNotWritable,
            Self::SecretWriteFailed(_) => Reason::SecretWriteFailed,
            Self::Waiting { reason, .. } => *reason,
            Self::NeedsAttention(_) => Reason::RotationNeedsAttention,
            Self::InvalidTemplate(_) => Reason::InvalidTemplate,
            Self::InvalidSchedule(_) => Reason::InvalidSchedule,
            Self::Upstash(e) => match e {
                UpstashError::Unauthorized(_) | UpstashError::ReadOnlyKey(_) => Reason::InvalidCredentials,
                UpstashError::DatabaseNotFound(_) => Reason::DatabaseNotFound,
                UpstashError::RateLimited { .. } => Reason::RateLimited,
                UpstashError::UntrustedCertificate(_) => Reason::UpstashTLSUntrusted,
                UpstashError::Server { .. }
                | UpstashError::Rejected { .. }
                | UpstashError::Transport(_)
                | UpstashError::InvalidResponse(_) => Reason::UpstashUnavailable,
            },
        }
    }

    /// A delay the server asked for, which overrides the usual backoff.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Upstash(UpstashError::RateLimited { retry_after }) => *retry_after,
            Self::NeedsAttention(_) => Some(ATTENTION_RECHECK),
            _ => None,
        }
    }

    /// The longest wait before the next try, however often it failed: a
    /// reset answer held only in memory is written as soon as the Secret
    /// can be. A crash meanwhile leaves only Upstash's copy of the
    /// password, which Credential Protection hides.
    pub fn retry_within(&self) -> Option<Duration> {
        match self {
            Self::SecretWriteFailed(_) => Some(HELD_ANSWER_RETRY),
            _ => None,
        }
    }

    /// Outcomes that are not failures: no backoff, no warning event.
    pub fn is_expected(&self) -> bool {
        matches!(self, Self::Waiting { .. } | Self::Stale(_))
    }

    /// Whether users should see this as the `Ready` condition. A stale view
    /// or a lost lease says nothing about the resource, and writing it would
    /// be the very stale write the fencing prevents.
    pub fn is_reported(&self) -> bool {
        !matches!(self, Self::Stale(_) | Self::LeaseExpired(_))
    }

    /// A precondition failure on a write of ours becomes `Stale`.
    pub fn from_write(error: kube::Error, what: &str) -> Self {
        match error {
            kube::Error::Api(s) if s.code == 409 => {
                Self::Stale(format!("{what} changed meanwhile; deciding again"))
            }
            other => Self::Kube(other),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A failed reconcile and the one delay chosen for its retry (backoff, or
/// as long as Upstash asked), which the controller's error policy applies.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct Failure {
    pub error: Error,
    pub retry: Duration,
}

/// The apiserver's own message, without the Debug dump of its Status.
pub fn kube_message(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => format!("{} ({})", status.message, status.code),
        other => other.to_string(),
    }
}

/// The namespace is being deleted: nothing can be created in it any more.
pub fn namespace_terminating(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(s) if s.code == 403 && s.message.contains("because it is being terminated"))
}
