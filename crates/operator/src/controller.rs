//! Wires the reconciler to the apiserver: watches, scopes, concurrency and
//! shutdown.

use std::{future::Future, sync::Arc, time::Duration};

use futures::{FutureExt as _, StreamExt as _, future::Shared};
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, Client, ResourceExt as _,
    api::ListParams,
    core::PartialObjectMeta,
    runtime::{
        Controller,
        controller::{Config as ControllerConfig, Error as ControllerError},
        events::{Recorder, Reporter},
        reflector::{ObjectRef, Store},
        watcher,
    },
};

use crate::{
    account::{
        Account, AccountContext, Change, Changes, ClusterUpstashAccount, UpstashAccount,
        run_account_controllers,
    },
    crd::RedisPasswordRotation,
    http::Readiness,
    leader::Fence,
    metrics::Metrics,
    reconcile::{Cluster, Context, error_policy, reconcile, store_ready},
    secret::{MANAGED_BY, MANAGED_BY_LABEL, RESOURCE_ANNOTATION},
};
use upstash_api::UpstashClient;

/// How the operator runs.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Base URL of the Upstash Developer API.
    pub upstash_api_url: String,
    /// CA certificates trusted for it besides the system's store.
    pub extra_roots: Vec<reqwest::Certificate>,
    /// Namespaces to watch; empty means all.
    pub namespaces: Vec<String>,
    /// Upper bound of one Upstash API request.
    pub request_timeout: Duration,
    /// Resources reconciled at once.
    pub concurrency: u16,
    /// Name reported on events.
    pub reporter: String,
    /// This process, recorded with each reset attempt it makes.
    pub identity: String,
    /// Report what would be done, as events and log lines, without resetting
    /// a password or writing a Secret or status.
    pub dry_run: bool,
    /// After a shutdown request, how long reconciles in progress may take to
    /// finish (a rotation past its reset writes its Secret in that time).
    pub shutdown_timeout: Duration,
    /// Where `ClusterUpstashAccount` Secrets live (the operator's own
    /// namespace, as cert-manager keeps ClusterIssuer Secrets); `None` turns
    /// cluster accounts off.
    pub cluster_namespace: Option<String>,
}

/// What the operator shares with its HTTP endpoints.
#[derive(Clone, Default)]
pub struct Runtime {
    pub metrics: Arc<Metrics>,
    pub readiness: Readiness,
    /// Closes when leadership may be lost; open when not elected.
    pub fence: Fence,
}

/// Why the operator cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(
        "the upstash-rotator CRDs (RedisPasswordRotation, UpstashAccount, ClusterUpstashAccount) are not all \
         installed (install them with `upstash-rotator crd | kubectl apply --server-side -f -` or the Helm chart)"
    )]
    CrdMissing,
    #[error("cannot reach the Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// With every cause: reqwest's own text is only "builder error".
    #[error("cannot build the HTTP client for the Upstash API: {0}")]
    HttpClient(String),
}

/// Runs the controllers until `shutdown` completes; reconciles in progress
/// are allowed to finish (their Secret writes included).
pub async fn run(
    client: Client,
    settings: Settings,
    runtime: Runtime,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let scopes: Vec<Option<String>> = if settings.namespaces.is_empty() {
        vec![None]
    } else {
        // One controller per namespace, each namespace once: two controllers
        // on one object would reconcile it concurrently.
        let unique: std::collections::BTreeSet<_> = settings.namespaces.iter().cloned().collect();
        unique.into_iter().map(Some).collect()
    };
    for scope in &scopes {
        crd_installed(scoped::<RedisPasswordRotation>(&client, scope.as_deref())).await?;
        crd_installed(scoped::<UpstashAccount>(&client, scope.as_deref())).await?;
    }
    if settings.cluster_namespace.is_some() {
        crd_installed(Api::<ClusterUpstashAccount>::all(client.clone())).await?;
    }

    let observer = runtime.metrics.clone();
    let upstash = UpstashClient::trusting(
        &settings.upstash_api_url,
        settings.request_timeout,
        settings.extra_roots.clone(),
    )
    .map_err(|e| StartError::HttpClient(with_causes(&e)))?
    .with_observer(Arc::new(move |route, status| observer.upstash_request(route, status)));
    let recorder =
        Recorder::new(client.clone(), Reporter { controller: settings.reporter.clone(), instance: None });
    let shutdown = shutdown.boxed().shared();

    let controllers: Vec<_> =
        scopes.iter().map(|scope| build(&client, scope.as_deref(), &settings)).collect();
    let stores: Vec<Store<RedisPasswordRotation>> = controllers.iter().map(Controller::store).collect();
    // Accounts get their status from the leader only, like resources; a
    // dry run writes no status at all.
    let accounts = (!settings.dry_run).then(|| {
        let ctx = Arc::new(AccountContext {
            client: client.clone(),
            upstash: upstash.clone(),
            resources: stores.clone(),
            cluster_namespace: settings.cluster_namespace.clone(),
            fence: runtime.fence.clone(),
        });
        run_account_controllers(client.clone(), scopes.clone(), ctx, shutdown.clone())
    });
    let ctx = Arc::new(
        Context::new(Cluster::new(client, recorder), upstash, stores.clone(), runtime.metrics.clone())
            .with_request_timeout(settings.request_timeout)
            .with_identity(settings.identity.clone(), runtime.fence.clone())
            .with_dry_run(settings.dry_run)
            .with_cluster_namespace(settings.cluster_namespace.clone()),
    );
    let readiness = runtime.readiness.clone();
    tokio::spawn(async move {
        for store in &stores {
            if !store_ready(store, None).await {
                return;
            }
        }
        readiness.set(true);
        tracing::info!("caches synced; reconciling");
    });

    let runs = controllers.into_iter().map(|controller| {
        let metrics = runtime.metrics.clone();
        let shared = ctx.clone();
        controller.graceful_shutdown_on(signal(&shutdown)).run(reconcile, error_policy, ctx.clone()).for_each(
            move |result| {
                match result {
                    // A deleted resource: its per-resource series go with it.
                    Err(ControllerError::ObjectNotFound(gone)) => {
                        metrics.forget(gone.namespace.as_deref().unwrap_or_default(), &gone.name);
                        shared.prune_gone();
                    }
                    Err(e) => tracing::debug!(error = %e, "controller event"),
                    Ok(_) => {}
                }
                std::future::ready(())
            },
        )
    });
    let all = futures::future::join(futures::future::join_all(runs), async move {
        if let Some(accounts) = accounts {
            accounts.await;
        }
    });
    // Bounded: after the shutdown request, give reconciles in progress
    // `shutdown_timeout`, then stop regardless.
    let deadline = {
        let shutdown = shutdown.clone();
        let timeout = settings.shutdown_timeout;
        async move {
            shutdown.await;
            tokio::time::sleep(timeout).await;
        }
    };
    tokio::select! {
        _ = all => tracing::info!("controllers stopped"),
        () = deadline => tracing::warn!("reconciles still running after the shutdown timeout; stopping anyway"),
    }
    runtime.readiness.set(false);
    Ok(())
}

