//! The CRD: committed file up to date, CEL rules enforced by the apiserver,
//! every field explained by `kubectl explain`.

use testkit as support;

use kube::api::{Patch, PatchParams};
use serde_json::json;
use support::{operator::committed_crds, world::World};
use upstash_rotator::crd::{MaintenanceWindow, RedisPasswordRotation, RotationSchedule};

#[test]
fn committed_crds_match_the_rust_types() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/crds");
    let generated = upstash_rotator::cli::crds_yaml().expect("render");
    for (file, yaml) in &generated {
        let committed = std::fs::read_to_string(format!("{dir}/{file}")).unwrap_or_default();
        assert!(&committed == yaml, "crds/{file} is stale: run `make crds` and commit the result");
    }
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .expect("crds/")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    files.sort();
    let mut expected: Vec<String> = generated.into_iter().map(|(file, _)| file).collect();
    expected.sort();
    assert_eq!(files, expected, "crds/ holds exactly the generated CRDs: run `make crds`");
}

async fn rejected(world: &World, patch: serde_json::Value, expected: &str) {
    let err = world
        .resources()
        .patch("cache", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect_err("the apiserver must reject this change");
    match err {
        kube::Error::Api(status) => {
            assert_eq!(status.code, 422, "{status:?}");
            assert!(status.message.contains(expected), "apiserver message: {}", status.message);
        }
        other => panic!("expected a validation error, got {other}"),
    }
}

#[tokio::test]
async fn cel_rules_reject_decreases_and_identity_changes() {
    let world = World::prepare("cel").await;
    let mut spec = world.spec();
    spec.rotation = 3;
    world.create("cache", spec).await;

    rejected(&world, json!({"spec": {"rotation": 2}}), "spec.rotation may only increase").await;
    rejected(&world, json!({"spec": {"secretName": "elsewhere"}}), "spec.secretName is immutable").await;
    rejected(&world, json!({"spec": {"databaseId": "another"}}), "spec.databaseId is immutable").await;
    // Raising is fine.
    world
        .resources()
        .patch("cache", &PatchParams::default(), &Patch::Merge(&json!({"spec": {"rotation": 4}})))
        .await
        .expect("raise");

    let mut named = world.spec();
    named.secret_name = Some("creds".into());
    world.create("named", named).await;
    let err = world
        .resources()
        .patch("named", &PatchParams::default(), &Patch::Merge(&json!({"spec": {"secretName": null}})))
        .await
        .expect_err("removing secretName changes the Secret");
    assert!(err.to_string().contains("spec.secretName is immutable"), "{err}");

    let mut negative = world.spec();
    negative.rotation = -1;
    let err = world
        .resources()
        .create(&Default::default(), &upstash_rotator::crd::RedisPasswordRotation::new("negative", negative))
        .await
        .expect_err("negative counter");
    assert!(err.to_string().contains("should be greater than or equal to 0"), "{err}");
}

/// What the Secret write would refuse after a reset is refused at admission,
/// before any reset.
#[tokio::test]
async fn invalid_ids_names_and_templates_are_rejected_at_admission() {
    let world = World::prepare("admission").await;
    let create = |spec| async {
        world
            .resources()
            .create(&Default::default(), &upstash_rotator::crd::RedisPasswordRotation::new("bad", spec))
            .await
            .expect_err("the apiserver must reject this resource")
            .to_string()
    };
    for id in ["../other", "a/b", "", &"x".repeat(65)] {
        let mut spec = world.spec();
        spec.database_id = id.to_owned();
        let err = create(spec).await;
        assert!(err.contains("spec.databaseId"), "{id:?}: {err}");
    }
    for name in ["Upper", "under_score", "-dash", &"a".repeat(254)] {
        let mut spec = world.spec();
        spec.secret_name = Some(name.to_owned());
        let err = create(spec).await;
        assert!(err.contains("spec.secretName"), "{name:?}: {err}");
    }
    for (labels, annotations) in [
        (vec![("bad key!", "v")], vec![]),
        (vec![("ok", "bad value!")], vec![]),
        (vec![("ok", &*"v".repeat(64))], vec![]),
        (vec![], vec![("-x", "y")]),
    ] {
        let mut spec = world.spec();
        spec.secret_template = Some(Box::new(upstash_rotator::crd::SecretTemplate {
            labels: labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            annotations: annotations.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            ..Default::default()
        }));
        let err = create(spec).await;
        assert!(err.contains("spec.secretTemplate"), "{labels:?} {annotations:?}: {err}");
    }
    // Valid ones pass.
    let mut spec = world.spec();
    spec.secret_name = Some("shop.redis-credentials".into());
    spec.secret_template = Some(Box::new(upstash_rotator::crd::SecretTemplate {
        labels: [
            ("app.kubernetes.io/part-of".to_owned(), "shop".to_owned()),
            ("empty".to_owned(), String::new()),
        ]
        .into(),
        annotations: [("example.com/owner".to_owned(), "team payments, on call: #ops".to_owned())].into(),
        ..Default::default()
    }));
    world.create("good", spec).await;
}

/// A schedule that could never rotate is refused at admission, unlike
/// cert-manager#9146: a window on a day no listed month has, a duration that
/// is no duration. Windows that do open, leap days included, pass.
#[tokio::test]
async fn schedules_that_could_never_rotate_are_rejected_at_admission() {
    let world = World::prepare("schedule-admission").await;
    let with = |every: &str, start: &str, duration: &str| {
        let mut spec = world.spec();
        spec.schedule = Some(Box::new(RotationSchedule {
            every: every.into(),
            windows: vec![MaintenanceWindow { start: start.into(), duration: duration.into() }],
            time_zone: Some("Europe/Berlin".into()),
        }));
        spec
    };
    let never = "never matches a date";
    for (every, start, duration, expected) in [
        ("720h", "0 2 30 2 *", "4h", never),
        ("720h", "0 2 31 4,6,9,11 *", "4h", never),
        ("720h", "0 2 30-31 feb *", "4h", never),
        ("720h", "0 2 * *", "4h", "five fields"),
        ("720h", "0  2 * * 6", "4h", "five fields"),
        ("30s", "0 2 * * 6", "4h", "spec.schedule.every"),
        ("30d", "0 2 * * 6", "4h", "spec.schedule.every"),
        ("720h", "0 2 * * 6", "0m", "windows[].duration"),
    ] {
        let resource = RedisPasswordRotation::new("bad", with(every, start, duration));
        let err = world.resources().create(&Default::default(), &resource).await.expect_err("rejected");
        assert!(err.to_string().contains(expected), "{every} {start:?} {duration}: {err}");
    }
    for (i, start) in
        ["0 2 * * 6", "0 2 29 2 *", "0 2 31 2 mon", "*/15 1-4 * * sat,sun"].into_iter().enumerate()
    {
        world.create(&format!("good-{i}"), with("1h30m", start, "4h")).await;
    }
}

#[tokio::test]
async fn kubectl_explain_teaches_every_field() {
    let client = support::admin_client().await;
    support::install_crds(&client, &committed_crds()).await;
    // A fresh discovery cache: one from before the CRD existed would not know `rpr`.
    let cache = std::env::temp_dir().join(format!("kubectl-cache-{}", uuid::Uuid::new_v4().simple()));
    let cache = cache.to_str().expect("utf-8 path");
    for (field, expected) in [
        ("rpr.spec.rotation", "resets the"),
        ("rpr.spec.credentialsSecretRef", "read/write key"),
        ("rpr.spec.deletionPolicy", "Retain"),
        ("rpr.status.pendingRotation", "before the password reset"),
        ("rpr.spec.rolloutRestart", "kubectl rollout"),
        ("rpr.spec.rolloutRestart.kind", "StatefulSet"),
        ("rpr.status.consumersFingerprint", "restart is owed"),
        ("rpr.spec.suspend", "no call to Upstash"),
        ("rpr.spec.secretTemplate.data", "InvalidTemplate"),
        ("rpr.spec.secretTemplate.mergeDefaults", "default keys"),
        ("rpr.spec.schedule", "GitOps"),
        ("rpr.spec.schedule.every", "720h"),
        ("rpr.spec.schedule.windows", "Maintenance windows"),
        ("rpr.spec.schedule.windows.start", "every Saturday at 02:00"),
        ("rpr.spec.schedule.windows.duration", "not cut off"),
        ("rpr.spec.schedule.timeZone", "daylight saving"),
        ("rpr.status.nextRotationTime", "next maintenance window"),
        ("rpr.status.scheduledRotations", "scheduled-rotation"),
        ("rpr.status.history", "newest first"),
        ("rpr.status.history.trigger", "changed"),
        ("rpr.status.history.recovered", "without a second reset"),
        ("rpr.status.history.fingerprint", "not"),
        ("rpr.spec.verify", "PING"),
        ("rpr.spec.accountRef", "platform"),
        ("rpr.spec.accountRef.kind", "ClusterUpstashAccount"),
        ("upstashaccount.spec.credentialsSecretRef", "read/write key"),
        ("clusterupstashaccount.spec.credentialsSecretRef", "cluster resource namespace"),
        ("clusterupstashaccount.spec.allowedNamespaces", "AccountNotAllowed"),
        ("clusterupstashaccount.spec.allowedNamespaces.selector", "every namespace"),
        ("clusterupstashaccount.status.resources", "namespace/name"),
        ("upstashaccount.status.conditions", "read-only key"),
        ("upstashaccount.status.validatedSecretVersion", "checked again"),
    ] {
        let out = std::process::Command::new("kubectl")
            .args(["explain", field, "--cache-dir", cache])
            .output()
            .expect("kubectl on PATH");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "kubectl explain {field}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(text.contains(expected), "kubectl explain {field}:\n{text}");
    }
    let _ = std::fs::remove_dir_all(cache);
}

#[tokio::test]
async fn every_example_passes_a_server_side_dry_run() {
    let client = support::admin_client().await;
    support::install_crds(&client, &committed_crds()).await;
    let ns = support::TestNamespace::new(&client, "examples").await;
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).expect("examples/") {
        let path = entry.expect("entry").path();
        let manifests = std::fs::read_to_string(&path).expect("readable");
        let out = support::tools::server_dry_run(Some(&ns.name), &manifests);
        assert!(out.status.success(), "{}: {}", path.display(), support::tools::text(&out));
        checked += 1;
    }
    assert!(checked >= 4, "found {checked} examples");
}

