//! Hostile archives: path escapes, symlink tricks, hard links out, duplicates, corrupt and
//! truncated streams, absurd sizes. Nothing may change outside the destination, errors must
//! name the problem, and nothing may panic. Needs root (so permission checks cannot be what
//! stops an escape).

mod layer_support;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use layer_support::*;
use proptest::prelude::*;
use strata_store::digest::Digest;
use strata_store::layer::tar_write::{EntryType, TarHeader};
use strata_store::layer::*;
use strata_store::oci::Compression;

/// A destination inside a sandbox that also holds an "outside" directory with a secret file.
struct Sandbox {
    _t: tempfile::TempDir,
    root: PathBuf,
    dest: PathBuf,
    outside: PathBuf,
    before: Vec<PathBuf>,
    root_mode: u32,
}

impl Sandbox {
    fn new() -> Sandbox {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().to_path_buf();
        let dest = root.join("dest");
        let outside = root.join("outside");
        fs::create_dir(&dest).unwrap();
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("secret"), "secret").unwrap();
        let before = listing(&root, &dest);
        let root_mode = fs::symlink_metadata(&root).unwrap().mode();
        Sandbox { _t: t, root, dest, outside, before, root_mode }
    }

    /// Asserts nothing outside `dest` changed.
    fn check(&self) {
        assert_eq!(listing(&self.root, &self.dest), self.before, "files appeared or vanished outside dest");
        let secret = self.outside.join("secret");
        assert_eq!(fs::read(&secret).unwrap(), b"secret", "secret overwritten");
        let md = fs::metadata(&secret).unwrap();
        assert_eq!((md.nlink(), md.uid(), md.mode() & 0o7777), (1, 0, 0o644), "secret linked, chowned or chmodded");
        assert_eq!(fs::symlink_metadata(&self.root).unwrap().mode(), self.root_mode, "sandbox root chmodded");
    }

    fn layer(&self, tar: &[u8]) -> Result<Digest, LayerError> {
        unpack_layer(tar, Compression::None, &self.dest, &UnpackOptions::default())
    }

    fn plain(&self, tar: &[u8]) -> Result<ExtractStats, LayerError> {
        extract_archive(tar, &self.dest, &ExtractOptions::default())
    }
}

fn expect_err<T: std::fmt::Debug>(r: Result<T, LayerError>, needle: &str) -> String {
    let msg = r.expect_err("hostile input was accepted").to_string();
    assert!(msg.contains(needle), "error {msg:?} does not mention {needle:?}");
    msg
}

#[test]
fn dot_dot_escapes_are_refused() {
    for name in ["../evil", "a/../../evil", "./../outside/secret", "a/b/../../../evil"] {
        let s = Sandbox::new();
        let tar = tar_of(&[file(name, b"pwned")]);
        let msg = expect_err(s.layer(&tar), "escapes the destination");
        assert!(msg.contains(name), "{msg}");
        expect_err(s.plain(&tar), "escapes the destination");
        s.check();
    }
}

#[test]
fn absolute_paths_are_confined() {
    let s = Sandbox::new();
    let abs = format!("{}/secret", s.outside.display());
    let tar = tar_of(&[file(&abs, b"pwned"), file("/../../etc-evil", b"x"), dir("/")]);
    s.plain(&tar).unwrap();
    assert_eq!(fs::read(s.dest.join(abs.trim_start_matches('/'))).unwrap(), b"pwned");
    assert!(s.dest.join("etc-evil").is_file());
    s.check();
}

#[test]
fn writing_through_symlinks_stays_inside() {
    let s = Sandbox::new();
    let outside = s.outside.display().to_string();
    let tar = tar_of(&[
        symlink("root", "/"),
        file("root/at-root", b"1"),
        symlink("up", "../../../../.."),
        file("up/via-up", b"2"),
        symlink("abs-dir", &outside),
        symlink("rel-dir", "../outside"),
        symlink("secret-link", &format!("{outside}/secret")),
        // Replacing a symlink with a file must not write through it.
        file("secret-link", b"pwned"),
    ]);
    s.layer(&tar).unwrap();
    assert_eq!(fs::read(s.dest.join("at-root")).unwrap(), b"1");
    assert_eq!(fs::read(s.dest.join("via-up")).unwrap(), b"2");
    assert_eq!(fs::read(s.dest.join("secret-link")).unwrap(), b"pwned");
    s.check();

    // A file below a symlink to an outside directory: that directory does not exist inside
    // dest, so the entry is refused rather than created anywhere.
    for link in ["abs-dir", "rel-dir"] {
        let tar = tar_of(&[file(&format!("{link}/pwned"), b"x")]);
        let msg = expect_err(s.layer(&tar), "symlink to a missing directory");
        assert!(msg.contains(link), "{msg}");
        s.check();
    }
    // If the directory exists inside dest, the write lands there.
    let tar = tar_of(&[dir(&outside[1..]), file("abs-dir/landed", b"in")]);
    s.plain(&tar).unwrap();
    assert_eq!(fs::read(s.dest.join(&outside[1..]).join("landed")).unwrap(), b"in");
    s.check();
}

