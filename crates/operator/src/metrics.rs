//! Prometheus metrics. Labels carry routes, reasons and resource names,
//! never credentials.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: &'static str,
    /// HTTP status, or `error` when no answer came.
    pub status: String,
}

/// A request to the Kubernetes API, named as the apiserver's own
/// `apiserver_request_total` names it.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KubernetesRequestLabels {
    pub verb: &'static str,
    /// Kind and subresource: `secrets`, `redispasswordrotations/status`.
    pub resource: String,
    /// HTTP status, or `error` when no answer came.
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResourceLabels {
    pub namespace: String,
    pub name: String,
}

/// Every metric the operator exports.
pub struct Metrics {
    pub registry: Registry,
    pub reconciles: Family<ResultLabel, Counter>,
    pub reconcile_errors: Family<ReasonLabel, Counter>,
    pub reconcile_duration: Histogram,
    pub rotations: Family<ResultLabel, Counter>,
    pub rotation_duration: Histogram,
    pub upstash_requests: Family<RequestLabels, Counter>,
    pub kubernetes_requests: Family<KubernetesRequestLabels, Counter>,
    pub last_rotation: Family<ResourceLabels, Gauge>,
    pub consumer_restarts: Family<KindLabel, Counter>,
    pub verifications: Family<ResultLabel, Counter>,
    pub next_rotation: Family<ResourceLabels, Gauge>,
    pub events_dropped: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("upstash_rotator");
        let reconciles = Family::<ResultLabel, Counter>::default();
        registry.register("reconciles", "Reconciles by result (ok, error)", reconciles.clone());
        let reconcile_errors = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "reconcile_errors",
            "Failed reconciles by condition reason",
            reconcile_errors.clone(),
        );
        let reconcile_duration = Histogram::new([0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]);
        registry.register(
            "reconcile_duration_seconds",
            "Duration of one reconcile",
            reconcile_duration.clone(),
        );
        let rotations = Family::<ResultLabel, Counter>::default();
        registry.register("rotations", "Rotations by result (rotated, recovered, failed)", rotations.clone());
        let rotation_duration = Histogram::new([0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0]);
        registry.register(
            "rotation_duration_seconds",
            "From recording the intent to the Secret holding the new credentials",
            rotation_duration.clone(),
        );
        let upstash_requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "upstash_requests",
            "Upstash API requests by route and status",
            upstash_requests.clone(),
        );
        let kubernetes_requests = Family::<KubernetesRequestLabels, Counter>::default();
        registry.register(
            "kubernetes_requests",
            "Requests of the operator to the Kubernetes API by verb, resource and status code",
            kubernetes_requests.clone(),
        );
        let last_rotation = Family::<ResourceLabels, Gauge>::default();
        registry.register(
            "last_rotation_timestamp_seconds",
            "Unix time of the last successful rotation, per resource",
            last_rotation.clone(),
        );
        let consumer_restarts = Family::<KindLabel, Counter>::default();
        registry.register(
            "consumer_restarts",
            "Workloads of spec.rolloutRestart restarted for new credentials, by kind",
            consumer_restarts.clone(),
        );
        let verifications = Family::<ResultLabel, Counter>::default();
        registry.register(
            "verifications",
            "Checks of the credentials after a rotation, by result (verified, failed, unavailable)",
            verifications.clone(),
        );
        let next_rotation = Family::<ResourceLabels, Gauge>::default();
        registry.register(
            "next_rotation_timestamp_seconds",
            "Unix time the next scheduled rotation may start (spec.schedule), per resource",
            next_rotation.clone(),
        );
        let events_dropped = Counter::default();
        registry.register(
            "events_dropped",
            "Events not published because the queue of reports was full (the status records every rotation)",
            events_dropped.clone(),
        );
        Self {
            registry,
            reconciles,
            reconcile_errors,
            reconcile_duration,
            rotations,
            rotation_duration,
            upstash_requests,
            kubernetes_requests,
            last_rotation,
            consumer_restarts,
            verifications,
            next_rotation,
            events_dropped,
        }
    }
}

/// An HTTP status as a label value; `error` when no answer came.
fn status_label(status: Option<u16>) -> String {
    status.map_or_else(|| "error".to_owned(), |s| s.to_string())
}

