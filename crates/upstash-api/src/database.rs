//! The Database object, parsed leniently: only what the operator needs, with
//! every hazard of docs/upstash-api.md §6 survived (unknown fields, huge
//! integers, numbers as strings, slug endpoints, absent credentials).

use std::fmt;

use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// Password and REST tokens; `Debug` never shows them.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseCredentials {
    pub password: String,
    pub rest_token: String,
    pub read_only_rest_token: String,
}

impl fmt::Debug for DatabaseCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DatabaseCredentials(<redacted>)")
    }
}

/// What the operator keeps of a Database object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisDatabase {
    pub id: String,
    /// Host name, normalised (no scheme, no trailing slash, full domain).
    pub host: String,
    pub port: u16,
    pub tls: bool,
    /// Base URL of the REST data plane when the response names one: only
    /// upstash-sim does (`rest_url`); Upstash's is `https://{host}`.
    pub rest_url: Option<String>,
    /// `database_name`, when the response has one.
    pub name: Option<String>,
    /// `None` when the response hides them (`credentials=hide`, Credential
    /// Protection) or any of the three is missing or empty.
    pub credentials: Option<DatabaseCredentials>,
}

#[derive(Deserialize)]
struct Raw {
    database_id: String,
    #[serde(default)]
    endpoint: Option<String>,
    #[serde(default)]
    port: Option<Value>,
    #[serde(default)]
    tls: Option<Value>,
    #[serde(default, deserialize_with = "non_empty")]
    rest_url: Option<String>,
    #[serde(default, deserialize_with = "non_empty")]
    database_name: Option<String>,
    #[serde(default, deserialize_with = "non_empty")]
    password: Option<String>,
    #[serde(default, deserialize_with = "non_empty")]
    rest_token: Option<String>,
    #[serde(default, deserialize_with = "non_empty")]
    read_only_rest_token: Option<String>,
}

fn non_empty<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let value = Option::<Value>::deserialize(d)?;
    Ok(match value {
        // Trailing whitespace in tokens breaks clients (docs/upstash-api.md §11.3).
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        _ => None,
    })
}

/// Why a response body is not a usable Database object. Never carries the body.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("response is not a Database object ({0})")]
    Shape(String),
    #[error("response has no endpoint")]
    NoEndpoint,
    #[error("response has no valid port")]
    NoPort,
}

impl RedisDatabase {
    pub fn parse(body: &[u8]) -> Result<Self, ParseError> {
        // serde_json's messages can quote string values from the body, so only
        // the kind and position of the error are kept.
        let raw: Raw = serde_json::from_slice(body).map_err(|e| {
            ParseError::Shape(format!("{:?} error at line {} column {}", e.classify(), e.line(), e.column()))
        })?;
        let host = raw.endpoint.as_deref().and_then(normalise_host).ok_or(ParseError::NoEndpoint)?;
        let port = raw.port.as_ref().and_then(port_of).ok_or(ParseError::NoPort)?;
        // TLS is always on at Upstash; only an explicit false turns it off.
        let tls =
            !matches!(raw.tls, Some(Value::Bool(false))) && raw.tls != Some(Value::String("false".into()));
        let credentials = match (raw.password, raw.rest_token, raw.read_only_rest_token) {
            (Some(password), Some(rest_token), Some(read_only_rest_token)) => {
                Some(DatabaseCredentials { password, rest_token, read_only_rest_token })
            }
            _ => None,
        };
        let rest_url = raw.rest_url.as_deref().and_then(rest_url_of);
        Ok(Self { id: raw.database_id, host, port, tls, rest_url, name: raw.database_name, credentials })
    }

    /// The URL applications send REST commands to.
    pub fn rest_url(&self) -> String {
        self.rest_url.clone().unwrap_or_else(|| format!("https://{}", self.host))
    }
}

/// An http(s) URL made of a scheme and a host (with an optional port) only;
/// anything else (credentials, a path, a query) is ignored as unusable.
fn rest_url_of(value: &str) -> Option<String> {
    let url = reqwest::Url::parse(value).ok()?;
    let usable = matches!(url.scheme(), "https" | "http")
        && url.host().is_some()
        && url.username().is_empty()
        && url.password().is_none()
        && url.path() == "/"
        && url.query().is_none()
        && url.fragment().is_none();
    usable.then(|| url.origin().ascii_serialization())
}

/// Strips a scheme and trailing slashes; a bare slug gets `.upstash.io`.
fn normalise_host(endpoint: &str) -> Option<String> {
    let trimmed = endpoint.trim();
    let without_scheme = trimmed.split_once("://").map_or(trimmed, |(_, rest)| rest);
    let host = without_scheme.trim_end_matches('/');
    if host.is_empty() {
        return None;
    }
    Some(if host.contains('.') { host.to_owned() } else { format!("{host}.upstash.io") })
}

