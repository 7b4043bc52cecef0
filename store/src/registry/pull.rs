//! Pulling: resolving a reference to a platform manifest, and downloading blobs into the store.
//!
//! Resolution (`GET /v2/NAME/manifests/REF`, distribution-spec "Pulling manifests") accepts the
//! four media types BuildKit accepts: OCI manifest and index, Docker schema 2 manifest and
//! manifest list. The media type is the document's own `mediaType` when it has one, else the
//! `Content-Type`, else inferred from its shape (`manifests` → index, `config` → manifest), as
//! containerd does for registries that serve `application/json`. Schema 1 is refused. From an
//! index the entry for the wanted platform is taken (an exact variant match before a
//! variant-tolerant one, see [`Platform::matches`]) and fetched by digest; nested indexes are
//! followed a few levels.
//!
//! Verification: a manifest fetched by digest must hash to it; a `Docker-Content-Digest` header
//! must match the bytes; a manifest picked from an index must also have the entry's size.
//! Manifests are capped at 4 MiB (containerd's limit). Blobs stream into a blob-store ingest
//! file and are committed only when both size and digest match the descriptor; anything else —
//! a short body, extra bytes, wrong content — discards the ingest file. A transfer that breaks
//! mid-body is resumed (3 attempts in all): the ingest file and its running hash are kept and
//! the next request asks for the rest with `Range: bytes=N-`; a `206` whose `Content-Range`
//! starts at N continues the file, a `200` (the registry ignores ranges) starts it over.

use reqwest::{Method, StatusCode};
use serde::Deserialize;

use super::client::{ATTEMPTS, Access, BodyError, Call, RegistryClient, backoff, error_chain};
use super::{RegistryError, Resolved};
use crate::blobs::{BlobError, BlobStore, BlobWriter};
use crate::digest::Digest;
use crate::oci::{Descriptor, Index, Manifest, Platform, media};
use crate::reference::Reference;

/// The largest manifest or index accepted.
pub(crate) const MAX_MANIFEST_SIZE: u64 = 4 << 20;

/// How many indexes deep resolution follows (an index whose entry is another index…).
const MAX_INDEX_DEPTH: usize = 4;

/// The `Accept` header for manifests: every type strata can read, and nothing else, so that a
/// registry holding a schema 1 image converts it if it can.
pub(crate) const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
     application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json, \
     application/vnd.docker.distribution.manifest.list.v2+json";

/// A manifest as fetched: media type, bytes, digest.
pub(crate) struct Fetched {
    pub media_type: String,
    pub bytes: Vec<u8>,
    pub digest: Digest,
}

impl RegistryClient {
    /// GETs the manifest for `r`'s tag or digest. For an index or manifest list, picks the entry
    /// matching `platform` and fetches that. Verifies digests and sizes (see the module doc).
    pub fn resolve(&self, r: &Reference, platform: &Platform) -> Result<Resolved, RegistryError> {
        let top = self.get_manifest(r, &r.manifest_ref(), r.digest.as_ref(), None)?;
        if media::is_manifest(&top.media_type) {
            let manifest = parse_manifest(r, &top.bytes)?;
            let descriptor = Descriptor::new(top.media_type, top.digest, top.bytes.len() as u64);
            return Ok(Resolved { manifest, manifest_bytes: top.bytes, descriptor, index_digest: None, index: None });
        }
        let index_digest = top.digest.clone();
        let top_index =
            (Descriptor::new(top.media_type.clone(), top.digest.clone(), top.bytes.len() as u64), top.bytes.clone());
        let mut current = top;
        for _ in 0..MAX_INDEX_DEPTH {
            let index: Index = parse_json(r, "index", &current.bytes)?;
            let Some(entry) = pick_platform(&index, platform) else {
                let available: Vec<String> =
                    index.manifests.iter().filter_map(|d| d.platform.as_ref().map(Platform::to_spec)).collect();
                return Err(RegistryError::NoMatchingPlatform {
                    reference: r.to_string(),
                    wanted: platform.to_spec(),
                    index: current.digest,
                    available: if available.is_empty() { "none".to_string() } else { available.join(", ") },
                });
            };
            let child = self.get_manifest(r, &entry.digest.to_string(), Some(&entry.digest), Some(entry.size))?;
            if media::is_manifest(&child.media_type) {
                let manifest = parse_manifest(r, &child.bytes)?;
                let descriptor = Descriptor { media_type: child.media_type, ..entry.clone() };
                return Ok(Resolved {
                    manifest,
                    manifest_bytes: child.bytes,
                    descriptor,
                    index_digest: Some(index_digest),
                    index: Some(top_index),
                });
            }
            current = child;
        }
        Err(RegistryError::BadManifest {
            reference: r.to_string(),
            what: "index".to_string(),
            detail: format!("indexes nested more than {MAX_INDEX_DEPTH} levels deep"),
        })
    }

