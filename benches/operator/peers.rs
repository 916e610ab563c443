//! `make bench-peers SIZE=N`: the operator and External Secrets Operator
//! side by side on the same control plane, simulator and number of
//! databases, one after the other (each alone on the plane while measured).
//! ESO resets through a `Webhook` generator, the way someone would misuse it
//! for this job; docs/benchmarks.md says why it is not crash-safe for it.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client, api::PostParams};
use serde_json::{Value, json};
use testkit::sim::{API_KEY, EMAIL, Sim};
use upstash_rotator::crd::RedisPasswordRotation;

use crate::{
    BENCH_PARALLEL, Extras, Floor, IDLE, Readings, Result, UNRELATED, concurrently, create_databases,
    create_resources,
    eso::{self, Eso},
    probe::{self, ApiRequests, memory_kib, sim_calls},
    process::Operator,
    raise_counters, ratio, resource_name,
    tracker::Tracker,
    unrelated_secret,
};

/// Both run at the operator's default concurrency.
const CONCURRENCY: u16 = 4;
const WAIT: Duration = Duration::from_secs(1800);

/// One of the two, running.
enum Peer {
    Operator(Operator),
    Eso(Eso),
}

impl Peer {
    fn pid(&self) -> u32 {
        match self {
            Peer::Operator(p) => p.pid,
            Peer::Eso(p) => p.pid,
        }
    }

    async fn reconciles(&self) -> Result<u64> {
        match self {
            Peer::Operator(p) => p.reconciles().await,
            Peer::Eso(p) => p.reconciles().await,
        }
    }

    fn log_tail(&self) -> String {
        match self {
            Peer::Operator(p) => p.log_tail(),
            Peer::Eso(p) => p.log_tail(),
        }
    }

    async fn stop(self) -> Result<()> {
        match self {
            Peer::Operator(p) => p.stop().await,
            Peer::Eso(p) => p.stop().await,
        }
    }

    fn memory(&self, field: &str) -> Value {
        json!(memory_kib(self.pid(), field))
    }

    fn failed(&self, e: Box<dyn std::error::Error>) -> Box<dyn std::error::Error> {
        format!("{e}; its log ends with:\n{}", self.log_tail()).into()
    }
}

/// How to start each, and where ESO's build is.
#[derive(Clone)]
struct Start {
    sim: String,
    eso: PathBuf,
    logs: PathBuf,
}

impl Start {
    async fn operator(&self, log: &str) -> Result<Peer> {
        Ok(Peer::Operator(Operator::start(&self.sim, CONCURRENCY, self.logs.join(log)).await?))
    }

    async fn eso(&self, log: &str) -> Result<Peer> {
        Ok(Peer::Eso(Eso::start(&self.eso, CONCURRENCY, self.logs.join(log)).await?))
    }
}

impl Readings {
    async fn of_peer(client: &Client, sim: &Sim, peer: &Peer) -> Result<Self> {
        Self::at(client, sim, peer.reconciles().await?, peer.pid()).await
    }

    /// Upstash calls, apiserver writes and reads since `before`, less the
    /// bench's own writes.
    fn since(&self, before: &Self, bench_writes: u64) -> Value {
        let api = self.api.since(&before.api);
        json!({
            "upstash_resets": probe::delta(&before.sim, &self.sim, "reset-password"),
            "upstash_gets": probe::delta(&before.sim, &self.sim, "get"),
            "upstash_calls": probe::total_delta(&before.sim, &self.sim),
            "writes": api.writes().saturating_sub(bench_writes),
            "reads": api.reads(),
            "events": api.events(),
            "reconciles": self.reconciles.saturating_sub(before.reconciles),
            "cpu_ms": self.cpu_ns.saturating_sub(before.cpu_ns) as f64 / 1e6,
        })
    }
}

