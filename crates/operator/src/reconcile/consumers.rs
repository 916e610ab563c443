//! Restarting the workloads that read the Secret (`spec.rolloutRestart`)
//! once it holds new credentials, the way `kubectl rollout restart` does.
//!
//! Whether a restart is owed is decided from two fingerprints in status:
//! the credentials the Secret holds, and the credentials the workloads were
//! last restarted for. Only a change of credentials makes them differ, so a
//! first sync, an operator restart or a Secret restored with the same data
//! restarts nothing. The annotation's value names the credentials, so a
//! restart repeated after a crash (before the status recorded it) patches
//! the same value again, which changes nothing and rolls out nothing.

use kube::ResourceExt as _;

use super::{
    error::{Error, Result},
    execute::Run,
    messages::{Message, Notice},
    ops::{KubeOps, UpstashOps},
};
use crate::{
    conditions::{CONSUMERS_RESTARTED, Reason},
    crd::WorkloadRef,
    metrics::KindLabel,
};

/// The pod-template annotation whose change restarts a workload's pods.
pub const RESTARTED_AT_ANNOTATION: &str = "upstash-rotator.io/restartedAt";

/// What the consumers need now.
#[derive(Debug, PartialEq, Eq)]
pub enum Owed {
    Nothing,
    /// Record the fingerprint (or clear it) without restarting anyone.
    Record(Option<String>),
    /// Restart every workload for these credentials.
    Restart(String),
}

/// Decides from the fingerprints in status. `listed`: whether
/// `spec.rolloutRestart` names any workload.
pub fn owed(listed: bool, deleting: bool, restarted_for: Option<&str>, holds: Option<&str>) -> Owed {
    match (listed, restarted_for, holds) {
        (false, None, _) => Owed::Nothing,
        (false, Some(_), _) => Owed::Record(None),
        _ if deleting => Owed::Nothing,
        // Nothing recognisable in the Secret (Credential Protection).
        (true, _, None) => Owed::Nothing,
        // First listed (or a first sync): they started with these.
        (true, None, Some(now)) => Owed::Record(Some(now.to_owned())),
        (true, Some(then), Some(now)) if then == now => Owed::Nothing,
        (true, Some(_), Some(now)) => Owed::Restart(now.to_owned()),
    }
}

/// The annotation's value: the resource, its rotation and the credentials'
/// fingerprint. Distinct per resource, so two resources restarting the same
/// workload both take effect.
pub fn restart_value(resource: &str, rotation: Option<i64>, fingerprint: &str) -> String {
    format!("{resource} rotation {} {fingerprint}", rotation.unwrap_or_default())
}

/// Why a workload was not restarted, when retrying later would not help.
fn lasting_failure(error: &kube::Error) -> Option<Reason> {
    match error {
        kube::Error::Api(status) => match status.code {
            404 => Some(Reason::ConsumerNotFound),
            403 => Some(Reason::ConsumerForbidden),
            400 | 422 => Some(Reason::ConsumerRestartRefused),
            _ => None,
        },
        _ => None,
    }
}

impl<K: KubeOps, U: UpstashOps> Run<'_, K, U> {
    /// Restarts the listed workloads if the Secret's credentials changed
    /// since they were last restarted. A workload that is missing, forbidden
    /// or refused is reported in `ConsumersRestarted` and not retried (the
    /// rotation stays done); any other failure fails the reconcile, which
    /// retries the same, idempotent patches.
    pub(super) async fn restart_consumers(&mut self) -> Result<()> {
        let workloads = self.resource.spec.rollout_restart.clone();
        let status = &self.draft.status;
        let fingerprint = match owed(
            !workloads.is_empty(),
            self.resource.metadata.deletion_timestamp.is_some(),
            status.consumers_fingerprint.as_deref(),
            status.credentials_fingerprint.as_deref(),
        ) {
            Owed::Nothing => return Ok(()),
            Owed::Record(fingerprint) => {
                self.draft.status.consumers_fingerprint = fingerprint;
                return Ok(());
            }
            Owed::Restart(fingerprint) => fingerprint,
        };
        let value = restart_value(&self.resource.name_any(), status.rotation, &fingerprint);
        let mut restarted = Vec::new();
        let mut failures: Vec<(Reason, String)> = Vec::new();
        for workload in &workloads {
            self.ctx.fence.check()?;
            match self.ctx.kube.restart_workload(&self.namespace, workload, &value).await {
                Ok(()) => {
                    let kind = workload.kind.as_str();
                    self.ctx.metrics.consumer_restarts.get_or_create(&KindLabel { kind }).inc();
                    restarted.push(workload.to_string());
                }
                Err(e) => match lasting_failure(&e) {
                    Some(reason) => failures.push((reason, describe(workload, reason))),
                    None => return Err(Error::from_write(e, &format!("restarting {workload}"))),
                },
            }
        }
        self.draft.status.consumers_fingerprint = Some(fingerprint);
        let (complete, reason, message) = match failures.first() {
            None => {
                (true, Reason::Restarted, Message::ConsumersRestarted { workloads: restarted.join(", ") })
            }
            Some((reason, _)) => {
                let failures = failures.iter().map(|(_, text)| text.as_str()).collect::<Vec<_>>().join("; ");
                (false, *reason, Message::ConsumersNotRestarted { failures })
            }
        };
        self.draft.set(CONSUMERS_RESTARTED, complete, reason, &message);
        self.publish(&Notice::Consumers { message, complete }).await;
        Ok(())
    }
}

fn describe(workload: &WorkloadRef, reason: Reason) -> String {
    match reason {
        Reason::ConsumerNotFound => format!("{workload} does not exist"),
        Reason::ConsumerForbidden => format!(
            "the operator may not patch {workload} (the chart grants it with rolloutRestart.enabled=true)"
        ),
        _ => format!("the apiserver refused to restart {workload}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_change_of_credentials_owes_a_restart() {
        assert_eq!(owed(true, false, Some("a"), Some("b")), Owed::Restart("b".into()));
        assert_eq!(owed(true, false, Some("a"), Some("a")), Owed::Nothing, "resync, restart, same data");
        assert_eq!(owed(true, false, None, Some("a")), Owed::Record(Some("a".into())), "first sync");
        assert_eq!(owed(true, false, Some("a"), None), Owed::Nothing, "nothing recognisable");
        assert_eq!(owed(true, true, Some("a"), Some("b")), Owed::Nothing, "being deleted");
        assert_eq!(owed(false, false, Some("a"), Some("b")), Owed::Record(None), "no longer listed");
        assert_eq!(owed(false, false, None, Some("b")), Owed::Nothing);
    }

    #[test]
    fn the_value_differs_per_resource_and_credentials() {
        let a = restart_value("cache", Some(3), "sha256:01");
        assert_eq!(a, "cache rotation 3 sha256:01");
        assert_ne!(a, restart_value("sessions", Some(3), "sha256:01"));
        assert_ne!(a, restart_value("cache", Some(3), "sha256:02"));
    }
}
