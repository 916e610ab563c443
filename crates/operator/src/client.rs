//! The operator's Kubernetes client, counting its own requests by verb,
//! resource and status code (`upstash_rotator_kubernetes_requests_total`):
//! what the operator costs the apiserver, told apart from every other
//! client, as controller-runtime's `rest_client_requests_total` does for Go
//! operators. Labels come from the request's method and path kinds only,
//! never from object names or the query.

use std::{
    sync::Arc,
    task::{Context, Poll},
};

use futures::future::BoxFuture;
use http::{Method, Request, Response, Uri};
use tower::{Layer, Service};

use crate::metrics::Metrics;

/// The kubeconfig's (or the pod's) client, its requests counted in `metrics`.
pub async fn counted(metrics: Arc<Metrics>) -> kube::Result<kube::Client> {
    let config = config(OPERATOR_AGENT).await?;
    Ok(kube::client::ClientBuilder::try_from(config)?.with_layer(&CountRequests { metrics }).build())
}

/// The operator's `User-Agent`. The apiserver names a write's field manager
/// after it when the request names none, and shows it in audit logs.
pub const OPERATOR_AGENT: &str = concat!("upstash-rotator/", env!("CARGO_PKG_VERSION"));
/// The one-shot commands' (`rotate`, `status`): a user's change of
/// `spec.rotation` is not the operator's.
pub const CLI_AGENT: &str = concat!("upstash-rotator-cli/", env!("CARGO_PKG_VERSION"));

/// The kubeconfig's (or the pod's) configuration, its requests sent as
/// `agent`: kube-client sends no `User-Agent` of its own, and without one the
/// apiserver records writes as made by the manager "unknown".
pub async fn config(agent: &'static str) -> kube::Result<kube::Config> {
    let mut config = kube::Config::infer().await.map_err(kube::Error::InferConfig)?;
    config.headers.push((http::header::USER_AGENT, http::HeaderValue::from_static(agent)));
    Ok(config)
}

/// Wraps a client's service in `Counted`.
#[derive(Clone)]
pub struct CountRequests {
    pub metrics: Arc<Metrics>,
}

impl<S> Layer<S> for CountRequests {
    type Service = Counted<S>;

    fn layer(&self, inner: S) -> Counted<S> {
        Counted { inner, metrics: self.metrics.clone() }
    }
}

/// Counts each request once its answer's status is known (a watch when its
/// stream starts), or as `error` when none came.
#[derive(Clone)]
pub struct Counted<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S, B, RB> Service<Request<B>> for Counted<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let (verb, resource) = classify(request.method(), request.uri());
        let metrics = self.metrics.clone();
        let answer = self.inner.call(request);
        Box::pin(async move {
            let answer = answer.await;
            let code = answer.as_ref().ok().map(|response| response.status().as_u16());
            metrics.kubernetes_request(verb, resource, code);
            answer
        })
    }
}

/// The apiserver's verb and resource (with its subresource, as
/// `secrets` or `redispasswordrotations/status`) of a request.
fn classify(method: &Method, uri: &Uri) -> (&'static str, String) {
    let segments: Vec<&str> = uri.path().split('/').filter(|s| !s.is_empty()).collect();
    // After `/api/v1` or `/apis/<group>/<version>`.
    let rest = match segments.first() {
        Some(&"api") => segments.get(2..),
        Some(&"apis") => segments.get(3..),
        _ => None,
    };
    let (kind, named) = match rest.unwrap_or_default() {
        ["namespaces", _, kind, named @ ..] => (*kind, named),
        [kind, named @ ..] => (*kind, named),
        [] => return (if method == Method::GET { "get" } else { "other" }, "discovery".to_owned()),
    };
    let resource = match named.get(1) {
        Some(subresource) => format!("{kind}/{subresource}"),
        None => kind.to_owned(),
    };
    let verb = match *method {
        Method::GET if !named.is_empty() => "get",
        Method::GET if watching(uri) => "watch",
        Method::GET => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if named.is_empty() => "deletecollection",
        Method::DELETE => "delete",
        _ => "other",
    };
    (verb, resource)
}

