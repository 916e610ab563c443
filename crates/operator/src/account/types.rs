//! The account custom resources users write: `UpstashAccount` (one
//! namespace) and `ClusterUpstashAccount` (namespaces it allows), and the
//! `accountRef` a `RedisPasswordRotation` points at them with.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use kube::{CustomResource, KubeSchema, core::SelectorExt as _};
use serde::{Deserialize, Serialize};

use crate::crd::CredentialsSecretRef;

/// An Upstash Developer API key that `RedisPasswordRotation`s in this
/// namespace use through `spec.accountRef`, so one Secret serves many.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "upstash-rotator.io",
    version = "v1alpha1",
    kind = "UpstashAccount",
    plural = "upstashaccounts",
    category = "upstash",
    namespaced,
    status = "AccountStatus",
    derive = "PartialEq",
    doc = "An Upstash Developer API key for the RedisPasswordRotations of this namespace (spec.accountRef).",
    printcolumn(
        name = "Validated",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Validated\")].status"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Validated\")].reason"
    ),
    printcolumn(name = "Resources", type_ = "integer", json_path = ".status.resourceCount"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct UpstashAccountSpec {
    /// Secret in this namespace holding the Upstash Developer API email and
    /// API key (a read/write key: read-only keys cannot reset passwords).
    pub credentials_secret_ref: CredentialsSecretRef,
}

/// An Upstash Developer API key kept by the platform team, for the
/// `RedisPasswordRotation`s of the namespaces it allows. Its Secret lives in
/// the operator's cluster resource namespace, where application teams
/// cannot write.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "upstash-rotator.io",
    version = "v1alpha1",
    kind = "ClusterUpstashAccount",
    plural = "clusterupstashaccounts",
    category = "upstash",
    status = "AccountStatus",
    derive = "PartialEq",
    doc = "An Upstash Developer API key for the RedisPasswordRotations of the namespaces it allows (spec.accountRef).",
    printcolumn(
        name = "Validated",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Validated\")].status"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Validated\")].reason"
    ),
    printcolumn(name = "Resources", type_ = "integer", json_path = ".status.resourceCount"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterUpstashAccountSpec {
    /// Secret in the operator's cluster resource namespace (the namespace
    /// it is installed in, unless `--cluster-resource-namespace` says
    /// otherwise) holding the Upstash Developer API email and API key.
    pub credentials_secret_ref: CredentialsSecretRef,
    /// Namespaces whose resources may use this account: those in `names`,
    /// and those whose labels match `selector`. Resources elsewhere get
    /// `Ready=False` with reason `AccountNotAllowed` and no call to Upstash.
    pub allowed_namespaces: AllowedNamespaces,
}

/// Which namespaces may use a `ClusterUpstashAccount`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[x_kube(validation = kube::core::Rule::new("has(self.selector) || size(self.names) > 0").message(
    "allowedNamespaces needs names or a selector (selector: {} allows every namespace)"
))]
pub struct AllowedNamespaces {
    /// Namespaces allowed by name.
    #[serde(default)]
    #[schemars(length(max = 256))]
    pub names: Vec<String>,
    /// Namespaces allowed by their labels (`matchLabels`,
    /// `matchExpressions`). An empty selector (`{}`) allows every namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
}

/// Why a namespace may not use a `ClusterUpstashAccount`.
#[derive(Debug, PartialEq, Eq)]
pub enum NotAllowed {
    /// Neither listed nor matched by the selector.
    Outside,
    /// The selector cannot be read (an unknown operator, say): it allows
    /// nothing, rather than everything.
    InvalidSelector(String),
}

impl AllowedNamespaces {
    /// Whether the namespace `name`, carrying `labels`, is allowed.
    pub fn allows(&self, name: &str, labels: &BTreeMap<String, String>) -> Result<(), NotAllowed> {
        if self.names.iter().any(|n| n == name) {
            return Ok(());
        }
        let Some(selector) = &self.selector else { return Err(NotAllowed::Outside) };
        let selector = kube::core::Selector::try_from(selector.clone())
            .map_err(|e| NotAllowed::InvalidSelector(e.to_string()))?;
        if selector.matches(labels) { Ok(()) } else { Err(NotAllowed::Outside) }
    }

    /// Whether deciding needs the namespace's labels.
    pub fn needs_labels(&self, name: &str) -> bool {
        self.selector.is_some() && !self.names.iter().any(|n| n == name)
    }
}

/// Which account a `RedisPasswordRotation` uses.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, KubeSchema)]
pub struct AccountRef {
    /// `UpstashAccount` (the default: one in this namespace) or
    /// `ClusterUpstashAccount`.
    #[serde(default)]
    pub kind: AccountKind,
    /// Name of the account.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub name: String,
}

/// The two kinds of account.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, schemars::JsonSchema)]
pub enum AccountKind {
    #[default]
    UpstashAccount,
    ClusterUpstashAccount,
}

impl AccountKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::UpstashAccount => "UpstashAccount",
            Self::ClusterUpstashAccount => "ClusterUpstashAccount",
        }
    }
}

