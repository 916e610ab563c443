//! Regression tests of the rotation promise on the real control plane and
//! `upstash-sim`: no password lost, no second reset for one counter value,
//! no rotation reported that never happened, whatever else writes meanwhile.

use testkit as support;

use std::time::Duration;

use k8s_openapi::{
    ByteString,
    api::core::v1::{Namespace, Secret},
};
use kube::{
    Api,
    api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams},
    runtime::events::{Recorder, Reporter},
};
use reqwest::Method;
use serde_json::json;
use support::{
    WAIT, admission::SecretWriteDenial, eventually, operator::Operator, ready_message, world::World,
};
use upstash_api::{ApiCredentials, UpstashClient, UpstashError};
use upstash_rotator::{
    conditions::{self, Reason},
    crd::CredentialsSecretRef,
    events::EventQueue,
    leader::Fence,
    metrics::Metrics,
    reconcile::{Cluster, KubeOps as _},
    secret,
};

/// The Secret holds what Upstash has now: the application can connect.
async fn assert_secret_is_current(world: &World, name: &str) {
    let current = world.current().await;
    assert_eq!(
        world.secret_text(name, secret::KEY_PASSWORD).await,
        current["password"].as_str().expect("password"),
        "Secret {name} holds a revoked password"
    );
}

#[tokio::test]
async fn an_edited_secret_does_not_fake_a_rotation_that_never_happened() {
    let world = World::new("edited").await;
    world.create("cache", world.spec()).await;
    world.wait_for("cache", Reason::Synced.as_str(), |_| true).await;

    // A 5xx leaves the outcome unknown; it did not apply.
    let fault = json!({"route": "reset-password", "action": {"kind": "respond", "status": 500}});
    world.sim.fault(fault).await;
    world.set_rotation("cache", 1).await;
    eventually(WAIT, "the refused reset", || async {
        (world.sim.request_log().await["counts"]["reset-password"][&world.database_id].as_u64() >= Some(1))
            .then_some(())
    })
    .await;
    // While the operator waits out the in-flight window, a user edits the
    // Secret: it no longer matches Upstash, but no reset happened.
    let patch = json!({"stringData": {secret::KEY_PASSWORD: "typed-by-hand"}});
    world.secrets().patch("cache", &PatchParams::default(), &Patch::Merge(&patch)).await.expect("edit");

    world.wait_applied("cache", 1).await;
    assert_eq!(world.resets().await, 1, "the rotation was really made, once");
    assert_secret_is_current(&world, "cache").await;
    // The rotation is reported once, as `Rotated` or as `RotationRecovered`,
    // after its status: wait for the report before asserting which.
    world.wait_event("Rotated", 1).await;
    assert!(
        !world.event_reasons().await.iter().any(|r| r == "RotationRecovered"),
        "a hand edit is no proof of a reset"
    );
    let status = world.resources().get("cache").await.expect("resource").status.unwrap_or_default();
    let newest = status.history.first().map(|h| (h.rotation, h.recovered));
    assert_eq!(newest, Some((1, false)), "the history records a reset made, not recovered");
}

