//! Image references (`[registry/]repository[:tag][@digest]`) with Docker's normalization.
//!
//! Rules, as `docker` and BuildKit apply them (distribution/reference `ParseNormalizedNamed`):
//! - the first path component is a registry if it contains `.` or `:` or is `localhost`;
//!   otherwise the registry is `docker.io`, and a one-component Docker Hub name gets `library/`;
//! - `index.docker.io` is the same registry as `docker.io`;
//! - repository components are lower-case `[a-z0-9]+` joined by `.`, `_`, `__` or runs of `-`;
//! - a tag is `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`; with neither tag nor digest, the tag is `latest`.

use std::fmt;
use std::str::FromStr;

use crate::digest::Digest;

/// Docker Hub's canonical name.
pub const DOCKER_HUB: &str = "docker.io";

/// A parsed, normalized image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// `docker.io`, `127.0.0.1:5000`, `ghcr.io`, …
    pub registry: String,
    /// `library/busybox`, `demo/app`, …
    pub repository: String,
    /// The tag, if the reference names one (`latest` is filled in when neither tag nor digest is given).
    pub tag: Option<String>,
    /// The digest, if the reference pins one.
    pub digest: Option<Digest>,
}

/// Why a string is not an image reference.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReferenceError {
    #[error("invalid reference format: empty reference")]
    Empty,
    #[error("invalid reference format: repository name ({0}) must be lowercase")]
    Uppercase(String),
    #[error("invalid reference format: {0:?} is not a valid repository name")]
    BadName(String),
    #[error("invalid reference format: {0:?} is not a valid tag")]
    BadTag(String),
    #[error("invalid reference format: bad digest in {reference:?}: {source}")]
    BadDigest {
        reference: String,
        #[source]
        source: crate::digest::DigestError,
    },
    #[error("invalid reference format: repository name {0:?} is longer than 255 characters")]
    TooLong(String),
}

impl Reference {
    /// Parses and normalizes a reference, filling in `latest` when no tag or digest is given.
    pub fn parse(s: &str) -> Result<Reference, ReferenceError> {
        let mut r = Reference::parse_unfilled(s)?;
        if r.tag.is_none() && r.digest.is_none() {
            r.tag = Some("latest".to_string());
        }
        Ok(r)
    }

    /// Parses and normalizes a reference without defaulting the tag.
    pub fn parse_unfilled(s: &str) -> Result<Reference, ReferenceError> {
        if s.is_empty() {
            return Err(ReferenceError::Empty);
        }
        let (rest, digest) = match s.split_once('@') {
            Some((name, d)) => {
                let digest = d
                    .parse::<Digest>()
                    .map_err(|source| ReferenceError::BadDigest { reference: s.to_string(), source })?;
                (name, Some(digest))
            }
            None => (s, None),
        };
        // A tag follows the last ':' that comes after the last '/' (a ':' before it is a port).
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(t) = tag
            && !valid_tag(t)
        {
            return Err(ReferenceError::BadTag(t.to_string()));
        }
        let (registry, repository) = split_registry(name);
        if repository.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(ReferenceError::Uppercase(repository.to_string()));
        }
        if !valid_repository(repository) || (!registry.is_empty() && !valid_registry(registry)) {
            return Err(ReferenceError::BadName(name.to_string()));
        }
        let (registry, repository) = if registry.is_empty() || registry == "index.docker.io" {
            let repo = if repository.contains('/') { repository.to_string() } else { format!("library/{repository}") };
            (DOCKER_HUB.to_string(), repo)
        } else {
            (registry.to_string(), repository.to_string())
        };
        if registry.len() + 1 + repository.len() > 255 {
            return Err(ReferenceError::TooLong(name.to_string()));
        }
        Ok(Reference { registry, repository, tag: tag.map(str::to_string), digest })
    }

    /// `registry/repository`, the name without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The same reference pinned to `digest` (tag kept for display, as BuildKit shows them).
    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference { digest: Some(digest), ..self.clone() }
    }

    /// The same repository with another tag and no digest.
    pub fn with_tag(&self, tag: &str) -> Reference {
        Reference { tag: Some(tag.to_string()), digest: None, ..self.clone() }
    }

    /// What to ask the registry for: the digest if pinned, else the tag.
    pub fn manifest_ref(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".to_string(),
        }
    }

    /// The short form Docker prints (`busybox:latest` for `docker.io/library/busybox:latest`).
    pub fn familiar(&self) -> String {
        let full = self.to_string();
        let trimmed = full.strip_prefix("docker.io/").unwrap_or(&full);
        trimmed.strip_prefix("library/").unwrap_or(trimmed).to_string()
    }

    /// The host to contact for this registry (Docker Hub's API lives on another host).
    pub fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB { "registry-1.docker.io" } else { &self.registry }
    }

    /// Loopback registries speak plain HTTP, as Docker allows without configuration; all
    /// others HTTPS.
    pub fn is_loopback_registry(&self) -> bool {
        let host = match self.registry.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or(""),
            None => self.registry.split(':').next().unwrap_or(""),
        };
        host == "localhost" || host == "::1" || host.starts_with("127.")
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Reference, ReferenceError> {
        Reference::parse(s)
    }
}

