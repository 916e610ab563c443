//! What the bench sees of the resources and their Secrets: its own watch
//! caches, so waiting for thousands of resources costs no list per poll.

use std::time::{Duration, Instant};

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, Client,
    core::PartialObjectMeta,
    runtime::{WatchStreamExt as _, reflector, reflector::Store, watcher},
};
use tokio::task::JoinHandle;
use upstash_rotator::{
    crd::RedisPasswordRotation,
    secret::{MANAGED_BY, MANAGED_BY_LABEL, ROTATION_ANNOTATION},
};

use crate::Result;

pub struct Tracker {
    resources: Store<RedisPasswordRotation>,
    secrets: Store<PartialObjectMeta<Secret>>,
    _watched: Watched,
}

/// Watches kept in stores, each by a task of its own; dropped, they stop.
#[derive(Default)]
pub struct Watched(Vec<JoinHandle<()>>);

impl Watched {
    /// Starts a watch of `api` into a new store.
    pub fn store<K>(&mut self, api: Api<K>, config: watcher::Config) -> Store<K>
    where
        K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
        K::DynamicType: Default + Eq + std::hash::Hash + Clone + Send + Sync,
    {
        let (store, writer) = reflector::store();
        let stream = watcher(api, config).default_backoff().reflect(writer);
        self.0.push(tokio::spawn(stream.for_each(|_| std::future::ready(()))));
        store
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// Waits until `store` holds its first list, at most `limit`.
pub async fn listed<K>(store: &Store<K>, limit: Duration) -> Result<()>
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    tokio::time::timeout(limit, store.wait_until_ready()).await??;
    Ok(())
}

impl Tracker {
    pub async fn start(client: &Client, namespace: &str) -> Result<Self> {
        let mut watched = Watched::default();
        let resources = watched.store(Api::namespaced(client.clone(), namespace), watcher::Config::default());
        let labelled = watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY}"));
        let secrets = watched.store(Api::namespaced(client.clone(), namespace), labelled);
        listed(&resources, Duration::from_secs(60)).await?;
        listed(&secrets, Duration::from_secs(60)).await?;
        Ok(Self { resources, secrets, _watched: watched })
    }

    fn applied(resource: &RedisPasswordRotation, rotation: i64) -> bool {
        resource.status.as_ref().is_some_and(|s| {
            s.rotation == Some(rotation)
                && s.pending_rotation.is_none()
                && s.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True")
        })
    }

    /// How many resources whose name starts with `prefix` applied `rotation`.
    pub fn count_applied(&self, prefix: &str, rotation: i64) -> usize {
        self.resources
            .state()
            .iter()
            .filter(|r| r.metadata.name.as_deref().is_some_and(|n| n.starts_with(prefix)))
            .filter(|r| Self::applied(r, rotation))
            .count()
    }

    /// Waits until `count` resources starting with `prefix` applied
    /// `rotation`; how long that took.
    pub async fn wait_applied(
        &self,
        prefix: &str,
        count: usize,
        rotation: i64,
        limit: Duration,
    ) -> Result<Duration> {
        let started = Instant::now();
        loop {
            let done = self.count_applied(prefix, rotation);
            if done >= count {
                return Ok(started.elapsed());
            }
            if started.elapsed() > limit {
                return Err(format!(
                    "{done} of {count} resources applied rotation {rotation} within {limit:?}"
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The rotation the resource's status records as applied.
    pub fn status_rotation(&self, namespace: &str, name: &str) -> Option<i64> {
        let key = reflector::ObjectRef::new(name).within(namespace);
        let resource = self.resources.get(&key)?;
        Self::applied(&resource, resource.status.as_ref()?.rotation?)
            .then(|| resource.status.as_ref()?.rotation)?
    }

    /// The rotation the Secret's annotation says it holds.
    pub fn secret_rotation(&self, namespace: &str, name: &str) -> Option<i64> {
        let key = reflector::ObjectRef::new(name).within(namespace);
        self.secrets.get(&key)?.metadata.annotations.as_ref()?.get(ROTATION_ANNOTATION)?.parse().ok()
    }
}
