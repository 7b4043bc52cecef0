//! `strata build DIR` without a Dockerfile (buildpacks), `strata detect DIR` and
//! `strata rebase IMAGE --run-image NEW`: the CLI side of `strata_frontend::buildpacks`.
//!
//! This file wires the lifecycle to the store: it resolves the build and run images (store
//! first, then the registry), runs `bin/detect`/`bin/build` in the build image with the
//! builder's sandbox (a process per call, host directories bound in), runs the export graph
//! with the builder, adds the CNB labels that need the built layers' diff_ids, keeps the build
//! cache under `ROOT/cache/buildpacks/<sha256 of the image name or app path>/`, and names,
//! pushes and reports the image as `strata build` does.
//!
//! Defaults come from a builder directory (`--builder DIR`, else `$STRATA_BUILDPACKS`, else
//! `share/strata/buildpacks` next to the binary's directory, else the repository's
//! `buildpacks/` the binary was built from): its `order.toml` gives the order and the default
//! `[build] image` / `[run] image`, its subdirectories the buildpacks.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result, bail};
use clap::Args;
use sha2::Digest as _;
use strata_builder::cache::Layer;
use strata_builder::exec::{ExecContext, run_process};
use strata_builder::graph::{ExecOp, Mount, MountKind, NetworkMode, NodeId, SecurityMode};
use strata_builder::progress::{Event, Progress};
use strata_builder::{BuildConfig, Builder, layers};
use strata_frontend::buildpacks::descriptor::{BuildTarget, GroupRef, OrderGroup, OrderToml, Registry};
use strata_frontend::buildpacks::export::{ExportInput, plan_export};
use strata_frontend::buildpacks::fsutil::NORMALIZED_TIME;
use strata_frontend::buildpacks::lifecycle::{Lifecycle, ProcessRequest, Sandbox};
use strata_frontend::buildpacks::metadata::{LIFECYCLE_LABEL, LifecycleMetadata};
use strata_frontend::buildpacks::order;
use strata_frontend::convert::{ImageResolver, ResolvedImage};
use strata_runner::{Cancel, ExitStatus, RunnerConfig};
use strata_store::Store;
use strata_store::image::{Image, write_image};
use strata_store::oci::{Compression, History, Platform};
use strata_store::reference::Reference;

use crate::cli::BuildArgs;
use crate::commands::images::find_image;
use crate::registry_client;
use crate::resolver::StoreResolver;

/// Buildpack options of `strata build` and `strata detect`.
#[derive(Debug, Args, Default, Clone)]
pub struct BuildpackFlags {
    /// Use this buildpack (a directory with buildpack.toml); repeat for a group, in order.
    /// Without it, the builder directory's order.toml decides.
    #[arg(long = "buildpack", value_name = "DIR")]
    pub buildpacks: Vec<PathBuf>,
    /// The builder directory: order.toml (order, [build] image, [run] image) and buildpacks.
    #[arg(long, value_name = "DIR", env = "STRATA_BUILDPACKS")]
    pub builder: Option<PathBuf>,
    /// The image buildpacks build in (default: order.toml's [build] image).
    #[arg(long = "build-image", value_name = "IMAGE")]
    pub build_image: Option<String>,
    /// The image the app runs on (default: order.toml's [run] image).
    #[arg(long = "run-image", value_name = "IMAGE")]
    pub run_image: Option<String>,
    /// A variable for the buildpacks (`NAME=VALUE`; $CNB_PLATFORM_DIR/env/NAME).
    #[arg(long = "env", value_name = "NAME=VALUE")]
    pub env: Vec<String>,
    /// Don't restore cached layers from the last build (they are saved anew).
    #[arg(long = "clear-cache")]
    pub clear_cache: bool,
}

impl BuildpackFlags {
    /// True when any buildpack option is set (a build with a Dockerfile then uses buildpacks).
    pub fn any(&self) -> bool {
        !self.buildpacks.is_empty() || self.build_image.is_some() || self.run_image.is_some() || !self.env.is_empty()
    }
}

/// `strata detect DIR`.
#[derive(Debug, Args)]
pub struct DetectArgs {
    /// The app's source directory.
    pub dir: PathBuf,
    #[command(flatten)]
    pub flags: BuildpackFlags,
}

/// `strata rebase IMAGE --run-image NEW`.
#[derive(Debug, Args)]
pub struct RebaseArgs {
    /// The app image (built by buildpacks), by name.
    pub image: String,
    /// The new run image.
    #[arg(long = "run-image", value_name = "IMAGE", required = true)]
    pub run_image: String,
    /// Name the result this instead of IMAGE.
    #[arg(short = 't', long = "tag", value_name = "NAME")]
    pub tag: Option<String>,
}

