//! Cross-repository blob mounts: a blob the store has pushed to (or pulled from) one repository
//! of a registry is mounted into another repository of the same registry instead of uploaded,
//! against a real `docker-registry` (watched through the pass-through `fault_proxy`) and, for
//! the token scopes, against an in-test token service.

mod common;
mod fault_proxy;

use common::{FakeServer, Format, Reply, build_image, platform};
use fault_proxy::{Action, FaultProxy};
use strata_store::blobs::BlobStore;
use strata_store::oci::{Descriptor, media};
use strata_store::reference::Reference;
use strata_store::registry::{BlobSources, PushOutcome, RegistryClient, RegistryOptions};
use strata_testkit::TestRegistry;

fn client(sources: &std::path::Path) -> RegistryClient {
    RegistryClient::new(RegistryOptions {
        docker_config: Some("/nonexistent/strata-test/config.json".into()),
        blob_sources: Some(sources.to_path_buf()),
        ..RegistryOptions::default()
    })
    .unwrap()
}

#[test]
fn pushed_and_pulled_blobs_are_mounted_into_other_repositories() {
    let reg = TestRegistry::start();
    let proxy = FaultProxy::start(&reg.host, |_| Action::Forward);
    let dir = tempfile::tempdir().unwrap();
    let blobs = BlobStore::open(&dir.path().join("store")).unwrap();
    let img = build_image(
        &blobs,
        &platform("linux", "amd64", None),
        &[("a", &[7u8; 300_000]), ("b", b"second layer")],
        Format::Oci,
    );
    let sources = dir.path().join("blob-sources");
    let c = client(&sources);
    let at = |repo: &str| Reference::parse(&format!("{}/{repo}:1", proxy.host())).unwrap();

    c.push_image(&at("team/one"), &img.desc, &blobs, &|_, _| {}).unwrap();
    let recorded = BlobSources::new(&sources).lookup(&img.manifest.layers[0].digest);
    assert_eq!(recorded, [format!("{}/team/one", proxy.host())]);

    // Another repository: every blob is mounted, none uploaded.
    let layer = &img.manifest.layers[0];
    let outcome = c.push_blob(&at("team/two"), layer, &blobs, &|_| panic!("nothing is uploaded")).unwrap();
    assert_eq!(outcome, PushOutcome::Mounted);
    c.push_image(&at("team/two"), &img.desc, &blobs, &|_, _| panic!("nothing is uploaded")).unwrap();
    let log = proxy.log();
    let new: Vec<_> = log.iter().filter(|l| l.seen.path().starts_with("/v2/team/two/")).collect();
    let mounts: Vec<_> = new.iter().filter(|l| l.seen.method == "POST").collect();
    assert_eq!(mounts.len(), 3, "the first layer, then the config and the second layer: {new:#?}");
    for m in &mounts {
        assert!(m.seen.target.contains("mount=sha256%3A") || m.seen.target.contains("mount=sha256:"), "{m:?}");
        assert!(m.seen.target.contains("from=team%2Fone") || m.seen.target.contains("from=team/one"), "{m:?}");
        assert_eq!(m.status, Some(201), "mounted");
    }
    assert!(!new.iter().any(|l| l.seen.is_upload_data()), "no blob data sent: {new:#?}");
    let got = c.resolve(&at("team/two"), &platform("linux", "amd64", None)).unwrap();
    assert_eq!(got.descriptor.digest, img.desc.digest);

    // Pulled blobs are remembered too: a fresh store pulls from team/one and pushes to team/three.
    let fresh_dir = tempfile::tempdir().unwrap();
    let fresh = BlobStore::open(fresh_dir.path()).unwrap();
    let c2 = client(&fresh_dir.path().join("blob-sources"));
    for d in std::iter::once(&img.manifest.config).chain(&img.manifest.layers) {
        c2.fetch_blob(&at("team/one"), d, &fresh, &|_| {}).unwrap();
    }
    fresh.put(&img.bytes).unwrap();
    c2.push_image(&at("team/three"), &img.desc, &fresh, &|_, _| panic!("nothing is uploaded")).unwrap();
    let log = proxy.log();
    let three: Vec<_> = log.iter().filter(|l| l.seen.path().starts_with("/v2/team/three/")).collect();
    assert_eq!(three.iter().filter(|l| l.seen.method == "POST" && l.status == Some(201)).count(), 3, "{three:#?}");
}

