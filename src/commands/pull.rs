//! `strata pull NAME`: fetch an image from its registry into the store (manifest, config, and
//! every layer, digest-verified and unpacked), as `docker pull` does.

use anyhow::{Context, Result};
use strata_builder::layers;
use strata_frontend::convert::ImageResolver;
use strata_store::Store;
use strata_store::oci::Platform;

use crate::cli::PullArgs;
use crate::registry_client;
use crate::resolver::StoreResolver;

pub fn pull(store: &Store, a: &PullArgs) -> Result<()> {
    let registry = registry_client(store)?;
    let resolver = StoreResolver::new(store, &registry, true);
    let image = resolver.resolve(&a.image, &Platform::host()).map_err(|e| anyhow::anyhow!("{}: {e}", a.image))?;
    let status = |text: &str| {
        if !a.quiet {
            eprintln!("{text}");
        }
    };
    let (chain, _) = layers::pull_image(store, Some(&registry), &image.name, &image.manifest_digest, true, &status)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    layers::snapshots(store, &chain).map_err(|e| anyhow::anyhow!("{e}")).context("unpacking layers")?;
    println!("{}@{}", image.name, image.manifest_digest);
    Ok(())
}
