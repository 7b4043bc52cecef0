//! Registry credentials from Docker's `config.json`, picked the way the docker CLI picks them.
//!
//! The file is `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json` (or the path given in
//! [`RegistryOptions::docker_config`](super::RegistryOptions)); a missing file means anonymous
//! access. For one registry the docker CLI (`cli/config/configfile`) consults, in order:
//! 1. `credHelpers[server]`: run `docker-credential-<helper> get`;
//! 2. `credsStore`: the same with the default helper (then `auths` is not read: the docker CLI's
//!    native store overwrites whatever the file holds);
//! 3. `auths[server]`: `identitytoken`, else `auth` (base64 of `user:password`), else
//!    `username` + `password`.
//!
//! `server` is the registry's host (`ghcr.io`, `127.0.0.1:5000`), except for Docker Hub whose key
//! is `https://index.docker.io/v1/`. Keys are matched exactly first, then by host after
//! stripping a scheme and path (`https://ghcr.io/v2/` matches `ghcr.io`), as Docker's
//! `ConvertToHostname` does; `docker.io`, `index.docker.io` and `registry-1.docker.io` are the
//! same host. Helpers run through the `docker_credential` crate; a helper that reports
//! "credentials not found" means anonymous access, any other helper failure is an error.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::reference::DOCKER_HUB;

/// A credential for one registry.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    UsernamePassword {
        username: String,
        password: String,
    },
    /// An OAuth refresh token from `docker login` (used in a refresh-token grant).
    IdentityToken {
        username: Option<String>,
        token: String,
    },
}

impl std::fmt::Debug for Credential {
    // Secrets stay out of logs and panic messages.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::UsernamePassword { username, .. } => write!(f, "UsernamePassword({username:?}, <redacted>)"),
            Credential::IdentityToken { username, .. } => write!(f, "IdentityToken({username:?}, <redacted>)"),
        }
    }
}

/// Why credentials could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: invalid docker config: {message}")]
    Parse { path: PathBuf, line: usize, column: usize, message: String },
    #[error("{path}: auths[{key:?}].auth is not base64 of \"user:password\"")]
    BadAuth { path: PathBuf, key: String },
    #[error("getting credentials for {server} from docker-credential-{helper} (configured in {path}): {message}")]
    Helper { path: PathBuf, helper: String, server: String, message: String },
}

/// One `auths` entry.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AuthEntry {
    #[serde(default)]
    pub auth: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub identitytoken: Option<String>,
}

/// The parts of Docker's `config.json` that hold credentials.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DockerConfig {
    #[serde(default)]
    pub auths: BTreeMap<String, AuthEntry>,
    #[serde(default)]
    pub creds_store: Option<String>,
    #[serde(default)]
    pub cred_helpers: BTreeMap<String, String>,
    /// Where the config was read from, for error messages.
    #[serde(skip)]
    pub path: PathBuf,
}

/// Where a registry's credential comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialSource {
    /// Run `docker-credential-<helper> get` with `server` on stdin.
    Helper { helper: String, server: String },
    /// Stored in the file.
    Stored(Credential),
    /// Nothing configured: anonymous.
    None,
}

/// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
pub fn default_config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME").filter(|h| !h.is_empty()).map(|h| PathBuf::from(h).join(".docker").join("config.json"))
}

/// The key Docker files a registry's credentials under (`https://index.docker.io/v1/` for
/// Docker Hub, the registry host otherwise).
pub fn server_key(registry: &str) -> String {
    if is_docker_hub(registry) { "https://index.docker.io/v1/".to_string() } else { registry.to_string() }
}

fn is_docker_hub(host: &str) -> bool {
    matches!(host, DOCKER_HUB | "index.docker.io" | "registry-1.docker.io")
}

/// Docker's `ConvertToHostname`: strips `http(s)://` and any path; Docker Hub's aliases become one.
fn hostname(key: &str) -> &str {
    let stripped = key.strip_prefix("http://").or_else(|| key.strip_prefix("https://")).unwrap_or(key);
    let host = stripped.split('/').next().unwrap_or(stripped);
    if is_docker_hub(host) { "index.docker.io" } else { host }
}

/// Looks `server` up in a map: the exact key, else one with the same hostname.
fn lookup<'a, V>(map: &'a BTreeMap<String, V>, server: &str) -> Option<(&'a str, &'a V)> {
    if let Some((k, v)) = map.get_key_value(server) {
        return Some((k, v));
    }
    let host = hostname(server);
    map.iter().find(|(k, _)| hostname(k) == host).map(|(k, v)| (k.as_str(), v))
}

impl DockerConfig {
    /// Reads a config file; `Ok(None)` if it does not exist.
    pub fn load(path: &Path) -> Result<Option<DockerConfig>, CredentialError> {
        match std::fs::read(path) {
            Ok(data) => DockerConfig::parse(&data, path).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(CredentialError::Read { path: path.to_path_buf(), source }),
        }
    }

