//! Every error becomes a clear condition, backs off, and recovers as soon as
//! its cause is fixed.

use testkit as support;

use std::time::Duration;

use serde_json::json;
use support::{
    ready_message,
    sim::{API_KEY, EMAIL, RO_API_KEY, RO_EMAIL},
    world::World,
};
use upstash_rotator::conditions::Reason;

#[tokio::test]
async fn missing_credentials_secret_resumes_once_created() {
    let world = World::new("nocreds").await;
    world.secrets().delete(support::world::CREDENTIALS_SECRET, &Default::default()).await.expect("delete");
    world.create("cache", world.spec()).await;
    let failed = world.wait_for("cache", Reason::CredentialsSecretMissing.as_str(), |_| true).await;
    assert!(ready_message(&failed).contains("upstash-api"), "{}", ready_message(&failed));

    // Let the backoff grow past what the test could wait for by accident.
    tokio::time::sleep(Duration::from_secs(5)).await;
    world.put_api_credentials(EMAIL, API_KEY).await;
    world.wait_for("cache", Reason::Synced.as_str(), |_| true).await;
    assert!(world.event_reasons().await.iter().any(|r| r == Reason::CredentialsSecretMissing.as_str()));
}

#[tokio::test]
async fn missing_key_in_credentials_secret_is_named() {
    let world = World::new("nokey").await;
    let mut spec = world.spec();
    if let Some(reference) = &mut spec.credentials_secret_ref {
        reference.api_key_key = "token".into();
    }
    world.create("cache", spec).await;
    let failed = world.wait_for("cache", Reason::CredentialsSecretMissing.as_str(), |_| true).await;
    assert!(ready_message(&failed).contains("\"token\""), "{}", ready_message(&failed));
}

#[tokio::test]
async fn wrong_or_read_only_keys_are_invalid_credentials_and_fixing_them_resumes() {
    let world = World::new("badkey").await;
    world.put_api_credentials(EMAIL, "not-the-key").await;
    world.create("cache", world.spec()).await;
    world.wait_for("cache", Reason::InvalidCredentials.as_str(), |_| true).await;

    world.put_api_credentials(EMAIL, API_KEY).await;
    world.wait_for("cache", Reason::Synced.as_str(), |_| true).await;

    // A read-only key can read (sync) but not reset.
    world.put_api_credentials(RO_EMAIL, RO_API_KEY).await;
    world.set_rotation("cache", 1).await;
    let failed = world.wait_for("cache", Reason::InvalidCredentials.as_str(), |_| true).await;
    assert!(ready_message(&failed).contains("read-only"), "{}", ready_message(&failed));
    assert_eq!(world.resets().await, 0);
    let status = failed.status.expect("status");
    assert_eq!(status.pending_rotation, None, "a refused reset leaves nothing in flight");
    assert!(failed.metadata.finalizers.unwrap_or_default().is_empty());

    world.put_api_credentials(EMAIL, API_KEY).await;
    world.wait_applied("cache", 1).await;
    assert_eq!(world.resets().await, 1);
}

#[tokio::test]
async fn unknown_database_is_reported() {
    let world = World::new("nodb").await;
    let mut spec = world.spec();
    spec.database_id = "00000000-0000-0000-0000-000000000000".into();
    world.create("cache", spec).await;
    let failed = world.wait_for("cache", Reason::DatabaseNotFound.as_str(), |_| true).await;
    assert!(ready_message(&failed).contains("00000000-0000-0000-0000-000000000000"));
}

#[tokio::test]
async fn rate_limits_and_outages_are_retried_with_backoff() {
    let world = World::new("flaky").await;
    world
        .sim
        .fault(json!({"route": "get", "times": 1, "action":
            {"kind": "respond", "status": 429, "body": "", "headers": {"Retry-After": "3"}}}))
        .await;
    world.create("cache", world.spec()).await;
    world.wait_for("cache", Reason::RateLimited.as_str(), |_| true).await;
    world.wait_for("cache", Reason::Synced.as_str(), |_| true).await;

    world
        .sim
        .fault(json!({"route": "get", "times": 2, "action":
            {"kind": "respond", "status": 503, "body": "Service Unavailable", "content_type": "text/plain"}}))
        .await;
    // Deleting the Secret forces a GET that now fails twice.
    world.secrets().delete("cache", &Default::default()).await.expect("delete");
    let down = world.wait_for("cache", Reason::UpstashUnavailable.as_str(), |_| true).await;
    assert!(ready_message(&down).contains("503"), "{}", ready_message(&down));
    world.wait_for("cache", Reason::Synced.as_str(), |_| true).await;

    // Bounded retries: two failures, a handful of GETs in all, no hot loop.
    let log = world.sim.request_log().await;
    let gets = log["counts"]["get"][&world.database_id].as_u64().unwrap_or(0);
    assert!(gets <= 12, "{gets} GETs for two faults");
    assert_eq!(world.resets().await, 0);
}
