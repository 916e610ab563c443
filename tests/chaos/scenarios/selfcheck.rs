//! The campaign checks itself first: with the operator stopped, it plants
//! one violation of each kind through the real apiserver and simulator and
//! requires the same counting that judges the operator to find each one.

use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use k8s_openapi::{
    api::{core::v1::ObjectReference, events::v1::Event},
    apimachinery::pkg::apis::meta::v1::MicroTime,
    jiff::Timestamp,
};
use kube::{
    Api,
    api::{ObjectMeta, Patch, PatchParams, PostParams},
};
use serde_json::json;

use super::common::{Ctx, replicas};
use crate::{
    invariants::Count,
    leaks,
    stage::Stage,
    support::sim::{API_KEY, EMAIL},
};

/// Returns what was planted and found, or why the harness cannot be trusted.
pub async fn run(ctx: &Ctx) -> Result<String> {
    let mut knobs = ctx.knobs;
    knobs.converge_limit = Duration::from_secs(3);
    let stage = Stage::new("selfcheck", &ctx.client, knobs, 4, replicas(1, None)).await?;
    // Nobody reconciles from here: every violation below stays as planted.
    stage.fleet.lock().await.stop().await;
    let snapshot = stage.begin_round().await;
    let mut tracks = stage.tracks().await;

    // db0: a reset behind the operator's back: one extra reset, one lost password.
    let reset = stage
        .sim
        .http
        .post(format!("{}/v2/redis/reset-password/{}", stage.sim.url, stage.dbs[0].id))
        .basic_auth(EMAIL, Some(API_KEY))
        .send()
        .await
        .context("plant a reset")?;
    if !reset.status().is_success() {
        bail!("planting a reset: {}", reset.status());
    }
    // db1: a step reported applied although nothing reset: a missed rotation.
    stage.raise(1, &mut tracks[1]).await;
    let spec = stage.view(&stage.dbs[1].resource).await.map(|v| v.spec).ok_or_else(|| anyhow!("db1"))?;
    stage
        .resources()
        .patch_status(
            &stage.dbs[1].resource,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"rotation": spec}})),
        )
        .await
        .context("plant a status")?;
    // db2: a step nobody applies: stuck.
    stage.raise(2, &mut tracks[2]).await;
    // db3 stays clean. An event carrying its password: a leak.
    let current = stage.upstash_current(&stage.dbs[3].id).await?;
    let password = current["password"].as_str().unwrap_or_default().to_owned();
    let event = Event {
        metadata: ObjectMeta { name: Some("chaos-selfcheck".into()), ..Default::default() },
        event_time: Some(MicroTime(Timestamp::now())),
        reporting_controller: Some("chaos.upstash-rotator.io/selfcheck".into()),
        reporting_instance: Some("chaos".into()),
        action: Some("SelfCheck".into()),
        reason: Some("PlantedLeak".into()),
        type_: Some("Normal".into()),
        note: Some(format!("planted by the campaign's self-check: {password}")),
        regarding: Some(ObjectReference {
            api_version: Some("upstash-rotator.io/v1alpha1".into()),
            kind: Some("RedisPasswordRotation".into()),
            namespace: Some(stage.ns.name.clone()),
            name: Some(stage.dbs[3].resource.clone()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let events: Api<Event> = Api::namespaced(stage.client.clone(), &stage.ns.name);
    events.create(&PostParams::default(), &event).await.context("plant an event")?;

    let result = stage.finish_round(snapshot, tracks).await;
    let counts: Vec<Count> = result.ledgers.iter().map(|l| l.count()).collect();
    let needles = stage.needles();
    let mut leaked = 0;
    for (source, text) in stage.texts().await {
        leaked += leaks::scan(&source, &text, &needles).len();
    }
    let found = |i: usize| counts.get(i).cloned().unwrap_or_default();
    let expected = [
        ("lost password", found(0).lost == 1),
        ("silent extra reset", found(0).extra_silent == 1),
        ("silent missed rotation", found(1).missed_silent == 1 && found(1).extra() == 0),
        ("stuck resource", found(2).stuck == 1 && found(2).lost == 0),
        ("clean resource", found(3) == Count::default()),
        ("credential in an event", leaked >= 1),
    ];
    let missing: Vec<&str> = expected.iter().filter(|(_, ok)| !ok).map(|(what, _)| *what).collect();
    if !missing.is_empty() {
        bail!(
            "the harness did not see what it planted: {}; counts {counts:?}, leaks {leaked}",
            missing.join(", ")
        );
    }
    Ok(format!(
        "found every planted violation ({})",
        expected.iter().map(|(w, _)| *w).collect::<Vec<_>>().join(", ")
    ))
}
