//! Scenario 6: a user edits the Secret's password or deletes the Secret
//! while a rotation is in recovery (its reset answer was lost or failed).

use std::time::Duration;

use anyhow::Result;
use base64::{Engine as _, engine::general_purpose::STANDARD};
use futures::future::BoxFuture;
use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::json;
use upstash_rotator::secret;

use super::common::{Ctx, close, fault, replicas, rounds};
use crate::{
    report::ScenarioReport,
    rng::Rng,
    stage::{Stage, USER_EDIT},
};

pub async fn run(ctx: &Ctx, mut rng: Rng, report: &mut ScenarioReport) -> Result<()> {
    let knobs = super::election::longer_burst(ctx.knobs, Duration::from_secs(20));
    let stage = Stage::new("user-edits", &ctx.client, knobs, knobs.resources, replicas(1, None)).await?;
    rounds(&stage, &mut rng, report, chaos).await;
    close(&stage, ctx, report).await;
    Ok(())
}

fn chaos(stage: &Stage, mut rng: Rng) -> BoxFuture<'_, ()> {
    Box::pin(async move {
        // Every (reset fault, user action) pair in turn, in a random order but
        // beginning with an edit after a reset that never happened (the case
        // a GET cannot tell from a reset that did).
        let mut combos: Vec<(u8, bool)> = vec![(0, true), (0, false), (1, false), (2, true), (2, false)];
        for i in (1..combos.len()).rev() {
            combos.swap(i, rng.below(i + 1));
        }
        combos.insert(0, (1, true));
        let mut edits = 0u32;
        while !stage.burst_over() {
            let db = rng.pick(&stage.dbs).clone();
            let (kind, edit) = combos[edits as usize % combos.len()];
            let action = match kind {
                0 => json!({"kind": "drop_after_apply"}),
                1 => json!({"kind": "drop"}),
                _ => json!({"kind": "respond", "status": 503, "body": "upstream unavailable"}),
            };
            let _ = stage.fault(fault("reset-password", &db.id, action)).await;
            // Wait for that rotation to be in recovery.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
            let mut recovering = false;
            while tokio::time::Instant::now() < deadline && !stage.burst_over() {
                if stage.view(&db.resource).await.is_some_and(|v| v.rotating.as_deref() == Some("Recovering"))
                {
                    recovering = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            if !recovering {
                continue;
            }
            stage.nap(rng.millis(0, 2000)).await;
            edits += 1;
            let done = if edit {
                let value = STANDARD.encode(format!("{USER_EDIT}{edits}"));
                let patch = json!({"data": {secret::KEY_PASSWORD: value}});
                stage
                    .secrets()
                    .patch(&db.resource, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .is_ok()
            } else {
                stage.secrets().delete(&db.resource, &DeleteParams::default()).await.is_ok()
            };
            if done {
                stage.count_fault();
            }
            stage.nap(rng.millis(500, 2000)).await;
        }
    })
}
