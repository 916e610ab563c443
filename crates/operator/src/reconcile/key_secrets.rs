//! The API-key Secrets last read, each at its exact `resourceVersion`. A
//! version names one state of one object, so while the watch still reports
//! that version the copy is what a read would return. Many resources share
//! one key: a burst of rotations reads it once, not once per rotation.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::Secret;
use parking_lot::Mutex;

use super::ops::{Freshness, KubeOps};

/// How many key Secrets are kept (a few accounts is the common case, a key
/// per team namespace the large one; past this, an arbitrary one makes
/// room for each new one).
const KEPT: usize = 1024;

/// Keyed by namespace and name.
#[derive(Default)]
pub struct KeySecrets(Mutex<HashMap<(String, String), Secret>>);

impl KeySecrets {
    /// The key Secret `namespace/name`: the copy when it is the version the
    /// watch delivered, else a read. A read from etcd (`Latest`: nothing
    /// delivered yet) is never answered from the copy.
    pub async fn get<K: KubeOps>(
        &self,
        kube: &K,
        namespace: &str,
        name: &str,
        freshness: Freshness<'_>,
    ) -> kube::Result<Option<Secret>> {
        let key = (namespace.to_owned(), name.to_owned());
        if let Freshness::NotOlderThan(delivered) = freshness
            && let Some(kept) =
                self.0.lock().get(&key).filter(|s| s.metadata.resource_version.as_deref() == Some(delivered))
        {
            return Ok(Some(kept.clone()));
        }
        let read = kube.get_secret(namespace, name, freshness).await?;
        let mut kept = self.0.lock();
        match &read {
            Some(secret) => {
                if kept.len() >= KEPT
                    && !kept.contains_key(&key)
                    && let Some(any) = kept.keys().next().cloned()
                {
                    kept.remove(&any);
                }
                let mut copy = secret.clone();
                crate::cache::trim::unread(&mut copy.metadata);
                kept.insert(key, copy);
            }
            None => {
                kept.remove(&key);
            }
        }
        Ok(read)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::fake::{Call, Fake, api_key_secret};

    fn reads(fake: &Fake) -> usize {
        fake.world().calls.iter().filter(|c| matches!(c, Call::GetSecret(_))).count()
    }

    #[tokio::test]
    async fn a_key_is_read_again_only_when_its_watch_delivers_another_version() {
        let fake = Fake::default();
        fake.put_secret(api_key_secret("key"));
        let version =
            |fake: &Fake| fake.world().secrets["key"].metadata.resource_version.clone().unwrap_or_default();
        let kept = KeySecrets::default();
        let first = version(&fake);
        for _ in 0..3 {
            let got = kept.get(&fake, "ns", "key", Freshness::NotOlderThan(&first)).await;
            assert_eq!(got.ok().flatten().and_then(|s| s.metadata.resource_version), Some(first.clone()));
        }
        assert_eq!(reads(&fake), 1, "the same delivered version is read once");

        // Nothing delivered: etcd answers, every time.
        let _ = kept.get(&fake, "ns", "key", Freshness::Latest).await;
        assert_eq!(reads(&fake), 2);

        // A new version delivered: read, and that copy kept.
        fake.put_secret(api_key_secret("key"));
        let second = version(&fake);
        for _ in 0..2 {
            let got = kept.get(&fake, "ns", "key", Freshness::NotOlderThan(&second)).await;
            assert_eq!(got.ok().flatten().and_then(|s| s.metadata.resource_version), Some(second.clone()));
        }
        assert_eq!(reads(&fake), 3);

        // The same name in another namespace is another Secret.
        let _ = kept.get(&fake, "other", "key", Freshness::NotOlderThan(&second)).await;
        assert_eq!(reads(&fake), 4);
    }

    #[tokio::test]
    async fn a_deleted_key_is_forgotten_and_the_copies_are_bounded() {
        let fake = Fake::default();
        fake.put_secret(api_key_secret("key"));
        let version = fake.world().secrets["key"].metadata.resource_version.clone().unwrap_or_default();
        let kept = KeySecrets::default();
        for n in 0..KEPT + 10 {
            let _ = kept.get(&fake, &format!("ns-{n}"), "key", Freshness::NotOlderThan(&version)).await;
        }
        assert_eq!(kept.0.lock().len(), KEPT);

        let ns0 = ("ns-0".to_owned(), "key".to_owned());
        let _ = kept.get(&fake, "ns-0", "key", Freshness::NotOlderThan(&version)).await;
        assert!(kept.0.lock().contains_key(&ns0));
        fake.world().secrets.remove("key");
        let gone = kept.get(&fake, "ns-0", "key", Freshness::Latest).await;
        assert!(matches!(gone, Ok(None)));
        assert!(!kept.0.lock().contains_key(&ns0), "a Secret that is gone is not kept");
    }
}
