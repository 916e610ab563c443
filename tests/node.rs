//! The operator as users run it: the image built from the Dockerfile,
//! installed by the chart on the local node, speaking HTTPS to upstash-sim
//! over the pod network; application pods reading the Secret it writes and
//! authenticating to the real redis-server behind the simulator.
//! Needs `make cluster-up NODE=1` and `make image` (both done by `make test`).

use std::time::{Duration, Instant};

use testkit as support;

use k8s_openapi::api::{coordination::v1::Lease, core::v1::Pod};
use kube::{
    Api,
    api::{DeleteParams, ListParams},
};
use support::{
    WAIT, eventually,
    node::{self, Release, exec, exec_ok, host_ip, wait_ready},
    sim::{RedisServer, Sim, SimOptions},
    tls::TestCa,
    world::World,
};
use upstash_rotator::secret::{KEY_HOST, KEY_PASSWORD, KEY_PORT};

/// One test's world where pods reach the simulator (over HTTPS, with a
/// throw-away CA) and the real redis-server behind its database.
struct NodeWorld {
    world: World,
    ca: TestCa,
    _redis: Option<RedisServer>,
}

/// `with_redis`: the world's one database is backed by a real redis-server
/// (the simulator then serves no other database).
async fn node_world(prefix: &str, with_redis: bool) -> NodeWorld {
    node::wait_operator_image().await;
    let ip: std::net::IpAddr = host_ip().parse().expect("TESTENV_HOST_IP is an IP address");
    let ca = TestCa::new(&[ip]);
    let redis = if with_redis { Some(RedisServer::start_also_on(&[ip]).await) } else { None };
    let listen = format!("{ip}:0");
    let backend = redis.as_ref().map(|r| r.address_on(ip));
    let args: Vec<&str> = backend.iter().flat_map(|b| ["--redis", b.as_str()]).collect();
    let sim = Sim::start_with(SimOptions { listen: Some(&listen), tls: Some(&ca), args: &args }).await;
    let world = World::prepare_with(prefix, sim).await;
    NodeWorld { world, ca, _redis: redis }
}

/// `--set-file` for the chart's CA bundle value.
fn ca_bundle(ca: &TestCa) -> String {
    format!("upstash.caBundle={}", ca.ca_path().display())
}

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
    world.wait_applied("db", 1).await;
    assert_eq!(world.resets().await, 1);
    assert_eq!(
        world.secret_text("db", KEY_PASSWORD).await,
        world.current().await["password"].as_str().unwrap()
    );

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
    // Steps that begin while pods of both templates run at once.
    let mut during_rollout = 0;
    for step in 1..=STEPS {
        let listed = pods.list(&ListParams::default().labels(&release.selector())).await.expect("pods");
        let new_template =
            |p: &Pod| p.metadata.annotations.as_ref().is_some_and(|a| a.contains_key("rolled"));
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

/// A consumer pod: sleeps, with the Secret both mounted and as environment.
fn consumer_pod(name: &str, secret: &str) -> String {
    let image = node::image("CONSUMER_IMAGE");
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: {image}
    imagePullPolicy: Never
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]
    envFrom: [{{secretRef: {{name: {secret}}}}}]
    volumeMounts: [{{name: redis, mountPath: /etc/redis-credentials, readOnly: true}}]
  volumes: [{{name: redis, secret: {{secretName: {secret}}}}}]
"#
    )
}

