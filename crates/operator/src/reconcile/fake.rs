//! A recording fake of the apiserver and Upstash for the ordering tests: it
//! keeps one resource, its Secrets and one database, enforces the same
//! preconditions as the real ones (`resourceVersion` on writes), logs every
//! call in order, and fails the calls a test picks.

use std::{collections::BTreeMap, sync::Arc};

use k8s_openapi::{
    ByteString,
    api::core::v1::{ObjectReference, Secret},
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use kube::core::Status;
use parking_lot::Mutex;
use serde_json::Value;
use upstash_api::{ApiCredentials, DatabaseCredentials, Ping, RedisDatabase, UpstashError};

use super::{
    messages::Notice,
    ops::{ApplyMode, Freshness, KubeOps, UpstashOps},
};
use crate::{
    account::{ClusterUpstashAccount, UpstashAccount},
    crd::{RedisPasswordRotation, WorkloadRef},
};

/// One call through `KubeOps` or `UpstashOps`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    GetResource,
    GetSecret(String),
    GetAccount(String),
    GetClusterAccount(String),
    GetNamespace(String),
    DryRunSecret,
    /// The dry run of an update that changes nothing, at a version.
    ProbeSecret(String),
    ApplySecret,
    PatchStatus,
    PatchObject,
    Publish(&'static str),
    GetDatabase,
    Reset,
    /// `kind/name` and the annotation's value.
    RestartWorkload(String, String),
    /// A data-plane PING with the current (`true`) or another token.
    Ping(bool),
    /// AUTH + PING over RESP with the current (`true`) or another password.
    RespPing(bool),
}

/// How a chosen call fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Refused before it took effect (an apiserver 500, an Upstash refusal
    /// known not to apply).
    Before,
    /// Took effect, but the answer was lost (a dropped connection).
    After,
    /// Someone else wrote first: the precondition fails (409).
    Conflict,
}

/// What happens to the world while a read is in flight.
pub type InFlight = Box<dyn FnOnce(&mut World) + Send>;

#[derive(Default)]
pub struct World {
    pub resource: Option<RedisPasswordRotation>,
    pub secrets: BTreeMap<String, Secret>,
    pub accounts: BTreeMap<String, UpstashAccount>,
    pub cluster_accounts: BTreeMap<String, ClusterUpstashAccount>,
    /// Labels of the namespaces that exist.
    pub namespaces: BTreeMap<String, BTreeMap<String, String>>,
    pub credentials: Option<DatabaseCredentials>,
    /// Credential Protection: reads show no credentials, resets still do.
    pub protected: bool,
    pub resets: u32,
    pub calls: Vec<Call>,
    /// Faults by the index the call will have in `calls`.
    pub faults: BTreeMap<usize, Fault>,
    /// Workloads that exist (`Kind/name`), with their restart annotation.
    pub workloads: BTreeMap<String, Option<String>>,
    /// Restarts that fail with a 500 before the next one succeeds.
    pub failing_restarts: u32,
    /// PINGs still answered as before the last reset (propagation lag).
    pub lagging_pings: u32,
    /// The REST data plane does not answer.
    pub data_plane_down: bool,
    /// Nor does RESP.
    pub resp_down: bool,
    /// An event create completes only once the data plane has been asked
    /// (or after 2 s): whether events wait for the check after a rotation.
    pub slow_events: bool,
    /// The operator's watch of the Secrets it wrote, if a test gave it one:
    /// each Secret write is delivered to it at once (edits made with
    /// `put_secret` are not, as if the watch had not seen them yet).
    pub watch: Option<Arc<crate::cache::WrittenVersions>>,
    /// Runs once, right after a read of the named Secret took its answer
    /// and before it returns: what happens while a read is in flight.
    pub during_read: Option<(String, InFlight)>,
    pinged: Arc<tokio::sync::Notify>,
    version: u64,
}

/// Both doors at once, sharing one world and one call log.
#[derive(Clone, Default)]
pub struct Fake(pub Arc<Mutex<World>>);

