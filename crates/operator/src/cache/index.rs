//! Resources by what they point at (their database, their key Secret, their
//! account), kept up to date from the watch events that fill the resource
//! cache. A Secret event, an account event or the database-conflict check
//! then costs a lookup, not a scan of every resource.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use kube::{
    ResourceExt as _,
    runtime::{reflector::ObjectRef, watcher},
};
use parking_lot::RwLock;

use crate::{account::AccountKind, crd::RedisPasswordRotation};

/// Something resources point at.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Key {
    /// `spec.databaseId`.
    Database(String),
    /// `spec.credentialsSecretRef`: a Secret in the resource's namespace.
    KeySecret { namespace: String, name: String },
    /// `spec.accountRef`; `namespace` only for a namespaced account.
    Account { kind: AccountKind, namespace: Option<String>, name: String },
}

impl Key {
    /// Everything `resource` points at.
    pub fn of(resource: &RedisPasswordRotation) -> Vec<Key> {
        let namespace = resource.namespace().unwrap_or_default();
        let mut keys = vec![Key::Database(resource.spec.database_id.clone())];
        if let Some(secret) = &resource.spec.credentials_secret_ref {
            keys.push(Key::KeySecret { namespace: namespace.clone(), name: secret.name.clone() });
        }
        if let Some(account) = &resource.spec.account_ref {
            let namespace = (account.kind == AccountKind::UpstashAccount).then_some(namespace);
            keys.push(Key::Account { kind: account.kind, namespace, name: account.name.clone() });
        }
        keys
    }
}

type Ref = ObjectRef<RedisPasswordRotation>;

/// One reference per resource, shared by its keys.
#[derive(Default)]
struct Entries {
    by_key: HashMap<Key, HashSet<Arc<Ref>>>,
    keys_of: HashMap<Arc<Ref>, Vec<Key>>,
}

impl Entries {
    fn insert(&mut self, resource: &RedisPasswordRotation) {
        let object = Arc::new(plain_ref(resource));
        let keys = Key::of(resource);
        if self.keys_of.get(&object) == Some(&keys) {
            return;
        }
        self.remove(&object);
        for key in &keys {
            self.by_key.entry(key.clone()).or_default().insert(object.clone());
        }
        self.keys_of.insert(object, keys);
    }

    fn remove(&mut self, object: &Ref) {
        for key in self.keys_of.remove(object).unwrap_or_default() {
            if let Some(set) = self.by_key.get_mut(&key) {
                set.remove(object);
                if set.is_empty() {
                    self.by_key.remove(&key);
                }
            }
        }
    }
}

/// A reference without the version and uid `ObjectRef::from_obj` carries
/// (they are not compared, and would only cost memory).
fn plain_ref(resource: &RedisPasswordRotation) -> Ref {
    ObjectRef::new(&resource.name_any()).within(&resource.namespace().unwrap_or_default())
}

/// The index of one watched scope (a relist of one scope replaces only its
/// own entries).
#[derive(Default)]
pub struct Index {
    live: RwLock<Entries>,
    /// Filled during a relist, swapped in when it is complete, the way the
    /// reflector's store is.
    relisting: parking_lot::Mutex<Option<Entries>>,
}

impl Index {
    /// Applies one event of the resource watch.
    pub fn observe(&self, event: &watcher::Event<RedisPasswordRotation>) {
        match event {
            watcher::Event::Apply(resource) => self.live.write().insert(resource),
            watcher::Event::Delete(resource) => self.live.write().remove(&plain_ref(resource)),
            watcher::Event::Init => *self.relisting.lock() = Some(Entries::default()),
            watcher::Event::InitApply(resource) => {
                if let Some(entries) = self.relisting.lock().as_mut() {
                    entries.insert(resource);
                }
            }
            watcher::Event::InitDone => {
                if let Some(entries) = self.relisting.lock().take() {
                    *self.live.write() = entries;
                }
            }
        }
    }

    /// The resources that point at `key`.
    pub fn lookup(&self, key: &Key) -> Vec<Ref> {
        let live = self.live.read();
        live.by_key.get(key).map(|set| set.iter().map(|r| Ref::clone(r)).collect()).unwrap_or_default()
    }
}

/// The indexes of every watched scope.
#[derive(Clone, Default)]
pub struct Indexes(Vec<Arc<Index>>);

impl Indexes {
    pub fn new(indexes: Vec<Arc<Index>>) -> Self {
        Self(indexes)
    }

    /// The resources, in every scope, that point at `key`.
    pub fn lookup(&self, key: &Key) -> Vec<Ref> {
        self.0.iter().flat_map(|index| index.lookup(key)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::RedisPasswordRotationSpec;

    fn resource(name: &str, database: &str, key: &str) -> RedisPasswordRotation {
        let spec: RedisPasswordRotationSpec = serde_json::from_value(serde_json::json!({
            "databaseId": database, "credentialsSecretRef": {"name": key}
        }))
        .unwrap_or_else(|e| panic!("spec: {e}"));
        let mut r = RedisPasswordRotation::new(name, spec);
        r.metadata.namespace = Some("ns".into());
        r
    }

    fn names(refs: Vec<Ref>) -> Vec<String> {
        let mut names: Vec<String> = refs.into_iter().map(|r| r.name).collect();
        names.sort();
        names
    }

    #[test]
    fn follows_changes_deletions_and_relists() {
        let index = Index::default();
        let db = |id: &str| Key::Database(id.into());
        index.observe(&watcher::Event::Apply(resource("a", "db1", "k")));
        index.observe(&watcher::Event::Apply(resource("b", "db1", "k")));
        assert_eq!(names(index.lookup(&db("db1"))), ["a", "b"]);
        let secret = Key::KeySecret { namespace: "ns".into(), name: "k".into() };
        assert_eq!(names(index.lookup(&secret)), ["a", "b"]);

        // A changed spec moves the resource; a deletion drops it.
        index.observe(&watcher::Event::Apply(resource("b", "db2", "k")));
        assert_eq!(names(index.lookup(&db("db1"))), ["a"]);
        assert_eq!(names(index.lookup(&db("db2"))), ["b"]);
        index.observe(&watcher::Event::Delete(resource("a", "db1", "k")));
        assert!(index.lookup(&db("db1")).is_empty());

        // A relist replaces everything once it is complete.
        index.observe(&watcher::Event::Init);
        index.observe(&watcher::Event::InitApply(resource("c", "db3", "k2")));
        assert_eq!(names(index.lookup(&db("db2"))), ["b"], "the old view serves until the relist is done");
        index.observe(&watcher::Event::InitDone);
        assert!(index.lookup(&db("db2")).is_empty());
        assert_eq!(names(index.lookup(&db("db3"))), ["c"]);
        assert!(index.lookup(&secret).is_empty());
    }
}
