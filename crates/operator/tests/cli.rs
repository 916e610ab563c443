//! The `upstash-rotator` binary: `rotate --wait`, `crd`, and clear errors
//! with distinct exit codes.

use testkit as support;

use std::process::Output;

use support::{
    sim::{API_KEY, EMAIL},
    world::World,
};
use upstash_rotator::{conditions::Reason, crd::RotationSchedule};

async fn rotator(args: &[&str], kubeconfig: Option<&str>) -> Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_upstash-rotator"));
    cmd.args(args);
    if let Some(path) = kubeconfig {
        cmd.env("KUBECONFIG", path);
    }
    tokio::time::timeout(std::time::Duration::from_secs(120), cmd.output())
        .await
        .expect("finishes")
        .expect("runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn rotate_wait_reports_success_and_failure() {
    let world = World::new("cli").await;
    world.create("cache", world.spec()).await;
    world.wait_for("cache", Reason::Synced.as_str(), |_| true).await;

    let ok = rotator(&["rotate", "cache", "-n", &world.ns.name, "--wait", "--timeout", "60"], None).await;
    assert!(ok.status.success(), "stdout: {} stderr: {}", text(&ok.stdout), text(&ok.stderr));
    assert!(text(&ok.stdout).contains("rotation 1 applied"), "{}", text(&ok.stdout));
    assert_eq!(world.resets().await, 1);
    // The counter raised by a user's command is not the operator's write.
    let raised = world.resources().get("cache").await.expect("resource");
    assert!(support::managers(&raised.metadata, "").contains(&"upstash-rotator-cli".to_owned()));

    world.put_api_credentials(EMAIL, "wrong").await;
    let failed = rotator(&["rotate", "cache", "-n", &world.ns.name, "--wait", "--timeout", "60"], None).await;
    assert_eq!(failed.status.code(), Some(1), "stdout: {}", text(&failed.stdout));
    assert!(text(&failed.stderr).contains(Reason::InvalidCredentials.as_str()), "{}", text(&failed.stderr));
    world.put_api_credentials(EMAIL, API_KEY).await;
    world.wait_applied("cache", 2).await;

    let missing = rotator(&["rotate", "nope", "-n", &world.ns.name], None).await;
    assert_eq!(missing.status.code(), Some(4));
    assert!(text(&missing.stderr).contains("not found"), "{}", text(&missing.stderr));
}

/// `status` lists resources in words, and the same binary installed as
/// `kubectl-upstash` is a kubectl plugin: `kubectl upstash rotate --wait`.
#[tokio::test]
async fn status_lists_resources_and_kubectl_runs_the_binary_as_its_upstash_plugin() {
    let world = World::new("cli-status").await;
    let mut spec = world.spec();
    spec.schedule =
        Some(Box::new(RotationSchedule { every: "720h".into(), windows: Vec::new(), time_zone: None }));
    world.create("cache", spec).await;
    world.wait_applied("cache", 0).await;

    let listed = rotator(&["status", "-n", &world.ns.name], None).await;
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    let table = text(&listed.stdout);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("NAME") && lines[0].contains("NEXT ROTATION"), "{table}");
    let row: Vec<&str> = lines[1].split("   ").map(str::trim).filter(|c| !c.is_empty()).collect();
    assert_eq!(row[..4], ["cache", "Synced", "0/0", "-"], "{table}");
    assert_eq!(row[4], "in 29d", "due 30 days after the creation: {table}");

    // kubectl looks for plugins on PATH by file name.
    let plugins = tempfile::tempdir().expect("temp dir");
    let plugin = plugins.path().join(upstash_rotator::cli::PLUGIN);
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_upstash-rotator"), &plugin).expect("symlink");
    let path = format!("{}:{}", plugins.path().display(), std::env::var("PATH").unwrap_or_default());
    let kubectl = |args: &[&str]| {
        let mut cmd = tokio::process::Command::new("kubectl");
        cmd.args(args).env("PATH", &path);
        async move {
            tokio::time::timeout(std::time::Duration::from_secs(120), cmd.output())
                .await
                .expect("finishes")
                .expect("kubectl on PATH")
        }
    };
    let found = kubectl(&["plugin", "list"]).await;
    assert!(text(&found.stdout).contains(upstash_rotator::cli::PLUGIN), "{}", text(&found.stderr));
    let help = kubectl(&["upstash", "--help"]).await;
    assert!(text(&help.stdout).contains("Usage: kubectl upstash"), "{}", text(&help.stdout));
    let rotated =
        kubectl(&["upstash", "rotate", "cache", "-n", &world.ns.name, "--wait", "--timeout", "60"]).await;
    assert!(rotated.status.success(), "{}{}", text(&rotated.stdout), text(&rotated.stderr));
    assert!(text(&rotated.stdout).contains("rotation 1 applied"), "{}", text(&rotated.stdout));
    let all = kubectl(&["upstash", "status", "-A"]).await;
    let table = text(&all.stdout);
    assert!(table.starts_with("NAMESPACE"), "{table}");
    let line = table.lines().find(|l| l.starts_with(&world.ns.name)).unwrap_or_default();
    assert!(line.contains("cache") && line.contains("1/1") && line.contains("Verified"), "{table}");
}

