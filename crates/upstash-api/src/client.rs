//! reqwest implementation of the two calls the operator makes.

use std::{fmt, sync::Arc, time::Duration};

use reqwest::header::{ACCEPT, RETRY_AFTER};

use super::{database::RedisDatabase, error::UpstashError};

/// Email and API key for HTTP Basic auth. `Debug` never shows the key.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiCredentials {
    pub email: String,
    pub api_key: String,
}

impl fmt::Debug for ApiCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiCredentials").field("email", &self.email).finish_non_exhaustive()
    }
}

/// Told of every request: its route and HTTP status (`None`: no answer).
pub type Observer = Arc<dyn Fn(&'static str, Option<u16>) + Send + Sync>;

/// A Developer API client bound to one base URL (Upstash's, or a simulator's).
#[derive(Clone)]
pub struct UpstashClient {
    http: reqwest::Client,
    base_url: String,
    observer: Option<Observer>,
}

impl UpstashClient {
    /// `timeout` bounds each whole request; connecting gets at most 10 s of it.
    /// Server certificates are checked against the system's CA store.
    pub fn new(base_url: &str, timeout: Duration) -> Result<Self, reqwest::Error> {
        Self::trusting(base_url, timeout, Vec::new())
    }

    /// Like `new`, also trusting `extra_roots` (a private CA) besides the
    /// system's CA store (`/etc/ssl/certs`, or `SSL_CERT_FILE` / `SSL_CERT_DIR`
    /// when set, read by rustls-platform-verifier through rustls-native-certs).
    pub fn trusting(
        base_url: &str,
        timeout: Duration,
        extra_roots: Vec<reqwest::Certificate>,
    ) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .tls_certs_merge(extra_roots)
            .user_agent(concat!("upstash-rotator/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .timeout(timeout)
            // A redirect would resend the API key to wherever it points, and
            // a redirected reset could be sent twice.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self { http, base_url: base_url.trim_end_matches('/').to_owned(), observer: None })
    }

    /// Reports every request to `observer` (for metrics).
    pub fn with_observer(mut self, observer: Observer) -> Self {
        self.observer = Some(observer);
        self
    }

    /// `GET /v2/redis/database/{id}`, with credentials unless protected.
    pub async fn get_database(&self, auth: &ApiCredentials, id: &str) -> Result<RedisDatabase, UpstashError> {
        self.call("get", reqwest::Method::GET, &format!("/v2/redis/database/{}", path_segment(id)), auth)
            .await
    }

    /// `POST /v2/redis/reset-password/{id}`. Not idempotent: never retried here.
    pub async fn reset_password(
        &self,
        auth: &ApiCredentials,
        id: &str,
    ) -> Result<RedisDatabase, UpstashError> {
        let path = format!("/v2/redis/reset-password/{}", path_segment(id));
        self.call("reset-password", reqwest::Method::POST, &path, auth).await
    }

    /// `GET /v2/redis/databases`: how many databases the key can see. The
    /// cheapest authenticated call, used to check an account's key; the
    /// answer (which may hold every database's credentials) is counted and
    /// dropped, never kept.
    pub async fn list_databases(&self, auth: &ApiCredentials) -> Result<usize, UpstashError> {
        let body = self.send("list", reqwest::Method::GET, "/v2/redis/databases", auth).await?;
        serde_json::from_slice::<Vec<serde::de::IgnoredAny>>(&body)
            .map(|all| all.len())
            .map_err(|_| UpstashError::InvalidResponse("the list of databases is not a JSON array".into()))
    }

    /// `POST {rest_url}` with the command `["PING"]` and `token` as the
    /// bearer: whether the REST data plane answers PONG to this token, as an
    /// application's client would see it. Never logged with the token.
    pub async fn ping(&self, rest_url: &str, token: &str) -> Result<Ping, UpstashError> {
        let response = self
            .http
            .post(rest_url.trim_end_matches('/'))
            .bearer_auth(token)
            .header(ACCEPT, "application/json")
            .json(&["PING"])
            .send()
            .await
            .map_err(|e| self.observed("ping", None, transport(e)))?;
        let status = response.status();
        if let Some(observe) = &self.observer {
            observe("ping", Some(status.as_u16()));
        }
        let body = response.bytes().await.map_err(transport)?;
        match status.as_u16() {
            401 | 403 => Ok(Ping::Refused),
            200 if serde_json::from_slice::<PingAnswer>(&body).is_ok_and(|a| a.result == "PONG") => {
                Ok(Ping::Pong)
            }
            200 => Err(UpstashError::InvalidResponse("the data plane did not answer PONG".into())),
            _ => Err(UpstashError::from_response(status, None, &body)),
        }
    }

    async fn call(
        &self,
        route: &'static str,
        method: reqwest::Method,
        path: &str,
        auth: &ApiCredentials,
    ) -> Result<RedisDatabase, UpstashError> {
        let body = self.send(route, method, path, auth).await?;
        let mut database =
            RedisDatabase::parse(&body).map_err(|e| UpstashError::InvalidResponse(e.to_string()))?;
        // A REST URL is taken only when it is where this API answers (the
        // simulator serves both on one listener): a response can never send
        // applications' tokens to another host, port or scheme.
        if database.rest_url.as_deref().is_some_and(|u| !same_origin(u, &self.base_url)) {
            database.rest_url = None;
        }
        Ok(database)
    }

    /// One authenticated request; the body of a success.
    async fn send(
        &self,
        route: &'static str,
        method: reqwest::Method,
        path: &str,
        auth: &ApiCredentials,
    ) -> Result<Vec<u8>, UpstashError> {
        let response = self
            .http
            .request(method, format!("{}{path}", self.base_url))
            .basic_auth(&auth.email, Some(&auth.api_key))
            .header(ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| self.observed(route, None, transport(e)))?;
        let status = response.status();
        if let Some(observe) = &self.observer {
            observe(route, Some(status.as_u16()));
        }
        let retry_after =
            response.headers().get(RETRY_AFTER).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let body = response.bytes().await.map_err(transport)?;
        if !status.is_success() {
            return Err(UpstashError::from_response(status, retry_after.as_deref(), &body));
        }
        Ok(Vec::from(body))
    }

    fn observed(&self, route: &'static str, status: Option<u16>, error: UpstashError) -> UpstashError {
        if let Some(observe) = &self.observer {
            observe(route, status);
        }
        error
    }
}

/// How the REST data plane treated a token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ping {
    /// It answered PONG: the token works.
    Pong,
    /// 401 or 403: the token is refused.
    Refused,
}

#[derive(serde::Deserialize)]
struct PingAnswer {
    result: String,
}

/// Whether two URLs share scheme, host and port (default ports included).
fn same_origin(a: &str, b: &str) -> bool {
    match (reqwest::Url::parse(a), reqwest::Url::parse(b)) {
        (Ok(a), Ok(b)) => a.origin() == b.origin() && a.origin().is_tuple(),
        _ => false,
    }
}

/// Database ids are UUIDs; anything else is percent-encoded so it cannot
/// reach another path.
fn path_segment(id: &str) -> String {
    percent_encoding::utf8_percent_encode(id, crate::UNRESERVED).to_string()
}

fn transport(e: reqwest::Error) -> UpstashError {
    if let Some(problem) = crate::tls::refused_certificate(&e) {
        return UpstashError::UntrustedCertificate(problem);
    }
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else if e.is_body() || e.is_decode() {
        "connection lost while reading the answer"
    } else {
        "request failed"
    };
    // reqwest's text names the URL (no secrets in it) and the io error.
    UpstashError::Transport(format!("{kind}: {}", e.without_url()))
}

#[cfg(test)]
mod tests {
    use super::same_origin;

    #[test]
    fn a_rest_url_must_be_where_the_api_answers() {
        assert!(same_origin("https://10.0.0.1:8443", "https://10.0.0.1:8443/"));
        assert!(same_origin("https://api.upstash.com", "https://api.upstash.com:443"));
        for other in ["http://10.0.0.1:8443", "https://10.0.0.1:9443", "https://10.0.0.2:8443", "not a url"] {
            assert!(!same_origin(other, "https://10.0.0.1:8443"), "{other}");
        }
    }
}
