//! docs/benchmarks/size-<N>.json for each size measured, and
//! docs/benchmarks.md generated from all of them.

use std::path::Path;

use serde_json::Value;

use crate::Result;

/// One row of the table: a label, where its figure is in the JSON, how to
/// show it, and the goal it is held to.
struct Row {
    label: &'static str,
    pointer: &'static str,
    unit: &'static str,
    goal: &'static str,
}

const ROWS: &[Row] = &[
    Row {
        label: "upstash-sim: create the databases",
        pointer: "/sim_create_s",
        unit: "s",
        goal: "< 30 s for 10,000",
    },
    Row {
        label: "upstash-sim with --state-file: create the databases",
        pointer: "/sim_state_file_create_s",
        unit: "s",
        goal: "< 30 s for 10,000",
    },
    Row {
        label: "first sync: time until every resource is Ready",
        pointer: "/first_sync/seconds",
        unit: "s",
        goal: "",
    },
    Row {
        label: "first sync: Upstash GETs per resource",
        pointer: "/first_sync/upstash_gets_per_resource",
        unit: "",
        goal: "1",
    },
    Row {
        label: "first sync: apiserver writes per resource",
        pointer: "/first_sync/writes_per_resource",
        unit: "",
        goal: "",
    },
    Row {
        label: "first sync: reconciles per resource",
        pointer: "/first_sync/reconciles_per_resource",
        unit: "",
        goal: "",
    },
    Row { label: "idle 60 s: operator CPU", pointer: "/idle/operator_cpu_ms", unit: "ms", goal: "≈ 0" },
    Row { label: "idle 60 s: reconciles", pointer: "/idle/reconciles", unit: "", goal: "0" },
    Row { label: "idle 60 s: Upstash calls", pointer: "/idle/upstash_calls", unit: "", goal: "0" },
    Row {
        label: "idle 60 s: apiserver requests by the operator (its watches renewed)",
        pointer: "/idle/operator_requests",
        unit: "",
        goal: "",
    },
    Row {
        label: "idle 60 s: apiserver requests (all clients)",
        pointer: "/idle/apiserver_requests",
        unit: "",
        goal: "",
    },
    Row { label: "restart: ready (caches synced)", pointer: "/restart/ready_seconds", unit: "s", goal: "" },
    Row {
        label: "restart: every resource reconciled",
        pointer: "/restart/all_reconciled_seconds",
        unit: "s",
        goal: "< 10 s at 10,000",
    },
    Row { label: "restart: Upstash calls", pointer: "/restart/upstash_calls", unit: "", goal: "0" },
    Row { label: "restart: apiserver writes", pointer: "/restart/writes", unit: "", goal: "0" },
    Row { label: "restart: apiserver reads (all clients)", pointer: "/restart/reads", unit: "", goal: "" },
    Row {
        label: "restart: apiserver requests by the operator (lists and watches)",
        pointer: "/restart/operator_requests",
        unit: "",
        goal: "",
    },
    Row {
        label: "latency p50, counter bump → Secret",
        pointer: "/latency_ms/secret_p50",
        unit: "ms",
        goal: "",
    },
    Row {
        label: "latency p99, counter bump → Secret",
        pointer: "/latency_ms/secret_p99",
        unit: "ms",
        goal: "",
    },
    Row {
        label: "latency p50, counter bump → status",
        pointer: "/latency_ms/status_p50",
        unit: "ms",
        goal: "",
    },
    Row {
        label: "latency p99, counter bump → status",
        pointer: "/latency_ms/status_p99",
        unit: "ms",
        goal: "",
    },
    Row { label: "memory: VmRSS, no resources", pointer: "/memory/empty_rss_kib", unit: "KiB", goal: "" },
    Row {
        label: "memory: VmHWM after the first sync",
        pointer: "/memory/synced_hwm_kib",
        unit: "KiB",
        goal: "< 40 MiB at 10,000",
    },
    Row {
        label: "memory: of which the binary's code pages (RssFile, synced)",
        pointer: "/memory/synced_file_kib",
        unit: "KiB",
        goal: "",
    },
    Row {
        label: "memory: VmRSS, heap (RssAnon, synced)",
        pointer: "/memory/synced_anon_kib",
        unit: "KiB",
        goal: "",
    },
    Row {
        label: "memory: VmHWM of a restarted operator (median of 3 starts)",
        pointer: "/memory/restarted_hwm_kib",
        unit: "KiB",
        goal: "",
    },
    Row {
        label: "memory: of which the binary's code pages (RssFile, restarted)",
        pointer: "/memory/restarted_file_kib",
        unit: "KiB",
        goal: "",
    },
    Row {
        label: "memory: VmHWM restarted with 10,000 unrelated Secrets (median of 3 starts)",
        pointer: "/memory/restarted_with_unrelated_hwm_kib",
        unit: "KiB",
        goal: "< 2 MiB more",
    },
    Row { label: "memory: VmHWM at the end", pointer: "/memory/final_hwm_kib", unit: "KiB", goal: "" },
    Row {
        label: "operator CPU per unrelated Secret event",
        pointer: "/secret_event_cpu_us",
        unit: "µs",
        goal: "flat in N",
    },
    Row { label: "operator binary", pointer: "/sizes/operator_binary_bytes", unit: "bytes", goal: "" },
    Row { label: "operator image", pointer: "/sizes/image", unit: "bytes", goal: "" },
];

