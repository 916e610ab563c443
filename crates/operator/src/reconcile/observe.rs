//! Observe: every fact one reconcile decides on, gathered once. The resource
//! is the version its watch delivered when it asks for work (a working copy,
//! `cache::working`), else a read; its Secrets are read from the apiserver,
//! never from the operator's caches: at least as new as the versions the
//! watches delivered (an API-key Secret is the copy of an earlier read of
//! exactly that version). Every write a decision leads to carries the
//! `resourceVersion` it was decided on as its precondition, so a stale view
//! can never start a second reset.

use std::time::Duration;

use k8s_openapi::{api::core::v1::Secret, apimachinery::pkg::apis::meta::v1::ObjectMeta, jiff::Timestamp};
use kube::ResourceExt as _;
use upstash_api::{ApiCredentials, RedisDatabase, UpstashError};

use super::{
    context::{Context, Fingerprint, Remembered},
    credentials::{self, KeySource},
    error::{Error, Result},
    ops::{Freshness, KubeOps, UpstashOps},
};
use crate::{
    cache::{CachedRotation, Caches, Key},
    conditions::Reason,
    crd::RedisPasswordRotation,
    schedule::{Schedule, ScheduleError},
};

/// What one reconcile knows before it decides.
pub struct Observation {
    pub resource: RedisPasswordRotation,
    pub uid: String,
    /// The Secret this resource writes.
    pub target: Target,
    /// The Secret holding the Upstash API email and key, or why the
    /// account that should name it cannot be used.
    pub key: KeySource,
    /// A reset answer this process holds for the pending intent.
    pub remembered: Option<Remembered>,
    /// An older, synced resource on the same database (checked only when
    /// nothing is in flight: a reset in flight is finished regardless).
    pub conflict: Option<Conflict>,
    /// The database as Upstash reports it, read only when the step needs it.
    pub upstash: Option<Result<RedisDatabase, UpstashError>>,
    /// `spec.schedule` as parsed at `now`, once per reconcile; one that
    /// cannot be used is reported by `read_schedule`.
    pub schedule: Result<Option<Schedule>, ScheduleError>,
    pub now: Timestamp,
}

/// The Secret a resource writes, as one reconcile knows it.
#[derive(Clone, Debug)]
pub enum Target {
    /// Read from the apiserver; `None`: there is none.
    Read(Option<Box<Secret>>),
    /// Not read: the counter asks for a rotation and the Secret's watch
    /// shows it at the version the status records, so it is the operator's
    /// own last write of it. The rotation's dry run reads it at exactly that
    /// version (`Run::prove_secret_writable`); a newer one fails it with a
    /// 409 and is read then.
    AsWritten { version: String },
}

impl Target {
    /// The Secret as read; `None` when there is none, and when it was not
    /// read (only a rotation with nothing in flight leaves it unread, and
    /// deciding one needs nothing from it).
    pub fn read(&self) -> Option<&Secret> {
        match self {
            Self::Read(secret) => secret.as_deref(),
            Self::AsWritten { .. } => None,
        }
    }

    pub fn version(&self) -> Option<&str> {
        match self {
            Self::Read(secret) => secret.as_ref().and_then(|s| s.metadata.resource_version.as_deref()),
            Self::AsWritten { version } => Some(version),
        }
    }
}

/// The version to leave the Secret unread at: when the counter or a due
/// `spec.schedule` asks for a rotation with nothing in flight (deciding it
/// needs nothing from the Secret), and the watch shows the Secret at the
/// version the status records. Every write the rotation makes carries that
/// version as its precondition, so a watch that is behind costs a 409 and a
/// read. `schedule` and `now` are the observation's own, so the plan finds
/// the schedule due exactly when this did; one that cannot be parsed
/// (`None` here) is read, and reported.
fn unread_at(
    resource: &RedisPasswordRotation,
    seen: &Seen,
    namespace: &str,
    name: &str,
    (schedule, now): (Option<&Schedule>, Timestamp),
) -> Option<String> {
    let status = resource.status.as_ref()?;
    let asked = status.rotation.is_some_and(|applied| {
        resource.spec.rotation > applied
            || resource.spec.rotation == applied && schedule.is_some_and(|s| schedule_due(s, resource, now))
    });
    let rotating = status.pending_rotation.is_none()
        && resource.metadata.deletion_timestamp.is_none()
        && asked
        && status.secret_name.as_deref() == Some(name);
    let recorded = status.secret_resource_version.as_deref()?;
    (rotating && seen.secret(namespace, name) == Freshness::NotOlderThan(recorded))
        .then(|| recorded.to_owned())
}

