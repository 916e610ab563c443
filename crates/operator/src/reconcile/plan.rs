//! Decide, second half: from the observation and the step, the plan, a short
//! list of effects in the order that keeps every password (intent before
//! reset, Secret before status). Pure: no I/O, no clock but the observed one.

use std::time::Duration;

use kube::ResourceExt as _;
use upstash_api::UpstashError;

use super::{
    checks::{database_conflict, no_reset_in_flight},
    decide::{BLIND_RESET_LIMIT, Facts, Step, Verdict, next_step, recovery_verdict},
    error::{Error, Result},
    messages::{Message, Notice, RotatedHow, Rotation},
    observe::Observation,
};
use crate::{
    conditions::{READY, Reason, reason_of},
    crd::{DeletionPolicy, RedisPasswordRotation},
    secret,
};

/// One thing `execute` does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Proves with a dry run that the Secret write after the reset will be
    /// accepted: a reset whose answer cannot be stored is a lost password.
    ProveSecretWritable { target: i64 },
    /// Guards the intent against deletion while it is in flight (only
    /// where the Secret outlives the resource).
    AddFinalizer,
    /// Stores the reset attempt in status, reads it back, checks the lease.
    /// `scheduled`: the number of the scheduled rotation a new intent is for.
    RecordIntent { target: i64, blind: bool, scheduled: Option<i64> },
    /// The one non-idempotent call; its answer is kept in memory at once.
    Reset { target: i64 },
    /// Writes the kept reset answer into the Secret (retrying the write,
    /// never the reset).
    StoreAnswer { target: i64 },
    /// Writes what Upstash reported in this reconcile's read, annotated
    /// with `rotation`.
    StoreCurrent { rotation: i64, guard: Guard },
    /// Changes the status kept in memory (no I/O).
    Record(Record),
    /// Writes the status if it changed, on the version this reconcile read.
    WriteStatus,
    /// Publishes an event. A warning is awaited and comes before the status
    /// write that ends its step: a crash in between repeats a warning, never
    /// loses it. Any other event is queued (a report of what the status
    /// records, not waited for).
    Publish(Notice),
    /// Drops the finalizer once nothing is in flight.
    ReleaseFinalizer,
    /// Checks the new credentials of `target` on the data plane (and that
    /// the old ones are refused) before the consumers restart and the
    /// status is written; reports, never fails.
    Verify { target: i64 },
    /// Restarts the workloads of `spec.rolloutRestart` if the credentials
    /// changed since they were last restarted; before the status write that
    /// records it, so a crash in between repeats it (idempotently).
    RestartConsumers,
}

/// What a Secret write may overwrite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Guard {
    /// Credentials from a read in this reconcile: only over the Secret
    /// observed when it began.
    Sync,
    /// Credentials of a rotation: never over a newer rotation.
    Rotation,
}

/// A status change kept in memory until `WriteStatus`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    /// `rotation` is applied and nothing is in flight.
    Synced {
        rotation: i64,
    },
    Ready {
        ready: bool,
        reason: Reason,
        message: Message,
    },
    /// What the Secret holds, when no write of this plan recorded it
    /// (`None`: nothing recognisable).
    Fingerprint(Option<String>),
    /// The Secret's version, when no write of this plan recorded it: the
    /// Secret already holds what the status says.
    SecretVersion(Option<String>),
    /// Rotation `target` is done; `recovered`: its answer was read back
    /// from Upstash.
    Finished {
        target: i64,
        recovered: bool,
    },
    /// A sync found credentials the operator did not write: the password
    /// was changed outside it (history trigger `recovery`).
    ChangedOutside {
        rotation: i64,
    },
    /// The intent is dropped: the resource is being deleted.
    Abandoned {
        target: i64,
    },
    /// `spec.suspend` holds this step back.
    Suspended {
        waiting: Option<Rotation>,
    },
}

impl Step {
    /// Whether planning this step needs Upstash's current view.
    pub fn reads_upstash(self) -> bool {
        matches!(self, Step::Sync { .. } | Step::Recover { .. })
    }

    /// Whether this step would call Upstash (what `spec.suspend` stops).
    /// Writing a reset answer held in memory, or finishing a rotation the
    /// Secret already holds, calls no one.
    pub fn calls_upstash(self) -> bool {
        matches!(self, Step::Sync { .. } | Step::Rotate { .. } | Step::Recover { .. })
    }
}

