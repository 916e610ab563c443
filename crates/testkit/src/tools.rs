//! The real `helm` and `kubectl` built by hack/testenv (on PATH in `make test`).

use std::{
    io::Write as _,
    process::{Command, Output, Stdio},
};

pub const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../charts/upstash-rotator");

fn run(program: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program} on PATH (make test puts it there): {e}"));
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input.as_bytes()).expect("write stdin");
    }
    child.wait_with_output().expect("wait")
}

pub fn helm(args: &[&str]) -> Output {
    run("helm", args, None)
}

pub fn kubectl(args: &[&str], stdin: Option<&str>) -> Output {
    run("kubectl", args, stdin)
}

/// `kubectl apply --server-side --dry-run=server` of `manifests`: everything
/// the apiserver checks (schema, CEL, admission), nothing stored. Objects
/// without a namespace go to `namespace`, if given.
pub fn server_dry_run(namespace: Option<&str>, manifests: &str) -> Output {
    let mut args = vec![
        "apply",
        "--server-side",
        "--force-conflicts",
        "--dry-run=server",
        "--field-manager=dry-run-test",
    ];
    args.extend(namespace.iter().flat_map(|ns| ["-n", ns]));
    args.extend(["-f", "-"]);
    kubectl(&args, Some(manifests))
}

pub fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// `helm template` with `--kube-version` (offline rendering assumes 1.20 otherwise).
pub fn render(namespace: &str, sets: &[&str]) -> String {
    let mut args = vec!["template", "rel", CHART, "--namespace", namespace, "--kube-version", "1.36.3"];
    for set in sets {
        args.extend(["--set", set]);
    }
    let out = helm(&args);
    assert!(out.status.success(), "helm template {sets:?}: {}", text(&out));
    String::from_utf8(out.stdout).expect("utf-8")
}
