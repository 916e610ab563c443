//! The versions of the key Secrets accounts name, as one watch of Secrets
//! delivered them: an account whose key is still at the version its last
//! check saw needs no read of it, so the echo of its own status write (and
//! any other event that changes neither) costs no request. A version is
//! learned from the watch while an account names the Secret, or from a read
//! that no event of that Secret (nor a relist) followed before it settled
//! (the watch may have listed the Secret before the account was seen).

use std::collections::{HashMap, HashSet};

use k8s_openapi::api::core::v1::Secret;
use kube::{ResourceExt as _, core::PartialObjectMeta, runtime::watcher};
use parking_lot::Mutex;

/// A Secret's namespace and name.
pub type SecretKey = (String, String);

/// Versions of the Secrets some account named when their last event came.
/// Any event for a Secret no account names drops it, so a version held is
/// never older than the last one that watch delivered; absent means
/// unknown. The resource controller's `cache::KeyVersions` answers the same
/// question for the keys resources use, but marks resources for a check
/// and records every Secret a relist lists; this one, fed every Secret of
/// the cluster at each start, records only those it keeps.
#[derive(Default)]
pub struct LentKeyVersions {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    versions: HashMap<SecretKey, String>,
    /// During a relist, those of `versions` it has delivered so far.
    relisted: Option<HashSet<SecretKey>>,
    /// The reads in flight, each with its ticket.
    reading: HashMap<SecretKey, u64>,
    tickets: u64,
}

/// One read of a key Secret, to `settle` what it found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ticket(u64);

impl LentKeyVersions {
    /// Takes in a watch event; `named`: an account names its Secret.
    /// Returns the Secrets a relist found deleted (they had a version).
    pub fn observe(&self, event: &watcher::Event<PartialObjectMeta<Secret>>, named: bool) -> Vec<SecretKey> {
        let mut inner = self.inner.lock();
        let key =
            |secret: &PartialObjectMeta<Secret>| (secret.namespace().unwrap_or_default(), secret.name_any());
        match event {
            watcher::Event::Init => {
                // A relist may find any Secret gone: no read in flight can
                // tell whether it came before or after.
                inner.reading.clear();
                inner.relisted = Some(HashSet::new());
                Vec::new()
            }
            watcher::Event::InitApply(secret) | watcher::Event::Apply(secret) => {
                let key = key(secret);
                inner.reading.remove(&key);
                match secret.resource_version().filter(|_| named) {
                    Some(version) => {
                        if let (watcher::Event::InitApply(_), Some(relisted)) =
                            (event, inner.relisted.as_mut())
                        {
                            relisted.insert(key.clone());
                        }
                        inner.versions.insert(key, version);
                    }
                    None => {
                        inner.versions.remove(&key);
                    }
                }
                Vec::new()
            }
            watcher::Event::InitDone => {
                inner.reading.clear();
                // Those the relist did not deliver were deleted meanwhile.
                let Some(relisted) = inner.relisted.take() else { return Vec::new() };
                let gone: Vec<SecretKey> =
                    inner.versions.keys().filter(|key| !relisted.contains(*key)).cloned().collect();
                for key in &gone {
                    inner.versions.remove(key);
                }
                gone
            }
            watcher::Event::Delete(secret) => {
                let key = key(secret);
                inner.reading.remove(&key);
                inner.versions.remove(&key);
                Vec::new()
            }
        }
    }

    /// Taken before reading key Secret `name` of `namespace`.
    pub fn ticket(&self, namespace: &str, name: &str) -> Ticket {
        let mut inner = self.inner.lock();
        inner.tickets += 1;
        let ticket = inner.tickets;
        inner.reading.insert((namespace.to_owned(), name.to_owned()), ticket);
        Ticket(ticket)
    }

