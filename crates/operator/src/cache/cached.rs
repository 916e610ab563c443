//! What the resource cache keeps of a `RedisPasswordRotation`: only what is
//! read from the cache (its identity, what the indexes key on, and whether
//! it is at rest), in a type of its own. The CRD type is about 830 bytes
//! before any of its strings; this one is about half, and its conditions
//! are two flags. At 10,000 resources that is megabytes of the operator's
//! memory. Every decision works on the whole resource: the working copy of
//! the version the watch delivered (`working`), or a read.

use std::borrow::Cow;

use k8s_openapi::{apimachinery::pkg::apis::meta::v1::ObjectMeta, jiff::Timestamp};
use kube::core::NamespaceResourceScope;

use super::trim::{identity_copy, identity_only};
use crate::{
    account::AccountRef,
    conditions::{self, CONSUMERS_RESTARTED, READY},
    crd::RedisPasswordRotation,
};

/// A `RedisPasswordRotation` as the controller's cache holds it.
#[derive(Clone, Debug, PartialEq)]
pub struct CachedRotation {
    /// Identity, version, generation, creation and deletion times and
    /// finalizers; no labels, annotations or `managedFields`.
    pub metadata: ObjectMeta,
    pub spec: CachedSpec,
    pub status: Option<CachedStatus>,
}

/// What the cache keeps of the spec.
#[derive(Clone, Debug, PartialEq)]
pub struct CachedSpec {
    pub database_id: String,
    pub rotation: i64,
    /// Name of `spec.credentialsSecretRef`.
    pub credentials_secret: Option<String>,
    pub account_ref: Option<AccountRef>,
    pub secret_name: Option<String>,
    /// Whether `spec.schedule` is set.
    pub scheduled: bool,
}

/// What the cache keeps of the status: what tells whether it is at rest.
#[derive(Clone, Debug, PartialEq)]
pub struct CachedStatus {
    pub observed_generation: Option<i64>,
    pub rotation: Option<i64>,
    /// Whether `status.pendingRotation` is set (a reset may be in flight).
    pub pending: bool,
    pub secret_resource_version: Option<String>,
    pub next_rotation_time: Option<Timestamp>,
    /// Condition `Ready` is `True`.
    pub ready: bool,
    /// Condition `ConsumersRestarted` is `False`: a restart to retry.
    pub consumers_restart_failed: bool,
}

impl CachedRotation {
    /// What the cache keeps of `resource`.
    pub fn of(resource: &RedisPasswordRotation) -> Self {
        Self::with_metadata(identity_copy(&resource.metadata), resource)
    }

    /// Like `of`, taking the metadata instead of copying it (the watch
    /// drops the whole object right after).
    pub fn from_owned(mut resource: RedisPasswordRotation) -> Self {
        let mut metadata = std::mem::take(&mut resource.metadata);
        identity_only(&mut metadata);
        Self::with_metadata(metadata, &resource)
    }

    fn with_metadata(metadata: ObjectMeta, resource: &RedisPasswordRotation) -> Self {
        let spec = &resource.spec;
        let status = resource.status.as_ref().map(|status| {
            let state = |type_| conditions::get(&status.conditions, type_).map(|c| c.status.as_str());
            CachedStatus {
                observed_generation: status.observed_generation,
                rotation: status.rotation,
                pending: status.pending_rotation.is_some(),
                secret_resource_version: status.secret_resource_version.clone(),
                next_rotation_time: status.next_rotation_time.as_ref().map(|t| t.0),
                ready: state(READY) == Some("True"),
                consumers_restart_failed: state(CONSUMERS_RESTARTED) == Some("False"),
            }
        });
        Self {
            metadata,
            spec: CachedSpec {
                database_id: spec.database_id.clone(),
                rotation: spec.rotation,
                credentials_secret: spec.credentials_secret_ref.as_ref().map(|r| r.name.clone()),
                account_ref: spec.account_ref.clone(),
                secret_name: spec.secret_name.clone(),
                scheduled: spec.schedule.is_some(),
            },
            status,
        }
    }

    /// The Secret this resource writes (as `RedisPasswordRotation::secret_name`).
    pub fn secret_name(&self) -> String {
        crate::crd::secret_name(self.spec.secret_name.as_deref(), self.metadata.name.as_deref())
    }
}

/// The kind, group and version of `RedisPasswordRotation`: a reference to a
/// cached resource names the real one.
impl kube::Resource for CachedRotation {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(dt: &()) -> Cow<'_, str> {
        RedisPasswordRotation::kind(dt)
    }
    fn group(dt: &()) -> Cow<'_, str> {
        RedisPasswordRotation::group(dt)
    }
    fn version(dt: &()) -> Cow<'_, str> {
        RedisPasswordRotation::version(dt)
    }
    fn plural(dt: &()) -> Cow<'_, str> {
        RedisPasswordRotation::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// Read as the whole resource, then cut down: the cache accepts exactly the
