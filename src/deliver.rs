//! Delivering a build's result to its outputs (`-o`, see `outputs.rs`; the local store by
//! default): named in the store, pushed, written as an OCI or docker archive, or its root
//! filesystem written out; then `--iidfile`, `--metadata-file` and `-q`'s image ID. Shared by
//! Dockerfile and buildpacks builds. Each image output gets its layers in its own compression
//! (converted once, see `strata_store::export::variants`); `--squash` merges the new layers
//! before delivery. Everything about the outputs is checked by [`Delivery::from_args`] before
//! anything is built.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result, bail};
use strata_builder::cache::Layer;
use strata_builder::layers;
use strata_builder::progress::Progress;
use strata_store::Store;
use strata_store::digest::Digest;
use strata_store::export::layout::{self, Format, LayoutOptions};
use strata_store::export::rootfs::{self, Deletions, Placement};
use strata_store::export::variants::{Target, convert_image};
use strata_store::image::{Image, write_image};
use strata_store::layer::PackOptions;
use strata_store::oci::{Compression, Descriptor, History, Platform};
use strata_store::platforms;
use strata_store::reference::Reference;
use strata_store::registry::RegistryClient;

use crate::cli::BuildArgs;
use crate::commands::push::push_descriptor;
use crate::outputs::{self, Dest, Kind, Output};

/// The outputs of a build, parsed and checked.
pub struct Delivery {
    pub outs: Vec<Output>,
    /// Each output's layer compression (unused by file outputs).
    pub targets: Vec<Target>,
    /// Each output's names: its own `name=`, else the `-t` tags.
    pub names_of: Vec<Vec<Reference>>,
    /// The compression new layers are committed in: the first image output's (uncompressed
    /// when it asks for a level, so that the one conversion to that level is the only one).
    pub commit_compression: Compression,
}

impl Delivery {
    /// From `-o`, `--push`, `--compression`, `--compression-level` and `-t`.
    pub fn from_args(a: &BuildArgs) -> Result<Delivery> {
        let outs = parse_outputs(a)?;
        let flag_compression =
            a.compression.as_deref().map(outputs::parse_compression).transpose().map_err(|e| anyhow::anyhow!(e))?;
        let mut targets = Vec::new();
        for o in &outs {
            let c = o.compression.or(flag_compression).unwrap_or(Compression::Gzip);
            let t = Target::new(c, o.compression_level.or(a.compression_level)).map_err(|e| anyhow::anyhow!("{e}"))?;
            targets.push(t);
        }
        let commit_compression = match outs.iter().zip(&targets).find(|(o, _)| o.kind.is_image()) {
            Some((_, t)) if t.level.is_some() => Compression::None,
            Some((_, t)) => t.compression,
            None => Compression::Gzip,
        };
        let mut tags = Vec::new();
        for t in &a.tags {
            tags.push(Reference::parse(t).with_context(|| format!("invalid tag {t:?}"))?);
        }
        let mut names_of = Vec::new();
        for o in &outs {
            let mut names = Vec::new();
            for n in &o.names {
                names.push(Reference::parse(n).with_context(|| format!("invalid name {n:?} in --output"))?);
            }
            if names.is_empty() {
                names = tags.clone();
            }
            if o.push && names.is_empty() {
                bail!("pushing needs at least one -t NAME (or name= in --output) to push to");
            }
            names_of.push(names);
        }
        Ok(Delivery { outs, targets, names_of, commit_compression })
    }

    /// Outputs that cannot hold several platforms yet: refused before anything is built. (buildx's
    /// `docker` exporter refuses manifest lists too.) `type=oci` writes the index.
    pub fn refuse_for_multi_platform(&self) -> Result<()> {
        for o in &self.outs {
            let what = match o.kind {
                Kind::Oci if o.oci_media_types == Some(false) => "-o type=oci,oci-mediatypes=false",
                Kind::Docker => "-o type=docker (docker load takes no image index)",
                Kind::Tar => "-o type=tar",
                _ => continue,
            };
            bail!("not supported yet: {what} with several platforms (build one --platform per archive)");
        }
        Ok(())
    }
}

/// What a build made: one image per platform, each with how many of its leading layers are
/// its base image's.
pub struct Built {
    pub images: Vec<Image>,
    pub bases: Vec<usize>,
    pub platforms: Vec<Platform>,
}

