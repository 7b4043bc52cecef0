//! The content-addressed blob store: `ROOT/blobs/sha256/<hex>`, as an OCI image layout holds it.
//!
//! Writes go to a temporary file under `ROOT/ingest/`, are hashed as they stream, fsynced, checked
//! against the expected digest (when the writer knows it) and only then renamed into place. A
//! blob path therefore either does not exist or holds exactly the bytes its name promises; a
//! crashed or failed write leaves only an ingest file, which is never read and is removed by GC.
//! Two processes committing the same blob race harmlessly: both renames install identical bytes.
//!
//! Crash safety and GC (see [`crate::durable`], [`crate::lease`]): after the rename the blob
//! directory is fsynced, so a name written later (index, cache record) never outlives its blob
//! in a power loss. Every look-up (`contains`, `size`, `open_blob`, `read`) and every commit
//! first records the blob in this process's lease, under the shared GC lock, so `strata prune`
//! running at the same time never deletes a blob a build has seen or made.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use crate::digest::{Digest, HashingWriter};
use crate::lease::{self, GcLock, Item};

/// Errors of the blob store.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("blob {0} is not in the store")]
    NotFound(Digest),
    #[error("content does not match its digest: expected {expected}, got {actual} ({size} bytes)")]
    DigestMismatch { expected: Digest, actual: Digest, size: u64 },
    #[error("content of {digest} has {actual} bytes, expected {expected}")]
    SizeMismatch { digest: Digest, expected: u64, actual: u64 },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Lease(#[from] lease::LeaseError),
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> BlobError {
    let context = context.into();
    move |source| BlobError::Io { context, source }
}

/// Blobs under one store root.
#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
    dir: PathBuf,
    ingest: PathBuf,
}

impl BlobStore {
    /// Opens (creating if needed) the blob directories under `root`.
    pub fn open(root: &Path) -> Result<BlobStore, BlobError> {
        let dir = root.join("blobs").join("sha256");
        let ingest = root.join("ingest");
        for d in [&dir, &ingest] {
            fs::create_dir_all(d).map_err(io_err(format!("creating {}", d.display())))?;
        }
        Ok(BlobStore { root: root.to_path_buf(), dir, ingest })
    }

    /// Records `digest` in this process's lease; the guard is held while the caller looks.
    fn protect(&self, digest: &Digest) -> Result<Option<GcLock>, BlobError> {
        Ok(lease::protect(&self.root, &[Item::Blob(digest.clone())])?)
    }

    /// Where a blob lives (whether or not it exists).
    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.dir.join(digest.hex())
    }

    /// True if the blob is present. (If it cannot be recorded in the lease, it is reported
    /// absent: the caller then fetches or makes it, and that reports the error.)
    pub fn contains(&self, digest: &Digest) -> bool {
        match self.protect(digest) {
            Ok(_guard) => self.path(digest).is_file(),
            Err(e) => {
                tracing::warn!("{e}");
                false
            }
        }
    }

    /// The size of a present blob.
    pub fn size(&self, digest: &Digest) -> Result<u64, BlobError> {
        let _guard = self.protect(digest)?;
        match fs::metadata(self.path(digest)) {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(BlobError::NotFound(digest.clone())),
            Err(e) => Err(io_err(format!("reading blob {digest}"))(e)),
        }
    }

    /// Opens a blob for reading.
    pub fn open_blob(&self, digest: &Digest) -> Result<File, BlobError> {
        let _guard = self.protect(digest)?;
        match File::open(self.path(digest)) {
            Ok(f) => Ok(f),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(BlobError::NotFound(digest.clone())),
            Err(e) => Err(io_err(format!("opening blob {digest}"))(e)),
        }
    }

    /// Reads a whole (small) blob, verifying its digest: manifests and configs are read this way,
    /// so a corrupted document is never trusted.
    pub fn read(&self, digest: &Digest) -> Result<Vec<u8>, BlobError> {
        let mut data = Vec::new();
        self.open_blob(digest)?.read_to_end(&mut data).map_err(io_err(format!("reading blob {digest}")))?;
        let actual = Digest::of(&data);
        if &actual != digest {
            return Err(BlobError::DigestMismatch { expected: digest.clone(), actual, size: data.len() as u64 });
        }
        Ok(data)
    }

    /// Stores `data`, returning its digest.
    pub fn put(&self, data: &[u8]) -> Result<Digest, BlobError> {
        let digest = Digest::of(data);
        if self.contains(&digest) {
            return Ok(digest);
        }
        let mut w = self.writer()?;
        w.write_all(data).map_err(io_err("writing blob"))?;
        w.commit(Some(&digest))?;
        Ok(digest)
    }

    /// A writer for a new blob; nothing is visible until [`BlobWriter::commit`].
    pub fn writer(&self) -> Result<BlobWriter, BlobError> {
        let tmp = tempfile::Builder::new()
            .prefix("blob-")
            .tempfile_in(&self.ingest)
            .map_err(io_err(format!("creating a temporary file in {}", self.ingest.display())))?;
        Ok(BlobWriter {
            inner: HashingWriter::new(BufWriter::with_capacity(1 << 20, tmp)),
            root: self.root.clone(),
            dir: self.dir.clone(),
        })
    }

    /// The directory holding the blobs (`ROOT/blobs/sha256`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The directory of blobs being written (`ROOT/ingest`).
    pub fn ingest_dir(&self) -> &Path {
        &self.ingest
    }

    /// Every blob digest present (unordered).
    pub fn list(&self) -> Result<Vec<Digest>, BlobError> {
        let mut out = Vec::new();
        let entries = fs::read_dir(&self.dir).map_err(io_err(format!("listing {}", self.dir.display())))?;
        for e in entries {
            let e = e.map_err(io_err(format!("listing {}", self.dir.display())))?;
            if let Some(d) = e.file_name().to_str().and_then(|n| Digest::from_hex(n).ok()) {
                out.push(d);
            }
        }
        Ok(out)
    }

    /// Removes a blob (GC only).
    pub fn remove(&self, digest: &Digest) -> Result<(), BlobError> {
        match fs::remove_file(self.path(digest)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(format!("removing blob {digest}"))(e)),
        }
    }
}

