//! End to end on the real control plane and `upstash-sim`: first sync,
//! rotation, jumps, lost responses and restarts mid-rotation.

use testkit as support;

use std::time::Duration;

use kube::api::{Patch, PatchParams};
use reqwest::Method;
use serde_json::json;
use support::world::{World, credentials_of};
use upstash_rotator::{
    conditions::Reason,
    reconcile::{FINALIZER, MANAGER},
    secret,
};

#[tokio::test]
async fn new_resource_gets_current_credentials_without_a_reset_then_rotates() {
    let world = World::new("rotate").await;
    let mut spec = world.spec();
    spec.secret_template = Some(Box::new(upstash_rotator::crd::SecretTemplate {
        labels: [("app.kubernetes.io/part-of".to_owned(), "shop".to_owned())].into(),
        annotations: [("team".to_owned(), "payments".to_owned())].into(),
        ..Default::default()
    }));
    world.create("cache", spec).await;
    let synced = world.wait_for("cache", Reason::Synced.as_str(), |_| true).await;
    let status = synced.status.clone().expect("status");
    assert_eq!((status.rotation, status.pending_rotation), (Some(0), None));
    assert_eq!(status.secret_name.as_deref(), Some("cache"));
    assert_eq!(world.resets().await, 0, "a new resource never resets");

    let before = world.current().await;
    let host = before["endpoint"].as_str().expect("endpoint");
    assert_eq!(
        world.secret_text("cache", secret::KEY_PASSWORD).await,
        before["password"].as_str().expect("pw")
    );
    assert_eq!(
        world.secret_text("cache", secret::KEY_REST_TOKEN).await,
        before["rest_token"].as_str().expect("t")
    );
    // upstash-sim reports where its data plane listens (Upstash: https://<endpoint>).
    assert_eq!(before["rest_url"].as_str(), Some(world.sim.url.as_str()));
    assert_eq!(world.secret_text("cache", secret::KEY_REST_URL).await, world.sim.url);
    assert_eq!(world.secret_text("cache", secret::KEY_HOST).await, host);
    assert_eq!(world.secret_text("cache", secret::KEY_PORT).await, "6379");
    assert!(world.secret_text("cache", secret::KEY_REDIS_URL).await.starts_with("rediss://default:"));
    let written = world.secrets().get("cache").await.expect("secret");
    assert_eq!(written.type_.as_deref(), Some("Opaque"));
    let labels = written.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels.get(secret::MANAGED_BY_LABEL).map(String::as_str), Some(secret::MANAGED_BY));
    assert_eq!(
        labels.get("app.kubernetes.io/part-of").map(String::as_str),
        Some("shop"),
        "secretTemplate labels"
    );
    let annotations = written.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(annotations.get(secret::ROTATION_ANNOTATION).map(String::as_str), Some("0"));
    assert_eq!(annotations.get(secret::DATABASE_ANNOTATION), Some(&world.database_id));
    assert_eq!(annotations.get("team").map(String::as_str), Some("payments"), "secretTemplate annotations");
    let owners = written.metadata.owner_references.clone().unwrap_or_default();
    assert_eq!(owners.len(), 1, "Delete policy: owned by the resource");
    assert!(synced.metadata.finalizers.is_none(), "no finalizer while idle");

    // Idle when nothing changes: the operator stops calling Upstash.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let count = |log: serde_json::Value| log["counts"]["get"][&world.database_id].as_u64().unwrap_or(0);
    let quiet_before = count(world.sim.request_log().await);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let quiet_after = count(world.sim.request_log().await);
    assert_eq!(quiet_before, quiet_after, "no Upstash calls while nothing changes");

    world.set_rotation("cache", 1).await;
    let rotated = world.wait_applied("cache", 1).await;
    assert_eq!(world.resets().await, 1, "exactly one reset for one step");
    let after = world.current().await;
    assert_ne!(after["password"], before["password"]);
    assert_eq!(
        world.secret_text("cache", secret::KEY_PASSWORD).await,
        after["password"].as_str().expect("pw")
    );
    assert_eq!(
        world.secret_text("cache", secret::KEY_REST_READONLY_TOKEN).await,
        after["read_only_rest_token"].as_str().expect("ro")
    );
    let status = rotated.status.clone().expect("status");
    assert!(status.last_rotation_time.is_some());
    assert_eq!(support::conditions_reason(&rotated), Some(Reason::Rotated.as_str().to_owned()));
    assert!(rotated.metadata.finalizers.clone().unwrap_or_default().iter().all(|f| f != FINALIZER));
    // Every status write names the operator as its manager, never "unknown".
    assert_eq!(support::managers(&rotated.metadata, "status"), [MANAGER]);
    let old_token = before["rest_token"].as_str().expect("token");
    let new_token = after["rest_token"].as_str().expect("token");
    assert_eq!(world.sim.ping(old_token).await, 401, "the old token is revoked");
    assert_eq!(world.sim.ping(new_token).await, 200, "the Secret's token works");
    world.wait_event("Rotated", 1).await;

    // A jump of several steps asks for one rotation.
    world.set_rotation("cache", 4).await;
    world.wait_applied("cache", 4).await;
    assert_eq!(world.resets().await, 2);
    let latest = world.current().await;
    assert_eq!(
        world.secret_text("cache", secret::KEY_PASSWORD).await,
        latest["password"].as_str().expect("pw")
    );

    let mut seen = credentials_of(&before);
    seen.extend(credentials_of(&after));
    seen.extend(credentials_of(&latest));
    world.assert_nothing_leaked(&seen).await;
}

