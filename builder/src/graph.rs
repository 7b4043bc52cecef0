//! The build graph: what every frontend emits and the builder runs.
//!
//! A graph is a list of [`Node`]s, each an [`Op`] whose inputs are earlier nodes (so the list is
//! already in a valid execution order and cycles cannot be expressed). Ops describe filesystem
//! states the way BuildKit's LLB does:
//!
//! - sources: [`Op::Scratch`], [`Op::Image`] (an image's root filesystem, pinned by digest),
//!   [`Op::Local`] (a host directory such as the build context, read lazily through a filter),
//!   [`Op::Http`] (a downloaded file) and [`Op::Git`] (a git checkout), both fetched by
//!   `remote.rs` into directories that copies read like a local source;
//! - transforms of a root filesystem: [`Op::Exec`] (run a process) and [`Op::File`] (copy,
//!   mkdir, write files). Each transform's result is its root input plus exactly one new layer.
//!
//! Image *configuration* (env, entrypoint, history, …) is not part of the graph: the frontend
//! computes it while translating, as BuildKit's Dockerfile frontend does, and hands it over in a
//! [`Target`] next to the node that holds the final root filesystem. The builder fills in what
//! only execution knows (layer digests, creation times).
//!
//! Nothing here knows about Dockerfile syntax: a buildpack frontend emits the same ops.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;
use strata_store::digest::Digest;
use strata_store::oci::{ImageConfig, Platform};

/// Index of a node in [`Graph::nodes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct NodeId(pub usize);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// A build graph.
#[derive(Debug, Default, Clone)]
pub struct Graph {
    pub nodes: Vec<Node>,
}

impl Graph {
    pub fn new() -> Graph {
        Graph::default()
    }

    /// Appends a node and returns its id. Inputs must already be in the graph.
    pub fn add(&mut self, node: Node) -> NodeId {
        debug_assert!(node.op.inputs().iter().all(|i| i.0 < self.nodes.len()), "inputs precede their users");
        self.nodes.push(node);
        NodeId(self.nodes.len() - 1)
    }

    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id.0]
    }

    /// Every node `targets` depend on (including themselves), in execution order.
    pub fn reachable(&self, targets: &[NodeId]) -> Vec<NodeId> {
        let mut needed = vec![false; self.nodes.len()];
        let mut stack: Vec<NodeId> = targets.to_vec();
        while let Some(id) = stack.pop() {
            if std::mem::replace(&mut needed[id.0], true) {
                continue;
            }
            stack.extend(self.nodes[id.0].op.inputs());
        }
        (0..self.nodes.len()).filter(|&i| needed[i]).map(NodeId).collect()
    }
}

/// One step of a build.
#[derive(Debug, Clone)]
pub struct Node {
    pub op: Op,
    /// What progress output calls this step, e.g. `[build 2/4] RUN make` (BuildKit's vertex name).
    pub name: String,
    /// Where the step came from, for error messages (`Dockerfile:12`), if anywhere.
    pub origin: Option<Origin>,
    /// Don't reuse a cached result for this step (`--no-cache`, `--no-cache-filter`).
    pub ignore_cache: bool,
}

impl Node {
    pub fn new(op: Op, name: impl Into<String>) -> Node {
        Node { op, name: name.into(), origin: None, ignore_cache: false }
    }
}

/// A source location: a file and a 1-based line range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Origin {
    pub file: String,
    pub start_line: usize,
    pub end_line: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.start_line == self.end_line {
            write!(f, "{}:{}", self.file, self.start_line)
        } else {
            write!(f, "{}:{}-{}", self.file, self.start_line, self.end_line)
        }
    }
}

/// What a node does.
#[derive(Debug, Clone)]
pub enum Op {
    /// An empty root filesystem (`FROM scratch`).
    Scratch,
    /// The root filesystem of an image.
    Image(ImageSource),
    /// A directory on the host, e.g. the build context.
    Local(LocalSource),
    /// Runs a process over a root filesystem.
    Exec(ExecOp),
    /// Copies, creates or removes files in a root filesystem.
    File(FileOp),
    /// A file downloaded over HTTP(S) (`ADD https://...`): a directory holding that one file.
    Http(HttpSource),
    /// A checkout of a git repository (`ADD https://host/repo.git#ref:dir`, a git context).
    Git(GitSource),
}

impl Op {
    /// The nodes this op reads.
    pub fn inputs(&self) -> Vec<NodeId> {
        match self {
            Op::Scratch | Op::Image(_) | Op::Local(_) | Op::Http(_) | Op::Git(_) => Vec::new(),
            Op::Exec(e) => {
                let mut v = vec![e.root];
                v.extend(e.mounts.iter().filter_map(|m| m.source_node()));
                v
            }
            Op::File(f) => {
                let mut v = vec![f.root];
                v.extend(f.actions.iter().filter_map(|a| match a {
                    FileAction::Copy(c) => Some(c.source),
                    _ => None,
                }));
                v
            }
        }
    }

