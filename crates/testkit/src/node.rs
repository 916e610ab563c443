//! The local node (`make cluster-up NODE=1`, as `make test` starts it): the
//! images built for it, pods, `kubectl exec`, and the operator installed by
//! its chart as a Deployment.

use std::{process::Output, time::Duration};

use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use kube::{Api, Client, api::ListParams};

use crate::{
    WAIT, eventually,
    tools::{CHART, helm, kubectl, text},
};

/// This machine's address on the pod network (`TESTENV_HOST_IP`): servers a
/// test starts for pods to reach listen here.
pub fn host_ip() -> String {
    std::env::var("TESTENV_HOST_IP").unwrap_or_else(|_| {
        panic!(
            "TESTENV_HOST_IP is not set: these tests need the local node; run them through `make test`, \
             or `make cluster-up NODE=1` and export what it prints"
        )
    })
}

/// An image the node holds, by its name in the node's images.env
/// (hack/image/test-images.sh prints `NAME=reference` lines).
pub fn image(name: &str) -> String {
    let path = crate::repo_path("target/testenv/node/images.env");
    let listing = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; is the node running (make cluster-up NODE=1)?", path.display()));
    listing
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix('=')))
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("no image {name} in {}:\n{listing}", path.display()))
}

/// The operator image built from the Dockerfile, split into repository and
/// tag: `UPSTASH_ROTATOR_IMAGE` (what `make image` prints), or the file
/// `UPSTASH_ROTATOR_IMAGE_FILE` names, which `make test` writes when its
/// background build ends (see `wait_operator_image`).
pub fn operator_image() -> (String, String) {
    let image = match (std::env::var("UPSTASH_ROTATOR_IMAGE"), std::env::var("UPSTASH_ROTATOR_IMAGE_FILE")) {
        (Ok(image), _) => image,
        (_, Ok(file)) => std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("{file}: {e}; call node::wait_operator_image first"))
            .trim()
            .to_owned(),
        _ => panic!(
            "neither UPSTASH_ROTATOR_IMAGE nor UPSTASH_ROTATOR_IMAGE_FILE is set: run `make image` and export \
             IMAGE=… as UPSTASH_ROTATOR_IMAGE"
        ),
    };
    let (repository, tag) =
        image.rsplit_once(':').unwrap_or_else(|| panic!("{image:?} is not repository:tag"));
    (repository.to_owned(), tag.to_owned())
}

/// How long a test waits for `make test`'s background image build: a cold
/// build on 2 cores, sharing them with cargo, takes up to about 10 minutes.
const IMAGE_BUILD_WAIT: Duration = Duration::from_secs(25 * 60);

/// Waits until the operator image is built: at once with
/// `UPSTASH_ROTATOR_IMAGE`; otherwise until `make test`'s background build
/// writes the file `UPSTASH_ROTATOR_IMAGE_FILE` names (`FAILED` when it
/// failed, with its log next to it).
pub async fn wait_operator_image() {
    let Ok(file) = std::env::var("UPSTASH_ROTATOR_IMAGE_FILE") else { return };
    if std::env::var_os("UPSTASH_ROTATOR_IMAGE").is_some() {
        return;
    }
    let content = eventually(IMAGE_BUILD_WAIT, "the operator image build", || {
        let file = file.clone();
        async move { std::fs::read_to_string(&file).ok() }
    })
    .await;
    assert_ne!(content.trim(), "FAILED", "the operator image build failed; its log: {file}.log");
}

/// The operator image as one reference, `repository:tag`.
pub fn operator_image_ref() -> String {
    let (repository, tag) = operator_image();
    format!("{repository}:{tag}")
}

/// An image derived from `base` whose own trust store also holds the CA in
/// `ca_pem` (hack/image/with-ca.sh), imported into the node.
pub fn image_with_ca(base: &str, ca_pem: &std::path::Path) -> String {
    let script = crate::repo_path("hack/image/with-ca.sh");
    let out = std::process::Command::new(&script)
        .arg(base)
        .arg(ca_pem)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", script.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let image = stdout.lines().last().and_then(|l| l.strip_prefix("IMAGE="));
    match image {
        Some(image) if out.status.success() => image.to_owned(),
        _ => panic!("{} failed: {}", script.display(), text(&out)),
    }
}

/// Waits until the namespace's `default` ServiceAccount exists: pods created
/// before it are refused by the ServiceAccount admission plugin.
pub async fn wait_default_service_account(client: &Client, namespace: &str) {
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    eventually(WAIT, "the default ServiceAccount", || {
        let accounts = accounts.clone();
        async move { accounts.get_opt("default").await.ok().flatten() }
    })
    .await;
}

