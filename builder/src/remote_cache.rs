//! The build cache outside one store: `--cache-to` exports the cache records of a build (and,
//! with `mounts=true`, the contents of its `RUN --mount=type=cache` directories) so that
//! `--cache-from` on another machine with an empty store runs none of the steps it covers.
//!
//! ## Format (documented in `docs/cache-format.md`)
//! A cache is one OCI image manifest with `artifactType: application/vnd.strata.cache.v1`:
//! - its config blob (`application/vnd.strata.cache.config.v1+json`) is a [`CacheConfig`]: the
//!   records `{key, layer}` — a step's cache key and the layer it produced (diff_id, blob
//!   descriptor, creation time, so the image rebuilt from cache has the same digest) — and the
//!   exported cache mounts `{id, diff_id, blob}`;
//! - its layers are every blob those records and mounts refer to, so a registry stores, keeps
//!   and copies them as it does any image's.
//!
//! In a registry it is a tag (`--cache-to type=registry,ref=REG/repo:cache`); on disk it is an
//! OCI image layout directory with the manifest under a name (`type=local,dest=DIR`, name
//! `cache` unless `tag=` says otherwise). The input documents behind keys are not exported:
//! they hold build-arg and environment values, which a shared cache must not reveal.
//!
//! ## Import
//! `--cache-from` reads only the manifest and config at the start of a build. When a step's key
//! misses the local cache but is among the imported records, that one layer blob is fetched,
//! recorded in the local cache, and the step is a hit; nothing else is downloaded. Exported
//! cache mounts seed local cache-mount directories that do not exist yet.
//!
//! `mode=min` exports the steps of the final image; `mode=max` every step of the build,
//! intermediate stages included.
//!
//! ## Compression
//! `compression=zstd|gzip|uncompressed` (and `compression-level`) re-encode the exported layer
//! blobs through the store's layer variants (`strata_store::export::variants`): each layer is
//! converted once and remembered, and a layer already in that encoding is sent as it is.
//!
//! ## Inline
//! `--cache-to type=inline` (or `--build-arg BUILDKIT_INLINE_CACHE=1`) writes the records of the
//! final image's steps into its own config, under `strata.cache.v1` ([`InlineCache`]: each
//! record names its layer by diff_id, since the image's manifest already lists the blobs), as
//! BuildKit's inline cache does (`mode=min` only: the blobs of other steps have nowhere to go).
//! `--cache-from REG/app:tag` then reads the cache from an image as well as from a cache
//! manifest, as with BuildKit, where `type=registry` imports both.

use std::collections::HashMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use strata_store::Store;
use strata_store::blobs::BlobStore;
use strata_store::digest::Digest;
use strata_store::export::variants::{Target, layer_in};
use strata_store::image::{Image, write_image};
use strata_store::layer::{self, PackOptions, UnpackOptions};
use strata_store::layout::Layout;
use strata_store::oci::{self, Compression, Descriptor, Manifest, Platform, media};
use strata_store::reference::Reference;
use strata_store::registry::{RegistryClient, RegistryError};

use crate::cache::{CacheRecord, Layer};

pub const ARTIFACT_TYPE: &str = "application/vnd.strata.cache.v1";
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.strata.cache.config.v1+json";
/// The name a cache has in an exported OCI layout unless `tag=` says otherwise.
pub const DEFAULT_LAYOUT_TAG: &str = "cache";

/// Errors moving caches.
#[derive(Debug, thiserror::Error)]
#[error("cache {place}: {message}")]
pub struct RemoteCacheError {
    pub place: String,
    pub message: String,
}

/// The config blob of a cache manifest.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CacheConfig {
    pub version: u32,
    #[serde(default)]
    pub records: Vec<ExportedRecord>,
    #[serde(default)]
    pub mounts: Vec<ExportedMount>,
}

/// One step: its key and the layer it made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportedRecord {
    pub key: Digest,
    pub layer: Layer,
}

