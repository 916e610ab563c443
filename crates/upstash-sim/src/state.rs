//! The simulator's accounts, databases and their life cycle.

use std::{
    collections::{BTreeMap, HashMap},
    path::PathBuf,
    time::{SystemTime, UNIX_EPOCH},
};

use parking_lot::{Mutex, MutexGuard};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{
    accounts::{Access, Account, authenticate},
    database::{Credentials, Database, Shape},
    error::ApiError,
    faults::FaultQueue,
    redis_backend::{BackendError, RedisBackend},
    request_log::RequestLog,
    state_file::{self, Change, Journal},
};

/// Which of a database's tokens a data-plane request presented.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    Standard,
    ReadOnly,
}

/// The database a data-plane token opens.
pub struct TokenGrant {
    pub database_id: String,
    pub kind: TokenKind,
    pub backend: Option<RedisBackend>,
}

/// Body of `POST /v2/redis/database`.
#[derive(Debug, Deserialize)]
struct CreateRequest {
    database_name: String,
    /// Optional: Upstash's own CLI sends none (and `region: "global"`).
    #[serde(default = "default_platform")]
    platform: String,
    primary_region: String,
    #[serde(default)]
    read_regions: Vec<String>,
    #[serde(default)]
    plan: Option<String>,
    #[serde(default)]
    tls: Option<bool>,
}

fn default_platform() -> String {
    "aws".into()
}

struct Store {
    databases: BTreeMap<String, Database>,
    /// Data-plane token → database id, for the current and the previous
    /// credentials of every database: a data-plane request is a lookup, not
    /// a scan of every database.
    tokens: HashMap<String, String>,
    backends: Vec<RedisBackend>,
    /// The state file, when there is one.
    journal: Option<Journal>,
}

impl Store {
    fn new(
        databases: BTreeMap<String, Database>,
        backends: Vec<RedisBackend>,
        journal: Option<Journal>,
    ) -> Self {
        let mut store = Self { databases: BTreeMap::new(), tokens: HashMap::new(), backends, journal };
        for (id, db) in databases {
            store.index(&id, &db.credentials);
            if let Some(previous) = &db.previous_credentials {
                store.index(&id, previous);
            }
            store.databases.insert(id, db);
        }
        store
    }

    /// Records database `id` as it is now, or its deletion, in the state
    /// file if there is one: one line, whatever the number of databases.
    fn persist(&mut self, id: &str) -> Result<(), ApiError> {
        let Some(journal) = &mut self.journal else { return Ok(()) };
        let change = match self.databases.get(id) {
            Some(db) => Change::Put(db),
            None => Change::Delete(id),
        };
        journal.record(change, &self.databases).map_err(|e| {
            ApiError::Internal(format!("cannot write state file {}: {e}", journal.path().display()))
        })
    }

    fn index(&mut self, id: &str, credentials: &Credentials) {
        for token in [&credentials.rest_token, &credentials.read_only_rest_token] {
            self.tokens.insert(token.clone(), id.to_owned());
        }
    }

    fn unindex(&mut self, credentials: &Credentials) {
        for token in [&credentials.rest_token, &credentials.read_only_rest_token] {
            self.tokens.remove(token);
        }
    }
}

/// Shared state of one simulator.
pub struct SimState {
    accounts: Vec<Account>,
    store: tokio::sync::Mutex<Store>,
    /// Where clients reach the data plane, reported as `rest_url`.
    rest_url: Option<String>,
    pub faults: Mutex<FaultQueue>,
    pub requests: Mutex<RequestLog>,
}

