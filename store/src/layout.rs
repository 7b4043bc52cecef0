//! The OCI image layout at the store root: `oci-layout` and `index.json`, and the names (tags)
//! recorded in it.
//!
//! Every image strata builds, imports or pulls is a manifest blob listed in `index.json`; its
//! name is the descriptor's `org.opencontainers.image.ref.name` annotation, holding the full
//! normalized reference (`127.0.0.1:5000/demo/app:1`, `docker.io/library/busybox:latest`), so
//! `skopeo inspect oci:ROOT:127.0.0.1:5000/demo/app:1` and `umoci` find it. containerd's
//! `io.containerd.image.name` annotation carries the same name, as `ctr` and BuildKit's OCI
//! exporter write it. A name appears at most once; naming another manifest moves the name.
//!
//! `index.json` is small and rewritten whole: each change takes an exclusive `flock` on
//! `ROOT/index.lock`, re-reads the file, applies the change and renames a fsynced temporary file
//! over it, so concurrent `strata` processes never lose each other's names and a crash leaves
//! either the old or the new index. After the rename the directory is fsynced
//! ([`crate::durable`]), so the new index survives a power loss once `set` returns.
//! [`Layout::remove_if`] lets `strata fsck --repair` drop a broken name without racing a
//! process that re-points the same name meanwhile.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::digest::Digest;
use crate::oci::{self, Descriptor, Index};

/// The annotation OCI defines for an image's name inside a layout.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// containerd's annotation for the full image name.
pub const CONTAINERD_NAME: &str = "io.containerd.image.name";

const OCI_LAYOUT: &str = r#"{"imageLayoutVersion":"1.0.0"}"#;

/// Errors of the layout.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    #[error("{path} is not a valid OCI index: {source}")]
    BadIndex {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> LayoutError {
    let context = context.into();
    move |source| LayoutError::Io { context, source }
}

/// One named image in the layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedImage {
    pub name: String,
    pub descriptor: Descriptor,
}

