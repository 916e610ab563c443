//! The operator's own pods: the image under the restricted Pod Security
//! Standard, HTTPS with the chart's CA bundle, two replicas handing over
//! and a rolling upgrade in the middle of rotations.

use super::*;

#[tokio::test]
async fn the_image_runs_as_a_restricted_pod_and_rotates_over_https() {
    let NodeWorld { world, ca, _redis } = node_world("pod", false).await;
    world.label_namespace_restricted().await;

    // Without the CA bundle the image's own store is used, which does not
    // trust the test CA: a clear condition, and Upstash never reset.
    let release = Release::install(&world.ns.name, &world.sim.url, &[]);
    world.create("db", world.spec()).await;
    let refused = world.wait_for("db", "UpstashTLSUntrusted", |_| true).await;
    let message = support::ready_message(&refused);
    assert!(message.contains("caBundle"), "the condition says how to fix it: {message}");
    assert_eq!(world.resets().await, 0);

    // With it, the same pod template plus the bundle syncs and rotates.
    // (Logs are collected before each upgrade replaces the pod.)
    let mut logs = release.logs();
    release.upgrade(&world.sim.url, &[("--set-file", &ca_bundle(&ca))]);
    world.wait_applied("db", 0).await;
    world.set_rotation("db", 1).await;
    let rotated = world.wait_applied("db", 1).await;
    assert_eq!(world.resets().await, 1);
    assert_eq!(
        world.secret_text("db", KEY_PASSWORD).await,
        world.current().await["password"].as_str().unwrap()
    );
    // The pod checked the new credentials on the data plane over HTTPS too.
    let verified = rotated.status.as_ref().and_then(|s| conditions::get(&s.conditions, conditions::VERIFIED));
    assert_eq!(verified.map(|c| c.reason.as_str()), Some("Verified"), "{verified:?}");

    // An image whose own store holds the CA (as a company bakes its CA into
    // images) needs no bundle: the image's store is what the operator uses.
    let derived = node::image_with_ca(&node::operator_image_ref(), &ca.ca_path());
    logs.push_str(&release.logs());
    release.upgrade_to_image(&derived, &world.sim.url, &[]);
    // The old pod (with the bundle) may still lead while it shuts down.
    let leases: Api<Lease> = Api::namespaced(world.client.clone(), &world.ns.name);
    let pods: Api<Pod> = Api::namespaced(world.client.clone(), &world.ns.name);
    eventually(WAIT, "a pod of the derived image to lead", || {
        let (leases, pods, lease_name, derived) =
            (leases.clone(), pods.clone(), release.fullname(), derived.clone());
        async move {
            let holder = leases.get(&lease_name).await.ok()?.spec?.holder_identity?;
            let pod = pods.get(&holder).await.ok()?;
            (pod.spec?.containers[0].image.as_deref() == Some(derived.as_str())).then_some(())
        }
    })
    .await;
    world.set_rotation("db", 2).await;
    world.wait_applied("db", 2).await;
    assert_eq!(world.resets().await, 2);
    let release_pods = node::ready_pods(&world.client, &world.ns.name, &release.selector()).await;
    let images: Vec<_> =
        release_pods.iter().filter_map(|p| p.spec.as_ref()).map(|s| s.containers[0].image.clone()).collect();
    assert_eq!(images, [Some(derived.clone())], "the rotation ran in the derived image");

    // The pod: hardened, in-cluster config with the chart's ServiceAccount
    // (it holds the Lease under its own name), probes answered.
    let pods = node::ready_pods(&world.client, &world.ns.name, &release.selector()).await;
    assert_eq!(pods.len(), 1, "one operator pod");
    let pod = &pods[0];
    let name = pod.metadata.name.clone().expect("name");
    let spec = pod.spec.as_ref().expect("spec");
    assert_eq!(spec.service_account_name.as_deref(), Some(release.fullname().as_str()));
    let container = &spec.containers[0];
    let security = container.security_context.as_ref().expect("securityContext");
    assert_eq!(security.read_only_root_filesystem, Some(true));
    let status = pod.status.as_ref().expect("status");
    assert_eq!(status.container_statuses.as_ref().expect("statuses")[0].restart_count, 0);
    let lease = leases.get(&release.fullname()).await.expect("lease");
    assert_eq!(lease.spec.and_then(|s| s.holder_identity).as_deref(), Some(name.as_str()));
    let ip = status.pod_ip.clone().expect("pod IP");
    for path in ["/healthz", "/readyz", "/metrics"] {
        let response = reqwest::get(format!("http://{ip}:8080{path}")).await.expect(path);
        assert_eq!(response.status(), 200, "{path}");
    }
    logs.push_str(&release.logs());
    assert!(logs.contains("Rotate"), "the collected logs cover the rotations");
    world.assert_nothing_leaked_in(&logs, &support::world::credentials_of(&world.current().await)).await;
}

