//! The hostile input corpus in `testdata/hostile/` (see its README.md), one test per file: what
//! each file must do to the layer reader, the manifest parsers and the registry client. The
//! files are committed; `corpus_files_match_their_generator` rebuilds every one from the code
//! below and fails if a committed file differs (`STRATA_WRITE_CORPUS=1` rewrites them).
//!
//! Cases the existing tests already cover and that are not repeated here: `layer_hostile.rs`
//! (`..` escapes, absolute paths, writing through symlinks, hard links out, duplicate entries,
//! whiteout escapes, truncated and corrupt streams, a petabyte size, digests/sizes/media types,
//! random archives never escaping) and `registry_hostile.rs` (wrong bytes, dropped connections,
//! short and long bodies, manifest digests, oversized and schema 1 manifests). The corpus holds
//! the cases those miss, plus one file per category so the fuzz smoke test has seeds.

mod common;
mod layer_support;

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{FakeServer, Reply};
use layer_support::*;
use strata_store::blobs::BlobStore;
use strata_store::digest::Digest;
use strata_store::layer::tar_write::{EntryType, TarHeader};
use strata_store::layer::*;
use strata_store::oci::{Compression, Descriptor, ImageConfig, Index, Manifest, media};
use strata_store::reference::Reference;
use strata_store::registry::{RegistryClient, RegistryError, RegistryOptions};

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/hostile")
}