    /// Parses a config file's bytes (`path` is for messages).
    pub fn parse(data: &[u8], path: &Path) -> Result<DockerConfig, CredentialError> {
        let mut cfg: DockerConfig = serde_json::from_slice(data).map_err(|e| CredentialError::Parse {
            path: path.to_path_buf(),
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })?;
        cfg.path = path.to_path_buf();
        Ok(cfg)
    }

    /// Where `registry`'s (`docker.io`, `ghcr.io`, `127.0.0.1:5000`) credential comes from.
    pub fn source_for(&self, registry: &str) -> Result<CredentialSource, CredentialError> {
        let server = server_key(registry);
        if let Some((_, helper)) = lookup(&self.cred_helpers, &server).filter(|(_, h)| !h.is_empty()) {
            return Ok(CredentialSource::Helper { helper: helper.clone(), server });
        }
        if let Some(store) = self.creds_store.as_ref().filter(|s| !s.is_empty()) {
            return Ok(CredentialSource::Helper { helper: store.clone(), server });
        }
        let Some((key, entry)) = lookup(&self.auths, &server) else {
            return Ok(CredentialSource::None);
        };
        if let Some(token) = entry.identitytoken.as_ref().filter(|t| !t.is_empty()) {
            let username = entry.username.clone().filter(|u| !u.is_empty());
            return Ok(CredentialSource::Stored(Credential::IdentityToken { username, token: token.clone() }));
        }
        if let Some(auth) = entry.auth.as_ref().filter(|a| !a.is_empty()) {
            let bad = || CredentialError::BadAuth { path: self.path.clone(), key: key.to_string() };
            let decoded = base64_decode(auth.trim()).ok_or_else(bad)?;
            let text = String::from_utf8(decoded).map_err(|_| bad())?;
            let (username, password) = text.split_once(':').ok_or_else(bad)?;
            return Ok(CredentialSource::Stored(Credential::UsernamePassword {
                username: username.to_string(),
                password: password.to_string(),
            }));
        }
        match (&entry.username, &entry.password) {
            (Some(u), Some(p)) if !u.is_empty() => {
                Ok(CredentialSource::Stored(Credential::UsernamePassword { username: u.clone(), password: p.clone() }))
            }
            _ => Ok(CredentialSource::None),
        }
    }

    /// The credential for `registry`, running a credential helper if one is configured.
    pub fn credential_for(&self, registry: &str) -> Result<Option<Credential>, CredentialError> {
        match self.source_for(registry)? {
            CredentialSource::None => Ok(None),
            CredentialSource::Stored(c) => Ok(Some(c)),
            CredentialSource::Helper { helper, server } => run_helper(&self.path, &helper, &server),
        }
    }
}

