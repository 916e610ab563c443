//! Resources by what they point at (their database, their key Secret, their
//! account), kept up to date from the watch events that fill the resource
//! cache. A Secret event, an account event or the database-conflict check
//! then costs a lookup, not a scan of every resource. The index also tells
//! the account controllers which accounts gained or lost a user, so they
//! need no watch of the resources of their own.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use futures::channel::mpsc;
use kube::{
    ResourceExt as _,
    runtime::{reflector::ObjectRef, watcher},
};
use parking_lot::{Mutex, RwLock};

use super::CachedRotation;
use crate::account::AccountKind;

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
    pub fn of(resource: &CachedRotation) -> Vec<Key> {
        let namespace = resource.namespace().unwrap_or_default();
        let mut keys = vec![Key::Database(resource.spec.database_id.clone())];
        if let Some(secret) = &resource.spec.credentials_secret {
            keys.push(Key::KeySecret { namespace: namespace.clone(), name: secret.clone() });
        }
        if let Some(account) = &resource.spec.account_ref {
            let namespace = (account.kind == AccountKind::UpstashAccount).then_some(namespace);
            keys.push(Key::Account { kind: account.kind, namespace, name: account.name.clone() });
        }
        keys
    }
}

/// A cached resource, as the controller queues it.
pub type ResourceRef = ObjectRef<CachedRotation>;
type Ref = ResourceRef;

/// One reference per resource, shared by its keys; one copy of each key,
/// shared by its resources (many name the same key Secret or account).
#[derive(Default)]
struct Entries {
    by_key: HashMap<Arc<Key>, HashSet<Arc<Ref>>>,
    keys_of: HashMap<Arc<Ref>, Box<[Arc<Key>]>>,
}

impl Entries {
    /// Adds or updates `resource`; returns the accounts that gained or
    /// lost it as a user.
    fn insert(&mut self, resource: &CachedRotation) -> Vec<Key> {
        let object = Arc::new(plain_ref(resource));
        let keys = Key::of(resource);
        if self.keys_of.get(&object).is_some_and(|known| known.iter().map(|k| &**k).eq(keys.iter())) {
            return Vec::new();
        }
        let before = self.remove(&object);
        let mut shared = Vec::with_capacity(keys.len());
        for key in &keys {
            let key = match self.by_key.get_key_value(key) {
                Some((known, _)) => known.clone(),
                None => Arc::new(key.clone()),
            };
            self.by_key.entry(key.clone()).or_default().insert(object.clone());
            shared.push(key);
        }
        self.keys_of.insert(object, shared.into_boxed_slice());
        accounts_changed(plain(&before), keys.iter())
    }

    /// Drops `object`; returns the keys it had.
    fn remove(&mut self, object: &Ref) -> Box<[Arc<Key>]> {
        let keys = self.keys_of.remove(object).unwrap_or_default();
        for key in &keys {
            if let Some(set) = self.by_key.get_mut(key) {
                set.remove(object);
                if set.is_empty() {
                    self.by_key.remove(key);
                }
            }
        }
        keys
    }

    /// The accounts whose users differ between `self` and `other`.
    fn accounts_changed_from(&self, other: &Entries) -> Vec<Key> {
        let mut changed = Vec::new();
        for (object, keys) in &self.keys_of {
            let before = other.keys_of.get(object).map_or(&[][..], |k| &k[..]);
            changed.extend(accounts_changed(plain(before), plain(keys)));
        }
        for (object, keys) in &other.keys_of {
            if !self.keys_of.contains_key(object) {
                changed.extend(accounts_changed(plain(keys), std::iter::empty()));
            }
        }
        changed
    }
}

/// The accounts in `before` or `after` when the two differ in accounts.
fn accounts_changed<'a>(
    before: impl Iterator<Item = &'a Key>,
    after: impl Iterator<Item = &'a Key>,
) -> Vec<Key> {
    let is_account = |key: &&Key| matches!(key, Key::Account { .. });
    let before: Vec<&Key> = before.filter(is_account).collect();
    let after: Vec<&Key> = after.filter(is_account).collect();
    if before == after {
        return Vec::new();
    }
    before.into_iter().chain(after).cloned().collect()
}

fn plain(keys: &[Arc<Key>]) -> impl Iterator<Item = &Key> {
    keys.iter().map(|k| &**k)
}

/// A reference without the version and uid `ObjectRef::from_obj` carries
/// (they are not compared, and would only cost memory).
fn plain_ref(resource: &CachedRotation) -> Ref {
    ObjectRef::new(&resource.name_any()).within(&resource.namespace().unwrap_or_default())
}

/// The index of one watched scope (a relist of one scope replaces only its
/// own entries).
#[derive(Default)]
pub struct Index {
    live: RwLock<Entries>,
    /// Filled during a relist, swapped in when it is complete, the way the
    /// reflector's store is.
    relisting: Mutex<Option<Entries>>,
    /// The account controllers listening for accounts whose users changed.
    listeners: Mutex<Vec<mpsc::UnboundedSender<Key>>>,
}

