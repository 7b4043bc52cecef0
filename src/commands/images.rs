//! `strata images`, `strata inspect`, `strata tag`, `strata rmi`: the store's names.

use std::io::Write;

use anyhow::{Context, Result, bail};
use strata_store::Store;
use strata_store::digest::Digest;
use strata_store::image::Image;
use strata_store::oci::Descriptor;
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
