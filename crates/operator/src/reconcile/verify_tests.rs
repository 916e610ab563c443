//! The check after a rotation against the recording fake: it waits out
//! propagation, reports a failure with a warning and never resets again,
//! and `spec.verify: false` turns it off.

use super::{
    fake::{Call, Fake},
    tests::{done, process, raise_counter, reconcile_now, status, take_calls, world},
};
use crate::{
    conditions::{VERIFIED, get},
    metrics::ResultLabel,
};

/// Synced at rotation 0, then the counter raised to 1.
async fn rotate_with(fake: &Fake) -> std::sync::Arc<super::Context<Fake, Fake>> {
    let ctx = process(fake);
    reconcile_now(fake, &ctx).await.expect("first sync");
    raise_counter(fake, 1);
    take_calls(fake);
    ctx
}

fn verified(fake: &Fake) -> (String, String, String) {
    let c = get(&status(fake).conditions, VERIFIED).cloned().expect("a Verified condition");
    (c.status, c.reason, c.message)
}

fn pings(calls: &[Call]) -> Vec<bool> {
    calls.iter().filter_map(|c| if let Call::Ping(current) = c { Some(*current) } else { None }).collect()
}

#[tokio::test(start_paused = true)]
async fn the_check_waits_for_propagation_then_passes() {
    let fake = world();
    let ctx = rotate_with(&fake).await;
    // The next 3 PINGs see the data plane as before the reset.
    fake.world().lagging_pings = 3;
    reconcile_now(&fake, &ctx).await.expect("rotated");
    let calls = take_calls(&fake);
    assert_eq!(pings(&calls), [true, true, true, true, false], "{calls:?}");
    let (state, reason, message) = verified(&fake);
    assert_eq!((state.as_str(), reason.as_str()), ("True", "Verified"), "{message}");
    assert!(message.contains("the old ones are refused (5 checks"), "{message}");
    assert_eq!(ctx.metrics.verifications.get_or_create(&ResultLabel { result: "verified" }).get(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_uneventful_check_asks_twice_and_sleeps_not_at_all() {
    let fake = world();
    let ctx = rotate_with(&fake).await;
    // The clock is paused: it moves only when something sleeps.
    let before = tokio::time::Instant::now();
    reconcile_now(&fake, &ctx).await.expect("rotated");
    assert_eq!(before.elapsed(), std::time::Duration::ZERO, "no wait on the rotation's path");
    assert_eq!(pings(&take_calls(&fake)), [true, false]);
    let (_, reason, message) = verified(&fake);
    assert_eq!(reason, "Verified");
    assert!(message.contains("(2 checks in"), "{message}");
}

#[tokio::test(start_paused = true)]
async fn the_rotation_event_is_queued_after_the_status_and_never_waited_for() {
    let fake = world();
    let ctx = rotate_with(&fake).await;
    // An event that is awaited takes 2 s here (the clock is paused: it
    // moves only when something waits).
    fake.world().slow_events = true;
    let before = tokio::time::Instant::now();
    reconcile_now(&fake, &ctx).await.expect("rotated");
    assert_eq!(before.elapsed(), std::time::Duration::ZERO, "the rotation did not wait for its event");
    let calls = take_calls(&fake);
    let event = calls.iter().position(|c| *c == Call::Publish("Rotated"));
    let status = calls.iter().rposition(|c| *c == Call::PatchStatus);
    assert!(status < event && status.is_some(), "{calls:?}");
    assert_eq!(done(&fake, 1), Ok(()));
}

#[tokio::test(start_paused = true)]
async fn a_failed_check_is_reported_and_never_answered_with_a_reset() {
    for (lag, down, reason) in [(u32::MAX, false, "VerificationFailed"), (0, true, "VerificationUnavailable")]
    {
        let fake = world();
        let ctx = rotate_with(&fake).await;
        {
            let mut w = fake.world();
            w.lagging_pings = lag;
            (w.data_plane_down, w.resp_down) = (down, down);
        }
        reconcile_now(&fake, &ctx).await.expect("rotated anyway");
        let calls = take_calls(&fake);
        assert!(calls.contains(&Call::Publish(if down {
            "VerificationUnavailable"
        } else {
            "VerificationFailed"
        })));
        assert_eq!((done(&fake, 1), fake.world().resets), (Ok(()), 1), "{reason}: the rotation stands");
        let (state, got, message) = verified(&fake);
        assert_eq!((state.as_str(), got.as_str()), ("False", reason), "{message}");
        // Later reconciles neither check again nor reset.
        reconcile_now(&fake, &ctx).await.expect("steady");
        let calls = take_calls(&fake);
        assert!(!calls.iter().any(|c| matches!(c, Call::Ping(_) | Call::Reset)), "{calls:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn without_the_rest_data_plane_the_check_uses_auth_and_ping_over_resp() {
    let fake = world();
    let ctx = rotate_with(&fake).await;
    fake.world().data_plane_down = true;
    reconcile_now(&fake, &ctx).await.expect("rotated");
    let calls = take_calls(&fake);
    let resp: Vec<bool> =
        calls.iter().filter_map(|c| if let Call::RespPing(n) = c { Some(*n) } else { None }).collect();
    assert_eq!((pings(&calls), resp), (vec![true], vec![true, false]), "one REST try, then RESP: {calls:?}");
    let (state, reason, message) = verified(&fake);
    assert_eq!((state.as_str(), reason.as_str()), ("True", "Verified"), "{message}");
    assert!(message.contains("over RESP") && message.contains("the old ones are refused"), "{message}");
}

#[tokio::test]
async fn verify_false_turns_the_check_and_its_condition_off() {
    let fake = world();
    let ctx = rotate_with(&fake).await;
    reconcile_now(&fake, &ctx).await.expect("rotated and checked");
    assert!(get(&status(&fake).conditions, VERIFIED).is_some());
    let mut r = fake.world().resource.clone().expect("exists");
    r.spec.verify = false;
    r.spec.rotation = 2;
    fake.put_resource(r);
    take_calls(&fake);
    reconcile_now(&fake, &ctx).await.expect("rotated unchecked");
    assert!(pings(&take_calls(&fake)).is_empty());
    assert_eq!(done(&fake, 2), Ok(()));
    assert!(get(&status(&fake).conditions, VERIFIED).is_none(), "the condition goes with the check");
}
