//! Checking credentials against a registry, as `docker login` does before saving them.
//!
//! The docker CLI (`registry/auth.go`, `loginV2`) sends `GET /v2/` and answers the challenge
//! with the new credentials: `Basic` by sending them, `Bearer` by asking the token service for a
//! token with HTTP basic auth, no scope, `offline_token=true` and a `client_id` — a service that
//! supports it then also returns a refresh token, which docker saves as the `identitytoken`
//! instead of the password. The credentials are good when `/v2/` answers 200 with them. A
//! registry that answers 200 without any is fine too (docker saves the credentials anyway).

use reqwest::StatusCode;

use super::auth::{self, TokenRequest};
use super::client::{RegistryClient, error_chain, error_message};
use super::credentials::Credential;
use super::{RegistryError, credentials};

/// What a successful login learned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginOutcome {
    /// A refresh token from the registry's token service, to be stored instead of the password.
    pub identity_token: Option<String>,
}

impl RegistryClient {
    /// Checks `username`/`password` against `registry` (a host such as `ghcr.io` or
    /// `127.0.0.1:5000`; `docker.io` for Docker Hub). Nothing is cached or written.
    pub fn login(&self, registry: &str, username: &str, password: &str) -> Result<LoginOutcome, RegistryError> {
        let url = self.base_url(registry)?;
        let auth_err = |message: String| RegistryError::Auth { registry: registry.to_string(), message };
        let get = |authorization: Option<String>| {
            let mut req = self.http.get(url.clone());
            if let Some(h) = authorization {
                req = req.header("Authorization", h);
            }
            self.rt
                .block_on(async move { req.send().await })
                .map_err(|e| auth_err(format!("GET {url}: {}", error_chain(&e))))
        };
        let resp = get(None)?;
        if resp.status().is_success() {
            return Ok(LoginOutcome { identity_token: None });
        }
        if resp.status() != StatusCode::UNAUTHORIZED {
            let status = resp.status();
            let body = self.read_limited(resp, 64 * 1024).unwrap_or_default();
            return Err(auth_err(format!("GET {url}: {status}: {}", error_message(&body))));
        }
        let challenges: Vec<auth::Challenge> = resp
            .headers()
            .get_all("WWW-Authenticate")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(auth::parse_www_authenticate)
            .collect();
        let cred = Credential::UsernamePassword { username: username.to_string(), password: password.to_string() };
        let (authorization, identity_token) = if let Some(bearer) = challenges.iter().find(|c| c.scheme == "bearer") {
            let how = TokenRequest { credential: Some(&cred), refresh_token: None, offline: true };
            let grant = self.rt.block_on(auth::fetch_token(&self.http, registry, bearer, &[], how))?;
            (format!("Bearer {}", grant.token.value), grant.refresh_token)
        } else if challenges.iter().any(|c| c.scheme == "basic") {
            (auth::basic_header(username, password), None)
        } else {
            return Err(auth_err(format!("GET {url}: 401 without a Basic or Bearer challenge")));
        };
        let resp = get(Some(authorization))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(LoginOutcome { identity_token });
        }
        let body = self.read_limited(resp, 64 * 1024).unwrap_or_default();
        let message = error_message(&body);
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(auth_err(format!(
                "login to {} as {username:?} failed: {status}: {}",
                credentials::server_key(registry),
                if message.is_empty() { "incorrect username or password".to_string() } else { message }
            )));
        }
        Err(auth_err(format!("GET {url}: {status}: {message}")))
    }
}
