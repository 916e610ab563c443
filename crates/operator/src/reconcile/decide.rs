//! Pure decisions of the rotation state machine. Everything that could reset
//! a password twice or lose one is decided here, from facts the I/O shell
//! gathered, so it can be tested exhaustively without a cluster.

/// Blind resets (sent without a way to tell whether the previous one
/// happened) allowed for one intent before a person has to decide.
pub const BLIND_RESET_LIMIT: i64 = 3;

/// What the reconciler does next for one resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Nothing in flight: make the Secret hold the database's current
    /// credentials (read with GET, never reset), then record `rotation` as
    /// applied. Covers a new resource and drift.
    Sync { rotation: i64 },
    /// The counter went up, or `spec.schedule` came due (`scheduled`, with
    /// `target` the counter already applied): record the intent, reset
    /// once, write the Secret.
    Rotate { target: i64, scheduled: bool },
    /// A reset for `target` succeeded in this process but its Secret write
    /// did not: write the credentials kept in memory.
    WriteRemembered { target: i64 },
    /// The Secret already holds the new credentials of `target`: only the
    /// status is behind.
    FinishRecorded { target: i64 },
    /// The reset for `target` has an unknown outcome (or the operator
    /// restarted): ask Upstash and compare before doing anything else.
    Recover { target: i64 },
    /// The resource is being deleted and nothing is in flight.
    Release,
}

/// Facts the next step depends on.
#[derive(Clone, Copy, Debug, Default)]
pub struct Facts {
    pub spec_rotation: i64,
    pub applied_rotation: Option<i64>,
    pub pending_rotation: Option<i64>,
    /// The rotation annotation of our Secret, if it exists and is ours.
    pub secret_rotation: Option<i64>,
    /// The Secret's credentials differ from those Upstash had before the
    /// pending intent (true when that is unknown).
    pub secret_changed_since_intent: bool,
    /// This process holds the reset response for `pending_rotation`.
    pub remembered: bool,
    /// The pending intent used up its blind resets.
    pub blind_resets_exhausted: bool,
    pub deleting: bool,
    /// `spec.schedule` asks for a rotation now (inside a window, if any).
    pub schedule_due: bool,
}

pub fn next_step(f: Facts) -> Step {
    if let Some(target) = f.pending_rotation {
        return if f.remembered {
            Step::WriteRemembered { target }
        } else if f.secret_rotation == Some(target) && f.secret_changed_since_intent {
            Step::FinishRecorded { target }
        } else if f.blind_resets_exhausted && f.spec_rotation > target && !f.deleting {
            // The user raised the counter after being told: a new intent.
            Step::Rotate { target: f.spec_rotation, scheduled: false }
        } else {
            Step::Recover { target }
        };
    }
    if f.deleting {
        return Step::Release;
    }
    match f.applied_rotation {
        // A new resource: its counter is the baseline, nothing is reset.
        None => Step::Sync { rotation: f.spec_rotation },
        // Several steps at once ask for one rotation; the counter goes first,
        // whatever the schedule's windows.
        Some(applied) if f.spec_rotation > applied => {
            Step::Rotate { target: f.spec_rotation, scheduled: false }
        }
        Some(applied) if f.schedule_due => Step::Rotate { target: applied, scheduled: true },
        Some(applied) => Step::Sync { rotation: applied },
    }
}

/// What a GET tells about a reset whose outcome was unknown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Upstash's credentials differ from those it had before the intent:
    /// the reset happened.
    Adopt,
    /// Nothing to compare with (no fingerprint, no Secret): take what
    /// Upstash has now, without a second reset, and warn.
    AdoptUnverified,
    /// Upstash still has the credentials it had before: the reset never
    /// happened.
    Reset,
    /// Credential Protection hides the credentials: nothing can be compared,
    /// and only a new reset yields usable credentials.
    ResetBlind,
    /// Being deleted and no reset is known to have happened: stop here.
    Abandon,
}