#[test]
fn hard_links_cannot_reach_outside() {
    let s = Sandbox::new();
    let outside = s.outside.display().to_string();
    for target in ["../outside/secret", "a/../../outside/secret"] {
        let tar = tar_of(&[hardlink("h", target)]);
        expect_err(s.layer(&tar), "escapes the destination");
        s.check();
    }
    // Absolute targets resolve inside dest, where there is no such file.
    let tar = tar_of(&[hardlink("h", &format!("{outside}/secret"))]);
    expect_err(s.plain(&tar), "does not exist");
    s.check();
    // Through a symlink to outside: resolved inside the root as well.
    let tar = tar_of(&[symlink("o", &outside), hardlink("h", "o/secret")]);
    expect_err(s.plain(&tar), "does not exist");
    s.check();
    // A hard link to a symlink links the symlink itself, which stays a symlink.
    let tar = tar_of(&[symlink("s", &format!("{outside}/secret")), hardlink("h2", "s")]);
    s.plain(&tar).unwrap();
    assert!(fs::symlink_metadata(s.dest.join("h2")).unwrap().file_type().is_symlink());
    // Links to directories are refused.
    let tar = tar_of(&[dir("d"), hardlink("hd", "d")]);
    expect_err(s.plain(&tar), "is a directory");
    s.check();
}

#[test]
fn later_entries_replace_earlier_ones() {
    let s = Sandbox::new();
    let tar = tar_of(&[
        file("a", b"first"),
        file("a", b"second"),
        dir("d"),
        file("d/child", b"c"),
        dir("d/sub"),
        file("d/sub/deeper", b"x"),
        file("d", b"now a file"),
        file("f", b"file"),
        dir("f"),
        file("f/in", b"in"),
        symlink("l", "/etc"),
        dir("l"),
    ]);
    s.layer(&tar).unwrap();
    assert_eq!(fs::read(s.dest.join("a")).unwrap(), b"second");
    assert_eq!(fs::read(s.dest.join("d")).unwrap(), b"now a file");
    assert_eq!(fs::read(s.dest.join("f/in")).unwrap(), b"in");
    assert!(fs::symlink_metadata(s.dest.join("l")).unwrap().is_dir());
    s.check();
}

#[test]
fn whiteouts_are_converted_only_for_layers_and_cannot_escape() {
    let s = Sandbox::new();
    let mut x = dir("d");
    x.0.xattrs.insert(b"trusted.overlay.redirect".to_vec(), b"/outside".to_vec());
    let tar = tar_of(&[
        x,
        file("d/.wh..wh..opq", b""),
        file("d/.wh.gone", b""),
        file(".wh..wh.plnk", b""),
        file("d/kept", b"k"),
    ]);
    s.layer(&tar).unwrap();
    let md = fs::symlink_metadata(s.dest.join("d/gone")).unwrap();
    assert_eq!((md.mode() & 0o170000, md.rdev()), (0o020000, 0), "char device 0/0");
    let xattrs = read_xattrs(&s.dest.join("d"));
    assert_eq!(xattrs.get(&b"trusted.overlay.opaque"[..]).map(Vec::as_slice), Some(&b"y"[..]));
    assert!(!xattrs.contains_key(&b"trusted.overlay.redirect"[..]), "overlay xattrs from archives are dropped");
    assert!(!s.dest.join(".wh..wh.plnk").exists());

    for bad in [".wh..", ".wh...", "d/.wh."] {
        let s = Sandbox::new();
        let tar = tar_of(&[dir("d"), file(bad, b"")]);
        expect_err(s.layer(&tar), "whiteout");
        s.check();
    }
    let s = Sandbox::new();
    let tar = tar_of(&[file("../.wh.outside", b"")]);
    expect_err(s.layer(&tar), "escapes");
    s.check();

    // Plain extraction keeps the names.
    let s = Sandbox::new();
    s.plain(&tar_of(&[file(".wh.x", b"")])).unwrap();
    assert!(s.dest.join(".wh.x").is_file());
}

