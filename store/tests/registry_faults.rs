//! Pushing and pulling through a faulty network: a real `docker-registry` behind a proxy that
//! answers 500s, cuts connections in the middle of blobs, loses answers, refuses large requests
//! and throttles (`fault_proxy`). The push either completes — resumed where the registry
//! stopped, or started over when the registry lost the session — or fails with an error naming
//! the blob; in every case the registry never holds a manifest whose blobs are missing.

mod common;
mod fault_proxy;

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use common::{Format, Image, build_image, platform};
use fault_proxy::{Action, FaultProxy, Logged, Seen};
use strata_store::blobs::BlobStore;
use strata_store::reference::Reference;
use strata_store::registry::{RegistryClient, RegistryError, RegistryOptions, UPLOAD_ATTEMPTS};
use strata_testkit::TestRegistry;

const MIB: usize = 1 << 20;

/// Incompressible bytes (xorshift), so a layer's gzip is as large as its content.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// An image with three large layers (3, 2 and 1.5 MiB of noise) in a fresh blob store.
fn big_image(dir: &std::path::Path, seed: u64) -> (BlobStore, Image) {
    let blobs = BlobStore::open(dir).unwrap();
    let (a, b, c) = (noise(3 * MIB, seed), noise(2 * MIB, seed + 1), noise(3 * MIB / 2, seed + 2));
    let img = build_image(&blobs, &platform("linux", "amd64", None), &[("a", &a), ("b", &b), ("c", &c)], Format::Oci);
    (blobs, img)
}

fn client(chunk_size: Option<u64>) -> RegistryClient {
    RegistryClient::new(RegistryOptions {
        docker_config: Some("/nonexistent/strata-test/config.json".into()),
        chunk_size,
        ..RegistryOptions::default()
    })
    .unwrap()
}

/// The upload session a request belongs to (distribution's upload UUID in the path).
fn session_of(seen: &Seen) -> Option<String> {
    let rest = seen.path().split("/blobs/uploads/").nth(1)?;
    (!rest.is_empty()).then(|| rest.to_string())
}

/// Checks the registry directly (not through the proxy): if `tag` names a manifest, every blob
/// it lists is there with the right content. Returns whether the manifest exists.
fn manifest_is_complete(reg: &TestRegistry, repo: &str, img: &Image) -> bool {
    let r = Reference::parse(&format!("{}/{repo}:1", reg.host)).unwrap();
    let c = client(None);
    match c.resolve(&r, &platform("linux", "amd64", None)) {
        Ok(got) => {
            assert_eq!(got.descriptor.digest, img.desc.digest);
            let dir = tempfile::tempdir().unwrap();
            let fresh = BlobStore::open(dir.path()).unwrap();
            for d in std::iter::once(&got.manifest.config).chain(&got.manifest.layers) {
                c.fetch_blob(&r, d, &fresh, &|_| {}).unwrap_or_else(|e| panic!("manifest lists {}: {e}", d.digest));
            }
            true
        }
        Err(RegistryError::Status { status: 404, .. }) => false,
        Err(e) => panic!("resolving {r}: {e}"),
    }
}

/// Every blob request arrived before the manifest PUT, and nothing after it.
fn assert_manifest_last(log: &[Logged]) {
    let manifest = log
        .iter()
        .find(|l| l.seen.method == "PUT" && l.seen.path().contains("/manifests/"))
        .unwrap_or_else(|| panic!("no manifest PUT in {log:#?}"));
    for l in log.iter().filter(|l| l.seen.path().contains("/blobs/")) {
        assert!(l.arrival < manifest.arrival, "{} {} after the manifest", l.seen.method, l.seen.target);
    }
}

fn count(log: &[Logged], f: impl Fn(&Logged) -> bool) -> usize {
    log.iter().filter(|l| f(l)).count()
}

fn push_through(
    proxy: &FaultProxy,
    c: &RegistryClient,
    blobs: &BlobStore,
    img: &Image,
) -> Result<(), Box<RegistryError>> {
    let r = Reference::parse(&format!("{}/faults/app:1", proxy.host())).unwrap();
    c.push_image(&r, &img.desc, blobs, &|_, _| {}).map(|d| assert_eq!(d, img.desc.digest)).map_err(Box::new)
}

