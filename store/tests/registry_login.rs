//! Logging in (checking credentials as `docker login` does) against a real htpasswd
//! `docker-registry` and an in-test token service; refresh tokens issued by the token service
//! are used for later tokens; a token the registry stops accepting is replaced.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use common::{FakeServer, Format, Reply, build_image, platform};
use strata_store::blobs::BlobStore;
use strata_store::oci::media;
use strata_store::reference::Reference;
use strata_store::registry::credentials::{Login, StoredIn, store_credential};
use strata_store::registry::{RegistryClient, RegistryError, RegistryOptions};
use strata_testkit::TestRegistry;

fn client(config: PathBuf) -> RegistryClient {
    RegistryClient::new(RegistryOptions { docker_config: Some(config), ..RegistryOptions::default() }).unwrap()
}

#[test]
fn login_checks_credentials_against_an_htpasswd_registry() {
    let reg = TestRegistry::start_with_htpasswd("tester", "secret");
    let dir = tempfile::tempdir().unwrap();
    let c = client(dir.path().join("config.json"));
    assert_eq!(c.login(&reg.host, "tester", "secret").unwrap().identity_token, None);
    let e = c.login(&reg.host, "tester", "wrong").unwrap_err();
    assert!(matches!(e, RegistryError::Auth { .. }), "{e}");
    let msg = e.to_string();
    assert!(msg.contains("login to") && msg.contains("\"tester\"") && msg.contains("401"), "{msg}");
    assert!(!msg.contains("wrong"), "the password is not shown: {msg}");
    // An open registry accepts any login, as docker's does.
    let open = TestRegistry::start();
    assert!(c.login(&open.host, "anyone", "anything").is_ok());
    // Nothing listening: a connection error naming the URL.
    let e = c.login("127.0.0.1:1", "u", "p").unwrap_err();
    assert!(e.to_string().contains("http://127.0.0.1:1/v2/"), "{e}");

    // What login saves is what later commands use.
    let cfg = dir.path().join("config.json");
    let login = Login { username: "tester".into(), secret: "secret".into(), identity_token: false };
    assert_eq!(store_credential(&cfg, &reg.host, &login).unwrap(), StoredIn::File);
    let blobs = BlobStore::open(&dir.path().join("store")).unwrap();
    let img = build_image(&blobs, &platform("linux", "amd64", None), &[("f", b"after login")], Format::Oci);
    let r = Reference::parse(&format!("{}/private/app:1", reg.host)).unwrap();
    assert_eq!(client(cfg).push_image(&r, &img.desc, &blobs, &|_, _| {}).unwrap(), img.desc.digest);
}

/// What the token service saw.
#[derive(Default)]
struct TokenLog {
    requests: Vec<(String, Vec<(String, String)>)>,
}

