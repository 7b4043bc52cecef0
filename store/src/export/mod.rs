//! Getting images out of the store in the forms `docker buildx build -o` names, and in other
//! compressions than the one their layers were committed with.
//!
//! - [`variants`]: a layer in another compression (gzip, zstd, uncompressed, a level), made
//!   once and remembered per diff_id, so no layer is compressed twice for the same target;
//!   [`variants::convert_image`] rewrites an image's layer list with them.
//! - [`layout`]: an image as an OCI image layout (`type=oci`: a tarball, or a directory with
//!   `tar=false`) or as a `docker load`-able archive (`type=docker`: the same layout plus
//!   `manifest.json`, with Docker media types), written the way BuildKit's exporters write them
//!   (containerd's archive exporter).
//! - [`rootfs`]: an image's root filesystem with every layer applied (whiteouts and opaque
//!   directories resolved): into a directory (`type=local`), as one tar (`type=tar`), or, for
//!   `--squash`, the layers a build added merged into one layer over its base.
//!
//! Nothing here knows about Dockerfiles or builds: the caller says which image, which layers
//! are new, and where things go.

pub mod layout;
pub mod rootfs;
pub mod variants;

use std::io;
use std::path::PathBuf;

use crate::blobs::BlobError;
use crate::digest::Digest;
use crate::image::ImageError;
use crate::layer::LayerError;

/// Errors of exporting.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Blob(#[from] BlobError),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error("layer {digest}: {source}")]
    Layer {
        digest: Digest,
        #[source]
        source: LayerError,
    },
    #[error("layer {digest} decompresses to diff_id {actual}, but the image config says {expected}")]
    DiffIdMismatch { digest: Digest, expected: Digest, actual: Digest },
    #[error("layer {digest} has media type {media_type:?}, which strata cannot read")]
    UnknownLayer { digest: Digest, media_type: String },
    #[error("{path}: {message}")]
    Path { path: PathBuf, message: String },
    #[error("invalid compression level {level} for {compression} (allowed: {allowed})")]
    BadLevel { compression: &'static str, level: i32, allowed: &'static str },
}

pub(crate) fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> ExportError {
    let context = context.into();
    move |source| ExportError::Io { context, source }
}
