//! Pushing: blobs (only those the registry lacks), manifests, and whole stored images.
//!
//! A blob upload follows distribution-spec "Pushing blobs":
//! 1. `HEAD` the blob: 200 means nothing to do.
//! 2. If the store knows another repository of the same registry that holds the blob
//!    ([`super::sources`]), `POST /v2/NAME/blobs/uploads/?mount=DIGEST&from=OTHER` with a token
//!    for both repositories: 201 means mounted, nothing sent; 202 is an ordinary upload session
//!    (the registry could not or would not mount), used as the next step's.
//! 3. Otherwise `POST /v2/NAME/blobs/uploads/` (202 + `Location`).
//! 4. One monolithic `PUT <location>?digest=…` with the whole blob and its `Content-Length`
//!    (201). The body streams from the blob file through a pipe written on the caller's
//!    thread, so memory stays flat for any layer size and progress counts bytes as they leave.
//!    Registries (or proxies) that refuse large requests (413), and
//!    [`RegistryOptions::chunk_size`](super::RegistryOptions), get `PATCH` chunks instead
//!    (`Content-Range: START-END`, each answered with the next `Location` and the `Range`
//!    received), closed by an empty `PUT ?digest=`; a 413 on a chunk halves the chunk size, and
//!    a registry's `OCI-Chunk-Min-Length` is respected.
//!
//! Failures: a connection error, a 5xx, 408 or 429 during an upload is retried (up to
//! [`UPLOAD_ATTEMPTS`] attempts per blob, pausing 200 ms, 400 ms, … between them), and the retry
//! resumes: `GET <location>` asks the registry how much it has (`Range: 0-LAST`) and the rest
//! is sent with `PATCH` from there. When the registry has lost the session (404, 416,
//! `BLOB_UPLOAD_INVALID`/`_UNKNOWN` — distribution invalidates a session whose stored size no
//! longer matches the state in its upload URL, which is what a request cut off mid-body leaves
//! behind), the upload starts over with a new `POST`. Other 4xx answers (a digest the registry
//! computed differently, a denied push) end the push at once. A 401 mid-push drops the cached
//! token, so the retry gets a fresh one. Requests in a push ask for the `pull,push` scope from
//! the first one, so one token serves the whole sequence.
//!
//! [`RegistryClient::push_image`] uploads an image's config and layers (at most
//! [`PUSH_CONCURRENCY`] at once) and then its manifest; for an index it pushes every child image
//! by digest first, then the index. Manifests go last, and only when every blob is in, so that
//! a tag never points at content the registry does not have.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use reqwest::{Method, StatusCode, Url};

use super::client::{Access, Call, RegistryClient, backoff, error_chain};
use super::pull::{parse_json, parse_manifest};
use super::{PushOutcome, RegistryError};
use crate::blobs::{BlobError, BlobStore};
use crate::digest::Digest;
use crate::oci::{Descriptor, Index, media};
use crate::reference::Reference;

/// Blobs of one image uploaded at the same time.
pub const PUSH_CONCURRENCY: usize = 4;

/// Attempts at uploading one blob before the push fails.
pub const UPLOAD_ATTEMPTS: u32 = 5;

/// Bytes moved at a time from the blob file to the request body.
const UPLOAD_BUFFER: usize = 1 << 20;

/// The chunk size after a registry refused a monolithic upload as too large.
const DEFAULT_CHUNK: u64 = 16 << 20;

/// The smallest chunk a 413 halves the chunk size down to.
const MIN_CHUNK: u64 = 64 << 10;

/// An upload session: where the next bytes go and how many the registry has.
#[derive(Debug, Clone)]
struct Session {
    location: Url,
    offset: u64,
}

/// What a POST to the uploads endpoint gave.
enum Started {
    Mounted,
    Session { session: Session, min_chunk: Option<u64> },
}

/// How an upload goes on after a failed step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    /// Give up: retrying cannot help.
    Fatal,
    /// Retry, resuming the session where the registry says it stopped.
    Resume,
    /// Retry with a new session: the registry lost this one.
    Restart,
    /// The request was too large: retry in (smaller) chunks.
    Smaller,
}

fn classify(e: &RegistryError) -> Next {
    match e {
        RegistryError::Connection { .. } => Next::Resume,
        RegistryError::Unauthorized { status: 401, .. } => Next::Resume,
        RegistryError::Status { status, message, .. } => match *status {
            413 => Next::Smaller,
            404 | 416 => Next::Restart,
            400 if message.contains("BLOB_UPLOAD_INVALID") || message.contains("BLOB_UPLOAD_UNKNOWN") => Next::Restart,
            408 | 429 | 500..=599 => Next::Resume,
            _ => Next::Fatal,
        },
        _ => Next::Fatal,
    }
}

