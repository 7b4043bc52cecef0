//! The lifecycle's detect, analyze/restore and build phases, driven from the host.
//!
//! Each `bin/detect` and `bin/build` runs as one process in the build image through a
//! [`Sandbox`] (strata's CLI runs them with the builder's sandbox, `strata_builder::exec`); all
//! the protocol around them — environments, plan files, reading `<layer>.toml`s, renaming
//! temporary layers, restoring metadata and caches — happens here, on host directories that the
//! sandbox binds in:
//!
//! | in the sandbox | host (`work/`) | detect | build |
//! |---|---|---|---|
//! | `/workspace` (`CNB_APP_DIR`) | `app/`, a copy of the source | read-only | read-write |
//! | `/layers` | `layers/`, `<escaped id>/` per buildpack | — | read-write |
//! | `/platform` | `platform/env/NAME` per user variable | read-only | read-only |
//! | `/cnb/buildpacks/<escaped id>/<version>` | the buildpack directory | read-only | read-only |
//! | `/cnb/detect` | `detect/<n>/` (`plan.toml` written by detect) | read-write | — |
//! | `/cnb/plan` | `plan/<escaped id>/plan.toml` (its buildpack plan) | — | read-only |
//!
//! Environment of `bin/detect` and `bin/build` (Buildpack API 0.12): the build image's `Env`;
//! for build, the `bin/` etc. directories and `env/`, `env.build/` files of earlier buildpacks'
//! `build = true` layers; the user's variables (unless the buildpack sets `clear-env`; path
//! variables are prepended, others replaced); `CNB_BUILDPACK_DIR`, `CNB_PLATFORM_DIR`,
//! `CNB_BUILD_PLAN_PATH` (detect) or `CNB_LAYERS_DIR`, `CNB_BP_PLAN_PATH` (build),
//! `CNB_TARGET_OS/ARCH[/ARCH_VARIANT/DISTRO_NAME/DISTRO_VERSION]`, `CNB_EXEC_ENV=production`.
//! The same paths are also passed as positional arguments, as older APIs expect.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::descriptor::{BuildTarget, Buildpack, Registry};
use super::env::{self, Env, EnvOp, Modifier};
use super::fsutil;
use super::layers::{BuildOutput, LayerToml, ProcessList};
use super::metadata::{LifecycleMetadata, json_to_toml};
use super::order::Member;
use super::plan::{self, BuildpackPlans, Candidate, DetectPlan, PlanEntry};

/// Where things are inside the sandbox.
pub const APP_DIR: &str = "/workspace";
pub const LAYERS_DIR: &str = "/layers";
pub const PLATFORM_DIR: &str = "/platform";
pub const BUILDPACKS_DIR: &str = "/cnb/buildpacks";

/// A host directory bound into the sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostMount {
    pub target: String,
    pub source: PathBuf,
    pub readonly: bool,
}

/// One process to run in the build image.
#[derive(Debug, Clone)]
pub struct ProcessRequest {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub mounts: Vec<HostMount>,
}

/// Runs processes in the build image.
pub trait Sandbox: Sync {
    /// Runs `req` (`name` is what progress output calls it); returns its exit code (a process
    /// killed by a signal counts as 128 + the signal).
    fn run(&self, name: &str, req: &ProcessRequest) -> Result<i32, String>;
}

/// Errors of the lifecycle phases.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error("{0}")]
    Io(String),
    #[error("no buildpack group passed detection.\n{0}")]
    NoGroup(String),
    #[error("buildpack {buildpack} detect failed: {message}")]
    DetectError { buildpack: String, message: String },
    #[error("buildpack {buildpack} build failed: {message}")]
    BuildFailed { buildpack: String, message: String },
    #[error(transparent)]
    Layers(#[from] super::layers::LayersError),
}