fn api_error(code: u16, message: &str) -> kube::Error {
    kube::Error::Api(Status::failure(message, "").with_code(code).boxed())
}

impl World {
    /// Logs the call and returns the fault chosen for it.
    fn enter(&mut self, call: Call) -> Option<Fault> {
        let index = self.calls.len();
        self.calls.push(call);
        self.faults.remove(&index)
    }

    /// Stores `secret` at a new version.
    pub fn put_secret(&mut self, mut secret: Secret) {
        secret.metadata.resource_version = Some(self.next_version());
        let name = secret.metadata.name.clone().unwrap_or_default();
        self.secrets.insert(name, secret);
    }

    fn next_version(&mut self) -> String {
        self.version += 1;
        self.version.to_string()
    }

    fn database(&self) -> RedisDatabase {
        RedisDatabase {
            id: "db".into(),
            host: "db.example".into(),
            port: 6379,
            tls: true,
            rest_url: None,
            name: Some("db-name".into()),
            credentials: self.credentials.clone(),
        }
    }

    /// A merge patch on the resource's JSON, on its `resourceVersion`.
    fn patch_resource(&mut self, patch: &Value, fault: Option<Fault>) -> kube::Result<RedisPasswordRotation> {
        let Some(resource) = &self.resource else { return Err(api_error(404, "not found")) };
        let expected = patch.pointer("/metadata/resourceVersion").and_then(Value::as_str);
        if fault == Some(Fault::Conflict) {
            // Another writer got there first.
            let version = self.next_version();
            if let Some(r) = &mut self.resource {
                r.metadata.resource_version = Some(version);
            }
            return Err(api_error(409, "the object has been modified"));
        }
        if fault == Some(Fault::Before) {
            return Err(api_error(500, "injected"));
        }
        if expected.is_some_and(|v| Some(v) != resource.metadata.resource_version.as_deref()) {
            return Err(api_error(409, "the object has been modified"));
        }
        let mut doc = serde_json::to_value(resource).map_err(kube::Error::SerdeError)?;
        json_patch::merge(&mut doc, patch);
        let mut patched: RedisPasswordRotation =
            serde_json::from_value(doc).map_err(kube::Error::SerdeError)?;
        patched.metadata.resource_version = Some(self.next_version());
        let gone = patched.metadata.deletion_timestamp.is_some()
            && patched.metadata.finalizers.as_ref().is_none_or(|f| f.is_empty());
        self.resource = if gone { None } else { Some(patched.clone()) };
        if fault == Some(Fault::After) {
            return Err(api_error(503, "connection lost"));
        }
        Ok(patched)
    }
}

impl Fake {
    pub fn with(f: impl FnOnce(&mut World)) -> Self {
        let fake = Self::default();
        f(&mut fake.0.lock());
        fake
    }

    pub fn world(&self) -> parking_lot::MutexGuard<'_, World> {
        self.0.lock()
    }

    /// Stores `resource` as the apiserver would (a fresh version).
    pub fn put_resource(&self, mut resource: RedisPasswordRotation) {
        let mut world = self.0.lock();
        resource.metadata.resource_version = Some(world.next_version());
        world.resource = Some(resource);
    }

    pub fn put_secret(&self, secret: Secret) {
        self.0.lock().put_secret(secret);
    }
}

impl KubeOps for Fake {
    async fn get_resource(
        &self,
        _: &str,
        _: &str,
        _: Freshness<'_>,
    ) -> kube::Result<Option<RedisPasswordRotation>> {
        let mut world = self.0.lock();
        match world.enter(Call::GetResource) {
            Some(Fault::Before | Fault::After) => Err(api_error(500, "injected")),
            _ => Ok(world.resource.clone()),
        }
    }

    async fn get_secret(&self, _: &str, name: &str, _: Freshness<'_>) -> kube::Result<Option<Secret>> {
        let mut world = self.0.lock();
        match world.enter(Call::GetSecret(name.to_owned())) {
            Some(Fault::Before | Fault::After) => Err(api_error(500, "injected")),
            _ => {
                let read = world.secrets.get(name).cloned();
                if world.during_read.as_ref().is_some_and(|(of, _)| of == name)
                    && let Some((_, then)) = world.during_read.take()
                {
                    then(&mut world);
                }
                Ok(read)
            }
        }
    }

