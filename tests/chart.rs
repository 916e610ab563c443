//! The Helm chart: lint, strict values, server-side dry run of everything it
//! renders, a real install and uninstall, and a pod spec the `restricted`
//! Pod Security Standard admits.

use testkit as support;

use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{ConfigMap, Namespace, Pod, ServiceAccount},
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{
    Api,
    api::{ObjectMeta, Patch, PatchParams, PostParams},
};
use serde_json::json;
use support::{
    TestNamespace, admin_client, install_crds,
    operator::committed_crds,
    tools::{CHART, helm, render, server_dry_run, text},
};

#[test]
fn chart_follows_the_crate_version_and_the_generated_crd() {
    let chart = std::fs::read_to_string(format!("{CHART}/Chart.yaml")).expect("Chart.yaml");
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        chart.contains(&format!("\nversion: {version}\n")),
        "Chart version follows Cargo.toml ({version})"
    );
    assert!(
        chart.contains(&format!("\nappVersion: \"{version}\"\n")),
        "appVersion follows Cargo.toml ({version})"
    );
    for (file, generated) in upstash_rotator::cli::crds_yaml().expect("render") {
        let copy = std::fs::read_to_string(format!("{CHART}/crd/{file}")).unwrap_or_default();
        assert!(copy == generated, "the chart's crd/{file} is stale: run `make crds`");
    }
}

#[test]
fn lint_passes_and_unknown_or_bad_values_are_rejected() {
    let lint = helm(&["lint", "--strict", CHART]);
    assert!(lint.status.success(), "{}", text(&lint));
    for (set, expected) in [
        ("replica=2", "additional properties"),
        ("image.digest=latest", "/image/digest"),
        ("logFormat=xml", "/logFormat"),
        ("upstashApiUrl=https://me:key@api.upstash.com", "/upstashApiUrl"),
        ("upstash.caBundle=not-a-certificate", "/upstash/caBundle"),
    ] {
        let out = helm(&["template", "rel", CHART, "--set", set]);
        assert!(!out.status.success(), "{set} must be rejected");
        assert!(text(&out).contains(expected), "{set}: {}", text(&out));
    }
    // Combinations that would risk a second reset or a cut-short one.
    for (sets, expected) in [
        (vec!["leaderElection.enabled=false", "replicas=2"], "needs leaderElection.enabled"),
        (vec!["requestTimeoutSeconds=60"], "at least requestTimeoutSeconds + 5"),
    ] {
        let mut args = vec!["template", "rel", CHART, "--kube-version", "1.36.3"];
        for set in &sets {
            args.extend(["--set", set]);
        }
        let out = helm(&args);
        assert!(!out.status.success(), "{sets:?} must be rejected");
        assert!(text(&out).contains(expected), "{sets:?}: {}", text(&out));
    }
    // A tag of digits only (a `git describe` short hash can be one): as a
    // string it renders verbatim, never as a number such as 1.671504e+06.
    let args = ["template", "rel", CHART, "--kube-version", "1.36.3", "--set-string", "image.tag=1671504"];
    let out = helm(&args);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(r#"image: "ghcr.io/upstash-rotator/upstash-rotator:1671504""#),
        "{}",
        text(&out)
    );
}

/// Every variable the chart sets is one `upstash-rotator run` reads: a
/// renamed flag cannot leave the chart setting a variable nobody reads.
#[test]
fn every_env_variable_the_chart_sets_is_read_by_the_run_command() {
    use clap::CommandFactory as _;
    let cli = upstash_rotator::cli::Cli::command();
    let run = cli.find_subcommand("run").expect("run subcommand");
    let read: Vec<String> =
        run.get_arguments().filter_map(|a| a.get_env()).map(|e| e.to_string_lossy().into_owned()).collect();
    // Read by the log filter, not by a flag.
    let also_read = ["RUST_LOG"];
    let sets = ["allowInsecureUpstashUrl=true", "leaderElection.enabled=true"];
    for manifest in render("default", &sets).split("\n---") {
        let Ok(deployment) = serde_saphyr::from_str::<Deployment>(manifest) else { continue };
        let Some(spec) = deployment.spec.and_then(|s| s.template.spec) else { continue };
        let env = spec.containers.iter().flat_map(|c| c.env.clone().unwrap_or_default());
        let names: Vec<String> = env.map(|e| e.name).collect();
        assert!(names.len() >= 10, "the Deployment sets the operator's settings: {names:?}");
        for name in names {
            assert!(
                read.contains(&name) || also_read.contains(&name.as_str()),
                "the chart sets {name}, which `upstash-rotator run` does not read (it reads {read:?})"
            );
        }
        return;
    }
    panic!("the chart renders no Deployment");
}

