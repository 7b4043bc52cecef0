//! Running an exec node (a RUN step): its root filesystem and mounts become a sandbox plan for
//! the runner, the process runs, and the overlay upper it wrote becomes the new layer.
//!
//! Mount sources are other nodes' results: a root filesystem is mounted as a private overlay
//! of its layers (writes go to a throw-away upper, so `rw` bind mounts never change the
//! source), a local source (the build context) is bind-mounted read-only, a cache mount is a
//! directory kept in the store (`ROOT/cache/mounts/`) that never enters a layer, a host
//! directory mount (`MountKind::HostDir`) is the host directory itself. [`run_process`] runs a
//! process for its exit status and its host-directory effects, without making a layer.

use std::fs;
use std::os::unix::fs::{PermissionsExt, chown};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest as _, Sha256};
use strata_runner::spec::{MountSpec, MountSpecKind, Network, Process, Rootfs, SandboxSpec};
use strata_runner::{Cancel, ExitStatus, RunnerConfig};
use strata_store::Store;
use strata_store::digest::to_hex;
use strata_store::snapshots::Scratch;

use crate::cache::Layer;
use crate::graph::{CacheSharing, ExecOp, MountKind, NetworkMode};
use crate::layers;
use crate::solve::{StepError, Value};

/// What an exec needs from the build.
pub struct ExecContext<'a> {
    pub store: &'a Store,
    pub runner: &'a RunnerConfig,
    pub cancel: &'a Cancel,
    pub hostname: &'a str,
}

/// Holds locks of `sharing=locked` cache mounts for the duration of a step.
struct CacheLock {
    _file: fs::File,
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
    for (i, m) in e.mounts.iter().enumerate() {
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
                    Value::Local(local) => {
                        MountSpecKind::Bind { source: confined_join(&local.path, source_path)?, readonly: true }
                    }
                }
            }
            MountKind::Cache { id, sharing, from, mode, uid, gid, readonly, .. } => {
                if from.is_some() {
                    return Err(StepError::msg("RUN --mount=type=cache,from=... is not supported yet"));
                }
                let (dir, lock) = cache_mount_dir(cx.store, id, *sharing, *mode, *uid, *gid)?;
                locks.extend(lock);
                MountSpecKind::Bind { source: dir, readonly: *readonly }
            }
            MountKind::Tmpfs { size } => MountSpecKind::Tmpfs { size: *size, mode: 0o1777 },
            MountKind::HostDir { path, readonly } => MountSpecKind::Bind { source: path.clone(), readonly: *readonly },
            MountKind::Secret { .. } | MountKind::Ssh { .. } => {
                return Err(StepError::msg("secret and ssh mounts are not supported yet"));
            }
        };
        mounts.push(MountSpec { target: m.target.clone(), kind });
    }
    let spec = SandboxSpec {
        rootfs: Rootfs { lower: lowers.clone(), upper: scratch.upper(), work: scratch.work() },
        process: Process { args: e.args.clone(), env: e.env.clone(), cwd: e.cwd.clone(), user: e.user.clone() },
        hostname: cx.hostname.to_string(),
        network: match e.network {
            NetworkMode::None => Network::None,
            NetworkMode::Default | NetworkMode::Host => Network::Host,
        },
        mounts,
    };
    let status = strata_runner::run_with(cx.runner, &spec, cx.cancel, &mut |_, data| output(data))
        .map_err(|err| StepError::msg(err.to_string()))?;
    drop(locks);
    Ok((status, scratch, lowers))
}

/// `base/rel` without leaving `base`: `..` components cannot climb above it and the result,
/// with symlinks resolved, must stay inside.
fn confined_join(base: &Path, rel: &str) -> Result<PathBuf, StepError> {
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
    let real_base = base.canonicalize().map_err(StepError::io("the build context"))?;
    if !real.starts_with(&real_base) {
        return Err(StepError::msg(format!("mount source {rel} points outside the build context")));
    }
    Ok(real)
}

/// The directory of cache mount `id`, created on first use with the requested owner and mode.
fn cache_mount_dir(
    store: &Store,
    id: &str,
    sharing: CacheSharing,
    mode: u32,
    uid: u32,
    gid: u32,
) -> Result<(PathBuf, Option<CacheLock>), StepError> {
    let name = to_hex(&Sha256::digest(id.as_bytes()));
    let base = store.cache_dir().join("mounts");
    let dir = base.join(&name);
    if !dir.exists() {
        fs::create_dir_all(&base).map_err(StepError::io("creating the cache mount directory"))?;
        let tmp = tempfile::Builder::new()
            .prefix(".new-")
            .tempdir_in(&base)
            .map_err(StepError::io("creating a cache mount"))?
            .keep();
        fs::set_permissions(&tmp, fs::Permissions::from_mode(mode)).map_err(StepError::io("cache mount mode"))?;
        chown(&tmp, Some(uid), Some(gid)).map_err(StepError::io("cache mount owner"))?;
        if fs::rename(&tmp, &dir).is_err() {
            // Another step created it first.
            let _ = fs::remove_dir(&tmp);
        }
    }
    let lock = if sharing == CacheSharing::Locked {
        let file = fs::File::create(base.join(format!("{name}.lock"))).map_err(StepError::io("cache mount lock"))?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| StepError::msg(format!("locking cache mount {id}: {e}")))?;
        Some(CacheLock { _file: file })
    } else {
        None
    };
    Ok((dir, lock))
}
