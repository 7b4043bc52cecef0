//! Resolving a path *inside* a root filesystem that is only a directory on the host.
//!
//! A rootfs is untrusted: `/etc/passwd` may be a symlink to `/etc/shadow` of the host, or
//! `../../..`. [`resolve_in_root`] walks the path one component at a time, follows symlinks as
//! if `root` were `/` (absolute targets restart at `root`, `..` stops at `root`), and so always
//! returns a path under `root` — the behaviour of containerd's `fs.RootPath` /
//! filepath-securejoin that BuildKit uses for the same job. Components that do not exist are
//! kept as they are, so the result can be created.
//!
//! This is lexical and therefore only safe while nothing hostile changes the tree
//! concurrently; the runner uses it before the sandboxed process starts.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io;
use std::path::{Component, Path, PathBuf};

/// Symlinks followed before giving up with `ELOOP` (Linux's own limit is 40 per lookup; a
/// rootfs path may legitimately chain a few).
const MAX_LINKS: usize = 255;

/// Resolves `path` inside `root`; see the module docs.
pub fn resolve_in_root(root: &Path, path: &Path) -> io::Result<PathBuf> {
    let mut pending: VecDeque<OsString> = components(path).collect();
    let mut resolved: Vec<OsString> = Vec::new();
    let mut links = 0usize;
    while let Some(part) = pending.pop_front() {
        if part == ".." {
            resolved.pop();
            continue;
        }
        let mut candidate = root.to_path_buf();
        candidate.extend(&resolved);
        candidate.push(&part);
        match std::fs::symlink_metadata(&candidate) {
            Ok(meta) if meta.file_type().is_symlink() => {
                links += 1;
                if links > MAX_LINKS {
                    return Err(io::Error::other(format!(
                        "too many levels of symbolic links resolving {}",
                        path.display()
                    )));
                }
                let target = std::fs::read_link(&candidate)?;
                if target.is_absolute() {
                    resolved.clear();
                }
                for (i, c) in components(&target).enumerate() {
                    pending.insert(i, c);
                }
            }
            _ => resolved.push(part),
        }
    }
    let mut out = root.to_path_buf();
    out.extend(&resolved);
    Ok(out)
}

/// The normal and `..` components of `path`, ignoring `/` and `.`.
fn components(path: &Path) -> impl Iterator<Item = OsString> + '_ {
    path.components().filter_map(|c| match c {
        Component::Normal(n) => Some(n.to_os_string()),
        Component::ParentDir => Some(OsString::from("..")),
        Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn plain_paths_join_under_root() {
        let root = tempfile::tempdir().unwrap();
        let got = resolve_in_root(root.path(), Path::new("/etc/passwd")).unwrap();
        assert_eq!(got, root.path().join("etc/passwd"));
        let got = resolve_in_root(root.path(), Path::new("a/./b/../c")).unwrap();
        assert_eq!(got, root.path().join("a/c"));
    }

    #[test]
    fn dotdot_stops_at_root() {
        let root = tempfile::tempdir().unwrap();
        let got = resolve_in_root(root.path(), Path::new("/../../../etc/shadow")).unwrap();
        assert_eq!(got, root.path().join("etc/shadow"));
    }

    #[test]
    fn absolute_symlinks_restart_at_root() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("etc")).unwrap();
        symlink("/etc/shadow", root.path().join("etc/passwd")).unwrap();
        let got = resolve_in_root(root.path(), Path::new("/etc/passwd")).unwrap();
        assert_eq!(got, root.path().join("etc/shadow"));
    }

    #[test]
    fn relative_symlinks_cannot_escape() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("etc")).unwrap();
        symlink("../../../../../tmp", root.path().join("etc/x")).unwrap();
        symlink("x/y", root.path().join("etc/hosts")).unwrap();
        let got = resolve_in_root(root.path(), Path::new("/etc/hosts")).unwrap();
        assert_eq!(got, root.path().join("tmp/y"));
    }

    #[test]
    fn symlink_loops_fail() {
        let root = tempfile::tempdir().unwrap();
        symlink("b", root.path().join("a")).unwrap();
        symlink("a", root.path().join("b")).unwrap();
        let err = resolve_in_root(root.path(), Path::new("/a/c")).unwrap_err();
        assert!(err.to_string().contains("too many levels"), "{err}");
    }
}
