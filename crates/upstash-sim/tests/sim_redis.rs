//! `upstash-sim --redis`: a real redis-server follows every rotation, and the
//! REST data plane forwards commands to it.

use testkit as support;

use redis::AsyncCommands as _;
use reqwest::Method;
use serde_json::{Value, json};
use support::sim::{RedisServer, Sim};

async fn connect(port: u16, password: &str) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
    let client = redis::Client::open(format!("redis://default:{password}@127.0.0.1:{port}/"))?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let _: String = conn.ping().await?;
    Ok(conn)
}

#[tokio::test]
async fn redis_password_follows_every_reset() {
    let redis = RedisServer::start().await;
    let sim = Sim::start(&["--redis", &redis.address()]).await;
    let created = sim.create_database("real").await;
    assert_eq!(created["endpoint"], json!("127.0.0.1"));
    assert_eq!(created["port"], json!(redis.port));
    assert_eq!(created["tls"], json!(false));
    let id = created["database_id"].as_str().expect("id");
    let old = created["password"].as_str().expect("password").to_owned();

    let mut conn = connect(redis.port, &old).await.expect("the API's password opens redis");
    let _: () = conn.set("greeting", "hello").await.expect("set");
    assert!(connect(redis.port, "wrong").await.is_err());

    let reset: Value = sim.reset(id).await.expect("reset").json().await.expect("json");
    let new = reset["password"].as_str().expect("password");
    assert!(connect(redis.port, &old).await.is_err(), "the old password is revoked");
    let mut anonymous = redis::Client::open(format!("redis://127.0.0.1:{}/", redis.port))
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("connect without credentials");
    let err = redis::cmd("AUTH")
        .arg("default")
        .arg(&old)
        .query_async::<()>(&mut anonymous)
        .await
        .expect_err("refused");
    assert_eq!(err.code(), Some("WRONGPASS"), "{err}");
    let mut conn = connect(redis.port, new).await.expect("the new password works");
    let value: String = conn.get("greeting").await.expect("get");
    assert_eq!(value, "hello", "a reset keeps the data");

    // A second database needs a second redis-server.
    let response = sim
        .api(Method::POST, "/v2/redis/database")
        .json(&json!({"database_name": "two", "platform": "aws", "primary_region": "us-east-1"}))
        .send()
        .await
        .expect("create");
    assert_eq!(response.status(), 400);
    assert!(response.text().await.expect("body").contains("--redis"));
}

#[tokio::test]
async fn rest_commands_are_forwarded_in_upstash_format() {
    let redis = RedisServer::start().await;
    let sim = Sim::start(&["--redis", &redis.address()]).await;
    let created = sim.create_database("rest").await;
    let token = created["rest_token"].as_str().expect("token");
    let ro_token = created["read_only_rest_token"].as_str().expect("ro token");

    assert_eq!(sim.command(token, json!(["SET", "k", "v"])).await, (200, json!({"result": "OK"})));
    assert_eq!(sim.command(token, json!(["GET", "k"])).await, (200, json!({"result": "v"})));
    assert_eq!(sim.command(token, json!(["INCRBY", "n", 5])).await, (200, json!({"result": 5})));
    assert_eq!(sim.command(token, json!(["GET", "missing"])).await, (200, json!({"result": null})));
    let (status, body) = sim.command(token, json!(["NOSUCHCOMMAND"])).await;
    assert_eq!(status, 400);
    assert!(body["error"].as_str().expect("error").contains("unknown command"), "{body}");
    let (status, _) = sim.command(token, json!(["CONFIG", "SET", "requirepass", "x"])).await;
    assert_eq!(status, 400, "the REST plane cannot reconfigure the server");

    let encoded: Value = sim
        .http
        .post(&sim.url)
        .bearer_auth(token)
        .header("Upstash-Encoding", "base64")
        .json(&json!(["GET", "k"]))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(encoded, json!({"result": "dg=="}));

    let pipeline: Value = sim
        .http
        .post(format!("{}/pipeline", sim.url))
        .bearer_auth(token)
        .json(&json!([["SET", "a", "1"], ["GET", "a"], ["BOGUS"]]))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(pipeline[0], json!({"result": "OK"}));
    assert_eq!(pipeline[1], json!({"result": "1"}));
    assert!(pipeline[2]["error"].is_string());

    let path: Value = sim
        .http
        .get(format!("{}/get/k", sim.url))
        .bearer_auth(token)
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(path, json!({"result": "v"}));

    assert_eq!(sim.command(ro_token, json!(["GET", "k"])).await, (200, json!({"result": "v"})));
    let (status, body) = sim.command(ro_token, json!(["SET", "k", "x"])).await;
    assert_eq!(status, 400);
    assert!(body["error"].as_str().expect("error").starts_with("NOPERM"), "{body}");
    assert!(!sim.logs().contains(token));
}

