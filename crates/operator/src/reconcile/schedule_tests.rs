//! `spec.schedule` and `status.history` against the recording fake: a due
//! schedule rotates once through the same crash-safe calls as the counter,
//! survives a failure at every call, waits for its window, yields to a
//! raised counter, and every change of credentials lands in the history.

use std::{sync::Arc, time::Duration};

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::runtime::controller::Action;

use super::{
    drift::{DriftCheck, DriftSettings},
    fake::{Call, Fake, Fault},
    schedule_wait,
    tests::{
        API_KEY, SECRET, UID, credentials, done, process, process_watching, raise_counter, reconcile_now,
        rotation_calls, rotation_calls_as_written, runs_broken_by_a_fault, status, take_calls, world,
    },
};
use crate::{
    conditions::{READY, get},
    crd::{MaintenanceWindow, RotationSchedule, RotationTrigger},
    secret,
};

fn schedule(fake: &Fake, every: &str, windows: Vec<MaintenanceWindow>) {
    let mut r = fake.world().resource.clone().expect("exists");
    r.spec.schedule = Some(Box::new(RotationSchedule { every: every.into(), windows, time_zone: None }));
    fake.put_resource(r);
}

/// A window of one minute that opens twelve hours from now: closed now.
fn closed_window() -> MaintenanceWindow {
    let hour = Timestamp::now().to_zoned(k8s_openapi::jiff::tz::TimeZone::UTC).hour();
    MaintenanceWindow { start: format!("0 {} * * *", (hour + 12) % 24), duration: "1m".into() }
}

/// Synced, with a schedule that came due long ago (the resource was
/// created in 1970); the call log empty.
async fn due() -> (Fake, std::sync::Arc<super::Context<Fake, Fake>>) {
    let fake = world();
    let ctx = process(&fake);
    reconcile_now(&fake, &ctx).await.expect("first sync");
    schedule(&fake, "1h", Vec::new());
    take_calls(&fake);
    (fake, ctx)
}

/// The scheduled rotation is done: one reset, the counter left alone,
/// numbered 1, and recorded once in the history.
fn scheduled_done(fake: &Fake) -> Result<(), String> {
    done(fake, 0)?;
    let status = status(fake);
    let history: Vec<_> = status.history.iter().map(|h| (h.trigger, h.scheduled_rotation)).collect();
    let written = fake.world().secrets.get(SECRET).and_then(|s| secret::written(s, UID));
    match () {
        () if status.scheduled_rotations != Some(1) => {
            Err(format!("scheduled {:?}", status.scheduled_rotations))
        }
        () if history != [(RotationTrigger::Schedule, Some(1))] => Err(format!("history {history:?}")),
        () if written != Some(secret::Written { rotation: 0, scheduled: 1 }) => {
            Err(format!("Secret {written:?}"))
        }
        () => Ok(()),
    }
}

#[tokio::test]
async fn a_due_schedule_rotates_once_like_the_counter_and_leaves_the_counter_alone() {
    let (fake, ctx) = due().await;
    let action = reconcile_now(&fake, &ctx).await.expect("scheduled rotation");
    assert_eq!(take_calls(&fake), rotation_calls(), "the counter's crash-safe order");
    assert_eq!((scheduled_done(&fake), fake.world().resets), (Ok(()), 1));
    let status = status(&fake);
    assert_eq!(status.history[0].fingerprint, status.credentials_fingerprint);
    assert!(!status.history[0].recovered);
    let last = status.last_rotation_time.clone().expect("rotated").0;
    let next = status.next_rotation_time.clone().expect("next").0;
    assert_eq!(last.duration_until(next), SignedDuration::from_hours(1));
    assert_ne!(action, Action::await_change(), "woken up at the next rotation");
    let message = get(&status.conditions, READY).map(|c| c.message.clone()).unwrap_or_default();
    assert!(message.starts_with("scheduled rotation 1 (at rotation 0) applied"), "{message}");

    // Not due again for an hour: no call to reset, and no status write.
    reconcile_now(&fake, &ctx).await.expect("steady");
    let calls = take_calls(&fake);
    assert!(!calls.iter().any(|c| matches!(c, Call::Reset | Call::PatchStatus)), "{calls:?}");
}

#[tokio::test(start_paused = true)]
async fn a_failure_at_any_call_of_a_scheduled_rotation_never_loses_the_password_or_resets_twice() {
    let broken = runs_broken_by_a_fault(due, scheduled_done).await;
    assert!(broken.is_empty(), "{broken:#?}");
}

