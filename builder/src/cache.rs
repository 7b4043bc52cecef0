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

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use strata_store::digest::{Digest, to_hex};
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
    dir: PathBuf,
}

impl CacheStore {
    pub fn open(cache_dir: &Path) -> Result<CacheStore, CacheError> {
        let dir = cache_dir.join("keys");
        fs::create_dir_all(&dir).map_err(|source| CacheError { path: dir.clone(), source })?;
        Ok(CacheStore { dir })
    }

    fn path(&self, key: &Digest) -> PathBuf {
        self.dir.join(format!("{}.json", key.hex()))
    }

    /// The record for `key`, if one exists and is readable. A damaged record is treated as a
    /// miss (the step runs again and rewrites it), never as an error.
    pub fn get(&self, key: &Digest) -> Option<CacheRecord> {
        let data = fs::read(self.path(key)).ok()?;
        serde_json::from_slice(&data).ok()
    }

    /// Stores a record atomically (temporary file + rename).
    pub fn put(&self, key: &Digest, record: &CacheRecord) -> Result<(), CacheError> {
        let path = self.path(key);
        let data = serde_json::to_vec(record).unwrap_or_default();
        strata_store::layout::write_atomically(&path, &data)
            .map_err(|e| CacheError { path: path.clone(), source: io::Error::other(e.to_string()) })
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
        fs::write(cache.path(&key), b"{broken").unwrap();
        assert!(cache.get(&key).is_none());
    }
}
