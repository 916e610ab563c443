//! The account controller's reconcile: checks the key with one cheap
//! authenticated call when the account or its Secret changed, and records
//! which resources use the account. Idle otherwise: its own status write
//! comes back as an event, finds the same Secret version, and calls no one.

use std::{sync::Arc, time::Duration};

use k8s_openapi::{api::core::v1::Secret, apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};
use kube::{Api, Client, ResourceExt as _, api::Patch, runtime::controller::Action};
use serde_json::json;
use upstash_api::UpstashClient;

use super::{
    keys::LentKeyVersions,
    types::{Account, AccountStatus},
};
use crate::{
    cache::Indexes,
    conditions::{self, Reason, VALIDATED},
    leader::{Fence, LeaseExpired},
    reconcile::{Error, credentials::KeySecret, merge_params},
};

/// Resources listed by name in an account's status; the count covers all.
const LISTED_USERS: usize = 50;

/// How soon a check that could not reach Upstash is tried again.
const UNAVAILABLE_RETRY: Duration = Duration::from_secs(60);

/// What the account controllers share.
#[derive(Clone)]
pub struct AccountContext {
    pub client: Client,
    pub upstash: UpstashClient,
    /// Every watched scope's resource index, to find an account's users.
    pub index: Indexes,
    /// Where `ClusterUpstashAccount` Secrets live.
    pub cluster_namespace: Option<String>,
    /// Closed once this process may have lost its lease: a status write
    /// from a paused leader would be stale.
    pub fence: Fence,
    /// The key versions one controller's watch of Secrets delivered (see
    /// `with_own_keys`).
    pub keys: Arc<LentKeyVersions>,
}

impl AccountContext {
    /// This context for one account controller, with the key versions of
    /// its own watch of Secrets: another watch may be ahead or behind it.
    pub fn with_own_keys(&self) -> Arc<Self> {
        Arc::new(Self { keys: Arc::default(), ..self.clone() })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("Kubernetes API: {}", crate::reconcile::kube_message(.0))]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    LeaseExpired(#[from] LeaseExpired),
}

/// Validates one account and records its users.
#[tracing::instrument(skip_all, fields(kind = A::KIND.as_str(), namespace = account.namespace(), name = account.name_any()))]
pub async fn reconcile<A: Account>(
    account: Arc<A>,
    ctx: Arc<AccountContext>,
) -> Result<Action, AccountError> {
    let before = account.account_status().cloned().unwrap_or_default();
    let mut status = before.clone();
    record_users(&*account, &ctx.index, &mut status);

    let home = account.namespace().or_else(|| ctx.cluster_namespace.clone()).unwrap_or_default();
    let reference = account.credentials_ref().clone();
    let generation = account.meta().generation;
    let now = Timestamp::now();
    let settled = before.observed_generation == generation
        && conditions::get(&before.conditions, VALIDATED).is_some()
        && retry_in(&before, now).is_none_or(|wait| !wait.is_zero());
    // Still at the version the last check saw, as the watch delivered it:
    // nothing to check, and nothing to read.
    let delivered = ctx.keys.version(&home, &reference.name);
    let unchanged = delivered.is_some() && delivered == before.validated_secret_version;
    if !(settled && unchanged) {
        let ticket = ctx.keys.ticket(&home, &reference.name);
        let secret = Api::<Secret>::namespaced(ctx.client.clone(), &home).get_opt(&reference.name).await?;
        let secret_version = secret.as_ref().and_then(|s| s.metadata.resource_version.clone());
        ctx.keys.settle(&home, &reference.name, ticket, secret_version.as_deref());
        if !(settled && before.validated_secret_version == secret_version) {
            let described = format!("Secret {} in namespace {home}", reference.name);
            ctx.fence.check()?;
            check(&ctx, &KeySecret { secret, reference, described }, &mut status, generation, now).await;
            status.validated_secret_version = secret_version;
        }
    }
    if status != before {
        ctx.fence.check()?;
        let api = A::api(ctx.client.clone(), account.namespace().as_deref());
        let patch = json!({ "status": status });
        api.patch_status(&account.name_any(), &merge_params(), &Patch::Merge(&patch)).await?;
    }
    // Its own status write comes back as an event: a check that failed for
    // now is tried again on this timer only, never on that echo.
    Ok(retry_in(&status, Timestamp::now())
        .map_or_else(Action::await_change, |wait| Action::requeue(wait.max(Duration::from_millis(100)))))
}

/// Checks the key with one authenticated call, and records the outcome
/// for `generation` in `status`.
async fn check(
    ctx: &AccountContext,
    key: &KeySecret,
    status: &mut AccountStatus,
    generation: Option<i64>,
    now: Timestamp,
) {
    let (valid, reason, message) = match key.api_credentials() {
        Err(e) => (false, e.reason(), e.to_string()),
        Ok(auth) => match ctx.upstash.list_databases(&auth).await {
            Ok(count) => {
                status.databases = i64::try_from(count).ok();
                status.last_validation_time = Some(Time(now));
                let message = format!("the API key authenticates with Upstash (databases it sees: {count})");
                (true, Reason::Validated, message)
            }
            Err(e) => {
                status.last_validation_time = Some(Time(now));
                let error = Error::Upstash(e);
                (false, error.reason(), error.to_string())
            }
        },
    };
    tracing::info!(valid, reason = reason.as_str(), "account checked: {message}");
    conditions::set(&mut status.conditions, VALIDATED, valid, reason, message, generation, now);
    status.observed_generation = generation;
}

/// Retries a failed read of the account or its Secret.
pub fn error_policy<A: Account>(account: Arc<A>, error: &AccountError, _: Arc<AccountContext>) -> Action {
    tracing::warn!(kind = A::KIND.as_str(), name = account.name_any(), "account reconcile failed: {error}");
    Action::requeue(Duration::from_secs(15))
}

/// Counts and lists (sorted, the first `LISTED_USERS`) the resources that
/// name `account` (a lookup in the index, not a scan of every resource).
fn record_users<A: Account>(account: &A, index: &Indexes, status: &mut AccountStatus) {
    let mut users: Vec<String> = index
        .lookup(&account.index_key())
        .into_iter()
        .map(|r| format!("{}/{}", r.namespace.unwrap_or_default(), r.name))
        .collect();
    users.sort_unstable();
    status.resource_count = i64::try_from(users.len()).unwrap_or(i64::MAX);
    users.truncate(LISTED_USERS);
    status.resources = users;
}

/// Outcomes the next try may change without anyone acting.
fn transient(reason: Reason) -> bool {
    matches!(reason, Reason::UpstashUnavailable | Reason::RateLimited | Reason::UpstashTLSUntrusted)
}

/// After an outcome the next try may change, how long until that try
/// (zero: due now); `None` after a lasting outcome.
fn retry_in(status: &AccountStatus, now: Timestamp) -> Option<Duration> {
    let reason = conditions::reason_of(&status.conditions, VALIDATED)?;
    if !transient(reason) {
        return None;
    }
    let since = status
        .last_validation_time
        .as_ref()
        .map_or(UNAVAILABLE_RETRY, |t| Duration::try_from(t.0.duration_until(now)).unwrap_or(Duration::ZERO));
    Some(UNAVAILABLE_RETRY.saturating_sub(since))
}

#[cfg(test)]
mod tests {
    use kube::runtime::watcher;