#[test]
fn server_errors_are_retried_and_uploads_resume_where_they_stopped() {
    let reg = TestRegistry::start();
    let dir = tempfile::tempdir().unwrap();
    let (blobs, img) = big_image(dir.path(), 1);
    let heads = Mutex::new(HashSet::new());
    let patches: Mutex<HashMap<String, usize>> = Mutex::new(HashMap::new());
    let proxy = FaultProxy::start(&reg.host, move |seen| {
        // The first HEAD of each blob: 503 (HEADs are retried by the client).
        if seen.method == "HEAD" && heads.lock().unwrap().insert(seen.target.clone()) {
            return Action::Answer(503, r#"{"errors":[{"code":"UNAVAILABLE","message":"try later"}]}"#.into());
        }
        // Every session's second PATCH: a 500 that never reaches the registry.
        if seen.method == "PATCH" {
            let mut p = patches.lock().unwrap();
            let n = p.entry(session_of(seen).unwrap_or_default()).or_default();
            *n += 1;
            if *n == 2 {
                return Action::Answer(500, r#"{"errors":[{"code":"UNKNOWN","message":"injected"}]}"#.into());
            }
        }
        Action::Forward
    });
    // 1 MiB chunks: the 3 MiB layer goes in three PATCHes.
    push_through(&proxy, &client(Some(MIB as u64)), &blobs, &img).unwrap();
    assert!(manifest_is_complete(&reg, "faults/app", &img));
    let log = proxy.log();
    assert_manifest_last(&log);
    // Resumed, not restarted: one session per uploaded blob.
    let posts = count(&log, |l| l.seen.method == "POST");
    assert_eq!(posts, 4, "config and three layers, one session each: {log:#?}");
    assert!(count(&log, |l| l.seen.method == "GET" && l.seen.path().contains("/blobs/uploads/")) >= 3, "status asked");
    // The 3 MiB layer: chunk 0 accepted, chunk 1 refused, chunk 1 again, then the rest.
    let size = img.manifest.layers[0].size;
    let last = format!("3145728-{}", size - 1);
    let big_session = log
        .iter()
        .find(|l| l.seen.header("content-range") == Some(last.as_str()))
        .and_then(|l| session_of(&l.seen))
        .unwrap_or_else(|| panic!("no PATCH {last}: {log:#?}"));
    let seq: Vec<(String, Option<u16>)> = log
        .iter()
        .filter(|l| l.seen.method == "PATCH" && session_of(&l.seen) == Some(big_session.clone()))
        .map(|l| (l.seen.header("content-range").unwrap().to_string(), l.status))
        .collect();
    let expected: Vec<(String, Option<u16>)> = [
        ("0-1048575", 202),
        ("1048576-2097151", 500),
        ("1048576-2097151", 202),
        ("2097152-3145727", 202),
        (last.as_str(), 202),
    ]
    .iter()
    .map(|(r, s)| (r.to_string(), Some(*s)))
    .collect();
    assert_eq!(seq, expected);
    let sent: u64 =
        log.iter().filter(|l| l.seen.is_upload_data() && l.status == Some(202)).map(|l| l.request_bytes).sum();
    let config_sent: u64 =
        log.iter().filter(|l| l.seen.is_upload_data() && l.status == Some(201)).map(|l| l.request_bytes).sum();
    assert_eq!(config_sent, img.manifest.config.size, "the small config went in one PUT");
    let layers: u64 = img.manifest.layers.iter().map(|l| l.size).sum();
    assert_eq!(sent, layers, "each accepted byte sent once");
}

#[test]
fn connections_cut_mid_blob_start_the_upload_over() {
    let reg = TestRegistry::start();
    let dir = tempfile::tempdir().unwrap();
    let (blobs, img) = big_image(dir.path(), 2);
    let cut = Mutex::new(HashSet::new());
    let proxy = FaultProxy::start(&reg.host, move |seen| {
        // Each layer's monolithic PUT is cut after 256 KiB reached the registry: distribution
        // then refuses the session (its size no longer matches the upload URL).
        if seen.method == "PUT"
            && seen.body_len > 256 << 10
            && cut.lock().unwrap().insert(session_of(seen).unwrap_or_default())
        {
            return Action::CutAfter(256 << 10);
        }
        Action::Forward
    });
    push_through(&proxy, &client(None), &blobs, &img).unwrap();
    assert!(manifest_is_complete(&reg, "faults/app", &img));
    let log = proxy.log();
    assert_manifest_last(&log);
    let cuts = count(&log, |l| matches!(l.action, Action::CutAfter(_)));
    assert_eq!(cuts, 3, "each layer's first attempt was cut: {log:#?}");
    assert_eq!(count(&log, |l| l.seen.method == "POST"), 4 + cuts, "a new session after each cut");
}

#[test]
fn a_buffering_proxy_that_loses_the_client_costs_one_chunk() {
    let reg = TestRegistry::start();
    let dir = tempfile::tempdir().unwrap();
    let (blobs, img) = big_image(dir.path(), 3);
    let patches: Mutex<HashMap<String, usize>> = Mutex::new(HashMap::new());
    let proxy = FaultProxy::start(&reg.host, move |seen| {
        if seen.method == "PATCH" {
            let mut p = patches.lock().unwrap();
            let n = p.entry(session_of(seen).unwrap_or_default()).or_default();
            *n += 1;
            if *n == 2 {
                return Action::CutBuffered(512 << 10);
            }
        }
        Action::Forward
    });
    push_through(&proxy, &client(Some(MIB as u64)), &blobs, &img).unwrap();
    assert!(manifest_is_complete(&reg, "faults/app", &img));
    let log = proxy.log();
    assert_manifest_last(&log);
    assert_eq!(count(&log, |l| l.seen.method == "POST"), 4, "resumed in the same sessions: {log:#?}");
    let forwarded: u64 =
        log.iter().filter(|l| l.seen.is_upload_data() && l.status.is_some()).map(|l| l.request_bytes).sum();
    let all: u64 = img.manifest.layers.iter().map(|l| l.size).sum::<u64>() + img.manifest.config.size;
    assert_eq!(forwarded, all, "the registry got each byte once");
    assert_eq!(count(&log, |l| matches!(l.action, Action::CutBuffered(_))), 3, "one cut per layer");
}

#[test]
fn a_lost_answer_does_not_upload_the_blob_again() {
    let reg = TestRegistry::start();
    let dir = tempfile::tempdir().unwrap();
    let (blobs, img) = big_image(dir.path(), 4);
    let lost = Mutex::new(HashSet::new());
    let proxy = FaultProxy::start(&reg.host, move |seen| {
        if seen.is_upload_data() && lost.lock().unwrap().insert(session_of(seen).unwrap_or_default()) {
            return Action::LoseAnswer;
        }
        Action::Forward
    });
    push_through(&proxy, &client(None), &blobs, &img).unwrap();
    assert!(manifest_is_complete(&reg, "faults/app", &img));
    let log = proxy.log();
    assert_manifest_last(&log);
    assert_eq!(count(&log, |l| l.seen.method == "POST"), 4, "{log:#?}");
    assert_eq!(count(&log, |l| l.seen.is_upload_data()), 4, "each blob sent once");
}

#[test]
fn a_slow_registry_gets_everything() {
    let reg = TestRegistry::start();
    let dir = tempfile::tempdir().unwrap();
    let (blobs, img) = big_image(dir.path(), 5);
    let proxy = FaultProxy::start(&reg.host, |_| Action::Throttle(4 << 20));
    let start = std::time::Instant::now();
    push_through(&proxy, &client(None), &blobs, &img).unwrap();
    assert!(start.elapsed() >= std::time::Duration::from_millis(600), "the throttle was in effect");
    assert!(manifest_is_complete(&reg, "faults/app", &img));
    assert_manifest_last(&proxy.log());
}

#[test]
fn too_large_requests_fall_back_to_chunks() {
    let reg = TestRegistry::start();
    let dir = tempfile::tempdir().unwrap();
    let (blobs, img) = big_image(dir.path(), 6);
    let proxy = FaultProxy::start(&reg.host, |seen| {
        if seen.body_len > MIB as u64 {
            return Action::Answer(413, "<html>413 Request Entity Too Large</html>".into());
        }
        Action::Forward
    });
    push_through(&proxy, &client(None), &blobs, &img).unwrap();
    assert!(manifest_is_complete(&reg, "faults/app", &img));
    let log = proxy.log();
    assert_manifest_last(&log);
    assert!(
        log.iter().filter(|l| l.seen.is_upload_data() && l.status == Some(202)).all(|l| l.seen.body_len <= MIB as u64),
        "{log:#?}"
    );
    assert!(count(&log, |l| l.seen.method == "PATCH" && l.status == Some(202)) >= 6);
}

#[test]
fn a_blob_the_registry_never_gets_fails_the_push_and_no_manifest_appears() {
    let reg = TestRegistry::start();
    let dir = tempfile::tempdir().unwrap();
    let (blobs, img) = big_image(dir.path(), 7);
    let proxy = FaultProxy::start(&reg.host, |seen| {
        if seen.is_upload_data() && seen.body_len > MIB as u64 / 2 {
            return Action::CutAfter(64 << 10);
        }
        Action::Forward
    });
    let e = *push_through(&proxy, &client(None), &blobs, &img).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, RegistryError::Connection { .. }), "{msg}");
    assert!(msg.contains("faults/app") && msg.contains("uploading blob sha256:"), "{msg}");
    assert!(!manifest_is_complete(&reg, "faults/app", &img), "no manifest for a failed push");
    let log = proxy.log();
    assert!(!log.iter().any(|l| l.seen.path().contains("/manifests/")), "the manifest was never sent");
    // The failing layers were tried UPLOAD_ATTEMPTS times at most, not forever.
    let cuts = count(&log, |l| matches!(l.action, Action::CutAfter(_)));
    assert!((1..=3 * UPLOAD_ATTEMPTS as usize).contains(&cuts), "{cuts} cuts");
}

