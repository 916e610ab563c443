//! Test harness shared by every crate's tests: the real control plane
//! started by `make cluster-up` (or `make test`), found through
//! `KUBECONFIG`; `upstash-sim` and operator processes; helm and kubectl.
//! A dev-dependency only.

pub mod admission;
pub mod node;
pub mod operator;
pub mod process;
pub mod sim;
pub mod tls;
pub mod tools;
pub mod workloads;
pub mod world;

use std::{path::PathBuf, time::Duration};

use k8s_openapi::api::{
    authentication::v1::{TokenRequest, TokenRequestSpec},
    core::v1::{Namespace, ServiceAccount},
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{
    Api, Client, Config,
    api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams},
    config::AuthInfo,
    runtime::wait::{await_condition, conditions},
};

/// Upper bound for any single wait on the apiserver in a test.
pub const WAIT: Duration = Duration::from_secs(60);

/// The admin configuration of the running control plane.
pub async fn admin_config() -> Config {
    upstash_rotator::tls::install_crypto_provider();
    assert!(
        std::env::var_os("KUBECONFIG").is_some(),
        "KUBECONFIG is not set: run the tests through `make test`, or `make cluster-up` and export what it prints"
    );
    Config::infer().await.expect("KUBECONFIG names a readable kubeconfig")
}

/// A client authenticated as the cluster admin.
pub async fn admin_client() -> Client {
    Client::try_from(admin_config().await).expect("client from admin kubeconfig")
}

/// A namespace of its own for one test, deleted when dropped (even when the
/// test panics). Deletion is left to the namespace controller.
pub struct TestNamespace {
    pub name: String,
    client: Client,
}

impl TestNamespace {
    pub async fn new(client: &Client, prefix: &str) -> Self {
        let suffix = &uuid::Uuid::new_v4().simple().to_string()[..8];
        let name = format!("{prefix}-{suffix}");
        let ns = Namespace {
            metadata: ObjectMeta { name: Some(name.clone()), ..Default::default() },
            ..Default::default()
        };
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .expect("create test namespace");
        Self { name, client: client.clone() }
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        let (client, name) = (self.client.clone(), self.name.clone());
        // Drop cannot await; a short-lived runtime on its own thread can.
        let cleanup = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build();
            if let Ok(rt) = rt {
                rt.block_on(async move {
                    let api = Api::<Namespace>::all(client);
                    let _ = tokio::time::timeout(
                        Duration::from_secs(10),
                        api.delete(&name, &DeleteParams::default()),
                    )
                    .await;
                });
            }
        });
        let _ = cleanup.join();
    }
}

/// Applies CRDs with server-side apply and waits until each is `Established`.
pub async fn install_crds(client: &Client, crds: &[CustomResourceDefinition]) {
    let api = Api::<CustomResourceDefinition>::all(client.clone());
    let pp = PatchParams::apply("upstash-rotator-tests").force();
    for crd in crds {
        let name = crd.metadata.name.as_deref().expect("CRD has a name");
        api.patch(name, &pp, &Patch::Apply(crd)).await.expect("apply CRD");
    }
    for crd in crds {
        let name = crd.metadata.name.as_deref().expect("CRD has a name");
        tokio::time::timeout(WAIT, await_condition(api.clone(), name, conditions::is_crd_established()))
            .await
            .expect("CRD established in time")
            .expect("watch CRD");
    }
}

/// Creates (if needed) a ServiceAccount, mints a token for it with the
/// TokenRequest API, and returns a client that authenticates with only that
/// token, so the caller gets exactly the RBAC granted to the account.
pub async fn service_account_client(admin: &Client, namespace: &str, name: &str) -> Client {
    let accounts = Api::<ServiceAccount>::namespaced(admin.clone(), namespace);
    let sa = ServiceAccount {
        metadata: ObjectMeta { name: Some(name.into()), ..Default::default() },
        ..Default::default()
    };
    match accounts.create(&PostParams::default(), &sa).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => panic!("create ServiceAccount {namespace}/{name}: {e}"),
    }
    let request = TokenRequest {
        spec: Some(TokenRequestSpec { expiration_seconds: Some(3600), ..Default::default() }),
        ..Default::default()
    };
    let minted =
        accounts.create_token_request(name, &PostParams::default(), &request).await.expect("TokenRequest");
    let token = minted.status.and_then(|s| s.token).expect("TokenRequest returned a token");

    let mut config = admin_config().await;
    config.auth_info = AuthInfo { token: Some(token.into()), ..Default::default() };
    config.default_namespace = namespace.into();
    Client::try_from(config).expect("client from ServiceAccount token")
}

/// Polls `check` every 200 ms until it returns `Some`, for at most `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out after {limit:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The reason of a resource's Ready condition.
pub fn conditions_reason(r: &upstash_rotator::crd::RedisPasswordRotation) -> Option<String> {
    let status = r.status.as_ref()?;
    upstash_rotator::conditions::get(&status.conditions, upstash_rotator::conditions::READY)
        .map(|c| c.reason.clone())
}

/// The field managers of an object's writes to `subresource` ("" for the
/// object itself, "status" for its status), as the apiserver recorded them.
pub fn managers(meta: &kube::api::ObjectMeta, subresource: &str) -> Vec<String> {
    let entries = meta.managed_fields.iter().flatten();
    let on = entries.filter(|e| e.subresource.as_deref().unwrap_or_default() == subresource);
    on.map(|e| e.manager.clone().unwrap_or_default()).collect()
}

/// The message of a resource's Ready condition.
pub fn ready_message(r: &upstash_rotator::crd::RedisPasswordRotation) -> String {
    r.status
        .as_ref()
        .and_then(|s| upstash_rotator::conditions::get(&s.conditions, upstash_rotator::conditions::READY))
        .map(|c| c.message.clone())
        .unwrap_or_default()
}

/// Collects a child's output lines in the background, for assertions on logs.
pub fn capture_lines(
    pipe: impl tokio::io::AsyncRead + Unpin + Send + 'static,
) -> std::sync::Arc<std::sync::Mutex<String>> {
    use tokio::io::AsyncBufReadExt as _;
    let sink = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let writer = sink.clone();
    tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(pipe).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if let Ok(mut all) = writer.lock() {
                all.push_str(&line);
                all.push('\n');
            }
        }
    });
    sink
}

/// The repository's top directory (charts, CRDs, scripts).
pub fn repo_root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// A file or directory of the repository, by its path from the top.
pub fn repo_path(relative: &str) -> PathBuf {
    repo_root().join(relative)
}

/// A binary of this workspace, as built by the same `cargo test` (or
/// `cargo build`) run in the same profile: next to the test executable's
/// `deps` directory.
pub fn binary(name: &str) -> PathBuf {
    let test_exe = std::env::current_exe().expect("the test executable's path");
    let profile_dir = test_exe.parent().and_then(|deps| deps.parent()).expect("target/<profile>/deps");
    let path = profile_dir.join(name);
    assert!(
        path.is_file(),
        "{} does not exist: build the workspace's binaries first (`cargo build --workspace --bins`, which `make test` does)",
        path.display()
    );
    path
}
