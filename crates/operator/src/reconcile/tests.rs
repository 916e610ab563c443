//! The crash-safe ordering, checked call by call against a recording fake:
//! the exact effects of each step, then a failure injected at every call of
//! a rotation (refused, applied with its answer lost, or a 409), with and
//! without a process restart, must still end with exactly one reset and the
//! Secret holding the credentials Upstash has.

use std::{sync::Arc, time::Duration};

use k8s_openapi::{
    apimachinery::pkg::apis::meta::v1::{MicroTime, Time},
    jiff::Timestamp,
};
use kube::runtime::controller::Action;

use super::{
    Context, Error, FINALIZER, Failure,
    fake::{Call, Fake, Fault, api_key_secret},
    reconcile,
};
use crate::{
    crd::{
        DeletionPolicy, RedisPasswordRotation, RedisPasswordRotationSpec, RedisPasswordRotationStatus,
        ResetAttempt,
    },
    secret,
};

pub(super) const UID: &str = "uid-1";
pub(super) const SECRET: &str = "cache";
pub(super) const API_KEY: &str = "upstash-api";

pub(super) fn resource() -> RedisPasswordRotation {
    let mut r = RedisPasswordRotation::new("cache", RedisPasswordRotationSpec::new("db", API_KEY));
    r.metadata.namespace = Some("ns".into());
    r.metadata.uid = Some(UID.into());
    r.metadata.generation = Some(1);
    r.metadata.creation_timestamp = Some(Time(Timestamp::UNIX_EPOCH));
    r
}

/// A new resource, its API key, and a database with its first password.
pub(super) fn world() -> Fake {
    let fake = Fake::with(|w| w.credentials = Some(credentials(0)));
    fake.put_resource(resource());
    fake.put_secret(api_key_secret(API_KEY));
    fake
}

pub(super) fn credentials(n: u32) -> upstash_api::DatabaseCredentials {
    upstash_api::DatabaseCredentials {
        password: format!("password-{n}"),
        rest_token: format!("token-{n}"),
        read_only_rest_token: format!("ro-token-{n}"),
    }
}

/// A fresh process: nothing in memory.
pub(super) fn process(fake: &Fake) -> Arc<Context<Fake, Fake>> {
    process_with(fake, Default::default())
}

/// A fresh process with these caches.
pub(super) fn process_with(fake: &Fake, caches: crate::cache::Caches) -> Arc<Context<Fake, Fake>> {
    let mut ctx = Context::new(fake.clone(), fake.clone(), caches, Arc::default());
    ctx.identity = "test-process".into();
    // Recovery may reset again at once: no other process is in flight here.
    ctx.reset_window = std::time::Duration::ZERO;
    Arc::new(ctx)
}

/// Reconciles the resource as stored now, without the backoff gate.
pub(super) async fn reconcile_now(fake: &Fake, ctx: &Arc<Context<Fake, Fake>>) -> Result<Action, Failure> {
    ctx.succeeded(UID);
    reconcile_gated(fake, ctx).await
}

async fn reconcile_gated(fake: &Fake, ctx: &Arc<Context<Fake, Fake>>) -> Result<Action, Failure> {
    let stored = fake.world().resource.clone().expect("the resource exists");
    reconcile(Arc::new(crate::cache::CachedRotation::from_owned(stored)), ctx.clone()).await
}

pub(super) fn status(fake: &Fake) -> RedisPasswordRotationStatus {
    fake.world().resource.as_ref().and_then(|r| r.status.clone()).unwrap_or_default()
}

pub(super) fn raise_counter(fake: &Fake, to: i64) {
    let mut r = fake.world().resource.clone().expect("exists");
    r.spec.rotation = to;
    r.metadata.generation = Some(to + 1);
    fake.put_resource(r);
}

pub(super) fn take_calls(fake: &Fake) -> Vec<Call> {
    std::mem::take(&mut fake.world().calls)
}

