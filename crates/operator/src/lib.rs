//! upstash-rotator: rotates Upstash Redis passwords into Kubernetes Secrets.
//!
//! The operator's library behind the thin `upstash-rotator` binary: the
//! controller, the CRD and the CLI. The Upstash client is the `upstash-api`
//! crate; the simulator is `upstash-sim`, which this crate never links.

/// Shared Upstash accounts: `UpstashAccount`, `ClusterUpstashAccount`.
pub mod account;
/// What the operator keeps of watched objects, and its indexes.
pub mod cache;
/// Command line of `upstash-rotator`.
pub mod cli;
/// The Kubernetes client, its requests counted.
pub mod client;
/// Status condition types, reasons and their update rule.
pub mod conditions;
/// Watches, scopes and the operator's run loop.
pub mod controller;
/// The `RedisPasswordRotation` custom resource.
pub mod crd;
/// Events that report: queued, published without holding a reconcile.
pub mod events;
/// The operator's health and metrics endpoints.
pub mod http;
/// Leader election among replicas.
pub mod leader;
/// Prometheus metrics.
pub mod metrics;
/// The reconciler and its pure decision logic.
pub mod reconcile;
/// `spec.schedule`: when a scheduled rotation may start.
pub mod schedule;
/// The Secret the operator writes.
pub mod secret;
/// SIGTERM / SIGINT handling.
pub mod signal;
/// `spec.secretTemplate.data`: Secret keys rendered from templates.
pub mod template;
/// rustls crypto provider set-up.
pub mod tls;
/// Extra CA certificates for the Upstash API (`--ca-file`).
pub mod trust;
