//! The reconciler: turns a `RedisPasswordRotation` into a Secret holding the
//! database's current credentials, rotating them when the counter goes up.

mod context;
pub mod decide;
mod error;
mod run;

use std::{sync::Arc, time::Duration};

use kube::{Api, ResourceExt as _, runtime::controller::Action, runtime::events::EventType};

pub use context::{Context, Remembered};
pub use error::Error;
pub use run::{FINALIZER, MANAGER};

use crate::{
    conditions::{self, READY},
    crd::RedisPasswordRotation,
};

/// Reconciles one resource. Reads it fresh from the apiserver (never from
/// the cache) so a stale view can never start a second reset.
#[tracing::instrument(skip_all, fields(namespace = resource.namespace().unwrap_or_default(), name = resource.name_any()))]
pub async fn reconcile(resource: Arc<RedisPasswordRotation>, ctx: Arc<Context>) -> Result<Action, Error> {
    let api: Api<RedisPasswordRotation> =
        Api::namespaced(ctx.client.clone(), &resource.namespace().unwrap_or_default());
    let Some(fresh) = api.get_opt(&resource.name_any()).await? else {
        return Ok(Action::await_change());
    };
    let uid = fresh.uid().unwrap_or_default();
    let mut run = run::Run::new(&ctx, fresh);
    let reason_before = conditions::get(&run.status.conditions, READY).map(|c| c.reason.clone());

    let result = run.execute().await;
    if let Err(e) = &result {
        run.record_error(e);
    }
    run.write_status(false).await?;
    run.release_finalizer().await?;

    match result {
        Ok(()) => {
            ctx.succeeded(&uid);
            Ok(Action::await_change())
        }
        Err(e) => {
            // One event per change of cause, not one per retry.
            let ready = conditions::get(&run.status.conditions, READY);
            if ready.map(|c| c.reason.clone()) != reason_before {
                let note = ready.map(|c| c.message.clone()).unwrap_or_else(|| e.to_string());
                run.publish(EventType::Warning, e.reason(), note).await;
            }
            Err(e)
        }
    }
}

/// Backs off per resource (or as long as Upstash asked) after a failure.
/// Any change to the resource or its Secrets still triggers a reconcile at once.
pub fn error_policy(resource: Arc<RedisPasswordRotation>, error: &Error, ctx: Arc<Context>) -> Action {
    let backoff = ctx.backoff(&resource.uid().unwrap_or_default());
    let delay = error.retry_after().map_or(backoff, |d| d.max(Duration::from_secs(1)));
    tracing::warn!(
        namespace = resource.namespace().unwrap_or_default(),
        name = resource.name_any(),
        reason = error.reason(),
        retry_in_s = delay.as_secs(),
        "reconcile failed: {error}"
    );
    Action::requeue(delay)
}
