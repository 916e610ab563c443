//! Whole copies of the resources that ask for work, as their watch delivered
//! them, so the reconcile the event starts decides on that version instead
//! of reading the resource again. The resource cache itself keeps only a
//! trimmed form (`cached`); a resource at rest keeps no copy here.
//!
//! Deciding on the watch's version is as safe as on a read: every write a
//! decision leads to, the intent before a reset above all, carries that
//! version as its precondition, so a copy that is behind ends in a 409 and
//! a reconcile on a read, never in a second reset. A copy serves one
//! reconcile at most: the one after a 409 reads.

use std::collections::HashMap;

use kube::{ResourceExt as _, runtime::watcher};
use parking_lot::Mutex;

use super::trim;
use crate::crd::RedisPasswordRotation;

/// At most this many copies are kept (a burst of raised counters): a few
/// kilobytes each, so a few megabytes at most. Beyond it, reconciles read.
pub const MAX_COPIES: usize = 1024;

/// Copies by uid, filled from the resource watches of every scope.
#[derive(Default)]
pub struct WorkingCopies {
    copies: Mutex<HashMap<String, RedisPasswordRotation>>,
}

impl WorkingCopies {
    /// Applies one watch event before the cache trims it. Drops from the
    /// event's object what no reconcile reads (`managedFields`, the
    /// last-applied annotation), so the copy need not hold them either.
    pub fn observe(&self, event: &mut watcher::Event<RedisPasswordRotation>) {
        match event {
            watcher::Event::Apply(resource) | watcher::Event::InitApply(resource) => self.apply(resource),
            watcher::Event::Delete(resource) => {
                self.copies.lock().remove(&resource.uid().unwrap_or_default());
            }
            // A relist: a copy of a resource deleted while the watch was
            // down would never be taken.
            watcher::Event::Init => self.copies.lock().clear(),
            watcher::Event::InitDone => {}
        }
    }

    fn apply(&self, resource: &mut RedisPasswordRotation) {
        let Some(uid) = resource.uid() else { return };
        let mut copies = self.copies.lock();
        if !asks_for_work(resource) {
            copies.remove(&uid);
            if copies.is_empty() {
                // A burst's table is not kept for good.
                copies.shrink_to_fit();
            }
            return;
        }
        if copies.len() >= MAX_COPIES && !copies.contains_key(&uid) {
            return;
        }
        trim::unread(&mut resource.metadata);
        copies.insert(uid, resource.clone());
    }

    /// The copy of the resource with `uid` at exactly `version`, taken out:
    /// `None` if there is none, or if the watch has delivered another
    /// version since.
    pub fn take(&self, uid: &str, version: Option<&str>) -> Option<RedisPasswordRotation> {
        let mut copies = self.copies.lock();
        let kept = copies.get(uid)?;
        if version.is_none() || kept.metadata.resource_version.as_deref() != version {
            return None;
        }
        copies.remove(uid)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.copies.lock().len()
    }
}

/// Whether the resource's status does not show done what it asks for: new,
/// a raised counter, a changed spec, an intent in flight, or a deletion.
/// Only those are copied; the reconcile of a resource at rest reads nothing.
fn asks_for_work(resource: &RedisPasswordRotation) -> bool {
    let Some(status) = &resource.status else { return true };
    resource.metadata.deletion_timestamp.is_some()
        || status.pending_rotation.is_some()
        || status.rotation != Some(resource.spec.rotation)
        || status.observed_generation != resource.metadata.generation
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;

    use super::*;
    use crate::{
        cache::trim::LAST_APPLIED,
        crd::{RedisPasswordRotationSpec, RedisPasswordRotationStatus},
    };

    fn resource(uid: &str, version: &str, asked: i64, applied: Option<i64>) -> RedisPasswordRotation {
        let mut r = RedisPasswordRotation::new(uid, RedisPasswordRotationSpec::new("db", "key"));
        r.metadata.uid = Some(uid.into());
        r.metadata.resource_version = Some(version.into());
        r.metadata.generation = Some(1);
        r.metadata.managed_fields = Some(vec![ManagedFieldsEntry::default()]);
        r.metadata.annotations = Some(
            [(LAST_APPLIED.to_owned(), "{}".to_owned()), ("team".to_owned(), "payments".to_owned())].into(),
        );
        r.spec.rotation = asked;
        r.status = applied.map(|rotation| RedisPasswordRotationStatus {
            rotation: Some(rotation),
            observed_generation: Some(1),
            ..Default::default()
        });
        r
    }

    fn apply(copies: &WorkingCopies, r: RedisPasswordRotation) {
        copies.observe(&mut watcher::Event::Apply(r));
    }

    #[test]
    fn a_raised_counter_is_copied_without_managed_fields_and_taken_once() {
        let copies = WorkingCopies::default();
        apply(&copies, resource("a", "7", 2, Some(1)));
        assert_eq!(copies.take("a", Some("6")), None, "another version is not served");
        let copy = copies.take("a", Some("7")).expect("the copy");
        assert_eq!(copy.spec.rotation, 2);
        assert!(copy.metadata.managed_fields.is_none());
        let annotations = copy.metadata.annotations.expect("annotations");
        assert!(!annotations.contains_key(LAST_APPLIED));
        assert_eq!(annotations.get("team").map(String::as_str), Some("payments"));
        assert_eq!(copies.take("a", Some("7")), None, "a copy serves one reconcile");
    }

    #[test]
    fn a_resource_at_rest_drops_its_copy() {
        let copies = WorkingCopies::default();
        apply(&copies, resource("a", "7", 2, Some(1)));
        apply(&copies, resource("a", "9", 2, Some(2)));
        assert_eq!(copies.len(), 0);
        assert_eq!(copies.take("a", Some("9")), None);
    }

    #[test]
    fn new_pending_and_deleted_resources_are_copied_until_deleted_or_relisted() {
        let copies = WorkingCopies::default();
        apply(&copies, resource("new", "1", 0, None));
        let mut pending = resource("pending", "2", 1, Some(1));
        pending.status.as_mut().expect("status").pending_rotation = Some(1);
        apply(&copies, pending);
        let mut deleting = resource("deleting", "3", 1, Some(1));
        deleting.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
        ));
        apply(&copies, deleting.clone());
        assert_eq!(copies.len(), 3);
        copies.observe(&mut watcher::Event::Delete(deleting));
        assert_eq!(copies.len(), 2);
        copies.observe(&mut watcher::Event::Init);
        assert_eq!(copies.len(), 0, "a relist starts over");
    }

    #[test]
    fn copies_are_bounded() {
        let copies = WorkingCopies::default();
        for i in 0..=MAX_COPIES {
            apply(&copies, resource(&format!("r{i}"), "1", 1, Some(0)));
        }
        assert_eq!(copies.len(), MAX_COPIES);
        // A resource already copied is still kept up to date.
        apply(&copies, resource("r0", "2", 1, Some(0)));
        assert!(copies.take("r0", Some("2")).is_some());
    }
}