impl Index {
    /// Applies one event of the resource watch.
    pub fn observe(&self, event: &watcher::Event<CachedRotation>) {
        let changed = match event {
            watcher::Event::Apply(resource) => self.live.write().insert(resource),
            watcher::Event::Delete(resource) => {
                let removed = self.live.write().remove(&plain_ref(resource));
                accounts_changed(plain(&removed), std::iter::empty())
            }
            watcher::Event::Init => {
                *self.relisting.lock() = Some(Entries::default());
                Vec::new()
            }
            watcher::Event::InitApply(resource) => {
                if let Some(entries) = self.relisting.lock().as_mut() {
                    entries.insert(resource);
                }
                Vec::new()
            }
            watcher::Event::InitDone => {
                let Some(entries) = self.relisting.lock().take() else { return };
                let mut live = self.live.write();
                // What changed while the watch was down (at start: every
                // account with a user).
                let changed = entries.accounts_changed_from(&live);
                *live = entries;
                changed
            }
        };
        self.tell(changed);
    }

    /// Accounts (as `Key::Account`) that gained or lost a user from now on.
    pub fn account_changes(&self) -> mpsc::UnboundedReceiver<Key> {
        let (sender, receiver) = mpsc::unbounded();
        self.listeners.lock().push(sender);
        receiver
    }

    fn tell(&self, changed: Vec<Key>) {
        if changed.is_empty() {
            return;
        }
        let changed: HashSet<Key> = changed.into_iter().collect();
        // A listener that is gone (its controller stopped) is dropped.
        self.listeners
            .lock()
            .retain(|listener| changed.iter().all(|key| listener.unbounded_send(key.clone()).is_ok()));
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
    use crate::crd::{RedisPasswordRotation, RedisPasswordRotationSpec};

    fn resource(name: &str, database: &str, key: &str) -> CachedRotation {
        let spec: RedisPasswordRotationSpec = serde_json::from_value(serde_json::json!({
            "databaseId": database, "credentialsSecretRef": {"name": key}
        }))
        .unwrap_or_else(|e| panic!("spec: {e}"));
        let mut r = RedisPasswordRotation::new(name, spec);
        r.metadata.namespace = Some("ns".into());
        CachedRotation::of(&r)
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

    fn using(name: &str, account: Option<&str>) -> CachedRotation {
        let mut r = resource(name, "db", "k");
        r.spec.account_ref =
            account.map(|a| crate::account::AccountRef { kind: AccountKind::UpstashAccount, name: a.into() });
        r
    }

    fn told(changes: &mut mpsc::UnboundedReceiver<Key>) -> Vec<String> {
        let mut names = Vec::new();
        while let Ok(key) = changes.try_recv() {
            if let Key::Account { name, .. } = key {
                names.push(name);
            }
        }
        names.sort();
        names
    }

    #[test]
    fn tells_which_accounts_gained_or_lost_a_user_and_nothing_else() {
        let index = Index::default();
        let mut changes = index.account_changes();
        // The first list: every account with a user.
        index.observe(&watcher::Event::Init);
        index.observe(&watcher::Event::InitApply(using("a", Some("team"))));
        index.observe(&watcher::Event::InitApply(using("b", Some("team"))));
        index.observe(&watcher::Event::InitApply(using("c", None)));
        assert!(told(&mut changes).is_empty(), "nothing until the list is complete");
        index.observe(&watcher::Event::InitDone);
        assert_eq!(told(&mut changes), ["team"], "one wake-up per account");

        // A status write (same references) is not news; a new user, a
        // moved one and a deleted one are, to both accounts involved.
        let mut written = using("a", Some("team"));
        written.metadata.resource_version = Some("9".into());
        index.observe(&watcher::Event::Apply(written));
        assert!(told(&mut changes).is_empty());
        index.observe(&watcher::Event::Apply(using("c", Some("other"))));
        assert_eq!(told(&mut changes), ["other"]);
        index.observe(&watcher::Event::Apply(using("b", Some("other"))));
        assert_eq!(told(&mut changes), ["other", "team"]);
        index.observe(&watcher::Event::Delete(using("c", Some("other"))));
        assert_eq!(told(&mut changes), ["other"]);

        // A relist reports what changed while the watch was down.
        index.observe(&watcher::Event::Init);
        index.observe(&watcher::Event::InitApply(using("a", Some("team"))));
        index.observe(&watcher::Event::InitApply(using("d", Some("new"))));
        index.observe(&watcher::Event::InitDone);
        assert_eq!(told(&mut changes), ["new", "other"], "b is gone, d is new, a is unchanged");

        // A listener that is gone is dropped, not an error.
        drop(changes);
        index.observe(&watcher::Event::Delete(using("a", Some("team"))));
        assert!(index.listeners.lock().is_empty());
    }
}