impl std::fmt::Display for AccountRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kind.as_str(), self.name)
    }
}

/// What the operator found about an account.
// Every field but the conditions is serialized, `null` or empty included:
// the status is sent as a merge patch, where a left-out field would keep a
// stale value (a user list after its last user went).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default)]
    pub observed_generation: Option<i64>,
    /// `resourceVersion` of the credentials Secret the last validation read:
    /// the key is checked again only when the Secret or the spec changes.
    #[serde(default)]
    pub validated_secret_version: Option<String>,
    /// When the key was last checked with Upstash.
    #[serde(default)]
    pub last_validation_time: Option<Time>,
    /// How many databases the key could list at that check.
    #[serde(default)]
    pub databases: Option<i64>,
    /// How many `RedisPasswordRotation`s name this account in `spec.accountRef`.
    #[serde(default)]
    pub resource_count: i64,
    /// Those resources, as `namespace/name`, sorted; the first 50.
    #[serde(default)]
    #[schemars(length(max = 50))]
    pub resources: Vec<String>,
    /// `Validated`: whether the key authenticates with Upstash (a cheap
    /// authenticated call, the list of databases). A read-only key passes
    /// this check but cannot reset passwords.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = kube::core::ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}

/// What the account controller needs of either kind.
pub trait Account:
    kube::Resource<DynamicType = ()>
    + Clone
    + serde::de::DeserializeOwned
    + Serialize
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
    const KIND: AccountKind;
    fn credentials_ref(&self) -> &CredentialsSecretRef;
    fn account_status(&self) -> Option<&AccountStatus>;
    /// Its API: namespaced accounts in `namespace`, cluster ones cluster-wide.
    fn api(client: kube::Client, namespace: Option<&str>) -> kube::Api<Self>;

    /// What the resource index files this account's users under: a
    /// namespaced account is named only by resources of its namespace.
    fn index_key(&self) -> crate::cache::Key {
        crate::cache::Key::Account {
            kind: Self::KIND,
            namespace: self.meta().namespace.clone(),
            name: self.meta().name.clone().unwrap_or_default(),
        }
    }
}

impl Account for UpstashAccount {
    const KIND: AccountKind = AccountKind::UpstashAccount;

    fn credentials_ref(&self) -> &CredentialsSecretRef {
        &self.spec.credentials_secret_ref
    }

    fn account_status(&self) -> Option<&AccountStatus> {
        self.status.as_ref()
    }

    fn api(client: kube::Client, namespace: Option<&str>) -> kube::Api<Self> {
        match namespace {
            Some(ns) => kube::Api::namespaced(client, ns),
            None => kube::Api::all(client),
        }
    }
}

impl Account for ClusterUpstashAccount {
    const KIND: AccountKind = AccountKind::ClusterUpstashAccount;

    fn credentials_ref(&self) -> &CredentialsSecretRef {
        &self.spec.credentials_secret_ref
    }

    fn account_status(&self) -> Option<&AccountStatus> {
        self.status.as_ref()
    }

    fn api(client: kube::Client, _: Option<&str>) -> kube::Api<Self> {
        kube::Api::all(client)
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn expression(operator: &str, values: &[&str]) -> LabelSelector {
        let requirement = LabelSelectorRequirement {
            key: "team".into(),
            operator: operator.into(),
            values: Some(values.iter().map(|v| (*v).to_owned()).collect()),
        };
        LabelSelector { match_expressions: Some(vec![requirement]), match_labels: None }
    }

    #[test]
    fn namespaces_are_allowed_by_name_or_by_labels_and_nothing_else() {
        let by_name = AllowedNamespaces { names: vec!["payments".into()], selector: None };
        assert_eq!(by_name.allows("payments", &labels(&[])), Ok(()));
        assert_eq!(by_name.allows("search", &labels(&[("team", "payments")])), Err(NotAllowed::Outside));
        assert!(!by_name.needs_labels("search"), "no selector: labels never matter");

        let by_labels =
            AllowedNamespaces { names: Vec::new(), selector: Some(expression("In", &["a", "b"])) };
        assert!(by_labels.needs_labels("x"));
        assert_eq!(by_labels.allows("x", &labels(&[("team", "b")])), Ok(()));
        assert_eq!(by_labels.allows("x", &labels(&[("team", "c")])), Err(NotAllowed::Outside));
        assert_eq!(by_labels.allows("x", &labels(&[])), Err(NotAllowed::Outside));

        let everyone = AllowedNamespaces { names: Vec::new(), selector: Some(LabelSelector::default()) };
        assert_eq!(everyone.allows("anything", &labels(&[])), Ok(()), "an empty selector selects all");
    }

    #[test]
    fn a_selector_the_operator_cannot_read_allows_nothing() {
        let broken = AllowedNamespaces { names: Vec::new(), selector: Some(expression("Near", &["a"])) };
        assert!(matches!(broken.allows("x", &labels(&[("team", "a")])), Err(NotAllowed::InvalidSelector(_))));
    }
}
