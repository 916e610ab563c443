//! Secret writes refused by admission, as a cluster policy (Kyverno,
//! Gatekeeper, a ValidatingAdmissionPolicy) refuses them: a
//! ValidatingAdmissionPolicy, built into kube-apiserver, that denies CREATE
//! and UPDATE of Secrets in one namespace while it exists.

use std::time::Duration;

use k8s_openapi::api::{
    admissionregistration::v1::{ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding},
    core::v1::Secret,
};
use kube::{
    Api, Client,
    api::{DeleteParams, ObjectMeta, PostParams},
};
use serde_json::json;

/// How long a policy may take to be enforced or lifted.
const PROPAGATION: Duration = Duration::from_secs(20);

/// The policy and binding of one namespace (cluster-scoped objects, named
/// after it).
pub struct SecretWriteDenial {
    client: Client,
    namespace: String,
    name: String,
    message: String,
}

impl SecretWriteDenial {
    /// The denial of Secret writes in `namespace`, with `message`; nothing
    /// is enforced until `enforce`.
    pub fn new(client: &Client, namespace: &str, message: &str) -> Self {
        Self {
            client: client.clone(),
            namespace: namespace.to_owned(),
            name: format!("deny-secrets-{namespace}"),
            message: message.to_owned(),
        }
    }

    /// Creates the policy; returns once a dry-run write is denied.
    pub async fn enforce(&self) -> Result<(), String> {
        let policy: ValidatingAdmissionPolicy = serde_json::from_value(json!({
            "metadata": {"name": self.name},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {"resourceRules": [{
                    "apiGroups": [""], "apiVersions": ["v1"],
                    "operations": ["CREATE", "UPDATE"], "resources": ["secrets"],
                }]},
                "validations": [{"expression": "false", "message": self.message}],
            },
        }))
        .map_err(|e| e.to_string())?;
        let binding: ValidatingAdmissionPolicyBinding = serde_json::from_value(json!({
            "metadata": {"name": self.name},
            "spec": {
                "policyName": self.name,
                "validationActions": ["Deny"],
                "matchResources": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": self.namespace}}},
            },
        }))
        .map_err(|e| e.to_string())?;
        let post = PostParams::default();
        Api::<ValidatingAdmissionPolicy>::all(self.client.clone())
            .create(&post, &policy)
            .await
            .map_err(|e| format!("create ValidatingAdmissionPolicy: {e}"))?;
        Api::<ValidatingAdmissionPolicyBinding>::all(self.client.clone())
            .create(&post, &binding)
            .await
            .map_err(|e| format!("create ValidatingAdmissionPolicyBinding: {e}"))?;
        self.until_denied(true).await
    }

    /// Removes the policy; returns once a dry-run write is allowed again.
    pub async fn lift(&self) -> Result<(), String> {
        let params = DeleteParams::default();
        let _ = Api::<ValidatingAdmissionPolicyBinding>::all(self.client.clone())
            .delete(&self.name, &params)
            .await;
        let _ = Api::<ValidatingAdmissionPolicy>::all(self.client.clone()).delete(&self.name, &params).await;
        self.until_denied(false).await
    }

    /// A dry-run Secret create shows whether the apiserver enforces the
    /// policy yet (policies reach it through an informer).
    async fn until_denied(&self, denied: bool) -> Result<(), String> {
        let probe = Secret {
            metadata: ObjectMeta { name: Some("admission-probe".into()), ..Default::default() },
            ..Default::default()
        };
        let params = PostParams { dry_run: true, ..Default::default() };
        let secrets = Api::<Secret>::namespaced(self.client.clone(), &self.namespace);
        let deadline = tokio::time::Instant::now() + PROPAGATION;
        loop {
            let result = secrets.create(&params, &probe).await;
            let now_denied = matches!(&result, Err(kube::Error::Api(e)) if e.message.contains(&self.message));
            if now_denied == denied {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                let what = if denied { "enforced" } else { "lifted" };
                return Err(format!(
                    "the admission policy was not {what} within {} s",
                    PROPAGATION.as_secs()
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