/// Progress step ids of lifecycle processes start here, above any export graph's node ids.
const STEP_BASE: usize = 100_000;

/// The builder directory.
fn builder_dir(flags: &BuildpackFlags) -> PathBuf {
    if let Some(d) = &flags.builder {
        return d.clone();
    }
    if let Ok(exe) = std::env::current_exe()
        && let Some(share) = exe.parent().and_then(Path::parent).map(|p| p.join("share/strata/buildpacks"))
        && share.join("order.toml").is_file()
    {
        return share;
    }
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/buildpacks"))
}

/// The buildpacks, the order and the images a build uses.
struct Setup {
    registry: Registry,
    order: Vec<Vec<order::Member>>,
    build_image: String,
    /// Needed by builds only (detect runs without one).
    run_image: Result<String, String>,
}

fn setup(flags: &BuildpackFlags) -> Result<Setup> {
    let dir = builder_dir(flags);
    let order_path = dir.join("order.toml");
    let order_toml = if order_path.is_file() { OrderToml::load(&order_path)? } else { OrderToml::default() };
    let mut registry = Registry::default();
    let mut explicit = Vec::new();
    for bp in &flags.buildpacks {
        let before = registry.buildpacks.len();
        registry.add_dir(bp).with_context(|| format!("buildpack {}", bp.display()))?;
        let Some(added) = registry.buildpacks.get(before) else {
            bail!("{} holds no buildpack.toml (or the same buildpack was given twice)", bp.display());
        };
        explicit.push(GroupRef {
            id: added.id().to_string(),
            version: Some(added.version().to_string()),
            optional: false,
        });
    }
    if dir.is_dir() {
        registry.add_dir(&dir).with_context(|| format!("builder directory {}", dir.display()))?;
    }
    let groups = if explicit.is_empty() {
        if order_toml.order.is_empty() {
            bail!(
                "no buildpacks: give --buildpack DIR, or --builder DIR with an order.toml ({} has none)",
                dir.display()
            );
        }
        order_toml.order.clone()
    } else {
        vec![OrderGroup { group: explicit }]
    };
    let order = order::expand(&groups, &registry)?;
    let pick = |flag: &Option<String>, conf: Option<String>, what: &str| -> Result<String> {
        flag.clone().or(conf).with_context(|| {
            format!("no {what} image: give --{what}-image IMAGE or set [{what}] image in {}", order_path.display())
        })
    };
    Ok(Setup {
        registry,
        order,
        build_image: pick(&flags.build_image, order_toml.build.and_then(|b| b.image), "build")?,
        run_image: pick(&flags.run_image, order_toml.run.and_then(|r| r.image), "run").map_err(|e| e.to_string()),
    })
}

/// Runs lifecycle processes in the build image with the builder's sandbox.
struct BuildSandbox<'a> {
    store: &'a Store,
    chain: Vec<Layer>,
    runner: RunnerConfig,
    cancel: Cancel,
    progress: &'a dyn Progress,
    next: AtomicUsize,
}

impl Sandbox for BuildSandbox<'_> {
    fn run(&self, name: &str, req: &ProcessRequest) -> Result<i32, String> {
        let step = STEP_BASE + self.next.fetch_add(1, Ordering::SeqCst);
        let start = std::time::Instant::now();
        let title = format!("[buildpacks] {name}");
        self.progress.event(step, Event::Started { name: &title });
        let e = ExecOp {
            root: NodeId(0),
            args: req.args.clone(),
            env: req.env.clone(),
            cwd: req.cwd.clone(),
            user: String::new(),
            network: NetworkMode::Default,
            security: SecurityMode::Sandbox,
            mounts: req
                .mounts
                .iter()
                .map(|m| Mount {
                    target: m.target.clone(),
                    kind: MountKind::HostDir { path: m.source.clone(), readonly: m.readonly },
                })
                .collect(),
            platform: None,
        };
        // Buildpacks get no --secret/--ssh sources.
        let secrets = strata_builder::exec::BuildSecrets::default();
        let cx = ExecContext {
            store: self.store,
            runner: &self.runner,
            cancel: &self.cancel,
            hostname: "buildpacks",
            secrets: &secrets,
        };
        let status = run_process(&cx, &e, &self.chain, &mut |data| self.progress.event(step, Event::Output { data }));
        match status {
            Ok(s) => {
                let code = match s {
                    ExitStatus::Code(c) => c,
                    ExitStatus::Signal(sig) => 128 + sig,
                };
                self.progress.event(step, Event::Done { elapsed: start.elapsed() });
                Ok(code)
            }
            Err(err) => {
                self.progress.event(step, Event::Failed { error: &err.message, elapsed: start.elapsed() });
                Err(err.message)
            }
        }
    }
}

