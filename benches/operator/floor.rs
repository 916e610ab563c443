//! The floor: the least a crash-safe rotation can cost, made by hand with
//! the same clients and objects. Per resource: the counter patch (the same
//! write the bench makes to start each of the operator's rotations, so both
//! sides carry it), the intent status patch on the version that patch
//! returned, one reset, the Secret apply, the final status patch. No dry
//! run, no event, no verification, no read: what the operator does beyond
//! this is what the ratio shows.
//!
//! `Extras` adds the operator's other requests to the floor, one kind at a
//! time (the ladder in docs/benchmarks.md), so each is priced in the same
//! run: what is left between the last rung and the operator is the cost of
//! being a controller (its watches, its queue, its own CPU).

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::{ByteString, api::core::v1::Secret, jiff::Timestamp};
use kube::{
    Api, Client, Resource as _,
    api::{DeleteParams, ListParams, ObjectMeta, Patch, PatchParams},
    runtime::events::{Event, EventType, Reporter},
};
use parking_lot::Mutex;
use serde_json::{Value, json};
use testkit::sim::Sim;
use upstash_rotator::{
    crd::RedisPasswordRotation,
    events::EventQueue,
    secret::{MANAGED_BY, MANAGED_BY_LABEL, ROTATION_ANNOTATION},
};

use crate::Result;

/// The operator's requests beyond the floor's, each made as the operator
/// makes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extras {
    /// Before the intent, a server-side dry run of an update that changes
    /// nothing, on the Secret at the version last written: the operator's
    /// proof that the Secret write will be admitted, which is also its read
    /// of the Secret (the resource comes from its watch).
    pub probe: bool,
    /// An event (events.k8s.io, kube-runtime's `Recorder`) after the final
    /// status, queued through the operator's own `EventQueue` and not waited
    /// for: the rung's time ends with the last status, its plane CPU once
    /// the queue is empty.
    pub event: bool,
    /// The status as the operator writes it: its two conditions with their
    /// texts, the fingerprints, and the history of the last 10 rotations.
    /// The same writes carrying more bytes and fields.
    pub operator_status: bool,
}

impl Extras {
    /// The plain floor.
    pub const NONE: Self = Self { probe: false, event: false, operator_status: false };
}

/// Floor resources by name: their database and last `resourceVersion`s.
pub struct Floor {
    pub resources: Api<RedisPasswordRotation>,
    pub secrets: Api<Secret>,
    pub databases: Vec<(String, String)>,
    versions: Mutex<HashMap<String, String>>,
    /// Each resource's Secret as last written: what a read must be as new as.
    secret_versions: Mutex<HashMap<String, String>>,
    reports: EventQueue,
}

impl Floor {
    pub fn new(client: &Client, namespace: &str, created: Vec<(String, String, String)>) -> Self {
        let versions = created.iter().map(|(name, _, version)| (name.clone(), version.clone())).collect();
        Self {
            resources: Api::namespaced(client.clone(), namespace),
            secrets: Api::namespaced(client.clone(), namespace),
            databases: created.into_iter().map(|(name, id, _)| (name, id)).collect(),
            versions: Mutex::new(versions),
            secret_versions: Mutex::default(),
            reports: EventQueue::start(
                client.clone(),
                Reporter { controller: "floor".into(), instance: None },
                upstash_rotator::metrics::Metrics::default().events_dropped,
            ),
        }
    }

    /// Deletes the floor's resources and Secrets, before the operator runs
    /// (it would reconcile them).
    pub async fn remove(&self) -> Result<()> {
        self.resources.delete_collection(&DeleteParams::default(), &ListParams::default()).await?;
        self.secrets.delete_collection(&DeleteParams::default(), &ListParams::default()).await?;
        Ok(())
    }

    /// Rotates every floor resource to `rotation`, `concurrency` at a time,
    /// with `extras` on top of the floor's requests.
    pub async fn rotate_all(
        &self,
        sim: &Sim,
        rotation: i64,
        concurrency: usize,
        extras: Extras,
    ) -> Result<Duration> {
        let started = Instant::now();
        futures::stream::iter(self.databases.iter().map(Ok::<_, Box<dyn std::error::Error>>))
            .try_for_each_concurrent(concurrency, |(name, id)| self.rotate(sim, name, id, rotation, extras))
            .await?;
        let took = started.elapsed();
        self.reports.drain(Duration::from_secs(60)).await;
        Ok(took)
    }