fn io(context: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> LifecycleError {
    move |e| LifecycleError::Io(format!("{context}: {e}"))
}

/// A buildpack of the chosen group.
#[derive(Debug, Clone)]
pub struct GroupBuildpack {
    pub bp: Buildpack,
    pub optional: bool,
}

impl GroupBuildpack {
    fn mount(&self) -> HostMount {
        HostMount { target: self.dir_inside(), source: self.bp.dir.clone(), readonly: true }
    }

    fn dir_inside(&self) -> String {
        format!("{BUILDPACKS_DIR}/{}/{}", self.bp.escaped_id(), self.bp.version())
    }
}

/// The detect phase's result.
#[derive(Debug, Clone)]
pub struct Detected {
    pub group: Vec<GroupBuildpack>,
    pub entries: Vec<(String, PlanEntry)>,
}

impl Detected {
    /// The lifecycle's `group.toml`.
    pub fn group_toml(&self) -> String {
        let mut s = String::new();
        for g in &self.group {
            s.push_str(&format!(
                "[[group]]\nid = {:?}\nversion = {:?}\napi = {:?}\n",
                g.bp.id(),
                g.bp.version(),
                g.bp.api.to_string()
            ));
            if let Some(h) = &g.bp.descriptor.buildpack.homepage {
                s.push_str(&format!("homepage = {h:?}\n"));
            }
            s.push('\n');
        }
        s
    }

    /// The lifecycle's `plan.toml`.
    pub fn plan_toml(&self) -> String {
        plan::plan_toml(&self.entries)
    }
}

/// One buildpack after its build.
#[derive(Debug, Clone)]
pub struct BuiltBuildpack {
    pub bp: Buildpack,
    pub output: BuildOutput,
}

/// The build phase's result.
#[derive(Debug, Clone)]
pub struct Built {
    pub buildpacks: Vec<BuiltBuildpack>,
    pub processes: ProcessList,
    /// `launch.toml` labels, later buildpacks last.
    pub labels: Vec<(String, String)>,
}

/// How a detect run ended.
#[derive(Debug, Clone)]
enum DetectOutcome {
    Pass(DetectPlan),
    Fail,
    Error(String),
}

/// A lifecycle run over one work directory.
pub struct Lifecycle<'a> {
    pub registry: &'a Registry,
    pub sandbox: &'a dyn Sandbox,
    /// Host directory for `app/`, `layers/`, … (see the module docs).
    pub work: PathBuf,
    /// The build image's `Env`.
    pub image_env: Vec<String>,
    pub target: BuildTarget,
    /// User-provided variables (`$CNB_PLATFORM_DIR/env/`).
    pub platform_env: Vec<(String, String)>,
    /// Warnings for the user.
    pub warnings: Mutex<Vec<String>>,
}

