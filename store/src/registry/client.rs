//! The registry client's transport: the owned tokio runtime, URLs, one authenticated request
//! with retries, and error reporting. `pull.rs` and `push.rs` build the
//! distribution API on [`RegistryClient::send`].
//!
//! A request goes out with the cached `Authorization` for its (registry, scope), if any. A 401
//! is answered once per request: its challenge is parsed, a Basic header or a Bearer token for
//! the request's scope (plus the challenge's own scope, if it differs) is obtained and cached,
//! and the request is sent again; a second 401 is returned to the caller, which reports it as
//! [`RegistryError::Unauthorized`]. GET and HEAD are retried on connection errors and 5xx.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use reqwest::{Method, StatusCode, Url};

use super::auth::{self, AuthCache};
use super::credentials::{self, Credential, DockerConfig};
use super::{RegistryError, RegistryOptions};
use crate::reference::Reference;

/// Attempts for idempotent requests (GET, HEAD) that fail to connect or get a 5xx.
pub(crate) const ATTEMPTS: u32 = 3;

/// The pause before retry `n` (1-based): 200 ms, 400 ms, …
pub(crate) fn backoff(n: u32) -> Duration {
    Duration::from_millis(200 << (n - 1).min(5))
}

/// What a request needs the registry to allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access<'a> {
    Pull,
    Push,
    /// Push to the repository and pull from another one of the same registry (a cross-repository
    /// blob mount needs both in one token).
    Mount {
        from: &'a str,
    },
}

impl Access<'_> {
    /// The token scopes for `repository` (Docker's `repository:NAME:ACTIONS`).
    pub fn scopes(self, repository: &str) -> Vec<String> {
        match self {
            Access::Pull => vec![format!("repository:{repository}:pull")],
            Access::Push => vec![format!("repository:{repository}:pull,push")],
            Access::Mount { from } => {
                vec![format!("repository:{repository}:pull,push"), format!("repository:{from}:pull")]
            }
        }
    }

    /// The scopes as one string: the key tokens are cached under.
    pub fn scope(self, repository: &str) -> String {
        self.scopes(repository).join(" ")
    }
}

/// A client for OCI distribution registries. `Send + Sync`: share it between threads (behind an
/// `Arc` or a reference); every method blocks the calling thread only.
pub struct RegistryClient {
    pub(crate) rt: tokio::runtime::Runtime,
    pub(crate) http: reqwest::Client,
    pub(crate) opts: RegistryOptions,
    config_path: Option<std::path::PathBuf>,
    pub(crate) auth: AuthCache,
    /// Serializes answering challenges.
    auth_lock: Mutex<()>,
    /// Credentials per registry, looked up on the first challenge (helpers are slow).
    credentials: Mutex<HashMap<String, Option<Credential>>>,
    /// Which repositories hold which blobs (for cross-repository mounts).
    pub(crate) sources: Option<super::sources::BlobSources>,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient").field("opts", &self.opts).finish_non_exhaustive()
    }
}

/// One request, rebuildable for retries.
pub(crate) struct Call<'a> {
    pub r: &'a Reference,
    pub access: Access<'a>,
    pub method: Method,
    pub url: Url,
    pub headers: Vec<(&'static str, String)>,
    pub body: Option<Vec<u8>>,
}