#[tokio::test(start_paused = true)]
async fn a_failure_at_any_call_of_a_scheduled_rotation_over_the_secret_as_written_never_loses_or_repeats() {
    let broken = runs_broken_by_a_fault(due_as_written, scheduled_done).await;
    assert!(broken.is_empty(), "{broken:#?}");
}

#[tokio::test]
async fn a_due_schedule_waits_while_suspended_without_spinning() {
    let (fake, ctx) = due().await;
    let mut r = fake.world().resource.clone().expect("exists");
    r.spec.suspend = true;
    fake.put_resource(r);
    let action = reconcile_now(&fake, &ctx).await.expect("suspended");
    assert_eq!(action, Action::await_change(), "due now: no timer that fires at once, again and again");
    assert_eq!(fake.world().resets, 0);
    let suspended = get(&status(&fake).conditions, crate::conditions::SUSPENDED).cloned().expect("Suspended");
    assert!(
        suspended.message.contains("scheduled rotation 1 (at rotation 0) waits"),
        "{}",
        suspended.message
    );
    // The stored status is stable: a second reconcile writes nothing.
    take_calls(&fake);
    reconcile_now(&fake, &ctx).await.expect("still suspended");
    assert!(!take_calls(&fake).contains(&Call::PatchStatus));
}

/// `due`, in a process whose watch shows the Secret at the operator's last
/// write.
async fn due_as_written() -> (Fake, std::sync::Arc<super::Context<Fake, Fake>>) {
    let (fake, _) = due().await;
    let version = status(&fake).secret_resource_version.expect("recorded");
    let ctx = process_watching(&fake, &[(SECRET, &version)]);
    (fake, ctx)
}

#[tokio::test]
async fn a_due_schedule_over_the_secret_as_written_reads_it_with_its_dry_run() {
    let (fake, ctx) = due_as_written().await;
    let version = status(&fake).secret_resource_version.expect("recorded");
    reconcile_now(&fake, &ctx).await.expect("scheduled rotation");
    // As for a raised counter: the dry run is the read.
    assert_eq!(take_calls(&fake), rotation_calls_as_written(&version));
    assert_eq!((scheduled_done(&fake), fake.world().resets), (Ok(()), 1));
}

#[tokio::test]
async fn a_schedule_waiting_for_its_window_reads_the_secret_as_written() {
    let fake = world();
    reconcile_now(&fake, &process(&fake)).await.expect("first sync");
    // Added after the sync: nothing records when it comes due.
    schedule(&fake, "1m", vec![closed_window()]);
    let version = status(&fake).secret_resource_version.expect("recorded");
    let ctx = process_watching(&fake, &[(SECRET, &version)]);
    take_calls(&fake);
    reconcile_now(&fake, &ctx).await.expect("waits for the window");
    // Not due: the sync it does instead compares with the Secret, so it
    // reads it first, as any sync does.
    let sync = [
        Call::GetResource,
        Call::GetSecret(SECRET.into()),
        Call::GetSecret(API_KEY.into()),
        Call::GetDatabase,
        Call::ApplySecret,
        Call::PatchStatus,
    ];
    assert_eq!(take_calls(&fake), sync);
    assert_eq!(fake.world().resets, 0);
}

#[tokio::test]
async fn a_closed_window_holds_the_schedule_but_not_a_raised_counter() {
    let fake = world();
    let ctx = process(&fake);
    schedule(&fake, "1m", vec![closed_window()]);
    reconcile_now(&fake, &ctx).await.expect("first sync");
    let action = reconcile_now(&fake, &ctx).await.expect("waits for the window");
    assert_eq!(fake.world().resets, 0);
    let next = status(&fake).next_rotation_time.expect("set").0;
    let wait = Timestamp::now().duration_until(next);
    assert!(wait > SignedDuration::from_hours(11) && wait <= SignedDuration::from_hours(12), "{wait:?}");
    assert_ne!(action, Action::await_change());

    raise_counter(&fake, 1);
    reconcile_now(&fake, &ctx).await.expect("the counter rotates at once");
    assert_eq!((done(&fake, 1), fake.world().resets), (Ok(()), 1));
    let history = status(&fake).history;
    assert_eq!(
        history.iter().map(|h| (h.rotation, h.trigger)).collect::<Vec<_>>(),
        [(1, RotationTrigger::Counter)]
    );
}

