//! Unpacked layers ("snapshots"): `ROOT/snapshots/<diff_id hex>/`, each one layer's changes in
//! overlayfs upper format (a deletion is a 0/0 character device, an opaque directory carries
//! `trusted.overlay.opaque=y`). A root filesystem is an overlay of a chain of them, so a layer
//! shared by many images is unpacked once and never copied.
//!
//! Snapshots are keyed by diff_id (the digest of the uncompressed layer tar) because that is
//! what identifies a layer's content independently of its compression, and what image configs
//! list. A snapshot directory appears atomically: it is built in a scratch directory under
//! `ROOT/tmp/` (same filesystem) and renamed into place, so a present snapshot is complete. Two
//! processes producing the same layer race harmlessly: the second rename fails because the
//! target exists, and the loser's copy is discarded.
//!
//! Scratch directories are also where RUN and COPY steps get their overlay `upper` and `work`
//! directories; after a step, its upper becomes the new layer's snapshot by the same rename.
//!
//! Crash safety and GC: before the rename the new tree is flushed to disk and after it the
//! snapshot directory is fsynced ([`crate::durable`]), so a snapshot that survives a power loss
//! is complete. `contains`/`ensure`/`install` record the snapshot in this process's lease under
//! the shared GC lock ([`crate::lease`]), so `strata prune` never removes a snapshot a running
//! build has looked up or made. Scratch directories of live processes are kept by GC because
//! they are newer than their process's lease.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::digest::Digest;
use crate::lease::{self, Item};

/// Errors of the snapshot directory.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    #[error("unpacking layer {expected} produced content with diff_id {actual}")]
    DiffIdMismatch { expected: Digest, actual: Digest },
    #[error("unpacking layer {diff_id}: {message}")]
    Unpack { diff_id: Digest, message: String },
    #[error(transparent)]
    Lease(#[from] lease::LeaseError),
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> SnapshotError {
    let context = context.into();
    move |source| SnapshotError::Io { context, source }
}

/// The snapshot directory of one store root.
#[derive(Debug, Clone)]
pub struct Snapshots {
    root: PathBuf,
    dir: PathBuf,
    tmp: PathBuf,
}

/// A scratch directory for one step: `upper/` and `work/` for an overlay mount, plus room for
/// anything else the step needs. Removed on drop unless its upper was installed.
#[derive(Debug)]
pub struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
    /// The overlay upper directory (created empty).
    pub fn upper(&self) -> PathBuf {
        self.dir.path().join("upper")
    }
    /// The overlay work directory (created empty).
    pub fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }
}

impl Snapshots {
    /// Opens (creating if needed) `ROOT/snapshots` and `ROOT/tmp`.
    pub fn open(root: &Path) -> Result<Snapshots, SnapshotError> {
        let dir = root.join("snapshots");
        let tmp = root.join("tmp");
        for d in [&dir, &tmp] {
            fs::create_dir_all(d).map_err(io_err(format!("creating {}", d.display())))?;
        }
        Ok(Snapshots { root: root.to_path_buf(), dir, tmp })
    }

    /// `ROOT/snapshots`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `ROOT/tmp`, the scratch directories.
    pub fn tmp_dir(&self) -> &Path {
        &self.tmp
    }

    /// Where the snapshot of `diff_id` lives (whether or not it exists).
    pub fn path(&self, diff_id: &Digest) -> PathBuf {
        self.dir.join(diff_id.hex())
    }

    /// True if the snapshot exists (recorded in the lease first; if that fails it is reported
    /// absent, and making it reports the error).
    pub fn contains(&self, diff_id: &Digest) -> bool {
        match lease::protect(&self.root, &[Item::Snapshot(diff_id.clone())]) {
            Ok(_guard) => self.path(diff_id).is_dir(),
            Err(e) => {
                tracing::warn!("{e}");
                false
            }
        }
    }

    /// A fresh scratch directory with empty `upper/` and `work/`.
    pub fn scratch(&self) -> Result<Scratch, SnapshotError> {
        let dir = tempfile::Builder::new()
            .prefix("step-")
            .tempdir_in(&self.tmp)
            .map_err(io_err(format!("creating a scratch directory in {}", self.tmp.display())))?;
        let scratch = Scratch { dir };
        for d in [scratch.upper(), scratch.work()] {
            fs::create_dir(&d).map_err(io_err(format!("creating {}", d.display())))?;
        }
        Ok(scratch)
    }

