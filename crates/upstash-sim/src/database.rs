//! A simulated Upstash Redis database: its record, its credentials and the
//! JSON shapes the Developer API returns for it.

use std::fmt;

use base64::{Engine, engine::general_purpose::URL_SAFE};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

/// Password and REST tokens of a database. `Debug` never shows them.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    pub password: String,
    pub rest_token: String,
    pub read_only_rest_token: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credentials(<redacted>)")
    }
}

impl Credentials {
    /// New random credentials in Upstash's legacy token layout
    /// (docs/upstash-api.md §8): `kind ‖ port ‖ 0x01 ‖ 0x24 ‖ 0x20 ‖ uuid ‖ secret`.
    pub fn generate(database_id: &str, port: u16) -> Self {
        let password = Uuid::new_v4().simple().to_string();
        let token = |kind: u8, secret: &[u8]| {
            let mut raw = vec![kind];
            raw.extend_from_slice(&port.to_be_bytes());
            raw.extend_from_slice(&[0x01, 0x24, 0x20]);
            raw.extend_from_slice(database_id.as_bytes());
            raw.extend_from_slice(secret);
            URL_SAFE.encode(raw)
        };
        let mut opaque = Uuid::new_v4().as_bytes().to_vec();
        opaque.extend_from_slice(Uuid::new_v4().as_bytes());
        Self {
            rest_token: token(0x01, password.as_bytes()),
            read_only_rest_token: token(0x02, &opaque),
            password,
        }
    }
}

/// Which JSON layout the API returns for a database.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Shape {
    /// Today's full object, with the parsing hazards real clients must survive.
    #[default]
    Modern,
    /// The documented 2022 reset-password example (`cluster_id`, `pool_id`, ...).
    Legacy,
}

/// Everything the simulator knows about one database.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Database {
    pub id: String,
    pub name: String,
    /// Email of the account that created it; other accounts cannot see it.
    pub owner: String,
    pub platform: String,
    pub primary_region: String,
    pub read_regions: Vec<String>,
    pub plan: String,
    pub endpoint: String,
    pub port: u16,
    pub tls: bool,
    pub creation_time: i64,
    pub credentials: Credentials,
    /// The credentials a reset replaced, still accepted during propagation lag.
    pub previous_credentials: Option<Credentials>,
    /// Unix milliseconds of the last reset.
    pub rotated_at_ms: Option<u64>,
    pub shape: Shape,
    pub credential_protection: bool,
    pub propagation_lag_ms: u64,
    pub resets: u64,
    /// `host:port` of the real redis-server that backs it, if any.
    pub redis: Option<String>,
}

impl Database {
    /// The Database object as the API returns it. `rest_url` is the
    /// simulator's own field (Upstash has none): where its data plane is.
    pub fn to_api_json(&self, with_credentials: bool, rest_url: Option<&str>) -> Value {
        let mut body = match self.shape {
            Shape::Modern => self.modern_json(),
            Shape::Legacy => self.legacy_json(),
        };
        let Value::Object(map) = &mut body else { return body };
        if let Some(url) = rest_url {
            map.insert("rest_url".into(), json!(url));
        }
        if with_credentials {
            map.insert("password".into(), json!(self.credentials.password));
            map.insert("rest_token".into(), json!(self.credentials.rest_token));
            map.insert("read_only_rest_token".into(), json!(self.credentials.read_only_rest_token));
        }
        body
    }

    fn modern_json(&self) -> Value {
        let mut all_members = vec![self.primary_region.clone()];
        all_members.extend(self.read_regions.iter().cloned());
        json!({
            "database_id": self.id,
            "database_name": self.name,
            "database_type": "Pay as You Go",
            "region": "global",
            "type": self.plan,
            "primary_members": [self.primary_region],
            "all_members": all_members,
            "primary_region": self.primary_region,
            "read_regions": self.read_regions,
            "port": self.port,
            "creation_time": self.creation_time,
            "budget": 2000,
            "state": "active",
            "user_email": self.owner,
            "customer_id": self.owner,
            "endpoint": self.endpoint,
            "tls": self.tls,
            "eviction": false,
            "auto_upgrade": false,
            "consistent": false,
            "modifying_state": "",
            "db_max_clients": 10000,
            "db_max_request_size": 104857600,
            "db_disk_threshold": 107374182400u64,
            "db_max_entry_size": 104857600,
            "db_memory_threshold": 3221225472u64,
            "db_conn_idle_timeout": 21600000000000u64,
            "db_lua_timeout": 250000000,
            "db_store_max_idle": 900000000000u64,
            // One above i64::MAX, as the real API returns it.
            "db_request_limit": 9223372036854775808u64,
            "db_acl_enabled": "false",
            "db_acl_default_user_status": "true",
            "prometheus_enabled": "false",
            "securityAddons": {
                "ipWhitelisting": false, "vpcPeering": false, "privateLink": false,
                "tlsMutualAuth": false, "encryptionAtRest": false
            },
        })
    }