/// The last byte offset of a `Range: 0-END` header (`bytes=` prefix tolerated). distribution
/// answers `0-0` both for an empty session and for one holding a single byte; it is read as
/// empty (a wrong guess costs a 416 and a new session, never wrong content, since the registry
/// checks each chunk's start against what it holds).
fn range_next(resp: &reqwest::Response) -> Option<u64> {
    let v = resp.headers().get("Range")?.to_str().ok()?;
    let v = v.trim().strip_prefix("bytes=").unwrap_or(v.trim());
    let (start, end) = v.split_once('-')?;
    let (start, end): (u64, u64) = (start.trim().parse().ok()?, end.trim().parse().ok()?);
    if start != 0 {
        return None;
    }
    Some(if end == 0 { 0 } else { end + 1 })
}

impl RegistryClient {
    /// Uploads a blob from the store if the registry lacks it (mounting it from another
    /// repository of the same registry when the store knows one). `progress` gets the bytes of
    /// this blob sent so far (it goes back to where a resumed upload continues); it is not
    /// called for a blob the registry already has.
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
            StatusCode::OK => {
                self.record_source(r, &desc.digest);
                return Ok(PushOutcome::Existed);
            }
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
        let mut file = blobs.open_blob(&desc.digest).map_err(blob_err)?;

