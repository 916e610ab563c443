//! One reconcile of one resource: gathers facts, follows `decide`, and
//! performs the Kubernetes and Upstash calls in the order that keeps every
//! password: intent before reset, Secret before status.

use std::time::Duration;

use k8s_openapi::{api::core::v1::Secret, apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};
use kube::{
    Api, Resource as _, ResourceExt as _,
    api::{Patch, PatchParams},
    runtime::events::{Event, EventType},
};
use serde_json::json;

use super::{
    context::{Context, Remembered},
    decide::{Facts, Step, Verdict, next_step, recovery_verdict},
    error::{Error, Result},
};
use crate::{
    conditions::{self, READY, ROTATING, reason},
    crd::{RedisPasswordRotation, RedisPasswordRotationStatus},
    metrics::ResultLabel,
    secret::{self, Ownership},
    upstash::{ApiCredentials, DatabaseCredentials, RedisDatabase, UpstashError},
};

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
    ctx: &'a Context,
    pub resource: RedisPasswordRotation,
    api: Api<RedisPasswordRotation>,
    secrets: Api<Secret>,
    observed: Observed,
    pub status: RedisPasswordRotationStatus,
    uid: String,
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

    pub fn record_error(&mut self, error: &Error) {
        let message = match error {
            Error::Upstash(e) => format!("database {}: {e}", self.resource.spec.database_id),
            other => other.to_string(),
        };
        self.set(READY, false, error.reason(), message);
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
        let existing = self.observed.target.take();
        writable(existing.as_ref(), &self.resource)?;
        let pending = self.status.pending_rotation;
        // A rotation in flight is finished even if another resource claims the
        // database meanwhile: its reset may already have happened.
        if pending.is_none() {
            self.check_database_conflict().await?;
        }
        let deleting = self.resource.metadata.deletion_timestamp.is_some();
        let facts = Facts {
            spec_rotation: self.resource.spec.rotation,
            applied_rotation: self.status.rotation,
            pending_rotation: pending,
            secret_rotation: existing.as_ref().and_then(|s| secret::written_rotation(s, &self.uid)),
            remembered: self.ctx.remembered(&self.uid).is_some_and(|r| Some(r.target) == pending),
            deleting,
        };
        let step = next_step(facts);
        tracing::debug!(?step, "next step");
        match step {
            Step::WriteRemembered { target } => self.write_remembered(target).await,
            Step::FinishRecorded { target } => {
                self.finish_rotation(target, EventType::Normal, "Rotated", "Secret already held them").await;
                Ok(())
            }
            Step::Release => Ok(()),
            Step::Sync { rotation } => {
                let credentials = self.api_credentials().await?;
                self.sync(&credentials, existing.as_ref(), rotation).await
            }
            Step::Rotate { target } => {
                let credentials = self.api_credentials().await?;
                self.rotate(&credentials, target).await
            }
            Step::Recover { target } => {
                let credentials = match self.api_credentials().await {
                    Ok(c) => c,
                    // Being deleted and unable to ever check: let the deletion proceed.
                    Err(e) if deleting => return self.abandon(target, &e.to_string()).await,
                    Err(e) => return Err(e),
                };
                self.recover(&credentials, existing.as_ref(), target).await
            }
        }
    }

    /// Email and API key from the referenced Secret in this namespace.
    async fn api_credentials(&self) -> Result<ApiCredentials> {
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

    /// Refuses to act when an older resource manages the same database.
    async fn check_database_conflict(&self) -> Result<()> {
        if !self.ctx.caches_ready(Duration::from_secs(30)).await {
            return Err(Error::NotReady(
                "cannot check for other resources on this database yet: the resource cache is not synced"
                    .into(),
            ));
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
            .filter(|o| key(o) < mine)
            .min_by_key(|o| key(o));
        match older {
            Some(other) => Err(Error::DatabaseConflict(format!(
                "database {} is already managed by RedisPasswordRotation {}/{}; delete this resource or that one",
                self.resource.spec.database_id,
                other.namespace().unwrap_or_default(),
                other.name_any()
            ))),
            None => Ok(()),
        }
    }

    /// Makes the Secret hold what Upstash reports now, without a reset.
    async fn sync(
        &mut self,
        credentials: &ApiCredentials,
        existing: Option<&Secret>,
        rotation: i64,
    ) -> Result<()> {
        let database = self.ctx.upstash.get_database(credentials, &self.resource.spec.database_id).await?;
        let secret_name = self.resource.secret_name();
        self.status.secret_name = Some(secret_name.clone());
        self.status.observed_generation = self.generation();
        let first_sync = self.status.rotation.is_none();
        self.status.rotation = Some(rotation);
        self.set(ROTATING, false, reason::IDLE, "no rotation in progress");

        let Some(current) = database.credentials.clone() else {
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
        self.apply_secret(&desired).await?;
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

    /// Records the intent, then resets once.
    async fn rotate(&mut self, credentials: &ApiCredentials, target: i64) -> Result<()> {
        self.ensure_finalizer().await?;
        self.status.pending_rotation = Some(target);
        self.set(
            ROTATING,
            true,
            reason::RESET_REQUESTED,
            format!("resetting the password for rotation {target}"),
        );
        self.set(READY, false, reason::ROTATING, format!("rotation {target} in progress"));
        // The intent must be stored before the reset: a restart then knows to
        // check with Upstash instead of resetting again.
        if let Err(e) = self.write_status(true).await {
            // Not stored, so nothing is in flight: the error path must not store it either.
            self.status.pending_rotation = None;
            self.set(ROTATING, false, reason::IDLE, format!("rotation {target} not started yet"));
            return Err(e);
        }
        self.rotation_started = Some(std::time::Instant::now());
        self.reset(credentials, target).await
    }

    async fn reset(&mut self, credentials: &ApiCredentials, target: i64) -> Result<()> {
        let id = self.resource.spec.database_id.clone();
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
                self.status.pending_rotation = None;
                self.set(ROTATING, false, reason::IDLE, format!("rotation {target} not started: {e}"));
                Err(e.into())
            }
        }
    }

    /// Writes the Secret from the reset response kept in memory, retrying the
    /// write (never the reset).
    async fn write_remembered(&mut self, target: i64) -> Result<()> {
        let Some(remembered) = self.ctx.remembered(&self.uid) else { return Ok(()) };
        let desired = secret::desired(&self.resource, &remembered.database, &remembered.credentials, target);
        let mut delay = Duration::from_millis(250);
        for attempt in 1..=SECRET_WRITE_ATTEMPTS {
            match self.apply_secret(&desired).await {
                Ok(()) => break,
                Err(e) if attempt == SECRET_WRITE_ATTEMPTS => return Err(e),
                Err(e) => {
                    tracing::warn!(attempt, error = %e, "writing the rotated Secret failed; retrying from memory");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
            }
        }
        self.ctx.forget(&self.uid);
        let secret_name = self.resource.secret_name();
        self.finish_rotation(target, EventType::Normal, "Rotated", &format!("Secret {secret_name} updated"))
            .await;
        Ok(())
    }

    /// Decides, with a GET, whether an unconfirmed reset happened.
    async fn recover(
        &mut self,
        credentials: &ApiCredentials,
        existing: Option<&Secret>,
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
        let comparison = database.credentials.as_ref().map(|c| existing.map(|s| secret::holds(s, c)));
        let verdict = recovery_verdict(comparison, deleting);
        if matches!(verdict, Verdict::Reset | Verdict::ResetBlind) {
            self.ensure_no_reset_in_flight(target)?;
        }
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
                        "the Secret was missing, so whether the reset happened could not be checked; stored the credentials Upstash reports, without a second reset (raise spec.rotation to force one)",
                    )
                };
                self.finish_rotation(target, kind, "RotationRecovered", note).await;
                Ok(())
            }
            Verdict::Reset => {
                tracing::info!(target, "the unconfirmed reset never happened; resetting now");
                self.reset(credentials, target).await
            }
            Verdict::ResetBlind => {
                self.publish(EventType::Warning, "ResetRepeated", format!(
                    "Upstash hides this database's credentials (Credential Protection), so whether the reset for \
                     rotation {target} happened cannot be checked; resetting again to obtain usable credentials"
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
    /// proves nothing, and resetting now could reset twice.
    fn ensure_no_reset_in_flight(&self, target: i64) -> Result<()> {
        let since = conditions::get(&self.status.conditions, ROTATING)
            .filter(|c| c.status == "True")
            .map(|c| c.last_transition_time.0);
        let Some(since) = since else { return Ok(()) };
        let age = self.now.duration_since(since).unsigned_abs();
        let window = self.ctx.reset_window;
        if age < window {
            return Err(Error::NotReady(format!(
                "the reset for rotation {target} was requested {}s ago and may still be in flight; Upstash is \
                 asked again after {}s before any new reset",
                age.as_secs(),
                window.as_secs()
            )));
        }
        Ok(())
    }

    /// Gives up an intent that can never be checked because the resource is
    /// being deleted: no new reset, the deletion proceeds.
    async fn abandon(&mut self, target: i64, why: &str) -> Result<()> {
        self.status.pending_rotation = None;
        self.set(ROTATING, false, reason::IDLE, format!("rotation {target} abandoned: resource deleted"));
        let note = format!(
            "the resource is being deleted and the reset for rotation {target} cannot be confirmed ({why}); no new \
             reset was made"
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
        self.apply_secret(&desired).await
    }

    async fn finish_rotation(&mut self, target: i64, kind: EventType, reason_: &str, detail: &str) {
        let secret_name = self.resource.secret_name();
        self.status.rotation = Some(target);
        self.status.pending_rotation = None;
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

    /// Applies the Secret, checking ownership again right before: a Secret
    /// someone created since the reconcile began is never taken over. Force is
    /// used only on a Secret that is already ours; a new one is created without
    /// it, so a concurrent creator's fields conflict instead of being overwritten.
    async fn apply_secret(&self, desired: &Secret) -> Result<()> {
        let name = desired.metadata.name.clone().unwrap_or_default();
        let current = self.secrets.get_opt(&name).await?;
        let params = if writable(current.as_ref(), &self.resource)? {
            PatchParams::apply(MANAGER).force()
        } else {
            PatchParams::apply(MANAGER)
        };
        self.secrets.patch(&name, &params, &Patch::Apply(desired)).await?;
        Ok(())
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
        if self.status.pending_rotation.is_some()
            || !self.resource.finalizers().iter().any(|f| f == FINALIZER)
        {
            return Ok(());
        }
        let finalizers = self.resource.finalizers().iter().filter(|f| *f != FINALIZER).cloned().collect();
        self.patch_finalizers(finalizers).await
    }

    /// Replaces the finalizer list, failing if the object changed meanwhile.
    async fn patch_finalizers(&mut self, finalizers: Vec<String>) -> Result<()> {
        let patch = json!({"metadata": {
            "finalizers": finalizers,
            "resourceVersion": self.resource.resource_version(),
        }});
        let name = self.resource.name_any();
        self.resource = self.api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
        Ok(())
    }

    /// Writes the status if it changed. With `precondition`, fails when the
    /// resource changed since it was read (another writer, a stale view).
    ///
    /// A JSON merge patch with explicit nulls, not server-side apply: a field
    /// someone else once set (`kubectl edit --subresource=status`) must still
    /// be cleared when the operator clears it.
    pub async fn write_status(&mut self, precondition: bool) -> Result<()> {
        if self.resource.status.as_ref() == Some(&self.status) {
            return Ok(());
        }
        let s = &self.status;
        let mut patch = json!({"status": {
            "observedGeneration": s.observed_generation,
            "rotation": s.rotation,
            "pendingRotation": s.pending_rotation,
            "lastRotationTime": s.last_rotation_time,
            "secretName": s.secret_name,
            "conditions": s.conditions,
        }});
        if precondition {
            patch["metadata"] = json!({"resourceVersion": self.resource.resource_version()});
        }
        let name = self.resource.name_any();
        self.resource = self.api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
        Ok(())
    }
}

/// Whether this resource may write `existing` (its target Secret): `Ok(true)`
/// when the Secret is already ours, `Ok(false)` when it does not exist yet,
/// and `SecretConflict` when it belongs to someone else.
fn writable(existing: Option<&Secret>, resource: &RedisPasswordRotation) -> Result<bool> {
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
