//! The real `upstash-rotator run` binary as a child process, for tests of
//! what only a process has: signals, leader election, HTTP endpoints.

use std::{
    process::Stdio,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::process::{Child, Command};

pub struct OperatorProcess {
    child: Child,
    /// Base URL of its /healthz, /readyz and /metrics.
    pub http: String,
    logs: Arc<Mutex<String>>,
}

impl OperatorProcess {
    pub async fn start(args: &[&str]) -> Self {
        let port =
            std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("port").port();
        let mut child = Command::new(env!("CARGO_BIN_EXE_upstash-rotator"))
            .arg("run")
            .args(["--http-bind-address", &format!("127.0.0.1:{port}"), "--log-format", "text"])
            // Every test points the operator at upstash-sim over loopback HTTP.
            .arg("--allow-insecure-upstash-url")
            .args(args)
            .env("RUST_LOG", "info,upstash_rotator=debug")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn upstash-rotator");
        let logs = super::capture_lines(child.stderr.take().expect("piped stderr"));
        let process = Self { child, http: format!("http://127.0.0.1:{port}"), logs };
        let client = reqwest::Client::new();
        super::eventually(Duration::from_secs(30), "the operator's HTTP endpoints", || {
            let url = format!("{}/healthz", process.http);
            let client = client.clone();
            async move { client.get(url).send().await.ok().filter(|r| r.status().is_success()).map(|_| ()) }
        })
        .await;
        process
    }

    pub fn logs(&self) -> String {
        self.logs.lock().map(|l| l.clone()).unwrap_or_default()
    }

    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().expect("running");
        let status =
            std::process::Command::new("kill").args([&format!("-{signal}"), &pid.to_string()]).status();
        assert!(status.expect("kill").success());
    }

    pub async fn wait(&mut self, limit: Duration) -> std::process::ExitStatus {
        tokio::time::timeout(limit, self.child.wait()).await.expect("exits in time").expect("wait")
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        let response = reqwest::get(format!("{}{path}", self.http)).await.expect("request");
        let status = response.status().as_u16();
        (status, response.text().await.unwrap_or_default())
    }
}
