//! Why a reconcile did not complete, and the condition reason users see.

use std::time::Duration;

use upstash_api::UpstashError;

use crate::{conditions::reason, leader::LeaseExpired};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Upstash API credentials Secret or one of its keys is missing.
    #[error("{0}")]
    CredentialsSecretMissing(String),
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
    Waiting { reason: &'static str, message: String, retry: Duration },
    /// Blind resets are capped: nothing more is done until a person acts.
    #[error("{0}")]
    NeedsAttention(String),
}

/// How long a resource in `RotationNeedsAttention` waits before checking
/// again (with a GET only) whether Upstash shows its credentials by now.
const ATTENTION_RECHECK: Duration = Duration::from_secs(600);

impl Error {
    /// The `Ready` condition reason for this error.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::CredentialsSecretMissing(_) => reason::CREDENTIALS_SECRET_MISSING,
            Self::SecretConflict(_) => reason::SECRET_CONFLICT,
            Self::DatabaseConflict(_) => reason::DATABASE_CONFLICT,
            Self::Kube(_) | Self::Stale(_) | Self::LeaseExpired(_) => reason::KUBERNETES_ERROR,
            Self::SecretNotWritable(_) => reason::SECRET_NOT_WRITABLE,
            Self::SecretWriteFailed(_) => reason::SECRET_WRITE_FAILED,
            Self::Waiting { reason, .. } => reason,
            Self::NeedsAttention(_) => reason::ROTATION_NEEDS_ATTENTION,
            Self::Upstash(e) => match e {
                UpstashError::Unauthorized(_) | UpstashError::ReadOnlyKey(_) => reason::INVALID_CREDENTIALS,
                UpstashError::DatabaseNotFound(_) => reason::DATABASE_NOT_FOUND,
                UpstashError::RateLimited { .. } => reason::RATE_LIMITED,
                UpstashError::Server { .. }
                | UpstashError::Rejected { .. }
                | UpstashError::Transport(_)
                | UpstashError::InvalidResponse(_) => reason::UPSTASH_UNAVAILABLE,
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
