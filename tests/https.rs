//! The operator against `upstash-sim` over HTTPS with a private test CA: an
//! untrusted certificate is a clear condition and nothing is sent; trusting
//! the CA (in process, `--ca-file`, or `SSL_CERT_FILE`) makes sync and
//! rotation work; the default trust store is read from files, not compiled in.

use testkit as support;

use std::{ffi::OsStr, time::Duration};

use support::{
    WAIT, eventually,
    process::OperatorProcess,
    ready_message,
    sim::Sim,
    tls::TestCa,
    world::{World, credentials_of},
};
use upstash_rotator::{conditions::Reason, secret};

/// Unix-millisecond times of the TLS handshakes the simulator saw fail.
async fn failed_handshakes(sim: &Sim) -> Vec<u64> {
    let log = sim.request_log().await;
    let failures = log["tls_failures"].as_array().cloned().unwrap_or_default();
    failures.iter().filter_map(|f| f["at_ms"].as_u64()).collect()
}

#[tokio::test]
async fn an_untrusted_certificate_is_a_clear_condition_and_nothing_is_sent() {
    let ca = TestCa::new(&[]);
    let sim = Sim::start_tls(&ca, &[]).await;
    let mut world = World::prepare_with("tls-untrusted", sim).await;
    // No CA given: the operator trusts the system's store only.
    world.start_operator().await;
    world.create("cache", world.spec()).await;

    let failed = world.wait_for("cache", Reason::UpstashTLSUntrusted.as_str(), |_| true).await;
    let message = ready_message(&failed);
    for expected in ["not trusted", "certificate authority", "upstash.caBundle", "--ca-file"] {
        assert!(message.contains(expected), "{expected:?} missing from: {message}");
    }

    // A rotation asked for meanwhile is refused before anything is sent.
    world.set_rotation("cache", 1).await;
    let looked = world
        .wait_for("cache", Reason::UpstashTLSUntrusted.as_str(), |r| {
            r.status.as_ref().and_then(|s| s.observed_generation) == Some(2)
        })
        .await;
    let status = looked.status.expect("status");
    assert_eq!(status.pending_rotation, None, "nothing in flight");
    assert!(looked.metadata.finalizers.unwrap_or_default().is_empty());
    assert_eq!(world.resets().await, 0);
    let log = world.sim.request_log().await;
    let routes: Vec<&str> =
        log["requests"].as_array().into_iter().flatten().filter_map(|r| r["route"].as_str()).collect();
    assert_eq!(routes, ["create"], "only the test's own request got past a handshake: {log}");
    assert!(world.secrets().get_opt("cache").await.expect("get").is_none());

    // It keeps trying, with backoff: wait for two more attempts, then the
    // last gap is far from a hot loop's (the backoff starts at 2 s and doubles).
    let seen = failed_handshakes(&world.sim).await.len();
    let times = eventually(WAIT, "two more attempts", || {
        let sim = &world.sim;
        async move { Some(failed_handshakes(sim).await).filter(|t| t.len() >= seen + 2) }
    })
    .await;
    let gaps: Vec<u64> = times.windows(2).map(|w| w[1].saturating_sub(w[0])).collect();
    let last = gaps.last().copied().unwrap_or_default();
    assert!(last >= 1_000, "retried {last} ms after the previous attempt; gaps: {gaps:?}");

    // Trusting the CA resumes. A resource that never synced takes its
    // counter as the baseline without a reset (as any new resource does);
    // the next step is a rotation, with exactly one reset.
    world.stop_operator().await;
    world.start_operator_trusting(vec![ca.reqwest_root()]).await;
    world.wait_applied("cache", 1).await;
    assert_eq!(world.resets().await, 0);
    world.set_rotation("cache", 2).await;
    world.wait_applied("cache", 2).await;
    assert_eq!(world.resets().await, 1);
    let current = world.current().await;
    assert_eq!(world.secret_text("cache", secret::KEY_PASSWORD).await, current["password"].as_str().unwrap());
    world.assert_nothing_leaked(&credentials_of(&current)).await;
    let reasons = world.event_reasons().await;
    assert!(reasons.iter().any(|r| r == Reason::UpstashTLSUntrusted.as_str()), "{reasons:?}");
}

