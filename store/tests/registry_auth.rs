//! Authentication: htpasswd basic auth against a real registry with credentials from a
//! config.json, and the Bearer token flow against an in-test token service + registry.

mod common;

use std::path::{Path, PathBuf};

use common::{FakeServer, Format, Reply, build_image, platform};
use strata_store::blobs::BlobStore;
use strata_store::oci::media;
use strata_store::reference::Reference;
use strata_store::registry::{RegistryClient, RegistryError, RegistryOptions};
use strata_testkit::TestRegistry;

/// base64("tester:secret"), as `docker login` writes it.
const TESTER_SECRET_B64: &str = "dGVzdGVyOnNlY3JldA==";

fn config(dir: &Path, json: &str) -> PathBuf {
    let p = dir.join("config.json");
    std::fs::write(&p, json).unwrap();
    p
}

fn client_with(config: PathBuf) -> RegistryClient {
    RegistryClient::new(RegistryOptions { docker_config: Some(config), ..RegistryOptions::default() }).unwrap()
}

#[test]
fn htpasswd_registry_with_credentials_from_config_json() {
    let reg = TestRegistry::start_with_htpasswd("tester", "secret");
    let dir = tempfile::tempdir().unwrap();
    let blobs = BlobStore::open(&dir.path().join("store")).unwrap();
    let amd64 = platform("linux", "amd64", None);
    let img = build_image(&blobs, &amd64, &[("f", b"authenticated")], Format::Oci);
    let r = Reference::parse(&format!("{}/private/app:1", reg.host)).unwrap();

    // `auth` form.
    let cfg = config(dir.path(), &format!(r#"{{"auths":{{"{}":{{"auth":"{TESTER_SECRET_B64}"}}}}}}"#, reg.host));
    let c = client_with(cfg);
    assert_eq!(c.push_image(&r, &img.desc, &blobs, &|_, _| {}).unwrap(), img.desc.digest);
    let got = c.resolve(&r, &amd64).unwrap();
    assert_eq!(got.manifest, img.manifest);
    let dst_dir = tempfile::tempdir().unwrap();
    let dst = BlobStore::open(dst_dir.path()).unwrap();
    c.fetch_blob(&r, &img.manifest.layers[0], &dst, &|_| {}).unwrap();
    assert!(dst.contains(&img.manifest.layers[0].digest));

    // `username`/`password` form, under an `http://` key with a path (matched by host).
    let cfg2 = tempfile::tempdir().unwrap();
    let path = config(
        cfg2.path(),
        &format!(r#"{{"auths":{{"http://{}/v2/":{{"username":"tester","password":"secret"}}}}}}"#, reg.host),
    );
    assert_eq!(client_with(path).resolve(&r, &amd64).unwrap().descriptor.digest, img.desc.digest);
}

#[test]
fn htpasswd_registry_without_or_with_wrong_credentials_is_a_clear_error() {
    let reg = TestRegistry::start_with_htpasswd("tester", "secret");
    let dir = tempfile::tempdir().unwrap();
    let blobs = BlobStore::open(&dir.path().join("store")).unwrap();
    let amd64 = platform("linux", "amd64", None);
    let img = build_image(&blobs, &amd64, &[("f", b"x")], Format::Oci);
    let r = Reference::parse(&format!("{}/private/app:1", reg.host)).unwrap();

    let missing = dir.path().join("no-such-dir/config.json");
    let c = client_with(missing.clone());
    let e = c.push_image(&r, &img.desc, &blobs, &|_, _| {}).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, RegistryError::Unauthorized { status: 401, .. }), "{msg}");
    assert!(msg.contains(&format!("no credentials for {}", reg.host)), "{msg}");
    assert!(msg.contains(&missing.display().to_string()), "{msg}");
    assert!(msg.contains(&format!("docker login {}", reg.host)), "{msg}");
    let e = c.resolve(&r, &amd64).unwrap_err();
    assert!(matches!(e, RegistryError::Unauthorized { .. }), "{e}");

    // Credentials for another registry do not count.
    let other = config(dir.path(), &format!(r#"{{"auths":{{"127.0.0.2:1":{{"auth":"{TESTER_SECRET_B64}"}}}}}}"#));
    assert!(matches!(client_with(other).resolve(&r, &amd64), Err(RegistryError::Unauthorized { .. })));

    // Wrong password: rejected, and said so.
    let wrong =
        config(dir.path(), &format!(r#"{{"auths":{{"{}":{{"username":"tester","password":"nope"}}}}}}"#, reg.host));
    let e = client_with(wrong).resolve(&r, &amd64).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, RegistryError::Unauthorized { status: 401, .. }), "{msg}");
    assert!(msg.contains("rejected"), "{msg}");
    assert!(msg.contains("UNAUTHORIZED"), "the registry's error code is included: {msg}");

    // A malformed config is reported with its position, not ignored.
    let bad = config(dir.path(), "{\"auths\": {\"x\": 5}}");
    let e = client_with(bad.clone()).resolve(&r, &amd64).unwrap_err();
    assert!(e.to_string().contains(&format!("{}:1:", bad.display())), "{e}");
}

/// The manifest the fake registry serves.
fn fake_manifest() -> (Vec<u8>, strata_store::digest::Digest) {
    let dir = tempfile::tempdir().unwrap();
    let blobs = BlobStore::open(dir.path()).unwrap();
    let img = build_image(&blobs, &platform("linux", "amd64", None), &[("f", b"bearer")], Format::Oci);
    (img.bytes.clone(), img.desc.digest.clone())
}

/// A token service and registry in one: anything under /v2/ needs `Bearer tok-<n>`; /token
/// issues tokens and records what was asked.
fn bearer_server(manifest: Vec<u8>) -> FakeServer {
    let counter = std::sync::atomic::AtomicUsize::new(0);
    let port_cell = std::sync::Arc::new(std::sync::OnceLock::<u16>::new());
    let cell = port_cell.clone();
    let server = FakeServer::start(move |req| {
        let port = *cell.get().unwrap();
        if req.path() == "/token" {
            let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            let scopes: Vec<String> =
                req.query().into_iter().filter(|(k, _)| k == "scope").map(|(_, v)| v).collect::<Vec<_>>();
            let form = String::from_utf8_lossy(&req.body).to_string();
            let push = scopes.iter().any(|s| s.ends_with(",push")) || form.contains("%2Cpush");
            let token = if push { format!("push-{n}") } else { format!("tok-{n}") };
            return Reply::ok("application/json", format!(r#"{{"token":"{token}","expires_in":300}}"#).as_bytes());
        }
        let auth = req.header("authorization").unwrap_or("");
        let is_push = req.method == "PUT";
        let ok = if is_push { auth.starts_with("Bearer push-") } else { auth.starts_with("Bearer ") };
        if !ok {
            let scope = if is_push { "repository:test/app:pull,push" } else { "repository:test/app:pull" };
            return Reply::status(401, r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#)
                .with_header(
                    "WWW-Authenticate",
                    &format!(
                        r#"Bearer realm="http://127.0.0.1:{port}/token",service="strata-test-registry",scope="{scope}""#
                    ),
                );
        }
        if req.method == "PUT" {
            return Reply::Full { status: 201, headers: vec![], body: vec![] };
        }
        Reply::ok(media::OCI_MANIFEST, &manifest)
    });
    port_cell.set(server.port).unwrap();
    server
}

#[test]
fn bearer_token_flow_requests_scope_and_service_with_basic_credentials() {
    let (manifest, digest) = fake_manifest();
    let server = bearer_server(manifest.clone());
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &format!(r#"{{"auths":{{"{}":{{"auth":"{TESTER_SECRET_B64}"}}}}}}"#, server.host()));
    let c = client_with(cfg);
    let r = Reference::parse(&format!("{}/test/app:v1", server.host())).unwrap();
    let amd64 = platform("linux", "amd64", None);

    let got = c.resolve(&r, &amd64).unwrap();
    assert_eq!(got.manifest_bytes, manifest);
    assert_eq!(got.descriptor.digest, digest);

    let reqs = server.requests();
    let tokens: Vec<_> = reqs.iter().filter(|q| q.path() == "/token").collect();
    assert_eq!(tokens.len(), 1, "{reqs:#?}");
    assert_eq!(tokens[0].method, "GET");
    assert_eq!(
        tokens[0].query(),
        vec![
            ("service".to_string(), "strata-test-registry".to_string()),
            ("scope".to_string(), "repository:test/app:pull".to_string())
        ]
    );
    assert_eq!(tokens[0].header("authorization"), Some(format!("Basic {TESTER_SECRET_B64}").as_str()));
    // Anonymous first, then with the token.
    let manifests: Vec<_> = reqs.iter().filter(|q| q.path() == "/v2/test/app/manifests/v1").collect();
    assert_eq!(manifests.len(), 2);
    assert_eq!(manifests[0].header("authorization"), None);
    assert_eq!(manifests[1].header("authorization"), Some("Bearer tok-1"));

    // The token is cached: a second resolve asks the token service nothing and is not challenged.
    c.resolve(&r, &amd64).unwrap();
    assert_eq!(server.count(|q| q.path() == "/token"), 1);
    assert_eq!(server.requests().last().unwrap().header("authorization"), Some("Bearer tok-1"));

    // Pushing needs a pull,push token: a new scope, a new token.
    let pushed = c.push_manifest(&r, media::OCI_MANIFEST, &manifest).unwrap();
    assert_eq!(pushed, digest);
    let token_reqs: Vec<_> = server.requests().into_iter().filter(|q| q.path() == "/token").collect();
    assert_eq!(token_reqs.len(), 2);
    assert_eq!(
        token_reqs[1].query(),
        vec![
            ("service".to_string(), "strata-test-registry".to_string()),
            ("scope".to_string(), "repository:test/app:pull,push".to_string())
        ]
    );
    let put = server.requests().into_iter().rfind(|q| q.method == "PUT").unwrap();
    assert_eq!(put.header("authorization"), Some("Bearer push-2"));
    assert_eq!(put.header("content-type"), Some(media::OCI_MANIFEST));
    assert_eq!(put.body, manifest);
}

#[test]
fn bearer_token_flow_anonymous_and_with_identity_token() {
    let (manifest, _) = fake_manifest();
    let server = bearer_server(manifest);
    let dir = tempfile::tempdir().unwrap();
    let r = Reference::parse(&format!("{}/test/app:v1", server.host())).unwrap();
    let amd64 = platform("linux", "amd64", None);

    // No config: an anonymous token request.
    client_with(dir.path().join("absent.json")).resolve(&r, &amd64).unwrap();
    let t = server.requests().into_iter().find(|q| q.path() == "/token").unwrap();
    assert_eq!(t.header("authorization"), None);

    // An identity token: an OAuth2 refresh-token grant, POSTed as a form.
    let cfg = config(dir.path(), &format!(r#"{{"auths":{{"{}":{{"identitytoken":"refresh-me"}}}}}}"#, server.host()));
    client_with(cfg).resolve(&r, &amd64).unwrap();
    let t = server.requests().into_iter().filter(|q| q.path() == "/token").nth(1).unwrap();
    assert_eq!(t.method, "POST");
    assert_eq!(t.header("content-type"), Some("application/x-www-form-urlencoded"));
    let form: Vec<(String, String)> = String::from_utf8(t.body.clone())
        .unwrap()
        .split('&')
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (common::decode(k), common::decode(v))
        })
        .collect();
    let get = |k: &str| form.iter().find(|(fk, _)| fk == k).map(|(_, v)| v.as_str());
    assert_eq!(get("grant_type"), Some("refresh_token"));
    assert_eq!(get("refresh_token"), Some("refresh-me"));
    assert_eq!(get("service"), Some("strata-test-registry"));
    assert_eq!(get("scope"), Some("repository:test/app:pull"));
}

#[test]
fn a_failing_token_service_is_reported() {
    let server = FakeServer::start(|req| {
        if req.path() == "/token" {
            return Reply::status(401, r#"{"details":"incorrect username or password"}"#);
        }
        Reply::status(401, "{}").with_header("WWW-Authenticate", r#"Bearer realm="http://127.0.0.1:1/unused""#)
    });
    // The realm points at a closed port: a connection error naming the token URL.
    let dir = tempfile::tempdir().unwrap();
    let c = client_with(dir.path().join("absent.json"));
    let r = Reference::parse(&format!("{}/test/app:v1", server.host())).unwrap();
    let e = c.resolve(&r, &platform("linux", "amd64", None)).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, RegistryError::Auth { .. }), "{msg}");
    assert!(msg.contains("http://127.0.0.1:1/unused"), "{msg}");

    // A token service that says no: its message is shown.
    let port = server.port;
    let server2 = FakeServer::start(move |req| {
        if req.path() == "/token" {
            return Reply::status(401, r#"{"details":"incorrect username or password"}"#);
        }
        Reply::status(401, "{}")
            .with_header("WWW-Authenticate", &format!(r#"Bearer realm="http://127.0.0.1:{port}/token",service="s""#))
    });
    let r2 = Reference::parse(&format!("{}/test/app:v1", server2.host())).unwrap();
    let e = c.resolve(&r2, &platform("linux", "amd64", None)).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("incorrect username or password"), "{msg}");
    assert!(msg.contains("401"), "{msg}");
}

#[test]
fn parallel_uploads_share_one_token() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = BlobStore::open(dir.path()).unwrap();
    let files: Vec<(String, Vec<u8>)> = (0..5).map(|i| (format!("f{i}"), vec![b'a' + i as u8; 100])).collect();
    let files: Vec<(&str, &[u8])> = files.iter().map(|(n, c)| (n.as_str(), c.as_slice())).collect();
    let img = build_image(&blobs, &platform("linux", "amd64", None), &files, Format::Oci);
    // The fake registry answers every authorized HEAD with 200: all blobs "exist".
    let server = bearer_server(img.bytes.clone());
    let c = client_with(dir.path().join("absent.json"));
    let r = Reference::parse(&format!("{}/test/app:v1", server.host())).unwrap();
    assert_eq!(c.push_image(&r, &img.desc, &blobs, &|_, _| panic!("nothing to upload")).unwrap(), img.desc.digest);
    let tokens: Vec<_> = server.requests().into_iter().filter(|q| q.path() == "/token").collect();
    assert_eq!(tokens.len(), 1, "six concurrent HEADs, one token: {tokens:#?}");
    // Our pull,push scope first, then the one the challenge named.
    let scopes: Vec<String> = tokens[0].query().into_iter().filter(|(k, _)| k == "scope").map(|(_, v)| v).collect();
    assert_eq!(scopes, ["repository:test/app:pull,push", "repository:test/app:pull"]);
    assert_eq!(server.count(|q| q.method == "HEAD" && q.header("authorization") == Some("Bearer push-1")), 6);
}

#[test]
fn blob_redirects_are_followed_without_leaking_credentials() {
    const BLOB: &[u8] = b"served from a CDN";
    let cdn = FakeServer::start(|_| Reply::ok("application/octet-stream", BLOB));
    let cdn_port = cdn.port;
    let registry = FakeServer::start(move |req| {
        if req.header("authorization") != Some(&*format!("Basic {TESTER_SECRET_B64}")) {
            return Reply::status(401, "{}").with_header("WWW-Authenticate", r#"Basic realm="r""#);
        }
        Reply::Full {
            status: 307,
            headers: vec![("Location".into(), format!("http://127.0.0.1:{cdn_port}/blob?sig=abc"))],
            body: vec![],
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &format!(r#"{{"auths":{{"{}":{{"auth":"{TESTER_SECRET_B64}"}}}}}}"#, registry.host()));
    let blobs = BlobStore::open(&dir.path().join("store")).unwrap();
    let desc =
        strata_store::oci::Descriptor::new(media::OCI_LAYER, strata_store::digest::Digest::of(BLOB), BLOB.len() as u64);
    let r = Reference::parse(&format!("{}/test/app:v1", registry.host())).unwrap();
    client_with(cfg).fetch_blob(&r, &desc, &blobs, &|_| {}).unwrap();
    assert_eq!(blobs.read(&desc.digest).unwrap(), BLOB);
    let cdn_reqs = cdn.requests();
    assert_eq!(cdn_reqs.len(), 1);
    assert_eq!(cdn_reqs[0].target, "/blob?sig=abc");
    assert_eq!(cdn_reqs[0].header("authorization"), None, "credentials stay with the registry");
}
