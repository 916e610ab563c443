//! `spec.accountRef` against the recording fake: a resource reaches its
//! account's Secret, and an account that is missing, turned off or does not
//! allow the namespace stops the reconcile with its reason before any call
//! to Upstash, a rotation included.

use std::{collections::BTreeMap, sync::Arc};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::{
    Context,
    fake::{Call, Fake, api_key_secret},
    tests::{done, process, process_with, raise_counter, reconcile_now, resource, status, take_calls, world},
};
use crate::{
    account::{
        AccountKind, AccountRef, AllowedNamespaces, ClusterUpstashAccount, ClusterUpstashAccountSpec,
        UpstashAccount, UpstashAccountSpec,
    },
    conditions::{READY, Reason, reason_of},
    crd::CredentialsSecretRef,
};

/// The resource names `account` instead of a Secret; its own key Secret is
/// gone, so only the account's can work.
fn use_account(fake: &Fake, kind: AccountKind, name: &str) {
    let mut r = fake.world().resource.clone().unwrap_or_else(resource);
    r.spec.credentials_secret_ref = None;
    r.spec.account_ref = Some(AccountRef { kind, name: name.into() });
    fake.put_resource(r);
    fake.world().secrets.clear();
    fake.put_secret(api_key_secret("shared-key"));
}

fn cluster_account(allowed: AllowedNamespaces) -> ClusterUpstashAccount {
    let spec = ClusterUpstashAccountSpec {
        credentials_secret_ref: CredentialsSecretRef::named("shared-key"),
        allowed_namespaces: allowed,
    };
    let mut account = ClusterUpstashAccount::new("shared", spec);
    account.metadata.uid = Some("account-uid".into());
    account.metadata.generation = Some(1);
    account
}

fn with_cluster_accounts(fake: &Fake) -> Arc<Context<Fake, Fake>> {
    let ctx = Arc::into_inner(process(fake)).expect("one owner");
    Arc::new(ctx.with_cluster_namespace(Some("platform".into())))
}

fn calls_upstash(calls: &[Call]) -> bool {
    calls.iter().any(|c| matches!(c, Call::GetDatabase | Call::Reset))
}

fn ready_reason(fake: &Fake) -> Option<Reason> {
    reason_of(&status(fake).conditions, READY)
}

#[tokio::test]
async fn a_namespaced_account_lends_its_secret() {
    let fake = world();
    use_account(&fake, AccountKind::UpstashAccount, "team");
    let spec = UpstashAccountSpec { credentials_secret_ref: CredentialsSecretRef::named("shared-key") };
    fake.world().accounts.insert("team".into(), UpstashAccount::new("team", spec));
    let ctx = process(&fake);
    reconcile_now(&fake, &ctx).await.expect("first sync");
    let calls = take_calls(&fake);
    assert!(calls.contains(&Call::GetAccount("team".into())), "{calls:?}");
    assert!(calls.contains(&Call::GetSecret("shared-key".into())), "{calls:?}");
    assert_eq!(ready_reason(&fake), Some(Reason::Synced));
    raise_counter(&fake, 1);
    reconcile_now(&fake, &ctx).await.expect("rotation");
    assert_eq!((done(&fake, 1), fake.world().resets), (Ok(()), 1));
}

#[tokio::test]
async fn a_missing_account_stops_before_upstash() {
    let fake = world();
    use_account(&fake, AccountKind::UpstashAccount, "nobody");
    let ctx = process(&fake);
    assert!(reconcile_now(&fake, &ctx).await.is_err());
    assert!(!calls_upstash(&take_calls(&fake)));
    assert_eq!(ready_reason(&fake), Some(Reason::AccountNotFound));
    let message = crate::conditions::get(&status(&fake).conditions, READY).map(|c| c.message.clone());
    assert_eq!(message.as_deref(), Some("UpstashAccount nobody does not exist in this namespace"));
}

