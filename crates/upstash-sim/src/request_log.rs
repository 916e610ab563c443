//! The simulator's record of the requests it answered, for tests to inspect.

use std::collections::{BTreeMap, VecDeque};

use serde::Serialize;

/// Entries kept; older ones are dropped, counts are never.
const KEEP: usize = 10_000;

#[derive(Clone, Debug, Serialize)]
pub struct RequestRecord {
    pub method: String,
    /// The path without its query string.
    pub path: String,
    pub route: &'static str,
    pub database_id: Option<String>,
    /// The status sent, or `None` when the connection was dropped instead.
    pub status: Option<u16>,
    /// The fault that shaped the answer, if any.
    pub fault: Option<&'static str>,
}

/// A TLS handshake that failed (a client refusing the certificate, or a
/// connection closed before its handshake): no request was ever read.
#[derive(Clone, Debug, Serialize)]
pub struct TlsFailure {
    /// Unix milliseconds.
    pub at_ms: u64,
    /// What rustls reported, e.g. `received fatal alert: UnknownCA`.
    pub error: String,
}

#[derive(Debug, Default, Serialize)]
pub struct RequestLog {
    pub requests: VecDeque<RequestRecord>,
    /// route → database id (or `-`) → number of requests.
    pub counts: BTreeMap<&'static str, BTreeMap<String, u64>>,
    /// Failed TLS handshakes, oldest first (the newest `KEEP`).
    pub tls_failures: VecDeque<TlsFailure>,
}

impl RequestLog {
    pub fn record(&mut self, record: RequestRecord) {
        let db = record.database_id.clone().unwrap_or_else(|| "-".into());
        *self.counts.entry(record.route).or_default().entry(db).or_default() += 1;
        if self.requests.len() == KEEP {
            self.requests.pop_front();
        }
        self.requests.push_back(record);
    }

    pub fn tls_failure(&mut self, error: String) {
        let at_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        if self.tls_failures.len() == KEEP {
            self.tls_failures.pop_front();
        }
        self.tls_failures.push_back(TlsFailure { at_ms, error });
    }
}
