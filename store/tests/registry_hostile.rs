//! A lying or failing registry (an in-test HTTP server on loopback): wrong bytes, dropped
//! connections, 5xx, oversized or schema 1 manifests. Nothing may reach the blob store, and the
//! error must say what happened.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use common::{FakeServer, Format, Reply, build_image, ingest_files, platform};
use strata_store::blobs::BlobStore;
use strata_store::digest::Digest;
use strata_store::oci::{Descriptor, media};
use strata_store::reference::Reference;
use strata_store::registry::{RegistryClient, RegistryError, RegistryOptions};

fn client() -> RegistryClient {
    RegistryClient::new(RegistryOptions {
        docker_config: Some("/nonexistent/strata-test/config.json".into()),
        ..RegistryOptions::default()
    })
    .unwrap()
}

const BLOB: &[u8] = b"the real content of the blob, 40 bytes.."; // 40 bytes

fn blob_desc() -> Descriptor {
    Descriptor::new(media::OCI_LAYER, Digest::of(BLOB), BLOB.len() as u64)
}

/// Fetches `blob_desc()` from a server answering blob GETs with `reply`; returns the error, the
/// number of blob requests, and checks that nothing was stored.
fn fetch_from(reply: impl Fn(usize) -> Reply + Send + Sync + 'static) -> (RegistryError, usize) {
    let n = AtomicUsize::new(0);
    let server = FakeServer::start(move |_| reply(n.fetch_add(1, Ordering::SeqCst)));
    let dir = tempfile::tempdir().unwrap();
    let blobs = BlobStore::open(dir.path()).unwrap();
    let r = Reference::parse(&format!("{}/liar/app:1", server.host())).unwrap();
    let e = client().fetch_blob(&r, &blob_desc(), &blobs, &|_| {}).unwrap_err();
    assert!(blobs.list().unwrap().is_empty(), "nothing committed after: {e}");
    assert_eq!(ingest_files(dir.path()), 0, "no ingest file left after: {e}");
    let count = server.count(|q| q.path().contains("/blobs/"));
    (e, count)
}

#[test]
fn wrong_bytes_are_not_committed() {
    let (e, n) = fetch_from(|_| Reply::ok("application/octet-stream", b"the FAKE content of the blob, 40 bytes.."));
    assert!(matches!(e, RegistryError::DigestMismatch { .. }), "{e}");
    let msg = e.to_string();
    assert!(msg.contains(&Digest::of(BLOB).to_string()) && msg.contains("blob"), "{msg}");
    assert_eq!(n, 1, "wrong content is not retried");
}

#[test]
fn a_connection_dropped_mid_body_is_an_error_after_retries() {
    let (e, n) = fetch_from(|_| Reply::Truncated {
        status: 200,
        headers: vec![("Content-Type".into(), "application/octet-stream".into())],
        body: BLOB.to_vec(),
        send: 17,
    });
    let msg = e.to_string();
    assert!(matches!(e, RegistryError::Connection { .. } | RegistryError::SizeMismatch { .. }), "{msg}");
    assert!(msg.contains("17 of 40"), "{msg}");
    assert_eq!(n, 3, "retried from the start, three attempts in all");
}

