//! What users read: condition messages and Kubernetes events, as types.
//! Code decides on the variants; only `Display` turns them into words.

use std::fmt;

use crate::{conditions::Reason, crd::RotationTrigger, reconcile::decide::BLIND_RESET_LIMIT};

/// How users read which rotation a message is about: "rotation 4" for the
/// counter, "scheduled rotation 2 (at rotation 4)" for `spec.schedule`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rotation {
    pub counter: i64,
    pub scheduled: Option<i64>,
}

impl Rotation {
    pub const fn counter(counter: i64) -> Self {
        Self { counter, scheduled: None }
    }

    pub const fn trigger(self) -> RotationTrigger {
        if self.scheduled.is_some() { RotationTrigger::Schedule } else { RotationTrigger::Counter }
    }
}

impl fmt::Display for Rotation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.scheduled {
            None => write!(f, "rotation {}", self.counter),
            Some(n) => write!(f, "scheduled rotation {n} (at rotation {})", self.counter),
        }
    }
}

/// The message of a `Ready` or `Rotating` condition set by a plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// The Secret holds what Upstash reports now.
    Synced {
        secret: String,
        database: String,
    },
    /// Credential Protection hides the credentials; the Secret is kept.
    ProtectedKept {
        secret: String,
    },
    /// Credential Protection hides the credentials and there is no Secret.
    ProtectedNoSecret {
        secret: String,
    },
    NoRotation,
    RotationInProgress {
        target: Rotation,
    },
    Resetting {
        target: Rotation,
        attempt: i64,
    },
    Rotated {
        target: Rotation,
        secret: String,
        database: String,
    },
    /// The reset succeeded but its answer carried no credentials.
    AnswerWithoutCredentials {
        target: i64,
    },
    /// The reset's answer was lost: Upstash is asked before any new reset.
    OutcomeUnknown {
        target: i64,
    },
    /// Upstash refused the reset for certain.
    NotStarted {
        target: i64,
        why: String,
    },
    Abandoned {
        target: i64,
    },
    /// Every workload of `spec.rolloutRestart` was restarted.
    ConsumersRestarted {
        workloads: String,
    },
    /// Some workloads could not be restarted.
    ConsumersNotRestarted {
        failures: String,
    },
    /// The check after a rotation passed; `old_checked` is false when the
    /// Secret held no REST token before to try.
    Verified {
        target: Rotation,
        old_checked: bool,
        checks: u32,
        took_ms: u128,
        /// Where: on the REST data plane, or over RESP.
        over: &'static str,
    },
    /// The new credentials were still refused, or the old ones still
    /// accepted, when the time for propagation was up.
    VerificationFailed {
        target: Rotation,
        new_refused: bool,
        within_s: u64,
        over: &'static str,
    },
    /// The data plane could not be asked.
    VerificationUnavailable {
        target: Rotation,
        why: String,
    },
    /// Finished without the credentials at hand: nothing was checked.
    NotVerified {
        target: Rotation,
    },
    /// `spec.suspend` holds back every call to Upstash; `waiting` is the
    /// rotation that waits for it.
    Suspended {
        waiting: Option<Rotation>,
    },
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Synced { secret, database } => {
                write!(f, "Secret {secret} holds the current credentials of database {database}")
            }
            Self::ProtectedKept { secret } => write!(
                f,
                "Upstash hides this database's credentials (Credential Protection), so Secret {secret} cannot be \
                 verified; it keeps the credentials of the last rotation"
            ),
            Self::ProtectedNoSecret { secret } => write!(
                f,
                "Upstash does not return this database's credentials (Credential Protection); raise \
                 spec.rotation to reset the password and store the new credentials in Secret {secret}"
            ),
            Self::NoRotation => f.write_str("no rotation in progress"),
            Self::RotationInProgress { target } => write!(f, "{target} in progress"),
            Self::Resetting { target, attempt } => {
                write!(f, "resetting the password for {target} (attempt {attempt})")
            }
            Self::Rotated { target, secret, database } => write!(
                f,
                "{target} applied: Secret {secret} holds the new credentials of database {database}"
            ),
            Self::AnswerWithoutCredentials { target } => write!(
                f,
                "the reset for rotation {target} answered without credentials; reading them back from Upstash"
            ),
            Self::OutcomeUnknown { target } => write!(
                f,
                "the outcome of the reset for rotation {target} is unknown; Upstash will be asked before any new \
                 reset"
            ),
            Self::NotStarted { target, why } => write!(f, "rotation {target} not started: {why}"),
            Self::Abandoned { target } => write!(f, "rotation {target} abandoned: resource deleted"),
            Self::ConsumersRestarted { workloads } => {
                write!(f, "restarted {workloads} for the new credentials")
            }
            Self::Suspended { waiting: None } => {
                f.write_str("spec.suspend is true: the operator makes no call to Upstash for this resource")
            }
            Self::Suspended { waiting: Some(target) } => write!(
                f,
                "spec.suspend is true: the operator makes no call to Upstash for this resource; {target} waits \
                 until it is false"
            ),
            Self::Verified { target, old_checked, checks, took_ms, over } => write!(
                f,
                "{target}: the new credentials answer PING {over}{} ({checks} checks in {took_ms} ms)",
                if *old_checked {
                    " and the old ones are refused"
                } else {
                    "; the old ones were not checked (the Secret held no default keys before)"
                }
            ),
            Self::VerificationFailed { target, new_refused: true, within_s, over } => write!(
                f,
                "{target}: the new credentials are still refused {over} after {within_s} s; the Secret holds what \
                 Upstash answered to the reset (no other reset is made)"
            ),
            Self::VerificationFailed { target, new_refused: false, within_s, over } => write!(
                f,
                "{target}: the old credentials are still accepted {over} after {within_s} s, although Upstash \
                 answered the reset; the new ones work"
            ),
            Self::VerificationUnavailable { target, why } => {
                write!(f, "{target}: the REST data plane could not be asked ({why}); nothing was checked")
            }
            Self::NotVerified { target } => write!(
                f,
                "{target} was finished from the Secret by a restarted operator, without the credentials at hand: \
                 nothing was checked"
            ),
            Self::ConsumersNotRestarted { failures } => write!(
                f,
                "not restarted for the new credentials: {failures}; the Secret holds them, so these pods pick \
                 them up only when they restart"
            ),
        }
    }
}

