//! Why a reconcile did not complete, and the condition reason users see.

use std::time::Duration;

use crate::{conditions::reason, upstash::UpstashError};

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
    /// The operator's own caches are not ready yet.
    #[error("{0}")]
    NotReady(String),
}

impl Error {
    /// The `Ready` condition reason for this error.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::CredentialsSecretMissing(_) => reason::CREDENTIALS_SECRET_MISSING,
            Self::SecretConflict(_) => reason::SECRET_CONFLICT,
            Self::DatabaseConflict(_) => reason::DATABASE_CONFLICT,
            Self::Kube(_) | Self::NotReady(_) => reason::KUBERNETES_ERROR,
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
            _ => None,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The apiserver's own message, without the Debug dump of its Status.
fn kube_message(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => format!("{} ({})", status.message, status.code),
        other => other.to_string(),
    }
}
