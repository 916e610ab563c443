//! Starts the real `upstash-sim` binary (and, when asked, a real
//! redis-server) for one test: on loopback over HTTP by default, over HTTPS
//! with a test CA, or on another address of this machine.

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
    /// Its base URL, as printed: `http://127.0.0.1:PORT` or `https://...`.
    pub url: String,
    /// A client for it (trusting its test CA when it serves HTTPS).
    pub http: reqwest::Client,
    child: Child,
    /// Everything the simulator wrote to stderr (its request log).
    pub logs: Arc<Mutex<String>>,
}

/// How to start a simulator beyond the defaults.
#[derive(Default)]
pub struct SimOptions<'a> {
    /// `--listen` address; default `127.0.0.1:0`. Any other IP is passed with
    /// `--allow-remote` (it must still be an address of this machine).
    pub listen: Option<&'a str>,
    /// Serve HTTPS with this CA's server certificate; `http` trusts the CA.
    pub tls: Option<&'a crate::tls::TestCa>,
    /// Any further arguments (`--redis`, `--advertise-host`, ...).
    pub args: &'a [&'a str],
}

impl Sim {
    /// Plain HTTP on loopback.
    pub async fn start(extra: &[&str]) -> Self {
        Self::start_with(SimOptions { args: extra, ..SimOptions::default() }).await
    }

    /// HTTPS on loopback with the server certificate of `ca`.
    pub async fn start_tls(ca: &crate::tls::TestCa, extra: &[&str]) -> Self {
        Self::start_with(SimOptions { tls: Some(ca), args: extra, ..SimOptions::default() }).await
    }