/// The contents of one cache mount, as a layer blob. A cache is identified by its id and the
/// mode and owner it is created with (as in BuildKit).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportedMount {
    pub id: String,
    #[serde(default)]
    pub mode: u32,
    #[serde(default)]
    pub uid: u32,
    #[serde(default)]
    pub gid: u32,
    pub diff_id: Digest,
    pub blob: Descriptor,
}

/// The cache an image carries in its config (`strata.cache.v1`): the steps that made its
/// layers, each layer named by its diff_id (the image's manifest holds the blob).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InlineCache {
    pub version: u32,
    #[serde(default)]
    pub records: Vec<InlineRecord>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InlineRecord {
    pub key: Digest,
    pub diff_id: Digest,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
}

/// `image` with the records among `records` that made its layers written into its config
/// (a new config and manifest; the layers are unchanged), and how many it carries. Records of
/// layers the image does not have (a squashed image's, intermediate stages') are left out.
pub fn with_inline_cache(
    store: &Store,
    image: &Image,
    records: &[(Digest, CacheRecord)],
) -> Result<(Image, usize), RemoteCacheError> {
    let fail = |message: String| RemoteCacheError { place: "inline".to_string(), message };
    let layers = &image.config.rootfs.diff_ids;
    let mut inline = InlineCache { version: 1, records: Vec::new() };
    let mut keys = std::collections::HashSet::new();
    for (key, record) in records {
        if layers.contains(&record.layer.diff_id) && keys.insert(key) {
            inline.records.push(InlineRecord {
                key: key.clone(),
                diff_id: record.layer.diff_id.clone(),
                created: record.layer.created.clone(),
            });
        }
    }
    let carried = inline.records.len();
    let mut config = image.config.clone();
    config.inline_cache = Some(serde_json::to_value(&inline).map_err(|e| fail(e.to_string()))?);
    let image = write_image(&store.blobs, &config, &image.manifest.layers, image.manifest.annotations.clone())
        .map_err(|e| fail(e.to_string()))?;
    Ok((image, carried))
}

/// The records of an image's inline cache, with each layer's blob from its manifest; none if
/// the image has no inline cache.
fn inline_records(manifest: &Manifest, config: &oci::ImageConfig) -> Result<Vec<ExportedRecord>, String> {
    let Some(value) = &config.inline_cache else {
        return Ok(Vec::new());
    };
    let inline: InlineCache =
        serde_json::from_value(value.clone()).map_err(|e| format!("bad inline cache in the image config: {e}"))?;
    let blobs: HashMap<&Digest, &Descriptor> = config.rootfs.diff_ids.iter().zip(&manifest.layers).collect();
    Ok(inline
        .records
        .into_iter()
        .filter_map(|r| {
            let blob = (*blobs.get(&r.diff_id)?).clone();
            Some(ExportedRecord { key: r.key, layer: Layer { diff_id: r.diff_id, blob, created: r.created } })
        })
        .collect())
}

/// Where a cache lives.
pub trait CacheRemote: Send + Sync {
    fn place(&self) -> String;
    /// The cache manifest's bytes, or `None` if there is no cache there yet.
    fn get_manifest(&self) -> Result<Option<Vec<u8>>, String>;
    /// Copies a blob from the remote into `store` (digest-verified).
    fn get_blob(&self, desc: &Descriptor, store: &Store) -> Result<(), String>;
    /// Copies a blob from `store` to the remote, unless it is there.
    fn put_blob(&self, desc: &Descriptor, store: &Store) -> Result<(), String>;
    /// Stores the manifest (under the remote's name), after its blobs.
    fn put_manifest(&self, bytes: &[u8]) -> Result<(), String>;
}

/// A cache in an OCI image layout directory.
pub struct LayoutRemote {
    pub dir: PathBuf,
    pub tag: String,
}

