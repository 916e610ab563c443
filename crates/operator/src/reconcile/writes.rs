//! Every write a reconcile makes, each fenced: the lease is checked first,
//! status and finalizer writes carry the `resourceVersion` they were decided
//! on, and a Secret write never goes backwards.

use k8s_openapi::api::core::v1::Secret;
use kube::{
    ResourceExt as _,
    api::{Patch, PatchParams},
};
use serde_json::{Value, json};

use super::{
    error::{Error, Result, kube_message},
    run::{MANAGER, Run, writable},
};
use crate::{crd::ResetAttempt, secret};

/// What a Secret write carries, which decides what it may overwrite.
#[derive(Clone, Copy, Debug)]
pub enum SecretWrite<'a> {
    /// Credentials read with a GET during this reconcile: the Secret must be
    /// exactly the one observed when the reconcile began, or the GET may be
    /// older than what another writer stored since.
    Sync { observed_version: Option<&'a str> },
    /// Credentials of rotation `target`: never over a newer rotation.
    Rotation { target: i64 },
}

impl Run<'_> {
    /// Applies the Secret after checking, right before, that it is still
    /// ours and that the write does not go backwards. The `resourceVersion`
    /// read then is the write's precondition; force is used only on a Secret
    /// that is already ours, and a new one is created without it, so a
    /// concurrent creator's fields conflict instead of being overwritten.
    pub(super) async fn apply_secret(&self, desired: &Secret, write: SecretWrite<'_>) -> Result<()> {
        self.ctx.fence.check()?;
        let name = desired.metadata.name.clone().unwrap_or_default();
        let current = self.secrets.get_opt(&name).await?;
        let ours = writable(current.as_ref(), &self.resource)?;
        let current_version = current.as_ref().and_then(|s| s.metadata.resource_version.clone());
        match write {
            SecretWrite::Sync { observed_version } if current_version.as_deref() != observed_version => {
                return Err(Error::Stale(format!("Secret {name} changed during this reconcile")));
            }
            SecretWrite::Rotation { target } => {
                let written = current.as_ref().and_then(|s| secret::written_rotation(s, &self.uid));
                if written.is_some_and(|w| w > target) {
                    return Err(Error::Stale(format!(
                        "Secret {name} already holds a rotation newer than {target}"
                    )));
                }
            }
            SecretWrite::Sync { .. } => {}
        }
        let mut desired = desired.clone();
        desired.metadata.resource_version = current_version;
        self.secrets
            .patch(&name, &apply_params(ours), &Patch::Apply(&desired))
            .await
            .map_err(|e| Error::from_write(e, &format!("Secret {name}")))?;
        Ok(())
    }

    /// Proves, before an intent is recorded, that the Secret write after the
    /// reset will be accepted: a reset whose answer cannot be stored is a
    /// lost password. A server-side dry run passes the same validation,
    /// admission (quotas, webhooks, a terminating namespace) and field
    /// ownership as the real write.
    pub(super) async fn check_secret_writable(&self, existing: Option<&Secret>, target: i64) -> Result<()> {
        let name = self.resource.secret_name();
        if let Some(existing) = existing {
            if existing.immutable == Some(true) {
                return Err(Error::SecretNotWritable(format!(
                    "Secret {name} is immutable, so the credentials of a new rotation could not be stored; no \
                     reset was made. Delete the Secret (the operator recreates it) or set another spec.secretName"
                )));
            }
            let kind = existing.type_.as_deref().unwrap_or("Opaque");
            if kind != "Opaque" {
                return Err(Error::SecretNotWritable(format!(
                    "Secret {name} has type {kind}, and the operator writes Opaque Secrets; no reset was made. \
                     Delete it or set another spec.secretName"
                )));
            }
        }
        // The data that is there now (or the keys without values): the dry
        // run must not carry credentials it does not need.
        let mut probe = secret::desired_without_data(&self.resource, target);
        probe.data =
            Some(existing.and_then(|s| s.data.clone()).unwrap_or_else(|| {
                secret::KEYS.iter().map(|k| ((*k).to_owned(), Default::default())).collect()
            }));
        let ours = writable(existing, &self.resource)?;
        match self.secrets.patch(&name, &apply_params(ours).dry_run(), &Patch::Apply(&probe)).await {
            Ok(_) => Ok(()),
            Err(e) => Err(Error::SecretNotWritable(format!(
                "Secret {name} cannot be written, so no reset was made: {}",
                kube_message(&e)
            ))),
        }
    }

    /// Writes the whole status if it changed, on the `resourceVersion` this
    /// reconcile read: another writer in between makes it fail with `Stale`
    /// instead of being overwritten with an older view.
    ///
    /// A JSON merge patch with explicit nulls, not server-side apply: a field
    /// someone else once set (`kubectl edit --subresource=status`) must still
    /// be cleared when the operator clears it.
    pub async fn write_status(&mut self) -> Result<()> {
        if self.resource.status.as_ref() == Some(&self.status) {
            return Ok(());
        }
        let s = &self.status;
        let status = json!({
            "observedGeneration": s.observed_generation,
            "rotation": s.rotation,
            "pendingRotation": s.pending_rotation,
            "lastRotationTime": s.last_rotation_time,
            "secretName": s.secret_name,
            "credentialsFingerprint": s.credentials_fingerprint,
            "reset": s.reset.as_ref().map(reset_patch),
            "conditions": s.conditions,
        });
        self.patch_status(status).await
    }

    /// The error path: only the conditions, on the same precondition. It
    /// never touches `rotation`, `pendingRotation` or `reset`.
    pub async fn write_conditions(&mut self) -> Result<()> {
        let stored = self.resource.status.as_ref();
        if stored.map(|s| (&s.conditions, s.observed_generation))
            == Some((&self.status.conditions, self.status.observed_generation))
        {
            return Ok(());
        }
        let status = json!({
            "observedGeneration": self.status.observed_generation,
            "conditions": self.status.conditions,
        });
        self.patch_status(status).await
    }

    async fn patch_status(&mut self, status: Value) -> Result<()> {
        self.ctx.fence.check()?;
        let patch = json!({
            "metadata": {"resourceVersion": self.resource.resource_version()},
            "status": status,
        });
        let name = self.resource.name_any();
        self.resource = self
            .api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|e| Error::from_write(e, "the resource"))?;
        Ok(())
    }

    /// Replaces the finalizer list, failing if the object changed meanwhile.
    pub(super) async fn patch_finalizers(&mut self, finalizers: Vec<String>) -> Result<()> {
        self.ctx.fence.check()?;
        let patch = json!({"metadata": {
            "finalizers": finalizers,
            "resourceVersion": self.resource.resource_version(),
        }});
        let name = self.resource.name_any();
        self.resource = self
            .api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|e| Error::from_write(e, "the resource"))?;
        Ok(())
    }
}

/// Server-side apply as the operator: forced only over a Secret that is
/// already ours, so a concurrent creator's fields conflict instead.
fn apply_params(ours: bool) -> PatchParams {
    let params = PatchParams::apply(MANAGER);
    if ours { params.force() } else { params }
}

/// Every field spelled out: a merge patch would keep a field it omits.
fn reset_patch(reset: &ResetAttempt) -> Value {
    json!({
        "holder": reset.holder,
        "attempt": reset.attempt,
        "requestedAt": reset.requested_at,
        "previousCredentials": reset.previous_credentials,
        "blindResets": reset.blind_resets,
    })
}