pub async fn run(
    client: &Client,
    sim: &Sim,
    size: usize,
    burst: usize,
    namespaces: [&String; 3],
    logs: &Path,
) -> Result<Value> {
    let eso_dir = std::env::var("ESO_DIR").map_err(|_| "ESO_DIR is not set (make bench-peers sets it)")?;
    let eso_dir = PathBuf::from(eso_dir);
    let start = Start { sim: sim.url.clone(), eso: eso_dir.clone(), logs: logs.to_owned() };
    let [operator_ns, eso_ns, unrelated_ns] = namespaces;
    // kube-controller-manager finds new CRDs (ESO's were just installed) at
    // its next discovery, within 30 s. Until its garbage collector watches a
    // kind, it GETs the owner of every new dependent one by one (about 10 a
    // second): the operator's Secrets would have it busy during the idle
    // window. Waiting once keeps that off both sides' figures.
    tokio::time::sleep(Duration::from_secs(40)).await;
    // The floor first, in the namespace the unrelated Secrets fill later.
    let floor_seconds = floor_burst(client, sim, unrelated_ns, burst).await?;
    let mut results = json!({});
    results["operator"] = operator_side(client, sim, &start, operator_ns, size, burst).await?;
    results["eso"] = eso_side(client, sim, &start, eso_ns, size, burst).await?;
    for side in ["operator", "eso"] {
        let seconds = results[side]["burst"]["seconds"].as_f64().ok_or("a burst without its time")?;
        results[side]["burst"]["floor_seconds"] = json!(floor_seconds);
        results[side]["burst"]["ratio_to_floor"] = json!(seconds / floor_seconds);
    }

    // 10,000 unrelated Secrets elsewhere: the memory of each, restarted on
    // everything above.
    let others: Api<Secret> = Api::namespaced(client.clone(), unrelated_ns);
    let names: Vec<String> = (0..UNRELATED).map(|i| format!("other-{i:05}")).collect();
    let created = concurrently(names, BENCH_PARALLEL, |name| {
        let others = others.clone();
        async move { others.create(&PostParams::default(), &unrelated_secret(&name)).await }
    })
    .await?;
    created.into_iter().collect::<std::result::Result<Vec<_>, _>>()?;
    for (side, log) in [("operator", "peers-operator-unrelated.log"), ("eso", "peers-eso-unrelated.log")] {
        let peer = if side == "operator" { start.operator(log).await? } else { start.eso(log).await? };
        all_reconciled(&peer, size).await?;
        results[side]["memory"]["restarted_with_unrelated_hwm_kib"] = peer.memory("VmHWM:");
        peer.stop().await?;
    }
    results["operator"]["binary_bytes"] = json!(std::fs::metadata(crate::process::binary())?.len());
    results["eso"]["binary_bytes"] = json!(std::fs::metadata(eso_dir.join("external-secrets"))?.len());
    Ok(results)
}

/// The floor's burst (benches/operator/floor.rs) at the same concurrency,
/// alone on the plane and watched by the same instrument: what each side's
/// burst is measured against.
async fn floor_burst(client: &Client, sim: &Sim, ns: &str, burst: usize) -> Result<f64> {
    let ids = create_databases(sim, "peer-floor", burst).await?;
    let created = create_resources(client, ns, "f", &ids).await?;
    let floor = Floor::new(client, ns, created);
    let tracker = Tracker::start(client, ns).await?;
    let took = floor.rotate_all(sim, 1, usize::from(CONCURRENCY), Extras::NONE).await?;
    drop(tracker);
    floor.remove().await?;
    Ok(took.as_secs_f64())
}

async fn operator_side(
    client: &Client,
    sim: &Sim,
    start: &Start,
    ns: &str,
    size: usize,
    burst: usize,
) -> Result<Value> {
    let ids = create_databases(sim, "peer-op", size).await?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    secrets.create(&PostParams::default(), &testkit::world::api_key_secret(EMAIL, API_KEY)).await?;
    let tracker = Tracker::start(client, ns).await?;
    let peer = start.operator("peers-operator.log").await?;
    let mut side = empty_memory(&peer).await;
    let before = Readings::of_peer(client, sim, &peer).await?;
    let started = Instant::now();
    create_resources(client, ns, "r", &ids).await?;
    tracker.wait_applied("r", size, 0, WAIT).await.map_err(|e| peer.failed(e))?;
    side["first_sync"] = first_sync(client, sim, &peer, &before, started, size, size as u64).await?;
    let peer = idle_then_restart(client, sim, &mut side, peer, size, || {
        start.operator("peers-operator-restart.log")
    })
    .await?;

    let resources: Api<RedisPasswordRotation> = Api::namespaced(client.clone(), ns);
    let before = Readings::of_peer(client, sim, &peer).await?;
    let started = Instant::now();
    raise_counters(&resources, burst, 1).await?;
    let prefix = if size > burst { "r00" } else { "r" };
    tracker.wait_applied(prefix, burst, 1, WAIT).await.map_err(|e| peer.failed(e))?;
    side["burst"] = burst_figures(client, sim, &peer, &before, started, burst).await?;
    peer.stop().await?;
    Ok(side)
}