    use super::*;
    use crate::{
        account::{
            AccountKind, AccountRef, ClusterUpstashAccount, ClusterUpstashAccountSpec, UpstashAccount,
            UpstashAccountSpec,
        },
        cache::{CachedRotation, Index},
        crd::{CredentialsSecretRef, RedisPasswordRotationSpec},
    };

    fn user(namespace: &str, name: &str, account: &str) -> CachedRotation {
        let mut spec = RedisPasswordRotationSpec::new("db", "unused");
        spec.credentials_secret_ref = None;
        spec.account_ref = Some(AccountRef { kind: AccountKind::UpstashAccount, name: account.into() });
        let mut r = crate::crd::RedisPasswordRotation::new(name, spec);
        r.metadata.namespace = Some(namespace.into());
        CachedRotation::of(&r)
    }

    #[test]
    fn users_are_those_naming_the_account_in_its_namespace_sorted_and_capped() {
        let index = Arc::new(Index::default());
        for i in (0..60).rev() {
            index.observe(&watcher::Event::Apply(user("ns", &format!("r{i:02}"), "team")));
        }
        index.observe(&watcher::Event::Apply(user("elsewhere", "same-name", "team")));
        index.observe(&watcher::Event::Apply(user("ns", "other-account", "another")));
        let spec = UpstashAccountSpec { credentials_secret_ref: CredentialsSecretRef::named("key") };
        let mut account = UpstashAccount::new("team", spec);
        account.metadata.namespace = Some("ns".into());
        let mut status = AccountStatus::default();
        record_users(&account, &Indexes::new(vec![index]), &mut status);
        assert_eq!(status.resource_count, 60);
        assert_eq!(status.resources.len(), LISTED_USERS);
        assert_eq!((status.resources[0].as_str(), status.resources[49].as_str()), ("ns/r00", "ns/r49"));
    }

    #[test]
    fn a_cluster_account_counts_its_users_in_every_namespace() {
        let index = Arc::new(Index::default());
        let cluster = |namespace: &str, name: &str| {
            let mut user = user(namespace, name, "shared");
            user.spec.account_ref =
                Some(AccountRef { kind: AccountKind::ClusterUpstashAccount, name: "shared".into() });
            user
        };
        index.observe(&watcher::Event::Apply(cluster("a", "r")));
        index.observe(&watcher::Event::Apply(cluster("b", "r")));
        // The namespaced account of the same name in "a" is another account.
        index.observe(&watcher::Event::Apply(user("a", "s", "shared")));
        let spec = ClusterUpstashAccountSpec {
            credentials_secret_ref: CredentialsSecretRef::named("key"),
            allowed_namespaces: Default::default(),
        };
        let mut status = AccountStatus::default();
        record_users(&ClusterUpstashAccount::new("shared", spec), &Indexes::new(vec![index]), &mut status);
        assert_eq!(
            (status.resource_count, status.resources.as_slice()),
            (2, &["a/r".to_owned(), "b/r".to_owned()][..])
        );
    }

    #[test]
    fn only_an_unreachable_upstash_is_tried_again_and_only_on_its_timer() {
        let now = Timestamp::from_second(10_000).expect("valid");
        let mut status = AccountStatus::default();
        let set = |status: &mut AccountStatus, reason: Reason, at: i64| {
            conditions::set(&mut status.conditions, VALIDATED, false, reason, "x", None, now);
            status.last_validation_time = Some(Time(Timestamp::from_second(at).expect("valid")));
        };
        set(&mut status, Reason::InvalidCredentials, 10_000);
        assert_eq!(retry_in(&status, now), None, "a refused key waits for a change");
        set(&mut status, Reason::UpstashUnavailable, 10_000 - 20);
        assert_eq!(retry_in(&status, now), Some(Duration::from_secs(40)), "not on the status echo");
        set(&mut status, Reason::UpstashUnavailable, 10_000 - 61);
        assert_eq!(retry_in(&status, now), Some(Duration::ZERO), "due");
    }
}
