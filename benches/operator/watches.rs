//! The operator's watches, held by the bench for the ladder's last rung: the
//! resources, the Secrets it labels and every other Secret's metadata, each across
//! the whole cluster, as the operator opens them. Their events are decoded
//! into stores and nothing more, so the rung prices what the watches cost
//! the control plane, apart from what the operator does with the events.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client, core::PartialObjectMeta, runtime::watcher};
use upstash_rotator::{cache, crd::RedisPasswordRotation};

use crate::{
    Result,
    tracker::{Watched, listed},
};

/// Opens the three watches (open until dropped) and waits until each has
/// listed.
pub async fn open(client: &Client) -> Result<Watched> {
    let mut watched = Watched::default();
    let resources: Api<RedisPasswordRotation> = Api::all(client.clone());
    let resources = watched.store(resources, watcher::Config::default());
    let secrets: Api<PartialObjectMeta<Secret>> = Api::all(client.clone());
    let selector = watcher::Config::default().labels(&cache::written_selector());
    let labelled = watched.store(secrets.clone(), selector);
    let every = watched.store(secrets, watcher::Config::default().labels(&cache::others_selector()));
    let limit = Duration::from_secs(120);
    listed(&resources, limit).await?;
    listed(&labelled, limit).await?;
    listed(&every, limit).await?;
    Ok(watched)
}
