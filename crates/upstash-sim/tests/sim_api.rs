//! `upstash-sim` over HTTP: every route, every error, every fault.

use testkit as support;

use std::{collections::HashSet, time::Duration};

use reqwest::Method;
use serde_json::{Value, json};
use support::sim::{API_KEY, EMAIL, RO_API_KEY, RO_EMAIL, Sim};

fn creds(db: &Value) -> (String, String, String) {
    let field = |k: &str| db[k].as_str().unwrap_or_else(|| panic!("{k} present")).to_owned();
    (field("password"), field("rest_token"), field("read_only_rest_token"))
}

#[tokio::test]
async fn authentication_and_read_only_keys() {
    let sim = Sim::start(&[]).await;
    let db = sim.create_database("auth").await;
    let id = db["database_id"].as_str().expect("id");
    let url = |p: &str| format!("{}{p}", sim.url);

    let anonymous = sim.http.get(url("/v2/redis/databases")).send().await.expect("send");
    assert_eq!(anonymous.status(), 401);
    assert_eq!(anonymous.json::<Value>().await.expect("json"), json!({"error": "Unauthorized"}));
    let wrong =
        sim.http.get(url("/v2/redis/databases")).basic_auth(EMAIL, Some("nope")).send().await.expect("send");
    assert_eq!(wrong.status(), 401);
    let garbage = sim
        .http
        .get(url("/v2/redis/databases"))
        .header("Authorization", "Basic %%%")
        .send()
        .await
        .expect("send");
    assert_eq!(garbage.status(), 401);

    let ro = |m: Method, p: &str| sim.http.request(m, url(p)).basic_auth(RO_EMAIL, Some(RO_API_KEY));
    for (method, path) in [
        (Method::POST, format!("/v2/redis/reset-password/{id}")),
        // The read-only check comes before the existence check.
        (Method::POST, "/v2/redis/reset-password/00000000-0000-0000-0000-000000000000".to_owned()),
        (Method::DELETE, format!("/v2/redis/database/{id}")),
        (Method::POST, "/v2/redis/database".to_owned()),
    ] {
        let response = ro(method.clone(), &path).json(&json!({})).send().await.expect("send");
        assert_eq!(response.status(), 403, "{method} {path}");
        let body = response.text().await.expect("body");
        assert!(body.contains("Readonly API key"), "{body}");
    }
    assert_eq!(ro(Method::GET, "/v2/redis/databases").send().await.expect("send").status(), 200);
    assert_eq!(sim.resets(id).await, 0, "a refused reset must not rotate");
}

#[tokio::test]
async fn create_get_list_delete_with_real_world_hazards() {
    let sim = Sim::start(&[]).await;
    let created = sim.create_database("main").await;
    let id = created["database_id"].as_str().expect("id").to_owned();
    let (password, token, ro_token) = creds(&created);
    assert!(password.len() == 32 && password.chars().all(|c| c.is_ascii_hexdigit()));
    assert_ne!(token, ro_token);

    let raw = sim
        .api(Method::GET, &format!("/v2/redis/database/{id}"))
        .send()
        .await
        .expect("get")
        .text()
        .await
        .expect("text");
    assert!(raw.contains("\"db_request_limit\":9223372036854775808"), "{raw}");
    let got: Value = serde_json::from_str(&raw).expect("json");
    assert_eq!(got["db_acl_enabled"], json!("false"));
    assert!(got["securityAddons"].is_object(), "unknown extra fields are present");
    assert_eq!(creds(&got), (password.clone(), token.clone(), ro_token.clone()));

    let hidden = sim
        .api(Method::GET, &format!("/v2/redis/database/{id}?credentials=hide"))
        .send()
        .await
        .expect("get")
        .json::<Value>()
        .await
        .expect("json");
    for key in ["password", "rest_token", "read_only_rest_token"] {
        assert!(hidden.get(key).is_none(), "{key} must be omitted: {hidden}");
    }
    assert_eq!(hidden["endpoint"], got["endpoint"]);

    let list: Value =
        sim.api(Method::GET, "/v2/redis/databases").send().await.expect("list").json().await.expect("json");
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    assert_eq!(list[0]["database_id"], json!(id));

    let unknown = sim.api(Method::GET, "/v2/redis/database/no-such-id").send().await.expect("get");
    assert_eq!(unknown.status(), 404);
    assert_eq!(unknown.text().await.expect("body"), "\"database not found\"");
    let unknown_reset = sim.reset("no-such-id").await.expect("reset");
    assert_eq!(unknown_reset.status(), 404);
    assert_eq!(unknown_reset.text().await.expect("body"), "\"database not found\"");

    let deleted = sim.api(Method::DELETE, &format!("/v2/redis/database/{id}")).send().await.expect("delete");
    assert_eq!(deleted.status(), 200);
    assert_eq!(deleted.text().await.expect("body"), "\"OK\"");
    let gone = sim.api(Method::GET, &format!("/v2/redis/database/{id}")).send().await.expect("get");
    assert_eq!(gone.status(), 404);
    assert!(!sim.logs().contains(&password) && !sim.logs().contains(&token) && !sim.logs().contains(API_KEY));
}

