//! Host-side file work of the lifecycle: copying the app and cached layers, moving layers into
//! export staging, and normalizing timestamps.
//!
//! Exported directories get every timestamp set to the lifecycle's fixed time
//! (1980-01-01T00:00:01Z), so a layer's bytes — and so its digest — depend on its content
//! only: an unchanged launch layer of a rebuild is byte-identical to the previous one and
//! reused by digest, as `pack` images are.

use std::fs;
use std::io;
use std::path::Path;

/// The lifecycle's normalized time, as seconds since the epoch and as RFC 3339.
pub const NORMALIZED_TIME: i64 = 315_532_801;
pub const NORMALIZED_RFC3339: &str = "1980-01-01T00:00:01Z";

/// Copies `src` (a directory) to `dst` (created), keeping symlinks as symlinks, modes and
/// modification times (build tools such as cargo compare source and output times: a copy
/// must not make stale outputs look fresh); other file types (sockets, devices) are skipped.
pub fn copy_tree(src: &Path, dst: &Path) -> io::Result<()> {
    let meta = fs::symlink_metadata(src)?;
    fs::create_dir_all(dst)?;
    fs::set_permissions(dst, meta.permissions())?;
    for e in fs::read_dir(src)? {
        let e = e?;
        let from = e.path();
        let to = dst.join(e.file_name());
        let t = e.file_type()?;
        if t.is_dir() {
            copy_tree(&from, &to)?;
        } else if t.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&from)?, &to)?;
            copy_time(&from, &to)?;
        } else if t.is_file() {
            fs::copy(&from, &to)?;
            copy_time(&from, &to)?;
        }
    }
    copy_time(src, dst)
}

/// Gives `to` the access and modification times of `from` (symlinks themselves).
fn copy_time(from: &Path, to: &Path) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let m = fs::symlink_metadata(from)?;
    set_times(to, (m.atime(), m.atime_nsec()), (m.mtime(), m.mtime_nsec()))
}

/// Moves `src` to `dst` (parents created): a rename, or a copy and delete across filesystems.
pub fn move_tree(src: &Path, dst: &Path) -> io::Result<()> {
    if let Some(p) = dst.parent() {
        fs::create_dir_all(p)?;
    }
    match fs::rename(src, dst) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(18) => {
            // EXDEV: another filesystem.
            if fs::symlink_metadata(src)?.is_dir() {
                copy_tree(src, dst)?;
                fs::remove_dir_all(src)
            } else {
                fs::copy(src, dst)?;
                fs::remove_file(src)
            }
        }
        Err(e) => Err(e),
    }
}

/// Removes `path` whatever it is, if it exists.
pub fn remove_any(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Sets the access and modification times of `root` and everything below it (symlinks
/// themselves, not their targets) to [`NORMALIZED_TIME`].
pub fn normalize_times(root: &Path) -> io::Result<()> {
    if fs::symlink_metadata(root)?.is_dir() {
        for e in fs::read_dir(root)? {
            let e = e?;
            if e.file_type()?.is_dir() {
                normalize_times(&e.path())?;
            } else {
                set_time(&e.path())?;
            }
        }
    }
    // Directories last: setting a child's time does not touch the parent's, but creating or
    // renaming entries does, and this runs after all of that.
    set_time(root)
}

fn set_time(path: &Path) -> io::Result<()> {
    set_times(path, (NORMALIZED_TIME, 0), (NORMALIZED_TIME, 0))
}

fn set_times(path: &Path, atime: (i64, i64), mtime: (i64, i64)) -> io::Result<()> {
    use rustix::fs::{AtFlags, CWD, Timespec, Timestamps, utimensat};
    let ts = |(s, n): (i64, i64)| Timespec { tv_sec: s, tv_nsec: n };
    let times = Timestamps { last_access: ts(atime), last_modification: ts(mtime) };
    utimensat(CWD, path, &times, AtFlags::SYMLINK_NOFOLLOW).map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    #[test]
    fn copies_moves_and_normalizes() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("src");
        fs::create_dir_all(src.join("sub")).unwrap();
        fs::write(src.join("sub/f"), "x").unwrap();
        fs::set_permissions(src.join("sub/f"), fs::Permissions::from_mode(0o751)).unwrap();
        std::os::unix::fs::symlink("sub/f", src.join("link")).unwrap();
        let copy = d.path().join("copy");
        set_times(&src.join("sub/f"), (1_000_000_000, 0), (1_000_000_000, 5)).unwrap();
        copy_tree(&src, &copy).unwrap();
        let m = fs::metadata(copy.join("sub/f")).unwrap();
        assert_eq!((m.mtime(), m.mtime_nsec()), (1_000_000_000, 5), "copies keep modification times");
        assert_eq!(fs::read_to_string(copy.join("sub/f")).unwrap(), "x");
        assert_eq!(fs::metadata(copy.join("sub/f")).unwrap().permissions().mode() & 0o7777, 0o751);
        assert_eq!(fs::read_link(copy.join("link")).unwrap(), Path::new("sub/f"));

        normalize_times(&copy).unwrap();
        for p in ["", "sub", "sub/f"] {
            assert_eq!(fs::metadata(copy.join(p)).unwrap().mtime(), NORMALIZED_TIME, "{p}");
        }
        assert_eq!(fs::symlink_metadata(copy.join("link")).unwrap().mtime(), NORMALIZED_TIME);

        let moved = d.path().join("a/b/moved");
        move_tree(&copy, &moved).unwrap();
        assert!(moved.join("sub/f").exists() && !copy.exists());
        remove_any(&moved).unwrap();
        remove_any(&moved).unwrap();
        assert!(!moved.exists());
    }
}
