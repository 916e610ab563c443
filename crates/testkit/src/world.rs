//! One test's world: a namespace of its own, `upstash-sim` with one
//! database, the API key Secret, and an in-process operator when started.

use std::time::Duration;

use k8s_openapi::{
    ByteString,
    api::{core::v1::Secret, events::v1::Event},
};
use kube::{
    Api, Client,
    api::{ListParams, ObjectMeta, PostParams},
};
use serde_json::Value;
use upstash_rotator::{
    conditions::{self, READY},
    crd::{RedisPasswordRotation, RedisPasswordRotationSpec},
};

use crate::{
    WAIT, eventually, install_crds,
    operator::{Operator, captured_logs, committed_crds},
    sim::{API_KEY, EMAIL, Sim},
};

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

/// The Secret users create with their Upstash email and API key, named
/// `CREDENTIALS_SECRET`, under the keys the CRD defaults to.
pub fn api_key_secret(email: &str, key: &str) -> Secret {
    Secret {
        metadata: ObjectMeta { name: Some(CREDENTIALS_SECRET.into()), ..Default::default() },
        data: Some(
            [("email".to_owned(), ByteString(email.into())), ("apiKey".to_owned(), ByteString(key.into()))]
                .into(),
        ),
        ..Default::default()
    }
}

impl World {
    /// Everything but the operator.
    pub async fn prepare(prefix: &str) -> Self {
        Self::prepare_with(prefix, Sim::start(&[]).await).await
    }

    /// Everything but the operator, around a simulator started by the test
    /// (over HTTPS, backed by a redis-server, ...).
    pub async fn prepare_with(prefix: &str, sim: Sim) -> Self {
        let client = crate::admin_client().await;
        install_crds(&client, &committed_crds()).await;
        let ns = crate::TestNamespace::new(&client, prefix).await;
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

    /// The operator of this world, its Kubernetes requests counted as the
    /// binary's are.
    pub async fn start_operator(&mut self) {
        self.operator = Some(Operator::start_counted(&self.ns.name, &self.sim.url).await);
    }

    /// An operator that trusts these CA certificates besides the system's
    /// store (what `--ca-file` gives the real binary).
    pub async fn start_operator_trusting(&mut self, roots: Vec<reqwest::Certificate>) {
        let operator =
            Operator::start_trusting(self.client.clone(), &self.ns.name, &self.sim.url, roots).await;
        self.operator = Some(operator);
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
        let secret = api_key_secret(email, key);
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

    /// Waits until `reason` happened at least `times`: an event that is no
    /// warning is published after the status it reports, without the
    /// rotation waiting for it.
    pub async fn wait_event(&self, reason: &str, times: i32) {
        eventually(WAIT, &format!("{times} {reason} event(s)"), || async {
            (self.event_count(reason).await >= times).then_some(())
        })
        .await;
    }

    pub async fn events(&self) -> Vec<Event> {
        let api: Api<Event> = Api::namespaced(self.client.clone(), &self.ns.name);
        api.list(&ListParams::default()).await.expect("events").items
    }

    /// Makes the namespace enforce the `restricted` Pod Security Standard.
    pub async fn label_namespace_restricted(&self) {
        let label =
            serde_json::json!({"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}});
        Api::<k8s_openapi::api::core::v1::Namespace>::all(self.client.clone())
            .patch(&self.ns.name, &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&label))
            .await
            .expect("label namespace");
    }

    /// Fails if any credential ever shown by the simulator, or the API key,
    /// appears in the in-process operator's logs or in this namespace's events
    /// and resource statuses.
    pub async fn assert_nothing_leaked(&self, credentials: &[String]) {
        self.assert_nothing_leaked_in(&captured_logs(), credentials).await;
    }

    /// The same, with the logs of an operator running elsewhere (a pod).
    pub async fn assert_nothing_leaked_in(&self, logs: &str, credentials: &[String]) {
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
