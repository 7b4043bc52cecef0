//! Packing: an overlayfs upper directory (a RUN step's diff, or any snapshot) to a layer tar.
//!
//! What gets written, following BuildKit's overlay differ and containerd's change writer:
//! - a depth-first walk with each directory's entries sorted by name bytes (Go's
//!   `filepath.Walk` order), so a directory's entry is followed by its contents; the upper
//!   directory itself is never an entry;
//! - names relative, directories with a trailing `/`; numeric uid/gid, empty uname/gname;
//!   mode = permission bits plus setuid/setgid/sticky; mtime in whole seconds, clamped to
//!   `source_date_epoch` when given (containerd's `WithModTimeUpperBound`);
//! - xattrs as `SCHILY.xattr.*`, except overlay's own and `security.selinux` (see
//!   [`super::overlay`]);
//! - files sharing an inode: the first in walk order is written as a file, the others as hard
//!   links to it (headers keep the file's metadata, size 0);
//! - sockets are skipped; sparse files are written in full;
//! - a whiteout (char device 0/0) becomes an empty regular file `.wh.NAME` with mode 0,
//!   uid/gid 0, and the whiteout's own mtime (clamped). BuildKit uses the time of the export
//!   (or the epoch) there; the whiteout's mtime keeps the output a function of the tree, and
//!   the unpacker restores it, so packing an unpacked layer gives the same bytes;
//! - an opaque directory is written, then `DIR/.wh..wh..opq` right after it: a regular file
//!   with the directory's permission bits and owner and mtime 0 (moby's overlay converter);
//! - a directory that also exists in the lowers with the same type, mode, owner, mtime
//!   (nanoseconds included) and content xattrs, and is not opaque, was copied up only to hold
//!   changed children: it is written only as the parent of something written below it, right
//!   before that (containerd's change writer includes every parent directory of a change, as
//!   BuildKit's layers show), and not at all if nothing below it changed.

use std::collections::HashMap;
use std::fs::{self, File, Metadata};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::overlay::{self, Xattrs};
use super::tar_write::{EntryType, TarHeader, TarWriter};
use super::{LayerError, PackOptions};

/// Writes the diff held in `upper` as a tar stream (see the module docs for the format).
/// `lowers` are the layer directories under `upper`, top-most first. Returns `out`.
pub fn write_tar<W: Write>(upper: &Path, lowers: &[PathBuf], out: W, opts: &PackOptions) -> Result<W, LayerError> {
    Ok(write_tar_counted(upper, lowers, out, opts)?.0)
}

/// [`write_tar`], also returning how many entries were written.
pub(crate) fn write_tar_counted<W: Write>(
    upper: &Path,
    lowers: &[PathBuf],
    out: W,
    opts: &PackOptions,
) -> Result<(W, u64), LayerError> {
    let md = fs::symlink_metadata(upper).map_err(|e| LayerError::pack(upper, "reading the layer directory", e))?;
    if !md.is_dir() {
        return Err(LayerError::pack(upper, "reading the layer directory", io::ErrorKind::NotADirectory.into()));
    }
    let mut p = Packer {
        tw: TarWriter::new(out),
        upper,
        lowers,
        epoch: opts.source_date_epoch,
        links: HashMap::new(),
        pending: Vec::new(),
        entries: 0,
        buf: vec![0u8; 256 * 1024],
    };
    p.walk(Path::new(""))?;
    let entries = p.entries;
    let out = p.tw.finish().map_err(|e| LayerError::io("finishing the layer tar", e))?;
    Ok((out, entries))
}

struct Packer<'a, W: Write> {
    tw: TarWriter<W>,
    upper: &'a Path,
    lowers: &'a [PathBuf],
    epoch: Option<i64>,
    /// (device, inode) of files with several links -> the tar name of the first one.
    links: HashMap<(u64, u64), Vec<u8>>,
    /// Unchanged directories on the way down to the current entry, not written yet: written
    /// (outermost first) as soon as an entry below them is.
    pending: Vec<(PathBuf, TarHeader)>,
    entries: u64,
    buf: Vec<u8>,
}

fn tar_name(rel: &Path) -> Vec<u8> {
    rel.as_os_str().as_bytes().to_vec()
}

