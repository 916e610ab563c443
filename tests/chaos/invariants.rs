//! The product promise as numbers: pure counting over what a round
//! observed, so it can be tested on synthetic data (tests/chaos_invariants.rs).

use std::time::Duration;

/// A window of one resource: from a bump until `status.rotation` caught up
/// with `spec.rotation`. Usually one counter step (a jump of several values
/// in one bump is one step). When the counter was raised again before the
/// previous value was seen applied, the window spans every advance the
/// operator made meanwhile, since which reset belongs to which advance
/// cannot be told apart.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Step {
    /// Resets the simulator counted in the window.
    pub resets: u64,
    /// Times `status.rotation` advanced in the window (each is one rotation).
    pub advances: u64,
    /// Times the harness raised the counter in the window. Each raised value
    /// may be rotated to on its own, so up to this many resets are justified
    /// even when polling saw fewer advances.
    pub raises: u64,
    /// The window had not caught up when the round ended (one reset may be
    /// on its way to a Secret write, or its resource deleted).
    pub open: bool,
    /// When the window opened and closed (Unix ms; 0 when unknown), to find
    /// a violation in the operator's logs.
    pub opened_ms: u64,
    pub closed_ms: u64,
    /// `status.rotation` before the window opened and when it closed: the
    /// rotations applied in between are counted from `status.history` too,
    /// since polling can miss an advance that was quickly followed by
    /// another.
    pub from: i64,
    pub to: i64,
}

impl Step {
    /// Takes the rotations a status history recorded as applied (by counter
    /// value) into account: each distinct value in `(from, to]` is one advance.
    pub fn count_recorded_advances(&mut self, applied: &std::collections::BTreeSet<i64>) {
        if self.to > self.from {
            let recorded = applied.range(self.from + 1..=self.to).count() as u64;
            self.advances = self.advances.max(recorded);
        }
    }

    fn suspicious(&self) -> bool {
        self.resets < self.advances || self.resets > self.justifiable()
    }

    /// Resets this window can justify: one per advance or per raise, and one
    /// more while it is open.
    fn justifiable(&self) -> u64 {
        self.advances.max(self.raises) + u64::from(self.open)
    }
}

fn utc(ms: u64) -> String {
    i64::try_from(ms)
        .ok()
        .and_then(|ms| k8s_openapi::jiff::Timestamp::from_millisecond(ms).ok())
        .map_or_else(|| "?".into(), |t| t.strftime("%H:%M:%S%.3fZ").to_string())
}

/// Everything observed about one resource during one round.
#[derive(Clone, Debug, Default)]
pub struct Ledger {
    pub resource: String,
    pub steps: Vec<Step>,
    /// Resets the simulator counted for the database over the whole round,
    /// including a settle period after convergence (late, zombie resets).
    pub total_resets: u64,
    /// `ResetRepeated` warnings (Credential Protection: a repeat announced).
    pub announced_repeats: u64,
    /// Warnings that say a step may be applied without a verified reset
    /// (`RotationRecovered` of type Warning, `RotationAbandoned`).
    pub announced_unverified: u64,
    /// Times the operator stopped with `RotationNeedsAttention` and the
    /// harness did what the message says (raise the counter).
    pub attention: u64,
    /// The Secret does not hold Upstash's current password at the end.
    pub lost: bool,
    /// Why the resource did not converge, if it did not.
    pub stuck: Option<String>,
}

/// The violations of one ledger.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Count {
    pub lost: u64,
    pub extra_announced: u64,
    pub extra_silent: u64,
    pub missed_announced: u64,
    pub missed_silent: u64,
    pub stuck: u64,
    pub attention: u64,
}

impl Count {
    pub fn add(&mut self, other: &Count) {
        self.lost += other.lost;
        self.extra_announced += other.extra_announced;
        self.extra_silent += other.extra_silent;
        self.missed_announced += other.missed_announced;
        self.missed_silent += other.missed_silent;
        self.stuck += other.stuck;
        self.attention += other.attention;
    }

