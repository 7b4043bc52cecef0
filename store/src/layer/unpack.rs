//! Unpacking: layer blobs into snapshots (overlay upper format), and plain archives into
//! directories (ADD of a local archive, `strata import` of a rootfs tar).
//!
//! Confinement is the first job: nothing is created, changed or written outside `dest`.
//! - Entry names are cleaned (`.`/empty components dropped); a relative name whose `..` climbs
//!   above the root is refused (moby's "breakout" check); in an absolute name `..` stops at
//!   the root, as Go's `filepath.Join(dest, name)` does. Hard link targets follow the same rules.
//! - Parent directories are opened with `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`:
//!   symlinks met on the way (including ones the archive itself created) resolve as if `dest`
//!   were `/`, so they cannot lead out. The final component is never followed: whatever is there
//!   is removed first (a directory with its whole tree, unless the new entry is a directory too,
//!   which is then merged, as Docker does), and new files are created with `O_EXCL|O_NOFOLLOW`.
//!   Every change is made through a descriptor or `*at` call with `AT_SYMLINK_NOFOLLOW`.
//! - Symlink targets are data and are stored as they are.
//!
//! Then metadata, in the order that keeps it: data, owner (`chown` clears setuid and file
//! capabilities), xattrs, mode, times; directories' times are set last, deepest first, once
//! nothing more is created in them. Overlay's own xattrs (`trusted.overlay.*`,
//! `user.overlay.*`) are never taken from an archive: only `.wh..wh..opq` may make a directory
//! opaque. An entry for the archive root (`./`) is skipped, as moby does.
//!
//! [`unpack_layer`] converts whiteouts to overlay's format: `.wh.NAME` becomes a char device 0/0
//! named NAME (mode 0, root-owned like the kernel's, with the entry's mtime), `.wh..wh..opq` sets
//! `trusted.overlay.opaque=y` on its directory (`user.overlay.opaque=y` when running rootless,
//! see [`overlay::opaque_xattr`]), other `.wh..wh.*` names (aufs metadata) are
//! ignored. Parent directories missing from a layer (differs leave out unchanged ones) are
//! created with the metadata the lower layers show for them, or 0755 root:root.
//! Rootless (in a user namespace), device nodes, which cannot be made there, are left out, as
//! containerd does. [`extract_archive`] keeps whiteout names as plain files and can override owners.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rustix::fs::Mode as Perm;
use rustix::fs::{AtFlags, FileType, OFlags, ResolveFlags, Timespec, Timestamps, XattrFlags};
use rustix::io::Errno;

use super::LayerError;
use super::compress::{self, ArchiveKind};
use super::overlay;
use super::tar_read::{Entry, Kind, TarReader};
use crate::digest::{Digest, HashingReader};
use crate::oci::Compression;

/// How to unpack a layer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnpackOptions {
    /// The layer directories below this one (top-most first): parent directories the layer
    /// does not contain are created with the metadata these show.
    pub lowers: Vec<PathBuf>,
    /// The blob's digest (from its descriptor), checked after unpacking.
    pub expected_digest: Option<Digest>,
    /// The blob's size (from its descriptor), checked after unpacking.
    pub expected_size: Option<u64>,
    /// The diff_id (from the image config), checked after unpacking.
    pub expected_diff_id: Option<Digest>,
}

/// How to extract a plain archive.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtractOptions {
    /// Owner (uid, gid) for every entry instead of the archive's (ADD --chown).
    pub owner: Option<(u32, u32)>,
}

/// What an extraction did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtractStats {
    /// Entries applied (whiteouts and skipped entries included).
    pub entries: u64,
    /// Bytes of file data written.
    pub bytes: u64,
}