/// Whether `schedule` asks `resource` for a rotation at `now`.
fn schedule_due(schedule: &Schedule, resource: &RedisPasswordRotation, now: Timestamp) -> bool {
    let last = resource.status.as_ref().and_then(|s| s.last_rotation_time.as_ref()).map(|t| t.0);
    let created = resource.metadata.creation_timestamp.as_ref().map(|t| t.0);
    crate::schedule::counted_from(last, created)
        .is_some_and(|from| schedule.next_start(from, now).is_ok_and(|next| next <= now))
}

/// Another resource that manages the same database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Conflict {
    /// In this namespace: its name may be shown.
    SameNamespace(String),
    /// Elsewhere: its name is not this namespace's business.
    OtherNamespace,
}

/// The versions the watches last delivered of the resource and of the
/// Secrets it names: each read is at least that new. A Secret no watch has
/// delivered yet is read from etcd.
#[derive(Clone, Debug, Default)]
pub struct Seen {
    resource: Option<String>,
    /// The resource's namespace: the Secrets below are all in it.
    namespace: String,
    /// `(name, resourceVersion)`
    secrets: Vec<(String, String)>,
}

impl Seen {
    pub fn of(caches: &Caches, resource: &CachedRotation) -> Self {
        let namespace = resource.namespace().unwrap_or_default();
        let names = std::iter::once(resource.secret_name()).chain(resource.spec.credentials_secret.clone());
        let secrets = names
            .filter_map(|name| {
                let version = caches.secret_version(&namespace, &name)?;
                Some((name, version))
            })
            .collect();
        Self { resource: resource.resource_version(), namespace, secrets }
    }

    pub fn resource(&self) -> Freshness<'_> {
        self.resource.as_deref().map_or(Freshness::Latest, Freshness::NotOlderThan)
    }

    pub fn secret(&self, namespace: &str, name: &str) -> Freshness<'_> {
        self.secrets
            .iter()
            .find(|(n, _)| namespace == self.namespace && n == name)
            .map_or(Freshness::Latest, |(_, version)| Freshness::NotOlderThan(version))
    }
}

/// The resource and its Secrets, read from the apiserver; `None` when the
/// resource is gone. `copy`: the resource as its watch delivered it at the
/// version the reconcile was started for, which then is not read again.
pub async fn read<K: KubeOps, U: UpstashOps>(
    ctx: &Context<K, U>,
    namespace: &str,
    name: &str,
    seen: &Seen,
    copy: Option<RedisPasswordRotation>,
) -> Result<Option<Observation>> {
    let resource = match copy {
        Some(copy) => copy,
        None => match ctx.kube.get_resource(namespace, name, seen.resource()).await? {
            Some(resource) => resource,
            None => return Ok(None),
        },
    };
    let now = Timestamp::now();
    let uid = resource.uid().unwrap_or_default();
    let target_name = resource.secret_name();
    let schedule = resource.spec.schedule.as_ref().map(|spec| Schedule::parse(spec, now)).transpose();
    let unread = unread_at(
        &resource,
        seen,
        namespace,
        &target_name,
        (schedule.as_ref().ok().and_then(Option::as_ref), now),
    );
    // Independent reads, at once: the Secret and the key.
    let (target, key) = tokio::try_join!(
        async {
            match unread {
                Some(version) => Ok(Target::AsWritten { version }),
                None => ctx
                    .kube
                    .get_secret(namespace, &target_name, seen.secret(namespace, &target_name))
                    .await
                    .map(|secret| Target::Read(secret.map(Box::new)))
                    .map_err(Error::from),
            }
        },
        credentials::resolve(ctx, &resource, namespace, seen),
    )?;
    let pending = resource.status.as_ref().and_then(|s| s.pending_rotation);
    let remembered = ctx.remembered(&uid).filter(|r| pending == Some(r.target));
    Ok(Some(Observation {
        uid,
        target,
        key,
        remembered,
        conflict: None,
        upstash: None,
        schedule,
        now,
        resource,
    }))
}

