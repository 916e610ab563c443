//! The only doors a reconcile has to the outside: `KubeOps` for the
//! apiserver and `UpstashOps` for Upstash. Production passes `Cluster` and
//! `UpstashClient`; tests pass a recording fake and check the exact order of
//! the calls.

use std::{collections::BTreeMap, future::Future};

use k8s_openapi::api::{
    apps::v1::{DaemonSet, Deployment, StatefulSet},
    core::v1::{Namespace, ObjectReference, Secret},
};
use kube::{
    Api, Client,
    api::{GetParams, Patch, PatchParams},
    runtime::events::{Event, EventType, Recorder},
};
use serde_json::{Value, json};
use upstash_api::{ApiCredentials, Ping, RedisDatabase, UpstashClient, UpstashError};

use super::{consumers::RESTARTED_AT_ANNOTATION, messages::Notice};
use crate::{
    account::{ClusterUpstashAccount, UpstashAccount},
    crd::{RedisPasswordRotation, WorkloadKind, WorkloadRef},
    events::EventQueue,
};

/// Field manager of everything the operator writes.
pub const MANAGER: &str = "upstash-rotator";

/// How a Secret is applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApplyMode {
    /// Take fields over from other managers: only on a Secret already ours.
    pub force: bool,
    /// Validate and admit without storing.
    pub dry_run: bool,
}

/// How new a read must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Freshness<'a> {
    /// The newest state: a quorum read, from etcd.
    Latest,
    /// At least this `resourceVersion` of the object, one its watch
    /// delivered: served from the apiserver's watch cache, for about a third
    /// of a quorum read's CPU. What a decision on it leads to is written with
    /// a `resourceVersion` precondition, so a view that is a few
    /// milliseconds behind can cost a retry (a 409), never a wrong write.
    NotOlderThan(&'a str),
}

pub trait KubeOps: Send + Sync + 'static {
    fn get_resource(
        &self,
        namespace: &str,
        name: &str,
        freshness: Freshness<'_>,
    ) -> impl Future<Output = kube::Result<Option<RedisPasswordRotation>>> + Send;

    fn get_secret(
        &self,
        namespace: &str,
        name: &str,
        freshness: Freshness<'_>,
    ) -> impl Future<Output = kube::Result<Option<Secret>>> + Send;

    fn get_account(
        &self,
        namespace: &str,
        name: &str,
    ) -> impl Future<Output = kube::Result<Option<UpstashAccount>>> + Send;

    fn get_cluster_account(
        &self,
        name: &str,
    ) -> impl Future<Output = kube::Result<Option<ClusterUpstashAccount>>> + Send;

    /// The namespace's labels, for `allowedNamespaces.selector`; `None` if
    /// it does not exist.
    fn get_namespace_labels(
        &self,
        name: &str,
    ) -> impl Future<Output = kube::Result<Option<BTreeMap<String, String>>>> + Send;

    /// Server-side apply as `MANAGER`; the Secret names itself and may carry
    /// a `resourceVersion` precondition. Returns the stored version.
    fn apply_secret(
        &self,
        namespace: &str,
        secret: &Secret,
        mode: ApplyMode,
    ) -> impl Future<Output = kube::Result<Option<String>>> + Send;

    /// A server-side dry run of a merge patch that changes nothing but
    /// requires the Secret to be at `version`: it passes the admission an
    /// update of the Secret passes (webhooks, policies, RBAC's `patch`) and
    /// answers with the Secret at exactly that version, so it is a read too.
    /// A 409 says the Secret changed since, a 404 that it is gone.
    fn probe_secret_update(
        &self,
        namespace: &str,
        name: &str,
        version: &str,
    ) -> impl Future<Output = kube::Result<Secret>> + Send;

    /// A JSON merge patch of the status subresource.
    fn patch_status(
        &self,
        namespace: &str,
        name: &str,
        patch: &Value,
    ) -> impl Future<Output = kube::Result<RedisPasswordRotation>> + Send;

    /// A JSON merge patch of the object (its finalizers).
    fn patch_object(
        &self,
        namespace: &str,
        name: &str,
        patch: &Value,
    ) -> impl Future<Output = kube::Result<RedisPasswordRotation>> + Send;

    /// Restarts a workload as `kubectl rollout restart` does: a merge patch
    /// of one pod-template annotation (the same value again changes nothing).
    fn restart_workload(
        &self,
        namespace: &str,
        workload: &WorkloadRef,
        value: &str,
    ) -> impl Future<Output = kube::Result<()>> + Send;

    /// Best effort: a failure is logged, never returned.
    fn publish(&self, on: &ObjectReference, notice: &Notice) -> impl Future<Output = ()> + Send;

    /// Queues the event and returns at once: best effort, published in the
    /// background (or dropped when too many wait).
    fn report(&self, on: &ObjectReference, notice: &Notice);
}