/// Delivers `built` to every output of `d`; `epoch` (SOURCE_DATE_EPOCH) dates the archives.
pub fn deliver(
    store: &Store,
    registry: &RegistryClient,
    progress: &dyn Progress,
    a: &BuildArgs,
    d: &Delivery,
    built: &Built,
    epoch: Option<i64>,
) -> Result<()> {
    // The image ID: the config digest of a single-platform image, the index digest of several.
    let multi = built.platforms.len() > 1;
    let id = if multi {
        platform_index(store, &built.images, &built.platforms)?.digest
    } else {
        built.images[0].manifest.config.digest.clone()
    };
    if let Some(path) = &a.iidfile {
        std::fs::write(path, id.to_string()).with_context(|| format!("writing {}", path.display()))?;
    }

    let created = match epoch {
        Some(e) => strata_store::oci::rfc3339(e, 0),
        None => strata_store::oci::now_rfc3339(),
    };
    let mut exported: Option<(Descriptor, Option<Digest>, Vec<Reference>)> = None;
    for ((o, target), names) in d.outs.iter().zip(&d.targets).zip(&d.names_of) {
        if o.kind.is_image() {
            let force = o.force_compression || a.force_compression;
            let mut converted = Vec::new();
            for (image, base) in built.images.iter().zip(&built.bases) {
                let from = if force { 0 } else { *base };
                converted
                    .push(convert_image(store, image, *target, from).context("converting the layers' compression")?);
            }
            let (desc, config_digest) = if multi {
                (platform_index(store, &converted, &built.platforms)?, None)
            } else {
                (converted[0].descriptor.clone(), Some(converted[0].manifest.config.digest.clone()))
            };
            match o.kind {
                Kind::Image | Kind::Registry => {
                    for t in names {
                        store.layout.set(&t.to_string(), &desc)?;
                        progress.message(&format!("naming to {t} done"));
                    }
                    if multi {
                        progress.message(&format!("writing image index {}", desc.digest));
                    } else {
                        progress.message(&format!("writing image {id} (manifest {})", desc.digest));
                    }
                    if o.push {
                        for t in names {
                            push_descriptor(store, registry, &desc, t, progress)?;
                        }
                    }
                }
                _ => {
                    let opts = LayoutOptions {
                        format: if o.kind == Kind::Oci { Format::Oci } else { Format::Docker },
                        names: names.clone(),
                        created: Some(created.clone()),
                        oci_media_types: o.oci_media_types.unwrap_or(o.kind == Kind::Oci),
                    };
                    let dest = o.dest.as_ref().context("an archive output without dest")?;
                    match dest {
                        Dest::Path(p) if !o.tar => {
                            layout::write_dir(&store.blobs, &desc, &opts, p)
                                .with_context(|| format!("writing {}", p.display()))?;
                        }
                        _ => write_stream(dest, |w| {
                            layout::write_tar(&store.blobs, &desc, &opts, w)?;
                            Ok(())
                        })?,
                    }
                    progress.message(&format!("exported image {} to {}", desc.digest, dest_name(dest)));
                }
            }
            if exported.is_none() {
                exported = Some((desc, config_digest, names.clone()));
            }
        } else {
            let dest = o.dest.as_ref().context("a file output without dest")?;
            for (image, p) in built.images.iter().zip(&built.platforms) {
                let snaps = layers::snapshots(store, &chain_of(image)).map_err(|e| anyhow::anyhow!("{e}"))?;
                match (o.kind, dest) {
                    (Kind::Local, Dest::Path(dir)) => {
                        // Several platforms: DIR/linux_amd64, DIR/linux_arm64, as buildx writes.
                        let dir = if multi { dir.join(platforms::dir_name(p)) } else { dir.clone() };
                        rootfs::apply_layers(&snaps, &dir, Placement::Copy, Deletions::Apply)
                            .with_context(|| format!("writing the root filesystem to {}", dir.display()))?;
                        progress.message(&format!("exported the root filesystem to {}", dir.display()));
                    }
                    _ => {
                        write_stream(dest, |w| {
                            rootfs::write_rootfs_tar(store, &snaps, w)?;
                            Ok(())
                        })?;
                        progress.message(&format!("exported the root filesystem to {}", dest_name(dest)));
                    }
                }
            }
        }
    }
    if let Some(path) = &a.metadata_file {
        write_metadata(path, exported.as_ref())?;
    }
    if a.quiet {
        println!("{id}");
    }
    Ok(())
}

/// The outputs to deliver to: `-o` values, `--push` as `type=registry`; the store by default.
fn parse_outputs(a: &BuildArgs) -> Result<Vec<Output>> {
    let mut outs = Vec::new();
    for spec in &a.output {
        outs.push(outputs::parse_output(spec).map_err(|e| anyhow::anyhow!(e))?);
    }
    if outs.is_empty() {
        let mut image = Output::image();
        image.push = a.push;
        outs.push(image);
    } else if a.push && !outs.iter().any(|o| o.push) {
        outs.push(Output { kind: Kind::Registry, push: true, ..Output::image() });
    }
    let file_outputs: Vec<&Dest> = outs.iter().filter_map(|o| o.dest.as_ref()).collect();
    if file_outputs.iter().filter(|d| **d == &Dest::Stdout).count() > 1 {
        bail!("only one output can go to stdout (dest=-)");
    }
    Ok(outs)
}

