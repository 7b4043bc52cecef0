//! Pushing: blobs (only those the registry lacks), manifests, and whole stored images.
//!
//! A blob upload follows distribution-spec "Pushing blobs" in its simplest portable form: `HEAD`
//! the blob (200 → nothing to do), `POST /v2/NAME/blobs/uploads/` (202 + `Location`), then one
//! monolithic `PUT <location>?digest=…` with the whole blob and its `Content-Length` (201). The
//! body streams from the blob file through a pipe written on the caller's thread, so memory
//! stays flat for any layer size and progress counts bytes as they leave. Requests in a push
//! ask for the `pull,push` scope from the first one, so one token serves the whole sequence.
//!
//! [`RegistryClient::push_image`] uploads an image's config and layers (at most
//! [`PUSH_CONCURRENCY`] at once) and then its manifest; for an index it pushes every child image
//! by digest first, then the index. Manifests go last so that a tag never points at content
//! the registry does not have.

use std::io::Read;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use reqwest::{Method, StatusCode};

use super::client::{Access, Call, RegistryClient, error_chain};
use super::pull::{parse_json, parse_manifest};
use super::{PushOutcome, RegistryError};
use crate::blobs::{BlobError, BlobStore};
use crate::digest::Digest;
use crate::oci::{Descriptor, Index, media};
use crate::reference::Reference;

/// Blobs of one image uploaded at the same time.
pub const PUSH_CONCURRENCY: usize = 4;

impl RegistryClient {
    /// Uploads a blob from the store if the registry lacks it. `progress` gets the bytes of this
    /// blob sent so far; it is not called for a blob the registry already has.
    pub fn push_blob(
        &self,
        r: &Reference,
        desc: &Descriptor,
        blobs: &BlobStore,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<PushOutcome, RegistryError> {
        let blob_err = |source: BlobError| RegistryError::Blob { reference: r.to_string(), source };
        let head = Call {
            r,
            access: Access::Push,
            method: Method::HEAD,
            url: self.url(r, &format!("blobs/{}", desc.digest))?,
            headers: Vec::new(),
            body: None,
        };
        let resp = self.send(&head)?;
        match resp.status() {
            StatusCode::OK => return Ok(PushOutcome::Existed),
            StatusCode::NOT_FOUND => {}
            _ => {
                self.check(&head, resp, &[StatusCode::OK])?;
            }
        }
        let local_size = blobs.size(&desc.digest).map_err(blob_err)?;
        if local_size != desc.size {
            return Err(RegistryError::SizeMismatch {
                reference: r.to_string(),
                what: format!("stored blob {}", desc.digest),
                expected: desc.size,
                actual: local_size,
            });
        }

        let start = Call {
            r,
            access: Access::Push,
            method: Method::POST,
            url: self.url(r, "blobs/uploads/")?,
            headers: Vec::new(),
            body: Some(Vec::new()),
        };
        let resp = self.send(&start)?;
        let resp = self.check(&start, resp, &[StatusCode::ACCEPTED])?;
        let location =
            resp.headers().get("Location").and_then(|v| v.to_str().ok()).ok_or_else(|| RegistryError::Status {
                reference: r.to_string(),
                method: start.method.to_string(),
                url: start.url.to_string(),
                status: resp.status().as_u16(),
                message: "upload started without a Location header".to_string(),
            })?;
        // Location may be absolute or relative to the registry.
        let mut url = start.url.join(location).map_err(|e| RegistryError::Status {
            reference: r.to_string(),
            method: start.method.to_string(),
            url: start.url.to_string(),
            status: resp.status().as_u16(),
            message: format!("bad upload Location {location:?}: {e}"),
        })?;
        url.query_pairs_mut().append_pair("digest", &desc.digest.to_string());
        let put = Call { r, access: Access::Push, method: Method::PUT, url, headers: Vec::new(), body: None };
        let resp = self.put_blob_streamed(&put, desc, blobs, progress)?;
        let resp = self.check(&put, resp, &[StatusCode::CREATED, StatusCode::NO_CONTENT])?;
        check_digest_header(r, &resp, &desc.digest, "uploaded blob")?;
        Ok(PushOutcome::Uploaded)
    }

    /// Sends `call` as a PUT whose body is the blob, streamed from its file through a pipe.
    fn put_blob_streamed(
        &self,
        call: &Call<'_>,
        desc: &Descriptor,
        blobs: &BlobStore,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<reqwest::Response, RegistryError> {
        let r = call.r;
        let mut file =
            blobs.open_blob(&desc.digest).map_err(|source| RegistryError::Blob { reference: r.to_string(), source })?;
        let io_err = |context: String| move |source| RegistryError::Io { context, source };
        // CLOEXEC: a credential helper started meanwhile must not inherit the write end, or
        // the body would never end.
        let (rd, wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| io_err("creating a pipe for the upload".to_string())(e.into()))?;
        let body = reqwest::Body::from(tokio::fs::File::from_std(std::fs::File::from(rd)));
        let mut req = self
            .http
            .put(call.url.clone())
            .header("Content-Type", "application/octet-stream")
            .header("Content-Length", desc.size.to_string())
            .body(body);
        if let Some(h) = self.auth_header(r, call.access) {
            req = req.header("Authorization", h);
        }
        let task = self.rt.spawn(async move { req.send().await });
        let mut pipe = std::fs::File::from(wr);
        let mut buf = vec![0u8; 256 << 10];
        let mut sent: u64 = 0;
        let mut read_error = None;
        loop {
            let n = match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    read_error = Some(e);
                    break;
                }
            };
            // A write error means the request is over (the pipe's reader is gone): its result
            // below says why.
            if std::io::Write::write_all(&mut pipe, &buf[..n]).is_err() {
                break;
            }
            sent += n as u64;
            progress(sent);
        }
        drop(pipe);
        let result = self.rt.block_on(task).map_err(|e| RegistryError::Connection {
            reference: r.to_string(),
            method: call.method.to_string(),
            url: call.url.to_string(),
            detail: format!("upload task failed: {e}"),
        })?;
        if let Some(e) = read_error {
            return Err(io_err(format!("reading blob {} for upload", desc.digest))(e));
        }
        result.map_err(|e| RegistryError::Connection {
            reference: r.to_string(),
            method: call.method.to_string(),
            url: call.url.to_string(),
            detail: format!("uploading blob {} ({sent} of {} bytes sent): {}", desc.digest, desc.size, error_chain(&e)),
        })
    }