/// objects the CRD type does.
impl<'de> serde::Deserialize<'de> for CachedRotation {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        RedisPasswordRotation::deserialize(deserializer).map(Self::from_owned)
    }
}

/// A watch event of whole resources as one of cached resources.
pub fn event(
    event: kube::runtime::watcher::Event<RedisPasswordRotation>,
) -> kube::runtime::watcher::Event<CachedRotation> {
    use kube::runtime::watcher::Event;
    match event {
        Event::Apply(r) => Event::Apply(CachedRotation::from_owned(r)),
        Event::Delete(r) => Event::Delete(CachedRotation::from_owned(r)),
        Event::Init => Event::Init,
        Event::InitApply(r) => Event::InitApply(CachedRotation::from_owned(r)),
        Event::InitDone => Event::InitDone,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_what_decisions_read_and_drops_the_rest() {
        let full: RedisPasswordRotation = serde_json::from_value(serde_json::json!({
            "apiVersion": "upstash-rotator.io/v1alpha1", "kind": "RedisPasswordRotation",
            "metadata": {"name": "a", "namespace": "ns", "uid": "u", "resourceVersion": "5", "generation": 2,
                "finalizers": ["f"], "creationTimestamp": "2026-01-01T00:00:00Z",
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{...}", "team": "x"},
                "labels": {"app": "shop"},
                "managedFields": [{"manager": "kubectl", "operation": "Apply"}]},
            "spec": {"databaseId": "db", "rotation": 3, "credentialsSecretRef": {"name": "k"},
                "secretTemplate": {"data": {"URL": "redis://{{ password }}"}}, "schedule": {"every": "24h"},
                "rolloutRestart": [{"kind": "Deployment", "name": "web"}]},
            "status": {"rotation": 3, "observedGeneration": 2, "secretResourceVersion": "7",
                "nextRotationTime": "2026-01-02T00:00:00Z", "credentialsFingerprint": "f", "history": [
                {"rotation": 3, "time": "2026-01-01T00:00:00Z", "trigger": "counter"}],
                "conditions": [{"type": "Ready", "status": "True", "reason": "Synced", "message": "long text",
                    "lastTransitionTime": "2026-01-01T00:00:00Z"},
                    {"type": "ConsumersRestarted", "status": "False", "reason": "Failed", "message": "",
                    "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
        }))
        .unwrap_or_else(|e| panic!("resource: {e}"));
        let cached = CachedRotation::of(&full);
        assert_eq!(cached, CachedRotation::from_owned(full.clone()), "both ways agree");
        let meta = &cached.metadata;
        assert!(meta.managed_fields.is_none() && meta.annotations.is_none() && meta.labels.is_none());
        assert_eq!(
            (meta.name.as_deref(), meta.generation, meta.uid.as_deref()),
            (Some("a"), Some(2), Some("u"))
        );
        assert_eq!(meta.finalizers, Some(vec!["f".to_owned()]));
        assert_eq!(meta.creation_timestamp, full.metadata.creation_timestamp);
        assert_eq!(cached.spec.credentials_secret.as_deref(), Some("k"));
        assert!(cached.spec.scheduled && cached.spec.account_ref.is_none());
        assert_eq!((cached.spec.database_id.as_str(), cached.spec.rotation), ("db", 3));
        assert_eq!(cached.secret_name(), "a");
        let status = cached.status.unwrap_or_else(|| panic!("status kept"));
        assert_eq!((status.rotation, status.observed_generation, status.pending), (Some(3), Some(2), false));
        assert_eq!(status.secret_resource_version.as_deref(), Some("7"));
        assert!(status.ready && status.consumers_restart_failed);
        assert_eq!(status.next_rotation_time, full.status.and_then(|s| s.next_rotation_time).map(|t| t.0));
    }

    #[test]
    fn reads_as_the_crd_type_does() {
        let json = serde_json::json!({
            "apiVersion": "upstash-rotator.io/v1alpha1", "kind": "RedisPasswordRotation",
            "metadata": {"name": "a", "namespace": "ns"},
            "spec": {"databaseId": "db", "rotation": 1, "secretName": "out",
                "accountRef": {"kind": "ClusterUpstashAccount", "name": "shared"}}
        });
        let cached: CachedRotation = serde_json::from_value(json.clone()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((cached.secret_name(), cached.status), ("out".to_owned(), None));
        assert_eq!(cached.spec.account_ref.map(|a| a.name), Some("shared".to_owned()));
        // What the CRD type refuses, the cache refuses too.
        let mut bad = json;
        bad["spec"]["rotation"] = serde_json::json!("one");
        assert!(serde_json::from_value::<CachedRotation>(bad).is_err());
    }
}