/// How many leading layers of `image` are the base image's (its config, as the frontend took
/// it from FROM, lists them); 0 when they do not line up.
pub fn base_layer_count(base: &strata_store::oci::ImageConfig, image: &Image) -> usize {
    let ids = &base.rootfs.diff_ids;
    if image.config.rootfs.diff_ids.starts_with(ids) { ids.len() } else { 0 }
}

/// The layers of a stored image as the builder's chain (for snapshots).
fn chain_of(image: &Image) -> Vec<Layer> {
    image
        .layers()
        .map(|(blob, diff_id)| Layer { diff_id: diff_id.clone(), blob: blob.clone(), created: None })
        .collect()
}

/// `--squash`: the layers above the first `base` merged into one. The history keeps every
/// entry (those of the merged layers become empty ones) and gains one for the merged layer,
/// as Docker's squash records it.
pub fn squash_image(
    store: &Store,
    image: &Image,
    base: usize,
    compression: Compression,
    epoch: Option<i64>,
) -> Result<Image> {
    let chain = chain_of(image);
    let merged = chain.len().saturating_sub(base);
    if merged < 2 {
        return Ok(image.clone());
    }
    let snaps = layers::snapshots(store, &chain).map_err(|e| anyhow::anyhow!("{e}"))?;
    let blob = rootfs::squash(
        store,
        &snaps[..base],
        &snaps[base..],
        compression,
        &PackOptions { source_date_epoch: epoch, ..PackOptions::default() },
    )
    .context("squashing the new layers")?;
    let mut config = image.config.clone();
    config.rootfs.diff_ids.truncate(base);
    config.rootfs.diff_ids.push(blob.diff_id.clone());
    let history = config.history.get_or_insert_with(Vec::new);
    let mut layer_index = 0;
    for h in history.iter_mut() {
        if !h.empty_layer {
            if layer_index >= base {
                h.empty_layer = true;
            }
            layer_index += 1;
        }
    }
    history.push(History {
        created: config.created.clone(),
        created_by: None,
        author: None,
        comment: Some(format!("merge of {merged} layers (strata build --squash)")),
        empty_layer: false,
    });
    let mut layers: Vec<_> = image.manifest.layers[..base].to_vec();
    layers.push(blob.descriptor);
    Ok(write_image(&store.blobs, &config, &layers, None)?)
}

/// Writes a stream to a file (replaced when complete) or to stdout.
fn write_stream(dest: &Dest, write: impl FnOnce(&mut dyn Write) -> Result<()>) -> Result<()> {
    match dest {
        Dest::Stdout => {
            let mut out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
            write(&mut out)?;
            out.flush().context("writing to stdout")
        }
        Dest::Path(path) => {
            // Written next to the destination and renamed over it when complete, so a failed
            // export never leaves a truncated archive under the requested name.
            let file_name = path.file_name().with_context(|| format!("{} is not a file name", path.display()))?;
            let tmp = path.with_file_name(format!(".{}.strata-{}", file_name.to_string_lossy(), std::process::id()));
            let file = std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
            let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
            let written =
                write(&mut out).and_then(|()| out.flush().with_context(|| format!("writing {}", path.display())));
            drop(out);
            if let Err(e) = written
                .and_then(|()| std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display())))
            {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
            Ok(())
        }
    }
}

/// Stores the OCI index over one image per platform (see `strata_store::platforms`).
fn platform_index(store: &Store, images: &[Image], platforms: &[Platform]) -> Result<Descriptor> {
    let entries: Vec<(Descriptor, Platform)> =
        images.iter().zip(platforms).map(|(i, p)| (i.descriptor.clone(), p.clone())).collect();
    platforms::write_index(&store.blobs, &entries).context("writing the image index")
}

fn dest_name(d: &Dest) -> String {
    match d {
        Dest::Stdout => "stdout".to_string(),
        Dest::Path(p) => p.display().to_string(),
    }
}

/// `--metadata-file`: the keys buildx writes for an image result (sorted, two-space indent);
/// for an index, no config digest (buildx writes none either).
fn write_metadata(path: &Path, exported: Option<&(Descriptor, Option<Digest>, Vec<Reference>)>) -> Result<()> {
    let mut m = serde_json::Map::new();
    if let Some((d, config_digest, names)) = exported {
        if let Some(c) = config_digest {
            m.insert("containerimage.config.digest".into(), c.to_string().into());
        }
        m.insert(
            "containerimage.descriptor".into(),
            serde_json::json!({ "mediaType": d.media_type, "digest": d.digest.to_string(), "size": d.size }),
        );
        m.insert("containerimage.digest".into(), d.digest.to_string().into());
        if !names.is_empty() {
            let joined: Vec<String> = names.iter().map(|n| n.to_string()).collect();
            m.insert("image.name".into(), joined.join(",").into());
        }
    }
    let mut text = serde_json::to_string_pretty(&serde_json::Value::Object(m))?;
    text.push('\n');
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}
