//! The build cache: which layer a step produced, keyed by everything the step's result depends
//! on, kept in the store so every later `strata` process finds it.
//!
//! A step's key is the sha256 of a canonical JSON document ([`KeyBuilder`]) holding the step's
//! definition (argv, env, working dir, user, mounts; or the file actions), the keys of its
//! inputs (the parent step, stages it copies from), and for copies from the build context the
//! digest of exactly the selected files' names, modes and contents. Nothing time-based enters a
//! key, so an unchanged Dockerfile and context give the same keys in any process.
//!
//! A record (`ROOT/cache/keys/<key hex>.json`) stores the layer the step added: its diff_id,
//! its blob descriptor and the time it was created (so a rebuild from cache writes the same
//! history timestamps and therefore the same image digest), plus the key's input document for
//! `--explain`. A record is only trusted while its blob is in the store.
//!
//! Crash safety and GC: records are written atomically (fsynced temporary file, rename, fsynced
//! directory) after the layer blob and snapshot they name are committed, so a crash never leaves
//! a record pointing at content that was not stored. Reading a record (a cache hit) first
//! records it in the process's lease ([`strata_store::lease`]) and refreshes its modification
//! time, which is its "last used" time for `strata prune --filter until=…`/`--keep-storage`.
//! [`CacheStore`] implements [`strata_store::gc::BuildCache`], through which GC and fsck see the
//! records without knowing their format.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use strata_store::digest::{Digest, to_hex};
use strata_store::gc::{BuildCache, CacheEntry};
use strata_store::lease::{self, Item};
use strata_store::oci::Descriptor;

/// One layer of a root filesystem chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layer {
    pub diff_id: Digest,
    pub blob: Descriptor,
    /// When the step that made it finished (RFC 3339); `None` for layers of pulled images,
    /// whose times live in their own history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
}

/// A cached step result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CacheRecord {
    pub layer: Layer,
    /// The document the key was computed from, for `--explain`.
    pub inputs: serde_json::Value,
}

/// Builds a cache key from named parts. Parts are kept in a JSON object, serialized with sorted
/// keys, so the order of `add` calls does not matter and the text is reproducible.
#[derive(Debug, Default, Clone)]
pub struct KeyBuilder {
    parts: serde_json::Map<String, serde_json::Value>,
}

impl KeyBuilder {
    pub fn new(kind: &str) -> KeyBuilder {
        let mut k = KeyBuilder::default();
        k.parts.insert("kind".into(), serde_json::Value::String(kind.into()));
        k
    }

    pub fn add(mut self, name: &str, value: impl Serialize) -> KeyBuilder {
        // Our key parts are plain data; serializing them cannot fail.
        let v = serde_json::to_value(value).unwrap_or(serde_json::Value::Null);
        self.parts.insert(name.to_string(), v);
        self
    }

    /// The key and the document it hashes.
    pub fn finish(self) -> (Digest, serde_json::Value) {
        let doc = serde_json::Value::Object(self.parts);
        let bytes = serde_json::to_vec(&doc).unwrap_or_default();
        let hex = to_hex(&Sha256::digest(&bytes));
        // A sha256 hex string is always a valid digest.
        let key = Digest::from_hex(&hex).unwrap_or_else(|_| Digest::of(&bytes));
        (key, doc)
    }
}

/// Errors of the cache store.
#[derive(Debug, thiserror::Error)]
#[error("build cache {path}: {source}")]
pub struct CacheError {
    path: PathBuf,
    #[source]
    source: io::Error,
}

/// Cache records under `ROOT/cache/keys`.
#[derive(Debug, Clone)]
pub struct CacheStore {
    /// `ROOT/cache`.
    cache_dir: PathBuf,
    /// The store root (whose lease protects records).
    root: PathBuf,
    dir: PathBuf,
}

impl CacheStore {
    pub fn open(cache_dir: &Path) -> Result<CacheStore, CacheError> {
        let dir = cache_dir.join("keys");
        fs::create_dir_all(&dir).map_err(|source| CacheError { path: dir.clone(), source })?;
        let root = cache_dir.parent().unwrap_or(Path::new(".")).to_path_buf();
        Ok(CacheStore { cache_dir: cache_dir.to_path_buf(), root, dir })
    }

    fn protect(&self, key_hex: &str) -> Result<Option<lease::GcLock>, CacheError> {
        lease::protect(&self.root, &[Item::CacheRecord(key_hex.to_string())])
            .map_err(|e| CacheError { path: self.dir.clone(), source: io::Error::other(e.to_string()) })
    }

    fn path(&self, key: &Digest) -> PathBuf {
        self.dir.join(format!("{}.json", key.hex()))
    }

    /// The record for `key`, if one exists and is readable. A damaged record is treated as a
    /// miss (the step runs again and rewrites it), never as an error.
    pub fn get(&self, key: &Digest) -> Option<CacheRecord> {
        let _guard = self.protect(key.hex()).ok()?;
        let path = self.path(key);
        let data = fs::read(&path).ok()?;
        let record = serde_json::from_slice(&data).ok()?;
        // Last used now (best effort: a read-only or full store still serves hits).
        if let Ok(f) = fs::File::options().write(true).open(&path) {
            let _ = f.set_modified(SystemTime::now());
        }
        Some(record)
    }

