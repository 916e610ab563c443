//! What the operator keeps of the objects it watches: the resources and the
//! metadata of the Secrets it wrote, trimmed, and indexes that find the
//! resources pointing at a database, a Secret or an account.

pub mod cached;
pub mod every_secret;
pub mod index;
pub mod namespaces;
pub mod rechecks;
pub mod retry;
pub mod trim;
pub mod working;
pub mod written;

use std::time::Duration;

use kube::runtime::reflector::{ObjectRef, Store};

use crate::{
    account::{ClusterUpstashAccount, UpstashAccount},
    secret::{MANAGED_BY, MANAGED_BY_LABEL},
};

pub use cached::{CachedRotation, CachedStatus};
pub use index::{Index, Indexes, Key, ResourceRef};
pub use rechecks::{KeyVersions, Rechecks};
pub use working::WorkingCopies;
pub use written::WrittenVersions;

/// Page sizes of the lists behind the watches. A list is held a page at a
/// time, whole objects as the apiserver sends them (`managedFields`
/// included) until they are trimmed, so smaller pages than the default 500
/// keep a start's memory peak down, for a few more requests.
///
/// Every Secret's metadata (credentials Secrets carry no label of ours):
/// most of them are someone else's.
pub const SECRET_LIST_PAGE: u32 = 100;
/// Resources and the Secrets the operator wrote.
pub const LIST_PAGE: u32 = 200;

/// The label selector of the Secrets the operator wrote (its own watch).
pub fn written_selector() -> String {
    format!("{MANAGED_BY_LABEL}={MANAGED_BY}")
}

/// The label selector of every other Secret (the watch for API key
/// Secrets): the Secrets the operator wrote, one per resource, would double
/// that watch's list at each start and send it an event for every rotation,
/// though none of them is an API key.
pub fn others_selector() -> String {
    format!("{MANAGED_BY_LABEL}!={MANAGED_BY}")
}

/// How long a reconcile waits for the versions of the Secrets the operator
/// wrote before going on without them (it then reads its Secret from the
/// apiserver).
pub const WRITTEN_WAIT: Duration = Duration::from_secs(30);

/// A want of a key Secret's versions, and the scope that holds it.
#[derive(Clone, Copy, Debug)]
pub struct KeyWant {
    scope: usize,
    want: rechecks::Want,
}

/// The caches of every watched scope.
#[derive(Clone, Default)]
pub struct Caches {
    pub resources: Vec<Store<CachedRotation>>,
    /// Versions of the Secrets the operator wrote (its label selects them).
    pub written: Vec<std::sync::Arc<WrittenVersions>>,
    /// Versions of the key Secrets resources name.
    pub keys: Vec<std::sync::Arc<parking_lot::Mutex<KeyVersions>>>,
    pub index: Indexes,
    /// Resources whose key changed: their next reconcile checks with it.
    pub rechecks: std::sync::Arc<Rechecks>,
    /// Whole copies of the resources that ask for work, as last watched.
    pub working: std::sync::Arc<WorkingCopies>,
    /// The accounts as their watches last delivered them, one store per
    /// scope (`managedFields` and kubectl's copy dropped).
    pub accounts: Vec<Store<UpstashAccount>>,
    /// Likewise the cluster accounts, when they are turned on: each scope
    /// (its namespace, `None` for all) watches them all, and wakes its own
    /// resources once its store has a change.
    pub cluster_accounts: Vec<(Option<String>, Store<ClusterUpstashAccount>)>,
    /// With cluster accounts on, the labels of the namespaces each scope
    /// watches (their selectors match them).
    pub namespaces: Vec<(Option<String>, std::sync::Arc<namespaces::NamespaceLabels>)>,
}

impl Caches {
    /// The version of Secret `name` in `namespace` as the cache has it,
    /// once every Secret cache is synced (`None` if it is not there, or
    /// the caches are still filling after `limit`).
    pub async fn written_version(
        &self,
        namespace: &str,
        name: &str,
        limit: Duration,
    ) -> Option<Option<String>> {
        if !self.written_synced(Some(tokio::time::Instant::now() + limit)).await {
            return None;
        }
        Some(self.written_now(namespace, name))
    }