/// Unpacks a layer blob stream into `dest` (an empty directory) in overlay upper format and
/// returns the diff_id computed while reading. `compression` comes from the media type; the
/// blob's magic bytes must agree. The blob is read to its end, so the digest and size checks
/// in `opts` cover every byte. On error, `dest` holds a partial layer and should be discarded.
pub fn unpack_layer<R: Read>(
    blob: R,
    compression: Compression,
    dest: &Path,
    opts: &UnpackOptions,
) -> Result<Digest, LayerError> {
    let mut raw = HashingReader::new(blob);
    let diff_id = {
        let mut buffered = BufReader::with_capacity(256 * 1024, &mut raw);
        let head = buffered.fill_buf().map_err(|e| LayerError::io("reading the layer blob", e))?;
        if head.is_empty() {
            return Err(LayerError::Truncated { offset: 0, entry: None });
        }
        compress::check_layer_magic(head, compression)?;
        let decoded = compress::layer_decoder(buffered, compression)?;
        let mut hashed = HashingReader::new(decoded);
        let mut tar = TarReader::new(&mut hashed);
        let mut x = Extractor::new(dest, Flavor::Layer, &opts.lowers, None)?;
        x.run(&mut tar)?;
        tar.drain()?;
        hashed.finish().1
    };
    io::copy(&mut raw, &mut io::sink()).map_err(|e| LayerError::io("reading the end of the layer blob", e))?;
    let (_, digest, size) = raw.finish();
    if let Some(expected) = &opts.expected_size
        && *expected != size
    {
        return Err(LayerError::SizeMismatch { expected: *expected, actual: size });
    }
    if let Some(expected) = &opts.expected_digest
        && *expected != digest
    {
        return Err(LayerError::DigestMismatch { what: "blob digest", expected: expected.clone(), actual: digest });
    }
    if let Some(expected) = &opts.expected_diff_id
        && *expected != diff_id
    {
        return Err(LayerError::DigestMismatch { what: "diff_id", expected: expected.clone(), actual: diff_id });
    }
    Ok(diff_id)
}

/// Extracts a tar (plain, gzip or zstd, detected from its first bytes) into `dest`, which may
/// already hold files. Whiteout names are not converted. bzip2 and xz give
/// [`LayerError::Unsupported`].
pub fn extract_archive<R: Read>(reader: R, dest: &Path, opts: &ExtractOptions) -> Result<ExtractStats, LayerError> {
    let mut buffered = BufReader::with_capacity(256 * 1024, reader);
    let head = buffered.fill_buf().map_err(|e| LayerError::io("reading the archive", e))?;
    // No compression magic: parse as a tar, whose reader reports a clear error if it is not one.
    let kind = match compress::sniff_archive(head) {
        Some(k) => k,
        None => ArchiveKind::Tar,
    };
    let decoded = compress::decoder(buffered, kind)?;
    let mut tar = TarReader::new(decoded);
    let mut x = Extractor::new(dest, Flavor::Plain, &[], opts.owner)?;
    x.run(&mut tar)?;
    Ok(x.stats)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Flavor {
    /// Overlay upper format: whiteouts converted.
    Layer,
    /// Plain extraction.
    Plain,
}

/// A cleaned relative path, as components.
type Comps = Vec<Vec<u8>>;

/// Cleans an archive path. `..` above the root is an error for relative names and is dropped
/// for absolute ones (Go's `filepath.Clean` of a rooted path).
fn clean(name: &[u8]) -> Result<Comps, String> {
    let absolute = name.starts_with(b"/");
    let mut out: Comps = Vec::new();
    for c in name.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                if out.pop().is_none() && !absolute {
                    return Err("path escapes the destination directory".into());
                }
            }
            c if c.contains(&0) => return Err("path contains a NUL byte".into()),
            c => out.push(c.to_vec()),
        }
    }
    Ok(out)
}

fn join(comps: &[Vec<u8>]) -> PathBuf {
    PathBuf::from(OsString::from_vec(comps.join(&b'/')))
}

fn errno(e: Errno) -> io::Error {
    io::Error::from_raw_os_error(e.raw_os_error())
}

fn ts(sec: i64, nsec: u32) -> Timespec {
    Timespec { tv_sec: sec, tv_nsec: i64::from(nsec) }
}

struct Extractor<'a> {
    root: OwnedFd,
    flavor: Flavor,
    lowers: &'a [PathBuf],
    owner: Option<(u32, u32)>,
    /// Directory times to set at the end, by path.
    dir_times: BTreeMap<Comps, Timespec>,
    stats: ExtractStats,
    buf: Vec<u8>,
    /// The current entry's name, for errors.
    entry: String,
}

