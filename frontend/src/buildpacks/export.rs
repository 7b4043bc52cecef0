//! The export phase: the app image as a build graph and image config, through the same
//! [`Graph`]/[`Target`] as a Dockerfile build, so the builder's layer making, caching and image
//! writing apply unchanged.
//!
//! Layers, bottom first (Buildpack API spec, "Phase #4: Export"; lifecycle's exporter):
//! 1. the run image's layers ([`Op::Image`]);
//! 2. one layer per launch layer, buildpacks in group order and layers by name: a copy of
//!    `/layers/<escaped id>/<name>` staged on the host; a launch layer the buildpack kept
//!    without a directory (metadata restored from the previous image) is copied from the
//!    previous image's layer, so it is the same layer again;
//! 3. the app directory (`/workspace`): one layer per `launch.toml` slice that matches
//!    anything (earlier buildpacks' slices first), then one for the rest;
//! 4. the launcher (`/cnb/lifecycle/launcher`, see [`super::launcher`]);
//! 5. the config: `/cnb/process/<type>` links to the launcher and `/layers/config/metadata.toml`.
//!
//! Every staged tree gets the lifecycle's fixed timestamps ([`fsutil::normalize_times`]) and
//! the build uses the same fixed time for the config and history (`BuildConfig::epoch`), so a
//! layer's digest depends on its content only and a rebuild with unchanged inputs gives the
//! same image. The metadata labels need the layers' diff_ids, known only once the layers are
//! made: [`Export::labels`] computes them from the built image for the caller to add.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use strata_builder::graph::{
    CopyAction, FileAction, FileOp, Graph, ImageSource, LocalSource, Node, NodeId, Op, Target,
};
use strata_store::digest::Digest;
use strata_store::oci::{DEFAULT_PATH, History, ImageConfig};

use super::fsutil;
use super::launcher::{self, LaunchBuildpack, LaunchLayer};
use super::lifecycle::{APP_DIR, Built, LAYERS_DIR, Lifecycle, LifecycleError};
use super::metadata::{
    BUILD_LABEL, BuildMetadata, BuildpackLayers, GroupBuildpack, LIFECYCLE_LABEL, Launcher, LayerMetadata, LayerSha,
    LifecycleMetadata, PROJECT_LABEL, RunImage, StoreMetadata, toml_to_json,
};
use crate::convert::ResolvedImage;

/// The launcher's path in the image and the directory of process-type links.
pub const LAUNCHER: &str = "/cnb/lifecycle/launcher";
pub const PROCESS_DIR: &str = "/cnb/process";

/// The diff_id of each launch layer, by (buildpack id, layer name).
pub type LaunchShas = HashMap<(String, String), String>;

/// What a layer above the run image is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerRole {
    Launch { buildpack: String, name: String },
    App,
    Launcher,
    Config,
}

/// The export graph and what the caller needs afterwards.
#[derive(Debug)]
pub struct Export {
    pub graph: Graph,
    pub target: Target,
    /// The layers above the run image's, in order.
    pub roles: Vec<LayerRole>,
    /// Where each staged launch layer's directory is now (for saving the cache).
    pub staged: HashMap<(String, String), PathBuf>,
    pub warnings: Vec<String>,
}

/// What the export needs besides the build's result.
pub struct ExportInput<'a> {
    pub run_image: &'a ResolvedImage,
    pub previous: Option<&'a LifecycleMetadata>,
    /// The unpacked directory of a layer of the previous image, by diff_id.
    pub previous_layer: &'a dyn Fn(&str) -> Option<PathBuf>,
}

struct Stager {
    root: PathBuf,
    count: usize,
}

impl Stager {
    fn next(&mut self, what: &str) -> Result<PathBuf, LifecycleError> {
        self.count += 1;
        let dir = self.root.join(format!("{:03}-{what}", self.count));
        std::fs::create_dir_all(&dir).map_err(|e| LifecycleError::Io(format!("creating {}: {e}", dir.display())))?;
        Ok(dir)
    }
}

