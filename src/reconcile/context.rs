//! What every reconcile shares: clients, the event recorder, the caches used
//! to spot database conflicts, credentials awaiting their Secret write, and
//! per-resource backoff.

use std::{
    collections::HashMap,
    sync::{Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use kube::{
    Client,
    runtime::{events::Recorder, reflector::Store},
};

use crate::{
    crd::RedisPasswordRotation,
    upstash::{DatabaseCredentials, RedisDatabase, UpstashClient},
};

/// A reset response whose Secret write has not succeeded yet. Dropping it
/// would lose the only copy of a password when Credential Protection is on.
#[derive(Clone, Debug)]
pub struct Remembered {
    pub target: i64,
    pub database: RedisDatabase,
    pub credentials: DatabaseCredentials,
}

pub struct Context {
    pub client: Client,
    pub upstash: UpstashClient,
    pub recorder: Recorder,
    /// Caches of every watched scope, to find other resources on a database.
    pub stores: Vec<Store<RedisPasswordRotation>>,
    /// Keyed by resource uid.
    remembered: Mutex<HashMap<String, Remembered>>,
    /// Consecutive failures, keyed by resource uid.
    failures: Mutex<HashMap<String, u32>>,
}

/// First retry delay after a failure; doubled per failure up to `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_secs(2);
const MAX_BACKOFF: Duration = Duration::from_secs(300);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Each critical section is one map operation; a panic cannot leave it half done.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Context {
    pub fn new(
        client: Client,
        upstash: UpstashClient,
        recorder: Recorder,
        stores: Vec<Store<RedisPasswordRotation>>,
    ) -> Self {
        Self { client, upstash, recorder, stores, remembered: Mutex::default(), failures: Mutex::default() }
    }

    pub fn remember(&self, uid: &str, remembered: Remembered) {
        lock(&self.remembered).insert(uid.to_owned(), remembered);
    }

    pub fn remembered(&self, uid: &str) -> Option<Remembered> {
        lock(&self.remembered).get(uid).cloned()
    }

    pub fn forget(&self, uid: &str) {
        lock(&self.remembered).remove(uid);
    }

    /// Records a failure and returns how long to wait before the next try.
    pub fn backoff(&self, uid: &str) -> Duration {
        let mut failures = lock(&self.failures);
        let n = failures.entry(uid.to_owned()).or_default();
        let delay = FIRST_BACKOFF.saturating_mul(1u32 << (*n).min(16)).min(MAX_BACKOFF);
        *n = n.saturating_add(1);
        delay
    }

    pub fn succeeded(&self, uid: &str) {
        lock(&self.failures).remove(uid);
    }
}
