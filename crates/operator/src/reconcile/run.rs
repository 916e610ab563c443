//! One reconcile of one resource: gathers facts, follows `decide`, and
//! performs the Kubernetes and Upstash calls in the order that keeps every
//! password: intent before reset, Secret before status.

use std::time::Duration;

use k8s_openapi::{
    api::core::v1::Secret,
    apimachinery::pkg::apis::meta::v1::{MicroTime, Time},
    jiff::Timestamp,
};
use kube::{
    Api, Resource as _, ResourceExt as _,
    runtime::events::{Event, EventType},
};

use super::{
    context::{Context, Remembered},
    decide::{BLIND_RESET_LIMIT, Facts, Step, Verdict, next_step, recovery_verdict},
    error::{Error, Result, kube_message, namespace_terminating},
    writes::SecretWrite,
};
use crate::{
    conditions::{self, READY, ROTATING, reason},
    crd::{RedisPasswordRotation, RedisPasswordRotationStatus, ResetAttempt},
    metrics::ResultLabel,
    secret::{self, Ownership},
};
use upstash_api::{ApiCredentials, DatabaseCredentials, RedisDatabase, UpstashError};

/// Field manager of everything the operator writes.
pub const MANAGER: &str = "upstash-rotator";
/// Present only while a reset is in flight, so deletion cannot cut it in half.
pub const FINALIZER: &str = "upstash-rotator.io/rotation-in-flight";
/// Attempts at writing a Secret from a reset response before giving up
/// until the next reconcile (the response stays in memory).
const SECRET_WRITE_ATTEMPTS: u32 = 5;

/// The two Secrets a reconcile depends on, read once at its start.
pub struct Observed {
    /// The Secret this resource writes.
    pub target: Option<Secret>,
    /// The Secret holding the Upstash API email and key.
    pub credentials: Option<Secret>,
}

impl Observed {
    pub async fn read(secrets: &Api<Secret>, resource: &RedisPasswordRotation) -> Result<Self> {
        Ok(Self {
            target: secrets.get_opt(&resource.secret_name()).await?,
            credentials: secrets.get_opt(&resource.spec.credentials_secret_ref.name).await?,
        })
    }
}

pub struct Run<'a> {
    pub(super) ctx: &'a Context,
    pub resource: RedisPasswordRotation,
    pub(super) api: Api<RedisPasswordRotation>,
    pub(super) secrets: Api<Secret>,
    observed: Observed,
    pub status: RedisPasswordRotationStatus,
    pub(super) uid: String,
    now: Timestamp,
    /// When this process recorded the intent of the rotation it finishes.
    rotation_started: Option<std::time::Instant>,
}

impl<'a> Run<'a> {
    pub fn new(ctx: &'a Context, resource: RedisPasswordRotation, observed: Observed) -> Self {
        let namespace = resource.namespace().unwrap_or_default();
        Self {
            api: Api::namespaced(ctx.client.clone(), &namespace),
            secrets: Api::namespaced(ctx.client.clone(), &namespace),
            observed,
            status: resource.status.clone().unwrap_or_default(),
            uid: resource.uid().unwrap_or_default(),
            now: Timestamp::now(),
            rotation_started: None,
            ctx,
            resource,
        }
    }

    fn generation(&self) -> Option<i64> {
        self.resource.metadata.generation
    }

    fn set(&mut self, type_: &str, status: bool, reason: &str, message: impl Into<String>) {
        let generation = self.generation();
        conditions::set(&mut self.status.conditions, type_, status, reason, message, generation, self.now);
    }

    /// Puts the error on the conditions: `Ready` for failures, `Rotating`
    /// for a deliberate wait while a reset may be in flight.
    pub fn record_error(&mut self, error: &Error) {
        let message = match error {
            Error::Upstash(e) => format!("database {}: {e}", self.resource.spec.database_id),
            other => other.to_string(),
        };
        match error {
            Error::Waiting { reason, .. } if self.status.pending_rotation.is_some() => {
                self.set(ROTATING, true, reason, message);
            }
            _ => self.set(READY, false, error.reason(), message),
        }
        self.status.observed_generation = self.generation();
    }

    pub async fn publish(&self, type_: EventType, reason: &str, note: String) {
        let event = Event {
            type_,
            reason: reason.into(),
            note: Some(note),
            action: "Reconcile".into(),
            secondary: None,
        };
        let reference = self.resource.object_ref(&());
        if let Err(e) = self.ctx.recorder.publish(&event, &reference).await {
            tracing::warn!(error = %e, "cannot publish event");
        }
    }

