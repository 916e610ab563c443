//! `upstash-rotator`: the operator binary and its command-line interface.

use std::process::ExitCode;

use upstash_rotator::cli::Cli;

#[tokio::main]
async fn main() -> ExitCode {
    upstash_rotator::tls::install_crypto_provider();
    Cli::from_env().execute().await
}
