//! Running a file node (COPY, ADD, WORKDIR, heredoc files): the destination root filesystem
//! is mounted as an overlay whose upper collects the changes, sources are the build context
//! directory or other nodes' root filesystems mounted read-only, and the actions run in order
//! through the confined copy engine.
//!
//! Mounts live in strata's private mount namespace (see `strata_runner::rootfs`) and are
//! released before the upper is packed into a layer.
//!
//! A `--link` copy ([`FileOp::is_linked`]) runs over an empty root filesystem instead of its
//! root, as BuildKit runs it on scratch and merges the result over the base (MergeOp): the
//! destination's symlinks and existing directories are not seen, created parent directories
//! are part of the layer with mode 0755, and the layer depends on nothing below it.
//!
//! Owners (`--chown`, WORKDIR's user) are resolved as BuildKit's file operations resolve them
//! (`llb.WithUser` + the file backend's `readUser`), which is more lenient than a process
//! user's resolution: `root` and decimal numbers are ids (a user id alone also gives the group
//! id), an empty user or group is id 0, a user name missing from `/etc/passwd` is 0:0 and a
//! group name missing from `/etc/group` leaves the user's group, all without an error (verified
//! with BuildKit 0.13); a name needs the files to exist (else "no such file") and a root
//! filesystem to look in (BuildKit fails an empty one with "invalid user index: -1").

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
    let root: &[Layer] = if f.is_linked() { &[] } else { root };
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
                let owner = resolve_owner(&merged, chown.as_ref(), root.is_empty())?;
                copy::mkdir_all(&merged, path, owner).map_err(|e| StepError::msg(e.to_string()))?;
            }
            FileAction::Mkfile { path, mode, data, chown } => {
                let owner = resolve_owner(&merged, chown.as_ref(), root.is_empty())?;
                write_file(&scratch, i, &merged, path, *mode, data, owner)?;
            }
            FileAction::Rm { .. } => return Err(StepError::msg("removing files in a file step is not supported yet")),
            FileAction::Copy(c) => copy_action(store, &scratch, i, &merged, root.is_empty(), c, inputs)?,
        }
    }
    guard.unmount().map_err(|e| StepError::msg(e.to_string()))?;
    Ok((scratch, lowers))
}

/// One half of an owner spec, as `llb.WithUser` reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Id<'a> {
    Number(u32),
    Name(&'a str),
}

fn parse_id(s: &str) -> Id<'_> {
    if s == "root" || s.is_empty() {
        return Id::Number(0);
    }
    match s.parse::<u32>() {
        Ok(n) if s.bytes().all(|b| b.is_ascii_digit()) => Id::Number(n),
        _ => Id::Name(s),
    }
}

/// The numeric owner of a `--chown` (or WORKDIR's user), resolved in the destination
/// `rootfs` (see the module doc). `empty_root` is true when the op runs over no layers at all.
fn resolve_owner(rootfs: &Path, chown: Option<&Chown>, empty_root: bool) -> Result<Option<(u32, u32)>, StepError> {
    let Some(c) = chown else { return Ok(None) };
    let spec = match &c.group {
        Some(g) => format!("{}:{g}", c.user),
        None => c.user.clone(),
    };
    let user = parse_id(&c.user);
    let group = c.group.as_deref().map(parse_id);
    let needs_names = matches!(user, Id::Name(_)) || matches!(group, Some(Id::Name(_)));
    if needs_names && empty_root {
        return Err(StepError::msg(format!(
            "--chown={spec}: user and group names are looked up in the destination's /etc/passwd and /etc/group, \
             and this step has none (the first step after FROM scratch, or a --link copy); use numeric ids"
        )));
    }
    let (uid, mut gid) = match user {
        Id::Number(n) => (n, n),
        Id::Name(name) => {
            let passwd = read_in_root(rootfs, "/etc/passwd", &spec)?;
            let entries = strata_runner::users::parse_passwd(&passwd);
            entries.iter().find(|e| e.name == name).map_or((0, 0), |e| (e.uid, e.gid))
        }
    };
    match group {
        None => {}
        Some(Id::Number(n)) => gid = n,
        Some(Id::Name(name)) => {
            let groups = read_in_root(rootfs, "/etc/group", &spec)?;
            if let Some(g) = strata_runner::users::parse_group(&groups).iter().find(|g| g.name == name) {
                gid = g.gid;
            }
        }
    }
    Ok(Some((uid, gid)))
}

/// A file of the destination root filesystem, symlinks resolved inside it.
fn read_in_root(rootfs: &Path, path: &str, spec: &str) -> Result<String, StepError> {
    let fail = |e: std::io::Error| StepError::msg(format!("--chown={spec}: reading {path} of the destination: {e}"));
    let real = strata_runner::rootpath::resolve_in_root(rootfs, Path::new(path)).map_err(fail)?;
    let bytes = fs::read(real).map_err(fail)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
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

/// The copy engine's options for a copy action (owner already resolved).
pub fn copy_options(c: &CopyAction, owner: Option<(u32, u32)>) -> CopyOptions {
    CopyOptions {
        owner,
        chmod: c.chmod.clone(),
        allow_wildcard: c.allow_wildcard,
        allow_empty_wildcard: c.allow_empty_wildcard,
        unpack_archives: c.unpack_archives,
        follow_src_symlink: true,
        exclude: c.exclude_filter.clone(),
        include: c.include_filter.clone(),
        required_paths: c.required_paths.clone(),
    }
}

fn copy_action(
    store: &Store,
    scratch: &Scratch,
    index: usize,
    merged: &Path,
    empty_root: bool,
    c: &CopyAction,
    inputs: &dyn Fn(NodeId) -> Option<Arc<Value>>,
) -> Result<(), StepError> {
    if (!c.exclude.is_empty() && c.exclude_filter.is_none()) || (!c.include.is_empty() && c.include_filter.is_none()) {
        return Err(StepError::msg("a copy's --exclude or --parents patterns were not compiled by the frontend"));
    }
    let owner = resolve_owner(merged, c.chown.as_ref(), empty_root)?;
    let opts = copy_options(c, owner);
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
