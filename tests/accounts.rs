//! Shared accounts on the real apiserver: a `ClusterUpstashAccount` serves
//! the namespaces it allows and no other (no call to Upstash for them), its
//! status says whether the key works and who uses it, spec changes and its
//! deletion reach the resources at once; an `UpstashAccount`'s changed
//! Secret reaches its resources through the account's new check.

use testkit as support;

use std::time::Duration;

use kube::{
    Api,
    api::{DeleteParams, Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};
use support::{
    TestNamespace, WAIT, eventually,
    operator::Operator,
    sim::{API_KEY, EMAIL},
    world::{CREDENTIALS_SECRET, World, api_key_secret},
};
use upstash_rotator::{
    account::{
        AccountKind, AccountRef, AccountStatus, AllowedNamespaces, ClusterUpstashAccount,
        ClusterUpstashAccountSpec, UpstashAccount, UpstashAccountSpec,
    },
    conditions::{self, READY, Reason, VALIDATED},
    crd::{CredentialsSecretRef, RedisPasswordRotation, RedisPasswordRotationSpec},
};

/// Every request the simulator saw for `database`, on any route.
async fn calls_for(world: &World, database: &str) -> u64 {
    let log = world.sim.request_log().await;
    let counts = log["counts"].as_object().cloned().unwrap_or_default();
    counts.values().filter_map(|by_db| by_db[database].as_u64()).sum()
}

async fn list_calls(world: &World) -> u64 {
    world.sim.request_log().await["counts"]["list"]["-"].as_u64().unwrap_or(0)
}

fn using(database: &str, account: AccountRef) -> RedisPasswordRotationSpec {
    let mut spec = RedisPasswordRotationSpec::new(database, "unused");
    spec.credentials_secret_ref = None;
    spec.account_ref = Some(account);
    spec
}

/// Waits until `name`'s raised counter is seen and refused: `Ready` says
/// `AccountNotAllowed` for its current generation.
async fn refused_as_raised(api: &Api<RedisPasswordRotation>, name: &str) {
    eventually(WAIT, "the raised counter to be seen and refused", || async move {
        let r = api.get(name).await.ok()?;
        let ready = conditions::get(&r.status.as_ref()?.conditions, READY)?.clone();
        (ready.observed_generation == r.metadata.generation && ready.reason == "AccountNotAllowed")
            .then_some(())
    })
    .await;
}

/// Waits until the resource's Ready reason is `reason`.
async fn ready_reason(api: &Api<RedisPasswordRotation>, name: &str, reason: Reason) -> RedisPasswordRotation {
    let mut last = String::new();
    let found = tokio::time::timeout(WAIT, async {
        loop {
            if let Ok(r) = api.get(name).await {
                let ready = r.status.as_ref().and_then(|s| conditions::get(&s.conditions, READY)).cloned();
                if let Some(ready) = ready {
                    if ready.reason == reason.as_str() {
                        return r;
                    }
                    last = format!("{}: {}", ready.reason, ready.message);
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    found.unwrap_or_else(|_| panic!("{name} never became {reason}; last: {last}"))
}

/// Waits until an account's status satisfies `check`.
async fn account_status<K>(
    api: &Api<K>,
    name: &str,
    what: &str,
    check: impl Fn(&AccountStatus) -> bool,
) -> AccountStatus
where
    K: upstash_rotator::account::Account,
{
    eventually(WAIT, what, || {
        let api = api.clone();
        let check = &check;
        async move {
            let account = api.get(name).await.ok()?;
            let status = upstash_rotator::account::Account::account_status(&account)?.clone();
            check(&status).then_some(status)
        }
    })
    .await
}

fn validated(status: &AccountStatus) -> Option<(String, String)> {
    conditions::get(&status.conditions, VALIDATED).map(|c| (c.status.clone(), c.reason.clone()))
}

#[tokio::test]
async fn a_cluster_account_serves_only_the_namespaces_it_allows() {
    let world = World::prepare("acct-cluster").await;
    let client = world.client.clone();
    let platform = TestNamespace::new(&client, "acct-platform").await;
    let other = TestNamespace::new(&client, "acct-other").await;
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), &platform.name);
    secrets.create(&PostParams::default(), &api_key_secret(EMAIL, API_KEY)).await.expect("platform key");
    // The app namespace keeps no key of its own: only the account's can work.
    world.secrets().delete(CREDENTIALS_SECRET, &DeleteParams::default()).await.expect("drop own key");

    let accounts: Api<ClusterUpstashAccount> = Api::all(client.clone());
    let name = format!("{}-shared", world.ns.name);
    let spec = ClusterUpstashAccountSpec {
        credentials_secret_ref: CredentialsSecretRef::named(CREDENTIALS_SECRET),
        allowed_namespaces: AllowedNamespaces { names: vec![world.ns.name.clone()], selector: None },
    };
    accounts.create(&PostParams::default(), &ClusterUpstashAccount::new(&name, spec)).await.expect("account");
    let operator = Operator::start_counted_with_cluster_accounts(
        &[&world.ns.name, &other.name],
        &platform.name,
        &world.sim.url,
    )
    .await;
    let account = AccountRef { kind: AccountKind::ClusterUpstashAccount, name: name.clone() };

    // Allowed: synced and rotated with the platform's key.
    world.create("cache", using(&world.database_id, account.clone())).await;
    world.wait_for("cache", Reason::Synced.as_str(), |_| true).await;
    world.set_rotation("cache", 1).await;
    world.wait_applied("cache", 1).await;
    assert_eq!(world.resets().await, 1);

    // Not allowed: a clear condition, and not one request for its database,
    // even with its counter raised.
    let outsider =
        world.sim.create_database("acct-outsider").await["database_id"].as_str().expect("id").to_owned();
    let others: Api<RedisPasswordRotation> = Api::namespaced(client.clone(), &other.name);
    let mut spec = using(&outsider, account.clone());
    spec.rotation = 0;
    others.create(&PostParams::default(), &RedisPasswordRotation::new("cache", spec)).await.expect("create");
    let refused = ready_reason(&others, "cache", Reason::AccountNotAllowed).await;
    let message = support::ready_message(&refused);
    assert!(message.contains(&other.name) && message.contains(&name), "{message}");
    let patch = json!({"spec": {"rotation": 1}});
    others.patch("cache", &PatchParams::default(), &Patch::Merge(&patch)).await.expect("raise");
    refused_as_raised(&others, "cache").await;
    assert_eq!(calls_for(&world, &outsider).await, 0, "no call to Upstash for a namespace not allowed");

    // The account's status: the key works, and both resources name it.
    let status =
        account_status(&accounts, &name, "the account to list both users", |s| s.resource_count == 2).await;
    assert_eq!(validated(&status), Some(("True".into(), "Validated".into())), "{status:?}");
    let users = vec![format!("{}/cache", world.ns.name), format!("{}/cache", other.name)];
    let mut expected = users.clone();
    expected.sort();
    assert_eq!(status.resources, expected);
    assert!(status.databases.is_some_and(|n| n >= 1), "{status:?}");

    // Allowing the namespace by its labels reaches the waiting resource at
    // once (the account's spec changed): its first sync stores the current
    // credentials (a counter raised before a first sync resets nothing),
    // and the next raise rotates.
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let label = json!({"metadata": {"labels": {"upstash-rotator.io/test-team": "payments"}}});
    namespaces.patch(&other.name, &PatchParams::default(), &Patch::Merge(&label)).await.expect("label");
    let selector = json!({"spec": {"allowedNamespaces": {"selector": {"matchLabels": {"upstash-rotator.io/test-team": "payments"}}}}});
    accounts.patch(&name, &PatchParams::default(), &Patch::Merge(&selector)).await.expect("allow by label");
    let applied = |rotation: i64| {
        let others = others.clone();
        eventually(WAIT, "the outsider to apply its counter", move || {
            let others = others.clone();
            async move { (others.get("cache").await.ok()?.status?.rotation == Some(rotation)).then_some(()) }
        })
    };
    applied(1).await;
    assert_eq!(world.sim.resets(&outsider).await, 0);
    // The platform's namespace is not watched for resources: a watch of its
    // Secrets alone keeps the versions of the key the account lends.
    let reads = || {
        (
            operator.kubernetes_requests("get", "namespaces", "200"),
            operator.kubernetes_requests("get", "secrets", "200"),
        )
    };
    let before = reads();
    let patch = json!({"spec": {"rotation": 2}});
    others.patch("cache", &PatchParams::default(), &Patch::Merge(&patch)).await.expect("raise");
    applied(2).await;
    assert_eq!(world.sim.resets(&outsider).await, 1);
    assert_eq!(reads(), before, "namespace and Secret reads by a rotation through a selector");

    // The label removed: the resource there is refused at once, with no
    // counter raised, and a raised one resets nothing.
    let unlabel = json!({"metadata": {"labels": {"upstash-rotator.io/test-team": null}}});
    namespaces.patch(&other.name, &PatchParams::default(), &Patch::Merge(&unlabel)).await.expect("unlabel");
    ready_reason(&others, "cache", Reason::AccountNotAllowed).await;
    let patch = json!({"spec": {"rotation": 3}});
    others.patch("cache", &PatchParams::default(), &Patch::Merge(&patch)).await.expect("raise");
    refused_as_raised(&others, "cache").await;
    assert_eq!(world.sim.resets(&outsider).await, 1);

    // Deleting the account stops its users at once.
    accounts.delete(&name, &DeleteParams::default()).await.expect("delete account");
    let gone = world.wait_for("cache", Reason::AccountNotFound.as_str(), |_| true).await;
    assert!(support::ready_message(&gone).contains("does not exist"), "{}", support::ready_message(&gone));
    world.assert_nothing_leaked(&support::world::credentials_of(&world.current().await)).await;
}

#[tokio::test]
async fn a_namespaced_account_is_checked_once_per_secret_change_and_its_users_follow() {
    let mut world = World::prepare("acct-ns").await;
    let accounts: Api<UpstashAccount> = Api::namespaced(world.client.clone(), &world.ns.name);
    let spec = UpstashAccountSpec { credentials_secret_ref: CredentialsSecretRef::named(CREDENTIALS_SECRET) };
    accounts.create(&PostParams::default(), &UpstashAccount::new("team", spec)).await.expect("account");
    world.start_operator().await;

    let status =
        account_status(&accounts, "team", "the key to be validated", |s| validated(s).is_some()).await;
    assert_eq!(validated(&status), Some(("True".into(), "Validated".into())), "{status:?}");
    assert_eq!(status.resource_count, 0);
    let checks = list_calls(&world).await;

    // A new user is listed without checking the key again.
    let team = AccountRef { kind: AccountKind::UpstashAccount, name: "team".into() };
    world.create("cache", using(&world.database_id, team)).await;
    world.wait_for("cache", Reason::Synced.as_str(), |_| true).await;
    account_status(&accounts, "team", "the account to list its user", |s| s.resource_count == 1).await;
    assert_eq!(list_calls(&world).await, checks, "an unchanged Secret is not checked again");

    // A wrong key: the account says so, and its user learns it through the
    // account (it does not name the Secret itself).
    world.put_api_credentials(EMAIL, "wrong-key").await;
    let status = account_status(&accounts, "team", "the wrong key to be reported", |s| {
        validated(s).is_some_and(|(_, reason)| reason == "InvalidCredentials")
    })
    .await;
    assert_eq!(validated(&status).map(|v| v.0).as_deref(), Some("False"));
    world.wait_for("cache", Reason::InvalidCredentials.as_str(), |_| true).await;

    // Fixed: both recover, and a rotation works.
    world.put_api_credentials(EMAIL, API_KEY).await;
    world.wait_for("cache", Reason::Synced.as_str(), |_| true).await;
    world.set_rotation("cache", 1).await;
    world.wait_applied("cache", 1).await;
    assert_eq!(world.resets().await, 1);
    let status: Value = serde_json::to_value(
        account_status(&accounts, "team", "the fixed key", |s| validated(s).is_some_and(|v| v.0 == "True"))
            .await,
    )
    .expect("json");
    assert!(!status.to_string().contains(API_KEY), "the status never holds the key");

    // The last user gone, the list empties (a merge patch must say so).
    world.resources().delete("cache", &DeleteParams::default()).await.expect("delete");
    let status = account_status(&accounts, "team", "no users left", |s| s.resource_count == 0).await;
    assert!(status.resources.is_empty(), "{status:?}");
    world.assert_nothing_leaked(&support::world::credentials_of(&world.current().await)).await;
}

#[tokio::test]
async fn a_rotation_through_an_account_reads_neither_the_account_nor_its_key() {
    let mut world = World::prepare("acct-reads").await;
    let accounts: Api<UpstashAccount> = Api::namespaced(world.client.clone(), &world.ns.name);
    let spec = UpstashAccountSpec { credentials_secret_ref: CredentialsSecretRef::named(CREDENTIALS_SECRET) };
    accounts.create(&PostParams::default(), &UpstashAccount::new("team", spec)).await.expect("account");
    world.start_operator().await;
    let team = AccountRef { kind: AccountKind::UpstashAccount, name: "team".into() };
    world.create("cache", using(&world.database_id, team)).await;
    world.wait_for("cache", Reason::Synced.as_str(), |_| true).await;
    account_status(&accounts, "team", "the account to list its user", |s| {
        s.resource_count == 1 && validated(s).is_some()
    })
    .await;
    let Some(operator) = world.operator.as_ref() else { panic!("started") };
    let reads = || {
        (
            operator.kubernetes_requests("get", "upstashaccounts", "200"),
            operator.kubernetes_requests("get", "secrets", "200"),
        )
    };
    let before = reads();
    for rotation in 1..=3 {
        world.set_rotation("cache", rotation).await;
        world.wait_applied("cache", rotation).await;
    }
    assert_eq!(world.resets().await, 3);
    // The account is the one its watch delivered, and the key the copy of
    // the first sync's read, whose version the watch of Secrets kept from
    // then on though no resource names that Secret; the account controller
    // reads it only when its version is not the one it last checked (not
    // for the echo of its own status write). A changed key is followed:
    // see a_namespaced_account_is_checked_once_per_secret_change_and_its_users_follow.
    let (accounts_read, secrets_read) = reads();
    assert_eq!((accounts_read, secrets_read), before, "account and Secret reads by the three rotations");

    // A second user: its first sync takes the same copy of the key, and the
    // account lists it (and hears the echo of that write) without reading
    // the key it already checked at that version.
    let team = AccountRef { kind: AccountKind::UpstashAccount, name: "team".into() };
    let database =
        world.sim.create_database("acct-second").await["database_id"].as_str().expect("id").to_owned();
    world.create("second", using(&database, team)).await;
    world.wait_for("second", Reason::Synced.as_str(), |_| true).await;
    account_status(&accounts, "team", "the account to list both users", |s| s.resource_count == 2).await;
    assert_eq!(reads(), before, "account and Secret reads for a second user");
}
