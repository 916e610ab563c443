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

/// How many key Secrets a scope keeps versions of while no resource names
/// them (those accounts lend, and reads in flight); past this, reads of
/// others go to etcd every time.
const WANTED: usize = 4096;

/// The last version seen of each key Secret some resource names, or that
/// a reconcile wants kept (`want`).
#[derive(Default)]
pub struct KeyVersions {
    seen: HashMap<SecretKey, String>,
    /// During a relist: the Secrets it has listed so far.
    relisted: Option<HashSet<SecretKey>>,
    /// The namespace the watch feeding it covers (`None`: every one).
    scope: Option<String>,
    /// Key Secrets whose versions are kept whether or not a resource names
    /// them, each with the want it belongs to: from the moment a reconcile
    /// went to read one until its read settles (an account's key: until it
    /// is deleted).
    wanted: HashMap<SecretKey, Want>,
    /// The last want handed out.
    wants: u64,
}

/// One want of a key Secret's versions: a deletion, a relist that misses
/// it or a read that finds none ends it, and a read settles only the want
/// it was made under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Want(u64);

impl KeyVersions {
    /// Versions fed by a watch of `namespace` (`None`: of every one).
    pub fn of_scope(namespace: Option<&str>) -> Self {
        Self { scope: namespace.map(str::to_owned), ..Self::default() }
    }

    /// Keeps the versions of Secret `name` in `namespace` from now on,
    /// whether or not a resource names it. Called before a read from etcd
    /// whose version `settle` fills in, so that a change the watch delivers
    /// in between is kept and wins, and a deletion in between voids the
    /// read. `None` when this scope does not keep it.
    pub fn want(&mut self, namespace: &str, name: &str) -> Option<Want> {
        if self.scope.as_deref().is_some_and(|scope| scope != namespace) {
            return None;
        }
        let key = (namespace.to_owned(), name.to_owned());
        if let Some(want) = self.wanted.get(&key) {
            return Some(*want);
        }
        if self.wanted.len() >= WANTED {
            return None;
        }
        self.wants += 1;
        let want = Want(self.wants);
        self.wanted.insert(key, want);
        Some(want)
    }

    /// Settles the read made under `want`: fills in the version it found
    /// for a key Secret the watch showed before anything wanted it (it
    /// listed or changed it earlier, and reports only changes; without it,
    /// every reconcile using it would read it from etcd), only while that
    /// want holds and the watch delivered no version since, so every change
    /// after the want wins. `keep`: go on keeping its versions though no
    /// resource names it (a key an account lends); otherwise the want ends
    /// here. A read that found nothing ends it. Whether it was filled in.
    pub fn settle(
        &mut self,
        namespace: &str,
        name: &str,
        want: Want,
        read: Option<&str>,
        keep: bool,
    ) -> bool {
        let key = (namespace.to_owned(), name.to_owned());
        if self.wanted.get(&key) != Some(&want) {
            return false;
        }
        let filled = match read {
            Some(version) if !self.seen.contains_key(&key) => {
                self.seen.insert(key.clone(), version.to_owned());
                true
            }
            _ => false,
        };
        if read.is_none() || !keep {
            self.wanted.remove(&key);
        }
        filled
    }

