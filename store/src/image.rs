//! Images as the store holds them: a manifest blob naming a config blob and layer blobs.
//!
//! [`Image::load`] reads and checks an image from the blob store (digests verified, media types
//! known, as many diff_ids in the config as layers in the manifest); [`write_image`] stores a
//! config and a manifest for a list of layers and returns the new image. Writing is the only
//! place image documents are serialized, so their bytes (and so their digests) are canonical.

use crate::blobs::{BlobError, BlobStore};
use crate::digest::Digest;
use crate::oci::{self, Descriptor, ImageConfig, Manifest, media};

/// Errors reading or writing image documents.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error(transparent)]
    Blob(#[from] BlobError),
    #[error("image manifest {digest} is not valid JSON: {source}")]
    BadManifest {
        digest: Digest,
        #[source]
        source: serde_json::Error,
    },
    #[error("image config {digest} is not valid JSON: {source}")]
    BadConfig {
        digest: Digest,
        #[source]
        source: serde_json::Error,
    },
    #[error("{digest} has media type {media_type:?}, which is not an image manifest")]
    NotAManifest { digest: Digest, media_type: String },
    #[error("image {digest}: the manifest lists {layers} layers but the config lists {diff_ids} diff_ids")]
    LayerCountMismatch { digest: Digest, layers: usize, diff_ids: usize },
    #[error("image {digest}: layer {layer} has unsupported media type {media_type:?}")]
    UnknownLayerType { digest: Digest, layer: Digest, media_type: String },
}

/// A single-platform image read from the store.
#[derive(Debug, Clone)]
pub struct Image {
    /// The manifest's descriptor (media type, digest, size).
    pub descriptor: Descriptor,
    pub manifest: Manifest,
    pub config: ImageConfig,
}

impl Image {
    /// Loads and checks the image whose manifest is `descriptor`.
    pub fn load(blobs: &BlobStore, descriptor: &Descriptor) -> Result<Image, ImageError> {
        let digest = &descriptor.digest;
        if !media::is_manifest(&descriptor.media_type) {
            return Err(ImageError::NotAManifest { digest: digest.clone(), media_type: descriptor.media_type.clone() });
        }
        let raw = blobs.read(digest)?;
        let manifest: Manifest = serde_json::from_slice(&raw)
            .map_err(|source| ImageError::BadManifest { digest: digest.clone(), source })?;
        let raw_config = blobs.read(&manifest.config.digest)?;
        let config: ImageConfig = serde_json::from_slice(&raw_config)
            .map_err(|source| ImageError::BadConfig { digest: manifest.config.digest.clone(), source })?;
        if manifest.layers.len() != config.rootfs.diff_ids.len() {
            return Err(ImageError::LayerCountMismatch {
                digest: digest.clone(),
                layers: manifest.layers.len(),
                diff_ids: config.rootfs.diff_ids.len(),
            });
        }
        for l in &manifest.layers {
            if media::layer_compression(&l.media_type).is_none() {
                return Err(ImageError::UnknownLayerType {
                    digest: digest.clone(),
                    layer: l.digest.clone(),
                    media_type: l.media_type.clone(),
                });
            }
        }
        Ok(Image { descriptor: descriptor.clone(), manifest, config })
    }

    /// The image's layers with their diff_ids, bottom first.
    pub fn layers(&self) -> impl Iterator<Item = (&Descriptor, &Digest)> {
        self.manifest.layers.iter().zip(self.config.rootfs.diff_ids.iter())
    }
}

/// Stores `config` (its `rootfs.diff_ids` must already list `layers`' diff_ids) and an OCI
/// manifest for `layers`; returns the image. The layer blobs must be in the store already.
pub fn write_image(
    blobs: &BlobStore,
    config: &ImageConfig,
    layers: &[Descriptor],
    annotations: Option<std::collections::BTreeMap<String, String>>,
) -> Result<Image, ImageError> {
    let config_bytes = oci::to_canonical_json(config);
    let config_digest = blobs.put(&config_bytes)?;
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(media::OCI_MANIFEST.to_string()),
        artifact_type: None,
        config: Descriptor::new(media::OCI_CONFIG, config_digest, config_bytes.len() as u64),
        layers: layers.to_vec(),
        subject: None,
        annotations,
    };
    let manifest_bytes = oci::to_canonical_json(&manifest);
    let digest = blobs.put(&manifest_bytes)?;
    let descriptor = Descriptor::new(media::OCI_MANIFEST, digest, manifest_bytes.len() as u64);
    Ok(Image { descriptor, manifest, config: config.clone() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::Platform;

    #[test]
    fn written_images_load_back_and_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::open(dir.path()).unwrap();
        let layer = blobs.put(b"not really a tar").unwrap();
        let layer_desc = Descriptor::new(media::OCI_LAYER_GZIP, layer.clone(), 16);
        let mut config = ImageConfig::scratch(&Platform::host());
        config.rootfs.diff_ids.push(Digest::of(b"uncompressed"));
        let img = write_image(&blobs, &config, std::slice::from_ref(&layer_desc), None).unwrap();
        let back = Image::load(&blobs, &img.descriptor).unwrap();
        assert_eq!(back.config, config);
        assert_eq!(back.layers().count(), 1);

        // A config listing fewer diff_ids than layers is refused.
        let mut bad = config.clone();
        bad.rootfs.diff_ids.clear();
        let img = write_image(&blobs, &bad, &[layer_desc], None).unwrap();
        assert!(matches!(Image::load(&blobs, &img.descriptor), Err(ImageError::LayerCountMismatch { .. })));

        // An index is not an image.
        let mut idx = img.descriptor.clone();
        idx.media_type = media::OCI_INDEX.to_string();
        assert!(matches!(Image::load(&blobs, &idx), Err(ImageError::NotAManifest { .. })));
    }
}
