//! `ADD https://...`: BuildKit's HTTP source, as the Dockerfile frontend uses it.
//!
//! Verified with BuildKit 0.13 (a local server, the layers listed): the file is named by the
//! frontend (the URL path's last element, `__unnamed__` when there is none; a
//! `Content-Disposition` header and redirects do not change it), it has mode 0600 and owner
//! 0:0, its modification time is the `Last-Modified` header (the Unix epoch without one), and it
//! is never unpacked. A status other than 200 fails ("invalid response status 404"); a
//! `--checksum` mismatch fails after the download.
//!
//! Cache layout, under `ROOT/cache/remote/http/`:
//! - `meta/<name of url+filename>.json`: the last download's validators and content digest;
//! - `files/<name of url, filename, digest, mtime>/<filename>`: an immutable download.
//!
//! The step's key covers the URL, the file name, the content digest and the modification time,
//! so a changed remote file (or only its date) makes the copies from it run again.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use strata_store::digest::to_hex;

use super::{Fetched, Fetcher, RemoteError, install_dir, name_of, parse_http_date};
use crate::cache::KeyBuilder;
use crate::graph::{HttpSource, LocalSource};

/// Downloads larger than this are refused (a hostile server cannot fill the disk forever).
const MAX_DOWNLOAD: u64 = 64 << 30;

/// What is remembered about the last download of a URL.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct Meta {
    url: String,
    filename: String,
    /// `sha256:<hex>` of the content.
    digest: String,
    /// Modification time given to the file (seconds since the epoch).
    mtime: i64,
    etag: Option<String>,
    last_modified: Option<String>,
}

impl Fetcher<'_> {
    /// Downloads (or revalidates) `h` and returns the directory holding the file.
    pub fn http(&self, h: &HttpSource) -> Result<Fetched, RemoteError> {
        check_filename(&h.url, &h.filename)?;
        let expected = h.checksum.as_deref().map(parse_checksum).transpose()?;
        let base = self.dir("http")?;
        let meta_dir = base.join("meta");
        let files = base.join("files");
        for d in [&meta_dir, &files] {
            fs::create_dir_all(d).map_err(RemoteError::io(format!("creating {}", d.display())))?;
        }
        let meta_path = meta_dir.join(format!("{}.json", name_of(&[&h.url, &h.filename])));
        let previous: Option<Meta> = fs::read(&meta_path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .filter(|m: &Meta| m.url == h.url && m.filename == h.filename && content_dir(&files, m).is_dir());

        // A checksummed download already here is the content asked for: no request at all.
        if let (Some(want), Some(prev)) = (&expected, &previous)
            && &prev.digest == want
        {
            (self.status)("using the cached download (same --checksum)");
            return Ok(fetched(&files, prev));
        }

        let client = self.registry.ok_or_else(|| RemoteError::NoClient(h.url.clone()))?;
        let mut headers = Vec::new();
        if let Some(prev) = &previous {
            if let Some(e) = &prev.etag {
                headers.push(("If-None-Match", e.clone()));
            }
            if let Some(l) = &prev.last_modified {
                headers.push(("If-Modified-Since", l.clone()));
            }
        }
        let tmp = tempfile::Builder::new()
            .prefix(".download-")
            .tempdir_in(&files)
            .map_err(RemoteError::io("creating a download directory"))?;
        let file_path = tmp.path().join(&h.filename);
        let file =
            fs::File::create(&file_path).map_err(RemoteError::io(format!("creating {}", file_path.display())))?;
        let mut hashing = HashingWriter { inner: std::io::BufWriter::new(file), hash: Sha256::new() };
        let progress = |n: u64| (self.status)(&format!("{} downloaded", human(n)));
        let resp = client.fetch_url(&h.url, &headers, &mut hashing, MAX_DOWNLOAD, &progress)?;
        if resp.status == 304 {
            let Some(prev) = previous else {
                return Err(RemoteError::BadSource {
                    url: h.url.clone(),
                    reason: "the server answered 304 Not Modified to a request that was not conditional".into(),
                });
            };
            (self.status)("not modified since the last download");
            if let Some(want) = &expected
                && want != &prev.digest
            {
                return Err(RemoteError::Checksum { url: h.url.clone(), expected: want.clone(), actual: prev.digest });
            }
            return Ok(fetched(&files, &prev));
        }
        let HashingWriter { inner, hash } = hashing;
        inner
            .into_inner()
            .map_err(|e| RemoteError::Io { what: format!("writing {}", file_path.display()), source: e.into_error() })?
            .sync_all()
            .map_err(RemoteError::io(format!("writing {}", file_path.display())))?;
        let digest = format!("sha256:{}", to_hex(&hash.finalize()));
        if let Some(want) = &expected
            && want != &digest
        {
            return Err(RemoteError::Checksum { url: h.url.clone(), expected: want.clone(), actual: digest });
        }
        let mtime = resp.last_modified.as_deref().and_then(parse_http_date).unwrap_or(0);
        finish_file(&file_path, mtime)?;
        let meta = Meta {
            url: h.url.clone(),
            filename: h.filename.clone(),
            digest,
            mtime,
            etag: resp.etag,
            last_modified: resp.last_modified,
        };
        install_dir(tmp.path(), &content_dir(&files, &meta))?;
        // A lost metadata write only costs a full download next time.
        if let Ok(json) = serde_json::to_vec(&meta) {
            let tmp_meta = meta_path.with_extension(format!("tmp{}", std::process::id()));
            if fs::write(&tmp_meta, json).is_ok() {
                let _ = fs::rename(&tmp_meta, &meta_path);
            }
        }
        Ok(fetched(&files, &meta))
    }
}