/// The manifests `helm template` renders with `--set-file upstash.caBundle=<pem>`.
fn render_with_ca_bundle(namespace: &str, pem: Option<&str>) -> String {
    let file = tempfile::NamedTempFile::new().expect("temp file");
    let mut args = vec!["template", "rel", CHART, "--namespace", namespace, "--kube-version", "1.36.3"];
    let set_file;
    if let Some(pem) = pem {
        std::fs::write(file.path(), pem).expect("write");
        set_file = format!("upstash.caBundle={}", file.path().display());
        args.extend(["--set-file", &set_file]);
    }
    let out = helm(&args);
    assert!(out.status.success(), "helm template: {}", text(&out));
    String::from_utf8(out.stdout).expect("utf-8")
}

fn deployment_of(manifests: &str) -> Deployment {
    manifests
        .split("\n---")
        .find_map(|m| serde_saphyr::from_str::<Deployment>(m).ok().filter(|d| d.spec.is_some()))
        .expect("a Deployment")
}

#[test]
fn a_ca_bundle_becomes_a_read_only_mount_named_by_ca_file() {
    let ca = support::tls::TestCa::new(&[]);
    let manifests = render_with_ca_bundle("default", Some(ca.ca_pem()));
    let config_map = manifests
        .split("\n---")
        .find_map(|m| serde_saphyr::from_str::<ConfigMap>(m).ok().filter(|c| c.data.is_some()))
        .expect("a ConfigMap");
    let name = config_map.metadata.name.clone().expect("name");
    assert_eq!(config_map.data.expect("data")["ca.pem"].trim(), ca.ca_pem().trim(), "the bundle, unchanged");

    let deployment = deployment_of(&manifests);
    let template = deployment.spec.expect("spec").template;
    let pod = template.spec.expect("pod spec");
    let container = &pod.containers[0];
    let args = container.args.clone().unwrap_or_default();
    assert!(args.contains(&"--ca-file=/etc/upstash-rotator/ca/ca.pem".to_owned()), "{args:?}");
    let mount = container.volume_mounts.as_ref().and_then(|m| m.first()).expect("a mount");
    assert_eq!((mount.mount_path.as_str(), mount.read_only), ("/etc/upstash-rotator/ca", Some(true)));
    let volume = pod.volumes.as_ref().and_then(|v| v.iter().find(|v| v.name == mount.name)).expect("volume");
    assert_eq!(volume.config_map.as_ref().map(|c| c.name.as_str()), Some(name.as_str()));

    // A new bundle changes the pod template, so the pods roll.
    let checksum = |m: &str| {
        let template = deployment_of(m).spec.expect("spec").template;
        template.metadata.and_then(|m| m.annotations).and_then(|a| a.get("checksum/ca-bundle").cloned())
    };
    let other = support::tls::TestCa::new(&[]);
    let first = checksum(&manifests).expect("checksum annotation");
    assert_ne!(Some(first), checksum(&render_with_ca_bundle("default", Some(other.ca_pem()))));

    // Without a bundle there is nothing of it.
    let plain = render_with_ca_bundle("default", None);
    assert!(!plain.contains("kind: ConfigMap"), "{plain}");
    for absent in ["--ca-file", "volumeMounts", "volumes:", "checksum/ca-bundle"] {
        assert!(!plain.contains(absent), "{absent} rendered without a bundle");
    }
}

#[test]
fn without_election_the_old_pod_stops_before_the_new_one_starts() {
    let single = render("default", &["leaderElection.enabled=false"]);
    assert!(single.contains("type: Recreate"), "no rolling update without election");
    let elected = render("default", &[]);
    assert!(!elected.contains("type: Recreate"), "with election a rolling update is safe");
}

#[tokio::test]
async fn rendered_manifests_pass_a_server_side_dry_run() {
    let client = admin_client().await;
    install_crds(&client, &committed_crds()).await;
    let release_ns = TestNamespace::new(&client, "chart").await;
    let watched = TestNamespace::new(&client, "chart-watched").await;
    let watch_list = format!("watchNamespaces={{{}}}", watched.name);
    let ca = support::tls::TestCa::new(&[]);
    let with_bundle = render_with_ca_bundle(&release_ns.name, Some(ca.ca_pem()));
    let out = server_dry_run(None, &with_bundle);
    assert!(out.status.success(), "dry run with upstash.caBundle: {}", text(&out));
    for sets in [
        vec![],
        vec![watch_list.as_str(), "replicas=2"],
        vec![watch_list.as_str(), "clusterAccounts.enabled=false"],
        vec!["crds.install=false", "leaderElection.enabled=false", "metrics.service.enabled=false"],
        vec!["image.digest=sha256:0000000000000000000000000000000000000000000000000000000000000000"],
    ] {
        let manifests = render(&release_ns.name, &sets);
        let out = server_dry_run(None, &manifests);
        assert!(out.status.success(), "dry run with {sets:?}: {}", text(&out));
        let cluster_roles = manifests.matches("\nkind: ClusterRole\n").count();
        if sets.contains(&"replicas=2") {
            assert!(manifests.contains("kind: PodDisruptionBudget"));
            // Namespaced: Roles, and cluster-wide only what ClusterUpstashAccounts need.
            assert!(manifests.contains("kind: Role\n") && cluster_roles == 1, "{manifests}");
            assert!(manifests.contains("-cluster-accounts\n"), "{manifests}");
            assert!(manifests.contains("-cluster-account-secrets\n"), "a Role for the account Secrets");
            assert!(manifests.contains(&format!("--namespace={}", watched.name)));
        }
        if sets.contains(&"clusterAccounts.enabled=false") {
            assert_eq!(cluster_roles, 0, "namespaced, without cluster accounts: no cluster-wide right");
            assert!(!manifests.contains("CLUSTER_RESOURCE_NAMESPACE"));
        }
    }
    let keep = render(&release_ns.name, &[]);
    assert_eq!(keep.matches("kind: CustomResourceDefinition").count(), 3, "every CRD is installed");
    assert!(keep.contains("name: CLUSTER_RESOURCE_NAMESPACE"), "cluster accounts are on by default");
    assert!(keep.contains("helm.sh/resource-policy: keep"), "the CRD survives uninstall by default");
}

