//! `upstash-sim --redis`: a real redis-server follows every rotation, and the
//! REST data plane forwards commands to it.

mod support;

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