/// `NAME=VALUE` list → pairs.
fn platform_env(raw: &[String]) -> Result<Vec<(String, String)>> {
    raw.iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => Ok((k.to_string(), v.to_string())),
            None => std::env::var(kv).map(|v| (kv.clone(), v)).with_context(|| format!("--env {kv}: not set")),
        })
        .collect()
}

/// What the build image is: OS/arch from its config, distro from its labels or os-release.
fn build_target(store: &Store, image: &ResolvedImage, chain: &[Layer]) -> BuildTarget {
    let p = image.config.platform();
    let labels = image.config.config.labels.clone().unwrap_or_default();
    let distro = match (labels.get("io.buildpacks.base.distro.name"), labels.get("io.buildpacks.base.distro.version")) {
        (Some(n), Some(v)) => Some((n.clone(), v.clone())),
        _ => os_release(store, chain),
    };
    BuildTarget { os: p.os, arch: p.architecture, variant: p.variant, distro }
}

/// `ID` and `VERSION_ID` of the image's os-release, from the top-most layer that has one.
fn os_release(store: &Store, chain: &[Layer]) -> Option<(String, String)> {
    for l in chain.iter().rev() {
        let dir = layers::snapshot(store, l).ok()?;
        for rel in ["etc/os-release", "usr/lib/os-release"] {
            let path = dir.join(rel);
            if path.symlink_metadata().map(|m| m.is_file()).unwrap_or(false) {
                let file = std::fs::File::open(path).ok()?;
                let mut id = None;
                let mut version = String::new();
                for line in std::io::BufReader::new(file).lines().map_while(Result::ok) {
                    let unquote = |v: &str| v.trim().trim_matches('"').to_string();
                    if let Some(v) = line.strip_prefix("ID=") {
                        id = Some(unquote(v));
                    } else if let Some(v) = line.strip_prefix("VERSION_ID=") {
                        version = unquote(v);
                    }
                }
                return id.map(|i| (i, version));
            }
        }
    }
    None
}

/// Resolves an image and makes sure its layers are in the store.
fn resolve_image(
    store: &Store,
    resolver: &StoreResolver<'_>,
    registry: &strata_store::registry::RegistryClient,
    name: &str,
) -> Result<(ResolvedImage, Vec<Layer>)> {
    let resolved = resolver.resolve(name, &Platform::host()).map_err(|e| anyhow::anyhow!("image {name}: {e}"))?;
    let (chain, _) =
        layers::pull_image(store, Some(registry), &resolved.name, &resolved.manifest_digest, true, &|_| {})
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok((resolved, chain))
}

/// `strata detect DIR`: prints the group that passed (`group.toml`) and the plan (`plan.toml`).
pub fn detect(store: &Store, a: &DetectArgs) -> Result<()> {
    let setup = setup(&a.flags)?;
    let source = a.dir.canonicalize().with_context(|| format!("app directory {}", a.dir.display()))?;
    let registry = registry_client(store)?;
    let resolver = StoreResolver::new(store, &registry, false);
    let (build, chain) = resolve_image(store, &resolver, &registry, &setup.build_image)?;
    let progress = strata_builder::progress::PlainProgress::new(std::io::stderr());
    let cancel = Cancel::default();
    crate::signals::on_interrupt(cancel.clone());
    let target = build_target(store, &build, &chain);
    let sandbox = BuildSandbox {
        store,
        chain,
        runner: RunnerConfig::default(),
        cancel,
        progress: &progress,
        next: AtomicUsize::new(0),
    };
    let scratch = store.snapshots.scratch()?;
    let mut lc = Lifecycle::new(&setup.registry, &sandbox, scratch.path().join("lifecycle"));
    lc.image_env = build.config.config.env.clone().unwrap_or_default();
    lc.target = target;
    lc.platform_env = platform_env(&a.flags.env)?;
    lc.prepare(&source)?;
    let detected = lc.detect(&setup.order)?;
    print!("{}", detected.group_toml());
    print!("{}", detected.plan_toml());
    Ok(())
}

