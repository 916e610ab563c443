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
        Self::start_with_env(args, &[]).await
    }

    /// With extra environment variables (`SSL_CERT_FILE`, `UPSTASH_CA_FILE`, ...).
    pub async fn start_with_env(args: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> Self {
        // Port 0, and the bound address read back from the log: a port picked
        // in advance could be taken by another process before the operator
        // binds it.
        let mut child = Command::new(crate::binary("upstash-rotator"))
            .arg("run")
            .args(["--http-bind-address", "127.0.0.1:0", "--log-format", "text"])
            // Every test points the operator at upstash-sim over loopback HTTP.
            .arg("--allow-insecure-upstash-url")
            .args(args)
            .env("RUST_LOG", "info,upstash_rotator=debug")
            .env("NO_COLOR", "1")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn upstash-rotator");
        let logs = crate::capture_lines(child.stderr.take().expect("piped stderr"));
        let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().expect("http client");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let mut address = None;
        let http = loop {
            if let Ok(Some(_)) = child.try_wait() {
                let (status, stderr) = crate::sim::exit_report(&mut child, &logs).await;
                panic!(
                    "upstash-rotator run {args:?} exited before serving /healthz: {status}; its stderr:\n{stderr}"
                );
            }
            if tokio::time::Instant::now() >= deadline {
                let (status, stderr) = crate::sim::exit_report(&mut child, &logs).await;
                panic!(
                    "upstash-rotator run {args:?} did not serve /healthz within 30 s: {status}; its stderr:\n{stderr}"
                );
            }
            if address.is_none() {
                address = logs.lock().ok().and_then(|l| bound_address(&l)).map(|a| format!("http://{a}"));
            }
            if let Some(base) = &address {
                let response = client.get(format!("{base}/healthz")).send().await;
                if response.is_ok_and(|r| r.status().is_success()) {
                    break base.clone();
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        Self { child, http, logs }
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

/// The address in the operator's "serving /healthz" log line (text format).
fn bound_address(logs: &str) -> Option<String> {
    let line = logs.lines().find(|l| l.contains("serving /healthz"))?;
    let value = line.split_whitespace().find_map(|w| w.strip_prefix("address="))?;
    Some(value.trim_matches('"').to_owned())
}