#[tokio::test]
async fn two_replicas_hand_over_and_a_rolling_upgrade_resets_once_per_step() {
    const RESOURCES: usize = 4;
    const STEPS: i64 = 6;
    let NodeWorld { world, ca, _redis } = node_world("ha", false).await;
    let bundle = ca_bundle(&ca);
    let base = [("--set", "replicas=2"), ("--set-file", bundle.as_str())];
    let release = Release::install(&world.ns.name, &world.sim.url, &base);
    let mut databases = vec![world.database_id.clone()];
    for i in 1..RESOURCES {
        databases.push(
            world.sim.create_database(&format!("ha-{i}")).await["database_id"]
                .as_str()
                .expect("id")
                .to_owned(),
        );
    }
    for (i, id) in databases.iter().enumerate() {
        let mut spec = world.spec();
        spec.database_id = id.clone();
        world.create(&format!("db{i}"), spec).await;
    }
    for i in 0..RESOURCES {
        world.wait_applied(&format!("db{i}"), 0).await;
    }

    // Deleting the leader's pod hands the Lease to the other replica within
    // the lease duration (the chart's default, 15 s).
    let leases: Api<Lease> = Api::namespaced(world.client.clone(), &world.ns.name);
    let holder = |lease: Lease| lease.spec.and_then(|s| s.holder_identity).filter(|h| !h.is_empty());
    let leader = holder(leases.get(&release.fullname()).await.expect("lease")).expect("a leader");
    let pods: Api<Pod> = Api::namespaced(world.client.clone(), &world.ns.name);
    let deleted = Instant::now();
    pods.delete(&leader, &DeleteParams::default()).await.expect("delete the leader's pod");
    let successor = eventually(WAIT, "another replica to hold the lease", || {
        let (leases, leader, name) = (leases.clone(), leader.clone(), release.fullname());
        async move { holder(leases.get(&name).await.ok()?).filter(|h| *h != leader) }
    })
    .await;
    let handover = deleted.elapsed();
    println!("handover from {leader} to {successor}: {:.1} s", handover.as_secs_f64());
    assert!(handover < Duration::from_secs(15), "handover took {handover:?}, more than the lease duration");

    // Counter steps while `helm upgrade` rolls both pods: exactly one reset
    // per step and database.
    let rollout = {
        let (release_ns, release_name, url, bundle) =
            (world.ns.name.clone(), release.name.clone(), world.sim.url.clone(), bundle.clone());
        tokio::task::spawn_blocking(move || {
            let release = Release { name: release_name, namespace: release_ns };
            release.upgrade(
                &url,
                &[("--set", "replicas=2"), ("--set-file", &bundle), ("--set", "podAnnotations.rolled=yes")],
            );
        })
    };
    let new_template = |p: &Pod| p.metadata.annotations.as_ref().is_some_and(|a| a.contains_key("rolled"));
    // The first step waits for the first pod of the new template: helm may
    // take a moment to create it, and the steps must not all finish before.
    eventually(WAIT, "the rolling update to start", || {
        let (pods, selector) = (pods.clone(), release.selector());
        async move {
            let listed = pods.list(&ListParams::default().labels(&selector)).await.ok()?;
            listed.items.iter().any(new_template).then_some(())
        }
    })
    .await;
    // Steps that begin while pods of both templates run at once.
    let mut during_rollout = 0;
    for step in 1..=STEPS {
        let listed = pods.list(&ListParams::default().labels(&release.selector())).await.expect("pods");
        if listed.items.iter().any(new_template) && !listed.items.iter().all(new_template) {
            during_rollout += 1;
        }
        for i in 0..RESOURCES {
            world.set_rotation(&format!("db{i}"), step).await;
        }
        for i in 0..RESOURCES {
            world.wait_applied(&format!("db{i}"), step).await;
        }
    }
    rollout.await.expect("helm upgrade finished");
    println!("{during_rollout} of {STEPS} counter steps began during the rolling update");
    assert!(during_rollout > 0, "the rotations must overlap the rolling update");
    for id in &databases {
        assert_eq!(world.sim.resets(id).await, STEPS as u64, "resets of {id}");
    }
}