/// The cache directory of a build and its lock (held while the build runs).
fn open_cache(store: &Store, key: &str) -> Result<(PathBuf, std::fs::File)> {
    let hex: String = sha2::Sha256::digest(key.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    let base = store.cache_dir().join("buildpacks");
    std::fs::create_dir_all(&base).with_context(|| format!("creating {}", base.display()))?;
    let lock = std::fs::File::create(base.join(format!("{hex}.lock")))?;
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)
        .map_err(|e| anyhow::anyhow!("locking the buildpack cache: {e}"))?;
    Ok((base.join(hex), lock))
}

/// `strata build DIR` with buildpacks.
/// Builds the app; returns the image and how many of its leading layers are the run image's.
/// New layers are committed in `compression`.
pub fn build(
    store: &Store,
    a: &BuildArgs,
    progress: &dyn Progress,
    compression: Compression,
) -> Result<(Image, usize)> {
    let flags = &a.buildpacks;
    let setup = setup(flags)?;
    let source = a.context.canonicalize().with_context(|| format!("app directory {}", a.context.display()))?;
    let mut tags = Vec::new();
    for t in &a.tags {
        tags.push(Reference::parse(t).with_context(|| format!("invalid tag {t:?}"))?);
    }
    let registry = registry_client(store)?;
    let resolver = StoreResolver::new(store, &registry, a.pull);
    let (build_image, chain) = resolve_image(store, &resolver, &registry, &setup.build_image)?;
    let run_name = setup.run_image.clone().map_err(|e| anyhow::anyhow!(e))?;
    let (run_image, _) = resolve_image(store, &resolver, &registry, &run_name)?;

    // Analyze: the previous image of the same name, if it was built by buildpacks.
    let previous: Option<(Image, LifecycleMetadata)> = tags.first().and_then(|t| {
        let desc = store.layout.get(&t.to_string()).ok()??;
        let image = Image::load(&store.blobs, &desc).ok()?;
        let meta = LifecycleMetadata::from_labels(image.config.config.labels.as_ref())?;
        Some((image, meta))
    });
    let cache_key = match tags.first() {
        Some(t) => format!("image:{t}"),
        None => format!("dir:{}", source.display()),
    };
    let (cache_dir, _lock) = open_cache(store, &cache_key)?;

    let mut config = BuildConfig::default();
    if let Some(j) = a.jobs {
        config.jobs = j.max(1);
    }
    config.source_date_epoch = Some(NORMALIZED_TIME);
    config.compression = compression;
    config.scope = format!("buildpacks:{}", source.display());
    let builder = Builder::new(store, Some(&registry), progress, config).map_err(|e| anyhow::anyhow!("{e}"))?;
    crate::signals::on_interrupt(builder.cancel.clone());
    let target = build_target(store, &build_image, &chain);
    let sandbox = BuildSandbox {
        store,
        chain,
        runner: RunnerConfig::default(),
        cancel: builder.cancel.clone(),
        progress,
        next: AtomicUsize::new(0),
    };
    let scratch = store.snapshots.scratch()?;
    let mut lc = Lifecycle::new(&setup.registry, &sandbox, scratch.path().join("lifecycle"));
    lc.image_env = build_image.config.config.env.clone().unwrap_or_default();
    lc.target = target;
    lc.platform_env = platform_env(&flags.env)?;

    lc.prepare(&source)?;
    let detected = lc.detect(&setup.order)?;
    let names: Vec<String> = detected.group.iter().map(|g| g.bp.key()).collect();
    progress.message(&format!("buildpacks: detected {}", names.join(", ")));
    let use_cache = !(flags.clear_cache || a.no_cache);
    lc.restore(&detected, previous.as_ref().map(|(_, m)| m), use_cache.then_some(cache_dir.as_path()))?;
    let built = lc.build(&detected)?;

    // Export.
    let previous_layer = |diff_id: &str| -> Option<PathBuf> {
        let (image, _) = previous.as_ref()?;
        let (blob, d) = image.layers().find(|(_, d)| d.to_string() == diff_id)?;
        layers::snapshot(store, &Layer { diff_id: d.clone(), blob: blob.clone(), created: None }).ok()
    };
    let input = ExportInput {
        run_image: &run_image,
        previous: previous.as_ref().map(|(_, m)| m),
        previous_layer: &previous_layer,
    };
    let export = plan_export(&lc, &built, &input)?;
    for w in lc.warnings.lock().map(|w| w.clone()).unwrap_or_default().iter().chain(&export.warnings) {
        progress.message(&format!("warning: {w}"));
    }
    let image = builder.build(&export.graph, &export.target).map_err(|e| anyhow::anyhow!("{e}"))?;
    let (mut labels, launch_shas) = export.labels(&built, &run_image, &image.config.rootfs.diff_ids)?;
    for l in &a.labels {
        let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
        labels.insert(k.to_string(), v.to_string());
    }
    let mut config = image.config.clone();
    config.config.labels.get_or_insert_with(Default::default).extend(labels);
    let image = write_image(&store.blobs, &config, &image.manifest.layers, None)?;

    // Save the cache: cached layers wherever export left them.
    let layers_dir = lc.layers_dir();
    let located = |bp_id: &str, name: &str| -> Option<PathBuf> {
        if let Some(p) = export.staged.get(&(bp_id.to_string(), name.to_string())) {
            return Some(p.clone());
        }
        let p = layers_dir.join(strata_frontend::buildpacks::descriptor::escape_id(bp_id)).join(name);
        p.is_dir().then_some(p)
    };
    lc.save_cache(&built, &cache_dir, &located, &launch_shas)?;
    let base = run_image.config.rootfs.diff_ids.len();
    Ok((image, base))
}

