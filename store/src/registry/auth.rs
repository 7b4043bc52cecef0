//! Registry authentication: `WWW-Authenticate` challenges and the Docker token protocol.
//!
//! A registry that wants credentials answers 401 with a challenge (RFC 7235):
//! `Basic realm="…"`, or `Bearer realm="https://auth/token",service="registry",scope="repository:x:pull"`
//! (Docker's token authentication, distribution's `docs/spec/auth/token.md`). For Bearer the
//! client GETs `realm?service=…&scope=…` — with HTTP basic credentials when the user has some,
//! anonymously otherwise — and gets `{"token"|"access_token": …, "expires_in": …}`; with an
//! identity token (from `docker login` to an OAuth registry) it POSTs an OAuth2 refresh-token
//! grant to the realm instead, as the docker CLI does.
//!
//! Tokens are cached per (registry, scope) until shortly before they expire; an `expires_in`
//! missing or under 60 seconds counts as 60, the minimum Docker assumes. The registry's Bearer
//! challenge is remembered, so a token that has expired (a long push outlives a 5-minute token)
//! is renewed before the next request instead of after a 401.
//!
//! Refresh tokens (distribution's `registry/client/auth/session.go`): a token answer may carry a
//! `refresh_token` (the service issues one for `offline_token=true` GETs and OAuth grants). It is
//! kept for the registry and later tokens are obtained with it through the OAuth2
//! `grant_type=refresh_token` POST, as the docker CLI does; `strata login` stores it in
//! config.json as the `identitytoken` instead of the password, as `docker login` does.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::RegistryError;
use super::credentials::Credential;

/// One authentication challenge from a `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// The scheme, lower-cased (`basic`, `bearer`, …).
    pub scheme: String,
    /// The auth-params, names lower-cased, values unquoted.
    pub params: BTreeMap<String, String>,
}

impl Challenge {
    /// A parameter's value (`realm`, `service`, `scope`, …).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }
}

/// Parses a `WWW-Authenticate` value into its challenges (a header may carry several, comma
/// separated). Lenient like Go's parsers: unparsable pieces are skipped, never an error, since
/// the caller only needs the first challenge it understands.
pub fn parse_www_authenticate(header: &str) -> Vec<Challenge> {
    let b = header.as_bytes();
    let mut i = 0;
    let mut out: Vec<Challenge> = Vec::new();
    let is_token = |c: u8| !(c.is_ascii_whitespace() || c == b',' || c == b'=' || c == b'"');
    let skip_ws = |i: &mut usize| {
        while *i < b.len() && b[*i].is_ascii_whitespace() {
            *i += 1;
        }
    };
    loop {
        while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b',') {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let start = i;
        while i < b.len() && is_token(b[i]) {
            i += 1;
        }
        if start == i {
            i += 1; // a stray '=' or '"': skip it
            continue;
        }
        let token = &header[start..i];
        skip_ws(&mut i);
        if i < b.len() && b[i] == b'=' {
            i += 1;
            skip_ws(&mut i);
            let value = if i < b.len() && b[i] == b'"' {
                i += 1;
                let mut v = String::new();
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' && i + 1 < b.len() {
                        i += 1;
                    }
                    // Push the whole UTF-8 character starting here.
                    let ch_len = header[i..].chars().next().map_or(1, char::len_utf8);
                    v.push_str(&header[i..i + ch_len]);
                    i += ch_len;
                }
                i += 1; // closing quote (or past the end if unterminated)
                v
            } else {
                let vs = i;
                while i < b.len() && is_token(b[i]) {
                    i += 1;
                }
                header[vs..i].to_string()
            };
            if let Some(current) = out.last_mut() {
                current.params.insert(token.to_ascii_lowercase(), value);
            }
        } else {
            out.push(Challenge { scheme: token.to_ascii_lowercase(), params: BTreeMap::new() });
        }
    }
    out
}

/// A bearer token and when to stop using it.
#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub value: String,
    pub expires: Instant,
}

/// How a registry wants to be authenticated, as learned from its last challenge.
#[derive(Debug, Clone)]
enum Scheme {
    /// Send this `Authorization` header (`Basic …`) with every request.
    Basic(String),
    /// Use tokens, cached per scope.
    Bearer,
}

/// Per-registry auth state shared by all threads using a client.
#[derive(Debug, Default)]
pub(crate) struct AuthCache {
    inner: Mutex<CacheState>,
}

