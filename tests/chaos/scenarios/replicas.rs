//! Scenario 3: two replicas without leader election on one namespace (the
//! chart allows it; a rolling update does it for a while).

use anyhow::Result;
use futures::future::BoxFuture;

use super::common::{Ctx, close, delay, fault, replicas, rounds};
use crate::{report::ScenarioReport, rng::Rng, stage::Stage};

pub async fn run(ctx: &Ctx, mut rng: Rng, report: &mut ScenarioReport) -> Result<()> {
    let knobs = super::election::longer_burst(ctx.knobs, std::time::Duration::from_secs(20));
    let stage = Stage::new("no-election", &ctx.client, knobs, knobs.resources, replicas(2, None)).await?;
    rounds(&stage, &mut rng, report, chaos).await;
    close(&stage, ctx, report).await;
    Ok(())
}

fn chaos(stage: &Stage, mut rng: Rng) -> BoxFuture<'_, ()> {
    Box::pin(async move {
        while !stage.burst_over() {
            stage.nap(rng.millis(300, 2000)).await;
            if rng.chance(70) {
                // A slow reset (answered within the 3 s timeout) keeps one
                // replica's rotation in flight while the other one retries.
                let db = rng.pick(&stage.dbs).id.clone();
                let mut f = fault("reset-password", &db, delay(rng.range(1500, 2900)));
                f["times"] = rng.range(1, 3).into();
                let _ = stage.fault(f).await;
            } else if rng.chance(50) {
                // A rolling update replaces one replica.
                let mut fleet = stage.fleet.lock().await;
                let n = fleet.operators.len();
                let i = rng.below(n);
                let down = rng.millis(200, 1500);
                if let Some(op) = fleet.operators.get_mut(i) {
                    op.kill9(down).await;
                }
                drop(fleet);
                stage.count_fault();
            }
        }
    })
}