impl LayoutRemote {
    fn open(&self) -> Result<(BlobStore, Layout), String> {
        let blobs = BlobStore::open(&self.dir).map_err(|e| e.to_string())?;
        let layout = Layout::open(&self.dir).map_err(|e| e.to_string())?;
        Ok((blobs, layout))
    }
}

/// Copies blob `desc` between two blob stores, verifying its digest on the way.
fn copy_blob(from: &BlobStore, to: &BlobStore, desc: &Descriptor) -> Result<(), String> {
    if to.contains(&desc.digest) {
        return Ok(());
    }
    let mut src = from.open_blob(&desc.digest).map_err(|e| e.to_string())?;
    let mut w = to.writer().map_err(|e| e.to_string())?;
    std::io::copy(&mut src, &mut w).map_err(|e| format!("copying {}: {e}", desc.digest))?;
    w.commit(Some(&desc.digest)).map(|_| ()).map_err(|e| e.to_string())
}

impl CacheRemote for LayoutRemote {
    fn place(&self) -> String {
        format!("{}:{}", self.dir.display(), self.tag)
    }

    fn get_manifest(&self) -> Result<Option<Vec<u8>>, String> {
        if !self.dir.join("index.json").exists() {
            return Ok(None);
        }
        let (blobs, layout) = self.open()?;
        match layout.get(&self.tag).map_err(|e| e.to_string())? {
            Some(d) => blobs.read(&d.digest).map(Some).map_err(|e| e.to_string()),
            None => Ok(None),
        }
    }

    fn get_blob(&self, desc: &Descriptor, store: &Store) -> Result<(), String> {
        let (blobs, _) = self.open()?;
        copy_blob(&blobs, &store.blobs, desc)
    }

    fn put_blob(&self, desc: &Descriptor, store: &Store) -> Result<(), String> {
        let (blobs, _) = self.open()?;
        copy_blob(&store.blobs, &blobs, desc)
    }

    fn put_manifest(&self, bytes: &[u8]) -> Result<(), String> {
        let (blobs, layout) = self.open()?;
        let digest = blobs.put(bytes).map_err(|e| e.to_string())?;
        let desc = Descriptor::new(media::OCI_MANIFEST, digest, bytes.len() as u64);
        layout.set(&self.tag, &desc).map_err(|e| e.to_string())
    }
}

/// A cache under a registry tag.
pub struct RegistryRemote {
    pub client: std::sync::Arc<RegistryClient>,
    pub reference: Reference,
}

impl CacheRemote for RegistryRemote {
    fn place(&self) -> String {
        self.reference.to_string()
    }

