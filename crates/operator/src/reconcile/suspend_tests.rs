//! `spec.suspend` against the recording fake: no call to Upstash while it
//! holds, a held reset answer still reaches the Secret, and resuming runs
//! the waiting rotation once.

use super::{
    fake::{Call, Fault},
    tests::{done, process, raise_counter, reconcile_now, status, take_calls, world},
};
use crate::conditions::{SUSPENDED, get};

fn suspend(fake: &super::fake::Fake, on: bool) {
    let mut r = fake.world().resource.clone().expect("exists");
    r.spec.suspend = on;
    fake.put_resource(r);
}

fn calls_upstash(calls: &[Call]) -> bool {
    calls.iter().any(|c| matches!(c, Call::GetDatabase | Call::Reset))
}

#[tokio::test]
async fn a_suspended_resource_calls_no_one_and_rotates_once_when_resumed() {
    let fake = world();
    let ctx = process(&fake);
    reconcile_now(&fake, &ctx).await.expect("first sync");
    suspend(&fake, true);
    raise_counter(&fake, 1);
    take_calls(&fake);
    reconcile_now(&fake, &ctx).await.expect("suspended");
    reconcile_now(&fake, &process(&fake)).await.expect("suspended, a new process");
    let calls = take_calls(&fake);
    assert!(!calls_upstash(&calls), "{calls:?}");
    assert_eq!(fake.world().resets, 0);
    let condition = get(&status(&fake).conditions, SUSPENDED).cloned().expect("Suspended condition");
    assert_eq!(condition.status, "True");
    assert!(condition.message.contains("rotation 1 waits"), "{}", condition.message);

    suspend(&fake, false);
    reconcile_now(&fake, &ctx).await.expect("resumed");
    assert_eq!((done(&fake, 1), fake.world().resets), (Ok(()), 1));
    assert!(get(&status(&fake).conditions, SUSPENDED).is_none(), "the condition goes with the suspension");
}

#[tokio::test]
async fn a_reset_answer_held_in_memory_is_written_even_when_suspended() {
    let fake = world();
    let ctx = process(&fake);
    reconcile_now(&fake, &ctx).await.expect("first sync");
    raise_counter(&fake, 1);
    take_calls(&fake);
    // The Secret write after the reset loses a race (409): the answer stays
    // in memory: the write on the Secret read before, and the one after a
    // fresh read.
    let apply = super::tests::index_of(&Call::ApplySecret);
    fake.world().faults = [(apply, Fault::Conflict), (apply + 2, Fault::Conflict)].into();
    let _ = reconcile_now(&fake, &ctx).await;
    fake.world().faults.clear();
    assert_eq!(fake.world().resets, 1, "{:?}", take_calls(&fake));
    assert!(done(&fake, 1).is_err(), "the answer is only in memory");
    suspend(&fake, true);
    take_calls(&fake);
    reconcile_now(&fake, &ctx).await.expect("the held answer is written");
    assert!(!calls_upstash(&take_calls(&fake)));
    assert_eq!((done(&fake, 1), fake.world().resets), (Ok(()), 1));
}
