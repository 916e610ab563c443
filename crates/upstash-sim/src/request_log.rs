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

#[derive(Debug, Default, Serialize)]
pub struct RequestLog {
    pub requests: VecDeque<RequestRecord>,
    /// route → database id (or `-`) → number of requests.
    pub counts: BTreeMap<&'static str, BTreeMap<String, u64>>,
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
}