    fn get_manifest(&self) -> Result<Option<Vec<u8>>, String> {
        match self.client.resolve(&self.reference, &Platform::host()) {
            Ok(r) => Ok(Some(r.manifest_bytes)),
            // No cache pushed yet: a first build.
            Err(RegistryError::Status { status: 404, .. }) => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }

    fn get_blob(&self, desc: &Descriptor, store: &Store) -> Result<(), String> {
        self.client.fetch_blob(&self.reference, desc, &store.blobs, &|_| {}).map_err(|e| e.to_string())
    }

    fn put_blob(&self, desc: &Descriptor, store: &Store) -> Result<(), String> {
        self.client.push_blob(&self.reference, desc, &store.blobs, &|_| {}).map(|_| ()).map_err(|e| e.to_string())
    }

    fn put_manifest(&self, bytes: &[u8]) -> Result<(), String> {
        self.client.push_manifest(&self.reference, media::OCI_MANIFEST, bytes).map(|_| ()).map_err(|e| e.to_string())
    }
}

/// Exports `records` (and the cache mounts `mount_ids`, if any) to `remote`, the layers encoded
/// as `target` (`None`: as they are stored; mounts in gzip).
pub fn export(
    store: &Store,
    remote: &dyn CacheRemote,
    records: &[(Digest, CacheRecord)],
    mounts: &[CacheMountId],
    target: Option<Target>,
) -> Result<Descriptor, RemoteCacheError> {
    use rayon::prelude::*;
    let fail = |message: String| RemoteCacheError { place: remote.place(), message };
    let mut config = CacheConfig { version: 1, ..CacheConfig::default() };
    let mut blobs: Vec<Descriptor> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut keys = std::collections::HashSet::new();
    let unique: Vec<(&Digest, &CacheRecord)> =
        records.iter().filter(|(key, _)| keys.insert(key)).map(|(key, record)| (key, record)).collect();
    // Each layer in the asked encoding, converted on all cores (once: variants are remembered).
    let layers: Vec<Layer> = unique
        .par_iter()
        .map(|(_, record)| match target {
            None => Ok(record.layer.clone()),
            Some(t) => layer_in(store, &record.layer.diff_id, &record.layer.blob, t)
                .map(|blob| Layer { blob, ..record.layer.clone() })
                .map_err(|e| fail(format!("converting layer {}: {e}", record.layer.blob.digest))),
        })
        .collect::<Result<_, _>>()?;
    for ((key, _), layer) in unique.iter().zip(layers) {
        if seen.insert(layer.blob.digest.clone()) {
            blobs.push(layer.blob.clone());
        }
        config.records.push(ExportedRecord { key: (*key).clone(), layer });
    }
    for m in mounts {
        let CacheMountId { id, mode, uid, gid } = m;
        let dir = crate::exec::cache_mount_dir(store, id, *mode, *uid, *gid);
        if !dir.is_dir() {
            continue;
        }
        let mut blob = layer::commit_layer(&store.blobs, &dir, &[], Compression::Gzip, &PackOptions::default())
            .map_err(|e| fail(format!("packing cache mount {id}: {e}")))?;
        if let Some(t) = target {
            blob.descriptor = layer_in(store, &blob.diff_id, &blob.descriptor, t)
                .map_err(|e| fail(format!("converting cache mount {id}: {e}")))?;
        }
        if seen.insert(blob.descriptor.digest.clone()) {
            blobs.push(blob.descriptor.clone());
        }
        config.mounts.push(ExportedMount {
            id: id.clone(),
            mode: *mode,
            uid: *uid,
            gid: *gid,
            diff_id: blob.diff_id,
            blob: blob.descriptor,
        });
    }
    for b in &blobs {
        remote.put_blob(b, store).map_err(|e| fail(format!("uploading {}: {e}", b.digest)))?;
    }
    let config_bytes = oci::to_canonical_json(&config);
    let config_digest = store.blobs.put(&config_bytes).map_err(|e| fail(e.to_string()))?;
    let config_desc = Descriptor::new(CONFIG_MEDIA_TYPE, config_digest, config_bytes.len() as u64);
    remote.put_blob(&config_desc, store).map_err(|e| fail(format!("uploading the cache config: {e}")))?;
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(media::OCI_MANIFEST.to_string()),
        artifact_type: Some(ARTIFACT_TYPE.to_string()),
        config: config_desc,
        layers: blobs,
        subject: None,
        annotations: None,
    };
    let bytes = oci::to_canonical_json(&manifest);
    remote.put_manifest(&bytes).map_err(|e| fail(format!("storing the cache manifest: {e}")))?;
    Ok(Descriptor::new(media::OCI_MANIFEST, Digest::of(&bytes), bytes.len() as u64))
}

/// A cache mount to export: its id and the mode and owner it is created with.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct CacheMountId {
    pub id: String,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// A cache read at the start of a build, consulted on local misses.
pub struct ImportedCache {
    remote: Box<dyn CacheRemote>,
    records: HashMap<Digest, Layer>,
    mounts: Vec<ExportedMount>,
}