fn port_of(value: &Value) -> Option<u16> {
    let n = match value {
        Value::Number(n) => n.as_u64()?,
        Value::String(s) => s.trim().parse().ok()?,
        _ => return None,
    };
    u16::try_from(n).ok().filter(|p| *p > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_legacy_example() {
        let body = br#"{"database_id":"96ad0856-03b1-4ee7-9666-e81abd0349e1","cluster_id":"dea1f974",
            "database_name":"MyRedis","database_type":"Pay as You Go","region":"eu-central-1","port":30143,
            "creation_time":1658909671,"state":"active","password":"49665a1710f3434d8be008aab50f38d2",
            "user_email":"example@upstash.com","endpoint":"eu2-sought-mollusk-30143.upstash.io","tls":true,
            "consistent":false,"pool_id":"f886c7f3","rest_token":"AXW_ASQg","read_only_rest_token":"AnW_ASQg"}"#;
        let db = RedisDatabase::parse(body).expect("parses");
        assert_eq!(db.host, "eu2-sought-mollusk-30143.upstash.io");
        assert_eq!((db.port, db.tls), (30143, true));
        assert_eq!(db.name.as_deref(), Some("MyRedis"));
        assert_eq!(db.credentials.expect("credentials").password, "49665a1710f3434d8be008aab50f38d2");
    }

    #[test]
    fn survives_modern_hazards() {
        let body = br#"{"database_id":"x","endpoint":"https://beloved-stallion-58500/","port":"6379",
            "creation_time":"1727087321","db_request_limit":9223372036854775808,
            "db_request_limit_float":9223372036854776000,"db_acl_enabled":"false","securityAddons":{},
            "password":"p","rest_token":"t ","read_only_rest_token":"r"}"#;
        let db = RedisDatabase::parse(body).expect("parses");
        assert_eq!(db.host, "beloved-stallion-58500.upstash.io");
        assert_eq!(db.port, 6379);
        assert_eq!(db.credentials.expect("credentials").rest_token, "t");
    }

    #[test]
    fn hidden_or_empty_credentials_are_absent() {
        let hidden = br#"{"database_id":"x","endpoint":"a.upstash.io","port":6379}"#;
        assert_eq!(RedisDatabase::parse(hidden).expect("parses").credentials, None);
        let empty = br#"{"database_id":"x","endpoint":"a.upstash.io","port":6379,"password":"",
            "rest_token":"t","read_only_rest_token":"r"}"#;
        assert_eq!(RedisDatabase::parse(empty).expect("parses").credentials, None);
    }

    #[test]
    fn the_simulators_rest_url_is_kept_when_usable() {
        let with =
            br#"{"database_id":"x","endpoint":"127.0.0.1","port":6390,"rest_url":"https://127.0.0.1:8443/"}"#;
        let db = RedisDatabase::parse(with).expect("parses");
        assert_eq!(db.rest_url(), "https://127.0.0.1:8443");
        let without = br#"{"database_id":"x","endpoint":"calm-otter-1.upstash.io","port":6379}"#;
        assert_eq!(
            RedisDatabase::parse(without).expect("parses").rest_url(),
            "https://calm-otter-1.upstash.io"
        );
        for bad in [
            "ftp://h",
            "https://u:p@h",
            "https://h/path",
            "https://",
            "h:1",
            "https://h x",
            "https://a:b:c",
            "https://h?q",
        ] {
            let body = format!(r#"{{"database_id":"x","endpoint":"e.io","port":1,"rest_url":"{bad}"}}"#);
            let db = RedisDatabase::parse(body.as_bytes()).expect("parses");
            assert_eq!(db.rest_url, None, "{bad}");
        }
    }

    #[test]
    fn tls_false_is_honoured() {
        let body = br#"{"database_id":"x","endpoint":"127.0.0.1","port":6380,"tls":false}"#;
        assert!(!RedisDatabase::parse(body).expect("parses").tls);
    }

    #[test]
    fn parse_errors_never_quote_the_body() {
        let Err(ParseError::Shape(message)) = RedisDatabase::parse(br#""s3cr3t-token-value""#) else {
            panic!("a bare string is not a Database")
        };
        assert!(!message.contains("s3cr3t"), "{message}");
    }

    #[test]
    fn rejects_what_cannot_be_used() {
        assert!(matches!(RedisDatabase::parse(b"\"database not found\""), Err(ParseError::Shape(_))));
        assert_eq!(RedisDatabase::parse(br#"{"database_id":"x","port":1}"#), Err(ParseError::NoEndpoint));
        let bad_port = br#"{"database_id":"x","endpoint":"a.b","port":70000}"#;
        assert_eq!(RedisDatabase::parse(bad_port), Err(ParseError::NoPort));
    }

    #[test]
    fn debug_never_shows_credentials() {
        let creds = DatabaseCredentials {
            password: "pw".into(),
            rest_token: "tok".into(),
            read_only_rest_token: "ro".into(),
        };
        let shown = format!("{creds:?}");
        assert!(!shown.contains("pw") && !shown.contains("tok"));
    }
}
