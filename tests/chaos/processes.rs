//! The real `upstash-rotator run` binary as child processes: start (with a
//! health wait that shows stderr on failure), kill -9, SIGSTOP/SIGCONT, and a
//! supervisor that restarts exited replicas the way a kubelet would.

use std::{
    path::PathBuf,
    process::Stdio,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use tokio::{
    io::{AsyncBufReadExt as _, BufReader},
    process::{Child, Command},
    time::Instant,
};

/// How an operator replica is started.
#[derive(Clone, Debug)]
pub struct Launch {
    pub identity: String,
    pub api_url: String,
    pub namespace: String,
    /// `Some(lease duration in seconds)` for leader election (lease in `namespace`).
    pub election: Option<u64>,
    /// JSON log lines (the chart's default) instead of text.
    pub json_logs: bool,
    /// Log each Kubernetes request too (`kube_client=debug`), for log triggers.
    pub log_requests: bool,
}

impl Launch {
    fn args(&self, http_port: u16) -> Vec<String> {
        let mut args: Vec<String> = [
            "run",
            "--upstash-api-url",
            &self.api_url,
            "--allow-insecure-upstash-url",
            "--namespace",
            &self.namespace,
            "--request-timeout",
            "3",
            "--shutdown-timeout",
            "5",
            "--log-format",
            if self.json_logs { "json" } else { "text" },
            "--http-bind-address",
            &format!("127.0.0.1:{http_port}"),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if let Some(lease) = self.election {
            for a in [
                "--leader-elect",
                "--lease-namespace",
                &self.namespace,
                "--lease-duration",
                &lease.to_string(),
                "--identity",
                &self.identity,
            ] {
                args.push(a.to_owned());
            }
        }
        args
    }
}

/// One replica, across all its restarts.
pub struct Operator {
    pub launch: Launch,
    child: Option<Child>,
    http: String,
    /// Everything it wrote to stderr, every generation, for leak scans.
    logs: Arc<Mutex<String>>,
    pub starts: u32,
    /// Stopped with SIGSTOP (by the harness or by a log trigger).
    paused: Arc<AtomicBool>,
    /// Log lines that stop the process the moment it logs the last of them:
    /// stages in order, each a set of fragments one line must all contain.
    trigger: Arc<Mutex<Vec<Vec<String>>>>,
    /// When the supervisor may restart it after it went down.
    pub down_until: Option<Instant>,
    /// Exits the harness did not cause (lost leadership, crashes).
    pub own_exits: Vec<String>,
    /// Stopped for good: never restarted.
    retired: bool,
}

/// Sends `signal` to `pid` with kill(1).
fn send(pid: u32, signal: &str) -> bool {
    std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .is_ok_and(|s| s.success())
}

fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

impl Operator {
    pub async fn start(launch: Launch) -> Result<Self, String> {
        let mut op = Self {
            launch,
            child: None,
            http: String::new(),
            logs: Arc::default(),
            starts: 0,
            paused: Arc::default(),
            trigger: Arc::default(),
            down_until: None,
            own_exits: Vec::new(),
            retired: false,
        };
        op.spawn().await?;
        Ok(op)
    }

    async fn spawn(&mut self) -> Result<(), String> {
        let port = free_port()?;
        self.starts += 1;
        if let Ok(mut l) = self.logs.lock() {
            l.push_str(&format!("=== chaos: start #{} of {}\n", self.starts, self.launch.identity));
        }
        let mut child = Command::new(testkit::binary("upstash-rotator"))
            .args(self.launch.args(port))
            .env(
                "RUST_LOG",
                if self.launch.log_requests {
                    "info,upstash_rotator=debug,kube_client=debug"
                } else {
                    "info,upstash_rotator=debug"
                },
            )
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot spawn upstash-rotator: {e}"))?;
        if let Some(pipe) = child.stderr.take() {
            let sink = self.logs.clone();
            let (pid, paused, trigger) = (child.id(), self.paused.clone(), self.trigger.clone());
            tokio::spawn(async move {
                let mut lines = BufReader::new(pipe).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    // Stop it right where the line says it is, before anything else.
                    let hit = trigger.lock().is_ok_and(|mut stages| {
                        let matched = stages
                            .first()
                            .is_some_and(|stage| stage.iter().all(|f| line.contains(f.as_str())));
                        if matched {
                            stages.remove(0);
                        }
                        matched && stages.is_empty()
                    });
                    if hit
                        && let Some(pid) = pid
                        && send(pid, "STOP")
                    {
                        paused.store(true, Ordering::SeqCst);
                    }
                    if let Ok(mut all) = sink.lock() {
                        all.push_str(&line);
                        all.push('\n');
                    }
                }
            });
        }
        self.http = format!("http://127.0.0.1:{port}");
        self.child = Some(child);
        self.paused.store(false, Ordering::SeqCst);
        self.down_until = None;
        self.wait_healthy().await
    }

    async fn wait_healthy(&mut self) -> Result<(), String> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .map_err(|e| format!("http client: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                return Err(format!(
                    "{} exited during start-up ({status}); its stderr:\n{}",
                    self.launch.identity,
                    self.logs()
                ));
            }
            let ok = client.get(format!("{}/healthz", self.http)).send().await;
            if ok.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{} not healthy after 30 s; its stderr:\n{}",
                    self.launch.identity,
                    self.logs()
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn logs(&self) -> String {
        self.logs.lock().map(|l| l.clone()).unwrap_or_default()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// Whether the process is running (paused counts as running).
    pub fn alive(&mut self) -> bool {
        match self.child.as_mut() {
            None => false,
            Some(c) => matches!(c.try_wait(), Ok(None)),
        }
    }

    /// SIGKILL; it stays down until `down_for` has passed.
    pub async fn kill9(&mut self, down_for: Duration) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
        }
        self.paused.store(false, Ordering::SeqCst);
        self.disarm();
        self.down_until = Some(Instant::now() + down_for);
    }

    fn signal(&self, signal: &str) -> bool {
        self.pid().is_some_and(|pid| send(pid, signal))
    }

    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::SeqCst)
    }

    pub fn pause(&mut self) -> bool {
        let ok = !self.is_paused() && self.signal("STOP");
        if ok {
            self.paused.store(true, Ordering::SeqCst);
        }
        ok
    }

    /// Arms a SIGSTOP for the line that completes `stages` (the operator's
    /// own log as a hook: it stops within a millisecond or two of writing the
    /// line, typically with the request it announced in flight).
    pub fn pause_on_log(&mut self, stages: &[&[&str]]) {
        if let Ok(mut t) = self.trigger.lock() {
            *t = stages.iter().map(|s| s.iter().map(|f| f.to_string()).collect()).collect();
        }
    }

    /// Disarms a log trigger that has not fired.
    pub fn disarm(&mut self) {
        if let Ok(mut t) = self.trigger.lock() {
            t.clear();
        }
    }

    pub fn resume(&mut self) {
        self.disarm();
        if self.is_paused() {
            self.signal("CONT");
            self.paused.store(false, Ordering::SeqCst);
        }
    }

    /// Restarts it if it is down and may come back; notes exits it caused itself.
    pub async fn supervise(&mut self) -> Result<bool, String> {
        if self.is_paused() || self.retired {
            return Ok(false);
        }
        if let Some(child) = self.child.as_mut()
            && let Ok(Some(status)) = child.try_wait()
        {
            // Its last words, for the report (redacted there).
            let logs = self.logs();
            let tail: Vec<&str> = logs.lines().rev().take(6).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            self.own_exits.push(format!(
                "{} exited by itself ({status}); its last stderr lines:\n      {}",
                self.launch.identity,
                tail.join("\n      ")
            ));
            self.child = None;
            // A kubelet restarts a crashed container after a short back-off.
            self.down_until = Some(Instant::now() + Duration::from_millis(500));
        }
        if self.child.is_none() && self.down_until.is_none_or(|t| Instant::now() >= t) {
            self.spawn().await?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Stops it for good (SIGCONT first if paused).
    pub async fn stop(&mut self) {
        self.retired = true;
        self.resume();
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
        }
    }
}

