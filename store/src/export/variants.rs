//! Layers in other compressions, made once: the store's mapping (diff_id, compression) → blob.
//!
//! A layer's identity is its diff_id (the digest of the uncompressed tar); its blob is one
//! compressed encoding of it. A build commits each new layer in one compression; a push or an
//! export may want another (`--compression=zstd`, `compression-level=19`, `uncompressed`,
//! `force-compression=true` for base layers). Converting means decompressing the stored blob and
//! compressing it again, which for a large layer costs seconds, so the result is kept in the
//! blob store and remembered:
//!
//! ```text
//! ROOT/layer-variants/<diff_id hex>    {"gzip": DESCRIPTOR, "zstd": DESCRIPTOR, "zstd-19": …}
//! ```
//!
//! The key is the compression name, with `-LEVEL` when a level was asked for (`gzip` is "any
//! gzip encoding of this content", the default level's or a pulled one). An uncompressed
//! variant needs no record: its digest is the diff_id. A record is trusted only while its blob
//! is in the store with the recorded size, and every conversion checks that the decompressed
//! stream hashes to the diff_id the image config promises, so a wrong record or a corrupt blob
//! can never put a mismatched layer into an image. Records are best-effort caches: writing one
//! can fail or race without harm (the conversion is merely done again next time).
//!
//! Gzip at the default level uses the same encoder as layer commits, and an empty layer becomes
//! BuildKit's well-known empty blob; other levels use that parallel encoder at the level asked
//! for (Go's header: no name, mtime 0). zstd uses the `zstd` crate at level 3 by default, as BuildKit does.

use std::collections::BTreeMap;
use std::io::{self, BufReader};
use std::path::PathBuf;

use rayon::prelude::*;

use super::{ExportError, io_err};
use crate::Store;
use crate::digest::{Digest, HashingReader};
use crate::image::{Image, write_image};
use crate::layer::EMPTY_GZIP_LAYER;
use crate::layer::compress::{LayerEncoder, layer_decoder};
use crate::oci::{Compression, Descriptor, media};

/// The diff_id of the empty layer (an empty tar: 1024 zero bytes).
const EMPTY_DIFF_ID: &str = "5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef";

/// A compression to export layers in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    pub compression: Compression,
    /// `None`: the algorithm's default level.
    pub level: Option<i32>,
}

impl Target {
    /// A target, checking the level against the algorithm (gzip 0–9, zstd 1–22; BuildKit's
    /// ranges). A level for `uncompressed` is ignored, as BuildKit ignores it.
    pub fn new(compression: Compression, level: Option<i32>) -> Result<Target, ExportError> {
        let level = match (compression, level) {
            (Compression::None, _) => None,
            (Compression::Gzip, Some(l)) if !(0..=9).contains(&l) => {
                return Err(ExportError::BadLevel { compression: "gzip", level: l, allowed: "0..9" });
            }
            (Compression::Zstd, Some(l)) if !(1..=22).contains(&l) => {
                return Err(ExportError::BadLevel { compression: "zstd", level: l, allowed: "1..22" });
            }
            (_, l) => l,
        };
        Ok(Target { compression, level })
    }

    /// The record key: `gzip`, `zstd-19`, `uncompressed`.
    pub fn key(&self) -> String {
        let name = match self.compression {
            Compression::None => "uncompressed",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        };
        match self.level {
            Some(l) => format!("{name}-{l}"),
            None => name.to_string(),
        }
    }
}

/// The variant records of one store.
#[derive(Debug, Clone)]
pub struct Variants {
    dir: PathBuf,
}

type Record = BTreeMap<String, Descriptor>;

impl Variants {
    pub fn open(store: &Store) -> Variants {
        Variants { dir: store.root().join("layer-variants") }
    }

    fn path(&self, diff_id: &Digest) -> PathBuf {
        self.dir.join(diff_id.hex())
    }

    fn read(&self, diff_id: &Digest) -> Record {
        std::fs::read(self.path(diff_id)).ok().and_then(|d| serde_json::from_slice(&d).ok()).unwrap_or_default()
    }

