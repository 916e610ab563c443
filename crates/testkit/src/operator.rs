//! Runs the operator in-process against the real control plane and
//! `upstash-sim`, one instance per test, scoped to the test's namespace.

use std::{
    io::Write,
    sync::{Arc, Mutex, Once, OnceLock},
    time::Duration,
};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use tokio::{sync::oneshot, task::JoinHandle};
use upstash_rotator::{
    controller::{self, Runtime, Settings},
    leader::Fence,
    metrics::Metrics,
    reconcile::drift::DriftSettings,
};

/// Everything the operator logged in this test process.
fn log_buffer() -> &'static Arc<Mutex<Vec<u8>>> {
    static BUFFER: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    BUFFER.get_or_init(Arc::default)
}

struct BufferWriter;

impl Write for BufferWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut b) = log_buffer().lock() {
            b.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_logs() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("debug,hyper=info,tower=info,kube_client=info,rustls=info,h2=info,reqwest=info")
            .with_writer(|| BufferWriter)
            .with_ansi(false)
            .try_init();
    });
}

pub fn captured_logs() -> String {
    log_buffer().lock().map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
}

/// The CRDs exactly as committed in `crds/`.
pub fn committed_crds() -> Vec<CustomResourceDefinition> {
    upstash_rotator::cli::crds_yaml()
        .expect("render")
        .into_iter()
        .map(|(file, _)| {
            let text =
                std::fs::read_to_string(crate::repo_path(&format!("crds/{file}"))).expect("committed CRD");
            serde_saphyr::from_str(&text).expect("CRD YAML")
        })
        .collect()
}

/// The settings of one test's operator, scoped to its namespace.
fn settings(
    namespace: &str,
    api_url: &str,
    request_timeout: Duration,
    identity: &str,
    extra_roots: Vec<reqwest::Certificate>,
) -> Settings {
    Settings {
        upstash_api_url: api_url.to_owned(),
        extra_roots,
        namespaces: vec![namespace.to_owned()],
        request_timeout,
        concurrency: 4,
        reporter: "upstash-rotator-test".into(),
        identity: format!("{identity}-{namespace}"),
        shutdown_timeout: Duration::from_secs(20),
        cluster_namespace: None,
        drift_check: None,
        dry_run: false,
    }
}

/// Settings watching `namespaces`, with cluster accounts whose Secrets live
/// in `cluster_namespace`.
fn with_cluster_accounts(namespaces: &[&str], cluster_namespace: &str, api_url: &str) -> Settings {
    let mut settings = settings(namespaces[0], api_url, Duration::from_secs(2), "test", Vec::new());
    settings.namespaces = namespaces.iter().map(|n| (*n).to_owned()).collect();
    settings.cluster_namespace = Some(cluster_namespace.to_owned());
    settings
}

/// An operator running in this process; stopped gracefully with `stop`.
pub struct Operator {
    stop: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<()>>,
    metrics: Arc<Metrics>,
}

impl Operator {
    pub async fn start(client: Client, namespace: &str, api_url: &str) -> Self {
        Self::start_with(client, namespace, api_url, Duration::from_secs(2)).await
    }

    pub async fn start_with(
        client: Client,
        namespace: &str,
        api_url: &str,
        request_timeout: Duration,
    ) -> Self {
        Self::start_as(client, namespace, api_url, request_timeout, "test", Fence::unfenced()).await
    }

    /// An operator trusting `roots` besides the system's CA store.
    pub async fn start_trusting(
        client: Client,
        namespace: &str,
        api_url: &str,
        roots: Vec<reqwest::Certificate>,
    ) -> Self {
        let settings = settings(namespace, api_url, Duration::from_secs(2), "test", roots);
        Self::launch(client, settings, Fence::unfenced())
    }

    /// An operator watching `namespaces` whose resources may also use
    /// `ClusterUpstashAccount`s, with their Secrets in `cluster_namespace`.
    pub async fn start_with_cluster_accounts(
        client: Client,
        namespaces: &[&str],
        cluster_namespace: &str,
        api_url: &str,
    ) -> Self {
        Self::launch(client, with_cluster_accounts(namespaces, cluster_namespace, api_url), Fence::unfenced())
    }