    /// The Secrets of `event` whose version changed, or that are gone,
    /// since last seen. `named` says whether some resource names a Secret;
    /// others are neither remembered nor reported, unless wanted.
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
                self.wanted.retain(|k, _| relisted.contains(k));
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
        if !named(&key.0, &key.1) && !self.wanted.contains_key(&key) {
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
    fn a_version_settled_from_a_read_fills_a_gap_only_and_changes_still_arrive() {
        let mut versions = KeyVersions::of_scope(Some("ns"));
        // Listed before any resource named it: not kept.
        let unnamed = |_: &str, _: &str| false;
        versions.changed(watcher::Event::Init, unnamed);
        versions.changed(watcher::Event::InitApply(secret("key", "1")), unnamed);
        versions.changed(watcher::Event::InitDone, unnamed);
        assert_eq!(versions.version("ns", "key"), None);
        // Another namespace is another watch's.
        assert_eq!(versions.want("other", "key"), None);
        let want = versions.want("ns", "key").expect("in scope");
        assert!(versions.settle("ns", "key", want, Some("1"), false));
        assert_eq!(versions.version("ns", "key").as_deref(), Some("1"));
        // A resource's own key: the want ends with its read; the versions
        // are kept while a resource names it, and a version the watch
        // delivered is never replaced by a read.
        assert!(!versions.settle("ns", "key", want, Some("1"), false), "settled once");
        let named = |_: &str, _: &str| true;
        assert_eq!(names(versions.changed(watcher::Event::Apply(secret("key", "2")), named)), ["key"]);
        let again = versions.want("ns", "key").expect("in scope");
        assert!(!versions.settle("ns", "key", again, Some("1"), false));
        assert_eq!(versions.version("ns", "key").as_deref(), Some("2"));
        // Named no more: its next change drops it.
        versions.changed(watcher::Event::Apply(secret("key", "3")), unnamed);
        assert_eq!(versions.version("ns", "key"), None);
    }

    #[test]
    fn a_lent_key_keeps_its_versions_and_a_change_or_deletion_after_the_want_beats_the_read() {
        let mut versions = KeyVersions::of_scope(Some("ns"));
        let unnamed = |_: &str, _: &str| false;
        let lent = |versions: &mut KeyVersions, version: &str| {
            let want = versions.want("ns", "lent").expect("in scope");
            (want, versions.settle("ns", "lent", want, Some(version), true))
        };
        // Changed after the want, before the read settles: the watch's
        // newer version stays, and later ones are kept.
        let want = versions.want("ns", "lent").expect("in scope");
        versions.changed(watcher::Event::Apply(secret("lent", "5")), unnamed);
        assert!(!versions.settle("ns", "lent", want, Some("4"), true));
        assert_eq!(versions.version("ns", "lent").as_deref(), Some("5"));
        versions.changed(watcher::Event::Apply(secret("lent", "6")), unnamed);
        assert_eq!(versions.version("ns", "lent").as_deref(), Some("6"));
        // Deleted: forgotten, and no longer wanted.
        versions.changed(watcher::Event::Delete(secret("lent", "7")), unnamed);
        versions.changed(watcher::Event::Apply(secret("lent", "8")), unnamed);
        assert_eq!(versions.version("ns", "lent"), None);
        // Deleted and created again while a read is in flight, another read
        // wanting it since: the first read settles nothing.
        let first = versions.want("ns", "lent").expect("in scope");
        versions.changed(watcher::Event::Delete(secret("lent", "9")), unnamed);
        let (second, filled) = lent(&mut versions, "10");
        assert!(filled && first != second);
        assert!(!versions.settle("ns", "lent", first, Some("8"), true));
        assert_eq!(versions.version("ns", "lent").as_deref(), Some("10"));
        // Gone while the watch was down, a read in flight: the relist ends
        // the want.
        versions.changed(watcher::Event::Delete(secret("lent", "11")), unnamed);
        let want = versions.want("ns", "lent").expect("in scope");
        versions.changed(watcher::Event::Init, unnamed);
        versions.changed(watcher::Event::InitDone, unnamed);
        assert!(!versions.settle("ns", "lent", want, Some("10"), true));
        // Read and found missing, or the read failed: the want ends.
        let want = versions.want("ns", "lent").expect("in scope");
        assert!(!versions.settle("ns", "lent", want, None, true));
        assert!(!versions.settle("ns", "lent", want, Some("12"), true));
        // Bounded: past the bound, nothing is kept.
        for n in 0..WANTED {
            assert!(versions.want("ns", &format!("lent-{n}")).is_some());
        }
        assert_eq!(versions.want("ns", "one-more"), None);
        assert!(versions.want("ns", "lent-0").is_some(), "already wanted");
    }
}
