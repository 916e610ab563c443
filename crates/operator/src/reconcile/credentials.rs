//! Where a resource's Upstash API key comes from: its own Secret
//! (`spec.credentialsSecretRef`), an `UpstashAccount` in its namespace, or a
//! `ClusterUpstashAccount` that allows its namespace (`spec.accountRef`).
//! Resolved on every reconcile before any call to Upstash, from what the
//! watches last delivered: an account, and the labels of the namespace its
//! selector matches, as their watches' stores hold them (read from etcd when
//! a store has none), a key Secret at least as new as the version its watch
//! delivered, and not read again while that version holds (`KeySecrets`). A
//! namespace the platform team removes (from the names or by its labels), a
//! key it changes, is seen as soon as its watch delivers the change, and
//! wakes the users.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use upstash_api::ApiCredentials;

use super::{
    Context,
    error::{Error, Result},
    observe::Seen,
    ops::{Freshness, KubeOps, UpstashOps},
};
use crate::{
    account::{Account, AccountKind, AccountRef, NotAllowed},
    crd::{CredentialsSecretRef, RedisPasswordRotation},
};

/// The API key's Secret as resolved for one reconcile, or why there is none.
#[derive(Clone, Debug)]
pub struct KeySource {
    pub found: Result<KeySecret, Refusal>,
    /// The account's uid and generation: a changed account is news to the
    /// backoff gate, like a changed Secret.
    pub account_version: Option<String>,
}

/// The Secret the key is read from.
#[derive(Clone, Debug)]
pub struct KeySecret {
    pub secret: Option<Secret>,
    pub reference: CredentialsSecretRef,
    /// How messages name it: which Secret, where, through which account.
    pub described: String,
}

/// Why the account named by `spec.accountRef` cannot be used.
#[derive(Clone, Debug)]
pub enum Refusal {
    NotFound(String),
    NotAllowed(String),
}

impl KeySource {
    /// A Secret of this namespace, named by the resource itself.
    fn own(secret: Option<Secret>, reference: CredentialsSecretRef) -> Self {
        let described = format!("Secret {} in this namespace", reference.name);
        Self { found: Ok(KeySecret { secret, reference, described }), account_version: None }
    }

    fn refused(refusal: Refusal, account_version: Option<String>) -> Self {
        Self { found: Err(refusal), account_version }
    }

    /// `resourceVersion` of the key's Secret, for the backoff gate.
    pub fn secret_version(&self) -> Option<String> {
        self.found.as_ref().ok()?.secret.as_ref()?.metadata.resource_version.clone()
    }

    /// Email and API key, or why they cannot be had.
    pub fn api_credentials(&self) -> Result<ApiCredentials> {
        let found = self.found.as_ref().map_err(|refusal| match refusal {
            Refusal::NotFound(m) => Error::AccountNotFound(m.clone()),
            Refusal::NotAllowed(m) => Error::AccountNotAllowed(m.clone()),
        })?;
        found.api_credentials()
    }
}

impl KeySecret {
    /// Email and API key from the Secret, or which part is missing.
    pub fn api_credentials(&self) -> Result<ApiCredentials> {
        let secret = self.secret.as_ref().ok_or_else(|| {
            Error::CredentialsSecretMissing(format!(
                "{} with the Upstash API email and key does not exist",
                self.described
            ))
        })?;
        let value = |key: &str| {
            secret
                .data
                .as_ref()
                .and_then(|d| d.get(key))
                .and_then(|v| std::str::from_utf8(&v.0).ok())
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
                .ok_or_else(|| {
                    Error::CredentialsSecretMissing(format!(
                        "{} has no non-empty key {key:?}",
                        self.described
                    ))
                })
        };
        let reference = &self.reference;
        Ok(ApiCredentials { email: value(&reference.email_key)?, api_key: value(&reference.api_key_key)? })
    }
}