    /// An operator that compares resources at rest with Upstash every
    /// `interval` (`--drift-check-interval`).
    pub async fn start_with_drift_check(
        client: Client,
        namespace: &str,
        api_url: &str,
        interval: Duration,
    ) -> Self {
        let mut settings = settings(namespace, api_url, Duration::from_secs(2), "test", Vec::new());
        let per_account_per_minute = std::num::NonZeroU32::new(600).unwrap_or(std::num::NonZeroU32::MIN);
        settings.drift_check = Some(DriftSettings { interval, per_account_per_minute });
        Self::launch(client, settings, Fence::unfenced())
    }

    /// An operator with its own identity and fence (a second replica, or
    /// one whose lease has run out).
    pub async fn start_as(
        client: Client,
        namespace: &str,
        api_url: &str,
        request_timeout: Duration,
        identity: &str,
        fence: Fence,
    ) -> Self {
        let settings = settings(namespace, api_url, request_timeout, identity, Vec::new());
        Self::launch(client, settings, fence)
    }

    /// An operator whose client counts its requests in its metrics, as the
    /// binary's does (`upstash_rotator::client::counted`).
    pub async fn start_counted(namespace: &str, api_url: &str) -> Self {
        let settings = settings(namespace, api_url, Duration::from_secs(2), "test", Vec::new());
        Self::spawn_counted(settings).await
    }

    /// `start_with_cluster_accounts`, counting its requests as
    /// `start_counted` does.
    pub async fn start_counted_with_cluster_accounts(
        namespaces: &[&str],
        cluster_namespace: &str,
        api_url: &str,
    ) -> Self {
        Self::spawn_counted(with_cluster_accounts(namespaces, cluster_namespace, api_url)).await
    }

    async fn spawn_counted(settings: Settings) -> Self {
        let runtime = Runtime { fence: Fence::unfenced(), ..Runtime::default() };
        let client = upstash_rotator::client::counted(runtime.metrics.clone())
            .await
            .expect("a client from the KUBECONFIG");
        Self::spawn(client, settings, runtime)
    }

    fn launch(client: Client, settings: Settings, fence: Fence) -> Self {
        Self::spawn(client, settings, Runtime { fence, ..Runtime::default() })
    }

    fn spawn(client: Client, settings: Settings, runtime: Runtime) -> Self {
        capture_logs();
        let metrics = runtime.metrics.clone();
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            let shutdown = async move {
                let _ = rx.await;
            };
            if let Err(e) = controller::run(client, settings, runtime, shutdown).await {
                panic!("operator failed to start: {e}");
            }
        });
        Self { stop: Some(tx), handle: Some(handle), metrics }
    }

    /// Reconciles this operator finished without an error so far.
    pub fn reconciles_ok(&self) -> u64 {
        self.metrics.reconciles.get_or_create(&upstash_rotator::metrics::ResultLabel { result: "ok" }).get()
    }

    /// Its Kubernetes API requests of `verb` on `resource` answered `code`.
    pub fn kubernetes_requests(&self, verb: &'static str, resource: &str, code: &str) -> u64 {
        let labels = upstash_rotator::metrics::KubernetesRequestLabels {
            verb,
            resource: resource.to_owned(),
            code: code.to_owned(),
        };
        self.metrics.kubernetes_requests.get_or_create(&labels).get()
    }

    /// Asks for a graceful stop without waiting.
    pub fn signal_stop(&self) {
        if let Some(handle) = &self.handle {
            handle.abort();
        }
    }

    /// Asks for a graceful stop and waits for it (bounded).
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(handle) = self.handle.take() {
            tokio::time::timeout(Duration::from_secs(30), handle)
                .await
                .expect("operator stops in time")
                .expect("join");
        }
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        if let Some(handle) = &self.handle {
            handle.abort();
        }
    }
}