    async fn get_account(&self, _: &str, name: &str) -> kube::Result<Option<UpstashAccount>> {
        let mut world = self.0.lock();
        match world.enter(Call::GetAccount(name.to_owned())) {
            Some(Fault::Before | Fault::After) => Err(api_error(500, "injected")),
            _ => Ok(world.accounts.get(name).cloned()),
        }
    }

    async fn get_cluster_account(&self, name: &str) -> kube::Result<Option<ClusterUpstashAccount>> {
        let mut world = self.0.lock();
        match world.enter(Call::GetClusterAccount(name.to_owned())) {
            Some(Fault::Before | Fault::After) => Err(api_error(500, "injected")),
            _ => Ok(world.cluster_accounts.get(name).cloned()),
        }
    }

    async fn get_namespace_labels(&self, name: &str) -> kube::Result<Option<BTreeMap<String, String>>> {
        let mut world = self.0.lock();
        match world.enter(Call::GetNamespace(name.to_owned())) {
            Some(Fault::Before | Fault::After) => Err(api_error(500, "injected")),
            _ => Ok(world.namespaces.get(name).cloned()),
        }
    }

    async fn apply_secret(&self, _: &str, secret: &Secret, mode: ApplyMode) -> kube::Result<Option<String>> {
        let mut world = self.0.lock();
        let fault = world.enter(if mode.dry_run { Call::DryRunSecret } else { Call::ApplySecret });
        let name = secret.metadata.name.clone().unwrap_or_default();
        let current = world.secrets.get(&name).and_then(|s| s.metadata.resource_version.clone());
        match fault {
            Some(Fault::Before) => return Err(api_error(500, "injected")),
            Some(Fault::Conflict) => return Err(api_error(409, "the object has been modified")),
            _ => {}
        }
        if secret.metadata.resource_version.is_some() && secret.metadata.resource_version != current {
            return Err(api_error(409, "the object has been modified"));
        }
        if mode.dry_run {
            return Ok(current);
        }
        let mut stored = secret.clone();
        let version = world.next_version();
        stored.metadata.resource_version = Some(version.clone());
        if let Some(watch) = &world.watch {
            let delivered = kube::core::PartialObjectMeta::<Secret> {
                metadata: stored.metadata.clone(),
                ..Default::default()
            };
            watch.observe(&kube::runtime::watcher::Event::Apply(delivered));
        }
        world.secrets.insert(name, stored);
        if fault == Some(Fault::After) {
            return Err(api_error(503, "connection lost"));
        }
        Ok(Some(version))
    }

    async fn probe_secret_update(&self, _: &str, name: &str, version: &str) -> kube::Result<Secret> {
        let mut world = self.0.lock();
        match world.enter(Call::ProbeSecret(version.to_owned())) {
            Some(Fault::Before | Fault::After) => return Err(api_error(500, "injected")),
            Some(Fault::Conflict) => return Err(api_error(409, "the object has been modified")),
            None => {}
        }
        match world.secrets.get(name) {
            None => Err(api_error(404, "not found")),
            Some(s) if s.metadata.resource_version.as_deref() != Some(version) => {
                Err(api_error(409, "the object has been modified"))
            }
            Some(s) => Ok(s.clone()),
        }
    }

    async fn patch_status(&self, _: &str, _: &str, patch: &Value) -> kube::Result<RedisPasswordRotation> {
        let mut world = self.0.lock();
        let fault = world.enter(Call::PatchStatus);
        world.patch_resource(patch, fault)
    }

    async fn patch_object(&self, _: &str, _: &str, patch: &Value) -> kube::Result<RedisPasswordRotation> {
        let mut world = self.0.lock();
        let fault = world.enter(Call::PatchObject);
        world.patch_resource(patch, fault)
    }