    /// The recorded blob of `diff_id` in `target`, if its blob is present with its size.
    pub fn lookup(&self, store: &Store, diff_id: &Digest, target: Target) -> Option<Descriptor> {
        let d = self.read(diff_id).remove(&target.key())?;
        (store.blobs.size(&d.digest).ok() == Some(d.size)).then_some(d)
    }

    /// Remembers `desc` as `diff_id` in `target` (best effort).
    pub fn record(&self, diff_id: &Digest, target: Target, desc: &Descriptor) {
        let mut rec = self.read(diff_id);
        if rec.get(&target.key()) == Some(desc) {
            return;
        }
        rec.insert(target.key(), desc.clone());
        let written = std::fs::create_dir_all(&self.dir).map_err(|e| e.to_string()).and_then(|()| {
            crate::layout::write_atomically(&self.path(diff_id), &crate::oci::to_canonical_json(&rec))
                .map_err(|e| e.to_string())
        });
        if let Err(e) = written {
            tracing::debug!(%diff_id, "recording a layer variant: {e}");
        }
    }
}

/// The layer `diff_id` (stored as `blob`) encoded as `target`: `blob` itself when it already
/// is, a remembered conversion, or a new one (made, checked against `diff_id`, stored and
/// remembered).
pub fn layer_in(store: &Store, diff_id: &Digest, blob: &Descriptor, target: Target) -> Result<Descriptor, ExportError> {
    let source = media::layer_compression(&blob.media_type).ok_or_else(|| ExportError::UnknownLayer {
        digest: blob.digest.clone(),
        media_type: blob.media_type.clone(),
    })?;
    let variants = Variants::open(store);
    if target.level.is_none() && source == target.compression {
        return Ok(blob.clone());
    }
    // Whatever the blob is, remember it as "this content in that compression".
    variants.record(diff_id, Target { compression: source, level: None }, blob);
    if target.compression == Compression::None
        && let Ok(size) = store.blobs.size(diff_id)
    {
        return Ok(Descriptor::new(media::OCI_LAYER, diff_id.clone(), size));
    }
    if let Some(d) = variants.lookup(store, diff_id, target) {
        return Ok(d);
    }
    let desc = convert(store, diff_id, blob, source, target)?;
    variants.record(diff_id, target, &desc);
    Ok(desc)
}

/// Decompresses `blob` and compresses it as `target` into the blob store.
fn convert(
    store: &Store,
    diff_id: &Digest,
    blob: &Descriptor,
    source: Compression,
    target: Target,
) -> Result<Descriptor, ExportError> {
    let layer_err = |source| ExportError::Layer { digest: blob.digest.clone(), source };
    if target == (Target { compression: Compression::Gzip, level: None }) && diff_id.hex() == EMPTY_DIFF_ID {
        let d = store.blobs.put(&EMPTY_GZIP_LAYER)?;
        return Ok(Descriptor::new(media::OCI_LAYER_GZIP, d, EMPTY_GZIP_LAYER.len() as u64));
    }
    let file = store.blobs.open_blob(&blob.digest)?;
    let decoded = layer_decoder(BufReader::with_capacity(1 << 20, file), source).map_err(layer_err)?;
    let mut hashed = HashingReader::new(decoded);
    let writer = store.blobs.writer()?;
    let what = format!("converting layer {} to {}", blob.digest, target.key());
    let writer = match (target.compression, target.level) {
        (Compression::Gzip, Some(level)) => {
            // The layer commits' parallel encoder at the level asked for: deterministic, and
            // one layer no longer takes one core's time.
            let opts = crate::layer::GzipOptions::with_level(level.clamp(0, 9) as u32);
            let mut enc = crate::layer::ParGzEncoder::new(writer, &opts).map_err(layer_err)?;
            io::copy(&mut hashed, &mut enc).map_err(io_err(what.clone()))?;
            enc.finish().map_err(io_err(what.clone()))?
        }
        (Compression::Zstd, Some(level)) => {
            let mut enc = zstd::stream::write::Encoder::new(writer, level).map_err(io_err(what.clone()))?;
            io::copy(&mut hashed, &mut enc).map_err(io_err(what.clone()))?;
            enc.finish().map_err(io_err(what.clone()))?
        }
        (c, _) => {
            let mut enc = LayerEncoder::new(writer, c).map_err(layer_err)?;
            io::copy(&mut hashed, &mut enc).map_err(io_err(what.clone()))?;
            enc.finish().map_err(io_err(what.clone()))?
        }
    };
    let (_, actual, _) = hashed.finish();
    if &actual != diff_id {
        return Err(ExportError::DiffIdMismatch { digest: blob.digest.clone(), expected: diff_id.clone(), actual });
    }
    let (digest, size) = writer.commit(None)?;
    Ok(Descriptor::new(target.compression.oci_layer_media_type(), digest, size))
}