#[tokio::test]
async fn a_resource_names_exactly_one_key_source_and_a_cluster_account_some_namespaces() {
    use kube::api::PostParams;
    use upstash_rotator::account::{
        AccountKind, AccountRef, AllowedNamespaces, ClusterUpstashAccount, ClusterUpstashAccountSpec,
    };
    let world = World::prepare("cel-account").await;
    fn refused<T: std::fmt::Debug>(result: Result<T, kube::Error>, expected: &str) {
        match result {
            Err(kube::Error::Api(status)) => {
                assert_eq!(status.code, 422, "{status:?}");
                assert!(status.message.contains(expected), "apiserver message: {}", status.message);
            }
            other => panic!("expected a validation error, got {other:?}"),
        }
    }
    let account = AccountRef { kind: AccountKind::ClusterUpstashAccount, name: "shared".into() };
    let mut both = world.spec();
    both.account_ref = Some(account.clone());
    let create = |name: &str, spec| RedisPasswordRotation::new(name, spec);
    refused(
        world.resources().create(&PostParams::default(), &create("both", both)).await,
        "set exactly one of spec.credentialsSecretRef and spec.accountRef",
    );
    let mut neither = world.spec();
    neither.credentials_secret_ref = None;
    refused(
        world.resources().create(&PostParams::default(), &create("neither", neither.clone())).await,
        "set exactly one of spec.credentialsSecretRef and spec.accountRef",
    );
    neither.account_ref = Some(account);
    world
        .resources()
        .create(&PostParams::default(), &create("account", neither))
        .await
        .expect("accountRef alone");

    let accounts: kube::Api<ClusterUpstashAccount> = kube::Api::all(world.client.clone());
    let spec = ClusterUpstashAccountSpec {
        credentials_secret_ref: upstash_rotator::crd::CredentialsSecretRef::named("key"),
        allowed_namespaces: AllowedNamespaces::default(),
    };
    let name = format!("{}-nobody", world.ns.name);
    refused(
        accounts.create(&PostParams::default(), &ClusterUpstashAccount::new(&name, spec)).await,
        "allowedNamespaces needs names or a selector",
    );
}
