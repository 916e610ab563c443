//! Converts Redis replies into Upstash's REST result format.

use base64::{Engine, engine::general_purpose::STANDARD};
use redis::Value as Reply;
use serde_json::{Value, json};

/// How strings are encoded in REST results.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    Plain,
    /// `Upstash-Encoding: base64`, which @upstash/redis sends by default: every
    /// string but the `OK` status is base64-encoded.
    Base64,
}

impl Encoding {
    pub fn from_header(value: Option<&str>) -> Self {
        match value {
            Some(v) if v.eq_ignore_ascii_case("base64") => Self::Base64,
            _ => Self::Plain,
        }
    }

    fn string(self, bytes: &[u8]) -> Value {
        match self {
            Self::Plain => json!(String::from_utf8_lossy(bytes)),
            Self::Base64 => json!(STANDARD.encode(bytes)),
        }
    }
}

/// The `result` value for a Redis reply.
pub fn to_result(reply: &Reply, encoding: Encoding) -> Value {
    match reply {
        Reply::Nil => Value::Null,
        Reply::Int(i) => json!(i),
        Reply::Okay => json!("OK"),
        Reply::BulkString(bytes) => encoding.string(bytes),
        Reply::SimpleString(s) => encoding.string(s.as_bytes()),
        Reply::Array(items) | Reply::Set(items) => items.iter().map(|r| to_result(r, encoding)).collect(),
        // RESP3 maps are flattened to RESP2's key/value arrays, as Upstash does.
        Reply::Map(pairs) => {
            pairs.iter().flat_map(|(k, v)| [to_result(k, encoding), to_result(v, encoding)]).collect()
        }
        Reply::Double(d) => encoding.string(d.to_string().as_bytes()),
        Reply::Boolean(b) => json!(i64::from(*b)),
        Reply::VerbatimString { text, .. } => encoding.string(text.as_bytes()),
        other => encoding.string(format!("{other:?}").as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_results_keep_strings() {
        let reply = Reply::Array(vec![Reply::BulkString(b"v".to_vec()), Reply::Nil, Reply::Int(3)]);
        assert_eq!(to_result(&reply, Encoding::Plain), json!(["v", null, 3]));
    }

    #[test]
    fn base64_results_encode_all_strings_but_ok() {
        assert_eq!(to_result(&Reply::Okay, Encoding::Base64), json!("OK"));
        assert_eq!(to_result(&Reply::SimpleString("PONG".into()), Encoding::Base64), json!("UE9ORw=="));
        assert_eq!(to_result(&Reply::BulkString(b"hi".to_vec()), Encoding::Base64), json!("aGk="));
    }

    #[test]
    fn header_is_case_insensitive() {
        assert_eq!(Encoding::from_header(Some("BASE64")), Encoding::Base64);
        assert_eq!(Encoding::from_header(None), Encoding::Plain);
    }
}
