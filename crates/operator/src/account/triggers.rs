//! Which watch events are news to another controller. A watch hands its
//! mapper the object, not what changed, and a deletion arrives as the last
//! state seen. `Changes` remembers, per object, the part another controller
//! cares about and a digest of the rest: an event is news when that part
//! changed, the object is new, or nothing at all changed (a deletion, or a
//! relist). An account's own status writes (which resources use it) are
//! not news to those resources, so they cost no reconcile.

use std::{
    collections::HashMap,
    hash::{DefaultHasher, Hash, Hasher},
};

use kube::{Resource, runtime::reflector::ObjectRef};
use parking_lot::Mutex;
use serde::Serialize;

/// Per-object memory of the part that matters, `V`.
pub struct Changes<K: Resource<DynamicType = ()>, V> {
    seen: Mutex<HashMap<ObjectRef<K>, Seen<V>>>,
}

struct Seen<V> {
    relevant: V,
    digest: u64,
}

/// What an event says to the controller that asked.
#[derive(Debug, PartialEq, Eq)]
pub enum Change<V> {
    /// Only other parts changed.
    Nothing,
    /// News; `before` is the part as it was, when it was known and differed.
    News { before: Option<V> },
}

impl<K: Resource<DynamicType = ()>, V> Default for Changes<K, V> {
    fn default() -> Self {
        Self { seen: Mutex::default() }
    }
}

impl<K, V> Changes<K, V>
where
    K: Resource<DynamicType = ()> + Serialize,
    V: Clone + PartialEq,
{
    /// Records `object`, whose relevant part is `relevant`, and says
    /// whether the event is news.
    pub fn record(&self, object: &K, relevant: V) -> Change<V> {
        let key = ObjectRef::from_obj(object);
        let digest = digest_without_version(object);
        let mut seen = self.seen.lock();
        match seen.get_mut(&key) {
            None => {
                seen.insert(key, Seen { relevant, digest });
                Change::News { before: None }
            }
            Some(last) if last.relevant != relevant => {
                let before = std::mem::replace(&mut last.relevant, relevant);
                last.digest = digest;
                Change::News { before: Some(before) }
            }
            Some(last) if last.digest != digest => {
                last.digest = digest;
                Change::Nothing
            }
            // Identical but for its version: deleted (or relisted). Forget
            // it, so memory does not grow with objects long gone.
            Some(_) => {
                seen.remove(&key);
                Change::News { before: None }
            }
        }
    }
}

/// A digest of everything but `resourceVersion` (which every event moves,
/// deletions included).
fn digest_without_version<K: Resource + Serialize>(object: &K) -> u64 {
    let mut json = serde_json::to_value(object).unwrap_or_default();
    if let Some(meta) = json.get_mut("metadata").and_then(serde_json::Value::as_object_mut) {
        meta.remove("resourceVersion");
    }
    let mut hasher = DefaultHasher::new();
    json.to_string().hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::{AccountStatus, UpstashAccount, UpstashAccountSpec};
    use crate::crd::CredentialsSecretRef;

    fn account(version: &str, generation: i64, users: i64) -> UpstashAccount {
        let mut a = UpstashAccount::new(
            "team",
            UpstashAccountSpec { credentials_secret_ref: CredentialsSecretRef::named("key") },
        );
        a.metadata.namespace = Some("ns".into());
        a.metadata.resource_version = Some(version.into());
        a.metadata.generation = Some(generation);
        a.status = Some(AccountStatus { resource_count: users, ..Default::default() });
        a
    }

    #[test]
    fn status_only_writes_are_not_news_and_deletions_are() {
        let changes = Changes::<UpstashAccount, Option<i64>>::default();
        let relevant = |a: &UpstashAccount| a.metadata.generation;
        let first = account("1", 1, 0);
        assert_eq!(changes.record(&first, relevant(&first)), Change::News { before: None }, "new");
        let counted = account("2", 1, 3);
        assert_eq!(changes.record(&counted, relevant(&counted)), Change::Nothing, "status write");
        let edited = account("3", 2, 3);
        assert_eq!(
            changes.record(&edited, relevant(&edited)),
            Change::News { before: Some(Some(1)) },
            "spec"
        );
        let deleted = account("4", 2, 3);
        assert_eq!(changes.record(&deleted, relevant(&deleted)), Change::News { before: None }, "deleted");
        assert!(changes.seen.lock().is_empty(), "a deleted object is forgotten");
    }
}
