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
//!
//! Writing ([`store_credential`], [`erase_credential`], for `strata login`/`logout`) follows
//! `docker login`/`logout` (`cli/config/credentials`): when `credHelpers[server]` or
//! `credsStore` names a helper, the secret goes to `docker-credential-<helper> store` (JSON
//! `{"ServerURL","Username","Secret"}` on stdin; an identity token is stored with the user name
//! `<token>`) and `auths[server]` keeps an empty entry, as docker's native store leaves it;
//! otherwise `auths[server]` gets `auth` = base64 of `user:password` (with an identity token:
//! `user:` and `identitytoken`). Every other field of the file is kept as it was; the file is
//! replaced atomically with mode 0600 (the directory is made 0700), as docker writes it.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

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
    #[error("{action} credentials for {server} with docker-credential-{helper} (configured in {path}): {message}")]
    HelperWrite { path: PathBuf, helper: String, server: String, action: &'static str, message: String },
    #[error("writing {path}: {message}")]
    Write { path: PathBuf, message: String },
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
            // docker writes the user name only inside `auth` (as `user:`) next to the token.
            let from_auth = entry
                .auth
                .as_deref()
                .and_then(|a| base64_decode(a.trim()))
                .and_then(|d| String::from_utf8(d).ok())
                .and_then(|t| t.split_once(':').map(|(u, _)| u.to_string()));
            let username = entry.username.clone().or(from_auth).filter(|u| !u.is_empty());
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

/// What to store for a registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Login {
    pub username: String,
    /// The password, or the identity (refresh) token when `identity_token` is set.
    pub secret: String,
    /// The secret is an identity token from the registry's token service.
    pub identity_token: bool,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("username", &self.username)
            .field("identity_token", &self.identity_token)
            .finish_non_exhaustive()
    }
}

/// Where a login was saved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredIn {
    /// In `docker-credential-<helper>`.
    Helper(String),
    /// In the config file itself (base64, not encrypted: docker warns about it too).
    File,
}

/// The config file as JSON, every field kept; an empty object if the file does not exist.
fn read_raw(path: &Path) -> Result<serde_json::Map<String, serde_json::Value>, CredentialError> {
    let data = match std::fs::read(path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(serde_json::Map::new()),
        Err(source) => return Err(CredentialError::Read { path: path.to_path_buf(), source }),
    };
    if data.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::Map::new());
    }
    serde_json::from_slice(&data).map_err(|e| CredentialError::Parse {
        path: path.to_path_buf(),
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })
}

fn write_raw(path: &Path, raw: &serde_json::Map<String, serde_json::Value>) -> Result<(), CredentialError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let werr = |message: String| CredentialError::Write { path: path.to_path_buf(), message };
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(|e| werr(e.to_string()))?;
    let mut text = serde_json::to_string_pretty(raw).map_err(|e| werr(e.to_string()))?;
    text.push('\n');
    let mut tmp = tempfile::Builder::new().prefix(".config.json-").tempfile_in(dir).map_err(|e| werr(e.to_string()))?;
    tmp.as_file().set_permissions(std::fs::Permissions::from_mode(0o600)).map_err(|e| werr(e.to_string()))?;
    tmp.write_all(text.as_bytes()).map_err(|e| werr(e.to_string()))?;
    tmp.as_file().sync_all().map_err(|e| werr(e.to_string()))?;
    tmp.persist(path).map_err(|e| werr(e.error.to_string()))?;
    Ok(())
}

/// The helper the config names for `server`, if any (`credHelpers` before `credsStore`).
fn helper_for(raw: &serde_json::Map<String, serde_json::Value>, server: &str) -> Option<String> {
    let helpers: BTreeMap<String, String> =
        raw.get("credHelpers").and_then(|v| serde_json::from_value(v.clone()).ok()).unwrap_or_default();
    if let Some((_, h)) = lookup(&helpers, server).filter(|(_, h)| !h.is_empty()) {
        return Some(h.clone());
    }
    raw.get("credsStore").and_then(|v| v.as_str()).filter(|s| !s.is_empty()).map(str::to_string)
}

