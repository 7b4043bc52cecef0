//! Resolving base images for the frontend: the local store first (as `docker build` uses an
//! image it already has), the registry when the store lacks the name or `--pull` asks for a
//! fresh look. A pulled image's manifest and config go into the store and the name is recorded
//! in its index, so the next build finds it locally; layers are fetched later, by the builder,
//! only if a step needs them.

use std::sync::Mutex;

use strata_frontend::convert::{ImageResolver, ResolvedImage};
use strata_store::Store;
use strata_store::image::Image;
use strata_store::oci::{Platform, media};
use strata_store::reference::Reference;
use strata_store::registry::RegistryClient;

pub struct StoreResolver<'a> {
    pub store: &'a Store,
    pub registry: &'a RegistryClient,
    /// Ask the registry even when the store has the name.
    pub pull: bool,
    /// Names already resolved in this build (so `--pull` asks once per name).
    seen: Mutex<Vec<(String, ResolvedImage)>>,
}

impl<'a> StoreResolver<'a> {
    pub fn new(store: &'a Store, registry: &'a RegistryClient, pull: bool) -> StoreResolver<'a> {
        StoreResolver { store, registry, pull, seen: Mutex::new(Vec::new()) }
    }

    fn local(&self, name: &str, platform: &Platform) -> Result<Option<ResolvedImage>, String> {
        let Some(desc) = self.store.layout.get(name).map_err(|e| e.to_string())? else { return Ok(None) };
        if !media::is_manifest(&desc.media_type) {
            return Ok(None);
        }
        let image = Image::load(&self.store.blobs, &desc).map_err(|e| format!("stored image {name}: {e}"))?;
        if !platform.matches(&image.config.platform()) {
            return Ok(None);
        }
        Ok(Some(ResolvedImage { name: name.to_string(), manifest_digest: desc.digest, config: image.config }))
    }

    fn remote(&self, r: &Reference, name: &str, platform: &Platform) -> Result<ResolvedImage, String> {
        let resolved = self.registry.resolve(r, platform).map_err(|e| e.to_string())?;
        let digest = self.store.blobs.put(&resolved.manifest_bytes).map_err(|e| e.to_string())?;
        if digest != resolved.descriptor.digest {
            return Err(format!(
                "manifest digest mismatch: registry said {}, content is {digest}",
                resolved.descriptor.digest
            ));
        }
        self.registry
            .fetch_blob(r, &resolved.manifest.config, &self.store.blobs, &|_| {})
            .map_err(|e| format!("fetching the image config: {e}"))?;
        let image = Image::load(&self.store.blobs, &resolved.descriptor).map_err(|e| e.to_string())?;
        if !platform.matches(&image.config.platform()) {
            return Err(format!(
                "image is for {}, not {} (multi-platform builds are not supported yet)",
                image.config.platform().to_spec(),
                platform.to_spec()
            ));
        }
        self.store.layout.set(name, &resolved.descriptor).map_err(|e| e.to_string())?;
        Ok(ResolvedImage { name: name.to_string(), manifest_digest: resolved.descriptor.digest, config: image.config })
    }
}

impl ImageResolver for StoreResolver<'_> {
    fn resolve(&self, reference: &str, platform: &Platform) -> Result<ResolvedImage, String> {
        let r = Reference::parse(reference).map_err(|e| e.to_string())?;
        let name = r.to_string();
        if let Ok(seen) = self.seen.lock()
            && let Some((_, hit)) = seen.iter().find(|(n, _)| *n == name)
        {
            return Ok(hit.clone());
        }
        let local = if self.pull && r.digest.is_none() { None } else { self.local(&name, platform)? };
        let resolved = match local {
            Some(hit) => hit,
            None => self.remote(&r, &name, platform)?,
        };
        if let Ok(mut seen) = self.seen.lock() {
            seen.push((name, resolved.clone()));
        }
        Ok(resolved)
    }
}
