//! `strata build`: read the Dockerfile and context, translate (once per `--platform`), build
//! with the local and imported caches, export the cache, then hand the images to
//! `crate::deliver` for the outputs. A directory without a Dockerfile goes to buildpacks
//! (`commands/buildpacks.rs`) and to the same delivery.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use strata_builder::progress::{JsonProgress, NoProgress, PlainProgress, Progress, TtyProgress};
use strata_builder::{BuildConfig, Builder};
use strata_frontend::convert::{ContextDir, ConvertOptions, convert};
use strata_frontend::dockerignore::{IgnoreMatcher, ignore_file_for};
use strata_frontend::lint::{self, LintOptions};
use strata_store::Store;
use strata_store::oci::Platform;
use strata_store::platforms;

use strata_builder::remote_cache::{ImportedCache, export as export_cache, with_inline_cache};

use crate::cache_flags::{CacheLocation, CacheSpec};
use crate::cli::{BuildArgs, ProgressMode};
use crate::deliver::{self, Built, Delivery};
use crate::registry_client;
use crate::resolver::StoreResolver;

/// Flags that later work implements: refuse them clearly rather than ignore them.
fn refuse_unsupported(a: &BuildArgs) -> Result<()> {
    if a.load { bail!("not supported yet: --load") } else { Ok(()) }
}

/// Dockerfile flags a buildpacks build has no use for (or does not implement yet): refused, not
/// ignored. Buildpacks take `--env` where Dockerfiles take `--build-arg`.
fn refuse_for_buildpacks(a: &BuildArgs) -> Result<()> {
    let flags = [
        ("--build-arg (buildpacks take --env)", !a.build_args.is_empty()),
        ("--target", a.target.is_some()),
        ("--no-cache-filter", !a.no_cache_filter.is_empty()),
        ("--allow", !a.allow.is_empty()),
        ("--secret", !a.secret.is_empty()),
        ("--ssh", !a.ssh.is_empty()),
        ("--check", a.check),
        ("--explain", a.explain),
        ("--cache-to", !a.cache_to.is_empty()),
        ("--cache-from", !a.cache_from.is_empty()),
        ("--platform", a.platform.as_deref().is_some_and(|p| p != "local" && p != Platform::host().to_spec())),
    ];
    let refused: Vec<&str> = flags.iter().filter(|(_, on)| *on).map(|(f, _)| *f).collect();
    if refused.is_empty() {
        Ok(())
    } else {
        bail!("not supported for buildpacks builds (no Dockerfile): {}", refused.join(", "))
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
        refuse_for_buildpacks(a)?;
        let delivery = Delivery::from_args(a)?;
        let progress = progress_sink(a.progress, a.quiet);
        let (mut image, base) =
            crate::commands::buildpacks::build(store, a, progress.as_ref(), delivery.commit_compression)?;
        // The lifecycle's fixed time dates everything a buildpacks build makes.
        let epoch = Some(strata_frontend::buildpacks::fsutil::NORMALIZED_TIME);
        if a.squash {
            image = deliver::squash_image(store, &image, base, delivery.commit_compression, epoch)?;
        }
        let registry = registry_client(store)?;
        let built = Built { images: vec![image], bases: vec![base], platforms: vec![Platform::host()] };
        deliver::deliver(store, &registry, progress.as_ref(), a, &delivery, &built, epoch)?;
        return Ok(0);
    }
    let delivery = Delivery::from_args(a)?;
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
        delivery.refuse_for_multi_platform()?;
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
    config.compression = delivery.commit_compression;
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
        let base = deliver::base_layer_count(&plan.target.config, image);
        if a.squash {
            *image = deliver::squash_image(store, image, base, delivery.commit_compression, epoch)?;
            progress.message(&format!("squashed the new layers into one: {}", image.manifest.layers.len()));
        }
        bases.push(base);
    }
    if cache_to.iter().any(|c| c.location == CacheLocation::Inline) {
        // mode=min only, as BuildKit's inline cache: an image holds no other step's layer.
        for (image, plan) in images.iter_mut().zip(&plans) {
            let records = builder.cache_records(&plan.graph, &plan.target, false);
            let (with_cache, carried) =
                with_inline_cache(store, image, &records).map_err(|e| anyhow::anyhow!("{e}"))?;
            *image = with_cache;
            progress.message(&format!("inline cache: {carried} steps in the image config"));
        }
    }
    let built = Built { images, bases, platforms: targets_platforms };
    deliver::deliver(store, &registry, progress.as_ref(), a, &delivery, &built, epoch)?;
    Ok(0)
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
