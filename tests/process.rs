//! The operator as a process: graceful shutdown mid-rotation, leader
//! election handover, health and metrics endpoints.

use testkit as support;

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use serde_json::json;
use support::{WAIT, eventually, process::OperatorProcess, world::World};
use upstash_rotator::{conditions::Reason, secret};

#[tokio::test]
async fn sigterm_during_a_slow_reset_still_writes_the_secret() {
    let world = World::prepare("sigterm").await;
    let mut operator = OperatorProcess::start(&[
        "--upstash-api-url",
        &world.sim.url,
        "--namespace",
        &world.ns.name,
        "--request-timeout",
        "20",
        "--shutdown-timeout",
        "20",
    ])
    .await;
    world.create("cache", world.spec()).await;
    world.wait_for("cache", Reason::Synced.as_str(), |_| true).await;
    assert_eq!(operator.get("/readyz").await.0, 200);

    world.sim.fault(json!({"route": "reset-password", "action": {"kind": "delay", "ms": 3000}})).await;
    world.set_rotation("cache", 1).await;
    eventually(WAIT, "the reset to be in flight", || async {
        let r = world.resources().get("cache").await.ok()?;
        r.status?.pending_rotation.map(|_| ())
    })
    .await;
    operator.signal("TERM");
    let status = operator.wait(Duration::from_secs(30)).await;
    assert!(status.success(), "clean exit after finishing the rotation: {status:?}\n{}", operator.logs());

    assert_eq!(world.resets().await, 1);
    let applied = world.resources().get("cache").await.expect("resource");
    let status = applied.status.expect("status");
    assert_eq!((status.rotation, status.pending_rotation), (Some(1), None));
    let current = world.current().await;
    assert_eq!(
        world.secret_text("cache", secret::KEY_PASSWORD).await,
        current["password"].as_str().expect("pw")
    );
    assert!(operator.logs().contains("shutdown requested"));
}

async fn holder(leases: &Api<Lease>) -> Option<String> {
    leases.get_opt("upstash-rotator").await.ok()??.spec?.holder_identity
}

#[tokio::test]
async fn a_standby_takes_over_within_the_lease_duration_without_a_second_reset() {
    let world = World::prepare("ha").await;
    let ns = world.ns.name.clone();
    let start = |identity: &'static str| {
        let (url, ns) = (world.sim.url.clone(), ns.clone());
        async move {
            OperatorProcess::start(&[
                "--upstash-api-url",
                &url,
                "--namespace",
                &ns,
                "--leader-elect",
                "--lease-namespace",
                &ns,
                "--lease-duration",
                "6",
                "--identity",
                identity,
            ])
            .await
        }
    };
    let mut first = start("replica-a").await;
    let leases: Api<Lease> = Api::namespaced(world.client.clone(), &ns);
    eventually(WAIT, "replica-a to lead", || async { (holder(&leases).await? == "replica-a").then_some(()) })
        .await;
    // The process names itself in its User-Agent: the Lease it wrote
    // without naming a field manager is managed by the operator.
    let lease = leases.get("upstash-rotator").await.expect("lease");
    assert_eq!(support::managers(&lease.metadata, ""), ["upstash-rotator"]);
    let mut second = start("replica-b").await;
    assert_eq!(second.get("/readyz").await.0, 200, "a standby is ready");

    world.create("cache", world.spec()).await;
    world.wait_for("cache", Reason::Synced.as_str(), |_| true).await;
    world.set_rotation("cache", 1).await;
    world.wait_applied("cache", 1).await;
    assert!(!second.logs().contains("leading"), "the standby does not reconcile:\n{}", second.logs());
    // The Rotated event follows the status, published in the background.
    let created_event =
        r#"upstash_rotator_kubernetes_requests_total{verb="create",resource="events",code="201"}"#;
    let metrics = eventually(WAIT, "the Rotated event's create counted", || async {
        let (_, metrics) = first.get("/metrics").await;
        metrics.contains(created_event).then_some(metrics)
    })
    .await;
    assert!(metrics.contains(r#"upstash_rotator_rotations_total{result="rotated"} 1"#), "{metrics}");
    assert!(metrics.contains("upstash_rotator_last_rotation_timestamp_seconds{namespace="), "{metrics}");
    assert!(
        metrics.contains(r#"upstash_rotator_upstash_requests_total{route="reset-password",status="200"} 1"#),
        "{metrics}"
    );
    // Its own requests to the apiserver, by verb and resource.
    for series in [
        r#"upstash_rotator_kubernetes_requests_total{verb="watch",resource="redispasswordrotations",code="200"}"#,
        r#"upstash_rotator_kubernetes_requests_total{verb="patch",resource="redispasswordrotations/status",code="200"}"#,
        r#"upstash_rotator_kubernetes_requests_total{verb="patch",resource="secrets",code="200"}"#,
        r#"upstash_rotator_kubernetes_requests_total{verb="create",resource="leases",code="201"}"#,
    ] {
        assert!(metrics.contains(series), "{series} in\n{metrics}");
    }

    // Kill the leader without a chance to release its lease.
    first.signal("KILL");
    first.wait(Duration::from_secs(10)).await;
    let killed = Instant::now();
    world.set_rotation("cache", 2).await;
    eventually(Duration::from_secs(30), "replica-b to take over", || async {
        (holder(&leases).await? == "replica-b").then_some(())
    })
    .await;
    world.wait_applied("cache", 2).await;
    let handover = killed.elapsed();
    println!("handover and rotation took {handover:?} (lease duration 6 s)");
    assert_eq!(world.resets().await, 2, "one reset per counter step across the handover");
    let current = world.current().await;
    assert_eq!(
        world.secret_text("cache", secret::KEY_PASSWORD).await,
        current["password"].as_str().expect("pw")
    );

    // A graceful stop releases the lease for the next replica at once.
    second.signal("TERM");
    assert!(second.wait(Duration::from_secs(30)).await.success());
    eventually(WAIT, "the lease to be released", || async {
        holder(&leases).await.is_none_or(|h| h.is_empty()).then_some(())
    })
    .await;
}

#[tokio::test]
async fn metrics_series_of_a_deleted_resource_disappear() {
    let world = World::prepare("metrics").await;
    let operator =
        OperatorProcess::start(&["--upstash-api-url", &world.sim.url, "--namespace", &world.ns.name]).await;
    assert_eq!(operator.get("/healthz").await.0, 200);
    world.create("cache", world.spec()).await;
    world.wait_for("cache", Reason::Synced.as_str(), |_| true).await;
    world.set_rotation("cache", 1).await;
    world.wait_applied("cache", 1).await;
    let series = format!(r#"namespace="{}",name="cache""#, world.ns.name);
    eventually(WAIT, "the rotation timestamp series", || async {
        operator.get("/metrics").await.1.contains(&series).then_some(())
    })
    .await;
    world.resources().delete("cache", &Default::default()).await.expect("delete");
    eventually(WAIT, "the series to go with the resource", || async {
        (!operator.get("/metrics").await.1.contains(&series)).then_some(())
    })
    .await;
    let (_, text) = operator.get("/metrics").await;
    assert!(text.contains("upstash_rotator_reconciles_total"), "{text}");
    assert!(!text.contains(support::sim::API_KEY));
}
