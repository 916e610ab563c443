//! The opt-in drift check: a resource at rest is compared with Upstash again
//! every `interval` (a password reset in the Upstash console is otherwise
//! found only when something else changes). Off by default: at rest, the
//! operator makes no Upstash call at all.
//!
//! The checks are spread over the interval (each resource at its own offset,
//! from its uid) and every Upstash account has a budget of calls per minute
//! shared by all its resources, so a large installation never bursts.

use std::{
    collections::HashMap,
    hash::{Hash as _, Hasher as _},
    num::NonZeroU32,
    time::{Duration, Instant},
};

use governor::{
    DefaultKeyedRateLimiter, Quota,
    clock::{Clock as _, DefaultClock},
};
use parking_lot::Mutex;

use crate::cache::{CachedRotation, Key};

/// How often, and how many calls per account.
#[derive(Clone, Copy, Debug)]
pub struct DriftSettings {
    pub interval: Duration,
    /// Drift checks per minute allowed on one Upstash account.
    pub per_account_per_minute: NonZeroU32,
}

pub struct DriftCheck {
    interval: Duration,
    budget: DefaultKeyedRateLimiter<Key>,
    clock: DefaultClock,
    /// When each resource (by uid) last had its credentials read or written.
    checked: Mutex<HashMap<String, Instant>>,
}

/// What a resource at rest does about drift now.
#[derive(Debug, PartialEq, Eq)]
pub enum Drift {
    /// Not due: rest, and wake up after this long.
    NotDue(Duration),
    /// Due, and the account's budget has room: check now.
    Check,
    /// Due, but the account's budget is spent: try again after this long.
    Throttled(Duration),
}

impl DriftCheck {
    pub fn new(settings: DriftSettings) -> Self {
        Self {
            interval: settings.interval,
            budget: DefaultKeyedRateLimiter::hashmap(Quota::per_minute(settings.per_account_per_minute)),
            clock: DefaultClock::default(),
            checked: Mutex::default(),
        }
    }

    /// Whether the resource at rest is due for a check. A resource this
    /// process has not checked yet is treated as checked at a point of the
    /// last interval given by its uid, so a restart spreads the checks
    /// instead of making them all at once.
    pub fn poll(&self, resource: &CachedRotation) -> Drift {
        let uid = resource.metadata.uid.clone().unwrap_or_default();
        let now = Instant::now();
        let spread = |uid: &str| now.checked_sub(self.offset(uid)).unwrap_or(now);
        let last = *self.checked.lock().entry(uid.clone()).or_insert_with(|| spread(&uid));
        let due = last + self.interval;
        if due > now {
            return Drift::NotDue(due - now);
        }
        match self.budget.check_key(&account_of(resource)) {
            Ok(()) => Drift::Check,
            Err(not_until) => Drift::Throttled(not_until.wait_time_from(self.clock.now())),
        }
    }

    /// The resource's credentials were just read from Upstash or written.
    pub fn checked(&self, uid: &str) {
        self.checked.lock().insert(uid.to_owned(), Instant::now());
    }

    /// The resource is gone.
    pub fn forget(&self, uid: &str) {
        self.checked.lock().remove(uid);
    }

    /// A stable point within the interval for `uid`.
    fn offset(&self, uid: &str) -> Duration {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        uid.hash(&mut hasher);
        let nanos = self.interval.as_nanos().max(1);
        Duration::from_nanos(u64::try_from(u128::from(hasher.finish()) % nanos).unwrap_or(0))
    }
}

/// The Upstash account a resource's calls count against: its account, or
/// its key Secret.
fn account_of(resource: &CachedRotation) -> Key {
    Key::of(resource)
        .into_iter()
        .find(|key| matches!(key, Key::Account { .. } | Key::KeySecret { .. }))
        .unwrap_or_else(|| Key::Database(resource.spec.database_id.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{RedisPasswordRotation, RedisPasswordRotationSpec};

    fn resource(uid: &str, key: &str) -> CachedRotation {
        let mut r = RedisPasswordRotation::new(uid, RedisPasswordRotationSpec::new("db", key));
        r.metadata.namespace = Some("ns".into());
        r.metadata.uid = Some(uid.into());
        CachedRotation::of(&r)
    }

    fn check(interval: Duration, per_minute: u32) -> DriftCheck {
        let per_account_per_minute = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
        DriftCheck::new(DriftSettings { interval, per_account_per_minute })
    }

    #[test]
    fn a_restart_spreads_the_checks_over_the_interval() {
        let hour = Duration::from_secs(3600);
        let drift = check(hour, 60);
        let waits: Vec<Duration> = (0..100)
            .map(|i| match drift.poll(&resource(&format!("uid-{i}"), "key")) {
                Drift::NotDue(wait) => wait,
                other => panic!("nothing is due right after a start: {other:?}"),
            })
            .collect();
        assert!(waits.iter().all(|w| *w <= hour));
        let first_half = waits.iter().filter(|w| **w < hour / 2).count();
        assert!(
            (25..=75).contains(&first_half),
            "spread, not bunched: {first_half} of 100 in the first half"
        );
        // The same resource keeps its point.
        assert!(matches!(drift.poll(&resource("uid-0", "key")), Drift::NotDue(w) if w <= waits[0]));
    }

    #[test]
    fn due_checks_share_their_accounts_budget() {
        let drift = check(Duration::ZERO, 2);
        let polls: Vec<Drift> = (0..3).map(|i| drift.poll(&resource(&format!("a{i}"), "key-a"))).collect();
        assert_eq!(polls[..2], [Drift::Check, Drift::Check]);
        assert!(
            matches!(polls[2], Drift::Throttled(wait) if wait > Duration::ZERO && wait <= Duration::from_secs(30))
        );
        // Another account has its own budget.
        assert_eq!(drift.poll(&resource("b0", "key-b")), Drift::Check);
    }

    #[test]
    fn a_check_restarts_the_interval() {
        let drift = check(Duration::from_secs(60), 60);
        drift.checked("uid");
        assert!(
            matches!(drift.poll(&resource("uid", "key")), Drift::NotDue(w) if w > Duration::from_secs(59))
        );
    }
}
