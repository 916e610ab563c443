//! Holding the operator back, on the real apiserver: `spec.suspend` stops
//! every call to Upstash for one resource, and `run --dry-run` says what it
//! would do for all of them without resetting or writing anything.

use testkit as support;

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::{
    Api,
    api::{Patch, PatchParams},
};
use serde_json::json;
use support::{WAIT, eventually, process::OperatorProcess, world::World};
use upstash_rotator::conditions::{self, Reason, SUSPENDED};

async fn set_suspend(world: &World, on: bool) {
    let patch = json!({"spec": {"suspend": on}});
    world.resources().patch("cache", &PatchParams::default(), &Patch::Merge(&patch)).await.expect("suspend");
}

/// Upstash requests for the world's database so far (reads and resets).
async fn upstash_calls(world: &World) -> u64 {
    let log = world.sim.request_log().await;
    let count = |kind: &str| log["counts"][kind][&world.database_id].as_u64().unwrap_or(0);
    count("get") + count("reset")
}

#[tokio::test]
async fn a_suspended_resource_makes_no_upstash_call_and_rotates_once_when_resumed() {
    let world = World::new("suspend").await;
    world.create("cache", world.spec()).await;
    world.wait_applied("cache", 0).await;
    set_suspend(&world, true).await;
    world.set_rotation("cache", 1).await;
    let suspended = eventually(WAIT, "the Suspended condition", || async {
        let r = world.resources().get("cache").await.ok()?;
        let condition = conditions::get(&r.status?.conditions, SUSPENDED)?.clone();
        condition.message.contains("rotation 1 waits").then_some(condition)
    })
    .await;
    assert_eq!((suspended.status.as_str(), suspended.reason.as_str()), ("True", Reason::Suspended.as_str()));
    let calls = upstash_calls(&world).await;
    // A deleted Secret is not restored either: that needs Upstash.
    world.secrets().delete("cache", &Default::default()).await.expect("delete the Secret");
    // A later counter step shows in the condition only once a reconcile ran
    // after the deletion: the barrier before counting calls.
    world.set_rotation("cache", 2).await;
    eventually(WAIT, "the Suspended condition naming rotation 2", || async {
        let r = world.resources().get("cache").await.ok()?;
        conditions::get(&r.status?.conditions, SUSPENDED)?.message.contains("rotation 2 waits").then_some(())
    })
    .await;
    assert_eq!(upstash_calls(&world).await, calls, "no Upstash call while suspended");
    assert_eq!(world.resets().await, 0);

    set_suspend(&world, false).await;
    let resumed = world.wait_applied("cache", 2).await;
    assert_eq!(world.resets().await, 1, "one reset for the waiting rotations (a jump is one rotation)");
    assert!(conditions::get(&resumed.status.unwrap_or_default().conditions, SUSPENDED).is_none());
    assert!(world.secrets().get_opt("cache").await.expect("read").is_some(), "the Secret is back");
}

async fn dry_run_events(world: &World) -> Vec<String> {
    world
        .events()
        .await
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("DryRun"))
        .filter_map(|e| e.note)
        .collect()
}

#[tokio::test]
async fn a_dry_run_reports_what_it_would_do_and_changes_nothing() {
    let mut world = World::new("dry-run").await;
    world.create("cache", world.spec()).await;
    let synced = world.wait_applied("cache", 0).await;
    let password = world.secret_text("cache", upstash_rotator::secret::KEY_PASSWORD).await;
    world.stop_operator().await;
    // A second database whose resource has never been synced.
    let other =
        world.sim.create_database("dry-run-other").await["database_id"].as_str().expect("id").to_owned();
    let mut spec = world.spec();
    spec.database_id = other;
    world.create("fresh", spec).await;

    let mut operator = OperatorProcess::start(&[
        "--upstash-api-url",
        &world.sim.url,
        "--namespace",
        &world.ns.name,
        "--dry-run",
        "--leader-elect",
        "--lease-namespace",
        &world.ns.name,
    ])
    .await;
    world.set_rotation("cache", 1).await;
    let reset = format!("would reset the password of database {} for rotation 1", world.database_id);
    eventually(WAIT, "DryRun events for the rotation and the first sync", || async {
        let notes = dry_run_events(&world).await;
        let first_sync = notes.iter().any(|n| n.contains("first sync, no reset"));
        (first_sync && notes.iter().any(|n| n.contains(&reset))).then_some(())
    })
    .await;
    assert!(operator.logs().contains("dry run: would reset the password"), "{}", operator.logs());
    assert_eq!(world.resets().await, 0, "a dry run resets nothing");
    assert_eq!(world.secret_text("cache", upstash_rotator::secret::KEY_PASSWORD).await, password);
    assert!(world.secrets().get_opt("fresh").await.expect("read").is_none(), "nor writes a Secret");
    let after = world.resources().get("cache").await.expect("resource");
    assert_eq!(after.status, synced.status, "nor a status");
    assert!(after.metadata.finalizers.is_none());
    assert_eq!(world.resources().get("fresh").await.expect("resource").status, None);
    let leases: Api<Lease> = Api::namespaced(world.client.clone(), &world.ns.name);
    assert!(leases.get_opt("upstash-rotator").await.expect("read").is_none(), "no part in the election");
    operator.signal("TERM");
    assert!(operator.wait(Duration::from_secs(30)).await.success(), "{}", operator.logs());

    // The real operator afterwards does what the dry run described, once.
    world.start_operator().await;
    world.wait_applied("cache", 1).await;
    assert_eq!(world.resets().await, 1);
}