/// `image` with its layers from index `from` on (all with `from` = 0, i.e.
/// `force-compression`) in `target`, converted in parallel; the image itself when nothing
/// changes. The config is unchanged (diff_ids do not depend on compression); a new manifest is
/// stored.
pub fn convert_image(store: &Store, image: &Image, target: Target, from: usize) -> Result<Image, ExportError> {
    let layers: Vec<(usize, (&Descriptor, &Digest))> = image.layers().enumerate().collect();
    let converted: Vec<Descriptor> = layers
        .par_iter()
        .map(
            |(i, (blob, diff_id))| {
                if *i < from { Ok((*blob).clone()) } else { layer_in(store, diff_id, blob, target) }
            },
        )
        .collect::<Result<_, _>>()?;
    if converted == image.manifest.layers {
        return Ok(image.clone());
    }
    Ok(write_image(&store.blobs, &image.config, &converted, image.manifest.annotations.clone())?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::{PackOptions, commit_layer};
    use std::io::Read;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("root")).unwrap();
        (dir, store)
    }

    fn committed(store: &Store, files: &[(&str, &[u8])], c: Compression) -> crate::layer::LayerBlob {
        let src = tempfile::tempdir().unwrap();
        for (name, data) in files {
            std::fs::write(src.path().join(name), data).unwrap();
        }
        commit_layer(
            &store.blobs,
            src.path(),
            &[],
            c,
            &PackOptions { source_date_epoch: Some(0), ..PackOptions::default() },
        )
        .unwrap()
    }

    fn decompressed(store: &Store, d: &Descriptor) -> Vec<u8> {
        let c = media::layer_compression(&d.media_type).unwrap();
        let mut out = Vec::new();
        layer_decoder(store.blobs.open_blob(&d.digest).unwrap(), c).unwrap().read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn levels_are_checked_and_keyed() {
        assert_eq!(Target::new(Compression::Zstd, Some(19)).unwrap().key(), "zstd-19");
        assert_eq!(Target::new(Compression::Gzip, None).unwrap().key(), "gzip");
        assert_eq!(Target::new(Compression::None, Some(5)).unwrap().key(), "uncompressed");
        assert!(Target::new(Compression::Gzip, Some(10)).unwrap_err().to_string().contains("0..9"));
        assert!(Target::new(Compression::Zstd, Some(0)).is_err());
        assert!(Target::new(Compression::Zstd, Some(23)).is_err());
    }

    #[test]
    fn conversions_are_made_once_checked_and_equal_in_content() {
        let (_d, store) = store();
        let layer = committed(&store, &[("a", &[b'x'; 50_000]), ("b", b"hello")], Compression::Gzip);
        let zstd = Target::new(Compression::Zstd, None).unwrap();
        let z = layer_in(&store, &layer.diff_id, &layer.descriptor, zstd).unwrap();
        assert_eq!(z.media_type, media::OCI_LAYER_ZSTD);
        assert_eq!(&store.blobs.read(&z.digest).unwrap()[..4], &[0x28, 0xb5, 0x2f, 0xfd]);
        assert_eq!(Digest::of(&decompressed(&store, &z)), layer.diff_id);
        // Remembered: removing the source does not matter, the variant is found without it.
        let before = std::fs::metadata(store.blobs.path(&z.digest)).unwrap().modified().unwrap();
        store.blobs.remove(&layer.descriptor.digest).unwrap();
        assert_eq!(layer_in(&store, &layer.diff_id, &layer.descriptor, zstd).unwrap(), z);
        assert_eq!(std::fs::metadata(store.blobs.path(&z.digest)).unwrap().modified().unwrap(), before);
        // Back to gzip from the zstd blob (the gzip source is gone, so this converts again).
        let gz = layer_in(&store, &layer.diff_id, &z, Target::new(Compression::Gzip, None).unwrap()).unwrap();
        assert_eq!(gz.media_type, media::OCI_LAYER_GZIP);
        assert_eq!(Digest::of(&decompressed(&store, &gz)), layer.diff_id);
        assert_eq!(layer_in(&store, &layer.diff_id, &z, Target::new(Compression::Gzip, None).unwrap()).unwrap(), gz);
        // Levels are distinct variants; uncompressed is the diff_id itself.
        let z19 = layer_in(&store, &layer.diff_id, &z, Target::new(Compression::Zstd, Some(19)).unwrap()).unwrap();
        assert_ne!(z19.digest, z.digest);
        assert_eq!(Digest::of(&decompressed(&store, &z19)), layer.diff_id);
        let raw = layer_in(&store, &layer.diff_id, &z, Target::new(Compression::None, None).unwrap()).unwrap();
        assert_eq!((raw.digest.clone(), raw.media_type.as_str()), (layer.diff_id.clone(), media::OCI_LAYER));
        let g9 = layer_in(&store, &layer.diff_id, &raw, Target::new(Compression::Gzip, Some(9)).unwrap()).unwrap();
        assert_eq!(&store.blobs.read(&g9.digest).unwrap()[..10], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 2, 0xff]);
    }

    #[test]
    fn the_empty_layer_becomes_buildkits_blob_and_a_wrong_diff_id_is_refused() {
        let (_d, store) = store();
        let empty = committed(&store, &[], Compression::Zstd);
        assert_eq!(empty.diff_id.hex(), EMPTY_DIFF_ID);
        let gz =
            layer_in(&store, &empty.diff_id, &empty.descriptor, Target::new(Compression::Gzip, None).unwrap()).unwrap();
        assert_eq!(gz.digest.hex(), "4f4fb700ef54461cfa02571ae0db9a0dc1e0cdb5577484a6d75e68dc38e8acc1");

        let layer = committed(&store, &[("f", b"content")], Compression::Gzip);
        let lie = Digest::of(b"not this layer");
        let e = layer_in(&store, &lie, &layer.descriptor, Target::new(Compression::Zstd, None).unwrap()).unwrap_err();
        assert!(matches!(e, ExportError::DiffIdMismatch { .. }), "{e}");
        assert!(Variants::open(&store).lookup(&store, &lie, Target::new(Compression::Zstd, None).unwrap()).is_none());
    }

    #[test]
    fn images_convert_from_a_layer_on() {
        let (_d, store) = store();
        let base = committed(&store, &[("base", b"base layer")], Compression::Gzip);
        let top = committed(&store, &[("top", b"new layer")], Compression::Gzip);
        let mut config = crate::oci::ImageConfig::scratch(&crate::oci::Platform::host());
        config.rootfs.diff_ids = vec![base.diff_id.clone(), top.diff_id.clone()];
        let image =
            write_image(&store.blobs, &config, &[base.descriptor.clone(), top.descriptor.clone()], None).unwrap();
        let zstd = Target::new(Compression::Zstd, None).unwrap();
        let new_only = convert_image(&store, &image, zstd, 1).unwrap();
        assert_eq!(new_only.manifest.layers[0], base.descriptor, "base layers keep their compression");
        assert_eq!(new_only.manifest.layers[1].media_type, media::OCI_LAYER_ZSTD);
        assert_eq!(new_only.manifest.config, image.manifest.config, "same config, same image ID");
        let forced = convert_image(&store, &image, zstd, 0).unwrap();
        assert!(forced.manifest.layers.iter().all(|l| l.media_type == media::OCI_LAYER_ZSTD));
        let same = convert_image(&store, &image, Target::new(Compression::Gzip, None).unwrap(), 0).unwrap();
        assert_eq!(same.descriptor, image.descriptor);
        crate::image::Image::load(&store.blobs, &forced.descriptor).unwrap();
    }
}
