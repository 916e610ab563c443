//! How the operator's watches wait after an error.

use std::time::Duration;

use kube::runtime::watcher::ExponentialBackoff;

/// The first wait after an error.
const FIRST: Duration = Duration::from_millis(400);
/// The longest wait, before jitter (which adds up to as much again).
const LONGEST: Duration = Duration::from_secs(3);

/// kube-runtime's default doubles from 0.8 s up to 30 s, and starts over
/// only after an event or 120 s. Across an apiserver restart a watch meets
/// errors in a row (refused connections, then a 410 for the version it
/// resumes from), so it could sleep 10 to 25 s after the apiserver was back
/// while raised counters went unseen (make chaos, apiserver-restart). With
/// this cap a watch is back within seconds; an outage costs each watch one
/// request every 3 to 6 s.
pub fn watch_backoff() -> ExponentialBackoff {
    backon::ExponentialBuilder::default()
        .with_min_delay(FIRST)
        .with_max_delay(LONGEST)
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .into()
}

#[cfg(test)]
mod tests {
    use kube::runtime::utils::Backoff as _;

    use super::*;

    #[test]
    fn a_watch_never_waits_more_than_twice_the_cap_and_starts_over_after_an_event() {
        let mut backoff = watch_backoff();
        let waits: Vec<Duration> = backoff.by_ref().take(50).collect();
        assert_eq!(waits.len(), 50, "it never gives up");
        assert!(waits[0] < FIRST * 2, "first wait {:?}", waits[0]);
        assert!(waits.iter().all(|w| *w <= LONGEST * 2), "{waits:?}");
        assert!(waits[10..].iter().all(|w| *w >= LONGEST), "capped, not shrinking: {waits:?}");
        backoff.reset();
        assert!(backoff.next().is_some_and(|w| w < FIRST * 2));
    }
}
