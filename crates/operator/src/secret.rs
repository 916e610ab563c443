//! The Secret the operator writes: its desired content, whether an existing
//! Secret is ours to write, and what credentials it holds.

use std::collections::BTreeMap;

use k8s_openapi::{ByteString, api::core::v1::Secret};
use kube::{Resource as _, api::ObjectMeta};
use percent_encoding::utf8_percent_encode;

use crate::crd::{DeletionPolicy, RedisPasswordRotation, SecretTemplate};
use upstash_api::{DatabaseCredentials, RedisDatabase};

pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY: &str = "upstash-rotator";
/// Name of the resource that writes the Secret.
pub const RESOURCE_ANNOTATION: &str = "upstash-rotator.io/resource";
pub const ROTATION_ANNOTATION: &str = "upstash-rotator.io/rotation";
/// The number of the scheduled rotation whose credentials the Secret holds
/// (absent before the first one): with the counter, tells a scheduled
/// rotation's write from the one before it.
pub const SCHEDULED_ANNOTATION: &str = "upstash-rotator.io/scheduled-rotation";
/// UID of the resource that wrote the rotation annotation: a retained Secret
/// taken over by a re-created resource says nothing about the new one's counter.
pub const RESOURCE_UID_ANNOTATION: &str = "upstash-rotator.io/resource-uid";
pub const DATABASE_ANNOTATION: &str = "upstash-rotator.io/database-id";
/// Fingerprint of the credentials written, for Secrets whose keys come from
/// `secretTemplate.data` (the credentials cannot be read back from them).
pub const CREDENTIALS_ANNOTATION: &str = "upstash-rotator.io/credentials-fingerprint";
/// Digest of the data written with `CREDENTIALS_ANNOTATION`: an edit of the
/// data makes the annotation void.
pub const DATA_DIGEST_ANNOTATION: &str = "upstash-rotator.io/data-digest";
/// Set to "true" by a user to let the operator take over an existing Secret.
pub const ADOPT_ANNOTATION: &str = "upstash-rotator.io/adopt";

pub const KEY_REST_URL: &str = "UPSTASH_REDIS_REST_URL";
pub const KEY_REST_TOKEN: &str = "UPSTASH_REDIS_REST_TOKEN";
pub const KEY_REST_READONLY_TOKEN: &str = "UPSTASH_REDIS_REST_READONLY_TOKEN";
pub const KEY_HOST: &str = "UPSTASH_REDIS_HOST";
pub const KEY_PORT: &str = "UPSTASH_REDIS_PORT";
pub const KEY_PASSWORD: &str = "UPSTASH_REDIS_PASSWORD";
pub const KEY_REDIS_URL: &str = "REDIS_URL";

/// Every key the Secret holds.
pub const KEYS: [&str; 7] =
    [KEY_REST_URL, KEY_REST_TOKEN, KEY_REST_READONLY_TOKEN, KEY_HOST, KEY_PORT, KEY_PASSWORD, KEY_REDIS_URL];

/// Who may write an existing Secret.
#[derive(Debug, PartialEq, Eq)]
pub enum Ownership {
    /// It does not exist yet.
    Absent,
    /// Written by this resource (or marked for adoption).
    Ours,
    /// Written by another `RedisPasswordRotation` of this namespace.
    OtherResource(String),
    /// Someone else's Secret, without the adopt annotation.
    Foreign,
}

pub fn ownership(secret: Option<&Secret>, resource_name: &str) -> Ownership {
    let Some(secret) = secret else { return Ownership::Absent };
    let meta = &secret.metadata;
    let annotation = |k: &str| meta.annotations.as_ref().and_then(|a| a.get(k)).map(String::as_str);
    let managed =
        meta.labels.as_ref().and_then(|l| l.get(MANAGED_BY_LABEL)).map(String::as_str) == Some(MANAGED_BY);
    match annotation(RESOURCE_ANNOTATION) {
        Some(owner) if managed && owner == resource_name => Ownership::Ours,
        Some(owner) if managed => Ownership::OtherResource(owner.to_owned()),
        _ if annotation(ADOPT_ANNOTATION) == Some("true") => Ownership::Ours,
        _ => Ownership::Foreign,
    }
}