/// Synced at rotation 0, then the counter raised to 1; the call log empty.
async fn ready_to_rotate() -> (Fake, Arc<Context<Fake, Fake>>) {
    ready_to_rotate_with(DeletionPolicy::Delete).await
}

async fn ready_to_rotate_with(policy: DeletionPolicy) -> (Fake, Arc<Context<Fake, Fake>>) {
    let fake = world();
    let mut r = fake.world().resource.clone().expect("exists");
    r.spec.deletion_policy = policy;
    fake.put_resource(r);
    let ctx = process(&fake);
    reconcile_now(&fake, &ctx).await.expect("first sync");
    raise_counter(&fake, 1);
    take_calls(&fake);
    (fake, ctx)
}

/// Whether rotation `target` is done: applied in status, nothing in flight,
/// no finalizer, and the Secret holds what Upstash has.
pub(super) fn done(fake: &Fake, target: i64) -> Result<(), String> {
    let world = fake.world();
    let resource = world.resource.as_ref().ok_or("resource gone")?;
    let status = resource.status.clone().unwrap_or_default();
    let current = world.credentials.as_ref().ok_or("no credentials")?;
    let secret = world.secrets.get(SECRET).ok_or("no Secret")?;
    match () {
        () if status.rotation != Some(target) => Err(format!("status.rotation {:?}", status.rotation)),
        () if status.pending_rotation.is_some() => Err("still pending".into()),
        () if resource.metadata.finalizers.as_ref().is_some_and(|f| f.iter().any(|f| f == FINALIZER)) => {
            Err("finalizer left".into())
        }
        () if !secret::holds(secret, current) => {
            Err("the Secret does not hold the current credentials".into())
        }
        () if status.credentials_fingerprint != Some(secret::fingerprint(current)) => {
            Err("fingerprint does not match".into())
        }
        () => Ok(()),
    }
}

#[tokio::test]
async fn a_first_sync_reads_upstash_once_then_writes_the_secret_before_the_status() {
    let fake = world();
    let ctx = process(&fake);
    reconcile_now(&fake, &ctx).await.expect("sync");
    assert_eq!(
        take_calls(&fake),
        [
            Call::GetResource,
            Call::GetSecret(SECRET.into()),
            Call::GetSecret(API_KEY.into()),
            Call::GetDatabase,
            Call::GetSecret(SECRET.into()),
            Call::ApplySecret,
            Call::PatchStatus,
        ]
    );
    assert_eq!((done(&fake, 0), fake.world().resets), (Ok(()), 0));
}

/// The calls of one uneventful rotation, in order (`deletionPolicy:
/// Delete`, the default: no finalizer).
pub(super) fn rotation_calls() -> Vec<Call> {
    vec![
        Call::GetResource,
        Call::GetSecret(SECRET.into()),
        Call::GetSecret(API_KEY.into()),
        Call::DryRunSecret,       // the answer will be storable
        Call::PatchStatus,        // intent, on the version decided on
        Call::Reset,              // answer kept in memory
        Call::ApplySecret,        // Secret before status, on the version read first
        Call::Ping(true),         // the new credentials work
        Call::Ping(false),        // the old ones are refused
        Call::PatchStatus,        // rotation applied
        Call::Publish("Rotated"), // queued, after the status that records it
    ]
}

/// The calls of a rotation whose Secret outlives the resource
/// (`deletionPolicy: Retain`): a finalizer guards the reset in flight.
fn guarded_rotation_calls() -> Vec<Call> {
    let mut calls = rotation_calls();
    calls.insert(index_of(&Call::PatchStatus), Call::PatchObject); // finalizer
    calls.push(Call::PatchObject); // finalizer released
    calls
}

/// Where `call` first comes in `rotation_calls`.
pub(super) fn index_of(call: &Call) -> usize {
    rotation_calls().iter().position(|c| c == call).unwrap_or(usize::MAX)
}

