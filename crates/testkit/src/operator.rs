//! Runs the operator in-process against the real control plane and
//! `upstash-sim`, one instance per test, scoped to the test's namespace.

use std::{
    io::Write,
    sync::{Arc, Mutex, Once, OnceLock},
    time::Duration,
};

use k8s_openapi::{
    ByteString,
    api::{core::v1::Secret, events::v1::Event},
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client,
    api::{ListParams, ObjectMeta, PostParams},
};
use serde_json::Value;
use tokio::{sync::oneshot, task::JoinHandle};
use upstash_rotator::{
    conditions::{self, READY},
    controller::{self, Runtime, Settings},
    crd::{RedisPasswordRotation, RedisPasswordRotationSpec},
    leader::Fence,
};

use crate::{
    WAIT, eventually, install_crds,
    sim::{API_KEY, EMAIL, Sim},
};

/// Everything the operator logged in this test process.
fn log_buffer() -> &'static Arc<Mutex<Vec<u8>>> {
    static BUFFER: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    BUFFER.get_or_init(Arc::default)
}

struct BufferWriter;

impl Write for BufferWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut b) = log_buffer().lock() {
            b.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_logs() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("debug,hyper=info,tower=info,kube_client=info,rustls=info,h2=info,reqwest=info")
            .with_writer(|| BufferWriter)
            .with_ansi(false)
            .try_init();
    });
}

pub fn captured_logs() -> String {
    log_buffer().lock().map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
}

/// The CRD exactly as committed in `crds/`.
pub fn committed_crd() -> CustomResourceDefinition {
    let path = crate::repo_path("crds/upstash-rotator.io_redispasswordrotations.yaml");
    let text = std::fs::read_to_string(path).expect("committed CRD");
    serde_saphyr::from_str(&text).expect("CRD YAML")
}

/// An operator running in this process; stopped gracefully with `stop`.
pub struct Operator {
    stop: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<()>>,
}

impl Operator {
    pub async fn start(client: Client, namespace: &str, api_url: &str) -> Self {
        Self::start_with(client, namespace, api_url, Duration::from_secs(2)).await
    }

    pub async fn start_with(
        client: Client,
        namespace: &str,
        api_url: &str,
        request_timeout: Duration,
    ) -> Self {
        Self::start_as(client, namespace, api_url, request_timeout, "test", Fence::unfenced()).await
    }

    /// An operator with its own identity and fence (a second replica, or
    /// one whose lease has run out).
    pub async fn start_as(
        client: Client,
        namespace: &str,
        api_url: &str,
        request_timeout: Duration,
        identity: &str,
        fence: Fence,
    ) -> Self {
        capture_logs();
        let settings = Settings {
            upstash_api_url: api_url.to_owned(),
            namespaces: vec![namespace.to_owned()],
            request_timeout,
            concurrency: 4,
            reporter: "upstash-rotator-test".into(),
            identity: format!("{identity}-{namespace}"),
            shutdown_timeout: Duration::from_secs(20),
        };
        let runtime = Runtime { fence, ..Runtime::default() };
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            let shutdown = async move {
                let _ = rx.await;
            };
            if let Err(e) = controller::run(client, settings, runtime, shutdown).await {
                panic!("operator failed to start: {e}");
            }
        });
        Self { stop: Some(tx), handle: Some(handle) }
    }

    /// Asks for a graceful stop without waiting.
    pub fn signal_stop(&self) {
        if let Some(handle) = &self.handle {
            handle.abort();
        }
    }

    /// Asks for a graceful stop and waits for it (bounded).
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(handle) = self.handle.take() {
            tokio::time::timeout(Duration::from_secs(30), handle)
                .await
                .expect("operator stops in time")
                .expect("join");
        }
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        if let Some(handle) = &self.handle {
            handle.abort();
        }
    }
}

/// One test's world: a namespace, a simulator with one database, the API
/// credentials Secret, and (once started) an operator.
pub struct World {
    pub client: Client,
    pub ns: crate::TestNamespace,
    pub sim: Sim,
    pub database_id: String,
    pub operator: Option<Operator>,
}

pub const CREDENTIALS_SECRET: &str = "upstash-api";

impl World {
    /// Everything but the operator.
    pub async fn prepare(prefix: &str) -> Self {
        let client = crate::admin_client().await;
        install_crds(&client, &[committed_crd()]).await;
        let ns = crate::TestNamespace::new(&client, prefix).await;
        let sim = Sim::start(&[]).await;
        let database_id = sim.create_database(prefix).await["database_id"].as_str().expect("id").to_owned();
        let world = Self { client, ns, sim, database_id, operator: None };
        world.put_api_credentials(EMAIL, API_KEY).await;
        world
    }

    pub async fn new(prefix: &str) -> Self {
        let mut world = Self::prepare(prefix).await;
        world.start_operator().await;
        world
    }

    pub async fn start_operator(&mut self) {
        self.operator = Some(Operator::start(self.client.clone(), &self.ns.name, &self.sim.url).await);
    }

    /// Stops the operator through a shared reference (for tests holding one).
    pub async fn stop_operator_for_test(&self) {
        if let Some(op) = &self.operator {
            op.signal_stop();
        }
    }

    pub async fn stop_operator(&mut self) {
        if let Some(op) = self.operator.take() {
            op.stop().await;
        }
    }

    pub fn resources(&self) -> Api<RedisPasswordRotation> {
        Api::namespaced(self.client.clone(), &self.ns.name)
    }

