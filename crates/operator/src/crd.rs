//! The `RedisPasswordRotation` custom resource: what users write and what the
//! operator reports. Doc comments become the CRD's descriptions, which
//! `kubectl explain` shows, so they are written for users.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, MicroTime, Time};
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
    "has(self.credentialsSecretRef) != has(self.accountRef)"
).message("set exactly one of spec.credentialsSecretRef and spec.accountRef"))]
#[x_kube(validation = kube::core::Rule::new(
    "has(self.secretName) == has(oldSelf.secretName) && (!has(self.secretName) || self.secretName == oldSelf.secretName)"
).message("spec.secretName is immutable: create a new resource to write another Secret"))]
#[serde(rename_all = "camelCase")]
pub struct RedisPasswordRotationSpec {
    /// ID of the Upstash Redis database (a UUID, as shown in the Upstash
    /// console). Immutable: create a new resource for another database.
    #[x_kube(validation = kube::core::Rule::new("self == oldSelf").message("spec.databaseId is immutable: create a new resource for another database"))]
    #[schemars(length(min = 1, max = 64), regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9_-]*$"))]
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
    /// Set this or `accountRef`, not both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<CredentialsSecretRef>,

    /// An `UpstashAccount` in this namespace, or a `ClusterUpstashAccount`
    /// that allows this namespace, whose API key the operator uses: platform
    /// teams keep one key without handing it to every namespace. Set this or
    /// `credentialsSecretRef`, not both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_ref: Option<crate::account::AccountRef>,

    /// Name of the Secret the operator writes the database credentials to, in
    /// this namespace. Defaults to the resource's name. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub secret_name: Option<String>,

    /// Extra labels and annotations for the written Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_template: Option<Box<SecretTemplate>>,

    /// What happens to the Secret when this resource is deleted: `Delete`
    /// (default) lets Kubernetes garbage-collect it with the resource; `Retain`
    /// keeps it, holding the newest credentials.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,

    /// Workloads in this namespace to restart, the way `kubectl rollout
    /// restart` does, once the Secret holds new credentials (a rotation, or a
    /// password changed outside the operator). Upstash revokes the old password
    /// at once, so applications that read it only at start need this. Never
    /// done on a first sync, an operator restart, or a Secret restored with
    /// the same credentials. A target that is missing or may not be patched
    /// is reported in the `ConsumersRestarted` condition; the rotation still
    /// counts as done.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = kube::core::Rule::new(
        "self.all(a, self.exists_one(b, a.kind == b.kind && a.name == b.name))"
    ).message("spec.rolloutRestart lists a workload twice"))]
    pub rollout_restart: Vec<WorkloadRef>,

    /// While true the operator makes no call to Upstash for this resource: no
    /// sync, no reset, no recovery (condition `Suspended`). A raised
    /// `spec.rotation` waits until it is false again. A reset answer the
    /// operator already holds is still written to the Secret, so suspending
    /// never loses a password.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspend: bool,

    /// Rotate on a schedule as well: once `every` has passed since the last
    /// rotation (or since the resource was created), starting only inside a
    /// maintenance window when windows are given. `spec.rotation` is left
    /// alone (GitOps tools own the spec): scheduled rotations are counted in
    /// `status.scheduledRotations` and listed in `status.history`. Raising
    /// `spec.rotation` still rotates at once, whatever the windows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Box<RotationSchedule>>,

    /// After each rotation, check on the REST data plane that the new
    /// credentials answer PING and the old ones are refused, retrying
    /// briefly while the reset propagates (condition `Verified`). A failed
    /// check is reported, never answered with another reset. Defaults to true.
    #[serde(default = "default_true", skip_serializing_if = "is_true")]
    pub verify: bool,
}

fn default_true() -> bool {
    true
}

fn is_true(value: &bool) -> bool {
    *value
}

