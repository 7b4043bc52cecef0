//! An image's layers applied one over the other: the root filesystem a container would see
//! (`-o type=local`, `-o type=tar`), or the layers a build added merged into one (`--squash`).
//!
//! The input is a chain of snapshot directories (overlayfs upper format, bottom first: a 0/0
//! character device deletes a path, `trusted.overlay.opaque=y` hides what lower layers had in a
//! directory). Each layer is walked in name order and applied to the destination with
//! overlay's rules: a directory merges with the one below (its metadata replaces the lower's),
//! anything else replaces what was at its path (a directory included, with its contents), a
//! whiteout removes the path, an opaque directory empties the one below first. Directory
//! metadata (mode, owner, xattrs, times) is set after everything is in place, since creating
//! entries changes a directory's mtime.
//!
//! Every path is looked at with `lstat` and a non-directory found where a layer has a directory
//! is removed before the directory is made, so a symlink left by one layer never leads a later
//! one outside the destination: every parent of an entry is a real directory the walk made or
//! checked.
//!
//! - [`Placement::Link`] hard-links files from the snapshots (no data is copied: merging a 1 GB
//!   image costs metadata only; the result lives in the store's scratch space and is never
//!   written to) and keeps owners and xattrs. It falls back to copying across filesystems.
//! - [`Placement::Copy`] copies data and, like BuildKit's local exporter, leaves files owned by
//!   the user running strata, with the image's modes and times; hard links within a layer stay
//!   hard links.
//! - [`Deletions::Apply`] resolves deletions (a plain tree); [`Deletions::KeepOver`] keeps a
//!   whiteout or opaque directory only where it hides something in the given base layers: what
//!   a single layer over that base needs (`--squash`, as buildah's and Docker's squash produce).

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, Metadata};
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, CWD, FileType, Mode, Timespec, Timestamps, XattrFlags};

use super::ExportError;
use crate::Store;
use crate::layer::overlay::{self, OPAQUE_XATTR, Xattrs};
use crate::layer::{self, LayerBlob, PackOptions};
use crate::oci::Compression;

/// How files get into the destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Hard links to the snapshots' files, owners and xattrs kept.
    Link,
    /// Copies owned by the current user.
    Copy,
}

/// What happens to deletions.
#[derive(Debug, Clone, Copy)]
pub enum Deletions<'a> {
    /// Applied: the result has no whiteouts.
    Apply,
    /// Kept as whiteouts / opaque directories where they hide something in these layers
    /// (top-most first).
    KeepOver(&'a [PathBuf]),
}

/// Metadata a directory gets once everything is in place.
struct DirMeta {
    mode: u32,
    uid: u32,
    gid: u32,
    atime: Timespec,
    mtime: Timespec,
    xattrs: Xattrs,
    opaque: bool,
}

struct Applier<'a> {
    dest: &'a Path,
    placement: Placement,
    deletions: Deletions<'a>,
    dirs: BTreeMap<PathBuf, DirMeta>,
    /// (layer, device, inode) → where that file went, for hard links within a layer (copies).
    copied: HashMap<(usize, u64, u64), PathBuf>,
    layer: usize,
}

fn ts(sec: i64, nsec: i64) -> Timespec {
    Timespec { tv_sec: sec, tv_nsec: nsec }
}

fn perr(path: &Path, what: &str) -> impl FnOnce(std::io::Error) -> ExportError {
    let context = format!("{what} {}", path.display());
    move |source| ExportError::Io { context, source }
}

fn rerr(path: &Path, what: &str) -> impl FnOnce(rustix::io::Errno) -> ExportError {
    let context = format!("{what} {}", path.display());
    move |e| ExportError::Io { context, source: e.into() }
}

