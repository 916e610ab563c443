//! The versions this process replaced with its own writes. Each write comes
//! back as a watch event, and the reconcile it triggers may still see the
//! older version in the caches. A cache holding a version this process
//! replaced is behind: the event of the newer write is on its way and brings
//! a reconcile of its own, so this one stops at once, without reads.
//! (Versions are only ever compared for equality.)

use std::collections::HashMap;

use parking_lot::Mutex;

/// Per resource: replaced versions, the newest first, at most this many.
const KEPT: usize = 8;

#[derive(Default)]
pub struct Replaced(Mutex<HashMap<String, Versions>>);

#[derive(Default)]
struct Versions {
    resource: Vec<String>,
    /// The resource's version after this process's latest write.
    resource_latest: Option<String>,
    secret: Vec<String>,
}

fn push(list: &mut Vec<String>, version: String) {
    list.insert(0, version);
    list.truncate(KEPT);
}

impl Replaced {
    /// The resource `uid` went from `before` to `after` by this process's write.
    pub fn resource(&self, uid: &str, before: Option<String>, after: Option<String>) {
        if before == after {
            return;
        }
        let mut all = self.0.lock();
        let versions = all.entry(uid.to_owned()).or_default();
        if let Some(before) = before {
            push(&mut versions.resource, before);
        }
        versions.resource_latest = after;
    }

    /// The resource's Secret went from `before` to `after` by this process.
    pub fn secret(&self, uid: &str, before: Option<String>, after: Option<String>) {
        if before == after {
            return;
        }
        if let Some(before) = before {
            push(&mut self.0.lock().entry(uid.to_owned()).or_default().secret, before);
        }
    }

    /// Whether the caches are behind this process's own writes: they hold a
    /// resource version it replaced, or its latest resource version with a
    /// Secret version it replaced.
    pub fn behind(&self, uid: &str, resource: Option<&str>, secret: Option<&str>) -> bool {
        let all = self.0.lock();
        let Some(versions) = all.get(uid) else { return false };
        let replaced = |list: &[String], v: Option<&str>| v.is_some_and(|v| list.iter().any(|r| r == v));
        replaced(&versions.resource, resource)
            || (resource.is_some()
                && versions.resource_latest.as_deref() == resource
                && replaced(&versions.secret, secret))
    }

    /// The caches caught up (or the resource is gone): nothing to keep.
    pub fn forget(&self, uid: &str) {
        self.0.lock().remove(uid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn some(v: &str) -> Option<String> {
        Some(v.to_owned())
    }

    #[test]
    fn only_versions_this_process_replaced_are_behind() {
        let replaced = Replaced::default();
        assert!(!replaced.behind("u", Some("1"), Some("10")), "nothing written yet");
        replaced.resource("u", some("1"), some("2")); // intent
        replaced.secret("u", some("10"), some("11"));
        replaced.resource("u", some("2"), some("3")); // final status
        for (resource, secret, behind) in [
            ("1", "10", true),
            ("2", "11", true),
            ("3", "10", true),  // the resource caught up, its Secret did not
            ("3", "11", false), // both caught up
            ("4", "10", false), // someone else wrote the resource: decide
        ] {
            assert_eq!(replaced.behind("u", Some(resource), Some(secret)), behind, "{resource} {secret}");
        }
        assert!(!replaced.behind("other", Some("1"), None));
        replaced.forget("u");
        assert!(!replaced.behind("u", Some("1"), None));
    }

    #[test]
    fn memory_per_resource_is_bounded() {
        let replaced = Replaced::default();
        for v in 0..100 {
            replaced.resource("u", Some(v.to_string()), Some((v + 1).to_string()));
        }
        assert!(replaced.behind("u", Some("99"), None));
        assert!(!replaced.behind("u", Some("0"), None), "only the newest are kept");
    }
}