impl<'a> Extractor<'a> {
    fn new(dest: &Path, flavor: Flavor, lowers: &'a [PathBuf], owner: Option<(u32, u32)>) -> Result<Self, LayerError> {
        let root = rustix::fs::open(dest, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Perm::empty())
            .map_err(|e| LayerError::io(format!("opening the destination {}", dest.display()), errno(e)))?;
        Ok(Extractor {
            root,
            flavor,
            lowers,
            owner,
            dir_times: BTreeMap::new(),
            stats: ExtractStats::default(),
            buf: vec![0u8; 256 * 1024],
            entry: String::new(),
        })
    }

    fn fail(&self, reason: impl Into<String>) -> LayerError {
        LayerError::Entry { entry: self.entry.clone(), reason: reason.into() }
    }

    fn fail_io(&self, context: impl Into<String>, e: impl Into<io::Error>) -> LayerError {
        LayerError::EntryIo { entry: self.entry.clone(), context: context.into(), source: e.into() }
    }

    fn run<R: Read>(&mut self, tar: &mut TarReader<R>) -> Result<(), LayerError> {
        while let Some(e) = tar.next_entry()? {
            self.entry = e.display_name();
            self.stats.entries += 1;
            self.apply(&e, tar)?;
        }
        self.set_dir_times()
    }

    /// Opens a directory below the root, resolving symlinks inside the root.
    fn open_dir(&self, comps: &[Vec<u8>]) -> Result<OwnedFd, Errno> {
        let path = if comps.is_empty() { PathBuf::from(".") } else { join(comps) };
        rustix::fs::openat2(
            &self.root,
            &path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Perm::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        )
    }

    /// Opens the parent directory `comps`, creating missing directories.
    fn ensure_dir(&mut self, comps: &[Vec<u8>]) -> Result<OwnedFd, LayerError> {
        match self.open_dir(comps) {
            Ok(fd) => return Ok(fd),
            Err(Errno::NOENT) => {}
            Err(Errno::NOTDIR) => {
                return Err(self.fail(format!("a parent of this entry ({}) is not a directory", join(comps).display())));
            }
            Err(e) => {
                return Err(self.fail_io(format!("opening the parent directory {}", join(comps).display()), errno(e)));
            }
        }
        let mut fd = self.open_dir(&[]).map_err(|e| self.fail_io("opening the destination", errno(e)))?;
        for i in 0..comps.len() {
            match self.open_dir(&comps[..=i]) {
                Ok(next) => {
                    fd = next;
                    continue;
                }
                Err(Errno::NOENT) => {}
                Err(e) => {
                    return Err(self.fail_io(format!("opening {}", join(&comps[..=i]).display()), errno(e)));
                }
            }
            let name = &comps[i];
            match rustix::fs::mkdirat(&fd, name.as_slice(), Perm::from_raw_mode(0o755)) {
                Ok(()) => {}
                Err(Errno::EXIST) => {
                    return Err(self
                        .fail(format!("parent {} is a symlink to a missing directory", join(&comps[..=i]).display())));
                }
                Err(e) => return Err(self.fail_io(format!("creating {}", join(&comps[..=i]).display()), errno(e))),
            }
            let child = rustix::fs::openat(
                &fd,
                name.as_slice(),
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Perm::empty(),
            )
            .map_err(|e| self.fail_io(format!("opening {}", join(&comps[..=i]).display()), errno(e)))?;
            self.implicit_dir_metadata(&child, &comps[..=i])?;
            fd = child;
        }
        Ok(fd)
    }