    /// Follows the state machine one step.
    pub async fn execute(&mut self) -> Result<()> {
        self.ctx.fence.check()?;
        let existing = self.observed.target.take();
        writable(existing.as_ref(), &self.resource)?;
        let pending = self.status.pending_rotation;
        // A rotation in flight is finished even if another resource claims the
        // database meanwhile: its reset may already have happened.
        if pending.is_none() {
            self.check_database_conflict().await?;
        }
        let deleting = self.resource.metadata.deletion_timestamp.is_some();
        let reset = self.status.reset.clone().filter(|_| pending.is_some());
        let before_intent = reset.as_ref().and_then(|r| r.previous_credentials.clone());
        let secret_print = existing.as_ref().and_then(secret::secret_fingerprint);
        let facts = Facts {
            spec_rotation: self.resource.spec.rotation,
            applied_rotation: self.status.rotation,
            pending_rotation: pending,
            secret_rotation: existing.as_ref().and_then(|s| secret::written_rotation(s, &self.uid)),
            secret_changed_since_intent: before_intent.is_none() || secret_print != before_intent,
            remembered: self.ctx.remembered(&self.uid).is_some_and(|r| Some(r.target) == pending),
            blind_resets_exhausted: reset.as_ref().is_some_and(|r| r.blind_resets >= BLIND_RESET_LIMIT),
            deleting,
        };
        let step = next_step(facts);
        tracing::debug!(?step, "next step");
        match step {
            Step::WriteRemembered { target } => self.write_remembered(target).await,
            Step::FinishRecorded { target } => {
                self.status.credentials_fingerprint = secret_print;
                self.finish_rotation(target, EventType::Normal, "Rotated", "Secret already held them").await;
                Ok(())
            }
            Step::Release => Ok(()),
            Step::Sync { rotation } => {
                let credentials = self.api_credentials()?;
                self.sync(&credentials, existing.as_ref(), rotation).await
            }
            Step::Rotate { target } => {
                let credentials = self.api_credentials()?;
                self.rotate(&credentials, existing.as_ref(), target).await
            }
            Step::Recover { target } => {
                let credentials = match self.api_credentials() {
                    Ok(c) => c,
                    // Being deleted and unable to ever check: let the deletion proceed.
                    Err(e) if deleting => return self.abandon(target, &e.to_string()).await,
                    Err(e) => return Err(e),
                };
                self.recover(&credentials, secret_print.as_deref(), target).await
            }
        }
    }

    /// Email and API key from the referenced Secret in this namespace.
    fn api_credentials(&self) -> Result<ApiCredentials> {
        let reference = &self.resource.spec.credentials_secret_ref;
        let secret = self.observed.credentials.as_ref().ok_or_else(|| {
            Error::CredentialsSecretMissing(format!(
                "Secret {} with the Upstash API email and key does not exist in this namespace",
                reference.name
            ))
        })?;
        let value = |key: &str| {
            secret
                .data
                .as_ref()
                .and_then(|d| d.get(key))
                .and_then(|v| std::str::from_utf8(&v.0).ok())
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
                .ok_or_else(|| {
                    Error::CredentialsSecretMissing(format!(
                        "Secret {} has no non-empty key {key:?}",
                        reference.name
                    ))
                })
        };
        Ok(ApiCredentials { email: value(&reference.email_key)?, api_key: value(&reference.api_key_key)? })
    }

    /// Refuses to act when an older resource that has synced successfully
    /// manages the same database. Only synced ones count: a resource with a
    /// bogus key and someone else's database id must not block the real one.
    async fn check_database_conflict(&self) -> Result<()> {
        if !self.ctx.caches_ready(Duration::from_secs(30)).await {
            return Err(Error::Waiting {
                reason: reason::STARTING,
                message:
                    "waiting for the operator's resource cache before checking for other resources on this \
                          database"
                        .into(),
                retry: Duration::from_secs(1),
            });
        }
        let key = |r: &RedisPasswordRotation| {
            (
                r.metadata.creation_timestamp.clone().map(|t| t.0),
                r.namespace().unwrap_or_default(),
                r.name_any(),
            )
        };
        let mine = key(&self.resource);
        let older = self
            .ctx
            .stores
            .iter()
            .flat_map(|s| s.state())
            .filter(|o| o.uid().as_deref() != Some(self.uid.as_str()))
            .filter(|o| o.spec.database_id == self.resource.spec.database_id)
            .filter(|o| o.status.as_ref().is_some_and(|s| s.rotation.is_some()))
            .filter(|o| key(o) < mine)
            .min_by_key(|o| key(o));
        let Some(other) = older else { return Ok(()) };
        // Another namespace's resource names are not this namespace's business.
        let who = if other.namespace() == self.resource.namespace() {
            format!("RedisPasswordRotation {}", other.name_any())
        } else {
            "an older RedisPasswordRotation in another namespace".to_owned()
        };
        Err(Error::DatabaseConflict(format!(
            "database {} is already managed by {who}; delete this resource or that one",
            self.resource.spec.database_id
        )))
    }

