//! The destination side of a copy: creating entries and giving them BuildKit's metadata.
//!
//! Follows fsutil's `copier` (BuildKit 0.13):
//! - an existing file, symlink or special file at a target is replaced; an existing directory
//!   is merged into, and a non-directory where a directory must go is an error;
//! - every copied entry gets the source's owner (or the `--chown` owner, or 0:0 for the build
//!   context), mode (or the `--chmod` mode, all 12 bits, for everything but symlinks),
//!   access and modification times, and extended attributes (a failure to set one is logged
//!   and ignored, as BuildKit does). Order: owner, mode, times, xattrs; owner first because
//!   `chown` clears setuid bits and file capabilities;
//! - regular files that are hard links of each other within one copied source stay hard
//!   links of each other;
//! - device nodes are recreated with `mknod`; a *block* device comes out as a *character*
//!   device with the same numbers, which is what BuildKit 0.13 produces (verified, see the
//!   module tests).
//!
//! All operations are relative to open directory descriptors and never follow a symlink, so
//! they cannot leave the destination tree. Siblings are copied in parallel on the rayon pool
//! and a directory's own metadata is set after its children, so its mtime survives them.
//! File data is cloned (`FICLONE`) when the filesystems allow it, else copied with
//! `copy_file_range` (via `std::io::copy`), else read and written.

use std::collections::HashMap;
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, PoisonError};

use rayon::prelude::*;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timespec, Timestamps, XattrFlags};
use rustix::io::Errno;

use super::chmod::SymbolicMode;
use super::resolve::{self, Root, gid_of, open_beneath, uid_of};
use super::tree::{Kind, Meta, Node, child_path, show};
use super::{CopyError, CopyStats};

/// How copied entries are owned and moded.
#[derive(Debug, Clone)]
pub(crate) struct Attrs {
    /// `--chown`.
    pub owner: Option<(u32, u32)>,
    /// Source owners are replaced by 0:0 (the build context).
    pub reset_owner: bool,
    /// `--chmod`.
    pub mode: Option<ModeChange>,
}

/// A `--chmod` value.
#[derive(Debug, Clone)]
pub(crate) enum ModeChange {
    /// Octal: replaces all 12 bits.
    Octal(u32),
    /// Symbolic: applied to each entry's own mode.
    Symbolic(SymbolicMode),
}

/// Where the primary copy of a hard-linked inode is.
enum Link {
    Pending,
    Done(Vec<u8>),
    Failed,
}

/// State shared by everything one copied source writes.
pub(crate) struct Writer<'a> {
    attrs: Attrs,
    dest_root: &'a Root,
    links: Mutex<HashMap<(u64, u64), Link>>,
    link_done: Condvar,
    try_clone: AtomicBool,
    files: AtomicU64,
    dirs: AtomicU64,
    symlinks: AtomicU64,
    hardlinks: AtomicU64,
    specials: AtomicU64,
    bytes: AtomicU64,
}

