//! Scenario 7: Secret writes fail for a while, then heal. A
//! ValidatingAdmissionPolicy (CEL, built into kube-apiserver) denies CREATE
//! and UPDATE of Secrets in the scenario's namespace until it is removed.

use anyhow::Result;
use futures::future::BoxFuture;
use testkit::admission::SecretWriteDenial;

use super::common::{Ctx, close, replicas, rounds};
use crate::{report::ScenarioReport, rng::Rng, stage::Stage};

pub async fn run(ctx: &Ctx, mut rng: Rng, report: &mut ScenarioReport) -> Result<()> {
    let stage =
        Stage::new("secret-writes", &ctx.client, ctx.knobs, ctx.knobs.resources, replicas(1, None)).await?;
    rounds(&stage, &mut rng, report, chaos).await;
    // Whatever happened, never leave a policy behind.
    let _ = denial(&stage).lift().await;
    close(&stage, ctx, report).await;
    Ok(())
}

/// What the policy answers a denied write with.
const DENIED: &str = "chaos: Secret writes are denied in this namespace for a while";

fn denial(stage: &Stage) -> SecretWriteDenial {
    SecretWriteDenial::new(&stage.client, &stage.ns.name, DENIED)
}

fn chaos(stage: &Stage, mut rng: Rng) -> BoxFuture<'_, ()> {
    Box::pin(async move {
        while !stage.burst_over() {
            stage.nap(rng.millis(300, 2000)).await;
            let denial = denial(stage);
            if let Err(e) = denial.enforce().await {
                stage.note(format!("cannot deny Secret writes: {e}"));
                let _ = denial.lift().await;
                break;
            }
            stage.count_fault();
            stage.nap(rng.millis(2000, 8000)).await;
            if let Err(e) = denial.lift().await {
                stage.note(format!("cannot lift the Secret write denial: {e}"));
            }
        }
    })
}
