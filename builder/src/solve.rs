//! A build: every node the target needs is keyed, looked up in the cache, run if missing, and
//! the target's root filesystem exported as an image.
//!
//! Each node yields a [`Value`] — a root filesystem as a chain of layers, or a local
//! directory — and a cache key. Keys are computed when a node is about to run, from its
//! definition and its inputs' keys (and, for copies from the build context, the digest of the
//! files selected), so nothing needs reading before it is needed. A RUN or file step that
//! misses the cache runs in a scratch directory; its overlay upper is packed into a layer blob
//! (tar → diff_id → gzip → digest in one pass), installed as a snapshot, and recorded under
//! the key.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use sha2::{Digest as _, Sha256};
use strata_runner::RunnerConfig;
use strata_store::Store;
use strata_store::digest::{Digest, to_hex};
use strata_store::image::Image;
use strata_store::layer::{self, PackOptions};
use strata_store::oci::{self, Compression, Platform};
use strata_store::registry::RegistryClient;
use strata_store::snapshots::Scratch;

use crate::cache::{CacheRecord, CacheStore, KeyBuilder, Layer};
use crate::content_cache::PersistedContentCache;
use crate::copy::{self, CopyOptions, CopySource};
use crate::exec::{BuildSecrets, ExecContext, run_exec};
use crate::explain::ExplainStore;
use crate::export::export_image;
use crate::fileop::run_file_op;
use crate::graph::{CopyAction, FileAction, Graph, LocalSource, MountKind, Node, NodeId, Op, Origin, Target};
use crate::layers;
use crate::progress::{Event, Progress};
use crate::remote;
use crate::remote_cache::{CacheMountId, ImportedCache};
use crate::scheduler::{Cancel, run_graph};

/// What a node produced.
#[derive(Debug)]
pub enum Value {
    /// A root filesystem: layers, bottom first.
    Rootfs(Arc<Vec<Layer>>),
    /// A directory on the host (the build context).
    Local(LocalSource),
}

/// A node's value and cache key.
#[derive(Debug)]
pub struct Outcome {
    pub value: Arc<Value>,
    pub key: Digest,
}

/// Why one step failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepError {
    pub message: String,
}

impl StepError {
    pub fn msg(message: impl Into<String>) -> StepError {
        StepError { message: message.into() }
    }
    pub fn other(e: impl fmt::Display) -> StepError {
        StepError::msg(e.to_string())
    }
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> StepError {
        let context = context.into();
        move |e| StepError::msg(format!("{context}: {e}"))
    }
}

impl fmt::Display for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// A failed build: every step that failed, with where it came from.
#[derive(Debug)]
pub struct BuildFailure {
    pub failures: Vec<(String, Option<Origin>, StepError)>,
}

impl fmt::Display for BuildFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.failures.is_empty() {
            return f.write_str("the build was cancelled");
        }
        for (i, (name, origin, err)) in self.failures.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            match origin {
                Some(o) => write!(f, "{o}: {name}: {err}")?,
                None => write!(f, "{name}: {err}")?,
            }
        }
        Ok(())
    }
}

impl std::error::Error for BuildFailure {}

/// A graph element as key text, without the graph indices it refers to its inputs by: those
/// shift when unrelated steps are added, and the inputs' own keys are part of the key anyway.
fn without_node_ids(v: impl serde::Serialize) -> serde_json::Value {
    fn strip(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(o) => {
                o.remove("source");
                o.remove("from");
                o.values_mut().for_each(strip);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut v = serde_json::to_value(v).unwrap_or_default();
    strip(&mut v);
    v
}

/// A node's inputs by id (the scheduler hands them over in `Op::inputs` order).
struct Inputs<'a> {
    ids: Vec<NodeId>,
    outcomes: &'a [Arc<Outcome>],
}

impl Inputs<'_> {
    fn get(&self, id: NodeId) -> Option<&Arc<Outcome>> {
        self.ids.iter().position(|i| *i == id).and_then(|p| self.outcomes.get(p))
    }
}

