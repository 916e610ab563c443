//! How the operator's watches wait after an error: each watch, and each
//! controller's merged stream of them (kube-runtime's `trigger_backoff`).
//! The latter sleeps every watch of the controller at once after an error
//! of any one, its wait growing while errors follow each other without an
//! event between, as through an apiserver outage: at kube-runtime's default
//! a 30 s outage left a controller asleep for 20 s or more after the
//! apiserver was back (the test below, with the default in place).

use std::time::Duration;

use kube::runtime::{Controller, watcher::ExponentialBackoff};

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

/// `controller` with `watch_backoff` on its merged stream of watches.
pub fn backed_off<K>(controller: Controller<K>) -> Controller<K>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    controller.trigger_backoff(watch_backoff())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use futures::StreamExt as _;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::runtime::{controller::Action, reflector, utils::Backoff as _, watcher};
    use tokio::time::Instant;

    use super::*;

    /// How long after a 30 s outage the controller reconciles the first
    /// event, in virtual time. The watch fails at once while the apiserver
    /// is down and waits 3 s (its own backoff, at its cap) before each new
    /// try, as the operator's watches do.
    async fn reconciled_after_an_outage(
        controller: impl Fn(Controller<ConfigMap>) -> Controller<ConfigMap>,
    ) -> Duration {
        let (store, mut writer) = reflector::store::<ConfigMap>();
        let mut object = ConfigMap::default();
        object.metadata.name = Some("a".into());
        object.metadata.namespace = Some("ns".into());
        for event in
            [watcher::Event::Init, watcher::Event::InitApply(object.clone()), watcher::Event::InitDone]
        {
            writer.apply_watcher_event(&event);
        }
        let back = Instant::now() + Duration::from_secs(30);
        let events = futures::stream::unfold((Some(object), false), move |(object, retry)| async move {
            if retry {
                tokio::time::sleep(LONGEST).await;
            }
            if Instant::now() < back {
                return Some((Err(watcher::Error::NoResourceVersion), (object, true)));
            }
            // Back: the event, then nothing more.
            let object = object?;
            Some((Ok(object), (None, false)))
        })
        .chain(futures::stream::pending());
        let (seen, mut reconciled) = tokio::sync::mpsc::unbounded_channel();
        let run = controller(Controller::for_stream(events, store)).run(
            move |_, seen: Arc<tokio::sync::mpsc::UnboundedSender<Instant>>| async move {
                let _ = seen.send(Instant::now());
                Ok::<_, kube::Error>(Action::await_change())
            },
            |_, _, _| Action::await_change(),
            Arc::new(seen),
        );
        tokio::spawn(run.for_each(|_| std::future::ready(())));
        let limit = Duration::from_secs(600);
        let at = tokio::time::timeout(limit, reconciled.recv()).await.ok().flatten().expect("reconciled");
        at.saturating_duration_since(back)
    }

    #[tokio::test(start_paused = true)]
    async fn a_controller_reconciles_within_seconds_after_an_outage() {
        // At most one wait of the controller's (the cap and its jitter)
        // and one of the watch's own after the apiserver is back.
        let ours = reconciled_after_an_outage(backed_off).await;
        assert!(ours <= LONGEST * 3, "{ours:?}");
    }

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
