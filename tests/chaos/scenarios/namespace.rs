//! Scenario 10: a namespace deleted while its rotations are in flight. It
//! must disappear within a bound (no finalizer left stuck), without an
//! extra reset.

use std::time::Duration;

use anyhow::Result;
use futures::future::join_all;
use k8s_openapi::api::core::v1::Namespace;
use kube::{
    Api, ResourceExt as _,
    api::{DeleteParams, ListParams},
};

use super::common::{Ctx, close, delay, fault, replicas, wait_for_intent};
use crate::{
    invariants::{Ledger, Step},
    report::ScenarioReport,
    rng::Rng,
    stage::Stage,
};

pub async fn run(ctx: &Ctx, mut rng: Rng, report: &mut ScenarioReport) -> Result<()> {
    for _ in 0..ctx.knobs.rounds {
        let stage =
            Stage::new("namespace-delete", &ctx.client, ctx.knobs, ctx.knobs.resources, replicas(1, None))
                .await?;
        round(&stage, &mut rng, report).await;
        close(&stage, ctx, report).await;
        report.runs += 1;
    }
    Ok(())
}

async fn round(stage: &Stage, rng: &mut Rng, report: &mut ScenarioReport) {
    let mut before = Vec::new();
    for db in &stage.dbs {
        before.push(stage.resets(&db.id).await);
        // Slow resets (applied at once, answered late) keep rotations in flight.
        let _ = stage.fault(fault("reset-password", &db.id, delay(rng.range(1500, 2500)))).await;
    }
    join_all(stage.dbs.iter().map(|db| stage.bump(&db.resource, 1))).await;
    let _ = wait_for_intent(stage, Duration::from_secs(5)).await;
    tokio::time::sleep(rng.millis(0, 1500)).await;

    let namespaces: Api<Namespace> = Api::all(stage.client.clone());
    let deleted = tokio::time::Instant::now();
    if let Err(e) = namespaces.delete(&stage.ns.name, &DeleteParams::default()).await {
        stage.note(format!("cannot delete namespace {}: {e}", stage.ns.name));
        return;
    }
    stage.count_fault();
    let deadline = deleted + stage.knobs.converge_limit;
    let mut gone = false;
    while tokio::time::Instant::now() < deadline {
        if matches!(namespaces.get_opt(&stage.ns.name).await, Ok(None)) {
            gone = true;
            break;
        }
        stage.supervise().await;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let leftover = if gone { None } else { Some(leftovers(stage).await) };
    if gone {
        report.converge.push(deleted.elapsed());
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    for (i, db) in stage.dbs.iter().enumerate() {
        let resets = stage.resets(&db.id).await.saturating_sub(before[i]);
        let ledger = Ledger {
            resource: format!("{}/{}", stage.ns.name, db.resource),
            // One bump, never seen applied: one window, open; one reset is allowed.
            steps: vec![Step { resets, advances: 0, open: true, ..Step::default() }],
            total_resets: resets,
            stuck: if i == 0 { leftover.clone() } else { None },
            ..Ledger::default()
        };
        report.resets += ledger.total_resets;
        report.count.add(&ledger.count());
        report.details.extend(ledger.describe());
    }
}

async fn leftovers(stage: &Stage) -> String {
    let mut out = format!("namespace {} still exists after {:?}", stage.ns.name, stage.knobs.converge_limit);
    if let Ok(list) = stage.resources().list(&ListParams::default()).await {
        for r in list.items {
            out += &format!(
                "; {} finalizers={:?} pending={:?}",
                r.name_any(),
                r.finalizers(),
                r.status.as_ref().and_then(|s| s.pending_rotation)
            );
        }
    }
    out
}