impl<'a> Writer<'a> {
    pub(crate) fn new(attrs: Attrs, dest_root: &'a Root) -> Writer<'a> {
        Writer {
            attrs,
            dest_root,
            links: Mutex::new(HashMap::new()),
            link_done: Condvar::new(),
            try_clone: AtomicBool::new(true),
            files: AtomicU64::new(0),
            dirs: AtomicU64::new(0),
            symlinks: AtomicU64::new(0),
            hardlinks: AtomicU64::new(0),
            specials: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
        }
    }

    pub(crate) fn add_stats_to(&self, stats: &mut CopyStats) {
        stats.files += self.files.load(Ordering::Relaxed);
        stats.dirs += self.dirs.load(Ordering::Relaxed);
        stats.symlinks += self.symlinks.load(Ordering::Relaxed);
        stats.hardlinks += self.hardlinks.load(Ordering::Relaxed);
        stats.specials += self.specials.load(Ordering::Relaxed);
        stats.bytes += self.bytes.load(Ordering::Relaxed);
    }

    fn owner(&self, m: &Meta) -> (u32, u32) {
        match self.attrs.owner {
            Some(o) => o,
            None if self.attrs.reset_owner => (0, 0),
            None => (m.uid, m.gid),
        }
    }

    fn mode(&self, m: &Meta) -> Mode {
        let perm = match &self.attrs.mode {
            None => m.perm,
            Some(ModeChange::Octal(o)) => *o,
            Some(ModeChange::Symbolic(s)) => s.apply(m.perm, m.kind == Kind::Dir),
        };
        Mode::from_raw_mode(perm & 0o7777)
    }

    /// Copies `nodes`, the children of the source directory `src`, into the destination
    /// directory `dst` (at `path` in the destination), in parallel.
    pub(crate) fn children(
        &self,
        src: BorrowedFd<'_>,
        dst: BorrowedFd<'_>,
        path: &[u8],
        nodes: &[Node],
    ) -> Result<(), CopyError> {
        nodes.par_iter().try_for_each(|n| self.entry(src, dst, &child_path(path, &n.name), n))
    }

    /// Copies one entry below the top of the copy (BuildKit's "overwrite target metadata":
    /// an existing directory gets the source's metadata too).
    fn entry(&self, src: BorrowedFd<'_>, dst: BorrowedFd<'_>, path: &[u8], n: &Node) -> Result<(), CopyError> {
        if n.meta.kind == Kind::Dir {
            let created = self.ensure_dir(dst, &n.name, path)?;
            let s = open_beneath(src, &n.name, OFlags::RDONLY).map_err(|e| CopyError::io("open", show(path), e))?;
            let d = open_beneath(dst, &n.name, OFlags::RDONLY).map_err(|e| CopyError::io("open", show(path), e))?;
            self.children(s.as_fd(), d.as_fd(), path, &n.children)?;
            if created {
                self.dirs.fetch_add(1, Ordering::Relaxed);
            }
            return self.dir_meta(s.as_fd(), d.as_fd(), &n.meta, path);
        }
        self.leaf(src, &n.name, &n.meta, dst, &n.name, path)
    }

    /// Makes `name` in `dst` a directory: creates it (true) or accepts an existing one.
    pub(crate) fn ensure_dir(&self, dst: BorrowedFd<'_>, name: &[u8], path: &[u8]) -> Result<bool, CopyError> {
        match rustix::fs::statat(dst, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if Meta::from_stat(&st).kind == Kind::Dir => Ok(false),
            Ok(_) => Err(CopyError::CopyToNonDirectory { path: show(path) }),
            Err(Errno::NOENT) => {
                // Private until its metadata is applied, after its children.
                rustix::fs::mkdirat(dst, name, Mode::from_raw_mode(0o700))
                    .map_err(|e| CopyError::io("mkdir", show(path), e))?;
                Ok(true)
            }
            Err(e) => Err(CopyError::io("lstat", show(path), e)),
        }
    }

    /// Full metadata of a copied directory.
    pub(crate) fn dir_meta(
        &self,
        src: BorrowedFd<'_>,
        dst: BorrowedFd<'_>,
        m: &Meta,
        path: &[u8],
    ) -> Result<(), CopyError> {
        let (uid, gid) = self.owner(m);
        rustix::fs::fchown(dst, Some(uid_of(uid)), Some(gid_of(gid)))
            .map_err(|e| CopyError::io("chown", show(path), e))?;
        rustix::fs::fchmod(dst, self.mode(m)).map_err(|e| CopyError::io("chmod", show(path), e))?;
        rustix::fs::futimens(dst, &times(m)).map_err(|e| CopyError::io("utime", show(path), e))?;
        copy_xattrs(&FdXattrs(src), &FdXattrs(dst), path);
        Ok(())
    }

    /// Only the times of the source directory: what the top directory of a copy into an
    /// existing (or just created) directory gets.
    pub(crate) fn dir_times(&self, dst: BorrowedFd<'_>, m: &Meta, path: &[u8]) -> Result<(), CopyError> {
        rustix::fs::futimens(dst, &times(m)).map_err(|e| CopyError::io("utime", show(path), e))
    }

    /// Copies a non-directory `src_name` of `src` (metadata `m`) to `dst_name` in `dst`,
    /// replacing what is there.
    pub(crate) fn leaf(
        &self,
        src: BorrowedFd<'_>,
        src_name: &[u8],
        m: &Meta,
        dst: BorrowedFd<'_>,
        dst_name: &[u8],
        path: &[u8],
    ) -> Result<(), CopyError> {
        match rustix::fs::statat(dst, dst_name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if Meta::from_stat(&st).kind == Kind::Dir => {
                return Err(CopyError::ReplaceDirectoryWithFile { path: show(path) });
            }
            Ok(_) => rustix::fs::unlinkat(dst, dst_name, AtFlags::empty())
                .map_err(|e| CopyError::io("remove", show(path), e))?,
            Err(Errno::NOENT) => {}
            Err(e) => return Err(CopyError::io("lstat", show(path), e)),
        }
        match m.kind {
            Kind::File if m.nlink > 1 => self.hardlinked_file(src, src_name, m, dst, dst_name, path),
            Kind::File => self.file(src, src_name, m, dst, dst_name, path),
            Kind::Symlink => {
                let target = rustix::fs::readlinkat(src, src_name, Vec::new())
                    .map_err(|e| CopyError::io("readlink", show(path), e))?;
                rustix::fs::symlinkat(target.as_c_str(), dst, dst_name)
                    .map_err(|e| CopyError::io("symlink", show(path), e))?;
                self.at_meta(src, src_name, dst, dst_name, m, false, path)?;
                self.symlinks.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Kind::Fifo | Kind::CharDevice | Kind::BlockDevice | Kind::Socket => {
                let file_type = match m.kind {
                    Kind::Fifo => FileType::Fifo,
                    Kind::Socket => FileType::Socket,
                    // BuildKit 0.13 recreates block devices as character devices.
                    _ => FileType::CharacterDevice,
                };
                rustix::fs::mknodat(dst, dst_name, file_type, Mode::from_raw_mode(0o600), m.rdev as _)
                    .map_err(|e| CopyError::io("mknod", show(path), e))?;
                self.at_meta(src, src_name, dst, dst_name, m, true, path)?;
                self.specials.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            // Directories are copied by `entry`; reaching here means the source changed.
            Kind::Dir => Err(CopyError::io("copy", show(path), Errno::ISDIR)),
        }
    }

    /// A regular file with other hard links: the first of its names copied in this source
    /// gets the data, the others become links to it.
    fn hardlinked_file(
        &self,
        src: BorrowedFd<'_>,
        src_name: &[u8],
        m: &Meta,
        dst: BorrowedFd<'_>,
        dst_name: &[u8],
        path: &[u8],
    ) -> Result<(), CopyError> {
        let key = (m.dev, m.ino);
        let mut links = self.links.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            match links.get(&key) {
                None => break,
                Some(Link::Pending) => {
                    // The primary is being written by another thread, which does nothing
                    // but that file: waiting here cannot deadlock.
                    links = self.link_done.wait(links).unwrap_or_else(PoisonError::into_inner);
                }
                Some(Link::Done(primary)) => {
                    let primary = primary.clone();
                    drop(links);
                    return self.link_to(&primary, dst, dst_name, path);
                }
                Some(Link::Failed) => {
                    return Err(CopyError::io("link", show(path), Errno::NOENT));
                }
            }
        }
        links.insert(key, Link::Pending);
        drop(links);
        let result = self.file(src, src_name, m, dst, dst_name, path);
        let mut links = self.links.lock().unwrap_or_else(PoisonError::into_inner);
        links.insert(key, if result.is_ok() { Link::Done(path.to_vec()) } else { Link::Failed });
        drop(links);
        self.link_done.notify_all();
        result
    }

    fn link_to(&self, primary: &[u8], dst: BorrowedFd<'_>, dst_name: &[u8], path: &[u8]) -> Result<(), CopyError> {
        let mut comps = resolve::clean(primary);
        let Some(name) = comps.pop() else { return Err(CopyError::io("link", show(path), Errno::INVAL)) };
        let dir = self.dest_root.open_dir(&comps, false)?;
        rustix::fs::linkat(&dir, name.as_slice(), dst, dst_name, AtFlags::empty())
            .map_err(|e| CopyError::io("link", show(path), e))?;
        self.hardlinks.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn file(
        &self,
        src: BorrowedFd<'_>,
        src_name: &[u8],
        m: &Meta,
        dst: BorrowedFd<'_>,
        dst_name: &[u8],
        path: &[u8],
    ) -> Result<(), CopyError> {
        let source = rustix::fs::openat(
            src,
            src_name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NOCTTY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| CopyError::io("open", show(path), e))?;
        // Never copy from something that changed type since it was scanned (a FIFO would
        // block, a device would be read).
        let now = rustix::fs::fstat(&source).map_err(|e| CopyError::io("stat", show(path), e))?;
        if Meta::from_stat(&now).kind != Kind::File {
            return Err(CopyError::io("open", show(path), Errno::INVAL));
        }
        let target = rustix::fs::openat(
            dst,
            dst_name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| CopyError::io("create", show(path), e))?;
        let bytes = self.copy_data(source.as_fd(), target, path)?;
        let target = bytes.1;
        let (uid, gid) = self.owner(m);
        rustix::fs::fchown(&target, Some(uid_of(uid)), Some(gid_of(gid)))
            .map_err(|e| CopyError::io("chown", show(path), e))?;
        rustix::fs::fchmod(&target, self.mode(m)).map_err(|e| CopyError::io("chmod", show(path), e))?;
        rustix::fs::futimens(&target, &times(m)).map_err(|e| CopyError::io("utime", show(path), e))?;
        copy_xattrs(&FdXattrs(source.as_fd()), &FdXattrs(target.as_fd()), path);
        self.files.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes.0, Ordering::Relaxed);
        Ok(())
    }

    fn copy_data(&self, source: BorrowedFd<'_>, target: OwnedFd, path: &[u8]) -> Result<(u64, File), CopyError> {
        if self.try_clone.load(Ordering::Relaxed) {
            match rustix::fs::ioctl_ficlone(&target, source) {
                Ok(()) => {
                    let st = rustix::fs::fstat(&target).map_err(|e| CopyError::io("stat", show(path), e))?;
                    return Ok((Meta::from_stat(&st).size, File::from(target)));
                }
                // Not a reflink-capable pair of filesystems: stop trying for this copy.
                Err(Errno::OPNOTSUPP | Errno::XDEV | Errno::INVAL | Errno::NOTTY | Errno::NOSYS | Errno::PERM) => {
                    self.try_clone.store(false, Ordering::Relaxed);
                }
                Err(e) => return Err(CopyError::io("clone", show(path), e)),
            }
        }
        let mut from = File::from(source.try_clone_to_owned().map_err(|e| CopyError::Io {
            op: "dup",
            path: show(path),
            source: e,
        })?);
        let mut to = File::from(target);
        // std uses copy_file_range where it can and falls back to read/write.
        let n =
            std::io::copy(&mut from, &mut to).map_err(|e| CopyError::Io { op: "copy", path: show(path), source: e })?;
        Ok((n, to))
    }

    /// Metadata of a symlink or special file, through its directory (they cannot be opened).
    #[allow(clippy::too_many_arguments)]
    fn at_meta(
        &self,
        src: BorrowedFd<'_>,
        src_name: &[u8],
        dst: BorrowedFd<'_>,
        dst_name: &[u8],
        m: &Meta,
        chmod: bool,
        path: &[u8],
    ) -> Result<(), CopyError> {
        let (uid, gid) = self.owner(m);
        rustix::fs::chownat(dst, dst_name, Some(uid_of(uid)), Some(gid_of(gid)), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| CopyError::io("chown", show(path), e))?;
        if chmod {
            // Not a symlink (we just created a FIFO or device node there), so following is moot.
            rustix::fs::chmodat(dst, dst_name, self.mode(m), AtFlags::empty())
                .map_err(|e| CopyError::io("chmod", show(path), e))?;
        }
        rustix::fs::utimensat(dst, dst_name, &times(m), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| CopyError::io("utime", show(path), e))?;
        copy_xattrs(&AtXattrs::new(src, src_name), &AtXattrs::new(dst, dst_name), path);
        Ok(())
    }
}

fn times(m: &Meta) -> Timestamps {
    Timestamps {
        last_access: Timespec { tv_sec: m.atime.0, tv_nsec: m.atime.1 as _ },
        last_modification: Timespec { tv_sec: m.mtime.0, tv_nsec: m.mtime.1 as _ },
    }
}

/// Extended attribute access to one filesystem entry.
trait Xattrs {
    fn list(&self, buf: &mut Vec<u8>) -> rustix::io::Result<usize>;
    fn get(&self, name: &[u8], buf: &mut Vec<u8>) -> rustix::io::Result<usize>;
    fn set(&self, name: &[u8], value: &[u8]) -> rustix::io::Result<()>;
}

/// Through an open descriptor (files and directories).
struct FdXattrs<'a>(BorrowedFd<'a>);

impl Xattrs for FdXattrs<'_> {
    fn list(&self, buf: &mut Vec<u8>) -> rustix::io::Result<usize> {
        rustix::fs::flistxattr(self.0, buf)
    }
    fn get(&self, name: &[u8], buf: &mut Vec<u8>) -> rustix::io::Result<usize> {
        rustix::fs::fgetxattr(self.0, name, buf)
    }
    fn set(&self, name: &[u8], value: &[u8]) -> rustix::io::Result<()> {
        rustix::fs::fsetxattr(self.0, name, value, XattrFlags::empty())
    }
}