    /// Gives a directory the layer did not contain the metadata the lowers show for it.
    fn implicit_dir_metadata(&mut self, fd: &OwnedFd, comps: &[Vec<u8>]) -> Result<(), LayerError> {
        if self.flavor != Flavor::Layer || self.lowers.is_empty() {
            return Ok(());
        }
        let found = overlay::lookup_lower(self.lowers, &join(comps))
            .map_err(|e| self.fail_io(format!("looking up {} in the lower layers", join(comps).display()), e))?;
        let Some((lpath, md)) = found else { return Ok(()) };
        if !md.is_dir() {
            return Err(self.fail(format!(
                "parent {} is not a directory in the lower layers (writing through a lower symlink is not supported)",
                join(comps).display()
            )));
        }
        rustix::fs::fchown(fd, Some(uid(md.uid())), Some(gid(md.gid())))
            .map_err(|e| self.fail_io("setting the owner of a parent directory", errno(e)))?;
        let xattrs =
            overlay::read_xattrs(&lpath).map_err(|e| self.fail_io("reading xattrs of a lower directory", e))?;
        for (k, v) in overlay::content_xattrs(&xattrs) {
            rustix::fs::fsetxattr(fd, k.as_slice(), &v, XattrFlags::empty())
                .map_err(|e| self.fail_io("setting xattrs of a parent directory", errno(e)))?;
        }
        rustix::fs::fchmod(fd, Perm::from_raw_mode(md.mode() & 0o7777))
            .map_err(|e| self.fail_io("setting the mode of a parent directory", errno(e)))?;
        self.dir_times.insert(comps.to_vec(), ts(md.mtime(), md.mtime_nsec() as u32));
        Ok(())
    }