impl RegistryClient {
    /// Creates a client (starts its runtime; reads no files and opens no connections yet).
    pub fn new(opts: RegistryOptions) -> Result<RegistryClient, RegistryError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("strata-registry")
            .enable_all()
            .build()
            .map_err(|e| RegistryError::Setup(format!("starting the tokio runtime: {e}")))?;
        let http = reqwest::Client::builder()
            .user_agent(opts.user_agent.clone())
            .connect_timeout(Duration::from_secs(30))
            .read_timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| RegistryError::Setup(format!("building the HTTP client: {}", error_chain(&e))))?;
        let config_path = opts.docker_config.clone().or_else(credentials::default_config_path);
        let sources = opts.blob_sources.as_deref().map(super::sources::BlobSources::new);
        Ok(RegistryClient {
            sources,
            rt,
            http,
            opts,
            config_path,
            auth: AuthCache::default(),
            auth_lock: Mutex::new(()),
            credentials: Mutex::new(HashMap::new()),
        })
    }

    /// True if `r`'s registry is spoken to over plain HTTP.
    fn is_insecure(&self, r: &Reference) -> bool {
        if r.is_loopback_registry() {
            return true;
        }
        let host = r.registry.rsplit_once(':').map_or(r.registry.as_str(), |(h, _)| h);
        self.opts.insecure_hosts.iter().any(|h| h == &r.registry || h == host)
    }

    /// `http(s)://HOST/v2/`, the API base of `registry` (a host, as references name it).
    pub(crate) fn base_url(&self, registry: &str) -> Result<Url, RegistryError> {
        let r = Reference { registry: registry.to_string(), repository: "x".to_string(), tag: None, digest: None };
        let scheme = if self.is_insecure(&r) { "http" } else { "https" };
        let s = format!("{scheme}://{}/v2/", r.api_host());
        Url::parse(&s).map_err(|e| RegistryError::Setup(format!("registry URL {s}: {e}")))
    }

    /// `http(s)://HOST/v2/REPOSITORY/` + `rest`.
    pub(crate) fn url(&self, r: &Reference, rest: &str) -> Result<Url, RegistryError> {
        let scheme = if self.is_insecure(r) { "http" } else { "https" };
        let s = format!("{scheme}://{}/v2/{}/{rest}", r.api_host(), r.repository);
        Url::parse(&s).map_err(|e| RegistryError::BadManifest {
            reference: r.to_string(),
            what: "registry URL".to_string(),
            detail: format!("{s}: {e}"),
        })
    }

    /// The credential for `registry` from the docker config (looked up once per registry).
    pub(crate) fn credential(&self, registry: &str) -> Result<Option<Credential>, RegistryError> {
        if let Some(c) = self.credentials.lock().unwrap_or_else(|p| p.into_inner()).get(registry) {
            return Ok(c.clone());
        }
        let found = match &self.config_path {
            Some(path) => match DockerConfig::load(path)? {
                Some(cfg) => cfg.credential_for(registry)?,
                None => None,
            },
            None => None,
        };
        self.credentials.lock().unwrap_or_else(|p| p.into_inner()).insert(registry.to_string(), found.clone());
        Ok(found)
    }

    /// Where credentials were looked for, for hints.
    pub(crate) fn config_display(&self) -> String {
        self.config_path
            .as_ref()
            .map_or("no docker config (neither DOCKER_CONFIG nor HOME set)".to_string(), |p| p.display().to_string())
    }

    /// The `Authorization` header to use for `call` now, if any.
    pub(crate) fn auth_header(&self, r: &Reference, access: Access<'_>) -> Option<String> {
        self.auth.header(&r.registry, &access.scope(&r.repository))
    }

    /// Answers a 401's challenge: caches a Basic header or a fresh token for the call's scope.
    fn authenticate(&self, call: &Call<'_>, www_authenticate: &[String]) -> Result<(), RegistryError> {
        let registry = &call.r.registry;
        let auth_err = |message: String| RegistryError::Auth { registry: registry.clone(), message };
        let challenges: Vec<_> = www_authenticate.iter().flat_map(|h| auth::parse_www_authenticate(h)).collect();
        if let Some(bearer) = challenges.iter().find(|c| c.scheme == "bearer") {
            self.auth.set_challenge(registry, bearer.clone());
            let mut scopes = call.access.scopes(&call.r.repository);
            if let Some(s) = bearer.param("scope")
                && !s.is_empty()
                && !scopes.iter().any(|have| have == s)
            {
                scopes.push(s.to_string());
            }
            return self.fetch_token(call, bearer, &scopes);
        }
        if challenges.iter().any(|c| c.scheme == "basic") {
            return match self.credential(registry)? {
                Some(Credential::UsernamePassword { username, password }) => {
                    self.auth.set_basic(registry, auth::basic_header(&username, &password));
                    Ok(())
                }
                Some(Credential::IdentityToken { .. }) => Err(auth_err(format!(
                    "the registry asks for Basic auth but the credential in {} is an identity token",
                    self.config_display()
                ))),
                None => Err(self.unauthorized_without_credentials(call, StatusCode::UNAUTHORIZED, "")),
            };
        }
        Err(auth_err(format!(
            "{} {}: 401 with no usable WWW-Authenticate challenge ({:?})",
            call.method, call.url, www_authenticate
        )))
    }

    /// Gets a token for `scopes` from the challenge's realm and caches it under the call's scope.
    fn fetch_token(
        &self,
        call: &Call<'_>,
        challenge: &auth::Challenge,
        scopes: &[String],
    ) -> Result<(), RegistryError> {
        let registry = &call.r.registry;
        let cred = self.credential(registry)?;
        let refresh = self.auth.refresh_token(registry);
        let how = auth::TokenRequest { credential: cred.as_ref(), refresh_token: refresh.as_deref(), offline: false };
        let grant = self.rt.block_on(auth::fetch_token(&self.http, registry, challenge, scopes, how))?;
        if let Some(rt) = grant.refresh_token {
            self.auth.set_refresh_token(registry, rt);
        }
        self.auth.set_token(registry, &call.access.scope(&call.r.repository), grant.token);
        Ok(())
    }

    /// Renews the call's token before sending when the registry uses tokens and the cached one
    /// has expired (or this scope has none yet), saving the round trip of a 401.
    pub(crate) fn renew_token(&self, call: &Call<'_>) -> Result<(), RegistryError> {
        let scope = call.access.scope(&call.r.repository);
        if self.auth.renewal(&call.r.registry, &scope).is_none() {
            return Ok(());
        }
        let _one_at_a_time = self.auth_lock.lock().unwrap_or_else(|p| p.into_inner());
        match self.auth.renewal(&call.r.registry, &scope) {
            Some(challenge) => self.fetch_token(call, &challenge, &call.access.scopes(&call.r.repository)),
            None => Ok(()),
        }
    }

    fn unauthorized_without_credentials(&self, call: &Call<'_>, status: StatusCode, message: &str) -> RegistryError {
        RegistryError::Unauthorized {
            reference: call.r.to_string(),
            method: call.method.to_string(),
            url: call.url.to_string(),
            status: status.as_u16(),
            message: if message.is_empty() { "authentication required".to_string() } else { message.to_string() },
            hint: format!(
                "no credentials for {} found in {} (log in with `docker login {}`)",
                call.r.registry,
                self.config_display(),
                credentials::server_key(&call.r.registry)
            ),
        }
    }

    /// Sends `call`, answering one auth challenge and retrying GET/HEAD on connection errors and
    /// 5xx. Returns the final response whatever its status (see [`RegistryClient::check`]).
    pub(crate) fn send(&self, call: &Call<'_>) -> Result<reqwest::Response, RegistryError> {
        let idempotent = call.method == Method::GET || call.method == Method::HEAD;
        let mut attempt = 1;
        let mut authenticated = false;
        loop {
            self.renew_token(call)?;
            let mut req = self.http.request(call.method.clone(), call.url.clone());
            for (k, v) in &call.headers {
                req = req.header(*k, v);
            }
            let sent_auth = self.auth_header(call.r, call.access);
            if let Some(h) = &sent_auth {
                req = req.header("Authorization", h);
            }
            if let Some(body) = &call.body {
                req = req.header("Content-Length", body.len().to_string()).body(body.clone());
            }
            let result = self.rt.block_on(async move { req.send().await });
            let retryable = match &result {
                Err(_) => true,
                Ok(resp) => resp.status().is_server_error(),
            };
            if idempotent && retryable && attempt < ATTEMPTS {
                tracing::debug!(method = %call.method, url = %call.url, attempt, "retrying registry request");
                std::thread::sleep(backoff(attempt));
                attempt += 1;
                continue;
            }
            let resp = result.map_err(|e| self.connection_error(call, &e))?;
            if resp.status() == StatusCode::UNAUTHORIZED && !authenticated {
                let challenges: Vec<String> = resp
                    .headers()
                    .get_all("WWW-Authenticate")
                    .iter()
                    .filter_map(|v| v.to_str().ok().map(str::to_string))
                    .collect();
                authenticated = true;
                // One thread authenticates at a time; the others then find its fresh token (so
                // parallel blob uploads ask the token service once, not once each).
                let _one_at_a_time = self.auth_lock.lock().unwrap_or_else(|p| p.into_inner());
                let current = self.auth_header(call.r, call.access);
                if current.is_none() || current == sent_auth {
                    self.authenticate(call, &challenges)?;
                }
                drop(_one_at_a_time);
                continue;
            }
            return Ok(resp);
        }
    }

    pub(crate) fn connection_error(&self, call: &Call<'_>, e: &reqwest::Error) -> RegistryError {
        RegistryError::Connection {
            reference: call.r.to_string(),
            method: call.method.to_string(),
            url: call.url.to_string(),
            detail: error_chain(e),
        }
    }

    /// Turns a response with a status outside `ok` into an error carrying the registry's message.
    pub(crate) fn check(
        &self,
        call: &Call<'_>,
        resp: reqwest::Response,
        ok: &[StatusCode],
    ) -> Result<reqwest::Response, RegistryError> {
        if ok.contains(&resp.status()) {
            return Ok(resp);
        }
        let status = resp.status();
        let body = self.read_limited(resp, 64 * 1024).unwrap_or_default();
        let mut message = error_message(&body);
        if message.is_empty() {
            message = status.canonical_reason().unwrap_or("unexpected status").to_string();
        }
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            let has_credential = matches!(
                self.credentials.lock().unwrap_or_else(|p| p.into_inner()).get(&call.r.registry),
                Some(Some(_))
            );
            if !has_credential && status == StatusCode::UNAUTHORIZED {
                return Err(self.unauthorized_without_credentials(call, status, &message));
            }
            let hint = if has_credential {
                format!(
                    "the credentials for {} in {} were rejected or lack access",
                    call.r.registry,
                    self.config_display()
                )
            } else {
                format!("access denied without credentials for {} (none in {})", call.r.registry, self.config_display())
            };
            return Err(RegistryError::Unauthorized {
                reference: call.r.to_string(),
                method: call.method.to_string(),
                url: call.url.to_string(),
                status: status.as_u16(),
                message,
                hint,
            });
        }
        Err(RegistryError::Status {
            reference: call.r.to_string(),
            method: call.method.to_string(),
            url: call.url.to_string(),
            status: status.as_u16(),
            message,
        })
    }

    /// Reads a whole body, failing past `limit` bytes (a hostile registry cannot exhaust memory).
    pub(crate) fn read_limited(&self, mut resp: reqwest::Response, limit: u64) -> Result<Vec<u8>, BodyError> {
        if resp.content_length().is_some_and(|n| n > limit) {
            return Err(BodyError::TooLarge);
        }
        let mut out = Vec::new();
        while let Some(chunk) =
            self.rt.block_on(async { resp.chunk().await }).map_err(|e| BodyError::Transfer(error_chain(&e)))?
        {
            if out.len() as u64 + chunk.len() as u64 > limit {
                return Err(BodyError::TooLarge);
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }
}

/// Why a body could not be read.
#[derive(Debug)]
pub(crate) enum BodyError {
    TooLarge,
    Transfer(String),
}

/// The registry's error text: `CODE: message (detail)` for each entry of the distribution
/// spec's `{"errors":[…]}`, the `details`/`error` of token servers, else the start of the body.
pub(crate) fn error_message(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Entry {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
        #[serde(default)]
        detail: Option<serde_json::Value>,
    }
    #[derive(serde::Deserialize)]
    struct Body {
        #[serde(default)]
        errors: Vec<Entry>,
        #[serde(default)]
        details: Option<String>,
        #[serde(default)]
        error: Option<String>,
    }
    if let Ok(b) = serde_json::from_slice::<Body>(body) {
        let parts: Vec<String> = b
            .errors
            .iter()
            .map(|e| {
                let mut s = match (e.code.is_empty(), e.message.is_empty()) {
                    (false, false) => format!("{}: {}", e.code, e.message),
                    (false, true) => e.code.clone(),
                    _ => e.message.clone(),
                };
                match &e.detail {
                    Some(serde_json::Value::String(d)) if !d.is_empty() => s.push_str(&format!(" ({d})")),
                    Some(d @ (serde_json::Value::Object(_) | serde_json::Value::Array(_))) => {
                        s.push_str(&format!(" ({d})"))
                    }
                    _ => {}
                }
                s
            })
            .collect();
        if !parts.is_empty() {
            return parts.join("; ");
        }
        if let Some(d) = b.details.or(b.error).filter(|d| !d.is_empty()) {
            return d;
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    let mut cut: String = text.chars().take(200).collect();
    if cut.len() < text.len() {
        cut.push('…');
    }
    cut
}

/// An error and its sources, joined with `: ` (reqwest's own message omits the cause).
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let c = cause.to_string();
        if !s.contains(&c) {
            s.push_str(": ");
            s.push_str(&c);
        }
        source = cause.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_error_bodies_become_messages() {
        let b = br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"nope"}}]}"#;
        assert_eq!(error_message(b), r#"MANIFEST_UNKNOWN: manifest unknown ({"Tag":"nope"})"#);
        let b = br#"{"errors":[{"code":"DENIED","message":"x","detail":"no"},{"code":"UNAUTHORIZED","message":""}]}"#;
        assert_eq!(error_message(b), "DENIED: x (no); UNAUTHORIZED");
        assert_eq!(error_message(br#"{"details":"incorrect username or password"}"#), "incorrect username or password");
        assert_eq!(error_message(b"  <html>bad gateway</html>\n"), "<html>bad gateway</html>");
        assert_eq!(error_message(&[b'x'; 300]).chars().count(), 201);
        assert_eq!(error_message(b""), "");
    }

    #[test]
    fn client_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<RegistryClient>();
    }

    #[test]
    fn scheme_selection() {
        let c = RegistryClient::new(RegistryOptions {
            insecure_hosts: vec!["plain.example".into(), "other.example:8443".into()],
            ..RegistryOptions::default()
        })
        .unwrap();
        let url = |s: &str| c.url(&Reference::parse(s).unwrap(), "manifests/x").unwrap().to_string();
        assert_eq!(url("127.0.0.1:5000/a"), "http://127.0.0.1:5000/v2/a/manifests/x");
        assert_eq!(url("localhost/a/b"), "http://localhost/v2/a/b/manifests/x");
        assert_eq!(url("[::1]:5000/a"), "http://[::1]:5000/v2/a/manifests/x");
        assert_eq!(url("plain.example:5000/a"), "http://plain.example:5000/v2/a/manifests/x");
        assert_eq!(url("other.example:8443/a"), "http://other.example:8443/v2/a/manifests/x");
        assert_eq!(url("other.example/a"), "https://other.example/v2/a/manifests/x");
        assert_eq!(url("ghcr.io/a"), "https://ghcr.io/v2/a/manifests/x");
        assert_eq!(url("busybox"), "https://registry-1.docker.io/v2/library/busybox/manifests/x");
    }

    #[test]
    fn scopes_and_backoff() {
        assert_eq!(Access::Pull.scope("a/b"), "repository:a/b:pull");
        assert_eq!(Access::Push.scope("a/b"), "repository:a/b:pull,push");
        assert_eq!(Access::Mount { from: "c" }.scope("a/b"), "repository:a/b:pull,push repository:c:pull");
        assert_eq!(backoff(1), Duration::from_millis(200));
        assert_eq!(backoff(2), Duration::from_millis(400));
    }
}