    pub fn secrets(&self) -> Api<Secret> {
        Api::namespaced(self.client.clone(), &self.ns.name)
    }

    pub async fn put_api_credentials(&self, email: &str, key: &str) {
        let secret = Secret {
            metadata: ObjectMeta { name: Some(CREDENTIALS_SECRET.into()), ..Default::default() },
            data: Some(
                [
                    ("email".to_owned(), ByteString(email.into())),
                    ("apiKey".to_owned(), ByteString(key.into())),
                ]
                .into(),
            ),
            ..Default::default()
        };
        let params = kube::api::PatchParams::apply("test").force();
        self.secrets()
            .patch(CREDENTIALS_SECRET, &params, &kube::api::Patch::Apply(&secret))
            .await
            .expect("put");
    }

    pub fn spec(&self) -> RedisPasswordRotationSpec {
        RedisPasswordRotationSpec::new(self.database_id.as_str(), CREDENTIALS_SECRET)
    }

    pub async fn create(&self, name: &str, spec: RedisPasswordRotationSpec) -> RedisPasswordRotation {
        self.resources()
            .create(&PostParams::default(), &RedisPasswordRotation::new(name, spec))
            .await
            .expect("create resource")
    }

    /// Raises `spec.rotation` to `value`.
    pub async fn set_rotation(&self, name: &str, value: i64) {
        let patch = serde_json::json!({"spec": {"rotation": value}});
        self.resources()
            .patch(name, &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch))
            .await
            .expect("raise rotation");
    }

    /// Waits until the Ready condition has `reason` (and the predicate holds);
    /// on timeout, says what it saw last.
    pub async fn wait_for(
        &self,
        name: &str,
        reason: &str,
        extra: impl Fn(&RedisPasswordRotation) -> bool,
    ) -> RedisPasswordRotation {
        let api = self.resources();
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut last = String::from("nothing");
        loop {
            if let Ok(r) = api.get(name).await {
                let ready = r.status.as_ref().and_then(|s| conditions::get(&s.conditions, READY)).cloned();
                if let Some(ready) = ready {
                    if ready.reason == reason && extra(&r) {
                        return r;
                    }
                    last = format!("{}: {}", ready.reason, ready.message);
                }
            }
            assert!(tokio::time::Instant::now() < deadline, "{name} never became {reason}; last: {last}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until `status.rotation` is `rotation` and Ready is True.
    pub async fn wait_applied(&self, name: &str, rotation: i64) -> RedisPasswordRotation {
        let api = self.resources();
        eventually(WAIT, &format!("{name} to apply rotation {rotation}"), || {
            let api = api.clone();
            async move {
                let r = api.get(name).await.ok()?;
                let status = r.status.as_ref()?;
                let ready = conditions::get(&status.conditions, READY)?;
                (status.rotation == Some(rotation)
                    && status.pending_rotation.is_none()
                    && ready.status == "True")
                    .then_some(r)
            }
        })
        .await
    }

    pub async fn secret_text(&self, name: &str, key: &str) -> String {
        let secret = self.secrets().get(name).await.expect("secret exists");
        let bytes = secret.data.expect("data").get(key).expect("key present").0.clone();
        String::from_utf8(bytes).expect("utf-8")
    }

    /// The database's credentials as Upstash (the simulator) has them now.
    pub async fn current(&self) -> Value {
        self.sim.get_database(&self.database_id).await
    }

    pub async fn resets(&self) -> u64 {
        self.sim.resets(&self.database_id).await
    }

    /// Reasons of the events recorded for objects in this namespace.
    pub async fn event_reasons(&self) -> Vec<String> {
        self.events().await.into_iter().filter_map(|e| e.reason).collect()
    }

    /// How often an event with this reason happened (repeats are aggregated
    /// into one Event with a series count).
    pub async fn event_count(&self, reason: &str) -> i32 {
        self.events()
            .await
            .iter()
            .filter(|e| e.reason.as_deref() == Some(reason))
            .map(|e| e.series.as_ref().map_or(1, |s| s.count))
            .sum()
    }

    pub async fn events(&self) -> Vec<Event> {
        let api: Api<Event> = Api::namespaced(self.client.clone(), &self.ns.name);
        api.list(&ListParams::default()).await.expect("events").items
    }

    /// Fails if any credential ever shown by the simulator, or the API key,
    /// appears in the operator's logs or in this namespace's events and
    /// resource statuses.
    pub async fn assert_nothing_leaked(&self, credentials: &[String]) {
        let logs = captured_logs();
        let events = serde_json::to_string(&self.events().await).expect("json");
        let statuses =
            serde_json::to_string(&self.resources().list(&ListParams::default()).await.expect("list").items)
                .expect("json");
        let mut secrets: Vec<&str> = credentials.iter().map(String::as_str).collect();
        secrets.push(API_KEY);
        for secret in secrets {
            assert!(secret.len() >= 8, "a meaningful secret to look for");
            assert!(!logs.contains(secret), "a credential reached the operator's logs");
            assert!(!events.contains(secret), "a credential reached an event");
            assert!(!statuses.contains(secret), "a credential reached a resource status");
        }
    }
}

/// Password and both tokens of a Database object.
pub fn credentials_of(db: &Value) -> Vec<String> {
    ["password", "rest_token", "read_only_rest_token"]
        .iter()
        .filter_map(|k| db[*k].as_str().map(str::to_owned))
        .collect()
}
