//! Round trips through real tar/gzip/zstd: an upper directory with every kind of entry is
//! committed as a layer blob, unpacked again, and compared; GNU tar must read the tars.
//! Needs root (devices, ownership, trusted xattrs).

mod layer_support;

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use layer_support::*;
use strata_store::blobs::BlobStore;
use strata_store::digest::Digest;
use strata_store::layer::tar_read::{Kind, TarReader};
use strata_store::layer::*;
use strata_store::oci::Compression;

fn entries_of(tar: &[u8]) -> Vec<(String, Kind)> {
    let mut r = TarReader::new(tar);
    let mut out = Vec::new();
    while let Some(e) = r.next_entry().unwrap() {
        out.push((e.display_name(), e.kind));
    }
    out
}

#[test]
fn every_kind_of_entry_survives_commit_and_unpack() {
    let t = tempfile::tempdir().unwrap();
    let upper = t.path().join("upper");
    fs::create_dir(&upper).unwrap();
    build_rich_upper(&upper);
    let blobs = BlobStore::open(&t.path().join("store")).unwrap();
    let mut expected = snapshot(&upper);
    // The tar holds whole seconds: compare at that precision (snapshot already does).
    expected.retain(|p, _| p != Path::new("sock"));

    for compression in [Compression::Gzip, Compression::Zstd, Compression::None] {
        let opts = PackOptions::default();
        let layer = commit_layer(&blobs, &upper, &[], compression, &opts).unwrap();
        assert!(!layer.empty);
        assert_eq!(layer.descriptor.media_type, compression.oci_layer_media_type());
        let stored = fs::read(blobs.path(&layer.descriptor.digest)).unwrap();
        assert_eq!(Digest::of(&stored), layer.descriptor.digest);
        assert_eq!(stored.len() as u64, layer.descriptor.size);

        // diff_id is the sha256 of exactly the tar write_tar produces.
        let tar = write_tar(&upper, &[], Vec::new(), &opts).unwrap();
        assert_eq!(Digest::of(&tar), layer.diff_id, "{compression:?}");

        let dest = t.path().join(format!("unpacked-{compression:?}"));
        fs::create_dir(&dest).unwrap();
        let uo = UnpackOptions {
            expected_digest: Some(layer.descriptor.digest.clone()),
            expected_size: Some(layer.descriptor.size),
            expected_diff_id: Some(layer.diff_id.clone()),
            ..UnpackOptions::default()
        };
        let diff_id =
            unpack_layer(fs::File::open(blobs.path(&layer.descriptor.digest)).unwrap(), compression, &dest, &uo)
                .unwrap();
        assert_eq!(diff_id, layer.diff_id);
        let got = snapshot(&dest);
        for (p, want) in &expected {
            let have = got.get(p).unwrap_or_else(|| panic!("{} missing after unpack", p.display()));
            assert_eq!(have, want, "{} differs ({compression:?})", p.display());
        }
        assert_eq!(got.keys().collect::<Vec<_>>(), expected.keys().collect::<Vec<_>>());

        // Packing the unpacked tree gives the same bytes: the format is a function of the tree.
        let again = write_tar(&dest, &[], Vec::new(), &opts).unwrap();
        assert!(again == tar, "re-packed tar differs ({compression:?})");
    }
}