#[tokio::test]
async fn blind_resets_stop_after_three_and_a_counter_bump_resumes() {
    let world = World::prepare("blind").await;
    let protection = format!("/_sim/databases/{}/credential-protection", world.database_id);
    world.sim.control(Method::PUT, &protection, json!({"enabled": true})).await;
    let mut world = world;
    world.start_operator().await;
    world.create("cache", world.spec()).await;
    world.wait_for("cache", Reason::CredentialsUnavailable.as_str(), |_| true).await;
    world.set_rotation("cache", 1).await;
    world.wait_applied("cache", 1).await;
    assert_eq!(world.resets().await, 1);

    // Every answer is lost from now on, and nothing can be compared.
    world
        .sim
        .fault(json!({"route": "reset-password", "times": 20, "action": {"kind": "drop_after_apply"}}))
        .await;
    world.set_rotation("cache", 2).await;
    let stuck = world.wait_for("cache", Reason::RotationNeedsAttention.as_str(), |_| true).await;
    let message = ready_message(&stuck);
    assert!(message.contains("raise spec.rotation"), "{message}");
    assert_eq!(world.resets().await, 1 + 1 + 3, "the first reset and three blind ones, then nothing");
    assert_eq!(world.event_count("ResetRepeated").await, 3);
    // Make the operator look again (a change to the API credentials Secret
    // reconciles the resource): it reads Upstash, and still resets nothing.
    let gets =
        || async { world.sim.request_log().await["counts"]["get"][&world.database_id].as_u64().unwrap_or(0) };
    let gets_before = gets().await;
    let patch = json!({"metadata": {"annotations": {"example.com/touched": "1"}}});
    world
        .secrets()
        .patch("upstash-api", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("touch");
    eventually(WAIT, "the operator to check Upstash again", || async {
        (gets().await > gets_before).then_some(())
    })
    .await;
    assert_eq!(world.resets().await, 5, "capped: no more resets on its own");

    world.sim.control(Method::DELETE, "/_sim/faults", json!({})).await;
    world.set_rotation("cache", 3).await;
    world.wait_applied("cache", 3).await;
    assert_eq!(world.resets().await, 6, "the counter bump asked for one more reset");
    let token = world.secret_text("cache", secret::KEY_REST_TOKEN).await;
    assert_eq!(world.sim.ping(&token).await, 200, "the Secret works again");
}

#[tokio::test]
async fn an_immutable_secret_stops_a_rotation_before_the_reset() {
    let world = World::new("immutable").await;
    world.create("cache", world.spec()).await;
    world.wait_for("cache", Reason::Synced.as_str(), |_| true).await;
    let patch = json!({"immutable": true});
    world.secrets().patch("cache", &PatchParams::default(), &Patch::Merge(&patch)).await.expect("freeze");

    world.set_rotation("cache", 1).await;
    let refused = world.wait_for("cache", Reason::SecretNotWritable.as_str(), |_| true).await;
    assert!(ready_message(&refused).contains("immutable"), "{}", ready_message(&refused));
    assert_eq!(world.resets().await, 0, "no reset whose answer could not be stored");
    assert_eq!(refused.status.as_ref().and_then(|s| s.pending_rotation), None);
    assert_secret_is_current(&world, "cache").await;

    // The user removes the obstacle; the rotation goes ahead.
    world.secrets().delete("cache", &DeleteParams::default()).await.expect("delete");
    world.wait_applied("cache", 1).await;
    assert_eq!(world.resets().await, 1);
    assert_secret_is_current(&world, "cache").await;
}

/// What the test's admission policy answers a denied Secret write with.
const DENIED: &str = "Secret writes are closed in this namespace";

#[tokio::test]
async fn an_update_probe_reads_the_secret_at_its_version_and_passes_the_same_admission() {
    let world = World::prepare("probe").await;
    let secret = Secret {
        metadata: ObjectMeta { name: Some("cache".into()), ..Default::default() },
        data: Some([("password".to_owned(), ByteString(b"old".to_vec()))].into()),
        ..Default::default()
    };
    let created = world.secrets().create(&PostParams::default(), &secret).await.expect("create");
    let version = created.metadata.resource_version.clone().expect("version");
    let reporter = Reporter { controller: "probe-test".into(), instance: None };
    let recorder = Recorder::new(world.client.clone(), reporter.clone());
    let reports = EventQueue::start(world.client.clone(), reporter, Metrics::default().events_dropped);
    let cluster = Cluster::new(world.client.clone(), recorder, reports);
    let ns = world.ns.name.as_str();

    // At its version: the Secret as stored, data included, and unchanged.
    let probed = cluster.probe_secret_update(ns, "cache", &version).await.expect("probe");
    assert_eq!(probed.metadata.resource_version.as_deref(), Some(version.as_str()));
    assert_eq!(probed.data, secret.data);
    // Changed since: a 409; gone: a 404.
    let patch = json!({"metadata": {"labels": {"team": "payments"}}});
    let edited =
        world.secrets().patch("cache", &PatchParams::default(), &Patch::Merge(&patch)).await.expect("edit");
    let status = |r: kube::Result<Secret>| match r {
        Err(kube::Error::Api(s)) => s.code,
        other => panic!("expected an API error, got {other:?}"),
    };
    assert_eq!(status(cluster.probe_secret_update(ns, "cache", &version).await), 409);
    assert_eq!(status(cluster.probe_secret_update(ns, "absent", &version).await), 404);

    // Admission refuses it as it refuses the write it stands for.
    let edited_version = edited.metadata.resource_version.expect("version");
    let denial = SecretWriteDenial::new(&world.client, ns, DENIED);
    denial.enforce().await.expect("enforced");
    let refused = cluster.probe_secret_update(ns, "cache", &edited_version).await;
    assert!(matches!(&refused, Err(kube::Error::Api(s)) if s.message.contains(DENIED)), "{refused:?}");
    denial.lift().await.expect("lifted");
    cluster.probe_secret_update(ns, "cache", &edited_version).await.expect("allowed again");
    let stored = world.secrets().get("cache").await.expect("get");
    assert_eq!(stored.metadata.resource_version, Some(edited_version), "a dry run stores nothing");
}

#[tokio::test]
async fn a_policy_refusing_secret_updates_stops_a_rotation_before_the_reset() {
    let world = World::new("denied").await;
    world.create("cache", world.spec()).await;
    world.wait_applied("cache", 0).await;
    let denial = SecretWriteDenial::new(&world.client, &world.ns.name, DENIED);
    denial.enforce().await.expect("enforced");

    world.set_rotation("cache", 1).await;
    let refused = world.wait_for("cache", Reason::SecretNotWritable.as_str(), |_| true).await;
    assert!(ready_message(&refused).contains(DENIED), "{}", ready_message(&refused));
    assert_eq!(world.resets().await, 0, "no reset whose answer could not be stored");
    assert_eq!(refused.status.as_ref().and_then(|s| s.pending_rotation), None);
    assert_secret_is_current(&world, "cache").await;

    // The policy goes; the rotation goes ahead, and its check knows the
    // credentials it replaced.
    denial.lift().await.expect("lifted");
    world.wait_applied("cache", 1).await;
    assert_eq!(world.resets().await, 1);
    assert_secret_is_current(&world, "cache").await;
    let verified = eventually(WAIT, "the check after the rotation", || async {
        let r = world.resources().get("cache").await.ok()?;
        let c = conditions::get(&r.status?.conditions, conditions::VERIFIED)?.clone();
        (c.reason == Reason::Verified.as_str()).then_some(c)
    })
    .await;
    assert!(verified.message.contains("the old ones are refused"), "{}", verified.message);
}

#[tokio::test]
async fn a_process_without_its_lease_never_acts() {
    let world = World::prepare("fenced").await;
    let stale = Operator::start_as(
        world.client.clone(),
        &world.ns.name,
        &world.sim.url,
        Duration::from_secs(2),
        "stale",
        Fence::closed(),
    )
    .await;
    world.create("cache", world.spec()).await;
    world.set_rotation("cache", 1).await;
    // The reconcile ran and refused at once, on its fence.
    let ns = world.ns.name.clone();
    eventually(WAIT, "the fenced operator to refuse", || {
        let ns = ns.clone();
        async move {
            support::operator::captured_logs()
                .lines()
                .any(|l| l.contains(&ns) && l.contains("lease is not renewed in time"))
                .then_some(())
        }
    })
    .await;
    let resource = world.resources().get("cache").await.expect("get");
    assert!(resource.status.is_none(), "no status write: {:?}", resource.status);
    assert!(resource.metadata.finalizers.is_none(), "no finalizer");
    assert!(world.secrets().get_opt("cache").await.expect("get").is_none(), "no Secret");
    let log = world.sim.request_log().await;
    assert_eq!(log["counts"]["get"][&world.database_id].as_u64().unwrap_or(0), 0, "no Upstash call");
    assert_eq!(world.resets().await, 0);
    stale.stop().await;
}

#[tokio::test]
async fn a_resource_that_never_synced_does_not_block_the_database() {
    let world = World::new("squatter").await;
    // An older resource names the same database with a key that cannot work.
    let bogus = "bogus-api";
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": bogus},
        "stringData": {"email": "nobody@example.com", "apiKey": "wrong"}});
    world.secrets().patch(bogus, &PatchParams::apply("test"), &Patch::Apply(&secret)).await.expect("secret");
    let mut squatter = world.spec();
    squatter.credentials_secret_ref = Some(CredentialsSecretRef::named(bogus));
    world.create("older", squatter).await;
    world.wait_for("older", Reason::InvalidCredentials.as_str(), |_| true).await;
    tokio::time::sleep(Duration::from_millis(1100)).await; // creation timestamps have one-second precision

    world.create("real", world.spec()).await;
    world.wait_for("real", Reason::Synced.as_str(), |_| true).await;
    world.set_rotation("real", 1).await;
    world.wait_applied("real", 1).await;
    assert_secret_is_current(&world, "real").await;
}

