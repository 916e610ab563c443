//! Upstash's own clients, unmodified, against `upstash-sim`: the TypeScript
//! SDK `@upstash/redis` on the REST data plane (backed by a real
//! redis-server) and the `@upstash/cli` on the management API. The npm
//! packages are pinned in crates/upstash-sim/tests/clients and installed by `make test`.

use testkit as support;

use std::{path::PathBuf, process::Output};

use redis::AsyncCommands as _;
use serde_json::Value;
use support::{
    sim::{API_KEY, EMAIL, RO_API_KEY, RO_EMAIL, RedisServer, Sim},
    tls::TestCa,
};

fn clients_dir() -> PathBuf {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients"));
    assert!(
        dir.join("node_modules/@upstash/redis").exists() && dir.join("node_modules/@upstash/cli").exists(),
        "npm packages missing: run `make test` (or `npm ci` in crates/upstash-sim/tests/clients)"
    );
    dir
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn the_typescript_sdk_runs_against_the_simulated_data_plane() {
    let redis = RedisServer::start().await;
    let sim = Sim::start(&["--redis", &redis.address()]).await;
    let created = sim.create_database("sdk").await;
    let id = created["database_id"].as_str().expect("id");
    let old_token = created["rest_token"].as_str().expect("token").to_owned();
    let reset: Value = sim.reset(id).await.expect("reset").json().await.expect("json");
    let token = reset["rest_token"].as_str().expect("token");

    let dir = clients_dir();
    let run = tokio::process::Command::new("node")
        .args(["--test", "--test-reporter=spec", "sdk.test.mjs"])
        .current_dir(&dir)
        .env("UPSTASH_SIM_URL", &sim.url)
        .env("REST_TOKEN", token)
        .env("OLD_REST_TOKEN", &old_token)
        .env("UPSTASH_DISABLE_TELEMETRY", "1")
        .output();
    let out =
        tokio::time::timeout(std::time::Duration::from_secs(120), run).await.expect("in time").expect("node");
    assert!(out.status.success(), "node --test failed:\n{}\n{}", text(&out.stdout), text(&out.stderr));

    // What the SDK wrote is in the real redis-server, behind the new password.
    let password = reset["password"].as_str().expect("password");
    let client =
        redis::Client::open(format!("redis://default:{password}@127.0.0.1:{}/", redis.port)).expect("url");
    let mut conn = client.get_multiplexed_async_connection().await.expect("connect");
    let greeting: String = conn.get("greeting").await.expect("get");
    assert_eq!(greeting, "hello from the sdk");
}

/// `Redis.fromEnv()` with the URL and token the simulator reports, over
/// HTTPS: it works with the test CA in NODE_EXTRA_CA_CERTS, and is refused
/// without it.
#[tokio::test]
async fn the_typescript_sdk_reaches_the_advertised_https_url_with_the_test_ca() {
    let ca = TestCa::new(&[]);
    let redis = RedisServer::start().await;
    let sim = Sim::start_tls(&ca, &["--redis", &redis.address()]).await;
    let created = sim.create_database("sdk-tls").await;
    let rest_url = created["rest_url"].as_str().expect("rest_url");
    let token = created["rest_token"].as_str().expect("token");
    assert!(rest_url.starts_with("https://"), "{rest_url}");

    let node = |trusted: bool| {
        let mut command = tokio::process::Command::new("node");
        command
            .args(["--test", "--test-reporter=spec", "fromenv.test.mjs"])
            .current_dir(clients_dir())
            .env("UPSTASH_REDIS_REST_URL", rest_url)
            .env("UPSTASH_REDIS_REST_TOKEN", token)
            .env("UPSTASH_DISABLE_TELEMETRY", "1")
            .env_remove("NODE_EXTRA_CA_CERTS");
        if trusted {
            command.env("NODE_EXTRA_CA_CERTS", ca.ca_path());
        } else {
            command.env("EXPECT_UNTRUSTED", "1");
        }
        tokio::time::timeout(std::time::Duration::from_secs(120), command.output())
    };
    for trusted in [true, false] {
        let out = node(trusted).await.expect("in time").expect("node");
        assert!(
            out.status.success(),
            "node --test (CA trusted: {trusted}) failed:\n{}\n{}",
            text(&out.stdout),
            text(&out.stderr)
        );
    }
    // What the SDK wrote went to the redis-server behind the database.
    let password = created["password"].as_str().expect("password");
    let client =
        redis::Client::open(format!("redis://default:{password}@127.0.0.1:{}/", redis.port)).expect("url");
    let mut conn = client.get_multiplexed_async_connection().await.expect("connect");
    let value: String = conn.get("over-tls").await.expect("get");
    assert_eq!(value, "yes");
}

async fn upstash_cli(sim: &Sim, auth: (&str, &str), args: &[&str]) -> Output {
    let dir = clients_dir();
    let run = tokio::process::Command::new("node")
        .arg("--import=./redirect.mjs")
        .arg("node_modules/@upstash/cli/dist/cli.js")
        .args(["--email", auth.0, "--api-key", auth.1])
        .args(args)
        .current_dir(&dir)
        .env("UPSTASH_SIM_URL", &sim.url)
        .env("UPSTASH_CONFIG_HOME", dir.join("node_modules/.no-config"))
        .output();
    tokio::time::timeout(std::time::Duration::from_secs(60), run).await.expect("in time").expect("node")
}

fn json_out(out: &Output) -> Value {
    assert!(out.status.success(), "upstash CLI failed:\n{}\n{}", text(&out.stdout), text(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("the CLI prints JSON")
}

#[tokio::test]
async fn the_upstash_cli_manages_simulated_databases() {
    let sim = Sim::start(&[]).await;
    let rw = (EMAIL, API_KEY);

    let created = json_out(
        &upstash_cli(&sim, rw, &["redis", "create", "--name", "app", "--region", "us-east-1"]).await,
    );
    let id = created["database_id"].as_str().expect("id").to_owned();
    assert_eq!(created["database_name"], "app");
    let password = created["password"].as_str().expect("password").to_owned();

    let listed = json_out(&upstash_cli(&sim, rw, &["redis", "list"]).await);
    assert_eq!(listed[0]["database_id"], Value::String(id.clone()));

    let got = json_out(&upstash_cli(&sim, rw, &["redis", "get", "--db-id", &id]).await);
    assert_eq!(got["password"], Value::String(password.clone()));
    let hidden =
        json_out(&upstash_cli(&sim, rw, &["redis", "get", "--db-id", &id, "--hide-credentials"]).await);
    assert!(hidden.get("password").is_none(), "{hidden}");

    let reset = json_out(&upstash_cli(&sim, rw, &["redis", "reset-password", "--db-id", &id]).await);
    let new_password = reset["password"].as_str().expect("password");
    assert_ne!(new_password, password);
    assert_eq!(sim.resets(&id).await, 1);

    let wrong = upstash_cli(&sim, (EMAIL, "wrong-key"), &["redis", "list"]).await;
    assert_eq!(wrong.status.code(), Some(1));
    assert!(text(&wrong.stderr).contains("Unauthorized"), "{}", text(&wrong.stderr));
    let read_only =
        upstash_cli(&sim, (RO_EMAIL, RO_API_KEY), &["redis", "reset-password", "--db-id", &id]).await;
    assert_eq!(read_only.status.code(), Some(1));
    assert!(text(&read_only.stderr).contains("Readonly API key"), "{}", text(&read_only.stderr));
    let unknown = upstash_cli(&sim, rw, &["redis", "get", "--db-id", "nope"]).await;
    assert!(text(&unknown.stderr).contains("database not found"), "{}", text(&unknown.stderr));

    let deleted = json_out(&upstash_cli(&sim, rw, &["redis", "delete", "--db-id", &id]).await);
    assert_eq!(deleted["deleted"], Value::Bool(true));
    assert_eq!(json_out(&upstash_cli(&sim, rw, &["redis", "list"]).await), Value::Array(vec![]));
}