#[derive(Debug, Default)]
struct CacheState {
    schemes: HashMap<String, Scheme>,
    tokens: HashMap<(String, String), Token>,
    /// The last Bearer challenge of each registry: where to renew tokens.
    challenges: HashMap<String, Challenge>,
    /// Refresh tokens the token services issued, per registry.
    refresh: HashMap<String, String>,
}

impl AuthCache {
    /// The `Authorization` header to send to `registry` for `scope`, if one is known.
    pub fn header(&self, registry: &str, scope: &str) -> Option<String> {
        let state = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        match state.schemes.get(registry)? {
            Scheme::Basic(h) => Some(h.clone()),
            Scheme::Bearer => {
                let t = state.tokens.get(&(registry.to_string(), scope.to_string()))?;
                (t.expires > Instant::now()).then(|| format!("Bearer {}", t.value))
            }
        }
    }

    pub fn set_basic(&self, registry: &str, header: String) {
        let mut state = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        state.schemes.insert(registry.to_string(), Scheme::Basic(header));
    }

    pub fn set_token(&self, registry: &str, scope: &str, token: Token) {
        let mut state = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        state.schemes.insert(registry.to_string(), Scheme::Bearer);
        state.tokens.insert((registry.to_string(), scope.to_string()), token);
    }

    /// Remembers the registry's Bearer challenge (realm and service) for renewing tokens.
    pub fn set_challenge(&self, registry: &str, challenge: Challenge) {
        let mut state = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        state.challenges.insert(registry.to_string(), challenge);
    }

    /// The challenge to renew `registry`'s token for `scope` with, if the registry uses tokens
    /// and none is live for the scope.
    pub fn renewal(&self, registry: &str, scope: &str) -> Option<Challenge> {
        let state = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if !matches!(state.schemes.get(registry), Some(Scheme::Bearer)) {
            return None;
        }
        let live =
            state.tokens.get(&(registry.to_string(), scope.to_string())).is_some_and(|t| t.expires > Instant::now());
        if live { None } else { state.challenges.get(registry).cloned() }
    }

    /// Drops the token for (registry, scope): the registry refused it before it expired.
    pub fn forget(&self, registry: &str, scope: &str) {
        let mut state = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        state.tokens.remove(&(registry.to_string(), scope.to_string()));
    }

    pub fn refresh_token(&self, registry: &str) -> Option<String> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).refresh.get(registry).cloned()
    }

    pub fn set_refresh_token(&self, registry: &str, token: String) {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).refresh.insert(registry.to_string(), token);
    }
}

/// `Basic base64(user:pass)`.
pub(crate) fn basic_header(username: &str, password: &str) -> String {
    format!("Basic {}", super::credentials::base64_encode(format!("{username}:{password}").as_bytes()))
}

/// The token endpoint's answer.
#[derive(Debug, Deserialize)]
struct TokenResponse {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    refresh_token: Option<String>,
}

/// What a token service granted.
#[derive(Debug, Clone)]
pub(crate) struct Grant {
    pub token: Token,
    /// A refresh token, when the service issued one.
    pub refresh_token: Option<String>,
}

/// Docker's minimum token lifetime: shorter or missing `expires_in` values count as this.
const MIN_TOKEN_LIFETIME: u64 = 60;

/// Reads a token endpoint's JSON answer into a token valid from `now`.
fn parse_token_response(body: &[u8], now: Instant) -> Result<Grant, String> {
    let resp: TokenResponse = serde_json::from_slice(body).map_err(|e| format!("malformed token response: {e}"))?;
    let value = resp
        .token
        .filter(|t| !t.is_empty())
        .or(resp.access_token.filter(|t| !t.is_empty()))
        .ok_or("token response has neither \"token\" nor \"access_token\"")?;
    let lifetime = resp.expires_in.unwrap_or(MIN_TOKEN_LIFETIME).clamp(MIN_TOKEN_LIFETIME, 365 * 86_400);
    // Stop using a token a little before the server does, so a request never races its expiry.
    let margin = (lifetime / 10).min(30);
    Ok(Grant {
        token: Token { value, expires: now + Duration::from_secs(lifetime - margin) },
        refresh_token: resp.refresh_token.filter(|t| !t.is_empty()),
    })
}

/// How to ask a token service.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TokenRequest<'a> {
    /// The user's credential from the docker config, if any.
    pub credential: Option<&'a Credential>,
    /// A refresh token issued earlier (used before the credential).
    pub refresh_token: Option<&'a str>,
    /// Ask for a refresh token too (`offline_token=true`, as `docker login` does).
    pub offline: bool,
}

