//! What every reconcile shares: the doors to the apiserver and Upstash, the
//! caches used to spot database conflicts, credentials awaiting their Secret
//! write, and per-resource backoff.

use std::{collections::HashMap, sync::Arc, time::Duration};

use crate::{cache::Caches, leader::Fence, metrics::Metrics};
use parking_lot::Mutex;
use upstash_api::{DatabaseCredentials, RedisDatabase, UpstashClient};

use super::ops::Cluster;

/// A reset response whose Secret write has not succeeded yet. Dropping it
/// would lose the only copy of a password when Credential Protection is on.
#[derive(Clone, Debug)]
pub struct Remembered {
    pub target: i64,
    pub database: RedisDatabase,
    pub credentials: DatabaseCredentials,
}

/// Generic over the doors so tests can pass recording fakes.
pub struct Context<K = Cluster, U = UpstashClient> {
    pub kube: K,
    pub upstash: U,
    pub metrics: Arc<Metrics>,
    /// Caches of every watched scope: resources at rest are recognised
    /// there, and other resources on a database are found there.
    pub caches: Caches,
    /// How long after an intent was recorded a reset sent for it may still be
    /// answered (longer than any Upstash request may take).
    pub reset_window: Duration,
    /// This process, as recorded with each reset attempt.
    pub identity: String,
    /// Closed once this process may have lost its lease.
    pub fence: Fence,
    /// `run --dry-run`: plans are reported, never executed.
    pub dry_run: bool,
    /// How long the check after a rotation waits for the reset to propagate.
    pub verify_within: Duration,
    /// Where `ClusterUpstashAccount` Secrets live; `None`: such accounts
    /// are turned off.
    pub cluster_namespace: Option<String>,
    /// The opt-in drift check of resources at rest.
    pub drift: Option<super::drift::DriftCheck>,
    /// Keyed by resource uid.
    remembered: Mutex<HashMap<String, Remembered>>,
    /// Consecutive failures and the retry gate, keyed by resource uid.
    failures: Mutex<HashMap<String, Failure>>,
    /// Versions replaced by this process's writes, to tell caches behind
    /// them.
    pub replaced: super::replaced::Replaced,
    /// API-key Secrets as last read, reused while their version holds.
    pub key_secrets: super::key_secrets::KeySecrets,
}

/// What a resource and its Secrets looked like when a reconcile started:
/// a later reconcile that sees the same is an echo of the operator's own
/// status write, not a change worth an early retry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fingerprint {
    pub generation: Option<i64>,
    pub deleting: bool,
    pub credentials_secret: Option<String>,
    /// The `spec.accountRef` account's uid and generation.
    pub account: Option<String>,
    pub target_secret: Option<String>,
}

#[derive(Debug)]
struct Failure {
    count: u32,
    /// `None` when the failure happened before the fingerprint was taken.
    fingerprint: Option<Fingerprint>,
    retry_at: tokio::time::Instant,
}

/// First retry delay after a failure; doubled per failure up to `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_secs(2);
const MAX_BACKOFF: Duration = Duration::from_secs(300);

impl<K, U> Context<K, U> {
    pub fn new(kube: K, upstash: U, caches: Caches, metrics: Arc<Metrics>) -> Self {
        Self {
            kube,
            metrics,
            upstash,
            caches,
            reset_window: Duration::from_secs(35),
            verify_within: Duration::from_secs(10),
            identity: String::new(),
            fence: Fence::unfenced(),
            dry_run: false,
            cluster_namespace: None,
            drift: None,
            remembered: Mutex::default(),
            failures: Mutex::default(),
            replaced: Default::default(),
            key_secrets: Default::default(),
        }
    }

    /// Sets `reset_window` from the Upstash request timeout.
    pub fn with_request_timeout(mut self, request_timeout: Duration) -> Self {
        self.reset_window = request_timeout + Duration::from_secs(5);
        self
    }

    /// Who this process is, and the fence its writes and resets pass.
    pub fn with_identity(mut self, identity: String, fence: Fence) -> Self {
        self.identity = identity;
        self.fence = fence;
        self
    }

    /// Reports what reconciles would do instead of doing it.
    pub fn with_dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    /// Compares resources at rest with Upstash again, now and then.
    pub fn with_drift_check(mut self, settings: Option<super::drift::DriftSettings>) -> Self {
        self.drift = settings.map(super::drift::DriftCheck::new);
        self
    }

    /// Lets resources use `ClusterUpstashAccount`s, whose Secrets live in
    /// `namespace`.
    pub fn with_cluster_namespace(mut self, namespace: Option<String>) -> Self {
        self.cluster_namespace = namespace;
        self
    }

    pub fn remember(&self, uid: &str, remembered: Remembered) {
        self.remembered.lock().insert(uid.to_owned(), remembered);
    }

