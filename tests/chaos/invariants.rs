//! The product promise as numbers: pure counting over what a round
//! observed, so it can be tested on synthetic data (tests/chaos_invariants.rs).

use std::time::Duration;

/// One counter step of one resource: from the bump until `status.rotation`
/// advanced. A jump of several values in one bump is one step.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Step {
    /// Resets the simulator counted between the bump and the observed advance.
    pub resets: u64,
    /// `status.rotation` advanced for it.
    pub applied: bool,
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
    /// Applied steps with no reset in their window are missed rotations.
    /// Every reset beyond one per step (applied with a reset, or still open)
    /// is extra. Announcements cover violations up to their number; the rest
    /// are silent.
    pub fn count(&self) -> Count {
        let applied_with_reset = self.steps.iter().filter(|s| s.applied && s.resets > 0).count() as u64;
        let missed = self.steps.iter().filter(|s| s.applied && s.resets == 0).count() as u64;
        // A step never applied may have reset once (its Secret write is pending,
        // its resource deleted): that is not an extra reset.
        let open = self.steps.iter().filter(|s| !s.applied).count() as u64;
        let allowed = applied_with_reset + open;
        let extra = self.total_resets.saturating_sub(allowed);
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
        let steps: Vec<String> =
            self.steps.iter().map(|s| format!("{}{}", s.resets, if s.applied { "" } else { "?" })).collect();
        let shape = format!(
            "steps(resets per step, ?=not applied)=[{}], resets={}, ResetRepeated={}, unverified warnings={}",
            steps.join(","),
            self.total_resets,
            self.announced_repeats,
            self.announced_unverified
        );
        if c.lost > 0 {
            out.push(format!("{}: LOST: the Secret does not hold Upstash's current password", self.resource));
        }
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