    /// The root filesystem this op transforms, for ops that produce a new layer over one.
    pub fn root(&self) -> Option<NodeId> {
        match self {
            Op::Exec(e) => Some(e.root),
            Op::File(f) => Some(f.root),
            _ => None,
        }
    }
}

/// An image's root filesystem, pinned to the manifest the frontend resolved.
#[derive(Debug, Clone, Serialize)]
pub struct ImageSource {
    /// The reference as the user wrote it, normalized (`docker.io/library/busybox:latest`).
    pub reference: String,
    /// The platform-specific manifest the reference resolved to.
    pub manifest_digest: Digest,
    pub platform: Platform,
}

/// A file to download. BuildKit's HTTP source: the file is named `filename`, mode 0600, owned
/// by 0:0, its modification time the response's `Last-Modified` (else the Unix epoch); it is
/// never unpacked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HttpSource {
    pub url: String,
    /// The name the file gets (the Dockerfile frontend takes the URL path's last element).
    pub filename: String,
    /// `--checksum`: the content's digest (`sha256:<hex>`); a mismatch fails the step.
    pub checksum: Option<String>,
}

/// A git repository at a commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GitSource {
    /// The remote as git takes it (`https://host/repo.git`, `git@host:repo.git`, `git://...`).
    pub remote: String,
    /// A branch, tag, full ref or commit; `None` is the remote's HEAD.
    pub reference: Option<String>,
    /// A directory of the checkout to use as the source's root.
    pub subdir: Option<String>,
    /// Keep the `.git` directory (`--keep-git-dir`).
    pub keep_git_dir: bool,
    /// `--checksum`: the commit the reference must resolve to (a full or abbreviated hash).
    pub checksum: Option<String>,
}

/// Decides which files of a local source exist for the build (`.dockerignore`).
pub trait PathFilter: Send + Sync + fmt::Debug {
    /// True if `rel_path` (slash-separated, relative to the source root, no leading `/`) is
    /// excluded.
    fn is_excluded(&self, rel_path: &str) -> bool;
    /// True if an excluded directory may still contain included paths (exception patterns),
    /// so a walker must descend into it.
    fn may_include_below(&self, rel_dir: &str) -> bool;
}

/// A host directory.
#[derive(Debug, Clone)]
pub struct LocalSource {
    /// A short name for progress output (`context`).
    pub name: String,
    pub path: PathBuf,
    pub filter: Option<Arc<dyn PathFilter>>,
}

/// How a RUN step reaches the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    /// The builder's default (the host network, as BuildKit's default for non-rootless).
    #[default]
    Default,
    /// A fresh network namespace with only loopback.
    None,
    /// The host's network namespace.
    Host,
}

/// `--security` of a RUN step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SecurityMode {
    #[default]
    Sandbox,
    Insecure,
}

/// Runs a process with `root` as its root filesystem.
#[derive(Debug, Clone, Serialize)]
pub struct ExecOp {
    pub root: NodeId,
    /// argv; `args[0]` is looked up in the process's PATH.
    pub args: Vec<String>,
    /// `NAME=value` entries, in order.
    pub env: Vec<String>,
    /// The working directory (absolute); created if missing.
    pub cwd: String,
    /// `user[:group]`, by name or id, resolved in the root filesystem; empty means root.
    pub user: String,
    pub network: NetworkMode,
    pub security: SecurityMode,
    pub mounts: Vec<Mount>,
    /// The platform the process runs as (a foreign one runs through the QEMU emulator the
    /// kernel's binfmt_misc names); part of the step's cache key, so two platforms never share
    /// a result. `None`: the host's (steps that are not from a Dockerfile stage).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

/// An extra mount for an exec (`RUN --mount=...`).
#[derive(Debug, Clone, Serialize)]
pub struct Mount {
    pub target: String,
    pub kind: MountKind,
}

impl Mount {
    fn source_node(&self) -> Option<NodeId> {
        match &self.kind {
            MountKind::Bind { source, .. } => Some(*source),
            MountKind::Cache { from, .. } => *from,
            _ => None,
        }
    }
}

/// The kinds of extra mounts.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "lowercase", tag = "type")]
pub enum MountKind {
    /// A path of another node's filesystem; writes are discarded unless read-only.
    Bind { source: NodeId, source_path: String, readonly: bool },
    /// A persistent cache directory kept in the store across builds.
    Cache {
        id: String,
        sharing: CacheSharing,
        from: Option<NodeId>,
        source_path: String,
        mode: u32,
        uid: u32,
        gid: u32,
        readonly: bool,
    },
    /// A fresh tmpfs.
    Tmpfs { size: Option<u64> },
    /// A secret file (or env var) from the build's secret store.
    Secret { id: String, env: Option<String>, required: bool, mode: u32, uid: u32, gid: u32 },
    /// An SSH agent socket forwarded from the host.
    Ssh { id: String, required: bool, mode: u32, uid: u32, gid: u32 },
    /// A host directory bound as it is: writes go to the host. For frontends that drive a
    /// process protocol whose results live outside layers (the buildpack lifecycle's layers and
    /// app directories); the directory's content is not part of a cache key, so steps using a
    /// writable one should not be served from the cache.
    HostDir { path: PathBuf, readonly: bool },
}

/// Concurrent access to a cache mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum CacheSharing {
    #[default]
    Shared,
    Private,
    Locked,
}