fn io(context: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> LifecycleError {
    move |e| LifecycleError::Io(format!("{context}: {e}"))
}

/// Stages the layers and makes the graph and config.
pub fn plan_export(lc: &Lifecycle<'_>, built: &Built, input: &ExportInput<'_>) -> Result<Export, LifecycleError> {
    let mut stager = Stager { root: lc.work.join("export"), count: 0 };
    let mut graph = Graph::new();
    let run = input.run_image;
    let mut top = graph.add(Node::new(
        Op::Image(ImageSource {
            reference: run.name.clone(),
            manifest_digest: run.manifest_digest.clone(),
            platform: run.config.platform(),
        }),
        format!("[run image] {}", run.name),
    ));
    let mut history: Vec<History> = run.config.history.clone().unwrap_or_default();
    let mut roles = Vec::new();
    let mut staged = HashMap::new();
    let mut warnings = Vec::new();
    let mut launch_bps = Vec::new();
    let mut add_copy =
        |graph: &mut Graph, top: &mut NodeId, dir: &Path, trees: &[&str], name: String, history_text: String| {
            let mut actions = Vec::new();
            for tree in trees {
                let local = graph.add(Node::new(
                    Op::Local(LocalSource { name: name.clone(), path: dir.to_path_buf(), filter: None }),
                    format!("{name} (staged)"),
                ));
                actions.push(FileAction::Copy(CopyAction {
                    source: local,
                    src_paths: vec![tree.to_string()],
                    dest: format!("/{tree}"),
                    chown: None,
                    chmod: None,
                    allow_wildcard: false,
                    allow_empty_wildcard: false,
                    unpack_archives: false,
                    parents: false,
                    include: Vec::new(),
                    required_paths: Vec::new(),
                    exclude: Vec::new(),
                    link: false,
                    include_filter: None,
                    exclude_filter: None,
                }));
            }
            *top = graph.add(Node::new(Op::File(FileOp { root: *top, actions }), name));
            history.push(History {
                created: None,
                created_by: Some(history_text),
                author: None,
                comment: None,
                empty_layer: false,
            });
        };

    // Launch layers.
    for b in &built.buildpacks {
        let esc = b.bp.escaped_id();
        let mut launch_layers = Vec::new();
        for l in &b.output.layers {
            if !l.toml.types().launch {
                continue;
            }
            let rel = format!("layers/{esc}/{}", l.name);
            let dir = if l.has_dir {
                let dir = stager.next(&format!("layer-{esc}-{}", l.name))?;
                let dst = dir.join(&rel);
                fsutil::move_tree(&lc.layers_dir().join(&esc).join(&l.name), &dst)
                    .map_err(io(format!("staging {rel}")))?;
                fsutil::normalize_times(&dir.join("layers")).map_err(io(format!("staging {rel}")))?;
                staged.insert((b.bp.id().to_string(), l.name.clone()), dst);
                dir
            } else {
                let sha = input
                    .previous
                    .and_then(|p| p.buildpack(b.bp.id()))
                    .and_then(|p| p.layers.get(&l.name))
                    .map(|m| m.sha.clone());
                let dir = sha.as_deref().and_then(|s| (input.previous_layer)(s));
                match dir.filter(|d| d.join(&rel).is_dir()) {
                    Some(d) => d,
                    None => {
                        return Err(LifecycleError::Io(format!(
                            "{}: launch layer {} has no directory and the previous image has no such layer to reuse",
                            b.bp.key(),
                            l.name
                        )));
                    }
                }
            };
            launch_layers.push(LaunchLayer { host: dir.join(&rel), inside: format!("/{rel}") });
            add_copy(
                &mut graph,
                &mut top,
                &dir,
                &["layers"],
                format!("[export] layer {}:{}", b.bp.id(), l.name),
                format!("buildpack {} layer {}", b.bp.key(), l.name),
            );
            roles.push(LayerRole::Launch { buildpack: b.bp.id().to_string(), name: l.name.clone() });
        }
        launch_bps.push(LaunchBuildpack { layers: launch_layers });
    }

    // The app, slices first.
    let app = lc.app_dir();
    let mut slice_no = 0;
    for b in &built.buildpacks {
        for slice in &b.output.launch.slices {
            let dir = stager.next("slice")?;
            let moved = take_slice(&app, &slice.paths, &dir.join("workspace"), &mut warnings)?;
            if moved == 0 {
                warnings.push(format!("{}: slice {:?} matches nothing", b.bp.key(), slice.paths));
                continue;
            }
            slice_no += 1;
            fsutil::normalize_times(&dir.join("workspace")).map_err(io("staging a slice"))?;
            add_copy(
                &mut graph,
                &mut top,
                &dir,
                &["workspace"],
                format!("[export] app slice {slice_no}"),
                format!("app slice {slice_no}"),
            );
            roles.push(LayerRole::App);
        }
    }
    let dir = stager.next("app")?;
    fsutil::move_tree(&app, &dir.join("workspace")).map_err(io("staging the app"))?;
    fsutil::normalize_times(&dir.join("workspace")).map_err(io("staging the app"))?;
    add_copy(&mut graph, &mut top, &dir, &["workspace"], "[export] app".into(), "application".into());
    roles.push(LayerRole::App);

    // The launcher.
    let processes = &built.processes.processes;
    let script =
        launcher::script(&launch_bps, processes, APP_DIR, &mut warnings).map_err(io("writing the launcher"))?;
    let dir = stager.next("launcher")?;
    let path = dir.join(LAUNCHER.trim_start_matches('/'));
    std::fs::create_dir_all(path.parent().unwrap_or(&dir)).map_err(io("writing the launcher"))?;
    std::fs::write(&path, script).map_err(io("writing the launcher"))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).map_err(io("writing the launcher"))?;
    fsutil::normalize_times(&dir.join("cnb")).map_err(io("staging the launcher"))?;
    add_copy(&mut graph, &mut top, &dir, &["cnb"], "[export] launcher".into(), "buildpacks launcher".into());
    roles.push(LayerRole::Launcher);

    // The config: process links and metadata.toml.
    let dir = stager.next("config")?;
    let pdir = dir.join(PROCESS_DIR.trim_start_matches('/'));
    std::fs::create_dir_all(&pdir).map_err(io("writing process links"))?;
    for p in processes {
        std::os::unix::fs::symlink(LAUNCHER, pdir.join(&p.kind)).map_err(io("writing process links"))?;
    }
    let cdir = dir.join("layers/config");
    std::fs::create_dir_all(&cdir).map_err(io("writing metadata.toml"))?;
    std::fs::write(cdir.join("metadata.toml"), metadata_toml(built)).map_err(io("writing metadata.toml"))?;
    fsutil::normalize_times(&dir.join("cnb")).map_err(io("staging the config"))?;
    fsutil::normalize_times(&dir.join("layers")).map_err(io("staging the config"))?;
    add_copy(
        &mut graph,
        &mut top,
        &dir,
        &["cnb", "layers"],
        "[export] config".into(),
        "buildpacks application config".into(),
    );
    roles.push(LayerRole::Config);

    // The image config.
    let mut config: ImageConfig = run.config.clone();
    config.history = Some(history);
    config.created = None;
    let c = &mut config.config;
    c.entrypoint = Some(vec![match &built.processes.default {
        Some(t) => format!("{PROCESS_DIR}/{t}"),
        None => LAUNCHER.to_string(),
    }]);
    c.cmd = None;
    c.working_dir = APP_DIR.to_string();
    let path = c.env_var("PATH").unwrap_or(DEFAULT_PATH).to_string();
    c.set_env_var("PATH", &format!("{path}:{PROCESS_DIR}:/cnb/lifecycle"));
    c.set_env_var("CNB_LAYERS_DIR", LAYERS_DIR);
    c.set_env_var("CNB_APP_DIR", APP_DIR);
    c.set_env_var("CNB_PLATFORM_API", "0.12");
    let labels = c.labels.get_or_insert_with(BTreeMap::new);
    for (k, v) in &built.labels {
        labels.insert(k.clone(), v.clone());
    }
    Ok(Export { graph, target: Target { root: top, config }, roles, staged, warnings })
}

