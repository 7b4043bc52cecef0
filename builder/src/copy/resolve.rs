//! Path resolution confined to a root directory, with the semantics of BuildKit's
//! `fs.RootPath` (containerd continuity), done on file descriptors.
//!
//! BuildKit resolves every COPY source and destination "as if `root` were `/`": symlinks are
//! followed, absolute targets restart at the root, `..` never climbs above the root, and the
//! part of a path that does not exist is kept lexically (so writing through a dangling symlink
//! creates the symlink's target inside the root). [`resolve`] reproduces that component by
//! component: each step is one `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` or `fstatat`
//! relative to the directory reached so far, and symlinks are expanded by this code, never by
//! the kernel. A resolved path is therefore free of symlinks, and [`Root::open_dir`] reopens it
//! with `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS)`, so that even a concurrent change in
//! the tree cannot make an open escape the root: it fails instead.
//!
//! A visibility hook lets the build context hide paths (`.dockerignore`): a hidden component
//! resolves as if it did not exist, exactly as in BuildKit, where excluded files are never
//! transferred to the builder at all.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use super::CopyError;
use super::tree::{Kind, Meta};

/// Symlinks followed in one resolution before giving up (BuildKit's limit).
const MAX_SYMLINKS: usize = 255;

/// Path components (no `/`, never empty).
pub(crate) type Comps = Vec<Vec<u8>>;

/// An open root directory that paths are resolved in.
#[derive(Debug)]
pub(crate) struct Root {
    fd: OwnedFd,
}

impl Root {
    pub(crate) fn open(path: &Path) -> Result<Root, CopyError> {
        let fd = rustix::fs::open(path, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| CopyError::io("open", path.display().to_string(), e))?;
        Ok(Root { fd })
    }

    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Opens the directory at `comps`, a path [`resolve`] returned as existing. `read` asks
    /// for a descriptor that can list entries and change metadata rather than an `O_PATH` one.
    pub(crate) fn open_dir(&self, comps: &[Vec<u8>], read: bool) -> Result<OwnedFd, CopyError> {
        let mode = if read { OFlags::RDONLY } else { OFlags::PATH };
        let path = if comps.is_empty() { b".".to_vec() } else { comps.join(&b'/') };
        rustix::fs::openat2(
            self.fd(),
            path.as_slice(),
            mode | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
        )
        .map_err(|e| CopyError::io("open", display(comps), e))
    }
}

/// `/a/b` for components `[a, b]`, `/` for none.
pub(crate) fn display(comps: &[Vec<u8>]) -> String {
    if comps.is_empty() {
        return "/".to_string();
    }
    let mut s = String::new();
    for c in comps {
        s.push('/');
        s.push_str(&String::from_utf8_lossy(c));
    }
    s
}

/// The components of `path` after Go's `path.Clean("/" + path)`: empty and `.` components
/// dropped, `..` removing the previous component and never going above the root.
pub(crate) fn clean(path: &[u8]) -> Comps {
    let mut out: Comps = Vec::new();
    for c in path.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                out.pop();
            }
            _ => out.push(c.to_vec()),
        }
    }
    out
}

/// A path resolved inside a root.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    /// The resolved path: an existing, symlink-free prefix followed by the part that does not
    /// exist (kept lexically).
    pub comps: Comps,
    /// How many leading components exist.
    pub existing: usize,
    /// Metadata of the whole path if it exists (of the symlink itself if the last component
    /// is a symlink that was not followed).
    pub meta: Option<Meta>,
}

/// Why a resolution failed.
#[derive(Debug)]
pub(crate) enum ResolveError {
    /// A component that is not a directory has more components after it (the resolved path
    /// up to and including that component).
    NotADirectory(Comps),
    Other(CopyError),
}

impl From<CopyError> for ResolveError {
    fn from(e: CopyError) -> Self {
        ResolveError::Other(e)
    }
}

/// Decides whether an existing entry counts as present (the build context's filters).
/// Arguments: the directory holding the entry, its name, its path relative to the root
/// (`a/b`), its metadata.
pub(crate) type Visibility<'a> = dyn Fn(BorrowedFd<'_>, &[u8], &[u8], &Meta) -> Result<bool, CopyError> + Sync + 'a;