const BURST_ROWS: &[Row] = &[
    Row { label: "time", pointer: "/seconds", unit: "s", goal: "" },
    Row { label: "floor, same run, same concurrency", pointer: "/floor_seconds", unit: "s", goal: "" },
    Row {
        label: "operator / floor (the median of 3 pairs)",
        pointer: "/ratio_to_floor",
        unit: "×",
        goal: "≤ 1.3",
    },
    Row { label: "operator / floor, lowest pair", pointer: "/ratio_lowest", unit: "×", goal: "" },
    Row { label: "operator / floor, highest pair", pointer: "/ratio_highest", unit: "×", goal: "" },
    Row { label: "resets", pointer: "/resets", unit: "", goal: "= burst" },
    Row { label: "Upstash GETs", pointer: "/upstash_gets", unit: "", goal: "0" },
    Row {
        label: "apiserver writes per rotation (events apart)",
        pointer: "/writes_per_rotation",
        unit: "",
        goal: "≤ 3",
    },
    Row {
        label: "events per rotation, once all are out (up to 60 s after the burst)",
        pointer: "/events_per_rotation",
        unit: "",
        goal: "",
    },
    Row {
        label: "events per rotation published during the burst",
        pointer: "/events_in_burst_per_rotation",
        unit: "",
        goal: "",
    },
    Row { label: "dry-run writes per rotation", pointer: "/dry_runs_per_rotation", unit: "", goal: "" },
    Row { label: "apiserver reads per rotation", pointer: "/reads_per_rotation", unit: "", goal: "" },
    Row { label: "reconciles per rotation", pointer: "/reconciles_per_rotation", unit: "", goal: "" },
    Row {
        label: "operator CPU per rotation",
        pointer: "/operator_cpu_ms_per_rotation",
        unit: "ms",
        goal: "",
    },
    Row {
        label: "kube-apiserver + etcd CPU per rotation",
        pointer: "/plane_cpu_ms_per_rotation",
        unit: "ms",
        goal: "",
    },
    Row {
        label: "kube-apiserver + etcd CPU per rotation, the events published after included",
        pointer: "/plane_cpu_ms_per_rotation_with_events",
        unit: "ms",
        goal: "",
    },
    Row {
        label: "kube-apiserver + etcd CPU per rotation, floor",
        pointer: "/floor_plane_cpu_ms_per_rotation",
        unit: "ms",
        goal: "",
    },
];