    /// Makes the Secret hold what Upstash reports now, without a reset. The
    /// status records the rotation only once the Secret holds it.
    async fn sync(
        &mut self,
        credentials: &ApiCredentials,
        existing: Option<&Secret>,
        rotation: i64,
    ) -> Result<()> {
        let database = self.ctx.upstash.get_database(credentials, &self.resource.spec.database_id).await?;
        let secret_name = self.resource.secret_name();
        let first_sync = self.status.rotation.is_none();

        let Some(current) = database.credentials.clone() else {
            self.record_sync(rotation, None);
            if existing.is_some() {
                self.set(READY, true, reason::SYNCED, format!(
                    "Upstash hides this database's credentials (Credential Protection), so Secret {secret_name} \
                     cannot be verified; it keeps the credentials of the last rotation"
                ));
            } else {
                self.set(READY, false, reason::CREDENTIALS_UNAVAILABLE, format!(
                    "Upstash does not return this database's credentials (Credential Protection); raise \
                     spec.rotation to reset the password and store the new credentials in Secret {secret_name}"
                ));
            }
            return Ok(());
        };
        let desired = secret::desired(&self.resource, &database, &current, rotation);
        let drifted = existing.is_none_or(|s| s.data != desired.data);
        let observed_version = existing.and_then(|s| s.metadata.resource_version.as_deref());
        self.apply_secret(&desired, SecretWrite::Sync { observed_version }).await.map_err(|e| match e {
            Error::Kube(k) => Error::SecretNotWritable(format!(
                "Secret {secret_name} cannot be written: {}",
                kube_message(&k)
            )),
            other => other,
        })?;
        self.record_sync(rotation, Some(secret::fingerprint(&current)));
        if drifted && !first_sync {
            let what = if existing.is_none() { "was deleted" } else { "was edited" };
            self.publish(
                EventType::Normal,
                "DriftCorrected",
                format!(
                    "Secret {secret_name} {what}; restored the database's current credentials without a reset"
                ),
            )
            .await;
        }
        // A steady state right after a rotation keeps saying so.
        let just_rotated = conditions::get(&self.status.conditions, READY)
            .is_some_and(|c| c.status == "True" && c.reason == reason::ROTATED);
        if drifted || !just_rotated {
            let message = format!(
                "Secret {secret_name} holds the current credentials of database {}",
                self.resource.spec.database_id
            );
            self.set(READY, true, reason::SYNCED, message);
        }
        Ok(())
    }

    fn record_sync(&mut self, rotation: i64, fingerprint: Option<String>) {
        self.status.secret_name = Some(self.resource.secret_name());
        self.status.observed_generation = self.generation();
        self.status.rotation = Some(rotation);
        if fingerprint.is_some() {
            self.status.credentials_fingerprint = fingerprint;
        }
        self.set(ROTATING, false, reason::IDLE, "no rotation in progress");
    }

    /// Checks that the answer can be stored, records the intent, then
    /// resets once.
    async fn rotate(
        &mut self,
        credentials: &ApiCredentials,
        existing: Option<&Secret>,
        target: i64,
    ) -> Result<()> {
        self.check_secret_writable(existing, target).await?;
        self.ensure_finalizer().await?;
        self.start_attempt(target, false).await?;
        self.rotation_started = Some(std::time::Instant::now());
        self.reset(credentials, target).await
    }