#[test]
fn tar_layout_follows_containerd_and_buildkit() {
    let t = tempfile::tempdir().unwrap();
    let upper = t.path().join("upper");
    fs::create_dir(&upper).unwrap();
    build_rich_upper(&upper);
    let tar = write_tar(&upper, &[], Vec::new(), &PackOptions::default()).unwrap();
    let names: Vec<String> = entries_of(&tar).into_iter().map(|(n, _)| n).collect();
    // Depth-first walk, names sorted per directory, directories with a trailing slash.
    let pos = |n: &str| names.iter().position(|x| x == n).unwrap_or_else(|| panic!("{n} not in {names:?}"));
    assert!(pos("etc/") < pos("etc/conf.d/") && pos("etc/conf.d/") < pos("etc/conf.d/app.conf"));
    assert!(pos("etc/conf.d/app.conf") < pos("etc/.wh.deleted") && pos("etc/.wh.deleted") < pos("etc/empty"));
    assert_eq!(pos("opq/.wh..wh..opq"), pos("opq/") + 1, "opaque marker right after its directory");
    assert!(!names.iter().any(|n| n.starts_with("sock")), "sockets are skipped");
    assert!(!names.iter().any(|n| n.starts_with('/') || n.starts_with("./")));
    let kinds = entries_of(&tar);
    let kind = |n: &str| kinds.iter().find(|(x, _)| x == n).unwrap().1;
    assert_eq!(kind("etc/hl-a"), Kind::Regular, "first name in walk order carries the data");
    assert_eq!(kind("hl-b"), Kind::HardLink);
    assert_eq!(kind("zz-hl-c"), Kind::HardLink);
    assert_eq!(kind("etc/.wh.deleted"), Kind::Regular);

    // Whiteout and opaque entry headers.
    let mut r = TarReader::new(&tar[..]);
    while let Some(e) = r.next_entry().unwrap() {
        if e.name == b"etc/.wh.deleted" {
            assert_eq!((e.mode, e.uid, e.gid, e.size), (0, 0, 0, 0));
            assert!(e.xattrs.is_empty());
        }
        if e.name == b"opq/.wh..wh..opq" {
            assert_eq!((e.mode, e.mtime, e.size), (0o755, 0, 0));
        }
        if e.name == b"opq/" {
            assert!(e.xattrs.is_empty(), "overlay xattrs are not written: {:?}", e.xattrs);
        }
        if e.name == b"hl-b" {
            assert_eq!(e.linkname, b"etc/hl-a");
        }
        if e.name == b"big" {
            assert!(e.xattrs.iter().any(|(k, _)| k == b"security.capability"));
        }
    }
}