/// The floor's ladder (benches/operator/ladder.rs), one column per
/// concurrency.
const LADDER_ROWS: &[Row] = &[
    Row { label: "the floor: time", pointer: "/floor/seconds", unit: "s", goal: "" },
    Row {
        label: "+ the dry run that reads its Secret: time",
        pointer: "/rungs/probe/seconds",
        unit: "s",
        goal: "",
    },
    Row {
        label: "+ event, queued after the status: time",
        pointer: "/rungs/event/seconds",
        unit: "s",
        goal: "",
    },
    Row { label: "+ the operator's watches: time", pointer: "/rungs/watches/seconds", unit: "s", goal: "" },
    Row {
        label: "+ the operator's status in the same writes: time",
        pointer: "/rungs/status/seconds",
        unit: "s",
        goal: "",
    },
    Row { label: "the operator: time", pointer: "/operator/seconds", unit: "s", goal: "" },
    Row { label: "+ dry run / floor", pointer: "/rungs/probe/ratio_to_floor", unit: "×", goal: "" },
    Row { label: "+ event / floor", pointer: "/rungs/event/ratio_to_floor", unit: "×", goal: "" },
    Row { label: "+ watches / floor", pointer: "/rungs/watches/ratio_to_floor", unit: "×", goal: "" },
    Row { label: "+ status / floor", pointer: "/rungs/status/ratio_to_floor", unit: "×", goal: "" },
    Row { label: "the operator / floor", pointer: "/operator/ratio_to_floor", unit: "×", goal: "≤ 1.3" },
    Row {
        label: "the operator / the last rung (the operator's own work)",
        pointer: "/operator/ratio_to_last_rung",
        unit: "×",
        goal: "",
    },
    Row {
        label: "kube-apiserver + etcd CPU per rotation: the floor",
        pointer: "/floor/plane_cpu_ms_per_rotation",
        unit: "ms",
        goal: "",
    },
    Row { label: "… + dry run", pointer: "/rungs/probe/plane_cpu_ms_per_rotation", unit: "ms", goal: "" },
    Row { label: "… + event", pointer: "/rungs/event/plane_cpu_ms_per_rotation", unit: "ms", goal: "" },
    Row { label: "… + watches", pointer: "/rungs/watches/plane_cpu_ms_per_rotation", unit: "ms", goal: "" },
    Row { label: "… + status", pointer: "/rungs/status/plane_cpu_ms_per_rotation", unit: "ms", goal: "" },
    Row {
        label: "… the operator (its events included)",
        pointer: "/operator/plane_cpu_ms_per_rotation_with_events",
        unit: "ms",
        goal: "",
    },
];

/// Saves `results` and regenerates the page from every size saved.
pub fn write(docs: &Path, results: &Value) -> Result<()> {
    save(&docs.join("benchmarks"), results)?;
    regenerate(docs)
}

/// Saves a `make bench-peers` run and regenerates the page.
pub fn write_peers(docs: &Path, results: &Value) -> Result<()> {
    save(&docs.join("benchmarks/peers"), results)?;
    regenerate(docs)
}

fn save(dir: &Path, results: &Value) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let size = results["size"].as_u64().unwrap_or(0);
    std::fs::write(dir.join(format!("size-{size}.json")), serde_json::to_string_pretty(results)? + "\n")?;
    Ok(())
}

/// Every run saved in `dir`, smallest first.
fn load(dir: &Path) -> Result<Vec<Value>> {
    let mut runs: Vec<Value> = Vec::new();
    if !dir.exists() {
        return Ok(runs);
    }
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "json") {
            runs.push(serde_json::from_str(&std::fs::read_to_string(&path)?)?);
        }
    }
    runs.sort_by_key(|r| r["size"].as_u64().unwrap_or(0));
    Ok(runs)
}

fn regenerate(docs: &Path) -> Result<()> {
    let runs = load(&docs.join("benchmarks"))?;
    let peers = load(&docs.join("benchmarks/peers"))?;
    let mut md = page(&runs);
    md.push_str(&peers_section(&peers));
    std::fs::write(docs.join("benchmarks.md"), md)?;
    Ok(())
}