impl<W: Write> Packer<'_, W> {
    fn mtime(&self, md: &Metadata) -> i64 {
        match self.epoch {
            // Later than the epoch, at nanosecond precision, is clamped (containerd compares
            // before truncating to seconds).
            Some(e) if (md.mtime(), md.mtime_nsec()) > (e, 0) => e,
            _ => md.mtime(),
        }
    }

    fn emit(&mut self, h: &TarHeader, path: &Path) -> Result<(), LayerError> {
        for (dir, parent) in std::mem::take(&mut self.pending) {
            self.entries += 1;
            let at = self.upper.join(&dir);
            self.tw.header(&parent).map_err(|e| LayerError::pack(&at, "writing the tar header", e))?;
        }
        self.entries += 1;
        self.tw.header(h).map_err(|e| LayerError::pack(path, "writing the tar header", e))
    }

    fn walk(&mut self, rel_dir: &Path) -> Result<(), LayerError> {
        let dir = self.upper.join(rel_dir);
        let mut names: Vec<_> = fs::read_dir(&dir)
            .map_err(|e| LayerError::pack(&dir, "listing the directory", e))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(|e| LayerError::pack(&dir, "listing the directory", e))?;
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        for name in names {
            let rel = rel_dir.join(&name);
            let path = self.upper.join(&rel);
            let md = fs::symlink_metadata(&path).map_err(|e| LayerError::pack(&path, "reading metadata", e))?;
            self.entry(&rel, &path, &md)?;
            if md.is_dir() {
                self.walk(&rel)?;
                // Nothing below it was written: the unchanged directory is not either.
                if self.pending.last().is_some_and(|(d, _)| *d == rel) {
                    self.pending.pop();
                }
            }
        }
        Ok(())
    }

    fn header(&self, rel: &Path, md: &Metadata, kind: EntryType, xattrs: &Xattrs) -> TarHeader {
        let mut name = tar_name(rel);
        if kind == EntryType::Directory {
            name.push(b'/');
        }
        let mut h = TarHeader::new(name, kind);
        h.mode = md.mode() & 0o7777;
        h.uid = u64::from(md.uid());
        h.gid = u64::from(md.gid());
        h.mtime = self.mtime(md);
        h.xattrs = overlay::content_xattrs(xattrs);
        h
    }

    fn entry(&mut self, rel: &Path, path: &Path, md: &Metadata) -> Result<(), LayerError> {
        let ft = md.file_type();
        if ft.is_socket() {
            return Ok(());
        }
        if overlay::is_whiteout(md) {
            let mut name = rel.parent().map(tar_name).unwrap_or_default();
            if !name.is_empty() {
                name.push(b'/');
            }
            name.extend_from_slice(b".wh.");
            name.extend_from_slice(rel.file_name().map(|n| n.as_bytes()).unwrap_or_default());
            let mut h = TarHeader::new(name, EntryType::Regular);
            h.mtime = self.mtime(md);
            return self.emit(&h, path);
        }
        let xattrs = overlay::read_xattrs(path).map_err(|e| LayerError::pack(path, "reading xattrs", e))?;
        for bad in
            ["trusted.overlay.redirect", "trusted.overlay.metacopy", "user.overlay.redirect", "user.overlay.metacopy"]
        {
            if xattrs.contains_key(bad.as_bytes()) {
                return Err(LayerError::PackUnsupported {
                    path: path.to_path_buf(),
                    reason: format!(
                        "it carries {bad}: the overlay was mounted with redirect_dir or metacopy, so this upper \
                         directory is not a complete diff"
                    ),
                });
            }
        }

        if ft.is_dir() {
            let opaque = overlay::is_opaque(&xattrs);
            if !opaque && self.unchanged_dir(rel, md, &xattrs)? {
                let h = self.header(rel, md, EntryType::Directory, &xattrs);
                self.pending.push((rel.to_path_buf(), h));
                return Ok(());
            }
            let h = self.header(rel, md, EntryType::Directory, &xattrs);
            self.emit(&h, path)?;
            if opaque {
                let mut name = tar_name(rel);
                name.extend_from_slice(b"/.wh..wh..opq");
                let mut o = TarHeader::new(name, EntryType::Regular);
                o.mode = md.mode() & 0o777;
                o.uid = u64::from(md.uid());
                o.gid = u64::from(md.gid());
                self.emit(&o, path)?;
            }
            return Ok(());
        }

        let kind = if ft.is_file() {
            EntryType::Regular
        } else if ft.is_symlink() {
            EntryType::Symlink
        } else if ft.is_char_device() {
            EntryType::Char
        } else if ft.is_block_device() {
            EntryType::Block
        } else if ft.is_fifo() {
            EntryType::Fifo
        } else {
            return Err(LayerError::PackUnsupported { path: path.to_path_buf(), reason: "unknown file type".into() });
        };
        let mut h = self.header(rel, md, kind, &xattrs);
        if md.nlink() > 1 {
            match self.links.get(&(md.dev(), md.ino())) {
                Some(first) => {
                    h.kind = EntryType::HardLink;
                    h.linkname = first.clone();
                    return self.emit(&h, path);
                }
                None => {
                    self.links.insert((md.dev(), md.ino()), h.name.clone());
                }
            }
        }
        match kind {
            EntryType::Symlink => {
                let target = fs::read_link(path).map_err(|e| LayerError::pack(path, "reading the symlink", e))?;
                h.linkname = target.as_os_str().as_bytes().to_vec();
            }
            EntryType::Char | EntryType::Block => {
                h.devmajor = rustix::fs::major(md.rdev());
                h.devminor = rustix::fs::minor(md.rdev());
            }
            _ => {}
        }
        if kind != EntryType::Regular {
            return self.emit(&h, path);
        }
        h.size = md.len();
        // Open before writing the header so an unreadable file fails cleanly.
        let file = File::options()
            .read(true)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(path)
            .map_err(|e| LayerError::pack(path, "opening", e))?;
        self.emit(&h, path)?;
        self.copy_data(file, h.size, path)?;
        self.tw.pad(h.size).map_err(|e| LayerError::pack(path, "writing the tar", e))
    }

    /// Copies exactly `size` bytes; a file that shrank or grew while packing is an error.
    fn copy_data(&mut self, mut file: File, size: u64, path: &Path) -> Result<(), LayerError> {
        let mut left = size;
        while left > 0 {
            let want = left.min(self.buf.len() as u64) as usize;
            let n = match file.read(&mut self.buf[..want]) {
                Ok(0) => {
                    return Err(LayerError::pack(
                        path,
                        "reading",
                        io::Error::other(format!("file shrank while being packed ({left} of {size} bytes missing)")),
                    ));
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(LayerError::pack(path, "reading", e)),
            };
            self.tw.data().write_all(&self.buf[..n]).map_err(|e| LayerError::pack(path, "writing the tar", e))?;
            left -= n as u64;
        }
        let mut probe = [0u8; 1];
        match file.read(&mut probe) {
            Ok(0) => Ok(()),
            Ok(_) => Err(LayerError::pack(path, "reading", io::Error::other("file grew while being packed"))),
            Err(e) => Err(LayerError::pack(path, "reading", e)),
        }
    }

    /// True if the lowers show a directory at `rel` with the same metadata: overlay copied
    /// it up (to hold changed children) but did not change it.
    fn unchanged_dir(&self, rel: &Path, md: &Metadata, xattrs: &Xattrs) -> Result<bool, LayerError> {
        let found = overlay::lookup_lower(self.lowers, rel)
            .map_err(|e| LayerError::pack(&self.upper.join(rel), "looking the directory up in the lower layers", e))?;
        let Some((lpath, lmd)) = found else {
            return Ok(false);
        };
        let same = lmd.is_dir()
            && lmd.mode() == md.mode()
            && lmd.uid() == md.uid()
            && lmd.gid() == md.gid()
            && lmd.mtime() == md.mtime()
            && lmd.mtime_nsec() == md.mtime_nsec();
        if !same {
            return Ok(false);
        }
        let lx = overlay::read_xattrs(&lpath).map_err(|e| LayerError::pack(&lpath, "reading xattrs", e))?;
        Ok(overlay::content_xattrs(&lx) == overlay::content_xattrs(xattrs))
    }
}