#[tokio::test]
async fn a_cluster_account_that_does_not_allow_the_namespace_gets_no_call_even_for_a_rotation() {
    let fake = world();
    let ctx = with_cluster_accounts(&fake);
    reconcile_now(&fake, &ctx).await.expect("first sync with the resource's own Secret");
    use_account(&fake, AccountKind::ClusterUpstashAccount, "shared");
    let allowed = AllowedNamespaces { names: vec!["other".into()], selector: None };
    fake.world().cluster_accounts.insert("shared".into(), cluster_account(allowed));
    raise_counter(&fake, 1);
    take_calls(&fake);
    assert!(reconcile_now(&fake, &ctx).await.is_err());
    let calls = take_calls(&fake);
    assert!(!calls_upstash(&calls), "{calls:?}");
    assert!(!calls.contains(&Call::GetSecret("shared-key".into())), "the key is never even read: {calls:?}");
    assert_eq!((ready_reason(&fake), fake.world().resets), (Some(Reason::AccountNotAllowed), 0));
}

#[tokio::test]
async fn a_cluster_account_allows_a_namespace_by_its_labels_only_when_they_match() {
    let fake = world();
    let ctx = with_cluster_accounts(&fake);
    use_account(&fake, AccountKind::ClusterUpstashAccount, "shared");
    let selector = LabelSelector {
        match_labels: Some(BTreeMap::from([("team".to_owned(), "payments".to_owned())])),
        ..Default::default()
    };
    let allowed = AllowedNamespaces { names: Vec::new(), selector: Some(selector) };
    fake.world().cluster_accounts.insert("shared".into(), cluster_account(allowed));
    fake.world().namespaces.insert("ns".into(), BTreeMap::from([("team".to_owned(), "search".to_owned())]));
    assert!(reconcile_now(&fake, &ctx).await.is_err());
    assert!(!calls_upstash(&take_calls(&fake)));
    assert_eq!(ready_reason(&fake), Some(Reason::AccountNotAllowed));

    fake.world().namespaces.insert("ns".into(), BTreeMap::from([("team".to_owned(), "payments".to_owned())]));
    reconcile_now(&fake, &ctx).await.expect("allowed now");
    let calls = take_calls(&fake);
    assert!(calls.contains(&Call::GetNamespace("ns".into())) && calls_upstash(&calls), "{calls:?}");
    assert_eq!(ready_reason(&fake), Some(Reason::Synced));
}

#[tokio::test]
async fn cluster_accounts_turned_off_are_refused() {
    let fake = world();
    use_account(&fake, AccountKind::ClusterUpstashAccount, "shared");
    let allowed = AllowedNamespaces { names: vec!["ns".into()], selector: None };
    fake.world().cluster_accounts.insert("shared".into(), cluster_account(allowed));
    assert!(reconcile_now(&fake, &process(&fake)).await.is_err());
    let calls = take_calls(&fake);
    assert!(
        !calls_upstash(&calls) && !calls.contains(&Call::GetClusterAccount("shared".into())),
        "{calls:?}"
    );
    assert_eq!(ready_reason(&fake), Some(Reason::AccountNotAllowed));
}

/// A store as a watch fills it: listed with `objects`.
fn watched<K>(
    objects: &[K],
) -> (kube::runtime::reflector::Store<K>, kube::runtime::reflector::store::Writer<K>)
where
    K: kube::Resource<DynamicType = ()> + Clone + 'static,
{
    use kube::runtime::watcher::Event;
    let (store, mut writer) = kube::runtime::reflector::store();
    writer.apply_watcher_event(&Event::Init);
    for object in objects {
        writer.apply_watcher_event(&Event::InitApply(object.clone()));
    }
    writer.apply_watcher_event(&Event::InitDone);
    (store, writer)
}

type SecretMeta = kube::core::PartialObjectMeta<k8s_openapi::api::core::v1::Secret>;

/// The key's metadata as the watch of Secrets delivers it.
fn delivered(fake: &Fake, name: &str) -> SecretMeta {
    key_meta(&fake.world(), name)
}