    /// Records a reset attempt as this process's, then reads it back. Only a
    /// process that finds its own attempt there, and still holds its lease,
    /// sends the reset: a process that was paused finds another holder, a
    /// higher attempt or an expired lease, and stops.
    async fn start_attempt(&mut self, target: i64, blind: bool) -> Result<()> {
        let earlier = self.status.reset.clone().filter(|_| self.status.pending_rotation == Some(target));
        let previous_credentials = match (&earlier, self.status.pending_rotation) {
            (Some(r), _) => r.previous_credentials.clone(),
            // A new intent over an unfinished one: what Upstash has is unknown.
            (None, Some(_)) => None,
            (None, None) => self.status.credentials_fingerprint.clone(),
        };
        let attempt = ResetAttempt {
            holder: self.ctx.identity.clone(),
            attempt: earlier.as_ref().map_or(1, |r| r.attempt.saturating_add(1)),
            requested_at: MicroTime(now_in_microseconds()),
            previous_credentials,
            blind_resets: earlier.as_ref().map_or(0, |r| r.blind_resets) + i64::from(blind),
        };
        let stored = self.status.clone();
        self.status.pending_rotation = Some(target);
        self.status.reset = Some(attempt.clone());
        self.set(
            ROTATING,
            true,
            reason::RESET_REQUESTED,
            format!("resetting the password for rotation {target} (attempt {})", attempt.attempt),
        );
        self.set(READY, false, reason::ROTATING, format!("rotation {target} in progress"));
        // The intent must be stored before the reset: a restart then knows to
        // check with Upstash instead of resetting again.
        if let Err(e) = self.write_status().await {
            // Not stored, so nothing is in flight: the error path must not
            // report it either.
            self.status = stored;
            return Err(e);
        }
        self.ctx.fence.check()?;
        let fresh = self.api.get(&self.resource.name_any()).await?;
        let mine = fresh
            .status
            .as_ref()
            .is_some_and(|s| s.pending_rotation == Some(target) && s.reset.as_ref() == Some(&attempt));
        if !mine {
            return Err(Error::Stale(format!(
                "another process recorded a reset for rotation {target} after this one; deciding again"
            )));
        }
        self.ctx.fence.check()?;
        Ok(())
    }

    async fn reset(&mut self, credentials: &ApiCredentials, target: i64) -> Result<()> {
        let id = self.resource.spec.database_id.clone();
        self.ctx.fence.check()?;
        match self.ctx.upstash.reset_password(credentials, &id).await {
            Ok(database) => {
                let Some(new) = database.credentials.clone() else {
                    // Applied, but unusable: only a GET can recover them.
                    self.set(ROTATING, true, reason::RECOVERING, format!(
                        "the reset for rotation {target} answered without credentials; reading them back from Upstash"
                    ));
                    return Err(Error::Upstash(UpstashError::InvalidResponse(
                        "the reset answered without credentials".into(),
                    )));
                };
                self.ctx.remember(&self.uid, Remembered { target, database, credentials: new });
                self.write_remembered(target).await
            }
            Err(e) if e.reset_may_have_happened() => {
                self.set(ROTATING, true, reason::RECOVERING, format!(
                    "the outcome of the reset for rotation {target} is unknown; Upstash will be asked before any \
                     new reset"
                ));
                Err(e.into())
            }
            Err(e) => {
                self.ctx.metrics.rotations.get_or_create(&ResultLabel { result: "failed" }).inc();
                // Certainly not applied: the rotation can start over later.
                // Cleared on the same precondition as every status write; if
                // that fails the intent stays and is recovered with a GET.
                self.status.pending_rotation = None;
                self.status.reset = None;
                self.set(ROTATING, false, reason::IDLE, format!("rotation {target} not started: {e}"));
                let error = Error::from(e);
                self.record_error(&error);
                if let Err(write) = self.write_status().await {
                    tracing::warn!(error = %write, "cannot clear the refused intent; it is recovered later");
                }
                Err(error)
            }
        }
    }

