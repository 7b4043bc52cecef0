//! Mount stubs: files and directories created in the rootfs only to be mounted on, and removed
//! again after the run so they do not end up in the layer.
//!
//! This follows BuildKit's `executor.MountStubsCleaner` in its recursive mode (which the
//! Dockerfile frontend asks for): before the run, for `/etc/resolv.conf`, `/etc/hosts` and every
//! extra mount target, record the path and each missing parent up to the first one that exists.
//! After the run, remove each recorded path that is still an empty directory or an empty file,
//! restoring the modification and access times of its parent so the parent does not look
//! changed. `/proc`, `/dev` and `/sys` are not stubs: BuildKit leaves those mount points in the
//! layer, and so does strata.
//!
//! The removal runs on the merged overlay view, with the sandboxed process gone but its changes
//! in place, so every component is opened with `O_NOFOLLOW`: a symlink planted by the process
//! cannot redirect the removal outside the rootfs.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use crate::rootpath::resolve_in_root;
use crate::sys;

/// The stubs the run would create for `candidates` (absolute paths inside `root`), as paths
/// relative to `root`, deepest first for each candidate.
pub fn find_missing(root: &Path, candidates: &[String]) -> Vec<PathBuf> {
    let mut stubs = Vec::new();
    for name in candidates {
        let Ok(real) = resolve_in_root(root, Path::new(name)) else { continue };
        let Ok(mut rel) = real.strip_prefix(root).map(Path::to_path_buf) else { continue };
        while !rel.as_os_str().is_empty() {
            match std::fs::symlink_metadata(root.join(&rel)) {
                Err(e) if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(nix::libc::ENOTDIR) => {
                    if !stubs.contains(&rel) {
                        stubs.push(rel.clone());
                    }
                }
                _ => break,
            }
            rel = rel.parent().map(Path::to_path_buf).unwrap_or_default();
        }
    }
    stubs
}

/// Removes the stubs that are still empty; returns a warning for each one that could not be
/// handled (a problem to report, not to fail the run for — BuildKit only logs these).
pub fn remove_empty(root: &Path, stubs: &[PathBuf]) -> Vec<String> {
    let mut warnings = Vec::new();
    for stub in stubs {
        if let Err(e) = remove_one(root, stub) {
            warnings.push(format!("cannot remove mount stub /{}: {e}", stub.display()));
        }
    }
    warnings
}

fn remove_one(root: &Path, stub: &Path) -> io::Result<()> {
    let names: Vec<&str> = stub
        .components()
        .map(|c| match c {
            Component::Normal(n) => n.to_str().ok_or_else(|| io::Error::other("non-UTF-8 path")),
            _ => Err(io::Error::other("unexpected path component")),
        })
        .collect::<io::Result<_>>()?;
    let Some((name, parents)) = names.split_last() else { return Ok(()) };
    let mut dir: OwnedFd = sys::open_dir(root)?;
    for parent in parents {
        dir = match sys::open_dir_nofollow(dir.as_fd(), parent) {
            Ok(d) => d,
            // Gone or replaced by a non-directory: nothing of ours left to remove.
            Err(e) if matches!(e.raw_os_error(), Some(nix::libc::ENOENT | nix::libc::ENOTDIR | nix::libc::ELOOP)) => {
                return Ok(());
            }
            Err(e) => return Err(e),
        };
    }
    let st = match sys::stat_nofollow(dir.as_fd(), name) {
        Ok(st) => st,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if st.is_dir {
        let sub = sys::open_dir_nofollow(dir.as_fd(), name)?;
        if !sys::dir_is_empty(sub.as_fd())? {
            return Ok(());
        }
    } else if !st.is_file || st.size != 0 {
        return Ok(());
    }
    let parent = sys::fstat(dir.as_fd())?;
    sys::remove_at(dir.as_fd(), name, st.is_dir)?;
    sys::set_times(dir.as_fd(), parent.atime, parent.mtime)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn records_missing_paths_and_missing_parents() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("etc")).unwrap();
        std::fs::write(root.path().join("etc/resolv.conf"), "x").unwrap();
        let got = find_missing(
            root.path(),
            &["/etc/resolv.conf".into(), "/etc/hosts".into(), "/a/b/c".into(), "/a/b".into()],
        );
        assert_eq!(got, [PathBuf::from("etc/hosts"), "a/b/c".into(), "a/b".into(), "a".into()]);
    }

    #[test]
    fn removes_only_empty_stubs_and_keeps_parent_times() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        std::fs::create_dir_all(r.join("etc")).unwrap();
        std::fs::create_dir_all(r.join("a/b")).unwrap();
        std::fs::write(r.join("etc/hosts"), "").unwrap();
        std::fs::write(r.join("etc/resolv.conf"), "written by the process").unwrap();
        std::fs::create_dir_all(r.join("full")).unwrap();
        std::fs::write(r.join("full/x"), "").unwrap();
        // A fixed past mtime on etc/, to see it restored after the removal touched it.
        let etc = sys::open_dir(&r.join("etc")).unwrap();
        sys::set_times(etc.as_fd(), (1000, 0), (2000, 0)).unwrap();
        let stubs: Vec<PathBuf> =
            ["etc/hosts", "etc/resolv.conf", "a/b", "a", "full", "missing/x"].iter().map(PathBuf::from).collect();
        let warnings = remove_empty(r, &stubs);
        assert!(warnings.is_empty(), "{warnings:?}");
        assert!(!r.join("etc/hosts").exists());
        assert!(r.join("etc/resolv.conf").exists());
        assert!(!r.join("a").exists());
        assert!(r.join("full/x").exists());
        assert_eq!(std::fs::metadata(r.join("etc")).unwrap().mtime(), 2000);
    }

    #[test]
    fn symlinks_are_not_followed() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("hosts"), "").unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("etc")).unwrap();
        let warnings = remove_empty(root.path(), &[PathBuf::from("etc/hosts")]);
        assert!(warnings.is_empty(), "{warnings:?}");
        assert!(outside.path().join("hosts").exists());
    }
}
