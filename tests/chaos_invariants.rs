//! The fault campaign's own checks must be able to fail: its invariant
//! counting, leak scan and verdict, tested on synthetic data (no cluster).

#[path = "chaos/invariants.rs"]
mod invariants;
#[path = "chaos/leaks.rs"]
mod leaks;
#[path = "chaos/report.rs"]
#[allow(dead_code)]
mod report;
#[path = "chaos/rng.rs"]
#[allow(dead_code)]
mod rng;

#[path = "chaos/tracking.rs"]
#[allow(dead_code)]
mod tracking;

#[test]
fn the_same_seed_replays_the_same_choices() {
    let mut a = rng::Rng::new(42).fork("kill9");
    let mut b = rng::Rng::new(42).fork("kill9");
    let mut c = rng::Rng::new(42).fork("sim-faults");
    let xs: Vec<u64> = (0..8).map(|_| a.range(0, 1000)).collect();
    let ys: Vec<u64> = (0..8).map(|_| b.range(0, 1000)).collect();
    let zs: Vec<u64> = (0..8).map(|_| c.range(0, 1000)).collect();
    assert_eq!(xs, ys);
    assert_ne!(xs, zs);
    assert!(xs.iter().all(|x| *x <= 1000));
}

mod invariants_tests {
    use std::time::Duration;

    use super::invariants::*;

    fn step(resets: u64) -> Step {
        Step { resets, advances: 1, ..Step::default() }
    }

    fn ledger(steps: Vec<Step>, total: u64) -> Ledger {
        Ledger { resource: "r".into(), steps, total_resets: total, ..Ledger::default() }
    }

    #[test]
    fn one_reset_per_step_is_clean() {
        assert_eq!(ledger(vec![step(1), step(1), step(1)], 3).count(), Count::default());
    }

    #[test]
    fn a_second_reset_for_one_step_is_a_silent_extra_unless_announced() {
        let mut l = ledger(vec![step(2), step(1)], 3);
        assert_eq!(l.count().extra_silent, 1);
        assert_eq!(l.count().extra_announced, 0);
        l.announced_repeats = 1;
        assert_eq!((l.count().extra_silent, l.count().extra_announced), (0, 1));
        // More announcements than repeats do not hide anything else.
        l.announced_repeats = 5;
        assert_eq!((l.count().extra_silent, l.count().extra_announced), (0, 1));
    }

    #[test]
    fn a_counter_bump_answering_needs_attention_justifies_its_reset() {
        // One window: the first reset and three blind ones (announced), then
        // the user's bump and its reset; status.rotation advanced once.
        let mut l = ledger(vec![step(5)], 5);
        l.announced_repeats = 3;
        assert_eq!(l.count().extra_silent, 1, "without the answer the fifth reset is unexplained");
        l.attention = 1;
        assert_eq!((l.count().extra_silent, l.count().extra_announced), (0, 3));
    }

    #[test]
    fn advances_missed_by_polling_are_counted_from_the_status_history() {
        // 30 -> 32 between two polls: one advance seen, two resets made, and
        // the status history recorded 31 and 32 as applied.
        let mut s = Step { resets: 2, advances: 1, from: 30, to: 32, ..Step::default() };
        let applied: std::collections::BTreeSet<i64> = [29, 31, 32, 33].into();
        s.count_recorded_advances(&applied);
        assert_eq!(s.advances, 2);
        assert_eq!(ledger(vec![s], 2).count(), Count::default());
        // The history never lowers what was seen, and a double reset for one
        // recorded value is still extra.
        let mut double = Step { resets: 2, advances: 1, from: 30, to: 31, ..Step::default() };
        double.count_recorded_advances(&applied);
        assert_eq!(ledger(vec![double], 2).count().extra_silent, 1);
    }

    #[test]
    fn a_late_reset_outside_any_window_is_extra() {
        // Windows saw one reset each, the settle period one more (a zombie).
        let l = ledger(vec![step(1), step(1)], 3);
        assert_eq!(l.count().extra_silent, 1);
    }

    #[test]
    fn an_applied_step_without_a_reset_is_missed() {
        let mut l = ledger(vec![step(1), step(0)], 1);
        let c = l.count();
        assert_eq!((c.missed_silent, c.missed_announced, c.extra()), (1, 0, 0));
        l.announced_unverified = 1;
        let c = l.count();
        assert_eq!((c.missed_silent, c.missed_announced), (0, 1));
    }

    #[test]
    fn a_reset_landing_in_the_next_window_shows_as_extra_and_missed() {
        // Step 1 reset twice, step 2 got none: both promises are broken.
        let c = ledger(vec![step(2), step(0)], 2).count();
        assert_eq!((c.extra_silent, c.missed_silent), (1, 1));
    }