/// Applies a manifest with kubectl; fails the test with kubectl's output.
pub fn apply(namespace: &str, manifest: &str) {
    let out = kubectl(&["apply", "-n", namespace, "-f", "-"], Some(manifest));
    assert!(out.status.success(), "kubectl apply: {}", text(&out));
}

/// Waits until a pod is Ready and returns it.
pub async fn wait_ready(client: &Client, namespace: &str, name: &str) -> Pod {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let pod = pods.get_opt(name).await.ok().flatten();
        if let Some(pod) = &pod
            && is_ready(pod)
        {
            return pod.clone();
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("pod {namespace}/{name} not Ready within {WAIT:?}; {}", describe(namespace, name));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The Ready pods matching a label selector.
pub async fn ready_pods(client: &Client, namespace: &str, selector: &str) -> Vec<Pod> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let list = pods.list(&ListParams::default().labels(selector)).await.expect("list pods");
    list.items.into_iter().filter(|p| is_ready(p) && p.metadata.deletion_timestamp.is_none()).collect()
}

pub fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// `kubectl describe` of a pod and its last log lines, for failure messages.
pub fn describe(namespace: &str, name: &str) -> String {
    let described = kubectl(&["describe", "pod", "-n", namespace, name], None);
    let logs = kubectl(&["logs", "-n", namespace, name, "--all-containers", "--tail=30"], None);
    format!("kubectl describe:\n{}\nlogs:\n{}", text(&described), text(&logs))
}

/// Runs a command in a pod's first container.
pub fn exec(namespace: &str, pod: &str, command: &[&str]) -> Output {
    let mut args = vec!["exec", "-n", namespace, pod, "--"];
    args.extend_from_slice(command);
    kubectl(&args, None)
}

/// The standard output of a command in a pod, which must succeed.
pub fn exec_ok(namespace: &str, pod: &str, command: &[&str]) -> String {
    let out = exec(namespace, pod, command);
    assert!(out.status.success(), "exec {command:?} in {namespace}/{pod}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The operator installed by its chart, from the image built by the
/// Dockerfile, watching only its own namespace (tests run side by side).
pub struct Release {
    pub name: String,
    pub namespace: String,
}

impl Release {
    /// `helm install --wait` with the test image and extra `--set`/`--set-file`
    /// arguments (as pairs: flag, value).
    pub fn install(namespace: &str, api_url: &str, extra: &[(&str, &str)]) -> Self {
        let name = format!("r{}", &namespace[namespace.len() - 8..]);
        let release = Self { name, namespace: namespace.to_owned() };
        release.helm("install", &operator_image(), api_url, extra);
        release
    }

    /// `helm upgrade --wait` with the same base values and new extra ones.
    pub fn upgrade(&self, api_url: &str, extra: &[(&str, &str)]) {
        self.helm("upgrade", &operator_image(), api_url, extra);
    }

    /// `helm upgrade --wait` to another image (`repository:tag`).
    pub fn upgrade_to_image(&self, image: &str, api_url: &str, extra: &[(&str, &str)]) {
        let (repository, tag) = image.rsplit_once(':').expect("image is repository:tag");
        self.helm("upgrade", &(repository.to_owned(), tag.to_owned()), api_url, extra);
    }

    fn helm(&self, verb: &str, (repository, tag): &(String, String), api_url: &str, extra: &[(&str, &str)]) {
        let sets = [
            format!("image.repository={repository}"),
            "image.pullPolicy=Never".to_owned(),
            "crds.install=false".to_owned(),
            format!("watchNamespaces={{{}}}", self.namespace),
            format!("upstashApiUrl={api_url}"),
            "logFormat=text".to_owned(),
            r"logLevel=info\,upstash_rotator=debug".to_owned(),
        ];
        // The tag is `git describe`'s: a short hash may be all digits, which
        // `--set` would pass as a number.
        let tag = format!("image.tag={tag}");
        let mut args = vec![verb, &self.name, CHART, "-n", &self.namespace, "--wait", "--timeout", "120s"];
        args.extend(["--set-string", &tag]);
        for set in &sets {
            args.extend(["--set", set]);
        }
        for (flag, value) in extra {
            args.extend([*flag, *value]);
        }
        let out = helm(&args);
        assert!(
            out.status.success(),
            "helm {verb}: {}\n{}",
            text(&out),
            text(&kubectl(&["get", "pods,events", "-n", &self.namespace], None))
        );
    }

    /// The Deployment's and the pods' name prefix.
    pub fn fullname(&self) -> String {
        format!("{}-upstash-rotator", self.name)
    }

    pub fn selector(&self) -> String {
        format!("app.kubernetes.io/instance={}", self.name)
    }

    /// The operator's log lines (all containers of all its pods).
    pub fn logs(&self) -> String {
        let selector = self.selector();
        text(&kubectl(&["logs", "-n", &self.namespace, "-l", &selector, "--tail=-1", "--prefix"], None))
    }
}
