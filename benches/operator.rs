//! `make bench`: how fast the operator syncs and rotates, how idle it is, and
//! how much memory it keeps, against baselines measured in the same run.
//!
//! Needs the local control plane (`make bench` starts it). Every loop is
//! bounded in count and time; all traffic stays on 127.0.0.1.

use std::{
    process::Stdio,
    time::{Duration, Instant},
};

use k8s_openapi::{
    ByteString,
    api::core::v1::{Namespace, Secret},
};
use kube::{
    Api, Client, CustomResourceExt as _,
    api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncBufReadExt as _, BufReader},
    process::{Child, Command},
};
use upstash_rotator::crd::{RedisPasswordRotation, RedisPasswordRotationSpec};

const RESOURCES: usize = 20;
const LIMIT: Duration = Duration::from_secs(120);
const EMAIL: &str = "bench@example.com";
const KEY: &str = "bench-key-0123456789";

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

async fn sim() -> Result<(Child, String)> {
    let mut child = Command::new(testkit::binary("upstash-sim"))
        .args(["--listen", "127.0.0.1:0", "--account", &format!("{EMAIL}:{KEY}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let mut line = String::new();
    let stdout = child.stdout.take().ok_or("no stdout")?;
    tokio::time::timeout(Duration::from_secs(10), BufReader::new(stdout).read_line(&mut line)).await??;
    let url = line.trim().strip_prefix("upstash-sim listening on ").ok_or("no address")?.to_owned();
    Ok((child, url))
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()
}

fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

async fn wait_all(api: &Api<RedisPasswordRotation>, rotation: i64) -> Result<Duration> {
    let started = Instant::now();
    loop {
        let list = api.list(&Default::default()).await?;
        let done = list.items.iter().filter(|r| {
            r.status.as_ref().is_some_and(|s| s.rotation == Some(rotation) && s.pending_rotation.is_none())
                && r.status
                    .as_ref()
                    .is_some_and(|s| s.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        });
        if done.count() == RESOURCES {
            return Ok(started.elapsed());
        }
        if started.elapsed() > LIMIT {
            return Err("resources did not become ready in time".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn requests(http: &reqwest::Client, sim: &str) -> Result<u64> {
    let log: Value = http.get(format!("{sim}/_sim/requests")).send().await?.json().await?;
    Ok(log["counts"].as_object().map_or(0, |routes| {
        routes
            .values()
            .flat_map(|dbs| dbs.as_object().into_iter().flat_map(|m| m.values()))
            .filter_map(Value::as_u64)
            .sum()
    }))
}

#[tokio::main]
async fn main() -> Result<()> {
    upstash_rotator::tls::install_crypto_provider();
    let client =
        Client::try_default().await.map_err(|e| format!("KUBECONFIG: run through `make bench` ({e})"))?;
    let http = reqwest::Client::new();
    let (_sim, sim_url) = sim().await?;

    let crds: Api<
        k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
    > = Api::all(client.clone());
    crds.patch(
        "redispasswordrotations.upstash-rotator.io",
        &PatchParams::apply("bench").force(),
        &Patch::Apply(RedisPasswordRotation::crd()),
    )
    .await?;
    let ns = format!("bench-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &Namespace {
                metadata: ObjectMeta { name: Some(ns.clone()), ..Default::default() },
                ..Default::default()
            },
        )
        .await?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let creds = Secret {
        metadata: ObjectMeta { name: Some("upstash-api".into()), ..Default::default() },
        data: Some(
            [("email".to_owned(), ByteString(EMAIL.into())), ("apiKey".to_owned(), ByteString(KEY.into()))]
                .into(),
        ),
        ..Default::default()
    };
    secrets.create(&PostParams::default(), &creds).await?;
    let mut ids = Vec::new();
    for i in 0..RESOURCES {
        let db: Value = http
            .post(format!("{sim_url}/v2/redis/database"))
            .basic_auth(EMAIL, Some(KEY))
            .json(&json!({"database_name": format!("bench-{i}"), "primary_region": "us-east-1"}))
            .send()
            .await?
            .json()
            .await?;
        ids.push(db["database_id"].as_str().ok_or("id")?.to_owned());
    }

    // Baseline: the least a sync can cost, done by hand with the same
    // clients: one GET from Upstash and one Secret apply per resource.
    let started = Instant::now();
    for (i, id) in ids.iter().enumerate() {
        let db: Value = http
            .get(format!("{sim_url}/v2/redis/database/{id}"))
            .basic_auth(EMAIL, Some(KEY))
            .send()
            .await?
            .json()
            .await?;
        let secret = Secret {
            metadata: ObjectMeta { name: Some(format!("baseline-{i}")), ..Default::default() },
            data: Some(
                [(
                    "UPSTASH_REDIS_PASSWORD".to_owned(),
                    ByteString(db["password"].as_str().unwrap_or("").into()),
                )]
                .into(),
            ),
            ..Default::default()
        };
        secrets
            .patch(&format!("baseline-{i}"), &PatchParams::apply("bench").force(), &Patch::Apply(&secret))
            .await?;
    }
    let baseline = started.elapsed();

    // The operator as a process, watching only the bench namespace.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let mut operator = Command::new(testkit::binary("upstash-rotator"))
        .args([
            "run",
            "--allow-insecure-upstash-url",
            "--upstash-api-url",
            &sim_url,
            "--namespace",
            &ns,
            "--http-bind-address",
        ])
        .arg(format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let pid = operator.id().ok_or("operator pid")?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_empty = rss_kib(pid).unwrap_or(0);

    let resources: Api<RedisPasswordRotation> = Api::namespaced(client.clone(), &ns);
    let started = Instant::now();
    for (i, id) in ids.iter().enumerate() {
        let spec = RedisPasswordRotationSpec::new(id.as_str(), "upstash-api");
        resources.create(&PostParams::default(), &RedisPasswordRotation::new(&format!("r{i}"), spec)).await?;
    }
    wait_all(&resources, 0).await?;
    let sync = started.elapsed();

    let started = Instant::now();
    for i in 0..RESOURCES {
        resources
            .patch(&format!("r{i}"), &PatchParams::default(), &Patch::Merge(json!({"spec": {"rotation": 1}})))
            .await?;
    }
    wait_all(&resources, 1).await?;
    let rotate = started.elapsed();

    // Idle: nothing changes for 10 s.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (calls_before, cpu_before) = (requests(&http, &sim_url).await?, cpu_ticks(pid).unwrap_or(0));
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (calls_after, cpu_after) = (requests(&http, &sim_url).await?, cpu_ticks(pid).unwrap_or(0));
    let rss_loaded = rss_kib(pid).unwrap_or(0);
    let resets: u64 = {
        let mut n = 0;
        for id in &ids {
            let v: Value = http.get(format!("{sim_url}/_sim/databases/{id}")).send().await?.json().await?;
            n += v["resets"].as_u64().unwrap_or(0);
        }
        n
    };

    let _ = operator.kill().await;
    let _ = namespaces.delete(&ns, &DeleteParams::default()).await;

    let per = |d: Duration| d.as_secs_f64() * 1000.0 / RESOURCES as f64;
    println!("upstash-rotator bench: {RESOURCES} resources, one upstash-sim, local control plane");
    println!("  baseline (hand-made GET + Secret apply)  {:8.1} ms/resource", per(baseline));
    println!(
        "  operator first sync (create → Ready)      {:8.1} ms/resource  ratio {:.2}x baseline",
        per(sync),
        sync.as_secs_f64() / baseline.as_secs_f64()
    );
    println!(
        "  operator rotation (bump → applied)        {:8.1} ms/resource  ratio {:.2}x baseline",
        per(rotate),
        rotate.as_secs_f64() / baseline.as_secs_f64()
    );
    println!("  resets for {RESOURCES} counter steps                {resets}");
    println!(
        "  idle 10 s: Upstash calls {}, CPU ticks {}",
        calls_after - calls_before,
        cpu_after.saturating_sub(cpu_before)
    );
    println!(
        "  memory (VmRSS) with 0 resources {rss_empty} KiB, with {RESOURCES}: {rss_loaded} KiB (ratio {:.2})",
        rss_loaded as f64 / rss_empty.max(1) as f64
    );
    if resets != RESOURCES as u64 || calls_after != calls_before {
        return Err("expected exactly one reset per resource and no calls while idle".into());
    }
    Ok(())
}