    #[test]
    fn a_window_with_several_advances_justifies_one_reset_each() {
        let merged = Step { resets: 2, advances: 2, ..Step::default() };
        assert_eq!(ledger(vec![merged], 2).count(), Count::default());
        let short = Step { resets: 1, advances: 2, ..Step::default() };
        assert_eq!(ledger(vec![short], 1).count().missed_silent, 1);
        let long = Step { resets: 3, advances: 2, ..Step::default() };
        assert_eq!(ledger(vec![long], 3).count().extra_silent, 1);
    }

    #[test]
    fn a_window_raised_twice_justifies_two_resets_even_if_polling_saw_one_advance() {
        // 16 -> 17 -> 18 applied between two polls: one advance seen.
        let raised_twice = Step { resets: 2, advances: 1, raises: 2, ..Step::default() };
        assert_eq!(ledger(vec![raised_twice], 2).count(), Count::default());
        let raised_once = Step { resets: 2, advances: 1, raises: 1, ..Step::default() };
        assert_eq!(ledger(vec![raised_once], 2).count().extra_silent, 1);
        let three = Step { resets: 3, advances: 1, raises: 2, ..Step::default() };
        assert_eq!(ledger(vec![three], 3).count().extra_silent, 1);
    }

    #[test]
    fn an_open_window_may_hold_one_reset_more() {
        let open = Step { resets: 1, advances: 0, open: true, ..Step::default() };
        assert_eq!(ledger(vec![step(1), open], 2).count(), Count::default());
        let twice = Step { resets: 2, advances: 0, open: true, ..Step::default() };
        assert_eq!(ledger(vec![step(1), twice], 3).count().extra_silent, 1);
        // A reset outside the open window is not covered by it.
        let quiet = Step { resets: 0, advances: 0, open: true, ..Step::default() };
        assert_eq!(ledger(vec![step(1), quiet], 2).count().extra_silent, 1);
    }

    #[test]
    fn odd_windows_are_named_with_their_times() {
        let odd = Step {
            resets: 2,
            advances: 1,
            opened_ms: 1_764_300_000_000,
            closed_ms: 1_764_300_001_500,
            ..Step::default()
        };
        let text = ledger(vec![step(1), odd], 3).describe().join("\n");
        assert!(
            text.contains("odd windows (UTC): #2 03:20:00.000Z..03:20:01.500Z (2 reset(s), 1 advance(s))"),
            "{text}"
        );
    }

    #[test]
    fn lost_and_stuck_count_once_per_resource() {
        let mut l = ledger(vec![step(1)], 1);
        l.lost = true;
        l.stuck = Some("pendingRotation=2".into());
        let c = l.count();
        assert_eq!((c.lost, c.stuck), (1, 1));
        assert_eq!(l.describe().len(), 2);
    }

    #[test]
    fn counts_add_up() {
        let mut total = Count::default();
        total.add(&ledger(vec![step(2)], 2).count());
        total.add(&ledger(vec![step(0)], 0).count());
        assert_eq!((total.extra(), total.missed()), (1, 1));
    }

    #[test]
    fn median_and_max() {
        let t = |s| Duration::from_secs(s);
        assert_eq!(median_max(&[t(3), t(1), t(2)]), Some((t(2), t(3))));
        assert_eq!(median_max(&[]), None);
    }
}

mod leaks_tests {
    use base64::{Engine as _, engine::general_purpose::URL_SAFE};

    use super::leaks::*;

    fn needles() -> Needles {
        let mut n = Needles::default();
        n.add_known("0123456789abcdef0123456789abcdef");
        n.add_known("rw-0123456789abcdef");
        n.database_ids.insert("96ad0856-03b1-4ee7-9666-e81abd0349e1".into());
        n
    }

    #[test]
    fn clean_text_has_no_leak() {
        let text =
            "reconciling ns/cache uid=96ad0856-03b1-4ee7-9666-e81abd0349e1 resourceVersion=1234 pod-1a2b3c4d";
        assert_eq!(scan("log", text, &needles()), vec![]);
    }

    #[test]
    fn a_known_password_is_found() {
        let leaks = scan("log", "password=0123456789abcdef0123456789abcdef", &needles());
        assert_eq!(leaks.len(), 1);
        assert_eq!(leaks[0].kind, "credential seen by the run");
    }

    #[test]
    fn an_unseen_password_shape_is_found() {
        let leaks = scan("event", "body: {\"password\":\"ffffffffffffffffffffffffffffffff\"}", &needles());
        assert_eq!(leaks.len(), 1);
        assert_eq!(leaks[0].kind, "32-hex-digit string (password shape)");
    }

