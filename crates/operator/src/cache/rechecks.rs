//! A resource at rest is reconciled from the caches without asking Upstash.
//! When the key it reaches Upstash with changes (its key Secret, or its
//! account's spec or key check), it must check once with the new key, so
//! that a wrong key shows on the resource before its next rotation. These
//! marks say so; seeing the same key again (a relist, a restart) is not a
//! change and marks nothing.

use std::collections::{HashMap, HashSet};

use k8s_openapi::api::core::v1::Secret;
use kube::{ResourceExt as _, core::PartialObjectMeta, runtime::watcher};
use parking_lot::Mutex;

use super::ResourceRef;

/// Resources whose next reconcile must not stop at rest.
#[derive(Default)]
pub struct Rechecks(Mutex<HashSet<ResourceRef>>);

impl Rechecks {
    pub fn mark(&self, resources: &[ResourceRef]) {
        self.0.lock().extend(resources.iter().cloned());
    }

    /// Whether `resource` was marked; the mark is used up.
    pub fn take(&self, resource: &ResourceRef) -> bool {
        self.0.lock().remove(resource)
    }
}

type SecretKey = (String, String);

/// How many key Secrets a scope keeps versions of whether or not a
/// resource names them (each a namespace and a name); past this, reads of
/// others go to etcd every time.
const WANTED: usize = 4096;

/// The last version seen of each key Secret some resource names.
#[derive(Default)]
pub struct KeyVersions {
    seen: HashMap<SecretKey, String>,
    /// During a relist: the Secrets it has listed so far.
    relisted: Option<HashSet<SecretKey>>,
    /// The namespace the watch feeding it covers (`None`: every one).
    scope: Option<String>,
    /// Key Secrets whose versions are kept whether or not a resource names
    /// them (an account lends them, or the resource naming them is gone),
    /// from the moment a reconcile went to read one (`want`) until it is
    /// deleted.
    wanted: HashSet<SecretKey>,
}

impl KeyVersions {
    /// Versions fed by a watch of `namespace` (`None`: of every one).
    pub fn of_scope(namespace: Option<&str>) -> Self {
        Self { scope: namespace.map(str::to_owned), ..Self::default() }
    }

    /// Keeps the versions of Secret `name` in `namespace` from now on,
    /// whether or not a resource names it, until it is deleted. Called
    /// before the read whose version `learn` fills in, so that a change the
    /// watch delivers in between is kept and wins, and a deletion in
    /// between makes `learn` a no-op. Whether this scope keeps it.
    pub fn want(&mut self, namespace: &str, name: &str) -> bool {
        if self.scope.as_deref().is_some_and(|scope| scope != namespace) {
            return false;
        }
        let key = (namespace.to_owned(), name.to_owned());
        if self.wanted.len() >= WANTED && !self.wanted.contains(&key) {
            return false;
        }
        self.wanted.insert(key);
        true
    }

    /// A read found no Secret to keep versions of: forgets the want.
    pub fn unwant(&mut self, namespace: &str, name: &str) {
        self.wanted.remove(&(namespace.to_owned(), name.to_owned()));
    }

    /// Fills in `version`, read from the apiserver after `want`, for a key
    /// Secret the watch showed before anything wanted it (it listed or
    /// changed it earlier, and reports only changes): without it, every
    /// reconcile using it would read it from etcd. Only while it is still
    /// wanted (not deleted since the want), and never over a version the
    /// watch delivered, so every change after the want wins. Whether it
    /// was filled in.
    pub fn learn(&mut self, namespace: &str, name: &str, version: &str) -> bool {
        let key = (namespace.to_owned(), name.to_owned());
        if !self.wanted.contains(&key) || self.seen.contains_key(&key) {
            return false;
        }
        self.seen.insert(key, version.to_owned());
        true
    }

