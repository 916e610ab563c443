//! Events that report rather than warn: queued by a reconcile and published
//! by one task, so a rotation never waits for its `Rotated` event. The status
//! (`history`) is the durable record of a rotation; its event is best effort,
//! as Kubernetes events are (client-go's recorders queue and drop too).

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use k8s_openapi::api::core::v1::ObjectReference;
use kube::{
    Client,
    runtime::events::{Event, Recorder, Reporter},
};
use prometheus_client::metrics::counter::Counter;
use tokio::sync::{Notify, mpsc};

/// Events waiting at most: client-go's broadcaster keeps 1,000 too. A burst
/// that outruns the apiserver by more drops its reports, never a rotation.
pub const QUEUE_LENGTH: usize = 1024;

/// Publications after which the task starts a new `Recorder`. kube-runtime's
/// keeps every event it published for 6 minutes, to fold a repeat into a
/// series, and scans them all on each publication: after a burst of 10,000
/// rotations, megabytes held and 10,000 compared per event. A repeat is an
/// event on the same version of the same object: a report's follows its
/// first within one reconcile, or (`--dry-run`, which writes nothing) at the
/// resource's next reconcile. One more than this many events after its first
/// is published as an event of its own rather than as a series count.
pub const RECORDER_LIFETIME: usize = 256;

/// The sending side; cheap to clone.
#[derive(Clone)]
pub struct EventQueue {
    sender: mpsc::Sender<(ObjectReference, Event)>,
    unpublished: Arc<Unpublished>,
    dropped: Counter,
}

/// Events queued and not yet published (or given up on).
#[derive(Default)]
struct Unpublished {
    count: AtomicUsize,
    none_left: Notify,
}

impl Unpublished {
    fn done(&self) {
        if self.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.none_left.notify_waiters();
        }
    }
}

impl EventQueue {
    /// Starts the task that publishes queued events as `reporter`, one at a
    /// time: reports take one lane of the apiserver, never the lanes
    /// reconciles use. `dropped` counts those a full queue turned away.
    pub fn start(client: Client, reporter: Reporter, dropped: Counter) -> Self {
        let (sender, mut queued) = mpsc::channel::<(ObjectReference, Event)>(QUEUE_LENGTH);
        let unpublished = Arc::new(Unpublished::default());
        let tally = unpublished.clone();
        tokio::spawn(async move {
            let mut recorder = Recorder::new(client.clone(), reporter.clone());
            let mut published = 0;
            while let Some((on, event)) = queued.recv().await {
                if published == RECORDER_LIFETIME {
                    (recorder, published) = (Recorder::new(client.clone(), reporter.clone()), 0);
                }
                if let Err(e) = recorder.publish(&event, &on).await {
                    tracing::warn!(reason = %event.reason, error = %e, "cannot publish event");
                }
                published += 1;
                tally.done();
            }
        });
        Self { sender, unpublished, dropped }
    }

    /// Queues `event` and returns at once.
    pub fn push(&self, on: ObjectReference, event: Event) {
        self.unpublished.count.fetch_add(1, Ordering::AcqRel);
        if let Err(refused) = self.sender.try_send((on, event)) {
            self.unpublished.done();
            self.dropped.inc();
            let (on, event) = match refused {
                mpsc::error::TrySendError::Full(e) | mpsc::error::TrySendError::Closed(e) => e,
            };
            let name = on.name.as_deref().unwrap_or_default();
            tracing::debug!(reason = %event.reason, name, "event dropped: the queue is full (or its task ended)");
        }
    }