    /// Stores a record atomically (temporary file + rename).
    pub fn put(&self, key: &Digest, record: &CacheRecord) -> Result<(), CacheError> {
        let path = self.path(key);
        let data = serde_json::to_vec(record).unwrap_or_default();
        let _guard = self.protect(key.hex())?;
        strata_store::layout::write_atomically(&path, &data)
            .map_err(|e| CacheError { path: path.clone(), source: io::Error::other(e.to_string()) })
    }
}

impl BuildCache for CacheStore {
    fn records(&self) -> Vec<CacheEntry> {
        let mut out = Vec::new();
        let Ok(entries) = fs::read_dir(&self.dir) else { return out };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(id) = name.strip_suffix(".json") else { continue };
            if name.starts_with('.') {
                continue;
            }
            let path = e.path();
            let last_used = fs::metadata(&path).and_then(|m| m.modified()).unwrap_or(SystemTime::UNIX_EPOCH);
            let mut entry = CacheEntry {
                id: id.to_string(),
                path: path.clone(),
                last_used,
                blob: None,
                snapshot: None,
                broken: None,
            };
            if Digest::from_hex(id).is_err() {
                entry.broken = Some("not named by a cache key".into());
            } else {
                match fs::read(&path).map(|d| serde_json::from_slice::<CacheRecord>(&d)) {
                    Ok(Ok(r)) => {
                        entry.blob = Some(r.layer.blob.digest);
                        entry.snapshot = Some(r.layer.diff_id);
                    }
                    Ok(Err(e)) => entry.broken = Some(format!("not a valid cache record: {e}")),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => entry.broken = Some(format!("cannot read: {e}")),
                }
            }
            out.push(entry);
        }
        out
    }

    fn remove_record(&self, id: &str) -> io::Result<()> {
        match fs::remove_file(self.dir.join(format!("{id}.json"))) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    fn mounts_dir(&self) -> Option<PathBuf> {
        Some(self.cache_dir.join("mounts"))
    }

    fn write_dirs(&self) -> Vec<PathBuf> {
        vec![self.cache_dir.clone(), self.dir.clone()]
    }

    fn history_dirs(&self) -> Vec<PathBuf> {
        vec![self.cache_dir.join("steps"), self.cache_dir.join("content")]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_store::oci::media;

    #[test]
    fn keys_ignore_part_order_and_change_with_content() {
        let (a, _) = KeyBuilder::new("exec").add("args", ["sh", "-c", "x"]).add("cwd", "/").finish();
        let (b, doc) = KeyBuilder::new("exec").add("cwd", "/").add("args", ["sh", "-c", "x"]).finish();
        assert_eq!(a, b);
        assert_eq!(doc["cwd"], "/");
        let (c, _) = KeyBuilder::new("exec").add("cwd", "/").add("args", ["sh", "-c", "y"]).finish();
        assert_ne!(a, c);
    }

    #[test]
    fn records_round_trip_and_damage_is_a_miss() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CacheStore::open(dir.path()).unwrap();
        let (key, inputs) = KeyBuilder::new("t").finish();
        assert!(cache.get(&key).is_none());
        let layer = Layer {
            diff_id: Digest::of(b"tar"),
            blob: Descriptor::new(media::OCI_LAYER_GZIP, Digest::of(b"gz"), 2),
            created: Some("2026-11-23T00:00:00Z".into()),
        };
        cache.put(&key, &CacheRecord { layer: layer.clone(), inputs }).unwrap();
        assert_eq!(cache.get(&key).unwrap().layer, layer);
        let listed = cache.records();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].blob.as_ref(), Some(&layer.blob.digest));
        assert_eq!(listed[0].snapshot.as_ref(), Some(&layer.diff_id));
        fs::write(cache.path(&key), b"{broken").unwrap();
        assert!(cache.get(&key).is_none());
        assert!(cache.records()[0].broken.as_deref().unwrap().contains("not a valid cache record"));
        cache.remove_record(key.hex()).unwrap();
        assert!(cache.records().is_empty());
    }

    #[test]
    fn a_hit_is_recorded_in_the_lease_and_refreshes_last_use() {
        let root = tempfile::tempdir().unwrap();
        let cache = CacheStore::open(&root.path().join("cache")).unwrap();
        let (key, inputs) = KeyBuilder::new("lease").finish();
        let layer = Layer {
            diff_id: Digest::of(b"t"),
            blob: Descriptor::new(media::OCI_LAYER_GZIP, Digest::of(b"g"), 1),
            created: None,
        };
        cache.put(&key, &CacheRecord { layer, inputs }).unwrap();
        let old = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        fs::File::options().write(true).open(cache.path(&key)).unwrap().set_modified(old).unwrap();
        let lease = lease::Lease::acquire(root.path()).unwrap();
        assert!(cache.get(&key).is_some());
        assert!(cache.records()[0].last_used > old, "a hit refreshes the record's last use");
        let live = lease::read_leases(root.path(), false).unwrap();
        assert!(live.protects(&Item::CacheRecord(key.hex().to_string())));
        drop(lease);
    }
}
