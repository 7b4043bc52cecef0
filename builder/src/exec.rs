//! Running an exec node (a RUN step): its root filesystem and mounts become a sandbox plan for
//! the runner, the process runs, and the overlay upper it wrote becomes the new layer.
//!
//! Mount sources are other nodes' results: a root filesystem is mounted as a private overlay
//! of its layers (writes go to a throw-away upper, so `rw` bind mounts never change the
//! source), a local source (the build context) is bind-mounted read-only, a cache mount is a
//! directory kept in the store (`ROOT/cache/mounts/`, see `exec/cache_mounts.rs`) that never
//! enters a layer, a host directory mount (`MountKind::HostDir`) is the host directory itself.
//! [`run_process`] runs a process for its exit status and its host-directory effects, without
//! making a layer.
//!
//! Secrets and SSH agents come from the build's [`BuildSecrets`] (`--secret`, `--ssh`), never
//! from the graph: the graph, and so the cache key, holds only their ids. A secret is handed to
//! the sandbox in memory and lives on a tmpfs there (and, with `env=`, in the process
//! environment); an SSH agent is reached through a relay socket with the mount's owner and mode
//! (`strata_runner::forward`). As BuildKit's LLB does: a missing secret or agent is an error
//! when the mount is `required`, otherwise the mount is left out; an SSH mount without a
//! target gets `/run/buildkit/ssh_agent.N` (N its index among the step's SSH mounts), and the
//! first one's path becomes `SSH_AUTH_SOCK` unless the step sets that variable itself.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use strata_runner::forward::SocketForward;
use strata_runner::spec::{MountSpec, MountSpecKind, Network, Process, Rootfs, SandboxSpec, SecretData, Security};
use strata_runner::{Cancel, ExitStatus, RunnerConfig};
use strata_store::Store;
use strata_store::snapshots::Scratch;

use crate::cache::Layer;
use crate::exec::cache_mounts::CacheBase;
use crate::graph::{ExecOp, MountKind, NetworkMode, SecurityMode};
use crate::layers;
use crate::solve::{StepError, Value};

mod cache_mounts;

pub use cache_mounts::primary_dir as cache_mount_dir;

/// What an exec needs from the build.
pub struct ExecContext<'a> {
    pub store: &'a Store,
    pub runner: &'a RunnerConfig,
    pub cancel: &'a Cancel,
    pub hostname: &'a str,
    pub secrets: &'a BuildSecrets,
}

/// The secrets (`--secret`) and SSH agent sockets (`--ssh`) a build may use, by id.
#[derive(Clone, Default)]
pub struct BuildSecrets {
    pub secrets: BTreeMap<String, Vec<u8>>,
    pub ssh_agents: BTreeMap<String, PathBuf>,
}

impl fmt::Debug for BuildSecrets {
    /// Ids only: the values must not reach a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BuildSecrets")
            .field("secrets", &self.secrets.keys().collect::<Vec<_>>())
            .field("ssh_agents", &self.ssh_agents)
            .finish()
    }
}

/// BuildKit's default target of the `index`-th SSH mount of a step.
pub fn default_ssh_target(index: usize) -> String {
    format!("/run/buildkit/ssh_agent.{index}")
}

/// Runs `e` over `root`; returns the scratch directory whose upper holds the changes.
pub fn run_exec(
    cx: &ExecContext<'_>,
    e: &ExecOp,
    root: &[Layer],
    inputs: &dyn Fn(crate::graph::NodeId) -> Option<Arc<Value>>,
    output: &mut dyn FnMut(&[u8]),
) -> Result<(Scratch, Vec<PathBuf>), StepError> {
    let (status, scratch, lowers) = run_exec_status(cx, e, root, inputs, output)?;
    match status {
        ExitStatus::Code(0) => Ok((scratch, lowers)),
        ExitStatus::Code(code) => Err(StepError::msg(format!(
            "process \"{}\" did not complete successfully: exit code: {code}",
            e.args.join(" ")
        ))),
        ExitStatus::Signal(sig) => Err(StepError::msg(format!(
            "process \"{}\" did not complete successfully: killed by signal {sig}",
            e.args.join(" ")
        ))),
    }
}

