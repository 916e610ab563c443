//! One scenario's world: a namespace, an `upstash-sim` with several
//! databases, one resource per database, operator replicas, and the
//! bookkeeping that turns a round (burst, heal, converge) into ledgers.

use std::{
    collections::BTreeSet,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use anyhow::{Context as _, Result, anyhow, bail};
use futures::{StreamExt as _, future::join_all};
use k8s_openapi::{
    api::{coordination::v1::Lease, core::v1::Secret, events::v1::Event},
    jiff::Timestamp,
};
use kube::{
    Api, Client,
    api::{ListParams, Patch, PatchParams, PostParams},
    runtime::{WatchStreamExt as _, watcher},
};
use serde_json::{Value, json};
use tokio::{task::JoinHandle, time::Instant};
use upstash_rotator::{
    crd::{RedisPasswordRotation, RedisPasswordRotationSpec},
    secret,
};

pub use super::tracking::{Track, View};
use super::{
    config::Knobs,
    invariants::Ledger,
    leaks::Needles,
    processes::{Fleet, Launch},
    rng::Rng,
    support::{
        TestNamespace,
        sim::{API_KEY, EMAIL, Sim},
        world::{CREDENTIALS_SECRET, api_key_secret},
    },
};

/// How long resets may still trickle in after convergence.
const SETTLE: Duration = Duration::from_secs(2);
/// Prefix of the passwords the user-edits scenario writes.
pub const USER_EDIT: &str = "edited-by-a-user-";
const POLL: Duration = Duration::from_millis(250);

/// One simulated database and the resource that rotates it.
#[derive(Clone, Debug)]
pub struct Db {
    pub id: String,
    pub resource: String,
}

/// What a round starts from.
pub struct Snapshot {
    resets: Vec<u64>,
    events: Vec<(u64, u64)>,
}

/// What a round produced.
pub struct RoundResult {
    pub ledgers: Vec<Ledger>,
    pub converged_after: Option<Duration>,
    /// What converging was allowed, and when the faults were healed (wall
    /// clock, to find the moment in the operators' logs).
    pub limit: Duration,
    pub healed_at: Timestamp,
}

pub struct Stage {
    pub client: Client,
    pub ns: TestNamespace,
    pub sim: Sim,
    pub dbs: Vec<Db>,
    pub fleet: tokio::sync::Mutex<Fleet>,
    pub needles: Arc<Mutex<Needles>>,
    /// Faults the harness caused outside the simulator (kills, pauses, ...).
    pub other_faults: AtomicU64,
    pub knobs: Knobs,
    /// Databases with Credential Protection on.
    pub protected: Mutex<BTreeSet<String>>,
    pub notes: Mutex<Vec<String>>,
    burst_over: AtomicBool,
    /// Set by chaos to end the burst at once (open steps stay open).
    cut: AtomicBool,
    watcher: JoinHandle<()>,
}

impl Drop for Stage {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Records every credential value our Secrets ever held.
fn watch_secrets(api: Api<Secret>, needles: Arc<Mutex<Needles>>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let config = watcher::Config::default().labels(&format!(
            "{}={}",
            secret::MANAGED_BY_LABEL,
            secret::MANAGED_BY
        ));
        let mut stream = watcher(api, config).default_backoff().applied_objects().boxed();
        while let Some(item) = stream.next().await {
            let Ok(s) = item else { continue };
            let mut n = lock(&needles);
            for (key, value) in s.data.unwrap_or_default() {
                if key == secret::KEY_PASSWORD
                    || key == secret::KEY_REST_TOKEN
                    || key == secret::KEY_REST_READONLY_TOKEN
                {
                    let value = String::from_utf8_lossy(&value.0);
                    // The user-edits scenario's own writes are no credentials.
                    if !value.starts_with(USER_EDIT) {
                        n.add_known(&value);
                    }
                }
            }
        }
    })
}

