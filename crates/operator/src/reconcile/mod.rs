//! The reconciler: turns a `RedisPasswordRotation` into a Secret holding the
//! database's current credentials, rotating them when the counter goes up.
//!
//! One reconcile is a pipeline: `observe` gathers every fact once, `decide`
//! and `plan` (pure) choose the step and its effects, `execute` performs
//! them through `KubeOps` and `UpstashOps`. docs/architecture.md walks one
//! rotation through these files.

mod at_rest;
mod checks;
pub mod consumers;
mod context;
pub(crate) mod credentials;
pub mod decide;
pub mod drift;
mod dry_run;
mod error;
mod execute;
mod key_secrets;
pub mod messages;
mod observe;
pub mod ops;
pub mod plan;
mod replaced;
mod status;
mod verify;
mod writes;

#[cfg(test)]
mod account_tests;
#[cfg(test)]
mod consumer_tests;
#[cfg(test)]
mod fake;
#[cfg(test)]
mod schedule_tests;
#[cfg(test)]
mod suspend_tests;
#[cfg(test)]
mod template_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod verify_tests;

use std::{sync::Arc, time::Duration};

use k8s_openapi::jiff::Timestamp;
use kube::{
    ResourceExt as _,
    runtime::{controller::Action, reflector::ObjectRef},
};

pub use context::{Context, Fingerprint, Remembered};
pub use error::{Error, Failure, kube_message};
pub use ops::{Cluster, KubeOps, MANAGER, UpstashOps, merge_params};

use crate::{
    cache::CachedRotation,
    conditions::{READY, reason_of},
    metrics::ReasonLabel,
};
use drift::Drift;
use execute::Run;
use messages::Notice;
use observe::Observation;

/// Present only while a reset is in flight on a resource whose Secret
/// outlives it (`deletionPolicy: Retain`), so deletion cannot cut it in half.
pub const FINALIZER: &str = "upstash-rotator.io/rotation-in-flight";

/// How soon a reconcile that found its view stale runs again.
const STALE_RETRY: Duration = Duration::from_millis(500);

/// Reconciles one resource.
#[tracing::instrument(skip_all, fields(namespace = resource.namespace().unwrap_or_default(), name = resource.name_any()))]
pub async fn reconcile<K: KubeOps, U: UpstashOps>(
    resource: Arc<CachedRotation>,
    ctx: Arc<Context<K, U>>,
) -> Result<Action, Failure> {
    // Counts every exit, early ones and a cancelled reconcile included.
    let mut measure = ctx.metrics.measure_reconcile();
    let (namespace, name) = (resource.namespace().unwrap_or_default(), resource.name_any());
    let uid = resource.uid().unwrap_or_default();
    let check_fresh_reads = match on_caches(&ctx, &resource).await {
        Early::Done(action) => {
            measure.ok();
            return Ok(action);
        }
        Early::Read { check_fresh_reads } => check_fresh_reads,
    };
    let observed = match ctx.fence.check() {
        Ok(()) => {
            // The version the watch delivered, when it asks for work: the
            // writes it leads to carry that version as their precondition.
            let copy = ctx.caches.working.take(&uid, resource.resource_version().as_deref());
            let seen = observe::Seen::of(&ctx.caches, &resource);
            observe::read(&ctx, &namespace, &name, &seen, copy).await
        }
        Err(e) => Err(e.into()),
    };
    let obs = match observed {
        Ok(Some(obs)) => obs,
        Ok(None) => {
            ctx.metrics.forget(&namespace, &name);
            ctx.forget_resource(&uid);
            measure.ok();
            return Ok(Action::await_change());
        }
        Err(e) => return Err(failed(&ctx, &uid, None, e)),
    };
    // The caches were behind (an echo of a write that has not reached them
    // yet), but the fresh reads show the resource at rest.
    let secret_version = obs.target.version();
    let fresh = check_fresh_reads.then(|| CachedRotation::of(&obs.resource));
    if let Some(fresh) = &fresh
        && at_rest::at_rest(fresh, secret_version, obs.now)
        && let Some(action) = resting(&ctx, fresh)
    {
        measure.ok();
        return Ok(action);
    }
    let fingerprint = obs.fingerprint();
    if let Some(wait) = ctx.hold_back(&obs.uid, &fingerprint) {
        // Only our own status write changed since the last failure.
        measure.ok();
        return Ok(Action::requeue(wait));
    }
    let mut run = Run::new(&ctx, &obs);
    let reason_before = reason_of(&run.draft.status.conditions, READY);
    let result = decide_and_execute(&ctx, &mut run, obs).await;
    if let Err(e) = &result
        && e.is_reported()
        && !ctx.dry_run
    {
        // Only the conditions: the error path never writes `rotation`,
        // `pendingRotation` or `reset`, and never over a newer version.
        run.draft.record_error(e);
        if let Err(write) = run.write_conditions().await {
            tracing::debug!(error = %write, "cannot report the failure; the next reconcile will");
        }
        // A reset refused for certain leaves nothing in flight.
        if let Err(release) = run.release_finalizer().await {
            tracing::debug!(error = %release, "cannot release the finalizer; the next reconcile will");
        }
    }
    match result {
        Ok(()) => {
            measure.ok();
            ctx.succeeded(&uid);
            if let Some(drift) = &ctx.drift {
                drift.checked(&uid);
            }
            Ok(next_scheduled(&mut run))
        }
        // Not failures: no backoff, no warning event.
        Err(Error::Waiting { retry, .. }) => {
            measure.ok();
            Ok(Action::requeue(retry.max(Duration::from_millis(100))))
        }
        // The resource changed under this reconcile; its watch event brings
        // a fresh one, and this requeue covers a missed event.
        Err(Error::Stale(why)) => {
            tracing::debug!("{why}");
            measure.ok();
            Ok(Action::requeue(STALE_RETRY))
        }
        Err(e) => {
            // One event per change of cause, not one per retry.
            let now = reason_of(&run.draft.status.conditions, READY);
            if e.is_reported() && now != reason_before {
                let message = crate::conditions::get(&run.draft.status.conditions, READY)
                    .map_or_else(|| e.to_string(), |c| c.message.clone());
                run.publish(&Notice::Failed { reason: e.reason(), message }).await;
            }
            Err(failed(&ctx, &uid, Some(fingerprint), e))
        }
    }
}