#[tokio::test]
async fn deleting_the_namespace_mid_rotation_never_hangs() {
    let mut world = World::prepare("nsgone").await;
    // A request timeout longer than the delay, so the reset answers.
    world.operator = Some(
        Operator::start_with(world.client.clone(), &world.ns.name, &world.sim.url, Duration::from_secs(10))
            .await,
    );
    world.create("cache", world.spec()).await;
    world.wait_for("cache", Reason::Synced.as_str(), |_| true).await;
    world.sim.fault(json!({"route": "reset-password", "action": {"kind": "delay", "ms": 3000}})).await;
    world.set_rotation("cache", 1).await;
    // The intent is recorded: the reset is on its way (held 3 s by the sim).
    eventually(WAIT, "the intent of rotation 1", || async {
        let r = world.resources().get("cache").await.ok()?;
        r.status.and_then(|s| s.pending_rotation).filter(|p| *p == 1)
    })
    .await;

    // The namespace controller deletes the Secret early; do it first so the
    // write after the reset must create it in a terminating namespace.
    world.secrets().delete("cache", &DeleteParams::default()).await.expect("delete Secret");
    let namespaces: Api<Namespace> = Api::all(world.client.clone());
    namespaces.delete(&world.ns.name, &DeleteParams::default()).await.expect("delete namespace");
    eventually(Duration::from_secs(90), "the namespace to go away", || async {
        namespaces.get_opt(&world.ns.name).await.ok().flatten().is_none().then_some(())
    })
    .await;
    assert_eq!(world.resets().await, 1, "no second reset while the namespace goes");
}