/// Fingerprints of what Upstash reports now (`None`: hidden), of what it
/// reported before the intent, and of what the Secret holds. The fingerprint
/// taken before the intent is the reference; the Secret only stands in when
/// there is none, since a user may have edited it.
pub fn recovery_verdict(
    upstash_now: Option<&str>,
    before_intent: Option<&str>,
    secret: Option<&str>,
    deleting: bool,
) -> Verdict {
    let Some(now) = upstash_now else {
        return if deleting { Verdict::Abandon } else { Verdict::ResetBlind };
    };
    match before_intent.or(secret) {
        Some(reference) if reference == now => {
            if deleting {
                Verdict::Abandon
            } else {
                Verdict::Reset
            }
        }
        Some(_) => Verdict::Adopt,
        None => Verdict::AdoptUnverified,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> Facts {
        Facts {
            spec_rotation: 0,
            applied_rotation: Some(0),
            secret_changed_since_intent: true,
            ..Facts::default()
        }
    }

    #[test]
    fn a_new_resource_syncs_without_resetting_whatever_its_counter() {
        for spec in [0, 1, 7] {
            let f = Facts { spec_rotation: spec, applied_rotation: None, ..facts() };
            assert_eq!(next_step(f), Step::Sync { rotation: spec });
        }
    }

    #[test]
    fn a_raised_counter_rotates_once_to_its_latest_value() {
        let f = Facts { spec_rotation: 5, applied_rotation: Some(1), ..facts() };
        assert_eq!(next_step(f), Step::Rotate { target: 5, scheduled: false });
        let steady = Facts { spec_rotation: 5, applied_rotation: Some(5), ..facts() };
        assert_eq!(next_step(steady), Step::Sync { rotation: 5 });
    }

    #[test]
    fn a_due_schedule_rotates_the_applied_counter_and_yields_to_a_raised_one() {
        let due = Facts { spec_rotation: 4, applied_rotation: Some(4), schedule_due: true, ..facts() };
        assert_eq!(next_step(due), Step::Rotate { target: 4, scheduled: true });
        assert_eq!(
            next_step(Facts { spec_rotation: 5, ..due }),
            Step::Rotate { target: 5, scheduled: false }
        );
        // Never on a first sync, while deleting, or over an intent in flight.
        assert_eq!(next_step(Facts { applied_rotation: None, ..due }), Step::Sync { rotation: 4 });
        assert_eq!(next_step(Facts { deleting: true, ..due }), Step::Release);
        let pending = Facts { pending_rotation: Some(4), ..due };
        assert_eq!(next_step(pending), Step::Recover { target: 4 });
    }

    #[test]
    fn a_pending_rotation_is_never_started_again() {
        let pending =
            Facts { spec_rotation: 2, applied_rotation: Some(1), pending_rotation: Some(2), ..facts() };
        assert_eq!(next_step(pending), Step::Recover { target: 2 });
        assert_eq!(next_step(Facts { remembered: true, ..pending }), Step::WriteRemembered { target: 2 });
        assert_eq!(
            next_step(Facts { secret_rotation: Some(2), ..pending }),
            Step::FinishRecorded { target: 2 }
        );
        assert_eq!(next_step(Facts { secret_rotation: Some(1), ..pending }), Step::Recover { target: 2 });
        // A newer annotation is not this intent's write: check with Upstash.
        assert_eq!(next_step(Facts { secret_rotation: Some(5), ..pending }), Step::Recover { target: 2 });
        // The counter moved on meanwhile: the pending rotation finishes first.
        assert_eq!(next_step(Facts { spec_rotation: 9, ..pending }), Step::Recover { target: 2 });
    }

    #[test]
    fn an_annotation_over_the_old_credentials_does_not_finish_a_rotation() {
        // The Secret says rotation 2 but still holds what Upstash had before
        // the intent (an abandoned intent's annotation, or a hand edit).
        let pending = Facts {
            spec_rotation: 2,
            applied_rotation: Some(1),
            pending_rotation: Some(2),
            secret_rotation: Some(2),
            secret_changed_since_intent: false,
            ..facts()
        };
        assert_eq!(next_step(pending), Step::Recover { target: 2 });
    }

    #[test]
    fn exhausted_blind_resets_wait_for_a_counter_bump() {
        let stuck = Facts {
            spec_rotation: 2,
            applied_rotation: Some(1),
            pending_rotation: Some(2),
            blind_resets_exhausted: true,
            ..facts()
        };
        assert_eq!(
            next_step(stuck),
            Step::Recover { target: 2 },
            "only a GET: it may show credentials again"
        );
        assert_eq!(
            next_step(Facts { spec_rotation: 3, ..stuck }),
            Step::Rotate { target: 3, scheduled: false }
        );
        assert_eq!(
            next_step(Facts { spec_rotation: 3, deleting: true, ..stuck }),
            Step::Recover { target: 2 }
        );
    }

    #[test]
    fn deletion_finishes_what_is_in_flight_and_starts_nothing() {
        let deleting = Facts { spec_rotation: 3, applied_rotation: Some(1), deleting: true, ..facts() };
        assert_eq!(next_step(deleting), Step::Release);
        let in_flight = Facts { pending_rotation: Some(3), ..deleting };
        assert_eq!(next_step(in_flight), Step::Recover { target: 3 });
    }

    #[test]
    fn recovery_compares_with_what_upstash_had_before_the_intent() {
        let (old, new, edited) = (Some("old"), Some("new"), Some("edited"));
        assert_eq!(recovery_verdict(new, old, old, false), Verdict::Adopt);
        assert_eq!(recovery_verdict(old, old, old, false), Verdict::Reset);
        // A hand-edited or deleted Secret changes nothing: the reset did not happen.
        assert_eq!(recovery_verdict(old, old, edited, false), Verdict::Reset);
        assert_eq!(recovery_verdict(old, old, None, false), Verdict::Reset);
        // Without a fingerprint the Secret is the reference.
        assert_eq!(recovery_verdict(new, None, old, false), Verdict::Adopt);
        assert_eq!(recovery_verdict(old, None, old, false), Verdict::Reset);
        assert_eq!(recovery_verdict(new, None, None, false), Verdict::AdoptUnverified);
        assert_eq!(recovery_verdict(None, old, old, false), Verdict::ResetBlind);
        assert_eq!(recovery_verdict(new, old, old, true), Verdict::Adopt);
        assert_eq!(recovery_verdict(old, old, old, true), Verdict::Abandon);
        assert_eq!(recovery_verdict(None, old, old, true), Verdict::Abandon);
    }
}