#[tokio::test]
async fn a_lost_reset_response_is_recovered_without_a_second_reset() {
    let world = World::new("lost").await;
    world.create("cache", world.spec()).await;
    world.wait_for("cache", Reason::Synced.as_str(), |_| true).await;
    let before = world.current().await;

    world.sim.fault(json!({"route": "reset-password", "action": {"kind": "drop_after_apply"}})).await;
    world.set_rotation("cache", 1).await;
    world.wait_applied("cache", 1).await;
    assert_eq!(world.resets().await, 1, "the lost response must not cause a second reset");
    let current = world.current().await;
    assert_ne!(current["password"], before["password"]);
    assert_eq!(
        world.secret_text("cache", secret::KEY_PASSWORD).await,
        current["password"].as_str().expect("pw")
    );
    world.wait_event("RotationRecovered", 1).await;

    // A slow answer past the client timeout is the same unknown outcome.
    world.sim.fault(json!({"route": "reset-password", "action": {"kind": "delay", "ms": 4000}})).await;
    world.set_rotation("cache", 2).await;
    world.wait_applied("cache", 2).await;
    assert_eq!(world.resets().await, 2);
    let current = world.current().await;
    assert_eq!(
        world.secret_text("cache", secret::KEY_PASSWORD).await,
        current["password"].as_str().expect("pw")
    );

    let mut seen = credentials_of(&before);
    seen.extend(credentials_of(&current));
    world.assert_nothing_leaked(&seen).await;
}

#[tokio::test]
async fn a_5xx_that_did_not_apply_leads_to_exactly_one_reset() {
    let world = World::new("fivexx").await;
    world.create("cache", world.spec()).await;
    world.wait_for("cache", Reason::Synced.as_str(), |_| true).await;
    let fault = json!({"route": "reset-password", "action":
        {"kind": "respond", "status": 500, "body": "{\"error\":\"cluster under maintenance\"}"}});
    world.sim.fault(fault).await;
    world.set_rotation("cache", 1).await;
    world.wait_applied("cache", 1).await;
    assert_eq!(world.resets().await, 1, "GET showed the old password, so one real reset followed");
    let current = world.current().await;
    assert_eq!(
        world.secret_text("cache", secret::KEY_PASSWORD).await,
        current["password"].as_str().expect("pw")
    );
}

/// Simulates a crash right after the intent was recorded: the operator is
/// stopped, the status is set by hand, and a new operator takes over.
async fn crash_after_intent(world: &mut World, reset_happened: bool) {
    world.create("cache", world.spec()).await;
    world.wait_for("cache", Reason::Synced.as_str(), |_| true).await;
    world.stop_operator().await;

    world.set_rotation("cache", 1).await;
    let status = json!({"apiVersion": "upstash-rotator.io/v1alpha1", "kind": "RedisPasswordRotation",
        "status": {"rotation": 0, "pendingRotation": 1}});
    world
        .resources()
        .patch_status("cache", &PatchParams::apply("crash-test").force(), &Patch::Apply(&status))
        .await
        .expect("status");
    if reset_happened {
        assert_eq!(world.sim.reset(&world.database_id).await.expect("reset").status(), 200);
    }
    world.start_operator().await;
    world.wait_applied("cache", 1).await;
}

#[tokio::test]
async fn restart_with_pending_rotation_adopts_a_reset_that_happened() {
    let mut world = World::prepare("restart-done").await;
    world.start_operator().await;
    crash_after_intent(&mut world, true).await;
    assert_eq!(world.resets().await, 1, "the reset before the crash is adopted, not repeated");
    let current = world.current().await;
    assert_eq!(
        world.secret_text("cache", secret::KEY_PASSWORD).await,
        current["password"].as_str().expect("pw")
    );
    world.wait_event("RotationRecovered", 1).await;
}

