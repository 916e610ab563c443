//! The chart's RBAC, proven: the operator runs with nothing but a token of
//! the chart's ServiceAccount, completes create → rotate, and is refused
//! everything the chart does not grant.

use testkit as support;

use std::time::Duration;

use k8s_openapi::api::{
    apps::v1::Deployment,
    coordination::v1::Lease,
    core::v1::{Pod, Secret},
};
use kube::{
    Api, Client,
    api::{DeleteParams, ListParams, Patch, PatchParams},
};
use support::{
    TestNamespace,
    operator::Operator,
    service_account_client,
    tools::{CHART, helm, text},
    workloads,
    world::World,
};

use upstash_rotator::{
    conditions::{self, Reason},
    crd::{WorkloadKind, WorkloadRef},
    leader::Election,
};

fn forbidden<T: std::fmt::Debug>(result: Result<T, kube::Error>, what: &str) {
    match result {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 403, "{what}: {status:?}"),
        other => panic!("{what} must be forbidden, got {other:?}"),
    }
}

async fn install(release: &str, namespace: &str, extra: &[&str]) {
    let mut args = vec!["install", release, CHART, "-n", namespace, "--set", "crds.install=false"];
    args.extend_from_slice(extra);
    let out = helm(&args);
    assert!(out.status.success(), "{}", text(&out));
}

async fn chart_identity(admin: &Client, namespace: &str, release: &str) -> Client {
    service_account_client(admin, namespace, &format!("{release}-upstash-rotator")).await
}

#[tokio::test]
async fn namespaced_install_rotates_with_its_own_token_and_nothing_more() {
    let mut world = World::prepare("rbac").await;
    let admin = world.client.clone();
    let operator_ns = TestNamespace::new(&admin, "rbac-op").await;
    let elsewhere = TestNamespace::new(&admin, "rbac-other").await;
    let release = format!("r{}", &operator_ns.name[operator_ns.name.len() - 8..]);
    let watch = format!("watchNamespaces={{{}}}", world.ns.name);
    install(&release, &operator_ns.name, &["--set", &watch]).await;

    let identity = chart_identity(&admin, &operator_ns.name, &release).await;
    world.operator = Some(Operator::start(identity.clone(), &world.ns.name, &world.sim.url).await);
    world.create("cache", world.spec()).await;
    world.wait_for("cache", Reason::Synced.as_str(), |_| true).await;
    world.set_rotation("cache", 1).await;
    world.wait_applied("cache", 1).await;
    assert_eq!(world.resets().await, 1);
    world.wait_event("Rotated", 1).await; // events are permitted

    let secrets_elsewhere: Api<Secret> = Api::namespaced(identity.clone(), &elsewhere.name);
    forbidden(
        secrets_elsewhere.list(&ListParams::default()).await,
        "listing Secrets outside watchNamespaces",
    );
    forbidden(secrets_elsewhere.get("anything").await, "reading a Secret outside watchNamespaces");
    let secrets_here: Api<Secret> = Api::namespaced(identity.clone(), &world.ns.name);
    forbidden(secrets_here.delete("cache", &DeleteParams::default()).await, "deleting a Secret");
    let pods: Api<Pod> = Api::namespaced(identity.clone(), &world.ns.name);
    forbidden(pods.list(&ListParams::default()).await, "listing Pods");
    let leases: Api<Lease> = Api::namespaced(identity.clone(), &operator_ns.name);
    let lease_name = format!("{release}-upstash-rotator");
    forbidden(leases.get("someone-elses-lease").await, "reading another Lease");
    forbidden(leases.list(&ListParams::default()).await, "listing Leases");
    // Leader election works with exactly these rights: take, renew, release.
    let election = Election {
        namespace: operator_ns.name.clone(),
        lease_name: lease_name.clone(),
        identity: "rbac-test".into(),
        lease_duration: Duration::from_secs(3),
    };
    let mut leadership = election.start(identity.clone()).await.expect("election starts");
    tokio::time::timeout(Duration::from_secs(10), leadership.acquired()).await.expect("leads in time");
    assert_eq!(leadership.fence().check(), Ok(()), "a fresh leader may act");
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(leadership.fence().check(), Ok(()), "renewed past the first lease duration");
    leadership.release().await;
    let released = leases.get(&lease_name).await.expect("lease");
    assert_eq!(released.spec.and_then(|s| s.holder_identity), None, "released for a standby");

    world.stop_operator().await;
    let out = helm(&["uninstall", &release, "-n", &operator_ns.name]);
    assert!(out.status.success(), "{}", text(&out));
}