/// Whether the apiserver serves `K`: a missing CRD is a clear start error,
/// not a watch retrying forever.
async fn crd_installed<K>(api: Api<K>) -> Result<(), StartError>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.list(&ListParams::default().limit(1)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Err(StartError::CrdMissing),
        Err(e) => Err(e.into()),
    }
}

fn signal(
    shutdown: &Shared<futures::future::BoxFuture<'static, ()>>,
) -> impl Future<Output = ()> + Send + Sync + 'static {
    shutdown.clone()
}

/// `K` in one namespace, or in all of them.
pub(crate) fn scoped<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

fn build(client: &Client, namespace: Option<&str>, settings: &Settings) -> Controller<RedisPasswordRotation> {
    let resources: Api<RedisPasswordRotation> = scoped(client, namespace);
    let secrets: Api<PartialObjectMeta<Secret>> = scoped(client, namespace);
    // Every list is a quorum read (the default semantic), not one served
    // from the apiserver's watch cache: after an apiserver restart a cached
    // list can carry a version the new watch cache already dropped, and the
    // watch from it fails with 410 again and again, with growing backoff,
    // while raised counters go unseen (make chaos, apiserver-restart).
    let controller = Controller::new(resources, watcher::Config::default())
        .with_config(ControllerConfig::default().concurrency(settings.concurrency));
    let store = controller.store();

    // The Secrets we write carry our label, so this watch never sees others.
    let owned = watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY}"));
    // Credential Secrets carry no label of ours: watch metadata only, and map
    // each change to the resources that reference the Secret by name.
    let referenced = watcher::Config::default();
    let controller = wake_on_accounts(controller, client, namespace, settings.cluster_namespace.is_some());
    controller
        .watches(secrets.clone(), owned, |secret| {
            let name = secret.annotations().get(RESOURCE_ANNOTATION).cloned();
            let namespace = secret.namespace();
            name.map(|n| ObjectRef::new(&n).within(namespace.as_deref().unwrap_or_default()))
        })
        .watches(secrets, referenced, move |secret| {
            let (name, namespace) = (secret.name_any(), secret.namespace());
            store
                .state()
                .into_iter()
                .filter(|r| r.namespace() == namespace)
                .filter(|r| r.spec.credentials_secret_ref.as_ref().is_some_and(|c| c.name == name))
                .map(|r| ObjectRef::from_obj(&*r))
                .collect::<Vec<_>>()
        })
}

/// An account's spec, its deletion, or a new check of its Secret wakes the
/// resources that name it; its status writes listing them do not.
fn wake_on_accounts(
    controller: Controller<RedisPasswordRotation>,
    client: &Client,
    namespace: Option<&str>,
    cluster_accounts: bool,
) -> Controller<RedisPasswordRotation> {
    let store = controller.store();
    let accounts: Api<UpstashAccount> = scoped(client, namespace);
    let controller = controller.watches(accounts, watcher::Config::default(), users(store.clone()));
    if !cluster_accounts {
        return controller;
    }
    let accounts: Api<ClusterUpstashAccount> = Api::all(client.clone());
    controller.watches(accounts, watcher::Config::default(), users(store))
}

/// Maps an account event that is news (see `Changes`) to the resources in
/// `store` that name the account.
fn users<A: Account>(
    store: Store<RedisPasswordRotation>,
) -> impl Fn(A) -> Vec<ObjectRef<RedisPasswordRotation>> + Send + Sync + 'static {
    let changes = Changes::<A, (Option<i64>, Option<String>)>::default();
    move |account| {
        let relevant = (
            account.meta().generation,
            account.account_status().and_then(|s| s.validated_secret_version.clone()),
        );
        if matches!(changes.record(&account, relevant), Change::Nothing) {
            return Vec::new();
        }
        store.state().iter().filter(|r| account.used_by(r)).map(|r| ObjectRef::from_obj(&**r)).collect()
    }
}

/// An error and its causes, joined: `a: b: c`.
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        text.push_str(&format!(": {e}"));
        cause = e.source();
    }
    text
}