/// The plan of a step `spec.suspend` holds back: say so, nothing else.
pub fn suspended(step: Step, obs: &Observation) -> Vec<Effect> {
    let waiting = match step {
        Step::Rotate { target, scheduled } => {
            Some(Rotation { counter: target, scheduled: next_scheduled(obs, scheduled) })
        }
        Step::Recover { target } => Some(pending(obs, target)),
        _ => None,
    };
    vec![Effect::Record(Record::Suspended { waiting }), Effect::WriteStatus]
}

/// Decide, first half: which step, or the check that stops everything. The
/// Secret's ownership is checked before (`checks::writable`), ahead of the
/// wait for caches that finding a database conflict may need.
pub fn step(obs: &Observation) -> Result<Step> {
    let status = obs.resource.status.clone().unwrap_or_default();
    let pending = status.pending_rotation;
    if pending.is_none()
        && let Some(conflict) = &obs.conflict
    {
        return Err(database_conflict(obs, conflict));
    }
    let reset = status.reset.as_ref().filter(|_| pending.is_some());
    let before_intent = reset.and_then(|r| r.previous_credentials.clone());
    let secret_print = obs.target.read().and_then(secret::secret_fingerprint);
    // The pending intent's own write: its counter, and for a scheduled one
    // its number (the counter alone is the same as the write before it).
    let intent_scheduled = reset.and_then(|r| r.scheduled).unwrap_or(status.scheduled_rotations.unwrap_or(0));
    let written = obs.target.read().and_then(|s| secret::written(s, &obs.uid));
    Ok(next_step(Facts {
        spec_rotation: obs.resource.spec.rotation,
        applied_rotation: status.rotation,
        pending_rotation: pending,
        secret_rotation: written.filter(|w| w.scheduled == intent_scheduled).map(|w| w.rotation),
        secret_changed_since_intent: before_intent.is_none() || secret_print != before_intent,
        remembered: obs.remembered.is_some(),
        blind_resets_exhausted: reset.is_some_and(|r| r.blind_resets >= BLIND_RESET_LIMIT),
        deleting: obs.resource.metadata.deletion_timestamp.is_some(),
        schedule_due: obs.schedule_due(),
    }))
}