impl ImportedCache {
    /// Reads the cache's manifest and config (not its layers). An absent cache is empty.
    pub fn load(remote: Box<dyn CacheRemote>, store: &Store) -> Result<ImportedCache, RemoteCacheError> {
        let fail = |message: String| RemoteCacheError { place: remote.place(), message };
        let config = match remote.get_manifest().map_err(fail)? {
            None => CacheConfig::default(),
            Some(bytes) => {
                let manifest: Manifest =
                    serde_json::from_slice(&bytes).map_err(|e| fail(format!("not a cache manifest: {e}")))?;
                let is_image = [media::OCI_CONFIG, media::DOCKER_CONFIG].contains(&manifest.config.media_type.as_str());
                if !is_image
                    && (manifest.artifact_type.as_deref() != Some(ARTIFACT_TYPE)
                        || manifest.config.media_type != CONFIG_MEDIA_TYPE)
                {
                    return Err(fail(format!("not a strata cache (artifact type {:?})", manifest.artifact_type)));
                }
                remote.get_blob(&manifest.config, store).map_err(|e| fail(format!("reading the cache config: {e}")))?;
                let raw = store.blobs.read(&manifest.config.digest).map_err(|e| fail(e.to_string()))?;
                if is_image {
                    // An image: its inline cache, if it has one.
                    let config: oci::ImageConfig =
                        serde_json::from_slice(&raw).map_err(|e| fail(format!("bad image config: {e}")))?;
                    let records = inline_records(&manifest, &config).map_err(fail)?;
                    CacheConfig { version: 1, records, mounts: Vec::new() }
                } else {
                    serde_json::from_slice(&raw).map_err(|e| fail(format!("bad cache config: {e}")))?
                }
            }
        };
        let records = config.records.into_iter().map(|r| (r.key, r.layer)).collect();
        Ok(ImportedCache { remote, records, mounts: config.mounts })
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The layer an imported record holds for `key`, with its blob fetched into `store`.
    pub fn fetch(&self, key: &Digest, store: &Store) -> Option<Result<Layer, RemoteCacheError>> {
        let layer = self.records.get(key)?;
        let fetched = self
            .remote
            .get_blob(&layer.blob, store)
            .map(|()| layer.clone())
            .map_err(|message| RemoteCacheError { place: self.remote.place(), message });
        Some(fetched)
    }

    /// Fills local cache-mount directories that do not exist yet from the exported ones.
    pub fn seed_mounts(&self, store: &Store) -> Result<usize, RemoteCacheError> {
        let mut seeded = 0;
        for m in &self.mounts {
            let dir = crate::exec::cache_mount_dir(store, &m.id, m.mode, m.uid, m.gid);
            if dir.exists() {
                continue;
            }
            let fail = |message: String| RemoteCacheError { place: self.remote.place(), message };
            self.remote.get_blob(&m.blob, store).map_err(|e| fail(format!("cache mount {}: {e}", m.id)))?;
            let scratch = store.snapshots.scratch().map_err(|e| fail(e.to_string()))?;
            let blob = store.blobs.open_blob(&m.blob.digest).map_err(|e| fail(e.to_string()))?;
            let compression = media::layer_compression(&m.blob.media_type).unwrap_or(Compression::Gzip);
            let opts = UnpackOptions { expected_diff_id: Some(m.diff_id.clone()), ..UnpackOptions::default() };
            layer::unpack_layer(std::io::BufReader::new(blob), compression, &scratch.upper(), &opts)
                .map_err(|e| fail(format!("cache mount {}: {e}", m.id)))?;
            if let Some(parent) = dir.parent() {
                std::fs::create_dir_all(parent).map_err(|e| fail(e.to_string()))?;
            }
            // The directory itself gets the mode and owner the cache is created with.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(scratch.upper(), std::fs::Permissions::from_mode(m.mode))
                .and_then(|()| std::os::unix::fs::chown(scratch.upper(), Some(m.uid), Some(m.gid)))
                .map_err(|e| fail(format!("cache mount {}: {e}", m.id)))?;
            // Another build may have created it meanwhile: then it keeps its own.
            if std::fs::rename(scratch.upper(), &dir).is_ok() {
                seeded += 1;
            }
        }
        Ok(seeded)
    }
}
