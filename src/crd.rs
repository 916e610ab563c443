//! The `RedisPasswordRotation` custom resource: what users write and what the
//! operator reports. Doc comments become the CRD's descriptions, which
//! `kubectl explain` shows, so they are written for users.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// API group of the resource.
pub const GROUP: &str = "upstash-rotator.io";

/// Rotates the password of one Upstash Redis database and keeps its current
/// credentials in a Secret. Raise `spec.rotation` to rotate.
// clippy reads the repeated `printcolumn(type_ = ...)` arguments as duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "upstash-rotator.io",
    version = "v1alpha1",
    kind = "RedisPasswordRotation",
    plural = "redispasswordrotations",
    shortname = "rpr",
    category = "upstash",
    namespaced,
    status = "RedisPasswordRotationStatus",
    derive = "PartialEq",
    doc = "Rotates the password of an Upstash Redis database into a Kubernetes Secret. Raise spec.rotation to rotate.",
    printcolumn(name = "Database", type_ = "string", json_path = ".spec.databaseId"),
    printcolumn(
        name = "Rotation",
        type_ = "integer",
        json_path = ".spec.rotation",
        description = "Requested rotation counter"
    ),
    printcolumn(
        name = "Applied",
        type_ = "integer",
        json_path = ".status.rotation",
        description = "Last rotation counter fully applied"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    ),
    printcolumn(name = "Last Rotation", type_ = "date", json_path = ".status.lastRotationTime"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[x_kube(validation = kube::core::Rule::new(
    "has(self.secretName) == has(oldSelf.secretName) && (!has(self.secretName) || self.secretName == oldSelf.secretName)"
).message("spec.secretName is immutable: create a new resource to write another Secret"))]
#[serde(rename_all = "camelCase")]
pub struct RedisPasswordRotationSpec {
    /// ID of the Upstash Redis database (a UUID, as shown in the Upstash
    /// console). Immutable: create a new resource for another database.
    #[x_kube(validation = kube::core::Rule::new("self == oldSelf").message("spec.databaseId is immutable: create a new resource for another database"))]
    #[schemars(length(min = 1))]
    pub database_id: String,

    /// Rotation counter. Each time it goes up, the operator resets the
    /// database password once and writes the new credentials to the Secret;
    /// a jump of several steps asks for one rotation. It may never decrease.
    /// The value a resource is created with rotates nothing: the Secret then
    /// receives the database's current credentials.
    #[serde(default)]
    #[schemars(range(min = 0))]
    #[x_kube(validation = kube::core::Rule::new("self >= oldSelf").message("spec.rotation may only increase"))]
    pub rotation: i64,

    /// Secret in this namespace holding the Upstash Developer API email and
    /// API key (a read/write key: read-only keys cannot reset passwords).
    pub credentials_secret_ref: CredentialsSecretRef,

    /// Name of the Secret the operator writes the database credentials to, in
    /// this namespace. Defaults to the resource's name. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: Option<String>,

    /// Extra labels and annotations for the written Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_template: Option<SecretTemplate>,

    /// What happens to the Secret when this resource is deleted: `Delete`
    /// (default) lets Kubernetes garbage-collect it with the resource; `Retain`
    /// keeps it, holding the newest credentials.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

/// Where the Upstash Developer API credentials are.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialsSecretRef {
    /// Name of a Secret in the resource's own namespace.
    #[schemars(length(min = 1))]
    pub name: String,
    /// Key of the account email in that Secret.
    #[serde(default = "default_email_key")]
    pub email_key: String,
    /// Key of the API key in that Secret.
    #[serde(default = "default_api_key_key")]
    pub api_key_key: String,
}

fn default_email_key() -> String {
    "email".into()
}

fn default_api_key_key() -> String {
    "apiKey".into()
}

/// Extra metadata for the written Secret.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
pub struct SecretTemplate {
    /// Labels added to the Secret.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations added to the Secret.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// Fate of the Secret when the resource is deleted.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
pub enum DeletionPolicy {
    /// The Secret is owned by the resource and deleted with it.
    #[default]
    Delete,
    /// The Secret is kept, holding the newest credentials.
    Retain,
}

/// What the operator last observed and did.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RedisPasswordRotationStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Last rotation counter fully applied: the Secret holds the credentials
    /// of this rotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<i64>,
    /// Rotation counter being applied right now. Set before the password reset
    /// is requested and cleared once the Secret holds the new credentials; if
    /// the operator restarts meanwhile it finishes this rotation without a
    /// second reset whenever Upstash can tell whether the first one happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_rotation: Option<i64>,
    /// When the password was last reset by this resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_rotation_time: Option<Time>,
    /// Name of the Secret holding the credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
    /// `Ready`: the Secret holds the database's current credentials.
    /// `Rotating`: a rotation is in flight.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = kube::core::ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}

impl RedisPasswordRotationSpec {
    /// A spec with every optional field at its default (counter 0, Secret named
    /// after the resource, `Delete` policy, keys `email` and `apiKey`).
    pub fn new(database_id: impl Into<String>, credentials_secret: impl Into<String>) -> Self {
        Self {
            database_id: database_id.into(),
            rotation: 0,
            credentials_secret_ref: CredentialsSecretRef {
                name: credentials_secret.into(),
                email_key: default_email_key(),
                api_key_key: default_api_key_key(),
            },
            secret_name: None,
            secret_template: None,
            deletion_policy: DeletionPolicy::default(),
        }
    }
}

impl RedisPasswordRotation {
    /// The Secret this resource writes.
    pub fn secret_name(&self) -> String {
        self.spec.secret_name.clone().unwrap_or_else(|| self.metadata.name.clone().unwrap_or_default())
    }
}