fn watching(uri: &Uri) -> bool {
    uri.query().is_some_and(|q| q.split('&').any(|pair| pair == "watch=true" || pair == "watch=1"))
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use super::*;

    fn classified(method: Method, uri: &str) -> (&'static str, String) {
        classify(&method, &uri.parse().unwrap())
    }

    #[test]
    fn requests_are_named_by_verb_and_resource_never_by_object() {
        let cases = [
            (Method::GET, "/api/v1/namespaces/app/secrets/cache", "get", "secrets"),
            (Method::GET, "/api/v1/namespaces/app/secrets?resourceVersion=5", "list", "secrets"),
            (Method::GET, "/api/v1/secrets?watch=true&labelSelector=a%3Db", "watch", "secrets"),
            (Method::GET, "/api/v1/namespaces/app", "get", "namespaces"),
            (Method::PATCH, "/api/v1/namespaces/app/secrets/cache?dryRun=All", "patch", "secrets"),
            (
                Method::PATCH,
                "/apis/upstash-rotator.io/v1alpha1/namespaces/app/redispasswordrotations/cache/status",
                "patch",
                "redispasswordrotations/status",
            ),
            (
                Method::GET,
                "/apis/upstash-rotator.io/v1alpha1/clusterupstashaccounts/shared",
                "get",
                "clusterupstashaccounts",
            ),
            (Method::POST, "/apis/events.k8s.io/v1/namespaces/app/events", "create", "events"),
            (
                Method::PUT,
                "/apis/coordination.k8s.io/v1/namespaces/ops/leases/upstash-rotator",
                "update",
                "leases",
            ),
            (Method::DELETE, "/api/v1/namespaces/app/secrets/cache", "delete", "secrets"),
            (Method::GET, "/apis/upstash-rotator.io/v1alpha1", "get", "discovery"),
            (Method::GET, "/version", "get", "discovery"),
        ];
        for (method, uri, verb, resource) in cases {
            assert_eq!(classified(method, uri), (verb, resource.to_owned()), "{uri}");
        }
    }

    #[tokio::test]
    async fn each_request_is_counted_with_its_answer_or_as_an_error() {
        use tower::ServiceExt as _;

        let metrics = Arc::new(Metrics::default());
        let answering = tower::service_fn(|request: Request<()>| async move {
            let status = if request.uri().path().ends_with("/gone") { 404 } else { 200 };
            Ok::<_, Infallible>(Response::builder().status(status).body(()).unwrap())
        });
        let mut counted = CountRequests { metrics: metrics.clone() }.layer(answering);
        for path in ["/api/v1/namespaces/a/secrets/x", "/api/v1/namespaces/a/secrets/gone"] {
            let request = Request::get(path).body(()).unwrap();
            counted.ready().await.unwrap().call(request).await.unwrap();
        }
        let failing =
            tower::service_fn(|_: Request<()>| async { Err::<Response<()>, _>("connection refused") });
        let mut failing = CountRequests { metrics: metrics.clone() }.layer(failing);
        let request = Request::patch("/api/v1/namespaces/a/secrets/x").body(()).unwrap();
        assert!(failing.call(request).await.is_err());

        let text = metrics.render().unwrap();
        for series in [
            r#"upstash_rotator_kubernetes_requests_total{verb="get",resource="secrets",code="200"} 1"#,
            r#"upstash_rotator_kubernetes_requests_total{verb="get",resource="secrets",code="404"} 1"#,
            r#"upstash_rotator_kubernetes_requests_total{verb="patch",resource="secrets",code="error"} 1"#,
        ] {
            assert!(text.contains(series), "{series} in\n{text}");
        }
        assert!(!text.contains("gone"), "no object name in a label:\n{text}");
    }
}