#[tokio::test]
async fn unreachable_cluster_and_bad_flags_are_clear_errors() {
    let dir = std::env::temp_dir().join(format!("rotator-cli-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("dir");
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: \"https://127.0.0.1:1\"}\n\
         users:\n- name: u\n  user: {token: t}\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\ncurrent-context: x\n",
    )
    .expect("write");
    let unreachable = rotator(&["rotate", "cache", "-n", "default"], kubeconfig.to_str()).await;
    assert_eq!(unreachable.status.code(), Some(3), "{}", text(&unreachable.stderr));
    assert!(text(&unreachable.stderr).contains("cannot read"), "{}", text(&unreachable.stderr));

    let bad_url = rotator(&["run", "--upstash-api-url", "ftp://example"], None).await;
    assert_eq!(bad_url.status.code(), Some(2));
    assert!(text(&bad_url.stderr).contains("https URL"), "{}", text(&bad_url.stderr));
    let plain_http = rotator(&["run", "--upstash-api-url", "http://127.0.0.1:1"], None).await;
    assert_eq!(plain_http.status.code(), Some(2), "plain HTTP needs the explicit flag");
    assert!(
        text(&plain_http.stderr).contains("--allow-insecure-upstash-url"),
        "{}",
        text(&plain_http.stderr)
    );
    let with_key = rotator(&["run", "--upstash-api-url", "https://me:secret@api.upstash.com"], None).await;
    assert_eq!(with_key.status.code(), Some(2));
    assert!(!text(&with_key.stderr).contains("me:secret@"), "the rejected URL is not echoed with its key");

    let cut_short = rotator(
        &[
            "run",
            "--allow-insecure-upstash-url",
            "--upstash-api-url",
            "http://127.0.0.1:1",
            "--request-timeout",
            "30",
            "--shutdown-timeout",
            "10",
        ],
        None,
    )
    .await;
    assert_eq!(cut_short.status.code(), Some(2), "SIGTERM must never cut a reset short");
    assert!(text(&cut_short.stderr).contains("--shutdown-timeout"), "{}", text(&cut_short.stderr));

    let crd = rotator(&["crd"], None).await;
    assert!(crd.status.success());
    assert!(text(&crd.stdout).contains("kind: CustomResourceDefinition"));
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn unusable_ca_files_stop_the_operator_at_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let text_file = dir.path().join("notes.txt");
    std::fs::write(&text_file, "not a certificate\n").expect("write");
    let not_x509 = dir.path().join("broken.pem");
    std::fs::write(&not_x509, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
        .expect("write");
    let (text_file, not_x509) = (text_file.to_str().expect("utf-8"), not_x509.to_str().expect("utf-8"));
    for (path, expected) in [
        ("/nonexistent/ca.pem", "--ca-file /nonexistent/ca.pem: cannot read it"),
        (text_file, "no BEGIN CERTIFICATE block"),
        (not_x509, "certificate 1 cannot be a trust anchor"),
    ] {
        let out = rotator(&["run", "--ca-file", path], None).await;
        assert_eq!(out.status.code(), Some(2), "{path}: {}", text(&out.stderr));
        assert!(text(&out.stderr).contains(expected), "{path}: {}", text(&out.stderr));
        assert!(!text(&out.stderr).contains("panicked"), "{}", text(&out.stderr));
    }
    // The chart passes the flag; UPSTASH_CA_FILE is the same setting.
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_upstash-rotator"));
    cmd.arg("run").env("UPSTASH_CA_FILE", "/nonexistent/ca.pem");
    let out = tokio::time::timeout(std::time::Duration::from_secs(60), cmd.output())
        .await
        .expect("finishes")
        .expect("runs");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("--ca-file /nonexistent/ca.pem"), "{}", text(&out.stderr));
}

#[test]
fn a_bundle_loads_every_certificate_and_ignores_other_blocks() {
    let (first, second) = (support::tls::TestCa::new(&[]), support::tls::TestCa::new(&[]));
    let key = std::fs::read_to_string(first.key_path()).expect("key");
    let bundle = format!("# two CAs and a stray key\n{}{key}{}", first.ca_pem(), second.ca_pem());
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), bundle).expect("write");
    let roots = upstash_rotator::trust::load_ca_file(file.path()).expect("a valid bundle");
    assert_eq!(roots.len(), 2);
}
