//! The campaign's output: a table per scenario, the violations, the final
//! line, and the generated docs/reliability.md.

use std::{fmt::Write as _, time::Duration};

use super::invariants::{Count, median_max};

/// Everything one scenario produced.
#[derive(Clone, Debug, Default)]
pub struct ScenarioReport {
    pub key: &'static str,
    pub title: &'static str,
    pub runs: u32,
    /// Counter steps the operator applied, and resets Upstash saw.
    pub steps: u64,
    pub resets: u64,
    pub faults: u64,
    pub count: Count,
    pub leaks: u64,
    pub converge: Vec<Duration>,
    /// Rounds that converged, but in more than half the time allowed.
    pub slow_rounds: u32,
    /// One line per violation or notable event.
    pub details: Vec<String>,
    /// The scenario could not run to the end (harness or environment).
    pub error: Option<String>,
    /// Why the scenario did not run at all (environment), if so.
    pub skipped: Option<String>,
    pub elapsed: Duration,
}

impl ScenarioReport {
    pub fn new(key: &'static str, title: &'static str) -> Self {
        Self { key, title, ..Self::default() }
    }

    pub fn failed(&self) -> bool {
        let c = &self.count;
        c.lost + c.extra_silent + c.missed_silent + c.stuck + self.leaks > 0 || self.error.is_some()
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub faults: u64,
    pub count: Count,
    pub leaks: u64,
    pub errors: u64,
}

pub fn totals(reports: &[ScenarioReport]) -> Totals {
    let mut t = Totals::default();
    for r in reports {
        t.faults += r.faults;
        t.count.add(&r.count);
        t.leaks += r.leaks;
        t.errors += u64::from(r.error.is_some());
    }
    t
}

/// The last line of the output, exactly.
pub fn final_line(t: &Totals) -> String {
    format!(
        "chaos: {} faults, {} lost, {} extra resets ({} silent), {} missed ({} silent), {} stuck, {} leaks",
        t.faults,
        t.count.lost,
        t.count.extra(),
        t.count.extra_silent,
        t.count.missed(),
        t.count.missed_silent,
        t.count.stuck,
        t.leaks
    )
}

/// Whether the campaign fails: anything lost, silent, stuck or leaked.
pub fn failed(t: &Totals) -> bool {
    t.count.lost + t.count.extra_silent + t.count.missed_silent + t.count.stuck + t.leaks + t.errors > 0
}

fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

const HEADER: [&str; 13] = [
    "scenario",
    "runs",
    "steps",
    "resets",
    "faults",
    "lost",
    "extra ann/silent",
    "missed ann/silent",
    "stuck",
    "leaks",
    "attention",
    "converge med/max",
    "verdict",
];

fn row(r: &ScenarioReport) -> [String; 13] {
    let c = &r.count;
    let converge = median_max(&r.converge).map_or("-".into(), |(m, x)| format!("{}/{}", secs(m), secs(x)));
    let verdict = match (&r.error, &r.skipped, r.failed()) {
        (Some(_), _, _) => "ERROR",
        (None, _, true) => "FAIL",
        (None, Some(_), false) => "skipped",
        (None, None, false) => "ok",
    };
    [
        r.key.to_owned(),
        r.runs.to_string(),
        r.steps.to_string(),
        r.resets.to_string(),
        r.faults.to_string(),
        c.lost.to_string(),
        format!("{}/{}", c.extra_announced, c.extra_silent),
        format!("{}/{}", c.missed_announced, c.missed_silent),
        c.stuck.to_string(),
        r.leaks.to_string(),
        c.attention.to_string(),
        converge,
        verdict.to_owned(),
    ]
}

/// A plain-text table for the terminal.
pub fn table(reports: &[ScenarioReport]) -> String {
    let rows: Vec<[String; 13]> = reports.iter().map(row).collect();
    let mut widths: Vec<usize> = HEADER.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i == 0 {
                let _ = write!(s, "{cell:<w$}");
            } else {
                let _ = write!(s, "  {cell:>w$}");
            }
        }
        s.trim_end().to_owned() + "\n"
    };
    let mut out = line(HEADER.to_vec());
    for r in &rows {
        out += &line(r.iter().map(String::as_str).collect());
    }
    out
}