/// `redis-cli PING` from a pod with the password from the mounted file or
/// from the environment; the reply (PONG, or the refusal). The password goes
/// through REDISCLI_AUTH, never a command line that `ps` shows.
fn ping_from_pod(ns: &str, pod: &str, password_from: &str) -> String {
    let script = format!(
        "REDISCLI_AUTH=\"{password_from}\" redis-cli -h \"${KEY_HOST}\" -p \"${KEY_PORT}\" ping 2>&1"
    );
    let out = exec(ns, pod, &["sh", "-c", &script]);
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[tokio::test]
async fn consumer_pods_see_the_new_password_through_the_volume_but_not_the_environment() {
    let NodeWorld { world, ca, _redis } = node_world("consumer", true).await;
    let bundle = ca_bundle(&ca);
    let _release = Release::install(&world.ns.name, &world.sim.url, &[("--set-file", &bundle)]);
    world.create("db", world.spec()).await;
    world.wait_applied("db", 0).await;
    node::wait_default_service_account(&world.client, &world.ns.name).await;
    node::apply(&world.ns.name, &consumer_pod("app", "db"));
    wait_ready(&world.client, &world.ns.name, "app").await;
    let ns = world.ns.name.as_str();
    let file = "$(cat /etc/redis-credentials/UPSTASH_REDIS_PASSWORD)";
    let env = format!("${KEY_PASSWORD}");
    assert_eq!(ping_from_pod(ns, "app", file), "PONG");
    assert_eq!(ping_from_pod(ns, "app", &env), "PONG");
    let old = world.secret_text("db", KEY_PASSWORD).await;

    world.set_rotation("db", 1).await;
    world.wait_applied("db", 1).await;
    let written = Instant::now();
    let new = world.secret_text("db", KEY_PASSWORD).await;
    assert_ne!(old, new);
    // The kubelet refreshes mounted Secrets every syncFrequency (10 s on this
    // node, 1 min by default).
    eventually(Duration::from_secs(90), "the mounted password to change", || {
        // A failed exec is retried like a stale file.
        let seen = exec(ns, "app", &["cat", "/etc/redis-credentials/UPSTASH_REDIS_PASSWORD"]);
        let fresh = seen.status.success() && seen.stdout == new.as_bytes();
        async move { fresh.then_some(()) }
    })
    .await;
    println!("mounted Secret refreshed {:.1} s after the rotation", written.elapsed().as_secs_f64());
    assert_eq!(ping_from_pod(ns, "app", file), "PONG", "the new password works");

    // The environment keeps the old password, which Upstash revoked.
    assert_eq!(exec_ok(ns, "app", &["sh", "-c", &format!("printf %s \"${KEY_PASSWORD}\"")]), old);
    let refused = ping_from_pod(ns, "app", &env);
    assert!(
        refused.contains("WRONGPASS") || refused.contains("NOAUTH"),
        "old password refused, got {refused:?}"
    );
}

#[tokio::test]
async fn upstash_redis_from_env_in_a_pod_gets_pong() {
    let NodeWorld { world, ca, _redis } = node_world("sdk", true).await;
    let bundle = ca_bundle(&ca);
    let _release = Release::install(&world.ns.name, &world.sim.url, &[("--set-file", &bundle)]);
    world.create("db", world.spec()).await;
    world.wait_applied("db", 0).await;
    node::wait_default_service_account(&world.client, &world.ns.name).await;
    let ns = world.ns.name.as_str();
    let pem = ca.ca_pem();
    let indented: String = pem.lines().map(|l| format!("    {l}\n")).collect();
    let image = node::image("NODE_CONSUMER_IMAGE");
    // The Secret's REST URL and token, unmodified; only the test CA is added
    // to Node's trust store.
    node::apply(
        ns,
        &format!(
            r#"apiVersion: v1
kind: ConfigMap
metadata: {{name: test-ca}}
data:
  ca.pem: |
{indented}---
apiVersion: v1
kind: Pod
metadata: {{name: sdk}}
spec:
  restartPolicy: Never
  containers:
  - name: app
    image: {image}
    imagePullPolicy: Never
    envFrom: [{{secretRef: {{name: db}}}}]
    env: [{{name: NODE_EXTRA_CA_CERTS, value: /etc/test-ca/ca.pem}}]
    volumeMounts: [{{name: ca, mountPath: /etc/test-ca, readOnly: true}}]
  volumes: [{{name: ca, configMap: {{name: test-ca}}}}]
"#
        ),
    );
    let pods: Api<Pod> = Api::namespaced(world.client.clone(), ns);
    let phase = eventually(WAIT, "the SDK pod to finish", || {
        let pods = pods.clone();
        async move {
            let phase = pods.get("sdk").await.ok()?.status?.phase?;
            matches!(phase.as_str(), "Succeeded" | "Failed").then_some(phase)
        }
    })
    .await;
    let logs = support::tools::text(&support::tools::kubectl(&["logs", "-n", ns, "sdk"], None));
    assert_eq!(phase, "Succeeded", "{}", node::describe(ns, "sdk"));
    assert!(logs.contains("PONG"), "{logs}");
}