/// A ustar header block with a raw type flag and size field (for entries our writer refuses).
fn raw_header(name: &str, flag: u8, size_field: &[u8]) -> Vec<u8> {
    let mut h = vec![0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    h[100..107].copy_from_slice(b"0000644");
    h[108..115].copy_from_slice(b"0000000");
    h[116..123].copy_from_slice(b"0000000");
    h[124..124 + size_field.len()].copy_from_slice(size_field);
    h[136..147].copy_from_slice(b"00000000000");
    h[156] = flag;
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    let sum: u32 = h.iter().enumerate().map(|(i, &b)| if (148..156).contains(&i) { 32 } else { u32::from(b) }).sum();
    h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
    h[155] = b' ';
    h
}

/// A PAX extended header block followed by its records.
fn pax(records: &[(&str, &str)]) -> Vec<u8> {
    let mut body = String::new();
    for (k, v) in records {
        let rest = format!(" {k}={v}\n");
        let mut len = rest.len() + 1;
        while format!("{len}{rest}").len() != len {
            len += 1;
        }
        body.push_str(&format!("{len}{rest}"));
    }
    let mut out = raw_header("PaxHeader", b'x', format!("{:011o}", body.len()).as_bytes());
    let mut data = body.into_bytes();
    data.resize(data.len().div_ceil(512) * 512, 0);
    out.extend(data);
    out
}

fn end_blocks() -> Vec<u8> {
    vec![0u8; 1024]
}

fn device(name: &str, kind: EntryType, major: u32, minor: u32) -> (TarHeader, Vec<u8>) {
    let mut h = TarHeader::new(name.as_bytes().to_vec(), kind);
    h.mode = 0o666;
    h.devmajor = major;
    h.devminor = minor;
    (h, Vec::new())
}

fn owned(name: &str, mode: u32, uid: u64, gid: u64) -> (TarHeader, Vec<u8>) {
    let (mut h, d) = file(name, b"#!/bin/sh\n");
    h.mode = mode;
    h.uid = uid;
    h.gid = gid;
    (h, d)
}

/// The corpus: file name and content.
fn corpus() -> Vec<(&'static str, Vec<u8>)> {
    let simple = tar_of(&[dir("etc"), file("etc/motd", b"hello\n")]);
    let simple_gz = gzip(&simple);
    let mut huge = TarHeader::new(b"huge-file".to_vec(), EntryType::Regular);
    huge.mode = 0o644;
    huge.size = 1 << 40; // a terabyte, with no data behind it
    let mut huge_tar = tar_of(&[(huge, Vec::new())]);
    huge_tar.truncate(512 * 3); // the PAX header, its record block, the file header
    huge_tar.extend(vec![0x41u8; 4096]);
    let one_tb_manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_MANIFEST,
        "config": { "mediaType": media::OCI_CONFIG, "digest": Digest::of(b"config").to_string(), "size": 2 },
        "layers": [{ "mediaType": media::OCI_LAYER_GZIP, "digest": Digest::of(&simple_gz).to_string(), "size": 1u64 << 40 }],
    });
    // Inside a field strata ignores, which serde still has to skip.
    let nested: String = r#"{"schemaVersion":2,"x":"#.to_string() + &"[".repeat(100_000) + &"]".repeat(100_000) + "}";
    let self_index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_INDEX,
        "manifests": [{ "mediaType": media::OCI_INDEX, "digest": Digest::of(b"itself").to_string(), "size": 10,
                        "platform": { "os": "linux", "architecture": "amd64" } }],
    });
    let j = |v: serde_json::Value| serde_json::to_vec_pretty(&v).unwrap();
    vec![
        ("layer-dotdot.tar", tar_of(&[file("a/../../evil", b"pwned")])),
        ("layer-absolute.tar", tar_of(&[file("/etc/evil", b"inside"), file("/../../../abs-up", b"inside")])),
        (
            "layer-symlink-then-file.tar",
            tar_of(&[symlink("lib", "/../../outside"), file("lib/evil", b"pwned"), file("x", b"")]),
        ),
        ("layer-hardlink-outside.tar", tar_of(&[hardlink("passwd", "../../../../etc/passwd")])),
        ("layer-hardlink-absolute.tar", tar_of(&[hardlink("passwd", "/etc/passwd")])),
        (
            "layer-devices.tar",
            tar_of(&[
                dir("dev"),
                device("dev/mem", EntryType::Char, 1, 1),
                device("dev/sda", EntryType::Block, 8, 0),
                device("dev/fifo", EntryType::Fifo, 0, 0),
                device("../escaped-dev", EntryType::Char, 1, 3),
            ]),
        ),
        (
            "layer-setuid.tar",
            tar_of(&[
                dir("bin"),
                owned("bin/su", 0o4755, 0, 0),
                owned("bin/wall", 0o2755, 0, 5),
                owned("bin/user-suid", 0o6755, 1000, 1000),
            ]),
        ),
        ("layer-gnu-sparse-huge.tar", [raw_header("sparse", b'S', b"00000000000"), end_blocks()].concat()),
        (
            "layer-pax-sparse-huge.tar",
            [
                pax(&[
                    ("GNU.sparse.major", "1"),
                    ("GNU.sparse.minor", "0"),
                    ("GNU.sparse.name", "sparse"),
                    ("GNU.sparse.realsize", "1099511627776"),
                ]),
                raw_header("GNUSparseFile.0/sparse", b'0', b"00000001000"),
                vec![0u8; 512],
                end_blocks(),
            ]
            .concat(),
        ),
        ("layer-huge-declared-size.tar", huge_tar),
        (
            "layer-duplicates.tar",
            tar_of(&[
                file("a", b"first"),
                file("a", b"second"),
                dir("d"),
                file("d", b"file replaces dir"),
                symlink("l", "/etc"),
                file("l", b"file replaces symlink"),
            ]),
        ),
        ("layer-symlink-loop.tar", tar_of(&[symlink("a", "b"), symlink("b", "a"), file("a/x", b"x")])),
        ("layer-truncated.tar.gz", simple_gz[..simple_gz.len() / 2].to_vec()),
        ("layer-garbage.tar.gz", [&simple_gz[..10], &[0xffu8; 200][..]].concat()),
        ("layer-simple.tar.gz", simple_gz.clone()),
        ("manifest-1tb-layer.json", j(one_tb_manifest)),
        (
            "manifest-negative-size.json",
            br#"{"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","size":-1},"layers":[]}"#.to_vec(),
        ),
        (
            "manifest-size-overflow.json",
            br#"{"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","size":18446744073709551616},"layers":[]}"#.to_vec(),
        ),
        (
            "manifest-path-digest.json",
            br#"{"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:../../../../etc/passwd","size":2},"layers":[]}"#.to_vec(),
        ),
        (
            "manifest-md5-digest.json",
            br#"{"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"md5:d41d8cd98f00b204e9800998ecf8427e","size":2},"layers":[]}"#.to_vec(),
        ),
        ("manifest-deep-nesting.json", nested.into_bytes()),
        ("index-self-reference.json", j(self_index)),
        (
            "config-diffid-count.json",
            j(serde_json::json!({
                "architecture": "amd64", "os": "linux",
                "rootfs": { "type": "layers", "diff_ids": [Digest::of(b"1").to_string(), Digest::of(b"2").to_string()] },
            })),
        ),
    ]
}