#[tokio::test]
async fn helm_install_and_uninstall_on_the_real_apiserver() {
    let client = admin_client().await;
    install_crds(&client, &committed_crds()).await;
    let ns = TestNamespace::new(&client, "helm").await;
    let release = format!("r{}", &ns.name[ns.name.len() - 8..]);
    // The CRD is shared by all tests and already installed; the chart's copy is
    // checked by the dry run above.
    let install = helm(&["install", &release, CHART, "-n", &ns.name, "--set", "crds.install=false"]);
    assert!(install.status.success(), "{}", text(&install));
    assert!(text(&install).contains("RedisPasswordRotation"), "NOTES tell what to apply next");
    let fullname = format!("{release}-upstash-rotator");
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    let deployment = deployments.get(&fullname).await.expect("deployment installed");
    let container = &deployment.spec.expect("spec").template.spec.expect("pod spec").containers[0];
    assert_eq!(container.args.as_deref(), Some(&["run".to_owned()][..]));

    let uninstall = helm(&["uninstall", &release, "-n", &ns.name]);
    assert!(uninstall.status.success(), "{}", text(&uninstall));
    assert!(deployments.get_opt(&fullname).await.expect("get").is_none());
    let crds: Api<CustomResourceDefinition> = Api::all(client);
    assert!(crds.get_opt("redispasswordrotations.upstash-rotator.io").await.expect("get").is_some());
}

#[tokio::test]
async fn the_pod_spec_is_admitted_under_the_restricted_pod_security_standard() {
    let client = admin_client().await;
    let ns = TestNamespace::new(&client, "psa").await;
    let label = json!({"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}});
    Api::<Namespace>::all(client.clone())
        .patch(&ns.name, &PatchParams::default(), &Patch::Merge(&label))
        .await
        .expect("label namespace");

    let rendered = helm(&[
        "template",
        "rel",
        CHART,
        "--namespace",
        &ns.name,
        "--kube-version",
        "1.36.3",
        "--show-only",
        "templates/deployment.yaml",
    ]);
    assert!(rendered.status.success(), "{}", text(&rendered));
    let deployment: Deployment =
        serde_saphyr::from_str(&String::from_utf8_lossy(&rendered.stdout)).expect("yaml");
    let template = deployment.spec.expect("spec").template;
    let pod = Pod {
        metadata: ObjectMeta {
            name: Some("operator".into()),
            labels: template.metadata.and_then(|m| m.labels),
            ..Default::default()
        },
        spec: template.spec,
        ..Default::default()
    };
    // The ServiceAccount admission plugin looks up the pod's account, which
    // helm would have created with the Deployment.
    let account =
        pod.spec.as_ref().and_then(|s| s.service_account_name.clone()).expect("the chart names one");
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), &ns.name);
    let sa = ServiceAccount {
        metadata: ObjectMeta { name: Some(account), ..Default::default() },
        ..Default::default()
    };
    accounts.create(&PostParams::default(), &sa).await.expect("create the chart's ServiceAccount");
    let pods: Api<Pod> = Api::namespaced(client, &ns.name);
    let dry_run = PostParams { dry_run: true, ..Default::default() };
    pods.create(&dry_run, &pod).await.expect("the chart's pod is admitted under `restricted`");

    // The namespace really enforces: a pod without the hardening is refused.
    let mut weak = pod.clone();
    if let Some(spec) = weak.spec.as_mut() {
        spec.security_context = None;
        spec.containers[0].security_context = None;
    }
    match pods.create(&dry_run, &weak).await {
        Err(kube::Error::Api(status)) => {
            assert!(status.message.contains("violates PodSecurity"), "{}", status.message)
        }
        other => panic!("a pod without securityContext must be refused, got {other:?}"),
    }
}