/// Moves what `patterns` match in `app` into `dest` (same relative paths); returns how many
/// top-most matches moved. Patterns are Go `filepath.Match` globs relative to the app
/// directory (or absolute under it); ones that leave it are ignored with a warning.
fn take_slice(
    app: &Path,
    patterns: &[String],
    dest: &Path,
    warnings: &mut Vec<String>,
) -> Result<usize, LifecycleError> {
    let mut pats = Vec::new();
    for p in patterns {
        let rel = p.strip_prefix(APP_DIR).map(|r| r.trim_start_matches('/')).unwrap_or(p.as_str());
        if rel.starts_with('/') || rel.split('/').any(|c| c == "..") {
            warnings.push(format!("slice path {p:?} is outside the app directory, ignored"));
            continue;
        }
        if strata_builder::pathmatch::validate(rel).is_err() {
            warnings.push(format!("slice path {p:?} is not a valid pattern, ignored"));
            continue;
        }
        pats.push(rel.trim_end_matches('/').to_string());
    }
    let mut matched = Vec::new();
    collect_matches(app, "", &pats, &mut matched).map_err(io("matching slices"))?;
    for rel in &matched {
        fsutil::move_tree(&app.join(rel), &dest.join(rel)).map_err(io(format!("slicing {rel}")))?;
    }
    Ok(matched.len())
}