/// Decide, second half: the effects of `step`. `reset_window` is how long a
/// reset sent earlier may still be answered.
pub fn plan(step: Step, obs: &Observation, reset_window: Duration) -> Result<Vec<Effect>> {
    let resource = &obs.resource;
    let status = resource.status.clone().unwrap_or_default();
    let deleting = resource.metadata.deletion_timestamp.is_some();
    let secret_print = obs.target.read().and_then(secret::secret_fingerprint);
    match step {
        Step::Release => Ok(vec![Effect::WriteStatus, Effect::ReleaseFinalizer]),
        Step::WriteRemembered { target } => Ok(store_answer_and_finish(resource, pending(obs, target))),
        Step::FinishRecorded { target } => {
            let how = RotatedHow::SecretAlreadyHeldThem;
            let notice =
                Notice::Rotated { target: pending(obs, target), secret: resource.secret_name(), how };
            let mut effects = vec![
                Effect::Record(Record::Fingerprint(secret_print)),
                Effect::Record(Record::SecretVersion(secret_version(obs))),
            ];
            effects.extend(finish(resource, target, false, notice));
            Ok(effects)
        }
        Step::Sync { rotation } => {
            obs.api_credentials()?;
            let database = upstash_read(obs)?.map_err(Error::from)?;
            Ok(sync(obs, rotation, database.credentials.is_some()))
        }
        Step::Rotate { target, scheduled } => {
            obs.api_credentials()?;
            let number = next_scheduled(obs, scheduled);
            let mut effects = vec![Effect::ProveSecretWritable { target }];
            if guards_deletion(resource) && !has_finalizer(resource) {
                effects.push(Effect::AddFinalizer);
            }
            effects.extend([
                Effect::RecordIntent { target, blind: false, scheduled: number },
                Effect::Reset { target },
            ]);
            let rotation = Rotation { counter: target, scheduled: number };
            effects.extend(store_answer_and_finish(resource, rotation));
            Ok(effects)
        }
        Step::Recover { target } => {
            if let Err(e) = obs.api_credentials() {
                // Being deleted and unable to ever check: let the deletion proceed.
                return if deleting { Ok(abandon(target, e.to_string())) } else { Err(e) };
            }
            let database = match upstash_read(obs)? {
                Ok(db) => db,
                Err(e @ (UpstashError::DatabaseNotFound(_) | UpstashError::Unauthorized(_))) if deleting => {
                    return Ok(abandon(target, e.to_string()));
                }
                Err(e) => return Err(e.into()),
            };
            let upstash_now = database.credentials.as_ref().map(secret::fingerprint);
            let reset = status.reset.as_ref();
            let before_intent = reset.and_then(|r| r.previous_credentials.as_deref());
            match recovery_verdict(upstash_now.as_deref(), before_intent, secret_print.as_deref(), deleting) {
                verdict @ (Verdict::Adopt | Verdict::AdoptUnverified) => {
                    let mut effects = vec![Effect::StoreCurrent { rotation: target, guard: Guard::Rotation }];
                    let verified = verdict == Verdict::Adopt;
                    let notice = Notice::Recovered { target: pending(obs, target), verified };
                    effects.extend(finish(resource, target, true, notice));
                    Ok(effects)
                }
                Verdict::Reset => {
                    no_reset_in_flight(obs, target, reset_window)?;
                    let mut effects = vec![
                        Effect::RecordIntent { target, blind: false, scheduled: None },
                        Effect::Reset { target },
                    ];
                    effects.extend(store_answer_and_finish(resource, pending(obs, target)));
                    Ok(effects)
                }
                Verdict::ResetBlind => {
                    let blind = reset.map_or(0, |r| r.blind_resets);
                    if blind >= BLIND_RESET_LIMIT {
                        return Err(Error::NeedsAttention(format!(
                            "Upstash hides this database's credentials (Credential Protection) and the answers \
                             to {blind} resets for rotation {target} were lost, so Secret {} may hold a revoked \
                             password. No more resets are made on their own: raise spec.rotation to reset once \
                             more, or turn Credential Protection off in the Upstash console so the current \
                             credentials can be read",
                            resource.secret_name()
                        )));
                    }
                    no_reset_in_flight(obs, target, reset_window)?;
                    let mut effects = vec![
                        Effect::RecordIntent { target, blind: true, scheduled: None },
                        Effect::Publish(Notice::ResetRepeated { target, blind: blind + 1 }),
                        Effect::Reset { target },
                    ];
                    effects.extend(store_answer_and_finish(resource, pending(obs, target)));
                    Ok(effects)
                }
                Verdict::Abandon => Ok(abandon(target, "no reset is known to have happened".into())),
            }
        }
    }
}

/// Gives up an intent that can never be checked because the resource is
/// being deleted: no new reset, the deletion proceeds.
pub fn abandon(target: i64, why: String) -> Vec<Effect> {
    vec![
        Effect::Record(Record::Abandoned { target }),
        Effect::Publish(Notice::Abandoned { target, why }),
        Effect::WriteStatus,
        Effect::ReleaseFinalizer,
    ]
}

fn sync(obs: &Observation, rotation: i64, readable: bool) -> Vec<Effect> {
    let resource = &obs.resource;
    let secret = resource.secret_name();
    let database = resource.spec.database_id.clone();
    let existing = obs.target.read();
    let mut effects = Vec::new();
    if !readable {
        let (ready, reason, message) = match existing {
            Some(_) => (true, Reason::Synced, Message::ProtectedKept { secret }),
            None => (false, Reason::CredentialsUnavailable, Message::ProtectedNoSecret { secret }),
        };
        effects.extend([
            Effect::Record(Record::Synced { rotation }),
            Effect::Record(Record::Ready { ready, reason, message }),
            Effect::Record(Record::SecretVersion(secret_version(obs))),
        ]);
    } else {
        let first_sync = resource.status.as_ref().is_none_or(|s| s.rotation.is_none());
        let drifted = match (existing, upstash_data(obs)) {
            (Some(s), Some(desired)) => s.data.as_ref() != Some(&desired),
            _ => true,
        };
        // Upstash reports other credentials than the operator last stored.
        let recorded = resource.status.as_ref().and_then(|s| s.credentials_fingerprint.as_deref());
        let changed_outside =
            !first_sync && recorded.is_some() && recorded != upstash_fingerprint(obs).as_deref();
        effects.extend([
            Effect::StoreCurrent { rotation, guard: Guard::Sync },
            Effect::Record(Record::Synced { rotation }),
        ]);
        if changed_outside {
            effects.extend([
                Effect::Record(Record::ChangedOutside { rotation }),
                Effect::Publish(Notice::ChangedOutside { secret: secret.clone() }),
            ]);
        }
        // A steady state right after a rotation keeps saying so.
        let conditions = resource.status.as_ref().map(|s| s.conditions.as_slice()).unwrap_or_default();
        let just_rotated = conditions.iter().any(|c| c.type_ == READY && c.status == "True")
            && reason_of(conditions, READY) == Some(Reason::Rotated);
        if drifted || !just_rotated {
            let message = Message::Synced { secret: secret.clone(), database };
            effects.push(Effect::Record(Record::Ready { ready: true, reason: Reason::Synced, message }));
        }
        if drifted && !first_sync && !changed_outside {
            effects.push(Effect::Publish(Notice::DriftCorrected { secret, deleted: existing.is_none() }));
        }
    }
    effects.extend([Effect::RestartConsumers, Effect::WriteStatus, Effect::ReleaseFinalizer]);
    effects
}

