//! `make bench SIZE=1000|10000`: the operator at scale on the local control
//! plane, against baselines measured in the same run. Writes
//! docs/benchmarks/size-<N>.json and regenerates docs/benchmarks.md from
//! every size measured so far.
//!
//! Every loop is bounded in count and time; all traffic stays on 127.0.0.1.

mod eso;
mod floor;
mod ladder;
mod logged;
mod peers;
mod probe;
mod process;
mod report;
mod tracker;
mod watches;

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use k8s_openapi::{
    ByteString,
    api::core::v1::{Namespace, Secret},
};
use kube::{
    Api, Client,
    api::{DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};
use testkit::sim::{API_KEY, EMAIL, Sim};
use upstash_rotator::crd::{RedisPasswordRotation, RedisPasswordRotationSpec};

use floor::{Extras, Floor, concurrently};
use probe::{ApiRequests, cpu_ns, memory_kib, sim_calls};
use process::Operator;
use tracker::Tracker;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Rotation bursts: 1,000 resources (or all, when fewer), at the default
/// concurrency and two others.
const BURST: usize = 1000;
const CONCURRENCIES: [u16; 3] = [4, 16, 64];
/// Unrelated Secrets, in another namespace, for the memory they cost.
const UNRELATED: usize = 10_000;
const LATENCY_SAMPLES: usize = 100;
const IDLE: Duration = Duration::from_secs(60);
/// Requests the bench itself keeps in flight while creating or patching.
const BENCH_PARALLEL: usize = 32;
/// Starts measured per restart: a start's memory peak moves by 1–2 MiB
/// from one to the next, so the median of several is reported.
const STARTS: usize = 3;
/// Floor and operator bursts per concurrency; the median pair is reported.
const PAIRS: usize = 3;

#[tokio::main]
async fn main() -> Result<()> {
    upstash_rotator::tls::install_crypto_provider();
    let size: usize = std::env::var("BENCH_SIZE").ok().and_then(|s| s.parse().ok()).unwrap_or(1000);
    let burst = size.min(BURST);
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let logs = out.join("target/bench");
    std::fs::create_dir_all(&logs)?;
    let client = testkit::admin_client().await;
    testkit::install_crds(&client, &testkit::operator::committed_crds()).await;
    let foreign = count_resources(&client).await?;
    let sim = Sim::start(&[]).await;
    // `make bench-peers` sets BENCH_PEERS: the operator and External Secrets
    // Operator side by side instead.
    let peers = std::env::var_os("BENCH_PEERS").is_some();
    let suffix = uuid::Uuid::new_v4().simple().to_string()[..6].to_owned();
    let (ns, floor_ns, unrelated_ns) = if peers {
        (format!("peer-op-{suffix}"), format!("peer-eso-{suffix}"), format!("peer-other-{suffix}"))
    } else {
        (format!("bench-{suffix}"), format!("bench-floor-{suffix}"), format!("bench-other-{suffix}"))
    };
    for name in [&ns, &floor_ns, &unrelated_ns] {
        create_namespace(&client, name).await?;
    }
    let mut results = json!({
        "size": size, "burst": burst, "foreign_resources": foreign,
        "date": k8s_openapi::jiff::Timestamp::now().to_string(),
        "machine": machine(),
    });
    let namespaces = [&ns, &floor_ns, &unrelated_ns];
    let outcome = if peers {
        match peers::run(&client, &sim, size, burst, namespaces, &logs).await {
            Ok(sides) => {
                results["operator"] = sides["operator"].clone();
                results["eso"] = sides["eso"].clone();
                Ok(())
            }
            Err(e) => Err(e),
        }
    } else {
        run(&client, &sim, size, burst, namespaces, &logs, &mut results).await
    };
    for name in namespaces {
        let _ = clear_namespace(&client, name).await;
    }
    outcome?;
    if peers {
        report::write_peers(&out.join("docs"), &results)?;
    } else {
        report::write(&out.join("docs"), &results)?;
    }
    println!("{}", serde_json::to_string_pretty(&results)?);
    Ok(())
}

async fn run(
    client: &Client,
    sim: &Sim,
    size: usize,
    burst: usize,
    [ns, floor_ns, unrelated_ns]: [&String; 3],
    logs: &Path,
    results: &mut Value,
) -> Result<()> {
    for namespace in [ns, floor_ns] {
        let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
        secrets.create(&PostParams::default(), &testkit::world::api_key_secret(EMAIL, API_KEY)).await?;
    }

    // The simulator: databases for the operator's resources and the floor's.
    let started = Instant::now();
    let ids = create_databases(sim, "bench", size).await?;
    results["sim_create_s"] = json!(started.elapsed().as_secs_f64());
    results["sim_state_file_create_s"] = json!(create_with_state_file(size).await?);
    let floor_ids = create_databases(sim, "floor", burst).await?;

    let tracker = Tracker::start(client, ns).await?;
    let operator = Operator::start(&sim.url, 4, logs.join("operator-empty.log")).await?;
    results["memory"] = json!({"empty_rss_kib": memory_kib(operator.pid, "VmRSS:"), "empty_hwm_kib": memory_kib(operator.pid, "VmHWM:")});

    // First sync: every resource created at once.
    let before = Readings::take(client, sim, &operator).await?;
    let started = Instant::now();
    create_resources(client, ns, "r", &ids).await?;
    tracker
        .wait_applied("r", size, 0, Duration::from_secs(1800))
        .await
        .map_err(|e| with_log(e, &operator))?;
    let took = started.elapsed();
    let after = Readings::take(client, sim, &operator).await?;
    let api = after.api.since(&before.api);
    // The bench's own writes: one create per resource.
    let bench_writes = size as u64;
    results["first_sync"] = json!({
        "seconds": took.as_secs_f64(),
        "upstash_gets_per_resource": ratio(probe::delta(&before.sim, &after.sim, "get"), size),
        "upstash_calls": probe::total_delta(&before.sim, &after.sim),
        "writes_per_resource": ratio(api.writes().saturating_sub(bench_writes), size),
        "reads_per_resource": ratio(api.reads(), size),
        "reconciles_per_resource": ratio(after.reconciles - before.reconciles, size),
        "operator_cpu_ms": (after.cpu_ns - before.cpu_ns) as f64 / 1e6,
    });

    // Idle: nothing changes, once the plane's own controllers are done
    // with the first sync's objects.
    probe::apiserver_quiet(client, Duration::from_secs(180)).await?;
    let before = Readings::take(client, sim, &operator).await?;
    let requests_before = operator.kubernetes_requests().await?;
    tokio::time::sleep(IDLE).await;
    let after = Readings::take(client, sim, &operator).await?;
    results["idle"] = json!({
        "seconds": IDLE.as_secs(),
        "operator_cpu_ms": (after.cpu_ns - before.cpu_ns) as f64 / 1e6,
        "reconciles": after.reconciles - before.reconciles,
        "upstash_calls": probe::total_delta(&before.sim, &after.sim),
        "operator_requests": operator.kubernetes_requests().await? - requests_before,
        "apiserver_requests": after.api.since(&before.api).all(),
    });
    results["memory"]["synced_rss_kib"] = json!(memory_kib(operator.pid, "VmRSS:"));
    results["memory"]["synced_hwm_kib"] = json!(memory_kib(operator.pid, "VmHWM:"));
    // The binary's own code pages, mapped from the page cache: part of
    // VmHWM, the same at every size, and dropped under memory pressure
    // rather than counted against the limit like the heap.
    results["memory"]["synced_file_kib"] = json!(memory_kib(operator.pid, "RssFile:"));
    results["memory"]["synced_anon_kib"] = json!(memory_kib(operator.pid, "RssAnon:"));

    // Restart: a new process finds every resource at rest.
    operator.stop().await?;
    let (operator, restarted, peaks) =
        restarts(client, sim, size, &logs.join("operator-restart.log")).await?;
    results["restart"] = restarted;
    results["memory"]["restarted_hwm_kib"] = json!(median(&peaks));
    results["memory"]["restarted_hwm_kib_starts"] = json!(peaks);
    results["memory"]["restarted_file_kib"] = json!(memory_kib(operator.pid, "RssFile:"));

    // Latency, one rotation at a time.
    let resources: Api<RedisPasswordRotation> = Api::namespaced(client.clone(), ns);
    let (mut to_secret, mut to_status) = (Vec::new(), Vec::new());
    for i in 0..LATENCY_SAMPLES.min(size) {
        let name = resource_name(i);
        let started = Instant::now();
        bump(&resources, &name, 1).await?;
        let (mut secret, mut status) = (None, None);
        while status.is_none() || secret.is_none() {
            if started.elapsed() > Duration::from_secs(30) {
                return Err(with_log(
                    format!("rotation of {name} did not finish within 30 s").into(),
                    &operator,
                ));
            }
            if secret.is_none() && tracker.secret_rotation(ns, &name) == Some(1) {
                secret = Some(started.elapsed());
            }
            if status.is_none() && tracker.status_rotation(ns, &name) == Some(1) {
                status = Some(started.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        to_secret.extend(secret);
        to_status.extend(status);
    }
    results["latency_ms"] = json!({
        "samples": to_status.len(),
        "secret_p50": percentile(&mut to_secret, 0.50), "secret_p99": percentile(&mut to_secret, 0.99),
        "status_p50": percentile(&mut to_status, 0.50), "status_p99": percentile(&mut to_status, 0.99),
    });

    // Rotation bursts at each concurrency, each right after the floor's at
    // the same concurrency (and its ladder, where the goal names it), with
    // the operator stopped meanwhile: this machine's speed drifts over
    // minutes, and two bursts minutes apart would carry that drift into
    // their ratio.
    let prefix = if size > BURST { "r00" } else { "r" };
    let mut bursts = Vec::new();
    let mut ladder = Vec::new();
    let mut operator = Some(operator);
    // The latency samples raised their counters to 1.
    let mut rotation = 1;
    for concurrency in CONCURRENCIES {
        let mut pairs = Vec::new();
        for pair in 0..PAIRS {
            if let Some(running) = operator.take() {
                running.stop().await?;
            }
            let with_ladder = pair == 0;
            let (floor, floor_plane, step) =
                floor_round(client, sim, floor_ns, &floor_ids, concurrency, with_ladder).await?;
            ladder.extend(step);
            let log = logs.join(format!("operator-burst-{concurrency}-{pair}.log"));
            let running = Operator::start(&sim.url, concurrency, log).await?;
            tokio::time::sleep(Duration::from_secs(2)).await;
            rotation += 1;
            let raise = Raise { namespace: ns, prefix, count: burst, to: rotation };
            let mut burst_of = operator_burst(client, sim, &tracker, &running, &raise).await?;
            burst_of["concurrency"] = json!(concurrency);
            burst_of["floor_seconds"] = json!(floor);
            burst_of["ratio_to_floor"] = json!(burst_of["seconds"].as_f64().unwrap_or(0.0) / floor);
            burst_of["floor_plane_cpu_ms_per_rotation"] = json!(floor_plane);
            pairs.push(burst_of);
            operator = Some(running);
        }
        bursts.push(median_pair(pairs));
    }
    let mut ladder = json!(ladder);
    ladder::with_operator(&mut ladder, &bursts);
    results["bursts"] = json!(bursts);
    results["ladder"] = ladder;

    // Unrelated Secrets elsewhere: what they cost a restarted operator, and
    // what one event on them costs.
    if let Some(running) = operator.take() {
        running.stop().await?;
    }
    let others: Api<Secret> = Api::namespaced(client.clone(), unrelated_ns);
    let names: Vec<String> = (0..UNRELATED).map(|i| format!("other-{i:05}")).collect();
    let created = concurrently(names.clone(), BENCH_PARALLEL, |name| {
        let others = others.clone();
        async move { others.create(&PostParams::default(), &unrelated_secret(&name)).await }
    })
    .await?;
    created.into_iter().collect::<std::result::Result<Vec<_>, _>>()?;
    let (operator, restart_with_others, peaks) =
        restarts(client, sim, size, &logs.join("operator-unrelated.log")).await?;
    results["restart_with_unrelated_secrets"] = restart_with_others;
    results["memory"]["restarted_with_unrelated_hwm_kib"] = json!(median(&peaks));
    results["memory"]["restarted_with_unrelated_hwm_kib_starts"] = json!(peaks);
    let touched = 2000.min(UNRELATED);
    probe::quiet(operator.pid, Duration::from_secs(30)).await;
    let cpu_before = cpu_ns(operator.pid);
    let labelled = concurrently(names[..touched].to_vec(), BENCH_PARALLEL, |name| {
        let others = others.clone();
        async move {
            let patch = json!({"metadata": {"labels": {"bench-touched": "yes"}}});
            others.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await
        }
    })
    .await?;
    labelled.into_iter().collect::<std::result::Result<Vec<_>, _>>()?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    results["secret_event_cpu_us"] = json!((cpu_ns(operator.pid) - cpu_before) as f64 / 1e3 / touched as f64);
    results["memory"]["final_rss_kib"] = json!(memory_kib(operator.pid, "VmRSS:"));
    results["memory"]["final_hwm_kib"] = json!(memory_kib(operator.pid, "VmHWM:"));
    operator.stop().await?;

    results["sizes"] = json!({
        "operator_binary_bytes": std::fs::metadata(process::binary())?.len(),
        "image": report::image_size(),
    });
    Ok(())
}

/// What the counters say at one moment.
struct Readings {
    api: ApiRequests,
    sim: std::collections::BTreeMap<String, u64>,
    reconciles: u64,
    cpu_ns: u64,
}

impl Readings {
    async fn take(client: &Client, sim: &Sim, operator: &Operator) -> Result<Self> {
        Self::at(client, sim, operator.reconciles().await?, operator.pid).await
    }

    /// The counters, given the measured process's reconciles and pid.
    async fn at(client: &Client, sim: &Sim, reconciles: u64, pid: u32) -> Result<Self> {
        Ok(Self {
            api: ApiRequests::read(client).await?,
            sim: sim_calls(&sim.http, &sim.url).await?,
            reconciles,
            cpu_ns: cpu_ns(pid),
        })
    }
}

/// `restart` `STARTS` times (each process stopped before the next starts):
/// the last process, its readings, and every start's VmHWM.
async fn restarts(
    client: &Client,
    sim: &Sim,
    size: usize,
    log: &Path,
) -> Result<(Operator, Value, Vec<u64>)> {
    let mut peaks = Vec::new();
    for start in 1..STARTS {
        let (operator, _) = restart(client, sim, size, 4, log.with_extension(format!("{start}.log"))).await?;
        peaks.push(memory_kib(operator.pid, "VmHWM:"));
        operator.stop().await?;
    }
    let (operator, readings) = restart(client, sim, size, 4, log.to_path_buf()).await?;
    peaks.push(memory_kib(operator.pid, "VmHWM:"));
    Ok((operator, readings, peaks))
}

fn median(values: &[u64]) -> u64 {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    sorted.get(sorted.len() / 2).copied().unwrap_or(0)
}

/// Starts an operator on resources at rest and measures until each was
/// reconciled once.
async fn restart(
    client: &Client,
    sim: &Sim,
    size: usize,
    concurrency: u16,
    log: PathBuf,
) -> Result<(Operator, Value)> {
    let api_before = ApiRequests::read(client).await?;
    let sim_before = sim_calls(&sim.http, &sim.url).await?;
    let started = Instant::now();
    let operator = Operator::start(&sim.url, concurrency, log).await?;
    let ready = started.elapsed();
    loop {
        if operator.reconciles().await? >= size as u64 {
            break;
        }
        if started.elapsed() > Duration::from_secs(600) {
            return Err(with_log(
                "the restarted operator did not reconcile every resource in 600 s".into(),
                &operator,
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = started.elapsed();
    // Let anything the reconciles started land before counting.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let api = ApiRequests::read(client).await?.since(&api_before);
    let sim_after = sim_calls(&sim.http, &sim.url).await?;
    let value = json!({
        "ready_seconds": ready.as_secs_f64(),
        "all_reconciled_seconds": took.as_secs_f64(),
        "upstash_calls": probe::total_delta(&sim_before, &sim_after),
        "writes": api.writes(),
        "reads": api.reads(),
        // Its lists and watches, and any read of a resource not at rest.
        "operator_requests": operator.kubernetes_requests().await?,
        "hwm_kib": memory_kib(operator.pid, "VmHWM:"),
    });
    Ok((operator, value))
}

fn with_log(error: Box<dyn std::error::Error>, operator: &Operator) -> Box<dyn std::error::Error> {
    format!("{error}; the operator's log ends with:\n{}", operator.log_tail()).into()
}

/// The floor at `concurrency` (its seconds and control-plane CPU per
/// rotation), then its ladder where the burst goal names `concurrency`, on
/// floor resources created for the round and deleted after it: the
/// operator, stopped meanwhile, would reconcile them.
async fn floor_round(
    client: &Client,
    sim: &Sim,
    namespace: &str,
    databases: &[String],
    concurrency: u16,
    with_ladder: bool,
) -> Result<(f64, f64, Option<Value>)> {
    let created = create_resources(client, namespace, "f", databases).await?;
    let floor = Floor::new(client, namespace, created);
    // The instrument that sees the operator's rotations finish watches the
    // floor's too, so it costs both sides the same.
    let tracker = Tracker::start(client, namespace).await?;
    let plane = probe::plane_cpu_ns()?;
    let took = floor.rotate_all(sim, 1, usize::from(concurrency), Extras::NONE).await?;
    let plain = (took.as_secs_f64(), per_rotation_ms(probe::plane_cpu_ns()? - plane, databases.len()));
    let step = if with_ladder && ladder::CONCURRENCIES.contains(&concurrency) {
        Some(ladder::climb(client, &floor, sim, databases.len(), 2, concurrency, plain).await?)
    } else {
        None
    };
    drop(tracker);
    floor.remove().await?;
    Ok((plain.0, plain.1, step))
}

/// Which counters a burst raises: the first `count` resources of
/// `namespace` (whose names start with `prefix`), to `to`.
struct Raise<'a> {
    namespace: &'a str,
    prefix: &'a str,
    count: usize,
    to: i64,
}

/// One burst of the operator: every counter of `raise` raised at once,
/// until every rotation is applied.
async fn operator_burst(
    client: &Client,
    sim: &Sim,
    tracker: &Tracker,
    running: &Operator,
    raise: &Raise<'_>,
) -> Result<Value> {
    let &Raise { namespace, prefix, count: burst, to: rotation } = raise;
    let resources: Api<RedisPasswordRotation> = Api::namespaced(client.clone(), namespace);
    let before = Readings::take(client, sim, running).await?;
    let plane = probe::plane_cpu_ns()?;
    let started = Instant::now();
    raise_counters(&resources, burst, rotation).await?;
    tracker
        .wait_applied(prefix, burst, rotation, Duration::from_secs(1800))
        .await
        .map_err(|e| with_log(e, running))?;
    let took = started.elapsed();
    let plane_cpu = probe::plane_cpu_ns()?;
    let after = Readings::take(client, sim, running).await?;
    let api = after.api.since(&before.api);
    let reported = reports_published(client, &before.api, burst).await?;
    let plane_with_reports = probe::plane_cpu_ns()? - plane;
    let plane = plane_cpu - plane;
    // The bench's own writes: one counter patch per resource.
    let bench_writes = burst as u64;
    Ok(json!({
        "seconds": took.as_secs_f64(),
        "resets": probe::delta(&before.sim, &after.sim, "reset-password"),
        "upstash_gets": probe::delta(&before.sim, &after.sim, "get"),
        "writes_per_rotation": ratio(api.writes().saturating_sub(bench_writes), burst),
        "events_in_burst_per_rotation": ratio(api.events(), burst),
        "events_per_rotation": ratio(reported, burst),
        "plane_cpu_ms_per_rotation_with_events": per_rotation_ms(plane_with_reports, burst),
        "dry_runs_per_rotation": ratio(api.dry_runs(), burst),
        "reads_per_rotation": ratio(api.reads(), burst),
        "reconciles_per_rotation": ratio(after.reconciles - before.reconciles, burst),
        "operator_cpu_ms_per_rotation": per_rotation_ms(after.cpu_ns - before.cpu_ns, burst),
        "plane_cpu_ms_per_rotation": per_rotation_ms(plane, burst),
    }))
}

/// The events published since `before`, once the operator's reports of a
/// burst of `burst` are out (they follow their statuses) or 60 s passed.
async fn reports_published(client: &Client, before: &ApiRequests, burst: usize) -> Result<u64> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let events = ApiRequests::read(client).await?.since(before).events();
        if events >= burst as u64 || Instant::now() > deadline {
            return Ok(events);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The pair (floor, then operator) whose ratio is the median, with every
/// pair's ratio beside it: one burst is 7 to 17 s on a shared machine, and
/// bursts of the same code have differed by 0.6× from one to the next.
fn median_pair(mut pairs: Vec<Value>) -> Value {
    let ratio = |p: &Value| p["ratio_to_floor"].as_f64().unwrap_or(f64::NAN);
    let ratios: Vec<f64> = pairs.iter().map(ratio).collect();
    pairs.sort_by(|a, b| ratio(a).total_cmp(&ratio(b)));
    let mut median = pairs.swap_remove(pairs.len() / 2);
    let lowest = ratios.iter().copied().fold(f64::INFINITY, f64::min);
    let highest = ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    median["pair_ratios"] = json!(ratios);
    median["ratio_lowest"] = json!(lowest);
    median["ratio_highest"] = json!(highest);
    median
}

fn resource_name(i: usize) -> String {
    format!("r{i:05}")
}

/// CPU time `ns` per rotation of a burst of `burst`, in ms.
fn per_rotation_ms(ns: u64, burst: usize) -> f64 {
    ns as f64 / 1e6 / burst as f64
}

fn ratio(count: u64, per: usize) -> f64 {
    count as f64 / per.max(1) as f64
}

fn percentile(samples: &mut [Duration], p: f64) -> f64 {
    samples.sort();
    let index =
        ((samples.len() as f64 * p).ceil() as usize).saturating_sub(1).min(samples.len().saturating_sub(1));
    samples.get(index).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// Raises the counters of the first `count` resources to `rotation`, as
/// fast as the bench writes (`BENCH_PARALLEL` at a time).
pub async fn raise_counters(
    resources: &Api<RedisPasswordRotation>,
    count: usize,
    rotation: i64,
) -> Result<()> {
    let names: Vec<String> = (0..count).map(resource_name).collect();
    let patched = concurrently(names, BENCH_PARALLEL, |name| {
        let resources = resources.clone();
        async move { bump(&resources, &name, rotation).await }
    })
    .await?;
    patched.into_iter().collect::<Result<Vec<()>>>()?;
    Ok(())
}

async fn bump(resources: &Api<RedisPasswordRotation>, name: &str, rotation: i64) -> Result<()> {
    let patch = json!({"spec": {"rotation": rotation}});
    resources.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
    Ok(())
}

/// Seconds a simulator started with `--state-file` takes to create `count`
/// databases (each one a synced line in the file); the simulator and its file
/// are gone after.
async fn create_with_state_file(count: usize) -> Result<f64> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("state.json");
    let kept = Sim::start(&["--state-file", &path.to_string_lossy()]).await;
    let started = Instant::now();
    create_databases(&kept, "kept", count).await?;
    Ok(started.elapsed().as_secs_f64())
}

async fn create_databases(sim: &Sim, prefix: &str, count: usize) -> Result<Vec<String>> {
    let names: Vec<String> = (0..count).map(|i| format!("{prefix}-{i}")).collect();
    let created =
        concurrently(names, BENCH_PARALLEL, |name| async move { sim.create_database(&name).await }).await?;
    let ids =
        created.iter().filter_map(|db| db["database_id"].as_str().map(str::to_owned)).collect::<Vec<_>>();
    if ids.len() != count {
        return Err(format!("{} of {count} databases created", ids.len()).into());
    }
    Ok(ids)
}

/// Creates one resource per database (`verify: false`: the floor does not
/// check the data plane either); returns (name, database, resourceVersion).
async fn create_resources(
    client: &Client,
    namespace: &str,
    prefix: &str,
    ids: &[String],
) -> Result<Vec<(String, String, String)>> {
    let api: Api<RedisPasswordRotation> = Api::namespaced(client.clone(), namespace);
    let items: Vec<(usize, String)> = ids.iter().cloned().enumerate().collect();
    let created = concurrently(items, BENCH_PARALLEL, |(i, id)| {
        let api = api.clone();
        async move {
            let name = format!("{prefix}{i:05}");
            let mut spec = RedisPasswordRotationSpec::new(id.as_str(), testkit::world::CREDENTIALS_SECRET);
            spec.verify = false;
            let stored = api.create(&PostParams::default(), &RedisPasswordRotation::new(&name, spec)).await?;
            Ok::<_, kube::Error>((name, id, stored.metadata.resource_version.unwrap_or_default()))
        }
    })
    .await?;
    Ok(created.into_iter().collect::<std::result::Result<Vec<_>, _>>()?)
}

fn unrelated_secret(name: &str) -> Secret {
    Secret {
        metadata: ObjectMeta { name: Some(name.to_owned()), ..Default::default() },
        data: Some([("token".to_owned(), ByteString(vec![b'x'; 64]))].into()),
        ..Default::default()
    }
}

async fn create_namespace(client: &Client, name: &str) -> Result<()> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let namespace = Namespace {
        metadata: ObjectMeta { name: Some(name.to_owned()), ..Default::default() },
        ..Default::default()
    };
    namespaces.create(&PostParams::default(), &namespace).await?;
    Ok(())
}

/// Deletes what the bench created (resources at rest have no finalizer).
async fn clear_namespace(client: &Client, name: &str) -> Result<()> {
    let resources: Api<RedisPasswordRotation> = Api::namespaced(client.clone(), name);
    resources.delete_collection(&DeleteParams::default(), &ListParams::default()).await?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), name);
    secrets.delete_collection(&DeleteParams::default(), &ListParams::default()).await?;
    Api::<Namespace>::all(client.clone()).delete(name, &DeleteParams::default()).await?;
    Ok(())
}

/// Resources already on the control plane (another run's, a test's): the
/// operator watches every namespace, so they are part of what it does.
async fn count_resources(client: &Client) -> Result<usize> {
    let all: Api<RedisPasswordRotation> = Api::all(client.clone());
    Ok(all.list_metadata(&ListParams::default()).await?.items.len())
}

fn machine() -> Value {
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    json!({"cpus": cpus, "model": model})
}
