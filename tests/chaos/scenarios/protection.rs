//! Scenario 5: Credential Protection (GET shows no credentials) with lost
//! reset answers: only announced repeats are allowed.

use anyhow::Result;
use futures::future::BoxFuture;
use serde_json::json;

use super::common::{Ctx, close, replicas, rounds};
use crate::{report::ScenarioReport, rng::Rng, stage::Stage};

pub async fn run(ctx: &Ctx, mut rng: Rng, report: &mut ScenarioReport) -> Result<()> {
    let stage =
        Stage::new("cred-protection", &ctx.client, ctx.knobs, ctx.knobs.resources, replicas(1, None)).await?;
    // After the first sync: a new resource under protection has nothing to store.
    for db in &stage.dbs {
        stage.set_protection(&db.id, true).await?;
    }
    rounds(&stage, &mut rng, report, chaos).await;
    close(&stage, ctx, report).await;
    Ok(())
}

fn chaos(stage: &Stage, mut rng: Rng) -> BoxFuture<'_, ()> {
    Box::pin(async move {
        while !stage.burst_over() {
            let db = rng.pick(&stage.dbs).id.clone();
            // Up to three lost answers in a row reach the operator's cap.
            let times = rng.range(1, 3);
            let f = json!({"route": "reset-password", "database_id": db, "times": times,
                           "action": {"kind": "drop_after_apply"}});
            let _ = stage.fault(f).await;
            stage.nap(rng.millis(1000, 4000)).await;
        }
    })
}
