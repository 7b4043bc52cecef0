//! strata's sandbox: runs one process over an overlay root filesystem in fresh Linux
//! namespaces, and mounts root filesystems for file operations.
//!
//! The runner never sees the build graph: it receives a [`spec::SandboxSpec`] (plain data) and
//! carries it out.
//!
//! Layout: `launch.rs` (builder side of a run), `sandbox.rs` (the re-executed helper and the
//! sandbox's pid 1), `seccomp/` (Docker's seccomp profile as BPF), `forward.rs` (the SSH agent
//! relay), `mounts.rs` (which mounts, as data), `overlay.rs` (overlay options and
//! mounting), `stubs.rs` (mount points removed after a run), `users.rs` (user/group lookup),
//! `rootpath.rs` (symlink-safe paths inside a rootfs), `rootfs.rs` (mounts for file
//! operations), `protocol.rs` (helper messages), `sys.rs` (every system call and `unsafe`).

pub mod error;
pub mod forward;
pub mod launch;
pub mod mounts;
pub mod overlay;
pub mod protocol;
pub mod rootfs;
pub mod rootpath;
pub mod sandbox;
pub mod seccomp;
pub mod spec;
pub mod stubs;
mod sys;
pub mod userns;
pub mod users;

pub use error::RunError;
pub use launch::{Cancel, ExitStatus, OutputStream, RunnerConfig, SANDBOX_ARG, run, run_with};
pub use rootfs::{MountGuard, enter_private_mount_namespace, mount_rootfs};
pub use sandbox::maybe_run_sandbox;
pub use spec::{RootfsView, UpperDir};
