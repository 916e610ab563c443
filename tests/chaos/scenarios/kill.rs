//! Scenario 1: `kill -9` of the only replica at random points of rotation
//! bursts, then a restart.

use std::time::Duration;

use anyhow::Result;
use futures::future::BoxFuture;

use super::common::{Ctx, close, delay, fault, replicas, rounds, wait_for_intent};
use crate::{report::ScenarioReport, rng::Rng, stage::Stage};

pub async fn run(ctx: &Ctx, mut rng: Rng, report: &mut ScenarioReport) -> Result<()> {
    let stage = Stage::new("kill9", &ctx.client, ctx.knobs, ctx.knobs.resources, replicas(1, None)).await?;
    rounds(&stage, &mut rng, report, chaos).await;
    close(&stage, ctx, report).await;
    Ok(())
}

fn chaos(stage: &Stage, mut rng: Rng) -> BoxFuture<'_, ()> {
    Box::pin(async move {
        while !stage.burst_over() {
            stage.nap(rng.millis(200, 2500)).await;
            if stage.burst_over() {
                break;
            }
            match rng.below(3) {
                // Right after an intent was recorded.
                0 => {
                    let _ = wait_for_intent(stage, Duration::from_secs(5)).await;
                }
                // While a (slow) reset is in flight.
                1 => {
                    let db = rng.pick(&stage.dbs).id.clone();
                    let _ = stage.fault(fault("reset-password", &db, delay(rng.range(800, 2500)))).await;
                    stage.nap(rng.millis(100, 1500)).await;
                }
                // Anywhere.
                _ => {}
            }
            let down = rng.millis(100, 2000);
            if let Some(op) = stage.fleet.lock().await.operators.first_mut() {
                op.kill9(down).await;
            }
            stage.count_fault();
        }
    })
}
