//! `spec.accountRef` against the recording fake: a resource reaches its
//! account's Secret, and an account that is missing, turned off or does not
//! allow the namespace stops the reconcile with its reason before any call
//! to Upstash, a rotation included.

use std::{collections::BTreeMap, sync::Arc};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::{
    Context,
    fake::{Call, Fake, api_key_secret},
    tests::{done, process, raise_counter, reconcile_now, resource, status, take_calls, world},
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
