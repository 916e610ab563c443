//! Scenario 2: every simulator fault on reset-password and on GET.

use anyhow::Result;
use futures::future::BoxFuture;
use serde_json::{Value, json};

use super::common::{Ctx, close, delay, fault, replicas, rounds};
use crate::{report::ScenarioReport, rng::Rng, stage::Stage};

pub async fn run(ctx: &Ctx, mut rng: Rng, report: &mut ScenarioReport) -> Result<()> {
    let stage =
        Stage::new("sim-faults", &ctx.client, ctx.knobs, ctx.knobs.resources, replicas(1, None)).await?;
    rounds(&stage, &mut rng, report, chaos).await;
    close(&stage, ctx, report).await;
    Ok(())
}

/// Every fault kind, with its parameters drawn from `rng`.
pub fn actions(rng: &mut Rng) -> Vec<Value> {
    vec![
        json!({"kind": "drop_after_apply"}),
        // Past the operator's 3 s request timeout.
        delay(rng.range(3300, 5000)),
        json!({"kind": "respond", "status": 500, "body": "{\"error\":\"internal\"}"}),
        json!({"kind": "respond", "status": 503, "body": "upstream unavailable"}),
        json!({"kind": "respond", "status": 429, "body": "{\"error\":\"rate limited\"}", "headers": {"retry-after": "1"}}),
        json!({"kind": "respond", "status": 429, "body": "{\"error\":\"rate limited\"}"}),
        json!({"kind": "drop"}),
    ]
}

fn chaos(stage: &Stage, mut rng: Rng) -> BoxFuture<'_, ()> {
    Box::pin(async move {
        // Every kind on both routes first (in a random order), then at random.
        let mut queue: Vec<(&str, Value)> = Vec::new();
        for route in ["reset-password", "get"] {
            for action in actions(&mut rng) {
                queue.push((route, action));
            }
        }
        for i in (1..queue.len()).rev() {
            queue.swap(i, rng.below(i + 1));
        }
        let mut next = 0;
        while !stage.burst_over() {
            let (route, action) = match queue.get(next) {
                Some((r, a)) => (*r, a.clone()),
                None => {
                    let route = if rng.chance(60) { "reset-password" } else { "get" };
                    let all = actions(&mut rng);
                    (route, rng.pick(&all).clone())
                }
            };
            next += 1;
            let db = rng.pick(&stage.dbs).id.clone();
            let _ = stage.fault(fault(route, &db, action)).await;
            stage.nap(rng.millis(200, 1200)).await;
        }
    })
}
