//! A resource at rest needs nothing: its status records the counter it asks
//! for, nothing is in flight, and its Secret is still the version the
//! operator last wrote. Checked before any I/O (on the caches) and again on
//! the fresh reads, so restarts, relists, a new leader and the echoes of the
//! operator's own writes cost no Upstash call and no write.

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt as _;

use super::FINALIZER;
use crate::cache::CachedRotation;

/// Whether `resource` (cached, or a fresh read cut down the same way) is at
/// rest while its Secret has `secret_version` (`None`: there is no Secret).
pub fn at_rest(resource: &CachedRotation, secret_version: Option<&str>, now: Timestamp) -> bool {
    let Some(status) = &resource.status else { return false };
    // A scheduled resource rests only until its next rotation is due.
    let schedule_quiet = !resource.spec.scheduled || status.next_rotation_time.is_some_and(|next| next > now);
    resource.metadata.deletion_timestamp.is_none()
        && !resource.finalizers().iter().any(|f| f == FINALIZER)
        && !status.pending
        && status.rotation == Some(resource.spec.rotation)
        // The spec the status was written for.
        && status.observed_generation.is_some()
        && status.observed_generation == resource.metadata.generation
        && status.secret_resource_version.is_some()
        && status.secret_resource_version.as_deref() == secret_version
        && status.ready
        // A restart that failed is retried by a full reconcile.
        && !status.consumers_restart_failed
        && schedule_quiet
}

#[cfg(test)]
mod tests {
    use k8s_openapi::{
        apimachinery::pkg::apis::meta::v1::{Condition, Time},
        jiff::ToSpan as _,
    };

    use super::*;
    use crate::{
        conditions::{CONSUMERS_RESTARTED, READY},
        crd::{RedisPasswordRotation, RedisPasswordRotationSpec, RedisPasswordRotationStatus},
    };

    fn at_rest(resource: &RedisPasswordRotation, secret_version: Option<&str>, now: Timestamp) -> bool {
        super::at_rest(&CachedRotation::of(resource), secret_version, now)
    }

    fn condition(type_: &str, status: &str) -> Condition {
        Condition {
            type_: type_.into(),
            status: status.into(),
            reason: "Synced".into(),
            message: String::new(),
            last_transition_time: Time(Timestamp::UNIX_EPOCH),
            observed_generation: None,
        }
    }

    fn resting() -> RedisPasswordRotation {
        let spec: RedisPasswordRotationSpec = serde_json::from_value(
            serde_json::json!({"databaseId": "db", "rotation": 2, "credentialsSecretRef": {"name": "key"}}),
        )
        .unwrap_or_else(|e| panic!("spec: {e}"));
        let mut resource = RedisPasswordRotation::new("cache", spec);
        resource.metadata.generation = Some(3);
        resource.status = Some(RedisPasswordRotationStatus {
            observed_generation: Some(3),
            rotation: Some(2),
            secret_resource_version: Some("41".into()),
            conditions: vec![condition(READY, "True")],
            ..Default::default()
        });
        resource
    }

    #[test]
    fn a_synced_resource_whose_secret_is_unchanged_is_at_rest() {
        assert!(at_rest(&resting(), Some("41"), Timestamp::now()));
    }

    #[test]
    fn any_change_the_operator_did_not_record_wakes_it() {
        let now = Timestamp::now();
        // The Secret was edited, deleted, or never recorded.
        assert!(!at_rest(&resting(), Some("42"), now));
        assert!(!at_rest(&resting(), None, now));
        let mut unrecorded = resting();
        if let Some(s) = unrecorded.status.as_mut() {
            s.secret_resource_version = None;
        }
        assert!(!at_rest(&unrecorded, None, now));

        let changes: [fn(&mut RedisPasswordRotation); 7] = [
            |r| r.spec.rotation = 3,
            |r| r.metadata.generation = Some(4),
            |r| r.metadata.deletion_timestamp = Some(Time(Timestamp::UNIX_EPOCH)),
            |r| r.metadata.finalizers = Some(vec![FINALIZER.into()]),
            |r| r.status.as_mut().into_iter().for_each(|s| s.pending_rotation = Some(3)),
            |r| r.status.as_mut().into_iter().for_each(|s| s.conditions = vec![condition(READY, "False")]),
            |r| {
                r.status
                    .as_mut()
                    .into_iter()
                    .for_each(|s| s.conditions.push(condition(CONSUMERS_RESTARTED, "False")))
            },
        ];
        for (i, change) in changes.iter().enumerate() {
            let mut resource = resting();
            change(&mut resource);
            assert!(!at_rest(&resource, Some("41"), now), "change {i}");
        }
    }

    #[test]
    fn a_schedule_rests_until_its_next_rotation_is_due() {
        let now = Timestamp::now();
        let mut scheduled = resting();
        scheduled.spec.schedule = Some(
            serde_json::from_value(serde_json::json!({"every": "24h"})).unwrap_or_else(|e| panic!("{e}")),
        );
        assert!(!at_rest(&scheduled, Some("41"), now), "no next rotation recorded");
        for (offset, rests) in [(1, true), (-1, false)] {
            let mut resource = scheduled.clone();
            if let Some(s) = resource.status.as_mut() {
                s.next_rotation_time = now.checked_add(offset.hours()).ok().map(Time);
            }
            assert_eq!(at_rest(&resource, Some("41"), now), rests, "next rotation in {offset} h");
        }
    }
}