const PEER_ROWS: &[Row] = &[
    Row { label: "binary", pointer: "/binary_bytes", unit: "bytes", goal: "" },
    Row { label: "memory: VmRSS, nothing to do", pointer: "/memory/empty_rss_kib", unit: "KiB", goal: "" },
    Row { label: "first sync: time", pointer: "/first_sync/seconds", unit: "s", goal: "" },
    Row { label: "first sync: Upstash resets", pointer: "/first_sync/upstash_resets", unit: "", goal: "0" },
    Row { label: "first sync: Upstash GETs", pointer: "/first_sync/upstash_gets", unit: "", goal: "" },
    Row {
        label: "first sync: apiserver writes per resource",
        pointer: "/first_sync/writes_per_resource",
        unit: "",
        goal: "",
    },
    Row { label: "first sync: CPU", pointer: "/first_sync/cpu_ms", unit: "ms", goal: "" },
    Row {
        label: "memory: VmHWM after the first sync",
        pointer: "/memory/synced_hwm_kib",
        unit: "KiB",
        goal: "",
    },
    Row { label: "idle 60 s: CPU", pointer: "/idle/cpu_ms", unit: "ms", goal: "" },
    Row { label: "idle 60 s: Upstash calls", pointer: "/idle/upstash_calls", unit: "", goal: "0" },
    Row {
        label: "idle 60 s: apiserver requests (all clients)",
        pointer: "/idle/apiserver_requests",
        unit: "",
        goal: "",
    },
    Row {
        label: "restart: every object reconciled",
        pointer: "/restart/all_reconciled_seconds",
        unit: "s",
        goal: "",
    },
    Row { label: "restart: Upstash calls", pointer: "/restart/upstash_calls", unit: "", goal: "0" },
    Row { label: "restart: apiserver writes", pointer: "/restart/writes", unit: "", goal: "0" },
    Row { label: "memory: VmHWM restarted", pointer: "/memory/restarted_hwm_kib", unit: "KiB", goal: "" },
    Row {
        label: "memory: VmHWM restarted with 10,000 unrelated Secrets",
        pointer: "/memory/restarted_with_unrelated_hwm_kib",
        unit: "KiB",
        goal: "",
    },
    Row { label: "rotation burst: time", pointer: "/burst/seconds", unit: "s", goal: "" },
    Row {
        label: "rotation burst: the floor, same run and concurrency",
        pointer: "/burst/floor_seconds",
        unit: "s",
        goal: "",
    },
    Row { label: "rotation burst: time / floor", pointer: "/burst/ratio_to_floor", unit: "×", goal: "" },
    Row {
        label: "rotation burst: Upstash resets",
        pointer: "/burst/upstash_resets",
        unit: "",
        goal: "= burst",
    },
    Row {
        label: "rotation burst: apiserver writes per rotation",
        pointer: "/burst/writes_per_rotation",
        unit: "",
        goal: "",
    },
    Row { label: "rotation burst: CPU", pointer: "/burst/cpu_ms", unit: "ms", goal: "" },
];

fn peers_section(runs: &[Value]) -> String {
    if runs.is_empty() {
        return String::new();
    }
    let mut md = String::from(PEERS_HEADER);
    for run in runs {
        md.push_str(&format!(
            "\n### {} resources, a burst of {} ({} on {} CPUs)\n\n",
            run["size"],
            run["burst"],
            run["date"].as_str().unwrap_or(""),
            run["machine"]["cpus"]
        ));
        let columns = ["upstash-rotator".to_owned(), "ESO v0.16.2".to_owned()];
        md.push_str(&table(PEER_ROWS, &columns, &[run["operator"].clone(), run["eso"].clone()]));
    }
    md
}

const PEERS_HEADER: &str = "
## Side by side: External Secrets Operator