#[test]
fn a_mount_the_registry_declines_becomes_an_upload() {
    let reg = TestRegistry::start();
    let dir = tempfile::tempdir().unwrap();
    let blobs = BlobStore::open(&dir.path().join("store")).unwrap();
    let img = build_image(&blobs, &platform("linux", "amd64", None), &[("a", b"only here")], Format::Oci);
    let sources = dir.path().join("blob-sources");
    // The store believes another repository holds the layer; the registry does not have it there.
    BlobSources::new(&sources).record(&img.manifest.layers[0].digest, &reg.host, "nowhere/else");
    let c = client(&sources);
    let r = Reference::parse(&format!("{}/real/app:1", reg.host)).unwrap();
    let sent = std::sync::atomic::AtomicU64::new(0);
    let outcome = c
        .push_blob(&r, &img.manifest.layers[0], &blobs, &|n| sent.store(n, std::sync::atomic::Ordering::SeqCst))
        .unwrap();
    assert_eq!(outcome, PushOutcome::Uploaded);
    assert_eq!(sent.into_inner(), img.manifest.layers[0].size);
    c.push_image(&r, &img.desc, &blobs, &|_, _| {}).unwrap();
    assert_eq!(c.resolve(&r, &platform("linux", "amd64", None)).unwrap().descriptor.digest, img.desc.digest);
}

#[test]
fn a_mount_asks_the_token_service_for_both_repositories() {
    const BLOB: &[u8] = b"mounted blob";
    let digest = strata_store::digest::Digest::of(BLOB);
    let port = std::sync::Arc::new(std::sync::OnceLock::<u16>::new());
    let cell = port.clone();
    let server = FakeServer::start(move |req| {
        let port = *cell.get().unwrap();
        if req.path() == "/token" {
            let scopes: Vec<String> = req.query().into_iter().filter(|(k, _)| k == "scope").map(|(_, v)| v).collect();
            return Reply::ok("application/json", format!(r#"{{"token":"{}"}}"#, scopes.join("+")).as_bytes());
        }
        let auth = req.header("authorization").unwrap_or("");
        if !auth.starts_with("Bearer ") {
            return Reply::status(401, "{}").with_header(
                "WWW-Authenticate",
                &format!(r#"Bearer realm="http://127.0.0.1:{port}/token",service="svc""#),
            );
        }
        match req.method.as_str() {
            "HEAD" => Reply::status(404, ""),
            // Mount only with a token covering both repositories.
            "POST" if auth.contains("repository:src/app:pull") && auth.contains("repository:dst/app:pull,push") => {
                Reply::Full { status: 201, headers: vec![], body: vec![] }
            }
            _ => Reply::status(403, r#"{"errors":[{"code":"DENIED","message":"no"}]}"#),
        }
    });
    port.set(server.port).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let blobs = BlobStore::open(dir.path()).unwrap();
    blobs.put(BLOB).unwrap();
    let sources = dir.path().join("sources");
    BlobSources::new(&sources).record(&digest, &server.host(), "src/app");
    let r = Reference::parse(&format!("{}/dst/app:1", server.host())).unwrap();
    let desc = Descriptor::new(media::OCI_LAYER, digest.clone(), BLOB.len() as u64);
    assert_eq!(client(&sources).push_blob(&r, &desc, &blobs, &|_| {}).unwrap(), PushOutcome::Mounted);
    let post = server.requests().into_iter().find(|q| q.method == "POST").unwrap();
    assert_eq!(
        post.query(),
        vec![("mount".to_string(), digest.to_string()), ("from".to_string(), "src/app".to_string())]
    );
    assert_eq!(BlobSources::new(&sources).lookup(&digest)[0], format!("{}/dst/app", server.host()));
}
