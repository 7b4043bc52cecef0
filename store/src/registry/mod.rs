//! The OCI distribution client: pulls and pushes manifests and blobs over the registry HTTP API
//! (OCI distribution-spec v1.1, the `/v2/` API Docker and BuildKit speak), with Docker's
//! authentication.
//!
//! How it fits: the builder resolves `FROM` images and fetches their layers into the
//! [`BlobStore`](crate::blobs::BlobStore) through [`RegistryClient::resolve`] and
//! [`RegistryClient::fetch_blob`]; `--push` sends a stored image with
//! [`RegistryClient::push_image`]. Nothing outside this module sees HTTP, reqwest or tokio.
//!
//! Design:
//! - **Blocking API over an owned runtime.** Callers are plain threads (several at once); the
//!   client owns a small multi-threaded tokio runtime and every public method drives its future
//!   with `block_on` on the caller's thread. Downloads pull one body chunk at a time and write it
//!   on the caller's thread; uploads stream the blob file through a pipe into the request body,
//!   so file I/O never blocks the runtime and progress is counted where the bytes are.
//! - **Transport** (`client.rs`): plain HTTP for loopback registries (127.0.0.0/8, `::1`,
//!   `localhost`, which Docker treats as insecure) and for [`RegistryOptions::insecure_hosts`];
//!   HTTPS with rustls otherwise. `docker.io` is served by `registry-1.docker.io`.
//!   GET and HEAD are retried (3 attempts, short backoff) on connection errors and 5xx.
//! - **Auth** (`auth.rs`, [`credentials`]): requests go out anonymously (or with a cached token);
//!   a 401 is answered per its `WWW-Authenticate` challenge — `Basic` with the user's
//!   credentials, `Bearer` by fetching a token from the realm (with the credentials, if any) for
//!   the repository scope, cached per (registry, scope) until it expires — and retried once.
//!   Credentials come from Docker's `config.json` exactly as the docker CLI picks them
//!   (`credHelpers`, then `credsStore`, then `auths`), read only when a registry asks.
//! - **Integrity** (`pull.rs`): manifests fetched by digest, and any `Docker-Content-Digest`
//!   header, are checked against the bytes; blobs are streamed into a blob-store ingest file
//!   whose size and digest are verified before it is committed, so a lying or failing registry
//!   can never leave a blob in the store. Docker schema 1 manifests are refused.
//! - **Push** (`push.rs`): blobs the registry lacks are mounted from another repository of the
//!   same registry when the store knows one that holds them ([`sources`]), else uploaded with
//!   POST + one monolithic streaming PUT (`?digest=`), or PATCH chunks when the registry refuses
//!   large requests, several blobs at a time; a broken upload is resumed where the registry says
//!   it stopped. The manifest goes last, so a registry never holds a manifest whose blobs are
//!   missing.
//! - **Pull** (`pull.rs`): a broken download continues with a `Range` request.
//! - **Login** (`login.rs`): credentials are checked against `/v2/` as `docker login` does;
//!   [`credentials`] stores them in config.json or a credential helper.

mod auth;
mod client;
pub mod credentials;
mod fetch;
mod login;
mod pull;
mod push;
pub mod sources;

use std::path::PathBuf;

use crate::blobs::BlobError;
use crate::digest::Digest;
use crate::oci::{Descriptor, Manifest};

pub use auth::{Challenge, parse_www_authenticate};
pub use client::RegistryClient;
pub use credentials::{Credential, CredentialError};
pub use fetch::{FetchError, UrlResponse};
pub use login::LoginOutcome;
pub use push::{PUSH_CONCURRENCY, UPLOAD_ATTEMPTS};
pub use sources::BlobSources;