#[tokio::test]
async fn two_operators_without_election_reset_once_per_step() {
    let mut world = World::new("tworeplicas").await;
    let second = Operator::start_as(
        world.client.clone(),
        &world.ns.name,
        &world.sim.url,
        Duration::from_secs(2),
        "second",
        Fence::unfenced(),
    )
    .await;
    let mut databases = vec![world.database_id.clone()];
    for i in 1..4 {
        let id = world.sim.create_database(&format!("extra-{i}")).await["database_id"]
            .as_str()
            .expect("id")
            .to_owned();
        databases.push(id);
    }
    for (i, id) in databases.iter().enumerate() {
        let mut spec = world.spec();
        spec.database_id = id.clone();
        world.create(&format!("cache-{i}"), spec).await;
    }
    for i in 0..databases.len() {
        world.wait_for(&format!("cache-{i}"), Reason::Synced.as_str(), |_| true).await;
    }
    const ROUNDS: i64 = 4;
    for round in 1..=ROUNDS {
        for i in 0..databases.len() {
            world.set_rotation(&format!("cache-{i}"), round).await;
        }
        for i in 0..databases.len() {
            world.wait_applied(&format!("cache-{i}"), round).await;
        }
    }
    for (i, id) in databases.iter().enumerate() {
        assert_eq!(world.sim.resets(id).await, ROUNDS.unsigned_abs(), "cache-{i}: one reset per step");
        let password = world.secret_text(&format!("cache-{i}"), secret::KEY_PASSWORD).await;
        let current = world.sim.get_database(id).await;
        assert_eq!(password, current["password"].as_str().expect("pw"), "cache-{i} holds a working password");
    }
    second.stop().await;
    world.stop_operator().await;
}

#[tokio::test]
async fn a_redirect_is_never_followed_with_the_api_key() {
    let sim = support::sim::Sim::start(&[]).await;
    let id = sim.create_database("redirect").await["database_id"].as_str().expect("id").to_owned();
    // The redirect points back at the same reset: following it would send
    // the key again and reset a second time.
    let location = format!("{}/v2/redis/reset-password/{id}", sim.url);
    sim.fault(json!({"route": "reset-password", "action": {"kind": "respond", "status": 307,
        "headers": {"Location": location}}}))
        .await;
    let client = UpstashClient::new(&sim.url, Duration::from_secs(5)).expect("client");
    let auth = ApiCredentials { email: support::sim::EMAIL.into(), api_key: support::sim::API_KEY.into() };
    let answer = client.reset_password(&auth, &id).await;
    assert!(matches!(answer, Err(UpstashError::Rejected { status: 307, .. })), "{answer:?}");
    assert_eq!(sim.resets(&id).await, 0, "the redirect was not followed");
}
