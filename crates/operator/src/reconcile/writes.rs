//! Every write a reconcile makes, each fenced: the lease is checked first,
//! status and finalizer writes carry the `resourceVersion` they were decided
//! on, and a Secret write never goes backwards.

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt as _;
use serde_json::json;

use super::{
    FINALIZER,
    checks::writable,
    error::{Error, Result, kube_message},
    execute::Run,
    observe::Target,
    ops::{ApplyMode, Freshness, KubeOps, UpstashOps},
    plan::Guard,
    status::{conditions_patch, status_patch},
};
use crate::secret::{self, Written};

impl<K: KubeOps, U: UpstashOps> Run<'_, K, U> {
    /// Applies the Secret after checking that it is still ours and that the
    /// write does not go backwards. The `resourceVersion` checked is the
    /// write's precondition; force is used only on a Secret that is already
    /// ours, and a new one is created without it, so a concurrent creator's
    /// fields conflict instead of being overwritten. Returns the Secret's
    /// version after the write.
    ///
    /// The first write checks the Secret this reconcile observed, with no
    /// read: if it changed since, the precondition fails the write, and the
    /// check is made again on a fresh read. An absent Secret is always read
    /// again, since an absent one gives the write no precondition.
    pub(super) async fn write_secret(
        &mut self,
        desired: &Secret,
        guard: Guard,
        rotation: Written,
    ) -> Result<Option<String>> {
        self.ctx.fence.check()?;
        let name = desired.metadata.name.clone().unwrap_or_default();
        let observed =
            std::mem::take(&mut self.existing_unwritten).then(|| self.existing.read().cloned()).flatten();
        if let Some(observed) = observed {
            match self.write_secret_over(Some(observed), desired, guard, rotation).await? {
                Err(kube::Error::Api(s)) if s.code == 409 => {
                    tracing::debug!("Secret {name} changed since this reconcile began; checking it again");
                }
                written => return written.map_err(|e| Error::from_write(e, &format!("Secret {name}"))),
            }
        }
        // After a 409 only the newest version will do.
        let current = self.ctx.kube.get_secret(&self.namespace, &name, Freshness::Latest).await?;
        self.write_secret_over(current, desired, guard, rotation)
            .await?
            .map_err(|e| Error::from_write(e, &format!("Secret {name}")))
    }

    /// `write_secret` over `current`: the checks fail the outer result, the
    /// write the inner one.
    async fn write_secret_over(
        &self,
        current: Option<Secret>,
        desired: &Secret,
        guard: Guard,
        rotation: Written,
    ) -> Result<Result<Option<String>, kube::Error>> {
        let name = desired.metadata.name.clone().unwrap_or_default();
        let ours = writable(current.as_ref(), &self.resource)?;
        let current_version = current.as_ref().and_then(|s| s.metadata.resource_version.clone());
        match guard {
            // Credentials read during this reconcile: the Secret must be the
            // one observed when it began, or the read may be older than what
            // another writer stored since.
            Guard::Sync => {
                let observed = self.existing.read().and_then(|s| s.metadata.resource_version.clone());
                if current_version != observed {
                    return Err(Error::Stale(format!("Secret {name} changed during this reconcile")));
                }
            }
            Guard::Rotation => {
                let written = current.as_ref().and_then(|s| secret::written(s, &self.uid));
                if written.is_some_and(|w| w > rotation) {
                    return Err(Error::Stale(format!(
                        "Secret {name} already holds a rotation newer than {}",
                        rotation.rotation
                    )));
                }
            }
        }
        let mut desired = desired.clone();
        desired.metadata.resource_version = current_version.clone();
        let mode = ApplyMode { force: ours, dry_run: false };
        let written = self.ctx.kube.apply_secret(&self.namespace, &desired, mode).await;
        if let Ok(version) = &written {
            self.ctx.replaced.secret(&self.uid, current_version, version.clone());
        }
        Ok(written)
    }

    /// Proves, before an intent is recorded, that the Secret write after the
    /// reset will be accepted. A server-side dry run passes the same
    /// validation, admission (quotas, webhooks, a terminating namespace) and
    /// field ownership as the real write.
    ///
    /// A Secret left unread at the version of the operator's last write is
    /// proven by a dry-run update that changes nothing, at that version: one
    /// request that is both the read and the proof. The apply after the
    /// reset forces its fields on a Secret that is ours, so field ownership,
    /// the one check this dry run skips, cannot refuse it. If the Secret
    /// changed since, it is read and proven as any other.
    pub(super) async fn prove_secret_writable(&mut self, target: i64) -> Result<()> {
        let name = self.resource.secret_name();
        if let Target::AsWritten { version } = &self.existing {
            match self.ctx.kube.probe_secret_update(&self.namespace, &name, version).await {
                Ok(secret) => {
                    self.existing = Target::Read(Some(Box::new(secret)));
                    return self.check_existing().map(drop);
                }
                Err(kube::Error::Api(s)) if matches!(s.code, 404 | 409) => {
                    tracing::debug!("Secret {name} changed since its watch showed it; reading it");
                    let current = self.ctx.kube.get_secret(&self.namespace, &name, Freshness::Latest).await?;
                    self.existing = Target::Read(current.map(Box::new));
                }
                Err(e) => return Err(not_writable(&name, &e)),
            }
        }
        let ours = self.check_existing()?;
        // The data that is there now (or the keys without values): the dry
        // run must not carry credentials it does not need.
        let mut probe = secret::desired_without_data(&self.resource, self.draft.written(target));
        probe.data =
            Some(self.existing.read().and_then(|s| s.data.clone()).unwrap_or_else(|| {
                secret::KEYS.iter().map(|k| ((*k).to_owned(), Default::default())).collect()
            }));
        let mode = ApplyMode { force: ours, dry_run: true };
        self.ctx
            .kube
            .apply_secret(&self.namespace, &probe, mode)
            .await
            .map(drop)
            .map_err(|e| not_writable(&name, &e))
    }

    /// Refuses an existing Secret a rotation could not store its answer in:
    /// immutable, of another type, or not this resource's. Returns whether
    /// it is ours.
    fn check_existing(&self) -> Result<bool> {
        let name = self.resource.secret_name();
        if let Some(existing) = self.existing.read() {
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
        writable(self.existing.read(), &self.resource)
    }

    /// Writes the whole status if it changed, on the `resourceVersion` this
    /// reconcile read: another writer in between makes it fail with `Stale`
    /// instead of being overwritten with an older view.
    pub async fn write_status(&mut self) -> Result<()> {
        self.draft.refresh_next_rotation();
        if self.resource.status.as_ref() == Some(&self.draft.status) {
            return Ok(());
        }
        self.patch_status(status_patch(&self.draft.status, &self.resource)).await
    }

    /// The error path: only the conditions, on the same precondition.
    pub async fn write_conditions(&mut self) -> Result<()> {
        self.draft.refresh_next_rotation();
        let stored = self.resource.status.as_ref();
        let draft = &self.draft.status;
        if stored.map(|s| (&s.conditions, s.observed_generation))
            == Some((&draft.conditions, draft.observed_generation))
        {
            return Ok(());
        }
        self.patch_status(conditions_patch(draft, &self.resource)).await
    }

    async fn patch_status(&mut self, patch: serde_json::Value) -> Result<()> {
        self.ctx.fence.check()?;
        let name = self.resource.name_any();
        let written = self
            .ctx
            .kube
            .patch_status(&self.namespace, &name, &patch)
            .await
            .map_err(|e| Error::from_write(e, "the resource"))?;
        self.replaced(written);
        Ok(())
    }

    /// Takes the resource as a write of ours stored it.
    fn replaced(&mut self, written: crate::crd::RedisPasswordRotation) {
        let before = self.resource.resource_version();
        self.ctx.replaced.resource(&self.uid, before, written.resource_version());
        self.resource = written;
    }

    pub(super) async fn add_finalizer(&mut self) -> Result<()> {
        if self.resource.finalizers().iter().any(|f| f == FINALIZER) {
            return Ok(());
        }
        let mut finalizers = self.resource.finalizers().to_vec();
        finalizers.push(FINALIZER.into());
        self.patch_finalizers(finalizers).await
    }

    /// Drops the finalizer once nothing is in flight, in memory or stored.
    pub async fn release_finalizer(&mut self) -> Result<()> {
        let stored_pending = self.resource.status.as_ref().and_then(|s| s.pending_rotation);
        if self.draft.status.pending_rotation.is_some()
            || stored_pending.is_some()
            || !self.resource.finalizers().iter().any(|f| f == FINALIZER)
        {
            return Ok(());
        }
        let finalizers = self.resource.finalizers().iter().filter(|f| *f != FINALIZER).cloned().collect();
        self.patch_finalizers(finalizers).await
    }

    /// Replaces the finalizer list, failing if the object changed meanwhile.
    async fn patch_finalizers(&mut self, finalizers: Vec<String>) -> Result<()> {
        self.ctx.fence.check()?;
        let patch = json!({"metadata": {
            "finalizers": finalizers,
            "resourceVersion": self.resource.resource_version(),
        }});
        let name = self.resource.name_any();
        let written = self
            .ctx
            .kube
            .patch_object(&self.namespace, &name, &patch)
            .await
            .map_err(|e| Error::from_write(e, "the resource"))?;
        self.replaced(written);
        Ok(())
    }
}

/// Why a rotation does not start: its Secret write would be refused.
fn not_writable(name: &str, error: &kube::Error) -> Error {
    Error::SecretNotWritable(format!(
        "Secret {name} cannot be written, so no reset was made: {}",
        kube_message(error)
    ))
}