#[test]
fn a_drop_then_a_good_answer_succeeds() {
    let n = AtomicUsize::new(0);
    let server = FakeServer::start(move |_| {
        if n.fetch_add(1, Ordering::SeqCst) == 0 {
            Reply::Truncated { status: 200, headers: vec![], body: BLOB.to_vec(), send: 5 }
        } else {
            Reply::ok("application/octet-stream", BLOB)
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let blobs = BlobStore::open(dir.path()).unwrap();
    let r = Reference::parse(&format!("{}/liar/app:1", server.host())).unwrap();
    client().fetch_blob(&r, &blob_desc(), &blobs, &|_| {}).unwrap();
    assert_eq!(blobs.read(&Digest::of(BLOB)).unwrap(), BLOB);
    assert_eq!(server.count(|_| true), 2);
}

#[test]
fn persistent_500s_are_retried_then_reported() {
    let (e, n) = fetch_from(|_| Reply::status(500, r#"{"errors":[{"code":"UNKNOWN","message":"disk on fire"}]}"#));
    let msg = e.to_string();
    assert!(matches!(e, RegistryError::Status { status: 500, .. }), "{msg}");
    assert!(msg.contains("UNKNOWN: disk on fire"), "{msg}");
    assert!(msg.contains("/v2/liar/app/blobs/sha256:"), "{msg}");
    assert_eq!(n, 3);
}

#[test]
fn transient_500s_are_retried() {
    let n = AtomicUsize::new(0);
    let server = FakeServer::start(move |_| match n.fetch_add(1, Ordering::SeqCst) {
        0 | 1 => Reply::status(503, "busy"),
        _ => Reply::ok("application/octet-stream", BLOB),
    });
    let dir = tempfile::tempdir().unwrap();
    let blobs = BlobStore::open(dir.path()).unwrap();
    let r = Reference::parse(&format!("{}/liar/app:1", server.host())).unwrap();
    client().fetch_blob(&r, &blob_desc(), &blobs, &|_| {}).unwrap();
    assert!(blobs.contains(&Digest::of(BLOB)));
}

#[test]
fn too_many_bytes_are_refused() {
    // Announced larger than the descriptor.
    let (e, _) = fetch_from(|_| Reply::ok("application/octet-stream", &[BLOB, b"extra"].concat()));
    assert!(matches!(e, RegistryError::SizeMismatch { expected: 40, actual: 45, .. }), "{e}");
    // A short, complete body: the content ended early.
    let (e, _) = fetch_from(|_| Reply::ok("application/octet-stream", &BLOB[..30]));
    assert!(matches!(e, RegistryError::SizeMismatch { expected: 40, actual: 30, .. }), "{e}");
    // A body delimited by the connection closing (no Content-Length) that ends early.
    let (e, n) = fetch_from(|_| Reply::Raw([b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", &BLOB[..30]].concat()));
    assert!(matches!(e, RegistryError::SizeMismatch { expected: 40, actual: 30, .. }), "{e}");
    assert!(e.to_string().contains("ended early"), "{e}");
    assert_eq!(n, 3, "a short body counts as a broken transfer and is retried");
}

/// A server that serves one manifest for every manifest request, with extra headers.
fn manifest_server(content_type: &'static str, body: Vec<u8>, headers: Vec<(String, String)>) -> FakeServer {
    FakeServer::start(move |_| Reply::Full {
        status: 200,
        headers: [vec![("Content-Type".to_string(), content_type.to_string())], headers.clone()].concat(),
        body: body.clone(),
    })
}

fn real_manifest() -> (Vec<u8>, Digest) {
    let dir = tempfile::tempdir().unwrap();
    let blobs = BlobStore::open(dir.path()).unwrap();
    let img = build_image(&blobs, &platform("linux", "amd64", None), &[("f", b"m")], Format::Oci);
    (img.bytes.clone(), img.desc.digest.clone())
}

#[test]
fn manifest_digests_are_verified() {
    let amd64 = platform("linux", "amd64", None);
    let (bytes, digest) = real_manifest();

    // Asked by digest, served other bytes.
    let server = manifest_server(media::OCI_MANIFEST, bytes.clone(), vec![]);
    let other = Digest::of(b"another manifest");
    let r = Reference::parse(&format!("{}/liar/app@{other}", server.host())).unwrap();
    let e = client().resolve(&r, &amd64).unwrap_err();
    assert!(
        matches!(&e, RegistryError::DigestMismatch { expected, actual, .. } if expected == &other && actual == &digest),
        "{e}"
    );

    // Asked by tag, the Docker-Content-Digest header disagrees with the bytes.
    let server =
        manifest_server(media::OCI_MANIFEST, bytes.clone(), vec![("Docker-Content-Digest".into(), other.to_string())]);
    let r = Reference::parse(&format!("{}/liar/app:1", server.host())).unwrap();
    let e = client().resolve(&r, &amd64).unwrap_err();
    assert!(matches!(e, RegistryError::DigestMismatch { .. }), "{e}");
    assert!(e.to_string().contains("Docker-Content-Digest"), "{e}");

    // The honest version of the same passes.
    let server =
        manifest_server(media::OCI_MANIFEST, bytes.clone(), vec![("Docker-Content-Digest".into(), digest.to_string())]);
    let r = Reference::parse(&format!("{}/liar/app:1", server.host())).unwrap();
    assert_eq!(client().resolve(&r, &amd64).unwrap().descriptor.digest, digest);
}

#[test]
fn an_index_entry_must_match_what_is_served() {
    // The index points at one manifest, the server answers every manifest request with the index.
    let (bytes, digest) = real_manifest();
    let mut index = strata_store::oci::Index::empty();
    index.manifests.push(Descriptor {
        platform: Some(platform("linux", "amd64", None)),
        ..Descriptor::new(media::OCI_MANIFEST, digest, bytes.len() as u64)
    });
    let index_bytes = strata_store::oci::to_canonical_json(&index);
    let server = manifest_server(media::OCI_INDEX, index_bytes, vec![]);
    let r = Reference::parse(&format!("{}/liar/app:1", server.host())).unwrap();
    let e = client().resolve(&r, &platform("linux", "amd64", None)).unwrap_err();
    assert!(matches!(e, RegistryError::DigestMismatch { .. }), "{e}");
}

#[test]
fn schema1_oversized_and_malformed_manifests_are_refused() {
    let amd64 = platform("linux", "amd64", None);
    let s1 = br#"{"schemaVersion":1,"name":"liar/app","tag":"1","architecture":"amd64","fsLayers":[],"history":[]}"#;
    let server = manifest_server("application/vnd.docker.distribution.manifest.v1+prettyjws", s1.to_vec(), vec![]);
    let r = Reference::parse(&format!("{}/liar/app:1", server.host())).unwrap();
    let e = client().resolve(&r, &amd64).unwrap_err();
    assert!(matches!(e, RegistryError::Schema1 { .. }), "{e}");
    assert!(e.to_string().contains("schema 1"), "{e}");
    // The request asked for the four supported types only.
    let accept = server.requests()[0].header("accept").unwrap().to_string();
    for mt in [media::OCI_MANIFEST, media::OCI_INDEX, media::DOCKER_MANIFEST, media::DOCKER_MANIFEST_LIST] {
        assert!(accept.contains(mt), "{accept}");
    }
    assert!(!accept.contains("v1+prettyjws"));

    let huge = vec![b' '; 5 << 20];
    let server = manifest_server(media::OCI_MANIFEST, huge, vec![]);
    let r = Reference::parse(&format!("{}/liar/app:1", server.host())).unwrap();
    let e = client().resolve(&r, &amd64).unwrap_err();
    assert!(matches!(e, RegistryError::TooLarge { .. }), "{e}");

    let server = manifest_server(media::OCI_MANIFEST, b"{\"schemaVersion\":2,\"config\":".to_vec(), vec![]);
    let r = Reference::parse(&format!("{}/liar/app:1", server.host())).unwrap();
    let e = client().resolve(&r, &amd64).unwrap_err();
    assert!(matches!(e, RegistryError::BadManifest { .. }), "{e}");
    assert!(e.to_string().contains("line 1 column"), "{e}");

    let server = manifest_server(media::OCI_MANIFEST, b"<html>oops</html>".to_vec(), vec![]);
    let r = Reference::parse(&format!("{}/liar/app:1", server.host())).unwrap();
    assert!(matches!(client().resolve(&r, &amd64), Err(RegistryError::BadManifest { .. })));
}

#[test]
fn an_upload_the_registry_refuses_is_an_error() {
    // HEAD says missing, POST gives a location, PUT fails with a registry error.
    let server = FakeServer::start(|req| match req.method.as_str() {
        "HEAD" => Reply::status(404, ""),
        "POST" => {
            Reply::Full { status: 202, headers: vec![("Location".into(), "/upload/abc?state=x".into())], body: vec![] }
        }
        _ => Reply::status(
            400,
            r#"{"errors":[{"code":"DIGEST_INVALID","message":"provided digest did not match uploaded content"}]}"#,
        ),
    });
    let dir = tempfile::tempdir().unwrap();
    let blobs = BlobStore::open(dir.path()).unwrap();
    let d = blobs.put(BLOB).unwrap();
    let desc = Descriptor::new(media::OCI_LAYER, d.clone(), BLOB.len() as u64);
    let r = Reference::parse(&format!("{}/liar/app:1", server.host())).unwrap();
    let e = client().push_blob(&r, &desc, &blobs, &|_| {}).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, RegistryError::Status { status: 400, .. }), "{msg}");
    assert!(msg.contains("DIGEST_INVALID"), "{msg}");
    let put = server.requests().into_iter().find(|q| q.method == "PUT").unwrap();
    assert_eq!(put.path(), "/upload/abc");
    assert_eq!(put.query(), vec![("state".into(), "x".into()), ("digest".into(), d.to_string())]);
    assert_eq!(put.body, BLOB, "the blob was streamed whole");
    assert_eq!(put.header("content-length"), Some("40"));
}