fn collect_matches(dir: &Path, prefix: &str, pats: &[String], out: &mut Vec<String>) -> std::io::Result<()> {
    let mut entries: Vec<(String, bool)> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.file_type().map(|t| t.is_dir()).unwrap_or(false)))
        .collect();
    entries.sort();
    for (name, is_dir) in entries {
        let rel = if prefix.is_empty() { name.clone() } else { format!("{prefix}/{name}") };
        if pats.iter().any(|p| strata_builder::pathmatch::matches(p, &rel).unwrap_or(false)) {
            out.push(rel);
        } else if is_dir {
            collect_matches(&dir.join(&name), &rel, pats, out)?;
        }
    }
    Ok(())
}

/// `/layers/config/metadata.toml`: the group and the processes, as the lifecycle writes it.
fn metadata_toml(built: &Built) -> String {
    #[derive(serde::Serialize)]
    struct Bp<'a> {
        id: &'a str,
        version: &'a str,
        api: String,
    }
    #[derive(serde::Serialize)]
    struct Proc<'a> {
        r#type: &'a str,
        command: &'a [String],
        args: &'a [String],
        direct: bool,
        #[serde(rename = "buildpack-id")]
        buildpack_id: &'a str,
        #[serde(rename = "working-dir")]
        working_dir: &'a str,
    }
    #[derive(serde::Serialize)]
    struct Meta<'a> {
        buildpacks: Vec<Bp<'a>>,
        processes: Vec<Proc<'a>>,
    }
    let m = Meta {
        buildpacks: built
            .buildpacks
            .iter()
            .map(|b| Bp { id: b.bp.id(), version: b.bp.version(), api: b.bp.api.to_string() })
            .collect(),
        processes: built
            .processes
            .processes
            .iter()
            .map(|p| Proc {
                r#type: &p.kind,
                command: &p.command,
                args: &p.args,
                direct: p.direct,
                buildpack_id: &p.buildpack_id,
                working_dir: &p.working_dir,
            })
            .collect(),
    };
    toml::to_string(&m).unwrap_or_default()
}

