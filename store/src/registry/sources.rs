//! Where blobs are known to be: for each blob, the registry repositories it was pulled from or
//! pushed to, so a push to another repository of the same registry can ask the registry to
//! mount the blob (`POST /v2/NAME/blobs/uploads/?mount=DIGEST&from=OTHER`, distribution-spec
//! "Mounting a blob from another repository") instead of uploading it again.
//!
//! Kept in the store as `ROOT/blob-sources/<digest hex>`, one small JSON array of
//! `"registry/repository"` strings per blob, most recent first and at most [`MAX_SOURCES`] long.
//! This is a hint, never the truth: a registry may have deleted the blob since, or the user may
//! lack pull access to the other repository; then the registry answers the mount with an
//! ordinary upload session and the blob is uploaded. So writes are best effort (a lost update
//! only costs a mount) and a damaged file reads as empty.

use std::fs;
use std::path::{Path, PathBuf};

use crate::digest::Digest;

/// Repositories remembered per blob.
pub const MAX_SOURCES: usize = 8;

/// The blob-source records of one store root.
#[derive(Debug, Clone)]
pub struct BlobSources {
    dir: PathBuf,
}

impl BlobSources {
    /// Records live in `dir` (created on first write).
    pub fn new(dir: &Path) -> BlobSources {
        BlobSources { dir: dir.to_path_buf() }
    }

    fn path(&self, digest: &Digest) -> PathBuf {
        self.dir.join(digest.hex())
    }

    /// The `registry/repository` names holding `digest`, most recent first.
    pub fn lookup(&self, digest: &Digest) -> Vec<String> {
        let Ok(data) = fs::read(self.path(digest)) else { return Vec::new() };
        serde_json::from_slice::<Vec<String>>(&data).unwrap_or_default()
    }

    /// Repositories of `registry` other than `repository` known to hold `digest`.
    pub fn mount_candidates(&self, digest: &Digest, registry: &str, repository: &str) -> Vec<String> {
        self.lookup(digest)
            .into_iter()
            .filter_map(|s| {
                let (reg, repo) = s.split_once('/')?;
                (reg == registry && repo != repository).then(|| repo.to_string())
            })
            .collect()
    }

    /// Remembers that `registry/repository` holds `digest`. Failures are logged, not returned.
    pub fn record(&self, digest: &Digest, registry: &str, repository: &str) {
        let name = format!("{registry}/{repository}");
        let mut list = self.lookup(digest);
        if list.first() == Some(&name) {
            return;
        }
        list.retain(|s| s != &name);
        list.insert(0, name);
        list.truncate(MAX_SOURCES);
        let result = fs::create_dir_all(&self.dir).map_err(|e| e.to_string()).and_then(|()| {
            let json = serde_json::to_vec(&list).map_err(|e| e.to_string())?;
            crate::layout::write_atomically(&self.path(digest), &json).map_err(|e| e.to_string())
        });
        if let Err(e) = result {
            tracing::debug!(blob = %digest, "recording the blob's source: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_most_recent_first_bounded_and_filtered() {
        let dir = tempfile::tempdir().unwrap();
        let s = BlobSources::new(&dir.path().join("blob-sources"));
        let d = Digest::of(b"layer");
        assert!(s.lookup(&d).is_empty());
        s.record(&d, "r:5000", "a/b");
        s.record(&d, "r:5000", "c");
        s.record(&d, "other", "a/b");
        s.record(&d, "r:5000", "c");
        assert_eq!(s.lookup(&d), ["r:5000/c", "other/a/b", "r:5000/a/b"]);
        s.record(&d, "r:5000", "a/b");
        assert_eq!(s.lookup(&d), ["r:5000/a/b", "r:5000/c", "other/a/b"]);
        assert_eq!(s.mount_candidates(&d, "r:5000", "a/b"), ["c"]);
        assert_eq!(s.mount_candidates(&d, "r:5000", "new"), ["a/b", "c"]);
        assert!(s.mount_candidates(&d, "elsewhere", "x").is_empty());
        for i in 0..20 {
            s.record(&d, "r", &format!("repo{i}"));
        }
        assert_eq!(s.lookup(&d).len(), MAX_SOURCES);
        assert_eq!(s.lookup(&d)[0], "r/repo19");
    }

    #[test]
    fn damaged_records_read_as_empty() {
        let dir = tempfile::tempdir().unwrap();
        let s = BlobSources::new(dir.path());
        let d = Digest::of(b"x");
        fs::write(dir.path().join(d.hex()), b"{not a list").unwrap();
        assert!(s.lookup(&d).is_empty());
        s.record(&d, "r", "a");
        assert_eq!(s.lookup(&d), ["r/a"]);
    }
}
