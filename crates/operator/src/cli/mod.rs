//! The `upstash-rotator` command line: `run`, `crd` and `rotate`.

mod rotate;
mod run;
mod telemetry;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kube::CustomResourceExt as _;

use crate::crd::RedisPasswordRotation;

/// Exit codes beyond clap's 2 for bad usage.
pub mod exit {
    /// The rotation failed or did not finish in time.
    pub const FAILED: u8 = 1;
    /// Bad flags or arguments.
    pub const USAGE: u8 = 2;
    /// The cluster cannot be reached or refused the request.
    pub const CLUSTER: u8 = 3;
    /// The named resource does not exist.
    pub const NOT_FOUND: u8 = 4;
}

/// Rotates Upstash Redis passwords into Kubernetes Secrets.
#[derive(Parser)]
#[command(version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the operator.
    Run(run::RunArgs),
    /// Print the RedisPasswordRotation CRD as YAML.
    Crd,
    /// Raise a resource's rotation counter by one, optionally waiting for the result.
    Rotate(rotate::RotateArgs),
}

impl Cli {
    pub async fn execute(self) -> ExitCode {
        match self.command {
            Command::Run(args) => run::run(args).await,
            Command::Crd => match crd_yaml() {
                Ok(yaml) => {
                    print!("{yaml}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("upstash-rotator: cannot render the CRD: {e}");
                    ExitCode::FAILURE
                }
            },
            Command::Rotate(args) => rotate::rotate(args).await,
        }
    }
}

/// The CRD as committed in `crds/`.
pub fn crd_yaml() -> Result<String, serde_saphyr::SerializeError> {
    serde_saphyr::to_string(&RedisPasswordRotation::crd())
}