#[tokio::test]
async fn a_rotation_records_its_intent_before_the_reset_and_the_secret_before_the_status() {
    let (fake, ctx) = ready_to_rotate().await;
    reconcile_now(&fake, &ctx).await.expect("rotate");
    assert_eq!(take_calls(&fake), rotation_calls());
    assert_eq!((done(&fake, 1), fake.world().resets), (Ok(()), 1));
    // Nothing left to do: the next reconcile (the echo of the status
    // write) finds the resource at rest and neither asks Upstash nor writes.
    reconcile_now(&fake, &ctx).await.expect("steady");
    assert_eq!(after_reads(take_calls(&fake)), []);
}

/// The raised counter's watch event, as the resource watch hands it to the
/// working copies.
fn watched(fake: &Fake, ctx: &Context<Fake, Fake>) -> RedisPasswordRotation {
    let stored = fake.world().resource.clone().expect("exists");
    ctx.caches.working.observe(&mut kube::runtime::watcher::Event::Apply(stored.clone()));
    stored
}

#[tokio::test]
async fn a_rotation_decided_on_the_watched_version_does_not_read_the_resource() {
    let (fake, ctx) = ready_to_rotate().await;
    watched(&fake, &ctx);
    reconcile_now(&fake, &ctx).await.expect("rotate");
    let expected: Vec<Call> = rotation_calls().into_iter().filter(|c| *c != Call::GetResource).collect();
    assert_eq!(take_calls(&fake), expected);
    assert_eq!((done(&fake, 1), fake.world().resets), (Ok(()), 1));
}

#[tokio::test]
async fn a_watched_version_that_is_behind_fails_its_intent_and_the_next_reconcile_reads() {
    let (fake, ctx) = ready_to_rotate().await;
    let behind = watched(&fake, &ctx);
    // Another writer stores a newer version before the reconcile runs.
    let mut newer = behind.clone();
    newer.metadata.labels = Some([("team".to_owned(), "payments".to_owned())].into());
    fake.put_resource(newer);
    let cached = Arc::new(crate::cache::CachedRotation::from_owned(behind));
    let action = reconcile(cached, ctx.clone()).await.expect("a 409 is not a failure");
    assert_eq!(action, Action::requeue(std::time::Duration::from_millis(500)));
    let calls = take_calls(&fake);
    assert!(!calls.contains(&Call::GetResource) && !calls.contains(&Call::Reset), "{calls:?}");
    assert_eq!(fake.world().resets, 0);
    reconcile_now(&fake, &ctx).await.expect("rotate");
    assert_eq!(take_calls(&fake), rotation_calls(), "the copy served once; this reconcile reads");
    assert_eq!((done(&fake, 1), fake.world().resets), (Ok(()), 1));
}

/// Synced at rotation 0, the counter raised to 1, and the operator's watch
/// of its Secrets showing the Secret at the version the status records.
async fn ready_to_rotate_as_written() -> (Fake, Arc<Context<Fake, Fake>>) {
    let fake = world();
    let first = process(&fake);
    reconcile_now(&fake, &first).await.expect("first sync");
    raise_counter(&fake, 1);
    let version = status(&fake).secret_resource_version.expect("recorded");
    let ctx = process_watching(&fake, &[(SECRET, &version)]);
    take_calls(&fake);
    (fake, ctx)
}

#[tokio::test]
async fn a_key_listed_before_its_resource_named_it_is_read_once_then_copied() {
    let fake = world();
    // The watch of Secrets listed the key before the resource existed, so
    // it holds no version of it.
    let keys = Arc::new(parking_lot::Mutex::new(crate::cache::KeyVersions::of_scope(Some("ns"))));
    let ctx = process_with(&fake, crate::cache::Caches { keys: vec![keys.clone()], ..Default::default() });
    reconcile_now(&fake, &ctx).await.expect("first sync");
    assert!(take_calls(&fake).contains(&Call::GetSecret(API_KEY.into())));
    let read = fake.world().secrets.get(API_KEY).and_then(|s| s.metadata.resource_version.clone());
    assert_eq!(keys.lock().version("ns", API_KEY), read, "learned from the read");
    raise_counter(&fake, 1);
    reconcile_now(&fake, &ctx).await.expect("rotate");
    let calls = take_calls(&fake);
    assert!(!calls.contains(&Call::GetSecret(API_KEY.into())), "{calls:?}");
    assert_eq!((done(&fake, 1), fake.world().resets), (Ok(()), 1));
}

