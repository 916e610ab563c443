//! What the harness knows about one resource while it raises its counter:
//! its observed state, and the counter steps with the resets in each
//! step's window. Pure, so it is unit-tested (tests/chaos_invariants.rs).

use upstash_rotator::{
    conditions::{self, READY},
    crd::{RedisPasswordRotation, RotationTrigger},
};

use super::invariants::Step;

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The reason the operator gives when it stops after repeated blind resets.
pub const NEEDS_ATTENTION: &str = "RotationNeedsAttention";

/// The observable state of one resource, as far as the invariants care.
#[derive(Clone, Debug, Default)]
pub struct View {
    pub spec: i64,
    pub applied: Option<i64>,
    pub pending: Option<i64>,
    pub ready: Option<(String, String, String)>,
    /// Reason of the `Rotating` condition when it is True.
    pub rotating: Option<String>,
    /// The counter values `status.history` records as applied (its last 10
    /// rotations): the durable record of each rotation, where its `Rotated`
    /// event is best effort.
    pub recorded: Vec<i64>,
}

impl View {
    pub fn of(r: &RedisPasswordRotation) -> Self {
        let status = r.status.clone().unwrap_or_default();
        let ready = conditions::get(&status.conditions, READY)
            .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()));
        let rotating = conditions::get(&status.conditions, conditions::ROTATING)
            .filter(|c| c.status == "True")
            .map(|c| c.reason.clone());
        Self {
            spec: r.spec.rotation,
            applied: status.rotation,
            pending: status.pending_rotation,
            ready,
            rotating,
            recorded: status
                .history
                .iter()
                .filter(|h| h.trigger != RotationTrigger::Recovery)
                .map(|h| h.rotation)
                .collect(),
        }
    }

    pub fn converged(&self) -> bool {
        self.applied == Some(self.spec)
            && self.pending.is_none()
            && self.ready.as_ref().is_some_and(|(s, _, _)| s == "True")
    }

    pub fn needs_attention(&self) -> bool {
        self.ready.as_ref().is_some_and(|(_, reason, _)| reason == NEEDS_ATTENTION)
    }

    pub fn describe(&self) -> String {
        let (status, reason, message) = self.ready.clone().unwrap_or_default();
        format!(
            "spec.rotation={} status.rotation={:?} pendingRotation={:?} Ready={status} {reason}: {message}",
            self.spec, self.applied, self.pending
        )
    }
}

/// Windows of one resource in one round.
#[derive(Clone, Debug, Default)]
pub struct Track {
    pub applied: i64,
    pub steps: Vec<Step>,
    /// Resets counted when the open window began.
    pub open: Option<u64>,
    opened_ms: u64,
    /// Advances seen in the open window.
    advances: u64,
    /// Counter raises the harness made in the open window.
    raises: u64,
    /// `applied` when the open window opened.
    from: i64,
    /// Advances seen with no window open (nothing to judge them by).
    pub unjudged: u64,
    pub attention: u64,
    /// The counter value the harness last raised to answer `RotationNeedsAttention`.
    attended: Option<i64>,
    /// Every counter value a status history showed as applied this round.
    pub recorded: std::collections::BTreeSet<i64>,
}

impl Track {
    /// A track for a resource whose status and counter read `view`, with
    /// `resets` counted so far; a counter already ahead opens a window.
    pub fn starting_at(view: &View, resets: u64) -> Self {
        let applied = view.applied.unwrap_or(view.spec);
        let open = (view.spec > applied).then_some(resets);
        let raises = u64::from(open.is_some());
        Self { applied, open, opened_ms: now_ms(), from: applied, raises, ..Self::default() }
    }

    /// Opens a window unless one is open: the harness is about to raise the counter.
    pub fn open(&mut self, resets: u64) {
        if self.open.is_none() {
            self.open = Some(resets);
            self.opened_ms = now_ms();
            self.advances = 0;
            self.raises = 0;
            self.from = self.applied;
        }
        self.raises += 1;
    }

    /// What a user does on `RotationNeedsAttention`: raise the counter, once
    /// per occurrence. Returns the value to raise it to.
    pub fn attend(&mut self, view: &View) -> Option<i64> {
        if !view.needs_attention() || self.attended.is_some_and(|a| a >= view.spec) {
            return None;
        }
        self.attention += 1;
        self.attended = Some(view.spec + 1);
        Some(view.spec + 1)
    }

    /// Folds an observation in: an advance of `status.rotation` counts in the
    /// open window, which closes once the status caught up with the counter.
    pub fn observe(&mut self, view: &View, resets: u64) {
        self.recorded.extend(&view.recorded);
        let Some(applied) = view.applied else { return };
        if applied <= self.applied {
            return;
        }
        self.applied = applied;
        let Some(start) = self.open else {
            self.unjudged += 1;
            return;
        };
        self.advances += 1;
        if applied >= view.spec {
            self.steps.push(Step {
                resets: resets.saturating_sub(start),
                advances: self.advances,
                raises: self.raises,
                open: false,
                opened_ms: self.opened_ms,
                closed_ms: now_ms(),
                from: self.from,
                to: applied,
            });
            self.open = None;
            self.advances = 0;
            self.raises = 0;
        }
    }

    /// The windows of the round, the open one (if any) with the resets
    /// counted so far (`resets`).
    pub fn finish(&self, resets: u64) -> Vec<Step> {
        let mut steps = self.steps.clone();
        if let Some(start) = self.open {
            steps.push(Step {
                resets: resets.saturating_sub(start),
                advances: self.advances,
                raises: self.raises,
                open: true,
                opened_ms: self.opened_ms,
                closed_ms: 0,
                from: self.from,
                to: self.applied,
            });
        }
        steps
    }
}
