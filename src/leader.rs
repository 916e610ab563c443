//! Leader election on a `coordination.k8s.io` Lease (kube-lease-manager), so
//! that of several replicas exactly one reconciles: two rotators would reset
//! the same password twice.

use std::time::Duration;

use kube::Client;
use kube_lease_manager::{LeaseManagerBuilder, LeaseManagerError};
use tokio::{sync::watch, task::JoinHandle};

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

/// A running election: tells whether this replica leads.
pub struct Leadership {
    state: watch::Receiver<bool>,
    task: JoinHandle<Result<kube_lease_manager::LeaseManager, LeaseManagerError>>,
}

impl Election {
    pub async fn start(&self, client: Client) -> Result<Leadership, LeaseManagerError> {
        let duration = self.lease_duration.as_secs().max(2);
        // Renew a third of the duration before expiry: tolerates clock skew and slow renewals.
        let grace = (duration / 3).max(1);
        let manager = LeaseManagerBuilder::new(client, &self.lease_name)
            .with_namespace(&self.namespace)
            .with_identity(&self.identity)
            .with_duration(duration)
            .with_grace(grace)
            .with_field_manager("upstash-rotator-leader-election")
            .build()
            .await?;
        let (state, task) = manager.watch().await;
        Ok(Leadership { state, task })
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

    /// Gives the lease up so a standby takes over at once.
    pub async fn release(self) {
        let Self { state, task } = self;
        drop(state); // closing the channel makes the manager release the lease and stop
        match tokio::time::timeout(Duration::from_secs(5), task).await {
            Ok(Ok(Ok(_))) => tracing::info!("lease released"),
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "releasing the lease failed"),
            Ok(Err(e)) => tracing::warn!(error = %e, "lease task failed"),
            Err(_) => tracing::warn!("releasing the lease timed out"),
        }
    }
}