/// Resolves the key of `resource` in `namespace`. `cluster_namespace` is
/// where `ClusterUpstashAccount` Secrets live; `None` turns them off.
pub async fn resolve<K: KubeOps, U: UpstashOps>(
    ctx: &Context<K, U>,
    resource: &RedisPasswordRotation,
    namespace: &str,
    seen: &Seen,
) -> Result<KeySource> {
    let kube = &ctx.kube;
    let cluster_namespace = ctx.cluster_namespace.as_deref();
    let spec = &resource.spec;
    let Some(account) = &spec.account_ref else {
        // Admission requires one of the two; an object stored before that
        // rule (or written around it) is told what is missing.
        let Some(reference) = spec.credentials_secret_ref.clone() else {
            let why = "set spec.credentialsSecretRef or spec.accountRef".to_owned();
            return Ok(KeySource::refused(Refusal::NotFound(why), None));
        };
        let freshness = seen.secret(namespace, &reference.name);
        let secret = key_secret(ctx, namespace, &reference.name, freshness, false).await?;
        return Ok(KeySource::own(secret, reference));
    };
    match account.kind {
        AccountKind::UpstashAccount => {
            let found = match ctx.caches.account(namespace, &account.name) {
                Some(watched) => Some(watched),
                None => kube.get_account(namespace, &account.name).await?.map(Arc::new),
            };
            let Some(found) = found else {
                let why = format!("UpstashAccount {} does not exist in this namespace", account.name);
                return Ok(KeySource::refused(Refusal::NotFound(why), None));
            };
            lent(ctx, namespace, &*found, account).await
        }
        AccountKind::ClusterUpstashAccount => {
            let Some(home) = cluster_namespace else {
                let why = "this operator runs without a cluster resource namespace, so ClusterUpstashAccounts are \
                           turned off (chart value clusterAccounts.enabled)";
                return Ok(KeySource::refused(Refusal::NotAllowed(why.into()), None));
            };
            let found = match ctx.caches.cluster_account(namespace, &account.name) {
                Some(watched) => Some(watched),
                None => kube.get_cluster_account(&account.name).await?.map(Arc::new),
            };
            let Some(found) = found else {
                let why = format!("ClusterUpstashAccount {} does not exist", account.name);
                return Ok(KeySource::refused(Refusal::NotFound(why), None));
            };
            let version = version_of(&*found);
            let allowed = &found.spec.allowed_namespaces;
            let labels = if allowed.needs_labels(namespace) {
                match ctx.caches.namespace_labels(namespace) {
                    Some(watched) => watched,
                    None => kube.get_namespace_labels(namespace).await?.unwrap_or_default(),
                }
            } else {
                Default::default()
            };
            if let Err(refused) = allowed.allows(namespace, &labels) {
                let why = match refused {
                    NotAllowed::Outside => format!(
                        "ClusterUpstashAccount {} does not allow namespace {namespace} (spec.allowedNamespaces)",
                        account.name
                    ),
                    NotAllowed::InvalidSelector(e) => format!(
                        "ClusterUpstashAccount {} has an unusable spec.allowedNamespaces.selector ({e}), which \
                         allows no namespace",
                        account.name
                    ),
                };
                return Ok(KeySource::refused(Refusal::NotAllowed(why), version));
            }
            lent(ctx, home, &*found, account).await
        }
    }
}

/// The key Secret `found` lends, from `namespace`: at least as new as the
/// version its watch delivered, unless the account's own check saw another
/// (that watch is behind the check, which wakes the users to check with the
/// new key: they read the newest).
async fn lent<K: KubeOps, U: UpstashOps, A: Account>(
    ctx: &Context<K, U>,
    namespace: &str,
    found: &A,
    account: &AccountRef,
) -> Result<KeySource> {
    let reference = found.credentials_ref().clone();
    let account_version = version_of(found);
    // A dry run has no account controller: the checked version is an
    // earlier run's.
    let checked =
        found.account_status().and_then(|s| s.validated_secret_version.as_deref()).filter(|_| !ctx.dry_run);
    let delivered = ctx.caches.secret_version(namespace, &reference.name);
    let freshness = match delivered.as_deref() {
        Some(version) if checked.is_none_or(|checked| checked == version) => Freshness::NotOlderThan(version),
        _ => Freshness::Latest,
    };
    let secret = key_secret(ctx, namespace, &reference.name, freshness, true).await?;
    let described = format!("Secret {} of {account}", reference.name);
    Ok(KeySource { found: Ok(KeySecret { secret, reference, described }), account_version })
}

/// A key Secret at least as new as `freshness`: the copy of an earlier
/// read of exactly the version its watch delivered, else a read. A read
/// from etcd (no version delivered: the watch saw the Secret before
/// anything wanted it, and reports only changes) gives the watch's record
/// its version, so later reconciles use the copy. The record keeps every
/// change from before that read on, and a deletion meanwhile voids the
/// read (`Caches::want_key`), so it never holds a version older than the
/// watch delivered before it. `lent`: a key an account lends, whose
/// versions are kept from then on though no resource names it.
async fn key_secret<K: KubeOps, U: UpstashOps>(
    ctx: &Context<K, U>,
    namespace: &str,
    name: &str,
    freshness: Freshness<'_>,
    lent: bool,
) -> Result<Option<Secret>> {
    let want = (freshness == Freshness::Latest).then(|| ctx.caches.want_key(namespace, name)).flatten();
    let read = ctx.key_secrets.get(&ctx.kube, namespace, name, freshness).await;
    if let Some(want) = want {
        let version = read.as_ref().ok().and_then(|s| s.as_ref()?.metadata.resource_version.as_deref());
        ctx.caches.settle_key(namespace, name, want, version, lent);
    }
    Ok(read?)
}

fn version_of<A: kube::Resource>(account: &A) -> Option<String> {
    let meta = account.meta();
    Some(format!("{}/{}", meta.uid.as_deref().unwrap_or_default(), meta.generation.unwrap_or_default()))
}