#[test]
fn corrupt_truncated_and_absurd_streams_fail_clearly() {
    let good = tar_of(&[file("one", &[1u8; 5000]), file("two", b"2")]);
    let gz = gzip(&good);

    let s = Sandbox::new();
    let msg = unpack_layer(&gz[..gz.len() - 10], Compression::Gzip, &s.dest, &UnpackOptions::default())
        .unwrap_err()
        .to_string();
    assert!(msg.contains("truncated") || msg.contains("unexpected end"), "{msg}");
    s.check();

    let s = Sandbox::new();
    let mut bad = gz.clone();
    for b in &mut bad[20..60] {
        *b ^= 0x5a;
    }
    let err = unpack_layer(&bad[..], Compression::Gzip, &s.dest, &UnpackOptions::default()).unwrap_err();
    assert!(
        matches!(err, LayerError::Stream { .. } | LayerError::Truncated { .. } | LayerError::BadHeader { .. }),
        "{err}"
    );
    s.check();

    let s = Sandbox::new();
    let mut bad = good.clone();
    bad[0] = b'X'; // name byte: checksum no longer matches
    expect_err(s.layer(&bad), "checksum");
    s.check();

    // A file declaring a petabyte of data.
    let s = Sandbox::new();
    let mut h = TarHeader::new(b"huge".to_vec(), EntryType::Regular);
    h.mode = 0o644;
    h.size = 1 << 50;
    let mut tar = tar_of(&[(h, Vec::new())]);
    tar.truncate(512 + 4096);
    tar.resize(512 + 4096, 7);
    let msg = expect_err(s.layer(&tar), "truncated");
    assert!(msg.contains("huge"), "{msg}");
    s.check();

    // Garbage, and a gzip stream that is not a tar.
    let s = Sandbox::new();
    expect_err(s.plain(&[0x42u8; 2000]), "corrupt tar header");
    expect_err(extract_archive(&gzip(b"hello world")[..], &s.dest, &ExtractOptions::default()), "truncated");
    s.check();

    // Unsupported entry types and compressions.
    let s = Sandbox::new();
    let mut h = TarHeader::new(b"vol".to_vec(), EntryType::Regular);
    h.size = 0;
    let mut tar = tar_of(&[(h, Vec::new())]);
    tar[156] = b'V';
    let sum: u32 =
        tar[..512].iter().enumerate().map(|(i, &b)| if (148..156).contains(&i) { 32 } else { u32::from(b) }).sum();
    tar[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
    expect_err(s.plain(&tar), "type 'V'");
    expect_err(s.plain(b"BZh91AY&SY rest of a bzip2 stream"), "bzip2");
    s.check();
}

#[test]
fn digests_sizes_and_media_types_are_checked() {
    let tar = tar_of(&[file("f", b"data")]);
    let gz = gzip(&tar);
    let s = Sandbox::new();
    let err = unpack_layer(&gz[..], Compression::Zstd, &s.dest, &UnpackOptions::default()).unwrap_err();
    assert!(matches!(err, LayerError::CompressionMismatch { .. }), "{err}");
    let err = unpack_layer(&tar[..], Compression::Gzip, &s.dest, &UnpackOptions::default()).unwrap_err();
    assert!(err.to_string().contains("gzip"), "{err}");

    let s = Sandbox::new();
    expect_err(unpack_layer(&b""[..], Compression::Gzip, &s.dest, &UnpackOptions::default()), "truncated");
    expect_err(s.layer(b""), "truncated");

    let check = |opts: UnpackOptions, needle: &str| {
        let s = Sandbox::new();
        expect_err(unpack_layer(&gz[..], Compression::Gzip, &s.dest, &opts), needle);
    };
    check(UnpackOptions { expected_digest: Some(Digest::of(b"other")), ..Default::default() }, "blob digest mismatch");
    check(UnpackOptions { expected_diff_id: Some(Digest::of(b"other")), ..Default::default() }, "diff_id mismatch");
    check(UnpackOptions { expected_size: Some(1), ..Default::default() }, "size mismatch");
    let s = Sandbox::new();
    let ok = UnpackOptions {
        expected_digest: Some(Digest::of(&gz)),
        expected_size: Some(gz.len() as u64),
        expected_diff_id: Some(Digest::of(&tar)),
        ..Default::default()
    };
    assert_eq!(unpack_layer(&gz[..], Compression::Gzip, &s.dest, &ok).unwrap(), Digest::of(&tar));
}

#[test]
fn owner_override_and_metadata_of_plain_extraction() {
    let s = Sandbox::new();
    let (mut f, data) = file("bin/tool", b"#!");
    f.mode = 0o4755;
    f.uid = 10;
    f.gid = 20;
    f.mtime = 1_000_000_000;
    let tar = tar_of(&[(f, data), symlink("bin/alias", "tool")]);
    let stats = extract_archive(&tar[..], &s.dest, &ExtractOptions { owner: Some((1234, 5678)) }).unwrap();
    assert_eq!(stats, ExtractStats { entries: 2, bytes: 2 });
    let md = fs::metadata(s.dest.join("bin/tool")).unwrap();
    assert_eq!((md.uid(), md.gid(), md.mode() & 0o7777, md.mtime()), (1234, 5678, 0o4755, 1_000_000_000));
    let md = fs::symlink_metadata(s.dest.join("bin/alias")).unwrap();
    assert_eq!((md.uid(), md.gid()), (1234, 5678));
    let parent = fs::metadata(s.dest.join("bin")).unwrap();
    assert_eq!((parent.uid(), parent.mode() & 0o7777), (0, 0o755), "implicit parents are 0755 root");
    s.check();
}

/// One generated archive entry.
#[derive(Debug, Clone)]
enum Gen {
    File(String, Vec<u8>),
    Dir(String),
    Symlink(String, String),
    Hardlink(String, String),
    Whiteout(String),
}

fn path_strategy() -> impl Strategy<Value = String> {
    let comp = prop_oneof![
        Just("a".to_string()),
        Just("b".to_string()),
        Just("..".to_string()),
        Just(".".to_string()),
        Just("".to_string()),
        Just("c".to_string()),
    ];
    (any::<bool>(), prop::collection::vec(comp, 1..5))
        .prop_map(|(abs, c)| format!("{}{}", if abs { "/" } else { "" }, c.join("/")))
}

fn target_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        path_strategy(),
        Just("/".to_string()),
        Just("../outside".to_string()),
        Just("../../outside/secret".to_string())
    ]
}

