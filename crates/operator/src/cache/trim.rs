//! What the caches keep of an object's metadata: only what reconciling, the
//! indexes and the account controllers read (`managedFields` alone are
//! kilobytes per object). Resources: see `cached`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::secret::RESOURCE_ANNOTATION;

/// Keeps from a Secret the operator wrote its identity, its version and the
/// annotation naming its resource: all the cache is read for.
pub fn written_secret(meta: &mut ObjectMeta) {
    let resource = meta.annotations.as_mut().and_then(|a| a.remove(RESOURCE_ANNOTATION));
    identity_only(meta);
    meta.annotations = resource.map(|name| [(RESOURCE_ANNOTATION.to_owned(), name)].into());
}

/// Keeps from a Secret of anyone's its name, namespace and version: all the
/// key versions and the account controller read.
pub fn name_and_version(meta: &mut ObjectMeta) {
    *meta = ObjectMeta {
        name: meta.name.take(),
        namespace: meta.namespace.take(),
        resource_version: meta.resource_version.take(),
        ..ObjectMeta::default()
    };
}

/// The annotation `kubectl apply` keeps a copy of the whole object in.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Drops from a whole resource kept for a reconcile what no reconcile reads:
/// `managedFields` and kubectl's last-applied copy of the object.
pub fn unread(meta: &mut ObjectMeta) {
    meta.managed_fields = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove(LAST_APPLIED);
    }
}

/// Drops what no cache reads: labels, annotations (a last-applied copy of
/// the spec among them), `managedFields` and owner references.
pub fn identity_only(meta: &mut ObjectMeta) {
    meta.labels = None;
    meta.annotations = None;
    meta.managed_fields = None;
    meta.owner_references = None;
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
