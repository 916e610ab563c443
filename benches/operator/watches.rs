//! The operator's watches, held by the bench for the ladder's last rung: the
//! resources, the Secrets it labels and every Secret's metadata, each across
//! the whole cluster, as the operator opens them. Their events are decoded
//! into stores and nothing more, so the rung prices what the watches cost
//! the control plane, apart from what the operator does with the events.

use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, Client,
    core::PartialObjectMeta,
    runtime::{WatchStreamExt as _, reflector, watcher},
};
use tokio::task::JoinHandle;
use upstash_rotator::{
    crd::RedisPasswordRotation,
    secret::{MANAGED_BY, MANAGED_BY_LABEL},
};

use crate::Result;

pub struct Watches {
    tasks: Vec<JoinHandle<()>>,
}

impl Watches {
    /// Opens the three watches and waits until each has listed.
    pub async fn open(client: &Client) -> Result<Self> {
        let mut tasks = Vec::new();
        let (resources, writer) = reflector::store();
        let api: Api<RedisPasswordRotation> = Api::all(client.clone());
        let stream = watcher(api, watcher::Config::default()).default_backoff().reflect(writer);
        tasks.push(tokio::spawn(stream.for_each(|_| std::future::ready(()))));
        let (labelled, writer) = reflector::store();
        let api: Api<PartialObjectMeta<Secret>> = Api::all(client.clone());
        let selector = watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY}"));
        let stream = watcher(api, selector).default_backoff().reflect(writer);
        tasks.push(tokio::spawn(stream.for_each(|_| std::future::ready(()))));
        let (every, writer) = reflector::store();
        let api: Api<PartialObjectMeta<Secret>> = Api::all(client.clone());
        let stream = watcher(api, watcher::Config::default()).default_backoff().reflect(writer);
        tasks.push(tokio::spawn(stream.for_each(|_| std::future::ready(()))));
        let watches = Self { tasks };
        let limit = Duration::from_secs(120);
        tokio::time::timeout(limit, resources.wait_until_ready()).await??;
        tokio::time::timeout(limit, labelled.wait_until_ready()).await??;
        tokio::time::timeout(limit, every.wait_until_ready()).await??;
        Ok(watches)
    }
}

impl Drop for Watches {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}