/// Splits `name` into (registry, repository); registry is empty when the name has none.
fn split_registry(name: &str) -> (&str, &str) {
    match name.split_once('/') {
        Some((first, rest)) if first.contains('.') || first.contains(':') || first == "localhost" => (first, rest),
        Some((first, rest)) if first.chars().any(|c| c.is_ascii_uppercase()) => (first, rest),
        _ => ("", name),
    }
}

fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

fn valid_registry(r: &str) -> bool {
    if let Some(v6) = r.strip_prefix('[') {
        return v6.contains(']');
    }
    let (host, port) = match r.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (r, None),
    };
    let host_ok = !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    host_ok && port.is_none_or(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()))
}

fn valid_repository(repo: &str) -> bool {
    !repo.is_empty() && repo.split('/').all(valid_path_component)
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`
fn valid_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !is_alnum(b[0]) || !is_alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum(b[i]) {
            i += 1;
            continue;
        }
        // a separator run: ".", "_", "__", or one or more "-"
        let start = i;
        while i < b.len() && !is_alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn is_alnum(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hub_names_are_normalized() {
        let r = Reference::parse("busybox").unwrap();
        assert_eq!(r.to_string(), "docker.io/library/busybox:latest");
        assert_eq!(r.familiar(), "busybox:latest");
        assert_eq!(r.api_host(), "registry-1.docker.io");
        let r = Reference::parse("index.docker.io/user/app:v1").unwrap();
        assert_eq!(r.to_string(), "docker.io/user/app:v1");
        assert_eq!(r.familiar(), "user/app:v1");
    }

    #[test]
    fn registry_with_port_and_nested_repository() {
        let r = Reference::parse("127.0.0.1:5000/demo/app:1").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()),
            ("127.0.0.1:5000", "demo/app", Some("1"))
        );
        assert!(r.is_loopback_registry());
        let r = Reference::parse("localhost:5000/x").unwrap();
        assert_eq!(r.tag.as_deref(), Some("latest"));
        assert!(r.is_loopback_registry());
        assert!(!Reference::parse("ghcr.io/a/b").unwrap().is_loopback_registry());
    }

    #[test]
    fn digests_pin_and_keep_tag() {
        let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let r = Reference::parse(&format!("busybox:1.36@{d}")).unwrap();
        assert_eq!(r.tag.as_deref(), Some("1.36"));
        assert_eq!(r.manifest_ref(), d);
        let r = Reference::parse(&format!("busybox@{d}")).unwrap();
        assert_eq!(r.tag, None);
        assert_eq!(r.to_string(), format!("docker.io/library/busybox@{d}"));
    }

    #[test]
    fn invalid_references_are_rejected_with_reasons() {
        assert!(matches!(Reference::parse("Busybox"), Err(ReferenceError::Uppercase(_))));
        assert!(matches!(Reference::parse(""), Err(ReferenceError::Empty)));
        assert!(matches!(Reference::parse("busybox:bad tag"), Err(ReferenceError::BadTag(_))));
        assert!(matches!(Reference::parse("a//b"), Err(ReferenceError::BadName(_))));
        assert!(matches!(Reference::parse("busybox@sha256:zz"), Err(ReferenceError::BadDigest { .. })));
        assert!(Reference::parse("my-app__x/a-b--c").is_ok());
        // A first component with a dot is a registry host, and hosts cannot hold `_`.
        assert!(matches!(Reference::parse("my-app__x.y/a"), Err(ReferenceError::BadName(_))));
        assert!(Reference::parse("a_-b").is_err());
    }
}
