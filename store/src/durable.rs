//! Making renames and new files survive a power loss, not only a process crash.
//!
//! A rename is atomic for every process at once, but the kernel may write the directory change
//! to disk before or after the renamed file's data, and in any order relative to other
//! directories. So every commit in the store follows the same order: write the content, fsync
//! it (a file with `sync_all`, a directory tree with [`sync_tree`]), rename it into place,
//! then fsync the directory that changed ([`sync_dir`]). Whatever is named after that (an index
//! entry, a cache record) is written later, so after a crash a name never points at content
//! that did not reach the disk.

use std::fs::File;
use std::io;
use std::path::Path;

/// fsyncs a directory, so that renames and creations in it are on disk.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// fsyncs the directory holding `path`.
pub fn sync_parent(path: &Path) -> io::Result<()> {
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// Flushes everything written under `dir` to disk. `syncfs` of the file system holding it: a
/// snapshot can hold thousands of files, and one syncfs is far cheaper than an fsync of each.
pub fn sync_tree(dir: &Path) -> io::Result<()> {
    let f = File::open(dir)?;
    rustix::fs::syncfs(&f).map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syncing_existing_and_missing_directories() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), b"x").unwrap();
        sync_dir(dir.path()).unwrap();
        sync_parent(&dir.path().join("f")).unwrap();
        sync_tree(dir.path()).unwrap();
        assert!(sync_dir(&dir.path().join("missing")).is_err());
    }
}
