//! Scenarios 4 and 9: two replicas with leader election; the leader is
//! killed (4), or paused with SIGSTOP past its lease and continued (9).

use std::time::Duration;

use anyhow::Result;
use futures::future::BoxFuture;
use serde_json::json;

use super::common::{Ctx, close, delay, fault, replicas, replicas_logging, rounds, wait_for_intent};
use crate::{config::Knobs, report::ScenarioReport, rng::Rng, stage::Stage};

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
    // Each pause lasts past the lease: a burst needs room for several.
    let knobs = longer_burst(ctx.knobs, Duration::from_secs(25));
    let launch = replicas_logging(2, Some(LEASE), true);
    let stage = Stage::new("paused-leader", &ctx.client, knobs, knobs.resources, launch).await?;
    rounds(&stage, &mut rng, report, pause_leader).await;
    close(&stage, ctx, report).await;
    Ok(())
}

/// `knobs` with bursts of at least `burst` (CI size is shorter by default).
pub fn longer_burst(mut knobs: Knobs, burst: Duration) -> Knobs {
    if knobs.burst < burst {
        knobs.burst_limit += burst - knobs.burst;
        knobs.burst = burst;
    }
    knobs
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
        // Every other pause at the intent, the most dangerous point.
        const CYCLE: [u8; 6] = [0, 1, 0, 2, 0, 3];
        let mut next = rng.below(CYCLE.len());
        while !stage.burst_over() {
            stage.nap(rng.millis(300, 1500)).await;
            next = (next + 1) % CYCLE.len();
            let Some(leader) = stage.lease_holder().await else { continue };
            let paused = match CYCLE[next] {
                // While it records an intent: after its "next step ... Rotate"
                // line, the line announcing its next status PATCH (the intent
                // write) stops it with that write in flight and the reset to come.
                0 => {
                    let stages: &[&[&str]] = &[&["Rotate {"], &["requesting", "PATCH", "/status"]];
                    stopped_on_log(stage, &leader, stages, Duration::from_secs(6)).await
                }
                // Right after an intent was recorded, while a slow reset is on its way.
                1 => {
                    let db = rng.pick(&stage.dbs).id.clone();
                    let _ = stage.fault(fault("reset-password", &db, delay(rng.range(500, 2000)))).await;
                    wait_for_intent(stage, Duration::from_secs(6)).await.is_some()
                        && pause(stage, &leader).await
                }
                // During a recovery GET: the reset answer is lost, the GET is slow.
                2 => during_recovery_get(stage, &mut rng).await && pause(stage, &leader).await,
                // Anywhere.
                _ => pause(stage, &leader).await,
            };
            if !paused {
                continue;
            }
            stage.count_fault();
            // Past the lease: the other replica takes over meanwhile, and has
            // time to finish that rotation and start the next one. Stopped at
            // its intent, it stays stopped past the new leader's in-flight
            // window too (request timeout + 5 s = 8 s), after which the new
            // leader judges the intent by what Upstash shows.
            let (lo, hi) =
                if CYCLE[next] == 0 { (9_000, 13_000) } else { ((LEASE + 1) * 1000, (LEASE + 8) * 1000) };
            tokio::time::sleep(rng.millis(lo, hi)).await;
            if let Some(op) = stage.fleet.lock().await.by_identity(&leader) {
                op.resume();
            }
        }
    })
}

async fn pause(stage: &Stage, identity: &str) -> bool {
    !stage.burst_over() && stage.fleet.lock().await.by_identity(identity).is_some_and(|op| op.pause())
}

/// Arms a stop on the replica's next log line containing `fragment`; whether
/// it fired within `limit`.
async fn stopped_on_log(stage: &Stage, identity: &str, stages: &[&[&str]], limit: Duration) -> bool {
    match stage.fleet.lock().await.by_identity(identity) {
        Some(op) => op.pause_on_log(stages),
        None => return false,
    }
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline && !stage.burst_over() {
        if stage.fleet.lock().await.by_identity(identity).is_some_and(|op| op.is_paused()) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut fleet = stage.fleet.lock().await;
    let op = fleet.by_identity(identity);
    // It may have fired just now.
    op.is_some_and(|op| {
        op.disarm();
        op.is_paused()
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