    /// PUTs a manifest (or index) under `r`'s tag, or under its digest when `r` has no tag, and
    /// returns the digest. If `r` pins a digest, `bytes` must have it.
    pub fn push_manifest(&self, r: &Reference, media_type: &str, bytes: &[u8]) -> Result<Digest, RegistryError> {
        let digest = Digest::of(bytes);
        if let Some(pinned) = &r.digest
            && pinned != &digest
        {
            return Err(RegistryError::DigestMismatch {
                reference: r.to_string(),
                what: "manifest to push".to_string(),
                expected: pinned.clone(),
                actual: digest,
            });
        }
        let target = r.tag.clone().unwrap_or_else(|| digest.to_string());
        let call = Call {
            r,
            access: Access::Push,
            method: Method::PUT,
            url: self.url(r, &format!("manifests/{target}"))?,
            headers: vec![("Content-Type", media_type.to_string())],
            body: Some(bytes.to_vec()),
        };
        let resp = self.send(&call)?;
        let resp = self.check(&call, resp, &[StatusCode::CREATED])?;
        check_digest_header(r, &resp, &digest, "pushed manifest")?;
        Ok(digest)
    }

    /// Pushes a stored image: every blob of the manifest `manifest_desc` (config and layers, up to
    /// [`PUSH_CONCURRENCY`] at once), then the manifest under `r`. For an index, each child image
    /// is pushed (by digest) before the index. `progress(blob, bytes_sent_so_far)` reports
    /// uploads. Returns the digest of the pushed manifest or index.
    pub fn push_image(
        &self,
        r: &Reference,
        manifest_desc: &Descriptor,
        blobs: &BlobStore,
        progress: &(dyn Fn(&Descriptor, u64) + Sync),
    ) -> Result<Digest, RegistryError> {
        let bytes = blobs
            .read(&manifest_desc.digest)
            .map_err(|source| RegistryError::Blob { reference: r.to_string(), source })?;
        if bytes.len() as u64 != manifest_desc.size {
            return Err(RegistryError::SizeMismatch {
                reference: r.to_string(),
                what: format!("stored manifest {}", manifest_desc.digest),
                expected: manifest_desc.size,
                actual: bytes.len() as u64,
            });
        }
        let mt = manifest_desc.media_type.as_str();
        if media::is_index(mt) {
            let index: Index = parse_json(r, "index", &bytes)?;
            for child in &index.manifests {
                let child_ref = Reference { tag: None, digest: Some(child.digest.clone()), ..r.clone() };
                self.push_image(&child_ref, child, blobs, progress)?;
            }
        } else if media::is_manifest(mt) {
            let manifest = parse_manifest(r, &bytes)?;
            let mut todo: Vec<&Descriptor> = Vec::new();
            for d in std::iter::once(&manifest.config).chain(&manifest.layers) {
                // Non-distributable layers are not pushed (as Docker does) unless we have them.
                let foreign = d.media_type.contains(".foreign.") || d.media_type.contains(".nondistributable.");
                if todo.iter().any(|t| t.digest == d.digest) || (foreign && !blobs.contains(&d.digest)) {
                    continue;
                }
                todo.push(d);
            }
            run_bounded(&todo, PUSH_CONCURRENCY, &|d: &&Descriptor| {
                self.push_blob(r, d, blobs, &|n| progress(d, n)).map(|_| ())
            })?;
        } else {
            return Err(RegistryError::UnsupportedMediaType { reference: r.to_string(), media_type: mt.to_string() });
        }
        self.push_manifest(r, mt, &bytes)
    }
}

