//! Workloads that stand for an application's consumers of a Secret, made to
//! run no pod (no replicas, or a node selector no node matches), so tests of
//! `spec.rolloutRestart` need no node and no image.

use kube::{
    Api, Client,
    api::{ApiResource, DynamicObject, GroupVersionKind, PostParams},
};
use serde_json::{Value, json};
use upstash_rotator::{crd::WorkloadKind, reconcile::consumers::RESTARTED_AT_ANNOTATION};

/// Creates an idle workload of `kind` called `name`.
pub async fn create_idle(client: &Client, namespace: &str, kind: WorkloadKind, name: &str) {
    let labels = json!({"app": name});
    let template = json!({
        "metadata": {"labels": labels},
        "spec": {
            "nodeSelector": {"upstash-rotator.io/no-such-node": "true"},
            "containers": [{"name": "app", "image": "localhost/never-pulled:0", "imagePullPolicy": "Never"}]
        }
    });
    let mut spec = json!({"selector": {"matchLabels": labels}, "template": template});
    if kind != WorkloadKind::DaemonSet {
        spec["replicas"] = json!(0);
    }
    if kind == WorkloadKind::StatefulSet {
        spec["serviceName"] = json!(name);
    }
    let object =
        json!({"apiVersion": "apps/v1", "kind": kind.as_str(), "metadata": {"name": name}, "spec": spec});
    let object: DynamicObject = serde_json::from_value(object).expect("a valid workload");
    workloads(client, namespace, kind)
        .create(&PostParams::default(), &object)
        .await
        .unwrap_or_else(|e| panic!("create {} {name}: {e}", kind.as_str()));
}

/// The restart annotation on the pod template, and the workload's generation.
pub async fn restart_state(
    client: &Client,
    namespace: &str,
    kind: WorkloadKind,
    name: &str,
) -> (Option<String>, i64) {
    let object = workloads(client, namespace, kind)
        .get(name)
        .await
        .unwrap_or_else(|e| panic!("read {} {name}: {e}", kind.as_str()));
    let path = format!("/spec/template/metadata/annotations/{}", RESTARTED_AT_ANNOTATION.replace('/', "~1"));
    let annotation = object.data.pointer(&path).and_then(Value::as_str).map(str::to_owned);
    (annotation, object.metadata.generation.unwrap_or_default())
}

fn workloads(client: &Client, namespace: &str, kind: WorkloadKind) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk("apps", "v1", kind.as_str()));
    Api::namespaced_with(client.clone(), namespace, &resource)
}
