//! The check after a rotation, with the real operator binary and
//! `upstash-sim`'s REST data plane and its propagation lag: the check waits
//! out a short lag, and a lag longer than it waits for is reported (a
//! warning, `Verified=False`) without a second reset.

use testkit as support;

use serde_json::json;
use support::{
    WAIT, eventually,
    sim::{RedisServer, Sim},
    world::World,
};
use upstash_rotator::conditions::{self, VERIFIED};

async fn propagation_lag(world: &World, ms: u64) {
    let path = format!("/_sim/databases/{}/propagation-lag", world.database_id);
    world.sim.control(reqwest::Method::PUT, &path, json!({"ms": ms})).await;
}

async fn verified_condition(world: &World) -> (String, String, String) {
    let r = world.resources().get("cache").await.expect("resource");
    let c = conditions::get(&r.status.unwrap_or_default().conditions, VERIFIED)
        .cloned()
        .expect("Verified condition");
    (c.status, c.reason, c.message)
}

#[tokio::test]
async fn a_rotation_is_checked_on_the_data_plane_through_propagation_lag() {
    let world = World::new("verify").await;
    world.create("cache", world.spec()).await;
    world.wait_applied("cache", 0).await;
    let old_token = world.secret_text("cache", upstash_rotator::secret::KEY_REST_TOKEN).await;

    // New tokens are refused, and old ones accepted, for 1.5 s after a reset.
    propagation_lag(&world, 1_500).await;
    world.set_rotation("cache", 1).await;
    world.wait_applied("cache", 1).await;
    let (state, reason, message) = verified_condition(&world).await;
    assert_eq!((state.as_str(), reason.as_str()), ("True", "Verified"), "{message}");
    eprintln!("Verified after a 1.5 s propagation lag: {message}");
    assert!(message.starts_with("rotation 1: the new credentials answer PING"), "{message}");
    assert!(message.contains("the old ones are refused"), "{message}");
    // What the check saw is what applications see.
    let new_token = world.secret_text("cache", upstash_rotator::secret::KEY_REST_TOKEN).await;
    assert_eq!((world.sim.ping(&new_token).await, world.sim.ping(&old_token).await), (200, 401));

    // A lag longer than the check waits (10 s): reported, not reset again.
    propagation_lag(&world, 120_000).await;
    world.set_rotation("cache", 2).await;
    world.wait_applied("cache", 2).await;
    let (state, reason, message) = verified_condition(&world).await;
    assert_eq!((state.as_str(), reason.as_str()), ("False", "VerificationFailed"), "{message}");
    assert!(message.contains("new credentials are still refused on the REST data plane"), "{message}");
    eventually(WAIT, "a VerificationFailed warning", || async {
        let events = world.events().await;
        events
            .iter()
            .any(|e| {
                e.reason.as_deref() == Some("VerificationFailed") && e.type_.as_deref() == Some("Warning")
            })
            .then_some(())
    })
    .await;
    assert_eq!(world.resets().await, 2, "one reset per rotation, whatever the check found");
    let current = world.current().await;
    let password = world.secret_text("cache", upstash_rotator::secret::KEY_PASSWORD).await;
    assert_eq!(password, current["password"].as_str().unwrap_or_default(), "the Secret holds the answer");
}

/// Where the REST data plane cannot be reached, the check logs in over RESP
/// instead (the simulator's database is a real redis-server).
#[tokio::test]
async fn without_the_rest_data_plane_the_check_uses_auth_and_ping_over_resp() {
    let redis = RedisServer::start().await;
    let sim = Sim::start(&["--redis", &redis.address()]).await;
    let mut world = World::prepare_with("verify-resp", sim).await;
    world.start_operator().await;
    world.create("cache", world.spec()).await;
    world.wait_applied("cache", 0).await;
    // Every REST data-plane request is dropped without an answer.
    let drop_all = json!({"route": "data-plane", "times": 1000, "action": {"kind": "drop"}});
    world.sim.fault(drop_all).await;
    world.set_rotation("cache", 1).await;
    world.wait_applied("cache", 1).await;
    let (state, reason, message) = verified_condition(&world).await;
    assert_eq!((state.as_str(), reason.as_str()), ("True", "Verified"), "{message}");
    assert!(message.contains("over RESP") && message.contains("the old ones are refused"), "{message}");
}