/// Secret `name` of `world`'s namespace as its watch delivers it.
fn key_meta(world: &super::fake::World, name: &str) -> SecretMeta {
    let mut meta = SecretMeta::default();
    meta.metadata.namespace = Some("ns".into());
    meta.metadata.name = Some(name.into());
    meta.metadata.resource_version =
        world.secrets.get(name).and_then(|s| s.metadata.resource_version.clone());
    meta
}

#[tokio::test]
async fn an_account_from_its_watch_lends_a_key_read_once_per_version() {
    use kube::runtime::watcher::Event;
    let fake = world();
    // The account's watch delivered it; the watch of Secrets listed the key
    // before anything asked for it, and no resource names it.
    let (keys, mut writer, ctx) = on_a_watched_account(&fake);
    let unnamed = |_: &str, _: &str| false;

    reconcile_now(&fake, &ctx).await.expect("first sync");
    let calls = take_calls(&fake);
    assert!(!calls.contains(&Call::GetAccount("team".into())), "the account is the watch's: {calls:?}");
    assert_eq!(calls.iter().filter(|c| **c == Call::GetSecret("shared-key".into())).count(), 1, "{calls:?}");
    assert_eq!(
        keys.lock().version("ns", "shared-key"),
        delivered(&fake, "shared-key").metadata.resource_version
    );

    raise_counter(&fake, 1);
    reconcile_now(&fake, &ctx).await.expect("rotation");
    let calls = take_calls(&fake);
    assert!(
        !calls.iter().any(|c| matches!(c, Call::GetAccount(_)) || *c == Call::GetSecret("shared-key".into())),
        "a rotation reads neither the account nor its key: {calls:?}"
    );
    assert_eq!((done(&fake, 1), fake.world().resets), (Ok(()), 1));

    // The key changes: its watch delivers the new version, which is kept
    // though no resource names the Secret, and read once.
    fake.put_secret(api_key_secret("shared-key"));
    keys.lock().changed(Event::Apply(delivered(&fake, "shared-key")), unnamed);
    assert_eq!(
        keys.lock().version("ns", "shared-key"),
        delivered(&fake, "shared-key").metadata.resource_version
    );
    for rotation in [2, 3] {
        raise_counter(&fake, rotation);
        reconcile_now(&fake, &ctx).await.expect("rotation");
        assert_eq!(done(&fake, rotation), Ok(()));
    }
    let reads = take_calls(&fake).into_iter().filter(|c| *c == Call::GetSecret("shared-key".into())).count();
    assert_eq!((reads, fake.world().resets), (1, 3));

    // Deleted: gone from the store, the account is read, and is missing.
    let gone = fake.world().accounts.remove("team").expect("account");
    writer.apply_watcher_event(&Event::Delete(gone));
    raise_counter(&fake, 4);
    assert!(reconcile_now(&fake, &ctx).await.is_err());
    let calls = take_calls(&fake);
    assert!(calls.contains(&Call::GetAccount("team".into())) && !calls_upstash(&calls), "{calls:?}");
    assert_eq!((ready_reason(&fake), fake.world().resets), (Some(Reason::AccountNotFound), 3));
}

#[tokio::test]
async fn a_cluster_account_from_its_watch_is_not_read() {
    let fake = world();
    use_account(&fake, AccountKind::ClusterUpstashAccount, "shared");
    let allowed = AllowedNamespaces { names: vec!["ns".into()], selector: None };
    let (accounts, _writer) = watched(&[cluster_account(allowed)]);
    let caches =
        crate::cache::Caches { cluster_accounts: vec![(Some("ns".into()), accounts)], ..Default::default() };
    let ctx = Arc::into_inner(process_with(&fake, caches)).expect("one owner");
    let ctx = Arc::new(ctx.with_cluster_namespace(Some("platform".into())));
    reconcile_now(&fake, &ctx).await.expect("first sync");
    let calls = take_calls(&fake);
    assert!(!calls.iter().any(|c| matches!(c, Call::GetClusterAccount(_))), "{calls:?}");
    assert_eq!(ready_reason(&fake), Some(Reason::Synced));
}

