//! The fault scenarios. Each runs in namespaces of its own with its own
//! simulator; `common` holds the round loop they share.

pub mod apiserver;
pub mod common;
pub mod election;
pub mod kill;
pub mod namespace;
pub mod protection;
pub mod replicas;
pub mod secret_writes;
pub mod selfcheck;
pub mod sim_faults;
pub mod user_edits;

use super::{report::ScenarioReport, rng::Rng};
use common::Ctx;

/// Key (for `CHAOS_ONLY`), title, what it does.
pub const ALL: &[(&str, &str, &str)] = &[
    (
        "kill9",
        "operator killed mid-rotation",
        "one replica, `kill -9` at random points of rotation bursts (often right after an intent was recorded or while a reset is in flight), restarted after a random pause",
    ),
    (
        "sim-faults",
        "every Upstash fault",
        "one replica; on reset-password and on GET: `drop_after_apply`, `delay` past the 3 s request timeout, `respond` 500, 503, 429 with and without `Retry-After`, `drop`",
    ),
    (
        "no-election",
        "two replicas without election",
        "two replicas on the same namespace without leader election (what a rolling update does), sometimes a slow reset, sometimes one replica killed; bursts of at least 20 s",
    ),
    (
        "election-kill",
        "leader killed",
        "two replicas with leader election (4 s lease); the leader is killed with `kill -9` at random points and restarted",
    ),
    (
        "cred-protection",
        "Credential Protection with lost answers",
        "Credential Protection on every database and reset answers lost (`drop_after_apply`, up to three in a row); `RotationNeedsAttention` is answered by raising the counter",
    ),
    (
        "user-edits",
        "Secret edited or deleted during recovery",
        "a reset fault (`drop_after_apply`, `drop`, 503) puts a rotation in recovery, then the user edits the Secret's password or deletes the Secret",
    ),
    (
        "secret-writes",
        "Secret writes denied, then healed",
        "a ValidatingAdmissionPolicy denies CREATE/UPDATE of Secrets in the namespace for 2-8 s at a time, then is removed",
    ),
    (
        "apiserver-restart",
        "kube-apiserver restarted",
        "one replica with leader election (the chart's default); kube-apiserver stopped (TERM or KILL) mid-burst and started again with the same command line and etcd after 0-5 s (one time in four, in two at the CI size, after 12-30 s: an outage through which every watch meets error after error and the replica's lease runs out); once it is ready, every counter is raised again and must be applied within 20 s (no Upstash fault is in play, so no backoff excuses a delay)",
    ),
    (
        "paused-leader",
        "leader paused past its lease",
        "two replicas with election; the leader is stopped with SIGSTOP past its 4 s lease at random points, the moment it logs the request that records an intent (then for 9-13 s, past the new leader's 8 s in-flight window), right after an intent was recorded (slow reset), and during a recovery GET (a delayed GET), then continued with SIGCONT; bursts of at least 25 s",
    ),
    (
        "namespace-delete",
        "namespace deleted mid-rotation",
        "a namespace is deleted while its rotations are in flight (slow resets); it must disappear within the bound, with no extra reset",
    ),
];

pub fn title(key: &str) -> &'static str {
    ALL.iter().find(|(k, _, _)| *k == key).map_or("", |(_, t, _)| t)
}

/// Runs one scenario to its report.
pub async fn run(key: &'static str, ctx: &Ctx, rng: Rng) -> ScenarioReport {
    let mut report = ScenarioReport::new(key, title(key));
    let started = tokio::time::Instant::now();
    let outcome = match key {
        "kill9" => kill::run(ctx, rng, &mut report).await,
        "sim-faults" => sim_faults::run(ctx, rng, &mut report).await,
        "no-election" => replicas::run(ctx, rng, &mut report).await,
        "election-kill" => election::run_kill(ctx, rng, &mut report).await,
        "cred-protection" => protection::run(ctx, rng, &mut report).await,
        "user-edits" => user_edits::run(ctx, rng, &mut report).await,
        "secret-writes" => secret_writes::run(ctx, rng, &mut report).await,
        "apiserver-restart" => apiserver::run(ctx, rng, &mut report).await,
        "paused-leader" => election::run_pause(ctx, rng, &mut report).await,
        "namespace-delete" => namespace::run(ctx, rng, &mut report).await,
        other => Err(anyhow::anyhow!("unknown scenario {other}")),
    };
    if let Err(e) = outcome {
        report.error = Some(format!("{e:#}"));
    }
    report.elapsed = started.elapsed();
    report
}