/// A blob being written. Dropping it without committing discards the data.
pub struct BlobWriter {
    inner: HashingWriter<BufWriter<tempfile::NamedTempFile>>,
    root: PathBuf,
    dir: PathBuf,
}

impl BlobWriter {
    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.inner.len()
    }

    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    /// Makes the blob visible under its digest, after checking it against `expected` (if
    /// given). Returns the digest and size.
    pub fn commit(self, expected: Option<&Digest>) -> Result<(Digest, u64), BlobError> {
        let (buffered, digest, size) = self.inner.finish();
        if let Some(expected) = expected
            && expected != &digest
        {
            return Err(BlobError::DigestMismatch { expected: expected.clone(), actual: digest, size });
        }
        let tmp = buffered.into_inner().map_err(|e| io_err("flushing blob")(e.into_error()))?;
        tmp.as_file().sync_all().map_err(io_err("syncing blob"))?;
        let dest = self.dir.join(digest.hex());
        // Recorded in the lease before it appears, so GC cannot take it before it is named.
        let _guard = lease::protect(&self.root, &[Item::Blob(digest.clone())])?;
        tmp.persist(&dest).map_err(|e| io_err(format!("installing blob {digest}"))(e.error))?;
        crate::durable::sync_dir(&self.dir).map_err(io_err(format!("syncing {}", self.dir.display())))?;
        Ok((digest, size))
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_read_and_verify() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::open(dir.path()).unwrap();
        let d = blobs.put(b"hello").unwrap();
        assert_eq!(blobs.read(&d).unwrap(), b"hello");
        assert_eq!(blobs.size(&d).unwrap(), 5);
        assert_eq!(blobs.list().unwrap(), vec![d.clone()]);
        // Corruption on disk is detected on read.
        fs::write(blobs.path(&d), b"jello").unwrap();
        assert!(matches!(blobs.read(&d), Err(BlobError::DigestMismatch { .. })));
    }

    #[test]
    fn a_wrong_expected_digest_commits_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::open(dir.path()).unwrap();
        let mut w = blobs.writer().unwrap();
        w.write_all(b"payload").unwrap();
        let wrong = Digest::of(b"something else");
        assert!(matches!(w.commit(Some(&wrong)), Err(BlobError::DigestMismatch { .. })));
        assert!(blobs.list().unwrap().is_empty());
        assert_eq!(fs::read_dir(dir.path().join("ingest")).unwrap().count(), 0, "temp file removed");
        assert!(matches!(blobs.open_blob(&wrong), Err(BlobError::NotFound(_))));
    }
}