#[tokio::test]
async fn a_selector_decides_on_the_namespace_labels_its_watch_delivered() {
    use kube::runtime::watcher::Event;
    let fake = world();
    use_account(&fake, AccountKind::ClusterUpstashAccount, "shared");
    let selector = LabelSelector {
        match_labels: Some(BTreeMap::from([("team".to_owned(), "payments".to_owned())])),
        ..Default::default()
    };
    let allowed = AllowedNamespaces { names: Vec::new(), selector: Some(selector) };
    let (accounts, _writer) = watched(&[cluster_account(allowed)]);
    let labels = Arc::new(crate::cache::namespaces::NamespaceLabels::default());
    let namespace = |team: &str| {
        let mut namespace = kube::core::PartialObjectMeta::<k8s_openapi::api::core::v1::Namespace>::default();
        namespace.metadata.name = Some("ns".into());
        namespace.metadata.labels = Some(BTreeMap::from([("team".to_owned(), team.to_owned())]));
        namespace
    };
    for event in [Event::Init, Event::InitApply(namespace("payments")), Event::InitDone] {
        labels.observe(&event);
    }
    let caches = crate::cache::Caches {
        cluster_accounts: vec![(Some("ns".into()), accounts)],
        namespaces: vec![(Some("ns".into()), labels.clone())],
        ..Default::default()
    };
    let ctx = Arc::into_inner(process_with(&fake, caches)).expect("one owner");
    let ctx = Arc::new(ctx.with_cluster_namespace(Some("platform".into())));
    // etcd would say otherwise: the watch's labels decide, with no read.
    fake.world().namespaces.insert("ns".into(), BTreeMap::from([("team".to_owned(), "search".to_owned())]));
    reconcile_now(&fake, &ctx).await.expect("first sync");
    raise_counter(&fake, 1);
    reconcile_now(&fake, &ctx).await.expect("rotation");
    let calls = take_calls(&fake);
    assert!(!calls.iter().any(|c| matches!(c, Call::GetNamespace(_))), "{calls:?}");
    assert_eq!((done(&fake, 1), fake.world().resets), (Ok(()), 1));

    // Relabelled: refused from the moment the watch delivers it.
    labels.observe(&Event::Apply(namespace("search")));
    raise_counter(&fake, 2);
    assert!(reconcile_now(&fake, &ctx).await.is_err());
    let calls = take_calls(&fake);
    assert!(!calls_upstash(&calls) && !calls.iter().any(|c| matches!(c, Call::GetNamespace(_))), "{calls:?}");
    assert_eq!((ready_reason(&fake), fake.world().resets), (Some(Reason::AccountNotAllowed), 1));
}

/// A resource on `team`, whose key the watch of Secrets listed before
/// anything asked for it, with the account as its watch delivered it.
type AccountWriter = kube::runtime::reflector::store::Writer<UpstashAccount>;
type Keys = Arc<parking_lot::Mutex<crate::cache::KeyVersions>>;

fn on_a_watched_account(fake: &Fake) -> (Keys, AccountWriter, Arc<Context<Fake, Fake>>) {
    use_account(fake, AccountKind::UpstashAccount, "team");
    let spec = UpstashAccountSpec { credentials_secret_ref: CredentialsSecretRef::named("shared-key") };
    let mut account = UpstashAccount::new("team", spec);
    account.metadata.namespace = Some("ns".into());
    fake.world().accounts.insert("team".into(), account.clone());
    let (accounts, writer) = watched(&[account]);
    let keys = Arc::new(parking_lot::Mutex::new(crate::cache::KeyVersions::of_scope(Some("ns"))));
    let caches =
        crate::cache::Caches { accounts: vec![accounts], keys: vec![keys.clone()], ..Default::default() };
    (keys, writer, process_with(fake, caches))
}

