//! `spec.rolloutRestart` against the recording fake: workloads are restarted
//! once per change of credentials, after the Secret holds them and before
//! the status records it, and never for a first sync, a resync, a new
//! process or a Secret restored with the same data.

use super::{
    fake::{Call, Fake},
    tests::{SECRET, done, process, raise_counter, reconcile_now, resource, status, take_calls, world},
};
use crate::{
    conditions::{CONSUMERS_RESTARTED, Reason, get, reason_of},
    crd::{WorkloadKind, WorkloadRef},
    secret,
};

fn workload(kind: WorkloadKind, name: &str) -> WorkloadRef {
    WorkloadRef { kind, name: name.into() }
}

/// `world()` with a resource that lists `listed`, of which `existing` exist.
fn world_with(listed: &[WorkloadRef], existing: &[&WorkloadRef]) -> Fake {
    let fake = world();
    let mut r = resource();
    r.spec.rollout_restart = listed.to_vec();
    fake.put_resource(r);
    fake.world().workloads = existing.iter().map(|w| (w.to_string(), None)).collect();
    fake
}

fn restarts(calls: &[Call]) -> Vec<String> {
    calls
        .iter()
        .filter_map(|c| match c {
            Call::RestartWorkload(w, _) => Some(w.clone()),
            _ => None,
        })
        .collect()
}

fn position(calls: &[Call], wanted: impl Fn(&Call) -> bool) -> usize {
    calls.iter().position(wanted).unwrap_or(usize::MAX)
}

#[tokio::test]
async fn a_rotation_restarts_each_workload_once_after_the_secret_and_before_the_status() {
    let (web, db) = (workload(WorkloadKind::Deployment, "web"), workload(WorkloadKind::StatefulSet, "db"));
    let fake = world_with(&[web.clone(), db.clone()], &[&web, &db]);
    let ctx = process(&fake);
    reconcile_now(&fake, &ctx).await.expect("first sync");
    assert_eq!(restarts(&take_calls(&fake)), Vec::<String>::new(), "a first sync restarts nothing");
    let first = status(&fake);
    assert_eq!(first.consumers_fingerprint, first.credentials_fingerprint, "they started with these");

    reconcile_now(&fake, &ctx).await.expect("resync");
    reconcile_now(&fake, &process(&fake)).await.expect("a new process");
    fake.world().secrets.remove(SECRET);
    reconcile_now(&fake, &ctx).await.expect("the deleted Secret restored");
    let calls = take_calls(&fake);
    assert!(calls.contains(&Call::Publish("DriftCorrected")), "{calls:?}");
    assert_eq!(restarts(&calls), Vec::<String>::new(), "same credentials back: no restart");

    raise_counter(&fake, 1);
    reconcile_now(&fake, &ctx).await.expect("rotated");
    let calls = take_calls(&fake);
    assert_eq!(restarts(&calls), ["Deployment/web", "StatefulSet/db"]);
    let secret_written = position(&calls, |c| *c == Call::ApplySecret);
    let first_restart = position(&calls, |c| matches!(c, Call::RestartWorkload(..)));
    let status_written = calls.iter().rposition(|c| *c == Call::PatchStatus).unwrap_or(0);
    assert!(secret_written < first_restart && first_restart < status_written, "{calls:?}");
    assert!(calls.contains(&Call::Publish("ConsumersRestarted")), "{calls:?}");
    assert_eq!(done(&fake, 1), Ok(()));
    let after = status(&fake);
    assert_eq!(after.consumers_fingerprint, after.credentials_fingerprint);
    let condition = get(&after.conditions, CONSUMERS_RESTARTED).expect("condition").clone();
    assert_eq!((condition.status.as_str(), condition.reason.as_str()), ("True", "Restarted"));
    let value = fake.world().workloads["Deployment/web"].clone().expect("annotated");
    let fingerprint = after.credentials_fingerprint.clone().expect("fingerprint");
    assert_eq!(value, format!("cache rotation 1 {fingerprint}"));
    assert!(!value.contains("password-1"), "only a fingerprint");

    reconcile_now(&fake, &process(&fake)).await.expect("a new process after the rotation");
    assert_eq!(restarts(&take_calls(&fake)), Vec::<String>::new());
    assert_eq!(
        ctx.metrics.consumer_restarts.get_or_create(&crate::metrics::KindLabel { kind: "Deployment" }).get(),
        1
    );
}

#[tokio::test]
async fn a_missing_workload_is_reported_and_the_rotation_still_counts_as_done() {
    let (web, gone) = (workload(WorkloadKind::Deployment, "web"), workload(WorkloadKind::DaemonSet, "gone"));
    let fake = world_with(&[gone.clone(), web.clone()], &[&web]);
    let ctx = process(&fake);
    reconcile_now(&fake, &ctx).await.expect("first sync");
    raise_counter(&fake, 1);
    take_calls(&fake);
    reconcile_now(&fake, &ctx).await.expect("a missing consumer does not fail the rotation");
    let calls = take_calls(&fake);
    assert_eq!(restarts(&calls), ["DaemonSet/gone", "Deployment/web"], "the others are still restarted");
    assert!(calls.contains(&Call::Publish("ConsumersNotRestarted")), "{calls:?}");
    assert_eq!(done(&fake, 1), Ok(()));
    let after = status(&fake);
    assert_eq!(reason_of(&after.conditions, CONSUMERS_RESTARTED), Some(Reason::ConsumerNotFound));
    let message = get(&after.conditions, CONSUMERS_RESTARTED).map(|c| c.message.clone()).unwrap_or_default();
    assert!(message.contains("DaemonSet/gone does not exist"), "{message}");
    assert_eq!(reason_of(&after.conditions, crate::conditions::READY), Some(Reason::Rotated));
    reconcile_now(&fake, &ctx).await.expect("resync");
    assert_eq!(restarts(&take_calls(&fake)), Vec::<String>::new(), "not retried for the same credentials");
}

#[tokio::test]
async fn a_restart_that_fails_on_the_way_is_repeated_with_the_same_value_and_no_second_reset() {
    let web = workload(WorkloadKind::Deployment, "web");
    let fake = world_with(std::slice::from_ref(&web), &[&web]);
    let ctx = process(&fake);
    reconcile_now(&fake, &ctx).await.expect("first sync");
    raise_counter(&fake, 1);
    fake.world().failing_restarts = 1;
    take_calls(&fake);
    reconcile_now(&fake, &ctx).await.expect_err("the apiserver failed the restart");
    {
        let world = fake.world();
        let current = world.credentials.as_ref().expect("credentials");
        assert!(secret::holds(&world.secrets[SECRET], current), "the Secret was written before the restart");
    }
    // A new process: nothing in memory, the Secret says rotation 1 is written.
    reconcile_now(&fake, &process(&fake)).await.expect("finished");
    let calls = take_calls(&fake);
    let values: Vec<_> = calls
        .iter()
        .filter_map(|c| match c {
            Call::RestartWorkload(_, v) => Some(v.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(values.len(), 2, "{calls:?}");
    assert_eq!(values[0], values[1], "the same annotation: one rollout");
    assert_eq!((done(&fake, 1), fake.world().resets), (Ok(()), 1));
}
