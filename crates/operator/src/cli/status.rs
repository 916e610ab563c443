//! `upstash-rotator status [-n NS | -A]`: one line per resource, for people:
//! health, the last and next rotation, the check after it, the consumers.

use std::{fmt::Write as _, process::ExitCode};

use clap::Args;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::{Api, ResourceExt as _, api::ListParams};

use super::{cluster_client, exit, fail};
use crate::{
    conditions::{self, CONSUMERS_RESTARTED, READY, ROTATING, VERIFIED},
    crd::RedisPasswordRotation,
};

#[derive(Args)]
pub struct StatusArgs {
    /// Namespace to list; defaults to the kubeconfig context's namespace.
    #[arg(short, long, conflicts_with = "all_namespaces")]
    namespace: Option<String>,
    /// List the resources of every namespace.
    #[arg(short = 'A', long)]
    all_namespaces: bool,
}

pub async fn status(args: StatusArgs) -> ExitCode {
    let client = match cluster_client().await {
        Ok(c) => c,
        Err(code) => return code,
    };
    let (api, scope): (Api<RedisPasswordRotation>, String) = if args.all_namespaces {
        (Api::all(client), "any namespace".into())
    } else {
        let namespace = args.namespace.unwrap_or_else(|| client.default_namespace().to_owned());
        (Api::namespaced(client, &namespace), format!("namespace {namespace}"))
    };
    let mut resources = match api.list(&ListParams::default()).await {
        Ok(list) => list.items,
        Err(e) => return fail(exit::CLUSTER, format!("cannot list RedisPasswordRotations: {e}")),
    };
    if resources.is_empty() {
        eprintln!("No RedisPasswordRotation in {scope}.");
        return ExitCode::SUCCESS;
    }
    resources.sort_by_key(|r| (r.namespace(), r.name_any()));
    let now = Timestamp::now();
    let rows: Vec<Row> = resources.iter().map(|r| Row::of(r, now)).collect();
    print!("{}", table(&rows, args.all_namespaces));
    ExitCode::SUCCESS
}

/// One resource, in words.
#[derive(Debug, PartialEq, Eq)]
pub struct Row {
    pub namespace: String,
    pub name: String,
    /// The `Ready` reason, or `Rotating`, or the failure's reason.
    pub health: String,
    /// Applied / requested counter, and the scheduled rotations so far.
    pub rotation: String,
    pub last: String,
    pub next: String,
    pub verified: String,
    pub consumers: String,
}

impl Row {
    pub fn of(r: &RedisPasswordRotation, now: Timestamp) -> Self {
        let status = r.status.clone().unwrap_or_default();
        let condition = |type_| conditions::get(&status.conditions, type_);
        let health = match (condition(ROTATING), condition(READY)) {
            (Some(c), _) if c.status == "True" => format!("Rotating ({})", c.reason),
            (_, Some(c)) if c.status == "True" => c.reason.clone(),
            (_, Some(c)) => format!("Failing ({})", c.reason),
            _ => "Pending".into(),
        };
        let applied = status.rotation.map_or_else(|| "-".to_owned(), |n| n.to_string());
        let mut rotation = format!("{applied}/{}", r.spec.rotation);
        if let Some(n) = status.scheduled_rotations.filter(|n| *n > 0) {
            let _ = write!(rotation, " +{n} scheduled");
        }
        let last = status.last_rotation_time.map_or_else(|| "-".into(), |t| ago(now.duration_since(t.0)));
        let next = match (&r.spec.schedule, status.next_rotation_time) {
            (None, _) => "-".into(),
            (Some(_), None) => "unknown".into(),
            (Some(_), Some(t)) if t.0 <= now => "due".into(),
            (Some(_), Some(t)) => format!("in {}", span(t.0.duration_since(now))),
        };
        let verified = if r.spec.verify {
            condition(VERIFIED).map_or("-".into(), |c| c.reason.clone())
        } else {
            "off".into()
        };
        let consumers = match (r.spec.rollout_restart.len(), condition(CONSUMERS_RESTARTED)) {
            (0, _) => "-".into(),
            (n, None) => format!("{n} listed"),
            (n, Some(c)) if c.status == "True" => format!("{n} restarted"),
            (n, Some(c)) => format!("{n}: {}", c.reason),
        };
        Self {
            namespace: r.namespace().unwrap_or_default(),
            name: r.name_any(),
            health,
            rotation,
            last,
            next,
            verified,
            consumers,
        }
    }
}

