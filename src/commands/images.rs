//! `strata images`, `strata inspect`, `strata tag`, `strata rmi`: the store's names.

use std::io::Write;

use anyhow::{Context, Result, bail};
use strata_store::Store;
use strata_store::digest::Digest;
use strata_store::image::Image;
use strata_store::oci::{Descriptor, Platform, media};
use strata_store::platforms;
use strata_store::reference::Reference;

use crate::cli::{ImagesArgs, InspectArgs, RmiArgs, TagArgs};

/// Resolves what a user typed (`app:1`, `127.0.0.1:5000/x`, `sha256:…`, a 12-digit prefix)
/// to a stored manifest descriptor and the full name it has, if any.
pub fn find_image(store: &Store, text: &str) -> Result<(Option<String>, Descriptor)> {
    if let Ok(r) = Reference::parse(text) {
        let name = r.to_string();
        if let Some(d) = store.layout.get(&name)? {
            return Ok((Some(name), d));
        }
    }
    let hex = text.strip_prefix("sha256:").unwrap_or(text);
    if hex.len() >= 12 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        for named in store.layout.list()? {
            if named.descriptor.digest.hex().starts_with(hex) {
                return Ok((Some(named.name), named.descriptor));
            }
        }
        if let Ok(d) = Digest::from_hex(hex)
            && store.blobs.contains(&d)
        {
            let size = store.blobs.size(&d)?;
            return Ok((None, Descriptor::new(strata_store::oci::media::OCI_MANIFEST, d, size)));
        }
    }
    bail!("image {text:?} is not in the store (strata images lists what is)")
}

pub fn images(store: &Store, args: &ImagesArgs) -> Result<()> {
    let mut out = std::io::stdout().lock();
    if !args.quiet {
        writeln!(out, "{:<60} {:<14} {:<22} {:>10}", "NAME", "IMAGE ID", "CREATED", "SIZE")?;
    }
    for named in store.layout.list()? {
        if media::is_index(&named.descriptor.media_type) {
            index_row(store, &mut out, &named.name, &named.descriptor, args.quiet)?;
            continue;
        }
        let image = match Image::load(&store.blobs, &named.descriptor) {
            Ok(i) => i,
            Err(e) => {
                writeln!(out, "{:<60} (unreadable: {e})", named.name)?;
                continue;
            }
        };
        if args.quiet {
            writeln!(out, "{}", named.descriptor.digest)?;
            continue;
        }
        let size: u64 = image.manifest.layers.iter().map(|l| l.size).sum::<u64>() + image.manifest.config.size;
        let familiar = Reference::parse(&named.name).map(|r| r.familiar()).unwrap_or(named.name.clone());
        let created = image.config.created.as_deref().unwrap_or("").chars().take(19).collect::<String>();
        writeln!(
            out,
            "{:<60} {:<14} {:<22} {:>10}",
            familiar,
            image.manifest.config.digest.short(),
            created.replace('T', " "),
            human_size(size)
        )?;
    }
    Ok(())
}

/// The images of a stored index that the store holds, with their index entries: all of a
/// multi-platform build's, the platforms builds asked for of a pulled one.
fn index_images(store: &Store, desc: &Descriptor) -> Result<Vec<(Descriptor, Option<Image>)>> {
    let index = platforms::read_index(&store.blobs, desc)?;
    Ok(index
        .manifests
        .into_iter()
        .filter(|d| media::is_manifest(&d.media_type))
        .map(|d| {
            let image = if store.blobs.contains(&d.digest) { Image::load(&store.blobs, &d).ok() } else { None };
            (d, image)
        })
        .collect())
}

