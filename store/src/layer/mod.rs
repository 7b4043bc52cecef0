//! Layers: converting between snapshots on disk (overlayfs upper format) and layer tars
//! (OCI/Docker format), streaming, with the diff_id and blob digest computed in the same pass.
//!
//! A snapshot is a directory in overlayfs upper format ([`overlay`]): deletions are character
//! devices 0/0, opaque directories carry `trusted.overlay.opaque=y`. A layer blob is a tar
//! (plain, gzip or zstd) with Docker/OCI whiteouts: `.wh.NAME` files and `.wh..wh..opq`.
//!
//! - [`write_tar`] / [`commit_layer`]: upper directory -> tar -> sha256 (diff_id) ->
//!   compressor (gzip: in parallel, [`pgzip`]) -> blob store (which hashes the compressed
//!   bytes). The tar is byte-compatible
//!   with Go's `archive/tar` as containerd writes it ([`tar_write`]), deterministic, and an
//!   empty diff gzips to BuildKit's well-known empty layer ([`compress::EMPTY_GZIP_LAYER`]).
//! - [`unpack_layer`]: layer blob -> upper directory, converting whiteouts; [`extract_archive`]:
//!   a plain archive (ADD, `strata import`) into a directory. Both use our own tar parser
//!   ([`tar_read`]) and a confined extractor ([`unpack`]) that never touches anything outside
//!   the destination.
//!
//! Nothing here holds a whole layer in memory.

pub mod compress;
pub mod overlay;
pub mod pack;
pub mod pgzip;
pub mod tar_read;
pub mod tar_write;
pub mod unpack;

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::blobs::{BlobError, BlobStore, BlobWriter};
use crate::digest::{Digest, HashingWriter};
use crate::oci::{Compression, Descriptor};

pub use compress::{ArchiveKind, EMPTY_GZIP_LAYER, detect_archive, sniff_archive};
pub use pack::write_tar;
pub use pgzip::{GzipOptions, ParGzEncoder};
pub use unpack::{ExtractOptions, ExtractStats, UnpackOptions, extract_archive, unpack_layer};