/// When scheduled rotations happen.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RotationSchedule {
    /// How long after the last rotation the next one is due, as a duration
    /// of hours, minutes and seconds: "720h" (30 days), "1h30m". At least 1m.
    #[schemars(length(min = 2, max = 32))]
    #[x_kube(validation = kube::core::Rule::new(
        "self.matches('^([0-9]+h)?([0-9]+m)?([0-9]+s)?$') && duration(self) >= duration('1m')"
    ).message("spec.schedule.every must be a duration like 720h or 1h30m, of at least 1m"))]
    pub every: String,
    /// Maintenance windows: a due rotation waits for the next one to open.
    /// None means any time.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    pub windows: Vec<MaintenanceWindow>,
    /// IANA time zone the windows' cron expressions are read in (for example
    /// "Europe/Berlin"), daylight saving time included. Defaults to UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64), regex(pattern = r"^[A-Za-z][A-Za-z0-9_+/-]*$"))]
    pub time_zone: Option<String>,
}

/// A window in which scheduled rotations may start.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
// Standard five-field cron ("minute hour day-of-month month day-of-week", with
// numbers, names, `*`, lists, ranges and steps). A day of the month no listed
// month has (31 in April, 30 in February) never opens, unless the day of the
// week is restricted too (either one matching opens the window).
#[x_kube(validation = kube::core::Rule::new(
    concat!(
        "!self.start.matches('^[0-9A-Za-z*,/-]+( [0-9A-Za-z*,/-]+){4}$') || !(self.start.split(' ')[4] == '*' && ",
        "self.start.split(' ')[2].split(',').all(d, d.matches('^[0-9]+(-[0-9]+)?(/[0-9]+)?$') && ",
        "int(d.split('/')[0].split('-')[0]) > (self.start.split(' ')[3].split(',').all(m, m.lowerAscii() in ",
        "['2', '02', 'feb']) ? 29 : (self.start.split(' ')[3].split(',').all(m, m.lowerAscii() in ['2', '02', ",
        "'feb', '4', '04', 'apr', '6', '06', 'jun', '9', '09', 'sep', '11', 'nov']) ? 30 : 31))))"
    )
).message("spec.schedule.windows[].start never matches a date (no listed month has that day), so the window would never open"))]
pub struct MaintenanceWindow {
    /// When the window opens: a cron expression of five fields, "minute hour
    /// day-of-month month day-of-week", read in `timeZone`. "0 2 * * 6" is
    /// every Saturday at 02:00.
    #[schemars(length(min = 9, max = 128))]
    #[x_kube(validation = kube::core::Rule::new(
        "self.matches('^[0-9A-Za-z*,/-]+( [0-9A-Za-z*,/-]+){4}$')"
    ).message("spec.schedule.windows[].start must be a cron expression of five fields separated by single spaces"))]
    pub start: String,
    /// How long the window stays open, as a duration like "4h" or "30m" (at
    /// least 1m). A rotation starts inside it; it is not cut off at its end.
    #[schemars(length(min = 2, max = 32))]
    #[x_kube(validation = kube::core::Rule::new(
        "self.matches('^([0-9]+h)?([0-9]+m)?([0-9]+s)?$') && duration(self) >= duration('1m')"
    ).message("spec.schedule.windows[].duration must be a duration like 4h or 30m, of at least 1m"))]
    pub duration: String,
}

/// A workload whose pods read the Secret.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
pub struct WorkloadRef {
    /// `Deployment`, `StatefulSet` or `DaemonSet` (group `apps`).
    pub kind: WorkloadKind,
    /// Name of the workload in the resource's namespace.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub name: String,
}

/// Kinds of workload the operator can restart.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, schemars::JsonSchema)]
pub enum WorkloadKind {
    Deployment,
    StatefulSet,
    DaemonSet,
}

impl WorkloadKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Deployment => "Deployment",
            Self::StatefulSet => "StatefulSet",
            Self::DaemonSet => "DaemonSet",
        }
    }
}

impl std::fmt::Display for WorkloadRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.kind.as_str(), self.name)
    }
}

/// Where the Upstash Developer API credentials are.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialsSecretRef {
    /// Name of the Secret: in the namespace of the resource or
    /// `UpstashAccount` that names it; for a `ClusterUpstashAccount`, in the
    /// operator's cluster resource namespace.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub name: String,
    /// Key of the account email in that Secret.
    #[serde(default = "default_email_key")]
    pub email_key: String,
    /// Key of the API key in that Secret.
    #[serde(default = "default_api_key_key")]
    pub api_key_key: String,
}