fn load(name: &str) -> Vec<u8> {
    fs::read(corpus_dir().join(name)).unwrap_or_else(|e| panic!("testdata/hostile/{name}: {e}"))
}

#[test]
fn corpus_files_match_their_generator() {
    let write = std::env::var_os("STRATA_WRITE_CORPUS").is_some();
    let mut names = Vec::new();
    for (name, bytes) in corpus() {
        let path = corpus_dir().join(name);
        if write {
            fs::write(&path, &bytes).unwrap();
        }
        assert_eq!(fs::read(&path).unwrap_or_default(), bytes, "testdata/hostile/{name} differs from its generator");
        names.push(name.to_string());
    }
    // Every committed file is generated (and so has a test below).
    let mut committed: Vec<String> = fs::read_dir(corpus_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "README.md")
        .collect();
    committed.sort();
    names.sort();
    assert_eq!(committed, names);
}

/// A destination next to an "outside" directory holding a secret.
struct Sandbox {
    _t: tempfile::TempDir,
    root: PathBuf,
    dest: PathBuf,
    before: Vec<PathBuf>,
}

impl Sandbox {
    fn new() -> Sandbox {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().to_path_buf();
        let dest = root.join("dest");
        fs::create_dir(&dest).unwrap();
        fs::create_dir(root.join("outside")).unwrap();
        fs::write(root.join("outside/secret"), "secret").unwrap();
        let before = listing(&root, &dest);
        Sandbox { _t: t, root, dest, before }
    }
    fn check(&self) {
        assert_eq!(listing(&self.root, &self.dest), self.before, "something changed outside dest");
        assert_eq!(fs::read(self.root.join("outside/secret")).unwrap(), b"secret");
    }
    fn layer(&self, name: &str) -> Result<Digest, LayerError> {
        let data = load(name);
        let c = if name.ends_with(".gz") { Compression::Gzip } else { Compression::None };
        let r = unpack_layer(&data[..], c, &self.dest, &UnpackOptions::default());
        self.check();
        r
    }
    fn plain(&self, name: &str) -> Result<ExtractStats, LayerError> {
        let r = extract_archive(&load(name)[..], &self.dest, &ExtractOptions::default());
        self.check();
        r
    }
}

#[track_caller]
fn fails_with<T: std::fmt::Debug>(r: Result<T, LayerError>, needle: &str) {
    let msg = r.expect_err("hostile input accepted").to_string();
    assert!(msg.contains(needle), "{msg:?} does not say {needle:?}");
}

#[test]
fn layer_dotdot() {
    fails_with(Sandbox::new().layer("layer-dotdot.tar"), "escapes the destination");
    fails_with(Sandbox::new().plain("layer-dotdot.tar"), "escapes the destination");
}

#[test]
fn layer_absolute() {
    let s = Sandbox::new();
    s.layer("layer-absolute.tar").unwrap();
    assert_eq!(fs::read(s.dest.join("etc/evil")).unwrap(), b"inside");
    assert_eq!(fs::read(s.dest.join("abs-up")).unwrap(), b"inside");
}

#[test]
fn layer_symlink_then_file() {
    for s in [Sandbox::new(), Sandbox::new()] {
        fails_with(s.layer("layer-symlink-then-file.tar"), "symlink to a missing directory");
    }
    fails_with(Sandbox::new().plain("layer-symlink-then-file.tar"), "lib/evil");
}

#[test]
fn layer_hardlinks_out() {
    fails_with(Sandbox::new().layer("layer-hardlink-outside.tar"), "escapes the destination");
    fails_with(Sandbox::new().layer("layer-hardlink-absolute.tar"), "does not exist");
    fails_with(Sandbox::new().plain("layer-hardlink-absolute.tar"), "does not exist");
}

#[test]
fn layer_devices() {
    // Device nodes are layer content (as in Docker's images) and are created as such, inside the
    // destination; the one named outside it is refused.
    let s = Sandbox::new();
    fails_with(s.layer("layer-devices.tar"), "escapes the destination");
    let mem = fs::symlink_metadata(s.dest.join("dev/mem")).unwrap();
    assert!(mem.file_type().is_char_device());
    assert_eq!(mem.rdev(), rustix::fs::makedev(1, 1));
    let sda = fs::symlink_metadata(s.dest.join("dev/sda")).unwrap();
    assert!(sda.file_type().is_block_device());
    assert_eq!(sda.rdev(), rustix::fs::makedev(8, 0));
    assert!(fs::symlink_metadata(s.dest.join("dev/fifo")).unwrap().file_type().is_fifo());
}

