//! What the caches keep of each object: only what reconciling, the indexes
//! and the account controllers read. Every decision that could reset a
//! password works on a fresh read, so what is dropped here is never needed
//! for safety; it is memory (about 10 KiB per resource at 10,000 with
//! `managedFields` and status texts kept).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::crd::RedisPasswordRotation;

/// The annotation `kubectl apply` keeps: a second copy of the whole spec.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Drops field ownership and the last-applied copy from any object's
/// metadata.
pub fn metadata(meta: &mut ObjectMeta) {
    meta.managed_fields = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove(LAST_APPLIED);
        if annotations.is_empty() {
            meta.annotations = None;
        }
    }
}

/// Also drops the texts of the status (condition messages, the history)
/// and the reset attempt's details: reports for people, read fresh when a
/// reconcile needs them.
pub fn resource(resource: &mut RedisPasswordRotation) {
    metadata(&mut resource.metadata);
    if let Some(status) = resource.status.as_mut() {
        status.history = Vec::new();
        for condition in &mut status.conditions {
            condition.message = String::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_what_decisions_read_and_drops_the_rest() {
        let mut r: RedisPasswordRotation = serde_json::from_value(serde_json::json!({
            "apiVersion": "upstash-rotator.io/v1alpha1", "kind": "RedisPasswordRotation",
            "metadata": {"name": "a", "namespace": "ns", "generation": 2, "finalizers": ["f"],
                "annotations": {LAST_APPLIED: "{...}", "team": "x"},
                "managedFields": [{"manager": "kubectl", "operation": "Apply"}]},
            "spec": {"databaseId": "db", "rotation": 3, "credentialsSecretRef": {"name": "k"}},
            "status": {"rotation": 3, "secretResourceVersion": "7", "history": [
                {"rotation": 3, "time": "2026-01-01T00:00:00Z", "trigger": "counter"}],
                "conditions": [{"type": "Ready", "status": "True", "reason": "Synced", "message": "long text",
                    "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
        }))
        .unwrap_or_else(|e| panic!("resource: {e}"));
        resource(&mut r);
        assert!(r.metadata.managed_fields.is_none());
        let annotations = r.metadata.annotations.clone().unwrap_or_default();
        assert_eq!(annotations.keys().collect::<Vec<_>>(), ["team"]);
        let status = r.status.unwrap_or_default();
        assert!(status.history.is_empty());
        assert_eq!(status.conditions[0].message, "");
        assert_eq!((status.conditions[0].status.as_str(), status.rotation), ("True", Some(3)));
        assert_eq!(status.secret_resource_version.as_deref(), Some("7"));
        assert_eq!(r.metadata.finalizers, Some(vec!["f".to_owned()]));
    }
}
