//! Push and pull against a real registry (Debian's docker-registry, distribution 2.8, started on
//! a free loopback port by strata-testkit): OCI and Docker schema 2 images, indexes, blobs.

mod common;

use std::sync::Mutex;

use common::{Format, build_image, build_index, ingest_files, platform};
use strata_store::blobs::BlobStore;
use strata_store::digest::Digest;
use strata_store::oci::{Descriptor, media};
use strata_store::reference::Reference;
use strata_store::registry::{PushOutcome, RegistryClient, RegistryError, RegistryOptions};
use strata_testkit::TestRegistry;

fn client() -> RegistryClient {
    let opts = RegistryOptions {
        docker_config: Some("/nonexistent/strata-test/config.json".into()),
        ..RegistryOptions::default()
    };
    RegistryClient::new(opts).unwrap()
}

fn reference(reg: &TestRegistry, name: &str) -> Reference {
    Reference::parse(&format!("{}/{name}", reg.host)).unwrap()
}

#[test]
fn push_then_resolve_by_tag_and_digest_then_fetch_blobs() {
    let reg = TestRegistry::start();
    let src_dir = tempfile::tempdir().unwrap();
    let src = BlobStore::open(src_dir.path()).unwrap();
    let amd64 = platform("linux", "amd64", None);
    let img = build_image(&src, &amd64, &[("hello.txt", b"hello\n"), ("world.txt", b"world\n")], Format::Oci);
    let c = client();
    let r = reference(&reg, "strata/app:v1");

    let progress = Mutex::new(Vec::<(Digest, u64)>::new());
    let pushed =
        c.push_image(&r, &img.desc, &src, &|d, n| progress.lock().unwrap().push((d.digest.clone(), n))).unwrap();
    assert_eq!(pushed, img.desc.digest);
    let progress = progress.into_inner().unwrap();
    for blob in std::iter::once(&img.manifest.config).chain(&img.manifest.layers) {
        let last = progress.iter().filter(|(d, _)| d == &blob.digest).map(|(_, n)| *n).max();
        assert_eq!(last, Some(blob.size), "progress reaches the size of {}", blob.digest);
    }

    // By tag.
    let resolved = c.resolve(&r, &amd64).unwrap();
    assert_eq!(resolved.manifest, img.manifest);
    assert_eq!(resolved.manifest_bytes, img.bytes);
    assert_eq!(resolved.descriptor.digest, img.desc.digest);
    assert_eq!(resolved.descriptor.media_type, media::OCI_MANIFEST);
    assert_eq!(resolved.descriptor.size, img.bytes.len() as u64);
    assert_eq!(resolved.index_digest, None);

    // By digest (the platform does not matter for a single manifest).
    let by_digest = Reference::parse(&format!("{}/strata/app@{}", reg.host, img.desc.digest)).unwrap();
    let resolved2 = c.resolve(&by_digest, &platform("linux", "arm64", None)).unwrap();
    assert_eq!(resolved2.manifest_bytes, img.bytes);

    // Fetch everything into a fresh store and compare.
    let dst_dir = tempfile::tempdir().unwrap();
    let dst = BlobStore::open(dst_dir.path()).unwrap();
    for blob in std::iter::once(&resolved.manifest.config).chain(&resolved.manifest.layers) {
        let seen = Mutex::new(Vec::new());
        c.fetch_blob(&r, blob, &dst, &|n| seen.lock().unwrap().push(n)).unwrap();
        assert_eq!(dst.read(&blob.digest).unwrap(), src.read(&blob.digest).unwrap());
        assert_eq!(seen.into_inner().unwrap().last(), Some(&blob.size));
        // Present now: no transfer, no progress.
        c.fetch_blob(&r, blob, &dst, &|_| panic!("no transfer expected")).unwrap();
    }
    assert_eq!(ingest_files(dst_dir.path()), 0);

    // The registry has every blob: a second push uploads nothing.
    let layer = &img.manifest.layers[0];
    assert_eq!(c.push_blob(&r, layer, &src, &|_| panic!("no upload expected")).unwrap(), PushOutcome::Existed);
    let again = c.push_image(&r.with_tag("v2"), &img.desc, &src, &|_, _| panic!("no upload expected")).unwrap();
    assert_eq!(again, img.desc.digest);
    assert_eq!(c.resolve(&r.with_tag("v2"), &amd64).unwrap().descriptor.digest, img.desc.digest);
}

#[test]
fn docker_schema2_images_and_manifest_lists() {
    let reg = TestRegistry::start();
    let dir = tempfile::tempdir().unwrap();
    let blobs = BlobStore::open(dir.path()).unwrap();
    let (amd64, arm64) = (platform("linux", "amd64", None), platform("linux", "arm64", Some("v8")));
    let a = build_image(&blobs, &amd64, &[("a", b"amd64 docker")], Format::Docker);
    let b = build_image(&blobs, &arm64, &[("b", b"arm64 docker")], Format::Docker);
    let c = client();

    let single = reference(&reg, "docker/single:1");
    c.push_image(&single, &a.desc, &blobs, &|_, _| {}).unwrap();
    let resolved = c.resolve(&single, &amd64).unwrap();
    assert_eq!(resolved.descriptor.media_type, media::DOCKER_MANIFEST);
    assert_eq!(resolved.manifest.config.media_type, media::DOCKER_CONFIG);
    assert_eq!(resolved.manifest_bytes, a.bytes);

    let (list_desc, _) = build_index(&blobs, &[(&a, amd64.clone()), (&b, arm64.clone())], Format::Docker);
    let list = reference(&reg, "docker/list:1");
    assert_eq!(c.push_image(&list, &list_desc, &blobs, &|_, _| {}).unwrap(), list_desc.digest);
    let resolved = c.resolve(&list, &arm64).unwrap();
    assert_eq!(resolved.descriptor.digest, b.desc.digest);
    assert_eq!(resolved.descriptor.media_type, media::DOCKER_MANIFEST);
    assert_eq!(resolved.index_digest, Some(list_desc.digest.clone()));
    assert_eq!(resolved.descriptor.platform.as_ref(), Some(&arm64));
}