fn content_dir(files: &Path, m: &Meta) -> PathBuf {
    files.join(name_of(&[&m.url, &m.filename, &m.digest, &m.mtime.to_string()]))
}

fn fetched(files: &Path, m: &Meta) -> Fetched {
    let key = KeyBuilder::new("http")
        .add("url", &m.url)
        .add("filename", &m.filename)
        .add("digest", &m.digest)
        .add("mtime", m.mtime)
        .finish()
        .0;
    Fetched { source: LocalSource { name: "http".into(), path: content_dir(files, m), filter: None }, key }
}

/// Mode 0600 and the modification (and access) time BuildKit gives a download.
fn finish_file(path: &Path, mtime: i64) -> Result<(), RemoteError> {
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))
        .map_err(RemoteError::io(format!("chmod {}", path.display())))?;
    let t = rustix::fs::Timespec { tv_sec: mtime, tv_nsec: 0 };
    let times = rustix::fs::Timestamps { last_access: t, last_modification: t };
    rustix::fs::utimensat(rustix::fs::CWD, path, &times, rustix::fs::AtFlags::empty())
        .map_err(|e| RemoteError::Io { what: format!("setting the time of {}", path.display()), source: e.into() })
}

/// A name the download can be given: one path element, not `.` or `..`.
fn check_filename(url: &str, name: &str) -> Result<(), RemoteError> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(RemoteError::BadSource {
            url: url.to_string(),
            reason: format!("{name:?} cannot be the name of the downloaded file"),
        });
    }
    Ok(())
}

/// `sha256:<64 lower-case hex>` (BuildKit's `digest.Parse`, which accepts only registered
/// algorithms; sha256 is the one that matters for `ADD --checksum`).
pub(crate) fn parse_checksum(s: &str) -> Result<String, RemoteError> {
    match s.strip_prefix("sha256:") {
        Some(hex) if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) => {
            Ok(s.to_string())
        }
        _ => Err(RemoteError::BadChecksum(s.to_string())),
    }
}

fn human(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

struct HashingWriter<W: Write> {
    inner: W,
    hash: Sha256,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_and_names_are_validated() {
        let ok = format!("sha256:{}", "a".repeat(64));
        assert_eq!(parse_checksum(&ok).unwrap(), ok);
        for bad in ["", "sha256:", "sha256:abc", "md5:00", &format!("sha256:{}", "A".repeat(64)), &"a".repeat(64)] {
            assert!(parse_checksum(bad).is_err(), "{bad:?}");
        }
        for bad in ["", ".", "..", "a/b"] {
            assert!(check_filename("http://x/", bad).is_err(), "{bad:?}");
        }
        assert!(check_filename("http://x/", "__unnamed__").is_ok());
    }
}