#[test]
fn layer_setuid() {
    // setuid/setgid survive the chown that precedes them (chown clears them), owners as given.
    for plain in [false, true] {
        let s = Sandbox::new();
        if plain {
            s.plain("layer-setuid.tar").unwrap();
        } else {
            s.layer("layer-setuid.tar").unwrap();
        }
        let m = |p: &str| {
            let md = fs::metadata(s.dest.join(p)).unwrap();
            (md.mode() & 0o7777, md.uid(), md.gid())
        };
        assert_eq!(m("bin/su"), (0o4755, 0, 0));
        assert_eq!(m("bin/wall"), (0o2755, 0, 5));
        assert_eq!(m("bin/user-suid"), (0o6755, 1000, 1000));
    }
}

#[test]
fn layer_sparse_files_are_refused_without_writing_a_terabyte() {
    for name in ["layer-gnu-sparse-huge.tar", "layer-pax-sparse-huge.tar"] {
        let s = Sandbox::new();
        fails_with(s.layer(name), "sparse files are not supported");
        assert!(super_small(&s.dest), "{name} wrote data");
    }
}

fn super_small(dir: &Path) -> bool {
    gc_size(dir) < 1 << 20
}

fn gc_size(dir: &Path) -> u64 {
    strata_store::gc::disk_usage(dir)
}

#[test]
fn layer_huge_declared_size() {
    let s = Sandbox::new();
    let start = Instant::now();
    fails_with(s.layer("layer-huge-declared-size.tar"), "truncated");
    assert!(start.elapsed() < Duration::from_secs(5) && super_small(&s.dest));
}

#[test]
fn layer_duplicates() {
    let s = Sandbox::new();
    s.layer("layer-duplicates.tar").unwrap();
    assert_eq!(fs::read(s.dest.join("a")).unwrap(), b"second");
    assert_eq!(fs::read(s.dest.join("d")).unwrap(), b"file replaces dir");
    assert_eq!(fs::read(s.dest.join("l")).unwrap(), b"file replaces symlink");
}

#[test]
fn layer_symlink_loop() {
    let s = Sandbox::new();
    let msg = s.layer("layer-symlink-loop.tar").unwrap_err().to_string();
    assert!(msg.contains("a/x"), "{msg}");
}

#[test]
fn layer_truncated_and_garbage_gzip() {
    let msg = Sandbox::new().layer("layer-truncated.tar.gz").unwrap_err().to_string();
    assert!(msg.contains("truncated") || msg.contains("unexpected end") || msg.contains("layer stream"), "{msg}");
    let msg = Sandbox::new().layer("layer-garbage.tar.gz").unwrap_err().to_string();
    assert!(!msg.is_empty());
}

#[test]
fn layer_wrong_digests() {
    let data = load("layer-simple.tar.gz");
    let tar_digest = {
        let s = Sandbox::new();
        s.layer("layer-simple.tar.gz").unwrap()
    };
    for (opts, needle) in [
        (UnpackOptions { expected_digest: Some(Digest::of(b"x")), ..Default::default() }, "blob digest mismatch"),
        (UnpackOptions { expected_diff_id: Some(Digest::of(b"x")), ..Default::default() }, "diff_id mismatch"),
        (UnpackOptions { expected_size: Some(1 << 40), ..Default::default() }, "size mismatch"),
    ] {
        let s = Sandbox::new();
        fails_with(unpack_layer(&data[..], Compression::Gzip, &s.dest, &opts), needle);
    }
    // In the store: a wrong expected digest commits nothing.
    let dir = tempfile::tempdir().unwrap();
    let blobs = BlobStore::open(dir.path()).unwrap();
    let mut w = blobs.writer().unwrap();
    std::io::Write::write_all(&mut w, &data).unwrap();
    assert!(w.commit(Some(&tar_digest)).is_err());
    assert!(blobs.list().unwrap().is_empty());
}