/// Why a simulator cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    StateFile(#[from] state_file::LoadError),
    #[error(transparent)]
    Backend(#[from] BackendError),
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl SimState {
    /// Loads the state file (if any) and connects every redis-server.
    pub async fn new(
        accounts: Vec<Account>,
        redis_addresses: &[String],
        state_file: Option<PathBuf>,
        rest_url: Option<String>,
    ) -> Result<Self, StartError> {
        let (journal, databases) = match &state_file {
            Some(path) => {
                let (journal, databases) = Journal::open(path)?;
                (Some(journal), databases)
            }
            None => (None, BTreeMap::new()),
        };
        let mut backends = Vec::new();
        for address in redis_addresses {
            let owner = databases.values().find(|db| db.redis.as_deref() == Some(address.as_str()));
            let backend =
                RedisBackend::connect(address, owner.map(|db| db.credentials.password.as_str())).await?;
            if let Some(db) = owner {
                backend.set_credentials(&db.credentials).await?;
            }
            backends.push(backend);
        }
        Ok(Self {
            accounts,
            store: tokio::sync::Mutex::new(Store::new(databases, backends, journal)),
            rest_url,
            faults: Mutex::default(),
            requests: Mutex::default(),
        })
    }

    pub fn faults(&self) -> MutexGuard<'_, FaultQueue> {
        self.faults.lock()
    }

    pub fn requests(&self) -> MutexGuard<'_, RequestLog> {
        self.requests.lock()
    }

    /// Authenticates a request (and, for `write`, checks the key may write)
    /// without touching any database.
    pub fn authorize(&self, header: Option<&str>, write: bool) -> Result<&Account, ApiError> {
        let account = authenticate(&self.accounts, header)?;
        // Upstash checks the key's mode before it looks the database up.
        if write && account.access == Access::ReadOnly {
            return Err(ApiError::ReadOnlyKey);
        }
        Ok(account)
    }

    pub async fn create(&self, auth: Option<&str>, body: &[u8]) -> Result<Value, ApiError> {
        let account = self.authorize(auth, true)?;
        let request: CreateRequest = serde_json::from_slice(body)
            .map_err(|e| ApiError::BadRequest(format!("invalid request body: {e}")))?;
        validate_create(&request)?;

        let mut store = self.store.lock().await;
        let id = Uuid::new_v4().to_string();
        let backend = if store.backends.is_empty() {
            None
        } else {
            let taken: Vec<_> = store.databases.values().filter_map(|db| db.redis.clone()).collect();
            let free = store.backends.iter().find(|b| !taken.contains(&b.address)).cloned();
            Some(free.ok_or_else(|| {
                ApiError::BadRequest(
                    "every redis-server of this simulator already backs a database; start it with another --redis"
                        .into(),
                )
            })?)
        };
        let (endpoint, port, tls) = match &backend {
            Some(b) => {
                let (host, port) = b.address.rsplit_once(':').unwrap_or((b.address.as_str(), "6379"));
                (host.to_owned(), port.parse().unwrap_or(6379), false)
            }
            None => (fake_endpoint(&id), 6379, request.tls.unwrap_or(true)),
        };
        let credentials = Credentials::generate(&id, port);
        if let Some(b) = &backend {
            b.set_credentials(&credentials).await.map_err(|e| ApiError::Internal(e.to_string()))?;
        }
        let db = Database {
            id: id.clone(),
            name: request.database_name,
            owner: account.email.clone(),
            platform: request.platform,
            primary_region: request.primary_region,
            read_regions: request.read_regions,
            plan: request.plan.unwrap_or_else(|| "payg".into()),
            endpoint,
            port,
            tls,
            creation_time: (now_ms() / 1000) as i64,
            credentials,
            previous_credentials: None,
            rotated_at_ms: None,
            shape: Shape::Modern,
            credential_protection: false,
            propagation_lag_ms: 0,
            resets: 0,
            redis: backend.map(|b| b.address),
        };
        let body = db.to_api_json(true, self.rest_url.as_deref());
        store.index(&id, &db.credentials);
        store.databases.insert(id.clone(), db);
        store.persist(&id)?;
        Ok(body)
    }

    pub async fn list(&self, auth: Option<&str>) -> Result<Value, ApiError> {
        let account = self.authorize(auth, false)?;
        let store = self.store.lock().await;
        let all = store.databases.values().filter(|db| db.owner == account.email);
        Ok(Value::Array(
            all.map(|db| db.to_api_json(!db.credential_protection, self.rest_url.as_deref())).collect(),
        ))
    }

    pub async fn get(&self, auth: Option<&str>, id: &str, hide_credentials: bool) -> Result<Value, ApiError> {
        let account = self.authorize(auth, false)?;
        let store = self.store.lock().await;
        let db = owned(&store, account, id)?;
        Ok(db.to_api_json(!hide_credentials && !db.credential_protection, self.rest_url.as_deref()))
    }

    pub async fn reset_password(&self, auth: Option<&str>, id: &str) -> Result<Value, ApiError> {
        let account = self.authorize(auth, true)?;
        let mut store = self.store.lock().await;
        let db = owned(&store, account, id)?;
        let credentials = Credentials::generate(&db.id, db.port);
        if let Some(address) = &db.redis {
            let backend = store.backends.iter().find(|b| &b.address == address).ok_or_else(|| {
                ApiError::Internal(format!("redis-server {address} is not connected to this simulator"))
            })?;
            backend.set_credentials(&credentials).await.map_err(|e| ApiError::Internal(e.to_string()))?;
        }
        let new = credentials.clone();
        let db = store.databases.get_mut(id).ok_or(ApiError::DatabaseNotFound)?;
        let revoked = db.previous_credentials.replace(std::mem::replace(&mut db.credentials, credentials));
        db.rotated_at_ms = Some(now_ms());
        db.resets += 1;
        // The reset is the one moment credentials are shown, protected or not.
        let body = db.to_api_json(true, self.rest_url.as_deref());
        if let Some(revoked) = revoked {
            store.unindex(&revoked);
        }
        store.index(id, &new);
        store.persist(id)?;
        Ok(body)
    }

    pub async fn delete(&self, auth: Option<&str>, id: &str) -> Result<Value, ApiError> {
        let account = self.authorize(auth, true)?;
        let mut store = self.store.lock().await;
        owned(&store, account, id)?;
        if let Some(db) = store.databases.remove(id) {
            store.unindex(&db.credentials);
            if let Some(previous) = &db.previous_credentials {
                store.unindex(previous);
            }
        }
        store.persist(id)?;
        Ok(json!("OK"))
    }

    /// The database a data-plane token currently opens. During propagation
    /// lag after a reset, the new tokens are still refused and the old ones
    /// still accepted.
    pub async fn resolve_token(&self, token: &str) -> Option<TokenGrant> {
        let store = self.store.lock().await;
        let now = now_ms();
        let id = store.tokens.get(token)?;
        store.databases.get(id).and_then(|db| {
            let lagging = db.rotated_at_ms.is_some_and(|t| now < t.saturating_add(db.propagation_lag_ms));
            let live = if lagging { db.previous_credentials.as_ref()? } else { &db.credentials };
            let kind = if live.rest_token == token {
                TokenKind::Standard
            } else if live.read_only_rest_token == token {
                TokenKind::ReadOnly
            } else {
                return None;
            };
            let backend =
                db.redis.as_ref().and_then(|a| store.backends.iter().find(|b| &b.address == a)).cloned();
            Some(TokenGrant { database_id: db.id.clone(), kind, backend })
        })
    }

    /// Changes a database's simulation settings; `None` if it does not exist.
    pub async fn configure(
        &self,
        id: &str,
        change: impl FnOnce(&mut Database),
    ) -> Result<Option<Value>, ApiError> {
        let mut store = self.store.lock().await;
        let Some(db) = store.databases.get_mut(id) else { return Ok(None) };
        change(db);
        let view = inspect(db);
        store.persist(id)?;
        Ok(Some(view))
    }

    /// The simulation settings and counters of a database, never credentials.
    pub async fn inspect(&self, id: &str) -> Option<Value> {
        self.store.lock().await.databases.get(id).map(inspect)
    }
}

