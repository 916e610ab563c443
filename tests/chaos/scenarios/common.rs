//! What every scenario shares: the round loop (burst with chaos alongside,
//! heal, converge, check) and the end-of-scenario leak scan.

use std::{path::PathBuf, sync::atomic::Ordering, time::Duration};

use futures::future::BoxFuture;
use kube::{Client, api::ListParams};
use serde_json::{Value, json};

use crate::{
    config::Knobs,
    leaks,
    processes::{Launch, save_logs},
    report::ScenarioReport,
    rng::Rng,
    stage::{RoundResult, Stage},
};

/// What scenarios get from the campaign.
pub struct Ctx {
    pub client: Client,
    pub knobs: Knobs,
    /// Where replicas' logs are saved (redacted) for a post-mortem.
    pub log_dir: PathBuf,
}

/// `n` replicas on the namespace, with election when `lease` is given.
pub fn replicas(n: usize, lease: Option<u64>) -> impl Fn(&str, &str) -> Vec<Launch> {
    replicas_logging(n, lease, false)
}

/// `replicas`, logging every Kubernetes request when `requests` (log triggers).
pub fn replicas_logging(n: usize, lease: Option<u64>, requests: bool) -> impl Fn(&str, &str) -> Vec<Launch> {
    move |ns: &str, url: &str| {
        (0..n)
            .map(|i| Launch {
                identity: format!("replica-{}", (b'a' + i as u8) as char),
                api_url: url.to_owned(),
                namespace: ns.to_owned(),
                election: lease,
                // Both formats are scanned for leaks: text for one replica, JSON for the next.
                json_logs: i % 2 == 1,
                log_requests: requests,
            })
            .collect()
    }
}

/// The chaos of one burst: runs alongside the counter bumps, must undo what
/// it did (resume, restart, remove) before it returns.
pub type Chaos = for<'a> fn(&'a Stage, Rng) -> BoxFuture<'a, ()>;

/// Rounds of burst + chaos, heal, converge and check, folded into `report`.
pub async fn rounds(stage: &Stage, rng: &mut Rng, report: &mut ScenarioReport, chaos: Chaos) {
    for round in 0..stage.knobs.rounds {
        let snapshot = stage.begin_round().await;
        let mut bump_rng = rng.fork(&format!("bumps-{round}"));
        let chaos_rng = rng.fork(&format!("chaos-{round}"));
        let (tracks, ()) = tokio::join!(stage.burst(&mut bump_rng), chaos(stage, chaos_rng));
        heal(stage).await;
        let result = stage.finish_round(snapshot, tracks).await;
        absorb(report, result);
        report.runs += 1;
    }
}

/// Clears simulator faults and resumes paused replicas; they restart if down.
pub async fn heal(stage: &Stage) {
    if let Err(e) = stage.clear_faults().await {
        stage.note(format!("cannot clear faults: {e}"));
    }
    let mut fleet = stage.fleet.lock().await;
    for op in &mut fleet.operators {
        op.resume();
        op.down_until = None;
    }
    if let Err(e) = fleet.supervise().await {
        stage.note(format!("an operator failed to restart: {e}"));
    }
}

pub fn absorb(report: &mut ScenarioReport, result: RoundResult) {
    for ledger in &result.ledgers {
        report.steps += ledger.steps.iter().map(|s| s.advances).sum::<u64>();
        report.resets += ledger.total_resets;
        report.count.add(&ledger.count());
        report.details.extend(ledger.describe());
    }
    let round = report.runs + 1;
    match result.converged_after {
        Some(d) => {
            report.converge.push(d);
            // Within the limit, but slow enough to be worth a look.
            if d > result.limit / 2 {
                report.slow_rounds += 1;
                report.details.push(format!(
                    "round {round} converged in {:.1} s, over half its limit of {} s (faults healed at {:.0})",
                    d.as_secs_f64(),
                    result.limit.as_secs(),
                    result.healed_at
                ));
            }
        }
        None => report.details.push(format!(
            "round {round} did not converge in time (faults healed at {:.0})",
            result.healed_at
        )),
    }
}

/// Leak scan over everything the operator wrote, fault count, logs saved,
/// replicas stopped.
pub async fn close(stage: &Stage, ctx: &Ctx, report: &mut ScenarioReport) {
    let needles = stage.needles();
    for (source, text) in stage.texts().await {
        for leak in leaks::scan(&source, &text, &needles) {
            report.leaks += 1;
            report.details.push(format!("LEAK: {} in {}", leak.kind, leak.source));
        }
    }
    report.faults += stage.sim_faults().await + stage.other_faults.load(Ordering::Relaxed);
    let mut fleet = stage.fleet.lock().await;
    // Restarts are expected (lost leadership exits by design): show the first
    // ones with their last lines, count the rest.
    let exits = fleet.own_exits();
    for exit in exits.iter().take(2) {
        report.details.push(leaks::redact(exit, &needles));
    }
    if exits.len() > 2 {
        report.details.push(format!("... and {} more exits of replicas by themselves", exits.len() - 2));
    }
    let dir = ctx.log_dir.join(&stage.ns.name);
    save_logs(&dir, &fleet.logs(), |t| leaks::redact(t, &needles));
    if report.failed() || report.slow_rounds > 0 {
        let shown = dir.strip_prefix(env!("CARGO_MANIFEST_DIR")).unwrap_or(&dir);
        report.details.push(format!("operator logs (redacted): {}", shown.display()));
    }
    fleet.stop().await;
    drop(fleet);
    report.details.extend(stage.notes());
}

/// A reset or GET fault for one database, used once.
pub fn fault(route: &str, database_id: &str, action: Value) -> Value {
    json!({"route": route, "database_id": database_id, "times": 1, "action": action})
}

pub fn delay(ms: u64) -> Value {
    json!({"kind": "delay", "ms": ms})
}

/// Waits until some resource has an intent recorded (bounded); returns its index.
pub async fn wait_for_intent(stage: &Stage, limit: Duration) -> Option<usize> {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline && !stage.burst_over() {
        // One list for all resources: cheap enough to poll this often.
        if let Ok(list) = stage.resources().list(&ListParams::default()).await {
            let pending =
                list.items.iter().find(|r| r.status.as_ref().is_some_and(|s| s.pending_rotation.is_some()));
            if let Some(r) = pending {
                return stage.dbs.iter().position(|d| Some(&d.resource) == r.metadata.name.as_ref());
            }
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    None
}
