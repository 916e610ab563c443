//! upstash-rotator: rotates Upstash Redis passwords into Kubernetes Secrets.
//!
//! The crate is a library with two thin binaries: `upstash-rotator` (the
//! operator and its CLI) and `upstash-sim` (a local Upstash API simulator).

pub mod sim;
pub mod tls;
