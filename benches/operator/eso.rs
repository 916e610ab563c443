//! External Secrets Operator, for `make bench-peers`: its core controller
//! (built by hack/testenv/eso.sh) as a process, the objects that make it
//! reset a password through a `Webhook` generator, and a watch on the
//! Secrets it writes.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use base64::Engine as _;
use futures::StreamExt as _;
use k8s_openapi::{ByteString, api::core::v1::Secret};
use kube::{
    Api, Client,
    api::{ApiResource, DynamicObject, GroupVersionKind, ObjectMeta, PostParams},
    core::PartialObjectMeta,
    runtime::{WatchStreamExt as _, reflector, reflector::Store, watcher},
};
use serde_json::json;
use tokio::{process::Command, task::JoinHandle};

use crate::{Result, logged::Logged, probe};

/// ESO's label on the Secrets it manages, and its hash of their data.
const MANAGED: &str = "reconcile.external-secrets.io/managed=true";
const DATA_HASH: &str = "reconcile.external-secrets.io/data-hash";
/// The Secret holding the `Authorization` header the generator sends.
const AUTH_SECRET: &str = "upstash-auth";

pub struct Eso {
    process: Logged,
    pub pid: u32,
    port: u16,
    http: reqwest::Client,
}

impl Eso {
    /// Starts the core controller only (no webhook, no cert controller, no
    /// leader election), at the operator's concurrency and without ESO's
    /// default client rate limit (the operator has none), and waits
    /// (bounded) until its metrics answer.
    pub async fn start(dir: &Path, concurrency: u16, log: PathBuf) -> Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut command = Command::new(dir.join("external-secrets"));
        command
            .arg(format!("--metrics-addr=127.0.0.1:{port}"))
            .arg(format!("--concurrent={concurrency}"))
            .args(["--enable-leader-election=false", "--loglevel=error", "--client-qps=10000"])
            .args(["--client-burst=10000", "--enable-cluster-store-reconciler=false"])
            .args([
                "--enable-cluster-external-secret-reconciler=false",
                "--enable-push-secret-reconciler=false",
            ])
            .arg("--enable-cluster-push-secret-reconciler=false");
        let process = Logged::spawn("ESO", &mut command, log)?;
        let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build()?;
        let mut eso = Self { pid: process.pid, process, port, http };
        for _ in 0..1200 {
            eso.process.check_running()?;
            if eso.reconciles().await.is_ok() {
                return Ok(eso);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(format!("ESO's metrics did not answer within 60 s: {}", eso.log_tail()).into())
    }

    pub fn log_tail(&self) -> String {
        self.process.log_tail()
    }

    /// ExternalSecret reconciles finished so far (controller-runtime's
    /// counter, every result).
    pub async fn reconciles(&self) -> Result<u64> {
        let url = format!("http://127.0.0.1:{}/metrics", self.port);
        let text = self.http.get(url).send().await?.error_for_status()?.text().await?;
        let sums = probe::counters(&text, "controller_runtime_reconcile_total", &["controller"]);
        Ok(sums.iter().filter(|(k, _)| k[0] == "externalsecret").map(|(_, v)| v).sum::<f64>().round() as u64)
    }

    /// SIGTERM, then waits (bounded) for the exit.
    pub async fn stop(self) -> Result<()> {
        self.process.stop().await
    }
}

fn api(
    client: &Client,
    namespace: &str,
    group: &str,
    version: &str,
    kind: &str,
    plural: &str,
) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
    Api::namespaced_with(client.clone(), namespace, &resource)
}

/// The generator's API key header, in a Secret as a user would keep it.
pub async fn create_auth_secret(client: &Client, namespace: &str, email: &str, key: &str) -> Result<()> {
    let header =
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{email}:{key}")));
    // ESO's webhook reads only Secrets labelled for it.
    let labels = [("external-secrets.io/type".to_owned(), "webhook".to_owned())].into();
    let secret = Secret {
        metadata: ObjectMeta { name: Some(AUTH_SECRET.into()), labels: Some(labels), ..Default::default() },
        data: Some([("header".to_owned(), ByteString(header.into_bytes()))].into()),
        ..Default::default()
    };
    Api::<Secret>::namespaced(client.clone(), namespace).create(&PostParams::default(), &secret).await?;
    Ok(())
}