    /// GETs and verifies one manifest or index by tag or digest.
    pub(crate) fn get_manifest(
        &self,
        r: &Reference,
        reference: &str,
        expected: Option<&Digest>,
        expected_size: Option<u64>,
    ) -> Result<Fetched, RegistryError> {
        let call = Call {
            r,
            access: Access::Pull,
            method: Method::GET,
            url: self.url(r, &format!("manifests/{reference}"))?,
            headers: vec![("Accept", MANIFEST_ACCEPT.to_string())],
            body: None,
        };
        let resp = self.send(&call)?;
        let resp = self.check(&call, resp, &[StatusCode::OK])?;
        let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        let content_type = header("Content-Type");
        let header_digest = header("Docker-Content-Digest");
        let what = format!("manifest {reference}");
        let bytes = self.read_limited(resp, MAX_MANIFEST_SIZE).map_err(|e| match e {
            BodyError::TooLarge => {
                RegistryError::TooLarge { reference: r.to_string(), what: what.clone(), limit: MAX_MANIFEST_SIZE }
            }
            BodyError::Transfer(detail) => RegistryError::Connection {
                reference: r.to_string(),
                method: call.method.to_string(),
                url: call.url.to_string(),
                detail,
            },
        })?;
        let digest = Digest::of(&bytes);
        let mismatch = |expected: Digest, what: String| RegistryError::DigestMismatch {
            reference: r.to_string(),
            what,
            expected,
            actual: digest.clone(),
        };
        if let Some(expected) = expected
            && expected != &digest
        {
            return Err(mismatch(expected.clone(), what));
        }
        // Only sha256 digests can be checked; a header in another algorithm is not an error.
        if let Some(h) = header_digest.as_deref().and_then(|h| h.parse::<Digest>().ok())
            && h != digest
        {
            return Err(mismatch(h, format!("{what} (per its Docker-Content-Digest header)")));
        }
        if let Some(size) = expected_size
            && size != bytes.len() as u64
        {
            return Err(RegistryError::SizeMismatch {
                reference: r.to_string(),
                what,
                expected: size,
                actual: bytes.len() as u64,
            });
        }
        let media_type = detect_media_type(r, content_type.as_deref(), &bytes)?;
        Ok(Fetched { media_type, bytes, digest })
    }

