//! Scenario 7: Secret writes fail for a while, then heal. A
//! ValidatingAdmissionPolicy (CEL, built into kube-apiserver) denies CREATE
//! and UPDATE of Secrets in the scenario's namespace until it is removed.

use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use futures::future::BoxFuture;
use k8s_openapi::api::{
    admissionregistration::v1::{ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding},
    core::v1::Secret,
};
use kube::{
    Api,
    api::{DeleteParams, ObjectMeta, PostParams},
};
use serde_json::json;

use super::common::{Ctx, close, replicas, rounds};
use crate::{report::ScenarioReport, rng::Rng, stage::Stage};

pub async fn run(ctx: &Ctx, mut rng: Rng, report: &mut ScenarioReport) -> Result<()> {
    let stage =
        Stage::new("secret-writes", &ctx.client, ctx.knobs, ctx.knobs.resources, replicas(1, None)).await?;
    rounds(&stage, &mut rng, report, chaos).await;
    // Whatever happened, never leave a policy behind.
    let _ = allow(&stage).await;
    close(&stage, ctx, report).await;
    Ok(())
}

fn name(stage: &Stage) -> String {
    format!("chaos-deny-secrets-{}", stage.ns.name)
}

/// Denies Secret writes in the namespace; returns once a probe write is denied.
pub async fn deny(stage: &Stage) -> Result<()> {
    let name = name(stage);
    let policy: ValidatingAdmissionPolicy = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {"resourceRules": [{
                "apiGroups": [""], "apiVersions": ["v1"],
                "operations": ["CREATE", "UPDATE"], "resources": ["secrets"],
            }]},
            "validations": [{
                "expression": "false",
                "message": "chaos: Secret writes are denied in this namespace for a while",
            }],
        },
    }))?;
    let binding: ValidatingAdmissionPolicyBinding = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "policyName": name,
            "validationActions": ["Deny"],
            "matchResources": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": stage.ns.name}}},
        },
    }))?;
    let policies: Api<ValidatingAdmissionPolicy> = Api::all(stage.client.clone());
    let bindings: Api<ValidatingAdmissionPolicyBinding> = Api::all(stage.client.clone());
    policies.create(&PostParams::default(), &policy).await.context("create ValidatingAdmissionPolicy")?;
    bindings
        .create(&PostParams::default(), &binding)
        .await
        .context("create ValidatingAdmissionPolicyBinding")?;
    wait_probe(stage, false).await
}

/// Removes the policy; returns once a probe write is allowed again.
pub async fn allow(stage: &Stage) -> Result<()> {
    let name = name(stage);
    let policies: Api<ValidatingAdmissionPolicy> = Api::all(stage.client.clone());
    let bindings: Api<ValidatingAdmissionPolicyBinding> = Api::all(stage.client.clone());
    let _ = bindings.delete(&name, &DeleteParams::default()).await;
    let _ = policies.delete(&name, &DeleteParams::default()).await;
    wait_probe(stage, true).await
}

/// A dry-run Secret create shows whether the apiserver enforces the policy yet.
async fn wait_probe(stage: &Stage, allowed: bool) -> Result<()> {
    let probe = Secret {
        metadata: ObjectMeta { name: Some("chaos-probe".into()), ..Default::default() },
        ..Default::default()
    };
    let params = PostParams { dry_run: true, ..Default::default() };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let result = stage.secrets().create(&params, &probe).await;
        let denied =
            matches!(&result, Err(kube::Error::Api(e)) if e.message.contains("chaos: Secret writes"));
        if denied != allowed {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("the admission policy was not {} within 20 s", if allowed { "lifted" } else { "enforced" });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn chaos(stage: &Stage, mut rng: Rng) -> BoxFuture<'_, ()> {
    Box::pin(async move {
        while !stage.burst_over() {
            stage.nap(rng.millis(300, 2000)).await;
            if let Err(e) = deny(stage).await {
                stage.note(format!("cannot deny Secret writes: {e:#}"));
                let _ = allow(stage).await;
                break;
            }
            stage.count_fault();
            stage.nap(rng.millis(2000, 8000)).await;
            if let Err(e) = allow(stage).await {
                stage.note(format!("cannot lift the Secret write denial: {e:#}"));
            }
        }
    })
}
