//! Readings taken from outside the processes: /proc for CPU and memory,
//! the operator's and the apiserver's /metrics, the simulator's request log.

use std::collections::BTreeMap;

use kube::Client;
use serde_json::Value;

use crate::Result;

/// A `/proc/<pid>/status` field in KiB (`VmRSS`, `VmHWM`).
pub fn memory_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// CPU time the process has used, in nanoseconds (`/proc/<pid>/schedstat`,
/// finer than the clock ticks of `stat`; all threads).
pub fn cpu_ns(pid: u32) -> u64 {
    let read = || -> Option<u64> {
        let mut total = 0;
        for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
            let stat = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
            total += stat.split_whitespace().next()?.parse::<u64>().ok()?;
        }
        Some(total)
    };
    read().unwrap_or(0)
}

/// Waits (at most `limit`) until process `pid` is quiet: less than 5 ms of
/// CPU in 500 ms. A start's lists may still be running after its last
/// reconcile; a per-event cost measured over them would count them too.
pub async fn quiet(pid: u32, limit: std::time::Duration) {
    let started = std::time::Instant::now();
    while started.elapsed() < limit {
        let before = cpu_ns(pid);
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        if cpu_ns(pid).saturating_sub(before) < 5_000_000 {
            return;
        }
    }
}

/// Waits (at most `limit`) until the apiserver is quiet: at most 5 requests
/// in 5 s from all its clients, these reads included. After a burst of new
/// objects the plane's own controllers catch up for a while (the garbage
/// collector checks each new owner it has not seen, at
/// kube-controller-manager's 20 requests per second); an idle window
/// measured over that would count their work, not the operator's.
pub async fn apiserver_quiet(client: &Client, limit: std::time::Duration) -> Result<()> {
    let started = std::time::Instant::now();
    let mut before = ApiRequests::read(client).await?;
    while started.elapsed() < limit {
        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        let now = ApiRequests::read(client).await?;
        if now.since(&before).all() <= 5 {
            break;
        }
        before = now;
    }
    Ok(())
}

/// CPU time used so far by the control plane's kube-apiserver and etcd
/// (their pids as hack/testenv/up.sh records them), in ns. A missing pid
/// file or process is an error: a 0 would read as a free control plane.
pub fn plane_cpu_ns() -> crate::Result<u64> {
    let pids = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/testenv/pids");
    let mut total = 0;
    for name in ["kube-apiserver", "etcd"] {
        let file = pids.join(name);
        let pid = std::fs::read_to_string(&file)
            .map_err(|e| format!("{}: {e}", file.display()))?
            .trim()
            .parse::<u32>()
            .map_err(|e| format!("{}: {e}", file.display()))?;
        match cpu_ns(pid) {
            0 => return Err(format!("{name} (pid {pid}) has no CPU time to read in /proc").into()),
            used => total += used,
        }
    }
    Ok(total)
}

/// Sums of Prometheus counters by name and the label values asked for.
pub fn counters(text: &str, name: &str, labels: &[&str]) -> BTreeMap<Vec<String>, f64> {
    let mut sums = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with(name)) {
        let rest = &line[name.len()..];
        let (set, value) = match rest.strip_prefix('{') {
            Some(inner) => match inner.split_once("} ") {
                Some((set, value)) => (set, value),
                None => continue,
            },
            None => match rest.strip_prefix(' ') {
                Some(value) => ("", value),
                None => continue,
            },
        };
        let Ok(value) = value.trim().parse::<f64>() else { continue };
        let key = labels.iter().map(|l| label(set, l)).collect();
        *sums.entry(key).or_insert(0.0) += value;
    }
    sums
}

fn label(set: &str, name: &str) -> String {
    set.split("\",")
        .filter_map(|pair| pair.split_once("=\""))
        .find(|(k, _)| k.trim() == name)
        .map(|(_, v)| v.trim_end_matches('"').to_owned())
        .unwrap_or_default()
}