#[tokio::test]
async fn cluster_wide_install_reads_secrets_everywhere_but_never_deletes() {
    let admin = support::admin_client().await;
    let operator_ns = TestNamespace::new(&admin, "rbac-cw").await;
    let other = TestNamespace::new(&admin, "rbac-cw-other").await;
    let release = format!("r{}", &operator_ns.name[operator_ns.name.len() - 8..]);
    install(&release, &operator_ns.name, &[]).await;
    let identity = chart_identity(&admin, &operator_ns.name, &release).await;

    let secrets: Api<Secret> = Api::namespaced(identity.clone(), &other.name);
    secrets.list(&ListParams::default()).await.expect("a cluster-wide install watches every namespace");
    forbidden(secrets.delete("x", &DeleteParams::default()).await, "deleting a Secret");
    let pods: Api<Pod> = Api::all(identity);
    forbidden(pods.list(&ListParams::default()).await, "listing Pods");
    let out = helm(&["uninstall", &release, "-n", &operator_ns.name]);
    assert!(out.status.success(), "{}", text(&out));
}

#[tokio::test]
async fn rollout_restart_may_only_patch_workloads_and_is_forbidden_when_turned_off() {
    let mut world = World::prepare("rbac-restart").await;
    let admin = world.client.clone();
    workloads::create_idle(&admin, &world.ns.name, WorkloadKind::Deployment, "web").await;
    let watch = format!("watchNamespaces={{{}}}", world.ns.name);
    let deployments = |client: &Client| Api::<Deployment>::namespaced(client.clone(), &world.ns.name);
    let annotate = serde_json::json!({"spec": {"template": {"metadata": {"annotations": {"x": "1"}}}}});
    let merge = Patch::Merge(&annotate);

    let on_ns = TestNamespace::new(&admin, "rbac-on").await;
    let on = format!("r{}", &on_ns.name[on_ns.name.len() - 8..]);
    install(&on, &on_ns.name, &["--set", &watch]).await;
    let allowed = chart_identity(&admin, &on_ns.name, &on).await;
    deployments(&allowed).patch("web", &PatchParams::default(), &merge).await.expect("patch is granted");
    forbidden(deployments(&allowed).get("web").await, "reading a Deployment");
    forbidden(deployments(&allowed).list(&ListParams::default()).await, "listing Deployments");
    forbidden(deployments(&allowed).delete("web", &DeleteParams::default()).await, "deleting a Deployment");

    let off_ns = TestNamespace::new(&admin, "rbac-off").await;
    let off = format!("r{}", &off_ns.name[off_ns.name.len() - 8..]);
    install(&off, &off_ns.name, &["--set", &watch, "--set", "rolloutRestart.enabled=false"]).await;
    let refused = chart_identity(&admin, &off_ns.name, &off).await;
    forbidden(
        deployments(&refused).patch("web", &PatchParams::default(), &merge).await,
        "patch when turned off",
    );

    world.operator = Some(Operator::start(refused, &world.ns.name, &world.sim.url).await);
    let mut spec = world.spec();
    spec.rollout_restart = vec![WorkloadRef { kind: WorkloadKind::Deployment, name: "web".into() }];
    world.create("cache", spec).await;
    world.wait_for("cache", Reason::Synced.as_str(), |_| true).await;
    world.set_rotation("cache", 1).await;
    world.wait_applied("cache", 1).await;
    let r = world
        .wait_for("cache", Reason::Rotated.as_str(), |r| {
            r.status.as_ref().is_some_and(|s| {
                conditions::reason_of(&s.conditions, conditions::CONSUMERS_RESTARTED)
                    == Some(Reason::ConsumerForbidden)
            })
        })
        .await;
    let condition =
        conditions::get(&r.status.unwrap_or_default().conditions, conditions::CONSUMERS_RESTARTED)
            .cloned()
            .expect("condition");
    assert!(condition.message.contains("rolloutRestart.enabled=true"), "{}", condition.message);
    world.stop_operator().await;
    for (release, ns) in [(&on, &on_ns.name), (&off, &off_ns.name)] {
        let out = helm(&["uninstall", release, "-n", ns]);
        assert!(out.status.success(), "{}", text(&out));
    }
}