#[test]
fn manifests_with_absurd_sizes_allocate_nothing() {
    let raw = load("manifest-1tb-layer.json");
    let m: Manifest = serde_json::from_slice(&raw).unwrap();
    assert_eq!(m.layers[0].size, 1 << 40);
    let blob = load("layer-simple.tar.gz");
    // A registry serving the real (small) blob for a descriptor claiming a terabyte: a size
    // mismatch, quickly, nothing committed; and one whose Content-Length claims a terabyte.
    for lie in [false, true] {
        let body = blob.clone();
        let server = FakeServer::start(move |_| {
            if lie {
                let head = "HTTP/1.1 200 OK\r\nContent-Length: 1099511627776\r\nConnection: close\r\n\r\n";
                Reply::Raw([head.as_bytes(), &body].concat())
            } else {
                Reply::ok("application/octet-stream", &body)
            }
        });
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::open(dir.path()).unwrap();
        let client = RegistryClient::new(RegistryOptions {
            docker_config: Some("/nonexistent/strata-test/config.json".into()),
            ..RegistryOptions::default()
        })
        .unwrap();
        let r = Reference::parse(&format!("{}/liar/app:1", server.host())).unwrap();
        let start = Instant::now();
        let desc = if lie {
            Descriptor::new(media::OCI_LAYER_GZIP, Digest::of(&blob), blob.len() as u64)
        } else {
            m.layers[0].clone()
        };
        let e = client.fetch_blob(&r, &desc, &blobs, &|_| {}).unwrap_err();
        assert!(matches!(e, RegistryError::SizeMismatch { .. } | RegistryError::Connection { .. }), "{e}");
        assert!(start.elapsed() < Duration::from_secs(30), "{e}");
        assert!(blobs.list().unwrap().is_empty() && common::ingest_files(dir.path()) == 0);
    }
}

#[test]
fn malformed_manifests_are_clear_errors() {
    for (name, needle) in [
        ("manifest-negative-size.json", "invalid value: integer `-1`"),
        ("manifest-size-overflow.json", "expected u64"),
        ("manifest-path-digest.json", "not 64 lower-case hex digits"),
        ("manifest-md5-digest.json", "unsupported algorithm"),
        ("manifest-deep-nesting.json", "missing field `config`"),
    ] {
        let e = serde_json::from_slice::<Manifest>(&load(name)).unwrap_err().to_string();
        assert!(e.contains(needle), "{name}: {e:?} does not say {needle:?}");
        strata_store::fuzzing::manifest(&load(name));
    }
    // Read as a generic document (as GC reads manifests): the depth limit, not a stack overflow.
    let e = serde_json::from_slice::<serde_json::Value>(&load("manifest-deep-nesting.json")).unwrap_err();
    assert!(e.to_string().contains("recursion limit"), "{e}");
}

#[test]
fn an_index_referring_to_itself_stops() {
    let raw = load("index-self-reference.json");
    let index: Index = serde_json::from_slice(&raw).unwrap();
    assert_eq!(index.manifests.len(), 1);
    // Served for every manifest request (so every child is the index again).
    let server = FakeServer::start(move |_| Reply::ok(media::OCI_INDEX, &raw));
    let client = RegistryClient::new(RegistryOptions {
        docker_config: Some("/nonexistent/strata-test/config.json".into()),
        ..RegistryOptions::default()
    })
    .unwrap();
    let r = Reference::parse(&format!("{}/liar/app:1", server.host())).unwrap();
    let e = client.resolve(&r, &common::platform("linux", "amd64", None)).unwrap_err();
    // The child is fetched by digest, and the served bytes do not hash to it.
    assert!(matches!(e, RegistryError::DigestMismatch { .. } | RegistryError::BadManifest { .. }), "{e}");
}

#[test]
fn a_config_with_the_wrong_number_of_diff_ids_is_refused() {
    let cfg: ImageConfig = serde_json::from_slice(&load("config-diffid-count.json")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let blobs = BlobStore::open(dir.path()).unwrap();
    let layer = blobs.put(&load("layer-simple.tar.gz")).unwrap();
    let img =
        strata_store::image::write_image(&blobs, &cfg, &[Descriptor::new(media::OCI_LAYER_GZIP, layer, 10)], None)
            .unwrap();
    let e = strata_store::image::Image::load(&blobs, &img.descriptor).unwrap_err().to_string();
    assert!(e.contains("lists 1 layers but the config lists 2 diff_ids"), "{e}");
}