    /// The version of a Secret the operator wrote, as the cache has it now.
    fn written_now(&self, namespace: &str, name: &str) -> Option<String> {
        self.written.iter().find_map(|written| written.version(namespace, name))
    }

    /// The version of Secret `name` in `namespace` as the watches last
    /// delivered it: one the operator wrote, or a key Secret some resource
    /// names. Does not wait for the caches to fill.
    pub fn secret_version(&self, namespace: &str, name: &str) -> Option<String> {
        self.written_now(namespace, name)
            .or_else(|| self.keys.iter().find_map(|keys| keys.lock().version(namespace, name)))
    }

    /// Keeps the versions of a key Secret from now on, whether or not a
    /// resource names it (`KeyVersions::want`), in the scope whose watch
    /// covers its namespace. Call before reading it from etcd, then
    /// `settle_key` with what the read found.
    pub fn want_key(&self, namespace: &str, name: &str) -> Option<KeyWant> {
        self.keys
            .iter()
            .enumerate()
            .find_map(|(scope, keys)| keys.lock().want(namespace, name).map(|want| KeyWant { scope, want }))
    }

    /// Settles a read made under `want` (`KeyVersions::settle`): the
    /// version it found, if any; `keep` goes on keeping the versions of a
    /// key no resource names.
    pub fn settle_key(&self, namespace: &str, name: &str, want: KeyWant, read: Option<&str>, keep: bool) {
        if let Some(keys) = self.keys.get(want.scope) {
            keys.lock().settle(namespace, name, want.want, read, keep);
        }
    }

    /// Waits until every cache of written Secrets is synced, or `deadline`
    /// passes (`None`: as long as it takes).
    pub async fn written_synced(&self, deadline: Option<tokio::time::Instant>) -> bool {
        for written in &self.written {
            if !written.synced(deadline).await {
                return false;
            }
        }
        true
    }

    /// Whether every resource cache is synced, waiting at most `limit`.
    pub async fn resources_ready(&self, limit: Duration) -> bool {
        all_ready(&self.resources, Some(tokio::time::Instant::now() + limit)).await
    }

    /// The account `namespace/name` as its watch last delivered it; `None`
    /// when no synced store holds it.
    pub fn account(&self, namespace: &str, name: &str) -> Option<std::sync::Arc<UpstashAccount>> {
        let account = ObjectRef::new(name).within(namespace);
        self.accounts.iter().find_map(|store| store.get(&account))
    }

    /// The cluster account `name` as the watch of the scope covering
    /// `namespace` last delivered it: the one whose events wake the
    /// resources of that namespace, so none is woken before its store has
    /// the change.
    pub fn cluster_account(
        &self,
        namespace: &str,
        name: &str,
    ) -> Option<std::sync::Arc<ClusterUpstashAccount>> {
        let (_, store) = self
            .cluster_accounts
            .iter()
            .find(|(scope, _)| scope.as_deref().is_none_or(|scope| scope == namespace))?;
        store.get(&ObjectRef::new(name))
    }

    /// The labels of namespace `name` as the watch of the scope covering
    /// it last delivered them (the watch whose changes wake its resources);
    /// `None` when that watch has not delivered it, or there is none.
    pub fn namespace_labels(&self, name: &str) -> Option<namespaces::Labels> {
        let (_, labels) =
            self.namespaces.iter().find(|(scope, _)| scope.as_deref().is_none_or(|scope| scope == name))?;
        labels.labels(name)
    }

    /// The cached resources that point at `key`.
    pub fn pointing_at(&self, key: &Key) -> Vec<std::sync::Arc<CachedRotation>> {
        self.index
            .lookup(key)
            .iter()
            .filter_map(|object| self.resources.iter().find_map(|store| store.get(object)))
            .collect()
    }
}