/// Through `/proc/self/fd/<dir>/<name>` without following the last component (symlinks and
/// special files, which cannot be opened safely). The directory is reached through its
/// descriptor, so the path cannot lead anywhere else.
struct AtXattrs(Vec<u8>);

impl AtXattrs {
    fn new(dir: BorrowedFd<'_>, name: &[u8]) -> AtXattrs {
        use std::os::fd::AsRawFd;
        let mut p = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
        p.extend_from_slice(name);
        AtXattrs(p)
    }
}

impl Xattrs for AtXattrs {
    fn list(&self, buf: &mut Vec<u8>) -> rustix::io::Result<usize> {
        rustix::fs::llistxattr(self.0.as_slice(), buf)
    }
    fn get(&self, name: &[u8], buf: &mut Vec<u8>) -> rustix::io::Result<usize> {
        rustix::fs::lgetxattr(self.0.as_slice(), name, buf)
    }
    fn set(&self, name: &[u8], value: &[u8]) -> rustix::io::Result<()> {
        rustix::fs::lsetxattr(self.0.as_slice(), name, value, XattrFlags::empty())
    }
}

/// Reads into a buffer that grows until the value fits.
fn read_grow(mut f: impl FnMut(&mut Vec<u8>) -> rustix::io::Result<usize>) -> rustix::io::Result<Vec<u8>> {
    let mut size = 256;
    loop {
        let mut buf = vec![0u8; size];
        match f(&mut buf) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            Err(Errno::RANGE) if size < (1 << 20) => size *= 4,
            Err(e) => return Err(e),
        }
    }
}

/// Copies every extended attribute. Like BuildKit, failures (a filesystem without xattrs,
/// `security.selinux` refused by the kernel, ...) are logged and do not fail the copy.
fn copy_xattrs(src: &dyn Xattrs, dst: &dyn Xattrs, path: &[u8]) {
    let names = match read_grow(|b| src.list(b)) {
        Ok(n) => n,
        Err(Errno::OPNOTSUPP) => return,
        Err(e) => {
            tracing::debug!(path = %show(path), error = %e, "listing xattrs failed");
            return;
        }
    };
    for name in names.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let value = match read_grow(|b| src.get(name, b)) {
            Ok(v) => v,
            Err(e) => {
                tracing::debug!(path = %show(path), xattr = %String::from_utf8_lossy(name), error = %e, "reading xattr failed");
                continue;
            }
        };
        if let Err(e) = dst.set(name, &value) {
            tracing::debug!(path = %show(path), xattr = %String::from_utf8_lossy(name), error = %e, "setting xattr failed");
        }
    }
}