/// Decide, then execute. Upstash is read only for the steps that need it.
async fn decide_and_execute<K: KubeOps, U: UpstashOps>(
    ctx: &Context<K, U>,
    run: &mut Run<'_, K, U>,
    mut obs: Observation,
) -> Result<(), Error> {
    ctx.fence.check()?;
    // Before anything is decided: a rotation must never start from a
    // schedule the operator cannot read, or with keys that cannot be
    // rendered.
    run.draft.set_schedule(obs.read_schedule()?);
    // A Secret left unread is at the version of the operator's last write
    // of it; its rotation's dry run checks it again when it reads it.
    checks::writable(obs.target.read(), &obs.resource)?;
    if let Some(template) = &obs.resource.spec.secret_template {
        crate::template::validate(&template.data)?;
    }
    if obs.pending().is_none() {
        obs.find_conflict(ctx).await?;
    }
    let step = plan::step(&obs)?;
    if !obs.resource.spec.verify {
        crate::conditions::remove(&mut run.draft.status.conditions, crate::conditions::VERIFIED);
    }
    let effects = if obs.resource.spec.suspend && step.calls_upstash() {
        plan::suspended(step, &obs)
    } else {
        if !obs.resource.spec.suspend {
            // Resumed (or never suspended): the next status write drops it.
            crate::conditions::remove(&mut run.draft.status.conditions, crate::conditions::SUSPENDED);
        }
        if step.reads_upstash()
            && let Ok(auth) = obs.api_credentials()
        {
            obs.read_upstash(ctx, &auth).await;
        }
        let mut effects = plan::plan(step, &obs, ctx.reset_window)?;
        if obs.resource.spec.suspend {
            // Finishing from memory calls no one; the check would.
            effects.retain(|e| !matches!(e, plan::Effect::Verify { .. }));
        }
        effects
    };
    tracing::debug!(?step, ?effects, "plan");
    if ctx.dry_run {
        if let Some(what) = dry_run::describe(step, &effects, &obs.resource) {
            tracing::info!("dry run: {what}");
            run.publish(&Notice::DryRun { what }).await;
        }
        return Ok(());
    }
    run.with_observation(obs);
    run.run(effects).await
}

/// What the caches decide before any read.
enum Early {
    Done(Action),
    /// Read fresh; `check_fresh_reads`: whether those may still show the
    /// resource at rest (not when its key changed, nor when the caches
    /// already found it at rest with a drift check due).
    Read {
        check_fresh_reads: bool,
    },
}

