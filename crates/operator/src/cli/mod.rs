//! The `upstash-rotator` command line: `run`, `crd`, `rotate` and `status`.
//! Installed as `kubectl-upstash`, the same binary is a kubectl plugin:
//! `kubectl upstash rotate cache --wait`.

mod rotate;
mod run;
mod status;
mod telemetry;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kube::CustomResourceExt as _;

use crate::{
    account::{ClusterUpstashAccount, UpstashAccount},
    crd::RedisPasswordRotation,
};

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
    /// Print the CRDs (RedisPasswordRotation, UpstashAccount,
    /// ClusterUpstashAccount) as one YAML stream, or write one file each.
    Crd(CrdArgs),
    /// Raise a resource's rotation counter by one, optionally waiting for the result.
    Rotate(rotate::RotateArgs),
    /// List resources: health, last and next rotation, the check after it, consumers.
    Status(status::StatusArgs),
}

impl Cli {
    pub async fn execute(self) -> ExitCode {
        match self.command {
            Command::Run(args) => run::run(args).await,
            Command::Crd(args) => print_crds(args),
            Command::Rotate(args) => rotate::rotate(args).await,
            Command::Status(args) => status::status(args).await,
        }
    }

    /// Parses the process's arguments. Run as `kubectl-upstash` (a kubectl
    /// plugin), help and usage say `kubectl upstash`.
    pub fn from_env() -> Self {
        let invoked_as = std::env::args_os().next().map(std::path::PathBuf::from);
        let plugin = invoked_as.as_ref().and_then(|p| p.file_stem()).is_some_and(|s| s == PLUGIN);
        let mut command = <Self as clap::CommandFactory>::command();
        if plugin {
            command = command.bin_name("kubectl upstash").display_name("kubectl upstash");
        }
        let matches = command.get_matches();
        <Self as clap::FromArgMatches>::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
    }
}

/// File name under which kubectl finds the binary as its `upstash` plugin.
pub const PLUGIN: &str = "kubectl-upstash";

/// Reports a command's failure on stderr and exits with `code`.
fn fail(code: u8, message: impl std::fmt::Display) -> ExitCode {
    eprintln!("upstash-rotator: {message}");
    ExitCode::from(code)
}

/// The kubeconfig's client for the one-shot commands (`rotate`, `status`),
/// or their `CLUSTER` exit.
async fn cluster_client() -> Result<kube::Client, ExitCode> {
    crate::tls::install_crypto_provider();
    crate::client::config(crate::client::CLI_AGENT)
        .await
        .and_then(kube::Client::try_from)
        .map_err(|e| fail(exit::CLUSTER, format!("cannot configure the Kubernetes client: {e}")))
}

#[derive(clap::Args)]
struct CrdArgs {
    /// Write each CRD to `<group>_<plural>.yaml` in this directory (as
    /// committed in `crds/`) instead of printing them.
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
}

fn print_crds(args: CrdArgs) -> ExitCode {
    let crds = match crds_yaml() {
        Ok(crds) => crds,
        Err(e) => return fail(exit::FAILED, format!("cannot render the CRDs: {e}")),
    };
    let Some(dir) = args.dir else {
        let documents: Vec<&str> = crds.iter().map(|(_, yaml)| yaml.as_str()).collect();
        print!("{}", documents.join("---\n"));
        return ExitCode::SUCCESS;
    };
    for (file, yaml) in &crds {
        let path = dir.join(file);
        if let Err(e) = std::fs::write(&path, yaml) {
            return fail(exit::FAILED, format!("cannot write {}: {e}", path.display()));
        }
    }
    ExitCode::SUCCESS
}

/// Every CRD as committed in `crds/`: its file name and YAML.
pub fn crds_yaml() -> Result<Vec<(String, String)>, serde_saphyr::SerializeError> {
    [RedisPasswordRotation::crd(), UpstashAccount::crd(), ClusterUpstashAccount::crd()]
        .into_iter()
        .map(|crd| {
            let file = format!("{}_{}.yaml", crd.spec.group, crd.spec.names.plural);
            Ok((file, serde_saphyr::to_string(&crd)?))
        })
        .collect()
}
