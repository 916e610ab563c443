//! `spec.rolloutRestart` on the real apiserver: the listed Deployments,
//! StatefulSets and DaemonSets get a new pod-template annotation once per
//! change of credentials, and never on a first sync, an operator restart or
//! a deleted Secret restored with the same credentials.

use testkit as support;

use support::{WAIT, eventually, workloads, world::World};
use upstash_rotator::{
    conditions::{self, CONSUMERS_RESTARTED, Reason},
    crd::{RedisPasswordRotation, WorkloadKind, WorkloadRef},
};

const KINDS: [(WorkloadKind, &str); 3] = [
    (WorkloadKind::Deployment, "web"),
    (WorkloadKind::StatefulSet, "db"),
    (WorkloadKind::DaemonSet, "agent"),
];

async fn states(world: &World) -> Vec<(Option<String>, i64)> {
    let mut out = Vec::new();
    for (kind, name) in KINDS {
        out.push(workloads::restart_state(&world.client, &world.ns.name, kind, name).await);
    }
    out
}

/// Waits until `ConsumersRestarted` has `reason` for the credentials in status.
async fn wait_consumers(world: &World, name: &str, reason: Reason) -> RedisPasswordRotation {
    let api = world.resources();
    eventually(WAIT, &format!("{name}: ConsumersRestarted {reason}"), || {
        let api = api.clone();
        async move {
            let r = api.get(name).await.ok()?;
            let status = r.status.as_ref()?;
            let settled = status.consumers_fingerprint.is_some()
                && status.consumers_fingerprint == status.credentials_fingerprint;
            (settled && conditions::reason_of(&status.conditions, CONSUMERS_RESTARTED) == Some(reason))
                .then_some(r)
        }
    })
    .await
}

#[tokio::test]
async fn listed_workloads_restart_once_per_rotation_and_never_otherwise() {
    let mut world = World::new("consumers").await;
    for (kind, name) in KINDS {
        workloads::create_idle(&world.client, &world.ns.name, kind, name).await;
    }
    let mut spec = world.spec();
    spec.rollout_restart =
        KINDS.iter().map(|(kind, name)| WorkloadRef { kind: *kind, name: (*name).into() }).collect();
    world.create("cache", spec).await;
    let synced = world
        .wait_for("cache", Reason::Synced.as_str(), |r| {
            r.status.as_ref().is_some_and(|s| s.consumers_fingerprint.is_some())
        })
        .await;
    let untouched = states(&world).await;
    assert!(
        untouched.iter().all(|(annotation, _)| annotation.is_none()),
        "a first sync restarts nothing: {untouched:?}"
    );
    let status = synced.status.clone().unwrap_or_default();
    assert_eq!(status.consumers_fingerprint, status.credentials_fingerprint);
    assert!(conditions::get(&status.conditions, CONSUMERS_RESTARTED).is_none());

    // An operator restart, then a deleted Secret restored with the same credentials.
    world.stop_operator().await;
    world.start_operator().await;
    world.secrets().delete("cache", &Default::default()).await.expect("delete the Secret");
    eventually(WAIT, "the Secret restored", || async {
        (world.event_count("DriftCorrected").await >= 1
            && world.secrets().get_opt("cache").await.ok()??.data.is_some())
        .then_some(())
    })
    .await;
    // A graceful stop finishes the reconcile that restored the Secret, so
    // whatever it would restart has been patched by now.
    world.stop_operator().await;
    assert_eq!(states(&world).await, untouched, "no restart without new credentials");
    world.start_operator().await;

    world.set_rotation("cache", 1).await;
    world.wait_applied("cache", 1).await;
    let rotated = wait_consumers(&world, "cache", Reason::Restarted).await;
    let fingerprint =
        rotated.status.as_ref().and_then(|s| s.credentials_fingerprint.clone()).expect("fingerprint");
    let after_first = states(&world).await;
    for ((annotation, generation), (_, before)) in after_first.iter().zip(&untouched) {
        assert_eq!(annotation.as_deref(), Some(format!("cache rotation 1 {fingerprint}").as_str()));
        assert_eq!(*generation, before + 1, "one new pod template each");
    }
    let message =
        conditions::get(&rotated.status.clone().unwrap_or_default().conditions, CONSUMERS_RESTARTED)
            .map(|c| c.message.clone())
            .unwrap_or_default();
    assert!(message.contains("Deployment/web, StatefulSet/db, DaemonSet/agent"), "{message}");
    world.wait_event("ConsumersRestarted", 1).await;

    // A restarted operator owes nothing for rotation 1.
    // No fixed wait: rotation 2 below must add exactly one generation to
    // each, which fails if this restart (or a late one) restarted anything.
    world.stop_operator().await;
    world.start_operator().await;
    assert_eq!(states(&world).await, after_first, "an operator restart restarts nothing");

    world.set_rotation("cache", 2).await;
    world.wait_applied("cache", 2).await;
    eventually(WAIT, "rotation 2's restarts", || async {
        let now = states(&world).await;
        now.iter().zip(&after_first).all(|((a, g), (b, h))| a != b && *g == h + 1).then_some(())
    })
    .await;
    assert_eq!(world.resets().await, 2);
    world.assert_nothing_leaked(&support::world::credentials_of(&world.current().await)).await;
}

#[tokio::test]
async fn a_missing_workload_is_reported_and_the_rotation_still_counts_as_done() {
    let world = World::new("consumers-missing").await;
    workloads::create_idle(&world.client, &world.ns.name, WorkloadKind::Deployment, "web").await;
    let mut spec = world.spec();
    spec.rollout_restart = vec![
        WorkloadRef { kind: WorkloadKind::Deployment, name: "web".into() },
        WorkloadRef { kind: WorkloadKind::StatefulSet, name: "not-there".into() },
    ];
    world.create("cache", spec).await;
    world.wait_for("cache", Reason::Synced.as_str(), |_| true).await;
    world.set_rotation("cache", 1).await;
    world.wait_applied("cache", 1).await;
    let r = wait_consumers(&world, "cache", Reason::ConsumerNotFound).await;
    let status = r.status.unwrap_or_default();
    let condition = conditions::get(&status.conditions, CONSUMERS_RESTARTED).expect("condition");
    assert_eq!(condition.status, "False");
    assert!(condition.message.contains("StatefulSet/not-there does not exist"), "{}", condition.message);
    assert_eq!(conditions::reason_of(&status.conditions, conditions::READY), Some(Reason::Rotated));
    let (annotation, _) =
        workloads::restart_state(&world.client, &world.ns.name, WorkloadKind::Deployment, "web").await;
    assert!(annotation.is_some(), "the workload that exists is restarted");
    assert!(world.event_reasons().await.iter().any(|r| r == "ConsumersNotRestarted"));
}

#[tokio::test]
async fn a_workload_listed_twice_is_refused_at_admission() {
    let world = World::prepare("consumers-twice").await;
    let mut spec = world.spec();
    let web = WorkloadRef { kind: WorkloadKind::Deployment, name: "web".into() };
    spec.rollout_restart = vec![web.clone(), web];
    let created =
        world.resources().create(&Default::default(), &RedisPasswordRotation::new("cache", spec)).await;
    let error = created.expect_err("refused").to_string();
    assert!(error.contains("spec.rolloutRestart lists a workload twice"), "{error}");
}
