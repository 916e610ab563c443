//! The operator as users run it: the image built from the Dockerfile,
//! installed by the chart on the local node, speaking HTTPS to upstash-sim
//! over the pod network; application pods reading the Secret it writes and
//! authenticating to the real redis-server behind the simulator.
//! Needs `make cluster-up NODE=1` and `make image` (both done by `make test`).

mod consumers;
mod operator;

use std::time::{Duration, Instant};

use testkit as support;

use k8s_openapi::api::{coordination::v1::Lease, core::v1::Pod};
use kube::{
    Api,
    api::{DeleteParams, ListParams},
};
use support::{
    WAIT, eventually,
    node::{self, Release, exec, exec_ok, host_ip, wait_ready},
    sim::{RedisServer, Sim, SimOptions},
    tls::TestCa,
    world::World,
};
use upstash_rotator::{
    conditions,
    secret::{KEY_HOST, KEY_PASSWORD, KEY_PORT},
};

/// One test's world where pods reach the simulator (over HTTPS, with a
/// throw-away CA) and the real redis-server behind its database.
struct NodeWorld {
    world: World,
    ca: TestCa,
    _redis: Option<RedisServer>,
}

/// `with_redis`: the world's one database is backed by a real redis-server
/// (the simulator then serves no other database).
async fn node_world(prefix: &str, with_redis: bool) -> NodeWorld {
    node::wait_operator_image().await;
    let ip: std::net::IpAddr = host_ip().parse().expect("TESTENV_HOST_IP is an IP address");
    let ca = TestCa::new(&[ip]);
    let redis = if with_redis { Some(RedisServer::start_also_on(&[ip]).await) } else { None };
    let listen = format!("{ip}:0");
    let backend = redis.as_ref().map(|r| r.address_on(ip));
    let args: Vec<&str> = backend.iter().flat_map(|b| ["--redis", b.as_str()]).collect();
    let sim = Sim::start_with(SimOptions { listen: Some(&listen), tls: Some(&ca), args: &args }).await;
    let world = World::prepare_with(prefix, sim).await;
    NodeWorld { world, ca, _redis: redis }
}

/// `--set-file` for the chart's CA bundle value.
fn ca_bundle(ca: &TestCa) -> String {
    format!("upstash.caBundle={}", ca.ca_path().display())
}