#[tokio::test]
async fn a_schedule_the_operator_cannot_read_stops_before_any_call_to_upstash() {
    let fake = world();
    let ctx = process(&fake);
    let mut r = fake.world().resource.clone().expect("exists");
    let spec =
        RotationSchedule { every: "1h".into(), windows: Vec::new(), time_zone: Some("Mars/Olympus".into()) };
    r.spec.schedule = Some(Box::new(spec));
    fake.put_resource(r);
    let failure = reconcile_now(&fake, &ctx).await.expect_err("invalid");
    assert_eq!(failure.error.reason().as_str(), "InvalidSchedule");
    let calls = take_calls(&fake);
    assert!(!calls.iter().any(|c| matches!(c, Call::GetDatabase | Call::Reset)), "{calls:?}");
    let ready = get(&status(&fake).conditions, READY).cloned().expect("Ready");
    assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", "InvalidSchedule"));
    assert!(ready.message.contains("Mars/Olympus"), "{}", ready.message);
}

#[tokio::test]
async fn a_password_changed_outside_the_operator_is_stored_and_recorded_as_recovery() {
    let fake = world();
    let ctx = process(&fake);
    reconcile_now(&fake, &ctx).await.expect("first sync");
    assert!(status(&fake).history.is_empty(), "a first sync changes no credentials");
    fake.world().credentials = Some(credentials(9));
    // At rest, nothing asks Upstash: the change goes unseen...
    take_calls(&fake);
    reconcile_now(&fake, &ctx).await.expect("at rest");
    assert_eq!(super::tests::after_reads(take_calls(&fake)), []);
    // ...until the opt-in drift check is due.
    let mut ctx = Arc::try_unwrap(ctx).unwrap_or_else(|_| panic!("one owner"));
    let every = std::num::NonZeroU32::MIN;
    ctx.drift =
        Some(DriftCheck::new(DriftSettings { interval: Duration::ZERO, per_account_per_minute: every }));
    let ctx = Arc::new(ctx);
    reconcile_now(&fake, &ctx).await.expect("synced");
    assert_eq!((done(&fake, 0), fake.world().resets), (Ok(()), 0));
    let calls = take_calls(&fake);
    assert!(calls.contains(&Call::Publish("CredentialsChangedOutside")), "{calls:?}");
    assert!(!calls.contains(&Call::Publish("DriftCorrected")), "{calls:?}");
    let status = status(&fake);
    let entry = status.history.first().cloned().expect("an entry");
    assert_eq!((entry.rotation, entry.trigger, entry.recovered), (0, RotationTrigger::Recovery, false));
    assert_eq!(entry.fingerprint, Some(secret::fingerprint(&credentials(9))));
}

#[tokio::test]
async fn the_history_keeps_the_last_ten_newest_first_and_marks_recovered_answers() {
    let fake = world();
    let ctx = process(&fake);
    reconcile_now(&fake, &ctx).await.expect("first sync");
    for n in 1..=11 {
        raise_counter(&fake, n);
        reconcile_now(&fake, &ctx).await.expect("rotated");
    }
    // Rotation 12's answer is lost: recovered from Upstash by a new process.
    raise_counter(&fake, 12);
    let reset = fake.world().calls.len() + super::tests::index_of(&Call::Reset);
    fake.world().faults.insert(reset, Fault::After);
    let _ = reconcile_now(&fake, &ctx).await;
    reconcile_now(&fake, &process(&fake)).await.expect("recovered");
    assert_eq!((done(&fake, 12), fake.world().resets), (Ok(()), 12));
    let history = status(&fake).history;
    let rotations: Vec<_> = history.iter().map(|h| h.rotation).collect();
    assert_eq!(rotations, (3..=12).rev().collect::<Vec<_>>());
    assert!(history[0].recovered && !history[1].recovered);
    let prints: std::collections::BTreeSet<_> = history.iter().map(|h| h.fingerprint.clone()).collect();
    assert_eq!(prints.len(), 10, "every version tells apart");
}

#[test]
fn the_wake_up_is_never_early_and_never_spins() {
    let now = Timestamp::UNIX_EPOCH;
    let in_a_minute = now.checked_add(SignedDuration::from_secs(60)).expect("in range");
    assert_eq!(schedule_wait(Some(in_a_minute), now), Some(Duration::from_millis(60_001)));
    assert_eq!(schedule_wait(Some(now), now), None, "due but not started: wait for a change");
    assert_eq!(schedule_wait(None, now), None);
    let far = now.checked_add(SignedDuration::from_hours(24 * 400)).expect("in range");
    assert_eq!(schedule_wait(Some(far), now), Some(Duration::from_secs(30 * 24 * 3600)));
}