impl Observation {
    /// What the resource and its Secrets look like, for the backoff gate.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint {
            generation: self.resource.metadata.generation,
            deleting: self.resource.metadata.deletion_timestamp.is_some(),
            credentials_secret: self.key.secret_version(),
            account: self.key.account_version.clone(),
            target_secret: self.target.version().map(str::to_owned),
        }
    }

    pub fn pending(&self) -> Option<i64> {
        self.resource.status.as_ref().and_then(|s| s.pending_rotation)
    }

    /// Parses `spec.schedule`: one the operator cannot use stops the
    /// reconcile before any step, like an invalid template.
    pub fn read_schedule(&self) -> Result<Option<Schedule>> {
        Ok(self.schedule.clone()?)
    }

    /// Whether `spec.schedule` asks for a rotation now: `every` has passed
    /// since the last rotation (or the creation) and a window, if any, is
    /// open.
    pub fn schedule_due(&self) -> bool {
        matches!(&self.schedule, Ok(Some(schedule)) if schedule_due(schedule, &self.resource, self.now))
    }

    /// Looks for an older resource that has synced the same database. Only
    /// synced ones count: a resource with a bogus key and someone else's
    /// database id must not block the real one.
    pub async fn find_conflict<K, U>(&mut self, ctx: &Context<K, U>) -> Result<()> {
        if !ctx.caches.resources_ready(Duration::from_secs(30)).await {
            return Err(Error::Waiting {
                reason: Reason::Starting,
                message:
                    "waiting for the operator's resource cache before checking for other resources on this \
                          database"
                        .into(),
                retry: Duration::from_secs(1),
            });
        }
        // Oldest first; the name breaks a tie.
        let key = |meta: &ObjectMeta| {
            (
                meta.creation_timestamp.clone().map(|t| t.0),
                meta.namespace.clone().unwrap_or_default(),
                meta.name.clone().unwrap_or_default(),
            )
        };
        let mine = key(&self.resource.metadata);
        let database = Key::Database(self.resource.spec.database_id.clone());
        let older = ctx
            .caches
            .pointing_at(&database)
            .into_iter()
            .filter(|o| o.uid().as_deref() != Some(self.uid.as_str()))
            .filter(|o| o.spec.database_id == self.resource.spec.database_id)
            .filter(|o| o.status.as_ref().is_some_and(|s| s.rotation.is_some()))
            .filter(|o| key(&o.metadata) < mine)
            .min_by_key(|o| key(&o.metadata));
        self.conflict = older.map(|other| {
            if other.namespace() == self.resource.namespace() {
                Conflict::SameNamespace(other.name_any())
            } else {
                Conflict::OtherNamespace
            }
        });
        Ok(())
    }

    /// Email and API key, from the resource's own Secret or its account's.
    pub fn api_credentials(&self) -> Result<ApiCredentials> {
        self.key.api_credentials()
    }

    /// Reads the database from Upstash (the only Upstash read of a reconcile).
    pub async fn read_upstash<K, U: UpstashOps>(&mut self, ctx: &Context<K, U>, auth: &ApiCredentials) {
        self.upstash = Some(ctx.upstash.get_database(auth, &self.resource.spec.database_id).await);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use kube::{core::PartialObjectMeta, runtime::watcher};

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;
    use crate::{
        cache::{KeyVersions, WrittenVersions},
        crd::{RedisPasswordRotationStatus, RotationSchedule},
    };

    fn secret(namespace: &str, name: &str, version: &str) -> PartialObjectMeta<Secret> {
        let mut secret = PartialObjectMeta::<Secret>::default();
        secret.metadata.namespace = Some(namespace.into());
        secret.metadata.name = Some(name.into());
        secret.metadata.resource_version = Some(version.into());
        secret
    }

    #[test]
    fn the_secret_is_left_unread_only_for_a_rotation_asked_for_over_the_operators_last_write() {
        let written = Arc::new(WrittenVersions::default());
        written.observe(&watcher::Event::Apply(secret("ns", "app-redis", "41")));
        let caches = Caches { written: vec![written], ..Default::default() };
        let rotating: RedisPasswordRotation = serde_json::from_value(serde_json::json!({
            "apiVersion": "upstash-rotator.io/v1alpha1", "kind": "RedisPasswordRotation",
            "metadata": {"name": "app", "namespace": "ns", "resourceVersion": "100"},
            "spec": {"databaseId": "db", "credentialsSecretRef": {"name": "key"}, "secretName": "app-redis",
                "rotation": 3},
            "status": {"rotation": 2, "secretName": "app-redis", "secretResourceVersion": "41"}
        }))
        .unwrap_or_else(|e| panic!("resource: {e}"));
        let unread = |resource: &RedisPasswordRotation| {
            let seen = Seen::of(&caches, &CachedRotation::of(resource));
            let now = Timestamp::now();
            let schedule = resource.spec.schedule.as_ref().and_then(|spec| Schedule::parse(spec, now).ok());
            unread_at(resource, &seen, "ns", &resource.secret_name(), (schedule.as_ref(), now))
        };
        assert_eq!(unread(&rotating).as_deref(), Some("41"));
        // A schedule due since long ago asks for one with the counter as applied.
        let mut scheduled = rotating.clone();
        scheduled.spec.rotation = 2;
        scheduled.metadata.creation_timestamp = Some(Time(Timestamp::UNIX_EPOCH));
        scheduled.spec.schedule =
            Some(Box::new(RotationSchedule { every: "1h".into(), windows: Vec::new(), time_zone: None }));
        assert_eq!(unread(&scheduled).as_deref(), Some("41"));
        // Not due yet, or unreadable (reported after the read): read.
        let mut rotated_now = scheduled.clone();
        rotated_now.status.get_or_insert_default().last_rotation_time = Some(Time(Timestamp::now()));
        let mut unreadable = scheduled.clone();
        if let Some(schedule) = &mut unreadable.spec.schedule {
            schedule.every = "hourly".into();
        }
        assert_eq!((unread(&rotated_now), unread(&unreadable)), (None, None));

        let mut changed =
            [rotating.clone(), rotating.clone(), rotating.clone(), rotating.clone(), rotating.clone()];
        let status = |r: &mut RedisPasswordRotation| r.status.get_or_insert_default().clone();
        // A reset in flight: recovery compares with the Secret's data.
        changed[0].status =
            Some(RedisPasswordRotationStatus { pending_rotation: Some(3), ..status(&mut changed[0]) });
        // Nothing to rotate: a sync compares with it too.
        changed[1].spec.rotation = 2;
        // Being deleted.
        changed[2].metadata.deletion_timestamp = Some(Time(Timestamp::UNIX_EPOCH));
        // The watch shows another version than the status records.
        changed[3].status = Some(RedisPasswordRotationStatus {
            secret_resource_version: Some("40".into()),
            ..status(&mut changed[3])
        });
        // spec.secretName changed: the recorded version is another Secret's.
        changed[4].spec.secret_name = Some("renamed".into());
        for (i, resource) in changed.iter().enumerate() {
            assert_eq!(unread(resource), None, "case {i}");
        }
    }

    #[test]
    fn reads_are_at_least_as_new_as_what_the_watches_delivered() {
        let written = Arc::new(WrittenVersions::default());
        written.observe(&watcher::Event::Apply(secret("ns", "app-redis", "41")));
        let mut keys = KeyVersions::default();
        keys.changed(watcher::Event::Apply(secret("ns", "key", "7")), |_, _| true);
        let caches = Caches {
            written: vec![written],
            keys: vec![Arc::new(parking_lot::Mutex::new(keys))],
            ..Default::default()
        };
        let resource: RedisPasswordRotation = serde_json::from_value(serde_json::json!({
            "apiVersion": "upstash-rotator.io/v1alpha1", "kind": "RedisPasswordRotation",
            "metadata": {"name": "app", "namespace": "ns", "resourceVersion": "100"},
            "spec": {"databaseId": "db", "credentialsSecretRef": {"name": "key"}, "secretName": "app-redis"}
        }))
        .unwrap_or_else(|e| panic!("resource: {e}"));
        let seen = Seen::of(&caches, &CachedRotation::of(&resource));
        assert_eq!(seen.resource(), Freshness::NotOlderThan("100"));
        assert_eq!(seen.secret("ns", "app-redis"), Freshness::NotOlderThan("41"));
        assert_eq!(seen.secret("ns", "key"), Freshness::NotOlderThan("7"));
        // Another namespace's Secret of that name, or a name the spec took
        // since the cache saw it: nothing was delivered, so etcd answers.
        assert_eq!(seen.secret("other", "key"), Freshness::Latest);
        assert_eq!(seen.secret("ns", "renamed"), Freshness::Latest);

        // A resource no watch delivered a Secret for reads both from etcd.
        let seen = Seen::of(&Caches::default(), &CachedRotation::of(&resource));
        assert_eq!(seen.secret("ns", "app-redis"), Freshness::Latest);
        assert_eq!(seen.secret("ns", "key"), Freshness::Latest);
    }
}
