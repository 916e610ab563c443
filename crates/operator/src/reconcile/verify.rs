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
    ops::{KubeOps, UpstashOps},
};
use crate::{
    conditions::{Reason, VERIFIED},
    metrics::ResultLabel,
};

/// What the check needs, taken when the Secret was written.
pub struct Check {
    pub rotation: Rotation,
    pub rest_url: String,
    pub new_token: String,
    /// The REST token the Secret held before, if it held one.
    pub old_token: Option<String>,
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
        let mut checks = 0;
        let within_s = self.ctx.verify_within.as_secs();
        let target = check.rotation;
        let new = self.until(&check.rest_url, &check.new_token, Ping::Pong, deadline, &mut checks).await;
        let old = match (&new, check.old_token.as_deref().filter(|old| *old != check.new_token)) {
            (Ok(true), Some(old)) => {
                Some(self.until(&check.rest_url, old, Ping::Refused, deadline, &mut checks).await)
            }
            _ => None,
        };
        let (reason, message, result) = match (new, old) {
            (Err(e), _) | (_, Some(Err(e))) => (
                Reason::VerificationUnavailable,
                Message::VerificationUnavailable { target, why: e.to_string() },
                "unavailable",
            ),
            (Ok(false), _) => (
                Reason::VerificationFailed,
                Message::VerificationFailed { target, new_refused: true, within_s },
                "failed",
            ),
            (Ok(true), Some(Ok(false))) => (
                Reason::VerificationFailed,
                Message::VerificationFailed { target, new_refused: false, within_s },
                "failed",
            ),
            (Ok(true), old) => {
                let took_ms = started.elapsed().as_millis();
                (
                    Reason::Verified,
                    Message::Verified { target, old_checked: old.is_some(), checks, took_ms },
                    "verified",
                )
            }
        };
        self.report(reason, message, result).await;
    }

    /// Pings with `token` until the data plane answers `wanted` or the
    /// deadline passes: `Ok(false)` when it never did, the last error when
    /// the data plane could not be asked at the end.
    async fn until(
        &self,
        rest_url: &str,
        token: &str,
        wanted: Ping,
        deadline: Instant,
        checks: &mut u32,
    ) -> Result<bool, UpstashError> {
        let mut delay = FIRST_DELAY;
        loop {
            *checks += 1;
            let answer = self.ctx.upstash.ping(rest_url, token).await;
            if answer.as_ref().is_ok_and(|a| *a == wanted) {
                return Ok(true);
            }
            if Instant::now() + delay > deadline {
                return answer.map(|_| false);
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(MAX_DELAY);
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
