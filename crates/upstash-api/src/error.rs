//! Upstash API failures, classified by what the operator should do about them.
//! Messages never carry credentials: bodies of error responses are kept only
//! as a short, whitespace-collapsed excerpt.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

/// Longest excerpt of an error body kept in a message.
const EXCERPT: usize = 200;

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum UpstashError {
    #[error("Upstash rejected the email or API key ({0})")]
    Unauthorized(String),
    #[error("the API key is read-only; a read/write key is needed to reset passwords ({0})")]
    ReadOnlyKey(String),
    #[error("Upstash has no database with this id visible to this account ({0})")]
    DatabaseNotFound(String),
    #[error("Upstash is rate limiting requests (HTTP 429)")]
    RateLimited { retry_after: Option<Duration> },
    #[error("Upstash answered HTTP {status}: {message}")]
    Server { status: u16, message: String },
    #[error("Upstash refused the request with HTTP {status}: {message}")]
    Rejected { status: u16, message: String },
    #[error("no response from Upstash: {0}")]
    Transport(String),
    /// The TLS handshake refused the server's certificate: nothing was sent.
    #[error(
        "the Upstash API's TLS certificate is not trusted: it {0}. Nothing was sent. Trust the CA that signed it \
         with the Helm value upstash.caBundle (or `upstash-rotator run --ca-file`, UPSTASH_CA_FILE), or check \
         --upstash-api-url"
    )]
    UntrustedCertificate(String),
    #[error("unusable response from Upstash: {0}")]
    InvalidResponse(String),
}

impl UpstashError {
    /// Whether a reset that failed this way may still have been applied:
    /// then only a GET can tell, and a blind retry could reset twice.
    pub fn reset_may_have_happened(&self) -> bool {
        // Only documented refusals are known not to apply; an unexpected 4xx
        // (408, 409, ...) is checked with a GET like a 5xx.
        matches!(
            self,
            Self::Server { .. } | Self::Rejected { .. } | Self::Transport(_) | Self::InvalidResponse(_)
        )
    }

    /// Classifies a non-2xx answer (docs/upstash-api.md §9.4).
    pub fn from_response(status: StatusCode, retry_after: Option<&str>, body: &[u8]) -> Self {
        let message = message_of(status, body);
        if message.contains("Readonly API key") {
            return Self::ReadOnlyKey(message);
        }
        match status.as_u16() {
            401 | 403 => Self::Unauthorized(message),
            404 => Self::DatabaseNotFound(message),
            400 if message.to_ascii_lowercase().contains("not found") => Self::DatabaseNotFound(message),
            429 => Self::RateLimited { retry_after: retry_after.and_then(parse_retry_after) },
            code @ 500..=599 => Self::Server { status: code, message },
            code => Self::Rejected { status: code, message },
        }
    }
}

/// The lenient message order Upstash's own CLI uses (docs/upstash-api.md §9.3): a JSON string,
/// then `error` or `message` of an object, then the raw text, then the status.
fn message_of(status: StatusCode, body: &[u8]) -> String {
    let parsed = serde_json::from_slice::<Value>(body).ok();
    let from_json = match &parsed {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Object(map)) => ["error", "message"]
            .iter()
            .find_map(|k| map.get(*k).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned)),
        _ => None,
    };
    let text = from_json.unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    // The excerpt reaches status conditions and events: whatever looks like
    // a password, token or key is replaced before it is kept.
    let collapsed = text.split_whitespace().map(redact_word).collect::<Vec<_>>().join(" ");
    if collapsed.is_empty() {
        return format!("HTTP {}", status.as_u16());
    }
    match collapsed.char_indices().nth(EXCERPT) {
        Some((cut, _)) => format!("{}…", &collapsed[..cut]),
        None => collapsed,
    }
}

/// Shortest run of token characters taken for a secret.
const TOKEN_LIKE: usize = 16;

