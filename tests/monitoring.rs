//! The chart's alerts and dashboard (charts/upstash-rotator/monitoring): off
//! by default, rendered as they are in the repository when asked, querying
//! only metrics the operator exports, and checked by promtool (`check
//! rules` and the alert unit tests of alerts_test.yaml).

use testkit as support;

use std::collections::BTreeSet;

use serde_json::Value;
use support::{
    TestNamespace, admin_client, install_crds,
    operator::committed_crds,
    tools::{CHART, render, server_dry_run, text},
};

fn monitoring_file(name: &str) -> String {
    std::fs::read_to_string(format!("{CHART}/monitoring/{name}")).expect("monitoring file")
}

/// Every `upstash_rotator_*` series name a query text mentions.
fn series_in(queries: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = queries;
    while let Some(at) = rest.find("upstash_rotator_") {
        let tail = &rest[at..];
        let end = tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(tail.len());
        names.insert(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

/// The series the operator's registry exposes, with the suffixes the text
/// format gives counters and histograms.
fn exported_series() -> BTreeSet<String> {
    use upstash_rotator::metrics::{KindLabel, Metrics, ReasonLabel, ResultLabel};
    // A family shows in the text format once it has a series: one each.
    let metrics = std::sync::Arc::new(Metrics::default());
    metrics.rotated("ns", "cache", "rotated", Some(std::time::Duration::from_secs(1)), 1);
    metrics.scheduled("ns", "cache", Some(2));
    metrics.upstash_request("get", Some(200));
    metrics.kubernetes_request("get", "secrets".into(), Some(200));
    metrics.reconcile_errors.get_or_create(&ReasonLabel { reason: "Synced" }).inc();
    metrics.verifications.get_or_create(&ResultLabel { result: "verified" }).inc();
    metrics.consumer_restarts.get_or_create(&KindLabel { kind: "Deployment" }).inc();
    metrics.measure_reconcile().ok();
    let text = metrics.render().expect("render");
    let mut names = BTreeSet::new();
    for line in text.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
        let mut words = line.split_whitespace();
        let (Some(name), Some(kind)) = (words.next(), words.next()) else { continue };
        let suffixes: &[&str] = match kind {
            "counter" => &["_total"],
            "histogram" => &["_bucket", "_sum", "_count"],
            _ => &[""],
        };
        names.extend(suffixes.iter().map(|s| format!("{name}{s}")));
    }
    names
}

fn yaml(text: &str) -> Value {
    serde_saphyr::from_str(text).expect("YAML")
}

#[test]
fn alerts_and_dashboard_query_only_metrics_the_operator_exports() {
    let exported = exported_series();
    assert!(exported.contains("upstash_rotator_next_rotation_timestamp_seconds"), "{exported:?}");
    let alerts = yaml(&monitoring_file("alerts.yaml"));
    let exprs: Vec<String> = alerts["groups"][0]["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .map(|r| r["expr"].as_str().expect("expr").to_owned())
        .collect();
    assert_eq!(exprs.len(), 4, "failed, needs attention, overdue, not verified");
    let dashboard: Value = serde_json::from_str(&monitoring_file("dashboard.json")).expect("dashboard JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    let targets: Vec<String> = panels
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .map(|t| t["expr"].as_str().expect("expr").to_owned())
        .collect();
    for (what, queries) in [("alerts", exprs.join("\n")), ("dashboard", targets.join("\n"))] {
        let used = series_in(&queries);
        assert!(!used.is_empty(), "{what}");
        let unknown: Vec<_> = used.difference(&exported).collect();
        assert!(unknown.is_empty(), "{what} query series the operator does not export: {unknown:?}");
    }
}

#[tokio::test]
async fn the_chart_renders_rules_and_dashboard_only_when_asked() {
    let plain = render("default", &[]);
    assert!(
        !plain.contains("kind: PrometheusRule") && !plain.contains("grafana_dashboard"),
        "off by default"
    );

    let both =
        render("default", &["metrics.prometheusRule.enabled=true", "metrics.grafanaDashboard.enabled=true"]);
    let docs: Vec<Value> = both.split("\n---").map(yaml).filter(|d| !d.is_null()).collect();
    let rule = docs.iter().find(|d| d["kind"] == "PrometheusRule").expect("a PrometheusRule");
    assert_eq!(rule["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(rule["spec"], yaml(&monitoring_file("alerts.yaml")), "the rule file as it is");
    let dashboard = docs
        .iter()
        .find(|d| d["kind"] == "ConfigMap" && d["metadata"]["labels"]["grafana_dashboard"] == "1")
        .expect("a dashboard ConfigMap");
    let json = dashboard["data"]["upstash-rotator.json"].as_str().expect("dashboard data");
    let file: Value = serde_json::from_str(&monitoring_file("dashboard.json")).expect("JSON");
    assert_eq!(serde_json::from_str::<Value>(json).expect("JSON"), file);

    // The ConfigMap is admitted by the real apiserver (the PrometheusRule
    // needs the Prometheus Operator's CRD, which is not installed here).
    let client = admin_client().await;
    install_crds(&client, &committed_crds()).await;
    let ns = TestNamespace::new(&client, "dashboards").await;
    let with_dashboard = render(&ns.name, &["metrics.grafanaDashboard.enabled=true"]);
    let out = server_dry_run(None, &with_dashboard);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn promtool_checks_the_rules_and_their_unit_tests_pass() {
    let dir = format!("{CHART}/monitoring");
    for args in [&["check", "rules", "alerts.yaml"][..], &["test", "rules", "alerts_test.yaml"]] {
        let out = std::process::Command::new("promtool")
            .args(args)
            .current_dir(&dir)
            .output()
            .expect("promtool on PATH (hack/testenv builds it; make test puts it there)");
        assert!(
            out.status.success(),
            "promtool {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
