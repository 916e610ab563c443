//! The status a reconcile builds in memory, and the patches that store it.

use k8s_openapi::{
    apimachinery::pkg::apis::meta::v1::{MicroTime, Time},
    jiff::Timestamp,
};
use kube::ResourceExt as _;
use serde_json::{Value, json};

use super::{
    error::Error,
    messages::{Message, Rotation},
    plan::Record,
};
use crate::{
    conditions::{self, READY, ROTATING, Reason, SUSPENDED},
    crd::{HistoryEntry, RedisPasswordRotation, RedisPasswordRotationStatus, ResetAttempt, RotationTrigger},
    schedule::{self, Schedule},
    secret::Written,
};

/// Entries `status.history` keeps.
pub const HISTORY_LENGTH: usize = 10;

/// The status being built, with what its messages need.
pub struct Draft {
    pub status: RedisPasswordRotationStatus,
    generation: Option<i64>,
    now: Timestamp,
    secret_name: String,
    database_id: String,
    created: Option<Timestamp>,
    schedule: Option<Schedule>,
}

impl Draft {
    pub fn new(resource: &RedisPasswordRotation, now: Timestamp) -> Self {
        Self {
            status: resource.status.clone().unwrap_or_default(),
            generation: resource.metadata.generation,
            now,
            secret_name: resource.secret_name(),
            database_id: resource.spec.database_id.clone(),
            created: resource.metadata.creation_timestamp.as_ref().map(|t| t.0),
            schedule: None,
        }
    }

    /// The parsed `spec.schedule`, once checked.
    pub fn set_schedule(&mut self, schedule: Option<Schedule>) {
        self.schedule = schedule;
    }

    /// `nextRotationTime` from the schedule and the last rotation (or the
    /// creation): deterministic, so an unchanged answer writes nothing.
    pub fn refresh_next_rotation(&mut self) {
        let last = self.status.last_rotation_time.as_ref().map(|t| t.0);
        self.status.next_rotation_time = match (&self.schedule, schedule::counted_from(last, self.created)) {
            (Some(schedule), Some(from)) => schedule.next_start(from, self.now).ok().map(Time),
            _ => None,
        };
    }

    /// Which rotation a Secret written now for counter `rotation` holds: the
    /// pending intent's scheduled number, else the count so far.
    pub fn written(&self, rotation: i64) -> Written {
        let so_far = self.status.scheduled_rotations.unwrap_or(0);
        let scheduled = self.pending_scheduled(rotation).unwrap_or(so_far);
        Written { rotation, scheduled }
    }

    /// Rotation `target` as users read it: the pending intent's, if any.
    pub fn rotation(&self, target: i64) -> Rotation {
        Rotation { counter: target, scheduled: self.pending_scheduled(target) }
    }

    /// The scheduled number of the intent pending for `rotation`, if it is a
    /// scheduled one.
    fn pending_scheduled(&self, rotation: i64) -> Option<i64> {
        let reset = self.status.reset.as_ref().filter(|_| self.status.pending_rotation == Some(rotation));
        reset.and_then(|r| r.scheduled)
    }

    /// Adds the newest entry to `status.history`, keeping the last ten.
    fn remember(&mut self, rotation: Rotation, trigger: RotationTrigger, recovered: bool) {
        let entry = HistoryEntry {
            rotation: rotation.counter,
            scheduled_rotation: rotation.scheduled,
            time: Time(self.now),
            trigger,
            recovered,
            fingerprint: self.status.credentials_fingerprint.clone(),
        };
        self.status.history.insert(0, entry);
        self.status.history.truncate(HISTORY_LENGTH);
    }

    pub fn set(&mut self, type_: &str, status: bool, reason: Reason, message: &Message) {
        let (generation, now) = (self.generation, self.now);
        conditions::set(
            &mut self.status.conditions,
            type_,
            status,
            reason,
            message.to_string(),
            generation,
            now,
        );
    }

    pub fn apply(&mut self, record: &Record) {
        match record {
            Record::Synced { rotation } => {
                self.status.secret_name = Some(self.secret_name.clone());
                self.status.observed_generation = self.generation;
                self.status.rotation = Some(*rotation);
                self.set(ROTATING, false, Reason::Idle, &Message::NoRotation);
            }
            Record::Ready { ready, reason, message } => self.set(READY, *ready, *reason, message),
            Record::Fingerprint(fingerprint) => self.status.credentials_fingerprint = fingerprint.clone(),
            Record::SecretVersion(version) => self.status.secret_resource_version = version.clone(),
            Record::Finished { target, recovered } => {
                let rotation = self.rotation(*target);
                if let Some(n) = rotation.scheduled {
                    self.status.scheduled_rotations = Some(n);
                }
                self.remember(rotation, rotation.trigger(), *recovered);
                self.status.rotation = Some(*target);
                self.clear_intent();
                self.status.secret_name = Some(self.secret_name.clone());
                self.status.last_rotation_time = Some(Time(self.now));
                self.status.observed_generation = self.generation;
                self.set(ROTATING, false, Reason::Idle, &Message::NoRotation);
                let message = Message::Rotated {
                    target: rotation,
                    secret: self.secret_name.clone(),
                    database: self.database_id.clone(),
                };
                self.set(READY, true, Reason::Rotated, &message);
            }
            Record::ChangedOutside { rotation } => {
                self.remember(Rotation::counter(*rotation), RotationTrigger::Recovery, false);
            }
            Record::Suspended { waiting } => {
                self.status.observed_generation = self.generation;
                self.set(SUSPENDED, true, Reason::Suspended, &Message::Suspended { waiting: *waiting });
            }
            Record::Abandoned { target } => {
                self.clear_intent();
                self.set(ROTATING, false, Reason::Idle, &Message::Abandoned { target: *target });
            }
        }
    }

