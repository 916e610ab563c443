//! `upstash-rotator`: the operator binary and its command-line interface.

use clap::Parser;

/// Rotates Upstash Redis passwords into Kubernetes Secrets.
#[derive(Parser)]
#[command(version, about)]
struct Cli {}

fn main() {
    upstash_rotator::tls::install_crypto_provider();
    let _cli = Cli::parse();
}