    /// Makes `dir` (a directory on the store's filesystem, e.g. a scratch upper) the snapshot of
    /// `diff_id`. If that snapshot exists already, `dir` is left where it is (its scratch
    /// directory removes it). Returns the snapshot path.
    pub fn install(&self, dir: &Path, diff_id: &Digest) -> Result<PathBuf, SnapshotError> {
        let dest = self.path(diff_id);
        let _guard = lease::protect(&self.root, &[Item::Snapshot(diff_id.clone())])?;
        if dest.is_dir() {
            return Ok(dest);
        }
        crate::durable::sync_tree(dir).map_err(io_err(format!("syncing {}", dir.display())))?;
        match fs::rename(dir, &dest) {
            Ok(()) => {
                crate::durable::sync_dir(&self.dir).map_err(io_err(format!("syncing {}", self.dir.display())))?;
                Ok(dest)
            }
            // Another step or process installed the same layer first: same content, keep theirs.
            Err(_) if dest.is_dir() => Ok(dest),
            Err(e) => Err(io_err(format!("installing snapshot {}", dest.display()))(e)),
        }
    }

    /// Ensures the snapshot of `diff_id` exists, calling `unpack(dir)` to fill an empty directory
    /// if it does not. `unpack` returns the diff_id of what it unpacked, which must match.
    pub fn ensure<E: std::fmt::Display>(
        &self,
        diff_id: &Digest,
        unpack: impl FnOnce(&Path) -> Result<Digest, E>,
    ) -> Result<PathBuf, SnapshotError> {
        if self.contains(diff_id) {
            return Ok(self.path(diff_id));
        }
        let scratch = self.scratch()?;
        let target = scratch.upper();
        let actual =
            unpack(&target).map_err(|e| SnapshotError::Unpack { diff_id: diff_id.clone(), message: e.to_string() })?;
        if &actual != diff_id {
            return Err(SnapshotError::DiffIdMismatch { expected: diff_id.clone(), actual });
        }
        self.install(&target, diff_id)
    }

    /// Every snapshot present.
    pub fn list(&self) -> Result<Vec<Digest>, SnapshotError> {
        let mut out = Vec::new();
        for e in fs::read_dir(&self.dir).map_err(io_err(format!("listing {}", self.dir.display())))? {
            let e = e.map_err(io_err(format!("listing {}", self.dir.display())))?;
            if let Some(d) = e.file_name().to_str().and_then(|n| Digest::from_hex(n).ok()) {
                out.push(d);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ensure_unpacks_once_and_checks_the_diff_id() {
        let root = tempfile::tempdir().unwrap();
        let snaps = Snapshots::open(root.path()).unwrap();
        let id = Digest::of(b"layer");
        let mut calls = 0;
        let path = snaps
            .ensure(&id, |dir| {
                calls += 1;
                fs::write(dir.join("f"), b"x")?;
                Ok::<_, io::Error>(Digest::of(b"layer"))
            })
            .unwrap();
        assert_eq!(fs::read(path.join("f")).unwrap(), b"x");
        snaps.ensure(&id, |_| -> Result<Digest, io::Error> { panic!("must not unpack twice") }).unwrap();
        assert_eq!(calls, 1);
        assert_eq!(snaps.list().unwrap(), vec![id]);

        // A wrong diff_id installs nothing.
        let other = Digest::of(b"other");
        let err = snaps.ensure(&other, |_| Ok::<_, io::Error>(Digest::of(b"nope"))).unwrap_err();
        assert!(matches!(err, SnapshotError::DiffIdMismatch { .. }));
        assert!(!snaps.contains(&other));
        // and leaves no scratch behind
        assert_eq!(fs::read_dir(root.path().join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn installing_an_existing_layer_keeps_the_first() {
        let root = tempfile::tempdir().unwrap();
        let snaps = Snapshots::open(root.path()).unwrap();
        let id = Digest::of(b"same");
        let a = snaps.scratch().unwrap();
        fs::write(a.upper().join("first"), b"").unwrap();
        snaps.install(&a.upper(), &id).unwrap();
        let b = snaps.scratch().unwrap();
        fs::write(b.upper().join("second"), b"").unwrap();
        let p = snaps.install(&b.upper(), &id).unwrap();
        assert!(p.join("first").exists() && !p.join("second").exists());
    }
}
