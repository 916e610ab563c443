//! Leader election on a `coordination.k8s.io` Lease, so that of several
//! replicas exactly one reconciles: two rotators would reset the same
//! password twice.
//!
//! Written here rather than taken from a crate because the operator needs
//! what the crates do not give: a renew deadline on this process's own
//! monotonic clock. A leader whose renewals fail (apiserver down, process
//! paused) must know the moment its lease may have passed to another replica,
//! and [`Fence::check`] refuses every reset and write from then on.

use std::{sync::Arc, time::Duration};

use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::MicroTime,
    jiff::Timestamp,
};
use kube::{
    Api, Client,
    api::{ObjectMeta, PostParams},
};
use parking_lot::Mutex;
use tokio::{
    sync::{oneshot, watch},
    task::JoinHandle,
    time::Instant,
};

/// Where and how to elect.
#[derive(Clone, Debug)]
pub struct Election {
    pub namespace: String,
    pub lease_name: String,
    /// Unique per replica (the pod name).
    pub identity: String,
    /// How long a lease stays valid without renewal: the longest handover.
    pub lease_duration: Duration,
}

/// Until when this process may act as leader, on its own monotonic clock.
/// Without election it always may.
#[derive(Clone, Debug, Default)]
pub struct Fence {
    valid_until: Option<Arc<Mutex<Option<Instant>>>>,
    margin: Duration,
}

/// The lease may have passed to another replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("this replica's lease is not renewed in time; it must not act any more")]
pub struct LeaseExpired;

impl Fence {
    /// A fence that never closes: no election, one writer by configuration.
    pub fn unfenced() -> Self {
        Self::default()
    }

    /// A fence that is closed: a leader whose lease has run out.
    pub fn closed() -> Self {
        Self { valid_until: Some(Arc::new(Mutex::new(None))), margin: Duration::ZERO }
    }

    /// Ok while the lease stays valid for at least the margin: long enough
    /// for the next request to be sent before any other replica may lead.
    pub fn check(&self) -> Result<(), LeaseExpired> {
        let Some(valid_until) = &self.valid_until else { return Ok(()) };
        let until = *valid_until.lock();
        match until {
            Some(until) if Instant::now() + self.margin < until => Ok(()),
            _ => Err(LeaseExpired),
        }
    }
}

/// A running election: tells whether this replica leads.
pub struct Leadership {
    state: watch::Receiver<bool>,
    fence: Fence,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Election {
    /// Renew period: a third of the lease, so two renewals may fail before
    /// the lease runs out.
    fn renew_every(&self) -> Duration {
        (self.lease_duration / 3).max(Duration::from_millis(500))
    }

    /// Margin a leader keeps before its deadline: a reset or write is not
    /// started closer to it than this.
    fn margin(&self) -> Duration {
        (self.lease_duration / 4).clamp(Duration::from_millis(500), Duration::from_secs(5))
    }

    pub async fn start(&self, client: Client) -> Result<Leadership, kube::Error> {
        let api: Api<Lease> = Api::namespaced(client, &self.namespace);
        // Fail fast on missing RBAC or namespace, before reporting readiness.
        api.get_opt(&self.lease_name).await?;
        let (tx, state) = watch::channel(false);
        let valid_until = Arc::new(Mutex::new(None));
        let fence = Fence { valid_until: Some(valid_until.clone()), margin: self.margin() };
        let (stop, stopped) = oneshot::channel();
        let elector = Elector { api, election: self.clone(), valid_until, observed: None, leading: tx };
        let task = tokio::spawn(elector.run(stopped));
        Ok(Leadership { state, fence, stop: Some(stop), task })
    }
}

impl Leadership {
    /// Resolves once this replica leads.
    pub async fn acquired(&mut self) -> bool {
        self.state.wait_for(|leads| *leads).await.is_ok()
    }

    /// Resolves once this replica stops leading (or the election fails).
    pub async fn lost(&mut self) {
        let _ = self.state.wait_for(|leads| !*leads).await;
    }

    /// The fence every reset and write of this leader goes through.
    pub fn fence(&self) -> Fence {
        self.fence.clone()
    }

    /// Gives the lease up so a standby takes over at once.
    pub async fn release(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match tokio::time::timeout(Duration::from_secs(5), &mut self.task).await {
            Ok(Ok(())) => tracing::info!("lease released"),
            Ok(Err(e)) => tracing::warn!(error = %e, "lease task failed"),
            Err(_) => tracing::warn!("releasing the lease timed out"),
        }
    }
}

struct Elector {
    api: Api<Lease>,
    election: Election,
    valid_until: Arc<Mutex<Option<Instant>>>,
    /// The other holder's record as last seen, and when this process saw it
    /// change: a lease expires on the observer's clock, never on the writer's.
    observed: Option<(String, Instant)>,
    leading: watch::Sender<bool>,
}

impl Elector {
    async fn run(mut self, mut stopped: oneshot::Receiver<()>) {
        let every = self.election.renew_every();
        loop {
            let attempt_started = Instant::now();
            // Bounded: a hung request must not outlive the deadline it protects.
            let outcome = tokio::time::timeout(every, self.try_acquire_or_renew()).await;
            match outcome {
                Ok(Ok(true)) => {
                    // Valid for a lease duration from before the request was
                    // sent: another replica waits at least that long after
                    // seeing this renewal.
                    self.set_valid_until(Some(attempt_started + self.election.lease_duration));
                    self.leading.send_if_modified(|l| !std::mem::replace(l, true));
                }
                Ok(Ok(false)) => self.step_down("another replica holds the lease"),
                Ok(Err(e)) => tracing::warn!(error = %e, "lease renewal failed"),
                Err(_) => tracing::warn!("lease renewal timed out"),
            }
            // Sleep until the next renewal, waking at the deadline if it
            // comes first so losing the lease is noticed on time.
            let deadline = self.valid_until();
            let next = attempt_started + every;
            let wake = deadline.map_or(next, |d| d.min(next));
            tokio::select! {
                _ = &mut stopped => {
                    self.release().await;
                    return;
                }
                () = tokio::time::sleep_until(wake) => {}
            }
            if self.valid_until().is_some_and(|d| Instant::now() >= d) {
                self.step_down("the lease was not renewed before its deadline");
            }
        }
    }