/// A Kubernetes event the operator publishes on a resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    /// A rotation finished; `how` says what this reconcile did for it.
    Rotated { target: Rotation, secret: String, how: RotatedHow },
    /// A lost reset answer turned out to have been applied; `verified` is
    /// false when there was nothing to compare with.
    Recovered { target: Rotation, verified: bool },
    /// The Secret was edited or deleted and got the current credentials back.
    DriftCorrected { secret: String, deleted: bool },
    /// Upstash reports other credentials than the operator last wrote: the
    /// password was reset elsewhere, and the Secret now holds the new one.
    ChangedOutside { secret: String },
    /// Credential Protection forces another reset; `blind` counts them.
    ResetRepeated { target: i64, blind: i64 },
    /// The resource is deleted with an intent that cannot be checked.
    Abandoned { target: i64, why: String },
    /// A reconcile failed for a new cause (not repeated per retry).
    Failed { reason: Reason, message: String },
    /// The workloads of `spec.rolloutRestart` were restarted (or some could
    /// not be: `complete` is false).
    Consumers { message: Message, complete: bool },
    /// `run --dry-run`: what a reconcile would have done.
    DryRun { what: String },
    /// The check after a rotation did not pass (`reason`: the `Verified`
    /// condition's).
    NotVerified { reason: Reason, message: Message },
}

/// How a rotation's Secret came to hold the new credentials.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RotatedHow {
    SecretWritten,
    SecretAlreadyHeldThem,
}

impl Notice {
    /// The event's reason (a stable API, like condition reasons).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Rotated { .. } => "Rotated",
            Self::Recovered { .. } => "RotationRecovered",
            Self::DriftCorrected { .. } => "DriftCorrected",
            Self::ChangedOutside { .. } => "CredentialsChangedOutside",
            Self::ResetRepeated { .. } => "ResetRepeated",
            Self::Abandoned { .. } => "RotationAbandoned",
            Self::Failed { reason, .. } => reason.as_str(),
            Self::Consumers { complete: true, .. } => "ConsumersRestarted",
            Self::Consumers { complete: false, .. } => "ConsumersNotRestarted",
            Self::DryRun { .. } => "DryRun",
            Self::NotVerified { reason, .. } => reason.as_str(),
        }
    }

    /// Warnings ask a person to look.
    pub fn is_warning(&self) -> bool {
        matches!(
            self,
            Self::Recovered { verified: false, .. }
                | Self::ChangedOutside { .. }
                | Self::ResetRepeated { .. }
                | Self::Abandoned { .. }
                | Self::Failed { .. }
                | Self::Consumers { complete: false, .. }
                | Self::NotVerified { .. }
        )
    }
}

impl fmt::Display for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Rotated { target, secret, how: RotatedHow::SecretWritten } => {
                write!(f, "{target}: Secret {secret} updated (trigger: {})", target.trigger().as_str())
            }
            Self::Rotated { target, how: RotatedHow::SecretAlreadyHeldThem, .. } => {
                write!(f, "{target}: Secret already held them (trigger: {})", target.trigger().as_str())
            }
            Self::Recovered { target, verified: true } => write!(
                f,
                "{target}: the reset had happened although its answer was lost; stored the credentials \
                 Upstash reports, without a second reset (trigger: {})",
                target.trigger().as_str()
            ),
            Self::Recovered { target, verified: false } => write!(
                f,
                "{target}: whether the reset happened could not be checked (no record of the \
                 credentials before it, and no Secret); stored the credentials Upstash reports, without a second \
                 reset (raise spec.rotation to force one)"
            ),
            Self::ChangedOutside { secret } => write!(
                f,
                "the database's password was changed outside the operator; Secret {secret} now holds the new \
                 credentials (trigger: recovery)"
            ),
            Self::DriftCorrected { secret, deleted } => write!(
                f,
                "Secret {secret} {}; restored the database's current credentials without a reset",
                if *deleted { "was deleted" } else { "was edited" }
            ),
            Self::ResetRepeated { target, blind } => write!(
                f,
                "Upstash hides this database's credentials (Credential Protection), so whether the reset for \
                 rotation {target} happened cannot be checked; resetting again to obtain usable credentials \
                 (blind reset {blind} of at most {BLIND_RESET_LIMIT})"
            ),
            Self::Abandoned { target, why } => write!(
                f,
                "the resource is being deleted and the rotation {target} cannot be finished ({why}); no new reset \
                 was made"
            ),
            Self::Failed { message, .. } => f.write_str(message),
            Self::Consumers { message, .. } => message.fmt(f),
            Self::DryRun { what } => write!(f, "dry run: {what}"),
            Self::NotVerified { message, .. } => message.fmt(f),
        }
    }
}