/// Runs `docker-credential-<helper> <action>` with `input` on stdin; returns its stdout.
fn run_helper_action(helper: &str, action: &str, input: &[u8]) -> Result<String, String> {
    let program = format!("docker-credential-{helper}");
    let mut child = Command::new(&program)
        .arg(action)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("could not run {program} (is it installed and on PATH?): {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input).map_err(|e| format!("writing to {program}: {e}"))?;
    }
    let out = child.wait_with_output().map_err(|e| format!("waiting for {program}: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if out.status.success() {
        return Ok(stdout);
    }
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    Err(format!("{program} {action} failed ({}): {}", out.status, format!("{stdout} {stderr}").trim()))
}

/// Saves `login` for `registry` in the config at `path` (or its credential helper), as
/// `docker login` does; see the module docs.
pub fn store_credential(path: &Path, registry: &str, login: &Login) -> Result<StoredIn, CredentialError> {
    let server = server_key(registry);
    let mut raw = read_raw(path)?;
    let helper = helper_for(&raw, &server);
    let entry = match &helper {
        Some(helper) => {
            let (username, secret) = if login.identity_token {
                ("<token>", login.secret.as_str())
            } else {
                (login.username.as_str(), login.secret.as_str())
            };
            let input = serde_json::json!({ "ServerURL": server, "Username": username, "Secret": secret }).to_string();
            run_helper_action(helper, "store", input.as_bytes()).map_err(|message| CredentialError::HelperWrite {
                path: path.to_path_buf(),
                helper: helper.clone(),
                server: server.clone(),
                action: "storing",
                message,
            })?;
            serde_json::json!({})
        }
        None if login.identity_token => serde_json::json!({
            "auth": base64_encode(format!("{}:", login.username).as_bytes()),
            "identitytoken": login.secret,
        }),
        None => serde_json::json!({ "auth": base64_encode(format!("{}:{}", login.username, login.secret).as_bytes()) }),
    };
    let auths = raw.entry("auths").or_insert_with(|| serde_json::json!({}));
    if !auths.is_object() {
        *auths = serde_json::json!({});
    }
    if let Some(map) = auths.as_object_mut() {
        map.insert(server, entry);
    }
    write_raw(path, &raw)?;
    Ok(match helper {
        Some(h) => StoredIn::Helper(h),
        None => StoredIn::File,
    })
}

/// Removes the credentials for `registry` from the config at `path` and from its credential
/// helper, as `docker logout` does (every `auths` key for the same host goes). Returns false if
/// there were none.
pub fn erase_credential(path: &Path, registry: &str) -> Result<bool, CredentialError> {
    let server = server_key(registry);
    let mut raw = read_raw(path)?;
    let mut removed = false;
    if let Some(helper) = helper_for(&raw, &server) {
        match run_helper_action(&helper, "erase", server.as_bytes()) {
            Ok(_) => removed = true,
            Err(m) if m.to_ascii_lowercase().contains("credentials not found") => {}
            Err(message) => {
                return Err(CredentialError::HelperWrite {
                    path: path.to_path_buf(),
                    helper,
                    server,
                    action: "erasing",
                    message,
                });
            }
        }
    }
    let host = hostname(&server).to_string();
    if let Some(auths) = raw.get_mut("auths").and_then(|a| a.as_object_mut()) {
        let before = auths.len();
        auths.retain(|k, _| k != &server && hostname(k) != host);
        if auths.len() != before {
            removed = true;
            write_raw(path, &raw)?;
        }
    }
    Ok(removed)
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
    fn logins_are_written_as_docker_writes_them_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/config.json");
        let login = Login { username: "tester".into(), secret: "secret".into(), identity_token: false };
        assert_eq!(store_credential(&path, "127.0.0.1:5001", &login).unwrap(), StoredIn::File);
        let raw: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(raw, serde_json::json!({"auths": {"127.0.0.1:5001": {"auth": "dGVzdGVyOnNlY3JldA=="}}}));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::metadata(path.parent().unwrap()).unwrap().permissions().mode() & 0o777, 0o700);

        // Other fields and entries survive; Docker Hub goes under its v1 key; tokens as docker.
        let mut other: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        other["psFormat"] = "table {{.ID}}".into();
        std::fs::write(&path, serde_json::to_vec(&other).unwrap()).unwrap();
        let token = Login { username: "bob".into(), secret: "refresh-1".into(), identity_token: true };
        store_credential(&path, "docker.io", &token).unwrap();
        let cfg = DockerConfig::load(&path).unwrap().unwrap();
        assert_eq!(cfg.source_for("127.0.0.1:5001").unwrap(), up("tester", "secret"));
        assert_eq!(
            cfg.source_for("docker.io").unwrap(),
            CredentialSource::Stored(Credential::IdentityToken {
                username: Some("bob".into()),
                token: "refresh-1".into()
            })
        );
        let raw: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(raw["psFormat"], "table {{.ID}}");
        assert_eq!(raw["auths"]["https://index.docker.io/v1/"]["auth"], "Ym9iOg==");

        // Logout removes every key of the host, and says when there was nothing.
        let mut raw2 = raw.clone();
        raw2["auths"]["http://127.0.0.1:5001/v2/"] = serde_json::json!({"auth": "eDp5"});
        std::fs::write(&path, serde_json::to_vec(&raw2).unwrap()).unwrap();
        assert!(erase_credential(&path, "127.0.0.1:5001").unwrap());
        assert!(!erase_credential(&path, "127.0.0.1:5001").unwrap());
        let cfg = DockerConfig::load(&path).unwrap().unwrap();
        assert_eq!(cfg.source_for("127.0.0.1:5001").unwrap(), CredentialSource::None);
        assert!(cfg.auths.contains_key("https://index.docker.io/v1/"));
        assert!(!erase_credential(&dir.path().join("absent/config.json"), "x.example").unwrap());
    }

    #[test]
    fn a_config_that_is_not_json_is_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, b"{oops").unwrap();
        let login = Login { username: "u".into(), secret: "p".into(), identity_token: false };
        let e = store_credential(&path, "r.example", &login).unwrap_err();
        assert!(e.to_string().contains("config.json:1:"), "{e}");
        assert_eq!(std::fs::read(&path).unwrap(), b"{oops");
    }

    #[test]
    fn credentials_are_redacted_in_debug_output() {
        let c = Credential::UsernamePassword { username: "u".into(), password: "hunter2".into() };
        assert!(!format!("{c:?}").contains("hunter2"));
        let l = Login { username: "u".into(), secret: "hunter2".into(), identity_token: false };
        assert!(!format!("{l:?}").contains("hunter2"));
    }
}
