//! `spec.schedule` on the real apiserver with the real operator binary and
//! `upstash-sim`: a due rotation waits for its maintenance window, starts
//! once it opens (found by a process started after the schedule was set), a
//! counter bump does not wait, and `status.history` tells them apart, a
//! password reset outside the operator included.

use testkit as support;

use std::time::Duration;

use k8s_openapi::jiff::{SignedDuration, Timestamp, tz::TimeZone};
use support::{WAIT, eventually, operator::Operator, world::World};
use upstash_rotator::{
    crd::{MaintenanceWindow, RotationSchedule, RotationTrigger},
    secret::{KEY_PASSWORD, SCHEDULED_ANNOTATION},
};

/// The first whole minute at least `lead` from now, and its cron expression
/// (UTC), so the window is closed when the test begins.
fn minute_ahead(lead: SignedDuration) -> (Timestamp, String) {
    let at = Timestamp::now().checked_add(lead + SignedDuration::from_secs(60)).expect("in range");
    let minute = at.as_second() - at.as_second().rem_euclid(60);
    let open = Timestamp::from_second(minute).expect("in range");
    let zoned = open.to_zoned(TimeZone::UTC);
    (open, format!("{} {} * * *", zoned.minute(), zoned.hour()))
}

#[tokio::test]
async fn a_scheduled_rotation_waits_for_its_window_and_a_counter_bump_does_not() {
    let mut world = World::new("schedule").await;
    // Due one minute after the counter bump (about 2 s in): a window opening
    // 65 s or more from now opens after that.
    let (open, start) = minute_ahead(SignedDuration::from_secs(65));
    let mut spec = world.spec();
    spec.schedule = Some(Box::new(RotationSchedule {
        every: "1m".into(),
        windows: vec![MaintenanceWindow { start, duration: "1m".into() }],
        time_zone: None,
    }));
    world.create("cache", spec).await;
    let synced = world.wait_applied("cache", 0).await;
    let next = |r: &upstash_rotator::crd::RedisPasswordRotation| {
        r.status.as_ref().and_then(|s| s.next_rotation_time.clone()).map(|t| t.0)
    };
    assert_eq!(next(&synced), Some(open), "due, and waiting for the window");

    // A counter bump rotates at once, windows or not.
    world.set_rotation("cache", 1).await;
    let bumped = world.wait_applied("cache", 1).await;
    assert_eq!(world.resets().await, 1);
    let status = bumped.status.clone().unwrap_or_default();
    assert!(status.last_rotation_time.as_ref().is_some_and(|t| t.0 < open), "before the window opened");
    assert_eq!(status.history.iter().map(|h| h.trigger).collect::<Vec<_>>(), [RotationTrigger::Counter]);
    assert_eq!(next(&bumped), Some(open), "due again one minute later: still the same window");

    // A new process finds the wake-up from the status alone.
    world.stop_operator().await;
    world.start_operator().await;
    let rotated = eventually(Duration::from_secs(180), "the scheduled rotation", || async {
        let r = world.resources().get("cache").await.ok()?;
        (r.status.as_ref()?.scheduled_rotations == Some(1)).then_some(r)
    })
    .await;
    let status = rotated.status.clone().unwrap_or_default();
    let entry = status.history.first().cloned().expect("an entry");
    assert_eq!(
        (entry.trigger, entry.scheduled_rotation, entry.rotation),
        (RotationTrigger::Schedule, Some(1), 1)
    );
    assert!(entry.time.0 >= open, "not before the window: {} < {open}", entry.time.0);
    eprintln!("scheduled rotation started {} after the window opened", open.duration_until(entry.time.0));
    assert_eq!(status.history.len(), 2);
    assert_ne!(status.history[0].fingerprint, status.history[1].fingerprint, "two versions of the password");
    assert_eq!((status.rotation, rotated.spec.rotation), (Some(1), 1), "the counter is left alone");
    assert_eq!(world.resets().await, 2);
    // This process read the API key, not the Secret: its watch showed it at
    // the operator's last write, and the rotation's dry run proved it.
    let gets = world.operator.as_ref().map(|op| op.kubernetes_requests("get", "secrets", "200"));
    assert_eq!(gets, Some(1), "Secret reads of the scheduled rotation");
    // The window closed before the next one is due: tomorrow's.
    let tomorrow = open.checked_add(SignedDuration::from_hours(24)).expect("in range");
    assert_eq!(next(&rotated), Some(tomorrow));
    let current = world.current().await;
    assert_eq!(
        world.secret_text("cache", KEY_PASSWORD).await,
        current["password"].as_str().unwrap_or_default()
    );
    let secret = world.secrets().get("cache").await.expect("Secret");
    let annotations = secret.metadata.annotations.unwrap_or_default();
    assert_eq!(annotations.get(SCHEDULED_ANNOTATION).map(String::as_str), Some("1"));
    // Both rotations' events, which follow their statuses.
    eventually(WAIT, "a Rotated event for each rotation", || async {
        let notes: Vec<String> = world.events().await.into_iter().filter_map(|e| e.note).collect();
        let scheduled = notes.iter().any(|n| {
            n.starts_with("scheduled rotation 1 (at rotation 1)") && n.contains("trigger: schedule")
        });
        let counter = notes.iter().any(|n| n.starts_with("rotation 1:") && n.contains("trigger: counter"));
        (scheduled && counter).then_some(())
    })
    .await;
}

