//! One watch of every Secret's metadata per scope, but those the operator
//! wrote, shared by the resource controller (key Secrets) and the account
//! controller (credentials Secrets). Neither kind carries a label of ours,
//! so both need every other Secret; a second watch would cost the apiserver
//! a second event for each Secret write and a second list of every Secret at
//! each start.

use std::sync::Arc;

use futures::{SinkExt as _, Stream, StreamExt as _, TryStreamExt as _, channel::mpsc};
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api,
    core::PartialObjectMeta,
    runtime::{WatchStreamExt as _, reflector::Store, watcher},
};
use parking_lot::Mutex;

use super::{CachedRotation, Index, Key, KeyVersions, SECRET_LIST_PAGE, after_listed, trim};

/// Secrets queued for the account controller before the watch waits for it:
/// a relist passes every Secret, and waiting bounds the memory that takes.
const ACCOUNT_QUEUE: usize = 256;

/// Every event of the watch (a relist's included), for the account
/// controller; name, namespace and version only.
pub type AccountFeed = mpsc::Receiver<watcher::Event<PartialObjectMeta<Secret>>>;

/// The sending half of an [`AccountFeed`].
pub type AccountSender = mpsc::Sender<watcher::Event<PartialObjectMeta<Secret>>>;

/// A feed for one scope's account controller.
pub fn account_feed() -> (AccountSender, AccountFeed) {
    mpsc::channel(ACCOUNT_QUEUE)
}

/// The key Secrets some resource names whose version changed, or that are
/// gone, since last seen (see `KeyVersions`); every Secret seen goes to
/// `accounts` first. Listed once `resources` holds its first list
/// (`after_listed`).
pub fn key_secret_changes(
    api: Api<PartialObjectMeta<Secret>>,
    resources: Store<CachedRotation>,
    keys: Arc<Mutex<KeyVersions>>,
    index: Arc<Index>,
    accounts: AccountSender,
) -> impl Stream<Item = Result<PartialObjectMeta<Secret>, watcher::Error>> + Send + 'static {
    let config = watcher::Config::default().labels(&super::others_selector()).page_size(SECRET_LIST_PAGE);
    let events = after_listed(vec![resources], watcher(api, config)).backoff(super::retry::watch_backoff());
    let named = move |namespace: &str, name: &str| {
        let key = Key::KeySecret { namespace: namespace.into(), name: name.into() };
        !index.lookup(&key).is_empty()
    };
    split(events, keys, named, accounts)
}

/// The watch's events, trimmed: each to `accounts`, then the key
/// Secrets `named` that changed. A closed feed (no account controller, as
/// in a dry run) is skipped; a full one makes the watch wait.
fn split<S>(
    events: S,
    keys: Arc<Mutex<KeyVersions>>,
    named: impl Fn(&str, &str) -> bool + Send + 'static,
    accounts: AccountSender,
) -> impl Stream<Item = Result<PartialObjectMeta<Secret>, watcher::Error>> + Send + 'static
where
    S: Stream<Item = Result<watcher::Event<PartialObjectMeta<Secret>>, watcher::Error>> + Send + 'static,
{
    events
        .modify(|secret| trim::name_and_version(&mut secret.metadata))
        .and_then(move |event| {
            let mut accounts = accounts.clone();
            async move {
                if !accounts.is_closed() {
                    // An error is a feed closed meanwhile: nothing to tell.
                    let _ = accounts.send(event.clone()).await;
                }
                Ok(event)
            }
        })
        .map_ok(move |event| {
            let changed = keys.lock().changed(event, &named);
            futures::stream::iter(changed.into_iter().map(Ok))
        })
        .try_flatten()
}

/// The account feed as a watch's events.
pub fn events(
    feed: AccountFeed,
) -> impl Stream<Item = Result<watcher::Event<PartialObjectMeta<Secret>>, watcher::Error>> + Send + 'static {
    feed.map(Ok)
}

#[cfg(test)]
mod tests {
    use kube::ResourceExt as _;

    use super::*;

    fn secret(name: &str, version: &str) -> PartialObjectMeta<Secret> {
        let mut secret = PartialObjectMeta::<Secret>::default();
        secret.metadata.namespace = Some("apps".into());
        secret.metadata.name = Some(name.into());
        secret.metadata.resource_version = Some(version.into());
        secret.metadata.labels = Some([("team".to_owned(), "cache".to_owned())].into());
        secret
    }

    fn events() -> impl Stream<Item = Result<watcher::Event<PartialObjectMeta<Secret>>, watcher::Error>> + Send
    {
        futures::stream::iter(
            [
                watcher::Event::Init,
                watcher::Event::InitApply(secret("key", "1")),
                watcher::Event::InitApply(secret("other", "1")),
                watcher::Event::InitDone,
                watcher::Event::Apply(secret("other", "2")),
                watcher::Event::Apply(secret("key", "3")),
                watcher::Event::Delete(secret("other", "4")),
            ]
            .map(Ok),
        )
    }

    fn names(secrets: &[PartialObjectMeta<Secret>]) -> Vec<(String, String)> {
        secrets.iter().map(|s| (s.name_any(), s.resource_version().unwrap_or_default())).collect()
    }

    fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
        expected.iter().map(|(name, version)| ((*name).to_owned(), (*version).to_owned())).collect()
    }

    #[tokio::test]
    async fn the_accounts_see_every_secret_and_the_resources_only_changed_keys() {
        let (sender, feed) = account_feed();
        let keys = Arc::new(Mutex::new(KeyVersions::default()));
        let changed: Vec<_> =
            split(events(), keys, |_, name| name == "key", sender).try_collect().await.unwrap_or_default();
        assert_eq!(names(&changed), pairs(&[("key", "3")]));
        let fed: Vec<_> = feed.collect().await;
        let relist =
            |event: &watcher::Event<_>| matches!(event, watcher::Event::Init | watcher::Event::InitDone);
        assert_eq!(fed.iter().filter(|event| relist(event)).count(), 2, "a relist's start and end reach it");
        let fed: Vec<_> = futures::stream::iter(fed.into_iter().map(Ok::<_, watcher::Error>))
            .touched_objects()
            .try_collect()
            .await
            .unwrap_or_default();
        assert_eq!(
            names(&fed),
            pairs(&[("key", "1"), ("other", "1"), ("other", "2"), ("key", "3"), ("other", "4")])
        );
        assert!(fed.iter().all(|s| s.metadata.labels.is_none()), "the feed holds trimmed metadata only");
    }

    #[tokio::test]
    async fn a_closed_feed_does_not_stop_the_key_secrets() {
        let (sender, feed) = account_feed();
        drop(feed);
        let keys = Arc::new(Mutex::new(KeyVersions::default()));
        let changed: Vec<_> =
            split(events(), keys, |_, name| name == "key", sender).try_collect().await.unwrap_or_default();
        assert_eq!(names(&changed), pairs(&[("key", "3")]));
    }
}
