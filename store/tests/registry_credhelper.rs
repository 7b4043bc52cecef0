//! Credential helpers (`credHelpers`, `credsStore`): a real `docker-credential-*` program (a
//! shell script following the helper protocol) supplies the password of an htpasswd registry.
//!
//! Helpers are found on `PATH`, so this file puts a directory in front of it. It holds a single
//! test on purpose: changing the environment is only sound while no other thread reads it.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use strata_store::blobs::BlobStore;
use strata_store::oci::{Descriptor, Manifest, media};
use strata_store::reference::Reference;
use strata_store::registry::{RegistryClient, RegistryError, RegistryOptions};
use strata_testkit::TestRegistry;

fn write_helper(dir: &Path, name: &str, script: &str) {
    let p = dir.join(format!("docker-credential-{name}"));
    std::fs::write(&p, script).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn client(config: &Path) -> RegistryClient {
    RegistryClient::new(RegistryOptions { docker_config: Some(config.to_path_buf()), ..RegistryOptions::default() })
        .unwrap()
}

#[test]
fn credential_helpers_supply_credentials() {
    let reg = TestRegistry::start_with_htpasswd("tester", "secret");
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let log = dir.path().join("helper.log");
    write_helper(
        &bin,
        "strata-test",
        &format!(
            "#!/bin/sh\nread -r server\necho \"$1 $server\" >> {log}\n\
             if [ \"$1\" = get ] && [ \"$server\" = {host} ]; then\n\
               printf '{{\"ServerURL\":\"%s\",\"Username\":\"tester\",\"Secret\":\"secret\"}}' \"$server\"\n\
             else\n  echo 'credentials not found in native keychain'; exit 1\nfi\n",
            log = log.display(),
            host = reg.host
        ),
    );
    write_helper(&bin, "strata-broken", "#!/bin/sh\nread -r server\necho 'keychain locked' >&2\nexit 3\n");
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    // SAFETY: this test binary holds one test, and no other thread is running that could read
    // the environment concurrently.
    unsafe { std::env::set_var("PATH", path) };

    // A small blob and manifest to push and pull.
    let store = BlobStore::open(&dir.path().join("store")).unwrap();
    let config = b"{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}";
    let config_desc = Descriptor::new(media::OCI_CONFIG, store.put(config).unwrap(), config.len() as u64);
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(media::OCI_MANIFEST.into()),
        artifact_type: None,
        config: config_desc,
        layers: vec![],
        subject: None,
        annotations: None,
    };
    let bytes = strata_store::oci::to_canonical_json(&manifest);
    let desc = Descriptor::new(media::OCI_MANIFEST, store.put(&bytes).unwrap(), bytes.len() as u64);
    let r = Reference::parse(&format!("{}/helped/app:1", reg.host)).unwrap();
    let amd64 = strata_store::oci::Platform {
        architecture: "amd64".into(),
        os: "linux".into(),
        os_version: None,
        os_features: None,
        variant: None,
    };

    // credHelpers beats a wrong password in auths.
    let cfg = dir.path().join("helpers.json");
    std::fs::write(
        &cfg,
        format!(
            r#"{{"credHelpers":{{"{h}":"strata-test"}},"auths":{{"{h}":{{"username":"tester","password":"wrong"}}}}}}"#,
            h = reg.host
        ),
    )
    .unwrap();
    let c = client(&cfg);
    assert_eq!(c.push_image(&r, &desc, &store, &|_, _| {}).unwrap(), desc.digest);
    assert_eq!(c.resolve(&r, &amd64).unwrap().descriptor.digest, desc.digest);
    let calls = std::fs::read_to_string(&log).unwrap();
    assert_eq!(calls, format!("get {}\n", reg.host), "the helper ran once, for this registry");

    // credsStore: used for every registry; "not found" means anonymous, hence a 401.
    let store_cfg = dir.path().join("store.json");
    std::fs::write(&store_cfg, r#"{"credsStore":"strata-test","auths":{"x":{}}}"#).unwrap();
    assert_eq!(client(&store_cfg).resolve(&r, &amd64).unwrap().descriptor.digest, desc.digest);
    let other = TestRegistry::start_with_htpasswd("tester", "secret");
    let r_other = Reference::parse(&format!("{}/helped/app:1", other.host)).unwrap();
    let e = client(&store_cfg).resolve(&r_other, &amd64).unwrap_err();
    assert!(matches!(e, RegistryError::Unauthorized { .. }), "{e}");
    assert!(std::fs::read_to_string(&log).unwrap().contains(&format!("get {}", other.host)));

    // A failing helper is an error naming it, not a silent anonymous pull.
    let broken = dir.path().join("broken.json");
    std::fs::write(&broken, format!(r#"{{"credHelpers":{{"{}":"strata-broken"}}}}"#, reg.host)).unwrap();
    let e = client(&broken).resolve(&r, &amd64).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, RegistryError::Credentials(_)), "{msg}");
    assert!(msg.contains("docker-credential-strata-broken") && msg.contains("keychain locked"), "{msg}");
}
