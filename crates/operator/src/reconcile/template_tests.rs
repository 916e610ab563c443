//! `spec.secretTemplate.data` against the recording fake: an invalid
//! template stops before any call to Upstash, and a Secret of templated keys
//! only still tells the safety checks which credentials it holds.

use super::{
    fake::{Call, Fake},
    tests::{SECRET, done, process, raise_counter, reconcile_now, resource, status, take_calls, world},
};
use crate::{
    conditions::{READY, Reason, get, reason_of},
    crd::SecretTemplate,
    secret,
};

fn with_templates(fake: &Fake, data: &[(&str, &str)]) {
    let mut r = fake.world().resource.clone().unwrap_or_else(resource);
    r.spec.secret_template = Some(Box::new(SecretTemplate {
        data: data.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        ..Default::default()
    }));
    fake.put_resource(r);
}

#[tokio::test]
async fn an_invalid_template_stops_before_any_call_to_upstash() {
    let fake = world();
    let ctx = process(&fake);
    reconcile_now(&fake, &ctx).await.expect("first sync");
    with_templates(&fake, &[("URL", "redis://{{ pasword }}@{{ endpoint }}")]);
    raise_counter(&fake, 1);
    take_calls(&fake);
    reconcile_now(&fake, &ctx).await.expect_err("invalid template");
    let calls = take_calls(&fake);
    assert!(
        !calls.iter().any(|c| matches!(c, Call::Reset | Call::GetDatabase | Call::ApplySecret)),
        "{calls:?}"
    );
    assert_eq!(fake.world().resets, 0);
    let conditions = status(&fake).conditions;
    assert_eq!(reason_of(&conditions, READY), Some(Reason::InvalidTemplate));
    let message = get(&conditions, READY).map(|c| c.message.clone()).unwrap_or_default();
    assert!(message.contains("secretTemplate.data[URL]") && !message.contains("password-0"), "{message}");
}

#[tokio::test]
async fn templated_keys_replace_the_defaults_and_rotations_stay_safe() {
    let fake = world();
    with_templates(&fake, &[("DATABASE_URL", "redis://default:{{ password }}@{{ endpoint }}:{{ port }}")]);
    let ctx = process(&fake);
    reconcile_now(&fake, &ctx).await.expect("first sync");
    let written = fake.world().secrets[SECRET].clone();
    let keys: Vec<_> = written.data.clone().unwrap_or_default().into_keys().collect();
    assert_eq!(keys, ["DATABASE_URL"]);
    assert_eq!(secret::secret_fingerprint(&written), status(&fake).credentials_fingerprint);
    assert_eq!(done(&fake, 0), Ok(()));

    raise_counter(&fake, 1);
    reconcile_now(&fake, &ctx).await.expect("rotated");
    assert_eq!((done(&fake, 1), fake.world().resets), (Ok(()), 1));
    let url = fake.world().secrets[SECRET].data.clone().unwrap_or_default()["DATABASE_URL"].0.clone();
    assert_eq!(String::from_utf8_lossy(&url), "redis://default:password-1@db.example:6379");

    // A hand edit voids the recorded fingerprint, and the data comes back.
    let mut edited = fake.world().secrets[SECRET].clone();
    edited.data.get_or_insert_default().insert("DATABASE_URL".into(), k8s_openapi::ByteString(b"x".to_vec()));
    assert_eq!(secret::secret_fingerprint(&edited), None);
    fake.put_secret(edited);
    take_calls(&fake);
    reconcile_now(&fake, &process(&fake)).await.expect("restored");
    assert!(take_calls(&fake).contains(&Call::Publish("DriftCorrected")));
    assert_eq!((done(&fake, 1), fake.world().resets), (Ok(()), 1));
}
