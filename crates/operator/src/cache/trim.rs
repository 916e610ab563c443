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

/// `identity_only` of a copy of `meta`, without copying what it drops.
/// Every field is named, so one added to `ObjectMeta` must be decided on.
pub fn identity_copy(meta: &ObjectMeta) -> ObjectMeta {
    ObjectMeta {
        labels: None,
        annotations: None,
        managed_fields: None,
        owner_references: None,
        creation_timestamp: meta.creation_timestamp.clone(),
        deletion_grace_period_seconds: meta.deletion_grace_period_seconds,
        deletion_timestamp: meta.deletion_timestamp.clone(),
        finalizers: meta.finalizers.clone(),
        generate_name: meta.generate_name.clone(),
        generation: meta.generation,
        name: meta.name.clone(),
        namespace: meta.namespace.clone(),
        resource_version: meta.resource_version.clone(),
        self_link: meta.self_link.clone(),
        uid: meta.uid.clone(),
    }
}

#[cfg(test)]
mod secret_tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, OwnerReference, Time};

    use super::*;

    #[test]
    fn a_copy_of_the_identity_is_the_identity_of_a_copy() {
        let some = || Some("x".to_owned());
        let time = Some(Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH));
        let meta = ObjectMeta {
            annotations: Some([("a".to_owned(), "1".to_owned())].into()),
            creation_timestamp: time.clone(),
            deletion_grace_period_seconds: Some(30),
            deletion_timestamp: time,
            finalizers: Some(vec!["f".into()]),
            generate_name: some(),
            generation: Some(4),
            labels: Some([("l".to_owned(), "2".to_owned())].into()),
            managed_fields: Some(vec![ManagedFieldsEntry::default()]),
            name: some(),
            namespace: some(),
            owner_references: Some(vec![OwnerReference::default()]),
            resource_version: some(),
            self_link: some(),
            uid: some(),
        };
        let mut trimmed = meta.clone();
        identity_only(&mut trimmed);
        assert_eq!(identity_copy(&meta), trimmed);
    }

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
