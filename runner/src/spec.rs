//! The sandbox plan: everything needed to run one process, as plain data.
//!
//! A [`SandboxSpec`] is built by the builder, serialized to the re-executed sandbox process, and
//! carried out there. Keeping it as data means tests can inspect what would be mounted and with
//! which rights without any privileges, and the sandbox code reads as "do what the spec says".

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The root filesystem: an overlay of read-only layer directories with a writable upper.
///
/// Layer directories are in overlayfs "upper" format: a whiteout is a 0/0 character device, an
/// opaque directory carries the `trusted.overlay.opaque=y` xattr. After the process exits,
/// `upper` holds exactly the changes it made, in the same format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rootfs {
    /// Layer directories, bottom (base image) first. May be empty (scratch).
    pub lower: Vec<PathBuf>,
    /// The writable layer; receives the changes.
    pub upper: PathBuf,
    /// overlayfs' work directory: empty, on the same filesystem as `upper`.
    pub work: PathBuf,
}

/// The process to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Process {
    /// argv; `args[0]` without a `/` is looked up in the `PATH` of `env` inside the rootfs.
    pub args: Vec<String>,
    /// `NAME=value` entries; the process sees exactly these, plus `HOME` (the user's home
    /// directory) and a default `PATH` when absent, as BuildKit's runc does.
    pub env: Vec<String>,
    /// Absolute working directory inside the rootfs; created if missing (mode 0755, owned by the
    /// resolved user, as BuildKit's executor does).
    pub cwd: String,
    /// `user[:group]` by name or numeric id, resolved in the rootfs's `/etc/passwd` and
    /// `/etc/group`; empty means `root` (0:0).
    pub user: String,
}

/// Which network the process gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    /// The host's network namespace.
    #[default]
    Host,
    /// A new network namespace with only `lo`, brought up.
    None,
}

/// An extra mount inside the rootfs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountSpec {
    /// Absolute path inside the rootfs; created if missing (in the upper layer, as BuildKit
    /// creates mount points).
    pub target: String,
    pub kind: MountSpecKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "type")]
pub enum MountSpecKind {
    /// Bind a host file or directory.
    Bind { source: PathBuf, readonly: bool },
    /// An overlay of read-only layers with its own upper (a writable view whose writes are
    /// thrown away, e.g. `--mount=type=bind,from=stage,rw`).
    Overlay { rootfs: Rootfs, subpath: String, readonly: bool },
    /// A fresh tmpfs.
    Tmpfs { size: Option<u64>, mode: u32 },
    /// A file holding `data`, owned `uid:gid` with `mode`, on a tmpfs private to the sandbox and
    /// mounted read-only, nosuid, nodev, noexec (a `--mount=type=secret`): the content never
    /// touches a disk and never reaches the layer.
    Secret { data: SecretData, mode: u32, uid: u32, gid: u32 },
}

/// Secret bytes. `Debug` prints only the length, so a spec can be logged without leaking them.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretData(pub Vec<u8>);

impl std::fmt::Debug for SecretData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretData(<{} bytes>)", self.0.len())
    }
}

/// `--security` of a `RUN` step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    /// Docker's default confinement: its capability set, its seccomp profile, masked and
    /// read-only `/proc` paths, `/sys` read-only, device nodes usable only under `/dev`.
    #[default]
    Sandbox,
    /// BuildKit's `security.insecure`: every capability the builder has (also for non-root
    /// users, as ambient capabilities), no seccomp filter, no masked paths, `/sys` writable,
    /// device nodes usable anywhere, and the host's fuse, kvm, tun, loop and kmsg devices.
    Insecure,
}

/// Everything the sandbox needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxSpec {
    pub rootfs: Rootfs,
    pub process: Process,
    /// The hostname inside the UTS namespace.
    pub hostname: String,
    pub network: Network,
    #[serde(default)]
    pub security: Security,
    /// Extra mounts, applied in order after the rootfs, `/proc`, `/dev`, and the host's
    /// `/etc/resolv.conf` and `/etc/hosts`.
    pub mounts: Vec<MountSpec>,
}

/// A root filesystem to mount for file operations done outside the sandbox (`COPY`).
///
/// Without `upper` the view is read-only; with it, writes land in `upper` in overlayfs upper
/// format, exactly as for a [`Rootfs`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootfsView {
    /// Layer directories, bottom (base image) first. May be empty.
    pub lower: Vec<PathBuf>,
    pub upper: Option<UpperDir>,
}

/// The writable part of an overlay: `upper` receives changes, `work` is overlayfs' scratch
/// directory (empty, same filesystem as `upper`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpperDir {
    pub upper: PathBuf,
    pub work: PathBuf,
}

impl From<&Rootfs> for RootfsView {
    fn from(rootfs: &Rootfs) -> Self {
        RootfsView {
            lower: rootfs.lower.clone(),
            upper: Some(UpperDir { upper: rootfs.upper.clone(), work: rootfs.work.clone() }),
        }
    }
}