    /// Waits until every queued event is published, up to `limit`: a process
    /// that stops publishes the reports of the rotations it finished.
    pub async fn drain(&self, limit: std::time::Duration) {
        let published = async {
            loop {
                let none_left = self.unpublished.none_left.notified();
                if self.unpublished.count.load(Ordering::Acquire) == 0 {
                    return;
                }
                none_left.await;
            }
        };
        if tokio::time::timeout(limit, published).await.is_err() {
            let left = self.unpublished.count.load(Ordering::Acquire);
            tracing::info!(left, "stopping with events unpublished");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{convert::Infallible, time::Duration};

    use http::{Method, Request, Response};
    use kube::{client::Body, runtime::events::EventType};
    use tokio::sync::Semaphore;

    use super::*;

    const CREATED: &str = r#"{"apiVersion":"events.k8s.io/v1","kind":"Event","metadata":{"name":"e"},"eventTime":"2026-12-07T00:00:00.000000Z"}"#;

    /// A queue on an apiserver that answers each event create (or series
    /// patch) once `gate` lets it, reporting each request's method on `seen`.
    fn queue(gate: Arc<Semaphore>, seen: mpsc::UnboundedSender<Method>) -> (EventQueue, Counter) {
        let service = tower::service_fn(move |request: Request<Body>| {
            let (gate, seen) = (gate.clone(), seen.clone());
            async move {
                let status = if request.method() == Method::POST { 201 } else { 200 };
                let _ = seen.send(request.method().clone());
                gate.acquire().await.map(tokio::sync::SemaphorePermit::forget).ok();
                Ok::<_, Infallible>(
                    Response::builder().status(status).body(Body::from(CREATED.as_bytes().to_vec())).unwrap(),
                )
            }
        });
        let client = kube::Client::new(service, "app");
        let dropped = Counter::default();
        let reporter = Reporter { controller: "test".into(), instance: None };
        (EventQueue::start(client, reporter, dropped.clone()), dropped)
    }

    fn rotated(name: &str) -> (ObjectReference, Event) {
        let on =
            ObjectReference { name: Some(name.into()), namespace: Some("app".into()), ..Default::default() };
        let event = Event {
            type_: EventType::Normal,
            reason: "Rotated".into(),
            note: None,
            action: "Reconcile".into(),
            secondary: None,
        };
        (on, event)
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_counts_instead_of_waiting() {
        let (gate, (seen, mut arrived)) = (Arc::new(Semaphore::new(0)), mpsc::unbounded_channel());
        let (queue, dropped) = queue(gate, seen);
        let (on, event) = rotated("first");
        queue.push(on, event);
        // The first is in flight, held by the apiserver: the queue is empty.
        arrived.recv().await.unwrap();
        for i in 0..QUEUE_LENGTH + 3 {
            let (on, event) = rotated(&format!("r{i}"));
            queue.push(on, event);
        }
        assert_eq!(dropped.get(), 3);
        assert_eq!(queue.unpublished.count.load(Ordering::Acquire), QUEUE_LENGTH + 1);
    }

    #[tokio::test]
    async fn drain_waits_for_every_queued_event_up_to_its_limit() {
        let (gate, (seen, mut arrived)) = (Arc::new(Semaphore::new(0)), mpsc::unbounded_channel());
        let (queue, dropped) = queue(gate.clone(), seen);
        for name in ["a", "b", "c"] {
            let (on, event) = rotated(name);
            queue.push(on, event);
        }
        queue.drain(Duration::from_millis(50)).await;
        assert_eq!(queue.unpublished.count.load(Ordering::Acquire), 3, "none answered yet");

        gate.add_permits(3);
        tokio::time::timeout(Duration::from_secs(10), queue.drain(Duration::from_secs(10))).await.unwrap();
        assert_eq!(queue.unpublished.count.load(Ordering::Acquire), 0);
        let mut requests = 0;
        while arrived.try_recv().is_ok() {
            requests += 1;
        }
        assert_eq!((requests, dropped.get()), (3, 0));
    }

    /// A repeat (the same event on the same version of an object) is folded
    /// into the first one's series while the recorder that published it
    /// lives, and the recorder gives way to a new one, empty, after
    /// `RECORDER_LIFETIME` publications: what it holds stays bounded.
    #[tokio::test]
    async fn repeats_fold_into_a_series_and_the_recorder_is_renewed_after_its_lifetime() {
        let (gate, (seen, mut arrived)) =
            (Arc::new(Semaphore::new(usize::MAX >> 4)), mpsc::unbounded_channel());
        let (queue, _) = queue(gate, seen);
        let publish = |name: &str| {
            let (on, event) = rotated(name);
            queue.push(on, event);
        };
        let mut methods = Vec::new();
        let mut next = async || {
            let method =
                tokio::time::timeout(Duration::from_secs(10), arrived.recv()).await.unwrap().unwrap();
            methods.push(method);
        };
        publish("repeated");
        publish("repeated");
        for i in 2..RECORDER_LIFETIME {
            publish(&format!("other-{i}"));
        }
        publish("repeated");
        for _ in 0..=RECORDER_LIFETIME {
            next().await;
        }
        assert_eq!(methods[..2], [Method::POST, Method::PATCH], "a repeat joins the first one's series");
        assert!(methods[2..RECORDER_LIFETIME].iter().all(|m| m == Method::POST));
        assert_eq!(methods[RECORDER_LIFETIME], Method::POST, "a new recorder holds nothing of the old one's");
    }
}