#[tokio::test]
async fn databases_are_private_to_their_account() {
    let sim = Sim::start(&["--account", "other@example.com:other-key"]).await;
    let id = sim.create_database("mine").await["database_id"].as_str().expect("id").to_owned();
    let other = |m: Method, p: String| {
        sim.http.request(m, format!("{}{p}", sim.url)).basic_auth("other@example.com", Some("other-key"))
    };
    assert_eq!(
        other(Method::GET, format!("/v2/redis/database/{id}")).send().await.expect("get").status(),
        404
    );
    assert_eq!(
        other(Method::POST, format!("/v2/redis/reset-password/{id}")).send().await.expect("post").status(),
        404
    );
    let list: Value = other(Method::GET, "/v2/redis/databases".into())
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(list, json!([]));
}

#[tokio::test]
async fn reset_rotates_everything_and_revokes_the_old_tokens() {
    let sim = Sim::start(&[]).await;
    let created = sim.create_database("rotate").await;
    let id = created["database_id"].as_str().expect("id").to_owned();
    let (old_password, old_token, old_ro) = creds(&created);
    assert_eq!(sim.ping(&old_token).await, 200);
    assert_eq!(sim.command(&old_ro, json!(["PING"])).await, (200, json!({"result": "PONG"})));

    // Real clients send no body, `{}` or `null`: all must work.
    let mut seen = HashSet::from([old_password.clone()]);
    let mut last = created;
    for body in [None, Some("{}"), Some("null")] {
        let mut request = sim.api(Method::POST, &format!("/v2/redis/reset-password/{id}"));
        if let Some(body) = body {
            request = request.header("content-type", "application/json").body(body);
        }
        let response = request.send().await.expect("reset");
        assert_eq!(response.status(), 200);
        last = response.json().await.expect("json");
        assert!(seen.insert(creds(&last).0), "every reset yields a new password");
    }
    assert_eq!(sim.resets(&id).await, 3);
    let (_, new_token, new_ro) = creds(&last);
    assert_ne!(new_ro, old_ro);

    assert_eq!(sim.ping(&new_token).await, 200);
    assert_eq!(sim.command(&new_token, json!(["PING"])).await, (200, json!({"result": "PONG"})));
    for stale in [&old_token, &old_ro] {
        let (status, body) = sim.command(stale, json!(["PING"])).await;
        assert_eq!((status, body), (401, json!({"error": "WRONGPASS invalid or missing auth token"})));
    }
    assert_eq!(sim.ping("not-a-token").await, 401);
    assert_eq!(creds(&sim.get_database(&id).await), creds(&last));
}