#[tokio::test]
async fn rest_plane_refuses_what_would_hang_or_take_over_the_server() {
    let redis = RedisServer::start().await;
    let sim = Sim::start(&["--redis", &redis.address()]).await;
    let created = sim.create_database("guarded").await;
    let id = created["database_id"].as_str().expect("id");
    let token = created["rest_token"].as_str().expect("token");

    let refused = [
        json!(["MULTI"]),
        json!(["exec"]),
        json!(["Discard"]),
        json!(["WATCH", "k"]),
        json!(["BLPOP", "queue", 0]),
        json!(["brpop", "queue", 0]),
        json!(["BLMOVE", "a", "b", "LEFT", "RIGHT", 0]),
        json!(["BRPOPLPUSH", "a", "b", 0]),
        json!(["BZPOPMIN", "z", 0]),
        json!(["bzpopmax", "z", 0]),
        json!(["BLMPOP", 0, 1, "queue", "LEFT"]),
        json!(["BZMPOP", 0, 1, "z", "MIN"]),
        json!(["XREAD", "BLOCK", 0, "STREAMS", "s", "$"]),
        json!(["xreadgroup", "GROUP", "g", "c", "block", 0, "STREAMS", "s", ">"]),
        json!(["WAIT", 1, 0]),
        json!(["WAITAOF", 1, 0, 0]),
        json!(["SUBSCRIBE", "news"]),
        json!(["PSUBSCRIBE", "n*"]),
        json!(["MONITOR"]),
        json!(["MODULE", "LIST"]),
        json!(["DEBUG", "SLEEP", 30]),
        json!(["REPLICAOF", "127.0.0.1", 1]),
        json!(["SLAVEOF", "NO", "ONE"]),
        json!(["MIGRATE", "127.0.0.1", 1, "k", 0, 1000]),
        json!(["CONFIG", "SET", "requirepass", "x"]),
        json!(["SHUTDOWN", "NOSAVE"]),
        json!(["SYNC"]),
        json!(["PSYNC", "?", -1]),
        json!(["FAILOVER"]),
        json!(["CLIENT", "KILL", "USER", "upstash-sim"]),
        json!(["client", "pause", 60000]),
        json!(["AUTH", "default_ro", "x"]),
        json!(["RESET"]),
        json!(["ACL", "SETUSER", "default", "on", "nopass"]),
        json!(["acl", "setuser", "default_ro", "+@all"]),
        json!(["ACL", "SETUSER", "upstash-sim", "off"]),
        json!(["ACL", "DELUSER", "default_ro"]),
        json!(["ACL", "LOAD"]),
    ];
    let started = std::time::Instant::now();
    for command in &refused {
        let (status, body) = sim.command(token, command.clone()).await;
        assert_eq!(status, 400, "{command} is refused: {body}");
        let error = body["error"].as_str().unwrap_or_default();
        assert!(error.starts_with("ERR command '") && error.contains("not allowed"), "{command}: {body}");
        assert_eq!(body.as_object().map(|o| o.len()), Some(1), "only an error: {body}");
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(10), "no refused command blocked");

    // The same in a pipeline (per-command errors), in a transaction (all of
    // it refused) and in the path.
    let pipeline: Value = sim
        .http
        .post(format!("{}/pipeline", sim.url))
        .bearer_auth(token)
        .json(&json!([["SET", "p", "1"], ["MULTI"], ["BLPOP", "q", 0], ["GET", "p"]]))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(pipeline[0], json!({"result": "OK"}));
    assert!(pipeline[1]["error"].as_str().is_some_and(|e| e.contains("not allowed")), "{pipeline}");
    assert!(pipeline[2]["error"].as_str().is_some_and(|e| e.contains("not allowed")), "{pipeline}");
    assert_eq!(pipeline[3], json!({"result": "1"}), "MULTI did not take over the connection");
    let transaction: Value = sim
        .http
        .post(format!("{}/multi-exec", sim.url))
        .bearer_auth(token)
        .json(&json!([["SET", "t", "1"], ["ACL", "SETUSER", "default", "nopass"]]))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert!(transaction[0]["error"].as_str().is_some_and(|e| e.contains("not allowed")), "{transaction}");
    assert_eq!(sim.command(token, json!(["EXISTS", "t"])).await, (200, json!({"result": 0})));
    let path = sim.http.get(format!("{}/client/kill/user/upstash-sim", sim.url)).bearer_auth(token);
    assert_eq!(path.send().await.expect("send").status(), 400);

    // ACL users of the application's own are its business.
    let own = json!(["ACL", "SETUSER", "app", "on", ">app-password", "~app:*", "+get", "+set"]);
    assert_eq!(sim.command(token, own).await, (200, json!({"result": "OK"})));
    let mut app = redis::Client::open(format!("redis://app:app-password@127.0.0.1:{}/", redis.port))
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("the application's own user works");
    let _: () = app.set("app:x", "1").await.expect("set as app");
    assert_eq!(sim.command(token, json!(["ACL", "DELUSER", "app"])).await, (200, json!({"result": 1})));

    // The simulator still manages the passwords: a reset works as before.
    let reset: Value = sim.reset(id).await.expect("reset").json().await.expect("json");
    let new = reset["password"].as_str().expect("password");
    connect(redis.port, new).await.expect("the new password works");
    let new_token = reset["rest_token"].as_str().expect("token");
    assert_eq!(sim.command(new_token, json!(["GET", "p"])).await, (200, json!({"result": "1"})));
}