#[tokio::test]
async fn a_key_changed_while_its_first_read_is_in_flight_is_not_kept_at_the_old_version() {
    use kube::runtime::watcher::Event;
    let fake = world();
    let (keys, _writer, ctx) = on_a_watched_account(&fake);
    // The key changes while the first read of it is in flight, and the
    // watch delivers the change before the read's version is learned.
    let delivers = keys.clone();
    fake.world().during_read = Some((
        "shared-key".into(),
        Box::new(move |world| {
            world.put_secret(api_key_secret("shared-key"));
            delivers.lock().changed(Event::Apply(key_meta(world, "shared-key")), |_, _| false);
        }),
    ));
    reconcile_now(&fake, &ctx).await.expect("first sync");
    let newest = delivered(&fake, "shared-key").metadata.resource_version;
    assert_eq!(keys.lock().version("ns", "shared-key"), newest, "the change wins over the read");
    take_calls(&fake);
    raise_counter(&fake, 1);
    reconcile_now(&fake, &ctx).await.expect("rotation");
    let calls = take_calls(&fake);
    assert!(calls.contains(&Call::GetSecret("shared-key".into())), "the newer version is read: {calls:?}");
    assert_eq!((done(&fake, 1), fake.world().resets), (Ok(()), 1));
}

#[tokio::test]
async fn a_key_deleted_and_created_again_while_its_first_read_is_in_flight_is_read_again() {
    use kube::runtime::watcher::Event;
    let fake = world();
    let (keys, _writer, ctx) = on_a_watched_account(&fake);
    // Deleted (the watch delivers it) and created again (not delivered yet)
    // while the first read of it is in flight: that read's version names a
    // Secret that is gone, and must not be kept.
    let delivers = keys.clone();
    fake.world().during_read = Some((
        "shared-key".into(),
        Box::new(move |world| {
            delivers.lock().changed(Event::Delete(key_meta(world, "shared-key")), |_, _| false);
            world.put_secret(api_key_secret("shared-key"));
        }),
    ));
    reconcile_now(&fake, &ctx).await.expect("first sync");
    assert_eq!(keys.lock().version("ns", "shared-key"), None, "the read is void");
    take_calls(&fake);
    raise_counter(&fake, 1);
    reconcile_now(&fake, &ctx).await.expect("rotation");
    let calls = take_calls(&fake);
    assert!(calls.contains(&Call::GetSecret("shared-key".into())), "read again: {calls:?}");
    assert_eq!(
        keys.lock().version("ns", "shared-key"),
        delivered(&fake, "shared-key").metadata.resource_version
    );
    assert_eq!((done(&fake, 1), fake.world().resets), (Ok(()), 1));
}

#[tokio::test]
async fn a_key_the_accounts_check_saw_at_another_version_is_read_not_copied() {
    use kube::runtime::watcher::Event;
    let fake = world();
    let (keys, mut writer, ctx) = on_a_watched_account(&fake);
    reconcile_now(&fake, &ctx).await.expect("first sync");
    let known = keys.lock().version("ns", "shared-key").expect("learned");
    take_calls(&fake);
    raise_counter(&fake, 1);
    reconcile_now(&fake, &ctx).await.expect("rotation");
    assert!(!take_calls(&fake).contains(&Call::GetSecret("shared-key".into())), "the copy serves");
    // The account's check read another version of the key than the watch
    // of Secrets has delivered so far: its users, woken by that check, read
    // the newest instead of the copy.
    let mut account = fake.world().accounts.get("team").cloned().expect("account");
    account.status = Some(crate::account::AccountStatus {
        validated_secret_version: Some(format!("{known}0")),
        ..Default::default()
    });
    writer.apply_watcher_event(&Event::Apply(account));
    raise_counter(&fake, 2);
    reconcile_now(&fake, &ctx).await.expect("rotation");
    let calls = take_calls(&fake);
    assert!(calls.contains(&Call::GetSecret("shared-key".into())), "{calls:?}");
    assert_eq!((done(&fake, 2), fake.world().resets), (Ok(()), 2));
}