impl Stage {
    /// Namespace, simulator, databases, resources; operators from `launch`
    /// (given the namespace and the simulator's URL); waits for the first sync.
    pub async fn new(
        key: &'static str,
        client: &Client,
        knobs: Knobs,
        resources: usize,
        launch: impl Fn(&str, &str) -> Vec<Launch>,
    ) -> Result<Self> {
        let ns = TestNamespace::new(client, &format!("chaos-{key}")).await;
        let sim = Sim::start(&[]).await;
        let mut needles = Needles::default();
        needles.add_known(API_KEY);
        let mut dbs = Vec::new();
        for i in 0..resources {
            let name = format!("db{i}");
            let created = sim.create_database(&name).await;
            let id = created["database_id"].as_str().ok_or_else(|| anyhow!("create: no id"))?.to_owned();
            for k in ["password", "rest_token", "read_only_rest_token"] {
                if let Some(v) = created[k].as_str() {
                    needles.add_known(v);
                }
            }
            needles.database_ids.insert(id.clone());
            dbs.push(Db { id, resource: name });
        }
        let needles = Arc::new(Mutex::new(needles));
        let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns.name);
        let watcher = watch_secrets(secrets.clone(), needles.clone());
        let credentials = api_key_secret(EMAIL, API_KEY);
        secrets.create(&PostParams::default(), &credentials).await.context("create the API key Secret")?;
        let resources_api: Api<RedisPasswordRotation> = Api::namespaced(client.clone(), &ns.name);
        for db in &dbs {
            let r = RedisPasswordRotation::new(
                &db.resource,
                RedisPasswordRotationSpec::new(db.id.as_str(), CREDENTIALS_SECRET),
            );
            resources_api.create(&PostParams::default(), &r).await.context("create a resource")?;
        }
        let fleet = Fleet::start(launch(&ns.name, &sim.url)).await.map_err(|e| anyhow!(e))?;
        let stage = Self {
            client: client.clone(),
            ns,
            sim,
            dbs,
            fleet: tokio::sync::Mutex::new(fleet),
            needles,
            other_faults: AtomicU64::new(0),
            knobs,
            protected: Mutex::default(),
            notes: Mutex::default(),
            burst_over: AtomicBool::new(false),
            cut: AtomicBool::new(false),
            watcher,
        };
        stage.wait_all_converged(Duration::from_secs(60)).await.map_err(|e| anyhow!("first sync: {e}"))?;
        Ok(stage)
    }

    pub fn resources(&self) -> Api<RedisPasswordRotation> {
        Api::namespaced(self.client.clone(), &self.ns.name)
    }

    pub fn secrets(&self) -> Api<Secret> {
        Api::namespaced(self.client.clone(), &self.ns.name)
    }

    pub fn note(&self, text: impl Into<String>) {
        lock(&self.notes).push(text.into());
    }

    pub fn count_fault(&self) {
        self.other_faults.fetch_add(1, Ordering::Relaxed);
    }

    pub fn burst_over(&self) -> bool {
        self.burst_over.load(Ordering::Relaxed)
    }

    /// Ends the current burst now: no more bumps, no more waiting for steps.
    pub fn cut_burst(&self) {
        self.cut.store(true, Ordering::Relaxed);
    }

    fn cut(&self) -> bool {
        self.cut.load(Ordering::Relaxed)
    }

    /// Raises every counter once more (a fresh change, as a user makes it),
    /// opening a step where none is open.
    pub async fn raise_all(&self, tracks: &mut [Track]) {
        for (i, track) in tracks.iter_mut().enumerate() {
            self.raise(i, track).await;
        }
    }

    /// Raises database `i`'s counter by one, opening a step if none is open.
    pub async fn raise(&self, i: usize, track: &mut Track) {
        let Some(db) = self.dbs.get(i) else { return };
        let Some(view) = self.view(&db.resource).await else { return };
        track.open(self.resets(&db.id).await);
        if let Err(e) = self.bump(&db.resource, view.spec + 1).await {
            self.note(e.to_string());
        }
    }

    /// Tracks starting from what every resource has applied now.
    pub async fn tracks(&self) -> Vec<Track> {
        let mut tracks = Vec::new();
        for db in &self.dbs {
            let view = self.view(&db.resource).await.unwrap_or_default();
            tracks.push(Track::starting_at(&view, self.resets(&db.id).await));
        }
        tracks
    }

    pub async fn view(&self, name: &str) -> Option<View> {
        self.resources().get(name).await.ok().map(|r| View::of(&r))
    }

    /// Raises `spec.rotation` to `value`, retrying through apiserver outages.
    pub async fn bump(&self, name: &str, value: i64) -> Result<()> {
        let patch = json!({"spec": {"rotation": value}});
        let deadline = Instant::now() + Duration::from_secs(150);
        loop {
            match self.resources().patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                Ok(_) => return Ok(()),
                // A refusal (e.g. the counter may only increase) is final.
                Err(kube::Error::Api(e)) if e.code < 500 && e.code != 429 => {
                    bail!("cannot raise {name} to {value}: {}", e.message)
                }
                Err(e) if Instant::now() > deadline => bail!("cannot raise {name} to {value}: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(300)).await,
            }
        }
    }

    // ---- the simulator ----

    async fn sim_json(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<Value> {
        let mut request = self.sim.http.request(method, format!("{}{path}", self.sim.url));
        if path.starts_with("/v2/") {
            request = request.basic_auth(EMAIL, Some(API_KEY));
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.with_context(|| format!("upstash-sim {path}"))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if !status.is_success() {
            bail!("upstash-sim {path}: {status}");
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// The simulator's reset count for `id`, if it answers now. Never a
    /// guess: a window judged on a count nobody read would blame the
    /// operator for a reset it made (0 resets here, one too many later).
    pub async fn try_resets(&self, id: &str) -> Option<u64> {
        let path = format!("/_sim/databases/{id}");
        let read = self.sim_json(reqwest::Method::GET, &path, None);
        let value = tokio::time::timeout(Duration::from_secs(5), read).await.ok()?.ok()?;
        value["resets"].as_u64()
    }

    /// The count where the harness cannot go on without it (opening a
    /// window, the round's totals): retried for up to 30 s, then noted (the
    /// simulator died, which the checks report).
    pub async fn resets(&self, id: &str) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(count) = self.try_resets(id).await {
                return count;
            }
            if Instant::now() > deadline {
                self.note(format!("upstash-sim did not report the resets of database {id} for 30 s"));
                return 0;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub async fn fault(&self, fault: Value) -> Result<()> {
        self.sim_json(reqwest::Method::POST, "/_sim/faults", Some(fault)).await.map(|_| ())
    }

    pub async fn clear_faults(&self) -> Result<()> {
        self.sim_json(reqwest::Method::DELETE, "/_sim/faults", None).await.map(|_| ())
    }

    pub async fn set_protection(&self, id: &str, enabled: bool) -> Result<()> {
        let path = format!("/_sim/databases/{id}/credential-protection");
        self.sim_json(reqwest::Method::PUT, &path, Some(json!({"enabled": enabled}))).await?;
        let mut p = lock(&self.protected);
        if enabled {
            p.insert(id.to_owned());
        } else {
            p.remove(id);
        }
        Ok(())
    }

    /// Requests the simulator answered with a fault.
    pub async fn sim_faults(&self) -> u64 {
        let Ok(log) = self.sim_json(reqwest::Method::GET, "/_sim/requests", None).await else { return 0 };
        log["requests"].as_array().map_or(0, |r| r.iter().filter(|q| !q["fault"].is_null()).count() as u64)
    }

    /// Requests logged for `route` with this fault kind, e.g. a delayed GET in flight.
    pub async fn sim_requests(&self) -> Vec<Value> {
        self.sim_json(reqwest::Method::GET, "/_sim/requests", None)
            .await
            .ok()
            .and_then(|v| v["requests"].as_array().cloned())
            .unwrap_or_default()
    }

    /// Upstash's current credentials (Credential Protection switched off
    /// for the read when it is on).
    pub async fn upstash_current(&self, id: &str) -> Result<Value> {
        let protected = lock(&self.protected).contains(id);
        if protected {
            self.sim_json(
                reqwest::Method::PUT,
                &format!("/_sim/databases/{id}/credential-protection"),
                Some(json!({"enabled": false})),
            )
            .await?;
        }
        let current = self.sim_json(reqwest::Method::GET, &format!("/v2/redis/database/{id}"), None).await;
        if protected {
            self.sim_json(
                reqwest::Method::PUT,
                &format!("/_sim/databases/{id}/credential-protection"),
                Some(json!({"enabled": true})),
            )
            .await?;
        }
        let current = current?;
        let mut n = lock(&self.needles);
        for k in ["password", "rest_token", "read_only_rest_token"] {
            if let Some(v) = current[k].as_str() {
                n.add_known(v);
            }
        }
        Ok(current)
    }

    // ---- Kubernetes ----

    pub async fn events(&self) -> Vec<Event> {
        let api: Api<Event> = Api::namespaced(self.client.clone(), &self.ns.name);
        api.list(&ListParams::default()).await.map(|l| l.items).unwrap_or_default()
    }

    /// (ResetRepeated warnings, unverified-step warnings) for a resource so far.
    fn announcements(events: &[Event], resource: &str) -> (u64, u64) {
        let mut repeats = 0;
        let mut unverified = 0;
        for e in events {
            if e.regarding.as_ref().and_then(|r| r.name.as_deref()) != Some(resource) {
                continue;
            }
            let n = e.series.as_ref().map_or(1, |s| s.count.max(1) as u64);
            let warning = e.type_.as_deref() == Some("Warning");
            match e.reason.as_deref() {
                Some("ResetRepeated") => repeats += n,
                Some("RotationRecovered") if warning => unverified += n,
                Some("RotationAbandoned") => unverified += n,
                _ => {}
            }
        }
        (repeats, unverified)
    }

    pub async fn lease_holder(&self) -> Option<String> {
        let leases: Api<Lease> = Api::namespaced(self.client.clone(), &self.ns.name);
        leases.get_opt("upstash-rotator").await.ok()??.spec?.holder_identity.filter(|h| !h.is_empty())
    }

    /// Sleeps, restarting replicas that went down meanwhile.
    pub async fn nap(&self, d: Duration) {
        let until = Instant::now() + d;
        while Instant::now() < until {
            self.supervise().await;
            tokio::time::sleep((until - Instant::now()).min(Duration::from_millis(100))).await;
        }
    }

    pub async fn supervise(&self) {
        if let Err(e) = self.fleet.lock().await.supervise().await {
            self.note(format!("an operator failed to restart: {e}"));
        }
    }

    async fn wait_all_converged(&self, limit: Duration) -> std::result::Result<(), String> {
        let deadline = Instant::now() + limit;
        loop {
            let mut last = Vec::new();
            for db in &self.dbs {
                match self.view(&db.resource).await {
                    Some(v) if v.converged() => {}
                    Some(v) => last.push(format!("{}: {}", db.resource, v.describe())),
                    None => last.push(format!("{}: unreadable", db.resource)),
                }
            }
            if last.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                let fleet = self.fleet.lock().await;
                let needles = self.needles();
                let logs: Vec<String> = fleet
                    .logs()
                    .into_iter()
                    .map(|(i, l)| format!("--- {i}:\n{}", super::leaks::redact(&l, &needles)))
                    .collect();
                return Err(format!(
                    "not converged after {limit:?}: {}\n{}",
                    last.join("; "),
                    logs.join("\n")
                ));
            }
            self.supervise().await;
            tokio::time::sleep(POLL).await;
        }
    }

    // ---- rounds ----

    pub async fn begin_round(&self) -> Snapshot {
        self.burst_over.store(false, Ordering::Relaxed);
        self.cut.store(false, Ordering::Relaxed);
        let events = self.events().await;
        let mut resets = Vec::new();
        let mut counts = Vec::new();
        for db in &self.dbs {
            resets.push(self.resets(&db.id).await);
            counts.push(Self::announcements(&events, &db.resource));
        }
        Snapshot { resets, events: counts }
    }

    /// Raises every resource's counter, each bump after the previous one was
    /// applied, all resources at once, for `knobs.burst`; sometimes a jump of
    /// several values. The last steps may take until `knobs.burst_limit`.
    pub async fn burst(&self, rng: &mut Rng) -> Vec<Track> {
        let start = Instant::now();
        let (stop_bumping, deadline) = (start + self.knobs.burst, start + self.knobs.burst_limit);
        let plans: Vec<Vec<(i64, u64)>> = self
            .dbs
            .iter()
            .map(|_| {
                (0..self.knobs.max_bumps)
                    .map(|_| (if rng.chance(20) { rng.range(2, 4) as i64 } else { 1 }, rng.range(0, 400)))
                    .collect()
            })
            .collect();
        let tracks = join_all(
            self.dbs.iter().zip(plans).map(|(db, plan)| self.bump_resource(db, plan, stop_bumping, deadline)),
        )
        .await;
        self.burst_over.store(true, Ordering::Relaxed);
        tracks
    }

    async fn bump_resource(
        &self,
        db: &Db,
        plan: Vec<(i64, u64)>,
        stop_bumping: Instant,
        deadline: Instant,
    ) -> Track {
        let mut first = self.view(&db.resource).await;
        let patience = Instant::now() + Duration::from_secs(30);
        while first.is_none() && Instant::now() < patience {
            tokio::time::sleep(POLL).await;
            first = self.view(&db.resource).await;
        }
        let Some(view) = first else {
            self.note(format!("{}: unreadable at the start of the burst; not bumped", db.resource));
            let mut never = Track::default();
            never.applied = i64::MAX;
            return never;
        };
        // A counter left ahead by an earlier round is a window already open.
        let mut track = Track::starting_at(&view, self.resets(&db.id).await);
        let mut spec = view.spec;
        for (jump, pause_ms) in plan {
            if Instant::now() > stop_bumping || self.cut() {
                break;
            }
            track.open(self.resets(&db.id).await);
            let mut target = spec.max(track.applied) + jump;
            if let Err(e) = self.bump(&db.resource, target).await {
                self.note(e.to_string());
                break;
            }
            spec = target;
            // Wait for the step to be applied (or the burst to end).
            let applied = loop {
                if let Some(view) = self.view(&db.resource).await {
                    if let Some(raised) = track.attend(&view) {
                        target = raised;
                        spec = raised;
                        let _ = self.bump(&db.resource, target).await;
                    }
                    // An unreadable count skips this look: the window stays open.
                    if let Some(resets) = self.try_resets(&db.id).await {
                        track.observe(&view, resets);
                    }
                    if track.applied >= target {
                        break true;
                    }
                }
                if Instant::now() > deadline || self.cut() {
                    break false;
                }
                tokio::time::sleep(POLL).await;
            };
            if !applied {
                break;
            }
            tokio::time::sleep(Duration::from_millis(pause_ms)).await;
        }
        track
    }

    /// Waits (bounded) until every resource applied its counter and is Ready,
    /// then lets late resets arrive, then checks. Faults must be healed first.
    pub async fn finish_round(&self, snapshot: Snapshot, mut tracks: Vec<Track>) -> RoundResult {
        let healed = Instant::now();
        let healed_at = Timestamp::now();
        let deadline = healed + self.knobs.converge_limit;
        let mut converged_after = None;
        // Why each resource is not converged, as last seen before the deadline.
        let mut behind: Vec<Option<String>> = vec![None; self.dbs.len()];
        loop {
            self.supervise().await;
            let mut all = true;
            for (i, db) in self.dbs.iter().enumerate() {
                let Some(view) = self.view(&db.resource).await else {
                    behind[i] = Some("resource unreadable".into());
                    all = false;
                    continue;
                };
                behind[i] = (!view.converged()).then(|| view.describe());
                if let Some(raised) = tracks[i].attend(&view) {
                    let _ = self.bump(&db.resource, raised).await;
                    all = false;
                    continue;
                }
                match self.try_resets(&db.id).await {
                    Some(resets) => tracks[i].observe(&view, resets),
                    None => all = false,
                }
                all &= view.converged();
            }
            if all {
                converged_after = Some(healed.elapsed());
                break;
            }
            if Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(POLL).await;
        }
        tokio::time::sleep(SETTLE).await;

        let events = self.events().await;
        let mut ledgers = Vec::new();
        for (i, db) in self.dbs.iter().enumerate() {
            let track = &mut tracks[i];
            let view = self.view(&db.resource).await;
            if let Some(v) = &view {
                let resets = self.resets(&db.id).await;
                track.observe(v, resets);
            }
            let now = self.resets(&db.id).await;
            let mut steps = track.finish(now);
            for step in &mut steps {
                step.count_recorded_advances(&track.recorded);
            }
            let total = now.saturating_sub(snapshot.resets[i]);
            if track.unjudged > 0 {
                self.note(format!(
                    "{}: {} advance(s) seen with no window open (not judged)",
                    db.resource, track.unjudged
                ));
            }
            let (repeats, unverified) = Self::announcements(&events, &db.resource);
            let (repeats0, unverified0) = snapshot.events[i];
            // Judged at the deadline: converging during the settle is too late.
            let stuck = match (&converged_after, &view) {
                (Some(_), Some(v)) if !v.converged() => Some(format!("after converging: {}", v.describe())),
                (Some(_), _) => None,
                (None, _) => {
                    behind[i].take().map(|why| format!("{why} (after {:?})", self.knobs.converge_limit))
                }
            };
            ledgers.push(Ledger {
                resource: format!("{}/{}", self.ns.name, db.resource),
                steps,
                total_resets: total,
                announced_repeats: repeats.saturating_sub(repeats0),
                announced_unverified: unverified.saturating_sub(unverified0),
                attention: track.attention,
                lost: self.lost(db).await,
                stuck,
            });
        }
        RoundResult { ledgers, converged_after, limit: self.knobs.converge_limit, healed_at }
    }

    /// The Secret does not hold Upstash's current password.
    pub async fn lost(&self, db: &Db) -> bool {
        let Ok(current) = self.upstash_current(&db.id).await else {
            self.note(format!("{}: cannot read Upstash's current credentials", db.resource));
            return true;
        };
        let secret = self.secrets().get_opt(&db.resource).await.ok().flatten();
        let stored = secret
            .and_then(|s| s.data)
            .and_then(|d| d.get(secret::KEY_PASSWORD).map(|v| String::from_utf8_lossy(&v.0).into_owned()));
        stored.as_deref() != current["password"].as_str()
    }

    /// Every text the operator produced that a credential must never reach.
    pub async fn texts(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .fleet
            .lock()
            .await
            .logs()
            .into_iter()
            .map(|(identity, log)| (format!("{}: log of {identity}", self.ns.name), log))
            .collect();
        let events = serde_json::to_string(&self.events().await).unwrap_or_default();
        out.push((format!("{}: events", self.ns.name), events));
        let statuses: Vec<Value> = match self.resources().list(&ListParams::default()).await {
            Ok(list) => list.items.iter().map(|r| json!(r.status)).collect(),
            Err(_) => Vec::new(),
        };
        out.push((
            format!("{}: statuses", self.ns.name),
            serde_json::to_string(&statuses).unwrap_or_default(),
        ));
        out
    }

    pub fn needles(&self) -> Needles {
        lock(&self.needles).clone()
    }

    pub fn notes(&self) -> Vec<String> {
        lock(&self.notes).clone()
    }
}