/// Removes whatever is at `path` (a directory with its contents), if anything.
fn remove(path: &Path) -> Result<(), ExportError> {
    match fs::symlink_metadata(path) {
        Ok(md) if md.is_dir() => fs::remove_dir_all(path).map_err(perr(path, "removing")),
        Ok(_) => fs::remove_file(path).map_err(perr(path, "removing")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(perr(path, "examining")(e)),
    }
}

impl Applier<'_> {
    fn hides_base(&self, rel: &Path) -> Result<bool, ExportError> {
        match self.deletions {
            Deletions::Apply => Ok(false),
            Deletions::KeepOver(base) => {
                Ok(overlay::lookup_lower(base, rel).map_err(perr(rel, "looking up in the base layers"))?.is_some())
            }
        }
    }

    fn walk(&mut self, layer: &Path, rel: &Path) -> Result<(), ExportError> {
        let dir = layer.join(rel);
        let mut names: Vec<_> = fs::read_dir(&dir)
            .map_err(perr(&dir, "listing"))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(perr(&dir, "listing"))?;
        names.sort();
        for name in names {
            let rel = rel.join(&name);
            let src = layer.join(&rel);
            let md = fs::symlink_metadata(&src).map_err(perr(&src, "examining"))?;
            self.entry(&src, &rel, &md)?;
            if md.is_dir() {
                self.walk(layer, &rel)?;
            }
        }
        Ok(())
    }

    fn entry(&mut self, src: &Path, rel: &Path, md: &Metadata) -> Result<(), ExportError> {
        let target = self.dest.join(rel);
        if overlay::is_whiteout(md) {
            remove(&target)?;
            self.dirs.retain(|d, _| !d.starts_with(rel));
            if self.hides_base(rel)? {
                rustix::fs::mknodat(CWD, &target, FileType::CharacterDevice, Mode::empty(), 0)
                    .map_err(rerr(&target, "creating the whiteout"))?;
            }
            return Ok(());
        }
        if md.is_dir() {
            let x = overlay::read_xattrs(src).map_err(perr(src, "reading xattrs of"))?;
            let is_dir = fs::symlink_metadata(&target).map(|m| m.is_dir());
            match is_dir {
                Ok(true) if overlay::is_opaque(&x) => {
                    remove(&target)?;
                    self.dirs.retain(|d, _| !d.starts_with(rel) || d == rel);
                }
                Ok(true) => {}
                Ok(false) => remove(&target)?,
                Err(_) => {}
            }
            if !target.is_dir() {
                fs::create_dir(&target).map_err(perr(&target, "creating"))?;
            }
            let opaque = overlay::is_opaque(&x) && self.hides_base(rel)?;
            let meta = DirMeta {
                mode: md.mode() & 0o7777,
                uid: md.uid(),
                gid: md.gid(),
                atime: ts(md.atime(), md.atime_nsec()),
                mtime: ts(md.mtime(), md.mtime_nsec()),
                xattrs: overlay::content_xattrs(&x),
                opaque,
            };
            self.dirs.insert(rel.to_path_buf(), meta);
            return Ok(());
        }
        if md.file_type().is_socket() {
            return Ok(());
        }
        remove(&target)?;
        self.dirs.remove(rel);
        if self.placement == Placement::Link {
            match fs::hard_link(src, &target) {
                Ok(()) => return Ok(()),
                Err(e) if e.raw_os_error() == Some(rustix::io::Errno::XDEV.raw_os_error()) => {}
                Err(e) => return Err(perr(&target, "linking")(e)),
            }
        }
        self.copy(src, &target, md)
    }

    /// Copies a non-directory.
    fn copy(&mut self, src: &Path, target: &Path, md: &Metadata) -> Result<(), ExportError> {
        let ft = md.file_type();
        let key = (self.layer, md.dev(), md.ino());
        if md.nlink() > 1
            && !ft.is_symlink()
            && let Some(first) = self.copied.get(&key)
        {
            return fs::hard_link(first, target).map_err(perr(target, "linking"));
        }
        if ft.is_symlink() {
            let to = fs::read_link(src).map_err(perr(src, "reading the link"))?;
            std::os::unix::fs::symlink(&to, target).map_err(perr(target, "creating"))?;
        } else if ft.is_file() {
            let mut from = fs::File::open(src).map_err(perr(src, "opening"))?;
            let mut to =
                fs::OpenOptions::new().write(true).create_new(true).open(target).map_err(perr(target, "creating"))?;
            std::io::copy(&mut from, &mut to).map_err(perr(target, "writing"))?;
            to.flush().map_err(perr(target, "writing"))?;
        } else {
            let (kind, dev) = if ft.is_char_device() {
                (FileType::CharacterDevice, md.rdev())
            } else if ft.is_block_device() {
                (FileType::BlockDevice, md.rdev())
            } else {
                (FileType::Fifo, 0)
            };
            rustix::fs::mknodat(CWD, target, kind, Mode::from_raw_mode(md.mode() & 0o7777), dev)
                .map_err(rerr(target, "creating"))?;
        }
        if self.placement == Placement::Link {
            rustix::fs::chownat(
                CWD,
                target,
                Some(rustix::fs::Uid::from_raw(md.uid())),
                Some(rustix::fs::Gid::from_raw(md.gid())),
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(rerr(target, "setting the owner of"))?;
            if !ft.is_symlink() {
                for (k, v) in
                    overlay::content_xattrs(&overlay::read_xattrs(src).map_err(perr(src, "reading xattrs of"))?)
                {
                    rustix::fs::lsetxattr(target, k.as_slice(), &v, XattrFlags::empty())
                        .map_err(rerr(target, "setting xattrs of"))?;
                }
            }
        }
        if !ft.is_symlink() {
            fs::set_permissions(target, fs::Permissions::from_mode(md.mode() & 0o7777))
                .map_err(perr(target, "setting the mode of"))?;
        }
        let times = Timestamps {
            last_access: ts(md.atime(), md.atime_nsec()),
            last_modification: ts(md.mtime(), md.mtime_nsec()),
        };
        rustix::fs::utimensat(CWD, target, &times, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(rerr(target, "setting times of"))?;
        if md.nlink() > 1 && !ft.is_symlink() {
            self.copied.insert(key, target.to_path_buf());
        }
        Ok(())
    }

    /// Sets every directory's metadata (after all entries exist).
    fn finish(self) -> Result<(), ExportError> {
        for (rel, m) in self.dirs.iter().rev() {
            let path = self.dest.join(rel);
            if self.placement == Placement::Link {
                rustix::fs::chownat(
                    CWD,
                    &path,
                    Some(rustix::fs::Uid::from_raw(m.uid)),
                    Some(rustix::fs::Gid::from_raw(m.gid)),
                    AtFlags::SYMLINK_NOFOLLOW,
                )
                .map_err(rerr(&path, "setting the owner of"))?;
                for (k, v) in &m.xattrs {
                    rustix::fs::lsetxattr(&path, k.as_slice(), v, XattrFlags::empty())
                        .map_err(rerr(&path, "setting xattrs of"))?;
                }
                if m.opaque {
                    rustix::fs::lsetxattr(&path, OPAQUE_XATTR, b"y", XattrFlags::empty())
                        .map_err(rerr(&path, "marking opaque"))?;
                }
            }
            fs::set_permissions(&path, fs::Permissions::from_mode(m.mode))
                .map_err(perr(&path, "setting the mode of"))?;
            rustix::fs::utimensat(
                CWD,
                &path,
                &Timestamps { last_access: m.atime, last_modification: m.mtime },
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(rerr(&path, "setting times of"))?;
        }
        Ok(())
    }
}

/// Applies `layers` (snapshot directories, bottom first) to `dest` (created if missing).
pub fn apply_layers(
    layers: &[PathBuf],
    dest: &Path,
    placement: Placement,
    deletions: Deletions<'_>,
) -> Result<(), ExportError> {
    fs::create_dir_all(dest).map_err(perr(dest, "creating"))?;
    let mut a = Applier { dest, placement, deletions, dirs: BTreeMap::new(), copied: HashMap::new(), layer: 0 };
    for (i, layer) in layers.iter().enumerate() {
        a.layer = i;
        a.walk(layer, Path::new(""))?;
    }
    a.finish()
}

/// Writes the root filesystem of `layers` (bottom first) as one tar to `out`, in the layer tar
/// format (sorted, numeric owners, whiteouts resolved) — what `-o type=tar` writes.
pub fn write_rootfs_tar<W: Write>(store: &Store, layers: &[PathBuf], out: W) -> Result<W, ExportError> {
    let scratch = store
        .snapshots
        .scratch()
        .map_err(|e| ExportError::Path { path: store.root().join("tmp"), message: e.to_string() })?;
    apply_layers(layers, &scratch.upper(), Placement::Link, Deletions::Apply)?;
    layer::write_tar(&scratch.upper(), &[], out, &PackOptions::default())
        .map_err(|source| ExportError::Layer { digest: crate::digest::Digest::of(b""), source })
}

/// Merges `new` (snapshot directories of the layers a build added, bottom first) into one
/// layer over `base` (bottom first), commits it in `compression` and installs its snapshot.
pub fn squash(
    store: &Store,
    base: &[PathBuf],
    new: &[PathBuf],
    compression: Compression,
    opts: &PackOptions,
) -> Result<LayerBlob, ExportError> {
    let scratch = store
        .snapshots
        .scratch()
        .map_err(|e| ExportError::Path { path: store.root().join("tmp"), message: e.to_string() })?;
    let top_first: Vec<PathBuf> = base.iter().rev().cloned().collect();
    apply_layers(new, &scratch.upper(), Placement::Link, Deletions::KeepOver(&top_first))?;
    let blob = layer::commit_layer(&store.blobs, &scratch.upper(), &top_first, compression, opts)
        .map_err(|source| ExportError::Layer { digest: crate::digest::Digest::of(b""), source })?;
    store
        .snapshots
        .install(&scratch.upper(), &blob.diff_id)
        .map_err(|e| ExportError::Path { path: scratch.upper(), message: e.to_string() })?;
    Ok(blob)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn whiteout(p: &Path) {
        rustix::fs::mknodat(CWD, p, FileType::CharacterDevice, Mode::empty(), 0).unwrap();
    }

    /// base: /a/x, /a/y, /b (file), /l -> /etc, /keep. l1: /a/z, deletes /a/x, /c/new. l2: /a opaque
    /// with /a/only, /b replaced by a dir, /c/new deleted (made in l1), /l replaced by a dir.
    fn layers(root: &Path) -> (PathBuf, PathBuf, PathBuf) {
        let (base, l1, l2) = (root.join("base"), root.join("l1"), root.join("l2"));
        for d in [base.join("a"), l1.join("a"), l1.join("c"), l2.join("a"), l2.join("b"), l2.join("c"), l2.join("l")] {
            fs::create_dir_all(d).unwrap();
        }
        fs::write(base.join("a/x"), b"x").unwrap();
        fs::write(base.join("a/y"), b"y").unwrap();
        fs::write(base.join("b"), b"b").unwrap();
        fs::write(base.join("keep"), b"keep").unwrap();
        symlink("/etc", base.join("l")).unwrap();
        fs::write(l1.join("a/z"), b"z").unwrap();
        whiteout(&l1.join("a/x"));
        fs::write(l1.join("c/new"), b"new").unwrap();
        rustix::fs::lsetxattr(l2.join("a").as_path(), OPAQUE_XATTR, b"y", XattrFlags::empty()).unwrap();
        fs::write(l2.join("a/only"), b"only").unwrap();
        fs::write(l2.join("b/inside"), b"inside").unwrap();
        whiteout(&l2.join("c/new"));
        fs::write(l2.join("l/passwd"), b"not the host's").unwrap();
        fs::set_permissions(l2.join("b"), fs::Permissions::from_mode(0o750)).unwrap();
        (base, l1, l2)
    }

    fn tree(root: &Path) -> Vec<String> {
        let mut out = Vec::new();
        for e in walkdir::WalkDir::new(root).min_depth(1).sort_by_file_name() {
            let e = e.unwrap();
            let rel = e.path().strip_prefix(root).unwrap().display().to_string();
            let md = e.path().symlink_metadata().unwrap();
            let kind = if md.is_dir() {
                "dir".to_string()
            } else if md.file_type().is_symlink() {
                format!("-> {}", fs::read_link(e.path()).unwrap().display())
            } else if overlay::is_whiteout(&md) {
                "whiteout".to_string()
            } else {
                String::from_utf8(fs::read(e.path()).unwrap()).unwrap()
            };
            out.push(format!("{rel} {kind}"));
        }
        out
    }

    #[test]
    fn the_root_filesystem_has_every_deletion_applied() {
        let dir = tempfile::tempdir().unwrap();
        let (base, l1, l2) = layers(dir.path());
        let dest = dir.path().join("out");
        apply_layers(&[base, l1, l2], &dest, Placement::Copy, Deletions::Apply).unwrap();
        assert_eq!(
            tree(&dest),
            [
                "a dir",
                "a/only only",
                "b dir",
                "b/inside inside",
                "c dir",
                "keep keep",
                "l dir",
                "l/passwd not the host's"
            ]
        );
        assert_eq!(fs::metadata(dest.join("b")).unwrap().permissions().mode() & 0o7777, 0o750);
        assert_ne!(fs::read("/etc/passwd").unwrap(), b"not the host's", "nothing was written through the symlink");
    }

    #[test]
    fn squashing_keeps_only_the_deletions_the_base_needs() {
        let dir = tempfile::tempdir().unwrap();
        let (base, l1, l2) = layers(dir.path());
        let dest = dir.path().join("squashed");
        let base_top_first = [base.clone()];
        apply_layers(&[l1, l2.clone()], &dest, Placement::Link, Deletions::KeepOver(&base_top_first)).unwrap();
        // /c/new never existed in the base: no whiteout; /a is opaque over the base's /a.
        assert_eq!(
            tree(&dest),
            ["a dir", "a/only only", "b dir", "b/inside inside", "c dir", "l dir", "l/passwd not the host's"]
        );
        assert!(overlay::is_opaque(&overlay::read_xattrs(&dest.join("a")).unwrap()));
        assert_eq!(
            fs::metadata(dest.join("a/only")).unwrap().ino(),
            fs::metadata(l2.join("a/only")).unwrap().ino(),
            "files are linked, not copied"
        );
        // A deletion of a base file is kept as a whiteout.
        let l3 = dir.path().join("l3");
        fs::create_dir(&l3).unwrap();
        whiteout(&l3.join("keep"));
        let dest2 = dir.path().join("squashed2");
        apply_layers(&[l3], &dest2, Placement::Link, Deletions::KeepOver(&base_top_first)).unwrap();
        assert_eq!(tree(&dest2), ["keep whiteout"]);
    }

    #[test]
    fn squashed_layers_commit_over_the_base() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("root")).unwrap();
        let (base, l1, l2) = layers(dir.path());
        let blob = squash(&store, &[base], &[l1, l2], Compression::Gzip, &PackOptions::default()).unwrap();
        let listing = {
            let f = store.blobs.open_blob(&blob.descriptor.digest).unwrap();
            let mut tar = crate::layer::tar_read::TarReader::new(flate2::read::GzDecoder::new(f));
            let mut names = Vec::new();
            while let Some(e) = tar.next_entry().unwrap() {
                names.push(e.display_name());
            }
            names
        };
        assert_eq!(
            listing,
            ["a/", "a/.wh..wh..opq", "a/only", "b/", "b/inside", "c/", "l/", "l/passwd"],
            "the base's /b file and /l link are replaced, /a hides the base's entries"
        );
        assert!(store.snapshots.contains(&blob.diff_id));
    }
}