    /// Downloads a blob into the blob store, unless it is there already: streamed to an ingest
    /// file, committed only if size and digest match `desc`. `progress` gets the bytes of this
    /// blob received so far (a resumed transfer continues from where it broke).
    pub fn fetch_blob(
        &self,
        r: &Reference,
        desc: &Descriptor,
        blobs: &BlobStore,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<(), RegistryError> {
        if blobs.contains(&desc.digest) {
            return Ok(());
        }
        let url = self.url(r, &format!("blobs/{}", desc.digest))?;
        // Kept across attempts: what a broken transfer received is not fetched again.
        let mut partial: Option<BlobWriter> = None;
        let mut attempt = 1;
        loop {
            match self.fetch_blob_once(r, &url, desc, blobs, progress, &mut partial) {
                Ok(()) => {
                    self.record_source(r, &desc.digest);
                    return Ok(());
                }
                Err(Failure::Retryable(e)) if attempt < ATTEMPTS => {
                    tracing::debug!(blob = %desc.digest, error = %e, attempt, "resuming blob download");
                    std::thread::sleep(backoff(attempt));
                    attempt += 1;
                }
                Err(Failure::Retryable(e) | Failure::Fatal(e)) => return Err(*e),
            }
        }
    }

    fn fetch_blob_once(
        &self,
        r: &Reference,
        url: &reqwest::Url,
        desc: &Descriptor,
        blobs: &BlobStore,
        progress: &(dyn Fn(u64) + Sync),
        partial: &mut Option<BlobWriter>,
    ) -> Result<(), Failure> {
        use std::io::Write;
        let what = format!("blob {}", desc.digest);
        let have = partial.as_ref().map_or(0, BlobWriter::len);
        let mut headers = Vec::new();
        if have > 0 {
            headers.push(("Range", format!("bytes={have}-")));
        }
        let call = Call { r, access: Access::Pull, method: Method::GET, url: url.clone(), headers, body: None };
        let resp = self.send(&call).map_err(Failure::fatal)?;
        let resumed = have > 0 && resp.status() == StatusCode::PARTIAL_CONTENT;
        let mut resp =
            self.check(&call, resp, &[StatusCode::OK, StatusCode::PARTIAL_CONTENT]).map_err(Failure::fatal)?;
        let blob_err = |source: BlobError| Failure::fatal(RegistryError::Blob { reference: r.to_string(), source });
        let mut received = if resumed {
            let range = resp.headers().get("Content-Range").and_then(|v| v.to_str().ok()).unwrap_or("");
            if content_range_start(range) != Some((have, desc.size)) {
                // Not the rest we asked for: start over.
                *partial = None;
                return Err(Failure::retryable(RegistryError::Connection {
                    reference: r.to_string(),
                    method: call.method.to_string(),
                    url: call.url.to_string(),
                    detail: format!("asked for {what} from byte {have}, got Content-Range {range:?}"),
                }));
            }
            have
        } else {
            if resp.status() == StatusCode::PARTIAL_CONTENT {
                return Err(Failure::fatal(RegistryError::Connection {
                    reference: r.to_string(),
                    method: call.method.to_string(),
                    url: call.url.to_string(),
                    detail: format!("{what}: 206 Partial Content to a request for the whole blob"),
                }));
            }
            // The whole blob is coming (again): a fresh ingest file.
            *partial = Some(blobs.writer().map_err(blob_err)?);
            0
        };
        if let Some(len) = resp.content_length()
            && received + len != desc.size
        {
            *partial = None;
            return Err(Failure::fatal(RegistryError::SizeMismatch {
                reference: r.to_string(),
                what: format!("{what} (per Content-Length)"),
                expected: desc.size,
                actual: received + len,
            }));
        }
        let Some(writer) = partial.as_mut() else {
            return Err(Failure::fatal(RegistryError::Setup("blob download lost its ingest file".to_string())));
        };
        loop {
            let chunk = match self.rt.block_on(async { resp.chunk().await }) {
                Ok(Some(c)) => c,
                Ok(None) => break,
                Err(e) => {
                    return Err(Failure::retryable(RegistryError::Connection {
                        reference: r.to_string(),
                        method: call.method.to_string(),
                        url: call.url.to_string(),
                        detail: format!(
                            "transfer of {what} broke after {received} of {} bytes: {}",
                            desc.size,
                            error_chain(&e)
                        ),
                    }));
                }
            };
            if received + chunk.len() as u64 > desc.size {
                *partial = None;
                return Err(Failure::fatal(RegistryError::SizeMismatch {
                    reference: r.to_string(),
                    what: format!("{what} (the registry sent more)"),
                    expected: desc.size,
                    actual: received + chunk.len() as u64,
                }));
            }
            writer.write_all(&chunk).map_err(|source| {
                Failure::fatal(RegistryError::Io { context: format!("writing {what} to the blob store"), source })
            })?;
            received += chunk.len() as u64;
            progress(received);
        }
        if received != desc.size {
            return Err(Failure::retryable(RegistryError::SizeMismatch {
                reference: r.to_string(),
                what: format!("{what} (the body ended early)"),
                expected: desc.size,
                actual: received,
            }));
        }
        let Some(writer) = partial.take() else {
            return Err(Failure::fatal(RegistryError::Setup("blob download lost its ingest file".to_string())));
        };
        match writer.commit(Some(&desc.digest)) {
            Ok(_) => Ok(()),
            Err(BlobError::DigestMismatch { expected, actual, .. }) => {
                Err(Failure::fatal(RegistryError::DigestMismatch { reference: r.to_string(), what, expected, actual }))
            }
            Err(e) => Err(blob_err(e)),
        }
    }
}

/// `(start, total)` of a `Content-Range: bytes START-END/TOTAL` header.
fn content_range_start(v: &str) -> Option<(u64, u64)> {
    let rest = v.trim().strip_prefix("bytes")?.trim_start();
    let (range, total) = rest.split_once('/')?;
    let (start, _) = range.split_once('-')?;
    Some((start.trim().parse().ok()?, total.trim().parse().ok()?))
}

/// A failed download attempt: worth retrying (the transfer broke) or not.
enum Failure {
    Retryable(Box<RegistryError>),
    Fatal(Box<RegistryError>),
}

impl Failure {
    fn retryable(e: RegistryError) -> Failure {
        Failure::Retryable(Box::new(e))
    }
    fn fatal(e: RegistryError) -> Failure {
        Failure::Fatal(Box::new(e))
    }
}

/// The index entry for `platform`: an exact match (same variant, or both without one) first,
/// else the first entry [`Platform::matches`] accepts. Entries without a platform (attestations
/// carry `unknown/unknown`) or of other media types are never picked.
pub(crate) fn pick_platform<'a>(index: &'a Index, platform: &Platform) -> Option<&'a Descriptor> {
    let candidates =
        || index.manifests.iter().filter(|d| media::is_manifest(&d.media_type) || media::is_index(&d.media_type));
    candidates()
        .find(|d| d.platform.as_ref().is_some_and(|p| platform.matches(p) && p.variant == platform.variant))
        .or_else(|| candidates().find(|d| d.platform.as_ref().is_some_and(|p| platform.matches(p))))
}