/// A fresh process whose watch of written Secrets delivered `secrets`
/// (name, version) in the resource's namespace.
pub(super) fn process_watching(fake: &Fake, secrets: &[(&str, &str)]) -> Arc<Context<Fake, Fake>> {
    use kube::{core::PartialObjectMeta, runtime::watcher::Event};
    let written = Arc::new(crate::cache::WrittenVersions::default());
    written.observe(&Event::Init);
    for (name, version) in secrets {
        let mut secret = PartialObjectMeta::<k8s_openapi::api::core::v1::Secret>::default();
        secret.metadata.namespace = Some("ns".into());
        secret.metadata.name = Some((*name).into());
        secret.metadata.resource_version = Some((*version).into());
        written.observe(&Event::InitApply(secret));
    }
    written.observe(&Event::InitDone);
    fake.world().watch = Some(written.clone());
    process_with(fake, crate::cache::Caches { written: vec![written], ..Default::default() })
}

#[tokio::test]
async fn a_rotation_over_the_secret_as_written_reads_it_with_its_dry_run() {
    let (fake, ctx) = ready_to_rotate_as_written().await;
    let version = status(&fake).secret_resource_version.expect("recorded");
    reconcile_now(&fake, &ctx).await.expect("rotate");
    // One request instead of the read and the dry run; the old credentials
    // it returned are the ones the check finds refused.
    assert_eq!(take_calls(&fake), rotation_calls_as_written(&version));
    assert_eq!((done(&fake, 1), fake.world().resets), (Ok(()), 1));
}

/// `rotation_calls` with the Secret left unread at `version`: its dry run
/// is the read.
pub(super) fn rotation_calls_as_written(version: &str) -> Vec<Call> {
    rotation_calls()
        .into_iter()
        .filter(|c| *c != Call::GetSecret(SECRET.into()))
        .map(|c| if c == Call::DryRunSecret { Call::ProbeSecret(version.to_owned()) } else { c })
        .collect()
}

#[tokio::test]
async fn a_secret_changed_since_its_watch_showed_it_is_read_and_proven_before_the_rotation() {
    let (fake, ctx) = ready_to_rotate_as_written().await;
    // Someone edits the Secret; the watch has not delivered it yet.
    let mut edited = fake.world().secrets.get(SECRET).cloned().expect("exists");
    edited.metadata.labels.get_or_insert_default().insert("team".into(), "payments".into());
    fake.put_secret(edited);
    reconcile_now(&fake, &ctx).await.expect("rotate");
    let calls = take_calls(&fake);
    let probe = calls.iter().position(|c| matches!(c, Call::ProbeSecret(_))).expect("probed");
    assert_eq!(
        calls[probe + 1..probe + 4],
        [Call::GetSecret(SECRET.into()), Call::DryRunSecret, Call::PatchStatus]
    );
    assert_eq!((done(&fake, 1), fake.world().resets), (Ok(()), 1));
}

#[tokio::test]
async fn a_secret_taken_by_someone_else_since_its_watch_showed_it_is_not_rotated_into() {
    let (fake, ctx) = ready_to_rotate_as_written().await;
    // Replaced by a Secret of someone else's, not yet seen by the watch.
    let mut foreign = fake.world().secrets.get(SECRET).cloned().expect("exists");
    foreign.metadata.labels = None;
    foreign.metadata.annotations = None;
    foreign.metadata.owner_references = None;
    fake.put_secret(foreign);
    let failure = reconcile_now(&fake, &ctx).await.expect_err("a conflict");
    assert!(matches!(failure.error, Error::SecretConflict(_)), "{failure:?}");
    let calls = take_calls(&fake);
    assert!(!calls.contains(&Call::Reset) && !calls.contains(&Call::ApplySecret), "{calls:?}");
    assert_eq!((status(&fake).pending_rotation, fake.world().resets), (None, 0), "no intent, no reset");
}

