//! The labels of the namespaces a scope watches, kept for the
//! `ClusterUpstashAccount`s that allow namespaces by selector: a rotation
//! decides on the labels the watch last delivered, not on a read of the
//! namespace per reconcile. Only names and labels are kept.

use std::collections::{BTreeMap, HashMap, HashSet};

use k8s_openapi::api::core::v1::Namespace;
use kube::{ResourceExt as _, core::PartialObjectMeta, runtime::watcher};
use parking_lot::Mutex;

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
    use super::*;

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
}
