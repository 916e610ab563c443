//! The floor's ladder: the floor again with the operator's other requests
//! added one kind at a time (`floor::Extras`), at the concurrencies the
//! burst goal names. Each rung's time and control-plane CPU, next to the
//! floor's and the operator's of the same run, price every request the
//! operator makes beyond the floor. The last two rungs also hold the
//! operator's watches, and the last writes the operator's status (its size
//! is a cost of its own); what is left between it and the operator is the
//! operator's own work: its queue, the echoes of its writes, its CPU.

use kube::Client;
use serde_json::{Value, json};
use testkit::sim::Sim;

use crate::{
    Result,
    floor::{Extras, Floor},
    per_rotation_ms, probe, watches,
};

/// The concurrencies the burst goal names: the default, and 16.
pub const CONCURRENCIES: [u16; 2] = [4, 16];

/// The rungs, each adding one kind of request to the one before, then
/// (`true`) the operator's watches, then the operator's status in the same
/// writes.
const RUNGS: [(&str, Extras, bool); 4] = [
    ("probe", Extras { probe: true, ..Extras::NONE }, false),
    ("event", Extras { probe: true, event: true, ..Extras::NONE }, false),
    ("watches", Extras { probe: true, event: true, ..Extras::NONE }, true),
    ("status", Extras { probe: true, event: true, operator_status: true }, true),
];

/// Climbs the ladder at `concurrency`, rotating every floor resource to
/// `rotation` and onwards; `plain` is the plain floor's seconds and CPU per
/// rotation at that concurrency, measured just before.
pub async fn climb(
    client: &Client,
    floor: &Floor,
    sim: &Sim,
    burst: usize,
    mut rotation: i64,
    concurrency: u16,
    (floor_seconds, floor_plane): (f64, f64),
) -> Result<Value> {
    let mut rungs = serde_json::Map::new();
    for (key, extras, watched) in RUNGS {
        // Opened (and listed) before the rung's clock starts.
        let open = if watched { Some(watches::open(client).await?) } else { None };
        let plane = probe::plane_cpu_ns()?;
        let took = floor.rotate_all(sim, rotation, usize::from(concurrency), extras).await?;
        let plane = per_rotation_ms(probe::plane_cpu_ns()? - plane, burst);
        drop(open);
        rotation += 1;
        rungs.insert(
            key.into(),
            json!({
                "seconds": took.as_secs_f64(),
                "ratio_to_floor": took.as_secs_f64() / floor_seconds,
                "plane_cpu_ms_per_rotation": plane,
            }),
        );
    }
    Ok(json!({
        "concurrency": concurrency,
        "floor": {"seconds": floor_seconds, "plane_cpu_ms_per_rotation": floor_plane},
        "rungs": rungs,
    }))
}

/// Adds the operator's burst at each rung's concurrency, and its ratio to
/// the last rung (the floor making every request the operator makes).
pub fn with_operator(ladder: &mut Value, bursts: &[Value]) {
    let Some(steps) = ladder.as_array_mut() else { return };
    for step in steps {
        let burst = bursts.iter().find(|b| b["concurrency"] == step["concurrency"]);
        let (last_rung, ..) = RUNGS[RUNGS.len() - 1];
        let (Some(burst), Some(last)) = (burst, step["rungs"][last_rung]["seconds"].as_f64()) else {
            continue;
        };
        let seconds = burst["seconds"].as_f64().unwrap_or(0.0);
        step["operator"] = json!({
            "seconds": seconds,
            "ratio_to_floor": burst["ratio_to_floor"],
            "ratio_to_last_rung": seconds / last,
            "plane_cpu_ms_per_rotation": burst["plane_cpu_ms_per_rotation"],
            "plane_cpu_ms_per_rotation_with_events": burst["plane_cpu_ms_per_rotation_with_events"],
        });
    }
}
