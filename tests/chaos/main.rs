//! `make chaos`: the fault campaign. Runs the real operator binary (one or
//! several processes) against the real local control plane and the real
//! `upstash-sim`, injects faults, and counts violations of the product's
//! promise: never lose a password, never reset twice for one counter value
//! unless announced, never report a rotation that did not happen.
//!
//! `CHAOS_SIZE=ci|full`, `CHAOS_SEED=<n>` (printed; replays the choices),
//! `CHAOS_ONLY=<key,...>`, `CHAOS_PARALLEL=<n>`, `CHAOS_REPORT=<path>`.
//! The last line is the verdict; the exit code is non-zero on anything
//! lost, silent, stuck or leaked.

use testkit as support;

mod config;
mod invariants;
mod leaks;
mod processes;
mod report;
mod rng;
mod scenarios;
mod stage;
mod tracking;

use std::{process::ExitCode, sync::Arc, time::Duration};

use config::{Config, Size};
use report::{RunInfo, ScenarioReport};
use rng::Rng;
use scenarios::common::Ctx;
use tokio::sync::Semaphore;

fn main() -> ExitCode {
    // Behave like a libtest binary towards `cargo test --list` and name filters.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        println!("chaos: test");
        return ExitCode::SUCCESS;
    }
    if args.iter().any(|a| !a.starts_with('-') && !"chaos".contains(a.as_str())) {
        return ExitCode::SUCCESS;
    }
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("chaos: {e}");
            return ExitCode::from(2);
        }
    };
    if std::env::var_os("KUBECONFIG").is_none() {
        eprintln!(
            "chaos: KUBECONFIG is not set: run `make chaos` (or `make test`), or `make cluster-up` and export what it prints"
        );
        return ExitCode::FAILURE;
    }
    let size = match config.size {
        Size::Ci => "ci",
        Size::Full => "full",
    };
    println!(
        "chaos: size={size} seed={} parallel={} (replay: CHAOS_SEED={} CHAOS_SIZE={size})",
        config.seed, config.parallel, config.seed
    );
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("chaos: cannot start a runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let started = std::time::Instant::now();
    // What was tested: the checkout as it is when the campaign starts.
    let (date, tested) = (command("date", &["-u", "+%Y-%m-%d %H:%M UTC"]), commit());
    let reports = runtime.block_on(campaign(config.clone()));
    runtime.shutdown_timeout(Duration::from_secs(10));
    let elapsed = started.elapsed();

    let totals = report::totals(&reports);
    let too_few =
        config.size == Size::Full && config.only.is_empty() && totals.faults < config::FULL_MIN_FAULTS;
    println!("\n{}", report::table(&reports));
    let details = report::details(&reports);
    if !details.is_empty() {
        println!("{details}");
    }
    if let Some(path) = &config.report_path {
        let info = RunInfo { seed: config.seed, size, date, commit: tested, elapsed };
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        match std::fs::write(path, report::markdown(&info, &reports, scenarios::ALL)) {
            Ok(()) => println!("chaos: wrote {}", path.display()),
            Err(e) => println!("chaos: cannot write {}: {e}", path.display()),
        }
    }
    println!("chaos: seed {} size {size}, {:.0} s", config.seed, elapsed.as_secs_f64());
    if too_few {
        println!(
            "chaos: a full campaign must inject at least {} faults; this one injected {}",
            config::FULL_MIN_FAULTS,
            totals.faults
        );
    }
    println!("{}", report::final_line(&totals));
    if report::failed(&totals) || too_few { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}

fn command(program: &str, args: &[&str]) -> String {
    std::process::Command::new(program)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".into())
}

fn commit() -> String {
    let hash = command("git", &["rev-parse", "--short=12", "HEAD"]);
    let dirty = !command("git", &["status", "--porcelain", "--untracked-files=no"]).is_empty();
    if dirty { format!("{hash} + uncommitted changes") } else { hash }
}

async fn campaign(config: Config) -> Vec<ScenarioReport> {
    let client = support::admin_client().await;
    support::install_crds(&client, &support::operator::committed_crds()).await;
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        knobs: config.knobs(),
        log_dir: std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("chaos-{}", config.seed)),
    });
    println!("chaos: operator logs (redacted) go to {}", ctx.log_dir.display());
    // First the harness proves it can see each kind of violation.
    if let Err(e) = scenarios::selfcheck::run(&ctx).await.map(|found| println!("chaos: self-check: {found}"))
    {
        let mut r = ScenarioReport::new("self-check", "the harness's own detection");
        r.error = Some(format!("{e:#}"));
        return vec![r];
    }
    let keys: Vec<&'static str> =
        scenarios::ALL.iter().map(|(k, _, _)| *k).filter(|k| config.wants(k)).collect();
    // The apiserver restart disturbs every namespace: it runs alone, last.
    let (alone, together): (Vec<_>, Vec<_>) = keys.iter().partition(|k| **k == "apiserver-restart");

    let gate = Arc::new(Semaphore::new(config.parallel));
    let mut handles = Vec::new();
    for key in together {
        let (ctx, gate, seed) = (ctx.clone(), gate.clone(), config.seed);
        handles.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await;
            one(key, &ctx, seed).await
        }));
    }
    let mut reports = Vec::new();
    for (handle, key) in handles.into_iter().zip(keys.iter().filter(|k| **k != "apiserver-restart")) {
        reports.push(match handle.await {
            Ok(r) => r,
            Err(e) => {
                let mut r = ScenarioReport::new(key, scenarios::title(key));
                r.error = Some(format!("the scenario panicked: {e}"));
                r
            }
        });
    }
    for key in alone {
        reports.push(one(key, &ctx, config.seed).await);
    }
    if let Err(e) = scenarios::apiserver::ensure_healthy(&client).await {
        let mut r = ScenarioReport::new("apiserver-restart", scenarios::title("apiserver-restart"));
        r.error = Some(format!("{e:#}"));
        reports.push(r);
    }
    reports.sort_by_key(|r| scenarios::ALL.iter().position(|(k, _, _)| *k == r.key));
    reports
}

/// One scenario, bounded in time, with its own random stream.
async fn one(key: &'static str, ctx: &Ctx, seed: u64) -> ScenarioReport {
    let rng = Rng::new(seed).fork(key);
    println!("chaos: [{key}] started");
    let limit = ctx.knobs.scenario_limit;
    let report = match tokio::time::timeout(limit, scenarios::run(key, ctx, rng)).await {
        Ok(r) => r,
        Err(_) => {
            let mut r = ScenarioReport::new(key, scenarios::title(key));
            r.error = Some(format!("did not finish within {limit:?}"));
            r
        }
    };
    let t = report::totals(std::slice::from_ref(&report));
    println!(
        "chaos: [{key}] {} in {:.0} s: {}",
        if report.failed() { "FAIL" } else { "ok" },
        report.elapsed.as_secs_f64(),
        report::final_line(&t).trim_start_matches("chaos: ")
    );
    report
}