#[tokio::test(start_paused = true)]
async fn a_failure_at_any_call_of_a_rotation_over_the_secret_as_written_never_loses_the_password_or_resets_twice()
 {
    let broken = runs_broken_by_a_fault(ready_to_rotate_as_written, |fake| done(fake, 1)).await;
    assert!(broken.is_empty(), "{broken:#?}");
}

#[tokio::test]
async fn a_retained_secret_holds_the_deletion_with_a_finalizer_while_the_reset_is_in_flight() {
    let (fake, ctx) = ready_to_rotate_with(DeletionPolicy::Retain).await;
    reconcile_now(&fake, &ctx).await.expect("rotate");
    assert_eq!(take_calls(&fake), guarded_rotation_calls());
    assert_eq!((done(&fake, 1), fake.world().resets), (Ok(()), 1));
}

/// Injects each kind of fault at each call of `rotation_calls`, with and
/// without a process restart afterwards, then reconciles until `finished`
/// holds (at most 6 times): the runs that did not end with it, exactly one
/// reset and nothing left in memory.
pub(super) async fn runs_broken_by_a_fault<F>(
    ready: impl Fn() -> F,
    finished: impl Fn(&Fake) -> Result<(), String>,
) -> Vec<String>
where
    F: std::future::Future<Output = (Fake, Arc<Context<Fake, Fake>>)>,
{
    let mut broken = Vec::new();
    for index in 0..guarded_rotation_calls().len() {
        for fault in [Fault::Before, Fault::After, Fault::Conflict] {
            for restart in [false, true] {
                let (fake, mut ctx) = ready().await;
                fake.world().faults.insert(index, fault);
                let _ = reconcile_now(&fake, &ctx).await;
                if restart {
                    ctx = process(&fake);
                }
                for _ in 0..6 {
                    if finished(&fake).is_ok() {
                        break;
                    }
                    let _ = reconcile_now(&fake, &ctx).await;
                }
                let outcome = (finished(&fake), fake.world().resets, ctx.remembered(UID).is_some());
                if outcome != (Ok(()), 1, false) {
                    broken.push(format!("{fault:?} at call {index} (restart: {restart}): {outcome:?}"));
                }
            }
        }
    }
    broken
}

#[tokio::test(start_paused = true)]
async fn a_failure_at_any_call_of_a_rotation_never_loses_the_password_or_resets_twice() {
    let broken = runs_broken_by_a_fault(ready_to_rotate, |fake| done(fake, 1)).await;
    assert!(broken.is_empty(), "{broken:#?}");
}

#[tokio::test(start_paused = true)]
async fn a_failure_at_any_call_of_a_guarded_rotation_never_loses_the_password_or_resets_twice() {
    let ready = || ready_to_rotate_with(DeletionPolicy::Retain);
    let broken = runs_broken_by_a_fault(ready, |fake| done(fake, 1)).await;
    assert!(broken.is_empty(), "{broken:#?}");
}

#[tokio::test]
async fn a_409_on_any_conditional_status_write_decides_again_without_reporting_a_failure() {
    let expected = guarded_rotation_calls();
    let writes = expected
        .iter()
        .enumerate()
        .filter(|(_, c)| matches!(c, Call::PatchStatus | Call::PatchObject))
        .map(|(i, _)| i)
        .collect::<Vec<_>>();
    assert_eq!(writes.len(), 4);
    for index in writes {
        let (fake, ctx) = ready_to_rotate_with(DeletionPolicy::Retain).await;
        fake.world().faults.insert(index, Fault::Conflict);
        let result = reconcile_now(&fake, &ctx).await;
        assert!(result.is_ok(), "409 at call {index} is a requeue, not a failure: {result:?}");
        let calls = take_calls(&fake);
        assert_eq!(calls[..=index], expected[..=index], "409 at call {index}");
        assert!(calls.len() <= index + 1, "nothing after the 409 at call {index}: {calls:?}");
    }
}