    #[test]
    fn an_unseen_token_is_found_by_its_database_id() {
        let mut raw = vec![1u8, 0x18, 0xeb, 1, 0x24, 0x20];
        raw.extend_from_slice(b"96ad0856-03b1-4ee7-9666-e81abd0349e1");
        raw.extend_from_slice(b"some secret bytes");
        let token = URL_SAFE.encode(raw);
        let leaks = scan("log", &format!("token {token}"), &needles());
        assert_eq!(leaks, vec![Leak { source: "log".into(), kind: "REST token (by its database id)" }]);
        assert!(!redact(&format!("token {token}"), &needles()).contains(&token));
    }

    #[test]
    fn the_api_key_is_found_and_redacted() {
        let text = "auth rw-0123456789abcdef";
        assert_eq!(scan("log", text, &needles()).len(), 1);
        assert_eq!(redact(text, &needles()), "auth <redacted>");
    }
}

mod report_tests {
    use super::{invariants::Count, report::*};

    fn report(key: &'static str, count: Count, leaks: u64) -> ScenarioReport {
        ScenarioReport { key, runs: 1, faults: 10, count, leaks, ..ScenarioReport::default() }
    }

    #[test]
    fn the_final_line_has_the_exact_shape() {
        let c = Count {
            lost: 1,
            extra_announced: 2,
            extra_silent: 3,
            missed_announced: 4,
            missed_silent: 5,
            stuck: 6,
            attention: 7,
        };
        let t = totals(&[report("a", c, 8), report("b", Count::default(), 0)]);
        assert_eq!(
            final_line(&t),
            "chaos: 20 faults, 1 lost, 5 extra resets (3 silent), 9 missed (5 silent), 6 stuck, 8 leaks"
        );
        assert!(failed(&t));
    }

    #[test]
    fn announced_only_does_not_fail() {
        let c = Count { extra_announced: 2, missed_announced: 1, attention: 1, ..Count::default() };
        let t = totals(&[report("a", c, 0)]);
        assert!(!failed(&t));
        assert!(!report("a", Count { extra_announced: 2, ..Count::default() }, 0).failed());
    }

    #[test]
    fn any_silent_lost_stuck_leak_or_error_fails() {
        for c in [
            Count { lost: 1, ..Count::default() },
            Count { extra_silent: 1, ..Count::default() },
            Count { missed_silent: 1, ..Count::default() },
            Count { stuck: 1, ..Count::default() },
        ] {
            assert!(failed(&totals(&[report("a", c, 0)])));
        }
        assert!(failed(&totals(&[report("a", Count::default(), 1)])));
        let mut errored = report("a", Count::default(), 0);
        errored.error = Some("sim did not start".into());
        assert!(failed(&totals(&[errored])));
    }

    #[test]
    fn the_document_caps_details_per_scenario() {
        let mut r = report("no-election", Count { extra_silent: 30, ..Count::default() }, 0);
        r.details = (0..30).map(|i| format!("line {i}")).collect();
        let capped = details_capped(std::slice::from_ref(&r), 12);
        assert!(capped.contains("line 11") && !capped.contains("line 12"));
        assert!(capped.contains("... and 18 more lines"));
        assert!(details(std::slice::from_ref(&r)).contains("line 29"));
    }

    #[test]
    fn the_table_lists_every_scenario() {
        let t = table(&[
            report("kill9", Count::default(), 0),
            report("no-election", Count { extra_silent: 2, ..Count::default() }, 0),
        ]);
        assert_eq!(t.lines().count(), 3);
        assert!(t.contains("kill9") && t.contains("FAIL"));
    }
}

mod tracking_tests {
    use super::{invariants::Step, tracking::*};

    fn shapes(steps: &[Step]) -> Vec<(u64, u64, bool)> {
        steps.iter().map(|s| (s.resets, s.advances, s.open)).collect()
    }

    fn view(spec: i64, applied: i64, reason: &str) -> View {
        View {
            spec,
            applied: Some(applied),
            pending: None,
            ready: Some(("True".into(), reason.into(), String::new())),
            rotating: None,
            recorded: Vec::new(),
        }
    }