#[tokio::test]
async fn legacy_shape_and_credential_protection() {
    let sim = Sim::start(&[]).await;
    let id = sim.create_database("legacy").await["database_id"].as_str().expect("id").to_owned();

    sim.control(Method::PUT, &format!("/_sim/databases/{id}/shape"), json!({"shape": "legacy"})).await;
    let legacy = sim.get_database(&id).await;
    for key in ["cluster_id", "pool_id", "user_email", "password", "rest_token"] {
        assert!(legacy.get(key).is_some(), "legacy shape has {key}: {legacy}");
    }
    let port = legacy["port"].as_u64().expect("port");
    assert_ne!(port, 6379, "legacy databases have a unique port");
    assert!(legacy["endpoint"].as_str().expect("endpoint").contains(&port.to_string()));
    assert!(legacy.get("db_request_limit").is_none());

    sim.control(
        Method::PUT,
        &format!("/_sim/databases/{id}/credential-protection"),
        json!({"enabled": true}),
    )
    .await;
    let protected = sim.get_database(&id).await;
    assert!(protected.get("password").is_none() && protected.get("rest_token").is_none(), "{protected}");
    let list: Value =
        sim.api(Method::GET, "/v2/redis/databases").send().await.expect("list").json().await.expect("json");
    assert!(list[0].get("password").is_none());
    let reset: Value = sim.reset(&id).await.expect("reset").json().await.expect("json");
    let (_, token, _) = creds(&reset);
    assert_eq!(sim.ping(&token).await, 200, "the reset shows the new credentials once");
    assert!(sim.get_database(&id).await.get("password").is_none());
}

#[tokio::test]
async fn scripted_status_faults_are_served_then_used_up() {
    let sim = Sim::start(&[]).await;
    let id = sim.create_database("faults").await["database_id"].as_str().expect("id").to_owned();
    let cases = [
        (
            json!({"status": 429, "body": "{\"error\":\"slow down\"}", "headers": {"Retry-After": "7"}}),
            429,
            Some("7"),
            "{\"error\":\"slow down\"}",
        ),
        (json!({"status": 429, "body": ""}), 429, None, ""),
        (
            json!({"status": 500, "body": "{\"error\":\"cluster under maintenance\"}"}),
            500,
            None,
            "{\"error\":\"cluster under maintenance\"}",
        ),
        (
            json!({"status": 503, "body": "Service Unavailable", "content_type": "text/plain"}),
            503,
            None,
            "Service Unavailable",
        ),
        (
            json!({"status": 502, "body": "<html>bad gateway</html>", "content_type": "text/html"}),
            502,
            None,
            "<html>bad gateway</html>",
        ),
        (
            json!({"status": 400, "body": "\"database is being modified\""}),
            400,
            None,
            "\"database is being modified\"",
        ),
    ];
    for (respond, status, retry_after, body) in cases {
        let mut action = respond.clone();
        action["kind"] = json!("respond");
        sim.fault(json!({"route": "reset-password", "database_id": id, "times": 2, "action": action})).await;
        for _ in 0..2 {
            let response = sim.reset(&id).await.expect("reset");
            assert_eq!(response.status(), status);
            let header =
                response.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
            assert_eq!(header.as_deref(), retry_after);
            assert_eq!(response.text().await.expect("body"), body);
        }
    }
    assert_eq!(sim.resets(&id).await, 0, "scripted answers do not apply the request");
    assert_eq!(sim.reset(&id).await.expect("reset").status(), 200, "faults are used up");
    assert_eq!(sim.resets(&id).await, 1);

    // A fault for another database or route does not fire here.
    sim.fault(json!({"route": "reset-password", "database_id": "other", "action": {"kind": "respond", "status": 500}})).await;
    sim.fault(json!({"route": "get", "action": {"kind": "respond", "status": 500}})).await;
    assert_eq!(sim.reset(&id).await.expect("reset").status(), 200);
}

