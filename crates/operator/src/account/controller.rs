//! Wires the account controllers: one for `UpstashAccount`s per watched
//! scope, one for `ClusterUpstashAccount`s when cluster accounts are on.
//! Each is woken by its accounts, their credentials Secrets, and the
//! resources that start or stop naming them (told by the resource index,
//! which the resource watch keeps: no second watch of every resource).

use std::{future::Future, sync::Arc};

use futures::{FutureExt as _, StreamExt as _};
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, Client, ResourceExt as _,
    core::PartialObjectMeta,
    runtime::{
        Controller, WatchStreamExt as _,
        controller::Config as ControllerConfig,
        reflector::{self, ObjectRef, Store},
        watcher,
    },
};

use super::{
    keys::LentKeyVersions,
    types::{Account, AccountKind, ClusterUpstashAccount, UpstashAccount},
    validate::{AccountContext, error_policy, reconcile},
};
use crate::{
    cache::{
        CachedRotation, Index, Key, after_listed,
        every_secret::{self, AccountFeed},
        retry,
    },
    controller::scoped,
};

/// How long an account's reconcile waits for its triggers to pause.
const USERS_DEBOUNCE: std::time::Duration = std::time::Duration::from_secs(1);

/// One watched scope, as its account controller sees it.
pub struct AccountScope {
    /// `None`: every namespace.
    pub namespace: Option<String>,
    /// The index of the scope's resources.
    pub index: Arc<Index>,
    /// The scope's Secrets, from the resource controller's watch.
    pub secrets: AccountFeed,
}

/// The account controllers, running until `shutdown` completes, one per
/// scope. They listen to the indexes from this call on, before any
/// resource event can pass; the cluster accounts' own Secrets are listed
/// once every store of `resources` holds its first list, by a watch of
/// their own unless `home_feed` brings that namespace's.
pub fn run_account_controllers(
    client: Client,
    scopes: Vec<AccountScope>,
    home_feed: Option<AccountFeed>,
    resources: Vec<Store<CachedRotation>>,
    ctx: Arc<AccountContext>,
    shutdown: impl Future<Output = ()> + Clone + Send + Sync + 'static,
) -> impl Future<Output = ()> + Send + 'static {
    let mut runs = Vec::new();
    let mut indexes = Vec::new();
    for AccountScope { namespace, index, secrets } in scopes {
        let accounts: Api<UpstashAccount> = UpstashAccount::api(client.clone(), namespace.as_deref());
        let controller = controller_of(accounts);
        let ctx = ctx.with_own_keys();
        let controller = wake_on_secrets(controller, every_secret::events(secrets), &ctx.keys);
        let controller = wake_on_users(controller, &index);
        runs.push(run(controller, ctx, shutdown.clone()).boxed());
        indexes.push(index);
    }
    if let Some(home) = ctx.cluster_namespace.clone() {
        let accounts: Api<ClusterUpstashAccount> = Api::all(client.clone());
        let controller = controller_of(accounts);
        let ctx = ctx.with_own_keys();
        let controller = match home_feed {
            Some(feed) => wake_on_secrets(controller, every_secret::events(feed), &ctx.keys),
            None => {
                // A watch of its own: one namespace's Secrets, whether or
                // not a scope covers it.
                let secrets: Api<PartialObjectMeta<Secret>> = scoped(&client, Some(&home));
                let all_secrets = watcher::Config::default()
                    .labels(&crate::cache::others_selector())
                    .page_size(crate::cache::SECRET_LIST_PAGE);
                let secrets = after_listed(resources, watcher(secrets, all_secrets))
                    .backoff(retry::watch_backoff())
                    .modify(|secret| crate::cache::trim::name_and_version(&mut secret.metadata));
                let secrets = retry::errors_logged(secrets, "Secrets' metadata");
                wake_on_secrets(controller, secrets, &ctx.keys)
            }
        };
        let controller = indexes.iter().fold(controller, |c, index| wake_on_users(c, index));
        runs.push(run(controller, ctx, shutdown.clone()).boxed());
    }
    futures::future::join_all(runs).map(|_| ())
}

/// A controller of the accounts of `api`, on a watch of our own:
/// `Controller::new`'s has no backoff but the controller's, which every
/// error of every watch feeds (`cache::retry`).
fn controller_of<A: Account>(api: Api<A>) -> Controller<A> {
    let (store, writer) = reflector::store();
    let events = watcher(api, watcher::Config::default())
        .backoff(retry::watch_backoff())
        .reflect(writer)
        .applied_objects();
    retry::backed_off(Controller::for_stream(retry::errors_logged(events, A::KIND.as_str()), store))
}

async fn run<A: Account>(
    controller: Controller<A>,
    ctx: Arc<AccountContext>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    // A burst of new users is one status write, not one per user: the
    // user list waits until the triggers pause.
    controller
        .with_config(ControllerConfig::default().debounce(USERS_DEBOUNCE))
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|result| {
            if let Err(e) = result {
                tracing::debug!(error = %e, kind = A::KIND.as_str(), "account controller event");
            }
            std::future::ready(())
        })
        .await;
}

/// A change of a credentials Secret (metadata only) wakes the accounts
/// that name it, once `keys` has its version; so does its deletion, a
/// relist's included.
fn wake_on_secrets<A: Account>(
    controller: Controller<A>,
    events: impl futures::Stream<Item = Result<watcher::Event<PartialObjectMeta<Secret>>, watcher::Error>>
    + Send
    + 'static,
    keys: &Arc<LentKeyVersions>,
) -> Controller<A> {
    let (accounts, keys) = (controller.store(), keys.clone());
    let wakes = events
        .filter_map(|event| std::future::ready(event.ok()))
        .map(move |event| {
            let touched = match &event {
                watcher::Event::Apply(secret)
                | watcher::Event::InitApply(secret)
                | watcher::Event::Delete(secret) => {
                    naming::<A>(&accounts, &secret.namespace().unwrap_or_default(), &secret.name_any())
                }
                watcher::Event::Init | watcher::Event::InitDone => Vec::new(),
            };
            let gone = keys.observe(&event, !touched.is_empty());
            let gone = gone.iter().flat_map(|(namespace, name)| naming::<A>(&accounts, namespace, name));
            futures::stream::iter(touched.into_iter().chain(gone).collect::<Vec<_>>())
        })
        .flatten();
    controller.reconcile_on(wakes)
}

/// The accounts in `accounts` that name Secret `name` of `namespace`.
fn naming<A: Account>(accounts: &Store<A>, namespace: &str, name: &str) -> Vec<ObjectRef<A>> {
    accounts
        .state()
        .into_iter()
        .filter(|a| a.credentials_ref().name == name)
        .filter(|a| {
            A::KIND == AccountKind::ClusterUpstashAccount || a.namespace().as_deref() == Some(namespace)
        })
        .map(|a| ObjectRef::from_obj(&*a))
        .collect()
}

/// A resource that starts or stops naming an account (or is deleted) wakes
/// it, so its list of users stays current; the resource's own status
/// writes do not (the index reports only changed account references).
fn wake_on_users<A: Account>(controller: Controller<A>, index: &Index) -> Controller<A> {
    let accounts = index.account_changes().filter_map(|key| {
        std::future::ready(match key {
            Key::Account { kind, namespace, name } if kind == A::KIND => match namespace {
                Some(namespace) => Some(ObjectRef::new(&name).within(&namespace)),
                None => Some(ObjectRef::new(&name)),
            },
            _ => None,
        })
    });
    controller.reconcile_on(accounts)
}
