//! The labels of the namespaces a scope watches, kept for the
//! `ClusterUpstashAccount`s that allow namespaces by selector: a rotation
//! decides on the labels the watch last delivered, not on a read of the
//! namespace per reconcile. Only names and labels are kept.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::Arc,
};

use futures::{Stream, StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::core::v1::Namespace;
use kube::{
    Api, Client, ResourceExt as _,
    core::PartialObjectMeta,
    runtime::{WatchStreamExt as _, reflector::Store, watcher},
};
use parking_lot::Mutex;

use super::{Index, Rechecks, ResourceRef};
use crate::account::{Account as _, ClusterUpstashAccount};

/// The labels of a scope's namespaces (every namespace, or its one), and
/// the resources a relabelling concerns: those in that namespace whose
/// cluster account's selector (in `accounts`) now allows it where it
/// refused it, or the reverse. They are marked to check at once, as after a
/// change of the account's spec, once the labels hold the change.
pub fn watch(
    client: &Client,
    namespace: Option<&str>,
    accounts: Store<ClusterUpstashAccount>,
    index: Arc<Index>,
    rechecks: Arc<Rechecks>,
) -> (Arc<NamespaceLabels>, impl Stream<Item = ResourceRef> + Send + 'static) {
    let labels = Arc::new(NamespaceLabels::default());
    let mut config = watcher::Config::default().page_size(super::LIST_PAGE);
    if let Some(namespace) = namespace {
        // Its one namespace: the chart grants the list and watch of that
        // name only.
        config = config.fields(&format!("metadata.name={namespace}"));
    }
    let kept = labels.clone();
    let wakes = watcher(Api::<PartialObjectMeta<Namespace>>::all(client.clone()), config)
        .backoff(super::retry::watch_backoff())
        .modify(trim)
        .map_ok(move |event| {
            // Stored before the users wake: their reconciles find the labels.
            let Some(relabelled) = kept.observe(&event) else { return Vec::new() };
            let users = reallowed(&relabelled, &accounts.state(), &index);
            rechecks.mark(&users);
            users
        });
    let wakes = super::retry::errors_logged(wakes, "Namespaces")
        .filter_map(|users| std::future::ready(users.ok()))
        .flat_map(futures::stream::iter);
    (labels, wakes)
}

/// The resources of a relabelled namespace that use a cluster account whose
/// selector decides differently on the new labels than on the old.
fn reallowed(
    relabelled: &Relabelled,
    accounts: &[Arc<ClusterUpstashAccount>],
    index: &Index,
) -> Vec<ResourceRef> {
    let name = relabelled.name.as_str();
    accounts
        .iter()
        .filter(|account| {
            let allowed = &account.spec.allowed_namespaces;
            allowed.needs_labels(name)
                && allowed.allows(name, &relabelled.before).is_ok()
                    != allowed.allows(name, &relabelled.after).is_ok()
        })
        .flat_map(|account| index.lookup(&account.index_key()))
        .filter(|user| user.namespace.as_deref() == Some(name))
        .collect()
}

pub type Labels = BTreeMap<String, String>;

/// One watch's namespaces and their labels.
#[derive(Default)]
pub struct NamespaceLabels {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    labels: HashMap<String, Labels>,
    /// During a relist, the namespaces it has delivered so far.
    relisted: Option<HashSet<String>>,
    /// Whether a first list has completed.
    synced: bool,
}

/// A namespace whose labels an event changed.
#[derive(Debug, PartialEq, Eq)]
pub struct Relabelled {
    pub name: String,
    pub before: Labels,
    pub after: Labels,
}

impl NamespaceLabels {
    /// Takes in a watch event (before the users it may concern wake, so
    /// their reconciles find the new labels). Returns the namespace it
    /// relabelled: not one that is new, nor one deleted (its resources go
    /// with it).
    pub fn observe(&self, event: &watcher::Event<PartialObjectMeta<Namespace>>) -> Option<Relabelled> {
        let mut inner = self.inner.lock();
        match event {
            watcher::Event::Init => {
                inner.relisted = Some(HashSet::new());
                None
            }
            watcher::Event::InitApply(namespace) | watcher::Event::Apply(namespace) => {
                let name = namespace.name_any();
                let after = namespace.metadata.labels.clone().unwrap_or_default();
                if let (watcher::Event::InitApply(_), Some(relisted)) = (event, inner.relisted.as_mut()) {
                    relisted.insert(name.clone());
                }
                let before = inner.labels.insert(name.clone(), after.clone())?;
                (before != after).then_some(Relabelled { name, before, after })
            }
            watcher::Event::InitDone => {
                // Those the relist did not deliver were deleted meanwhile.
                if let Some(relisted) = inner.relisted.take() {
                    inner.labels.retain(|name, _| relisted.contains(name));
                }
                inner.synced = true;
                None
            }
            watcher::Event::Delete(namespace) => {
                inner.labels.remove(&namespace.name_any());
                None
            }
        }
    }

    /// The labels of namespace `name` as the watch last delivered them;
    /// `None` before the first list completes, or when the watch has not
    /// delivered it (gone, or not seen yet).
    pub fn labels(&self, name: &str) -> Option<Labels> {
        let inner = self.inner.lock();
        inner.synced.then(|| inner.labels.get(name).cloned()).flatten()
    }
}

/// Keeps a namespace's name, version and labels: all the cache reads.
pub fn trim(namespace: &mut PartialObjectMeta<Namespace>) {
    let meta = &mut namespace.metadata;
    *meta = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
        name: meta.name.take(),
        resource_version: meta.resource_version.take(),
        labels: meta.labels.take(),
        ..Default::default()
    };
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

    use super::*;
    use crate::{
        account::{AccountKind, AccountRef, AllowedNamespaces, ClusterUpstashAccountSpec},
        cache::CachedRotation,
        crd::{CredentialsSecretRef, RedisPasswordRotation, RedisPasswordRotationSpec},
    };

    fn namespace(name: &str, labels: &[(&str, &str)]) -> PartialObjectMeta<Namespace> {
        let mut namespace = PartialObjectMeta::<Namespace>::default();
        namespace.metadata.name = Some(name.into());
        namespace.metadata.labels =
            Some(labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect());
        namespace
    }

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn labels_are_served_once_listed_and_a_change_is_reported_with_both_sides() {
        let cache = NamespaceLabels::default();
        assert_eq!(cache.observe(&watcher::Event::Init), None);
        assert_eq!(cache.observe(&watcher::Event::InitApply(namespace("a", &[("team", "x")]))), None);
        assert_eq!(cache.labels("a"), None, "not before the first list completes");
        assert_eq!(cache.observe(&watcher::Event::InitDone), None);
        assert_eq!(cache.labels("a"), Some(labels(&[("team", "x")])));
        assert_eq!(cache.labels("b"), None, "not delivered");

        assert_eq!(cache.observe(&watcher::Event::Apply(namespace("b", &[]))), None, "a new one");
        assert_eq!(
            cache.observe(&watcher::Event::Apply(namespace("a", &[("team", "x")]))),
            None,
            "unchanged"
        );
        assert_eq!(
            cache.observe(&watcher::Event::Apply(namespace("a", &[("team", "y")]))),
            Some(Relabelled {
                name: "a".into(),
                before: labels(&[("team", "x")]),
                after: labels(&[("team", "y")])
            })
        );
        assert_eq!(cache.labels("a"), Some(labels(&[("team", "y")])));
        assert_eq!(cache.observe(&watcher::Event::Delete(namespace("b", &[]))), None);
        assert_eq!(cache.labels("b"), None);
    }

    #[test]
    fn a_relist_drops_what_it_misses_and_reports_what_changed_meanwhile() {
        let cache = NamespaceLabels::default();
        for event in [
            watcher::Event::Init,
            watcher::Event::InitApply(namespace("a", &[("team", "x")])),
            watcher::Event::InitApply(namespace("gone", &[])),
            watcher::Event::InitDone,
        ] {
            cache.observe(&event);
        }
        cache.observe(&watcher::Event::Init);
        let relisted = cache.observe(&watcher::Event::InitApply(namespace("a", &[])));
        assert_eq!(relisted.map(|r| r.before), Some(labels(&[("team", "x")])));
        assert_eq!(cache.labels("gone"), Some(Labels::new()), "served until the relist completes");
        cache.observe(&watcher::Event::InitDone);
        assert_eq!(cache.labels("gone"), None, "deleted while the watch was away");
        assert_eq!(cache.labels("a"), Some(Labels::new()));
    }

    #[test]
    fn only_name_version_and_labels_are_kept() {
        let mut namespace = namespace("a", &[("team", "x")]);
        namespace.metadata.resource_version = Some("7".into());
        namespace.metadata.annotations = Some([("note".to_owned(), "long".to_owned())].into());
        namespace.metadata.uid = Some("u".into());
        trim(&mut namespace);
        assert_eq!(namespace.metadata.annotations, None);
        assert_eq!(namespace.metadata.uid, None);
        assert_eq!(
            (namespace.metadata.name.as_deref(), namespace.metadata.resource_version.as_deref()),
            (Some("a"), Some("7"))
        );
        assert_eq!(namespace.metadata.labels, Some(labels(&[("team", "x")])));
    }

    fn user(namespace: &str, name: &str, account: &str) -> CachedRotation {
        let mut spec = RedisPasswordRotationSpec::new("db", "unused");
        spec.credentials_secret_ref = None;
        spec.account_ref =
            Some(AccountRef { kind: AccountKind::ClusterUpstashAccount, name: account.into() });
        let mut resource = RedisPasswordRotation::new(name, spec);
        resource.metadata.namespace = Some(namespace.into());
        CachedRotation::of(&resource)
    }

    fn account(name: &str, names: &[&str], team: Option<&str>) -> Arc<ClusterUpstashAccount> {
        let selector = team.map(|team| LabelSelector {
            match_labels: Some([("team".to_owned(), team.to_owned())].into()),
            ..Default::default()
        });
        let spec = ClusterUpstashAccountSpec {
            credentials_secret_ref: CredentialsSecretRef::named("key"),
            allowed_namespaces: AllowedNamespaces {
                names: names.iter().map(|n| (*n).to_owned()).collect(),
                selector,
            },
        };
        Arc::new(ClusterUpstashAccount::new(name, spec))
    }

    fn team(value: &str) -> Labels {
        [("team".to_owned(), value.to_owned())].into()
    }

    #[test]
    fn a_relabelled_namespace_wakes_only_the_users_whose_account_now_decides_otherwise() {
        let index = Index::default();
        for (namespace, name, account) in [
            ("apps", "a", "by-label"),
            ("apps", "b", "by-name"),
            ("apps", "c", "other-team"),
            ("web", "d", "by-label"),
        ] {
            index.observe(&watcher::Event::Apply(user(namespace, name, account)));
        }
        let accounts = [
            account("by-label", &[], Some("cache")),
            // Listed by name: its labels do not matter.
            account("by-name", &["apps"], Some("cache")),
            account("other-team", &[], Some("web")),
        ];
        let woken = |before: &str, after: &str| {
            let relabelled = Relabelled { name: "apps".into(), before: team(before), after: team(after) };
            let mut users: Vec<String> =
                reallowed(&relabelled, &accounts, &index).into_iter().map(|r| r.name).collect();
            users.sort();
            users
        };
        assert_eq!(woken("cache", "none"), ["a"], "refused from now on; not the other namespace's user");
        assert_eq!(woken("none", "cache"), ["a"], "allowed from now on");
        assert_eq!(woken("none", "web"), ["c"]);
        assert_eq!(woken("cache", "web"), ["a", "c"]);
        assert!(woken("none", "other").is_empty(), "still refused by every selector");
    }
}
