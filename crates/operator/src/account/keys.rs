//! The versions of the key Secrets accounts name, as one watch of Secrets
//! delivered them: an account whose key is still at the version its last
//! check saw needs no read of it, so the echo of its own status write (and
//! any other event that changes neither) costs no request. A version is
//! learned from the watch while an account names the Secret, or from a read
//! no event of that watch followed before it was settled (the watch may
//! have listed the Secret before the account was seen).

use std::collections::{HashMap, HashSet};

use k8s_openapi::api::core::v1::Secret;
use kube::{ResourceExt as _, core::PartialObjectMeta, runtime::watcher};
use parking_lot::Mutex;

type SecretKey = (String, String);

/// Versions of the Secrets some account named when their last event came.
/// Any event for a Secret no account names drops it, so a version held is
/// never older than the last one that watch delivered; absent means
/// unknown.
#[derive(Default)]
pub struct KeyVersions {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    versions: HashMap<SecretKey, String>,
    /// During a relist, the Secrets it has delivered so far.
    relisted: Option<HashSet<SecretKey>>,
    /// Events taken in so far, of any Secret.
    events: u64,
}

/// When a read of a key began, as the count of events taken in by then.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ticket(u64);

impl KeyVersions {
    /// Takes in a watch event; `named` says whether an account names the
    /// Secret (namespace, name).
    pub fn observe(
        &self,
        event: &watcher::Event<PartialObjectMeta<Secret>>,
        named: impl Fn(&str, &str) -> bool,
    ) {
        let mut inner = self.inner.lock();
        inner.events += 1;
        let key =
            |secret: &PartialObjectMeta<Secret>| (secret.namespace().unwrap_or_default(), secret.name_any());
        match event {
            watcher::Event::Init => inner.relisted = Some(HashSet::new()),
            watcher::Event::InitApply(secret) | watcher::Event::Apply(secret) => {
                let key = key(secret);
                if let (watcher::Event::InitApply(_), Some(relisted)) = (event, inner.relisted.as_mut()) {
                    relisted.insert(key.clone());
                }
                match secret.resource_version().filter(|_| named(&key.0, &key.1)) {
                    Some(version) => inner.versions.insert(key, version),
                    None => inner.versions.remove(&key),
                };
            }
            watcher::Event::InitDone => {
                // Those the relist did not deliver were deleted meanwhile.
                if let Some(relisted) = inner.relisted.take() {
                    inner.versions.retain(|key, _| relisted.contains(key));
                }
            }
            watcher::Event::Delete(secret) => {
                inner.versions.remove(&key(secret));
            }
        }
    }

    /// Taken before reading a key Secret, to `settle` what the read found.
    pub fn ticket(&self) -> Ticket {
        Ticket(self.inner.lock().events)
    }

    /// Learns the version a read begun at `ticket` found, unless any event
    /// came since: it may be a newer version, or a deletion, of that Secret
    /// (then the watch has the say). A quorum read is never older than what
    /// the watch delivered before it, and whatever the watch delivers after
    /// replaces it.
    pub fn settle(&self, namespace: &str, name: &str, ticket: Ticket, found: Option<&str>) {
        let mut inner = self.inner.lock();
        if let Some(version) = found.filter(|_| inner.events == ticket.0) {
            inner.versions.insert((namespace.to_owned(), name.to_owned()), version.to_owned());
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

    #[test]
    fn only_the_last_version_of_a_named_secret_is_known() {
        let keys = KeyVersions::default();
        let named = |_: &str, name: &str| name == "key";
        keys.observe(&watcher::Event::Apply(secret("key", "1")), named);
        keys.observe(&watcher::Event::Apply(secret("other", "2")), named);
        assert_eq!((keys.version("ns", "key"), keys.version("ns", "other")), (Some("1".into()), None));
        // Changed while no account named it: not known any more.
        keys.observe(&watcher::Event::Apply(secret("key", "3")), |_, _| false);
        assert_eq!(keys.version("ns", "key"), None);
        keys.observe(&watcher::Event::Apply(secret("key", "4")), named);
        keys.observe(&watcher::Event::Delete(secret("key", "5")), named);
        assert_eq!(keys.version("ns", "key"), None, "deleted");
    }

    #[test]
    fn a_read_is_learned_only_when_no_event_came_while_it_was_in_flight() {
        let keys = KeyVersions::default();
        let ticket = keys.ticket();
        keys.settle("ns", "key", ticket, Some("1"));
        assert_eq!(keys.version("ns", "key"), Some("1".into()), "nothing came in between");

        let ticket = keys.ticket();
        keys.observe(&watcher::Event::Delete(secret("key", "2")), |_, _| true);
        keys.settle("ns", "key", ticket, Some("1"));
        assert_eq!(keys.version("ns", "key"), None, "deleted while the read was in flight");

        let ticket = keys.ticket();
        keys.observe(&watcher::Event::Apply(secret("unrelated", "3")), |_, _| false);
        keys.settle("ns", "key", ticket, Some("4"));
        assert_eq!(keys.version("ns", "key"), None, "any event voids it");
        let ticket = keys.ticket();
        keys.settle("ns", "key", ticket, None);
        assert_eq!(keys.version("ns", "key"), None, "a read that found nothing");
    }

    #[test]
    fn a_relist_forgets_what_it_does_not_deliver() {
        let keys = KeyVersions::default();
        let named = |_: &str, _: &str| true;
        for event in [
            watcher::Event::Init,
            watcher::Event::InitApply(secret("key", "1")),
            watcher::Event::InitApply(secret("gone", "2")),
            watcher::Event::InitDone,
            watcher::Event::Init,
            watcher::Event::InitApply(secret("key", "3")),
        ] {
            keys.observe(&event, named);
        }
        assert_eq!(keys.version("ns", "gone"), Some("2".into()), "until the relist completes");
        keys.observe(&watcher::Event::InitDone, named);
        assert_eq!((keys.version("ns", "key"), keys.version("ns", "gone")), (Some("3".into()), None));
    }
}