#[tokio::test]
async fn a_secret_changed_since_the_reconcile_began_is_checked_again_before_it_is_written() {
    let (fake, ctx) = ready_to_rotate().await;
    let apply = index_of(&Call::ApplySecret);
    fake.world().faults.insert(apply, Fault::Conflict);
    reconcile_now(&fake, &ctx).await.expect("rotated");
    let calls = take_calls(&fake);
    assert_eq!(
        calls[apply..apply + 3],
        [Call::ApplySecret, Call::GetSecret(SECRET.into()), Call::ApplySecret]
    );
    assert_eq!((done(&fake, 1), fake.world().resets), (Ok(()), 1));
}

#[tokio::test(start_paused = true)]
async fn a_secret_write_that_keeps_failing_is_finished_from_memory_without_a_second_reset() {
    let (fake, ctx) = ready_to_rotate().await;
    // Every write attempt of the first reconcile: the first on the Secret
    // read before, each retry a read, then an apply.
    let first = index_of(&Call::ApplySecret);
    for attempt in 0..5 {
        fake.world().faults.insert(first + 2 * attempt, Fault::Before);
    }
    let failure = reconcile_now(&fake, &ctx).await.expect_err("the Secret cannot be written");
    assert_eq!(failure.error.reason().as_str(), "SecretWriteFailed");
    assert!(ctx.remembered(UID).is_some() && status(&fake).pending_rotation == Some(1));
    take_calls(&fake);
    reconcile_now(&fake, &ctx).await.expect("written from memory");
    let calls = take_calls(&fake);
    assert!(!calls.contains(&Call::Reset) && !calls.contains(&Call::GetDatabase), "{calls:?}");
    assert_eq!((done(&fake, 1), fake.world().resets), (Ok(()), 1));
}

#[tokio::test]
async fn a_held_answer_is_tried_again_within_seconds_however_often_its_write_failed() {
    let (_fake, ctx) = ready_to_rotate().await;
    let retries = |error: fn() -> Error| {
        (0..12).map(|_| super::failed(&ctx, UID, None, error()).retry).max().unwrap_or_default()
    };
    let other = retries(|| Error::SecretNotWritable("denied".into()));
    ctx.succeeded(UID);
    let held = retries(|| Error::SecretWriteFailed("denied".into()));
    assert!(other >= Duration::from_secs(60), "other failures back off: {other:?}");
    assert!(held <= Duration::from_secs(10), "a held answer: {held:?}");
}

/// A resource whose reset for rotation 1 was sent by a process that is gone.
fn interrupted(previous_credentials: Option<String>, deleting: bool) -> Fake {
    let fake = world();
    let mut r = resource();
    r.spec.rotation = 1;
    r.metadata.finalizers = Some(vec![FINALIZER.into()]);
    if deleting {
        r.metadata.deletion_timestamp = Some(Time(Timestamp::now()));
    }
    r.status = Some(RedisPasswordRotationStatus {
        rotation: Some(0),
        pending_rotation: Some(1),
        reset: Some(Box::new(ResetAttempt {
            holder: "gone".into(),
            attempt: 1,
            requested_at: MicroTime(Timestamp::UNIX_EPOCH),
            previous_credentials,
            blind_resets: 0,
            scheduled: None,
        })),
        ..Default::default()
    });
    fake.put_resource(r);
    fake
}

#[tokio::test]
async fn recovery_with_nothing_to_compare_adopts_what_upstash_has_and_warns() {
    let fake = interrupted(None, false);
    let ctx = process(&fake);
    reconcile_now(&fake, &ctx).await.expect("recovered");
    let calls = take_calls(&fake);
    assert!(calls.contains(&Call::Publish("RotationRecovered")), "{calls:?}");
    assert_eq!((done(&fake, 1), fake.world().resets), (Ok(()), 0));
}

