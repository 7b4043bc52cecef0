//! Remote sources: files downloaded over HTTP(S) ([`Op::Http`], `ADD https://...`) and git
//! checkouts ([`Op::Git`], `ADD https://host/repo.git#ref:dir` and git build contexts).
//!
//! Each fetch ends in a directory of the store's cache that copies read exactly like the build
//! context (a [`LocalSource`], owners reset to 0:0), and a cache key that pins its content:
//! - HTTP ([`http`]): the key is the URL, the file name, the content digest and the file's
//!   modification time. With `--checksum` and a copy already downloaded, nothing is fetched
//!   (BuildKit keys checksummed downloads by the checksum); otherwise the download is
//!   revalidated with the `ETag` / `Last-Modified` the last download had (a 304 reuses it),
//!   as BuildKit's HTTP source does.
//! - git ([`git`]): the reference is resolved to a commit with `git ls-remote`, and the key is
//!   the remote, the commit, the subdirectory and whether `.git` is kept. Checkouts are made by
//!   the real `git` binary, once per (remote, commit, keep-git-dir), and reused.
//!
//! Downloads and checkouts are made in a temporary directory beside their final place and
//! renamed into it, so a crash or a concurrent build never leaves a partial one to be reused.

mod git;
mod http;
mod httpdate;

use std::path::{Path, PathBuf};

use strata_store::Store;
use strata_store::digest::Digest;
use strata_store::registry::RegistryClient;

use crate::graph::{LocalSource, Op};

pub use git::{GitCheckout, GitUrl, ls_remote, parse_git_url};
pub use httpdate::parse_http_date;

/// Fetches remote sources into the store's cache.
pub struct Fetcher<'a> {
    pub store: &'a Store,
    /// The HTTP transport (the registry client's); HTTP sources fail without one.
    pub registry: Option<&'a RegistryClient>,
    /// Progress text for the step.
    pub status: &'a dyn Fn(&str),
}

/// A fetched source: the directory copies read, and the key that identifies its content.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub source: LocalSource,
    pub key: Digest,
}

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("{0}")]
    Download(#[from] strata_store::registry::FetchError),
    #[error("{url}: checksum mismatch: the download has {actual}, --checksum expects {expected}")]
    Checksum { url: String, expected: String, actual: String },
    #[error("--checksum={0}: not a sha256 digest (sha256:<64 hex digits>)")]
    BadChecksum(String),
    #[error("{url}: {reason}")]
    BadSource { url: String, reason: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("git {args}: {message}")]
    Git { args: String, message: String },
    #[error("{remote}: {message}")]
    GitRef { remote: String, message: String },
    #[error("downloading {0} needs an HTTP client")]
    NoClient(String),
    #[error("not a remote source")]
    NotRemote,
}

impl RemoteError {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> RemoteError {
        let what = what.into();
        move |source| RemoteError::Io { what, source }
    }
}

impl Fetcher<'_> {
    /// Fetches the source `op` describes.
    pub fn fetch(&self, op: &Op) -> Result<Fetched, RemoteError> {
        match op {
            Op::Http(h) => self.http(h),
            Op::Git(g) => self.git(g),
            _ => Err(RemoteError::NotRemote),
        }
    }

    /// `ROOT/cache/remote/<kind>`, created if missing.
    fn dir(&self, kind: &str) -> Result<PathBuf, RemoteError> {
        let d = self.store.cache_dir().join("remote").join(kind);
        std::fs::create_dir_all(&d).map_err(RemoteError::io(format!("creating {}", d.display())))?;
        Ok(d)
    }
}

/// Moves the finished directory `tmp` to `dest`, unless another build put one there first
/// (then `tmp` is removed and theirs, identical by construction, is used).
fn install_dir(tmp: &Path, dest: &Path) -> Result<(), RemoteError> {
    match std::fs::rename(tmp, dest) {
        Ok(()) => Ok(()),
        Err(_) if dest.is_dir() => {
            let _ = std::fs::remove_dir_all(tmp);
            Ok(())
        }
        Err(e) => Err(RemoteError::Io { what: format!("moving {} into place", dest.display()), source: e }),
    }
}

/// Lower-case hex sha256 of `parts` joined by NUL bytes: a file-system-safe name for them.
fn name_of(parts: &[&str]) -> String {
    use sha2::{Digest as _, Sha256};
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0u8]);
    }
    strata_store::digest::to_hex(&h.finalize())
}