    pub fn remembered(&self, uid: &str) -> Option<Remembered> {
        self.remembered.lock().get(uid).cloned()
    }

    pub fn forget(&self, uid: &str) {
        self.remembered.lock().remove(uid);
    }

    /// Records a failure and returns how long to wait before the next try:
    /// exponential backoff, at least `at_least` when the server asked for
    /// it, and at most `at_most` when the failure must not wait long.
    pub fn failed(
        &self,
        uid: &str,
        fingerprint: Option<Fingerprint>,
        at_least: Option<Duration>,
        at_most: Option<Duration>,
    ) -> Duration {
        let mut failures = self.failures.lock();
        let count = failures.get(uid).map_or(0, |f| f.count);
        let backoff = FIRST_BACKOFF.saturating_mul(1u32 << count.min(16)).min(MAX_BACKOFF);
        let delay = at_least.map_or(backoff, |d| d.max(backoff));
        let delay = at_most.map_or(delay, |d| d.min(delay));
        let retry_at = tokio::time::Instant::now() + delay;
        failures.insert(uid.to_owned(), Failure { count: count.saturating_add(1), fingerprint, retry_at });
        delay
    }

    /// How long to hold back a reconcile that sees nothing new since the last
    /// failure; `None` when it may run now.
    pub fn hold_back(&self, uid: &str, fingerprint: &Fingerprint) -> Option<Duration> {
        let failures = self.failures.lock();
        let failure = failures.get(uid).filter(|f| f.fingerprint.as_ref() == Some(fingerprint))?;
        failure.retry_at.checked_duration_since(tokio::time::Instant::now()).filter(|d| !d.is_zero())
    }

    pub fn succeeded(&self, uid: &str) {
        self.failures.lock().remove(uid);
    }

    /// Drops the backoff of resources no cache holds any more (deleted ones):
    /// a long-running operator must not grow with every resource it has ever
    /// seen. Reset answers are never dropped on the cache's word (a relist
    /// can briefly miss an object); they go when a read confirms the resource
    /// is gone. With `deletionPolicy: Retain` a resource cannot go while its
    /// finalizer guards one; with `Delete` its Secret goes with it.
    pub fn prune_gone(&self) {
        let live: std::collections::HashSet<String> = self
            .caches
            .resources
            .iter()
            .flat_map(|s| s.state())
            .filter_map(|r| r.metadata.uid.clone())
            .collect();
        self.failures.lock().retain(|uid, _| live.contains(uid));
    }

    /// Drops everything kept for a resource that is gone.
    pub fn forget_resource(&self, uid: &str) {
        self.forget(uid);
        self.succeeded(uid);
        self.replaced.forget(uid);
        if let Some(drift) = &self.drift {
            drift.forget(uid);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        cache::CachedRotation,
        crd::{RedisPasswordRotation, RedisPasswordRotationSpec},
    };
    use kube::runtime::{
        reflector::{self, store::Writer},
        watcher,
    };

    fn resource(uid: &str) -> CachedRotation {
        let mut r = RedisPasswordRotation::new(uid, RedisPasswordRotationSpec::new("db", "api"));
        r.metadata.namespace = Some("ns".into());
        r.metadata.uid = Some(uid.into());
        CachedRotation::of(&r)
    }

    #[tokio::test]
    async fn what_is_kept_for_a_deleted_resource_goes_with_it() {
        let (store, mut writer): (_, Writer<CachedRotation>) = reflector::store();
        writer.apply_watcher_event(&watcher::Event::Apply(resource("live")));
        writer.apply_watcher_event(&watcher::Event::Apply(resource("gone")));
        // No doors: nothing here reaches the apiserver or Upstash.
        let caches = Caches { resources: vec![store], ..Caches::default() };
        let ctx = Context::new((), (), caches, Arc::default());
        let credentials = DatabaseCredentials {
            password: "p".into(),
            rest_token: "t".into(),
            read_only_rest_token: "r".into(),
        };
        let database = RedisDatabase {
            id: "db".into(),
            host: "h".into(),
            port: 6379,
            tls: true,
            rest_url: None,
            name: Some("db-name".into()),
            credentials: None,
        };
        for uid in ["live", "gone"] {
            ctx.remember(
                uid,
                Remembered { target: 1, database: database.clone(), credentials: credentials.clone() },
            );
            ctx.failed(uid, None, None, None);
        }
        writer.apply_watcher_event(&watcher::Event::Delete(resource("gone")));
        ctx.prune_gone();
        assert!(ctx.remembered("gone").is_some(), "an answer is kept until a read confirms the deletion");
        ctx.forget_resource("gone");
        assert!(ctx.remembered("live").is_some() && ctx.remembered("gone").is_none());
        let failures = ctx.failures.lock();
        assert!(failures.contains_key("live") && !failures.contains_key("gone"));
    }
}
