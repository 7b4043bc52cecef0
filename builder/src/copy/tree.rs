//! The source side of a copy: file metadata and the scan of a source directory into an
//! in-memory tree, with the build context's filters applied.
//!
//! Copying happens in two passes: this scan, then the writes ([`super::write`]). Scanning
//! first lets the filters decide everything before anything is created: an excluded
//! directory that only exists to hold re-included files (`skip` + `!skip/keep.txt`) is kept
//! exactly when something below it survives, as BuildKit's context transfer does (it sends
//! such a directory only together with an included descendant). Excluded entries are decided
//! from their names and `lstat` alone: they are never opened or read.
//!
//! Subdirectories are scanned in parallel on the rayon pool; each scan holds one directory
//! descriptor while its children are scanned.

use std::os::fd::{AsFd, BorrowedFd};

use rayon::prelude::*;
use rustix::fs::{AtFlags, Dir, FileType, OFlags, Stat};

use super::CopyError;
use super::resolve::open_beneath;
use crate::graph::PathFilter;

/// The type of a filesystem entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Dir,
    File,
    Symlink,
    Fifo,
    CharDevice,
    BlockDevice,
    Socket,
}

/// The metadata of an entry that a copy reproduces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Meta {
    pub kind: Kind,
    /// Permission bits including setuid, setgid and sticky (`0o7777`).
    pub perm: u32,
    pub uid: u32,
    pub gid: u32,
    pub dev: u64,
    pub ino: u64,
    pub nlink: u64,
    pub rdev: u64,
    pub size: u64,
    pub atime: (i64, i64),
    pub mtime: (i64, i64),
    /// Status change time: any write or metadata change moves it, so (dev, ino, size, mtime,
    /// ctime) identifies a file version for the context content cache.
    pub ctime: (i64, i64),
}

impl Meta {
    // The field types of `struct stat` differ between architectures; widen them all.
    #[allow(clippy::useless_conversion, clippy::unnecessary_cast)]
    pub(crate) fn from_stat(st: &Stat) -> Meta {
        let mode = st.st_mode as u32;
        let kind = match FileType::from_raw_mode(mode as _) {
            FileType::Directory => Kind::Dir,
            FileType::Symlink => Kind::Symlink,
            FileType::Fifo => Kind::Fifo,
            FileType::CharacterDevice => Kind::CharDevice,
            FileType::BlockDevice => Kind::BlockDevice,
            FileType::Socket => Kind::Socket,
            _ => Kind::File,
        };
        Meta {
            kind,
            perm: mode & 0o7777,
            uid: st.st_uid as u32,
            gid: st.st_gid as u32,
            dev: st.st_dev as u64,
            ino: st.st_ino as u64,
            nlink: st.st_nlink as u64,
            rdev: st.st_rdev as u64,
            size: st.st_size.max(0) as u64,
            atime: (st.st_atime as i64, st.st_atime_nsec as i64),
            mtime: (st.st_mtime as i64, st.st_mtime_nsec as i64),
            ctime: (st.st_ctime as i64, st.st_ctime_nsec as i64),
        }
    }
}

/// One scanned entry; directories carry their (filtered) children.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub name: Vec<u8>,
    pub meta: Meta,
    pub children: Vec<Node>,
}

/// The filters a scan applies. Paths given to `context` are relative to the source root
/// (what `.dockerignore` patterns see); paths given to `exclude` and `include` are relative to
/// the copied source (what `COPY --exclude` and `--parents` patterns see). An entry is left out
/// if any filter excludes it; a directory left out is still entered when every filter that
/// excludes it may select something below it, and kept only if something below is kept.
#[derive(Clone, Copy, Default)]
pub(crate) struct Filters<'a> {
    pub context: Option<&'a dyn PathFilter>,
    pub exclude: Option<&'a dyn PathFilter>,
    pub include: Option<&'a dyn PathFilter>,
}

impl Filters<'_> {
    fn is_empty(&self) -> bool {
        self.context.is_none() && self.exclude.is_none() && self.include.is_none()
    }

    /// (excluded, may something below it be included).
    fn decide(&self, root_rel: &[u8], src_rel: &[u8]) -> (bool, bool) {
        let mut excluded = false;
        let mut descend = true;
        if let Some(f) = self.context {
            let rel = String::from_utf8_lossy(root_rel);
            if f.is_excluded(&rel) {
                excluded = true;
                descend &= f.may_include_below(&rel);
            }
        }
        for f in [self.exclude, self.include].into_iter().flatten() {
            let rel = String::from_utf8_lossy(src_rel);
            if f.is_excluded(&rel) {
                excluded = true;
                descend &= f.may_include_below(&rel);
            }
        }
        (excluded, descend)
    }
}

