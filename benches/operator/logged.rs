//! A measured process: its stderr kept in a log file (the tail shown when it
//! fails), stopped with SIGTERM and a bounded wait.

use std::{path::PathBuf, process::Stdio, time::Duration};

use tokio::process::{Child, Command};

use crate::Result;

pub struct Logged {
    child: Child,
    pub pid: u32,
    log: PathBuf,
    what: &'static str,
}

impl Logged {
    pub fn spawn(what: &'static str, command: &mut Command, log: PathBuf) -> Result<Self> {
        let child =
            command.stdout(Stdio::null()).stderr(std::fs::File::create(&log)?).kill_on_drop(true).spawn()?;
        let pid = child.id().ok_or_else(|| format!("{what} exited at once"))?;
        Ok(Self { child, pid, log, what })
    }

    /// An error if it has exited, with its log's tail.
    pub fn check_running(&mut self) -> Result<()> {
        match self.child.try_wait() {
            Ok(Some(status)) => Err(format!("{} exited ({status}): {}", self.what, self.log_tail()).into()),
            _ => Ok(()),
        }
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// SIGTERM, then waits (bounded) for the exit.
    pub async fn stop(mut self) -> Result<()> {
        let _ = Command::new("kill").arg("-TERM").arg(self.pid.to_string()).status().await;
        match tokio::time::timeout(Duration::from_secs(60), self.child.wait()).await {
            Ok(_) => Ok(()),
            Err(_) => {
                let _ = self.child.kill().await;
                Err(format!("{} did not stop within 60 s of SIGTERM", self.what).into())
            }
        }
    }
}