pub trait UpstashOps: Send + Sync + 'static {
    fn get_database(
        &self,
        auth: &ApiCredentials,
        id: &str,
    ) -> impl Future<Output = Result<RedisDatabase, UpstashError>> + Send;

    /// Not idempotent: never retried by the caller either.
    fn reset_password(
        &self,
        auth: &ApiCredentials,
        id: &str,
    ) -> impl Future<Output = Result<RedisDatabase, UpstashError>> + Send;

    /// `PING` on the REST data plane with `token`: whether it works.
    fn ping(&self, rest_url: &str, token: &str) -> impl Future<Output = Result<Ping, UpstashError>> + Send;

    /// `AUTH` + `PING` over RESP with `password`: whether it opens the database.
    fn resp_ping(
        &self,
        endpoint: &RespEndpoint,
        password: &str,
    ) -> impl Future<Output = Result<Ping, UpstashError>> + Send;
}

/// Where a database answers RESP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RespEndpoint {
    pub host: String,
    pub port: u16,
    pub tls: bool,
}

/// The real apiserver.
pub struct Cluster {
    client: Client,
    recorder: Recorder,
    reports: EventQueue,
}

impl Cluster {
    /// `reports` publishes through its own recorder.
    pub fn new(client: Client, recorder: Recorder, reports: EventQueue) -> Self {
        Self { client, recorder, reports }
    }

    fn resources(&self, namespace: &str) -> Api<RedisPasswordRotation> {
        Api::namespaced(self.client.clone(), namespace)
    }
}

/// One object, `None` if it does not exist.
async fn read<K>(api: &Api<K>, name: &str, freshness: Freshness<'_>) -> kube::Result<Option<K>>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    if let Freshness::NotOlderThan(version) = freshness {
        match api.get_with(name, &GetParams::at(version)).await {
            Ok(found) => return Ok(Some(found)),
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(None),
            // This apiserver's watch cache is still filling after a restart
            // (429), has not reached the version (504: the watch came from
            // another apiserver) or no longer serves it (410): etcd has the
            // answer.
            Err(kube::Error::Api(s)) if matches!(s.code, 410 | 429 | 504) => {
                tracing::debug!(
                    name,
                    version,
                    "the watch cache cannot serve this version; reading from etcd"
                );
            }
            Err(e) => return Err(e),
        }
    }
    api.get_opt(name).await
}

impl KubeOps for Cluster {
    async fn get_resource(
        &self,
        namespace: &str,
        name: &str,
        freshness: Freshness<'_>,
    ) -> kube::Result<Option<RedisPasswordRotation>> {
        read(&self.resources(namespace), name, freshness).await
    }

    async fn get_secret(
        &self,
        namespace: &str,
        name: &str,
        freshness: Freshness<'_>,
    ) -> kube::Result<Option<Secret>> {
        read(&Api::<Secret>::namespaced(self.client.clone(), namespace), name, freshness).await
    }

    async fn get_account(&self, namespace: &str, name: &str) -> kube::Result<Option<UpstashAccount>> {
        Api::<UpstashAccount>::namespaced(self.client.clone(), namespace).get_opt(name).await
    }

    async fn get_cluster_account(&self, name: &str) -> kube::Result<Option<ClusterUpstashAccount>> {
        Api::<ClusterUpstashAccount>::all(self.client.clone()).get_opt(name).await
    }

    async fn get_namespace_labels(&self, name: &str) -> kube::Result<Option<BTreeMap<String, String>>> {
        let namespace = Api::<Namespace>::all(self.client.clone()).get_metadata_opt(name).await?;
        Ok(namespace.map(|n| n.metadata.labels.unwrap_or_default()))
    }