fn join(prefix: &[u8], name: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(prefix.len() + 1 + name.len());
    if !prefix.is_empty() {
        v.extend_from_slice(prefix);
        v.push(b'/');
    }
    v.extend_from_slice(name);
    v
}

/// Scans the directory `dir` (opened for reading). `root_rel` / `src_rel` are its paths for
/// the two filters (empty for the roots themselves).
pub(crate) fn scan(
    dir: BorrowedFd<'_>,
    root_rel: &[u8],
    src_rel: &[u8],
    filters: Filters<'_>,
    path: &[u8],
) -> Result<Vec<Node>, CopyError> {
    let names = list(dir, path)?;
    let nodes: Vec<Option<Node>> = names
        .into_par_iter()
        .map(|(name, dtype)| {
            let child_root = join(root_rel, &name);
            let child_src = join(src_rel, &name);
            let (excluded, descend) =
                if filters.is_empty() { (false, true) } else { filters.decide(&child_root, &child_src) };
            // Decided from the name and the directory entry's type: an excluded file is not
            // even stat'ed.
            if excluded && !(descend && matches!(dtype, FileType::Directory | FileType::Unknown)) {
                return Ok(None);
            }
            let st = match rustix::fs::statat(dir, name.as_slice(), AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                // Removed since the listing: it is not part of the copy.
                Err(rustix::io::Errno::NOENT) => return Ok(None),
                Err(e) => return Err(CopyError::io("lstat", show(&child_path(path, &name)), e)),
            };
            let meta = Meta::from_stat(&st);
            if excluded && meta.kind != Kind::Dir {
                return Ok(None);
            }
            let mut children = Vec::new();
            if meta.kind == Kind::Dir {
                let path = child_path(path, &name);
                let sub =
                    open_beneath(dir, &name, OFlags::RDONLY).map_err(|e| CopyError::io("open", show(&path), e))?;
                children = scan(sub.as_fd(), &child_root, &child_src, filters, &path)?;
                // An excluded directory exists only to hold what is re-included below it.
                if excluded && children.is_empty() {
                    return Ok(None);
                }
            }
            Ok(Some(Node { name, meta, children }))
        })
        .collect::<Result<_, CopyError>>()?;
    Ok(nodes.into_iter().flatten().collect())
}

/// The entries of the directory `dir` (names and directory-entry types), sorted by name
/// like Go's `ReadDir`. The listing descriptor is closed before returning.
pub(crate) fn list(dir: BorrowedFd<'_>, path: &[u8]) -> Result<Vec<(Vec<u8>, FileType)>, CopyError> {
    let mut listing = Dir::read_from(dir).map_err(|e| CopyError::io("open", show(path), e))?;
    let mut names = Vec::new();
    while let Some(entry) = listing.read() {
        let entry = entry.map_err(|e| CopyError::io("readdir", show(path), e))?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push((name.to_vec(), entry.file_type()));
        }
    }
    names.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(names)
}

/// Whether an existing entry of the source is visible through the context filter: not
/// excluded, or an excluded directory with something re-included below it.
pub(crate) fn visible_in_context(
    filter: &dyn PathFilter,
    dir: BorrowedFd<'_>,
    name: &[u8],
    rel: &[u8],
    meta: &Meta,
) -> Result<bool, CopyError> {
    let rel_str = String::from_utf8_lossy(rel);
    if !filter.is_excluded(&rel_str) {
        return Ok(true);
    }
    if meta.kind != Kind::Dir || !filter.may_include_below(&rel_str) {
        return Ok(false);
    }
    let path = child_path(b"/", rel);
    let sub = open_beneath(dir, name, OFlags::RDONLY).map_err(|e| CopyError::io("open", show(&path), e))?;
    let filters = Filters { context: Some(filter), exclude: None, include: None };
    Ok(!scan(sub.as_fd(), rel, b"", filters, &path)?.is_empty())
}

/// The path of `name` in the directory at `path` (both absolute in their root, raw bytes).
pub(crate) fn child_path(path: &[u8], name: &[u8]) -> Vec<u8> {
    let mut v = path.to_vec();
    if v.last() != Some(&b'/') {
        v.push(b'/');
    }
    v.extend_from_slice(name);
    v
}

/// A path for messages.
pub(crate) fn show(path: &[u8]) -> String {
    String::from_utf8_lossy(path).into_owned()
}
