//! The operator as users run it: the image's static binary, watching every
//! namespace, its log kept in a file shown when it fails.

use std::{path::PathBuf, time::Duration};

use tokio::process::Command;

use crate::{Result, logged::Logged, probe};

/// The operator binary measured: the image's static musl build when
/// hack/bench.sh names it, else the release build.
pub fn binary() -> PathBuf {
    std::env::var_os("BENCH_OPERATOR_BINARY")
        .map_or_else(|| testkit::binary("upstash-rotator"), PathBuf::from)
}

pub struct Operator {
    process: Logged,
    pub pid: u32,
    port: u16,
    http: reqwest::Client,
}

impl Operator {
    /// Starts it and waits (bounded) until `/readyz` says its caches synced.
    pub async fn start(sim: &str, concurrency: u16, log: PathBuf) -> Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut command = Command::new(binary());
        command
            .args(["run", "--allow-insecure-upstash-url", "--upstash-api-url", sim])
            .args(["--concurrency", &concurrency.to_string()])
            .arg("--http-bind-address")
            .arg(format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "warn");
        let process = Logged::spawn("the operator", &mut command, log)?;
        let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build()?;
        let mut operator = Self { pid: process.pid, process, port, http };
        operator.wait_ready().await?;
        Ok(operator)
    }

    async fn wait_ready(&mut self) -> Result<()> {
        for _ in 0..600 {
            self.process.check_running()?;
            let url = format!("http://127.0.0.1:{}/readyz", self.port);
            if self.http.get(url).send().await.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(format!("the operator was not ready within 30 s: {}", self.log_tail()).into())
    }

    pub fn log_tail(&self) -> String {
        self.process.log_tail()
    }

    /// Reconciles finished so far (ok and failed).
    pub async fn reconciles(&self) -> Result<u64> {
        self.counter("upstash_rotator_reconciles_total").await
    }

    /// Its own requests to the apiserver so far, of every verb and answer.
    pub async fn kubernetes_requests(&self) -> Result<u64> {
        self.counter("upstash_rotator_kubernetes_requests_total").await
    }

    /// A counter of its `/metrics`, summed over its labels.
    async fn counter(&self, name: &str) -> Result<u64> {
        let text =
            self.http.get(format!("http://127.0.0.1:{}/metrics", self.port)).send().await?.text().await?;
        let sums = probe::counters(&text, name, &[]);
        Ok(sums.values().sum::<f64>().round() as u64)
    }

    /// SIGTERM, then waits (bounded) for the exit.
    pub async fn stop(self) -> Result<()> {
        self.process.stop().await
    }
}
