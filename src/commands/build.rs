//! `strata build`: read the Dockerfile and context, translate, build, name, optionally push.

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
use strata_store::reference::Reference;

use strata_builder::remote_cache::{ImportedCache, export as export_cache};

use crate::cache_flags::CacheSpec;
use crate::cli::{BuildArgs, ProgressMode};
use crate::commands::push::push_named;
use crate::registry_client;
use crate::resolver::StoreResolver;

/// Flags that later work implements: refuse them clearly rather than ignore them.
fn refuse_unsupported(a: &BuildArgs) -> Result<()> {
    let mut refused = Vec::new();
    let host = Platform::host().to_spec();
    if let Some(p) = &a.platform
        && p != &host
        && p != "local"
        && !p.contains(',')
    {
        refused.push(format!("--platform {p} (only the host platform, {host}, is built for now)"));
    }
    let flags: [(&str, bool); 6] = [
        ("--output/-o", !a.output.is_empty()),
        ("--metadata-file", a.metadata_file.is_some()),
        ("--squash", a.squash),
        ("--compression", a.compression.as_deref().is_some_and(|c| c != "gzip")),
        ("--load", a.load),
        ("--platform with several platforms", a.platform.as_deref().is_some_and(|p| p.contains(','))),
    ];
    refused.extend(flags.iter().filter(|(_, on)| *on).map(|(f, _)| f.to_string()));
    if refused.is_empty() { Ok(()) } else { bail!("not supported yet: {}", refused.join(", ")) }
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
        let progress = progress_sink(a.progress, a.quiet);
        let image = crate::commands::buildpacks::build(store, a, progress.as_ref())?;
        return crate::commands::buildpacks::finish(store, a, &image, progress.as_ref()).map(|()| 0);
    }
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
    if a.push && tags.is_empty() {
        bail!("--push needs at least one -t NAME to push to");
    }

    let cache_to = a.cache_to.iter().map(|c| CacheSpec::parse(c, true)).collect::<Result<Vec<_>>>()?;
    let cache_from = a.cache_from.iter().map(|c| CacheSpec::parse(c, false)).collect::<Result<Vec<_>>>()?;
    let registry = Arc::new(registry_client()?);
    let resolver = StoreResolver::new(store, &registry, a.pull);
    let host = Platform::host();
    let opts = ConvertOptions {
        file_name: file_name.clone(),
        source: String::from_utf8_lossy(&source).into_owned(),
        build_args: build_args(&a.build_args),
        target: a.target.clone(),
        target_platform: host.clone(),
        build_platform: host,
        context: Some(ContextDir { path: context.clone(), filter }),
        no_cache: a.no_cache,
        no_cache_filter: a.no_cache_filter.clone(),
        allow: a.allow.clone(),
    };
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
        convert(&df, &opts, &resolver).map_err(|e| anyhow::anyhow!("{e}"))?;
        return Ok(i32::from(!report.warnings.is_empty()));
    }
    eprint!("{}", lint::render::summary(&report));
    if let Some(e) = &report.error {
        bail!("{e}");
    }
    let mut plan = convert(&df, &opts, &resolver).map_err(|e| anyhow::anyhow!("{e}"))?;
    for w in &plan.warnings {
        eprintln!("warning: {w}");
    }
    for l in &a.labels {
        let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
        plan.target.config.config.labels.get_or_insert_with(Default::default).insert(k.to_string(), v.to_string());
    }

    let progress = progress_sink(a.progress, a.quiet);
    let mut config = BuildConfig::default();
    if let Some(j) = a.jobs {
        config.jobs = j.max(1);
    }
    config.explain = a.explain;
    config.secrets = Arc::new(secrets);
    config.scope = dockerfile.canonicalize().unwrap_or(dockerfile.clone()).display().to_string();
    let mut builder =
        Builder::new(store, Some(&registry), progress.as_ref(), config).map_err(|e| anyhow::anyhow!("{e}"))?;
    for spec in &cache_from {
        let remote = spec.remote(&registry);
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
    let built = builder.build(&plan.graph, &plan.target);
    if a.explain {
        print_explanations(&builder.explanations());
    }
    let image = built.map_err(|e| anyhow::anyhow!("{e}"))?;
    for spec in &cache_to {
        let records = builder.cache_records(&plan.graph, &plan.target, spec.all_steps);
        let mounts = if spec.mounts { Builder::cache_mount_ids(&plan.graph, &plan.target) } else { Vec::new() };
        let remote = spec.remote(&registry);
        match export_cache(store, remote.as_ref(), &records, &mounts) {
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
    let id = image.manifest.config.digest.clone();
    for t in &tags {
        store.layout.set(&t.to_string(), &image.descriptor)?;
        progress.message(&format!("naming to {t} done"));
    }
    progress.message(&format!("writing image {id} (manifest {})", image.descriptor.digest));
    if let Some(path) = &a.iidfile {
        std::fs::write(path, id.to_string()).with_context(|| format!("writing {}", path.display()))?;
    }
    if a.push {
        for t in &tags {
            push_named(store, &registry, &t.to_string(), t, progress.as_ref())?;
        }
    }
    if a.quiet {
        println!("{id}");
    }
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
