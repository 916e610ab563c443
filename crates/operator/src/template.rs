//! `spec.secretTemplate.data`: Secret keys rendered from MiniJinja (Jinja2)
//! templates over the database's fields. Undefined names are errors, not
//! empty strings, so a typo is found before any reset: `validate` renders
//! every template with placeholder values, and its messages can therefore
//! never quote a credential.

use std::collections::BTreeMap;

use minijinja::{Environment, UndefinedBehavior, Value};
use upstash_api::{DatabaseCredentials, RedisDatabase};

/// The names templates may use.
pub const FIELDS: [&str; 9] = [
    "password",
    "endpoint",
    "port",
    "restUrl",
    "restToken",
    "readOnlyRestToken",
    "tls",
    "databaseId",
    "databaseName",
];

/// Why a template cannot be rendered: the key and what is wrong, never a value.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("secretTemplate.data[{key}]: {what}")]
pub struct TemplateError {
    pub key: String,
    pub what: String,
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    // Everything but RFC 3986's unreserved characters, so a password is safe
    // in a URL's user info (Jinja2's urlencode keeps '/').
    env.add_filter("urlencode", |value: String| {
        percent_encoding::utf8_percent_encode(&value, upstash_api::UNRESERVED).to_string()
    });
    env
}

fn fields(database: &RedisDatabase, credentials: &DatabaseCredentials) -> Value {
    Value::from(BTreeMap::from([
        ("password", Value::from(credentials.password.clone())),
        ("endpoint", Value::from(database.host.clone())),
        ("port", Value::from(database.port)),
        ("restUrl", Value::from(database.rest_url())),
        ("restToken", Value::from(credentials.rest_token.clone())),
        ("readOnlyRestToken", Value::from(credentials.read_only_rest_token.clone())),
        ("tls", Value::from(database.tls)),
        ("databaseId", Value::from(database.id.clone())),
        ("databaseName", Value::from(database.name.clone().unwrap_or_default())),
    ]))
}

/// Renders every template. `quote_detail`: whether the error may carry the
/// engine's detail (only when rendering placeholders: with real values a
/// detail could quote one).
fn render_with(
    templates: &BTreeMap<String, String>,
    values: &Value,
    quote_detail: bool,
) -> Result<BTreeMap<String, String>, TemplateError> {
    let env = environment();
    templates
        .iter()
        .map(|(key, source)| {
            let rendered = env.template_from_str(source).and_then(|t| t.render(values));
            rendered.map(|text| (key.clone(), text)).map_err(|e| {
                let line = e.line().map(|l| format!(" at line {l}")).unwrap_or_default();
                let detail =
                    e.detail().filter(|_| quote_detail).map(|d| format!(": {d}")).unwrap_or_default();
                let hint = if e.kind() == minijinja::ErrorKind::UndefinedError {
                    format!(" (the fields are {})", FIELDS.join(", "))
                } else {
                    String::new()
                };
                TemplateError { key: key.clone(), what: format!("{}{line}{detail}{hint}", e.kind()) }
            })
        })
        .collect()
}

/// Renders the templates with the database's real values.
pub fn render(
    templates: &BTreeMap<String, String>,
    database: &RedisDatabase,
    credentials: &DatabaseCredentials,
) -> Result<BTreeMap<String, String>, TemplateError> {
    render_with(templates, &fields(database, credentials), false)
}

/// Checks every template by rendering it with placeholder values: syntax,
/// unknown filters and names that are not fields all fail here, before any
/// reset.
pub fn validate(templates: &BTreeMap<String, String>) -> Result<(), TemplateError> {
    let database = RedisDatabase {
        id: "database-id".into(),
        host: "example.upstash.io".into(),
        port: 6379,
        tls: true,
        rest_url: None,
        name: Some("database-name".into()),
        credentials: None,
    };
    let credentials = DatabaseCredentials {
        password: "placeholder-password".into(),
        rest_token: "placeholder-token".into(),
        read_only_rest_token: "placeholder-read-only-token".into(),
    };
    render_with(templates, &fields(&database, &credentials), true).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn templates(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn database() -> (RedisDatabase, DatabaseCredentials) {
        let credentials = DatabaseCredentials {
            password: "s3cr3t/p@ss".into(),
            rest_token: "tok".into(),
            read_only_rest_token: "ro".into(),
        };
        let database = RedisDatabase {
            id: "db-1".into(),
            host: "calm-otter.upstash.io".into(),
            port: 6380,
            tls: true,
            rest_url: None,
            name: Some("sessions".into()),
            credentials: Some(credentials.clone()),
        };
        (database, credentials)
    }

    #[test]
    fn renders_a_url_a_config_snippet_and_json() {
        let (database, credentials) = database();
        let out = render(
            &templates(&[
                (
                    "DATABASE_URL",
                    "{{ 'rediss' if tls else 'redis' }}://default:{{ password | urlencode }}@{{ endpoint }}:{{ port }}",
                ),
                ("redis.conf", "masterauth {{ password }}\nport {{ port }}"),
                ("creds.json", "{{ {'url': restUrl, 'token': restToken, 'name': databaseName} | tojson }}"),
            ]),
            &database,
            &credentials,
        )
        .expect("renders");
        assert_eq!(out["DATABASE_URL"], "rediss://default:s3cr3t%2Fp%40ss@calm-otter.upstash.io:6380");
        assert_eq!(out["redis.conf"], "masterauth s3cr3t/p@ss\nport 6380");
        let json: serde_json::Value = serde_json::from_str(&out["creds.json"]).expect("json");
        assert_eq!(json["url"], "https://calm-otter.upstash.io");
        assert_eq!(json["name"], "sessions");
    }

    #[test]
    fn errors_name_the_key_and_never_a_value() {
        let typo = validate(&templates(&[("URL", "{{ pasword }}")])).expect_err("undefined");
        assert_eq!(typo.key, "URL");
        assert!(typo.what.contains("undefined") && typo.what.contains("databaseName"), "{typo}");
        let syntax = validate(&templates(&[("URL", "{{ password }")])).expect_err("syntax");
        assert!(syntax.to_string().contains("syntax error"), "{syntax}");
        assert!(validate(&templates(&[("URL", "{{ password | nosuchfilter }}")])).is_err());
        assert_eq!(validate(&templates(&[("URL", "{{ databaseId }}:{{ readOnlyRestToken }}")])), Ok(()));
        // With real values the engine's detail is left out: it could quote one.
        let (database, credentials) = database();
        let failed = render(&templates(&[("N", "{{ password | int + 1 }}")]), &database, &credentials)
            .expect_err("not a number");
        assert!(!failed.to_string().contains("s3cr3t"), "{failed}");
    }
}
