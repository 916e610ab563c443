//! Scenarios 4 and 9: two replicas with leader election; the leader is
//! killed (4), or paused with SIGSTOP past its lease and continued (9).

use std::time::Duration;

use anyhow::Result;
use futures::future::BoxFuture;
use serde_json::json;

use super::common::{Ctx, close, delay, fault, replicas, rounds, wait_for_intent};
use crate::{report::ScenarioReport, rng::Rng, stage::Stage};

/// Lease duration of these scenarios, seconds (the operator's minimum is 3).
pub const LEASE: u64 = 4;

pub async fn run_kill(ctx: &Ctx, mut rng: Rng, report: &mut ScenarioReport) -> Result<()> {
    let stage =
        Stage::new("election-kill", &ctx.client, ctx.knobs, ctx.knobs.resources, replicas(2, Some(LEASE)))
            .await?;
    rounds(&stage, &mut rng, report, kill_leader).await;
    close(&stage, ctx, report).await;
    Ok(())
}

pub async fn run_pause(ctx: &Ctx, mut rng: Rng, report: &mut ScenarioReport) -> Result<()> {
    let stage =
        Stage::new("paused-leader", &ctx.client, ctx.knobs, ctx.knobs.resources, replicas(2, Some(LEASE)))
            .await?;
    rounds(&stage, &mut rng, report, pause_leader).await;
    close(&stage, ctx, report).await;
    Ok(())
}

fn kill_leader(stage: &Stage, mut rng: Rng) -> BoxFuture<'_, ()> {
    Box::pin(async move {
        while !stage.burst_over() {
            stage.nap(rng.millis(500, 3000)).await;
            if rng.chance(50) {
                let _ = wait_for_intent(stage, Duration::from_secs(4)).await;
            }
            let Some(leader) = stage.lease_holder().await else { continue };
            let down = rng.millis(300, 2500);
            let mut fleet = stage.fleet.lock().await;
            if let Some(op) = fleet.by_identity(&leader)
                && op.alive()
            {
                op.kill9(down).await;
                drop(fleet);
                stage.count_fault();
            }
        }
    })
}

fn pause_leader(stage: &Stage, mut rng: Rng) -> BoxFuture<'_, ()> {
    Box::pin(async move {
        let mut mode = rng.below(3);
        while !stage.burst_over() {
            stage.nap(rng.millis(300, 1500)).await;
            mode = (mode + 1) % 3;
            let ready = match mode {
                // Right after an intent was recorded, while a slow reset is on its way.
                0 => {
                    let db = rng.pick(&stage.dbs).id.clone();
                    let _ = stage.fault(fault("reset-password", &db, delay(rng.range(500, 2000)))).await;
                    wait_for_intent(stage, Duration::from_secs(6)).await.is_some()
                }
                // During a recovery GET: the reset answer is lost, the GET is slow.
                1 => during_recovery_get(stage, &mut rng).await,
                // Anywhere.
                _ => true,
            };
            if !ready || stage.burst_over() {
                continue;
            }
            let Some(leader) = stage.lease_holder().await else { continue };
            let paused = stage.fleet.lock().await.by_identity(&leader).is_some_and(|op| op.pause());
            if !paused {
                continue;
            }
            stage.count_fault();
            // Past the lease: the other replica takes over meanwhile, and has
            // time to finish that rotation and start the next one.
            tokio::time::sleep(rng.millis((LEASE + 1) * 1000, (LEASE + 8) * 1000)).await;
            if let Some(op) = stage.fleet.lock().await.by_identity(&leader) {
                op.resume();
            }
        }
    })
}

/// Loses one reset answer and slows the GET that recovery sends; returns once
/// that GET is in flight (the simulator logs a delayed request when it
/// applies it, before holding the answer back).
async fn during_recovery_get(stage: &Stage, rng: &mut Rng) -> bool {
    let db = rng.pick(&stage.dbs).id.clone();
    let before = delayed_gets(stage, &db).await;
    let _ = stage.fault(fault("reset-password", &db, json!({"kind": "drop_after_apply"}))).await;
    let _ = stage.fault(fault("get", &db, delay(2500))).await;
    // Recovery waits out the in-flight window (request timeout + 5 s) first.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while tokio::time::Instant::now() < deadline && !stage.burst_over() {
        if delayed_gets(stage, &db).await > before {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    false
}

async fn delayed_gets(stage: &Stage, db: &str) -> usize {
    stage
        .sim_requests()
        .await
        .iter()
        .filter(|r| r["route"] == "get" && r["database_id"] == db && r["fault"] == "delay")
        .count()
}