/// Violations and notes, scenario by scenario.
pub fn details(reports: &[ScenarioReport]) -> String {
    details_capped(reports, usize::MAX)
}

/// Violations and notes, at most `cap` lines per scenario (the document
/// stays readable; the terminal output has them all).
pub fn details_capped(reports: &[ScenarioReport], cap: usize) -> String {
    let mut out = String::new();
    for r in reports {
        if r.details.is_empty() && r.error.is_none() && r.skipped.is_none() {
            continue;
        }
        let _ = writeln!(
            out,
            "[{}] {} ({} in {}):",
            r.key,
            r.title,
            if r.failed() { "FAIL" } else { "ok" },
            secs(r.elapsed)
        );
        if let Some(e) = &r.error {
            let _ = writeln!(out, "  ERROR: {e}");
        }
        if let Some(s) = &r.skipped {
            let _ = writeln!(out, "  SKIPPED: {s}");
        }
        for d in r.details.iter().take(cap) {
            let _ = writeln!(out, "  {d}");
        }
        if r.details.len() > cap {
            let _ = writeln!(out, "  ... and {} more lines in the run's output", r.details.len() - cap);
        }
    }
    out
}

/// Metadata of a run for the generated document.
pub struct RunInfo {
    pub seed: u64,
    pub size: &'static str,
    pub date: String,
    pub commit: String,
    pub elapsed: Duration,
}

/// docs/reliability.md, generated.
pub fn markdown(info: &RunInfo, reports: &[ScenarioReport], scenarios: &[(&str, &str, &str)]) -> String {
    let t = totals(reports);
    let mut md = String::new();
    let _ = writeln!(
        md,
        "<!-- Generated by `make chaos SIZE={}` (tests/chaos). Do not edit by hand. -->",
        info.size
    );
    let _ = writeln!(md, "# Reliability: fault campaign\n");
    let _ = writeln!(
        md,
        "Generated by `make chaos SIZE={}` on {} with seed {} against commit `{}`, in {}. Replay the same \
         choices with `CHAOS_SEED={} make chaos SIZE={}` (timing still varies).\n",
        info.size,
        info.date,
        info.seed,
        info.commit,
        secs(info.elapsed),
        info.seed,
        info.size
    );
    let _ = writeln!(md, "```\n{}\n```\n", final_line(&t));
    let _ = writeln!(md, "## Results\n");
    let _ = writeln!(md, "| {} |", HEADER.join(" | "));
    let _ = writeln!(md, "|{}", "---|".repeat(HEADER.len()));
    for r in reports {
        let _ = writeln!(md, "| {} |", row(r).join(" | "));
    }
    let _ = writeln!(md);
    let _ = writeln!(
        md,
        "Columns: **runs** rounds (burst of counter bumps with faults, heal, converge, check); **steps** \
         advances of `status.rotation` (rotations the operator reported); **resets** resets Upstash (the simulator) counted; **faults** \
         injected and taking effect (simulator answers shaped by a fault, kills, pauses, apiserver restarts, \
         admission denials periods, Secret edits, namespace deletions); **lost** Secrets not holding \
         Upstash's current password after convergence; **extra** resets beyond one per applied counter step, \
         announced by a `ResetRepeated` warning or silent; **missed** steps reported applied without a reset \
         in their window, announced by a warning (`RotationRecovered` of type Warning, `RotationAbandoned`) \
         or silent; **stuck** resources not converged (or namespaces not gone) within the bounded wait after \
         faults healed; **leaks** credential strings in operator logs, events or statuses; **attention** \
         times the operator stopped with `{}` and the harness raised the counter as the message says; \
         **converge** time from healing to all resources converged.\n",
        super::tracking::NEEDS_ATTENTION
    );
    let _ = writeln!(md, "## Scenarios\n");
    for (key, title, what) in scenarios {
        let _ = writeln!(md, "- **{key}** ({title}): {what}");
    }
    let _ = writeln!(md);
    let text = details_capped(reports, 12);
    if !text.is_empty() {
        let _ = writeln!(md, "## Violations and notes\n\n```\n{}```", text);
    }
    md
}