    /// The intent of a reset attempt, recorded before the reset is sent.
    pub fn record_intent(&mut self, target: i64, attempt: ResetAttempt) {
        let rotation = Rotation { counter: target, scheduled: attempt.scheduled };
        let resetting = Message::Resetting { target: rotation, attempt: attempt.attempt };
        self.status.pending_rotation = Some(target);
        self.status.reset = Some(Box::new(attempt));
        self.set(ROTATING, true, Reason::ResetRequested, &resetting);
        self.set(READY, false, Reason::Rotating, &Message::RotationInProgress { target: rotation });
    }

    pub fn clear_intent(&mut self) {
        self.status.pending_rotation = None;
        self.status.reset = None;
    }

    /// Puts the error on the conditions: `Ready` for failures, `Rotating`
    /// for a deliberate wait while a reset may be in flight.
    pub fn record_error(&mut self, error: &Error) {
        let message = match error {
            Error::Upstash(e) => format!("database {}: {e}", self.database_id),
            other => other.to_string(),
        };
        let (generation, now) = (self.generation, self.now);
        let (type_, status) = match error {
            Error::Waiting { .. } if self.status.pending_rotation.is_some() => (ROTATING, true),
            _ => (READY, false),
        };
        conditions::set(&mut self.status.conditions, type_, status, error.reason(), message, generation, now);
        self.status.observed_generation = self.generation;
    }

    /// The next reset attempt of `holder` for `target`. A new intent is for
    /// the scheduled rotation `scheduled`, if any; a further attempt keeps
    /// what its intent was for.
    pub fn next_attempt(
        &self,
        target: i64,
        holder: &str,
        blind: bool,
        scheduled: Option<i64>,
    ) -> ResetAttempt {
        let earlier = self.status.reset.as_ref().filter(|_| self.status.pending_rotation == Some(target));
        let previous_credentials = match (earlier, self.status.pending_rotation) {
            (Some(r), _) => r.previous_credentials.clone(),
            // A new intent over an unfinished one: what Upstash has is unknown.
            (None, Some(_)) => None,
            (None, None) => self.status.credentials_fingerprint.clone(),
        };
        ResetAttempt {
            holder: holder.to_owned(),
            attempt: earlier.map_or(1, |r| r.attempt.saturating_add(1)),
            requested_at: MicroTime(now_in_microseconds()),
            previous_credentials,
            blind_resets: earlier.map_or(0, |r| r.blind_resets) + i64::from(blind),
            scheduled: earlier.map_or(scheduled, |r| r.scheduled),
        }
    }
}

/// The whole status as a JSON merge patch on `resource_version`, with
/// explicit nulls: a field someone else once set (`kubectl edit
/// --subresource=status`) must still be cleared when the operator clears it.
pub fn status_patch(status: &RedisPasswordRotationStatus, resource: &RedisPasswordRotation) -> Value {
    let s = status;
    with_version(
        resource,
        json!({
            "observedGeneration": s.observed_generation,
            "rotation": s.rotation,
            "pendingRotation": s.pending_rotation,
            "lastRotationTime": s.last_rotation_time,
            "secretName": s.secret_name,
            "credentialsFingerprint": s.credentials_fingerprint,
            "secretResourceVersion": s.secret_resource_version,
            "consumersFingerprint": s.consumers_fingerprint,
            "nextRotationTime": s.next_rotation_time,
            "scheduledRotations": s.scheduled_rotations,
            "history": s.history,
            "reset": s.reset.as_deref().map(reset_patch),
            "conditions": s.conditions,
        }),
    )
}

/// Only the conditions (the error path), and the next scheduled rotation
/// that follows from the stored status: never `rotation`, `pendingRotation`
/// or `reset`.
pub fn conditions_patch(status: &RedisPasswordRotationStatus, resource: &RedisPasswordRotation) -> Value {
    with_version(
        resource,
        json!({
            "observedGeneration": status.observed_generation,
            "nextRotationTime": status.next_rotation_time,
            "conditions": status.conditions,
        }),
    )
}

fn with_version(resource: &RedisPasswordRotation, status: Value) -> Value {
    json!({"metadata": {"resourceVersion": resource.resource_version()}, "status": status})
}

/// Every field spelled out: a merge patch would keep a field it omits.
fn reset_patch(reset: &ResetAttempt) -> Value {
    json!({
        "holder": reset.holder,
        "attempt": reset.attempt,
        "requestedAt": reset.requested_at,
        "previousCredentials": reset.previous_credentials,
        "blindResets": reset.blind_resets,
        "scheduled": reset.scheduled,
    })
}

/// Now, at the precision the apiserver stores a `MicroTime` with.
fn now_in_microseconds() -> Timestamp {
    let now = Timestamp::now();
    Timestamp::from_microsecond(now.as_microsecond()).unwrap_or(now)
}
