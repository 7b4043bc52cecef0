//! A real overlayfs mount: changes made through the mount are packed from the upper
//! directory, and the unpacked layer, mounted over the same lower, shows the same tree.
//! Needs root (mount).

mod layer_support;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use layer_support::*;
use nix::mount::{MsFlags, mount, umount};
use strata_store::layer::tar_read::TarReader;
use strata_store::layer::*;
use strata_store::oci::Compression;

/// An overlay mount, unmounted on drop.
struct Overlay(PathBuf);

impl Overlay {
    fn mount(target: &Path, opts: &str, flags: MsFlags) -> Overlay {
        fs::create_dir_all(target).unwrap();
        mount(Some("overlay"), target, Some("overlay"), flags, Some(opts))
            .unwrap_or_else(|e| panic!("mount {opts}: {e}"));
        Overlay(target.to_path_buf())
    }
}

impl Drop for Overlay {
    fn drop(&mut self) {
        let _ = umount(&self.0);
    }
}

#[test]
fn changes_made_through_overlayfs_pack_and_unpack_faithfully() {
    let t = tempfile::tempdir().unwrap();
    let p = |s: &str| t.path().join(s);
    let (lower, upper, work) = (p("lower"), p("upper"), p("work"));
    for d in [&lower, &upper, &work] {
        fs::create_dir(d).unwrap();
    }
    fs::write(lower.join("a"), "a").unwrap();
    fs::write(lower.join("b"), "b").unwrap();
    fs::create_dir_all(lower.join("d/sub")).unwrap();
    fs::write(lower.join("d/x"), "x").unwrap();
    fs::write(lower.join("d/sub/y"), "y").unwrap();
    fs::create_dir(lower.join("keep")).unwrap();
    fs::write(lower.join("keep/k1"), "k1").unwrap();
    fs::create_dir(lower.join("perm")).unwrap();
    fs::write(lower.join("perm/f"), "f").unwrap();
    fs::write(lower.join("mv_src"), "moved").unwrap();

    {
        let merged = p("merged");
        let opts = format!(
            "lowerdir={},upperdir={},workdir={},redirect_dir=off,metacopy=off,index=off",
            lower.display(),
            upper.display(),
            work.display()
        );
        let _m = Overlay::mount(&merged, &opts, MsFlags::empty());
        fs::remove_file(merged.join("a")).unwrap();
        fs::OpenOptions::new().append(true).open(merged.join("b")).unwrap().write_all(b"+more").unwrap();
        fs::remove_dir_all(merged.join("d")).unwrap();
        fs::create_dir(merged.join("d")).unwrap();
        fs::write(merged.join("d/new"), "new").unwrap();
        // Changing a file copies its directory up without changing the directory.
        fs::OpenOptions::new().append(true).open(merged.join("keep/k1")).unwrap().write_all(b"+1").unwrap();
        fs::rename(merged.join("mv_src"), merged.join("mv_dst")).unwrap();
        chmod(&merged.join("perm"), 0o700);
    }

    let tar = write_tar(&upper, std::slice::from_ref(&lower), Vec::new(), &PackOptions::default()).unwrap();
    let mut names = Vec::new();
    let mut r = TarReader::new(&tar[..]);
    while let Some(e) = r.next_entry().unwrap() {
        names.push(e.display_name());
    }
    assert_eq!(
        names,
        [".wh.a", "b", "d/", "d/.wh..wh..opq", "d/new", "keep/", "keep/k1", "mv_dst", ".wh.mv_src", "perm/"],
        "whiteouts for deletions and renames, opaque replace, unchanged keep/ written as the parent of keep/k1"
    );
    assert!(!names.iter().any(|n| n.starts_with("work")));

    // Unpack the layer into a fresh snapshot, then compare overlay's merged views.
    let blobs = strata_store::blobs::BlobStore::open(&p("store")).unwrap();
    let layer =
        commit_layer(&blobs, &upper, std::slice::from_ref(&lower), Compression::Gzip, &PackOptions::default()).unwrap();
    let unpacked = p("unpacked");
    fs::create_dir(&unpacked).unwrap();
    let opts = UnpackOptions { lowers: vec![lower.clone()], ..UnpackOptions::default() };
    let diff_id =
        unpack_layer(blobs.open_blob(&layer.descriptor.digest).unwrap(), Compression::Gzip, &unpacked, &opts).unwrap();
    assert_eq!(diff_id, layer.diff_id);
    assert_eq!(
        read_xattrs(&unpacked.join("d")).get(&b"trusted.overlay.opaque"[..]).map(Vec::as_slice),
        Some(&b"y"[..])
    );

    let want = {
        let _m = Overlay::mount(
            &p("view-orig"),
            &format!("lowerdir={}:{}", upper.display(), lower.display()),
            MsFlags::MS_RDONLY,
        );
        snapshot(&p("view-orig"))
    };
    let got = {
        let _m = Overlay::mount(
            &p("view-unpacked"),
            &format!("lowerdir={}:{}", unpacked.display(), lower.display()),
            MsFlags::MS_RDONLY,
        );
        snapshot(&p("view-unpacked"))
    };
    assert_eq!(got, want);
    let paths: Vec<String> = got.keys().map(|k| k.display().to_string()).collect();
    assert_eq!(paths, ["b", "d", "d/new", "keep", "keep/k1", "mv_dst", "perm", "perm/f"]);
    assert_eq!(got[Path::new("b")].content, b"b+more");
    assert_eq!(got[Path::new("keep/k1")].content, b"k1+1");
}