/// Runs `e` over `root` for its exit status and its effects on host-directory mounts only:
/// the root filesystem's changes are thrown away. Protocols that give exit codes a meaning
/// (a buildpack's `bin/detect` exits 100 for "does not apply") use this instead of a graph
/// step.
pub fn run_process(
    cx: &ExecContext<'_>,
    e: &ExecOp,
    root: &[Layer],
    output: &mut dyn FnMut(&[u8]),
) -> Result<ExitStatus, StepError> {
    let no_inputs = |_| None;
    let (status, _scratch, _) = run_exec_status(cx, e, root, &no_inputs, output)?;
    Ok(status)
}

/// Runs `e` over `root`; returns how the process ended, the scratch directory whose upper
/// holds the changes and the lower layers.
fn run_exec_status(
    cx: &ExecContext<'_>,
    e: &ExecOp,
    root: &[Layer],
    inputs: &dyn Fn(crate::graph::NodeId) -> Option<Arc<Value>>,
    output: &mut dyn FnMut(&[u8]),
) -> Result<(ExitStatus, Scratch, Vec<PathBuf>), StepError> {
    let lowers = layers::snapshots(cx.store, root).map_err(StepError::other)?;
    let scratch = cx.store.snapshots.scratch().map_err(StepError::other)?;
    let mut mounts = Vec::new();
    let mut locks = Vec::new();
    let mut env = e.env.clone();
    let mut forwards: Vec<SocketForward> = Vec::new();
    let mut ssh_index = 0;
    let mut first_ssh_target = None;
    for (i, m) in e.mounts.iter().enumerate() {
        let mut target = m.target.clone();
        let kind = match &m.kind {
            MountKind::Bind { source, source_path, readonly } => {
                let value = inputs(*source).ok_or_else(|| StepError::msg("a mount's source was not built"))?;
                match value.as_ref() {
                    Value::Rootfs(chain) => {
                        let dir = scratch.path().join(format!("mount-{i}"));
                        for d in ["upper", "work"] {
                            fs::create_dir_all(dir.join(d)).map_err(StepError::io("creating a mount scratch dir"))?;
                        }
                        MountSpecKind::Overlay {
                            rootfs: Rootfs {
                                lower: layers::snapshots(cx.store, chain).map_err(StepError::other)?,
                                upper: dir.join("upper"),
                                work: dir.join("work"),
                            },
                            subpath: source_path.clone(),
                            readonly: *readonly,
                        }
                    }
                    Value::Local(local) => MountSpecKind::Bind {
                        source: confined_join(&local.path, source_path, "the build context")?,
                        readonly: true,
                    },
                }
            }
            MountKind::Cache { id, sharing, from, source_path, mode, uid, gid, readonly } => {
                let from_layers = match from {
                    Some(node) => {
                        let value = inputs(*node).ok_or_else(|| StepError::msg("a mount's source was not built"))?;
                        match value.as_ref() {
                            Value::Rootfs(chain) => {
                                Some((chain.clone(), chain.iter().map(|l| l.diff_id.to_string()).collect::<Vec<_>>()))
                            }
                            Value::Local(_) => {
                                return Err(StepError::msg("a cache mount's from= must be a stage or an image"));
                            }
                        }
                    }
                    None => None,
                };
                let base = match &from_layers {
                    Some((_, ids)) => CacheBase::From { layers: ids },
                    None => CacheBase::Empty { mode: *mode, uid: *uid, gid: *gid },
                };
                let instance = cache_mounts::acquire(cx.store, id, &base, *sharing, cx.cancel)?;
                let dir = instance.dir.clone();
                locks.push(instance);
                match from_layers {
                    Some((chain, _)) => MountSpecKind::Overlay {
                        rootfs: Rootfs {
                            lower: layers::snapshots(cx.store, &chain).map_err(StepError::other)?,
                            upper: dir.join("upper"),
                            work: dir.join("work"),
                        },
                        subpath: source_path.clone(),
                        readonly: *readonly,
                    },
                    None => MountSpecKind::Bind {
                        source: confined_join(&dir, source_path, "its cache")?,
                        readonly: *readonly,
                    },
                }
            }
            MountKind::Tmpfs { size } => MountSpecKind::Tmpfs { size: *size, mode: 0o1777 },
            MountKind::HostDir { path, readonly } => MountSpecKind::Bind { source: path.clone(), readonly: *readonly },
            MountKind::Secret { id, env: env_name, required, mode, uid, gid } => {
                let Some(value) = cx.secrets.secrets.get(id) else {
                    if *required {
                        return Err(StepError::msg(format!(
                            "secret {id}: not found (pass it with --secret id={id},src=FILE or id={id},env=VAR)"
                        )));
                    }
                    continue;
                };
                if let Some(name) = env_name {
                    let value = String::from_utf8(value.clone())
                        .map_err(|_| StepError::msg(format!("secret {id} is not valid UTF-8 for env={name}")))?;
                    env.retain(|kv| kv.split_once('=').map_or(kv.as_str(), |(k, _)| k) != name);
                    env.push(format!("{name}={value}"));
                }
                if target.is_empty() {
                    continue; // env= only
                }
                MountSpecKind::Secret { data: SecretData(value.clone()), mode: *mode, uid: *uid, gid: *gid }
            }
            MountKind::Ssh { id, required, mode, uid, gid } => {
                if target.is_empty() {
                    target = default_ssh_target(ssh_index);
                }
                ssh_index += 1;
                first_ssh_target.get_or_insert_with(|| target.clone());
                let Some(socket) = cx.secrets.ssh_agents.get(id) else {
                    if *required {
                        return Err(StepError::msg(format!(
                            "no SSH agent \"{id}\" forwarded (pass one with --ssh {id}=$SSH_AUTH_SOCK)"
                        )));
                    }
                    continue;
                };
                let forward = SocketForward::start(socket, *mode, *uid, *gid)
                    .map_err(|err| StepError::msg(format!("forwarding SSH agent \"{id}\": {err}")))?;
                let source = forward.path().to_path_buf();
                forwards.push(forward);
                MountSpecKind::Bind { source, readonly: false }
            }
        };
        mounts.push(MountSpec { target, kind });
    }
    if let Some(sock) = first_ssh_target
        && !env.iter().any(|kv| kv.starts_with("SSH_AUTH_SOCK="))
    {
        env.push(format!("SSH_AUTH_SOCK={sock}"));
    }
    let spec = SandboxSpec {
        rootfs: Rootfs { lower: lowers.clone(), upper: scratch.upper(), work: scratch.work() },
        process: Process { args: e.args.clone(), env, cwd: e.cwd.clone(), user: e.user.clone() },
        hostname: cx.hostname.to_string(),
        network: match e.network {
            NetworkMode::None => Network::None,
            NetworkMode::Default | NetworkMode::Host => Network::Host,
        },
        security: match e.security {
            SecurityMode::Sandbox => Security::Sandbox,
            SecurityMode::Insecure => Security::Insecure,
        },
        mounts,
    };
    let status = strata_runner::run_with(cx.runner, &spec, cx.cancel, &mut |_, data| output(data))
        .map_err(|err| StepError::msg(err.to_string()))?;
    drop(locks);
    drop(forwards);
    Ok((status, scratch, lowers))
}

/// `base/rel` without leaving `base` (`what` names it in errors): `..` components cannot climb
/// above it and the result, with symlinks resolved, must stay inside.
fn confined_join(base: &Path, rel: &str, what: &str) -> Result<PathBuf, StepError> {
    let mut out = base.to_path_buf();
    for c in Path::new(rel).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir if out != base => {
                out.pop();
            }
            _ => {}
        }
    }
    let real = out.canonicalize().map_err(StepError::io(format!("mount source {rel}")))?;
    let real_base = base.canonicalize().map_err(StepError::io(what))?;
    if !real.starts_with(&real_base) {
        return Err(StepError::msg(format!("mount source {rel} points outside {what}")));
    }
    Ok(real)
}