    /// The Secrets of `event` whose version changed, or that are gone,
    /// since last seen. `named` says whether some resource names a Secret;
    /// others are neither remembered nor reported.
    pub fn changed(
        &mut self,
        event: watcher::Event<PartialObjectMeta<Secret>>,
        named: impl Fn(&str, &str) -> bool,
    ) -> Vec<PartialObjectMeta<Secret>> {
        let key = |s: &PartialObjectMeta<Secret>| (s.namespace().unwrap_or_default(), s.name_any());
        match event {
            watcher::Event::Init => {
                self.relisted = Some(HashSet::new());
                Vec::new()
            }
            watcher::Event::InitApply(secret) => {
                let k = key(&secret);
                if let Some(relisted) = self.relisted.as_mut() {
                    relisted.insert(k.clone());
                }
                // First seen in a list: nothing to compare with.
                self.update(k, &secret, &named, false).then_some(secret).into_iter().collect()
            }
            watcher::Event::Apply(secret) => {
                // Seen outside a list: created or changed since the list.
                self.update(key(&secret), &secret, &named, true).then_some(secret).into_iter().collect()
            }
            watcher::Event::Delete(secret) => {
                let k = key(&secret);
                self.wanted.remove(&k);
                self.seen.remove(&k).map(|_| secret).into_iter().collect()
            }
            watcher::Event::InitDone => {
                // Gone while the watch was down: what the relist did not list.
                let Some(relisted) = self.relisted.take() else { return Vec::new() };
                self.wanted.retain(|k| relisted.contains(k));
                let gone: Vec<SecretKey> =
                    self.seen.keys().filter(|k| !relisted.contains(*k)).cloned().collect();
                gone.into_iter()
                    .map(|(namespace, name)| {
                        self.seen.remove(&(namespace.clone(), name.clone()));
                        let mut secret = PartialObjectMeta::<Secret>::default();
                        secret.metadata.namespace = Some(namespace);
                        secret.metadata.name = Some(name);
                        secret
                    })
                    .collect()
            }
        }
    }

    /// The last version seen of Secret `name` in `namespace`.
    pub fn version(&self, namespace: &str, name: &str) -> Option<String> {
        self.seen.get(&(namespace.to_owned(), name.to_owned())).cloned()
    }