/// Errors of packing and unpacking layers. Every variant names the entry or path involved.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    #[error("packing {path}: {context}: {source}")]
    Pack {
        path: PathBuf,
        context: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot pack {path}: {reason}")]
    PackUnsupported { path: PathBuf, reason: String },
    #[error("tar stream truncated at byte {offset}{}", in_entry(.entry))]
    Truncated { offset: u64, entry: Option<String> },
    #[error("reading the layer stream at byte {offset}{}: {source}", in_entry(.entry))]
    Stream {
        offset: u64,
        entry: Option<String>,
        #[source]
        source: io::Error,
    },
    #[error("corrupt tar header at byte {offset}{}: {reason}", in_entry(.entry))]
    BadHeader { offset: u64, entry: Option<String>, reason: String },
    #[error("tar entry {entry:?}: {reason}")]
    Entry { entry: String, reason: String },
    #[error("tar entry {entry:?}: {context}: {source}")]
    EntryIo {
        entry: String,
        context: String,
        #[source]
        source: io::Error,
    },
    #[error("layer blob should be {expected} but holds {found}")]
    CompressionMismatch { expected: &'static str, found: String },
    #[error("unsupported: {0}")]
    Unsupported(String),
    #[error("layer {what} mismatch: expected {expected}, computed {actual}")]
    DigestMismatch { what: &'static str, expected: Digest, actual: Digest },
    #[error("layer blob size mismatch: expected {expected} bytes, read {actual}")]
    SizeMismatch { expected: u64, actual: u64 },
    #[error(transparent)]
    Blob(#[from] BlobError),
}

fn in_entry(entry: &Option<String>) -> String {
    match entry {
        Some(e) => format!(" (in entry {e:?})"),
        None => String::new(),
    }
}

impl LayerError {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> LayerError {
        LayerError::Io { context: context.into(), source }
    }
    pub(crate) fn pack(path: &Path, context: &str, source: io::Error) -> LayerError {
        LayerError::Pack { path: path.to_path_buf(), context: context.to_string(), source }
    }
}

/// How to pack a layer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PackOptions {
    /// SOURCE_DATE_EPOCH: modification times later than this are written as this.
    pub source_date_epoch: Option<i64>,
    /// Level, block size and threads of gzip compression (ignored for other compressions).
    pub gzip: GzipOptions,
}

/// A committed layer blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerBlob {
    /// sha256 of the uncompressed tar (what the image config lists).
    pub diff_id: Digest,
    /// The blob: OCI layer media type for the compression, digest and size of the stored bytes.
    pub descriptor: Descriptor,
    /// True if the diff had no entries (the tar is just its end marker).
    pub empty: bool,
}

/// The empty tar: two zero blocks.
const EMPTY_TAR_LEN: usize = 1024;

/// Buffers the first KiB of the tar before starting the compressor, so that an empty tar can be
/// stored as BuildKit's canonical empty gzip blob instead of our compressor's bytes.
struct EmptyAware {
    compression: Compression,
    gzip: GzipOptions,
    head: Vec<u8>,
    blob: Option<BlobWriter>,
    enc: Option<compress::LayerEncoder<BlobWriter>>,
}

impl EmptyAware {
    fn start(&mut self) -> io::Result<()> {
        let Some(blob) = self.blob.take() else { return Ok(()) };
        let mut enc =
            compress::LayerEncoder::with_gzip(blob, self.compression, &self.gzip).map_err(io::Error::other)?;
        enc.write_all(&self.head)?;
        self.head = Vec::new();
        self.enc = Some(enc);
        Ok(())
    }

    fn finish(mut self) -> io::Result<BlobWriter> {
        if let Some(mut blob) = self.blob.take() {
            if self.compression == Compression::Gzip
                && self.head.len() == EMPTY_TAR_LEN
                && self.head.iter().all(|&b| b == 0)
            {
                blob.write_all(&EMPTY_GZIP_LAYER)?;
                return Ok(blob);
            }
            self.blob = Some(blob);
            self.start()?;
        }
        match self.enc {
            Some(enc) => enc.finish(),
            None => Err(io::Error::other("layer encoder missing")),
        }
    }
}

impl Write for EmptyAware {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(enc) = &mut self.enc {
            return enc.write(buf);
        }
        self.head.extend_from_slice(buf);
        if self.head.len() > EMPTY_TAR_LEN {
            self.start()?;
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        match &mut self.enc {
            Some(enc) => enc.flush(),
            None => Ok(()),
        }
    }
}

/// Packs `upper` (over `lowers`, top-most first) and stores the compressed tar in `blobs`, in one
/// pass: tar -> sha256 (diff_id) -> compressor -> blob writer (sha256 of the stored bytes).
pub fn commit_layer(
    blobs: &BlobStore,
    upper: &Path,
    lowers: &[PathBuf],
    compression: Compression,
    opts: &PackOptions,
) -> Result<LayerBlob, LayerError> {
    if compression == Compression::Gzip {
        opts.gzip.validate()?;
    }
    let sink = EmptyAware {
        compression,
        gzip: opts.gzip,
        head: Vec::with_capacity(EMPTY_TAR_LEN + 1),
        blob: Some(blobs.writer()?),
        enc: None,
    };
    let (hashing, entries) = pack::write_tar_counted(upper, lowers, HashingWriter::new(sink), opts)?;
    let (sink, diff_id, _tar_size) = hashing.finish();
    let blob = sink.finish().map_err(|e| LayerError::io("compressing the layer", e))?;
    let (digest, size) = blob.commit(None)?;
    Ok(LayerBlob {
        diff_id,
        descriptor: Descriptor::new(compression.oci_layer_media_type(), digest, size),
        empty: entries == 0,
    })
}