Generated by `make bench-peers SIZE=<N>` (`docs/benchmarks/peers/size-<N>.json`). ESO v0.16.2's core controller is
built from the Go module proxy (hack/testenv/eso.sh) and runs on the same control plane and simulator, alone while
measured, like the operator: both at concurrency 4, ESO without its client rate limit (the operator has none), no
leader election for either. ESO does this job the way someone would misuse it for it: per database a `Webhook`
generator that `POST`s the reset (its API key header in a Secret, as a user would keep it) and an `ExternalSecret`
with `refreshPolicy: OnChange` and `refreshInterval: 0s` (a new password when its annotations change, none on a
timer), so a rotation is an annotation bump where the operator's is a counter bump. \"Resources\" are
`RedisPasswordRotation`s for one, generator + `ExternalSecret` pairs for the other. The floor (the same hand-made
minimum as above, at concurrency 4) runs first in the same run, alone on the plane: the `time / floor` row measures
both sides against it.

ESO is not crash-safe for this job, whatever it costs:

- its first sync of a database *resets* its password (the generator is its only way to read it), where the operator
  reads it (`GET`);
- nothing records a reset before it is sent: a process killed between the reset and the Secret write loses the new
  password, and the next attempt resets again (the old password is already revoked);
- a Secret deleted or edited by hand makes ESO reset again (the operator restores it from a `GET`);
- with ESO's defaults (`refreshPolicy: Periodic`, `refreshInterval: 1h`) every password is reset every hour, and a
  restart after an hour resets them all at once;
- at `--concurrent` above 1, one Go `Webhook` generator value serves every call, and each call resets its HTTP
  client and the namespace its Secrets are read from, without a lock (`pkg/generator/webhook/webhook.go`). Runs here
  logged `http client not initialized` now and then (a call that was never sent, which ESO retries); with
  ExternalSecrets in several namespaces, the shared namespace field is the same race.

";
fn page(runs: &[Value]) -> String {
    let mut md = String::from(HEADER);
    md.push_str("\n## Scale\n\n");
    let sizes: Vec<String> = runs.iter().map(|r| format!("{} resources", r["size"])).collect();
    md.push_str(&table(ROWS, &sizes, runs));
    for run in runs {
        md.push_str(&format!(
            "\n## Rotation burst of {} ({} resources present)\n\n",
            run["burst"], run["size"]
        ));
        let bursts = run["bursts"].as_array().cloned().unwrap_or_default();
        let columns: Vec<String> =
            bursts.iter().map(|b| format!("concurrency {}", b["concurrency"])).collect();
        md.push_str(&table(BURST_ROWS, &columns, &bursts));
        let ladder = run["ladder"].as_array().cloned().unwrap_or_default();
        if !ladder.is_empty() {
            md.push_str(&format!(
                "\n### What each request costs: the floor's ladder ({} resources present)\n\n",
                run["size"]
            ));
            md.push_str(LADDER_TEXT);
            let columns: Vec<String> =
                ladder.iter().map(|s| format!("concurrency {}", s["concurrency"])).collect();
            md.push_str(&table(LADDER_ROWS, &columns, &ladder));
        }
    }
    md.push_str("\n## Runs\n\n");
    for run in runs {
        md.push_str(&format!(
            "- {} resources: {} on {} CPUs ({}); resources of others on the control plane: {}.\n",
            run["size"],
            run["date"].as_str().unwrap_or(""),
            run["machine"]["cpus"],
            run["machine"]["model"].as_str().unwrap_or(""),
            run["foreign_resources"]
        ));
    }
    md
}

/// One column per value in `columns`, one line per row.
fn table(rows: &[Row], columns: &[String], values: &[Value]) -> String {
    let mut md = format!(
        "| measure | goal |{}\n|---|---|{}\n",
        columns.iter().map(|c| format!(" {c} |")).collect::<String>(),
        "---|".repeat(columns.len())
    );
    for row in rows {
        md.push_str(&format!("| {} | {} |", row.label, row.goal));
        for value in values {
            md.push_str(&format!(" {} |", show(value.pointer(row.pointer), row.unit)));
        }
        md.push('\n');
    }
    md
}