/// The `index.json` of one store root.
#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    /// Opens the layout at `root`, writing `oci-layout` and an empty `index.json` if missing.
    pub fn open(root: &Path) -> Result<Layout, LayoutError> {
        fs::create_dir_all(root).map_err(io_err(format!("creating {}", root.display())))?;
        let layout = Layout { root: root.to_path_buf() };
        let marker = root.join("oci-layout");
        if !marker.exists() {
            write_atomically(&marker, OCI_LAYOUT.as_bytes())?;
        }
        if !layout.index_path().exists() {
            let _lock = layout.lock()?;
            if !layout.index_path().exists() {
                write_atomically(&layout.index_path(), &oci::to_canonical_json(&Index::empty()))?;
            }
        }
        Ok(layout)
    }

    fn index_path(&self) -> PathBuf {
        self.root.join("index.json")
    }

    fn lock(&self) -> Result<IndexLock, LayoutError> {
        let path = self.root.join("index.lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err(format!("opening {}", path.display())))?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| io_err(format!("locking {}", path.display()))(e.into()))?;
        Ok(IndexLock { _file: file })
    }

    /// The index as stored.
    pub fn read_index(&self) -> Result<Index, LayoutError> {
        let path = self.index_path();
        let data = fs::read(&path).map_err(io_err(format!("reading {}", path.display())))?;
        serde_json::from_slice(&data).map_err(|source| LayoutError::BadIndex { path, source })
    }

    /// Every named image, in index order.
    pub fn list(&self) -> Result<Vec<NamedImage>, LayoutError> {
        Ok(self
            .read_index()?
            .manifests
            .into_iter()
            .filter_map(|d| {
                let name = d.annotation(REF_NAME)?.to_string();
                Some(NamedImage { name, descriptor: d })
            })
            .collect())
    }

    /// The descriptor named `name`, if any.
    pub fn get(&self, name: &str) -> Result<Option<Descriptor>, LayoutError> {
        Ok(self.list()?.into_iter().find(|n| n.name == name).map(|n| n.descriptor))
    }

    /// Names `descriptor` `name`, replacing whatever the name pointed at before. The descriptor's
    /// other annotations are dropped; the name annotations are set.
    pub fn set(&self, name: &str, descriptor: &Descriptor) -> Result<(), LayoutError> {
        let mut named = descriptor.clone();
        let annotations = named.annotations.get_or_insert_with(Default::default);
        annotations.clear();
        annotations.insert(CONTAINERD_NAME.to_string(), name.to_string());
        annotations.insert(REF_NAME.to_string(), name.to_string());
        self.update(|index| {
            index.manifests.retain(|d| d.annotation(REF_NAME) != Some(name));
            index.manifests.push(named);
        })
    }

    /// Removes a name; returns the descriptor it pointed at.
    pub fn remove(&self, name: &str) -> Result<Option<Descriptor>, LayoutError> {
        let mut removed = None;
        self.update(|index| {
            if let Some(i) = index.manifests.iter().position(|d| d.annotation(REF_NAME) == Some(name)) {
                removed = Some(index.manifests.remove(i));
            }
        })?;
        Ok(removed)
    }

    /// Removes `name` only if it still points at `digest` (repairs must not undo a newer
    /// name). Returns whether it was removed.
    pub fn remove_if(&self, name: &str, digest: &Digest) -> Result<bool, LayoutError> {
        let mut removed = false;
        self.update(|index| {
            let before = index.manifests.len();
            index.manifests.retain(|d| !(d.annotation(REF_NAME) == Some(name) && &d.digest == digest));
            removed = index.manifests.len() != before;
        })?;
        Ok(removed)
    }

    /// Replaces an unreadable `index.json` with an empty index, keeping the damaged file next to
    /// it as `index.json.damaged` (for `strata fsck --repair`). Does nothing if the index reads.
    pub fn reset_damaged_index(&self) -> Result<bool, LayoutError> {
        let _lock = self.lock()?;
        if self.read_index().is_ok() {
            return Ok(false);
        }
        let path = self.index_path();
        let aside = self.root.join("index.json.damaged");
        match fs::rename(&path, &aside) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(format!("moving {} aside", path.display()))(e)),
        }
        write_atomically(&path, &oci::to_canonical_json(&Index::empty()))?;
        Ok(true)
    }

    /// Rewrites `oci-layout` if it is missing or does not say `{"imageLayoutVersion":"1.0.0"}`.
    /// Returns whether it had to.
    pub fn repair_marker(&self) -> Result<bool, LayoutError> {
        if self.marker_ok() {
            return Ok(false);
        }
        write_atomically(&self.root.join("oci-layout"), OCI_LAYOUT.as_bytes())?;
        Ok(true)
    }

    /// True if `oci-layout` is present and valid.
    pub fn marker_ok(&self) -> bool {
        fs::read(self.root.join("oci-layout"))
            .ok()
            .and_then(|d| serde_json::from_slice::<serde_json::Value>(&d).ok())
            .is_some_and(|v| v["imageLayoutVersion"] == "1.0.0")
    }

    /// Every manifest digest the index references (the GC roots of the layout).
    pub fn referenced(&self) -> Result<Vec<Digest>, LayoutError> {
        Ok(self.read_index()?.manifests.into_iter().map(|d| d.digest).collect())
    }

    fn update(&self, change: impl FnOnce(&mut Index)) -> Result<(), LayoutError> {
        let _lock = self.lock()?;
        let mut index = self.read_index()?;
        change(&mut index);
        write_atomically(&self.index_path(), &oci::to_canonical_json(&index))
    }
}

/// Held while `index.json` is being changed; the flock is released when the file closes.
struct IndexLock {
    _file: File,
}