/// Every Upstash request the simulator saw for the world's database.
async fn upstash_calls(world: &World) -> u64 {
    let log = world.sim.request_log().await;
    let counts = log["counts"].as_object().cloned().unwrap_or_default();
    counts.values().filter_map(|by_db| by_db[&world.database_id].as_u64()).sum()
}

/// A restarted operator reconciles a resource at rest from its caches: no
/// Upstash call. A reset in the Upstash console (here: the simulator's API,
/// called by the test) is therefore found by the opt-in drift check: the
/// Secret gets the new password, a warning says where it came from, and the
/// history records it as `recovery`, without a reset of the operator's own.
#[tokio::test]
async fn a_password_reset_outside_the_operator_is_found_by_the_drift_check() {
    let mut world = World::new("outside").await;
    world.create("cache", world.spec()).await;
    world.wait_applied("cache", 0).await;
    world.stop_operator().await;
    let calls = upstash_calls(&world).await;
    world.start_operator().await;
    eventually(Duration::from_secs(60), "the restarted operator reconciles the resource", || async {
        (world.operator.as_ref().map_or(0, |o| o.reconciles_ok()) >= 1).then_some(())
    })
    .await;
    assert_eq!(upstash_calls(&world).await, calls, "a resource at rest costs no Upstash call");
    world.stop_operator().await;

    let reset = world.sim.reset(&world.database_id).await.expect("reset outside the operator");
    assert!(reset.status().is_success());
    let password = world.current().await["password"].as_str().unwrap_or_default().to_owned();
    let (client, url) = (world.client.clone(), world.sim.url.clone());
    let interval = Duration::from_secs(2);
    world.operator = Some(Operator::start_with_drift_check(client, &world.ns.name, &url, interval).await);
    let recorded = eventually(Duration::from_secs(60), "a recovery entry in the history", || async {
        let r = world.resources().get("cache").await.ok()?;
        let entry = r.status?.history.first().cloned()?;
        (entry.trigger == RotationTrigger::Recovery).then_some(entry)
    })
    .await;
    assert_eq!((recorded.rotation, recorded.recovered), (0, false));
    assert_eq!(world.secret_text("cache", KEY_PASSWORD).await, password);
    let reasons = world.event_reasons().await;
    assert!(reasons.iter().any(|r| r == "CredentialsChangedOutside"), "{reasons:?}");
    assert_eq!(world.resets().await, 1, "only the one made outside");
}
