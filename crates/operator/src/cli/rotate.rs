//! `upstash-rotator rotate NAME`: raises the counter by one and, with
//! `--wait`, follows the operator's progress.

use std::{process::ExitCode, time::Duration};

use clap::Args;
use kube::{
    Api,
    api::{Patch, PatchParams},
};
use serde_json::json;

use super::{cluster_client, exit, fail};
use crate::{
    conditions::{self, READY, ROTATING, Reason},
    crd::RedisPasswordRotation,
};

#[derive(Args)]
pub struct RotateArgs {
    /// Name of the RedisPasswordRotation.
    name: String,
    /// Its namespace; defaults to the kubeconfig context's namespace.
    #[arg(short, long)]
    namespace: Option<String>,
    /// Wait until the rotation is applied or fails.
    #[arg(long)]
    wait: bool,
    /// How long `--wait` waits, in seconds.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=3600))]
    timeout: u64,
}

/// `Ready=False` reasons that need a person, not more retries.
const NEEDS_ACTION: &[Reason] = &[
    Reason::InvalidCredentials,
    Reason::DatabaseNotFound,
    Reason::CredentialsSecretMissing,
    Reason::SecretConflict,
    Reason::DatabaseConflict,
    Reason::InvalidTemplate,
    Reason::InvalidSchedule,
];

pub async fn rotate(args: RotateArgs) -> ExitCode {
    let client = match cluster_client().await {
        Ok(c) => c,
        Err(code) => return code,
    };
    let namespace = args.namespace.clone().unwrap_or_else(|| client.default_namespace().to_owned());
    let api: Api<RedisPasswordRotation> = Api::namespaced(client, &namespace);
    let who = format!("RedisPasswordRotation {namespace}/{}", args.name);

    // Optimistic concurrency: retry if someone else changed it meanwhile.
    let mut raised = None;
    for _ in 0..5 {
        let current = match api.get_opt(&args.name).await {
            Ok(Some(r)) => r,
            Ok(None) => return fail(exit::NOT_FOUND, format!("{who} not found")),
            Err(e) => return fail(exit::CLUSTER, format!("cannot read {who}: {e}")),
        };
        let target = current.spec.rotation + 1;
        let patch = json!({
            "metadata": {"resourceVersion": current.metadata.resource_version},
            "spec": {"rotation": target},
        });
        match api.patch(&args.name, &PatchParams::default(), &Patch::Merge(&patch)).await {
            Ok(updated) => {
                raised = Some((target, updated.metadata.generation.unwrap_or_default()));
                break;
            }
            Err(kube::Error::Api(e)) if e.code == 409 => continue,
            Err(e) => return fail(exit::CLUSTER, format!("cannot update {who}: {e}")),
        }
    }
    let Some((target, generation)) = raised else {
        return fail(exit::CLUSTER, format!("{who} kept changing; try again"));
    };
    println!("{who}: spec.rotation raised to {target}");
    if !args.wait {
        return ExitCode::SUCCESS;
    }
    wait(&api, &args.name, &who, target, generation, Duration::from_secs(args.timeout)).await
}

async fn wait(
    api: &Api<RedisPasswordRotation>,
    name: &str,
    who: &str,
    target: i64,
    generation: i64,
    timeout: Duration,
) -> ExitCode {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last_shown = String::new();
    while tokio::time::Instant::now() < deadline {
        let resource = match api.get_opt(name).await {
            Ok(Some(r)) => r,
            Ok(None) => return fail(exit::FAILED, format!("{who} was deleted while waiting")),
            Err(e) => return fail(exit::CLUSTER, format!("cannot read {who}: {e}")),
        };
        let status = resource.status.unwrap_or_default();
        let ready = conditions::get(&status.conditions, READY);
        let rotating = conditions::get(&status.conditions, ROTATING);
        let current = status.observed_generation.unwrap_or_default() >= generation;

        let shown = match (rotating, ready) {
            (Some(r), _) if r.status == "True" => format!("{}: {}", r.reason, r.message),
            (_, Some(r)) if current => format!("{}: {}", r.reason, r.message),
            _ => "waiting for the operator".to_owned(),
        };
        if shown != last_shown {
            println!("  {shown}");
            last_shown = shown;
        }
        let applied = status.rotation.unwrap_or(-1) >= target && status.pending_rotation.is_none();
        if let Some(r) = ready.filter(|r| applied && r.status == "True") {
            println!("{who}: rotation {target} applied ({})", r.reason);
            return ExitCode::SUCCESS;
        }
        if let Some(r) = ready.filter(|r| {
            current
                && r.status == "False"
                && Reason::parse(&r.reason).is_some_and(|r| NEEDS_ACTION.contains(&r))
        }) {
            return fail(exit::FAILED, format!("rotation {target} failed: {}: {}", r.reason, r.message));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    fail(
        exit::FAILED,
        format!("rotation {target} not applied within {}s (last state: {last_shown})", timeout.as_secs()),
    )
}