/// Writes `data` to `path` via a fsynced temporary file in the same directory and a rename, so
/// readers see the old or the new content, never a mix; then fsyncs the directory, so the new
/// content is what a power loss leaves. A failed write (a full disk) removes the temporary file
/// and leaves `path` as it was.
pub fn write_atomically(path: &Path, data: &[u8]) -> Result<(), LayoutError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(io_err(format!("creating a temporary file in {}", dir.display())))?;
    tmp.write_all(data).map_err(io_err(format!("writing {}", path.display())))?;
    tmp.as_file().sync_all().map_err(io_err(format!("syncing {}", path.display())))?;
    tmp.persist(path).map_err(|e| io_err(format!("replacing {}", path.display()))(e.error))?;
    crate::durable::sync_dir(dir).map_err(io_err(format!("syncing {}", dir.display())))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::media;

    fn desc(data: &[u8]) -> Descriptor {
        Descriptor::new(media::OCI_MANIFEST, Digest::of(data), data.len() as u64)
    }

    #[test]
    fn names_are_set_moved_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::open(dir.path()).unwrap();
        assert_eq!(fs::read_to_string(dir.path().join("oci-layout")).unwrap(), OCI_LAYOUT);
        assert!(layout.list().unwrap().is_empty());

        let (a, b) = (desc(b"a"), desc(b"b"));
        layout.set("127.0.0.1:5000/demo/app:1", &a).unwrap();
        layout.set("docker.io/library/x:latest", &a).unwrap();
        assert_eq!(layout.get("127.0.0.1:5000/demo/app:1").unwrap().unwrap().digest, a.digest);

        // Naming another manifest moves the name instead of adding a second entry.
        layout.set("127.0.0.1:5000/demo/app:1", &b).unwrap();
        let names: Vec<_> = layout.list().unwrap().into_iter().map(|n| (n.name, n.descriptor.digest)).collect();
        assert_eq!(
            names,
            vec![
                ("docker.io/library/x:latest".to_string(), a.digest.clone()),
                ("127.0.0.1:5000/demo/app:1".to_string(), b.digest.clone())
            ]
        );
        let stored = layout.get("127.0.0.1:5000/demo/app:1").unwrap().unwrap();
        assert_eq!(stored.annotation(CONTAINERD_NAME), Some("127.0.0.1:5000/demo/app:1"));

        assert_eq!(layout.remove("docker.io/library/x:latest").unwrap().map(|d| d.digest), Some(a.digest));
        assert_eq!(layout.remove("docker.io/library/x:latest").unwrap(), None);
        assert_eq!(layout.referenced().unwrap(), vec![b.digest]);
    }

    #[test]
    fn concurrent_writers_lose_no_names() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::open(dir.path()).unwrap();
        std::thread::scope(|s| {
            for t in 0..4 {
                let layout = Layout::open(dir.path()).unwrap();
                s.spawn(move || {
                    for i in 0..25 {
                        let d = desc(format!("{t}-{i}").as_bytes());
                        layout.set(&format!("r/t{t}:{i}"), &d).unwrap();
                    }
                });
            }
        });
        assert_eq!(layout.list().unwrap().len(), 100);
    }

    #[test]
    fn a_corrupt_index_is_reported_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::open(dir.path()).unwrap();
        fs::write(dir.path().join("index.json"), b"{not json").unwrap();
        let err = layout.list().unwrap_err().to_string();
        assert!(err.contains("index.json") && err.contains("not a valid OCI index"), "{err}");
        assert!(layout.reset_damaged_index().unwrap());
        assert!(layout.list().unwrap().is_empty());
        assert_eq!(fs::read(dir.path().join("index.json.damaged")).unwrap(), b"{not json");
        assert!(!layout.reset_damaged_index().unwrap(), "a readable index is left alone");
    }

    #[test]
    fn remove_if_only_removes_the_name_it_was_asked_about() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::open(dir.path()).unwrap();
        let (a, b) = (desc(b"a"), desc(b"b"));
        layout.set("r/x:1", &b).unwrap();
        assert!(!layout.remove_if("r/x:1", &a.digest).unwrap(), "re-pointed meanwhile: kept");
        assert!(layout.remove_if("r/x:1", &b.digest).unwrap());
        assert!(layout.list().unwrap().is_empty());
        fs::write(dir.path().join("oci-layout"), b"{}").unwrap();
        assert!(!layout.marker_ok());
        assert!(layout.repair_marker().unwrap());
        assert!(layout.marker_ok());
    }
}