/// A word with a run of at least `TOKEN_LIKE` characters that credentials
/// are made of (letters, digits, `+/=_-.`) holding a digit, or any run of
/// at least twice that, is replaced. Ordinary words, ids and error codes
/// stay readable.
fn redact_word(word: &str) -> String {
    let is_token_char = |c: char| c.is_ascii_alphanumeric() || "+/=_-.".contains(c);
    let mut out = String::with_capacity(word.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        let secret_like = run.len() >= 2 * TOKEN_LIKE
            || (run.len() >= TOKEN_LIKE
                && run.chars().any(|c| c.is_ascii_digit())
                && run.chars().any(|c| c.is_ascii_alphabetic()));
        out.push_str(if secret_like { "[redacted]" } else { run.as_str() });
        run.clear();
    };
    for c in word.chars() {
        if is_token_char(c) {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

/// `Retry-After` in seconds (an HTTP date is rare for APIs and treated as absent).
fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(|s| Duration::from_secs(s.min(3600)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify(status: u16, body: &str) -> UpstashError {
        UpstashError::from_response(StatusCode::from_u16(status).expect("valid"), None, body.as_bytes())
    }

    #[test]
    fn classifies_documented_bodies() {
        assert!(
            matches!(classify(401, r#"{"error":"Unauthorized"}"#), UpstashError::Unauthorized(m) if m == "Unauthorized")
        );
        assert!(matches!(
            classify(403, r#"{"error":"Readonly API key cannot ..."}"#),
            UpstashError::ReadOnlyKey(_)
        ));
        assert!(
            matches!(classify(404, r#""database not found""#), UpstashError::DatabaseNotFound(m) if m == "database not found")
        );
        assert!(matches!(
            classify(400, r#"{"message":"database not found"}"#),
            UpstashError::DatabaseNotFound(_)
        ));
        assert!(matches!(
            classify(500, r#"{"error":"cluster under maintenance"}"#),
            UpstashError::Server { status: 500, .. }
        ));
        assert!(
            matches!(classify(503, "Service Unavailable"), UpstashError::Server { status: 503, message } if message == "Service Unavailable")
        );
        assert!(
            matches!(classify(418, ""), UpstashError::Rejected { status: 418, message } if message == "HTTP 418")
        );
    }

    #[test]
    fn honours_retry_after_seconds() {
        let with = UpstashError::from_response(StatusCode::TOO_MANY_REQUESTS, Some("7"), b"");
        assert_eq!(with, UpstashError::RateLimited { retry_after: Some(Duration::from_secs(7)) });
        let without = UpstashError::from_response(StatusCode::TOO_MANY_REQUESTS, Some("soon"), b"");
        assert_eq!(without, UpstashError::RateLimited { retry_after: None });
    }

    #[test]
    fn only_unknown_outcomes_may_have_reset() {
        assert!(classify(502, "").reset_may_have_happened());
        assert!(UpstashError::Transport("timeout".into()).reset_may_have_happened());
        assert!(!classify(429, "").reset_may_have_happened());
        assert!(!classify(401, "").reset_may_have_happened());
        assert!(!classify(404, "").reset_may_have_happened());
        // The handshake failed before the request was sent.
        assert!(!UpstashError::UntrustedCertificate("has expired".into()).reset_may_have_happened());
        assert!(classify(408, "").reset_may_have_happened());
    }

    #[test]
    fn token_like_text_never_reaches_a_message() {
        let body = r#"{"error":"bad password AYNgAAIjcDE2ZTk1YjQ3ZjM4NmE0ZDcyOTg for default, token=AXNhbW3kZ2VfdG9rZW4xMjM0NTY"}"#;
        let UpstashError::Rejected { message, .. } = classify(422, body) else { panic!("rejected") };
        assert!(!message.contains("AYNgAAIjcDE2ZTk1YjQ3ZjM4NmE0ZDcyOTg"), "{message}");
        assert!(!message.contains("AXNhbW3kZ2VfdG9rZW4xMjM0NTY"), "{message}");
        assert_eq!(message, "bad password [redacted] for default, [redacted]");
        // Ids and words stay readable.
        let UpstashError::DatabaseNotFound(m) = classify(404, r#""database 96ad0856-03b1 not found""#) else {
            panic!("not found")
        };
        assert_eq!(m, "database 96ad0856-03b1 not found");
    }

    #[test]
    fn long_bodies_are_cut() {
        let long = "x ".repeat(1000);
        let UpstashError::Server { message, .. } = classify(500, &long) else { panic!("server error") };
        assert!(message.chars().count() <= EXCERPT + 1);
    }
}