    fn valid_until(&self) -> Option<Instant> {
        *self.valid_until.lock()
    }

    fn set_valid_until(&self, value: Option<Instant>) {
        *self.valid_until.lock() = value;
    }

    fn step_down(&mut self, why: &str) {
        self.set_valid_until(None);
        if self.leading.send_if_modified(|l| std::mem::replace(l, false)) {
            tracing::error!(identity = %self.election.identity, "lost leadership: {why}");
        }
    }

    /// One round: renew our lease, or take a free or expired one. `Ok(true)`
    /// when this replica holds the lease afterwards.
    async fn try_acquire_or_renew(&mut self) -> Result<bool, kube::Error> {
        let me = self.election.identity.clone();
        let now = MicroTime(Timestamp::now());
        let duration_s = i32::try_from(self.election.lease_duration.as_secs()).unwrap_or(i32::MAX);
        let Some(mut lease) = self.api.get_opt(&self.election.lease_name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.election.lease_name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(me),
                    lease_duration_seconds: Some(duration_s),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return conflict_is_false(self.api.create(&PostParams::default(), &lease).await);
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        match holder {
            Some(holder) if holder == me => {
                spec.renew_time = Some(now);
                spec.lease_duration_seconds = Some(duration_s);
            }
            Some(holder) => {
                let record = format!("{holder}/{:?}/{:?}", spec.renew_time, lease.metadata.resource_version);
                let their_duration = Duration::from_secs(
                    spec.lease_duration_seconds.unwrap_or(duration_s).max(1).unsigned_abs().into(),
                );
                let seen_at = match &self.observed {
                    Some((seen, at)) if *seen == record => *at,
                    _ => {
                        let at = Instant::now();
                        self.observed = Some((record, at));
                        at
                    }
                };
                if Instant::now() < seen_at + their_duration {
                    return Ok(false);
                }
                tracing::info!(previous = %holder, "the lease expired; taking it over");
                take_over(spec, me, now, duration_s);
            }
            None => take_over(spec, me, now, duration_s),
        }
        // `replace` carries the resourceVersion read above: a concurrent
        // writer makes it fail instead of being overwritten.
        conflict_is_false(self.api.replace(&self.election.lease_name, &PostParams::default(), &lease).await)
    }

    /// Hands the lease back (holder cleared) if it is still ours.
    async fn release(&mut self) {
        let was_leading = self.valid_until().is_some();
        self.step_down("released");
        if !was_leading {
            return;
        }
        let released = async {
            let Some(mut lease) = self.api.get_opt(&self.election.lease_name).await? else { return Ok(()) };
            let Some(spec) = lease.spec.as_mut() else { return Ok(()) };
            if spec.holder_identity.as_deref() != Some(self.election.identity.as_str()) {
                return Ok(());
            }
            spec.holder_identity = None;
            spec.lease_duration_seconds = Some(1);
            self.api.replace(&self.election.lease_name, &PostParams::default(), &lease).await.map(|_| ())
        };
        if let Err(e) = tokio::time::timeout(Duration::from_secs(3), released)
            .await
            .unwrap_or_else(|_| Err(kube::Error::Service("timed out".into())))
        {
            tracing::warn!(error = %e, "releasing the lease failed; a standby takes over when it expires");
        }
    }
}

fn take_over(spec: &mut LeaseSpec, me: String, now: MicroTime, duration_s: i32) {
    spec.holder_identity = Some(me);
    spec.acquire_time = Some(now.clone());
    spec.renew_time = Some(now);
    spec.lease_duration_seconds = Some(duration_s);
    spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0).saturating_add(1));
}

/// A 409 (someone else wrote first) means "not ours", not a failure.
fn conflict_is_false(result: Result<Lease, kube::Error>) -> Result<bool, kube::Error> {
    match result {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_fence_closes_a_margin_before_the_deadline() {
        let valid_until = Arc::new(Mutex::new(Some(Instant::now() + Duration::from_secs(10))));
        let fence = Fence { valid_until: Some(valid_until.clone()), margin: Duration::from_secs(2) };
        assert_eq!(fence.check(), Ok(()));
        tokio::time::advance(Duration::from_millis(7_900)).await;
        assert_eq!(fence.check(), Ok(()));
        tokio::time::advance(Duration::from_millis(200)).await;
        assert_eq!(fence.check(), Err(LeaseExpired), "inside the margin");
        *valid_until.lock() = None;
        assert_eq!(fence.check(), Err(LeaseExpired), "stepped down");
        assert_eq!(Fence::unfenced().check(), Ok(()));
        assert_eq!(Fence::closed().check(), Err(LeaseExpired));
    }
}