/// An echo of the operator's own writes stops at once; a resource at rest
/// needs nothing, unless its key changed (it checks with the new one once)
/// or a drift check is due.
async fn on_caches<K, U>(ctx: &Context<K, U>, resource: &CachedRotation) -> Early {
    let (namespace, name) = (resource.namespace().unwrap_or_default(), resource.name_any());
    let uid = resource.uid().unwrap_or_default();
    if ctx.caches.rechecks.take(&ObjectRef::new(&name).within(&namespace)) {
        return Early::Read { check_fresh_reads: false };
    }
    let Some(secret) =
        ctx.caches.written_version(&namespace, &resource.secret_name(), crate::cache::WRITTEN_WAIT).await
    else {
        return Early::Read { check_fresh_reads: true };
    };
    if ctx.replaced.behind(&uid, resource.resource_version().as_deref(), secret.as_deref()) {
        // The echo of a newer write of ours brings the next reconcile.
        return Early::Done(Action::await_change());
    }
    if !at_rest::at_rest(resource, secret.as_deref(), Timestamp::now()) {
        return Early::Read { check_fresh_reads: true };
    }
    ctx.replaced.forget(&uid);
    match resting(ctx, resource) {
        Some(action) => Early::Done(action),
        // A drift check is due: it is not polled twice.
        None => Early::Read { check_fresh_reads: false },
    }
}

/// What a resource at rest does: wake up when its next scheduled rotation
/// (or drift check) is due, and until then only on a change. `None`: a
/// drift check is due now, so the reconcile goes on.
fn resting<K, U>(ctx: &Context<K, U>, resource: &CachedRotation) -> Option<Action> {
    let drift_wait = match ctx.drift.as_ref().map(|d| d.poll(resource)) {
        None => None,
        Some(Drift::Check) => return None,
        Some(Drift::Throttled(wait)) => return Some(Action::requeue(wait)),
        Some(Drift::NotDue(wait)) => Some(wait),
    };
    let next = resource.status.as_ref().and_then(|s| s.next_rotation_time);
    let (namespace, name) = (resource.namespace().unwrap_or_default(), resource.name_any());
    ctx.metrics.scheduled(&namespace, &name, next.map(|t| t.as_second()));
    ctx.succeeded(&resource.uid().unwrap_or_default());
    let wait = match (schedule_wait(next, Timestamp::now()), drift_wait) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    Some(wait.map_or_else(Action::await_change, Action::requeue))
}

/// Wakes up exactly when the next scheduled rotation may start, and not
/// before; nothing else needs a timer.
fn next_scheduled<K: KubeOps, U: UpstashOps>(run: &mut Run<'_, K, U>) -> Action {
    run.draft.refresh_next_rotation();
    let next = run.draft.status.next_rotation_time.as_ref().map(|t| t.0);
    run.report_schedule(next);
    match schedule_wait(next, Timestamp::now()) {
        Some(wait) => Action::requeue(wait),
        None => Action::await_change(),
    }
}

/// How long until `next`: rounded up, so the wake-up is never early, and
/// capped below kube-runtime's timer limit (the reconcile then waits
/// again). A due rotation that did not start (`spec.suspend`, a dry run)
/// waits for a change instead of spinning.
fn schedule_wait(next: Option<Timestamp>, now: Timestamp) -> Option<Duration> {
    let wait = now.duration_until(next?);
    if !wait.is_positive() {
        return None;
    }
    let wait = Duration::try_from(wait).unwrap_or(MAX_WAIT) + Duration::from_millis(1);
    Some(wait.min(MAX_WAIT))
}

/// Longest single wait for a schedule (kube-runtime's timer wheel holds
/// about two years).
const MAX_WAIT: Duration = Duration::from_secs(30 * 24 * 3600);

/// Counts a failure and chooses, once, when to retry.
fn failed<K, U>(ctx: &Context<K, U>, uid: &str, fingerprint: Option<Fingerprint>, error: Error) -> Failure {
    ctx.metrics.reconcile_errors.get_or_create(&ReasonLabel { reason: error.reason().as_str() }).inc();
    let retry = ctx.failed(uid, fingerprint, error.retry_after(), error.retry_within());
    Failure { error, retry }
}

/// Retries after the delay the failure chose (backoff, or as long as Upstash
/// asked). A change to the resource or its Secrets still retries at once.
pub fn error_policy<K, U>(resource: Arc<CachedRotation>, failure: &Failure, _: Arc<Context<K, U>>) -> Action {
    tracing::warn!(
        namespace = resource.namespace().unwrap_or_default(),
        name = resource.name_any(),
        reason = failure.error.reason().as_str(),
        retry_in_s = failure.retry.as_secs(),
        "reconcile failed: {}",
        failure.error
    );
    Action::requeue(failure.retry)
}
