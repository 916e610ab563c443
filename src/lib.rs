//! upstash-rotator: rotates Upstash Redis passwords into Kubernetes Secrets.
//!
//! The crate is a library with two thin binaries: `upstash-rotator` (the
//! operator and its CLI) and `upstash-sim` (a local Upstash API simulator).

/// Command line of `upstash-rotator`.
pub mod cli;
/// Status condition types, reasons and their update rule.
pub mod conditions;
/// Watches, scopes and the operator's run loop.
pub mod controller;
/// The `RedisPasswordRotation` custom resource.
pub mod crd;
/// The operator's health and metrics endpoints.
pub mod http;
/// Leader election among replicas.
pub mod leader;
/// Prometheus metrics.
pub mod metrics;
/// The reconciler and its pure decision logic.
pub mod reconcile;
/// The Secret the operator writes.
pub mod secret;
/// SIGTERM / SIGINT handling.
pub mod signal;
/// The Upstash Developer API simulator behind `upstash-sim`.
pub mod sim;
/// rustls crypto provider set-up.
pub mod tls;
/// Client for the Upstash Developer API.
pub mod upstash;
