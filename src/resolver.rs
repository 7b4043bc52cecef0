//! Resolving base images for the frontend: the local store first (as `docker build` uses an
//! image it already has), the registry when the store lacks the name or `--pull` asks for a
//! fresh look. A pulled image's manifest and config go into the store and the name is recorded
//! in its index, so the next build finds it locally; layers are fetched later, by the builder,
//! only if a step needs them.
//!
//! Several platforms under one name: when the registry serves an index (a multi-platform
//! image), the store names the index itself and keeps the manifest and config of each platform
//! a build asked for, so `busybox:latest` for amd64 and for arm64 live side by side and neither
//! clobbers the other. A stored name that points at a single-platform manifest serves only that
//! platform; another platform is looked up in the registry. Platforms match as containerd's
//! matcher does (`strata_store::platforms`: arm64 ≡ arm64/v8).

use std::sync::Mutex;

use strata_frontend::convert::{ImageResolver, ResolvedImage};
use strata_store::Store;
use strata_store::image::Image;
use strata_store::oci::{Descriptor, Platform, media};
use strata_store::platforms;
use strata_store::reference::Reference;
use strata_store::registry::RegistryClient;

pub struct StoreResolver<'a> {
    pub store: &'a Store,
    pub registry: &'a RegistryClient,
    /// Ask the registry even when the store has the name.
    pub pull: bool,
    /// Names already resolved in this build, per platform (so `--pull` asks once per name).
    seen: Mutex<Vec<(String, Platform, ResolvedImage)>>,
}

impl<'a> StoreResolver<'a> {
    pub fn new(store: &'a Store, registry: &'a RegistryClient, pull: bool) -> StoreResolver<'a> {
        StoreResolver { store, registry, pull, seen: Mutex::new(Vec::new()) }
    }

    /// The stored image for `platform` under `name`, if the store has it complete (manifest and
    /// config; layers come later).
    fn local(&self, name: &str, platform: &Platform) -> Result<Option<ResolvedImage>, String> {
        let Some(desc) = self.store.layout.get(name).map_err(|e| e.to_string())? else { return Ok(None) };
        let manifest = if media::is_index(&desc.media_type) {
            let index =
                platforms::read_index(&self.store.blobs, &desc).map_err(|e| format!("stored image {name}: {e}"))?;
            match platforms::pick(&index, platform) {
                // A platform of a pulled index that no build asked for yet is not in the store.
                Some(child) if self.store.blobs.contains(&child.digest) => child.clone(),
                _ => return Ok(None),
            }
        } else if media::is_manifest(&desc.media_type) {
            desc
        } else {
            return Ok(None);
        };
        let image = match Image::load(&self.store.blobs, &manifest) {
            Ok(image) => image,
            // An index child whose config was never fetched: ask the registry.
            Err(_) if manifest.platform.is_some() => return Ok(None),
            Err(e) => return Err(format!("stored image {name}: {e}")),
        };
        if !platforms::same(platform, &image.config.platform()) {
            return Ok(None);
        }
        Ok(Some(ResolvedImage { name: name.to_string(), manifest_digest: manifest.digest, config: image.config }))
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
        if !platforms::same(platform, &image.config.platform()) {
            return Err(format!(
                "image is for {}, not {} (it has no {} variant)",
                image.config.platform().to_spec(),
                platform.to_spec(),
                platform.to_spec()
            ));
        }
        // The name goes to the index when there is one, so that every platform resolves from it.
        let named: Descriptor = match &resolved.index {
            Some((desc, bytes)) => {
                let stored = self.store.blobs.put(bytes).map_err(|e| e.to_string())?;
                if stored != desc.digest {
                    return Err(format!("index digest mismatch: registry said {}, content is {stored}", desc.digest));
                }
                desc.clone()
            }
            None => Descriptor { platform: None, annotations: None, ..resolved.descriptor.clone() },
        };
        self.store.layout.set(name, &named).map_err(|e| e.to_string())?;
        Ok(ResolvedImage { name: name.to_string(), manifest_digest: resolved.descriptor.digest, config: image.config })
    }
}

impl ImageResolver for StoreResolver<'_> {
    fn resolve(&self, reference: &str, platform: &Platform) -> Result<ResolvedImage, String> {
        let r = Reference::parse(reference).map_err(|e| e.to_string())?;
        let name = r.to_string();
        if let Ok(seen) = self.seen.lock()
            && let Some((_, _, hit)) = seen.iter().find(|(n, p, _)| *n == name && p == platform)
        {
            return Ok(hit.clone());
        }
        let local = if self.pull && r.digest.is_none() { None } else { self.local(&name, platform)? };
        let resolved = match local {
            Some(hit) => hit,
            None => self.remote(&r, &name, platform)?,
        };
        if let Ok(mut seen) = self.seen.lock() {
            seen.push((name, platform.clone(), resolved.clone()));
        }
        Ok(resolved)
    }
}