#[test]
fn downloads_resume_with_range_requests() {
    let reg = TestRegistry::start();
    let dir = tempfile::tempdir().unwrap();
    let (blobs, img) = big_image(&dir.path().join("src"), 8);
    let direct = Reference::parse(&format!("{}/faults/app:1", reg.host)).unwrap();
    client(None).push_image(&direct, &img.desc, &blobs, &|_, _| {}).unwrap();

    let proxy = FaultProxy::start(&reg.host, move |seen| {
        // A GET of the whole blob breaks after 1 MiB of body.
        if seen.is_blob_get() && seen.header("range").is_none() {
            return Action::CutAnswerAfter(MIB as u64);
        }
        Action::Forward
    });
    let r = Reference::parse(&format!("{}/faults/app:1", proxy.host())).unwrap();
    let fresh = BlobStore::open(&dir.path().join("dst")).unwrap();
    let c = client(None);
    let layer = &img.manifest.layers[0];
    let seen_progress = Mutex::new(Vec::new());
    c.fetch_blob(&r, layer, &fresh, &|n| seen_progress.lock().unwrap().push(n)).unwrap();
    assert_eq!(blobs.read(&layer.digest).unwrap(), fresh.read(&layer.digest).unwrap());
    let log = proxy.log();
    let blob_gets: Vec<&Logged> = log.iter().filter(|l| l.seen.is_blob_get()).collect();
    assert_eq!(blob_gets.len(), 2, "{log:#?}");
    assert_eq!(blob_gets[1].seen.header("range"), Some("bytes=1048576-"));
    assert_eq!(blob_gets[1].status, Some(206));
    let received: u64 = blob_gets.iter().map(|l| l.response_bytes).sum();
    assert_eq!(received, layer.size, "no byte fetched twice");
    let progress = seen_progress.into_inner().unwrap();
    assert_eq!(progress.last(), Some(&layer.size));
    assert!(progress.windows(2).all(|w| w[0] <= w[1]), "progress never goes back on a resume");
    assert_eq!(common::ingest_files(&dir.path().join("dst")), 0);
}
