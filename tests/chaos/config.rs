//! Campaign size and seed, from the environment.

use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Size {
    /// Inside `make test`: every scenario once, under 5 minutes on 2 cores.
    Ci,
    /// `make chaos SIZE=full`: at least 1,000 faults, about half an hour.
    Full,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub size: Size,
    pub seed: u64,
    /// Scenario keys to run (`CHAOS_ONLY=a,b`); all when empty.
    pub only: Vec<String>,
    /// Scenarios run at the same time (not the apiserver restart: it runs alone).
    pub parallel: usize,
    /// Where docs/reliability.md goes; `None` to skip writing it.
    pub report_path: Option<std::path::PathBuf>,
}

/// Faults a full campaign must inject, or it does not count.
pub const FULL_MIN_FAULTS: u64 = 1000;

/// Per-scenario knobs derived from the size.
#[derive(Clone, Copy, Debug)]
pub struct Knobs {
    /// Rounds (burst, heal, converge, check) per scenario.
    pub rounds: u32,
    pub resources: usize,
    /// How long a burst keeps raising counters (chaos runs meanwhile).
    pub burst: Duration,
    /// At most this many bumps per resource per burst.
    pub max_bumps: u32,
    /// Longest a burst may take, waiting for its last steps, before faults heal.
    pub burst_limit: Duration,
    /// Longest convergence may take once faults heal.
    pub converge_limit: Duration,
    /// A scenario's hard limit, whatever happens.
    pub scenario_limit: Duration,
}

impl Config {
    pub fn from_env() -> Result<Self, String> {
        let size = match std::env::var("CHAOS_SIZE").unwrap_or_default().as_str() {
            "" | "ci" => Size::Ci,
            "full" => Size::Full,
            other => return Err(format!("CHAOS_SIZE={other}: expected ci or full")),
        };
        let seed = match std::env::var("CHAOS_SEED") {
            Ok(s) if !s.trim().is_empty() => {
                s.trim().parse().map_err(|_| format!("CHAOS_SEED={s}: expected a number"))?
            }
            _ => super::rng::random_seed(),
        };
        let only = std::env::var("CHAOS_ONLY")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        let parallel = match std::env::var("CHAOS_PARALLEL") {
            Ok(p) if !p.trim().is_empty() => {
                p.trim().parse().map_err(|_| format!("CHAOS_PARALLEL={p}: expected a number"))?
            }
            _ if size == Size::Full => 5,
            _ => 4,
        };
        let report_path = match std::env::var("CHAOS_REPORT") {
            Ok(p) if !p.trim().is_empty() => Some(p.into()),
            _ if size == Size::Full => {
                Some(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/reliability.md").into())
            }
            _ => None,
        };
        Ok(Self { size, seed, only, parallel: parallel.max(1), report_path })
    }

    pub fn knobs(&self) -> Knobs {
        match self.size {
            Size::Ci => Knobs {
                rounds: 1,
                resources: 3,
                burst: Duration::from_secs(12),
                max_bumps: 40,
                burst_limit: Duration::from_secs(30),
                converge_limit: Duration::from_secs(75),
                scenario_limit: Duration::from_secs(180),
            },
            Size::Full => Knobs {
                rounds: 7,
                resources: 5,
                burst: Duration::from_secs(35),
                max_bumps: 200,
                burst_limit: Duration::from_secs(60),
                converge_limit: Duration::from_secs(120),
                scenario_limit: Duration::from_secs(1500),
            },
        }
    }

    pub fn wants(&self, key: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|o| o == key)
    }
}
