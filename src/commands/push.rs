//! `strata push`: upload a stored image's blobs (those the registry lacks) and its manifest.

use anyhow::{Context, Result};
use strata_builder::progress::{PlainProgress, Progress};
use strata_store::Store;
use strata_store::reference::Reference;
use strata_store::registry::RegistryClient;

use crate::cli::PushArgs;
use crate::commands::images::find_image;
use crate::registry_client;

pub fn push(store: &Store, a: &PushArgs) -> Result<()> {
    let (name, _) = find_image(store, &a.image)?;
    let source = name.unwrap_or_else(|| a.image.clone());
    let dest_text = a.destination.clone().unwrap_or_else(|| source.clone());
    let dest = Reference::parse(&dest_text).with_context(|| format!("invalid name {dest_text:?}"))?;
    let registry = registry_client(store)?;
    let progress = PlainProgress::new(std::io::stderr());
    push_named(store, &registry, &a.image, &dest, &progress)
}

/// Pushes the image the store names `image` to `dest`.
fn push_named(
    store: &Store,
    registry: &RegistryClient,
    image: &str,
    dest: &Reference,
    progress: &dyn Progress,
) -> Result<()> {
    let (_, desc) = find_image(store, image)?;
    push_descriptor(store, registry, &desc, dest, progress)
}

/// Pushes the stored image `desc` to `dest` (blobs first, the manifest last).
pub fn push_descriptor(
    store: &Store,
    registry: &RegistryClient,
    desc: &strata_store::oci::Descriptor,
    dest: &Reference,
    progress: &dyn Progress,
) -> Result<()> {
    progress.message(&format!("pushing {dest}"));
    let digest =
        registry.push_image(dest, desc, &store.blobs, &|_, _| {}).with_context(|| format!("pushing {dest}"))?;
    progress.message(&format!("pushed {dest}@{digest}"));
    Ok(())
}