/// `strata images` for an index: its digest as the ID (as docker with the containerd store
/// shows it), the size of the platforms the store holds, and which platforms those are.
fn index_row(store: &Store, out: &mut dyn Write, name: &str, desc: &Descriptor, quiet: bool) -> Result<()> {
    if quiet {
        writeln!(out, "{}", desc.digest)?;
        return Ok(());
    }
    let images = match index_images(store, desc) {
        Ok(i) => i,
        Err(e) => {
            writeln!(out, "{name:<60} (unreadable: {e})")?;
            return Ok(());
        }
    };
    let present: Vec<&Image> = images.iter().filter_map(|(_, i)| i.as_ref()).collect();
    let size: u64 =
        present.iter().map(|i| i.manifest.layers.iter().map(|l| l.size).sum::<u64>() + i.manifest.config.size).sum();
    let created = present.iter().find_map(|i| i.config.created.clone()).unwrap_or_default();
    let created = created.chars().take(19).collect::<String>().replace('T', " ");
    let platforms: Vec<String> = images
        .iter()
        .filter(|(_, i)| i.is_some())
        .filter_map(|(d, _)| d.platform.as_ref().map(|p| p.to_spec()))
        .collect();
    let familiar = Reference::parse(name).map(|r| r.familiar()).unwrap_or(name.to_string());
    writeln!(
        out,
        "{:<60} {:<14} {:<22} {:>10}  ({})",
        familiar,
        desc.digest.short(),
        created,
        human_size(size),
        platforms.join(", ")
    )?;
    Ok(())
}

/// The single-platform image `desc` names: itself, or for an index the entry for `platform`.
pub fn image_for_platform(store: &Store, desc: &Descriptor, platform: &Platform) -> Result<Image> {
    if !media::is_index(&desc.media_type) {
        return Ok(Image::load(&store.blobs, desc)?);
    }
    let index = platforms::read_index(&store.blobs, desc)?;
    let Some(child) = platforms::pick(&index, platform) else {
        let have: Vec<String> =
            index.manifests.iter().filter_map(|d| d.platform.as_ref().map(|p| p.to_spec())).collect();
        bail!("the image index {} has no {} image (it has: {})", desc.digest, platform.to_spec(), have.join(", "));
    };
    Ok(Image::load(&store.blobs, child)?)
}

/// `1.2MB` as docker prints sizes (decimal units).
pub fn human_size(n: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1000.0 && i < units.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{n}B")
    } else {
        format!("{v:.3}").trim_end_matches('0').trim_end_matches('.').to_string() + units[i]
    }
}

pub fn inspect(store: &Store, args: &InspectArgs) -> Result<()> {
    let (name, desc) = find_image(store, &args.image)?;
    if media::is_index(&desc.media_type) {
        // An index: the index itself, then each platform (manifest and config when the store
        // holds that platform's image).
        let index = platforms::read_index(&store.blobs, &desc).with_context(|| format!("reading {}", args.image))?;
        let entries: Vec<serde_json::Value> = index_images(store, &desc)?
            .into_iter()
            .map(|(d, image)| match image {
                Some(i) => serde_json::json!({
                    "Platform": d.platform.as_ref().map(|p| p.to_spec()),
                    "Descriptor": d,
                    "Manifest": i.manifest,
                    "Config": i.config,
                }),
                None => serde_json::json!({
                    "Platform": d.platform.as_ref().map(|p| p.to_spec()),
                    "Descriptor": d,
                    "Present": false,
                }),
            })
            .collect();
        let doc = serde_json::json!({ "Name": name, "Descriptor": desc, "Index": index, "Platforms": entries });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    let image = Image::load(&store.blobs, &desc).with_context(|| format!("reading image {}", args.image))?;
    let doc = serde_json::json!({
        "Name": name,
        "Descriptor": desc,
        "Manifest": image.manifest,
        "Config": image.config,
    });
    println!("{}", serde_json::to_string_pretty(&doc)?);
    Ok(())
}

pub fn tag(store: &Store, args: &TagArgs) -> Result<()> {
    let (_, desc) = find_image(store, &args.source)?;
    let target = Reference::parse(&args.target).with_context(|| format!("invalid name {:?}", args.target))?;
    store.layout.set(&target.to_string(), &desc)?;
    Ok(())
}

pub fn rmi(store: &Store, args: &RmiArgs) -> Result<()> {
    for text in &args.images {
        let name = Reference::parse(text).map(|r| r.to_string()).unwrap_or(text.clone());
        match store.layout.remove(&name)? {
            Some(d) => println!("Untagged: {name} ({})", d.digest),
            None => bail!("image {text:?} is not in the store"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_like_docker() {
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(1_087_998), "1.088MB");
        assert_eq!(human_size(2_000_000_000), "2GB");
    }
}
