//! The reconciler: turns a `RedisPasswordRotation` into a Secret holding the
//! database's current credentials, rotating them when the counter goes up.

mod context;
pub mod decide;
mod error;
mod run;
mod writes;

use std::{sync::Arc, time::Duration};

use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, ResourceExt as _,
    runtime::{controller::Action, events::EventType},
};

pub use context::{Context, Fingerprint, Remembered, store_ready};
pub use error::Error;
pub use run::{FINALIZER, MANAGER};

use crate::{
    conditions::{self, READY},
    crd::RedisPasswordRotation,
    metrics::{ReasonLabel, ResultLabel},
};

/// Reconciles one resource. Reads it fresh from the apiserver (never from
/// the cache) so a stale view can never start a second reset.
#[tracing::instrument(skip_all, fields(namespace = resource.namespace().unwrap_or_default(), name = resource.name_any()))]
pub async fn reconcile(resource: Arc<RedisPasswordRotation>, ctx: Arc<Context>) -> Result<Action, Error> {
    ctx.fence.check()?;
    let namespace = resource.namespace().unwrap_or_default();
    let api: Api<RedisPasswordRotation> = Api::namespaced(ctx.client.clone(), &namespace);
    let started = std::time::Instant::now();
    let Some(fresh) = api.get_opt(&resource.name_any()).await? else {
        ctx.metrics.forget(&namespace, &resource.name_any());
        ctx.forget_resource(&resource.uid().unwrap_or_default());
        return Ok(Action::await_change());
    };
    let uid = fresh.uid().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    let observed = match run::Observed::read(&secrets, &fresh).await {
        Ok(o) => o,
        Err(e) => {
            ctx.failed(&uid, None, None);
            return Err(e);
        }
    };
    let fingerprint = fingerprint(&fresh, &observed);
    if let Some(wait) = ctx.hold_back(&uid, &fingerprint) {
        // Only our own status write changed since the last failure.
        return Ok(Action::requeue(wait));
    }
    let mut run = run::Run::new(&ctx, fresh, observed);
    let reason_before = conditions::get(&run.status.conditions, READY).map(|c| c.reason.clone());

    let mut result = run.execute().await;
    match &result {
        Ok(()) => result = run.write_status().await,
        // Only the conditions: the error path never writes `rotation`,
        // `pendingRotation` or `reset`, and never over a newer version.
        Err(e) if e.is_reported() => {
            run.record_error(e);
            if let Err(write) = run.write_conditions().await {
                tracing::debug!(error = %write, "cannot report the failure; the next reconcile will");
            }
        }
        Err(_) => {}
    }
    // Also after a failure: a reset refused for certain leaves nothing in flight.
    if (result.is_ok() || result.as_ref().is_err_and(Error::is_reported))
        && let Err(e) = run.release_finalizer().await
    {
        result = result.and(Err(e));
    }
    ctx.metrics.reconcile_duration.observe(started.elapsed().as_secs_f64());
    let outcome = if result.as_ref().is_ok() || result.as_ref().is_err_and(Error::is_expected) {
        "ok"
    } else {
        "error"
    };
    ctx.metrics.reconciles.get_or_create(&ResultLabel { result: outcome }).inc();

    match result {
        Ok(()) => {
            ctx.succeeded(&uid);
            Ok(Action::await_change())
        }
        // Not failures: no backoff, no warning event.
        Err(Error::Waiting { retry, .. }) => Ok(Action::requeue(retry.max(Duration::from_millis(100)))),
        // The resource changed under this reconcile; its watch event brings
        // a fresh one, and this requeue covers a missed event.
        Err(Error::Stale(why)) => {
            tracing::debug!("{why}");
            Ok(Action::requeue(STALE_RETRY))
        }
        Err(e) => {
            ctx.metrics.reconcile_errors.get_or_create(&ReasonLabel { reason: e.reason() }).inc();
            ctx.failed(&uid, Some(fingerprint), e.retry_after());
            // One event per change of cause, not one per retry.
            let ready = conditions::get(&run.status.conditions, READY);
            if e.is_reported() && ready.map(|c| c.reason.clone()) != reason_before {
                let note = ready.map(|c| c.message.clone()).unwrap_or_else(|| e.to_string());
                run.publish(EventType::Warning, e.reason(), note).await;
            }
            Err(e)
        }
    }
}

/// How soon a reconcile that found its view stale runs again.
const STALE_RETRY: Duration = Duration::from_millis(500);

/// Retries after the delay the failure chose (backoff, or as long as Upstash
/// asked). A change to the resource or its Secrets still retries at once.
pub fn error_policy(resource: Arc<RedisPasswordRotation>, error: &Error, ctx: Arc<Context>) -> Action {
    let delay = ctx.retry_in(&resource.uid().unwrap_or_default());
    tracing::warn!(
        namespace = resource.namespace().unwrap_or_default(),
        name = resource.name_any(),
        reason = error.reason(),
        retry_in_s = delay.as_secs(),
        "reconcile failed: {error}"
    );
    Action::requeue(delay)
}

fn fingerprint(resource: &RedisPasswordRotation, observed: &run::Observed) -> Fingerprint {
    let version = |s: &Option<Secret>| s.as_ref().and_then(|s| s.metadata.resource_version.clone());
    Fingerprint {
        generation: resource.metadata.generation,
        deleting: resource.metadata.deletion_timestamp.is_some(),
        credentials_secret: version(&observed.credentials),
        target_secret: version(&observed.target),
    }
}