        let candidates = match &self.sources {
            Some(s) => s.mount_candidates(&desc.digest, &r.registry, &r.repository),
            None => Vec::new(),
        };
        let mut mount_from = candidates.first().map(String::as_str);
        let mut chunk = self.opts.chunk_size.filter(|&c| c > 0 && desc.size > c);
        let mut session: Option<Session> = None;
        let mut last_error = None;
        for attempt in 1..=UPLOAD_ATTEMPTS {
            if attempt > 1 {
                std::thread::sleep(backoff(attempt - 1));
            }
            let mut s = match session.take() {
                Some(s) => s,
                None => match self.start_upload(r, desc, mount_from.take()) {
                    Ok(Started::Mounted) => {
                        self.record_source(r, &desc.digest);
                        return Ok(PushOutcome::Mounted);
                    }
                    Ok(Started::Session { session, min_chunk }) => {
                        if let (Some(c), Some(min)) = (chunk, min_chunk) {
                            chunk = Some(c.max(min));
                        }
                        session
                    }
                    Err(e) if classify(&e) == Next::Resume => {
                        tracing::debug!(blob = %desc.digest, attempt, "starting the upload failed: {e}");
                        last_error = Some(e);
                        continue;
                    }
                    Err(e) => return Err(e),
                },
            };
            let whole = chunk.is_none() && s.offset == 0;
            let sent = match chunk {
                None if whole => self.upload_whole(r, desc, &mut file, &s, progress),
                _ => self.upload_chunks(r, desc, &mut file, &mut s, chunk.unwrap_or(DEFAULT_CHUNK), progress),
            };
            let e = match sent {
                Ok(()) => {
                    self.record_source(r, &desc.digest);
                    return Ok(PushOutcome::Uploaded);
                }
                Err(e) => e,
            };
            let next = classify(&e);
            tracing::debug!(blob = %desc.digest, attempt, ?next, "upload failed: {e}");
            if let RegistryError::Unauthorized { .. } = &e {
                self.auth.forget(&r.registry, &Access::Push.scope(&r.repository));
            }
            // A monolithic PUT that failed is not tried again: the rest goes in chunks, which a
            // later failure does not send again (proxies that cut long requests short, or
            // refuse them without saying 413, are common).
            let first_chunk = DEFAULT_CHUNK.min(desc.size.div_ceil(2)).max(MIN_CHUNK);
            match next {
                Next::Fatal => return Err(e),
                Next::Smaller => chunk = Some(chunk.map_or(first_chunk, |c| c / 2).max(MIN_CHUNK)),
                _ if whole => chunk = Some(first_chunk),
                _ => {}
            }
            session = match next {
                Next::Resume | Next::Smaller => self.upload_status(r, &s),
                _ => None,
            };
            // Without a session the upload starts over, unless the registry finished it (the
            // answer to the last request was lost on the way back).
            if session.is_none() && self.blob_exists(r, desc) {
                self.record_source(r, &desc.digest);
                return Ok(PushOutcome::Uploaded);
            }
            last_error = Some(e);
        }
        Err(last_error.unwrap_or_else(|| RegistryError::Setup("upload attempts exhausted".to_string())))
    }

    /// True if a HEAD says the registry has the blob (false on any failure).
    fn blob_exists(&self, r: &Reference, desc: &Descriptor) -> bool {
        let Ok(url) = self.url(r, &format!("blobs/{}", desc.digest)) else { return false };
        let head = Call { r, access: Access::Push, method: Method::HEAD, url, headers: Vec::new(), body: None };
        self.send(&head).is_ok_and(|resp| resp.status() == StatusCode::OK)
    }

    /// Remembers that `r`'s repository holds `digest` (for later cross-repository mounts).
    pub(crate) fn record_source(&self, r: &Reference, digest: &Digest) {
        if let Some(s) = &self.sources {
            s.record(digest, &r.registry, &r.repository);
        }
    }

    /// POSTs to the uploads endpoint, asking for a mount from `mount_from` if given (any failure
    /// of the mount request falls back to a plain upload).
    fn start_upload(
        &self,
        r: &Reference,
        desc: &Descriptor,
        mount_from: Option<&str>,
    ) -> Result<Started, RegistryError> {
        if let Some(from) = mount_from {
            let mut url = self.url(r, "blobs/uploads/")?;
            url.query_pairs_mut().append_pair("mount", &desc.digest.to_string()).append_pair("from", from);
            let call = Call {
                r,
                access: Access::Mount { from },
                method: Method::POST,
                url,
                headers: Vec::new(),
                body: Some(Vec::new()),
            };
            match self.send(&call) {
                Ok(resp) if resp.status() == StatusCode::CREATED => {
                    check_digest_header(r, &resp, &desc.digest, "mounted blob")?;
                    return Ok(Started::Mounted);
                }
                Ok(resp) if resp.status() == StatusCode::ACCEPTED => {
                    return self.session_from(&call, &resp);
                }
                Ok(resp) => {
                    let e = self.check(&call, resp, &[StatusCode::CREATED]).err();
                    tracing::debug!(blob = %desc.digest, from, "mount refused, uploading: {e:?}");
                }
                Err(e) => tracing::debug!(blob = %desc.digest, from, "mount failed, uploading: {e}"),
            }
        }
        let call = Call {
            r,
            access: Access::Push,
            method: Method::POST,
            url: self.url(r, "blobs/uploads/")?,
            headers: Vec::new(),
            body: Some(Vec::new()),
        };
        let resp = self.send(&call)?;
        let resp = self.check(&call, resp, &[StatusCode::ACCEPTED])?;
        self.session_from(&call, &resp)
    }

    /// The session a 202 answer opened (its `Location`, relative to the request or absolute).
    fn session_from(&self, call: &Call<'_>, resp: &reqwest::Response) -> Result<Started, RegistryError> {
        let location = next_location(call, resp)?.ok_or_else(|| RegistryError::Status {
            reference: call.r.to_string(),
            method: call.method.to_string(),
            url: call.url.to_string(),
            status: resp.status().as_u16(),
            message: "upload started without a Location header".to_string(),
        })?;
        let min_chunk = resp
            .headers()
            .get("OCI-Chunk-Min-Length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        Ok(Started::Session { session: Session { location, offset: 0 }, min_chunk })
    }

    /// Asks the registry how much of an interrupted upload it holds; `None` if the session is
    /// gone (or the registry will not say).
    fn upload_status(&self, r: &Reference, s: &Session) -> Option<Session> {
        let call = Call {
            r,
            access: Access::Push,
            method: Method::GET,
            url: s.location.clone(),
            headers: Vec::new(),
            body: None,
        };
        let resp = self.send(&call).ok()?;
        if resp.status() != StatusCode::NO_CONTENT && resp.status() != StatusCode::ACCEPTED {
            tracing::debug!(status = %resp.status(), "the registry lost the upload session");
            return None;
        }
        let offset = range_next(&resp)?;
        let location = next_location(&call, &resp).ok().flatten().unwrap_or_else(|| s.location.clone());
        Some(Session { location, offset })
    }

    /// The whole blob in one PUT that also closes the session.
    fn upload_whole(
        &self,
        r: &Reference,
        desc: &Descriptor,
        file: &mut File,
        s: &Session,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<(), RegistryError> {
        let mut url = s.location.clone();
        url.query_pairs_mut().append_pair("digest", &desc.digest.to_string());
        let call = Call { r, access: Access::Push, method: Method::PUT, url, headers: Vec::new(), body: None };
        let resp = self.send_blob_part(&call, desc, file, 0, desc.size, progress)?;
        let resp = self.check(&call, resp, &[StatusCode::CREATED, StatusCode::NO_CONTENT])?;
        check_digest_header(r, &resp, &desc.digest, "uploaded blob")
    }

    /// The blob from `s.offset` on in PATCH chunks of `chunk` bytes, then the closing PUT.
    /// `s` follows the registry's answers, so a failure leaves it at the last chunk accepted.
    fn upload_chunks(
        &self,
        r: &Reference,
        desc: &Descriptor,
        file: &mut File,
        s: &mut Session,
        chunk: u64,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<(), RegistryError> {
        progress(s.offset);
        while s.offset < desc.size {
            let len = chunk.min(desc.size - s.offset);
            let call = Call {
                r,
                access: Access::Push,
                method: Method::PATCH,
                url: s.location.clone(),
                headers: vec![("Content-Range", format!("{}-{}", s.offset, s.offset + len - 1))],
                body: None,
            };
            let resp = self.send_blob_part(&call, desc, file, s.offset, len, progress)?;
            let resp = self.check(&call, resp, &[StatusCode::ACCEPTED, StatusCode::NO_CONTENT])?;
            let next = range_next(&resp).filter(|&n| n > s.offset).unwrap_or(s.offset + len);
            if let Some(location) = next_location(&call, &resp)? {
                s.location = location;
            }
            s.offset = next.min(desc.size);
            progress(s.offset);
        }
        let mut url = s.location.clone();
        url.query_pairs_mut().append_pair("digest", &desc.digest.to_string());
        let call =
            Call { r, access: Access::Push, method: Method::PUT, url, headers: Vec::new(), body: Some(Vec::new()) };
        let resp = self.send(&call)?;
        let resp = self.check(&call, resp, &[StatusCode::CREATED, StatusCode::NO_CONTENT])?;
        check_digest_header(r, &resp, &desc.digest, "uploaded blob")
    }

    /// Sends `call` with `len` bytes of the blob from `offset` as its body, streamed from the
    /// file through a pipe. `progress` gets `offset` + the bytes written so far.
    fn send_blob_part(
        &self,
        call: &Call<'_>,
        desc: &Descriptor,
        file: &mut File,
        offset: u64,
        len: u64,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<reqwest::Response, RegistryError> {
        let r = call.r;
        let io_err = |context: String| move |source| RegistryError::Io { context, source };
        file.seek(SeekFrom::Start(offset)).map_err(io_err(format!("reading blob {} for upload", desc.digest)))?;
        self.renew_token(call)?;
        // CLOEXEC: a credential helper started meanwhile must not inherit the write end, or
        // the body would never end.
        let (rd, wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| io_err("creating a pipe for the upload".to_string())(e.into()))?;
        // Large pipe and stream buffers: reqwest's `Body::from(File)` reads 4 KiB per blocking
        // call, which made pushes CPU-bound (bench/push_pull.sh: 1.28x skopeo's time). A bigger
        // pipe is best effort (limited by /proc/sys/fs/pipe-max-size).
        let _ = nix::fcntl::fcntl(&wr, nix::fcntl::FcntlArg::F_SETPIPE_SZ(UPLOAD_BUFFER as i32));
        let reader = tokio::fs::File::from_std(std::fs::File::from(rd));
        let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(reader, UPLOAD_BUFFER));
        let mut req = self
            .http
            .request(call.method.clone(), call.url.clone())
            .header("Content-Type", "application/octet-stream")
            .header("Content-Length", len.to_string());
        for (k, v) in &call.headers {
            req = req.header(*k, v);
        }
        if let Some(h) = self.auth_header(r, call.access) {
            req = req.header("Authorization", h);
        }
        let req = req.body(body);
        let task = self.rt.spawn(async move { req.send().await });
        let mut pipe = std::fs::File::from(wr);
        let mut buf = vec![0u8; UPLOAD_BUFFER];
        let mut sent: u64 = 0;
        let mut read_error = None;
        let mut part = (&mut *file).take(len);
        loop {
            let n = match part.read(&mut buf) {
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
            progress(offset + sent);
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
        if sent < len && result.is_ok() {
            // The file ended early: the stored blob is shorter than its descriptor says.
            return Err(RegistryError::SizeMismatch {
                reference: r.to_string(),
                what: format!("stored blob {}", desc.digest),
                expected: desc.size,
                actual: offset + sent,
            });
        }
        result.map_err(|e| RegistryError::Connection {
            reference: r.to_string(),
            method: call.method.to_string(),
            url: call.url.to_string(),
            detail: format!(
                "uploading blob {} ({} of {} bytes sent): {}",
                desc.digest,
                offset + sent,
                desc.size,
                error_chain(&e)
            ),
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

/// The `Location` of an upload answer, resolved against the request URL.
fn next_location(call: &Call<'_>, resp: &reqwest::Response) -> Result<Option<Url>, RegistryError> {
    let Some(location) = resp.headers().get("Location").and_then(|v| v.to_str().ok()) else { return Ok(None) };
    call.url.join(location).map(Some).map_err(|e| RegistryError::Status {
        reference: call.r.to_string(),
        method: call.method.to_string(),
        url: call.url.to_string(),
        status: resp.status().as_u16(),
        message: format!("bad upload Location {location:?}: {e}"),
    })
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