fn inspect(db: &Database) -> Value {
    json!({
        "database_id": db.id,
        "owner": db.owner,
        "resets": db.resets,
        "credential_protection": db.credential_protection,
        "shape": db.shape,
        "propagation_lag_ms": db.propagation_lag_ms,
        "redis": db.redis,
    })
}

fn owned<'a>(store: &'a Store, account: &Account, id: &str) -> Result<&'a Database, ApiError> {
    store.databases.get(id).filter(|db| db.owner == account.email).ok_or(ApiError::DatabaseNotFound)
}

fn validate_create(request: &CreateRequest) -> Result<(), ApiError> {
    let bad = |m: &str| Err(ApiError::BadRequest(m.into()));
    if request.database_name.trim().is_empty() || request.database_name.len() > 100 {
        return bad("database_name must be 1 to 100 characters");
    }
    if !matches!(request.platform.as_str(), "aws" | "gcp") {
        return bad("platform must be \"aws\" or \"gcp\"");
    }
    if request.primary_region.trim().is_empty() {
        return bad("primary_region must not be empty");
    }
    Ok(())
}

/// A plausible Upstash host name derived from the database id.
fn fake_endpoint(id: &str) -> String {
    const WORDS: &[&str] = &["sought-mollusk", "all-foxe", "beloved-stallion", "calm-otter", "brave-lynx"];
    let n = id.bytes().fold(0usize, |acc, b| acc.wrapping_mul(31).wrapping_add(b as usize));
    format!("{}-{}.upstash.io", WORDS[n % WORDS.len()], 10000 + n % 90000)
}