    /// Removes whatever is at `name` in `dir` (a directory with its contents).
    fn remove_existing(&self, dir: BorrowedFd<'_>, name: &[u8], keep_dir: bool) -> Result<bool, LayerError> {
        let st = match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::NOENT) => return Ok(false),
            Err(e) => return Err(self.fail_io("checking for an existing entry", errno(e))),
        };
        let is_dir = FileType::from_raw_mode(st.st_mode) == FileType::Directory;
        if is_dir && keep_dir {
            return Ok(true);
        }
        let r = if is_dir { remove_tree(dir, name) } else { rustix::fs::unlinkat(dir, name, AtFlags::empty()) };
        r.map_err(|e| self.fail_io("removing the existing entry it replaces", errno(e)))?;
        Ok(false)
    }

    fn ids(&self, e: &Entry) -> Result<(rustix::fs::Uid, rustix::fs::Gid), LayerError> {
        if let Some((u, g)) = self.owner {
            return Ok((uid(u), gid(g)));
        }
        match (u32::try_from(e.uid), u32::try_from(e.gid)) {
            (Ok(u), Ok(g)) if u != u32::MAX && g != u32::MAX => Ok((uid(u), gid(g))),
            _ => Err(self.fail(format!("owner {}:{} is out of range", e.uid, e.gid))),
        }
    }

    fn apply<R: Read>(&mut self, e: &Entry, tar: &mut TarReader<R>) -> Result<(), LayerError> {
        let comps = clean(&e.name).map_err(|r| self.fail(r))?;
        let Some((base, parent)) = comps.split_last() else {
            return Ok(()); // The archive root ("./"): skipped, as moby does.
        };
        let parent_fd = self.ensure_dir(parent)?;

        if self.flavor == Flavor::Layer && base.starts_with(b".wh.") {
            if base == b".wh..wh..opq" {
                if !parent.is_empty() {
                    rustix::fs::fsetxattr(&parent_fd, overlay::opaque_xattr(), b"y", XattrFlags::empty())
                        .map_err(|err| self.fail_io("marking the directory opaque", errno(err)))?;
                }
                return Ok(());
            }
            if base.starts_with(b".wh..wh.") {
                return Ok(()); // aufs metadata (.wh..wh.plnk, .wh..wh.aufs)
            }
            let name = &base[4..];
            if name.is_empty() || name == b"." || name == b".." {
                return Err(self.fail("whiteout without a name"));
            }
            self.remove_existing(parent_fd.as_fd(), name, false)?;
            rustix::fs::mknodat(&parent_fd, name, FileType::CharacterDevice, Perm::from_raw_mode(0), 0)
                .map_err(|err| self.fail_io("creating the whiteout device", errno(err)))?;
            // Whiteouts look like the kernel's (mode 0, root) whatever the archive says; only the
            // mtime is kept, so packing the snapshot again gives the same entry.
            let mut wh = e.clone();
            wh.mode = 0;
            wh.xattrs.clear();
            self.finish_node(&parent_fd, name, &wh, uid(0), gid(0), false)?;
            return Ok(());
        }

        let merged_dir = self.remove_existing(parent_fd.as_fd(), base, e.kind == Kind::Directory)?;
        let (u, g) = self.ids(e)?;
        let base = base.as_slice();
        match e.kind {
            Kind::Directory => {
                if !merged_dir {
                    rustix::fs::mkdirat(&parent_fd, base, Perm::from_raw_mode(0o700))
                        .map_err(|err| self.fail_io("creating the directory", errno(err)))?;
                }
                let fd = rustix::fs::openat(
                    &parent_fd,
                    base,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Perm::empty(),
                )
                .map_err(|err| self.fail_io("opening the directory", errno(err)))?;
                self.finish_fd(&fd, e, u, g)?;
                self.dir_times.insert(comps.clone(), ts(e.mtime, e.mtime_nsec));
            }
            Kind::Regular => {
                let fd = rustix::fs::openat(
                    &parent_fd,
                    base,
                    OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Perm::from_raw_mode(0o600),
                )
                .map_err(|err| self.fail_io("creating the file", errno(err)))?;
                let mut file = File::from(fd);
                loop {
                    let n = tar.read_data(&mut self.buf)?;
                    if n == 0 {
                        break;
                    }
                    file.write_all(&self.buf[..n]).map_err(|err| self.fail_io("writing the file", err))?;
                    self.stats.bytes += n as u64;
                }
                let fd = OwnedFd::from(file);
                self.finish_fd(&fd, e, u, g)?;
                rustix::fs::futimens(
                    &fd,
                    &Timestamps {
                        last_access: ts(e.mtime, e.mtime_nsec),
                        last_modification: ts(e.mtime, e.mtime_nsec),
                    },
                )
                .map_err(|err| self.fail_io("setting times", errno(err)))?;
            }
            Kind::Symlink => {
                rustix::fs::symlinkat(e.linkname.as_slice(), &parent_fd, base)
                    .map_err(|err| self.fail_io("creating the symlink", errno(err)))?;
                self.finish_node(&parent_fd, base, e, u, g, true)?;
            }
            Kind::HardLink => {
                let target = clean(&e.linkname).map_err(|r| self.fail(format!("hard link target: {r}")))?;
                let Some((tbase, tparent)) = target.split_last() else {
                    return Err(self.fail("hard link to the archive root"));
                };
                let tdir = match self.open_dir(tparent) {
                    Ok(fd) => fd,
                    Err(Errno::NOENT | Errno::NOTDIR) => {
                        return Err(self.fail(format!(
                            "hard link target {:?} does not exist",
                            String::from_utf8_lossy(&e.linkname)
                        )));
                    }
                    Err(err) => return Err(self.fail_io("opening the hard link target's directory", errno(err))),
                };
                match rustix::fs::linkat(&tdir, tbase.as_slice(), &parent_fd, base, AtFlags::empty()) {
                    Ok(()) => {}
                    Err(Errno::NOENT) => {
                        return Err(self.fail(format!(
                            "hard link target {:?} does not exist",
                            String::from_utf8_lossy(&e.linkname)
                        )));
                    }
                    Err(Errno::PERM) => {
                        return Err(self.fail(format!(
                            "hard link target {:?} is a directory",
                            String::from_utf8_lossy(&e.linkname)
                        )));
                    }
                    Err(err) => return Err(self.fail_io("creating the hard link", errno(err))),
                }
                // Like containerd, a link's header metadata is applied to the (shared) inode.
                let st = rustix::fs::statat(&parent_fd, base, AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(|err| self.fail_io("checking the hard link", errno(err)))?;
                let ft = FileType::from_raw_mode(st.st_mode);
                if self.flavor == Flavor::Layer && ft == FileType::CharacterDevice && st.st_rdev == 0 {
                    // A link to a whiteout is a whiteout of its own, with a whiteout's metadata.
                    rustix::fs::unlinkat(&parent_fd, base, AtFlags::empty())
                        .map_err(|err| self.fail_io("replacing a link to a whiteout", errno(err)))?;
                    rustix::fs::mknodat(&parent_fd, base, FileType::CharacterDevice, Perm::from_raw_mode(0), 0)
                        .map_err(|err| self.fail_io("creating the whiteout device", errno(err)))?;
                    let mut wh = e.clone();
                    wh.mode = 0;
                    wh.xattrs.clear();
                    return self.finish_node(&parent_fd, base, &wh, uid(0), gid(0), false);
                }
                let is_symlink = ft == FileType::Symlink;
                let mut no_xattrs = e.clone();
                no_xattrs.xattrs.clear();
                self.finish_node(&parent_fd, base, &no_xattrs, u, g, is_symlink)?;
            }
            Kind::Char | Kind::Block | Kind::Fifo => {
                let (ft, dev) = match e.kind {
                    Kind::Char => (FileType::CharacterDevice, rustix::fs::makedev(e.devmajor, e.devminor)),
                    Kind::Block => (FileType::BlockDevice, rustix::fs::makedev(e.devmajor, e.devminor)),
                    _ => (FileType::Fifo, 0),
                };
                match rustix::fs::mknodat(&parent_fd, base, ft, Perm::from_raw_mode(0o600), dev) {
                    // In a user namespace (rootless) device nodes cannot be made; containerd's
                    // unpacker leaves them out there too.
                    Err(Errno::PERM)
                        if ft != FileType::Fifo && overlay::opaque_xattr() == overlay::USER_OPAQUE_XATTR =>
                    {
                        return Ok(());
                    }
                    r => r.map_err(|err| self.fail_io("creating the device node", errno(err)))?,
                }
                self.finish_node(&parent_fd, base, e, u, g, false)?;
            }
            Kind::Other(flag) => {
                return Err(LayerError::Unsupported(format!(
                    "tar entry {:?} has type {:?}, which strata does not extract",
                    self.entry, flag as char
                )));
            }
        }
        Ok(())
    }

    /// Owner, xattrs and mode of an open file or directory.
    fn finish_fd(&self, fd: &OwnedFd, e: &Entry, u: rustix::fs::Uid, g: rustix::fs::Gid) -> Result<(), LayerError> {
        rustix::fs::fchown(fd, Some(u), Some(g)).map_err(|err| self.fail_io("setting the owner", errno(err)))?;
        for (k, v) in &e.xattrs {
            if overlay::is_internal_xattr(k) {
                continue;
            }
            match rustix::fs::fsetxattr(fd, k.as_slice(), v, XattrFlags::empty()) {
                Ok(()) | Err(Errno::NOTSUP) => {}
                Err(err) => {
                    return Err(self.fail_io(format!("setting xattr {}", String::from_utf8_lossy(k)), errno(err)));
                }
            }
        }
        rustix::fs::fchmod(fd, Perm::from_raw_mode(e.mode & 0o7777))
            .map_err(|err| self.fail_io("setting the mode", errno(err)))
    }

    /// Owner, xattrs, mode and times of a node that cannot be opened for writing (symlinks,
    /// devices, fifos, whiteouts), by name in its parent without following it.
    fn finish_node(
        &self,
        parent: &OwnedFd,
        name: &[u8],
        e: &Entry,
        u: rustix::fs::Uid,
        g: rustix::fs::Gid,
        is_symlink: bool,
    ) -> Result<(), LayerError> {
        rustix::fs::chownat(parent, name, Some(u), Some(g), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|err| self.fail_io("setting the owner", errno(err)))?;
        if !e.xattrs.is_empty() {
            // lsetxattr through our own descriptor of the parent: the last component is not
            // followed, and the parent is the directory we resolved inside the root.
            let mut p = format!("/proc/self/fd/{}/", parent.as_raw_fd()).into_bytes();
            p.extend_from_slice(name);
            let p = PathBuf::from(OsString::from_vec(p));
            for (k, v) in &e.xattrs {
                if overlay::is_internal_xattr(k) {
                    continue;
                }
                match rustix::fs::lsetxattr(&p, k.as_slice(), v, XattrFlags::empty()) {
                    // user.* xattrs are not allowed on symlinks and devices.
                    Ok(()) | Err(Errno::NOTSUP) | Err(Errno::PERM) => {}
                    Err(err) => {
                        return Err(self.fail_io(format!("setting xattr {}", String::from_utf8_lossy(k)), errno(err)));
                    }
                }
            }
        }
        if !is_symlink {
            // The node was just created by us in a directory only we write to; fchmodat cannot
            // skip following, but it is not a symlink.
            rustix::fs::chmodat(parent, name, Perm::from_raw_mode(e.mode & 0o7777), AtFlags::empty())
                .map_err(|err| self.fail_io("setting the mode", errno(err)))?;
        }
        let t = ts(e.mtime, e.mtime_nsec);
        rustix::fs::utimensat(
            parent,
            name,
            &Timestamps { last_access: t, last_modification: t },
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|err| self.fail_io("setting times", errno(err)))
    }

    /// Sets directory times, deepest first, after everything has been created in them.
    fn set_dir_times(&mut self) -> Result<(), LayerError> {
        let mut dirs: Vec<_> = std::mem::take(&mut self.dir_times).into_iter().collect();
        dirs.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        for (comps, t) in dirs {
            let fd = match rustix::fs::openat2(
                &self.root,
                join(&comps),
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Perm::empty(),
                ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
            ) {
                Ok(fd) => fd,
                // Replaced by a later entry, or removed by one.
                Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => continue,
                Err(err) => {
                    return Err(LayerError::io(
                        format!("opening {} to set its times", join(&comps).display()),
                        errno(err),
                    ));
                }
            };
            rustix::fs::futimens(&fd, &Timestamps { last_access: t, last_modification: t }).map_err(|err| {
                LayerError::io(format!("setting the times of {}", join(&comps).display()), errno(err))
            })?;
        }
        Ok(())
    }
}