async fn eso_side(
    client: &Client,
    sim: &Sim,
    start: &Start,
    ns: &str,
    size: usize,
    burst: usize,
) -> Result<Value> {
    let ids = create_databases(sim, "peer-eso", size).await?;
    eso::create_auth_secret(client, ns, EMAIL, API_KEY).await?;
    let written = eso::Written::start(client, ns).await?;
    let peer = start.eso("peers-eso.log").await?;
    let mut side = empty_memory(&peer).await;
    let before = Readings::of_peer(client, sim, &peer).await?;
    let started = Instant::now();
    let items: Vec<(usize, String)> = ids.into_iter().enumerate().collect();
    let created = concurrently(items, BENCH_PARALLEL, |(i, id)| {
        let url = sim.url.clone();
        async move { eso::create_pair(client, ns, &url, &resource_name(i), &id).await }
    })
    .await?;
    created.into_iter().collect::<Result<Vec<()>>>()?;
    written.wait_changed(&BTreeMap::new(), size, WAIT).await.map_err(|e| peer.failed(e))?;
    // The bench's own writes: a generator and an ExternalSecret each.
    side["first_sync"] = first_sync(client, sim, &peer, &before, started, size, 2 * size as u64).await?;
    let peer =
        idle_then_restart(client, sim, &mut side, peer, size, || start.eso("peers-eso-restart.log")).await?;

    let hashes = written.hashes();
    let before = Readings::of_peer(client, sim, &peer).await?;
    let started = Instant::now();
    let names: Vec<String> = (0..burst).map(resource_name).collect();
    let patched =
        concurrently(names, BENCH_PARALLEL, |name| async move { eso::rotate(client, ns, &name, 1).await })
            .await?;
    patched.into_iter().collect::<Result<Vec<()>>>()?;
    written.wait_changed(&hashes, burst, WAIT).await.map_err(|e| peer.failed(e))?;
    side["burst"] = burst_figures(client, sim, &peer, &before, started, burst).await?;
    peer.stop().await?;
    Ok(side)
}

/// Memory a few seconds after the start, with nothing to do yet.
async fn empty_memory(peer: &Peer) -> Value {
    tokio::time::sleep(Duration::from_secs(5)).await;
    json!({"memory": {"empty_rss_kib": peer.memory("VmRSS:"), "empty_hwm_kib": peer.memory("VmHWM:")}})
}

async fn first_sync(
    client: &Client,
    sim: &Sim,
    peer: &Peer,
    before: &Readings,
    started: Instant,
    size: usize,
    bench_writes: u64,
) -> Result<Value> {
    let took = started.elapsed();
    let after = Readings::of_peer(client, sim, peer).await?;
    let mut figures = after.since(before, bench_writes);
    figures["seconds"] = json!(took.as_secs_f64());
    figures["writes_per_resource"] = json!(ratio(figures["writes"].as_u64().unwrap_or(0), size));
    Ok(figures)
}

/// Idle for a minute, then a restart on everything synced: what each costs.
async fn idle_then_restart<F, Fut>(
    client: &Client,
    sim: &Sim,
    side: &mut Value,
    peer: Peer,
    size: usize,
    start_again: F,
) -> Result<Peer>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<Peer>>,
{
    tokio::time::sleep(Duration::from_secs(5)).await;
    let before = Readings::of_peer(client, sim, &peer).await?;
    tokio::time::sleep(IDLE).await;
    let after = Readings::of_peer(client, sim, &peer).await?;
    side["idle"] = after.since(&before, 0);
    let requests = after.api.since(&before.api);
    side["idle"]["apiserver_requests"] = json!(requests.all());
    side["idle"]["apiserver_requests_largest"] = json!(requests.largest(5));
    side["memory"]["synced_rss_kib"] = peer.memory("VmRSS:");
    side["memory"]["synced_hwm_kib"] = peer.memory("VmHWM:");
    peer.stop().await?;

    let api_before = ApiRequests::read(client).await?;
    let sim_before = sim_calls(&sim.http, &sim.url).await?;
    let started = Instant::now();
    let peer = start_again().await?;
    all_reconciled(&peer, size).await?;
    let took = started.elapsed();
    // Let what those reconciles started land before counting.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let api = ApiRequests::read(client).await?.since(&api_before);
    let sim_after = sim_calls(&sim.http, &sim.url).await?;
    side["restart"] = json!({
        "all_reconciled_seconds": took.as_secs_f64(),
        "upstash_calls": probe::total_delta(&sim_before, &sim_after),
        "upstash_resets": probe::delta(&sim_before, &sim_after, "reset-password"),
        "writes": api.writes(),
        "reads": api.reads(),
    });
    side["memory"]["restarted_hwm_kib"] = peer.memory("VmHWM:");
    Ok(peer)
}

/// Waits (bounded) until the process reconciled as many objects as there are.
async fn all_reconciled(peer: &Peer, size: usize) -> Result<()> {
    let started = Instant::now();
    while peer.reconciles().await? < size as u64 {
        if started.elapsed() > Duration::from_secs(600) {
            return Err(peer.failed("not every object was reconciled within 600 s of the start".into()));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

async fn burst_figures(
    client: &Client,
    sim: &Sim,
    peer: &Peer,
    before: &Readings,
    started: Instant,
    burst: usize,
) -> Result<Value> {
    let took = started.elapsed();
    let after = Readings::of_peer(client, sim, peer).await?;
    // The bench's own writes: one patch per rotation.
    let mut figures = after.since(before, burst as u64);
    figures["seconds"] = json!(took.as_secs_f64());
    figures["writes_per_rotation"] = json!(ratio(figures["writes"].as_u64().unwrap_or(0), burst));
    Ok(figures)
}
