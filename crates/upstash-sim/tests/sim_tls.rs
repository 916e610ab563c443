//! `upstash-sim --tls-cert/--tls-key`: every route over HTTPS with a test CA,
//! databases that report where the simulator really is, and clear errors
//! for unusable certificate files.

use testkit as support;

use std::time::Duration;

use redis::AsyncCommands as _;
use serde_json::{Value, json};
use support::{
    sim::{RedisServer, Sim},
    tls::{TestCa, system_trust_client},
};

#[tokio::test]
async fn https_serves_every_route_where_the_databases_say_it_is() {
    let ca = TestCa::new(&[]);
    let redis = RedisServer::start().await;
    let sim = Sim::start_tls(&ca, &["--redis", &redis.address()]).await;
    assert!(sim.url.starts_with("https://127.0.0.1:"), "{}", sim.url);

    // Management API over HTTPS, with a client that trusts the test CA.
    let created = sim.create_database("tls").await;
    let id = created["database_id"].as_str().expect("id");
    assert_eq!(created["rest_url"], json!(sim.url), "rest_url is https://<listen>:<port>");
    assert_eq!(sim.get_database(id).await["rest_url"], json!(sim.url));

    // The data plane answers at the advertised URL, with the REST token.
    let token = created["rest_token"].as_str().expect("token");
    let rest_url = created["rest_url"].as_str().expect("rest_url");
    let ping = sim.http.get(format!("{rest_url}/ping")).bearer_auth(token).send().await.expect("ping");
    assert_eq!(ping.status(), 200);
    assert_eq!(ping.json::<Value>().await.expect("json"), json!({"result": "PONG"}));

    // endpoint:port is the redis-server, and the API's password opens it.
    let endpoint = created["endpoint"].as_str().expect("endpoint");
    let port = created["port"].as_u64().expect("port");
    assert_eq!((endpoint, port), ("127.0.0.1", u64::from(redis.port)));
    let password = created["password"].as_str().expect("password");
    let url = format!("redis://default:{password}@{endpoint}:{port}/");
    let mut conn = redis::Client::open(url)
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("AUTH with the API's password at endpoint:port");
    let pong: String = conn.ping().await.expect("ping");
    assert_eq!(pong, "PONG");

    // /_sim is HTTPS too.
    assert_eq!(sim.resets(id).await, 0);

    // A client without the CA refuses the certificate; the simulator sees
    // only a failed handshake, never a request.
    let before = sim.request_log().await["requests"].as_array().map_or(0, Vec::len);
    let refused = system_trust_client()
        .post(format!("{}/v2/redis/reset-password/{id}", sim.url))
        .send()
        .await
        .expect_err("untrusted certificate");
    assert!(refused.is_connect(), "{refused:?}");
    // The client gives up as soon as it sees the certificate; the simulator
    // learns of it from the alert that follows, a moment later.
    let log = support::eventually(Duration::from_secs(10), "the refusal recorded as UnknownCA", || async {
        let log = sim.request_log().await;
        let failures = log["tls_failures"].as_array()?;
        failures.iter().any(|f| f["error"].as_str().is_some_and(|e| e.contains("UnknownCA"))).then_some(log)
    })
    .await;
    assert_eq!(log["requests"].as_array().map_or(0, Vec::len), before, "no request got through");
    assert_eq!(sim.resets(id).await, 0);

    // Plain HTTP to the HTTPS port is not served either.
    let plain = sim.url.replacen("https://", "http://", 1);
    let answer = system_trust_client().get(format!("{plain}/v2/redis/databases")).send().await;
    assert!(answer.is_err() || answer.is_ok_and(|r| !r.status().is_success()));
}

#[tokio::test]
async fn without_tls_the_rest_url_is_http_and_reaches_the_data_plane() {
    let sim = Sim::start(&[]).await;
    let created = sim.create_database("plain").await;
    assert_eq!(created["rest_url"], json!(sim.url));
    assert!(sim.url.starts_with("http://127.0.0.1:"));
    let token = created["rest_token"].as_str().expect("token");
    let ping = sim.http.get(format!("{}/ping", sim.url)).bearer_auth(token).send().await.expect("ping");
    assert_eq!(ping.status(), 200);
    // Without --redis, nothing listens behind the endpoint: it stays an
    // Upstash-like name that points nowhere on this machine.
    assert!(created["endpoint"].as_str().expect("endpoint").ends_with(".upstash.io"));
}

#[tokio::test]
async fn the_advertised_host_names_the_rest_url() {
    let ca = TestCa::new(&[]);
    let sim = Sim::start_tls(&ca, &["--advertise-host", "sim.example.test"]).await;
    let port = sim.url.rsplit_once(':').map(|(_, p)| p.to_owned()).expect("port");
    let created = sim.create_database("named").await;
    assert_eq!(created["rest_url"], json!(format!("https://sim.example.test:{port}")));
}

async fn run_sim(args: &[&str]) -> std::process::Output {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_upstash-sim"))
        .args(["--account", "dev@example.com:dev-key", "--listen", "127.0.0.1:0"])
        .args(args)
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(Duration::from_secs(20), output).await.expect("exits in time").expect("run")
}

#[tokio::test]
async fn unusable_certificate_files_are_usage_errors() {
    let ca = TestCa::new(&[]);
    let other = TestCa::new(&[]);
    let (cert, key) = (ca.cert_path(), ca.key_path());
    let (cert, key) = (cert.to_str().expect("utf-8"), key.to_str().expect("utf-8"));
    let other_key = other.key_path();
    let ca_only = ca.ca_path();
    let cases: [(Vec<&str>, &str); 5] = [
        (
            vec!["--tls-cert", "/nonexistent/server.pem", "--tls-key", key],
            "--tls-cert /nonexistent/server.pem: cannot read it",
        ),
        (
            vec!["--tls-cert", cert, "--tls-key", "/nonexistent/key.pem"],
            "--tls-key /nonexistent/key.pem: cannot read it",
        ),
        (vec!["--tls-cert", key, "--tls-key", key], "no BEGIN CERTIFICATE block"),
        (
            vec!["--tls-cert", cert, "--tls-key", other_key.to_str().expect("utf-8")],
            "cannot be served together",
        ),
        (vec!["--tls-cert", ca_only.to_str().expect("utf-8")], "--tls-key"),
    ];
    for (args, expected) in cases {
        let output = run_sim(&args).await;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(!stderr.contains("PRIVATE KEY"), "a key's content is never shown: {stderr}");
        assert!(output.stdout.is_empty(), "nothing listened");
    }
}

#[tokio::test]
async fn an_unspecified_listen_address_needs_an_advertised_host() {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_upstash-sim"))
        .args(["--account", "dev@example.com:dev-key", "--listen", "0.0.0.0:0", "--allow-remote"])
        .kill_on_drop(true)
        .output()
        .await
        .expect("run");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--advertise-host"), "{stderr}");
    assert!(output.stdout.is_empty(), "nothing listened");
}
