//! `spec.schedule`: when the next scheduled rotation may start. Pure: the
//! clock is always passed in, so every case is tested without waiting.
//!
//! A rotation is due `every` after the last one. With windows it starts only
//! inside one: a window opens at each time its cron expression (in the time
//! zone) matches and stays open for its duration.

use croner::{
    Cron,
    parser::{CronParser, Seconds, Year},
};
use jiff::{SignedDuration, Timestamp, tz::TimeZone};

use crate::crd::RotationSchedule;

/// The shortest `every` and window the operator accepts (also checked at
/// admission).
pub const MINIMUM: SignedDuration = SignedDuration::from_secs(60);

/// A `spec.schedule` the operator cannot use. The messages quote only the
/// spec, which holds no secret.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScheduleError {
    #[error("spec.schedule.{field} {value:?} is not a duration like \"720h\" or \"1h30m\" of at least 1m")]
    Duration { field: String, value: String },
    #[error(
        "spec.schedule.timeZone {0:?} is not a time zone of the tz database (for example \"Europe/Berlin\")"
    )]
    TimeZone(String),
    #[error("spec.schedule.windows[{index}].start {value:?} is not a cron expression of 5 fields: {why}")]
    Cron { index: usize, value: String, why: String },
    #[error("spec.schedule.windows[{index}].start {value:?} never matches a date, so the window never opens")]
    NeverOpens { index: usize, value: String },
}

/// A parsed, checked `spec.schedule`.
#[derive(Debug, Clone)]
pub struct Schedule {
    every: SignedDuration,
    windows: Vec<Window>,
    zone: TimeZone,
}

#[derive(Debug, Clone)]
struct Window {
    index: usize,
    expression: String,
    start: Cron,
    length: SignedDuration,
}

