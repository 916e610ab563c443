//! Wires the reconciler to the apiserver: watches, scopes, concurrency and
//! shutdown.

use std::{future::Future, sync::Arc, time::Duration};

use futures::{FutureExt as _, StreamExt as _, TryStreamExt as _, future::Shared};
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, Client, ResourceExt as _,
    api::ListParams,
    core::PartialObjectMeta,
    runtime::{
        Controller, WatchStreamExt as _,
        controller::{Config as ControllerConfig, Error as ControllerError},
        events::{Recorder, Reporter},
        reflector::{self, ObjectRef, Store},
        watcher,
    },
};
use parking_lot::Mutex;

use crate::{
    account::{
        Account, AccountContext, AccountScope, Change, Changes, ClusterUpstashAccount, UpstashAccount,
        run_account_controllers,
    },
    cache::{
        self, CachedRotation, Caches, Index, Indexes, Key, KeyVersions, Rechecks, ResourceRef, WorkingCopies,
        WrittenVersions, cached,
        every_secret::{self, AccountFeed},
        namespaces::{self, NamespaceLabels},
        trim,
    },
    crd::RedisPasswordRotation,
    events::EventQueue,
    http::Readiness,
    leader::Fence,
    metrics::Metrics,
    reconcile::{Cluster, Context, drift::DriftSettings, error_policy, reconcile},
    secret::RESOURCE_ANNOTATION,
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
    /// Compare resources at rest with Upstash again every so often; `None`:
    /// never (a resource at rest then costs no Upstash call at all).
    pub drift_check: Option<DriftSettings>,
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
    let reporter = Reporter { controller: settings.reporter.clone(), instance: None };
    // Warnings, rare and awaited, go through this recorder; reports through
    // the queue's own.
    let recorder = Recorder::new(client.clone(), reporter.clone());
    let reports = EventQueue::start(client.clone(), reporter, runtime.metrics.events_dropped.clone());
    let shutdown = shutdown.boxed().shared();

    let rechecks = Arc::new(Rechecks::default());
    let working = Arc::new(WorkingCopies::default());
    let built: Vec<Scope> =
        scopes.iter().map(|scope| build(&client, scope.as_deref(), &settings, &rechecks, &working)).collect();
    let (built, home_keys, home_feed) = keep_uncovered_home_keys(&client, built, &scopes, &settings);
    let indexes: Vec<Arc<Index>> = built.iter().map(|s| s.index.clone()).collect();
    let caches = Caches {
        rechecks,
        working,
        resources: built.iter().map(|s| s.controller.store()).collect(),
        written: built.iter().map(|s| s.written.clone()).collect(),
        keys: built.iter().map(|s| s.keys.clone()).chain(home_keys).collect(),
        index: Indexes::new(indexes.clone()),
        accounts: built.iter().map(|s| s.accounts.namespaced.clone()).collect(),
        cluster_accounts: scopes
            .iter()
            .zip(&built)
            .filter_map(|(scope, s)| Some((scope.clone(), s.accounts.cluster.clone()?)))
            .collect(),
        namespaces: scopes
            .iter()
            .zip(&built)
            .filter_map(|(scope, s)| Some((scope.clone(), s.namespaces.clone()?)))
            .collect(),
    };
    let (controllers, account_feeds): (Vec<_>, Vec<_>) =
        built.into_iter().map(|s| (s.controller, s.account_feed)).unzip();
    // Accounts get their status from the leader only, like resources; a
    // dry run writes no status at all (and drops the account feeds, which
    // the Secret watches then skip).
    let accounts = (!settings.dry_run).then(|| {
        let ctx = Arc::new(AccountContext {
            client: client.clone(),
            upstash: upstash.clone(),
            index: caches.index.clone(),
            cluster_namespace: settings.cluster_namespace.clone(),
            fence: runtime.fence.clone(),
            // Each account controller takes its own (`with_own_keys`).
            keys: Arc::default(),
        });
        let scopes = scopes.iter().zip(&indexes).zip(account_feeds);
        let scopes = scopes
            .map(|((namespace, index), secrets)| AccountScope {
                namespace: namespace.clone(),
                index: index.clone(),
                secrets,
            })
            .collect();
        let resources = caches.resources.clone();
        run_account_controllers(client.clone(), scopes, home_feed, resources, ctx, shutdown.clone())
    });
    let ctx = Arc::new(
        Context::new(
            Cluster::new(client, recorder, reports.clone()),
            upstash,
            caches.clone(),
            runtime.metrics.clone(),
        )
        .with_request_timeout(settings.request_timeout)
        .with_identity(settings.identity.clone(), runtime.fence.clone())
        .with_dry_run(settings.dry_run)
        .with_cluster_namespace(settings.cluster_namespace.clone())
        .with_drift_check(settings.drift_check),
    );
    let readiness = runtime.readiness.clone();
    tokio::spawn(async move {
        if !cache::all_ready(&caches.resources, None).await || !caches.written_synced(None).await {
            return;
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
                        let namespace = gone.namespace.as_deref().unwrap_or_default();
                        metrics.forget(namespace, &gone.name);
                        // Its recheck mark, if any, would otherwise stay.
                        shared.caches.rechecks.take(&ObjectRef::new(&gone.name).within(namespace));
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
    reports.drain(DRAIN_REPORTS).await;
    runtime.readiness.set(false);
    Ok(())
}

/// How long a stopping process keeps publishing the events of rotations
/// it finished (their statuses already record them).
const DRAIN_REPORTS: Duration = Duration::from_secs(2);

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

/// One watched scope: its controller, the metadata of the Secrets written
/// there, the index of its resources, and the Secrets its account
/// controller hears of.
struct Scope {
    controller: Controller<CachedRotation>,
    written: Arc<WrittenVersions>,
    keys: Arc<Mutex<KeyVersions>>,
    index: Arc<Index>,
    account_feed: AccountFeed,
    accounts: AccountStores,
    /// The labels of its namespaces, with cluster accounts on.
    namespaces: Option<Arc<NamespaceLabels>>,
}

fn build(
    client: &Client,
    namespace: Option<&str>,
    settings: &Settings,
    rechecks: &Arc<Rechecks>,
    working: &Arc<WorkingCopies>,
) -> Scope {
    // Every list is a quorum read (the default semantic), not one served
    // from the apiserver's watch cache: after an apiserver restart a cached
    // list can carry a version the new watch cache already dropped, and the
    // watch from it fails with 410 again and again, with growing backoff,
    // while raised counters go unseen (make chaos, apiserver-restart).
    let index = Arc::new(Index::default());
    let (resources, writer) = reflector::store();
    let resource_events = {
        let (index, working) = (index.clone(), working.clone());
        let events = watcher(
            scoped::<RedisPasswordRotation>(client, namespace),
            watcher::Config::default().page_size(cache::LIST_PAGE),
        )
        .backoff(cache::retry::watch_backoff())
        // Before the store: the reconcile this event starts finds its copy.
        .map_ok(move |mut event| {
            working.observe(&mut event);
            cached::event(event)
        })
        .reflect(writer)
        // After the store: an account told of a new user finds it there.
        .map_ok(move |event| {
            index.observe(&event);
            event
        })
        .applied_objects()
        // The controller queues a reference to each object that triggers it,
        // and a start queues every resource. Version and uid are never
        // compared (the reconcile reads the object from the store), so the
        // queue need not hold them.
        .map_ok(|mut resource| {
            resource.metadata.resource_version = None;
            resource.metadata.uid = None;
            resource
        });
        cache::retry::errors_logged(events, "RedisPasswordRotation")
    };
    let controller = cache::retry::backed_off(Controller::for_stream(resource_events, resources))
        .with_config(ControllerConfig::default().concurrency(settings.concurrency));

    // The Secrets we write carry our label, so this watch never sees others;
    // their versions are kept, to tell a Secret we wrote from one changed
    // since, and an event wakes the resource its annotation names.
    let written = Arc::new(WrittenVersions::default());
    let owned = watcher::Config::default().labels(&cache::written_selector()).page_size(cache::LIST_PAGE);
    let written_events = {
        let written = written.clone();
        let events = watcher(scoped::<PartialObjectMeta<Secret>>(client, namespace), owned)
            .backoff(cache::retry::watch_backoff())
            .modify(|secret| trim::written_secret(&mut secret.metadata))
            .map_ok(move |event| {
                written.observe(&event);
                event
            })
            .touched_objects();
        cache::retry::errors_logged(events, "written Secrets")
    };
    // Credential Secrets carry no label of ours: one watch of every
    // Secret's metadata (an `Api<PartialObjectMeta<_>>` asks for nothing
    // else) feeds the account controller, keeps the versions of those some
    // resource names, and passes a Secret on only when its version changed:
    // a relist or a restart is no news.
    let keys = Arc::new(Mutex::new(KeyVersions::of_scope(namespace)));
    let (to_accounts, account_feed) = every_secret::account_feed();
    let changed_keys = every_secret::key_secret_changes(
        scoped(client, namespace),
        controller.store(),
        keys.clone(),
        index.clone(),
        to_accounts,
    );
    let changed_keys = cache::retry::errors_logged(changed_keys, "Secrets' metadata");
    let cluster_accounts = settings.cluster_namespace.is_some();
    let (controller, accounts) =
        wake_on_accounts(controller, client, namespace, cluster_accounts, &index, rechecks);
    let (controller, namespaces) =
        wake_on_namespaces(controller, client, namespace, &accounts, &index, rechecks);
    let (by_key_secret, recheck) = (index.clone(), rechecks.clone());
    let (lenders, home) = (accounts.clone(), settings.cluster_namespace.clone());
    let controller = controller
        .watches_stream(written_events, |secret| {
            let name = secret.annotations().get(RESOURCE_ANNOTATION).cloned();
            let namespace = secret.namespace();
            name.map(|n| ObjectRef::new(&n).within(namespace.as_deref().unwrap_or_default()))
        })
        .watches_stream(changed_keys, move |secret| {
            let (namespace, name) = (secret.namespace().unwrap_or_default(), secret.name_any());
            let key = Key::KeySecret { namespace: namespace.clone(), name: name.clone() };
            let mut users = by_key_secret.lookup(&key);
            recheck.mark(&users);
            // Those of the accounts lending it are woken, not marked: the
            // account's own check of the new key marks them. A reconcile
            // that read the old copy before this watch caught up is retried
            // now, on the new version.
            for account in lenders.lending(&namespace, &name, home.as_deref()) {
                users.extend(by_key_secret.lookup(&account));
            }
            users
        });
    Scope { controller, written, keys, index, account_feed, accounts, namespaces }
}

/// In a namespaced install that leaves out the cluster resource namespace,
/// no scope's watch of Secrets sees the keys `ClusterUpstashAccount`s lend:
/// one more watch, of that namespace alone, keeps the versions of those a
/// reconcile wants, so a rotation through such an account reads its key
/// once per version too, and feeds the cluster account controller (the
/// returned feed; dropped in a dry run, which runs none). It runs with the
/// first scope's controller. It wakes no resource: a changed key reaches
/// the account's users through the account's own check of it, and its
/// version here makes their next read at least that new.
fn keep_uncovered_home_keys(
    client: &Client,
    built: Vec<Scope>,
    scopes: &[Option<String>],
    settings: &Settings,
) -> (Vec<Scope>, Option<Arc<Mutex<KeyVersions>>>, Option<AccountFeed>) {
    let home = settings.cluster_namespace.as_deref();
    let covered = |home: &str| scopes.iter().any(|scope| scope.as_deref().is_none_or(|scope| scope == home));
    let Some(home) = home.filter(|home| !covered(home)) else { return (built, None, None) };
    let keys = Arc::new(Mutex::new(KeyVersions::of_scope(Some(home))));
    let mut built = built.into_iter();
    let Some(mut first) = built.next() else { return (Vec::new(), None, None) };
    let (to_accounts, feed) = every_secret::account_feed();
    let feed = (!settings.dry_run).then_some(feed);
    // No resource names a Secret there.
    let changes = every_secret::key_secret_changes(
        scoped(client, Some(home)),
        first.controller.store(),
        keys.clone(),
        Arc::new(Index::default()),
        to_accounts,
    );
    let changes = cache::retry::errors_logged(changes, "Secrets' metadata");
    first.controller = first.controller.watches_stream(changes, |_| Vec::<ResourceRef>::new());
    (std::iter::once(first).chain(built).collect(), Some(keys), feed)
}

/// One scope's accounts as its watches last delivered them: a reconcile
/// resolves its account there, not with a read per reconcile.
#[derive(Clone)]
struct AccountStores {
    namespaced: Store<UpstashAccount>,
    cluster: Option<Store<ClusterUpstashAccount>>,
}

impl AccountStores {
    /// The index keys of the accounts that lend Secret `namespace/name`
    /// (cluster accounts' Secrets live in `home`).
    fn lending(&self, namespace: &str, name: &str, home: Option<&str>) -> Vec<Key> {
        let mut keys: Vec<Key> = self
            .namespaced
            .state()
            .iter()
            .filter(|a| a.namespace().as_deref() == Some(namespace) && a.credentials_ref().name == name)
            .map(|a| a.index_key())
            .collect();
        if home == Some(namespace)
            && let Some(cluster) = &self.cluster
        {
            let lend = cluster.state().into_iter().filter(|a| a.credentials_ref().name == name);
            keys.extend(lend.map(|a| a.index_key()));
        }
        keys
    }
}

/// An account's spec, its deletion, or a new check of its Secret wakes the
/// resources that name it; its status writes listing them do not.
fn wake_on_accounts(
    controller: Controller<CachedRotation>,
    client: &Client,
    namespace: Option<&str>,
    cluster_accounts: bool,
    index: &Arc<Index>,
    rechecks: &Arc<Rechecks>,
) -> (Controller<CachedRotation>, AccountStores) {
    let (namespaced, accounts) = account_events::<UpstashAccount>(scoped(client, namespace), index, rechecks);
    let controller = controller.watches_stream(accounts, users(index.clone(), rechecks.clone()));
    if !cluster_accounts {
        return (controller, AccountStores { namespaced, cluster: None });
    }
    let (cluster, accounts) =
        account_events::<ClusterUpstashAccount>(Api::all(client.clone()), index, rechecks);
    let controller = controller.watches_stream(accounts, users(index.clone(), rechecks.clone()));
    (controller, AccountStores { namespaced, cluster: Some(cluster) })
}

/// With cluster accounts on, the labels of the scope's namespaces, and the
/// resources a relabelling concerns woken (`cache::namespaces`).
fn wake_on_namespaces(
    controller: Controller<CachedRotation>,
    client: &Client,
    namespace: Option<&str>,
    accounts: &AccountStores,
    index: &Arc<Index>,
    rechecks: &Arc<Rechecks>,
) -> (Controller<CachedRotation>, Option<Arc<NamespaceLabels>>) {
    let Some(cluster) = accounts.cluster.clone() else { return (controller, None) };
    let (labels, wakes) = namespaces::watch(client, namespace, cluster, index.clone(), rechecks.clone());
    (controller.reconcile_on(wakes), Some(labels))
}

/// The accounts' watch, and the store it keeps. A deletion makes the
/// account's users check at once (they stop before any call to Upstash:
/// the account is gone from the store, and a read finds none).
fn account_events<A: Account>(
    api: Api<A>,
    index: &Arc<Index>,
    rechecks: &Arc<Rechecks>,
) -> (Store<A>, impl futures::Stream<Item = Result<A, watcher::Error>> + Send + 'static) {
    let (index, rechecks) = (index.clone(), rechecks.clone());
    let (store, writer) = reflector::store();
    let events = watcher(api, watcher::Config::default())
        .backoff(cache::retry::watch_backoff())
        .modify(|account| trim::unread(account.meta_mut()))
        .map_ok(move |event| {
            if let watcher::Event::Delete(account) = &event {
                rechecks.mark(&index.lookup(&account.index_key()));
            }
            event
        })
        // Before the users wake: their reconciles find the account there.
        .reflect(writer)
        .touched_objects();
    (store, cache::retry::errors_logged(events, A::KIND.as_str()))
}

/// Maps an account event that is news (see `Changes`) to the resources of
/// one scope that name the account. A changed spec or a new key check
/// makes each of them check once with the key. An account seen again (a
/// relist, a restart) does not, nor does a new one: its users could not
/// be at rest before it existed. (Deletions: `account_events`.)
fn users<A: Account>(
    index: Arc<Index>,
    rechecks: Arc<Rechecks>,
) -> impl Fn(A) -> Vec<ResourceRef> + Send + Sync + 'static {
    let changes = Changes::<A, (Option<i64>, Option<String>)>::default();
    move |account| {
        let relevant = (
            account.meta().generation,
            account.account_status().and_then(|s| s.validated_secret_version.clone()),
        );
        let change = changes.record(&account, relevant);
        if matches!(change, Change::Nothing) {
            return Vec::new();
        }
        let users = index.lookup(&account.index_key());
        if matches!(change, Change::News { before: Some(_) }) {
            rechecks.mark(&users);
        }
        users
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