#[tokio::test]
async fn cluster_accounts_work_with_the_charts_rights_in_a_namespaced_install() {
    use upstash_rotator::account::{
        AccountKind, AccountRef, AllowedNamespaces, ClusterUpstashAccount, ClusterUpstashAccountSpec,
    };
    let mut world = World::prepare("rbac-acct").await;
    let admin = world.client.clone();
    let operator_ns = TestNamespace::new(&admin, "rbac-acct-op").await;
    let release = format!("r{}", &operator_ns.name[operator_ns.name.len() - 8..]);
    let watch = format!("watchNamespaces={{{}}}", world.ns.name);
    install(&release, &operator_ns.name, &["--set", &watch]).await;
    let identity = chart_identity(&admin, &operator_ns.name, &release).await;

    // The platform's key lives in the operator's namespace, the cluster
    // resource namespace the chart sets.
    let key = support::world::api_key_secret(support::sim::EMAIL, support::sim::API_KEY);
    Api::<Secret>::namespaced(admin.clone(), &operator_ns.name)
        .create(&Default::default(), &key)
        .await
        .expect("platform key");
    let accounts: Api<ClusterUpstashAccount> = Api::all(admin.clone());
    let name = format!("{}-shared", world.ns.name);
    let spec = ClusterUpstashAccountSpec {
        credentials_secret_ref: upstash_rotator::crd::CredentialsSecretRef::named(
            support::world::CREDENTIALS_SECRET,
        ),
        allowed_namespaces: AllowedNamespaces { names: vec![world.ns.name.clone()], selector: None },
    };
    accounts.create(&Default::default(), &ClusterUpstashAccount::new(&name, spec)).await.expect("account");
    world.operator = Some(
        Operator::start_with_cluster_accounts(
            identity.clone(),
            &[&world.ns.name],
            &operator_ns.name,
            &world.sim.url,
        )
        .await,
    );
    let mut spec = world.spec();
    spec.credentials_secret_ref = None;
    spec.account_ref = Some(AccountRef { kind: AccountKind::ClusterUpstashAccount, name: name.clone() });
    world.create("cache", spec).await;
    world.wait_for("cache", Reason::Synced.as_str(), |_| true).await;
    world.set_rotation("cache", 1).await;
    world.wait_applied("cache", 1).await;
    support::eventually(support::WAIT, "the account's status to be written", || {
        let accounts = accounts.clone();
        let name = name.clone();
        async move {
            let status = accounts.get(&name).await.ok()?.status?;
            (status.resource_count == 1
                && conditions::get(&status.conditions, conditions::VALIDATED).is_some())
            .then_some(())
        }
    })
    .await;

    // Read only, in that one namespace; namespaces read, listed and watched
    // by name, the watched one only.
    let home: Api<Secret> = Api::namespaced(identity.clone(), &operator_ns.name);
    home.get(support::world::CREDENTIALS_SECRET).await.expect("reads the platform key");
    forbidden(
        home.create(&Default::default(), &key).await,
        "creating a Secret in the cluster resource namespace",
    );
    forbidden(home.delete("anything", &DeleteParams::default()).await, "deleting a Secret there");
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(identity.clone());
    let by_name = |name: &str| ListParams::default().fields(&format!("metadata.name={name}"));
    let watched =
        namespaces.list(&by_name(&world.ns.name)).await.expect("lists the watched namespace by name");
    assert_eq!(watched.items.len(), 1);
    forbidden(namespaces.list(&ListParams::default()).await, "listing namespaces");
    forbidden(namespaces.list(&by_name(&operator_ns.name)).await, "listing an unwatched namespace by name");
    forbidden(namespaces.get(&operator_ns.name).await, "reading an unwatched namespace");
    // Every watch of the operator's runs on those rights: its namespace's
    // labels, and the Secrets of the cluster resource namespace it does not
    // watch for resources.
    let refused: Vec<String> = support::operator::captured_logs()
        .lines()
        .filter(|line| line.contains("watch failed") && line.contains("forbidden"))
        .map(str::to_owned)
        .collect();
    assert!(refused.is_empty(), "{refused:?}");
    world.stop_operator().await;

    // Turned off: no cluster-scoped right at all.
    let off_ns = TestNamespace::new(&admin, "rbac-acct-off").await;
    let off = format!("r{}", &off_ns.name[off_ns.name.len() - 8..]);
    install(&off, &off_ns.name, &["--set", &watch, "--set", "clusterAccounts.enabled=false"]).await;
    let refused = chart_identity(&admin, &off_ns.name, &off).await;
    let cluster_accounts: Api<ClusterUpstashAccount> = Api::all(refused.clone());
    forbidden(cluster_accounts.list(&ListParams::default()).await, "listing ClusterUpstashAccounts when off");
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(refused);
    forbidden(namespaces.get(&world.ns.name).await, "reading a namespace when off");

    accounts.delete(&name, &DeleteParams::default()).await.expect("delete account");
    for (release, ns) in [(&release, &operator_ns.name), (&off, &off_ns.name)] {
        let out = helm(&["uninstall", release, "-n", ns]);
        assert!(out.status.success(), "{}", text(&out));
    }
}
