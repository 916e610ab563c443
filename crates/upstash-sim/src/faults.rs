//! Scripted faults: what the next N matching requests get instead of (or
//! besides) the normal answer.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The routes faults and statistics are keyed by.
pub fn route_of(method: &str, path: &str) -> (&'static str, Option<String>) {
    let id = |prefix: &str| {
        path.strip_prefix(prefix).filter(|s| !s.is_empty() && !s.contains('/')).map(str::to_owned)
    };
    match method {
        "POST" if path == "/v2/redis/database" => ("create", None),
        "GET" if path == "/v2/redis/databases" => ("list", None),
        "GET" if id("/v2/redis/database/").is_some() => ("get", id("/v2/redis/database/")),
        "DELETE" if id("/v2/redis/database/").is_some() => ("delete", id("/v2/redis/database/")),
        "POST" if id("/v2/redis/reset-password/").is_some() => {
            ("reset-password", id("/v2/redis/reset-password/"))
        }
        _ if path.starts_with("/v2/") => ("other", None),
        _ => ("data-plane", None),
    }
}

/// What a fault does to a request.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultAction {
    /// Answer with this status, body and headers; the request is not applied.
    Respond {
        status: u16,
        #[serde(default)]
        body: String,
        #[serde(default)]
        content_type: Option<String>,
        #[serde(default)]
        headers: BTreeMap<String, String>,
    },
    /// Apply the request, then hold the response back this long.
    Delay { ms: u64 },
    /// Apply the request, then close the connection without answering:
    /// for a reset, "applied but response lost".
    DropAfterApply,
    /// Close the connection without applying the request.
    Drop,
}

/// A fault for the next `times` requests to `route` (and `database_id`, when
/// given).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Fault {
    pub route: String,
    #[serde(default)]
    pub database_id: Option<String>,
    #[serde(default = "one")]
    pub times: u32,
    pub action: FaultAction,
}

fn one() -> u32 {
    1
}

/// Pending faults, consumed first-in first-out.
#[derive(Debug, Default)]
pub struct FaultQueue {
    faults: Vec<Fault>,
}

impl FaultQueue {
    pub fn push(&mut self, fault: Fault) {
        if fault.times > 0 {
            self.faults.push(fault);
        }
    }

    pub fn clear(&mut self) {
        self.faults.clear();
    }

    pub fn pending(&self) -> &[Fault] {
        &self.faults
    }

    /// Takes one use of the first fault matching this request.
    pub fn take(&mut self, route: &str, database_id: Option<&str>) -> Option<FaultAction> {
        let index = self.faults.iter().position(|f| {
            f.route == route && (f.database_id.is_none() || f.database_id.as_deref() == database_id)
        })?;
        let fault = &mut self.faults[index];
        let action = fault.action.clone();
        fault.times -= 1;
        if fault.times == 0 {
            self.faults.remove(index);
        }
        Some(action)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_classified() {
        assert_eq!(route_of("POST", "/v2/redis/reset-password/abc"), ("reset-password", Some("abc".into())));
        assert_eq!(route_of("GET", "/v2/redis/database/abc"), ("get", Some("abc".into())));
        assert_eq!(route_of("DELETE", "/v2/redis/database/abc"), ("delete", Some("abc".into())));
        assert_eq!(route_of("GET", "/v2/redis/databases"), ("list", None));
        assert_eq!(route_of("POST", "/v2/redis/database"), ("create", None));
        assert_eq!(route_of("GET", "/ping"), ("data-plane", None));
        assert_eq!(route_of("GET", "/v2/redis/database/a/b"), ("other", None));
    }

    #[test]
    fn faults_are_used_up_in_order_and_scoped_by_database() {
        let mut q = FaultQueue::default();
        q.push(Fault {
            route: "get".into(),
            database_id: Some("a".into()),
            times: 2,
            action: FaultAction::Drop,
        });
        q.push(Fault {
            route: "get".into(),
            database_id: None,
            times: 1,
            action: FaultAction::Delay { ms: 1 },
        });
        assert_eq!(q.take("get", Some("b")), Some(FaultAction::Delay { ms: 1 }));
        assert_eq!(q.take("get", Some("b")), None);
        assert_eq!(q.take("get", Some("a")), Some(FaultAction::Drop));
        assert_eq!(q.take("get", Some("a")), Some(FaultAction::Drop));
        assert_eq!(q.take("get", Some("a")), None);
    }
}