/// The fields that tell manifest kinds apart.
#[derive(Deserialize)]
struct Probe {
    #[serde(rename = "schemaVersion", default)]
    schema_version: Option<serde_json::Value>,
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<serde_json::Value>,
    #[serde(default)]
    config: Option<serde_json::Value>,
    #[serde(rename = "fsLayers", default)]
    fs_layers: Option<serde_json::Value>,
}

/// The media type of a fetched manifest document (see the module doc).
pub(crate) fn detect_media_type(
    r: &Reference,
    content_type: Option<&str>,
    bytes: &[u8],
) -> Result<String, RegistryError> {
    // A manifest is a JSON object (serde would also read a struct from an array).
    let object: serde_json::Map<String, serde_json::Value> = parse_json(r, "manifest", bytes)?;
    let probe: Probe = serde_json::from_value(serde_json::Value::Object(object)).map_err(|e| {
        RegistryError::BadManifest { reference: r.to_string(), what: "manifest".to_string(), detail: e.to_string() }
    })?;
    let ct = content_type.map(|c| c.split(';').next().unwrap_or("").trim().to_ascii_lowercase()).unwrap_or_default();
    let schema1 = ct.starts_with("application/vnd.docker.distribution.manifest.v1")
        || probe.schema_version.as_ref().and_then(serde_json::Value::as_u64) == Some(1)
        || probe.fs_layers.is_some();
    if schema1 {
        let media_type = if ct.is_empty() { "schemaVersion 1".to_string() } else { ct };
        return Err(RegistryError::Schema1 { reference: r.to_string(), media_type });
    }
    let known = |t: &str| media::is_manifest(t) || media::is_index(t);
    let media_type = match probe.media_type.filter(|m| !m.is_empty()) {
        Some(m) => m,
        None if known(&ct) => ct,
        None if probe.manifests.is_some() => media::OCI_INDEX.to_string(),
        None if probe.config.is_some() => media::OCI_MANIFEST.to_string(),
        None => ct,
    };
    if !known(&media_type) {
        return Err(RegistryError::UnsupportedMediaType { reference: r.to_string(), media_type });
    }
    Ok(media_type)
}

/// Parses JSON, reporting the position of a syntax or type error.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(
    r: &Reference,
    what: &str,
    bytes: &[u8],
) -> Result<T, RegistryError> {
    serde_json::from_slice(bytes).map_err(|e| RegistryError::BadManifest {
        reference: r.to_string(),
        what: what.to_string(),
        detail: format!("line {} column {}: {e}", e.line(), e.column()),
    })
}