    pub async fn start_with(options: SimOptions<'_>) -> Self {
        upstash_rotator::tls::install_crypto_provider();
        let listen = options.listen.unwrap_or("127.0.0.1:0");
        let mut command = Command::new(crate::binary("upstash-sim"));
        command.args(["--listen", listen]);
        if !listen.starts_with("127.0.0.1:") && !listen.starts_with("[::1]:") {
            command.arg("--allow-remote");
        }
        if let Some(ca) = options.tls {
            command.arg("--tls-cert").arg(ca.cert_path()).arg("--tls-key").arg(ca.key_path());
        }
        let extra = options.args;
        let mut child = command
            .args(["--account", &format!("{EMAIL}:{API_KEY}")])
            .args(["--readonly-account", &format!("{RO_EMAIL}:{RO_API_KEY}")])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn upstash-sim");
        // Captured from the start, so a failed start can show why.
        let logs = crate::capture_lines(child.stderr.take().expect("piped stderr"));
        let stdout = child.stdout.take().expect("piped stdout");
        let mut first = String::new();
        let read =
            tokio::time::timeout(Duration::from_secs(20), BufReader::new(stdout).read_line(&mut first)).await;
        let url = match read {
            Ok(Ok(_)) => first.trim().strip_prefix("upstash-sim listening on ").map(str::to_owned),
            _ => None,
        };
        let Some(url) = url else {
            let why = match read {
                Err(_) => "printed nothing on stdout within 20 s".to_owned(),
                Ok(Err(e)) => format!("stdout could not be read: {e}"),
                Ok(Ok(0)) => "closed stdout before printing its address".to_owned(),
                Ok(Ok(_)) => format!("printed {:?} instead of its address", first.trim_end()),
            };
            let (status, stderr) = exit_report(&mut child, &logs).await;
            panic!("upstash-sim {extra:?} {why}; {status}; its stderr:\n{stderr}");
        };
        let mut http = reqwest::Client::builder().timeout(Duration::from_secs(10));
        if let Some(ca) = options.tls {
            http = http.tls_certs_only([ca.reqwest_root()]);
        }
        let http = http.build().expect("http client");
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

/// How a child that failed to start ended, and what it wrote: waits a little
/// for it to exit (killing it otherwise) and for its captured output to end.
pub async fn exit_report(child: &mut Child, output: &Arc<Mutex<String>>) -> (String, String) {
    let status = match tokio::time::timeout(Duration::from_secs(5), child.wait()).await {
        Ok(Ok(status)) => format!("it exited with {status}"),
        Ok(Err(e)) => format!("waiting for it failed: {e}"),
        Err(_) => {
            let _ = child.kill().await;
            "it was still running and has been killed".to_owned()
        }
    };
    // The reader task sees end-of-file right after the exit; let it finish.
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    (status, output.lock().map(|o| o.clone()).unwrap_or_default())
}

/// A throw-away redis-server on a free loopback port (and optionally other
/// addresses of this machine); killed when dropped.
pub struct RedisServer {
    pub port: u16,
    _child: Child,
}

/// How many ports `RedisServer::start` tries: redis-server cannot bind port 0
/// usefully, so it gets a port that was free a moment ago and another process
/// may take first.
const REDIS_PORT_ATTEMPTS: usize = 5;

impl RedisServer {
    pub async fn start() -> Self {
        Self::start_also_on(&[]).await
    }

    /// Also listening on `extra` addresses (for clients on the pod network,
    /// which reach it at `address_on(ip)`: what `upstash-sim --redis` takes).
    pub async fn start_also_on(extra: &[std::net::IpAddr]) -> Self {
        let mut failures = Vec::new();
        for _ in 0..REDIS_PORT_ATTEMPTS {
            match Self::try_start(extra).await {
                Ok(server) => return server,
                Err(Failure::PortTaken(report)) => failures.push(report),
                Err(Failure::Fatal(report)) => panic!("redis-server did not start: {report}"),
            }
        }
        panic!(
            "redis-server did not start: the port was taken {REDIS_PORT_ATTEMPTS} times in a row:\n{}",
            failures.join("\n")
        );
    }

    async fn try_start(extra: &[std::net::IpAddr]) -> Result<Self, Failure> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let bind = std::iter::once("127.0.0.1".to_owned()).chain(extra.iter().map(ToString::to_string));
        let mut child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind"])
            .args(bind)
            .args(["--save", "", "--appendonly", "no"])
            // Until the simulator sets the `default` password, protected mode
            // would refuse every client that is not on loopback (pods).
            .args(["--protected-mode", if extra.is_empty() { "yes" } else { "no" }])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server is installed (make test installs it)");
        let pid = child.id().expect("just spawned");
        // redis-server logs to stdout.
        let output = crate::capture_lines(child.stdout.take().expect("piped stdout"));
        let errors = crate::capture_lines(child.stderr.take().expect("piped stderr"));
        let report = |status: String| {
            let text = |o: &Arc<Mutex<String>>| o.lock().map(|o| o.clone()).unwrap_or_default();
            format!("port {port}: {status}; its output:\n{}{}", text(&output), text(&errors))
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                let (status, _) = exit_report(&mut child, &output).await;
                let report = report(status);
                return Err(if report.contains("Address already in use") {
                    Failure::PortTaken(report)
                } else {
                    Failure::Fatal(report)
                });
            }
            // Whoever answers on the port must be the server just started,
            // not another process that took the port first (then ours is about
            // to fail to bind).
            if serving_pid(port).await == Some(pid) {
                return Ok(Self { port, _child: child });
            }
            if tokio::time::Instant::now() >= deadline {
                let (status, _) = exit_report(&mut child, &output).await;
                return Err(Failure::Fatal(report(format!("not ready within 10 s, {status}"))));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `HOST:PORT` on another address it listens on (`start_also_on`).
    pub fn address_on(&self, ip: std::net::IpAddr) -> String {
        std::net::SocketAddr::new(ip, self.port).to_string()
    }
}

enum Failure {
    PortTaken(String),
    Fatal(String),
}

/// The `process_id` of the redis-server answering on `port`, if one does.
async fn serving_pid(port: u16) -> Option<u32> {
    let info = async {
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).ok()?;
        let mut conn = client.get_multiplexed_async_connection().await.ok()?;
        redis::cmd("INFO").arg("server").query_async::<String>(&mut conn).await.ok()
    };
    let info = tokio::time::timeout(Duration::from_secs(2), info).await.ok()??;
    info.lines().find_map(|l| l.strip_prefix("process_id:")).and_then(|p| p.trim().parse().ok())
}