impl Metrics {
    pub fn upstash_request(&self, route: &'static str, status: Option<u16>) {
        let status = status_label(status);
        self.upstash_requests.get_or_create(&RequestLabels { route, status }).inc();
    }

    pub fn kubernetes_request(&self, verb: &'static str, resource: String, status: Option<u16>) {
        let code = status_label(status);
        self.kubernetes_requests.get_or_create(&KubernetesRequestLabels { verb, resource, code }).inc();
    }

    pub fn rotated(
        &self,
        namespace: &str,
        name: &str,
        result: &'static str,
        took: Option<Duration>,
        at_unix: i64,
    ) {
        self.rotations.get_or_create(&ResultLabel { result }).inc();
        if let Some(took) = took {
            self.rotation_duration.observe(took.as_secs_f64());
        }
        let labels = ResourceLabels { namespace: namespace.to_owned(), name: name.to_owned() };
        self.last_rotation.get_or_create(&labels).set(at_unix);
    }

    /// Starts timing one reconcile. The guard records its duration and
    /// result when dropped, on every path out of the reconcile (a
    /// cancelled one counts as an error unless marked `ok`).
    pub fn measure_reconcile(self: &Arc<Self>) -> ReconcileMeasure {
        ReconcileMeasure { metrics: self.clone(), started: Instant::now(), result: "error" }
    }

    /// When the next scheduled rotation of a resource may start (`None`:
    /// it has no schedule).
    pub fn scheduled(&self, namespace: &str, name: &str, next_unix: Option<i64>) {
        let labels = ResourceLabels { namespace: namespace.to_owned(), name: name.to_owned() };
        match next_unix {
            Some(at) => {
                self.next_rotation.get_or_create(&labels).set(at);
            }
            None => {
                self.next_rotation.remove(&labels);
            }
        }
    }

    /// Drops the per-resource series of a resource that is gone.
    pub fn forget(&self, namespace: &str, name: &str) {
        let labels = ResourceLabels { namespace: namespace.to_owned(), name: name.to_owned() };
        self.last_rotation.remove(&labels);
        self.next_rotation.remove(&labels);
    }

    /// The Prometheus text format.
    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// Times one reconcile; see `Metrics::measure_reconcile`.
pub struct ReconcileMeasure {
    metrics: Arc<Metrics>,
    started: Instant,
    result: &'static str,
}

impl ReconcileMeasure {
    /// The reconcile ended as it should (including a deliberate wait).
    pub fn ok(&mut self) {
        self.result = "ok";
    }
}

impl Drop for ReconcileMeasure {
    fn drop(&mut self) {
        self.metrics.reconcile_duration.observe(self.started.elapsed().as_secs_f64());
        self.metrics.reconciles.get_or_create(&ResultLabel { result: self.result }).inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_and_forgets_per_resource_series() {
        let m = Metrics::default();
        m.upstash_request("reset-password", Some(200));
        m.upstash_request("get", None);
        m.rotated("ns", "cache", "rotated", Some(Duration::from_millis(300)), 1_700_000_000);
        let text = m.render().expect("render");
        assert!(
            text.contains(r#"upstash_rotator_upstash_requests_total{route="reset-password",status="200"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#"upstash_rotator_upstash_requests_total{route="get",status="error"} 1"#));
        assert!(text.contains(
            r#"upstash_rotator_last_rotation_timestamp_seconds{namespace="ns",name="cache"} 1700000000"#
        ));
        m.forget("ns", "cache");
        assert!(!m.render().expect("render").contains(r#"name="cache""#));
    }

    #[test]
    fn every_reconcile_is_counted_once_however_it_ends() {
        let m = Arc::new(Metrics::default());
        m.measure_reconcile().ok();
        drop(m.measure_reconcile());
        let text = m.render().expect("render");
        assert!(text.contains(r#"upstash_rotator_reconciles_total{result="ok"} 1"#), "{text}");
        assert!(text.contains(r#"upstash_rotator_reconciles_total{result="error"} 1"#), "{text}");
        assert!(text.contains("upstash_rotator_reconcile_duration_seconds_count 2"), "{text}");
    }
}
