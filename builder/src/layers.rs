//! Getting layers onto disk: a layer's snapshot directory (unpacked from its blob on first
//! use), and a base image's layers (downloaded from its registry when the store lacks them).
//!
//! Layers of one image download and unpack in parallel; each is verified twice: the blob
//! against its digest while downloading (registry client) and the unpacked content against
//! the diff_id the image config promises (snapshot store).

use std::io::BufReader;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use strata_store::Store;
use strata_store::digest::Digest;
use strata_store::image::Image;
use strata_store::layer::{self, UnpackOptions};
use strata_store::oci::{Descriptor, media};
use strata_store::reference::Reference;
use strata_store::registry::RegistryClient;

use crate::cache::Layer;

/// How many layers of one image are fetched and unpacked at once.
const PULL_CONCURRENCY: usize = 4;

/// Errors getting layers onto disk.
#[derive(Debug, thiserror::Error)]
pub enum LayerAccessError {
    #[error("layer {digest}: {message}")]
    Layer { digest: Digest, message: String },
    #[error("image {reference}: {message}")]
    Image { reference: String, message: String },
}

/// The snapshot directory of `layer`, unpacking its blob if needed.
pub fn snapshot(store: &Store, layer: &Layer) -> Result<PathBuf, LayerAccessError> {
    let fail = |message: String| LayerAccessError::Layer { digest: layer.blob.digest.clone(), message };
    if store.snapshots.contains(&layer.diff_id) {
        return Ok(store.snapshots.path(&layer.diff_id));
    }
    let compression = media::layer_compression(&layer.blob.media_type)
        .ok_or_else(|| fail(format!("unsupported layer media type {}", layer.blob.media_type)))?;
    let file = store.blobs.open_blob(&layer.blob.digest).map_err(|e| fail(e.to_string()))?;
    store
        .snapshots
        .ensure(&layer.diff_id, |dir| {
            let opts = UnpackOptions {
                expected_digest: Some(layer.blob.digest.clone()),
                expected_size: Some(layer.blob.size),
                expected_diff_id: Some(layer.diff_id.clone()),
                ..UnpackOptions::default()
            };
            layer::unpack_layer(BufReader::with_capacity(1 << 20, file), compression, dir, &opts)
        })
        .map_err(|e| fail(e.to_string()))
}

/// The snapshot directories of a chain, bottom first; missing ones are unpacked in parallel.
pub fn snapshots(store: &Store, chain: &[Layer]) -> Result<Vec<PathBuf>, LayerAccessError> {
    use rayon::prelude::*;
    chain.par_iter().map(|l| snapshot(store, l)).collect()
}

/// Loads a base image the frontend resolved (its manifest and config are in the store) and
/// makes sure every layer blob is present, downloading missing ones from `reference`'s
/// registry; with `unpack`, each downloaded layer is also unpacked right away. `status`
/// receives progress lines. Returns the chain and whether anything was downloaded.
///
/// A build passes `unpack = false`: a base image's layers are unpacked (by [`snapshots`]) only
/// when a RUN or COPY needs its filesystem, so a build whose steps all come from a cache —
/// a CI runner rebuilding from a registry cache — only downloads what the image is made of.
pub fn pull_image(
    store: &Store,
    registry: Option<&RegistryClient>,
    reference: &str,
    manifest_digest: &Digest,
    unpack: bool,
    status: &(dyn Fn(&str) + Sync),
) -> Result<(Vec<Layer>, bool), LayerAccessError> {
    let fail = |message: String| LayerAccessError::Image { reference: reference.to_string(), message };
    let size = store.blobs.size(manifest_digest).map_err(|e| fail(format!("manifest not in the store: {e}")))?;
    let desc = Descriptor::new(media::OCI_MANIFEST, manifest_digest.clone(), size);
    // The media type only selects how to read; Image::load accepts both manifest kinds.
    let image = Image::load(&store.blobs, &desc)
        .or_else(|_| {
            Image::load(&store.blobs, &Descriptor { media_type: media::DOCKER_MANIFEST.into(), ..desc.clone() })
        })
        .map_err(|e| fail(e.to_string()))?;
    let chain: Vec<Layer> = image
        .layers()
        .map(|(blob, diff_id)| Layer { diff_id: diff_id.clone(), blob: blob.clone(), created: None })
        .collect();
    let missing: Vec<&Layer> = chain
        .iter()
        .filter(|l| !store.snapshots.contains(&l.diff_id) && !store.blobs.contains(&l.blob.digest))
        .collect();
    if missing.is_empty() {
        return Ok((chain, false));
    }
    let registry =
        registry.ok_or_else(|| fail("layers are missing from the store and no registry client is available".into()))?;
    let r = Reference::parse(reference).map_err(|e| fail(e.to_string()))?;
    let next = std::sync::Mutex::new(missing.into_iter());
    let errors = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..PULL_CONCURRENCY {
            s.spawn(|| {
                loop {
                    let Some(l) = next.lock().ok().and_then(|mut it| it.next()) else { return };
                    let done = AtomicU64::new(0);
                    let short = l.blob.digest.short().to_string();
                    status(&format!("pulling sha256:{short} {}", human(l.blob.size)));
                    let fetched = registry.fetch_blob(&r, &l.blob, &store.blobs, &|n| done.store(n, Ordering::Relaxed));
                    let result = fetched.map_err(|e| e.to_string()).and_then(|_| {
                        if !unpack {
                            return Ok(());
                        }
                        status(&format!("extracting sha256:{short}"));
                        snapshot(store, l).map(|_| ()).map_err(|e| e.to_string())
                    });
                    match result {
                        Ok(()) => status(&format!("sha256:{short} {} done", human(done.load(Ordering::Relaxed)))),
                        Err(e) => {
                            if let Ok(mut errs) = errors.lock() {
                                errs.push(format!("layer {}: {e}", l.blob.digest));
                            }
                            return;
                        }
                    }
                }
            });
        }
    });
    let errors = errors.into_inner().unwrap_or_default();
    if let Some(first) = errors.into_iter().next() {
        return Err(fail(first));
    }
    Ok((chain, true))
}

fn human(n: u64) -> String {
    if n >= 1 << 20 { format!("{:.1}MB", n as f64 / 1e6) } else { format!("{:.1}kB", n as f64 / 1e3) }
}