    pub fn extra(&self) -> u64 {
        self.extra_announced + self.extra_silent
    }

    pub fn missed(&self) -> u64 {
        self.missed_announced + self.missed_silent
    }
}

impl Ledger {
    /// Advances without a reset in their window are missed rotations. Each
    /// advance justifies one reset in its window, an open window one more
    /// (a reset whose Secret write is pending, a resource being deleted), and
    /// each answered `RotationNeedsAttention` one more;
    /// every other reset of the round is extra, including late ones outside
    /// any window. Announcements cover violations up to their number; the
    /// rest are silent.
    pub fn count(&self) -> Count {
        let justified: u64 = self.steps.iter().map(|s| s.resets.min(s.justifiable())).sum();
        let missed: u64 = self.steps.iter().map(|s| s.advances.saturating_sub(s.resets)).sum();
        // An answered `RotationNeedsAttention` is a counter bump the user made
        // to ask for one more reset; the stuck intent it replaces is never
        // applied, so `status.rotation` advances once for both.
        let extra = self.total_resets.saturating_sub(justified + self.attention);
        let extra_announced = extra.min(self.announced_repeats);
        let missed_announced = missed.min(self.announced_unverified);
        Count {
            lost: u64::from(self.lost),
            extra_announced,
            extra_silent: extra - extra_announced,
            missed_announced,
            missed_silent: missed - missed_announced,
            stuck: u64::from(self.stuck.is_some()),
            attention: self.attention,
        }
    }

    /// One line per violation, for the report's details.
    pub fn describe(&self) -> Vec<String> {
        let c = self.count();
        let mut out = Vec::new();
        let steps: Vec<String> = self
            .steps
            .iter()
            .map(|s| {
                let advances = if s.advances == 1 { String::new() } else { format!("/{}", s.advances) };
                format!("{}{advances}{}", s.resets, if s.open { "?" } else { "" })
            })
            .collect();
        let shape = format!(
            "windows(resets[/advances if not 1][? if open])=[{}], resets={}, ResetRepeated={}, unverified warnings={}",
            steps.join(","),
            self.total_resets,
            self.announced_repeats,
            self.announced_unverified
        );
        if c.lost > 0 {
            out.push(format!("{}: LOST: the Secret does not hold Upstash's current password", self.resource));
        }
        let odd: Vec<String> = self
            .steps
            .iter()
            .enumerate()
            .filter(|(_, s)| s.suspicious())
            .map(|(i, s)| {
                format!(
                    "#{} {}..{} ({} reset(s), {} advance(s){})",
                    i + 1,
                    utc(s.opened_ms),
                    if s.open { "end".into() } else { utc(s.closed_ms) },
                    s.resets,
                    s.advances,
                    if s.open { ", open" } else { "" }
                )
            })
            .collect();
        let shape =
            if odd.is_empty() { shape } else { format!("{shape}; odd windows (UTC): {}", odd.join(", ")) };
        if c.extra_silent > 0 {
            out.push(format!("{}: {} SILENT extra reset(s); {shape}", self.resource, c.extra_silent));
        }
        if c.missed_silent > 0 {
            out.push(format!(
                "{}: {} SILENT missed rotation(s) (applied without a reset); {shape}",
                self.resource, c.missed_silent
            ));
        }
        if c.extra_announced > 0 || c.missed_announced > 0 {
            out.push(format!(
                "{}: announced: {} extra reset(s), {} unverified step(s); {shape}",
                self.resource, c.extra_announced, c.missed_announced
            ));
        }
        if let Some(why) = &self.stuck {
            out.push(format!("{}: STUCK: {why}", self.resource));
        }
        out
    }
}

/// Median and maximum of convergence times.
pub fn median_max(times: &[Duration]) -> Option<(Duration, Duration)> {
    if times.is_empty() {
        return None;
    }
    let mut sorted = times.to_vec();
    sorted.sort();
    Some((sorted[sorted.len() / 2], sorted[sorted.len() - 1]))
}