impl CredentialsSecretRef {
    /// A reference with the default keys `email` and `apiKey`.
    pub fn named(name: impl Into<String>) -> Self {
        Self { name: name.into(), email_key: default_email_key(), api_key_key: default_api_key_key() }
    }
}

fn default_email_key() -> String {
    "email".into()
}

fn default_api_key_key() -> String {
    "apiKey".into()
}

/// Extra metadata and keys for the written Secret. Labels and annotations
/// are checked at admission, templates before any reset, so nothing the
/// apiserver would refuse on the Secret gets as far as a password reset.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretTemplate {
    /// Labels added to the Secret (valid Kubernetes label keys and values).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "label_values")]
    // Keys: an optional DNS-subdomain prefix and `/`, then a name of at most 63.
    #[x_kube(validation = kube::core::Rule::new(
        r"self.all(k, k.size() <= 317 && k.matches('^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$') && (self[k] == '' || self[k].matches('^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$')))"
    ).message("secretTemplate.labels: keys must be qualified names ([prefix/]name) and values at most 63 of A-Z, a-z, 0-9, '-', '_', '.', starting and ending alphanumeric"))]
    pub labels: BTreeMap<String, String>,
    /// Annotations added to the Secret (valid Kubernetes annotation keys).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "annotation_values")]
    #[x_kube(validation = kube::core::Rule::new(
        r"self.all(k, k.size() <= 317 && k.matches('^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$'))"
    ).message("secretTemplate.annotations: keys must be qualified names ([prefix/]name)"))]
    pub annotations: BTreeMap<String, String>,
    /// Secret keys rendered from templates (MiniJinja, Jinja2 syntax) over
    /// `password`, `endpoint`, `port`, `restUrl`, `restToken`,
    /// `readOnlyRestToken`, `tls`, `databaseId` and `databaseName`, with the
    /// filters `urlencode` (all but RFC 3986 unreserved characters) and
    /// `tojson` among others. Example:
    /// `DATABASE_URL: "rediss://default:{{ password | urlencode }}@{{ endpoint }}:{{ port }}"`.
    /// They replace the default keys unless `mergeDefaults` is true. Checked
    /// before any reset: an invalid template stops at `Ready=False`, reason
    /// `InvalidTemplate`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "template_values")]
    #[x_kube(validation = kube::core::Rule::new(
        r"self.all(k, k.size() <= 253 && k.matches('^[-._a-zA-Z0-9]+$'))"
    ).message("secretTemplate.data: keys must be valid Secret keys (letters, digits, '-', '_', '.')"))]
    pub data: BTreeMap<String, String>,
    /// Write the default keys (`UPSTASH_REDIS_PASSWORD`, `REDIS_URL`, ...)
    /// as well as `data`; a key in both takes its template.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub merge_defaults: bool,
}

/// At most 32 templates of at most 8 KiB each.
fn template_values(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "maxProperties": 32,
        "additionalProperties": {"type": "string", "maxLength": 8192}
    })
}

/// At most 64 labels, each value at most 63 characters.
fn label_values(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "maxProperties": 64,
        "additionalProperties": {"type": "string", "maxLength": 63}
    })
}

/// At most 64 annotations of at most 4 KiB each (the apiserver allows
/// 256 KiB in all, and the operator adds its own).
fn annotation_values(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "maxProperties": 64,
        "additionalProperties": {"type": "string", "maxLength": 4096}
    })
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
    /// Fingerprint (a truncated SHA-256, not reversible) of the credentials
    /// the operator last wrote to the Secret: what Upstash reported then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_fingerprint: Option<String>,
    /// The Secret's `resourceVersion` when the operator last wrote or
    /// checked it. While the Secret still has this version nothing else
    /// changed it, so a restart, a resync or a new leader needs no Upstash
    /// call for this resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_resource_version: Option<String>,
    /// The reset attempt of `pendingRotation`: recorded before each reset is
    /// sent, cleared with `pendingRotation`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset: Option<Box<ResetAttempt>>,
    /// Fingerprint of the credentials the workloads of `spec.rolloutRestart`
    /// were last restarted for (or found running with, when they were first
    /// listed). A differing `credentialsFingerprint` means a restart is owed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumers_fingerprint: Option<String>,
    /// When the next scheduled rotation may start (`spec.schedule` only): due
    /// `every` after the last rotation, moved to the next maintenance window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_rotation_time: Option<Time>,
    /// Scheduled rotations applied so far. They leave `spec.rotation` and
    /// `rotation` alone; the Secret's `upstash-rotator.io/scheduled-rotation`
    /// annotation carries this number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_rotations: Option<i64>,
    /// The last 10 times the Secret got new credentials, newest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10))]
    pub history: Vec<HistoryEntry>,
    /// `Ready`: the Secret holds the database's current credentials.
    /// `Rotating`: a rotation is in flight.
    /// `ConsumersRestarted`: whether the last restart of `spec.rolloutRestart`
    /// reached every workload. `Suspended`: present while `spec.suspend` holds
    /// back calls to Upstash. `Verified`: what the check after the last
    /// rotation found (absent with `spec.verify: false`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = kube::core::ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}

