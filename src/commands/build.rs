//! `strata build`: read the Dockerfile and context, translate, build, then deliver the image
//! to every output (`-o`, see `outputs.rs`; the local store by default): named in the store,
//! pushed, written as an OCI/docker archive, or its root filesystem written out. `--squash`
//! merges the new layers first; each image output gets its layers in its compression (made
//! once, see strata_store::export::variants); `--metadata-file` records the result as buildx
//! does.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use std::io::Write;

use anyhow::{Context, Result, bail};
use strata_builder::cache::Layer;
use strata_builder::layers;
use strata_builder::progress::{JsonProgress, NoProgress, PlainProgress, Progress, TtyProgress};
use strata_builder::{BuildConfig, Builder};
use strata_frontend::convert::{ContextDir, ConvertOptions, convert};
use strata_frontend::dockerignore::{IgnoreMatcher, ignore_file_for};
use strata_frontend::lint::{self, LintOptions};
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

use strata_builder::remote_cache::{ImportedCache, export as export_cache, with_inline_cache};

use crate::cache_flags::{CacheLocation, CacheSpec};
use crate::cli::{BuildArgs, ProgressMode};
use crate::commands::push::push_descriptor;
use crate::outputs::{self, Dest, Kind, Output};
use crate::registry_client;
use crate::resolver::StoreResolver;

/// Flags that later work implements: refuse them clearly rather than ignore them.
fn refuse_unsupported(a: &BuildArgs) -> Result<()> {
    if a.load { bail!("not supported yet: --load") } else { Ok(()) }
}

/// Output options the buildpacks path does not deliver yet (it writes to the store and pushes).
fn refuse_for_buildpacks(a: &BuildArgs) -> Result<()> {
    let flags = [
        ("--output/-o", !a.output.is_empty()),
        ("--metadata-file", a.metadata_file.is_some()),
        ("--squash", a.squash),
        ("--compression", a.compression.is_some()),
        ("--compression-level", a.compression_level.is_some()),
        ("--platform", a.platform.as_deref().is_some_and(|p| p != "local" && p != Platform::host().to_spec())),
    ];
    let refused: Vec<&str> = flags.iter().filter(|(_, on)| *on).map(|(f, _)| *f).collect();
    if refused.is_empty() {
        Ok(())
    } else {
        bail!("not supported yet for buildpacks builds (no Dockerfile): {}", refused.join(", "))
    }
}

/// `KEY=VALUE`, or `KEY` alone to take the value from the environment (skipped if unset), as
/// `docker build --build-arg` does.
fn build_args(raw: &[String]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for a in raw {
        match a.split_once('=') {
            Some((k, v)) => {
                out.insert(k.to_string(), v.to_string());
            }
            None => {
                if let Ok(v) = std::env::var(a) {
                    out.insert(a.clone(), v);
                }
            }
        }
    }
    out
}

fn progress_sink(mode: ProgressMode, quiet: bool) -> Box<dyn Progress> {
    let mode = if quiet { ProgressMode::Quiet } else { mode };
    match mode {
        ProgressMode::Quiet => Box::new(NoProgress),
        ProgressMode::Json => Box::new(JsonProgress::new(std::io::stderr())),
        ProgressMode::Plain => Box::new(PlainProgress::new(std::io::stderr())),
        ProgressMode::Tty => Box::new(TtyProgress::new()),
        ProgressMode::Auto if std::io::stderr().is_terminal() => Box::new(TtyProgress::new()),
        ProgressMode::Auto => Box::new(PlainProgress::new(std::io::stderr())),
    }
}