/// Resolves `path` (clean components, see [`clean`]) in `root`. A symlink as the last
/// component is followed only if `follow_last`.
pub(crate) fn resolve(
    root: &Root,
    path: &[Vec<u8>],
    follow_last: bool,
    visible: Option<&Visibility<'_>>,
) -> Result<Resolved, ResolveError> {
    let mut queue: VecDeque<Vec<u8>> = path.iter().cloned().collect();
    // Directories reached so far, with descriptors to look up the next component in.
    let mut comps: Comps = Vec::new();
    let mut fds: Vec<OwnedFd> = Vec::new();
    let mut meta = Some(stat_fd(root.fd(), "/")?);
    let mut tail: Comps = Vec::new();
    let mut links = 0;
    while let Some(c) = queue.pop_front() {
        match c.as_slice() {
            b"." => continue,
            b".." => {
                // Lexical, like RootPath: drop the last missing component, else climb (never
                // above the root).
                if tail.pop().is_none() && comps.pop().is_some() {
                    fds.pop();
                    meta = Some(stat_fd(fds.last().map_or(root.fd(), |f| f.as_fd()), "..")?);
                }
                continue;
            }
            _ => {}
        }
        if !tail.is_empty() {
            tail.push(c);
            continue;
        }
        let dir = fds.last().map_or(root.fd(), |f| f.as_fd());
        let m = match rustix::fs::statat(dir, c.as_slice(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Meta::from_stat(&st),
            Err(Errno::NOENT) => {
                tail.push(c);
                continue;
            }
            Err(Errno::NOTDIR) => return Err(ResolveError::NotADirectory(comps)),
            Err(e) => return Err(CopyError::io("lstat", display_with(&comps, &c), e).into()),
        };
        if let Some(visible) = visible {
            let mut rel = comps.join(&b'/');
            if !rel.is_empty() {
                rel.push(b'/');
            }
            rel.extend_from_slice(&c);
            if !visible(dir, &c, &rel, &m)? {
                tail.push(c);
                continue;
            }
        }
        let last = queue.iter().all(|q| q.as_slice() == b".");
        match m.kind {
            Kind::Symlink if follow_last || !last => {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(CopyError::SymlinkLoop { path: display_with(&comps, &c) }.into());
                }
                let target = rustix::fs::readlinkat(dir, c.as_slice(), Vec::new())
                    .map_err(|e| CopyError::io("readlink", display_with(&comps, &c), e))?;
                let target = target.as_bytes();
                if target.first() == Some(&b'/') {
                    comps.clear();
                    fds.clear();
                    meta = Some(stat_fd(root.fd(), "/")?);
                }
                for t in target.split(|&b| b == b'/').filter(|t| !t.is_empty()).rev() {
                    queue.push_front(t.to_vec());
                }
            }
            Kind::Dir => {
                if !last {
                    let fd = open_beneath(dir, &c, OFlags::PATH)
                        .map_err(|e| CopyError::io("open", display_with(&comps, &c), e))?;
                    fds.push(fd);
                }
                comps.push(c);
                meta = Some(m);
            }
            _ if last => {
                comps.push(c);
                meta = Some(m);
            }
            _ => {
                comps.push(c);
                return Err(ResolveError::NotADirectory(comps));
            }
        }
    }
    let existing = comps.len();
    if !tail.is_empty() {
        meta = None;
    }
    comps.extend(tail);
    Ok(Resolved { comps, existing, meta })
}

/// Makes sure the directory `path` exists in `root`, creating missing directories (mode
/// 0755, owned by `owner` if given) like BuildKit's `MkdirAll` after `RootPath`: symlinks
/// are followed, so a dangling symlink gets its target created. Returns the resolved path.
/// An existing non-directory on the way fails with BuildKit's `mkdir <path>: not a directory`.
pub(crate) fn mkdir_all(root: &Root, path: &[Vec<u8>], owner: Option<(u32, u32)>) -> Result<Comps, CopyError> {
    let r = match resolve(root, path, true, None) {
        Ok(r) => r,
        Err(ResolveError::NotADirectory(p)) => {
            return Err(CopyError::io("mkdir", display(&p), Errno::NOTDIR));
        }
        Err(ResolveError::Other(e)) => return Err(e),
    };
    if let Some(m) = r.meta {
        if m.kind != Kind::Dir {
            return Err(CopyError::io("mkdir", display(&r.comps), Errno::NOTDIR));
        }
        return Ok(r.comps);
    }
    let mut dir = root.open_dir(&r.comps[..r.existing], false)?;
    for i in r.existing..r.comps.len() {
        let name = r.comps[i].as_slice();
        let shown = display(&r.comps[..=i]);
        match rustix::fs::mkdirat(&dir, name, Mode::from_raw_mode(0o755)) {
            // Someone else created it meanwhile: fine if it is a directory (checked by the
            // NOFOLLOW open below).
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => return Err(CopyError::io("mkdir", shown, e)),
        }
        let created = open_beneath(&dir, name, OFlags::RDONLY).map_err(|e| CopyError::io("mkdir", shown.clone(), e))?;
        // Explicit mode: the process umask must not change what BuildKit produces (0755).
        rustix::fs::fchmod(&created, Mode::from_raw_mode(0o755))
            .map_err(|e| CopyError::io("chmod", shown.clone(), e))?;
        if let Some((uid, gid)) = owner {
            rustix::fs::fchown(&created, Some(uid_of(uid)), Some(gid_of(gid)))
                .map_err(|e| CopyError::io("chown", shown.clone(), e))?;
        }
        dir = created;
    }
    Ok(r.comps)
}

/// Opens `name` in `dir` without following any symlink and without leaving `dir`.
pub(crate) fn open_beneath(dir: impl AsFd, name: &[u8], mode: OFlags) -> rustix::io::Result<OwnedFd> {
    rustix::fs::openat2(
        dir,
        name,
        mode | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
    )
}

pub(crate) fn uid_of(uid: u32) -> rustix::fs::Uid {
    rustix::fs::Uid::from_raw(uid)
}

pub(crate) fn gid_of(gid: u32) -> rustix::fs::Gid {
    rustix::fs::Gid::from_raw(gid)
}

fn stat_fd(fd: BorrowedFd<'_>, shown: &str) -> Result<Meta, CopyError> {
    rustix::fs::fstat(fd).map(|st| Meta::from_stat(&st)).map_err(|e| CopyError::io("stat", shown.to_string(), e))
}

fn display_with(comps: &[Vec<u8>], last: &[u8]) -> String {
    let mut v = comps.to_vec();
    v.push(last.to_vec());
    display(&v)
}

/// The text Go prints for an errno (`no such file or directory`), which BuildKit's messages
/// contain; Rust's adds a capital and the number.
pub(crate) fn errno_text(e: &io::Error) -> String {
    let Some(code) = e.raw_os_error() else { return e.to_string() };
    let text = io::Error::from_raw_os_error(code).to_string();
    let text = text.split(" (os error").next().unwrap_or(&text);
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text.to_string(),
    }
}
