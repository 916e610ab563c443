//! Execute: runs a plan's effects in order through `KubeOps` and
//! `UpstashOps`, stopping at the first failure. What a failure leaves behind
//! is safe by the plan's order: an intent without a reset, a reset answer in
//! memory without its Secret, a Secret without its status.

use std::{collections::VecDeque, time::Duration};

use k8s_openapi::jiff::Timestamp;
use kube::{Resource as _, ResourceExt as _};
use upstash_api::{ApiCredentials, DatabaseCredentials, RedisDatabase, UpstashError};

use super::{
    context::{Context, Remembered},
    error::{Error, Result, kube_message, namespace_terminating},
    messages::{Message, Notice},
    observe::{Observation, Target},
    ops::{KubeOps, RespEndpoint, UpstashOps},
    plan::{self, Effect, Guard, Record},
    status::Draft,
    verify::{Check, Credentials},
};
use crate::{
    conditions::{ROTATING, Reason},
    crd::RedisPasswordRotation,
    metrics::ResultLabel,
    secret,
};

/// Attempts at writing a Secret from a reset answer before giving up until
/// the next reconcile (the answer stays in memory).
const SECRET_WRITE_ATTEMPTS: u32 = 5;

/// What the run does after an effect.
pub enum Flow {
    Continue,
    /// The rest of the plan no longer applies (nothing left to store).
    Stop,
    /// The rest of the plan is replaced (the namespace is going away).
    Instead(Vec<Effect>),
}

/// One reconcile's execution state.
pub struct Run<'a, K, U> {
    pub(super) ctx: &'a Context<K, U>,
    /// As last read or written: each write's precondition is its version.
    pub(super) resource: RedisPasswordRotation,
    pub(super) namespace: String,
    pub(super) uid: String,
    pub draft: Draft,
    /// The target Secret as observed when the reconcile began; one left
    /// unread is read by the rotation's dry run.
    pub(super) existing: Target,
    /// Whether `existing` may still be the Secret as stored: true until this
    /// reconcile writes it or a write over it fails.
    pub(super) existing_unwritten: bool,
    upstash: Option<RedisDatabase>,
    auth: Option<ApiCredentials>,
    rotation_started: Option<std::time::Instant>,
    /// What `Effect::Verify` checks: set when a rotation's Secret is written.
    pub(super) check: Option<Check>,
}

impl<'a, K: KubeOps, U: UpstashOps> Run<'a, K, U> {
    pub fn new(ctx: &'a Context<K, U>, obs: &Observation) -> Self {
        Self {
            ctx,
            resource: obs.resource.clone(),
            namespace: obs.resource.namespace().unwrap_or_default(),
            uid: obs.uid.clone(),
            draft: Draft::new(&obs.resource, obs.now),
            existing: obs.target.clone(),
            existing_unwritten: true,
            upstash: None,
            auth: None,
            rotation_started: None,
            check: None,
        }
    }

    /// Takes what the plan was made from: Upstash's read and the API key.
    pub fn with_observation(&mut self, obs: Observation) {
        self.auth = obs.api_credentials().ok();
        self.upstash = obs.upstash.and_then(Result::ok);
    }

    /// Runs the effects in order; the first failure ends the run.
    pub async fn run(&mut self, effects: Vec<Effect>) -> Result<()> {
        let mut queue = VecDeque::from(effects);
        while let Some(effect) = queue.pop_front() {
            let flow = match (effect, queue.front()) {
                (Effect::Publish(notice), Some(&Effect::Verify { target })) => {
                    queue.pop_front();
                    self.publish_while_verifying(&notice, target).await;
                    Flow::Continue
                }
                (effect, _) => self.apply(effect).await?,
            };
            match flow {
                Flow::Continue => {}
                Flow::Stop => break,
                Flow::Instead(next) => {
                    tracing::debug!(effects = ?next, "plan replaced");
                    queue = next.into();
                }
            }
        }
        Ok(())
    }