/// SOURCE_DATE_EPOCH from `--build-arg`, else the environment (added to the build args then, as
/// buildx passes it); empty means unset.
fn source_date_epoch(args: &mut BTreeMap<String, String>) -> Result<Option<i64>> {
    const KEY: &str = "SOURCE_DATE_EPOCH";
    if !args.contains_key(KEY)
        && let Ok(v) = std::env::var(KEY)
        && !v.is_empty()
    {
        args.insert(KEY.to_string(), v);
    }
    match args.get(KEY).map(|v| v.trim()) {
        None | Some("") => Ok(None),
        Some(v) => v.parse::<i64>().map(Some).map_err(|_| {
            anyhow::anyhow!("invalid SOURCE_DATE_EPOCH {v:?}: expected seconds since 1970-01-01 (an integer)")
        }),
    }
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
fn base_layer_count(base: &strata_store::oci::ImageConfig, image: &Image) -> usize {
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
fn squash_image(
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

/// Builds (or with `--check`, only checks); returns the exit status: `--check` exits 1 when
/// it finds something, as `docker buildx build --check` does.
pub fn build(store: &Store, a: &BuildArgs) -> Result<i32> {
    refuse_unsupported(a)?;
    let secrets = crate::secrets::parse(&a.secret, &a.ssh, &|k| std::env::var(k).ok())?;
    // A local directory without a Dockerfile (or with buildpack options): the source is built
    // with buildpacks, as `pack build` does.
    // `symlink_metadata`: a dangling `Dockerfile` link is still a Dockerfile (reading it
    // reports the broken link), not a source tree for buildpacks.
    let has_dockerfile = a.context.join("Dockerfile").symlink_metadata().is_ok();
    if a.context.is_dir() && (a.buildpacks.any() || (a.file.is_none() && !has_dockerfile)) {
        if a.push && a.tags.is_empty() {
            bail!("--push needs at least one -t NAME to push to");
        }
        refuse_for_buildpacks(a)?;
        let progress = progress_sink(a.progress, a.quiet);
        let image = crate::commands::buildpacks::build(store, a, progress.as_ref())?;
        return crate::commands::buildpacks::finish(store, a, &image, progress.as_ref()).map(|()| 0);
    }
    let outs = parse_outputs(a)?;
    let flag_compression =
        a.compression.as_deref().map(outputs::parse_compression).transpose().map_err(|e| anyhow::anyhow!(e))?;
    // Every image output's compression, checked before anything is built.
    let mut targets = Vec::new();
    for o in &outs {
        let c = o.compression.or(flag_compression).unwrap_or(Compression::Gzip);
        let t = Target::new(c, o.compression_level.or(a.compression_level)).map_err(|e| anyhow::anyhow!("{e}"))?;
        targets.push(t);
    }
    // New layers are committed once, in the first image output's compression; with a level,
    // uncompressed, so that the one conversion to that level is the only compression.
    let commit_compression = match outs.iter().zip(&targets).find(|(o, _)| o.kind.is_image()) {
        Some((_, t)) if t.level.is_some() => Compression::None,
        Some((_, t)) => t.compression,
        None => Compression::Gzip,
    };
    // A directory, `-` (standard input), `-f -` or a git URL: see `crate::context`.
    let prepared = crate::context::prepare(store, &a.context, a.file.as_deref(), &mut std::io::stdin().lock())?;
    let context = prepared.dir.clone();
    let source = prepared.dockerfile.clone();
    let file_name = prepared.display_name.clone();
    let dockerfile: PathBuf = prepared.dockerfile_path.clone().unwrap_or_else(|| context.join("Dockerfile"));
    let df = strata_frontend::parser::parse_bytes(&source, &file_name).map_err(|e| anyhow::anyhow!("{e}"))?;
    let ignore_file = match &prepared.dockerfile_path {
        Some(path) => ignore_file_for(&context, path),
        // A Dockerfile from standard input has no name to put an ignore file beside.
        None => Some(context.join(".dockerignore")).filter(|p| p.is_file()),
    };
    let ignore = match ignore_file {
        Some(path) => {
            let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
            let m = IgnoreMatcher::from_dockerignore(&text).with_context(|| format!("in {}", path.display()))?;
            Some(Arc::new(m))
        }
        None => None,
    };
    let filter = ignore.clone().map(|m| m as Arc<dyn strata_builder::graph::PathFilter>);
    let mut tags = Vec::new();
    for t in &a.tags {
        tags.push(Reference::parse(t).with_context(|| format!("invalid tag {t:?}"))?);
    }
    // Each image output's names: its own name=, else the -t tags.
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
    let mut args = build_args(&a.build_args);
    let epoch = source_date_epoch(&mut args)?;
    // The frontend sees SOURCE_DATE_EPOCH only if the Dockerfile asks for it (ARG), so that it
    // is not reported as an unused build argument.
    if !String::from_utf8_lossy(&source).contains("SOURCE_DATE_EPOCH") {
        args.remove("SOURCE_DATE_EPOCH");
    }

    let mut cache_to = a.cache_to.iter().map(|c| CacheSpec::parse(c, true)).collect::<Result<Vec<_>>>()?;
    // `--build-arg BUILDKIT_INLINE_CACHE=1` is BuildKit's older spelling of `--cache-to
    // type=inline` (a boolean as Go's strconv.ParseBool reads it); strata consumes it.
    if let Some(v) = args.remove("BUILDKIT_INLINE_CACHE")
        && ["1", "t", "T", "true", "TRUE", "True"].contains(&v.as_str())
        && !cache_to.iter().any(|c| c.location == CacheLocation::Inline)
    {
        cache_to.push(CacheSpec::parse("type=inline", true)?);
    }
    let cache_from = a.cache_from.iter().map(|c| CacheSpec::parse(c, false)).collect::<Result<Vec<_>>>()?;
    let registry = Arc::new(registry_client(store)?);
    let resolver = StoreResolver::new(store, &registry, a.pull);
    let host = Platform::host();
    // `--platform a,b`: one translation and one build per platform, in the order given (the
    // index lists them in that order, as buildx does).
    let targets_platforms = match &a.platform {
        Some(spec) => platforms::parse_list(spec).map_err(|e| anyhow::anyhow!("--platform: {e}"))?,
        None => vec![host.clone()],
    };
    let multi = targets_platforms.len() > 1;
    if multi {
        refuse_for_multi_platform(&outs)?;
    }
    let opts_for = |target: &Platform| ConvertOptions {
        file_name: file_name.clone(),
        source: String::from_utf8_lossy(&source).into_owned(),
        build_args: args.clone(),
        target: a.target.clone(),
        target_platform: target.clone(),
        build_platform: host.clone(),
        context: Some(ContextDir { path: context.clone(), filter: filter.clone() }),
        no_cache: a.no_cache,
        no_cache_filter: a.no_cache_filter.clone(),
        allow: a.allow.clone(),
    };
    let opts = opts_for(&targets_platforms[0]);
    let text = String::from_utf8_lossy(&source);
    let report = lint::check(
        &df,
        &LintOptions {
            file_name: file_name.clone(),
            source: &text,
            build_args: opts.build_args.clone(),
            target: a.target.clone(),
            all_stages: a.check && a.target.is_none(),
            target_platform: opts.target_platform.clone(),
            build_platform: opts.build_platform.clone(),
            ignore: ignore.as_deref(),
            resolver: Some(&resolver),
        },
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    if a.check {
        // Like `docker buildx build --check`: the report on stdout, the build translated (to
        // find its errors) but not run, exit 1 if anything was found.
        print!("{}", lint::render::check_output(&report, &file_name, &text));
        if let Some(e) = &report.error {
            bail!("{e}");
        }
        for p in &targets_platforms {
            convert(&df, &opts_for(p), &resolver).map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        return Ok(i32::from(!report.warnings.is_empty()));
    }
    eprint!("{}", lint::render::summary(&report));
    if let Some(e) = &report.error {
        bail!("{e}");
    }
    let mut plans = Vec::new();
    for (i, p) in targets_platforms.iter().enumerate() {
        let mut plan = convert(&df, &opts_for(p), &resolver).map_err(|e| anyhow::anyhow!("{e}"))?;
        // Every platform's translation warns alike: once is enough.
        if i == 0 {
            for w in &plan.warnings {
                eprintln!("warning: {w}");
            }
        }
        for l in &a.labels {
            let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
            plan.target.config.config.labels.get_or_insert_with(Default::default).insert(k.to_string(), v.to_string());
        }
        crate::platforms::check_emulation(&plan.graph, &host)?;
        plans.push(plan);
    }

    let progress = progress_sink(a.progress, a.quiet);
    let mut config = BuildConfig::default();
    if let Some(j) = a.jobs {
        config.jobs = j.max(1);
    }
    config.explain = a.explain;
    config.secrets = Arc::new(secrets);
    config.scope = dockerfile.canonicalize().unwrap_or(dockerfile.clone()).display().to_string();
    config.compression = commit_compression;
    config.source_date_epoch = epoch;
    let mut builder =
        Builder::new(store, Some(&registry), progress.as_ref(), config).map_err(|e| anyhow::anyhow!("{e}"))?;
    for spec in &cache_from {
        let Some(remote) = spec.remote(&registry) else { continue };
        let place = remote.place();
        match ImportedCache::load(remote, store) {
            Ok(imported) => {
                let seeded = imported.seed_mounts(store).map_err(|e| anyhow::anyhow!("{e}"))?;
                progress.message(&format!(
                    "importing cache from {place}: {} steps, {seeded} cache mounts seeded",
                    imported.len()
                ));
                builder.imports.push(imported);
            }
            // A cache that cannot be read only costs time, as with BuildKit.
            Err(e) => progress.message(&format!("warning: {e}")),
        }
    }
    install_interrupt_handler(&builder.cancel);
    // The platforms are built one after another through the one Builder: each graph already
    // runs its independent steps in parallel (`--jobs`), emulated steps are CPU-bound, and one
    // platform at a time keeps the progress output and a failure's attribution readable.
    let mut images = Vec::new();
    for (p, plan) in targets_platforms.iter().zip(&plans) {
        if multi {
            progress.message(&format!("building for {}", p.to_spec()));
        }
        match builder.build(&plan.graph, &plan.target) {
            Ok(image) => images.push(image),
            Err(e) => {
                if a.explain {
                    print_explanations(&builder.explanations());
                }
                return Err(anyhow::anyhow!("{e}"));
            }
        }
    }
    if a.explain {
        print_explanations(&builder.explanations());
    }
    for spec in &cache_to {
        let mut records = Vec::new();
        let mut mounts = Vec::new();
        for plan in &plans {
            records.extend(builder.cache_records(&plan.graph, &plan.target, spec.all_steps));
            if spec.mounts {
                mounts.extend(Builder::cache_mount_ids(&plan.graph, &plan.target));
            }
        }
        mounts.sort();
        mounts.dedup();
        let Some(remote) = spec.remote(&registry) else { continue };
        match export_cache(store, remote.as_ref(), &records, &mounts, spec.compression) {
            Ok(d) => progress.message(&format!(
                "exported cache to {}: {} steps, {} cache mounts ({})",
                remote.place(),
                records.len(),
                mounts.len(),
                d.digest
            )),
            Err(e) if spec.ignore_error => progress.message(&format!("warning: {e}")),
            Err(e) => return Err(anyhow::anyhow!("{e}")),
        }
    }
    let mut bases = Vec::new();
    for (image, plan) in images.iter_mut().zip(&plans) {
        let base = base_layer_count(&plan.target.config, image);
        if a.squash {
            *image = squash_image(store, image, base, commit_compression, epoch)?;
            progress.message(&format!("squashed the new layers into one: {}", image.manifest.layers.len()));
        }
        bases.push(base);
    }
    if cache_to.iter().any(|c| c.location == CacheLocation::Inline) {
        // mode=min only, as BuildKit's inline cache: an image holds no other step's layer.
        for (image, plan) in images.iter_mut().zip(&plans) {
            let records = builder.cache_records(&plan.graph, &plan.target, false);
            *image = with_inline_cache(store, image, &records).map_err(|e| anyhow::anyhow!("{e}"))?;
            let carried =
                records.iter().filter(|(_, r)| image.config.rootfs.diff_ids.contains(&r.layer.diff_id)).count();
            progress.message(&format!("inline cache: {carried} steps in the image config"));
        }
    }
    // The image ID: the config digest of a single-platform image, the index digest of several.
    let id = if multi {
        platform_index(store, &images, &targets_platforms)?.digest
    } else {
        images[0].manifest.config.digest.clone()
    };
    if let Some(path) = &a.iidfile {
        std::fs::write(path, id.to_string()).with_context(|| format!("writing {}", path.display()))?;
    }

    let created = match epoch {
        Some(e) => strata_store::oci::rfc3339(e, 0),
        None => strata_store::oci::now_rfc3339(),
    };
    let mut exported: Option<(Descriptor, Option<Digest>, Vec<Reference>)> = None;
    for ((o, target), names) in outs.iter().zip(&targets).zip(&names_of) {
        if o.kind.is_image() {
            let force = o.force_compression || a.force_compression;
            let mut converted = Vec::new();
            for (image, base) in images.iter().zip(&bases) {
                let from = if force { 0 } else { *base };
                converted
                    .push(convert_image(store, image, *target, from).context("converting the layers' compression")?);
            }
            let (desc, config_digest) = if multi {
                (platform_index(store, &converted, &targets_platforms)?, None)
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
                            push_descriptor(store, &registry, &desc, t, progress.as_ref())?;
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
            for (image, p) in images.iter().zip(&targets_platforms) {
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
    Ok(0)
}

/// Stores the OCI index over one image per platform (see `strata_store::platforms`).
fn platform_index(store: &Store, images: &[Image], platforms: &[Platform]) -> Result<Descriptor> {
    let entries: Vec<(Descriptor, Platform)> =
        images.iter().zip(platforms).map(|(i, p)| (i.descriptor.clone(), p.clone())).collect();
    platforms::write_index(&store.blobs, &entries).context("writing the image index")
}

/// Outputs that cannot hold several platforms yet: refused before anything is built. (buildx's
/// `docker` exporter refuses manifest lists too.) `type=oci` writes the index.
fn refuse_for_multi_platform(outs: &[Output]) -> Result<()> {
    for o in outs {
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

/// The `--explain` summary: one line per step, and for a miss the reasons.
fn print_explanations(explanations: &[strata_builder::Explanation]) {
    eprintln!("\ncache explanation:");
    for e in explanations {
        if e.cached {
            eprintln!("  HIT   {}", e.step);
        } else {
            eprintln!("  MISS  {}", e.step);
            for r in &e.reasons {
                eprintln!("          {r}");
            }
        }
    }
}

/// Ctrl-C / SIGTERM cancel the build: running sandboxes are killed, their mounts go with
/// their namespaces, scratch directories are removed as the steps unwind.
fn install_interrupt_handler(cancel: &strata_builder::scheduler::Cancel) {
    crate::signals::on_interrupt(cancel.clone());
}
