//! Application pods reading the Secret: a volume is refreshed by the
//! kubelet, the environment only by a restart (`spec.rolloutRestart`), and
//! Upstash's own SDK reaches the simulated REST API from a pod.

use super::*;
use support::workloads;
use upstash_rotator::crd::{WorkloadKind, WorkloadRef};

/// The operator pod installed by the chart (trusting the test CA), resource
/// "db" synced into Secret "db" with `rollout_restart`, and the namespace
/// ready for application pods.
struct Synced {
    world: World,
    ca: TestCa,
    _redis: Option<RedisServer>,
    _release: Release,
}

async fn synced_db(prefix: &str, rollout_restart: Vec<WorkloadRef>) -> Synced {
    let NodeWorld { world, ca, _redis } = node_world(prefix, true).await;
    let bundle = ca_bundle(&ca);
    let release = Release::install(&world.ns.name, &world.sim.url, &[("--set-file", &bundle)]);
    let mut spec = world.spec();
    spec.rollout_restart = rollout_restart;
    world.create("db", spec).await;
    world.wait_applied("db", 0).await;
    node::wait_default_service_account(&world.client, &world.ns.name).await;
    Synced { world, ca, _redis, _release: release }
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

/// Where a consumer pod reads the Secret.
#[derive(Clone, Copy)]
enum Source {
    Env,
    Volume,
}

/// `redis-cli PING` from a pod with the endpoint and password from the
/// environment or the mounted files; the reply (PONG, or the refusal). The
/// password goes through REDISCLI_AUTH, never a command line that `ps` shows.
fn ping_from_pod(ns: &str, pod: &str, from: Source) -> String {
    let read = |key: &str| match from {
        Source::Env => format!("${key}"),
        Source::Volume => format!("$(cat /etc/redis-credentials/{key})"),
    };
    let script = format!(
        "REDISCLI_AUTH=\"{}\" redis-cli -h \"{}\" -p \"{}\" ping 2>&1",
        read(KEY_PASSWORD),
        read(KEY_HOST),
        read(KEY_PORT)
    );
    let out = exec(ns, pod, &["sh", "-c", &script]);
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[tokio::test]
async fn consumer_pods_see_the_new_password_through_the_volume_but_not_the_environment() {
    let Synced { world, ca: _ca, _redis, _release } = synced_db("consumer", Vec::new()).await;
    node::apply(&world.ns.name, &consumer_pod("app", "db"));
    wait_ready(&world.client, &world.ns.name, "app").await;
    let ns = world.ns.name.as_str();
    assert_eq!(ping_from_pod(ns, "app", Source::Volume), "PONG");
    assert_eq!(ping_from_pod(ns, "app", Source::Env), "PONG");
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
    assert_eq!(ping_from_pod(ns, "app", Source::Volume), "PONG", "the new password works");

    // The environment keeps the old password, which Upstash revoked.
    assert_eq!(exec_ok(ns, "app", &["sh", "-c", &format!("printf %s \"${KEY_PASSWORD}\"")]), old);
    let refused = ping_from_pod(ns, "app", Source::Env);
    assert!(
        refused.contains("WRONGPASS") || refused.contains("NOAUTH"),
        "old password refused, got {refused:?}"
    );
}

#[tokio::test]
async fn upstash_redis_from_env_in_a_pod_gets_pong() {
    let Synced { world, ca, _redis, _release } = synced_db("sdk", Vec::new()).await;
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

/// A Deployment of `replicas` consumers reading the Secret from `source`
/// (`envFrom`, or a mounted volume).
fn consumer_deployment(name: &str, secret: &str, replicas: u32, from_env: bool) -> String {
    let image = node::image("CONSUMER_IMAGE");
    let source = if from_env {
        format!("envFrom: [{{secretRef: {{name: {secret}}}}}]")
    } else {
        "volumeMounts: [{name: redis, mountPath: /etc/redis-credentials, readOnly: true}]".to_owned()
    };
    let volumes = if from_env {
        String::new()
    } else {
        format!("      volumes: [{{name: redis, secret: {{secretName: {secret}}}}}]\n")
    };
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  strategy: {{rollingUpdate: {{maxUnavailable: 0, maxSurge: 1}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: app
        image: {image}
        imagePullPolicy: Never
        command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]
        {source}
{volumes}"#
    )
}

/// Whether every pod of `app` is Ready, none is leaving, there are
/// `replicas`, and each answers PONG with its password.
async fn all_pong(world: &World, app: &str, replicas: usize, from: Source) -> bool {
    let ns = world.ns.name.as_str();
    let pods: Api<Pod> = Api::namespaced(world.client.clone(), ns);
    let Ok(list) = pods.list(&ListParams::default().labels(&format!("app={app}"))).await else {
        return false;
    };
    if list.items.len() != replicas
        || !list.items.iter().all(|p| node::is_ready(p) && p.metadata.deletion_timestamp.is_none())
    {
        return false;
    }
    list.items.iter().all(|p| ping_from_pod(ns, &p.metadata.name.clone().unwrap_or_default(), from) == "PONG")
}

#[tokio::test]
async fn env_consumers_are_restarted_onto_the_new_password_and_volume_consumers_read_it() {
    let env_app = WorkloadRef { kind: WorkloadKind::Deployment, name: "env-app".into() };
    let Synced { world, ca: _ca, _redis, _release } = synced_db("rollout", vec![env_app]).await;
    let ns = world.ns.name.as_str();
    node::apply(ns, &consumer_deployment("env-app", "db", 2, true));
    node::apply(ns, &consumer_deployment("vol-app", "db", 1, false));
    eventually(WAIT, "every consumer to answer PONG", || async {
        (all_pong(&world, "env-app", 2, Source::Env).await
            && all_pong(&world, "vol-app", 1, Source::Volume).await)
            .then_some(())
    })
    .await;

    world.set_rotation("db", 1).await;
    let bumped = Instant::now();
    // Once the reset happened the old password is refused, so a PONG after
    // it is a PONG with the new password.
    let (mut env_took, mut volume_took) = (None, None);
    let deadline = bumped + Duration::from_secs(120);
    while env_took.is_none() || volume_took.is_none() {
        assert!(
            Instant::now() < deadline,
            "consumers not on the new password after 120 s: env {env_took:?}, volume {volume_took:?}"
        );
        if world.resets().await >= 1 {
            if env_took.is_none() && all_pong(&world, "env-app", 2, Source::Env).await {
                env_took = Some(bumped.elapsed());
            }
            if volume_took.is_none() && all_pong(&world, "vol-app", 1, Source::Volume).await {
                volume_took = Some(bumped.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (env_took, volume_took) = (env_took.unwrap_or_default(), volume_took.unwrap_or_default());
    println!(
        "from the counter bump to every consumer answering PONG with the new password: envFrom (restarted by the \
         operator, 2 replicas) {:.1} s, mounted volume (kubelet syncFrequency 10 s) {:.1} s",
        env_took.as_secs_f64(),
        volume_took.as_secs_f64()
    );
    let (restarted, _) =
        workloads::restart_state(&world.client, ns, WorkloadKind::Deployment, "env-app").await;
    assert!(restarted.is_some_and(|v| v.starts_with("db rotation 1 ")));
    let (untouched, _) =
        workloads::restart_state(&world.client, ns, WorkloadKind::Deployment, "vol-app").await;
    assert_eq!(untouched, None, "only the listed workload is restarted");
}