#[tokio::test]
async fn slow_and_lost_responses_still_apply_the_reset() {
    let sim = Sim::start(&[]).await;
    let created = sim.create_database("lost").await;
    let id = created["database_id"].as_str().expect("id").to_owned();
    let before = creds(&created);

    sim.fault(json!({"route": "reset-password", "action": {"kind": "delay", "ms": 3000}})).await;
    let impatient = reqwest::Client::builder().timeout(Duration::from_millis(300)).build().expect("client");
    let err = impatient
        .post(format!("{}/v2/redis/reset-password/{id}", sim.url))
        .basic_auth(EMAIL, Some(API_KEY))
        .send()
        .await
        .expect_err("times out");
    assert!(err.is_timeout(), "{err}");
    assert_eq!(sim.resets(&id).await, 1, "the reset was applied although the client gave up");
    let after_delay = creds(&sim.get_database(&id).await);
    assert_ne!(after_delay, before);

    sim.fault(json!({"route": "reset-password", "action": {"kind": "drop_after_apply"}})).await;
    let err = sim.reset(&id).await.expect_err("connection dropped without an answer");
    assert!(!err.is_timeout() && err.status().is_none(), "{err}");
    assert_eq!(sim.resets(&id).await, 2, "applied, then the response was lost");
    assert_ne!(creds(&sim.get_database(&id).await), after_delay);

    sim.fault(json!({"route": "reset-password", "action": {"kind": "drop"}})).await;
    sim.reset(&id).await.expect_err("dropped");
    assert_eq!(sim.resets(&id).await, 2, "a plain drop applies nothing");

    let log = sim.request_log().await;
    assert_eq!(log["counts"]["reset-password"][&id], json!(3));
    let statuses: Vec<_> = log["requests"]
        .as_array()
        .expect("requests")
        .iter()
        .filter(|r| r["route"] == "reset-password")
        .map(|r| (r["fault"].clone(), r["status"].clone()))
        .collect();
    assert_eq!(
        statuses,
        [
            (json!("delay"), json!(200)),
            (json!("drop_after_apply"), Value::Null),
            (json!("drop"), Value::Null)
        ]
    );
}

#[tokio::test]
async fn propagation_lag_keeps_old_tokens_alive_for_a_while() {
    let sim = Sim::start(&[]).await;
    let created = sim.create_database("lag").await;
    let id = created["database_id"].as_str().expect("id").to_owned();
    let (_, old_token, _) = creds(&created);
    sim.control(Method::PUT, &format!("/_sim/databases/{id}/propagation-lag"), json!({"ms": 1500})).await;
    let (_, new_token, _) = creds(&sim.reset(&id).await.expect("reset").json::<Value>().await.expect("json"));

    assert_eq!(sim.ping(&new_token).await, 401, "new token not yet propagated");
    assert_eq!(sim.ping(&old_token).await, 200, "old token still accepted during lag");
    tokio::time::sleep(Duration::from_millis(1700)).await;
    assert_eq!(sim.ping(&new_token).await, 200);
    assert_eq!(sim.ping(&old_token).await, 401);
}

#[tokio::test]
async fn bad_create_bodies_get_clear_400s() {
    let sim = Sim::start(&[]).await;
    let huge = format!("{{\"database_name\":\"{}\"}}", "x".repeat(200_000));
    let cases: [(&str, &str); 6] = [
        ("{not json", "invalid request body"),
        ("[]", "invalid request body"),
        ("{\"platform\":\"aws\",\"primary_region\":\"us-east-1\"}", "database_name"),
        ("{\"database_name\":\"a\",\"platform\":\"azure\",\"primary_region\":\"x\"}", "platform"),
        ("{\"database_name\":\"\",\"platform\":\"aws\",\"primary_region\":\"x\"}", "database_name"),
        (&huge, "larger than"),
    ];
    for (body, expected) in cases {
        let response = sim
            .api(Method::POST, "/v2/redis/database")
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .expect("send");
        assert_eq!(response.status(), 400, "{}", &body[..body.len().min(60)]);
        let message =
            response.json::<Value>().await.expect("json")["error"].as_str().expect("error").to_owned();
        assert!(message.contains(expected), "{message}");
    }
    // Still healthy afterwards.
    sim.create_database("after").await;
}