    #[test]
    fn the_rotations_a_status_history_records_are_kept_across_polls() {
        use upstash_rotator::crd::{
            HistoryEntry, RedisPasswordRotation, RedisPasswordRotationSpec, RedisPasswordRotationStatus,
            RotationTrigger,
        };
        let entry = |rotation, trigger| HistoryEntry {
            rotation,
            scheduled_rotation: None,
            time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            ),
            trigger,
            recovered: false,
            fingerprint: None,
        };
        let mut resource = RedisPasswordRotation::new("r", RedisPasswordRotationSpec::new("db", "key"));
        resource.status = Some(RedisPasswordRotationStatus {
            rotation: Some(31),
            // Newest first; a password changed outside is no rotation.
            history: vec![entry(31, RotationTrigger::Recovery), entry(31, RotationTrigger::Counter)],
            ..Default::default()
        });
        assert_eq!(View::of(&resource).recorded, [31]);

        let mut t = Track::starting_at(&view(30, 30, "Rotated"), 0);
        t.observe(&View { recorded: vec![31], ..view(32, 31, "Rotated") }, 1);
        // The resource was recreated: its new history lost 31.
        t.observe(&View { recorded: vec![32], ..view(32, 32, "Rotated") }, 2);
        assert_eq!(t.recorded, [31, 32].into());
    }

    #[test]
    fn an_advance_closes_the_open_window_with_its_resets() {
        let mut t = Track::starting_at(&view(3, 3, "Rotated"), 10);
        t.open(10);
        t.observe(&view(4, 3, "Rotating"), 11); // not applied yet
        assert!(t.steps.is_empty());
        t.observe(&view(4, 4, "Rotated"), 11);
        assert_eq!(shapes(&t.steps), vec![(1, 1, false)]);
        assert_eq!(shapes(&t.finish(12)), vec![(1, 1, false)]);
    }

    #[test]
    fn a_jump_is_one_step() {
        let mut t = Track::starting_at(&view(0, 0, "Rotated"), 0);
        t.open(0);
        t.observe(&view(3, 3, "Rotated"), 1);
        assert_eq!(shapes(&t.steps), vec![(1, 1, false)]);
    }

    #[test]
    fn a_counter_raised_before_the_advance_was_seen_makes_one_window_of_two_advances() {
        // Raised to 5 while 4 was being applied: which reset belongs to which
        // advance cannot be told, so both advances share one window.
        let mut t = Track::starting_at(&view(3, 3, "Rotated"), 0);
        t.open(0);
        t.observe(&view(5, 4, "Rotated"), 2);
        assert!(t.steps.is_empty());
        t.observe(&view(5, 5, "Rotated"), 2);
        assert_eq!(shapes(&t.steps), vec![(2, 2, false)]);
    }

    #[test]
    fn every_raise_in_an_open_window_is_counted() {
        let mut t = Track::starting_at(&view(16, 16, "Rotated"), 0);
        t.open(0);
        t.open(1); // raised again before 17 was seen applied
        t.observe(&view(18, 18, "Rotated"), 2);
        assert_eq!(t.steps.iter().map(|s| (s.advances, s.raises)).collect::<Vec<_>>(), vec![(1, 2)]);
        t.open(2);
        t.observe(&view(19, 19, "Rotated"), 3);
        assert_eq!(t.steps[1].raises, 1, "a new window counts from one");
    }

    #[test]
    fn a_counter_left_ahead_opens_a_window_and_an_unwatched_advance_is_not_judged() {
        let t = Track::starting_at(&view(6, 5, "Rotating"), 4);
        assert_eq!(shapes(&t.finish(5)), vec![(1, 0, true)]);
        let mut idle = Track::starting_at(&view(5, 5, "Rotated"), 4);
        idle.observe(&view(6, 6, "Rotated"), 4);
        assert_eq!((idle.steps.len(), idle.unjudged), (0, 1));
    }

    #[test]
    fn needs_attention_is_answered_once_per_occurrence() {
        let mut t = Track::starting_at(&view(1, 1, "Rotated"), 0);
        let stopped = view(2, 1, NEEDS_ATTENTION);
        assert_eq!(t.attend(&stopped), Some(3));
        // The status still shows the old condition: no second raise.
        assert_eq!(t.attend(&view(3, 1, NEEDS_ATTENTION)), None);
        assert_eq!(t.attention, 1);
        // It stopped again later, for a higher counter: raise again.
        assert_eq!(t.attend(&view(6, 5, NEEDS_ATTENTION)), Some(7));
        assert_eq!(t.attend(&view(6, 5, "Rotating")), None);
        assert_eq!(t.attention, 2);
    }

    #[test]
    fn converged_means_applied_idle_and_ready() {
        assert!(view(4, 4, "Rotated").converged());
        assert!(!view(5, 4, "Rotated").converged());
        let mut pending = view(4, 4, "Rotated");
        pending.pending = Some(5);
        assert!(!pending.converged());
    }
}