/// One change of the credentials in the Secret.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    /// `spec.rotation` in force (the counter value a `counter` rotation applied).
    pub rotation: i64,
    /// The number of a `schedule` rotation (`status.scheduledRotations`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_rotation: Option<i64>,
    /// When the Secret got the new credentials.
    pub time: Time,
    /// What caused it: `counter` (spec.rotation went up), `schedule`
    /// (spec.schedule came due) or `recovery` (the password was changed
    /// outside the operator, and a sync stored the new one).
    pub trigger: RotationTrigger,
    /// The reset's answer was lost (a crash, a timeout) and the new
    /// credentials were read back from Upstash, without a second reset.
    #[serde(default)]
    pub recovered: bool,
    /// Fingerprint of the new credentials (a truncated SHA-256, not
    /// reversible), the same as `credentialsFingerprint`: tells versions apart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
}

/// What caused a change of credentials.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum RotationTrigger {
    Counter,
    Schedule,
    Recovery,
}

impl RotationTrigger {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Schedule => "schedule",
            Self::Recovery => "recovery",
        }
    }
}

/// One recorded reset attempt. A process sends a reset only after recording
/// its own attempt here and reading it back, so a stale process finds another
/// holder or a higher attempt and stops.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResetAttempt {
    /// Identity of the operator process that recorded the attempt.
    pub holder: String,
    /// Attempts recorded for this rotation, this one included.
    #[schemars(range(min = 1))]
    pub attempt: i64,
    /// When the attempt was recorded; a reset sent for it may still be
    /// answered until the request timeout has passed since.
    pub requested_at: MicroTime,
    /// Fingerprint of the credentials Upstash reported before the first
    /// attempt: recovery compares Upstash's credentials with it to tell
    /// whether a reset happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_credentials: Option<String>,
    /// Resets sent without a way to tell whether an earlier one happened
    /// (Credential Protection hides the credentials): capped.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub blind_resets: i64,

    /// The number of the scheduled rotation this intent is for; absent for
    /// a `spec.rotation` counter rotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled: Option<i64>,
}

impl RedisPasswordRotationSpec {
    /// A spec with every optional field at its default (counter 0, Secret named
    /// after the resource, `Delete` policy, keys `email` and `apiKey`).
    pub fn new(database_id: impl Into<String>, credentials_secret: impl Into<String>) -> Self {
        Self {
            database_id: database_id.into(),
            rotation: 0,
            credentials_secret_ref: Some(CredentialsSecretRef::named(credentials_secret)),
            account_ref: None,
            secret_name: None,
            secret_template: None,
            deletion_policy: DeletionPolicy::default(),
            rollout_restart: Vec::new(),
            suspend: false,
            schedule: None,
            verify: true,
        }
    }
}

impl RedisPasswordRotation {
    /// The Secret this resource writes.
    pub fn secret_name(&self) -> String {
        secret_name(self.spec.secret_name.as_deref(), self.metadata.name.as_deref())
    }
}

/// `spec.secretName`, else the resource's own name.
pub fn secret_name(spec_secret_name: Option<&str>, resource_name: Option<&str>) -> String {
    spec_secret_name.or(resource_name).unwrap_or_default().to_owned()
}
