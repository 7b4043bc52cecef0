//! strata's store: everything strata keeps on disk, and the registry client that fills it.
//!
//! One store root (`--root`, `STRATA_ROOT`) is an OCI image layout that other tools can read
//! (`skopeo inspect oci:ROOT:REF`, `umoci`), plus strata's own working state next to it:
//!
//! ```text
//! ROOT/oci-layout, ROOT/index.json   the OCI layout; names are org.opencontainers.image.ref.name
//! ROOT/blobs/sha256/<hex>            every manifest, config and layer blob
//! ROOT/ingest/                       blobs being written (never read; cleaned by GC)
//! ROOT/snapshots/<diff_id hex>/      unpacked layers, in overlayfs upper format
//! ROOT/tmp/                          scratch directories of running steps
//! ROOT/cache/                        build cache records (written by the builder)
//! ROOT/leases/, ROOT/gc.lock          leases of running processes, the GC lock ([`lease`])
//! ```
//!
//! Every commit is atomic and durable ([`durable`]); what running processes use is protected
//! from garbage collection ([`lease`], [`gc`]); [`fsck`] verifies a store and repairs it.
//!
//! The store knows nothing of Dockerfiles or build graphs: it stores, names, unpacks, packs and
//! transfers content.

pub mod blobs;
pub mod digest;
pub mod durable;
pub mod export;
pub mod fsck;
pub mod fuzzing;
pub mod gc;
pub mod image;
pub mod layer;
pub mod layout;
pub mod lease;
pub mod oci;
pub mod platforms;
pub mod reference;
pub mod registry;
pub mod snapshots;

use std::path::{Path, PathBuf};

/// Errors opening a store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Blob(#[from] blobs::BlobError),
    #[error(transparent)]
    Layout(#[from] layout::LayoutError),
    #[error(transparent)]
    Snapshot(#[from] snapshots::SnapshotError),
}

/// One store root, opened.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    pub blobs: blobs::BlobStore,
    pub layout: layout::Layout,
    pub snapshots: snapshots::Snapshots,
}

impl Store {
    /// Opens the store at `root`, creating its directories on first use.
    pub fn open(root: &Path) -> Result<Store, StoreError> {
        Ok(Store {
            root: root.to_path_buf(),
            blobs: blobs::BlobStore::open(root)?,
            layout: layout::Layout::open(root)?,
            snapshots: snapshots::Snapshots::open(root)?,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Takes this process's lease on the store (see [`lease`]): everything the process looks up
    /// or makes from now until the lease drops is safe from `strata prune`.
    pub fn acquire_lease(&self) -> Result<std::sync::Arc<lease::Lease>, lease::LeaseError> {
        lease::Lease::acquire(&self.root)
    }

    /// Where the builder keeps its cache records.
    pub fn cache_dir(&self) -> PathBuf {
        self.root.join("cache")
    }
}