/// A token service + registry: `/token` accepts basic `tester:secret` (GET) or refresh token
/// `rt-N` (POST form); with `offline_token=true` or a refresh grant it also issues a refresh
/// token. The registry accepts only the latest token issued (older ones are "revoked").
fn token_server(log: Arc<Mutex<TokenLog>>, manifest: Vec<u8>) -> FakeServer {
    let issued = AtomicUsize::new(0);
    let port = Arc::new(OnceLock::<u16>::new());
    let cell = port.clone();
    let server = FakeServer::start(move |req| {
        let port = *cell.get().unwrap();
        if req.path() == "/token" {
            let params: Vec<(String, String)> = if req.method == "POST" {
                String::from_utf8_lossy(&req.body)
                    .split('&')
                    .filter_map(|kv| kv.split_once('=').map(|(k, v)| (common::decode(k), common::decode(v))))
                    .collect()
            } else {
                req.query()
            };
            log.lock().unwrap().requests.push((req.method.clone(), params.clone()));
            let get = |k: &str| params.iter().find(|(pk, _)| pk == k).map(|(_, v)| v.clone());
            let basic_ok = req.header("authorization") == Some("Basic dGVzdGVyOnNlY3JldA==");
            let refresh_ok = get("grant_type").as_deref() == Some("refresh_token")
                && get("refresh_token").is_some_and(|t| t.starts_with("rt-"));
            if !(basic_ok || refresh_ok) {
                return Reply::status(401, r#"{"details":"incorrect username or password"}"#);
            }
            let n = issued.fetch_add(1, Ordering::SeqCst) + 1;
            let refresh = if get("offline_token").as_deref() == Some("true") || refresh_ok {
                format!(r#","refresh_token":"rt-{n}""#)
            } else {
                String::new()
            };
            return Reply::ok(
                "application/json",
                format!(r#"{{"access_token":"tok-{n}","expires_in":300{refresh}}}"#).as_bytes(),
            );
        }
        let latest = format!("Bearer tok-{}", issued.load(Ordering::SeqCst));
        if req.header("authorization") != Some(latest.as_str()) {
            return Reply::status(401, r#"{"errors":[{"code":"UNAUTHORIZED","message":"token expired"}]}"#)
                .with_header(
                    "WWW-Authenticate",
                    &format!(r#"Bearer realm="http://127.0.0.1:{port}/token",service="tok-svc""#),
                );
        }
        match req.method.as_str() {
            "PUT" => Reply::Full { status: 201, headers: vec![], body: vec![] },
            _ => Reply::ok(media::OCI_MANIFEST, &manifest),
        }
    });
    port.set(server.port).unwrap();
    server
}

fn write(dir: &Path, json: &str) -> PathBuf {
    let p = dir.join("config.json");
    std::fs::write(&p, json).unwrap();
    p
}

#[test]
fn login_to_a_token_service_gets_a_refresh_token_that_later_commands_use() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = BlobStore::open(&dir.path().join("store")).unwrap();
    let img = build_image(&blobs, &platform("linux", "amd64", None), &[("f", b"tokens")], Format::Oci);
    let log = Arc::new(Mutex::new(TokenLog::default()));
    let server = token_server(log.clone(), img.bytes.clone());
    let c = client(dir.path().join("absent.json"));

    let e = c.login(&server.host(), "tester", "nope").unwrap_err();
    assert!(e.to_string().contains("incorrect username or password"), "{e}");
    let out = c.login(&server.host(), "tester", "secret").unwrap();
    assert_eq!(out.identity_token.as_deref(), Some("rt-1"));
    let (method, params) = log.lock().unwrap().requests.last().cloned().unwrap();
    assert_eq!(method, "GET");
    assert!(params.contains(&("offline_token".into(), "true".into())), "{params:?}");
    assert!(params.contains(&("client_id".into(), "strata".into())), "{params:?}");
    assert!(params.contains(&("service".into(), "tok-svc".into())), "{params:?}");

    // Saved as docker saves it, the identity token is exchanged for access tokens by POST.
    let cfg = dir.path().join("docker/config.json");
    let login = Login { username: "tester".into(), secret: "rt-1".into(), identity_token: true };
    store_credential(&cfg, &server.host(), &login).unwrap();
    let r = Reference::parse(&format!("{}/team/app:1", server.host())).unwrap();
    let c = client(cfg);
    let got = c.resolve(&r, &platform("linux", "amd64", None)).unwrap();
    assert_eq!(got.descriptor.digest, img.desc.digest);
    let (method, params) = log.lock().unwrap().requests.last().cloned().unwrap();
    assert_eq!(method, "POST");
    assert!(params.contains(&("grant_type".into(), "refresh_token".into())), "{params:?}");
    assert!(params.contains(&("refresh_token".into(), "rt-1".into())), "{params:?}");
    assert!(params.contains(&("scope".into(), "repository:team/app:pull".into())), "{params:?}");

    // The service rotated the refresh token (rt-2): the next token is asked for with it.
    c.push_manifest(&r, media::OCI_MANIFEST, &img.bytes).unwrap();
    let (method, params) = log.lock().unwrap().requests.last().cloned().unwrap();
    assert_eq!(method, "POST");
    assert!(params.contains(&("refresh_token".into(), "rt-2".into())), "{params:?}");
    assert!(params.contains(&("scope".into(), "repository:team/app:pull,push".into())), "{params:?}");
}

#[test]
fn a_token_the_registry_stops_accepting_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = BlobStore::open(&dir.path().join("store")).unwrap();
    let img = build_image(&blobs, &platform("linux", "amd64", None), &[("f", b"revoked")], Format::Oci);
    let log = Arc::new(Mutex::new(TokenLog::default()));
    let server = token_server(log.clone(), img.bytes.clone());
    let cfg = write(dir.path(), &format!(r#"{{"auths":{{"{}":{{"auth":"dGVzdGVyOnNlY3JldA=="}}}}}}"#, server.host()));
    let a = client(cfg.clone());
    let b = client(cfg);
    let r = Reference::parse(&format!("{}/team/app:1", server.host())).unwrap();
    let amd64 = platform("linux", "amd64", None);
    a.resolve(&r, &amd64).unwrap(); // tok-1
    b.resolve(&r, &amd64).unwrap(); // tok-2: tok-1 is no longer accepted
    let before = log.lock().unwrap().requests.len();
    a.resolve(&r, &amd64).unwrap();
    assert_eq!(log.lock().unwrap().requests.len(), before + 1, "one new token for the refused one");
    let (method, _) = log.lock().unwrap().requests.last().cloned().unwrap();
    assert_eq!(method, "GET", "basic credentials: no refresh token was issued");
}