#[test]
fn gnu_tar_reads_our_layers() {
    let t = tempfile::tempdir().unwrap();
    let upper = t.path().join("upper");
    fs::create_dir(&upper).unwrap();
    build_rich_upper(&upper);
    let tar_path = t.path().join("layer.tar");
    fs::write(&tar_path, write_tar(&upper, &[], Vec::new(), &PackOptions::default()).unwrap()).unwrap();
    let listing = run("tar", &["--numeric-owner", "-tvf", tar_path.to_str().unwrap()]);
    let deep = format!("{}/{}/{}", long_component('a', 120), long_component('b', 200), long_component('c', 180));
    assert!(listing.contains(&deep), "long path listed:\n{listing}");
    assert!(listing.contains("etc/.wh.deleted"));
    assert!(listing.contains("opq/.wh..wh..opq"));
    assert!(listing.contains("-rwsr-xr-x 1000/1001"), "setuid file with numeric owner:\n{listing}");
    assert!(listing.contains("3000000/4000000"), "PAX uid/gid:\n{listing}");
    assert!(listing.contains("hl-b link to etc/hl-a"));
    assert!(listing.contains("crw-rw-rw- 0/0             1,3 "), "char device:\n{listing}");
    assert!(listing.contains(&format!("longlink -> /nonexistent/{}", long_component('t', 150))));

    // GNU tar extracts the same content and xattrs.
    let out = t.path().join("gnu");
    fs::create_dir(&out).unwrap();
    run(
        "tar",
        &[
            "--xattrs",
            "--xattrs-include=*",
            "--numeric-owner",
            "-xpf",
            tar_path.to_str().unwrap(),
            "-C",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(fs::read(out.join(&deep)).unwrap(), b"deep");
    assert_eq!(read_xattrs(&out.join("etc/conf.d/app.conf")).get(&b"user.note"[..]).unwrap(), b"hello\0world");
    assert_eq!(fs::read(out.join(os(b"bin\xffary"))).unwrap(), b"nonutf8");
}

#[test]
fn commits_are_deterministic_and_epoch_clamps_times() {
    let t = tempfile::tempdir().unwrap();
    let blobs = BlobStore::open(&t.path().join("store")).unwrap();
    let mk = |name: &str| -> PathBuf {
        let u = t.path().join(name);
        fs::create_dir(&u).unwrap();
        build_rich_upper(&u);
        u
    };
    let (a, b) = (mk("a"), mk("b"));
    for c in [Compression::Gzip, Compression::Zstd] {
        let la = commit_layer(&blobs, &a, &[], c, &PackOptions::default()).unwrap();
        let lb = commit_layer(&blobs, &b, &[], c, &PackOptions::default()).unwrap();
        assert_eq!(la, lb, "two identical trees give the same blob ({c:?})");
    }
    let epoch = 1_600_000_010;
    let tar = write_tar(&a, &[], Vec::new(), &PackOptions { source_date_epoch: Some(epoch), ..PackOptions::default() })
        .unwrap();
    let mut r = TarReader::new(&tar[..]);
    let mut saw_older = false;
    while let Some(e) = r.next_entry().unwrap() {
        assert!(e.mtime <= epoch, "{} has mtime {} > epoch", e.display_name(), e.mtime);
        saw_older |= e.mtime < epoch && !e.name.ends_with(b".wh..wh..opq");
    }
    assert!(saw_older, "older times are kept");
}

#[test]
fn empty_diffs_give_buildkits_empty_layer() {
    let t = tempfile::tempdir().unwrap();
    let blobs = BlobStore::open(&t.path().join("store")).unwrap();
    let upper = t.path().join("upper");
    fs::create_dir(&upper).unwrap();
    let gz = commit_layer(&blobs, &upper, &[], Compression::Gzip, &PackOptions::default()).unwrap();
    assert!(gz.empty);
    assert_eq!(
        gz.descriptor.digest.to_string(),
        "sha256:4f4fb700ef54461cfa02571ae0db9a0dc1e0cdb5577484a6d75e68dc38e8acc1"
    );
    assert_eq!(gz.diff_id.to_string(), "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef");
    assert_eq!(gz.descriptor.size, 32);
    let zs = commit_layer(&blobs, &upper, &[], Compression::Zstd, &PackOptions::default()).unwrap();
    assert!(zs.empty);
    assert_eq!(zs.diff_id, gz.diff_id);
    let plain = commit_layer(&blobs, &upper, &[], Compression::None, &PackOptions::default()).unwrap();
    assert_eq!(blobs.read(&plain.descriptor.digest).unwrap(), vec![0u8; 1024]);
    // The canonical blob unpacks to nothing.
    let dest = t.path().join("dest");
    fs::create_dir(&dest).unwrap();
    let d = unpack_layer(
        blobs.open_blob(&gz.descriptor.digest).unwrap(),
        Compression::Gzip,
        &dest,
        &UnpackOptions::default(),
    )
    .unwrap();
    assert_eq!(d, gz.diff_id);
    assert_eq!(fs::read_dir(&dest).unwrap().count(), 0);
    // A diff holding only unchanged copied-up directories is empty too.
    let lower = t.path().join("lower");
    fs::create_dir_all(lower.join("etc")).unwrap();
    fs::create_dir_all(upper.join("etc")).unwrap();
    set_mtime(&lower.join("etc"), 1_500_000_000, 5);
    set_mtime(&upper.join("etc"), 1_500_000_000, 5);
    let l = commit_layer(&blobs, &upper, &[lower], Compression::Gzip, &PackOptions::default()).unwrap();
    assert!(l.empty);
    assert_eq!(l.descriptor.digest, gz.descriptor.digest);
}

#[test]
fn unchanged_copied_up_directories_are_written_only_as_parents() {
    let t = tempfile::tempdir().unwrap();
    let (lower2, lower1, upper) = (t.path().join("l2"), t.path().join("l1"), t.path().join("u"));
    for d in [&lower2, &lower1, &upper] {
        fs::create_dir_all(d.join("usr/share/doc")).unwrap();
        fs::create_dir_all(d.join("var")).unwrap();
        fs::create_dir_all(d.join("opt/unchanged")).unwrap();
    }
    fs::remove_dir_all(lower1.join("usr")).unwrap(); // usr only in the bottom layer
    fs::write(upper.join("usr/share/doc/new"), "n").unwrap();
    fs::write(upper.join("var/new"), "v").unwrap();
    set_xattr(&lower2.join("usr/share"), "user.k", b"1");
    set_xattr(&upper.join("usr/share"), "user.k", b"1");
    set_xattr(&upper.join("usr/share"), "trusted.overlay.origin", b"ignored");
    chmod(&upper.join("usr/share/doc"), 0o700); // changed: emitted
    for d in [&lower2, &lower1, &upper] {
        for p in ["usr/share/doc", "usr/share", "usr", "var", "opt/unchanged", "opt"] {
            if d.join(p).exists() {
                set_mtime(&d.join(p), 1_500_000_000, 42);
            }
        }
    }
    set_mtime(&lower1.join("var"), 1_500_000_001, 0); // top-most lower wins: upper var differs
    let tar = write_tar(&upper, &[lower1.clone(), lower2.clone()], Vec::new(), &PackOptions::default()).unwrap();
    let names: Vec<String> = entries_of(&tar).into_iter().map(|(n, _)| n).collect();
    // usr/ and usr/share/ are unchanged but are parents of changes (BuildKit writes every
    // parent); opt/ and opt/unchanged/ hold no change and are left out.
    assert_eq!(names, ["usr/", "usr/share/", "usr/share/doc/", "usr/share/doc/new", "var/", "var/new"]);

    // Unpacking over the same lowers recreates the skipped parents with the lowers' metadata.
    let dest = t.path().join("dest");
    fs::create_dir(&dest).unwrap();
    let opts = UnpackOptions { lowers: vec![lower1, lower2], ..UnpackOptions::default() };
    unpack_layer(&tar[..], Compression::None, &dest, &opts).unwrap();
    let got = snapshot(&dest);
    let want = snapshot(&upper);
    for p in ["usr", "usr/share", "usr/share/doc", "usr/share/doc/new", "var", "var/new"] {
        let mut w = want[Path::new(p)].clone();
        w.xattrs.remove(&b"trusted.overlay.origin"[..]);
        assert_eq!(got[Path::new(p)], w, "{p}");
    }
}

#[test]
fn files_over_8_gib_use_a_pax_size() {
    let t = tempfile::tempdir().unwrap();
    let upper = t.path().join("u");
    fs::create_dir(&upper).unwrap();
    let size = (8u64 << 30) + 1;
    let f = fs::File::create(upper.join("huge")).unwrap();
    f.set_len(size).unwrap(); // sparse: read back as zeros, written in full
    drop(f);

    /// Keeps the first bytes and counts the rest.
    struct Head(Vec<u8>, u64);
    impl std::io::Write for Head {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            if self.0.len() < 4096 {
                let n = b.len().min(4096 - self.0.len());
                self.0.extend_from_slice(&b[..n]);
            }
            self.1 += b.len() as u64;
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let out = write_tar(&upper, &[], Head(Vec::new(), 0), &PackOptions::default()).unwrap();
    let padded = size.div_ceil(512) * 512;
    assert_eq!(out.1, 512 * 3 + padded + 1024, "PAX header + records + header + data + trailer");
    let mut r = TarReader::new(&out.0[..]);
    let e = r.next_entry().unwrap().unwrap();
    assert_eq!((e.display_name().as_str(), e.size), ("huge", size));
    assert!(String::from_utf8_lossy(&out.0[512..1024]).contains("size=8589934593"));
    let mut first = [1u8; 16];
    let mut rest = &out.0[1536..1552];
    rest.read_exact(&mut first).unwrap();
    assert_eq!(first, [0u8; 16]);
}

/// The tree of a RUN layer BuildKit 0.13 (docker26 buildx) built on this machine:
/// `mkdir -p /data/keep /data/opq && echo x > /data/opq/old && echo y > /data/keep/k &&
/// ln -s /bin/sh /data/sl` over busybox (runc left dev/ etc/ proc/ sys/ in the diff). Its image
/// config lists diff_id sha256:9d58ca46…; the same tree must give the same bytes here.
#[test]
fn diff_id_matches_buildkit_for_the_same_tree() {
    let t = tempfile::tempdir().unwrap();
    let u = t.path().join("u");
    for d in ["data/keep", "data/opq", "dev", "etc", "proc", "sys"] {
        fs::create_dir_all(u.join(d)).unwrap();
    }
    fs::write(u.join("data/keep/k"), "y\n").unwrap();
    fs::write(u.join("data/opq/old"), "x\n").unwrap();
    std::os::unix::fs::symlink("/bin/sh", u.join("data/sl")).unwrap();
    for p in ["data/keep/k", "data/opq/old", "data/sl", "data/keep", "data/opq", "data", "dev", "etc", "proc", "sys"] {
        set_mtime(&u.join(p), 1_795_424_864, 250_000_000);
    }
    for d in ["data", "data/keep", "data/opq", "dev", "etc", "proc", "sys"] {
        chmod(&u.join(d), 0o755);
    }
    chmod(&u.join("data/keep/k"), 0o644);
    chmod(&u.join("data/opq/old"), 0o644);
    let tar = write_tar(&u, &[], Vec::new(), &PackOptions::default()).unwrap();
    assert_eq!(Digest::of(&tar).to_string(), "sha256:9d58ca4601184c4cc2e5fb51885c1fa6d8198b03c3d63a9fe5cfe2035213cd63");
}