/// Flags and environment variables that make the binary trust a test CA.
type Trust = (Vec<String>, Vec<(String, std::path::PathBuf)>);

/// One world over HTTPS with the real binary, trusting the test CA the way
/// `trust` says: sync, rotate, and the Secret's REST URL answers.
async fn sync_and_rotate_with_the_binary(prefix: &str, trust: impl FnOnce(&TestCa) -> Trust) {
    let ca = TestCa::new(&[]);
    let sim = Sim::start_tls(&ca, &[]).await;
    let world = World::prepare_with(prefix, sim).await;
    let (extra_args, env) = trust(&ca);
    let mut args = vec!["--upstash-api-url", world.sim.url.as_str(), "--namespace", world.ns.name.as_str()];
    args.extend(extra_args.iter().map(String::as_str));
    let env: Vec<(&str, &OsStr)> = env.iter().map(|(k, v)| (k.as_str(), v.as_os_str())).collect();
    let operator = OperatorProcess::start_with_env(&args, &env).await;

    world.create("cache", world.spec()).await;
    world.wait_for("cache", Reason::Synced.as_str(), |_| true).await;
    world.set_rotation("cache", 1).await;
    world.wait_applied("cache", 1).await;
    assert_eq!(world.resets().await, 1);

    // The Secret points applications at the simulator's HTTPS data plane.
    let rest_url = world.secret_text("cache", secret::KEY_REST_URL).await;
    assert_eq!(rest_url, world.sim.url);
    let token = world.secret_text("cache", secret::KEY_REST_TOKEN).await;
    let ping = world.sim.http.get(format!("{rest_url}/ping")).bearer_auth(token).send().await.expect("ping");
    assert_eq!(ping.status(), 200);
    let logs = operator.logs();
    assert!(!logs.contains(world.current().await["password"].as_str().unwrap()), "no password in logs");
}

#[tokio::test]
async fn ca_file_makes_sync_and_rotation_work_over_https() {
    sync_and_rotate_with_the_binary("tls-ca-file", |ca| {
        (vec!["--ca-file".into(), ca.ca_path().display().to_string()], Vec::new())
    })
    .await;
}

#[tokio::test]
async fn ssl_cert_file_is_honoured() {
    sync_and_rotate_with_the_binary("tls-ssl-cert-file", |ca| {
        (Vec::new(), vec![("SSL_CERT_FILE".to_owned(), ca.ca_path())])
    })
    .await;
}

/// The default roots come from the system's files (rustls-native-certs), not
/// from a list compiled into the binary: with an empty `SSL_CERT_FILE` there
/// is nothing to trust and the operator says so at start.
#[tokio::test]
async fn default_roots_are_read_from_the_system_store() {
    let client = support::admin_client().await;
    support::install_crds(&client, &support::operator::committed_crds()).await;
    let ns = support::TestNamespace::new(&client, "tls-roots").await;
    let empty = tempfile_with("");
    let mut command = tokio::process::Command::new(support::binary("upstash-rotator"));
    command
        .args(["run", "--http-bind-address", "127.0.0.1:0", "--namespace", &ns.name])
        .args(["--upstash-api-url", "https://127.0.0.1:1"])
        .env("SSL_CERT_FILE", empty.path())
        .env_remove("SSL_CERT_DIR")
        .env("NO_COLOR", "1")
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .expect("exits in time")
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("No CA certificates were loaded from the system"), "{stderr}");
    assert!(stderr.contains("cannot build the HTTP client for the Upstash API"), "{stderr}");
}

fn tempfile_with(content: &str) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), content).expect("write");
    file
}