    async fn rotate(&self, sim: &Sim, name: &str, id: &str, rotation: i64, extras: Extras) -> Result<()> {
        let version = self.versions.lock().get(name).cloned().ok_or("no version")?;
        let params = PatchParams::default();
        let counter = json!({"metadata": {"resourceVersion": version}, "spec": {"rotation": rotation}});
        let raised = self.resources.patch(name, &params, &Patch::Merge(&counter)).await?;
        if extras.probe {
            self.probe(name).await?;
        }
        let now = Timestamp::now().to_string();
        let mut intent = json!({
            "metadata": {"resourceVersion": raised.metadata.resource_version},
            "status": {"pendingRotation": rotation, "reset": {"holder": "floor", "attempt": 1, "requestedAt": now}}
        });
        if extras.operator_status {
            operator_shaped_intent(&mut intent["status"], rotation, &now);
        }
        let stored = self.resources.patch_status(name, &params, &Patch::Merge(&intent)).await?;
        let response =
            sim.api(reqwest::Method::POST, &format!("/v2/redis/reset-password/{id}")).send().await?;
        if !response.status().is_success() {
            return Err(format!("floor reset of {id}: {}", response.status()).into());
        }
        let db: Value = response.json().await?;
        let text = |key: &str| ByteString(db[key].as_str().unwrap_or_default().as_bytes().to_vec());
        let secret = Secret {
            metadata: secret_metadata(name, rotation),
            data: Some(
                [
                    ("UPSTASH_REDIS_PASSWORD", text("password")),
                    ("UPSTASH_REDIS_ENDPOINT", text("endpoint")),
                    ("UPSTASH_REDIS_PORT", ByteString(db["port"].to_string().into_bytes())),
                    ("UPSTASH_REDIS_REST_URL", text("endpoint")),
                    ("UPSTASH_REDIS_REST_TOKEN", text("rest_token")),
                    ("UPSTASH_REDIS_READ_ONLY_REST_TOKEN", text("read_only_rest_token")),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
            ),
            ..Default::default()
        };
        let applied =
            self.secrets.patch(name, &PatchParams::apply("floor").force(), &Patch::Apply(&secret)).await?;
        if let Some(written) = &applied.metadata.resource_version {
            self.secret_versions.lock().insert(name.to_owned(), written.clone());
        }
        let mut done = json!({
            "metadata": {"resourceVersion": stored.metadata.resource_version},
            "status": {
                "rotation": rotation, "pendingRotation": null, "reset": null,
                "secretResourceVersion": applied.metadata.resource_version,
                "lastRotationTime": now,
                "conditions": [{"type": "Ready", "status": "True", "reason": "Rotated",
                    "message": format!("rotation {rotation} applied"), "lastTransitionTime": now}]
            }
        });
        if extras.operator_status {
            operator_shaped_done(&mut done["status"], name, id, rotation, &now);
        }
        let finished = self.resources.patch_status(name, &params, &Patch::Merge(&done)).await?;
        if extras.event {
            let event = Event {
                type_: EventType::Normal,
                reason: "Rotated".into(),
                note: Some(format!("rotation {rotation} applied: Secret {name} holds the new credentials")),
                action: "Reconcile".into(),
                secondary: None,
            };
            self.reports.push(raised.object_ref(&()), event);
        }
        let version = finished.metadata.resource_version.ok_or("no version")?;
        self.versions.lock().insert(name.to_owned(), version);
        Ok(())
    }

    /// The operator's proof and read of a Secret it wrote: a dry-run merge
    /// patch carrying only the version last written.
    async fn probe(&self, name: &str) -> Result<()> {
        // The ladder runs after the floor's rounds: each Secret was written.
        let written = self.secret_versions.lock().get(name).cloned().ok_or("no Secret written")?;
        let patch = json!({"metadata": {"resourceVersion": written}});
        let params = PatchParams { dry_run: true, field_manager: Some("floor".into()), ..Default::default() };
        self.secrets.patch(name, &params, &Patch::Merge(&patch)).await?;
        Ok(())
    }
}

/// The intent's status as the operator writes it (`reconcile/status.rs`):
/// the reset with the fingerprint of the credentials it replaces, and both
/// conditions.
fn operator_shaped_intent(status: &mut Value, rotation: i64, now: &str) {
    status["reset"]["previousCredentials"] = json!(fingerprint(rotation - 1));
    status["reset"]["blindResets"] = json!(0);
    status["observedGeneration"] = json!(rotation + 1);
    status["conditions"] = json!([
        condition(
            "Rotating",
            "True",
            "ResetRequested",
            &format!("resetting the password for rotation {rotation} (attempt 1)"),
            rotation,
            now
        ),
        condition("Ready", "False", "Rotating", &format!("rotation {rotation} in progress"), rotation, now),
    ]);
}

/// The final status as the operator writes it: both conditions, the
/// fingerprint of the credentials written, and the history, newest first,
/// of at most 10 rotations (the operator's cap).
fn operator_shaped_done(status: &mut Value, name: &str, id: &str, rotation: i64, now: &str) {
    let history: Vec<Value> = (1..=rotation)
        .rev()
        .take(10)
        .map(|r| {
            json!({"rotation": r, "time": now, "trigger": "counter", "recovered": false,
                "fingerprint": fingerprint(r)})
        })
        .collect();
    status["credentialsFingerprint"] = json!(fingerprint(rotation));
    status["secretName"] = json!(name);
    status["observedGeneration"] = json!(rotation + 1);
    status["history"] = json!(history);
    status["conditions"] = json!([
        condition("Rotating", "False", "Idle", "no rotation in progress", rotation, now),
        condition(
            "Ready",
            "True",
            "Rotated",
            &format!("rotation {rotation} applied: Secret {name} holds the new credentials of database {id}"),
            rotation,
            now
        ),
    ]);
}

fn condition(type_: &str, status: &str, reason: &str, message: &str, rotation: i64, now: &str) -> Value {
    json!({"type": type_, "status": status, "reason": reason, "message": message,
        "observedGeneration": rotation + 1, "lastTransitionTime": now})
}

/// A fingerprint as long as the operator's (`sha256:` and 24 hex digits).
fn fingerprint(rotation: i64) -> String {
    format!("sha256:{:024x}", rotation.unsigned_abs().wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

/// Runs `make` for every item, `concurrency` at a time.
pub async fn concurrently<T, F, Fut>(items: Vec<T>, concurrency: usize, make: F) -> Result<Vec<Fut::Output>>
where
    F: Fn(T) -> Fut,
    Fut: std::future::Future,
{
    Ok(futures::stream::iter(items.into_iter().map(make)).buffer_unordered(concurrency).collect().await)
}

/// A floor Secret's metadata: the operator's label and annotation, since the
/// bench's tracker watches labelled Secrets on both sides.
fn secret_metadata(name: &str, rotation: i64) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        labels: Some([(MANAGED_BY_LABEL.to_owned(), MANAGED_BY.to_owned())].into()),
        annotations: Some([(ROTATION_ANNOTATION.to_owned(), rotation.to_string())].into()),
        ..Default::default()
    }
}