/// File operations over `root`, applied in order into one new layer.
#[derive(Debug, Clone, Serialize)]
pub struct FileOp {
    pub root: NodeId,
    pub actions: Vec<FileAction>,
}

impl FileOp {
    /// True if the op is a `--link` copy: it runs over an empty root filesystem and its layer
    /// does not depend on `root` (every action is a copy with `link` set).
    pub fn is_linked(&self) -> bool {
        !self.actions.is_empty() && self.actions.iter().all(|a| matches!(a, FileAction::Copy(c) if c.link))
    }
}

/// Who should own created files: a user and optional group, by name or number. Names are
/// resolved in the destination root filesystem's `/etc/passwd` and `/etc/group`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Chown {
    pub user: String,
    pub group: Option<String>,
}

/// File permissions for created files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Chmod {
    /// An octal mode (`0640`).
    Octal(u32),
    /// A symbolic mode (`u+x,g-w`), applied on top of each file's own mode.
    Symbolic(String),
}

/// One file operation.
#[derive(Debug, Clone, Serialize)]
pub enum FileAction {
    /// Create a directory (and, with `parents`, missing parents).
    Mkdir { path: String, mode: u32, parents: bool, chown: Option<Chown> },
    /// Create a file with the given content.
    Mkfile { path: String, mode: u32, data: Vec<u8>, chown: Option<Chown> },
    /// Remove a path.
    Rm { path: String, allow_not_found: bool },
    /// Copy paths from another node's filesystem into `root`.
    Copy(CopyAction),
}

/// Copy paths of `source` (a local source or another root filesystem) to `dest` in the root.
#[derive(Debug, Clone, Serialize)]
pub struct CopyAction {
    pub source: NodeId,
    /// Source paths, relative to the source root (which is `/` of a filesystem node), possibly
    /// with wildcards.
    pub src_paths: Vec<String>,
    /// Destination, absolute (the frontend resolves it against the working directory). A
    /// trailing `/` means "into this directory".
    pub dest: String,
    pub chown: Option<Chown>,
    pub chmod: Option<Chmod>,
    /// Expand `*`, `?`, `[...]` in source paths (Go `filepath.Match` rules).
    pub allow_wildcard: bool,
    /// A wildcard that matches nothing is not an error.
    pub allow_empty_wildcard: bool,
    /// Local tar archives are unpacked into the destination instead of copied (ADD).
    pub unpack_archives: bool,
    /// Keep the source path's directory structure under dest (`COPY --parents`): the frontend
    /// sets `src_paths` to the directory the structure is relative to and `include` to the
    /// patterns below it.
    pub parents: bool,
    /// Include patterns (`--parents`): only what they match below each source directory, and
    /// the directories leading to it, is copied.
    pub include: Vec<String>,
    /// Paths (relative to the source root) that must exist.
    pub required_paths: Vec<String>,
    /// Patterns of source files not to copy (`--exclude`).
    pub exclude: Vec<String>,
    /// Create the copy as an independent layer (`--link`): the file op runs over an empty root
    /// and its cache key leaves the root out, so the layer is reused when the base changes
    /// (BuildKit's MergeOp of the base and a copy onto scratch). Set on every copy of the op.
    pub link: bool,
    /// `include`, compiled by the frontend (pattern syntax is the frontend's); `is_excluded`
    /// means "not selected". The patterns above are what the cache key covers.
    #[serde(skip)]
    pub include_filter: Option<Arc<dyn PathFilter>>,
    /// `exclude`, compiled by the frontend.
    #[serde(skip)]
    pub exclude_filter: Option<Arc<dyn PathFilter>>,
}

/// One image the build produces: the node holding its root filesystem and the image config the
/// frontend computed. `config.history` entries with `empty_layer == false` correspond, in order,
/// to the layers the chain of `root` adds on top of its base image; their `created` times are
/// left empty for the builder to fill in from the layers.
#[derive(Debug, Clone)]
pub struct Target {
    pub root: NodeId,
    pub config: ImageConfig,
}