/// Runs `docker-credential-<helper> get` for `server` (through the `docker_credential` crate,
/// handed a config that names only this helper, so that its own precedence rules do not apply).
fn run_helper(path: &Path, helper: &str, server: &str) -> Result<Option<Credential>, CredentialError> {
    use docker_credential::{CredentialRetrievalError as E, DockerCredential};
    let config = serde_json::json!({ "credHelpers": { server: helper } }).to_string();
    let err = |message: String| CredentialError::Helper {
        path: path.to_path_buf(),
        helper: helper.to_string(),
        server: server.to_string(),
        message,
    };
    match docker_credential::get_credential_from_reader(config.as_bytes(), server) {
        Ok(DockerCredential::UsernamePassword(username, password)) => {
            Ok(Some(Credential::UsernamePassword { username, password }))
        }
        Ok(DockerCredential::IdentityToken(token)) => Ok(Some(Credential::IdentityToken { username: None, token })),
        // The helpers' protocol: "credentials not found" on stdout means none are stored.
        Err(E::HelperFailure { stdout, .. }) if stdout.to_ascii_lowercase().contains("credentials not found") => {
            Ok(None)
        }
        Err(E::HelperFailure { stdout, stderr, .. }) => {
            Err(err(format!("the helper failed: {}", format!("{} {}", stdout.trim(), stderr.trim()).trim())))
        }
        Err(E::HelperCommunicationError) => {
            Err(err(format!("could not run docker-credential-{helper} (is it installed and on PATH?)")))
        }
        Err(e) => Err(err(e.to_string())),
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding (for `Authorization: Basic`).
pub(crate) fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, &b)| acc | (b as u32) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Standard base64, padding optional (Docker writes it padded, hand-written files may not be).
pub(crate) fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    if s.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = B64.iter().position(|&x| x == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(json: &str) -> DockerConfig {
        DockerConfig::parse(json.as_bytes(), Path::new("/cfg/config.json")).unwrap()
    }

    fn up(u: &str, p: &str) -> CredentialSource {
        CredentialSource::Stored(Credential::UsernamePassword { username: u.into(), password: p.into() })
    }

    #[test]
    fn base64_round_trips() {
        for s in ["", "a", "ab", "abc", "abcd", "tester:secret", "ü:🦀"] {
            let e = base64_encode(s.as_bytes());
            assert_eq!(base64_decode(&e).unwrap(), s.as_bytes(), "{s}");
            assert_eq!(base64_decode(e.trim_end_matches('=')).unwrap(), s.as_bytes(), "unpadded {s}");
        }
        assert_eq!(base64_encode(b"tester:secret"), "dGVzdGVyOnNlY3JldA==");
        assert!(base64_decode("a").is_none());
        assert!(base64_decode("ab$d").is_none());
    }

    #[test]
    fn auths_entries_in_all_three_forms() {
        let c = cfg(r#"{"auths":{
            "127.0.0.1:5001":{"auth":"dGVzdGVyOnNlY3JldA=="},
            "https://ghcr.io/v2/":{"username":"u","password":"p"},
            "quay.io":{"identitytoken":"refresh","username":"bob"},
            "empty.example":{}
        }}"#);
        assert_eq!(c.source_for("127.0.0.1:5001").unwrap(), up("tester", "secret"));
        assert_eq!(c.source_for("ghcr.io").unwrap(), up("u", "p"), "keys are matched by host");
        assert_eq!(
            c.source_for("quay.io").unwrap(),
            CredentialSource::Stored(Credential::IdentityToken {
                username: Some("bob".into()),
                token: "refresh".into()
            })
        );
        assert_eq!(c.source_for("empty.example").unwrap(), CredentialSource::None);
        assert_eq!(c.source_for("127.0.0.1:5000").unwrap(), CredentialSource::None, "ports matter");
        assert_eq!(c.credential_for("nowhere.example").unwrap(), None);
    }

    #[test]
    fn docker_hub_uses_the_v1_index_key() {
        assert_eq!(server_key("docker.io"), "https://index.docker.io/v1/");
        assert_eq!(server_key("ghcr.io"), "ghcr.io");
        let c = cfg(r#"{"auths":{"https://index.docker.io/v1/":{"auth":"aHViOnB3"}}}"#);
        assert_eq!(c.source_for("docker.io").unwrap(), up("hub", "pw"));
        let c = cfg(r#"{"auths":{"docker.io":{"auth":"aHViOnB3"}}}"#);
        assert_eq!(c.source_for("docker.io").unwrap(), up("hub", "pw"), "docker.io alias");
        assert_eq!(c.source_for("index.docker.io").unwrap(), up("hub", "pw"));
    }

    #[test]
    fn helpers_take_precedence_like_the_docker_cli() {
        let json = r#"{
            "auths":{"a.example":{"auth":"dTpw"},"b.example":{"auth":"dTpw"}},
            "credsStore":"desktop",
            "credHelpers":{"a.example":"ecr-login","https://index.docker.io/v1/":"hub"}
        }"#;
        let c = cfg(json);
        let helper = |h: &str, s: &str| CredentialSource::Helper { helper: h.into(), server: s.into() };
        assert_eq!(c.source_for("a.example").unwrap(), helper("ecr-login", "a.example"));
        assert_eq!(c.source_for("b.example").unwrap(), helper("desktop", "b.example"), "credsStore beats auths");
        assert_eq!(c.source_for("docker.io").unwrap(), helper("hub", "https://index.docker.io/v1/"));
        let no_store = cfg(&json.replace(r#""credsStore":"desktop","#, ""));
        assert_eq!(no_store.source_for("b.example").unwrap(), up("u", "p"));
        let empty_helper = cfg(r#"{"credHelpers":{"a.example":""},"auths":{"a.example":{"auth":"dTpw"}}}"#);
        assert_eq!(empty_helper.source_for("a.example").unwrap(), up("u", "p"), "an empty helper name is ignored");
    }

    #[test]
    fn bad_files_give_located_errors() {
        let e = DockerConfig::parse(b"{\n  \"auths\": {\n    \"x\": 5\n  }\n}", Path::new("/c.json")).unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("/c.json:3:"), "{msg}");
        let c = cfg(r#"{"auths":{"x.example":{"auth":"!!!"}}}"#);
        assert!(matches!(c.source_for("x.example"), Err(CredentialError::BadAuth { .. })));
        let c = cfg(r#"{"auths":{"x.example":{"auth":"bm9jb2xvbg=="}}}"#); // "nocolon"
        assert!(c.source_for("x.example").unwrap_err().to_string().contains("auths[\"x.example\"]"));
        let missing = DockerConfig::load(Path::new("/nonexistent/strata/config.json")).unwrap();
        assert!(missing.is_none());
        // Unknown fields (Docker writes many) are ignored.
        let c = cfg(r#"{"psFormat":"x","auths":{},"plugins":{"a":{}},"currentContext":"default"}"#);
        assert_eq!(c.source_for("x.example").unwrap(), CredentialSource::None);
    }

    #[test]
    fn a_missing_helper_is_a_clear_error() {
        let c = cfg(r#"{"credsStore":"strata-does-not-exist"}"#);
        let e = c.credential_for("x.example").unwrap_err().to_string();
        assert!(e.contains("docker-credential-strata-does-not-exist"), "{e}");
        assert!(e.contains("/cfg/config.json"), "{e}");
    }

    #[test]
    fn credentials_are_redacted_in_debug_output() {
        let c = Credential::UsernamePassword { username: "u".into(), password: "hunter2".into() };
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