/// `strata rebase IMAGE --run-image NEW`: the app's layers on the new run image's, without
/// rebuilding (the lifecycle's rebaser). The old run image's part is found by the
/// `runImage.topLayer` the lifecycle metadata records.
pub fn rebase(store: &Store, a: &RebaseArgs) -> Result<()> {
    let (name, desc) = find_image(store, &a.image)?;
    let image = Image::load(&store.blobs, &desc).with_context(|| format!("reading image {}", a.image))?;
    let mut meta = LifecycleMetadata::from_labels(image.config.config.labels.as_ref())
        .with_context(|| format!("{} has no {LIFECYCLE_LABEL} label: not built by buildpacks", a.image))?;
    let registry = registry_client(store)?;
    let resolver = StoreResolver::new(store, &registry, false);
    let (run, _) = resolve_image(store, &resolver, &registry, &a.run_image)?;
    let run_image = Image::load(
        &store.blobs,
        &strata_store::oci::Descriptor::new(
            strata_store::oci::media::OCI_MANIFEST,
            run.manifest_digest.clone(),
            store.blobs.size(&run.manifest_digest)?,
        ),
    )
    .or_else(|_| {
        Image::load(
            &store.blobs,
            &strata_store::oci::Descriptor::new(
                strata_store::oci::media::DOCKER_MANIFEST,
                run.manifest_digest.clone(),
                store.blobs.size(&run.manifest_digest)?,
            ),
        )
    })
    .with_context(|| format!("reading run image {}", a.run_image))?;
    let diff_ids = &image.config.rootfs.diff_ids;
    let top = diff_ids.iter().position(|d| d.to_string() == meta.run_image.top_layer).with_context(|| {
        format!("the run image's top layer {} is not among the image's layers", meta.run_image.top_layer)
    })?;
    let app_layers = &image.manifest.layers[top + 1..];
    let mut layers = run_image.manifest.layers.clone();
    layers.extend(app_layers.iter().cloned());
    let mut config = image.config.clone();
    config.rootfs.diff_ids = run_image.config.rootfs.diff_ids.clone();
    config.rootfs.diff_ids.extend(diff_ids[top + 1..].iter().cloned());
    // History: the new run image's, then the app's entries after the old run image's layers.
    let old = image.config.history.clone().unwrap_or_default();
    let mut seen = 0;
    let mut split = old.len();
    for (i, h) in old.iter().enumerate() {
        if !h.empty_layer {
            seen += 1;
            if seen == top + 1 {
                split = i + 1;
                break;
            }
        }
    }
    let mut history: Vec<History> = run_image.config.history.clone().unwrap_or_default();
    history.extend(old[split..].iter().cloned());
    config.history = Some(history);
    meta.run_image.top_layer = run_image.config.rootfs.diff_ids.last().map(|d| d.to_string()).unwrap_or_default();
    meta.run_image.reference = run.manifest_digest.to_string();
    meta.run_image.image = run.name.clone();
    config
        .config
        .labels
        .get_or_insert_with(Default::default)
        .insert(LIFECYCLE_LABEL.to_string(), serde_json::to_string(&meta)?);
    let rebased = write_image(&store.blobs, &config, &layers, None)?;
    let target = match &a.tag {
        Some(t) => Reference::parse(t).with_context(|| format!("invalid tag {t:?}"))?.to_string(),
        None => name.with_context(|| format!("{} has no name to keep: give -t NAME", a.image))?,
    };
    store.layout.set(&target, &rebased.descriptor)?;
    println!("{}", rebased.descriptor.digest);
    eprintln!("rebased {target} onto {} ({})", run.name, run.manifest_digest);
    Ok(())
}