    fn legacy_json(&self) -> Value {
        let short = |seed: &str| seed.chars().filter(char::is_ascii_hexdigit).take(8).collect::<String>();
        // Legacy regional databases had a unique port, echoed in the host name.
        let (endpoint, port) = match self.redis {
            Some(_) => (self.endpoint.clone(), self.port),
            None => {
                let port = 30000 + (u32::from_str_radix(&short(&self.id), 16).unwrap_or(0) % 10000) as u16;
                (format!("eu2-sought-mollusk-{port}.upstash.io"), port)
            }
        };
        json!({
            "database_id": self.id,
            "cluster_id": short(self.id.get(9..).unwrap_or_default()),
            "database_name": self.name,
            "database_type": "Pay as You Go",
            "region": self.primary_region,
            "port": port,
            "creation_time": self.creation_time,
            "state": "active",
            "user_email": self.owner,
            "endpoint": endpoint,
            "tls": self.tls,
            "consistent": false,
            "pool_id": short(self.id.get(24..).unwrap_or_default()),
        })
    }
}

/// A database as a hand-written state file may hold one, for tests.
#[cfg(test)]
impl Database {
    pub fn example(id: &str) -> Self {
        Self {
            id: id.into(),
            name: format!("name-{id}"),
            owner: "o@example.com".into(),
            platform: "aws".into(),
            primary_region: "eu-west-1".into(),
            read_regions: Vec::new(),
            plan: "payg".into(),
            endpoint: "localhost".into(),
            port: 6379,
            tls: true,
            creation_time: 0,
            credentials: Credentials::generate(id, 6379),
            previous_credentials: None,
            rotated_at_ms: None,
            shape: Shape::Modern,
            credential_protection: false,
            propagation_lag_ms: 0,
            resets: 0,
            redis: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_follow_the_legacy_layout_and_embed_the_password() {
        let id = "96ad0856-03b1-4ee7-9666-e81abd0349e1";
        let creds = Credentials::generate(id, 30143);
        assert_eq!(creds.password.len(), 32);
        assert!(creds.password.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        let raw = URL_SAFE.decode(&creds.rest_token).expect("url-safe base64");
        assert_eq!(raw.len(), 74);
        assert_eq!(&raw[..6], &[0x01, 0x75, 0xbf, 0x01, 0x24, 0x20]);
        assert_eq!(&raw[6..42], id.as_bytes());
        assert_eq!(&raw[42..], creds.password.as_bytes());
        let ro = URL_SAFE.decode(&creds.read_only_rest_token).expect("url-safe base64");
        assert_eq!((ro.len(), ro[0]), (74, 0x02));
    }

    #[test]
    fn a_short_id_from_a_hand_written_state_file_still_renders() {
        let database = Database { tls: false, shape: Shape::Legacy, ..Database::example("db") };
        let body = database.to_api_json(false, None);
        assert_eq!((body["cluster_id"].as_str(), body["pool_id"].as_str()), (Some(""), Some("")));
        assert!(body.get("rest_url").is_none(), "no address, no field");
        let body = database.to_api_json(false, Some("https://127.0.0.1:8443"));
        assert_eq!(body["rest_url"], "https://127.0.0.1:8443");
    }

    #[test]
    fn every_generation_is_new() {
        let a = Credentials::generate("id", 6379);
        let b = Credentials::generate("id", 6379);
        assert_ne!(a.password, b.password);
        assert_ne!(a.read_only_rest_token, b.read_only_rest_token);
    }

    #[test]
    fn debug_redacts_credentials() {
        let creds = Credentials::generate("id", 6379);
        assert!(!format!("{creds:?}").contains(&creds.password));
    }
}