    async fn apply(&mut self, effect: Effect) -> Result<Flow> {
        match effect {
            Effect::ProveSecretWritable { target } => self.prove_secret_writable(target).await?,
            Effect::AddFinalizer => self.add_finalizer().await?,
            Effect::RecordIntent { target, blind, scheduled } => {
                self.record_intent(target, blind, scheduled).await?
            }
            Effect::Reset { target } => self.reset(target).await?,
            Effect::StoreAnswer { target } => return self.store_answer(target).await,
            Effect::StoreCurrent { rotation, guard } => self.store_current(rotation, guard).await?,
            Effect::Record(record) => {
                self.count(&record);
                self.draft.apply(&record);
            }
            Effect::WriteStatus => self.write_status().await?,
            Effect::Publish(notice) => self.publish(&notice).await,
            Effect::ReleaseFinalizer => self.release_finalizer().await?,
            Effect::RestartConsumers => self.restart_consumers().await?,
            Effect::Verify { target } => self.verify(target).await,
        }
        Ok(Flow::Continue)
    }

    fn auth(&self) -> Result<&ApiCredentials> {
        self.auth
            .as_ref()
            .ok_or_else(|| Error::Stale("the Upstash API key was not read; deciding again".into()))
    }

    /// Records a reset attempt as this process's. The write carries the
    /// `resourceVersion` the step was decided on, so it succeeds only if no
    /// one wrote the resource since: then the stored attempt is this one,
    /// with no read back. A process that was paused fails the precondition
    /// (another holder wrote meanwhile) or the lease check after it, and
    /// stops before the reset.
    async fn record_intent(&mut self, target: i64, blind: bool, scheduled: Option<i64>) -> Result<()> {
        let attempt = self.draft.next_attempt(target, &self.ctx.identity, blind, scheduled);
        let stored = self.draft.status.clone();
        self.draft.record_intent(target, attempt.clone());
        // The intent must be stored before the reset: a restart then knows to
        // check with Upstash instead of resetting again.
        if let Err(e) = self.write_status().await {
            // Not stored, so nothing is in flight: the error path must not
            // report it either.
            self.draft.status = stored;
            return Err(e);
        }
        self.ctx.fence.check()?;
        Ok(())
    }

    async fn reset(&mut self, target: i64) -> Result<()> {
        let auth = self.auth()?.clone();
        self.ctx.fence.check()?;
        self.rotation_started = Some(std::time::Instant::now());
        match self.ctx.upstash.reset_password(&auth, &self.resource.spec.database_id).await {
            Ok(database) => {
                let Some(credentials) = database.credentials.clone() else {
                    // Applied, but unusable: only a read can recover them.
                    self.draft.set(
                        ROTATING,
                        true,
                        Reason::Recovering,
                        &Message::AnswerWithoutCredentials { target },
                    );
                    return Err(Error::Upstash(UpstashError::InvalidResponse(
                        "the reset answered without credentials".into(),
                    )));
                };
                self.ctx.remember(&self.uid, Remembered { target, database, credentials });
                Ok(())
            }
            Err(e) if e.reset_may_have_happened() => {
                self.draft.set(ROTATING, true, Reason::Recovering, &Message::OutcomeUnknown { target });
                Err(e.into())
            }
            Err(e) => {
                self.ctx.metrics.rotations.get_or_create(&ResultLabel { result: "failed" }).inc();
                // Certainly not applied: the rotation can start over later.
                // Cleared on the same precondition as every status write; if
                // that fails the intent stays and is recovered with a read.
                self.draft.clear_intent();
                let message = Message::NotStarted { target, why: e.to_string() };
                self.draft.set(ROTATING, false, Reason::Idle, &message);
                let error = Error::from(e);
                self.draft.record_error(&error);
                if let Err(write) = self.write_status().await {
                    tracing::warn!(error = %write, "cannot clear the refused intent; it is recovered later");
                }
                Err(error)
            }
        }
    }