impl Schedule {
    /// Parses and checks the spec. `now` is where the search for each
    /// window's first opening starts: a window that never opens is refused.
    pub fn parse(spec: &RotationSchedule, now: Timestamp) -> Result<Self, ScheduleError> {
        let every = duration("every", &spec.every)?;
        let zone_name = spec.time_zone.as_deref().unwrap_or("UTC");
        let zone =
            jiff::tz::db().get(zone_name).map_err(|_| ScheduleError::TimeZone(zone_name.to_owned()))?;
        let parser = CronParser::builder().seconds(Seconds::Disallowed).year(Year::Disallowed).build();
        let windows = spec
            .windows
            .iter()
            .enumerate()
            .map(|(index, w)| {
                let start = parser.parse(&w.start).map_err(|e| ScheduleError::Cron {
                    index,
                    value: w.start.clone(),
                    why: e.to_string(),
                })?;
                let length = duration(&format!("windows[{index}].duration"), &w.duration)?;
                Ok(Window { index, expression: w.start.clone(), start, length })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let schedule = Self { every, windows, zone };
        for window in &schedule.windows {
            schedule.opening_after(window, now)?;
        }
        Ok(schedule)
    }

    /// When the next scheduled rotation may start, given the last rotation
    /// (or the resource's creation) and now. The rotation is due once this
    /// is not after `now`.
    ///
    /// The answer stays the same from one call to the next until it is
    /// reached or a window opens or closes, so a status that records it is
    /// not rewritten by every reconcile: due and inside a window, it is the
    /// later of the due time and the window's opening; due outside every
    /// window, the next opening.
    pub fn next_start(&self, last: Timestamp, now: Timestamp) -> Result<Timestamp, ScheduleError> {
        let due = last.checked_add(self.every).unwrap_or(Timestamp::MAX);
        if self.windows.is_empty() {
            return Ok(due);
        }
        let at = due.max(now);
        let mut earliest: Option<Timestamp> = None;
        for window in &self.windows {
            // The first opening after `at - length` is the earliest one whose
            // window still contains `at`, if it opened by `at`.
            let from = at.checked_sub(window.length).unwrap_or(Timestamp::MIN);
            let opening = self.opening_after(window, from)?;
            let candidate = if opening <= at { opening.max(due) } else { opening };
            earliest = Some(earliest.map_or(candidate, |e| e.min(candidate)));
        }
        Ok(earliest.unwrap_or(due))
    }

    /// The first opening of `window` strictly after `from`.
    fn opening_after(&self, window: &Window, from: Timestamp) -> Result<Timestamp, ScheduleError> {
        let never = || ScheduleError::NeverOpens { index: window.index, value: window.expression.clone() };
        let zoned = from.to_zoned(self.zone.clone());
        window.start.find_next_occurrence(&zoned, false).map(|z| z.timestamp()).map_err(|_| never())
    }
}

/// What `every` counts from: the last rotation, or the creation of a
/// resource that never rotated.
pub fn counted_from(last_rotation: Option<Timestamp>, created: Option<Timestamp>) -> Option<Timestamp> {
    last_rotation.or(created)
}

/// A Go-style duration as the CRD admits them ("720h", "1h30m", "90s").
fn duration(field: &str, value: &str) -> Result<SignedDuration, ScheduleError> {
    let invalid = || ScheduleError::Duration { field: field.to_owned(), value: value.to_owned() };
    let mut rest = value;
    let mut total = SignedDuration::ZERO;
    for (unit, seconds) in [('h', 3600), ('m', 60), ('s', 1)] {
        if let Some((number, tail)) = rest.split_once(unit)
            && !number.is_empty()
            && number.bytes().all(|b| b.is_ascii_digit())
        {
            let n: i64 = number.parse().map_err(|_| invalid())?;
            let part = n.checked_mul(seconds).ok_or_else(invalid)?;
            total = total.checked_add(SignedDuration::from_secs(part)).ok_or_else(invalid)?;
            rest = tail;
        }
    }
    if !rest.is_empty() || value.is_empty() || total < MINIMUM {
        return Err(invalid());
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::MaintenanceWindow;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn schedule(every: &str, windows: &[(&str, &str)], zone: Option<&str>) -> Schedule {
        let spec = RotationSchedule {
            every: every.into(),
            windows: windows
                .iter()
                .map(|(start, duration)| MaintenanceWindow {
                    start: (*start).into(),
                    duration: (*duration).into(),
                })
                .collect(),
            time_zone: zone.map(Into::into),
        };
        Schedule::parse(&spec, at("2026-01-01T00:00:00Z")).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn without_windows_a_rotation_is_due_every_interval_after_the_last() {
        let s = schedule("720h", &[], None);
        let last = at("2026-03-01T10:00:00Z");
        assert_eq!(s.next_start(last, at("2026-03-02T00:00:00Z")), Ok(at("2026-03-31T10:00:00Z")));
        // Overdue (the operator was down): due at once, and the answer does
        // not move with the clock.
        assert_eq!(s.next_start(last, at("2026-05-01T00:00:00Z")), Ok(at("2026-03-31T10:00:00Z")));
    }

    #[test]
    fn with_a_window_a_rotation_starts_at_its_opening_or_inside_it() {
        // Saturdays 02:00 for 4 hours, UTC. 2026-03-07 is a Saturday.
        let s = schedule("24h", &[("0 2 * * 6", "4h")], None);
        let last = at("2026-03-03T12:00:00Z");
        // Due Wednesday noon, outside the window: Saturday 02:00.
        let saturday = at("2026-03-07T02:00:00Z");
        assert_eq!(s.next_start(last, at("2026-03-03T13:00:00Z")), Ok(saturday));
        assert_eq!(s.next_start(last, at("2026-03-06T23:59:59Z")), Ok(saturday), "stable until it opens");
        // Inside the window: due now, and stable while it stays open.
        assert_eq!(s.next_start(last, at("2026-03-07T03:30:00Z")), Ok(saturday));
        // The window closed before the operator got to it: the next one.
        assert_eq!(s.next_start(last, at("2026-03-07T06:00:00Z")), Ok(at("2026-03-14T02:00:00Z")));
        // Due inside an open window: at the due time itself.
        let inside = at("2026-03-06T03:00:00Z");
        assert_eq!(s.next_start(inside, at("2026-03-06T04:00:00Z")), Ok(at("2026-03-07T03:00:00Z")));
    }

    #[test]
    fn windows_follow_their_time_zone_across_daylight_saving_time() {
        // 02:00 in Berlin is 01:00 UTC in winter and 00:00 UTC in summer.
        let s = schedule("1h", &[("0 2 * * *", "1h")], Some("Europe/Berlin"));
        let winter = at("2026-01-10T12:00:00Z");
        assert_eq!(s.next_start(winter, winter), Ok(at("2026-01-11T01:00:00Z")));
        let summer = at("2026-07-10T12:00:00Z");
        assert_eq!(s.next_start(summer, summer), Ok(at("2026-07-11T00:00:00Z")));
    }

    #[test]
    fn the_earliest_of_several_windows_wins() {
        let s = schedule("1h", &[("0 2 * * 6", "4h"), ("30 22 * * 3", "1h")], None);
        let last = at("2026-03-03T12:00:00Z"); // a Tuesday
        assert_eq!(s.next_start(last, last), Ok(at("2026-03-04T22:30:00Z")));
    }

    #[test]
    fn bad_input_is_refused_with_the_field_it_came_from() {
        let spec = |every: &str, start: &str, zone: &str| RotationSchedule {
            every: every.into(),
            windows: vec![MaintenanceWindow { start: start.into(), duration: "1h".into() }],
            time_zone: Some(zone.into()),
        };
        let now = at("2026-01-01T00:00:00Z");
        let err =
            |s: RotationSchedule| Schedule::parse(&s, now).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err(spec("30s", "0 2 * * *", "UTC")).contains("spec.schedule.every \"30s\""));
        assert!(err(spec("1d", "0 2 * * *", "UTC")).contains("spec.schedule.every"));
        assert!(err(spec("", "0 2 * * *", "UTC")).contains("spec.schedule.every"));
        assert!(err(spec("1h", "0 2 * * *", "Mars/Olympus")).contains("timeZone \"Mars/Olympus\""));
        assert!(err(spec("1h", "61 2 * * *", "UTC")).contains("windows[0].start \"61 2 * * *\""));
        assert!(err(spec("1h", "0 0 30 2 *", "UTC")).contains("never opens"));
        assert!(err(spec("1h", "0 0 31 4,6 *", "UTC")).contains("never opens"));
        assert!(
            Schedule::parse(&spec("1h30m", "0 0 29 2 *", "Europe/Berlin"), now).is_ok(),
            "leap days open"
        );
    }

    #[test]
    fn durations_are_read_the_way_the_crd_admits_them() {
        assert_eq!(duration("every", "720h"), Ok(SignedDuration::from_hours(720)));
        assert_eq!(duration("every", "1h30m"), Ok(SignedDuration::from_mins(90)));
        assert_eq!(duration("every", "2m30s"), Ok(SignedDuration::from_secs(150)));
        for bad in ["1m1h", "h", "1.5h", "10", "59s", "99999999999999999999h"] {
            assert!(duration("every", bad).is_err(), "{bad}");
        }
    }
}