fn show(value: Option<&Value>, unit: &str) -> String {
    let Some(value) = value.filter(|v| !v.is_null()) else { return "–".into() };
    let number = value.as_f64().unwrap_or(0.0);
    let text = match unit {
        "KiB" => format!("{:.1} MiB", number / 1024.0),
        "bytes" => format!("{:.1} MiB", number / 1024.0 / 1024.0),
        _ if number.fract() == 0.0 && number.abs() < 1e15 => format!("{number:.0}"),
        _ if number.abs() >= 100.0 => format!("{number:.0}"),
        _ if number.abs() >= 10.0 => format!("{number:.1}"),
        _ => format!("{number:.2}"),
    };
    match unit {
        "" | "KiB" | "bytes" => text,
        "×" => format!("{text}×"),
        _ => format!("{text} {unit}"),
    }
}

/// The image's size as podman reports it, when `make image` built one.
pub fn image_size() -> Value {
    let image = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/target/images/operator.image"));
    let Ok(image) = image else { return Value::Null };
    let output = std::process::Command::new("podman")
        .args(["image", "inspect", "--format", "{{.Size}}", image.trim()])
        .output();
    output
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse::<u64>().ok())
        .map_or(Value::Null, Value::from)
}

const LADDER_TEXT: &str = "The floor again, right after its plain burst at the same concurrency, with the operator's other requests
added one kind at a time, each made as the operator makes it: the dry run of an update that changes nothing, on
the Secret at the version last written (the operator's proof that its write will be admitted, and its read of the
Secret), an event after the final status, queued through the operator's own `EventQueue` (one kube-runtime
`Recorder` publishing them one at a time, not waited for: the rung's time ends with its last status, and its CPU is
read once every event is out); then, making all of those, with the operator's watches
open (the resources, the Secrets it labels and every other Secret's metadata, across the cluster, listed before the clock
starts; their events decoded into stores and dropped); then, with the watches still open, the intent and final status
as the operator writes them (two conditions with their texts, the credentials' fingerprints and a history of the
last 10 rotations, 1.5 to 2 KiB against the floor's 0.3), so the same writes carry more bytes and fields. The last
rung makes every request the operator makes for a rotation, with objects of its size, and receives every event it
receives; what separates it from the operator is the operator's own work on them: its queue, the reconciles the
echoes of its writes start, and its CPU on the same two cores. The ladder runs
once per concurrency, with the first pair; the operator's figures here are the median pair's.
Each rung is one run of 1,000 rotations, and runs of the same code on the same machine have differed by up to 0.6×
on one rung: one run's steps are an indication, several runs' are a finding.

";

const HEADER: &str = "# Benchmarks

Generated by `make bench SIZE=<N>` (benches/operator/); the figures of each size are in
`docs/benchmarks/size-<N>.json`. Do not edit by hand.

One run per size, on the local control plane (`make cluster-up`: etcd, kube-apiserver, kube-controller-manager on
127.0.0.1), one `upstash-sim`, and the operator's static musl release binary (the image's build) watching every
namespace at its default settings (`--concurrency 4` unless a row says otherwise). Every figure is measured in the
same run as what it is compared with.

How each phase runs:

- **First sync**: the bench creates every resource (32 requests in flight) and waits until all are `Ready` at
  rotation 0. Counts are differences of the simulator's request log, the apiserver's `apiserver_request_total` and
  the operator's `upstash_rotator_reconciles_total`; the bench's own creates are subtracted.