    async fn restart_workload(&self, _: &str, workload: &WorkloadRef, value: &str) -> kube::Result<()> {
        let mut world = self.0.lock();
        let key = workload.to_string();
        let fault = world.enter(Call::RestartWorkload(key.clone(), value.to_owned()));
        if fault.is_some() || world.failing_restarts > 0 {
            world.failing_restarts = world.failing_restarts.saturating_sub(1);
            return Err(api_error(500, "injected"));
        }
        match (fault, world.workloads.get_mut(&key)) {
            (Some(_), _) => Err(api_error(500, "injected")),
            (None, None) => Err(api_error(404, "not found")),
            (None, Some(annotation)) => {
                *annotation = Some(value.to_owned());
                Ok(())
            }
        }
    }

    async fn publish(&self, _: &ObjectReference, notice: &Notice) {
        let pinged = {
            let world = self.0.lock();
            world.slow_events.then(|| world.pinged.clone())
        };
        if let Some(pinged) = pinged {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), pinged.notified()).await;
        }
        // Logged when it completes.
        self.0.lock().enter(Call::Publish(notice.reason()));
    }

    fn report(&self, _: &ObjectReference, notice: &Notice) {
        self.0.lock().enter(Call::Publish(notice.reason()));
    }
}

impl UpstashOps for Fake {
    async fn get_database(&self, _: &ApiCredentials, _: &str) -> Result<RedisDatabase, UpstashError> {
        let mut world = self.0.lock();
        match world.enter(Call::GetDatabase) {
            Some(_) => Err(UpstashError::Server { status: 503, message: "injected".into() }),
            None => {
                let mut database = world.database();
                if world.protected {
                    database.credentials = None;
                }
                Ok(database)
            }
        }
    }

    async fn reset_password(&self, _: &ApiCredentials, _: &str) -> Result<RedisDatabase, UpstashError> {
        let mut world = self.0.lock();
        let fault = world.enter(Call::Reset);
        if matches!(fault, Some(Fault::Before | Fault::Conflict)) {
            // A documented refusal: certainly not applied.
            return Err(UpstashError::RateLimited { retry_after: None });
        }
        world.resets += 1;
        let n = world.resets;
        world.credentials = Some(DatabaseCredentials {
            password: format!("password-{n}"),
            rest_token: format!("token-{n}"),
            read_only_rest_token: format!("ro-token-{n}"),
        });
        if fault == Some(Fault::After) {
            return Err(UpstashError::Transport("connection lost".into()));
        }
        Ok(world.database())
    }

    async fn ping(&self, _: &str, token: &str) -> Result<Ping, UpstashError> {
        self.answer_ping(token)
    }

    async fn resp_ping(&self, _: &super::ops::RespEndpoint, password: &str) -> Result<Ping, UpstashError> {
        let mut world = self.0.lock();
        let current = world.credentials.as_ref().is_some_and(|c| c.password == password);
        world.enter(Call::RespPing(current));
        if world.resp_down {
            return Err(UpstashError::Transport("cannot connect: injected".into()));
        }
        Ok(if current { Ping::Pong } else { Ping::Refused })
    }
}

impl Fake {
    fn answer_ping(&self, token: &str) -> Result<Ping, UpstashError> {
        let mut world = self.0.lock();
        let current = world.credentials.as_ref().is_some_and(|c| c.rest_token == token);
        let fault = world.enter(Call::Ping(current));
        world.pinged.notify_one();
        if fault.is_some() || world.data_plane_down {
            return Err(UpstashError::Transport("cannot connect: injected".into()));
        }
        let lagging = world.lagging_pings > 0;
        world.lagging_pings = world.lagging_pings.saturating_sub(1);
        Ok(if current != lagging { Ping::Pong } else { Ping::Refused })
    }
}

/// A Secret with the API email and key, as users create it.
pub fn api_key_secret(name: &str) -> Secret {
    let data = [("email", "ops@example.com"), ("apiKey", "key")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), ByteString(v.as_bytes().to_vec())))
        .collect();
    Secret {
        metadata: ObjectMeta { name: Some(name.into()), ..Default::default() },
        data: Some(data),
        ..Default::default()
    }
}