#[tokio::test]
async fn restart_with_pending_rotation_resets_once_when_it_never_happened() {
    let mut world = World::prepare("restart-none").await;
    world.start_operator().await;
    crash_after_intent(&mut world, false).await;
    assert_eq!(world.resets().await, 1);
    let current = world.current().await;
    assert_eq!(
        world.secret_text("cache", secret::KEY_PASSWORD).await,
        current["password"].as_str().expect("pw")
    );
}

#[tokio::test]
async fn credential_protection_needs_a_rotation_and_repeats_blind_resets_loudly() {
    let mut world = World::prepare("protected").await;
    world
        .sim
        .control(
            Method::PUT,
            &format!("/_sim/databases/{}/credential-protection", world.database_id),
            json!({"enabled": true}),
        )
        .await;
    world.start_operator().await;
    world.create("cache", world.spec()).await;
    let waiting = world.wait_for("cache", Reason::CredentialsUnavailable.as_str(), |_| true).await;
    let message = support::ready_message(&waiting);
    assert!(message.contains("spec.rotation"), "{message}");
    assert!(world.secrets().get_opt("cache").await.expect("get").is_none());

    world.set_rotation("cache", 1).await;
    world.wait_applied("cache", 1).await;
    assert_eq!(world.resets().await, 1);
    let token = world.secret_text("cache", secret::KEY_REST_TOKEN).await;
    assert_eq!(world.sim.ping(&token).await, 200, "the reset response was stored");

    // After a crash with the intent recorded, nothing can be compared.
    world.stop_operator().await;
    world.set_rotation("cache", 2).await;
    let status = json!({"apiVersion": "upstash-rotator.io/v1alpha1", "kind": "RedisPasswordRotation",
        "status": {"rotation": 1, "pendingRotation": 2}});
    world
        .resources()
        .patch_status("cache", &PatchParams::apply("crash-test").force(), &Patch::Apply(&status))
        .await
        .expect("status");
    world.start_operator().await;
    world.wait_applied("cache", 2).await;
    assert_eq!(world.resets().await, 2);
    assert!(world.event_reasons().await.iter().any(|r| r == "ResetRepeated"));
    let token = world.secret_text("cache", secret::KEY_REST_TOKEN).await;
    assert_eq!(world.sim.ping(&token).await, 200);
}

#[tokio::test]
async fn drift_is_corrected_without_a_reset() {
    let world = World::new("drift").await;
    world.create("cache", world.spec()).await;
    world.wait_for("cache", Reason::Synced.as_str(), |_| true).await;
    let password = world.current().await["password"].as_str().expect("pw").to_owned();

    world.secrets().delete("cache", &Default::default()).await.expect("delete secret");
    support::eventually(support::WAIT, "the deleted Secret to be restored", || async {
        let s = world.secrets().get_opt("cache").await.ok()??;
        (s.metadata.deletion_timestamp.is_none() && secret::stored_credentials(&s).is_some()).then_some(())
    })
    .await;
    assert_eq!(world.secret_text("cache", secret::KEY_PASSWORD).await, password);

    let edit = json!({"data": {secret::KEY_PASSWORD: "dGFtcGVyZWQ="}});
    world.secrets().patch("cache", &PatchParams::default(), &Patch::Merge(&edit)).await.expect("edit");
    support::eventually(support::WAIT, "the edited Secret to be restored", || async {
        (world.secret_text("cache", secret::KEY_PASSWORD).await == password).then_some(())
    })
    .await;
    assert_eq!(world.resets().await, 0);
    world.wait_event("DriftCorrected", 2).await;
}

#[tokio::test]
async fn a_key_secret_older_than_its_resource_is_read_once() {
    let mut world = World::prepare("keyonce").await;
    world.start_operator().await;
    let Some(operator) = world.operator.as_ref() else { panic!("started") };
    // The operator's watches of Secrets have listed the API key's Secret,
    // which no resource names yet: it keeps no version of it.
    support::eventually(support::WAIT, "the watches of Secrets listed", || async {
        let listed = operator.kubernetes_requests("list", "secrets", "200") >= 2
            && operator.kubernetes_requests("watch", "secrets", "200") >= 2;
        listed.then_some(())
    })
    .await;
    world.create("cache", world.spec()).await;
    world.wait_applied("cache", 0).await;
    for rotation in 1..=3 {
        world.set_rotation("cache", rotation).await;
        world.wait_applied("cache", rotation).await;
    }
    assert_eq!(world.resets().await, 3);
    // One read of one Secret: the key, whose version the watch learned from
    // it, so each later reconcile used the copy of that read. Each rotation's
    // dry run proved the resource's own Secret without reading it.
    assert_eq!(operator.kubernetes_requests("get", "secrets", "200"), 1, "Secret reads");
}