    /// Writes the Secret from the reset answer kept in memory, retrying the
    /// write (never the reset).
    async fn store_answer(&mut self, target: i64) -> Result<Flow> {
        let Some(answer) = self.ctx.remembered(&self.uid).filter(|r| r.target == target) else {
            return Ok(Flow::Stop);
        };
        let written = self.draft.written(target);
        let desired = secret::desired(&self.resource, &answer.database, &answer.credentials, written);
        let mut delay = Duration::from_millis(250);
        for attempt in 1..=SECRET_WRITE_ATTEMPTS {
            match self.write_secret(&desired, Guard::Rotation, written).await {
                Ok(version) => {
                    self.draft.status.secret_resource_version = version;
                    break;
                }
                Err(Error::Kube(e)) if namespace_terminating(&e) => {
                    self.ctx.forget(&self.uid);
                    return Ok(Flow::Instead(plan::abandon(target, "the namespace is being deleted".into())));
                }
                Err(Error::Kube(e)) if attempt == SECRET_WRITE_ATTEMPTS => {
                    return Err(Error::SecretWriteFailed(format!(
                        "the password was reset for rotation {target} but Secret {} cannot be written ({}); the \
                         new credentials are held in memory and the write is retried",
                        self.resource.secret_name(),
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
        self.draft.status.credentials_fingerprint = Some(secret::fingerprint(&answer.credentials));
        self.check = Some(self.check_of(target, &answer.database, &answer.credentials));
        Ok(Flow::Continue)
    }

    /// Writes what Upstash reported in this reconcile's read.
    async fn store_current(&mut self, rotation: i64, guard: Guard) -> Result<()> {
        let database = self.upstash.clone().ok_or_else(|| Error::Stale("Upstash was not read".into()))?;
        // Plans store only a read that carries credentials.
        let Some(current) = database.credentials.clone() else {
            return Err(Error::Stale("Upstash's read carries no credentials; deciding again".into()));
        };
        let written = self.draft.written(rotation);
        let desired = secret::desired(&self.resource, &database, &current, written);
        let version = self.write_secret(&desired, guard, written).await.map_err(|e| match (guard, e) {
            (Guard::Sync, Error::Kube(k)) => Error::SecretNotWritable(format!(
                "Secret {} cannot be written: {}",
                self.resource.secret_name(),
                kube_message(&k)
            )),
            (_, other) => other,
        })?;
        self.draft.status.credentials_fingerprint = Some(secret::fingerprint(&current));
        self.draft.status.secret_resource_version = version;
        if guard == Guard::Rotation {
            self.check = Some(self.check_of(rotation, &database, &current));
        }
        Ok(())
    }

    /// What verifying rotation `target` needs: the new token, and the one
    /// the Secret held when this reconcile began.
    fn check_of(&self, target: i64, database: &RedisDatabase, credentials: &DatabaseCredentials) -> Check {
        let old = self.existing.read().and_then(secret::stored_credentials).and_then(|(password, token)| {
            Some(Credentials {
                token: String::from_utf8(token).ok()?,
                password: String::from_utf8(password).ok()?,
            })
        });
        Check {
            rotation: self.draft.rotation(target),
            rest_url: database.rest_url(),
            resp: RespEndpoint { host: database.host.clone(), port: database.port, tls: database.tls },
            new: Credentials {
                token: credentials.rest_token.clone(),
                password: credentials.password.clone(),
            },
            old,
        }
    }

    /// The next scheduled rotation, for the overdue alert.
    pub fn report_schedule(&self, next: Option<Timestamp>) {
        let name = self.resource.name_any();
        self.ctx.metrics.scheduled(&self.namespace, &name, next.map(|t| t.as_second()));
    }

    /// A warning is awaited, and plans publish it before the status that
    /// ends its step: a crash in between repeats it, never loses it. Any
    /// other event is a report, queued and not waited for (the status is
    /// the durable record of what it reports).
    pub async fn publish(&self, notice: &Notice) {
        let on = self.resource.object_ref(&());
        if notice.is_warning() {
            self.ctx.kube.publish(&on, notice).await;
        } else {
            self.ctx.kube.report(&on, notice);
        }
    }

    /// A warning that comes with a rotation goes out while its credentials
    /// are checked: before the status, but not on the path to it.
    async fn publish_while_verifying(&mut self, notice: &Notice, target: i64) {
        let (ctx, on) = (self.ctx, self.resource.object_ref(&()));
        tokio::join!(ctx.kube.publish(&on, notice), self.verify(target));
    }

    /// The rotation metrics, when a rotation finishes: its duration ends
    /// with its Secret write, not with the check or the status.
    fn count(&self, record: &Record) {
        let Record::Finished { recovered, .. } = record else { return };
        let result = if *recovered { "recovered" } else { "rotated" };
        let took = self.rotation_started.map(|t| t.elapsed());
        let at = Timestamp::now().as_second();
        self.ctx.metrics.rotated(&self.namespace, &self.resource.name_any(), result, took, at);
    }
}
