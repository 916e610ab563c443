//! Pure decisions of the rotation state machine. Everything that could reset
//! a password twice or lose one is decided here, from facts the I/O shell
//! gathered, so it can be tested exhaustively without a cluster.

/// What the reconciler does next for one resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Nothing in flight: make the Secret hold the database's current
    /// credentials (read with GET, never reset), then record `rotation` as
    /// applied. Covers a new resource and drift.
    Sync { rotation: i64 },
    /// The counter went up: record the intent, reset once, write the Secret.
    Rotate { target: i64 },
    /// A reset for `target` succeeded in this process but its Secret write
    /// did not: write the credentials kept in memory.
    WriteRemembered { target: i64 },
    /// The Secret already holds the credentials of `target`: only the status
    /// is behind.
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
    /// This process holds the reset response for `pending_rotation`.
    pub remembered: bool,
    pub deleting: bool,
}

pub fn next_step(f: Facts) -> Step {
    if let Some(target) = f.pending_rotation {
        return if f.remembered {
            Step::WriteRemembered { target }
        } else if f.secret_rotation == Some(target) {
            Step::FinishRecorded { target }
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
        // Several steps at once ask for one rotation.
        Some(applied) if f.spec_rotation > applied => Step::Rotate { target: f.spec_rotation },
        Some(applied) => Step::Sync { rotation: applied },
    }
}

/// What a GET tells about a reset whose outcome was unknown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Upstash's credentials differ from the Secret's: the reset happened.
    Adopt,
    /// The Secret is gone, so nothing can be compared: take what Upstash has
    /// now, without a second reset, and warn.
    AdoptUnverified,
    /// Upstash still has the Secret's credentials: the reset never happened.
    Reset,
    /// Credential Protection hides the credentials: nothing can be compared,
    /// and only a new reset yields usable credentials.
    ResetBlind,
    /// Being deleted and no reset is known to have happened: stop here.
    Abandon,
}

/// `upstash_matches_secret` is `None` when GET shows no credentials, and
/// `Some(None)` when it shows some but our Secret is absent.
pub fn recovery_verdict(upstash_matches_secret: Option<Option<bool>>, deleting: bool) -> Verdict {
    match upstash_matches_secret {
        Some(Some(false)) => Verdict::Adopt,
        Some(None) => Verdict::AdoptUnverified,
        Some(Some(true)) | None if deleting => Verdict::Abandon,
        Some(Some(true)) => Verdict::Reset,
        None => Verdict::ResetBlind,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> Facts {
        Facts { spec_rotation: 0, applied_rotation: Some(0), ..Facts::default() }
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
        assert_eq!(next_step(f), Step::Rotate { target: 5 });
        let steady = Facts { spec_rotation: 5, applied_rotation: Some(5), ..facts() };
        assert_eq!(next_step(steady), Step::Sync { rotation: 5 });
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
    fn deletion_finishes_what_is_in_flight_and_starts_nothing() {
        let deleting = Facts { spec_rotation: 3, applied_rotation: Some(1), deleting: true, ..facts() };
        assert_eq!(next_step(deleting), Step::Release);
        let in_flight = Facts { pending_rotation: Some(3), ..deleting };
        assert_eq!(next_step(in_flight), Step::Recover { target: 3 });
    }

    #[test]
    fn recovery_compares_before_it_resets() {
        assert_eq!(recovery_verdict(Some(Some(false)), false), Verdict::Adopt);
        assert_eq!(recovery_verdict(Some(Some(true)), false), Verdict::Reset);
        assert_eq!(recovery_verdict(Some(None), false), Verdict::AdoptUnverified);
        assert_eq!(recovery_verdict(None, false), Verdict::ResetBlind);
        assert_eq!(recovery_verdict(Some(Some(false)), true), Verdict::Adopt);
        assert_eq!(recovery_verdict(Some(Some(true)), true), Verdict::Abandon);
        assert_eq!(recovery_verdict(None, true), Verdict::Abandon);
    }
}