/// `application/x-www-form-urlencoded` encoding of one value.
fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &c in s.as_bytes() {
        if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b'*') {
            out.push(c as char);
        } else if c == b' ' {
            out.push('+');
        } else {
            out.push_str(&format!("%{c:02X}"));
        }
    }
    out
}

/// The client id strata names itself with to token services (docker uses `docker`).
const CLIENT_ID: &str = "strata";

/// Fetches a token from a Bearer challenge's realm for `scopes`.
pub(crate) async fn fetch_token(
    http: &reqwest::Client,
    registry: &str,
    challenge: &Challenge,
    scopes: &[String],
    how: TokenRequest<'_>,
) -> Result<Grant, RegistryError> {
    let auth_err = |message: String| RegistryError::Auth { registry: registry.to_string(), message };
    let realm = challenge.param("realm").ok_or_else(|| auth_err("Bearer challenge without a realm".to_string()))?;
    let mut url =
        reqwest::Url::parse(realm).map_err(|e| auth_err(format!("token realm {realm:?} is not a URL: {e}")))?;
    if url.scheme() != "https" && url.scheme() != "http" {
        return Err(auth_err(format!("token realm {realm:?} is not an http(s) URL")));
    }
    let service = challenge.param("service");
    let refresh = how.refresh_token.or(match how.credential {
        Some(Credential::IdentityToken { token, .. }) => Some(token.as_str()),
        _ => None,
    });
    let request = match refresh {
        Some(refresh) => {
            // OAuth2 refresh-token grant, as the docker CLI does for identity tokens.
            let mut form =
                format!("grant_type=refresh_token&refresh_token={}&client_id={CLIENT_ID}", form_encode(refresh));
            if let Some(s) = service {
                form.push_str(&format!("&service={}", form_encode(s)));
            }
            if !scopes.is_empty() {
                form.push_str(&format!("&scope={}", form_encode(&scopes.join(" "))));
            }
            if how.offline {
                form.push_str("&access_type=offline");
            }
            http.post(url.clone()).header("Content-Type", "application/x-www-form-urlencoded").body(form)
        }
        None => {
            {
                let mut q = url.query_pairs_mut();
                if let Some(s) = service {
                    q.append_pair("service", s);
                }
                for s in scopes {
                    q.append_pair("scope", s);
                }
                if how.offline {
                    q.append_pair("offline_token", "true");
                    q.append_pair("client_id", CLIENT_ID);
                }
            }
            let req = http.get(url.clone());
            match how.credential {
                Some(Credential::UsernamePassword { username, password }) => {
                    req.header("Authorization", basic_header(username, password))
                }
                _ => req,
            }
        }
    };
    let resp = request
        .send()
        .await
        .map_err(|e| auth_err(format!("fetching a token from {url}: {}", super::client::error_chain(&e))))?;
    let status = resp.status();
    let body = resp.bytes().await.map_err(|e| auth_err(format!("reading the token from {url}: {e}")))?;
    if !status.is_success() {
        let hint = if how.credential.is_some() || refresh.is_some() {
            "the credentials were rejected"
        } else {
            "no credentials were found for this registry (docker login?)"
        };
        return Err(auth_err(format!(
            "token server {url} answered {status}: {}: {hint}",
            super::client::error_message(&body)
        )));
    }
    parse_token_response(&body, Instant::now()).map_err(|e| auth_err(format!("token server {url}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_basic_and_bearer_challenges() {
        let c = parse_www_authenticate(r#"Basic realm="peers""#);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].scheme, "basic");
        assert_eq!(c[0].param("realm"), Some("peers"));

        let c = parse_www_authenticate(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull,push",error="insufficient_scope""#,
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].scheme, "bearer");
        assert_eq!(c[0].param("realm"), Some("https://auth.docker.io/token"));
        assert_eq!(c[0].param("service"), Some("registry.docker.io"));
        // The comma inside the quoted scope does not split it.
        assert_eq!(c[0].param("scope"), Some("repository:library/busybox:pull,push"));
        assert_eq!(c[0].param("error"), Some("insufficient_scope"));
    }

    #[test]
    fn parses_multiple_challenges_case_and_token_values() {
        let c = parse_www_authenticate(r#"NEGOTIATE, BASIC Realm=plain , bearer realm="r" , service = svc"#);
        let schemes: Vec<_> = c.iter().map(|c| c.scheme.as_str()).collect();
        assert_eq!(schemes, ["negotiate", "basic", "bearer"]);
        assert_eq!(c[1].param("realm"), Some("plain"));
        assert_eq!(c[2].param("realm"), Some("r"));
        assert_eq!(c[2].param("service"), Some("svc"));
    }

    #[test]
    fn quoted_escapes_and_hostile_input() {
        let c = parse_www_authenticate(r#"Bearer realm="a\"b\\c",scope="ü""#);
        assert_eq!(c[0].param("realm"), Some(r#"a"b\c"#));
        assert_eq!(c[0].param("scope"), Some("ü"));
        // Unterminated quotes, stray separators and params before any scheme do not panic.
        for junk in ["", "=", "\"", "realm=x", "Bearer realm=\"unterminated", ",,, =\"=", "Bearer =x", "Basic \\"] {
            let _ = parse_www_authenticate(junk);
        }
        assert!(parse_www_authenticate("realm=x").is_empty());
        let c = parse_www_authenticate("Bearer realm=\"unterminated");
        assert_eq!(c[0].param("realm"), Some("unterminated"));
    }

    #[test]
    fn token_responses() {
        let now = Instant::now();
        let g = parse_token_response(br#"{"token":"abc","expires_in":300,"issued_at":"2024-01-01T00:00:00Z"}"#, now)
            .unwrap();
        assert_eq!(g.refresh_token, None);
        let t = g.token;
        assert_eq!(t.value, "abc");
        assert_eq!(t.expires, now + Duration::from_secs(270));
        let g = parse_token_response(br#"{"access_token":"xyz","refresh_token":"r1"}"#, now).unwrap();
        assert_eq!(g.refresh_token.as_deref(), Some("r1"));
        let t = g.token;
        assert_eq!(t.value, "xyz");
        assert_eq!(t.expires, now + Duration::from_secs(54), "missing expires_in counts as 60s");
        let t = parse_token_response(br#"{"token":"","access_token":"a","expires_in":5}"#, now).unwrap().token;
        assert_eq!(t.value, "a");
        assert!(parse_token_response(br#"{"expires_in":5}"#, now).unwrap_err().contains("neither"));
        assert!(parse_token_response(b"<html>", now).unwrap_err().contains("malformed"));
    }

    #[test]
    fn cache_keys_by_registry_and_scope_and_expires() {
        let cache = AuthCache::default();
        assert_eq!(cache.header("r", "repository:a:pull"), None);
        let live = Token { value: "t1".into(), expires: Instant::now() + Duration::from_secs(60) };
        cache.set_token("r", "repository:a:pull", live);
        assert_eq!(cache.header("r", "repository:a:pull").as_deref(), Some("Bearer t1"));
        assert_eq!(cache.header("r", "repository:b:pull"), None);
        assert_eq!(cache.header("other", "repository:a:pull"), None);
        let dead = Token { value: "t2".into(), expires: Instant::now() - Duration::from_secs(1) };
        cache.set_token("r", "repository:c:pull", dead);
        assert_eq!(cache.header("r", "repository:c:pull"), None, "expired tokens are not used");
        cache.set_basic("b", basic_header("tester", "secret"));
        assert!(cache.renewal("b", "anything").is_none(), "basic auth needs no renewal");
        assert_eq!(cache.header("b", "anything").as_deref(), Some("Basic dGVzdGVyOnNlY3JldA=="));
    }

    #[test]
    fn expired_tokens_are_renewed_from_the_remembered_challenge() {
        let cache = AuthCache::default();
        let challenge = parse_www_authenticate(r#"Bearer realm="http://auth/token",service="s""#).remove(0);
        assert!(cache.renewal("r", "repository:a:pull").is_none(), "unknown registry: wait for a challenge");
        cache.set_challenge("r", challenge.clone());
        cache.set_token(
            "r",
            "repository:a:pull",
            Token { value: "t".into(), expires: Instant::now() + Duration::from_secs(60) },
        );
        assert!(cache.renewal("r", "repository:a:pull").is_none(), "a live token needs no renewal");
        assert_eq!(cache.renewal("r", "repository:a:pull,push"), Some(challenge.clone()), "a new scope");
        cache.set_token(
            "r",
            "repository:a:pull",
            Token { value: "t".into(), expires: Instant::now() - Duration::from_secs(1) },
        );
        assert_eq!(cache.renewal("r", "repository:a:pull"), Some(challenge), "an expired token");
        assert_eq!(cache.refresh_token("r"), None);
        cache.set_refresh_token("r", "rt".into());
        assert_eq!(cache.refresh_token("r").as_deref(), Some("rt"));
    }

    #[test]
    fn form_encoding() {
        assert_eq!(form_encode("repository:a/b:pull push"), "repository%3Aa%2Fb%3Apull+push");
    }
}
