//! The versions of the Secrets the operator wrote, by namespace and name:
//! all a reconcile reads of them from a cache (is the Secret still the
//! version the status records?). A map of three strings per Secret, where
//! a reflector store would hold its whole metadata, annotations included,
//! and a reference with four more strings as its key.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::Secret;
use kube::{ResourceExt as _, core::PartialObjectMeta, runtime::watcher};
use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;

type Versions = HashMap<(String, String), String>;

/// Filled from the watch of the Secrets the operator wrote (one scope).
pub struct WrittenVersions {
    live: RwLock<Versions>,
    /// Filled during a (re)list, swapped in when it is complete, the way
    /// the reflector's store is: the old view serves until then.
    relisting: Mutex<Option<Versions>>,
    synced: watch::Sender<bool>,
}

impl Default for WrittenVersions {
    fn default() -> Self {
        Self { live: RwLock::default(), relisting: Mutex::default(), synced: watch::Sender::new(false) }
    }
}

impl WrittenVersions {
    /// Applies one event of the watch.
    pub fn observe(&self, event: &watcher::Event<PartialObjectMeta<Secret>>) {
        match event {
            watcher::Event::Apply(secret) => {
                if let Some((key, version)) = entry(secret) {
                    self.live.write().insert(key, version);
                }
            }
            watcher::Event::Delete(secret) => {
                self.live.write().remove(&(secret.namespace().unwrap_or_default(), secret.name_any()));
            }
            watcher::Event::Init => *self.relisting.lock() = Some(Versions::new()),
            watcher::Event::InitApply(secret) => {
                if let (Some(relisting), Some((key, version))) =
                    (self.relisting.lock().as_mut(), entry(secret))
                {
                    relisting.insert(key, version);
                }
            }
            watcher::Event::InitDone => {
                if let Some(mut versions) = self.relisting.lock().take() {
                    versions.shrink_to_fit();
                    *self.live.write() = versions;
                }
                self.synced.send_replace(true);
            }
        }
    }

    /// The version of Secret `name` in `namespace` (`None`: not there).
    pub fn version(&self, namespace: &str, name: &str) -> Option<String> {
        self.live.read().get(&(namespace.to_owned(), name.to_owned())).cloned()
    }

    /// Waits until the first list is complete, or `deadline` passes.
    pub async fn synced(&self, deadline: Option<tokio::time::Instant>) -> bool {
        let mut synced = self.synced.subscribe();
        let wait = synced.wait_for(|done| *done);
        match deadline {
            None => wait.await.is_ok(),
            Some(deadline) => tokio::time::timeout_at(deadline, wait).await.is_ok_and(|r| r.is_ok()),
        }
    }
}

fn entry(secret: &PartialObjectMeta<Secret>) -> Option<((String, String), String)> {
    let version = secret.metadata.resource_version.clone()?;
    Some(((secret.namespace().unwrap_or_default(), secret.name_any()), version))
}

#[cfg(test)]
mod tests {
    use kube::api::ObjectMeta;

    use super::*;

    fn secret(name: &str, version: &str) -> PartialObjectMeta<Secret> {
        PartialObjectMeta {
            types: None,
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                resource_version: Some(version.into()),
                ..Default::default()
            },
            _phantom: std::marker::PhantomData,
        }
    }

    #[tokio::test]
    async fn follows_changes_deletions_and_relists_and_says_when_it_is_synced() {
        let written = WrittenVersions::default();
        let soon = || Some(tokio::time::Instant::now() + std::time::Duration::from_millis(10));
        assert!(!written.synced(soon()).await, "not synced before its first list");
        written.observe(&watcher::Event::Init);
        written.observe(&watcher::Event::InitApply(secret("a", "1")));
        written.observe(&watcher::Event::InitDone);
        assert!(written.synced(soon()).await);
        assert_eq!(written.version("ns", "a").as_deref(), Some("1"));

        written.observe(&watcher::Event::Apply(secret("a", "2")));
        written.observe(&watcher::Event::Apply(secret("b", "3")));
        assert_eq!(
            (written.version("ns", "a").as_deref(), written.version("ns", "b").as_deref()),
            (Some("2"), Some("3"))
        );
        written.observe(&watcher::Event::Delete(secret("b", "3")));
        assert_eq!(written.version("ns", "b"), None);

        // A relist replaces everything once it is complete.
        written.observe(&watcher::Event::Init);
        written.observe(&watcher::Event::InitApply(secret("c", "4")));
        assert_eq!(
            written.version("ns", "a").as_deref(),
            Some("2"),
            "the old view serves until the relist is done"
        );
        written.observe(&watcher::Event::InitDone);
        assert_eq!((written.version("ns", "a"), written.version("ns", "c").as_deref()), (None, Some("4")));
        assert_eq!(written.version("other", "c"), None);
    }
}