/// The rows as aligned columns, with a header.
pub fn table(rows: &[Row], with_namespace: bool) -> String {
    let header = [
        "NAMESPACE",
        "NAME",
        "HEALTH",
        "ROTATION",
        "LAST ROTATION",
        "NEXT ROTATION",
        "VERIFIED",
        "CONSUMERS",
    ];
    fn cells(r: &Row) -> [&str; 8] {
        [&r.namespace, &r.name, &r.health, &r.rotation, &r.last, &r.next, &r.verified, &r.consumers]
            .map(String::as_str)
    }
    let skip = usize::from(!with_namespace);
    let mut widths = header.map(str::len);
    for row in rows {
        for (w, c) in widths.iter_mut().zip(cells(row)) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: [&str; 8]| {
        let mut out = String::new();
        for (i, (cell, width)) in cells.iter().zip(widths).enumerate().skip(skip) {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                let _ = write!(out, "{cell:<width$}   ");
            }
        }
        out.trim_end().to_owned() + "\n"
    };
    let mut out = line(header);
    for row in rows {
        out.push_str(&line(cells(row)));
    }
    out
}

fn ago(d: SignedDuration) -> String {
    format!("{} ago", span(d))
}

/// A duration the way `kubectl get` shows ages: its largest unit.
fn span(d: SignedDuration) -> String {
    let s = d.as_secs().max(0);
    match s {
        0..120 => format!("{s}s"),
        120..7_200 => format!("{}m", s / 60),
        7_200..172_800 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{RedisPasswordRotationSpec, RedisPasswordRotationStatus, RotationSchedule};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

    fn condition(type_: &str, status: &str, reason: &str) -> Condition {
        Condition {
            type_: type_.into(),
            status: status.into(),
            reason: reason.into(),
            message: String::new(),
            last_transition_time: Time(Timestamp::UNIX_EPOCH),
            observed_generation: None,
        }
    }

    #[test]
    fn a_row_says_health_rotations_schedule_and_check_in_words() {
        let now: Timestamp = "2026-12-05T12:00:00Z".parse().expect("time");
        let mut r = RedisPasswordRotation::new("cache", RedisPasswordRotationSpec::new("db", "api"));
        r.metadata.namespace = Some("shop".into());
        r.spec.rotation = 3;
        r.spec.schedule =
            Some(Box::new(RotationSchedule { every: "720h".into(), windows: Vec::new(), time_zone: None }));
        r.status = Some(RedisPasswordRotationStatus {
            rotation: Some(3),
            scheduled_rotations: Some(2),
            last_rotation_time: Some(Time("2026-12-05T11:55:00Z".parse().expect("time"))),
            next_rotation_time: Some(Time("2027-01-04T11:55:00Z".parse().expect("time"))),
            conditions: vec![condition(READY, "True", "Rotated"), condition(VERIFIED, "True", "Verified")],
            ..Default::default()
        });
        let row = Row::of(&r, now);
        assert_eq!(
            (row.health.as_str(), row.rotation.as_str(), row.last.as_str(), row.next.as_str()),
            ("Rotated", "3/3 +2 scheduled", "5m ago", "in 29d")
        );
        assert_eq!((row.verified.as_str(), row.consumers.as_str()), ("Verified", "-"));

        let mut failing = RedisPasswordRotation::new("other", RedisPasswordRotationSpec::new("db2", "api"));
        failing.spec.verify = false;
        failing.status = Some(RedisPasswordRotationStatus {
            conditions: vec![condition(READY, "False", "InvalidCredentials")],
            ..Default::default()
        });
        let bad = Row::of(&failing, now);
        assert_eq!(
            (bad.health.as_str(), bad.rotation.as_str(), bad.next.as_str()),
            ("Failing (InvalidCredentials)", "-/0", "-")
        );
        assert_eq!(bad.verified, "off");

        let text = table(&[row, bad], false);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("NAME    HEALTH"), "{text}");
        assert!(lines[1].starts_with("cache   Rotated "), "{text}");
        assert_eq!(lines.len(), 3);
        assert!(!text.contains("NAMESPACE"), "one namespace: no column for it");
    }
}