#[tokio::test]
async fn deletion_with_an_unconfirmed_reset_that_never_happened_abandons_it_without_resetting() {
    let fake = interrupted(Some(secret::fingerprint(&credentials(0))), true);
    let ctx = process(&fake);
    reconcile_now(&fake, &ctx).await.expect("abandoned");
    let calls = take_calls(&fake);
    assert_eq!(
        calls[3..],
        [Call::GetDatabase, Call::Publish("RotationAbandoned"), Call::PatchStatus, Call::PatchObject]
    );
    assert!(fake.world().resource.is_none(), "the deletion proceeds");
    assert_eq!(fake.world().resets, 0);
}

#[tokio::test]
async fn only_a_change_beyond_our_own_status_write_cuts_a_backoff_short() {
    let fake = world();
    let ctx = process(&fake);
    fake.world().faults.insert(3, Fault::Before); // Upstash down
    reconcile_gated(&fake, &ctx).await.expect_err("Upstash is down");
    take_calls(&fake);
    // The status write of the failure comes back as an event: held back.
    reconcile_gated(&fake, &ctx).await.expect("held back");
    assert_eq!(
        take_calls(&fake),
        [Call::GetResource, Call::GetSecret(SECRET.into()), Call::GetSecret(API_KEY.into())]
    );
    // The user fixes the API key Secret: retried at once.
    fake.put_secret(api_key_secret(API_KEY));
    reconcile_gated(&fake, &ctx).await.expect("synced");
    assert!(take_calls(&fake).contains(&Call::GetDatabase));
    assert_eq!(done(&fake, 0), Ok(()));
}

/// Everything after the three reads every reconcile starts with.
pub(super) fn after_reads(calls: Vec<Call>) -> Vec<Call> {
    let reads = [Call::GetResource, Call::GetSecret(SECRET.into()), Call::GetSecret(API_KEY.into())];
    assert_eq!(calls[..3], reads, "every reconcile reads first");
    calls[3..].to_vec()
}

#[tokio::test(start_paused = true)]
async fn an_answer_in_memory_is_written_without_asking_upstash() {
    let (fake, ctx) = ready_to_rotate().await;
    let first = index_of(&Call::ApplySecret);
    for attempt in 0..5 {
        fake.world().faults.insert(first + 2 * attempt, Fault::Before);
    }
    reconcile_now(&fake, &ctx).await.expect_err("the Secret cannot be written");
    take_calls(&fake);
    reconcile_now(&fake, &ctx).await.expect("written from memory");
    assert_eq!(
        after_reads(take_calls(&fake)),
        [Call::ApplySecret, Call::Ping(true), Call::Ping(false), Call::PatchStatus, Call::Publish("Rotated")]
    );
}

#[tokio::test]
async fn a_secret_already_holding_the_rotation_only_finishes_the_status() {
    let (fake, ctx) = ready_to_rotate().await;
    let final_status = rotation_calls().iter().rposition(|c| *c == Call::PatchStatus).expect("written");
    fake.world().faults.insert(final_status, Fault::Before);
    reconcile_now(&fake, &ctx).await.expect_err("status write refused");
    let restarted = process(&fake);
    take_calls(&fake);
    reconcile_now(&fake, &restarted).await.expect("finished");
    assert_eq!(
        after_reads(take_calls(&fake)),
        // Without the credentials at hand there is nothing to check, and
        // the Verified condition says so.
        [Call::Publish("NotVerified"), Call::PatchStatus, Call::Publish("Rotated")]
    );
    assert_eq!((done(&fake, 1), fake.world().resets), (Ok(()), 1));
}