/// Which rotation's credentials a Secret holds: the counter, then the
/// number of scheduled rotations so far. Ordered: a write never goes back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Written {
    pub rotation: i64,
    pub scheduled: i64,
}

/// The rotation a Secret was written for by the resource with `uid`.
pub fn written(secret: &Secret, uid: &str) -> Option<Written> {
    let annotations = secret.metadata.annotations.as_ref()?;
    if annotations.get(RESOURCE_UID_ANNOTATION).map(String::as_str) != Some(uid) {
        return None;
    }
    let rotation = annotations.get(ROTATION_ANNOTATION)?.parse().ok()?;
    let scheduled = match annotations.get(SCHEDULED_ANNOTATION) {
        Some(n) => n.parse().ok()?,
        None => 0,
    };
    Some(Written { rotation, scheduled })
}

/// The password and standard token a Secret holds, for comparison with what
/// Upstash reports.
pub fn stored_credentials(secret: &Secret) -> Option<(Vec<u8>, Vec<u8>)> {
    let data = secret.data.as_ref()?;
    Some((data.get(KEY_PASSWORD)?.0.clone(), data.get(KEY_REST_TOKEN)?.0.clone()))
}

/// A non-reversible fingerprint of a password and REST token: enough to tell
/// two credentials apart, useless for recovering either. Domain-separated
/// and truncated SHA-256 of high-entropy random values.
pub fn fingerprint_of(password: &[u8], rest_token: &[u8]) -> String {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    context.update(b"upstash-rotator/credentials/v1\0");
    context.update(password);
    context.update(b"\0");
    context.update(rest_token);
    let digest = context.finish();
    let hex: String = digest.as_ref()[..12].iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// Fingerprint of credentials Upstash reported.
pub fn fingerprint(credentials: &DatabaseCredentials) -> String {
    fingerprint_of(credentials.password.as_bytes(), credentials.rest_token.as_bytes())
}

/// Fingerprint of the credentials a Secret holds, if it holds any: from the
/// default keys, or, for templated keys, from the annotation written with
/// them as long as the data is still what was written.
pub fn secret_fingerprint(secret: &Secret) -> Option<String> {
    if let Some((password, token)) = stored_credentials(secret) {
        return Some(fingerprint_of(&password, &token));
    }
    let annotations = secret.metadata.annotations.as_ref()?;
    let data = secret.data.as_ref()?;
    (annotations.get(DATA_DIGEST_ANNOTATION)? == &data_digest(data))
        .then(|| annotations.get(CREDENTIALS_ANNOTATION).cloned())
        .flatten()
}

/// Whether the Secret already holds exactly these credentials.
pub fn holds(secret: &Secret, credentials: &DatabaseCredentials) -> bool {
    secret_fingerprint(secret) == Some(fingerprint(credentials))
}

/// A digest of every key and value, domain-separated like the fingerprints.
fn data_digest(data: &BTreeMap<String, ByteString>) -> String {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    context.update(b"upstash-rotator/secret-data/v1\0");
    for (key, value) in data {
        context.update(&(key.len() as u64).to_be_bytes());
        context.update(key.as_bytes());
        context.update(&(value.0.len() as u64).to_be_bytes());
        context.update(&value.0);
    }
    let hex: String = context.finish().as_ref()[..12].iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// The keys and values applications read: the default keys, the rendered
/// `secretTemplate.data`, or both. A template that fails with the real
/// values (it passed with placeholders before the reset) leaves the default
/// keys in place of its own, so the credentials are never lost.
pub fn data(
    template: Option<&SecretTemplate>,
    database: &RedisDatabase,
    credentials: &DatabaseCredentials,
) -> BTreeMap<String, ByteString> {
    let Some(template) = template.filter(|t| !t.data.is_empty()) else {
        return default_data(database, credentials);
    };
    match crate::template::render(&template.data, database, credentials) {
        Ok(rendered) => {
            let mut data =
                if template.merge_defaults { default_data(database, credentials) } else { BTreeMap::new() };
            data.extend(rendered.into_iter().map(|(k, v)| (k, ByteString(v.into_bytes()))));
            data
        }
        Err(e) => {
            tracing::warn!("{e}; writing the default keys instead, so the credentials are kept");
            default_data(database, credentials)
        }
    }
}

/// The default keys: what `@upstash/redis`, redis clients and the README name.
fn default_data(database: &RedisDatabase, credentials: &DatabaseCredentials) -> BTreeMap<String, ByteString> {
    let scheme = if database.tls { "rediss" } else { "redis" };
    let password = utf8_percent_encode(&credentials.password, upstash_api::UNRESERVED);
    let entries = [
        (KEY_REST_URL, database.rest_url()),
        (KEY_REST_TOKEN, credentials.rest_token.clone()),
        (KEY_REST_READONLY_TOKEN, credentials.read_only_rest_token.clone()),
        (KEY_HOST, database.host.clone()),
        (KEY_PORT, database.port.to_string()),
        (KEY_PASSWORD, credentials.password.clone()),
        (KEY_REDIS_URL, format!("{scheme}://default:{password}@{}:{}", database.host, database.port)),
    ];
    entries.into_iter().map(|(k, v)| (k.to_owned(), ByteString(v.into_bytes()))).collect()
}

/// The Secret to server-side apply for `resource`, holding `credentials`
/// written for rotation `written`.
pub fn desired(
    resource: &RedisPasswordRotation,
    database: &RedisDatabase,
    credentials: &DatabaseCredentials,
    written: Written,
) -> Secret {
    let data = data(resource.spec.secret_template.as_deref(), database, credentials);
    let mut secret = desired_without_data(resource, written);
    if !data.contains_key(KEY_PASSWORD) || !data.contains_key(KEY_REST_TOKEN) {
        let annotations = secret.metadata.annotations.get_or_insert_default();
        annotations.insert(CREDENTIALS_ANNOTATION.into(), fingerprint(credentials));
        annotations.insert(DATA_DIGEST_ANNOTATION.into(), data_digest(&data));
    }
    Secret { data: Some(data), ..secret }
}

/// Everything of the desired Secret but its data.
pub fn desired_without_data(resource: &RedisPasswordRotation, written: Written) -> Secret {
    let template = resource.spec.secret_template.clone().unwrap_or_default();
    let mut labels = template.labels;
    labels.insert(MANAGED_BY_LABEL.into(), MANAGED_BY.into());
    let mut annotations = template.annotations;
    annotations.insert(RESOURCE_ANNOTATION.into(), resource.metadata.name.clone().unwrap_or_default());
    annotations.insert(ROTATION_ANNOTATION.into(), written.rotation.to_string());
    if written.scheduled > 0 {
        annotations.insert(SCHEDULED_ANNOTATION.into(), written.scheduled.to_string());
    }
    annotations.insert(RESOURCE_UID_ANNOTATION.into(), resource.metadata.uid.clone().unwrap_or_default());
    annotations.insert(DATABASE_ANNOTATION.into(), resource.spec.database_id.clone());
    let owner_references = match resource.spec.deletion_policy {
        DeletionPolicy::Delete => resource.controller_owner_ref(&()).map(|r| vec![r]),
        DeletionPolicy::Retain => None,
    };
    Secret {
        metadata: ObjectMeta {
            name: Some(resource.secret_name()),
            namespace: resource.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: Some(annotations),
            owner_references,
            ..Default::default()
        },
        type_: Some("Opaque".into()),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::RedisPasswordRotationSpec;

    fn resource(policy: DeletionPolicy) -> RedisPasswordRotation {
        let spec = RedisPasswordRotationSpec {
            deletion_policy: policy,
            ..RedisPasswordRotationSpec::new("db-1", "upstash-api")
        };
        let mut r = RedisPasswordRotation::new("cache", spec);
        r.metadata.namespace = Some("ns".into());
        r.metadata.uid = Some("uid-1".into());
        r
    }

    fn database(tls: bool) -> (RedisDatabase, DatabaseCredentials) {
        let creds = DatabaseCredentials {
            password: "p@ss/word:1".into(),
            rest_token: "tok".into(),
            read_only_rest_token: "ro".into(),
        };
        let db = RedisDatabase {
            id: "db-1".into(),
            host: "calm-otter-1.upstash.io".into(),
            port: 6379,
            tls,
            rest_url: None,
            name: Some("db-name".into()),
            credentials: Some(creds.clone()),
        };
        (db, creds)
    }

    fn text(secret: &Secret, key: &str) -> String {
        String::from_utf8(secret.data.as_ref().expect("data")[key].0.clone()).expect("utf-8")
    }

    #[test]
    fn writes_every_key_with_an_encoded_url() {
        let (db, creds) = database(true);
        let secret = desired(&resource(DeletionPolicy::Delete), &db, &creds, counter(3));
        assert_eq!(
            text(&secret, KEY_REDIS_URL),
            "rediss://default:p%40ss%2Fword%3A1@calm-otter-1.upstash.io:6379"
        );
        assert_eq!(text(&secret, KEY_REST_URL), "https://calm-otter-1.upstash.io");
        assert_eq!(text(&secret, KEY_PORT), "6379");
        // upstash-sim reports where its data plane listens.
        let sim = RedisDatabase { rest_url: Some("https://127.0.0.1:8443".into()), ..db.clone() };
        let secret = desired(&resource(DeletionPolicy::Delete), &sim, &creds, counter(3));
        assert_eq!(text(&secret, KEY_REST_URL), "https://127.0.0.1:8443");
        assert_eq!(text(&secret, KEY_HOST), "calm-otter-1.upstash.io");
        assert_eq!(secret.data.as_ref().map(BTreeMap::len), Some(7));
        assert_eq!(written(&secret, "uid-1"), Some(counter(3)));
        assert_eq!(written(&secret, "another-incarnation"), None);
        assert_eq!(secret.metadata.owner_references.as_ref().map(Vec::len), Some(1));
        assert!(holds(&secret, &creds));
        assert_eq!(secret_fingerprint(&secret), Some(fingerprint(&creds)));
    }

    fn counter(rotation: i64) -> Written {
        Written { rotation, scheduled: 0 }
    }

    #[test]
    fn a_scheduled_rotation_is_told_from_the_write_before_it() {
        let (db, creds) = database(true);
        let first = desired(&resource(DeletionPolicy::Delete), &db, &creds, counter(3));
        let annotations = first.metadata.annotations.unwrap_or_default();
        assert!(!annotations.contains_key(SCHEDULED_ANNOTATION), "no annotation before any");
        let scheduled = Written { rotation: 3, scheduled: 2 };
        let secret = desired(&resource(DeletionPolicy::Delete), &db, &creds, scheduled);
        assert_eq!(written(&secret, "uid-1"), Some(scheduled));
        assert!(
            counter(3) < scheduled && scheduled < counter(4),
            "a counter step is newer than any schedule"
        );
    }

    #[test]
    fn fingerprints_tell_credentials_apart_without_revealing_them() {
        let (_, creds) = database(true);
        let print = fingerprint(&creds);
        assert!(print.starts_with("sha256:") && print.len() == "sha256:".len() + 24, "{print}");
        assert!(!print.contains(&creds.password) && !print.contains(&creds.rest_token));
        let other = DatabaseCredentials { rest_token: "tok2".into(), ..creds.clone() };
        assert_ne!(fingerprint(&other), print);
        // The separator keeps ("ab", "c") and ("a", "bc") apart.
        assert_ne!(fingerprint_of(b"ab", b"c"), fingerprint_of(b"a", b"bc"));
    }

    #[test]
    fn plain_redis_scheme_without_tls_and_no_owner_when_retained() {
        let (db, creds) = database(false);
        let secret = desired(&resource(DeletionPolicy::Retain), &db, &creds, counter(0));
        assert!(text(&secret, KEY_REDIS_URL).starts_with("redis://"));
        assert!(secret.metadata.owner_references.is_none());
    }

    #[test]
    fn ownership_is_decided_by_label_annotation_or_adoption() {
        let (db, creds) = database(true);
        let ours = desired(&resource(DeletionPolicy::Delete), &db, &creds, counter(0));
        assert_eq!(ownership(Some(&ours), "cache"), Ownership::Ours);
        assert_eq!(ownership(Some(&ours), "other"), Ownership::OtherResource("cache".into()));
        assert_eq!(ownership(None, "cache"), Ownership::Absent);
        let mut foreign = Secret::default();
        assert_eq!(ownership(Some(&foreign), "cache"), Ownership::Foreign);
        foreign.metadata.annotations = Some([(ADOPT_ANNOTATION.to_owned(), "true".to_owned())].into());
        assert_eq!(ownership(Some(&foreign), "cache"), Ownership::Ours);
    }
}