/// The apiserver's request counts, by verb, resource and subresource,
/// without watches and dry runs (counted apart).
#[derive(Clone, Debug, Default)]
pub struct ApiRequests(BTreeMap<Vec<String>, f64>);

impl ApiRequests {
    pub async fn read(client: &Client) -> Result<Self> {
        let request = http::Request::get("/metrics").body(Vec::new())?;
        let text = client.request_text(request).await?;
        Ok(Self(counters(&text, "apiserver_request_total", &["verb", "resource", "subresource", "dry_run"])))
    }

    /// `self - before`, by key.
    pub fn since(&self, before: &Self) -> Self {
        let mut diff = self.0.clone();
        for (key, value) in &before.0 {
            *diff.entry(key.clone()).or_insert(0.0) -= value;
        }
        diff.retain(|_, v| *v > 0.5);
        Self(diff)
    }

    fn sum(&self, keep: impl Fn(&str, &str, &str, bool) -> bool) -> u64 {
        let total: f64 =
            self.0.iter().filter(|(k, _)| keep(&k[0], &k[1], &k[2], !k[3].is_empty())).map(|(_, v)| v).sum();
        total.round() as u64
    }

    /// Writes to objects (events apart), dry runs excluded.
    pub fn writes(&self) -> u64 {
        self.sum(|verb, resource, _, dry| {
            is_write(verb) && !dry && !resource.is_empty() && resource != "events" && resource != "leases"
        })
    }

    pub fn events(&self) -> u64 {
        self.sum(|verb, resource, _, dry| is_write(verb) && !dry && resource == "events")
    }

    pub fn dry_runs(&self) -> u64 {
        self.sum(|verb, _, _, dry| is_write(verb) && dry)
    }

    /// GETs and LISTs of objects.
    pub fn reads(&self) -> u64 {
        self.sum(|verb, resource, _, _| {
            matches!(verb, "GET" | "LIST") && !resource.is_empty() && resource != "leases"
        })
    }

    /// The `n` largest counts, as "VERB resource/subresource": who made an
    /// idle window busy.
    pub fn largest(&self, n: usize) -> serde_json::Map<String, Value> {
        let mut counts: Vec<(String, u64)> = self
            .0
            .iter()
            .filter(|(k, _)| k[0] != "WATCH")
            .map(|(k, v)| (format!("{} {}/{}", k[0], k[1], k[2]), v.round() as u64))
            .collect();
        counts.sort_by_key(|c| std::cmp::Reverse(c.1));
        counts.into_iter().take(n).map(|(k, v)| (k, Value::from(v))).collect()
    }

    /// Every request on an object but watches.
    pub fn all(&self) -> u64 {
        self.sum(|verb, resource, _, _| verb != "WATCH" && !resource.is_empty())
    }
}

fn is_write(verb: &str) -> bool {
    matches!(verb, "POST" | "PUT" | "PATCH" | "APPLY" | "DELETE" | "DELETECOLLECTION")
}

/// Requests the simulator served, by route (`get`, `reset-password`, ...).
pub async fn sim_calls(http: &reqwest::Client, sim: &str) -> Result<BTreeMap<String, u64>> {
    let log: Value = http.get(format!("{sim}/_sim/requests")).send().await?.json().await?;
    let mut calls = BTreeMap::new();
    for (route, by_db) in log["counts"].as_object().into_iter().flatten() {
        let n: u64 = by_db.as_object().into_iter().flatten().filter_map(|(_, v)| v.as_u64()).sum();
        calls.insert(route.clone(), n);
    }
    Ok(calls)
}

/// `after - before` for one route.
pub fn delta(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>, route: &str) -> u64 {
    after.get(route).copied().unwrap_or(0).saturating_sub(before.get(route).copied().unwrap_or(0))
}

/// Every Upstash request in `after - before`, whatever the route.
pub fn total_delta(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> u64 {
    after.keys().map(|route| delta(before, after, route)).sum()
}