fn store_answer_and_finish(resource: &RedisPasswordRotation, rotation: Rotation) -> Vec<Effect> {
    let how = RotatedHow::SecretWritten;
    let notice = Notice::Rotated { target: rotation, secret: resource.secret_name(), how };
    let target = rotation.counter;
    let mut effects = vec![Effect::StoreAnswer { target }];
    effects.extend(finish(resource, target, false, notice));
    effects
}

/// The number a new scheduled rotation gets (`None` for a counter one).
fn next_scheduled(obs: &Observation, scheduled: bool) -> Option<i64> {
    let so_far = obs.resource.status.as_ref().and_then(|s| s.scheduled_rotations).unwrap_or(0);
    scheduled.then(|| so_far.saturating_add(1))
}

/// The pending intent for `target`, as users read it.
fn pending(obs: &Observation, target: i64) -> Rotation {
    let status = obs.resource.status.as_ref();
    let reset = status
        .and_then(|s| s.reset.as_ref())
        .filter(|_| status.and_then(|s| s.pending_rotation) == Some(target));
    Rotation { counter: target, scheduled: reset.and_then(|r| r.scheduled) }
}

/// A warning goes out before the status that ends the rotation; the
/// `Rotated` report after it, queued: the status's history records the
/// rotation, so the event need not hold the rotation's last write back.
fn finish(resource: &RedisPasswordRotation, target: i64, recovered: bool, notice: Notice) -> Vec<Effect> {
    let mut effects = vec![Effect::Record(Record::Finished { target, recovered })];
    let report = if notice.is_warning() {
        effects.push(Effect::Publish(notice));
        None
    } else {
        Some(Effect::Publish(notice))
    };
    if resource.spec.verify {
        effects.push(Effect::Verify { target });
    }
    effects.extend([Effect::RestartConsumers, Effect::WriteStatus]);
    effects.extend(report);
    effects.push(Effect::ReleaseFinalizer);
    effects
}

fn upstash_read(obs: &Observation) -> Result<Result<upstash_api::RedisDatabase, UpstashError>> {
    // `reconcile` reads Upstash for every step that needs it; without a read
    // there is nothing safe to decide, so decide again.
    obs.upstash.clone().ok_or_else(|| Error::Stale("Upstash was not read; deciding again".into()))
}

/// Fingerprint of the credentials in Upstash's read.
fn upstash_fingerprint(obs: &Observation) -> Option<String> {
    let database = obs.upstash.as_ref()?.as_ref().ok()?;
    database.credentials.as_ref().map(secret::fingerprint)
}

/// The Secret data Upstash's read calls for.
fn upstash_data(obs: &Observation) -> Option<std::collections::BTreeMap<String, k8s_openapi::ByteString>> {
    let database = obs.upstash.as_ref()?.as_ref().ok()?;
    let template = obs.resource.spec.secret_template.as_deref();
    Some(secret::data(template, database, database.credentials.as_ref()?))
}

fn secret_version(obs: &Observation) -> Option<String> {
    obs.target.version().map(str::to_owned)
}

/// Whether a reset in flight must hold the resource's deletion until its
/// answer is stored: only where the Secret outlives the resource
/// (`deletionPolicy: Retain`). With `Delete` the Secret goes with the
/// resource, so holding the deletion would keep nothing, and the two
/// finalizer writes would cost every rotation.
fn guards_deletion(resource: &RedisPasswordRotation) -> bool {
    resource.spec.deletion_policy == DeletionPolicy::Retain
}

fn has_finalizer(resource: &RedisPasswordRotation) -> bool {
    resource.finalizers().iter().any(|f| f == super::FINALIZER)
}