    /// Learns the version the read of `ticket` found, unless an event of
    /// that Secret (or a relist) came while it was in flight: it may be a
    /// newer version or a deletion, and then the watch has the say. A
    /// quorum read is never older than what the watch delivered before it,
    /// and whatever the watch delivers after replaces it.
    pub fn settle(&self, namespace: &str, name: &str, ticket: Ticket, found: Option<&str>) {
        let mut inner = self.inner.lock();
        let key = (namespace.to_owned(), name.to_owned());
        if inner.reading.get(&key) != Some(&ticket.0) {
            return;
        }
        inner.reading.remove(&key);
        if let Some(version) = found {
            inner.versions.insert(key, version.to_owned());
        }
    }

    /// The version of Secret `name` in `namespace` the watch last
    /// delivered (or a read settled), if it is known.
    pub fn version(&self, namespace: &str, name: &str) -> Option<String> {
        self.inner.lock().versions.get(&(namespace.to_owned(), name.to_owned())).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(name: &str, version: &str) -> PartialObjectMeta<Secret> {
        let mut secret = PartialObjectMeta::<Secret>::default();
        secret.metadata.namespace = Some("ns".into());
        secret.metadata.name = Some(name.into());
        secret.metadata.resource_version = Some(version.into());
        secret
    }

    fn key(name: &str) -> SecretKey {
        ("ns".to_owned(), name.to_owned())
    }

    #[test]
    fn only_the_last_version_of_a_named_secret_is_known() {
        let keys = LentKeyVersions::default();
        keys.observe(&watcher::Event::Apply(secret("key", "1")), true);
        keys.observe(&watcher::Event::Apply(secret("other", "2")), false);
        assert_eq!((keys.version("ns", "key"), keys.version("ns", "other")), (Some("1".into()), None));
        // Changed while no account named it: not known any more.
        keys.observe(&watcher::Event::Apply(secret("key", "3")), false);
        assert_eq!(keys.version("ns", "key"), None);
        keys.observe(&watcher::Event::Apply(secret("key", "4")), true);
        keys.observe(&watcher::Event::Delete(secret("key", "5")), true);
        assert_eq!(keys.version("ns", "key"), None, "deleted");
    }

    #[test]
    fn a_read_is_learned_only_when_nothing_came_for_its_secret_while_in_flight() {
        let keys = LentKeyVersions::default();
        let ticket = keys.ticket("ns", "key");
        keys.observe(&watcher::Event::Apply(secret("unrelated", "1")), false);
        keys.settle("ns", "key", ticket, Some("2"));
        assert_eq!(keys.version("ns", "key"), Some("2".into()), "another Secret's event does not void it");

        let ticket = keys.ticket("ns", "key");
        keys.observe(&watcher::Event::Delete(secret("key", "3")), true);
        keys.settle("ns", "key", ticket, Some("2"));
        assert_eq!(keys.version("ns", "key"), None, "deleted while the read was in flight");

        let ticket = keys.ticket("ns", "key");
        keys.observe(&watcher::Event::Init, false);
        keys.settle("ns", "key", ticket, Some("4"));
        assert_eq!(keys.version("ns", "key"), None, "a relist voids every read in flight");

        let first = keys.ticket("ns", "key");
        let second = keys.ticket("ns", "key");
        keys.settle("ns", "key", first, Some("5"));
        assert_eq!(keys.version("ns", "key"), None, "a later read of the same Secret replaces it");
        keys.settle("ns", "key", second, None);
        assert_eq!(keys.version("ns", "key"), None, "a read that found nothing");
    }

    #[test]
    fn a_relist_forgets_what_it_does_not_deliver_and_says_so() {
        let keys = LentKeyVersions::default();
        for event in [
            watcher::Event::Init,
            watcher::Event::InitApply(secret("key", "1")),
            watcher::Event::InitApply(secret("gone", "2")),
            watcher::Event::InitDone,
            watcher::Event::Init,
            watcher::Event::InitApply(secret("key", "3")),
        ] {
            keys.observe(&event, true);
        }
        assert_eq!(keys.version("ns", "gone"), Some("2".into()), "until the relist completes");
        assert_eq!(keys.observe(&watcher::Event::InitDone, false), vec![key("gone")]);
        assert_eq!((keys.version("ns", "key"), keys.version("ns", "gone")), (Some("3".into()), None));
    }
}
