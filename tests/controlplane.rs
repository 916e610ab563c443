//! Proof that the test control plane is a real one: CEL validation, server-side
//! apply conflicts, RBAC for ServiceAccount tokens and garbage collection all
//! behave as in a production cluster.

use testkit as support;

use std::collections::BTreeMap;

use k8s_openapi::api::{
    core::v1::{ConfigMap, Secret},
    rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject},
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{
    Api, Resource,
    api::{DeleteParams, DynamicObject, ListParams, ObjectMeta, Patch, PatchParams, PostParams},
    core::{ApiResource, GroupVersionKind},
};
use serde_json::json;
use support::{TestNamespace, WAIT, admin_client, eventually, install_crds, service_account_client};

fn gadget_crd() -> CustomResourceDefinition {
    serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.testenv.upstash-rotator.io"},
        "spec": {
            "group": "testenv.upstash-rotator.io",
            "names": {"kind": "Gadget", "plural": "gadgets", "singular": "gadget"},
            "scope": "Namespaced",
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {"spec": {
                        "type": "object",
                        "properties": {"min": {"type": "integer"}, "max": {"type": "integer"}},
                        "x-kubernetes-validations": [
                            {"rule": "self.min <= self.max", "message": "min must not exceed max"}
                        ]
                    }}
                }}
            }]
        }
    }))
    .expect("valid CRD")
}

#[tokio::test]
async fn apiserver_enforces_cel_validation_rules() {
    let client = admin_client().await;
    install_crds(&client, &[gadget_crd()]).await;
    let ns = TestNamespace::new(&client, "cel").await;
    let gvk = GroupVersionKind::gvk("testenv.upstash-rotator.io", "v1", "Gadget");
    let api = Api::<DynamicObject>::namespaced_with(client, &ns.name, &ApiResource::from_gvk(&gvk));

    let object = |name: &str, min: i64, max: i64| -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "testenv.upstash-rotator.io/v1", "kind": "Gadget",
            "metadata": {"name": name}, "spec": {"min": min, "max": max}
        }))
        .expect("valid object")
    };
    api.create(&PostParams::default(), &object("fine", 1, 2)).await.expect("a valid object is accepted");

    let err =
        api.create(&PostParams::default(), &object("broken", 3, 2)).await.expect_err("rule must reject");
    match err {
        kube::Error::Api(status) => {
            assert_eq!(status.code, 422, "{status:?}");
            assert!(
                status.message.contains("min must not exceed max"),
                "apiserver message: {}",
                status.message
            );
        }
        other => panic!("expected an API rejection, got {other}"),
    }
}

#[tokio::test]
async fn server_side_apply_reports_field_manager_conflicts() {
    let client = admin_client().await;
    let ns = TestNamespace::new(&client, "ssa").await;
    let api = Api::<ConfigMap>::namespaced(client, &ns.name);
    let cm = |value: &str| ConfigMap {
        metadata: ObjectMeta { name: Some("shared".into()), ..Default::default() },
        data: Some(BTreeMap::from([("owner".into(), value.into())])),
        ..Default::default()
    };

    api.patch("shared", &PatchParams::apply("manager-a"), &Patch::Apply(cm("a"))).await.expect("first apply");
    let err = api
        .patch("shared", &PatchParams::apply("manager-b"), &Patch::Apply(cm("b")))
        .await
        .expect_err("a second manager changing the same field must conflict");
    match err {
        kube::Error::Api(status) => {
            assert_eq!(status.code, 409, "{status:?}");
            assert!(status.message.contains("manager-a"), "conflict names the owner: {}", status.message);
        }
        other => panic!("expected a conflict, got {other}"),
    }
    // Forcing takes the field over, as a controller that owns it would.
    api.patch("shared", &PatchParams::apply("manager-b").force(), &Patch::Apply(cm("b")))
        .await
        .expect("force");
    let now = api.get("shared").await.expect("read back");
    assert_eq!(now.data.and_then(|d| d.get("owner").cloned()).as_deref(), Some("b"));
}

#[tokio::test]
async fn service_account_token_gets_exactly_its_role() {
    let admin = admin_client().await;
    let ns = TestNamespace::new(&admin, "rbac").await;
    let role = Role {
        metadata: ObjectMeta { name: Some("configmap-reader".into()), ..Default::default() },
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec!["".into()]),
            resources: Some(vec!["configmaps".into()]),
            verbs: vec!["get".into(), "list".into()],
            ..Default::default()
        }]),
    };
    Api::<Role>::namespaced(admin.clone(), &ns.name)
        .create(&PostParams::default(), &role)
        .await
        .expect("role");
    let binding = RoleBinding {
        metadata: ObjectMeta { name: Some("reader".into()), ..Default::default() },
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "Role".into(),
            name: "configmap-reader".into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: "reader".into(),
            namespace: Some(ns.name.clone()),
            ..Default::default()
        }]),
    };
    Api::<RoleBinding>::namespaced(admin.clone(), &ns.name)
        .create(&PostParams::default(), &binding)
        .await
        .expect("role binding");

    let reader = service_account_client(&admin, &ns.name, "reader").await;
    Api::<ConfigMap>::namespaced(reader.clone(), &ns.name)
        .list(&ListParams::default())
        .await
        .expect("the role grants listing ConfigMaps");
    match Api::<Secret>::namespaced(reader, &ns.name).list(&ListParams::default()).await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 403, "{status:?}"),
        other => panic!("listing Secrets must be forbidden, got {other:?}"),
    }
}

#[tokio::test]
async fn owned_objects_are_garbage_collected_with_their_owner() {
    let client = admin_client().await;
    let ns = TestNamespace::new(&client, "gc").await;
    let api = Api::<ConfigMap>::namespaced(client, &ns.name);
    let named = |name: &str| ConfigMap {
        metadata: ObjectMeta { name: Some(name.into()), ..Default::default() },
        ..Default::default()
    };

    let owner = api.create(&PostParams::default(), &named("owner")).await.expect("owner");
    let mut dependent = named("dependent");
    dependent.metadata.owner_references = Some(vec![owner.controller_owner_ref(&()).expect("owner has uid")]);
    api.create(&PostParams::default(), &dependent).await.expect("dependent");

    api.delete("owner", &DeleteParams::background()).await.expect("delete owner");
    eventually(WAIT, "the garbage collector to delete the dependent", || {
        let api = api.clone();
        async move { api.get_opt("dependent").await.expect("get dependent").is_none().then_some(()) }
    })
    .await;
}