impl Export {
    /// The CNB labels for the image built from this export, whose config lists `diff_ids`;
    /// also the diff_id of each launch layer by (buildpack id, layer name).
    pub fn labels(
        &self,
        built: &Built,
        run_image: &ResolvedImage,
        diff_ids: &[Digest],
    ) -> Result<(BTreeMap<String, String>, LaunchShas), LifecycleError> {
        let run_count = run_image.config.rootfs.diff_ids.len();
        if diff_ids.len() != run_count + self.roles.len() {
            return Err(LifecycleError::Io(format!(
                "the built image has {} layers, the export planned {}",
                diff_ids.len(),
                run_count + self.roles.len()
            )));
        }
        let mut meta = LifecycleMetadata {
            process_directory: PROCESS_DIR.into(),
            run_image: RunImage {
                top_layer: run_image.config.rootfs.diff_ids.last().map(|d| d.to_string()).unwrap_or_default(),
                reference: run_image.manifest_digest.to_string(),
                image: run_image.name.clone(),
            },
            ..LifecycleMetadata::default()
        };
        let mut shas = HashMap::new();
        for (role, d) in self.roles.iter().zip(&diff_ids[run_count..]) {
            let sha = d.to_string();
            match role {
                LayerRole::Launch { buildpack, name } => {
                    shas.insert((buildpack.clone(), name.clone()), sha);
                }
                LayerRole::App => meta.app.push(LayerSha { sha }),
                LayerRole::Launcher => meta.launcher = LayerSha { sha },
                LayerRole::Config => meta.config = LayerSha { sha },
            }
        }
        for b in &built.buildpacks {
            let mut layers = BTreeMap::new();
            for l in &b.output.layers {
                let t = l.toml.types();
                if !t.launch {
                    continue;
                }
                let sha = shas.get(&(b.bp.id().to_string(), l.name.clone())).cloned().unwrap_or_default();
                layers.insert(
                    l.name.clone(),
                    LayerMetadata {
                        sha,
                        data: toml_to_json(&l.toml.metadata),
                        launch: t.launch,
                        build: t.build,
                        cache: t.cache,
                    },
                );
            }
            meta.buildpacks.push(BuildpackLayers {
                key: b.bp.id().to_string(),
                version: b.bp.version().to_string(),
                layers,
                store: b.output.store.as_ref().map(|s| StoreMetadata { metadata: toml_to_json(s) }),
            });
        }
        let build = BuildMetadata {
            bom: None,
            buildpacks: built
                .buildpacks
                .iter()
                .map(|b| GroupBuildpack {
                    id: b.bp.id().to_string(),
                    version: b.bp.version().to_string(),
                    homepage: b.bp.descriptor.buildpack.homepage.clone(),
                })
                .collect(),
            launcher: Launcher {
                version: env!("CARGO_PKG_VERSION").to_string(),
                source: serde_json::json!({ "strata": { "kind": "posix-shell-launcher" } }),
            },
            processes: built.processes.processes.clone(),
            default_process: built.processes.default.clone(),
        };
        let mut labels = BTreeMap::new();
        labels.insert(LIFECYCLE_LABEL.to_string(), serde_json::to_string(&meta).unwrap_or_default());
        labels.insert(BUILD_LABEL.to_string(), serde_json::to_string(&build).unwrap_or_default());
        labels.insert(PROJECT_LABEL.to_string(), "{}".to_string());
        Ok((labels, shas))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_take_matches_out_of_the_app() {
        let d = tempfile::tempdir().unwrap();
        let app = d.path().join("app");
        for f in ["static/a.css", "static/b.js", "src/main.py", "src/static/x", "README"] {
            std::fs::create_dir_all(app.join(f).parent().unwrap()).unwrap();
            std::fs::write(app.join(f), f).unwrap();
        }
        let mut warnings = Vec::new();
        let dest = d.path().join("slice/workspace");
        let pats = vec!["static".to_string(), "/workspace/src/*.py".to_string(), "../etc".to_string()];
        assert_eq!(take_slice(&app, &pats, &dest, &mut warnings).unwrap(), 2);
        assert!(dest.join("static/a.css").exists() && dest.join("src/main.py").exists());
        assert!(!app.join("static").exists() && !app.join("src/main.py").exists());
        assert!(app.join("src/static/x").exists() && app.join("README").exists());
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        let again = d.path().join("again/workspace");
        assert_eq!(take_slice(&app, &["static".to_string()], &again, &mut warnings).unwrap(), 0, "already taken");
    }
}