/// One `Webhook` generator that resets database `id`, and one
/// `ExternalSecret` `name` that writes its answer into Secret `name`. ESO
/// calls the generator when the ExternalSecret is created and whenever its
/// labels or annotations change (`refreshPolicy: OnChange`, the nearest to a
/// counter), and never on a timer.
pub async fn create_pair(client: &Client, namespace: &str, sim: &str, name: &str, id: &str) -> Result<()> {
    let generators =
        api(client, namespace, "generators.external-secrets.io", "v1alpha1", "Webhook", "webhooks");
    let generator: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "generators.external-secrets.io/v1alpha1",
        "kind": "Webhook",
        "metadata": {"name": name},
        "spec": {
            "method": "POST",
            "url": format!("{sim}/v2/redis/reset-password/{id}"),
            "timeout": "10s",
            "headers": {"Authorization": "{{ .auth.header }}"},
            "result": {"jsonPath": "$"},
            "secrets": [{"name": "auth", "secretRef": {"name": AUTH_SECRET, "key": "header"}}]
        }
    }))?;
    generators.create(&PostParams::default(), &generator).await?;
    let external = api(client, namespace, "external-secrets.io", "v1", "ExternalSecret", "externalsecrets");
    let object: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "external-secrets.io/v1",
        "kind": "ExternalSecret",
        "metadata": {"name": name},
        "spec": {
            "refreshPolicy": "OnChange",
            "refreshInterval": "0s",
            "target": {"name": name},
            "dataFrom": [{"sourceRef": {"generatorRef": {
                "apiVersion": "generators.external-secrets.io/v1alpha1", "kind": "Webhook", "name": name
            }}}]
        }
    }))?;
    external.create(&PostParams::default(), &object).await?;
    Ok(())
}

/// Asks for a new password: an annotation change is a new version to
/// `OnChange`.
pub async fn rotate(client: &Client, namespace: &str, name: &str, rotation: i64) -> Result<()> {
    let external = api(client, namespace, "external-secrets.io", "v1", "ExternalSecret", "externalsecrets");
    let patch = json!({"metadata": {"annotations": {"bench/rotation": rotation.to_string()}}});
    external.patch(name, &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch)).await?;
    Ok(())
}

/// The Secrets ESO wrote, by name, with their data hash: a watch cache, so
/// waiting costs no list per poll.
pub struct Written {
    secrets: Store<PartialObjectMeta<Secret>>,
    task: JoinHandle<()>,
}

impl Written {
    pub async fn start(client: &Client, namespace: &str) -> Result<Self> {
        let (secrets, writer) = reflector::store();
        let api: Api<PartialObjectMeta<Secret>> = Api::namespaced(client.clone(), namespace);
        let stream =
            watcher(api, watcher::Config::default().labels(MANAGED)).default_backoff().reflect(writer);
        let task = tokio::spawn(stream.for_each(|_| std::future::ready(())));
        tokio::time::timeout(Duration::from_secs(60), secrets.wait_until_ready()).await??;
        Ok(Self { secrets, task })
    }

    pub fn hashes(&self) -> BTreeMap<String, String> {
        self.secrets
            .state()
            .iter()
            .filter_map(|s| {
                Some((s.metadata.name.clone()?, s.metadata.annotations.as_ref()?.get(DATA_HASH)?.clone()))
            })
            .collect()
    }

    /// Waits (bounded by `limit`) until `count` Secrets have a hash other
    /// than the one in `before` (absent counts as other).
    pub async fn wait_changed(
        &self,
        before: &BTreeMap<String, String>,
        count: usize,
        limit: Duration,
    ) -> Result<()> {
        let started = Instant::now();
        loop {
            let changed =
                self.hashes().iter().filter(|(name, hash)| before.get(*name) != Some(*hash)).count();
            if changed >= count {
                return Ok(());
            }
            if started.elapsed() > limit {
                return Err(format!("ESO wrote {changed} of {count} Secrets within {limit:?}").into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Written {
    fn drop(&mut self) {
        self.task.abort();
    }
}