/// The replicas of one scenario.
#[derive(Default)]
pub struct Fleet {
    pub operators: Vec<Operator>,
}

impl Fleet {
    pub async fn start(launches: Vec<Launch>) -> Result<Self, String> {
        let mut operators = Vec::new();
        for launch in launches {
            operators.push(Operator::start(launch).await?);
        }
        Ok(Self { operators })
    }

    /// Restarts every replica that is down and due back.
    pub async fn supervise(&mut self) -> Result<(), String> {
        for op in &mut self.operators {
            op.supervise().await?;
        }
        Ok(())
    }

    pub fn by_identity(&mut self, identity: &str) -> Option<&mut Operator> {
        self.operators.iter_mut().find(|o| o.launch.identity == identity)
    }

    pub fn logs(&self) -> Vec<(String, String)> {
        self.operators.iter().map(|o| (o.launch.identity.clone(), o.logs())).collect()
    }

    pub fn own_exits(&self) -> Vec<String> {
        self.operators.iter().flat_map(|o| o.own_exits.clone()).collect()
    }

    pub async fn stop(&mut self) {
        for op in &mut self.operators {
            op.stop().await;
        }
    }
}

/// Writes each replica's log under `dir` for a post-mortem (redacted).
pub fn save_logs(dir: &PathBuf, logs: &[(String, String)], redact: impl Fn(&str) -> String) {
    if std::fs::create_dir_all(dir).is_err() {
        return;
    }
    for (identity, text) in logs {
        let _ = std::fs::write(dir.join(format!("{identity}.log")), redact(text));
    }
}