- **Idle**: 60 s with nothing changing, after the first sync, once the apiserver is quiet (at most 5 requests in 5 s;
  kube-controller-manager's garbage collector checks each new owner it has not seen yet, at 20 requests per second).
  The operator's own requests are its `upstash_rotator_kubernetes_requests_total`: a watch ends after about 5
  minutes (kube-runtime's server-side timeout) and is opened again, so an idle minute holds about one per watch
  every 5 minutes; the apiserver's count of all clients includes kube-controller-manager's.
- **Restart**: SIGTERM, then a new process; \"every resource reconciled\" is when its reconcile counter reaches the
  number of resources. The restart's memory peak is the median of 3 starts, one after the other (each start's is
  in the JSON file); the other restart figures are the last start's.
- **Latency**: 100 counter bumps one after the other; the bench watches the Secrets and the resources.
- **Burst**: the operator restarted at the concurrency shown, then 1,000 counters raised at once (32 requests in
  flight); from the first patch until every rotation is applied (the bench's own patches are inside that time).
  Right before each, with the operator stopped, the floor's burst at the same concurrency (and, before the first,
  its ladder, at 4 and 16): the speed of a shared machine drifts over minutes, so the two sides of a ratio are
  measured seconds apart, with the same objects present. Three such pairs per concurrency: one burst takes 7 to 17 s
  here, and the ratio has moved by 0.6× from one burst to the next, so the table shows the pair with the median ratio
  (all its figures) and the lowest and highest ratios beside it.
- **Memory**: `VmHWM` (the peak) and `VmRSS` from `/proc`. The unrelated Secrets are 10,000 Secrets in another
  namespace; the operator watches the metadata of every Secret but its own (for API-key Secrets) but keeps only the versions of those
  a resource names.
- **Secret event**: 2,000 of those unrelated Secrets relabelled, once the restarted operator is quiet (under 5 ms of
  CPU in 500 ms: its start lists every Secret after the resources); the operator's CPU time (all threads,
  `/proc/<pid>/task/*/schedstat`) divided by the events.

**The floor** is the least a crash-safe rotation can cost, done by hand in the bench with the same clients on the
same kind of objects (1,000 `RedisPasswordRotation`s and their Secrets in another namespace, created for each round
and deleted after it, while the operator is stopped, since it would reconcile them): per
resource, the counter patch (the same write the bench makes to start each of the operator's rotations, so both sides
carry it), the intent status patch on the version that patch returned, the reset, the Secret apply, the final status
patch; at the same concurrency as the operator. It checks nothing, reads nothing and publishes no event. The bench's
own watch, which sees the operator's rotations finish (the resources and the labelled Secrets of the namespace),
watches the floor's namespace too, and the floor's Secrets carry the operator's label: the instrument costs both sides
the same. The floor has no watch of its own, though any controller needs one to learn of a raised counter. The
operator does more per rotation, and each of those is a safety or a report users asked for:

- before the intent, it proves that the Secret write will be admitted with a server-side dry run, and reads the
  Secret (its data and owner) with the same request: when its watch shows the Secret at the version the status
  records (the operator's own last write), the dry run is a merge patch that changes nothing and carries that version
  as its precondition, so it passes the admission an update passes and answers with the Secret at exactly that
  version. A Secret changed since is read then, and proven with a dry run of the apply. The resource is not read: it
  decides on the version its watch delivered. The intent and the Secret write carry those versions as preconditions,
  so a view that is behind ends in a 409. The API key's Secret is read once per version: while its watch reports the
  version last read, that read's copy serves (a burst on one key reads it once);
- it publishes a `Rotated` event per rotation, after the final status: a report, queued and published by one task in
  the background, so no rotation waits for it (`status.history` is the durable record, and what `make chaos` counts
  rotations by). A burst's events go on being published after its last status: the burst table counts the events
  published by then and by the time they are all out (up to 60 s later), and the apiserver's CPU both over the burst
  and with those events included;
- with `deletionPolicy: Retain` only, it adds a finalizer before the intent and removes it after the final status:
  that Secret outlives the resource, so a deletion must wait for a reset in flight. With `Delete` (the default, and
  the bench's) the Secret goes with the resource and there is nothing to wait for, so there is no finalizer and no
  such write.

The bench's resources set `verify: false`, since the floor does not check the data plane either.
";