/// Fails if a `Docker-Content-Digest` response header names another digest than `expected`.
fn check_digest_header(
    r: &Reference,
    resp: &reqwest::Response,
    expected: &Digest,
    what: &str,
) -> Result<(), RegistryError> {
    let header = resp.headers().get("Docker-Content-Digest").and_then(|v| v.to_str().ok());
    if let Some(actual) = header.and_then(|h| h.parse::<Digest>().ok())
        && &actual != expected
    {
        return Err(RegistryError::DigestMismatch {
            reference: r.to_string(),
            what: format!("{what} (per the registry's Docker-Content-Digest)"),
            expected: expected.clone(),
            actual,
        });
    }
    Ok(())
}

/// Runs `f` over `items` on up to `limit` threads; stops taking new items after the first
/// error, which is returned.
fn run_bounded<T: Sync>(
    items: &[T],
    limit: usize,
    f: &(dyn Fn(&T) -> Result<(), RegistryError> + Sync),
) -> Result<(), RegistryError> {
    let next = AtomicUsize::new(0);
    let first_error: Mutex<Option<RegistryError>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..limit.min(items.len()) {
            s.spawn(|| {
                loop {
                    if first_error.lock().unwrap_or_else(|p| p.into_inner()).is_some() {
                        return;
                    }
                    let Some(item) = items.get(next.fetch_add(1, Ordering::Relaxed)) else { return };
                    if let Err(e) = f(item) {
                        first_error.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(e);
                        return;
                    }
                }
            });
        }
    });
    match first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn bounded_runs_everything_within_the_limit() {
        let items: Vec<usize> = (0..20).collect();
        let running = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        let done = Mutex::new(Vec::new());
        run_bounded(&items, 4, &|i: &usize| {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(5));
            done.lock().unwrap().push(*i);
            running.fetch_sub(1, Ordering::SeqCst);
            Ok(())
        })
        .unwrap();
        let mut done = done.into_inner().unwrap();
        done.sort();
        assert_eq!(done, items);
        assert!(peak.load(Ordering::SeqCst) <= 4);
        assert!(peak.load(Ordering::SeqCst) >= 2, "ran concurrently");
    }

    #[test]
    fn bounded_stops_after_an_error() {
        let items: Vec<usize> = (0..100).collect();
        let calls = AtomicUsize::new(0);
        let e = run_bounded(&items, 2, &|i: &usize| {
            calls.fetch_add(1, Ordering::SeqCst);
            if *i == 3 {
                return Err(RegistryError::Setup("boom".into()));
            }
            Ok(())
        })
        .unwrap_err();
        assert!(e.to_string().contains("boom"));
        assert!(calls.load(Ordering::SeqCst) < 100);
    }
}