#[tokio::test]
async fn a_reset_that_never_happened_is_recorded_again_then_sent() {
    let fake = interrupted(Some(secret::fingerprint(&credentials(0))), false);
    let ctx = process(&fake);
    reconcile_now(&fake, &ctx).await.expect("rotated");
    assert_eq!(
        after_reads(take_calls(&fake)),
        [
            Call::GetDatabase, // still the credentials from before the intent
            Call::PatchStatus, // attempt 2
            Call::Reset,
            Call::GetSecret(SECRET.into()),
            Call::ApplySecret,
            Call::Ping(true), // no Secret before: no old token to try
            Call::PatchStatus,
            Call::Publish("Rotated"),
            Call::PatchObject,
        ]
    );
    assert_eq!((done(&fake, 1), fake.world().resets), (Ok(()), 1));
}

#[tokio::test]
async fn hidden_credentials_reset_blind_with_a_warning_and_at_most_three_times() {
    let fake = interrupted(Some(secret::fingerprint(&credentials(0))), false);
    fake.world().protected = true;
    let ctx = process(&fake);
    reconcile_now(&fake, &ctx).await.expect("rotated blind");
    assert_eq!(
        after_reads(take_calls(&fake))[..3],
        [Call::GetDatabase, Call::PatchStatus, Call::Publish("ResetRepeated")]
    );
    assert_eq!(fake.world().resets, 1);
    // The limit: three blind resets already spent stops at a condition.
    let mut r = fake.world().resource.clone().expect("exists");
    let status = r.status.get_or_insert_with(Default::default);
    status.pending_rotation = Some(2);
    status.reset = Some(Box::new(ResetAttempt {
        holder: "gone".into(),
        attempt: 3,
        requested_at: MicroTime(Timestamp::UNIX_EPOCH),
        previous_credentials: None,
        blind_resets: 3,
        scheduled: None,
    }));
    r.spec.rotation = 2;
    fake.put_resource(r);
    take_calls(&fake);
    let failure = reconcile_now(&fake, &ctx).await.expect_err("needs a person");
    assert_eq!(failure.error.reason().as_str(), "RotationNeedsAttention");
    assert_eq!(
        after_reads(take_calls(&fake)),
        [Call::GetDatabase, Call::PatchStatus, Call::Publish("RotationNeedsAttention")]
    );
    assert_eq!(fake.world().resets, 1);
}

#[tokio::test]
async fn an_edited_secret_gets_the_current_credentials_back_without_a_reset() {
    let fake = world();
    let ctx = process(&fake);
    reconcile_now(&fake, &ctx).await.expect("first sync");
    let mut edited = fake.world().secrets.get(SECRET).cloned().expect("written");
    edited
        .data
        .get_or_insert_with(Default::default)
        .insert(secret::KEY_PASSWORD.into(), k8s_openapi::ByteString(b"typo".to_vec()));
    fake.put_secret(edited);
    take_calls(&fake);
    reconcile_now(&fake, &ctx).await.expect("corrected");
    assert_eq!(
        after_reads(take_calls(&fake)),
        [
            Call::GetDatabase,
            Call::ApplySecret,
            Call::Publish("DriftCorrected"),
            // Only the Secret's new version: the rest of the status already
            // says what is true again.
            Call::PatchStatus,
        ]
    );
    assert_eq!((done(&fake, 0), fake.world().resets), (Ok(()), 0));
}

#[tokio::test]
async fn deletion_with_nothing_in_flight_only_drops_the_finalizer() {
    let fake = world();
    let mut r = resource();
    r.metadata.finalizers = Some(vec![FINALIZER.into()]);
    r.metadata.deletion_timestamp = Some(Time(Timestamp::now()));
    r.status = Some(RedisPasswordRotationStatus { rotation: Some(0), ..Default::default() });
    fake.put_resource(r);
    let ctx = process(&fake);
    reconcile_now(&fake, &ctx).await.expect("released");
    assert_eq!(after_reads(take_calls(&fake)), [Call::PatchObject]);
    assert!(fake.world().resource.is_none());
}
