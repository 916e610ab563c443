//! `run --dry-run`: the plan a reconcile made, in words, as a log line and a
//! `DryRun` event, instead of its execution. Upstash may be read (a sync
//! needs to know what it would write); nothing is reset or written.

use super::{
    decide::Step,
    messages::Notice,
    plan::{Effect, Record},
};
use crate::crd::RedisPasswordRotation;

/// What the plan would change, or `None` when it would change nothing a
/// user cares about (a steady-state sync).
pub fn describe(step: Step, effects: &[Effect], resource: &RedisPasswordRotation) -> Option<String> {
    let (secret, database) = (resource.secret_name(), &resource.spec.database_id);
    let has = |wanted: fn(&Effect) -> bool| effects.iter().any(wanted);
    if let Some(Effect::Record(Record::Suspended { waiting })) = effects.first() {
        return waiting.map(|target| format!("{target} waits: spec.suspend is true"));
    }
    match step {
        Step::Rotate { target, scheduled: false } => Some(format!(
            "would reset the password of database {database} for rotation {target} and write the new credentials \
             to Secret {secret}"
        )),
        Step::Rotate { target, scheduled: true } => Some(format!(
            "would reset the password of database {database} for a scheduled rotation (spec.schedule is due; \
             rotation {target} stays) and write the new credentials to Secret {secret}"
        )),
        Step::Recover { target } if has(|e| matches!(e, Effect::Reset { .. })) => Some(format!(
            "would reset the password of database {database} again for rotation {target}: the recorded reset did \
             not happen"
        )),
        Step::Recover { target } if has(|e| matches!(e, Effect::StoreCurrent { .. })) => Some(format!(
            "would store the credentials Upstash reports in Secret {secret}: the recorded reset for rotation \
             {target} happened"
        )),
        Step::Recover { target } => {
            Some(format!("would drop rotation {target}: the resource is being deleted"))
        }
        Step::WriteRemembered { target } | Step::FinishRecorded { target } => {
            Some(format!("would record rotation {target} as applied"))
        }
        Step::Sync { .. } if resource.status.as_ref().is_none_or(|s| s.rotation.is_none()) => Some(format!(
            "would write the current credentials of database {database} to Secret {secret} (first sync, no reset)"
        )),
        Step::Sync { .. } if has(|e| matches!(e, Effect::Publish(Notice::DriftCorrected { .. }))) => {
            Some(format!("would restore Secret {secret} with the current credentials (no reset)"))
        }
        Step::Sync { .. } | Step::Release => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::RedisPasswordRotationSpec;

    #[test]
    fn a_rotation_and_a_first_sync_are_described_and_a_steady_sync_is_not() {
        let mut resource = RedisPasswordRotation::new("cache", RedisPasswordRotationSpec::new("db-1", "api"));
        let rotate =
            describe(Step::Rotate { target: 2, scheduled: false }, &[], &resource).unwrap_or_default();
        assert!(rotate.contains("reset the password of database db-1 for rotation 2"), "{rotate}");
        let first = describe(Step::Sync { rotation: 0 }, &[], &resource).unwrap_or_default();
        assert!(first.contains("first sync, no reset"), "{first}");
        resource.status =
            Some(crate::crd::RedisPasswordRotationStatus { rotation: Some(0), ..Default::default() });
        assert_eq!(describe(Step::Sync { rotation: 0 }, &[Effect::WriteStatus], &resource), None);
        let suspended = [
            Effect::Record(Record::Suspended {
                waiting: Some(crate::reconcile::messages::Rotation::counter(3)),
            }),
            Effect::WriteStatus,
        ];
        let waits =
            describe(Step::Rotate { target: 3, scheduled: false }, &suspended, &resource).unwrap_or_default();
        assert!(waits.contains("rotation 3 waits"), "{waits}");
    }
}
