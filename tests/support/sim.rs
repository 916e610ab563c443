//! Starts the real `upstash-sim` binary (and, when asked, a real
//! redis-server) on loopback for one test.

use std::{
    process::Stdio,
    sync::{Arc, Mutex},
    time::Duration,
};

use serde_json::{Value, json};
use tokio::{
    io::{AsyncBufReadExt as _, BufReader},
    process::{Child, Command},
};

pub const EMAIL: &str = "ops@example.com";
pub const API_KEY: &str = "rw-0123456789abcdef";
pub const RO_EMAIL: &str = "viewer@example.com";
pub const RO_API_KEY: &str = "ro-0123456789abcdef";

/// A running simulator; killed when dropped.
pub struct Sim {
    pub url: String,
    pub http: reqwest::Client,
    child: Child,
    /// Everything the simulator wrote to stderr (its request log).
    pub logs: Arc<Mutex<String>>,
}

impl Sim {
    pub async fn start(extra: &[&str]) -> Self {
        upstash_rotator::tls::install_crypto_provider();
        let mut child = Command::new(env!("CARGO_BIN_EXE_upstash-sim"))
            .args(["--listen", "127.0.0.1:0"])
            .args(["--account", &format!("{EMAIL}:{API_KEY}")])
            .args(["--readonly-account", &format!("{RO_EMAIL}:{RO_API_KEY}")])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn upstash-sim");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut first = String::new();
        tokio::time::timeout(Duration::from_secs(20), BufReader::new(stdout).read_line(&mut first))
            .await
            .expect("upstash-sim printed its address in time")
            .expect("read upstash-sim stdout");
        let url = first.trim().strip_prefix("upstash-sim listening on ").expect("address line").to_owned();

        let logs = super::capture_lines(child.stderr.take().expect("piped stderr"));
        let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("http client");
        Self { url, http, child, logs }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    pub async fn wait(&mut self) -> std::process::ExitStatus {
        tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .expect("exits in time")
            .expect("wait")
    }

    pub fn logs(&self) -> String {
        self.logs.lock().map(|l| l.clone()).unwrap_or_default()
    }

    pub fn api(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, format!("{}{path}", self.url)).basic_auth(EMAIL, Some(API_KEY))
    }

    pub async fn create_database(&self, name: &str) -> Value {
        let response = self
            .api(reqwest::Method::POST, "/v2/redis/database")
            .json(&json!({"database_name": name, "platform": "aws", "primary_region": "us-east-1"}))
            .send()
            .await
            .expect("create request");
        assert_eq!(response.status(), 200);
        response.json().await.expect("create body")
    }

    pub async fn get_database(&self, id: &str) -> Value {
        let response = self
            .api(reqwest::Method::GET, &format!("/v2/redis/database/{id}"))
            .send()
            .await
            .expect("get request");
        assert_eq!(response.status(), 200);
        response.json().await.expect("get body")
    }

    pub async fn reset(&self, id: &str) -> reqwest::Result<reqwest::Response> {
        self.api(reqwest::Method::POST, &format!("/v2/redis/reset-password/{id}")).send().await
    }

    pub async fn control(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let response = self
            .http
            .request(method, format!("{}{path}", self.url))
            .json(&body)
            .send()
            .await
            .expect("control");
        assert!(response.status().is_success(), "{path}: {}", response.status());
        response.json().await.unwrap_or(Value::Null)
    }

    pub async fn fault(&self, fault: Value) {
        self.control(reqwest::Method::POST, "/_sim/faults", fault).await;
    }

    pub async fn inspect(&self, id: &str) -> Value {
        let response =
            self.http.get(format!("{}/_sim/databases/{id}", self.url)).send().await.expect("inspect");
        response.json().await.expect("inspect body")
    }

    /// The simulator's request log and counts (`/_sim/requests`).
    pub async fn request_log(&self) -> Value {
        let response =
            self.http.get(format!("{}/_sim/requests", self.url)).send().await.expect("request log");
        response.json().await.expect("request log body")
    }

    pub async fn resets(&self, id: &str) -> u64 {
        self.inspect(id).await["resets"].as_u64().expect("resets count")
    }

    /// Sends a REST command as `POST /` with a bearer token.
    pub async fn command(&self, token: &str, command: Value) -> (u16, Value) {
        let response =
            self.http.post(&self.url).bearer_auth(token).json(&command).send().await.expect("command");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn ping(&self, token: &str) -> u16 {
        let response = self
            .http
            .get(format!("{}/ping", self.url))
            .bearer_auth(token)
            .send()
            .await
            .expect("ping request");
        response.status().as_u16()
    }
}

/// A throw-away redis-server on a free loopback port; killed when dropped.
pub struct RedisServer {
    pub port: u16,
    _child: Child,
}

impl RedisServer {
    pub async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server is installed (make test installs it)");
        let started = tokio::time::Instant::now();
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(started.elapsed() < Duration::from_secs(10), "redis-server did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Self { port, _child: child }
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}
