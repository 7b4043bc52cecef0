//! Running a file node (COPY, ADD, WORKDIR, heredoc files): the destination root filesystem
//! is mounted as an overlay whose upper collects the changes, sources are the build context
//! directory or other nodes' root filesystems mounted read-only, and the actions run in order
//! through the confined copy engine.
//!
//! Mounts live in strata's private mount namespace (see `strata_runner::rootfs`) and are
//! released before the upper is packed into a layer.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use strata_runner::spec::{RootfsView, UpperDir};
use strata_store::Store;
use strata_store::snapshots::Scratch;

use crate::cache::Layer;
use crate::copy::{self, CopyOptions, CopySource};
use crate::graph::{Chown, CopyAction, FileAction, FileOp, NodeId};
use crate::layers;
use crate::solve::{StepError, Value};

/// Runs `f` over `root`; returns the scratch directory whose upper holds the changes, and the
/// lower layers (for packing the diff).
pub fn run_file_op(
    store: &Store,
    f: &FileOp,
    root: &[Layer],
    inputs: &dyn Fn(NodeId) -> Option<Arc<Value>>,
) -> Result<(Scratch, Vec<PathBuf>), StepError> {
    let lowers = layers::snapshots(store, root).map_err(StepError::other)?;
    let scratch = store.snapshots.scratch().map_err(StepError::other)?;
    let merged = scratch.path().join("merged");
    fs::create_dir(&merged).map_err(StepError::io("creating the mount point"))?;
    let view =
        RootfsView { lower: lowers.clone(), upper: Some(UpperDir { upper: scratch.upper(), work: scratch.work() }) };
    let guard = strata_runner::mount_rootfs(&view, &merged).map_err(|e| StepError::msg(e.to_string()))?;
    for (i, action) in f.actions.iter().enumerate() {
        match action {
            FileAction::Mkdir { path, chown, .. } => {
                let owner = resolve_owner(&merged, chown.as_ref())?;
                copy::mkdir_all(&merged, path, owner).map_err(|e| StepError::msg(e.to_string()))?;
            }
            FileAction::Mkfile { path, mode, data, chown } => {
                let owner = resolve_owner(&merged, chown.as_ref())?;
                write_file(&scratch, i, &merged, path, *mode, data, owner)?;
            }
            FileAction::Rm { .. } => return Err(StepError::msg("removing files in a file step is not supported yet")),
            FileAction::Copy(c) => copy_action(store, &scratch, i, &merged, c, inputs)?,
        }
    }
    guard.unmount().map_err(|e| StepError::msg(e.to_string()))?;
    Ok((scratch, lowers))
}

/// The numeric owner of a `--chown` (or WORKDIR's user), resolved in the destination.
fn resolve_owner(rootfs: &Path, chown: Option<&Chown>) -> Result<Option<(u32, u32)>, StepError> {
    let Some(c) = chown else { return Ok(None) };
    strata_runner::users::resolve_owner(rootfs, &c.user, c.group.as_deref())
        .map(Some)
        .map_err(|e| StepError::msg(e.to_string()))
}

/// A file with given content, placed as a copy would place it (BuildKit makes heredoc files
/// in a scratch filesystem and copies them, so destination rules are the copy's).
fn write_file(
    scratch: &Scratch,
    index: usize,
    merged: &Path,
    path: &str,
    mode: u32,
    data: &[u8],
    owner: Option<(u32, u32)>,
) -> Result<(), StepError> {
    let src_dir = scratch.path().join(format!("file-{index}"));
    fs::create_dir(&src_dir).map_err(StepError::io("creating a file source"))?;
    let name = path.rsplit('/').next().filter(|n| !n.is_empty()).unwrap_or("file");
    let src = src_dir.join(name);
    let mut f = fs::File::create(&src).map_err(StepError::io("writing an inline file"))?;
    f.write_all(data).map_err(StepError::io("writing an inline file"))?;
    fs::set_permissions(&src, fs::Permissions::from_mode(mode)).map_err(StepError::io("inline file mode"))?;
    drop(f);
    let source = CopySource { root: &src_dir, filter: None, is_context: true };
    let opts = CopyOptions { owner, ..CopyOptions::dockerfile() };
    copy::copy(&source, &[name.to_string()], merged, path, &opts).map_err(|e| StepError::msg(e.to_string()))?;
    Ok(())
}

fn copy_action(
    store: &Store,
    scratch: &Scratch,
    index: usize,
    merged: &Path,
    c: &CopyAction,
    inputs: &dyn Fn(NodeId) -> Option<Arc<Value>>,
) -> Result<(), StepError> {
    let owner = resolve_owner(merged, c.chown.as_ref())?;
    let opts = CopyOptions {
        owner,
        chmod: c.chmod.clone(),
        allow_wildcard: c.allow_wildcard,
        allow_empty_wildcard: c.allow_empty_wildcard,
        unpack_archives: c.unpack_archives,
        follow_src_symlink: true,
        exclude: None,
        include: None,
        required_paths: Vec::new(),
    };
    let value = inputs(c.source).ok_or_else(|| StepError::msg("a copy source was not built"))?;
    let result = match value.as_ref() {
        Value::Local(local) => {
            let source = CopySource { root: &local.path, filter: local.filter.as_deref(), is_context: true };
            copy::copy(&source, &c.src_paths, merged, &c.dest, &opts)
        }
        Value::Rootfs(chain) => {
            let src_mount = scratch.path().join(format!("src-{index}"));
            fs::create_dir(&src_mount).map_err(StepError::io("creating a source mount point"))?;
            let view = RootfsView { lower: layers::snapshots(store, chain).map_err(StepError::other)?, upper: None };
            let guard = strata_runner::mount_rootfs(&view, &src_mount).map_err(|e| StepError::msg(e.to_string()))?;
            let source = CopySource { root: &src_mount, filter: None, is_context: false };
            let r = copy::copy(&source, &c.src_paths, merged, &c.dest, &opts);
            guard.unmount().map_err(|e| StepError::msg(e.to_string()))?;
            r
        }
    };
    result.map(|_| ()).map_err(|e| StepError::msg(e.to_string()))
}