/// How a [`RegistryClient`] is set up.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// Docker's `config.json`; `None` means `$DOCKER_CONFIG/config.json`, else
    /// `~/.docker/config.json`. A missing file means no credentials.
    pub docker_config: Option<PathBuf>,
    /// Registries (`host` or `host:port`) spoken to over plain HTTP, besides loopback ones.
    pub insecure_hosts: Vec<String>,
    /// The `User-Agent` header.
    pub user_agent: String,
    /// Where to remember which repositories hold which blobs (see [`sources`]); `None`: no
    /// cross-repository mounts.
    pub blob_sources: Option<PathBuf>,
    /// Upload blobs larger than this in PATCH chunks of this size instead of one PUT (for
    /// registries or proxies that limit request sizes); `None`: one PUT, falling back to chunks
    /// only when the registry refuses it as too large.
    pub chunk_size: Option<u64>,
}

impl Default for RegistryOptions {
    fn default() -> RegistryOptions {
        RegistryOptions {
            docker_config: None,
            insecure_hosts: Vec::new(),
            user_agent: format!("strata/{}", env!("CARGO_PKG_VERSION")),
            blob_sources: None,
            chunk_size: None,
        }
    }
}

/// A resolved image: the platform manifest, its exact bytes and its descriptor.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The single-platform manifest.
    pub manifest: Manifest,
    /// The manifest exactly as the registry served it (its digest is `descriptor.digest`).
    pub manifest_bytes: Vec<u8>,
    /// Media type, digest and size of the platform manifest (with the index entry's platform and
    /// annotations when it was picked from an index).
    pub descriptor: Descriptor,
    /// The digest of the index (or manifest list) the manifest was picked from, if any.
    pub index_digest: Option<Digest>,
    /// The top-level index (or manifest list) as served, with its descriptor, when the
    /// reference named one: stored under the name so that each platform resolves from it.
    pub index: Option<(Descriptor, Vec<u8>)>,
}

/// What [`RegistryClient::push_blob`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    /// The registry already had the blob; nothing was sent.
    Existed,
    /// The registry mounted the blob from another of its repositories; nothing was sent.
    Mounted,
    /// The blob was uploaded.
    Uploaded,
}

/// Errors of the registry client. Every variant names the image reference involved, and
/// HTTP-level ones the method, URL and status, with the registry's own error text.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{reference}: {method} {url}: {status} {}: {message}", reason(*status))]
    Status { reference: String, method: String, url: String, status: u16, message: String },
    #[error("{reference}: {method} {url}: {status} {}: {message}: {hint}", reason(*status))]
    Unauthorized { reference: String, method: String, url: String, status: u16, message: String, hint: String },
    #[error("{reference}: {method} {url}: {detail}")]
    Connection { reference: String, method: String, url: String, detail: String },
    #[error("{reference}: {what} has digest {actual}, expected {expected}")]
    DigestMismatch { reference: String, what: String, expected: Digest, actual: Digest },
    #[error("{reference}: {what} has {actual} bytes, expected {expected}")]
    SizeMismatch { reference: String, what: String, expected: u64, actual: u64 },
    #[error("{reference}: {what} is larger than {limit} bytes")]
    TooLarge { reference: String, what: String, limit: u64 },
    #[error(
        "{reference}: the registry served a Docker schema 1 manifest ({media_type}); schema 1 is deprecated and \
         not supported: push the image again with a current Docker, BuildKit or skopeo"
    )]
    Schema1 { reference: String, media_type: String },
    #[error(
        "{reference}: unsupported manifest media type {media_type:?} (expected an OCI or Docker schema 2 manifest or index)"
    )]
    UnsupportedMediaType { reference: String, media_type: String },
    #[error("{reference}: invalid {what}: {detail}")]
    BadManifest { reference: String, what: String, detail: String },
    #[error("{reference}: no match for platform {wanted} in manifest list {index} (available: {available})")]
    NoMatchingPlatform { reference: String, wanted: String, index: Digest, available: String },
    #[error("{registry}: {message}")]
    Auth { registry: String, message: String },
    #[error(transparent)]
    Credentials(#[from] CredentialError),
    #[error("{reference}: {source}")]
    Blob {
        reference: String,
        #[source]
        source: BlobError,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("setting up the registry client: {0}")]
    Setup(String),
}

/// The reason phrase of an HTTP status (`Not Found` for 404).
fn reason(status: u16) -> &'static str {
    reqwest::StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("")
}