/// Settings of a build.
#[derive(Debug, Clone)]
pub struct BuildConfig {
    /// Steps running at once.
    pub jobs: usize,
    pub compression: Compression,
    /// The hostname RUN steps see (BuildKit's is `buildkitsandbox`).
    pub hostname: String,
    /// How to start the sandbox (the strata binary re-executed, by default).
    pub runner: RunnerConfig,
    /// Explain cache hits and misses (`--explain`).
    pub explain: bool,
    /// What makes this build's steps distinct from other projects' in the same store (the
    /// Dockerfile's path), for `--explain` to find the same step's earlier build.
    pub scope: String,
    /// SOURCE_DATE_EPOCH: new layers' file times are clamped to it, and the image's history and
    /// creation times are it (BuildKit's `source-date-epoch` with `rewrite-timestamp`), so
    /// that two builds of the same inputs give the same image digest.
    pub source_date_epoch: Option<i64>,
    /// `--secret` and `--ssh` sources for RUN mounts (never part of a cache key).
    pub secrets: Arc<BuildSecrets>,
}

impl Default for BuildConfig {
    fn default() -> BuildConfig {
        BuildConfig {
            jobs: default_jobs(),
            compression: Compression::Gzip,
            hostname: "buildkitsandbox".to_string(),
            runner: RunnerConfig::default(),
            explain: false,
            scope: String::new(),
            source_date_epoch: None,
            secrets: Arc::default(),
        }
    }
}

/// Steps that may run at once by default: the number of CPUs, but at least 4. RUN steps spend
/// much of their time waiting (downloads, sleeps, servers starting) rather than computing, so
/// on a 2-CPU machine a limit of 2 would serialize independent stages that BuildKit (which has
/// no limit) overlaps; CPU-heavy work inside steps (layer compression) has its own thread pool.
pub fn default_jobs() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).max(4)
}

/// Runs graphs against one store.
pub struct Builder<'a> {
    pub store: &'a Store,
    pub registry: Option<&'a RegistryClient>,
    pub progress: &'a dyn Progress,
    pub config: BuildConfig,
    pub cancel: Cancel,
    cache: CacheStore,
    content: PersistedContentCache,
    explain: ExplainStore,
    explanations: std::sync::Mutex<Vec<Explanation>>,
    /// Caches given with `--cache-from`, consulted when the local cache misses.
    pub imports: Vec<ImportedCache>,
    /// Every step's key and layer, as resolved in this build (for `--cache-to`).
    resolved: std::sync::Mutex<Vec<(NodeId, Digest, CacheRecord)>>,
}

/// Why a step was or was not served from the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    pub step: String,
    pub cached: bool,
    pub reasons: Vec<String>,
}