    /// Records `secret`'s version; whether that is a change worth a check.
    fn update(
        &mut self,
        key: SecretKey,
        secret: &PartialObjectMeta<Secret>,
        named: &impl Fn(&str, &str) -> bool,
        new_is_change: bool,
    ) -> bool {
        if !named(&key.0, &key.1) && !self.wanted.contains(&key) {
            self.seen.remove(&key);
            return false;
        }
        let version = secret.metadata.resource_version.clone().unwrap_or_default();
        match self.seen.insert(key, version.clone()) {
            Some(before) => before != version,
            None => new_is_change,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(name: &str, version: &str) -> PartialObjectMeta<Secret> {
        let mut s = PartialObjectMeta::<Secret>::default();
        s.metadata.namespace = Some("ns".into());
        s.metadata.name = Some(name.into());
        s.metadata.resource_version = Some(version.into());
        s
    }

    fn names(secrets: Vec<PartialObjectMeta<Secret>>) -> Vec<String> {
        secrets.into_iter().map(|s| s.name_any()).collect()
    }

    #[test]
    fn only_a_new_version_or_a_deletion_of_a_named_key_is_a_change() {
        let mut versions = KeyVersions::default();
        let named = |_: &str, name: &str| name.starts_with("key");
        let mut feed = |event| names(versions.changed(event, named));
        // The first list reports nothing, named or not.
        assert!(feed(watcher::Event::Init).is_empty());
        assert!(feed(watcher::Event::InitApply(secret("key-a", "1"))).is_empty());
        assert!(feed(watcher::Event::InitApply(secret("key-b", "1"))).is_empty());
        assert!(feed(watcher::Event::InitApply(secret("other", "1"))).is_empty());
        assert!(feed(watcher::Event::InitDone).is_empty());
        // Changes after it do, for named Secrets only.
        assert_eq!(feed(watcher::Event::Apply(secret("key-a", "2"))), ["key-a"]);
        assert!(feed(watcher::Event::Apply(secret("other", "2"))).is_empty());
        assert_eq!(feed(watcher::Event::Apply(secret("key-c", "5"))), ["key-c"], "created after the list");
        assert_eq!(feed(watcher::Event::Delete(secret("key-c", "5"))), ["key-c"]);
        // A relist: the same versions are no change; a new one is, and so is
        // a Secret it no longer lists.
        assert!(feed(watcher::Event::Init).is_empty());
        assert!(feed(watcher::Event::InitApply(secret("key-a", "2"))).is_empty());
        assert_eq!(feed(watcher::Event::InitDone), ["key-b"], "no longer listed");
    }

    #[test]
    fn a_relist_reports_what_changed_or_went_while_the_watch_was_down() {
        let mut versions = KeyVersions::default();
        let named = |_: &str, _: &str| true;
        for event in [
            watcher::Event::Init,
            watcher::Event::InitApply(secret("key-a", "1")),
            watcher::Event::InitApply(secret("key-b", "1")),
            watcher::Event::InitApply(secret("key-c", "1")),
            watcher::Event::InitDone,
        ] {
            assert!(versions.changed(event, named).is_empty());
        }
        let mut feed = |event| names(versions.changed(event, named));
        assert!(feed(watcher::Event::Init).is_empty());
        assert!(feed(watcher::Event::InitApply(secret("key-a", "1"))).is_empty());
        assert_eq!(feed(watcher::Event::InitApply(secret("key-b", "7"))), ["key-b"]);
        assert_eq!(feed(watcher::Event::InitDone), ["key-c"]);
        let mark = Rechecks::default();
        let resource = super::ResourceRef::new("cache").within("ns");
        mark.mark(std::slice::from_ref(&resource));
        assert!(mark.take(&resource));
        assert!(!mark.take(&resource), "used up");
    }

    #[test]
    fn a_version_learned_from_a_read_fills_a_gap_only_and_changes_still_arrive() {
        let mut versions = KeyVersions::of_scope(Some("ns"));
        // Listed before any resource named it: not kept.
        let unnamed = |_: &str, _: &str| false;
        versions.changed(watcher::Event::Init, unnamed);
        versions.changed(watcher::Event::InitApply(secret("key", "1")), unnamed);
        versions.changed(watcher::Event::InitDone, unnamed);
        assert_eq!(versions.version("ns", "key"), None);
        // Another namespace is another watch's; a read not wanted first
        // teaches nothing.
        assert!(!versions.want("other", "key"));
        assert!(!versions.learn("other", "key", "1"));
        assert!(!versions.learn("ns", "key", "1"));
        assert!(versions.want("ns", "key"));
        assert!(versions.learn("ns", "key", "1"));
        assert_eq!(versions.version("ns", "key").as_deref(), Some("1"));
        // Named now, its next change is reported, and a version the watch
        // delivered is never replaced by a read.
        let named = |_: &str, _: &str| true;
        assert_eq!(names(versions.changed(watcher::Event::Apply(secret("key", "2")), named)), ["key"]);
        assert!(!versions.learn("ns", "key", "1"));
        assert_eq!(versions.version("ns", "key").as_deref(), Some("2"));
    }

    #[test]
    fn a_wanted_key_keeps_its_versions_unnamed_and_a_change_after_the_want_beats_the_read() {
        let mut versions = KeyVersions::of_scope(Some("ns"));
        let unnamed = |_: &str, _: &str| false;
        assert!(!versions.want("other", "lent"), "another namespace is another watch's");
        assert!(versions.want("ns", "lent"));
        // Changed after the want, before the read's version is learned: the
        // watch's newer version stays.
        versions.changed(watcher::Event::Apply(secret("lent", "5")), unnamed);
        assert!(!versions.learn("ns", "lent", "4"));
        assert_eq!(versions.version("ns", "lent").as_deref(), Some("5"));
        versions.changed(watcher::Event::Apply(secret("lent", "6")), unnamed);
        assert_eq!(versions.version("ns", "lent").as_deref(), Some("6"));
        // Deleted: forgotten, and no longer wanted.
        versions.changed(watcher::Event::Delete(secret("lent", "7")), unnamed);
        assert_eq!(versions.version("ns", "lent"), None);
        versions.changed(watcher::Event::Apply(secret("lent", "8")), unnamed);
        assert_eq!(versions.version("ns", "lent"), None);
        // Deleted between the want and the read's learn: the read's version
        // is not kept.
        assert!(versions.want("ns", "lent"));
        versions.changed(watcher::Event::Delete(secret("lent", "9")), unnamed);
        assert!(!versions.learn("ns", "lent", "8"));
        // Gone while the watch was down, a read in flight: the relist
        // cancels the want.
        assert!(versions.want("ns", "lent"));
        versions.changed(watcher::Event::Init, unnamed);
        versions.changed(watcher::Event::InitDone, unnamed);
        assert!(!versions.learn("ns", "lent", "8"));
        // Read and found missing: the want is dropped.
        assert!(versions.want("ns", "lent"));
        versions.unwant("ns", "lent");
        assert!(!versions.learn("ns", "lent", "10"));
        // Bounded: past the bound, nothing is learned.
        for n in 0..WANTED {
            assert!(versions.want("ns", &format!("lent-{n}")));
        }
        assert!(!versions.want("ns", "one-more"));
        assert!(!versions.learn("ns", "one-more", "1"));
        assert!(versions.want("ns", "lent-0"), "already wanted");
    }
}
