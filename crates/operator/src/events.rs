//! Events that report rather than warn: queued by a reconcile and published
//! by one task, so a rotation never waits for its `Rotated` event. The status
//! (`history`) is the durable record of a rotation; its event is best effort,
//! as Kubernetes events are (client-go's recorders queue and drop too).

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, Recorder};
use prometheus_client::metrics::counter::Counter;
use tokio::sync::{Notify, mpsc};

/// Events waiting at most: client-go's broadcaster keeps 1,000 too. A burst
/// that outruns the apiserver by more drops its reports, never a rotation.
pub const QUEUE_LENGTH: usize = 1024;

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
    /// Starts the task that publishes queued events through `recorder`, one
    /// at a time: reports take one lane of the apiserver, never the lanes
    /// reconciles use. `dropped` counts those a full queue turned away.
    pub fn start(recorder: Recorder, dropped: Counter) -> Self {
        let (sender, mut queued) = mpsc::channel::<(ObjectReference, Event)>(QUEUE_LENGTH);
        let unpublished = Arc::new(Unpublished::default());
        let tally = unpublished.clone();
        tokio::spawn(async move {
            while let Some((on, event)) = queued.recv().await {
                if let Err(e) = recorder.publish(&event, &on).await {
                    tracing::warn!(reason = %event.reason, error = %e, "cannot publish event");
                }
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

    use http::{Request, Response};
    use kube::{
        client::Body,
        runtime::events::{EventType, Reporter},
    };
    use tokio::sync::Semaphore;

    use super::*;

    const CREATED: &str = r#"{"apiVersion":"events.k8s.io/v1","kind":"Event","metadata":{"name":"e"},"eventTime":"2026-12-07T00:00:00.000000Z"}"#;

    /// A queue on an apiserver that answers each event create once `gate`
    /// lets it, reporting each request it received on `seen`.
    fn queue(gate: Arc<Semaphore>, seen: mpsc::UnboundedSender<()>) -> (EventQueue, Counter) {
        let service = tower::service_fn(move |_: Request<Body>| {
            let (gate, seen) = (gate.clone(), seen.clone());
            async move {
                let _ = seen.send(());
                gate.acquire().await.map(tokio::sync::SemaphorePermit::forget).ok();
                Ok::<_, Infallible>(
                    Response::builder().status(201).body(Body::from(CREATED.as_bytes().to_vec())).unwrap(),
                )
            }
        });
        let client = kube::Client::new(service, "app");
        let recorder = Recorder::new(client, Reporter { controller: "test".into(), instance: None });
        let dropped = Counter::default();
        (EventQueue::start(recorder, dropped.clone()), dropped)
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
}
