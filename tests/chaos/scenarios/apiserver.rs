//! Scenario 8: kube-apiserver stopped and started again mid-burst, with the
//! same command line and the same etcd (hack/testenv/restart-apiserver.sh),
//! down for up to 5 s, or for 12 to 30 s one time in four (in two at the CI
//! size).
//! Runs alone: every other namespace would feel it too.

use std::{path::PathBuf, time::Duration};

use anyhow::{Result, bail};
use futures::future::BoxFuture;
use kube::Client;

use super::common::{Ctx, absorb, close, heal, replicas, wait_for_intent};
use crate::{report::ScenarioReport, rng::Rng, stage::Stage};

/// How soon after the apiserver is back a raised counter must be applied.
pub const CATCH_UP: Duration = Duration::from_secs(20);
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/hack/testenv/restart-apiserver.sh");

/// Whether `KUBECONFIG` is the plane this checkout's up.sh started (the
/// only one the restart script may touch).
pub fn plane_is_ours() -> bool {
    let ours = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/target/testenv/kubeconfig"));
    let given = std::env::var_os("KUBECONFIG").map(PathBuf::from);
    match (ours.canonicalize(), given.and_then(|g| g.canonicalize().ok())) {
        (Ok(a), Some(b)) => a == b,
        _ => false,
    }
}

pub async fn run(ctx: &Ctx, mut rng: Rng, report: &mut ScenarioReport) -> Result<()> {
    if !plane_is_ours() {
        report.skipped = Some(
            "KUBECONFIG is not the plane started by this checkout's hack/testenv/up.sh, so it cannot be restarted"
                .into(),
        );
        return Ok(());
    }
    let mut knobs = ctx.knobs;
    knobs.converge_limit = CATCH_UP;
    let stage =
        Stage::new("apiserver-restart", &ctx.client, knobs, knobs.resources, replicas(1, Some(4))).await?;
    let mut healthy = Ok(());
    for round in 0..knobs.rounds {
        let snapshot = stage.begin_round().await;
        let mut bump_rng = rng.fork(&format!("bumps-{round}"));
        let chaos_rng = rng.fork(&format!("chaos-{round}"));
        let (mut tracks, ()) = tokio::join!(stage.burst(&mut bump_rng), chaos(&stage, chaos_rng));
        healthy = ensure_healthy(&ctx.client).await;
        heal(&stage).await;
        // The apiserver is back: a counter raised now is a change a live
        // operator sees at once. No Upstash fault is in play, so no backoff
        // justifies a delay: it must be applied within CATCH_UP.
        stage.raise_all(&mut tracks).await;
        let result = stage.finish_round(snapshot, tracks).await;
        absorb(report, result);
        report.runs += 1;
        if healthy.is_err() {
            break;
        }
    }
    close(&stage, ctx, report).await;
    healthy
}

/// Stops kube-apiserver with `signal`, keeps it down `down`, starts it again
/// and waits for /readyz.
pub async fn restart(signal: &str, down: Duration) -> Result<()> {
    let out = tokio::process::Command::new(SCRIPT)
        .args(["--signal", signal, "--down", &format!("{:.1}", down.as_secs_f64())])
        .stdin(std::process::Stdio::null())
        .output()
        .await?;
    if !out.status.success() {
        bail!("{SCRIPT} failed ({}):\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// The apiserver answers again, restarting it once more if it does not:
/// the test binaries after this one need it.
pub async fn ensure_healthy(client: &Client) -> Result<()> {
    for attempt in 0..2 {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while tokio::time::Instant::now() < deadline {
            if client.apiserver_version().await.is_ok() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        if attempt == 0 && plane_is_ours() {
            restart("TERM", Duration::ZERO).await?;
        }
    }
    bail!("kube-apiserver is not healthy after the scenario")
}

fn chaos(stage: &Stage, mut rng: Rng) -> BoxFuture<'_, ()> {
    Box::pin(async move {
        let full = stage.knobs.rounds > 1;
        let most = if full { 2 } else { 1 };
        let mut done = 0;
        while !stage.burst_over() && done < most {
            stage.nap(rng.millis(300, 3000)).await;
            if rng.chance(60) {
                let _ = wait_for_intent(stage, Duration::from_secs(5)).await;
            }
            let signal = if rng.chance(50) { "TERM" } else { "KILL" };
            // Mostly a restart, which a replica rides through on its lease
            // (each watch resumes into a 410); one time in four (in two at
            // the CI size, with its one restart) a longer outage (a control
            // plane upgrade, an etcd election), which outlasts the lease: the
            // replica exits and starts afresh.
            let long = rng.chance(if full { 25 } else { 50 });
            let down = if long { rng.millis(12_000, 30_000) } else { rng.millis(0, 5000) };
            match restart(signal, down).await {
                Ok(()) => {
                    stage.count_fault();
                    stage.note(format!("kube-apiserver stopped ({signal}) for {:.1} s", down.as_secs_f64()));
                    if done + 1 == most {
                        // Judge how the operator catches up from here.
                        stage.cut_burst();
                    }
                }
                Err(e) => {
                    stage.note(format!("apiserver restart failed: {e:#}"));
                    break;
                }
            }
            done += 1;
        }
    })
}
