//! What the caches keep of each object: only what reconciling, the indexes
//! and the account controllers read. Every decision that could reset a
//! password works on a fresh read, so what is dropped here is never needed
//! for safety; it is memory (about 10 KiB per resource at 10,000 with
//! `managedFields` and status texts kept; 1.7 KiB with only those gone).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::{
    conditions::{CONSUMERS_RESTARTED, READY},
    crd::RedisPasswordRotation,
    secret::RESOURCE_ANNOTATION,
};

/// Keeps from a resource only what is read from the cache: its identity,
/// version, generation, creation and deletion times and finalizers; what
/// the indexes key on (database, key Secret name, account), its counter,
/// Secret name and schedule; the status fields that tell whether it is at
/// rest (the `Ready` and `ConsumersRestarted` condition states, no texts,
/// no history, no reset details, no fingerprints). Labels, annotations (a
/// last-applied copy of the spec among them), `managedFields`, templates
/// and workload lists go. Reconciles read the whole resource fresh.
pub fn resource(resource: &mut RedisPasswordRotation) {
    identity_only(&mut resource.metadata);
    let spec = &mut resource.spec;
    spec.secret_template = None;
    spec.rollout_restart = Vec::new();
    if let Some(reference) = spec.credentials_secret_ref.as_mut() {
        reference.email_key = String::new();
        reference.api_key_key = String::new();
    }
    if let Some(status) = resource.status.as_mut() {
        status.history = Vec::new();
        status.reset = None;
        status.secret_name = None;
        status.credentials_fingerprint = None;
        status.consumers_fingerprint = None;
        status.conditions.retain(|c| c.type_ == READY || c.type_ == CONSUMERS_RESTARTED);
        for condition in &mut status.conditions {
            condition.reason = String::new();
            condition.message = String::new();
        }
        status.conditions.shrink_to_fit();
    }
}

/// Keeps from a Secret the operator wrote its identity, its version and the
/// annotation naming its resource: all the cache is read for.
pub fn written_secret(meta: &mut ObjectMeta) {
    let resource = meta.annotations.as_mut().and_then(|a| a.remove(RESOURCE_ANNOTATION));
    identity_only(meta);
    meta.annotations = resource.map(|name| [(RESOURCE_ANNOTATION.to_owned(), name)].into());
}

fn identity_only(meta: &mut ObjectMeta) {
    meta.labels = None;
    meta.annotations = None;
    meta.managed_fields = None;
    meta.owner_references = None;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_what_decisions_read_and_drops_the_rest() {
        let mut r: RedisPasswordRotation = serde_json::from_value(serde_json::json!({
            "apiVersion": "upstash-rotator.io/v1alpha1", "kind": "RedisPasswordRotation",
            "metadata": {"name": "a", "namespace": "ns", "generation": 2, "finalizers": ["f"],
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{...}", "team": "x"},
                "labels": {"app": "shop"},
                "managedFields": [{"manager": "kubectl", "operation": "Apply"}]},
            "spec": {"databaseId": "db", "rotation": 3, "credentialsSecretRef": {"name": "k"},
                "secretTemplate": {"data": {"URL": "redis://{{ password }}"}},
                "rolloutRestart": [{"kind": "Deployment", "name": "web"}]},
            "status": {"rotation": 3, "secretResourceVersion": "7", "credentialsFingerprint": "f", "history": [
                {"rotation": 3, "time": "2026-01-01T00:00:00Z", "trigger": "counter"}],
                "conditions": [{"type": "Ready", "status": "True", "reason": "Synced", "message": "long text",
                    "lastTransitionTime": "2026-01-01T00:00:00Z"},
                    {"type": "Verified", "status": "True", "reason": "Verified", "message": "",
                    "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
        }))
        .unwrap_or_else(|e| panic!("resource: {e}"));
        resource(&mut r);
        assert!(
            r.metadata.managed_fields.is_none()
                && r.metadata.annotations.is_none()
                && r.metadata.labels.is_none()
        );
        assert_eq!((r.metadata.name.as_deref(), r.metadata.generation), (Some("a"), Some(2)));
        assert_eq!(r.spec.credentials_secret_ref.as_ref().map(|k| k.name.as_str()), Some("k"));
        assert!(r.spec.secret_template.is_none() && r.spec.rollout_restart.is_empty());
        let status = r.status.unwrap_or_default();
        assert!(status.history.is_empty() && status.credentials_fingerprint.is_none());
        assert_eq!(status.conditions.len(), 1, "only the states at-rest reads");
        assert_eq!((status.conditions[0].message.as_str(), status.conditions[0].reason.as_str()), ("", ""));
        assert_eq!((status.conditions[0].status.as_str(), status.rotation), ("True", Some(3)));
        assert_eq!(status.secret_resource_version.as_deref(), Some("7"));
        assert_eq!(r.metadata.finalizers, Some(vec!["f".to_owned()]));
    }
}

#[cfg(test)]
mod secret_tests {
    use super::*;

    #[test]
    fn a_written_secret_keeps_its_version_and_resource() {
        let mut meta = ObjectMeta {
            name: Some("cache".into()),
            resource_version: Some("9".into()),
            labels: Some([("app.kubernetes.io/managed-by".to_owned(), "upstash-rotator".to_owned())].into()),
            annotations: Some(
                [(RESOURCE_ANNOTATION.to_owned(), "cache".to_owned()), ("other".to_owned(), "x".to_owned())]
                    .into(),
            ),
            ..Default::default()
        };
        written_secret(&mut meta);
        assert_eq!(meta.annotations, Some([(RESOURCE_ANNOTATION.to_owned(), "cache".to_owned())].into()));
        assert_eq!((meta.resource_version.as_deref(), meta.labels), (Some("9"), None));
    }
}
