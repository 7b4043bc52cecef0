//! `strata import ROOTFS -t NAME`: an image of one layer holding a root filesystem, as
//! `docker import` makes one. ROOTFS is a directory or a tar archive (plain, gzip or zstd).
//!
//! The config is what `docker import` writes: platform, creation time, one history entry
//! ("Imported from ROOTFS") and no run settings, so a Dockerfile building FROM it gets
//! BuildKit's defaults (PATH, /bin/sh -c).

use std::fs::File;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use strata_store::Store;
use strata_store::image::write_image;
use strata_store::layer::{self, ExtractOptions, PackOptions};
use strata_store::oci::{self, Compression, History, ImageConfig, Platform};
use strata_store::reference::Reference;

use crate::cli::ImportArgs;

pub fn import(store: &Store, a: &ImportArgs) -> Result<()> {
    if !a.changes.is_empty() {
        bail!("not supported yet: --change");
    }
    let mut names = Vec::new();
    for t in &a.tags {
        names.push(Reference::parse(t).with_context(|| format!("invalid name {t:?}"))?);
    }
    let meta = std::fs::metadata(&a.rootfs).with_context(|| format!("reading {}", a.rootfs.display()))?;
    let scratch = store.snapshots.scratch()?;
    let rootfs: PathBuf = if meta.is_dir() {
        a.rootfs.clone()
    } else {
        let file = File::open(&a.rootfs).with_context(|| format!("opening {}", a.rootfs.display()))?;
        layer::extract_archive(file, &scratch.upper(), &ExtractOptions::default())
            .with_context(|| format!("extracting {}", a.rootfs.display()))?;
        scratch.upper()
    };
    let blob = layer::commit_layer(&store.blobs, &rootfs, &[], Compression::Gzip, &PackOptions::default())
        .with_context(|| format!("packing {}", a.rootfs.display()))?;
    if !meta.is_dir() {
        store.snapshots.install(&scratch.upper(), &blob.diff_id)?;
    }
    let now = oci::now_rfc3339();
    let mut config = ImageConfig::scratch(&Platform::host());
    config.config = Default::default();
    config.created = Some(now.clone());
    config.history = Some(vec![History {
        created: Some(now),
        created_by: None,
        author: None,
        comment: Some(format!("Imported from {}", a.rootfs.display())),
        empty_layer: false,
    }]);
    config.rootfs.diff_ids = vec![blob.diff_id.clone()];
    let image = write_image(&store.blobs, &config, &[blob.descriptor], None)?;
    for n in &names {
        store.layout.set(&n.to_string(), &image.descriptor)?;
    }
    println!("{}", image.manifest.config.digest);
    Ok(())
}