impl<'a> Builder<'a> {
    pub fn new(
        store: &'a Store,
        registry: Option<&'a RegistryClient>,
        progress: &'a dyn Progress,
        config: BuildConfig,
    ) -> Result<Builder<'a>, StepError> {
        let cache = CacheStore::open(&store.cache_dir()).map_err(StepError::other)?;
        let content = PersistedContentCache::load(&store.cache_dir());
        let explain = ExplainStore::open(&store.cache_dir());
        Ok(Builder {
            store,
            registry,
            progress,
            config,
            cancel: Cancel::new(),
            cache,
            content,
            explain,
            explanations: std::sync::Mutex::new(Vec::new()),
            imports: Vec::new(),
            resolved: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// What `--explain` found, in the order steps ran.
    pub fn explanations(&self) -> Vec<Explanation> {
        self.explanations.lock().map(|e| e.clone()).unwrap_or_default()
    }

    /// Builds `target` and stores its image (unnamed; the caller names it).
    pub fn build(&self, graph: &Graph, target: &Target) -> Result<Image, BuildFailure> {
        let results = run_graph(graph, &[target.root], self.config.jobs, &self.cancel, |id, inputs| {
            self.run_node(graph, id, inputs)
        });
        // What the build learned about the context is worth keeping even if a step failed.
        if let Err(e) = self.content.save() {
            tracing::warn!("saving the context digest cache: {e}");
        }
        let results = results.map_err(|failures| BuildFailure {
            failures: failures
                .into_iter()
                .map(|(id, e)| (graph.node(id).name.clone(), graph.node(id).origin.clone(), e))
                .collect(),
        })?;
        let fail = |message: String| BuildFailure {
            failures: vec![("exporting to image".to_string(), None, StepError::msg(message))],
        };
        let outcome = results[target.root.0].as_ref().ok_or_else(|| fail("the target was not built".into()))?;
        let Value::Rootfs(chain) = outcome.value.as_ref() else {
            return Err(fail("the target is not a root filesystem".into()));
        };
        export_image(self.store, &target.config, chain, self.config.source_date_epoch).map_err(|e| fail(e.to_string()))
    }

    fn run_node(&self, graph: &Graph, id: NodeId, inputs: &[Arc<Outcome>]) -> Result<Outcome, StepError> {
        let node = graph.node(id);
        let by_id = Inputs { ids: node.op.inputs(), outcomes: inputs };
        let step = id.0;
        match &node.op {
            Op::Scratch => Ok(Outcome {
                value: Arc::new(Value::Rootfs(Arc::new(Vec::new()))),
                key: KeyBuilder::new("scratch").finish().0,
            }),
            Op::Local(local) => Ok(Outcome {
                value: Arc::new(Value::Local(local.clone())),
                // Not the host path: the same project checked out elsewhere (or on another
                // machine, with an imported cache) must hit the same keys. What is read from the
                // directory enters the keys of the steps that read it, by content.
                key: KeyBuilder::new("local").add("name", &local.name).finish().0,
            }),
            Op::Image(src) => {
                let start = Instant::now();
                self.progress.event(step, Event::Started { name: &node.name });
                let status = |text: &str| self.progress.event(step, Event::Status { text });
                let pulled =
                    layers::pull_image(self.store, self.registry, &src.reference, &src.manifest_digest, false, &status);
                let (chain, downloaded) = pulled.map_err(|e| self.fail(step, start, StepError::other(e)))?;
                self.progress
                    .event(step, if downloaded { Event::Done { elapsed: start.elapsed() } } else { Event::Cached });
                Ok(Outcome {
                    value: Arc::new(Value::Rootfs(Arc::new(chain))),
                    key: KeyBuilder::new("image").add("manifest", &src.manifest_digest).finish().0,
                })
            }
            Op::Exec(_) | Op::File(_) => self.run_step(graph, id, &by_id),
            Op::Http(_) | Op::Git(_) => {
                let start = Instant::now();
                self.progress.event(step, Event::Started { name: &node.name });
                let status = |text: &str| self.progress.event(step, Event::Status { text });
                let cx = remote::Fetcher { store: self.store, registry: self.registry, status: &status };
                let fetched = cx.fetch(&node.op).map_err(|e| self.fail(step, start, StepError::other(e)))?;
                self.progress.event(step, Event::Done { elapsed: start.elapsed() });
                Ok(Outcome { value: Arc::new(Value::Local(fetched.source)), key: fetched.key })
            }
        }
    }

    fn fail(&self, step: usize, start: Instant, e: StepError) -> StepError {
        self.progress.event(step, Event::Failed { error: &e.message, elapsed: start.elapsed() });
        e
    }

    /// RUN and file steps: key, cache lookup, run, commit.
    fn run_step(&self, graph: &Graph, id: NodeId, inputs: &Inputs<'_>) -> Result<Outcome, StepError> {
        let node = graph.node(id);
        let step = id.0;
        let lookup = |id: NodeId| inputs.get(id);
        let start = Instant::now();
        let root_id = node.op.root().ok_or_else(|| StepError::msg("a step without a root filesystem"))?;
        let root = lookup(root_id).ok_or_else(|| StepError::msg("the step's root filesystem was not built"))?;
        let Value::Rootfs(chain) = root.value.as_ref() else {
            return Err(StepError::msg("the step's root is not a root filesystem"));
        };
        self.progress.event(step, Event::Started { name: &node.name });
        let (key, inputs_doc) = self.step_key(node, &root.key, inputs).map_err(|e| self.fail(step, start, e))?;
        let hit = if node.ignore_cache {
            None
        } else {
            match self.cache.get(&key).filter(|r| self.store.blobs.contains(&r.layer.blob.digest)) {
                Some(r) => Some(r),
                None => self.imported(step, &key, &inputs_doc),
            }
        };
        self.explain_step(graph, id, root_id, &key, &inputs_doc, hit.is_some());
        if let Some(record) = hit {
            self.progress.event(step, Event::Cached);
            self.remember(id, &key, &record);
            return Ok(self.extend(chain, record.layer, key));
        }

        let values = |id: NodeId| lookup(id).map(|o| o.value.clone());
        let ran = match &node.op {
            Op::Exec(e) => {
                let cx = ExecContext {
                    store: self.store,
                    runner: &self.config.runner,
                    cancel: &self.cancel,
                    hostname: &self.config.hostname,
                    secrets: &self.config.secrets,
                };
                run_exec(&cx, e, chain, &values, &mut |data| self.progress.event(step, Event::Output { data }))
            }
            Op::File(f) => run_file_op(self.store, f, chain, &values),
            _ => Err(StepError::msg("not a step")),
        };
        let (scratch, lowers) = ran.map_err(|e| self.fail(step, start, e))?;
        let layer = self.commit(&scratch, &lowers).map_err(|e| self.fail(step, start, e))?;
        // A failed cache write only costs a rebuild next time.
        let record = CacheRecord { layer: layer.clone(), inputs: inputs_doc };
        if let Err(e) = self.cache.put(&key, &record) {
            tracing::warn!("{e}");
        }
        self.remember(id, &key, &record);
        self.progress.event(step, Event::Done { elapsed: start.elapsed() });
        Ok(self.extend(chain, layer, key))
    }

    /// A step found in a `--cache-from` cache: its layer blob is fetched and recorded locally.
    fn imported(&self, step: usize, key: &Digest, inputs: &serde_json::Value) -> Option<CacheRecord> {
        for import in &self.imports {
            match import.fetch(key, self.store)? {
                Ok(layer) => {
                    let record = CacheRecord { layer, inputs: inputs.clone() };
                    if let Err(e) = self.cache.put(key, &record) {
                        tracing::warn!("{e}");
                    }
                    self.progress.event(step, Event::Status { text: "from the imported cache" });
                    return Some(record);
                }
                // An unreachable cache costs a rebuild of the step, not the build.
                Err(e) => self.progress.event(step, Event::Status { text: &format!("imported cache: {e}") }),
            }
        }
        None
    }

    fn remember(&self, id: NodeId, key: &Digest, record: &CacheRecord) {
        if let Ok(mut r) = self.resolved.lock() {
            r.push((id, key.clone(), record.clone()));
        }
    }

    /// The steps `--cache-to` exports: with `all` (mode=max) every step of the build, otherwise
    /// those whose layers make up the target image (mode=min).
    pub fn cache_records(&self, graph: &Graph, target: &Target, all: bool) -> Vec<(Digest, CacheRecord)> {
        let mut chain = std::collections::HashSet::new();
        let mut at = Some(target.root);
        while let Some(id) = at {
            chain.insert(id);
            at = graph.node(id).op.root();
        }
        let resolved = self.resolved.lock().map(|r| r.clone()).unwrap_or_default();
        resolved
            .into_iter()
            .filter(|(id, ..)| all || chain.contains(id))
            .map(|(_, key, record)| (key, CacheRecord { inputs: serde_json::Value::Null, ..record }))
            .collect()
    }

    /// The cache mounts (without `from=`) the target's steps use.
    pub fn cache_mount_ids(graph: &Graph, target: &Target) -> Vec<CacheMountId> {
        let mut ids: Vec<CacheMountId> = graph
            .reachable(&[target.root])
            .into_iter()
            .filter_map(|id| match &graph.node(id).op {
                Op::Exec(e) => Some(e.mounts.iter().filter_map(|m| match &m.kind {
                    MountKind::Cache { id, from: None, mode, uid, gid, .. } => {
                        Some(CacheMountId { id: id.clone(), mode: *mode, uid: *uid, gid: *gid })
                    }
                    _ => None,
                })),
                _ => None,
            })
            .flatten()
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }

    /// Records (and with `--explain`, reports) why a step hits or misses the cache.
    fn explain_step(
        &self,
        graph: &Graph,
        id: NodeId,
        root: NodeId,
        key: &Digest,
        inputs: &serde_json::Value,
        hit: bool,
    ) {
        let node = graph.node(id);
        let occurrence = graph.nodes[..id.0].iter().filter(|n| n.name == node.name).count();
        let identity = ExplainStore::identity(&self.config.scope, &node.name, occurrence);
        let previous = self.explain.previous_key(&identity);
        self.explain.remember_key(&identity, key);
        if !self.config.explain {
            return;
        }
        let reasons = if hit {
            Vec::new()
        } else if node.ignore_cache {
            vec!["--no-cache (or --no-cache-filter) asked to run it".to_string()]
        } else {
            match previous {
                None => vec!["no earlier build of this step".to_string()],
                Some(p) if &p == key => vec!["its earlier result is no longer in the store".to_string()],
                Some(p) => match self.cache.get(&p) {
                    Some(before) => self.explain.reasons(&before.inputs, inputs, &graph.node(root).name),
                    None => vec!["the earlier build of this step did not complete".to_string()],
                },
            }
        };
        let text =
            if hit { "explain: cache hit".to_string() } else { format!("explain: miss: {}", reasons.join("; ")) };
        self.progress.event(id.0, Event::Status { text: &text });
        if let Ok(mut all) = self.explanations.lock() {
            all.push(Explanation { step: node.name.clone(), cached: hit, reasons });
        }
    }

    fn extend(&self, chain: &Arc<Vec<Layer>>, layer: Layer, key: Digest) -> Outcome {
        let mut layers = chain.as_ref().clone();
        layers.push(layer);
        Outcome { value: Arc::new(Value::Rootfs(Arc::new(layers))), key }
    }

    /// Packs a step's upper into a layer blob and installs it as a snapshot.
    fn commit(&self, scratch: &Scratch, lowers: &[PathBuf]) -> Result<Layer, StepError> {
        let top_first: Vec<PathBuf> = lowers.iter().rev().cloned().collect();
        let blob = layer::commit_layer(
            &self.store.blobs,
            &scratch.upper(),
            &top_first,
            self.config.compression,
            &PackOptions { source_date_epoch: self.config.source_date_epoch, ..PackOptions::default() },
        )
        .map_err(StepError::other)?;
        self.store.snapshots.install(&scratch.upper(), &blob.diff_id).map_err(StepError::other)?;
        let created = match self.config.source_date_epoch {
            Some(e) => oci::rfc3339(e, 0),
            None => oci::now_rfc3339(),
        };
        Ok(Layer { diff_id: blob.diff_id, blob: blob.descriptor, created: Some(created) })
    }

    /// The cache key of a RUN or file step and the document it hashes.
    fn step_key(
        &self,
        node: &Node,
        root_key: &Digest,
        inputs: &Inputs<'_>,
    ) -> Result<(Digest, serde_json::Value), StepError> {
        let lookup = |id: NodeId| inputs.get(id);
        let key_of = |id: NodeId| -> Result<String, StepError> {
            lookup(id).map(|o| o.key.to_string()).ok_or_else(|| StepError::msg("an input was not built"))
        };
        match &node.op {
            Op::Exec(e) => {
                let mut mounts = Vec::new();
                for m in &e.mounts {
                    let source = match &m.kind {
                        MountKind::Bind { source, source_path, .. } => {
                            let input =
                                lookup(*source).ok_or_else(|| StepError::msg("a mount source was not built"))?;
                            match input.value.as_ref() {
                                // A context directory is keyed by the content it mounts.
                                Value::Local(local) => Some(
                                    self.context_paths_digest(
                                        local,
                                        std::slice::from_ref(source_path),
                                        &CopyOptions::dockerfile(),
                                    )
                                    .map_err(|e| {
                                        StepError::msg(format!(
                                            "bind mount source {source_path:?} is not in the build context (a \
                                             symlink resolves inside the context, so one pointing outside the \
                                             build context finds nothing): {e}"
                                        ))
                                    })?,
                                ),
                                Value::Rootfs(_) => Some(input.key.to_string()),
                            }
                        }
                        MountKind::Cache { from: Some(f), .. } => Some(key_of(*f)?),
                        _ => None,
                    };
                    // Cache mounts are keyed by definition only: their content is not an input.
                    mounts.push(serde_json::json!({ "mount": without_node_ids(m), "source": source }));
                }
                Ok(self
                    .with_epoch(KeyBuilder::new("exec"))
                    .add("root", root_key)
                    .add("args", &e.args)
                    .add("env", &e.env)
                    .add("cwd", &e.cwd)
                    .add("user", &e.user)
                    .add("network", e.network)
                    .add("security", e.security)
                    .add("mounts", mounts)
                    .add("platform", e.platform.as_ref().map(Platform::to_spec))
                    .finish())
            }
            Op::File(f) => {
                let mut actions = Vec::new();
                for a in &f.actions {
                    let v = match a {
                        FileAction::Copy(c) => {
                            let source =
                                lookup(c.source).ok_or_else(|| StepError::msg("a copy source was not built"))?;
                            let content = match source.value.as_ref() {
                                Value::Local(local) => Some(self.context_digest(local, c)?),
                                Value::Rootfs(_) => None,
                            };
                            serde_json::json!({
                                "copy": without_node_ids(c), "source": source.key.to_string(), "content": content,
                            })
                        }
                        FileAction::Mkfile { path, mode, data, chown } => serde_json::json!({
                            "mkfile": path, "mode": mode, "chown": chown,
                            "data": to_hex(&Sha256::digest(data)),
                        }),
                        other => serde_json::to_value(other).unwrap_or_default(),
                    };
                    actions.push(v);
                }
                // A `--link` copy does not depend on its root: reusing its layer over a new base
                // is the point of `--link` (BuildKit keys the copy onto scratch).
                let scratch_key;
                let root_key = if f.is_linked() {
                    scratch_key = KeyBuilder::new("scratch").finish().0;
                    &scratch_key
                } else {
                    root_key
                };
                Ok(KeyBuilder::new("file").add("root", root_key).add("actions", actions).finish())
            }
            _ => Err(StepError::msg("not a step")),
        }
    }

    /// Adds SOURCE_DATE_EPOCH to a step's key when it is set: it changes the layer's file
    /// times (keys of builds without it are unchanged).
    fn with_epoch(&self, k: KeyBuilder) -> KeyBuilder {
        match self.config.source_date_epoch {
            Some(e) => k.add("source_date_epoch", e),
            None => k,
        }
    }

    /// The digest of the context files a copy selects.
    fn context_digest(&self, local: &LocalSource, c: &CopyAction) -> Result<String, StepError> {
        self.context_paths_digest(local, &c.src_paths, &crate::fileop::copy_options(c, None))
    }

    /// The digest of the context files `paths` select, read as a copy with `opts` would.
    fn context_paths_digest(
        &self,
        local: &LocalSource,
        paths: &[String],
        opts: &CopyOptions,
    ) -> Result<String, StepError> {
        let source = CopySource { root: &local.path, filter: local.filter.as_deref(), is_context: true };
        let d = copy::source_digest(&source, paths, opts, Some(&self.content)).map_err(StepError::other)?;
        self.explain.remember_listing(&d.digest, &d.entries);
        Ok(d.digest)
    }
}
