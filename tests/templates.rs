//! `spec.secretTemplate.data` on the real apiserver and `upstash-sim`: keys
//! rendered from templates replace (or join) the default keys, follow every
//! rotation, and an invalid template stops before any reset.

use testkit as support;

use kube::api::{Patch, PatchParams};
use serde_json::json;
use support::world::{World, credentials_of};
use upstash_rotator::{
    conditions::{self, READY, Reason},
    crd::{RedisPasswordRotation, SecretTemplate},
    secret,
};

const URL: &str =
    "{{ 'rediss' if tls else 'redis' }}://default:{{ password | urlencode }}@{{ endpoint }}:{{ port }}";

fn template(pairs: &[(&str, &str)], merge_defaults: bool) -> SecretTemplate {
    let data = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    SecretTemplate { data, merge_defaults, ..Default::default() }
}

async fn keys(world: &World, name: &str) -> Vec<String> {
    let secret = world.secrets().get(name).await.expect("secret");
    secret.data.unwrap_or_default().into_keys().collect()
}

#[tokio::test]
async fn templated_keys_replace_the_defaults_and_follow_each_rotation() {
    let world = World::new("templates").await;
    let mut spec = world.spec();
    spec.secret_template = Some(Box::new(template(
        &[
            ("DATABASE_URL", URL),
            ("redis.conf", "masterauth {{ password }}\nport {{ port }}\n"),
            ("upstash.json", "{{ {'url': restUrl, 'token': restToken, 'id': databaseId} | tojson }}"),
        ],
        false,
    )));
    world.create("cache", spec).await;
    world.wait_applied("cache", 0).await;
    assert_eq!(keys(&world, "cache").await, ["DATABASE_URL", "redis.conf", "upstash.json"]);
    for rotation in [0, 1] {
        if rotation > 0 {
            world.set_rotation("cache", rotation).await;
            world.wait_applied("cache", rotation).await;
        }
        let current = world.current().await;
        let password = current["password"].as_str().expect("password");
        let endpoint = current["endpoint"].as_str().expect("endpoint");
        let encoded: String = password
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        assert_eq!(
            world.secret_text("cache", "DATABASE_URL").await,
            format!("rediss://default:{encoded}@{endpoint}:6379")
        );
        assert!(
            world.secret_text("cache", "redis.conf").await.starts_with(&format!("masterauth {password}\n"))
        );
        let blob: serde_json::Value =
            serde_json::from_str(&world.secret_text("cache", "upstash.json").await).expect("json");
        assert_eq!(blob["token"], current["rest_token"]);
        assert_eq!(blob["id"].as_str(), Some(world.database_id.as_str()));
    }
    assert_eq!(world.resets().await, 1);
    world.assert_nothing_leaked(&credentials_of(&world.current().await)).await;
}

#[tokio::test]
async fn merge_defaults_keeps_the_default_keys_beside_the_templates() {
    let world = World::new("templates-merge").await;
    let mut spec = world.spec();
    spec.secret_template = Some(Box::new(template(&[("DATABASE_URL", URL)], true)));
    world.create("cache", spec).await;
    world.wait_applied("cache", 0).await;
    let mut expected: Vec<String> = secret::KEYS.iter().map(|k| (*k).to_owned()).collect();
    expected.push("DATABASE_URL".into());
    expected.sort();
    assert_eq!(keys(&world, "cache").await, expected);
}

#[tokio::test]
async fn an_invalid_template_stops_before_the_reset_and_a_fixed_one_rotates() {
    let world = World::new("templates-bad").await;
    world.create("cache", world.spec()).await;
    world.wait_applied("cache", 0).await;
    let patch =
        json!({"spec": {"rotation": 1, "secretTemplate": {"data": {"URL": "redis://{{ pasword }}"}}}});
    world.resources().patch("cache", &PatchParams::default(), &Patch::Merge(&patch)).await.expect("patch");
    let stopped = world.wait_for("cache", Reason::InvalidTemplate.as_str(), |_| true).await;
    let message = conditions::get(&stopped.status.clone().unwrap_or_default().conditions, READY)
        .map(|c| c.message.clone())
        .unwrap_or_default();
    assert!(message.contains("secretTemplate.data[URL]") && message.contains("undefined"), "{message}");
    assert_eq!(world.resets().await, 0, "no reset with keys that cannot be rendered");
    world.assert_nothing_leaked(&credentials_of(&world.current().await)).await;

    let fixed = json!({"spec": {"secretTemplate": {"data": {"URL": "redis://{{ password }}"}}}});
    world.resources().patch("cache", &PatchParams::default(), &Patch::Merge(&fixed)).await.expect("fix");
    world.wait_applied("cache", 1).await;
    assert_eq!(world.resets().await, 1);
    let password = world.current().await["password"].as_str().expect("password").to_owned();
    assert_eq!(world.secret_text("cache", "URL").await, format!("redis://{password}"));
}

#[tokio::test]
async fn a_key_that_is_no_secret_key_is_refused_at_admission() {
    let world = World::prepare("templates-keys").await;
    let mut spec = world.spec();
    spec.secret_template = Some(Box::new(template(&[("not a key", "{{ password }}")], false)));
    let refused =
        world.resources().create(&Default::default(), &RedisPasswordRotation::new("cache", spec)).await;
    let error = refused.expect_err("refused").to_string();
    assert!(error.contains("keys must be valid Secret keys"), "{error}");
}