fn uid(u: u32) -> rustix::fs::Uid {
    rustix::fs::Uid::from_raw(u)
}

fn gid(g: u32) -> rustix::fs::Gid {
    rustix::fs::Gid::from_raw(g)
}

/// Removes a directory and everything in it, never following symlinks.
fn remove_tree(parent: BorrowedFd<'_>, name: &[u8]) -> Result<(), Errno> {
    let fd = rustix::fs::openat(
        parent,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Perm::empty(),
    )?;
    let mut children = Vec::new();
    for entry in rustix::fs::Dir::read_from(&fd)? {
        let entry = entry?;
        let n = entry.file_name().to_bytes();
        if n != b"." && n != b".." {
            children.push((n.to_vec(), entry.file_type()));
        }
    }
    for (child, ft) in children {
        let is_dir = if ft == FileType::Unknown {
            let st = rustix::fs::statat(&fd, child.as_slice(), AtFlags::SYMLINK_NOFOLLOW)?;
            FileType::from_raw_mode(st.st_mode) == FileType::Directory
        } else {
            ft == FileType::Directory
        };
        if is_dir {
            remove_tree(fd.as_fd(), &child)?;
        } else {
            rustix::fs::unlinkat(&fd, child.as_slice(), AtFlags::empty())?;
        }
    }
    rustix::fs::unlinkat(parent, name, AtFlags::REMOVEDIR)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleaning_paths() {
        let c = |s: &str| {
            clean(s.as_bytes()).map(|v| v.iter().map(|c| String::from_utf8(c.clone()).unwrap()).collect::<Vec<_>>())
        };
        assert_eq!(c("./a//b/./c/").unwrap(), ["a", "b", "c"]);
        assert_eq!(c("a/../b").unwrap(), ["b"]);
        assert!(c("../x").is_err());
        assert!(c("a/../../x").is_err());
        assert_eq!(c("/etc/passwd").unwrap(), ["etc", "passwd"]);
        assert_eq!(c("/../../etc").unwrap(), ["etc"], "rooted paths stop at the root");
        assert!(c("./").unwrap().is_empty());
    }
}