/// Parses an image manifest and checks its schema version.
pub(crate) fn parse_manifest(r: &Reference, bytes: &[u8]) -> Result<Manifest, RegistryError> {
    let m: Manifest = parse_json(r, "manifest", bytes)?;
    if m.schema_version != 2 {
        return Err(RegistryError::BadManifest {
            reference: r.to_string(),
            what: "manifest".to_string(),
            detail: format!("schemaVersion {} (expected 2)", m.schema_version),
        });
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r() -> Reference {
        Reference::parse("127.0.0.1:5000/a:1").unwrap()
    }

    fn plat(os: &str, arch: &str, variant: Option<&str>) -> Platform {
        Platform {
            architecture: arch.into(),
            os: os.into(),
            os_version: None,
            os_features: None,
            variant: variant.map(str::to_string),
        }
    }

    #[test]
    fn media_type_detection() {
        let oci = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{}}"#;
        assert_eq!(detect_media_type(&r(), Some("application/json"), oci).unwrap(), media::OCI_MANIFEST);
        let bare = br#"{"schemaVersion":2,"config":{"mediaType":"x","digest":"y","size":1},"layers":[]}"#;
        assert_eq!(
            detect_media_type(&r(), Some("application/vnd.docker.distribution.manifest.v2+json; charset=utf-8"), bare)
                .unwrap(),
            media::DOCKER_MANIFEST
        );
        assert_eq!(detect_media_type(&r(), None, bare).unwrap(), media::OCI_MANIFEST);
        assert_eq!(detect_media_type(&r(), Some("text/plain"), br#"{"manifests":[]}"#).unwrap(), media::OCI_INDEX);
    }

    #[test]
    fn schema1_and_unknown_types_are_refused() {
        let s1 = br#"{"schemaVersion":1,"name":"a","tag":"1","fsLayers":[]}"#;
        let e =
            detect_media_type(&r(), Some("application/vnd.docker.distribution.manifest.v1+prettyjws"), s1).unwrap_err();
        assert!(matches!(e, RegistryError::Schema1 { .. }));
        assert!(e.to_string().contains("schema 1"), "{e}");
        assert!(matches!(detect_media_type(&r(), None, s1), Err(RegistryError::Schema1 { .. })));
        let art = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.artifact.manifest.v1+json"}"#;
        assert!(matches!(detect_media_type(&r(), None, art), Err(RegistryError::UnsupportedMediaType { .. })));
        let e = detect_media_type(&r(), None, b"{\n  \"schemaVersion\": 2,\n  oops").unwrap_err();
        assert!(e.to_string().contains("line 3 column"), "{e}");
        assert!(matches!(detect_media_type(&r(), None, b"[]"), Err(RegistryError::BadManifest { .. })));
    }

    #[test]
    fn platform_picking_prefers_exact_variants() {
        let d = |p: Option<Platform>, n: u8| Descriptor {
            platform: p,
            ..Descriptor::new(media::OCI_MANIFEST, Digest::of(&[n]), 1)
        };
        let index = Index {
            manifests: vec![
                d(None, 0),
                d(Some(plat("unknown", "unknown", None)), 1),
                d(Some(plat("linux", "arm64", None)), 2),
                d(Some(plat("linux", "arm64", Some("v8"))), 3),
                d(Some(plat("linux", "amd64", None)), 4),
                Descriptor {
                    media_type: "application/vnd.in-toto+json".into(),
                    ..d(Some(plat("linux", "s390x", None)), 5)
                },
            ],
            ..Index::empty()
        };
        let pick = |p: Platform| pick_platform(&index, &p).map(|d| d.digest.clone());
        assert_eq!(pick(plat("linux", "amd64", None)), Some(Digest::of(&[4])));
        assert_eq!(pick(plat("linux", "arm64", Some("v8"))), Some(Digest::of(&[3])));
        assert_eq!(pick(plat("linux", "arm64", None)), Some(Digest::of(&[2])));
        assert_eq!(pick(plat("linux", "s390x", None)), None, "non-manifest entries are skipped");
        assert_eq!(pick(plat("windows", "amd64", None)), None);
    }

    #[test]
    fn content_ranges() {
        assert_eq!(content_range_start("bytes 17-39/40"), Some((17, 40)));
        assert_eq!(content_range_start("bytes 0-0/1"), Some((0, 1)));
        assert_eq!(content_range_start("bytes */40"), None);
        assert_eq!(content_range_start("17-39/40"), None);
        assert_eq!(content_range_start(""), None);
    }

    #[test]
    fn manifests_must_be_schema_2() {
        let m = br#"{"schemaVersion":3,"config":{"mediaType":"x","digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","size":0}}"#;
        assert!(parse_manifest(&r(), m).unwrap_err().to_string().contains("schemaVersion 3"));
    }
}