#[test]
fn index_resolution_picks_the_platform() {
    let reg = TestRegistry::start();
    let dir = tempfile::tempdir().unwrap();
    let blobs = BlobStore::open(dir.path()).unwrap();
    let amd64 = platform("linux", "amd64", None);
    let arm64 = platform("linux", "arm64", Some("v8"));
    let a = build_image(&blobs, &amd64, &[("arch", b"amd64")], Format::Oci);
    let b = build_image(&blobs, &arm64, &[("arch", b"arm64")], Format::Oci);
    let (index_desc, _) = build_index(&blobs, &[(&b, arm64.clone()), (&a, amd64.clone())], Format::Oci);
    let c = client();
    let r = reference(&reg, "multi/app:latest");
    assert_eq!(c.push_image(&r, &index_desc, &blobs, &|_, _| {}).unwrap(), index_desc.digest);

    let got = c.resolve(&r, &amd64).unwrap();
    assert_eq!(got.descriptor.digest, a.desc.digest);
    assert_eq!(got.manifest, a.manifest);
    assert_eq!(got.index_digest, Some(index_desc.digest.clone()));
    assert_eq!(got.descriptor.platform.as_ref(), Some(&amd64));

    // arm64 without a variant matches the v8 entry.
    let got = c.resolve(&r, &platform("linux", "arm64", None)).unwrap();
    assert_eq!(got.descriptor.digest, b.desc.digest);

    // The index itself by digest resolves the same way.
    let by_digest = Reference::parse(&format!("{}/multi/app@{}", reg.host, index_desc.digest)).unwrap();
    assert_eq!(c.resolve(&by_digest, &amd64).unwrap().descriptor.digest, a.desc.digest);

    let e = c.resolve(&r, &platform("linux", "s390x", None)).unwrap_err();
    assert!(matches!(e, RegistryError::NoMatchingPlatform { .. }), "{e}");
    let msg = e.to_string();
    assert!(msg.contains("linux/s390x") && msg.contains("linux/amd64") && msg.contains("linux/arm64/v8"), "{msg}");
}

#[test]
fn missing_content_gives_the_registry_error() {
    let reg = TestRegistry::start();
    let c = client();
    let r = reference(&reg, "nothing/here:nope");
    let e = c.resolve(&r, &platform("linux", "amd64", None)).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, RegistryError::Status { status: 404, .. }), "{msg}");
    assert!(msg.contains("MANIFEST_UNKNOWN") || msg.contains("NAME_UNKNOWN"), "{msg}");
    assert!(msg.contains(&format!("http://{}/v2/nothing/here/manifests/nope", reg.host)), "{msg}");
    assert!(msg.contains(&r.to_string()), "{msg}");

    let dir = tempfile::tempdir().unwrap();
    let blobs = BlobStore::open(dir.path()).unwrap();
    let desc = Descriptor::new(media::OCI_LAYER, Digest::of(b"absent"), 6);
    let e = c.fetch_blob(&r, &desc, &blobs, &|_| {}).unwrap_err();
    assert!(matches!(e, RegistryError::Status { status: 404, .. }), "{e}");
    assert!(e.to_string().contains("BLOB_UNKNOWN"), "{e}");
    assert!(blobs.list().unwrap().is_empty());

    // Pushing a blob the store does not have fails locally, with the digest named.
    let e = c.push_blob(&r, &desc, &blobs, &|_| {}).unwrap_err();
    assert!(e.to_string().contains(&desc.digest.to_string()), "{e}");
}

/// Multi-chunk transfers both ways, from several threads sharing one client.
#[test]
fn large_blobs_stream_concurrently() {
    let reg = TestRegistry::start();
    let src_dir = tempfile::tempdir().unwrap();
    let src = BlobStore::open(src_dir.path()).unwrap();
    // Incompressible-looking data (xorshift), 3 MiB + a bit, different per blob.
    let make = |seed: u64| {
        let mut x = seed;
        (0..(3 << 20) + 123)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect::<Vec<u8>>()
    };
    let descs: Vec<Descriptor> = (1..=4u64)
        .map(|seed| {
            let data = make(seed);
            Descriptor::new(media::OCI_LAYER, src.put(&data).unwrap(), data.len() as u64)
        })
        .collect();
    let c = client();
    let r = reference(&reg, "big/blobs:1");
    let dst_dir = tempfile::tempdir().unwrap();
    let dst = BlobStore::open(dst_dir.path()).unwrap();
    std::thread::scope(|s| {
        for d in &descs {
            let (c, r, src, dst) = (&c, &r, &src, &dst);
            s.spawn(move || {
                let sent = Mutex::new(Vec::new());
                assert_eq!(c.push_blob(r, d, src, &|n| sent.lock().unwrap().push(n)).unwrap(), PushOutcome::Uploaded);
                let sent = sent.into_inner().unwrap();
                assert!(sent.len() > 1 && sent.windows(2).all(|w| w[0] < w[1]), "progress is incremental");
                assert_eq!(sent.last(), Some(&d.size));
                let got = Mutex::new(Vec::new());
                c.fetch_blob(r, d, dst, &|n| got.lock().unwrap().push(n)).unwrap();
                assert_eq!(got.into_inner().unwrap().last(), Some(&d.size));
            });
        }
    });
    for d in &descs {
        assert_eq!(dst.read(&d.digest).unwrap(), src.read(&d.digest).unwrap());
    }
}