impl<'a> Lifecycle<'a> {
    pub fn new(registry: &'a Registry, sandbox: &'a dyn Sandbox, work: PathBuf) -> Lifecycle<'a> {
        Lifecycle {
            registry,
            sandbox,
            work,
            image_env: Vec::new(),
            target: BuildTarget { os: "linux".into(), arch: "amd64".into(), variant: None, distro: None },
            platform_env: Vec::new(),
            warnings: Mutex::new(Vec::new()),
        }
    }

    fn warn(&self, w: impl Into<String>) {
        if let Ok(mut ws) = self.warnings.lock() {
            ws.push(w.into());
        }
    }

    pub fn app_dir(&self) -> PathBuf {
        self.work.join("app")
    }

    pub fn layers_dir(&self) -> PathBuf {
        self.work.join("layers")
    }

    /// Copies the source into `app/` and writes the platform directory.
    pub fn prepare(&self, source: &Path) -> Result<(), LifecycleError> {
        fsutil::copy_tree(source, &self.app_dir()).map_err(io(format!("copying {}", source.display())))?;
        std::fs::create_dir_all(self.layers_dir()).map_err(io("creating the layers directory"))?;
        let env_dir = self.work.join("platform/env");
        std::fs::create_dir_all(&env_dir).map_err(io("creating the platform directory"))?;
        for (k, v) in &self.platform_env {
            if !env::valid_name(k) {
                return Err(LifecycleError::Io(format!("invalid environment variable name {k:?}")));
            }
            std::fs::write(env_dir.join(k), v).map_err(io("writing the platform env"))?;
        }
        Ok(())
    }

    /// The variables every buildpack process gets (before its own).
    fn base_env(&self, bp: &Buildpack, extra: &[EnvOp]) -> Env {
        let mut e = Env::from_list(&self.image_env);
        if e.get("PATH").is_none() {
            e.set("PATH", strata_store::oci::DEFAULT_PATH);
        }
        for op in extra {
            e.apply(op);
        }
        if !bp.descriptor.buildpack.clear_env {
            for (k, v) in &self.platform_env {
                let is_path = env::BUILD_PATHS.iter().any(|(_, var)| var == k);
                let modifier = if is_path { Modifier::Prepend } else { Modifier::Override };
                e.apply(&EnvOp { name: k.clone(), modifier, value: v.clone(), delim: ":".into() });
            }
        }
        e.set("CNB_BUILDPACK_DIR", &format!("{BUILDPACKS_DIR}/{}/{}", bp.escaped_id(), bp.version()));
        e.set("CNB_PLATFORM_DIR", PLATFORM_DIR);
        e.set("CNB_TARGET_OS", &self.target.os);
        e.set("CNB_TARGET_ARCH", &self.target.arch);
        if let Some(v) = &self.target.variant {
            e.set("CNB_TARGET_ARCH_VARIANT", v);
        }
        if let Some((name, version)) = &self.target.distro {
            e.set("CNB_TARGET_DISTRO_NAME", name);
            e.set("CNB_TARGET_DISTRO_VERSION", version);
        }
        e.set("CNB_EXEC_ENV", "production");
        e
    }

    /// The detect phase: the first group of `order` that passes.
    pub fn detect(&self, order: &[Vec<Member>]) -> Result<Detected, LifecycleError> {
        let memo: Mutex<HashMap<usize, DetectOutcome>> = Mutex::new(HashMap::new());
        let mut report = String::new();
        let mut errors = Vec::new();
        for (gi, group) in order.iter().enumerate() {
            // Detect runs of one group are independent: run them at once.
            let todo: Vec<usize> = group
                .iter()
                .map(|m| m.bp)
                .filter(|bp| memo.lock().map(|m| !m.contains_key(bp)).unwrap_or(true))
                .collect();
            let results: Vec<(usize, DetectOutcome)> = std::thread::scope(|s| {
                let handles: Vec<_> = todo.iter().map(|&bp| s.spawn(move || (bp, self.detect_one(bp)))).collect();
                handles.into_iter().filter_map(|h| h.join().ok()).collect()
            });
            let mut memo_now = memo.lock().map_err(|_| LifecycleError::Io("detect state poisoned".into()))?;
            for (bp, outcome) in results {
                memo_now.insert(bp, outcome);
            }
            let mut candidates = Vec::new();
            let mut members = Vec::new();
            let mut line = format!("group {}:", gi + 1);
            let mut ok = true;
            for m in group {
                let bp = &self.registry.buildpacks[m.bp];
                let outcome = memo_now.get(&m.bp).cloned().unwrap_or(DetectOutcome::Fail);
                let status = match &outcome {
                    DetectOutcome::Pass(_) => "pass".to_string(),
                    DetectOutcome::Fail => "fail".to_string(),
                    DetectOutcome::Error(e) => {
                        errors.push(format!("{}: {e}", bp.key()));
                        format!("error ({e})")
                    }
                };
                line.push_str(&format!(" {}{} {status};", bp.key(), if m.optional { " (optional)" } else { "" }));
                match outcome {
                    DetectOutcome::Pass(plan) => {
                        candidates.push(Candidate { key: bp.key(), optional: m.optional, plan });
                        members.push(*m);
                    }
                    _ if m.optional => {}
                    _ => ok = false,
                }
            }
            if ok && let Some(res) = plan::resolve(&candidates) {
                let group = res
                    .members
                    .iter()
                    .map(|&i| GroupBuildpack {
                        bp: self.registry.buildpacks[members[i].bp].clone(),
                        optional: members[i].optional,
                    })
                    .collect();
                return Ok(Detected { group, entries: res.entries });
            }
            if ok {
                line.push_str(" no consistent build plan");
            }
            report.push_str(&line);
            report.push('\n');
        }
        if let Some(first) = errors.first() {
            let (buildpack, message) = first.split_once(": ").unwrap_or((first, ""));
            return Err(LifecycleError::DetectError { buildpack: buildpack.into(), message: message.into() });
        }
        Err(LifecycleError::NoGroup(report.trim_end().to_string()))
    }

    fn detect_one(&self, index: usize) -> DetectOutcome {
        let bp = &self.registry.buildpacks[index];
        if !self.target.matches(&bp.descriptor.targets) {
            return DetectOutcome::Fail;
        }
        let out = self.work.join("detect").join(index.to_string());
        if let Err(e) = std::fs::create_dir_all(&out) {
            return DetectOutcome::Error(format!("creating {}: {e}", out.display()));
        }
        let g = GroupBuildpack { bp: bp.clone(), optional: false };
        let plan_path = "/cnb/detect/plan.toml";
        let mut env = self.base_env(bp, &[]);
        env.set("CNB_BUILD_PLAN_PATH", plan_path);
        let req = ProcessRequest {
            args: vec![format!("{}/bin/detect", g.dir_inside()), PLATFORM_DIR.into(), plan_path.into()],
            env: env.to_list(),
            cwd: APP_DIR.into(),
            mounts: vec![
                HostMount { target: APP_DIR.into(), source: self.app_dir(), readonly: true },
                HostMount { target: PLATFORM_DIR.into(), source: self.work.join("platform"), readonly: true },
                g.mount(),
                HostMount { target: "/cnb/detect".into(), source: out.clone(), readonly: false },
            ],
        };
        match self.sandbox.run(&format!("detect {}", bp.key()), &req) {
            Ok(0) => match std::fs::read_to_string(out.join("plan.toml")) {
                Ok(text) => match DetectPlan::parse(&text) {
                    Ok(p) => DetectOutcome::Pass(p),
                    Err(e) => DetectOutcome::Error(format!("its build plan: {e}")),
                },
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => DetectOutcome::Pass(DetectPlan::default()),
                Err(e) => DetectOutcome::Error(format!("reading its build plan: {e}")),
            },
            Ok(100) => DetectOutcome::Fail,
            Ok(code) => DetectOutcome::Error(format!("exit code {code}")),
            Err(e) => DetectOutcome::Error(e),
        }
    }

    /// The analyze and restore phases: `<layer>.toml` metadata of the previous image's launch
    /// layers and `store.toml`; cached layers (metadata and contents) from `cache`, a cached
    /// launch layer only when the previous image has the same layer (by diff_id).
    pub fn restore(
        &self,
        detected: &Detected,
        previous: Option<&LifecycleMetadata>,
        cache: Option<&Path>,
    ) -> Result<(), LifecycleError> {
        for g in &detected.group {
            let dir = self.layers_dir().join(g.bp.escaped_id());
            std::fs::create_dir_all(&dir).map_err(io("creating a layers directory"))?;
            let prev = previous.and_then(|p| p.buildpack(g.bp.id()));
            let cached = cache.map(|c| c.join(g.bp.escaped_id()));
            if let Some(prev) = prev {
                for (name, layer) in &prev.layers {
                    if !layer.launch {
                        continue;
                    }
                    let cache_sha =
                        cached.as_ref().and_then(|c| std::fs::read_to_string(c.join(format!("{name}.sha"))).ok());
                    let contents = cached.as_ref().map(|c| c.join(name)).filter(|p| p.is_dir());
                    if layer.cache && cache_sha.as_deref() == Some(layer.sha.as_str()) && contents.is_some() {
                        self.restore_layer(&dir, name, json_to_toml(&layer.data), contents.as_deref())?;
                    } else if !layer.cache && !layer.build {
                        self.restore_layer(&dir, name, json_to_toml(&layer.data), None)?;
                    }
                }
                if let Some(store) = &prev.store {
                    let text =
                        toml::to_string(&StoreFile { metadata: json_to_toml(&store.metadata) }).unwrap_or_default();
                    std::fs::write(dir.join("store.toml"), text).map_err(io("restoring store.toml"))?;
                }
            }
            let Some(cached) = cached else { continue };
            let Ok(entries) = std::fs::read_dir(&cached) else { continue };
            let mut names: Vec<String> = entries
                .filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().to_str().and_then(|n| n.strip_suffix(".toml")).map(str::to_string))
                .collect();
            names.sort();
            for name in names {
                let Ok(text) = std::fs::read_to_string(cached.join(format!("{name}.toml"))) else { continue };
                let Ok(toml) = toml::from_str::<LayerToml>(&text) else { continue };
                let t = toml.types();
                if t.cache && !t.launch && cached.join(&name).is_dir() {
                    self.restore_layer(&dir, &name, toml.metadata, Some(&cached.join(&name)))?;
                }
            }
        }
        Ok(())
    }

    fn restore_layer(
        &self,
        dir: &Path,
        name: &str,
        metadata: toml::Table,
        contents: Option<&Path>,
    ) -> Result<(), LifecycleError> {
        std::fs::write(dir.join(format!("{name}.toml")), LayerToml::metadata_only(metadata))
            .map_err(io(format!("restoring {name}.toml")))?;
        if let Some(src) = contents {
            fsutil::copy_tree(src, &dir.join(name)).map_err(io(format!("restoring cached layer {name}")))?;
        }
        Ok(())
    }

    /// The build phase: `bin/build` of each buildpack of the group, in order.
    pub fn build(&self, detected: &Detected) -> Result<Built, LifecycleError> {
        let mut plans = BuildpackPlans::new(&detected.entries);
        let mut built: Vec<BuiltBuildpack> = Vec::new();
        let mut processes = ProcessList::default();
        let mut labels = Vec::new();
        for g in &detected.group {
            let bp = &g.bp;
            let key = bp.key();
            let esc = bp.escaped_id();
            let layers = self.layers_dir().join(&esc);
            std::fs::create_dir_all(&layers).map_err(io("creating a layers directory"))?;
            let plan_dir = self.work.join("plan").join(&esc);
            std::fs::create_dir_all(&plan_dir).map_err(io("creating a plan directory"))?;
            std::fs::write(plan_dir.join("plan.toml"), plans.toml_for(&key)).map_err(io("writing a buildpack plan"))?;

            let mut env = self.base_env(bp, &self.build_layer_env(&built)?);
            let layers_inside = format!("{LAYERS_DIR}/{esc}");
            env.set("CNB_LAYERS_DIR", &layers_inside);
            env.set("CNB_BP_PLAN_PATH", "/cnb/plan/plan.toml");
            env.set("CNB_APP_DIR", APP_DIR);
            let req = ProcessRequest {
                args: vec![
                    format!("{}/bin/build", g.dir_inside()),
                    layers_inside.clone(),
                    PLATFORM_DIR.into(),
                    "/cnb/plan/plan.toml".into(),
                ],
                env: env.to_list(),
                cwd: APP_DIR.into(),
                mounts: vec![
                    HostMount { target: APP_DIR.into(), source: self.app_dir(), readonly: false },
                    HostMount { target: LAYERS_DIR.into(), source: self.layers_dir(), readonly: false },
                    HostMount { target: PLATFORM_DIR.into(), source: self.work.join("platform"), readonly: true },
                    g.mount(),
                    HostMount { target: "/cnb/plan".into(), source: plan_dir, readonly: true },
                ],
            };
            let fail = |message: String| LifecycleError::BuildFailed { buildpack: key.clone(), message };
            match self.sandbox.run(&format!("build {key}"), &req) {
                Ok(0) => {}
                Ok(code) => return Err(fail(format!("exit code {code}"))),
                Err(e) => return Err(fail(e)),
            }
            let output = BuildOutput::read(&layers)?;
            for w in &output.warnings {
                self.warn(format!("{key}: {w}"));
            }
            let unmet: Vec<String> = output.build.unmet.iter().map(|u| u.name.clone()).collect();
            plans.finished(&key, &unmet);
            let defaults: Vec<bool> = output.launch.processes.iter().map(|p| p.default).collect();
            processes.add(output.processes(bp.id(), bp.api, APP_DIR), &defaults);
            for l in &output.launch.labels {
                labels.retain(|(k, _): &(String, String)| *k != l.key);
                labels.push((l.key.clone(), l.value.clone()));
            }
            built.push(BuiltBuildpack { bp: bp.clone(), output });
        }
        Ok(Built { buildpacks: built, processes, labels })
    }

    /// The environment changes of the `build = true` layers of buildpacks that already built.
    fn build_layer_env(&self, built: &[BuiltBuildpack]) -> Result<Vec<EnvOp>, LifecycleError> {
        let mut ops = Vec::new();
        for b in built {
            let dir = self.layers_dir().join(b.bp.escaped_id());
            let layers: Vec<(PathBuf, String)> = b
                .output
                .layers
                .iter()
                .filter(|l| l.toml.types().build && l.has_dir)
                .map(|l| (dir.join(&l.name), format!("{LAYERS_DIR}/{}/{}", b.bp.escaped_id(), l.name)))
                .collect();
            ops.extend(env::path_ops(&layers, env::BUILD_PATHS));
            let mut warnings = Vec::new();
            for (host, _) in &layers {
                ops.extend(env::read_env_dir(&host.join("env"), &mut warnings).map_err(io("reading env files"))?);
                ops.extend(env::read_env_dir(&host.join("env.build"), &mut warnings).map_err(io("reading env files"))?);
            }
            for w in warnings {
                self.warn(w);
            }
        }
        Ok(ops)
    }

    /// Saves the `cache = true` layers of this build (and the diff_ids of cached launch layers,
    /// `launch_shas` by (buildpack id, layer)) as the cache for the next build, replacing the
    /// old cache. `located` gives where each layer's directory is now (export may have moved
    /// launch layers into staging).
    pub fn save_cache(
        &self,
        built: &Built,
        cache: &Path,
        located: &dyn Fn(&str, &str) -> Option<PathBuf>,
        launch_shas: &HashMap<(String, String), String>,
    ) -> Result<(), LifecycleError> {
        let fresh = cache.with_extension("new");
        let _ = fsutil::remove_any(&fresh);
        std::fs::create_dir_all(&fresh).map_err(io("creating the cache"))?;
        for b in &built.buildpacks {
            let esc = b.bp.escaped_id();
            for l in &b.output.layers {
                let t = l.toml.types();
                if !t.cache {
                    continue;
                }
                let Some(src) = located(b.bp.id(), &l.name) else { continue };
                let dst = fresh.join(&esc);
                fsutil::move_tree(&src, &dst.join(&l.name)).map_err(io(format!("caching layer {}", l.name)))?;
                let text = toml::to_string(&l.toml).unwrap_or_default();
                std::fs::write(dst.join(format!("{}.toml", l.name)), text).map_err(io("writing the cache"))?;
                if let Some(sha) = launch_shas.get(&(b.bp.id().to_string(), l.name.clone())) {
                    std::fs::write(dst.join(format!("{}.sha", l.name)), sha).map_err(io("writing the cache"))?;
                }
            }
        }
        let old = cache.with_extension("old");
        let _ = fsutil::remove_any(&old);
        if cache.exists() {
            std::fs::rename(cache, &old).map_err(io("replacing the cache"))?;
        }
        std::fs::rename(&fresh, cache).map_err(io("replacing the cache"))?;
        let _ = fsutil::remove_any(&old);
        Ok(())
    }
}

#[derive(serde::Serialize)]
struct StoreFile {
    metadata: toml::Table,
}