fn entry_strategy() -> impl Strategy<Value = Gen> {
    prop_oneof![
        (path_strategy(), prop::collection::vec(any::<u8>(), 0..40)).prop_map(|(p, d)| Gen::File(p, d)),
        path_strategy().prop_map(Gen::Dir),
        (path_strategy(), target_strategy()).prop_map(|(p, t)| Gen::Symlink(p, t)),
        (path_strategy(), target_strategy()).prop_map(|(p, t)| Gen::Hardlink(p, t)),
        path_strategy().prop_map(Gen::Whiteout),
    ]
}

fn build(entries: &[Gen]) -> Vec<u8> {
    let list: Vec<_> = entries
        .iter()
        .map(|g| match g {
            Gen::File(p, d) => file(p, d),
            Gen::Dir(p) => dir(p),
            Gen::Symlink(p, t) => symlink(p, t),
            Gen::Hardlink(p, t) => hardlink(p, t),
            Gen::Whiteout(p) => {
                let (parent, name) = p.rsplit_once('/').unwrap_or(("", p));
                let wh = if parent.is_empty() && !p.starts_with('/') {
                    format!(".wh.{name}")
                } else {
                    format!("{parent}/.wh.{name}")
                };
                file(&wh, b"")
            }
        })
        .collect();
    tar_of(&list)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// Whatever the entries, extraction returns (Ok or a clear error), never panics, and
    /// never touches anything outside the destination.
    #[test]
    fn random_archives_never_escape(entries in prop::collection::vec(entry_strategy(), 1..12), layer in any::<bool>()) {
        let s = Sandbox::new();
        let tar = build(&entries);
        let result = if layer { s.layer(&tar).map(|_| ()) } else { s.plain(&tar).map(|_| ()) };
        if let Err(e) = result {
            prop_assert!(!e.to_string().is_empty());
        }
        s.check();
    }

    /// Any tree the extractor builds from a benign archive packs back deterministically:
    /// pack -> unpack -> pack gives the same bytes.
    #[test]
    fn benign_archives_round_trip(entries in prop::collection::vec(entry_strategy(), 1..12)) {
        let s = Sandbox::new();
        let tar = build(&entries);
        if s.layer(&tar).is_ok() {
            let first = write_tar(&s.dest, &[], Vec::new(), &PackOptions::default()).unwrap();
            let s2 = Sandbox::new();
            s2.layer(&first).unwrap();
            let second = write_tar(&s2.dest, &[], Vec::new(), &PackOptions::default()).unwrap();
            prop_assert!(first == second);
            prop_assert_eq!(snapshot(&s.dest), snapshot(&s2.dest));
        }
        s.check();
    }
}

#[test]
fn sandbox_detects_escapes() {
    // The checker itself must be able to fail.
    let s = Sandbox::new();
    fs::write(s.root.join("escaped"), "x").unwrap();
    let r = std::panic::catch_unwind(|| s.check());
    assert!(r.is_err());
    let _ = Path::new("");
}
