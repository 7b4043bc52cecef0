//! Root filesystems mounted in the builder's own process, for file operations (`COPY`) that
//! need no sandbox.
//!
//! These mounts are made in the caller's mount namespace, so the builder first moves into a
//! private one ([`enter_private_mount_namespace`]): nothing it mounts is then visible to the
//! host, and everything vanishes when the process dies, whatever way it dies.
//!
//! Shapes (options from `overlay.rs`):
//! * with an upper: overlay of the lowers (an empty directory if there are none);
//! * read-only, one or more lowers: overlay of the lowers plus an empty bottom layer (overlayfs
//!   needs two lowers without an upper, and whiteouts must stay hidden);
//! * read-only, no lowers: an empty read-only tmpfs.

use std::path::{Path, PathBuf};

use nix::mount::MsFlags;
use nix::sched::CloneFlags;

use crate::error::RunError;
use crate::overlay::{MountMethod, OverlayOptions};
use crate::spec::RootfsView;
use crate::sys;

/// Moves this process into a private mount namespace (`unshare(CLONE_NEWNS)`, then `/`
/// made rprivate). Call early in `main()`, before any thread exists: the kernel refuses to
/// unshare the mount namespace of a multi-threaded process. Needs root.
pub fn enter_private_mount_namespace() -> Result<(), RunError> {
    sys::unshare(CloneFlags::CLONE_NEWNS)
        .map_err(|e| RunError::io("unshare(CLONE_NEWNS) (must run before any thread starts, as root)", e))?;
    sys::make_rprivate(Path::new("/")).map_err(|e| RunError::io("making / rprivate", e))
}

/// A mounted rootfs; unmounted when dropped (or explicitly with [`MountGuard::unmount`]).
#[derive(Debug)]
pub struct MountGuard {
    target: PathBuf,
    mounted: bool,
    /// The empty layer, when one was needed; removed after the unmount.
    _empty: Option<tempfile::TempDir>,
}

impl MountGuard {
    /// Where the rootfs is mounted.
    pub fn path(&self) -> &Path {
        &self.target
    }

    /// Unmounts now, reporting failure (e.g. `EBUSY` while a file is still open in it).
    pub fn unmount(mut self) -> Result<(), RunError> {
        self.mounted = false;
        sys::unmount(&self.target).map_err(|e| RunError::io(format!("unmounting {}", self.target.display()), e))
    }
}

impl Drop for MountGuard {
    fn drop(&mut self) {
        if self.mounted && sys::unmount(&self.target).is_err() {
            // Still busy: detach it now; the kernel frees it when the last user goes.
            if let Err(e) = sys::unmount_detach(&self.target) {
                tracing::warn!("cannot unmount {}: {e}", self.target.display());
            }
        }
    }
}

/// Mounts `rootfs` at `target` (an existing directory); see the module docs.
pub fn mount_rootfs(rootfs: &RootfsView, target: &Path) -> Result<MountGuard, RunError> {
    let upper = rootfs.upper.as_ref().map(|u| (u.upper.clone(), u.work.clone()));
    if upper.is_none() && rootfs.lower.is_empty() {
        let flags = MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
        sys::mount("tmpfs", target, "tmpfs", flags, Some("mode=755"))
            .map_err(|e| RunError::io(format!("mounting an empty rootfs on {}", target.display()), e))?;
        return Ok(MountGuard { target: target.to_path_buf(), mounted: true, _empty: None });
    }
    let needs_empty = if upper.is_some() { rootfs.lower.is_empty() } else { rootfs.lower.len() < 2 };
    let empty = if needs_empty {
        Some(
            tempfile::Builder::new()
                .prefix(".strata-empty-")
                .tempdir()
                .map_err(|e| RunError::io("creating an empty layer directory", e))?,
        )
    } else {
        None
    };
    let empty_path = empty.as_ref().map(|d| d.path().to_path_buf()).unwrap_or_default();
    OverlayOptions::new(&rootfs.lower, upper, &empty_path).mount(target, MountMethod::Auto)?;
    Ok(MountGuard { target: target.to_path_buf(), mounted: true, _empty: empty })
}
