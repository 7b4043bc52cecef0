//! strata's store: everything strata keeps on disk, and the registry client that fills it.
//!
//! One store root (`--root`, `STRATA_ROOT`) is an OCI image layout that other tools can read
//! (`skopeo inspect oci:ROOT:REF`, `umoci`), plus strata's own working state next to it:
//!
//! ```text
//! ROOT/oci-layout, ROOT/index.json   the OCI layout; tags are org.opencontainers.image.ref.name
//! ROOT/blobs/sha256/<hex>            every manifest, config and layer blob
//! ROOT/ingest/                       blobs being written (never read; cleaned by GC)
//! ROOT/snapshots/<id>/               unpacked layers, in overlayfs upper format
//! ROOT/cache/                        build cache records (builder)
//! ```
//!
//! The store knows nothing of Dockerfiles or build graphs: it stores, names, unpacks, packs and
//! transfers content.

pub mod blobs;
pub mod digest;
pub mod oci;
pub mod reference;
pub mod registry;
