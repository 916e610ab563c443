//! How the operator's watches wait after an error. Each watch waits on its
//! own (`watch_backoff`) and keeps its errors to itself (`errors_logged`):
//! a controller's merged stream of watches (kube-runtime's
//! `trigger_backoff`) sleeps every watch of the controller at once after an
//! error of any one, its wait growing while errors follow each other without
//! an event between, as through an apiserver outage. At kube-runtime's
//! default a 30 s outage left a controller asleep for 20 s or more after
//! the apiserver was back. With a short wait there, but errors still let
//! through, each watch's 410 after a restart added one more wait: 13 s in
//! all in `make chaos`, 30 s or more for five watches in the test below.

use std::time::Duration;

use futures::{Stream, StreamExt as _};
use kube::runtime::{
    Controller,
    watcher::{self, ExponentialBackoff},
};

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

/// `controller` with `watch_backoff` on its merged stream of watches. Its
/// watches keep their errors out of it (`errors_logged`): this is for one
/// that would not.
pub fn backed_off<K>(controller: Controller<K>) -> Controller<K>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    controller.trigger_backoff(watch_backoff())
}

/// `events`, one watch of a controller, with its errors logged and not
/// passed on. The watch has already waited after each (its own
/// `watch_backoff`, applied before this), so dropping them makes no busy
/// loop; passed on, each would also put the controller's other watches to
/// sleep. After an apiserver restart every watch meets a 410 for the
/// version it resumes from, one after the other: a raised counter went
/// unseen for 13 s (make chaos, apiserver-restart, seed 718373098).
pub fn errors_logged<T, S>(
    events: S,
    watch: &'static str,
) -> impl Stream<Item = Result<T, watcher::Error>> + Send
where
    S: Stream<Item = Result<T, watcher::Error>> + Send,
    T: Send,
{
    events.filter_map(move |item| {
        std::future::ready(match item {
            Ok(object) => Some(Ok(object)),
            Err(error) => {
                tracing::warn!(watch, error = %error, "watch failed; retrying");
                None
            }
        })
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use futures::stream::BoxStream;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::runtime::{
        controller::Action,
        reflector::{self, ObjectRef},
        utils::Backoff as _,
    };
    use tokio::time::Instant;

    use super::*;

    /// One watch through a 30 s outage: it fails at once while the apiserver
    /// is down, and once more when it is back (the 410 for the version it
    /// resumes from), waiting `LONGEST` (its own backoff at its cap) before
    /// each next try; then it delivers `object`, if any.
    fn through_an_outage(
        object: Option<ConfigMap>,
        back: Instant,
    ) -> BoxStream<'static, Result<ConfigMap, watcher::Error>> {
        futures::stream::unfold((object, false, false), move |(object, retry, gone)| async move {
            if retry {
                tokio::time::sleep(LONGEST).await;
            }
            if Instant::now() < back || !gone {
                let expired = Instant::now() >= back;
                return Some((Err(watcher::Error::NoResourceVersion), (object, true, expired)));
            }
            let object = object?;
            Some((Ok(object), (None, false, true)))
        })
        .chain(futures::stream::pending())
        .boxed()
    }

    /// How long after a 30 s outage a controller of `watches` watches
    /// reconciles the first event (of the first watch), in virtual time.
    async fn reconciled_after_an_outage(
        watches: usize,
        errors: impl Fn(
            BoxStream<'static, Result<ConfigMap, watcher::Error>>,
        ) -> BoxStream<'static, Result<ConfigMap, watcher::Error>>,
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
        let main = errors(through_an_outage(Some(object), back));
        let mut built = controller(Controller::for_stream(main, store));
        for _ in 1..watches {
            built = built
                .watches_stream(errors(through_an_outage(None, back)), |o| Some(ObjectRef::from_obj(&o)));
        }
        let (seen, mut reconciled) = tokio::sync::mpsc::unbounded_channel();
        let run = built.run(
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
        // Five watches, as the resource controller has: the first one's own
        // wait, and nothing for the others' errors. With the errors passed
        // on to the controller's backoff (ours), this measured 30 to 34 s;
        // with one watch, 12 to 15 s.
        let kept_out = |events| errors_logged(events, "test").boxed();
        let ours = reconciled_after_an_outage(5, kept_out, backed_off).await;
        assert!(ours <= LONGEST * 2, "{ours:?}");
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