    /// Writes the Secret from the reset response kept in memory, retrying the
    /// write (never the reset).
    async fn write_remembered(&mut self, target: i64) -> Result<()> {
        let Some(remembered) = self.ctx.remembered(&self.uid) else { return Ok(()) };
        let desired = secret::desired(&self.resource, &remembered.database, &remembered.credentials, target);
        let secret_name = self.resource.secret_name();
        let mut delay = Duration::from_millis(250);
        for attempt in 1..=SECRET_WRITE_ATTEMPTS {
            match self.apply_secret(&desired, SecretWrite::Rotation { target }).await {
                Ok(()) => break,
                Err(Error::Kube(e)) if namespace_terminating(&e) => {
                    self.ctx.forget(&self.uid);
                    return self.abandon(target, "the namespace is being deleted").await;
                }
                Err(Error::Kube(e)) if attempt == SECRET_WRITE_ATTEMPTS => {
                    return Err(Error::SecretWriteFailed(format!(
                        "the password was reset for rotation {target} but Secret {secret_name} cannot be written \
                         ({}); the new credentials are held in memory and the write is retried",
                        kube_message(&e)
                    )));
                }
                Err(Error::Kube(e)) => {
                    tracing::warn!(attempt, error = %kube_message(&e), "writing the rotated Secret failed; retrying from memory");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                Err(other) => return Err(other),
            }
        }
        self.ctx.forget(&self.uid);
        self.status.credentials_fingerprint = Some(secret::fingerprint(&remembered.credentials));
        self.finish_rotation(target, EventType::Normal, "Rotated", &format!("Secret {secret_name} updated"))
            .await;
        Ok(())
    }

    /// Decides, with a GET, whether an unconfirmed reset happened.
    /// `secret_print` is the fingerprint of what the Secret holds, if anything.
    async fn recover(
        &mut self,
        credentials: &ApiCredentials,
        secret_print: Option<&str>,
        target: i64,
    ) -> Result<()> {
        let deleting = self.resource.metadata.deletion_timestamp.is_some();
        let database = match self.ctx.upstash.get_database(credentials, &self.resource.spec.database_id).await
        {
            Ok(db) => db,
            Err(e @ (UpstashError::DatabaseNotFound(_) | UpstashError::Unauthorized(_))) if deleting => {
                return self.abandon(target, &e.to_string()).await;
            }
            Err(e) => return Err(e.into()),
        };
        let upstash_now = database.credentials.as_ref().map(secret::fingerprint);
        let reset = self.status.reset.clone();
        let before_intent = reset.as_ref().and_then(|r| r.previous_credentials.clone());
        let verdict =
            recovery_verdict(upstash_now.as_deref(), before_intent.as_deref(), secret_print, deleting);
        match verdict {
            verdict @ (Verdict::Adopt | Verdict::AdoptUnverified) => {
                let Some(current) = database.credentials.clone() else { return Ok(()) };
                self.adopt(&database, &current, target).await?;
                let (kind, note) = if verdict == Verdict::Adopt {
                    (
                        EventType::Normal,
                        "the reset had happened although its answer was lost; stored the credentials Upstash reports, without a second reset",
                    )
                } else {
                    (
                        EventType::Warning,
                        "whether the reset happened could not be checked (no record of the credentials before it, and no Secret); stored the credentials Upstash reports, without a second reset (raise spec.rotation to force one)",
                    )
                };
                self.finish_rotation(target, kind, "RotationRecovered", note).await;
                Ok(())
            }
            Verdict::Reset => {
                self.ensure_no_reset_in_flight(target)?;
                tracing::info!(target, "the unconfirmed reset never happened; resetting now");
                self.start_attempt(target, false).await?;
                self.reset(credentials, target).await
            }
            Verdict::ResetBlind => {
                let blind = reset.as_ref().map_or(0, |r| r.blind_resets);
                if blind >= BLIND_RESET_LIMIT {
                    return Err(Error::NeedsAttention(format!(
                        "Upstash hides this database's credentials (Credential Protection) and the answers to \
                         {blind} resets for rotation {target} were lost, so Secret {} may hold a revoked password. \
                         No more resets are made on their own: raise spec.rotation to reset once more, or turn \
                         Credential Protection off in the Upstash console so the current credentials can be read",
                        self.resource.secret_name()
                    )));
                }
                self.ensure_no_reset_in_flight(target)?;
                self.start_attempt(target, true).await?;
                self.publish(EventType::Warning, "ResetRepeated", format!(
                    "Upstash hides this database's credentials (Credential Protection), so whether the reset for \
                     rotation {target} happened cannot be checked; resetting again to obtain usable credentials \
                     (blind reset {} of at most {BLIND_RESET_LIMIT})",
                    blind + 1
                ))
                .await;
                self.reset(credentials, target).await
            }
            Verdict::Abandon => self.abandon(target, "no reset is known to have happened").await,
        }
    }

    /// Another process (a previous leader, a replica without election) may
    /// still be waiting for the answer to a reset it sent for this intent.
    /// Until that request must have ended, a GET showing the old credentials
    /// proves nothing, and resetting now could reset twice. Measured from the
    /// latest attempt; a time in the future (clock skew) counts as in flight.
    fn ensure_no_reset_in_flight(&self, target: i64) -> Result<()> {
        let since = match &self.status.reset {
            Some(reset) => reset.requested_at.0,
            None => match conditions::get(&self.status.conditions, ROTATING).filter(|c| c.status == "True") {
                Some(c) => c.last_transition_time.0,
                None => return Ok(()),
            },
        };
        let window = self.ctx.reset_window;
        let age = Timestamp::now().duration_since(since);
        let wait = match Duration::try_from(age) {
            Ok(age) if age >= window => return Ok(()),
            Ok(age) => window - age,
            Err(_) => window,
        };
        Err(Error::Waiting {
            reason: reason::RESET_IN_FLIGHT,
            message: format!(
                "the last reset for rotation {target} may still be answered; Upstash is asked again in {}s, \
                 before any new reset",
                wait.as_secs().max(1)
            ),
            retry: wait,
        })
    }

    /// Gives up an intent that can never be checked because the resource is
    /// being deleted: no new reset, the deletion proceeds.
    async fn abandon(&mut self, target: i64, why: &str) -> Result<()> {
        self.status.pending_rotation = None;
        self.status.reset = None;
        self.set(ROTATING, false, reason::IDLE, format!("rotation {target} abandoned: resource deleted"));
        let note = format!(
            "the resource is being deleted and the rotation {target} cannot be finished ({why}); no new reset was \
             made"
        );
        self.publish(EventType::Warning, "RotationAbandoned", note).await;
        Ok(())
    }

    async fn adopt(
        &mut self,
        database: &RedisDatabase,
        current: &DatabaseCredentials,
        target: i64,
    ) -> Result<()> {
        let desired = secret::desired(&self.resource, database, current, target);
        self.apply_secret(&desired, SecretWrite::Rotation { target }).await?;
        self.status.credentials_fingerprint = Some(secret::fingerprint(current));
        Ok(())
    }

    async fn finish_rotation(&mut self, target: i64, kind: EventType, reason_: &str, detail: &str) {
        let secret_name = self.resource.secret_name();
        self.status.rotation = Some(target);
        self.status.pending_rotation = None;
        self.status.reset = None;
        self.status.secret_name = Some(secret_name.clone());
        self.status.last_rotation_time = Some(Time(self.now));
        self.status.observed_generation = self.generation();
        self.set(ROTATING, false, reason::IDLE, "no rotation in progress");
        self.set(
            READY,
            true,
            reason::ROTATED,
            format!(
                "rotation {target} applied: Secret {secret_name} holds the new credentials of database {}",
                self.resource.spec.database_id
            ),
        );
        self.publish(kind, reason_, format!("rotation {target}: {detail}")).await;
        let result = if reason_ == "Rotated" { "rotated" } else { "recovered" };
        let took = self.rotation_started.map(|t| t.elapsed());
        let (namespace, name) = (self.resource.namespace().unwrap_or_default(), self.resource.name_any());
        self.ctx.metrics.rotated(&namespace, &name, result, took, self.now.as_second());
    }

    async fn ensure_finalizer(&mut self) -> Result<()> {
        if self.resource.finalizers().iter().any(|f| f == FINALIZER) {
            return Ok(());
        }
        let mut finalizers = self.resource.finalizers().to_vec();
        finalizers.push(FINALIZER.into());
        self.patch_finalizers(finalizers).await
    }

    pub async fn release_finalizer(&mut self) -> Result<()> {
        let stored_pending = self.resource.status.as_ref().and_then(|s| s.pending_rotation);
        if self.status.pending_rotation.is_some()
            || stored_pending.is_some()
            || !self.resource.finalizers().iter().any(|f| f == FINALIZER)
        {
            return Ok(());
        }
        let finalizers = self.resource.finalizers().iter().filter(|f| *f != FINALIZER).cloned().collect();
        self.patch_finalizers(finalizers).await
    }
}

/// Now, at the precision the apiserver stores a `MicroTime` with.
fn now_in_microseconds() -> Timestamp {
    let now = Timestamp::now();
    Timestamp::from_microsecond(now.as_microsecond()).unwrap_or(now)
}

/// Whether this resource may write `existing` (its target Secret): `Ok(true)`
/// when the Secret is already ours, `Ok(false)` when it does not exist yet,
/// and `SecretConflict` when it belongs to someone else.
pub(super) fn writable(existing: Option<&Secret>, resource: &RedisPasswordRotation) -> Result<bool> {
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
