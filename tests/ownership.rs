//! Secrets the operator does not own, databases two resources claim, and
//! deletion with both policies.

use testkit as support;

use std::time::Duration;

use k8s_openapi::{ByteString, api::core::v1::Secret};
use kube::api::{DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use serde_json::json;
use support::{WAIT, eventually, ready_message, world::World};
use upstash_rotator::{
    cache,
    conditions::Reason,
    crd::{DeletionPolicy, RedisPasswordRotation},
    reconcile::FINALIZER,
    secret::{self, ADOPT_ANNOTATION},
};

async fn foreign_secret(world: &World, name: &str) {
    let secret = Secret {
        metadata: ObjectMeta { name: Some(name.into()), ..Default::default() },
        data: Some([("mine".to_owned(), ByteString(b"keep".to_vec()))].into()),
        ..Default::default()
    };
    world.secrets().create(&PostParams::default(), &secret).await.expect("foreign secret");
}

#[tokio::test]
async fn a_foreign_secret_is_never_touched_unless_marked_for_adoption() {
    let world = World::new("foreign").await;
    foreign_secret(&world, "cache").await;
    world.create("cache", world.spec()).await;
    let refused = world.wait_for("cache", Reason::SecretConflict.as_str(), |_| true).await;
    assert!(ready_message(&refused).contains(ADOPT_ANNOTATION));
    // Raising the counter must not reset either: the Secret could not take the result.
    world.set_rotation("cache", 1).await;
    // The operator has looked at the raised counter (and refused again)...
    world.wait_for("cache", Reason::SecretConflict.as_str(), seen_latest_generation).await;
    // ...and reset nothing.
    assert_eq!(world.resets().await, 0);
    let untouched = world.secrets().get("cache").await.expect("secret");
    assert_eq!(untouched.data.as_ref().map(|d| d.len()), Some(1));

    let adopt = json!({"metadata": {"annotations": {ADOPT_ANNOTATION: "true"}}});
    world.secrets().patch("cache", &PatchParams::default(), &Patch::Merge(&adopt)).await.expect("annotate");
    world.wait_applied("cache", 1).await;
    let current = world.current().await;
    assert_eq!(
        world.secret_text("cache", secret::KEY_PASSWORD).await,
        current["password"].as_str().expect("pw")
    );
}

/// The watch for API key Secrets leaves out the Secrets the operator wrote
/// (its own watch has those), by the apiserver's own selector semantics:
/// `!=` keeps every Secret without the label, which API key Secrets are.
#[tokio::test]
async fn the_key_secrets_watch_selects_every_secret_but_those_the_operator_wrote() {
    let world = World::new("selectors").await;
    world.create("cache", world.spec()).await;
    world.wait_for("cache", Reason::Synced.as_str(), |_| true).await;
    foreign_secret(&world, "unrelated").await;
    let names = |selector: String| {
        let secrets = world.secrets();
        async move {
            let listed = secrets.list(&ListParams::default().labels(&selector)).await.expect("list");
            let mut names: Vec<String> = listed.items.into_iter().filter_map(|s| s.metadata.name).collect();
            names.sort();
            names
        }
    };
    let key = support::world::CREDENTIALS_SECRET.to_owned();
    let mut others = vec![key, "unrelated".to_owned()];
    others.sort();
    assert_eq!(names(cache::others_selector()).await, others);
    assert_eq!(names(cache::written_selector()).await, ["cache"]);
}

#[tokio::test]
async fn a_secret_of_another_resource_is_a_conflict() {
    let world = World::new("twosecrets").await;
    world.create("first", world.spec()).await;
    world.wait_for("first", Reason::Synced.as_str(), |_| true).await;
    // A second database, and a resource pointing at the first one's Secret.
    let other_db = world.sim.create_database("other").await["database_id"].as_str().expect("id").to_owned();
    let mut spec = world.spec();
    spec.database_id = other_db;
    spec.secret_name = Some("first".into());
    world.create("second", spec).await;
    let refused = world.wait_for("second", Reason::SecretConflict.as_str(), |_| true).await;
    assert!(ready_message(&refused).contains("first"));
}

#[tokio::test]
async fn two_resources_on_one_database_the_later_refuses() {
    let world = World::new("samedb").await;
    world.create("older", world.spec()).await;
    world.wait_for("older", Reason::Synced.as_str(), |_| true).await;
    tokio::time::sleep(Duration::from_millis(1100)).await; // distinct creation timestamps
    world.create("newer", world.spec()).await;
    let refused = world.wait_for("newer", Reason::DatabaseConflict.as_str(), |_| true).await;
    assert!(ready_message(&refused).contains("older"));
    assert!(world.secrets().get_opt("newer").await.expect("get").is_none());

    world.set_rotation("newer", 3).await;
    world.set_rotation("older", 1).await;
    world.wait_applied("older", 1).await;
    // The newer one has looked at its raised counter and refused.
    world.wait_for("newer", Reason::DatabaseConflict.as_str(), seen_latest_generation).await;
    assert_eq!(world.resets().await, 1, "only the older resource rotates");
}

#[tokio::test]
async fn delete_policy_removes_the_secret_retain_keeps_it() {
    let world = World::new("policies").await;
    world.create("deleted", world.spec()).await;
    let mut retain = world.spec();
    retain.deletion_policy = DeletionPolicy::Retain;
    retain.database_id =
        world.sim.create_database("kept").await["database_id"].as_str().expect("id").to_owned();
    world.create("kept", retain).await;
    world.wait_for("deleted", Reason::Synced.as_str(), |_| true).await;
    world.wait_for("kept", Reason::Synced.as_str(), |_| true).await;
    let kept = world.secrets().get("kept").await.expect("secret");
    assert!(kept.metadata.owner_references.is_none(), "Retain: no owner reference");

    world.resources().delete("deleted", &DeleteParams::default()).await.expect("delete");
    world.resources().delete("kept", &DeleteParams::default()).await.expect("delete");
    let secrets = world.secrets();
    eventually(WAIT, "the garbage collector to remove the owned Secret", || async {
        secrets.get_opt("deleted").await.ok()?.is_none().then_some(())
    })
    .await;
    eventually(WAIT, "both resources to go", || async {
        let left = world.resources().list(&Default::default()).await.ok()?.items.len();
        (left == 0).then_some(())
    })
    .await;
    assert!(secrets.get_opt("kept").await.expect("get").is_some(), "Retain keeps the Secret");
}

#[tokio::test]
async fn deletion_waits_for_a_reset_in_flight_and_keeps_its_result() {
    let world = World::new("inflight").await;
    let mut spec = world.spec();
    spec.deletion_policy = DeletionPolicy::Retain;
    world.create("cache", spec).await;
    world.wait_for("cache", Reason::Synced.as_str(), |_| true).await;

    // A slow reset (longer than the operator's 2 s request timeout).
    world.sim.fault(json!({"route": "reset-password", "action": {"kind": "delay", "ms": 3000}})).await;
    world.set_rotation("cache", 1).await;
    eventually(WAIT, "the finalizer while the reset is in flight", || async {
        let r = world.resources().get("cache").await.ok()?;
        r.metadata.finalizers.unwrap_or_default().iter().any(|f| f == FINALIZER).then_some(())
    })
    .await;
    world.resources().delete("cache", &DeleteParams::default()).await.expect("delete");
    eventually(WAIT, "the resource to go once its rotation finished", || async {
        world.resources().get_opt("cache").await.ok()?.is_none().then_some(())
    })
    .await;
    assert_eq!(world.resets().await, 1);
    let current = world.current().await;
    assert_eq!(
        world.secret_text("cache", secret::KEY_PASSWORD).await,
        current["password"].as_str().expect("pw"),
        "the retained Secret holds the newest credentials"
    );
}

#[tokio::test]
async fn deleting_an_idle_resource_never_hangs() {
    let world = World::new("idle").await;
    world.create("cache", world.spec()).await;
    world.wait_for("cache", Reason::Synced.as_str(), |_| true).await;
    world.stop_operator_for_test().await;
    world.resources().delete("cache", &DeleteParams::default()).await.expect("delete");
    eventually(WAIT, "deletion without the operator", || async {
        world.resources().get_opt("cache").await.ok()?.is_none().then_some(())
    })
    .await;
}

/// The operator has reconciled the resource's latest spec.
fn seen_latest_generation(r: &RedisPasswordRotation) -> bool {
    r.status.as_ref().and_then(|s| s.observed_generation) == r.metadata.generation
}