/// `stream`, polled only once every store in `stores` holds its first list.
/// At a start the Secrets are then listed after the resources, not during:
/// their list pages and the controller's queue of every resource do not add
/// up to one memory peak.
pub fn after_listed<S: futures::Stream>(
    stores: Vec<Store<CachedRotation>>,
    stream: S,
) -> impl futures::Stream<Item = S::Item> {
    use futures::StreamExt as _;
    futures::stream::once(async move {
        all_ready(&stores, None).await;
        stream
    })
    .flatten()
}

/// Waits until every store in `stores` is ready (see `ready`).
pub async fn all_ready<K>(stores: &[Store<K>], deadline: Option<tokio::time::Instant>) -> bool
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    for store in stores {
        if !ready(store, deadline).await {
            return false;
        }
    }
    true
}

/// Waits until `store` holds its first complete list, or `deadline` passes
/// (`None`: as long as it takes; `false` if the store's writer is gone).
/// Polls in short slices: the store's readiness signal wakes only one of
/// several waiters, so a single long wait could miss it.
pub async fn ready<K>(store: &Store<K>, deadline: Option<tokio::time::Instant>) -> bool
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    loop {
        match tokio::time::timeout(Duration::from_millis(100), store.wait_until_ready()).await {
            Ok(result) => return result.is_ok(),
            Err(_) if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) => return false,
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    };

    use futures::StreamExt as _;
    use kube::runtime::{reflector, watcher};

    use super::*;

    #[test]
    fn a_cluster_account_comes_from_the_store_of_the_scope_covering_the_namespace() {
        use crate::account::{AllowedNamespaces, ClusterUpstashAccountSpec};
        use crate::crd::CredentialsSecretRef;
        let listing = |allowed: &[&str]| {
            let spec = ClusterUpstashAccountSpec {
                credentials_secret_ref: CredentialsSecretRef::named("key"),
                allowed_namespaces: AllowedNamespaces {
                    names: allowed.iter().map(|n| (*n).to_owned()).collect(),
                    selector: None,
                },
            };
            let (store, mut writer) = reflector::store();
            writer.apply_watcher_event(&watcher::Event::Init);
            writer
                .apply_watcher_event(&watcher::Event::InitApply(ClusterUpstashAccount::new("shared", spec)));
            writer.apply_watcher_event(&watcher::Event::InitDone);
            store
        };
        // Scope "a" has not seen yet that "b" was dropped; scope "b" has.
        let caches = Caches {
            cluster_accounts: vec![
                (Some("a".into()), listing(&["a", "b"])),
                (Some("b".into()), listing(&["a"])),
            ],
            ..Default::default()
        };
        let allowed = |namespace: &str| {
            caches.cluster_account(namespace, "shared").map(|a| a.spec.allowed_namespaces.names.clone())
        };
        assert_eq!(allowed("b"), Some(vec!["a".to_owned()]));
        assert_eq!(allowed("a"), Some(vec!["a".to_owned(), "b".to_owned()]));
        assert_eq!(allowed("c"), None, "no scope covers it");
    }

    #[tokio::test]
    async fn a_stream_after_listed_is_not_polled_before_the_resources_are_listed() {
        let (store, mut writer) = reflector::store::<CachedRotation>();
        let polled = Arc::new(AtomicBool::new(false));
        let seen = polled.clone();
        let secrets = futures::stream::poll_fn(move |_| {
            seen.store(true, Ordering::SeqCst);
            std::task::Poll::Ready(Some("a Secret"))
        })
        .take(1);
        let mut delayed = Box::pin(after_listed(vec![store], secrets));
        assert!(futures::poll!(delayed.next()).is_pending());
        assert!(!polled.load(Ordering::SeqCst), "listed before the resources");
        writer.apply_watcher_event(&watcher::Event::Init);
        writer.apply_watcher_event(&watcher::Event::InitDone);
        assert_eq!(delayed.next().await, Some("a Secret"));
        assert_eq!(delayed.next().await, None);
    }
}
