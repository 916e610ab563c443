//! The check after a rotation: the new credentials answer PING on the REST
//! data plane, and the old ones are refused. Retried briefly while the
//! reset propagates. Its outcome is the `Verified` condition, a metric and,
//! when it did not pass, a warning event; it never fails the reconcile and
//! never leads to another reset (Upstash already revoked the old password,
//! so a second reset could only make things worse).

use std::time::Duration;

use tokio::time::Instant;
use upstash_api::{Ping, UpstashError};

use super::{
    execute::Run,
    messages::{Message, Notice, Rotation},
    ops::{KubeOps, RespEndpoint, UpstashOps},
};
use crate::{
    conditions::{Reason, VERIFIED},
    metrics::ResultLabel,
};

/// What the check needs, taken when the Secret was written.
pub struct Check {
    pub rotation: Rotation,
    pub rest_url: String,
    pub resp: RespEndpoint,
    pub new: Credentials,
    /// What the Secret held before, if it held the default keys.
    pub old: Option<Credentials>,
}

/// The two secrets a client may present: the REST token and the password.
#[derive(PartialEq, Eq)]
pub struct Credentials {
    pub token: String,
    pub password: String,
}

/// How the data plane is asked.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Plane {
    Rest,
    /// `AUTH` + `PING`, when the REST data plane cannot be reached.
    Resp,
}

/// The first wait between two checks; doubled up to `MAX_DELAY`.
const FIRST_DELAY: Duration = Duration::from_millis(100);
const MAX_DELAY: Duration = Duration::from_secs(2);

impl<K: KubeOps, U: UpstashOps> Run<'_, K, U> {
    /// Checks the credentials of `target` and records what it found.
    pub(super) async fn verify(&mut self, target: i64) {
        let Some(check) = self.check.take() else {
            let message = Message::NotVerified { target: self.draft.rotation(target) };
            self.report(Reason::NotVerified, message, "unavailable").await;
            return;
        };
        let started = Instant::now();
        let deadline = started + self.ctx.verify_within;
        let within_s = self.ctx.verify_within.as_secs();
        let target = check.rotation;
        let mut checks = 1;
        // The plane: REST, unless it cannot be reached and RESP can.
        let mut plane = Plane::Rest;
        let mut first = self.probe(&check, Plane::Rest, &check.new).await;
        if first.is_err() {
            let resp = self.probe(&check, Plane::Resp, &check.new).await;
            checks += 1;
            if resp.is_ok() {
                (plane, first) = (Plane::Resp, resp);
            }
        }
        let new = self.until(&check, plane, &check.new, Ping::Pong, first, deadline, &mut checks).await;
        let old = match (&new, check.old.as_ref().filter(|old| **old != check.new)) {
            (Ok(true), Some(old)) => {
                checks += 1;
                let first = self.probe(&check, plane, old).await;
                Some(self.until(&check, plane, old, Ping::Refused, first, deadline, &mut checks).await)
            }
            _ => None,
        };
        let over = match plane {
            Plane::Rest => "on the REST data plane",
            Plane::Resp => "over RESP (AUTH + PING; the REST data plane could not be reached)",
        };
        let (reason, message, result) = match (new, old) {
            (Err(e), _) | (_, Some(Err(e))) => {
                let why = e.to_string();
                (
                    Reason::VerificationUnavailable,
                    Message::VerificationUnavailable { target, why },
                    "unavailable",
                )
            }
            (Ok(false), _) => {
                let message = Message::VerificationFailed { target, new_refused: true, within_s, over };
                (Reason::VerificationFailed, message, "failed")
            }
            (Ok(true), Some(Ok(false))) => {
                let message = Message::VerificationFailed { target, new_refused: false, within_s, over };
                (Reason::VerificationFailed, message, "failed")
            }
            (Ok(true), old) => {
                let took_ms = started.elapsed().as_millis();
                let message = Message::Verified { target, old_checked: old.is_some(), checks, took_ms, over };
                (Reason::Verified, message, "verified")
            }
        };
        self.report(reason, message, result).await;
    }

    /// One check of `credentials` on `plane`.
    async fn probe(
        &self,
        check: &Check,
        plane: Plane,
        credentials: &Credentials,
    ) -> Result<Ping, UpstashError> {
        match plane {
            Plane::Rest => self.ctx.upstash.ping(&check.rest_url, &credentials.token).await,
            Plane::Resp => self.ctx.upstash.resp_ping(&check.resp, &credentials.password).await,
        }
    }

    /// Checks again, after the `first` answer, until the data plane answers
    /// `wanted` or the deadline passes: `Ok(false)` when it never did, the
    /// last error when the data plane could not be asked at the end.
    #[allow(clippy::too_many_arguments)]
    async fn until(
        &self,
        check: &Check,
        plane: Plane,
        credentials: &Credentials,
        wanted: Ping,
        first: Result<Ping, UpstashError>,
        deadline: Instant,
        checks: &mut u32,
    ) -> Result<bool, UpstashError> {
        let mut answer = first;
        let mut delay = FIRST_DELAY;
        loop {
            if answer.as_ref().is_ok_and(|a| *a == wanted) {
                return Ok(true);
            }
            if Instant::now() + delay > deadline {
                return answer.map(|_| false);
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(MAX_DELAY);
            *checks += 1;
            answer = self.probe(check, plane, credentials).await;
        }
    }

    async fn report(&mut self, reason: Reason, message: Message, result: &'static str) {
        self.ctx.metrics.verifications.get_or_create(&ResultLabel { result }).inc();
        let passed = reason == Reason::Verified;
        self.draft.set(VERIFIED, passed, reason, &message);
        if !passed {
            self.publish(&Notice::NotVerified { reason, message }).await;
        }
    }
}