#[tokio::test]
async fn concurrent_resets_each_get_distinct_credentials() {
    let sim = Sim::start(&[]).await;
    let id = sim.create_database("concurrent").await["database_id"].as_str().expect("id").to_owned();
    let resets = (0..8).map(|_| async {
        let response = sim.reset(&id).await.expect("reset");
        assert_eq!(response.status(), 200);
        creds(&response.json::<Value>().await.expect("json"))
    });
    let results = futures::future::join_all(resets).await;
    let passwords: HashSet<_> = results.iter().map(|c| c.0.clone()).collect();
    assert_eq!(passwords.len(), 8, "each reset returns distinct credentials");
    let current = creds(&sim.get_database(&id).await);
    assert!(results.contains(&current), "the current credentials come from one of the resets");
    let live: Vec<_> = futures::future::join_all(results.iter().map(|c| sim.ping(&c.1))).await;
    assert_eq!(live.iter().filter(|s| **s == 200).count(), 1, "only the last reset's token works: {live:?}");
    assert_eq!(sim.resets(&id).await, 8);
    let log = sim.request_log().await;
    assert_eq!(log["counts"]["reset-password"][&id], json!(8));
}

#[tokio::test]
async fn state_file_keeps_databases_across_restarts() {
    let dir = std::env::temp_dir().join(format!("upstash-sim-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let file = dir.join("state.json");
    let path = file.to_str().expect("utf-8 path");
    // A symlink where the simulator used to put its temporary file.
    let victim = dir.join("victim");
    std::fs::write(&victim, "untouched").expect("victim");
    std::os::unix::fs::symlink(&victim, dir.join("state.tmp")).expect("symlink");
    let created = {
        let sim = Sim::start(&["--state-file", path]).await;
        sim.create_database("kept").await
    };
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&file).expect("state file written").permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the state file holds credentials");
    assert_eq!(
        std::fs::read_to_string(&victim).expect("victim"),
        "untouched",
        "no write through the symlink"
    );
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .expect("list")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["state.json", "state.tmp", "victim"], "no temporary file left behind");

    let sim = Sim::start(&["--state-file", path]).await;
    let id = created["database_id"].as_str().expect("id");
    assert_eq!(creds(&sim.get_database(id).await), creds(&created));
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn sigterm_stops_the_simulator_cleanly() {
    let mut sim = Sim::start(&[]).await;
    sim.create_database("bye").await;
    let pid = sim.pid().expect("running");
    let killed = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().expect("kill");
    assert!(killed.success());
    assert!(sim.wait().await.success(), "exit status 0 after SIGTERM");
}

#[tokio::test]
async fn unknown_routes_and_bad_command_line() {
    let sim = Sim::start(&[]).await;
    let response = sim.api(Method::GET, "/v2/redis/nothing-here").send().await.expect("send");
    assert_eq!(response.status(), 404);

    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_upstash-sim"))
        .args(["--listen", "127.0.0.1:0", "--account", "missing-colon"])
        .output()
        .await
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("EMAIL:API_KEY"), "{stderr}");
}

async fn run_sim(args: &[&str]) -> std::process::Output {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_upstash-sim"))
        .args(["--account", "dev@example.com:dev-key"])
        .args(args)
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(std::time::Duration::from_secs(20), output)
        .await
        .expect("exits in time")
        .expect("run")
}

#[tokio::test]
async fn listening_outside_loopback_needs_allow_remote() {
    for listen in ["0.0.0.0:0", "[::]:0", "192.0.2.1:0"] {
        let output = run_sim(&["--listen", listen]).await;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "--listen {listen}: {stderr}");
        assert!(stderr.contains("--allow-remote") && stderr.contains("loopback"), "{stderr}");
        assert!(output.stdout.is_empty(), "nothing listened");
    }
    // With the flag the address is accepted; 192.0.2.1 (TEST-NET-1) is not
    // on this machine, so binding fails and nothing is ever exposed.
    let output = run_sim(&["--allow-remote", "--listen", "192.0.2.1:0"]).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot listen on 192.0.2.1:0"), "{stderr}");
}