    async fn apply_secret(
        &self,
        namespace: &str,
        secret: &Secret,
        mode: ApplyMode,
    ) -> kube::Result<Option<String>> {
        let mut params = PatchParams::apply(MANAGER);
        params.force = mode.force;
        params.dry_run = mode.dry_run;
        let name = secret.metadata.name.as_deref().unwrap_or_default();
        Api::<Secret>::namespaced(self.client.clone(), namespace)
            .patch(name, &params, &Patch::Apply(secret))
            .await
            .map(|stored| stored.metadata.resource_version)
    }

    async fn probe_secret_update(&self, namespace: &str, name: &str, version: &str) -> kube::Result<Secret> {
        let patch = json!({"metadata": {"resourceVersion": version}});
        let params = PatchParams { dry_run: true, ..merge_params() };
        Api::<Secret>::namespaced(self.client.clone(), namespace)
            .patch(name, &params, &Patch::Merge(&patch))
            .await
    }

    async fn patch_status(
        &self,
        namespace: &str,
        name: &str,
        patch: &Value,
    ) -> kube::Result<RedisPasswordRotation> {
        self.resources(namespace).patch_status(name, &merge_params(), &Patch::Merge(patch)).await
    }

    async fn patch_object(
        &self,
        namespace: &str,
        name: &str,
        patch: &Value,
    ) -> kube::Result<RedisPasswordRotation> {
        self.resources(namespace).patch(name, &merge_params(), &Patch::Merge(patch)).await
    }

    async fn restart_workload(
        &self,
        namespace: &str,
        workload: &WorkloadRef,
        value: &str,
    ) -> kube::Result<()> {
        let patch =
            json!({"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT_ANNOTATION: value}}}}});
        let (patch, params) = (Patch::Merge(&patch), merge_params());
        let (client, name) = (self.client.clone(), workload.name.as_str());
        match workload.kind {
            WorkloadKind::Deployment => {
                Api::<Deployment>::namespaced(client, namespace).patch(name, &params, &patch).await.map(drop)
            }
            WorkloadKind::StatefulSet => {
                Api::<StatefulSet>::namespaced(client, namespace).patch(name, &params, &patch).await.map(drop)
            }
            WorkloadKind::DaemonSet => {
                Api::<DaemonSet>::namespaced(client, namespace).patch(name, &params, &patch).await.map(drop)
            }
        }
    }

    async fn publish(&self, on: &ObjectReference, notice: &Notice) {
        if let Err(e) = self.recorder.publish(&event_of(notice), on).await {
            tracing::warn!(error = %e, "cannot publish event");
        }
    }

    fn report(&self, on: &ObjectReference, notice: &Notice) {
        self.reports.push(on.clone(), event_of(notice));
    }
}

fn event_of(notice: &Notice) -> Event {
    Event {
        type_: if notice.is_warning() { EventType::Warning } else { EventType::Normal },
        reason: notice.reason().into(),
        note: Some(notice.to_string()),
        action: "Reconcile".into(),
        secondary: None,
    }
}

impl UpstashOps for UpstashClient {
    async fn get_database(&self, auth: &ApiCredentials, id: &str) -> Result<RedisDatabase, UpstashError> {
        UpstashClient::get_database(self, auth, id).await
    }

    async fn reset_password(&self, auth: &ApiCredentials, id: &str) -> Result<RedisDatabase, UpstashError> {
        UpstashClient::reset_password(self, auth, id).await
    }

    async fn ping(&self, rest_url: &str, token: &str) -> Result<Ping, UpstashError> {
        UpstashClient::ping(self, rest_url, token).await
    }

    async fn resp_ping(&self, endpoint: &RespEndpoint, password: &str) -> Result<Ping, UpstashError> {
        let RespEndpoint { host, port, tls } = endpoint;
        upstash_api::resp_ping(host, *port, *tls, password, RESP_TIMEOUT).await
    }
}

/// Bound of one RESP check (connect, AUTH, PING).
const RESP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// A merge patch's parameters, naming the operator as the fields' manager.
pub fn merge_params() -> PatchParams {
    PatchParams { field_manager: Some(MANAGER.into()), ..Default::default() }
}
