//! Which mounts, device nodes and masks a sandbox gets, computed as plain data.
//!
//! [`plan`] turns a [`SandboxSpec`] into a [`MountPlan`]; `sandbox.rs` carries it out step by
//! step. The defaults are what BuildKit 0.13 with runc gives a `RUN` step, read off
//! `/proc/self/mountinfo` and `ls -l /dev` inside one:
//!
//! | target | type | flags / data |
//! |---|---|---|
//! | `/proc` | proc | nosuid,nodev,noexec |
//! | `/dev` | tmpfs | nosuid,strictatime `mode=755,size=65536k` |
//! | `/dev/pts` | devpts | nosuid,noexec `newinstance,ptmxmode=0666,mode=0620,gid=5` |
//! | `/dev/shm` | tmpfs | nosuid,nodev,noexec `mode=1777,size=65536k` |
//! | `/dev/mqueue` | mqueue | nosuid,nodev,noexec |
//! | `/sys` | sysfs | ro,nosuid,nodev,noexec |
//! | `/etc/resolv.conf` | bind of the host's file | ro,nosuid,nodev,noexec |
//! | `/etc/hosts` | bind of a generated file ([`hosts_file`], as BuildKit's) | ro,nosuid,nodev,noexec |
//!
//! `/dev` holds `null zero full random urandom tty` (0666 char devices) and the symlinks
//! `fd stdin stdout stderr ptmx`. After `pivot_root`, runc's default masked paths are hidden
//! (files under `/dev/null`, directories under a read-only tmpfs) and its read-only paths
//! remounted read-only; each only if it exists.
//!
//! **Device nodes.** BuildKit keeps `CAP_MKNOD` (`mknod c 1 3` works in a `RUN` step) and relies
//! on runc's devices cgroup to refuse *opening* any node but the standard ones (opening a
//! `mknod`ed `/dev/sda` or `/dev/mem` fails with `EPERM`). strata has no cgroup of its own to
//! program, so it gets the same effect from mount flags: the rootfs, `/dev` and every other
//! mount except `/dev/pts` are `nodev`, so a node created anywhere cannot be opened (`EACCES`);
//! the standard nodes are created on a separate device tmpfs outside the rootfs and bind-mounted
//! one by one, and a bind mount keeps its source's flags. `mknod` itself still succeeds, so
//! builds that create device nodes for the image (as some base-image builds do) still work.
//! With `security.insecure` BuildKit allows every device, and so no mount is `nodev` then; the
//! host's fuse, kvm, tun, loop and kmsg nodes are bound in, those the host has.
//!
//! Mount points missing from the rootfs are created there (directories 0755, files empty), so
//! `dev/ proc/ sys/` end up in the layer as they do with BuildKit; which of them are removed
//! again afterwards is decided by `stubs.rs`.
//!
//! Not reproduced: BuildKit's read-only cgroup mounts under `/sys/fs/cgroup`.

use std::path::PathBuf;

use nix::mount::MsFlags;

use crate::spec::{MountSpecKind, Rootfs, SandboxSpec, SecretData, Security};

/// One mount inside the rootfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Absolute path inside the rootfs.
    pub target: String,
    pub source: Source,
    pub flags: MsFlags,
    pub data: Option<String>,
    /// Remount read-only after mounting (bind mounts cannot be made read-only in one step).
    pub readonly: bool,
}

/// What gets mounted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A fresh filesystem of a kernel type (`proc`, `tmpfs`, ...).
    Fs { fstype: &'static str },
    /// A host file or directory; the mount point is created as the same kind.
    Bind { path: PathBuf, recursive: bool },
    /// A writable-or-not overlay of layers, of which `subpath` is mounted.
    Overlay { rootfs: Rootfs, subpath: String },
    /// A file written with this content, owner and mode on the sandbox's private tmpfs.
    Secret { data: SecretData, mode: u32, uid: u32, gid: u32 },
}

/// One step done inside the rootfs before `pivot_root`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Mount(Mount),
    /// A character device node with exactly this mode, made on a device tmpfs outside the
    /// rootfs and bind-mounted to `path` (so it works although `/dev` itself is `nodev`).
    Device {
        path: String,
        major: u64,
        minor: u64,
        mode: u32,
    },
    /// The host's device node of the same path bind-mounted, if the host has it (insecure runs).
    HostDevice {
        path: String,
    },
    Symlink {
        path: String,
        target: String,
    },
}

/// Done after `pivot_root`, on paths that exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathRule {
    /// Hide: bind `/dev/null` over a file, a read-only empty tmpfs over a directory.
    Mask(String),
    /// Bind onto itself and remount read-only.
    ReadOnly(String),
}

/// The whole plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountPlan {
    pub steps: Vec<Step>,
    pub after_pivot: Vec<PathRule>,
}

/// Host files shared into every sandbox, when the host has them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostFiles {
    pub resolv_conf: Option<PathBuf>,
    pub hosts: Option<PathBuf>,
    /// `/dev/loopN` nodes of the host, for insecure runs.
    pub loop_devices: Vec<String>,
    /// Bind the host's `/proc` instead of mounting a fresh one (`STRATA_NO_PROCESS_SANDBOX=1`):
    /// for unprivileged containers whose `/proc` has masked paths, where the kernel refuses a
    /// new proc mount. As BuildKit's `--oci-worker-no-process-sandbox`, the steps then see the
    /// container's processes (and, running as the same user, can read their `/proc` files), so
    /// it is an opt-in.
    pub share_host_proc: bool,
}

/// The environment variable that sets [`HostFiles::share_host_proc`].
pub const NO_PROCESS_SANDBOX_ENV: &str = "STRATA_NO_PROCESS_SANDBOX";

impl HostFiles {
    /// The host's `/etc/resolv.conf` and `/etc/hosts`, those that exist, and its loop devices.
    pub fn from_host() -> HostFiles {
        let existing = |p: &str| Some(PathBuf::from(p)).filter(|p| p.is_file());
        let mut loop_devices: Vec<String> = std::fs::read_dir("/dev")
            .map(|d| {
                d.flatten()
                    .filter_map(|e| e.file_name().to_str().map(String::from))
                    .filter(|n| {
                        n.strip_prefix("loop").is_some_and(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit()))
                    })
                    .map(|n| format!("/dev/{n}"))
                    .collect()
            })
            .unwrap_or_default();
        loop_devices.sort();
        let share_host_proc =
            std::env::var(NO_PROCESS_SANDBOX_ENV).is_ok_and(|v| matches!(v.as_str(), "1" | "true" | "yes"));
        HostFiles {
            resolv_conf: existing("/etc/resolv.conf"),
            hosts: existing("/etc/hosts"),
            loop_devices,
            share_host_proc,
        }
    }
}

/// The device nodes of every sandbox's `/dev` (runc's defaults): name, major, minor.
pub const STANDARD_DEVICES: [(&str, u64, u64); 6] =
    [("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0)];

/// Host devices BuildKit adds for `security.insecure` (`WithInsecureSpec`); loop devices too.
pub const INSECURE_HOST_DEVICES: [&str; 6] =
    ["/dev/kmsg", "/dev/cuse", "/dev/fuse", "/dev/kvm", "/dev/net/tun", "/dev/loop-control"];

/// The `/etc/hosts` BuildKit writes for a RUN step: loopback names plus the sandbox's
/// hostname, so `hostname` resolves inside.
pub fn hosts_file(hostname: &str) -> String {
    format!("127.0.0.1\tlocalhost {hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n")
}

/// runc's default masked paths (containerd's `defaultUnixSpec`).
pub const MASKED_PATHS: [&str; 11] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// runc's default read-only paths.
pub const READONLY_PATHS: [&str; 5] = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

const NOSUID: MsFlags = MsFlags::MS_NOSUID;
const NODEV: MsFlags = MsFlags::MS_NODEV;
const NOEXEC: MsFlags = MsFlags::MS_NOEXEC;

fn fs(target: &str, fstype: &'static str, flags: MsFlags, data: Option<&str>) -> Step {
    Step::Mount(Mount {
        target: target.to_string(),
        source: Source::Fs { fstype },
        flags,
        data: data.map(String::from),
        readonly: false,
    })
}

fn host_file(target: &str, path: &std::path::Path) -> Step {
    Step::Mount(Mount {
        target: target.to_string(),
        source: Source::Bind { path: path.to_path_buf(), recursive: false },
        flags: NOSUID | NODEV | NOEXEC,
        data: None,
        readonly: true,
    })
}

/// The plan for `spec`.
pub fn plan(spec: &SandboxSpec, host: &HostFiles) -> MountPlan {
    let sandboxed = spec.security == Security::Sandbox;
    // Device nodes work only under /dev (see the module docs); insecure runs allow them all.
    let nodev = if sandboxed { NODEV } else { MsFlags::empty() };
    let proc = if host.share_host_proc {
        Step::Mount(Mount {
            target: "/proc".to_string(),
            source: Source::Bind { path: PathBuf::from("/proc"), recursive: true },
            flags: NOSUID | NODEV | NOEXEC,
            data: None,
            readonly: false,
        })
    } else {
        fs("/proc", "proc", NOSUID | NODEV | NOEXEC, None)
    };
    let mut steps =
        vec![proc, fs("/dev", "tmpfs", NOSUID | nodev | MsFlags::MS_STRICTATIME, Some("mode=755,size=65536k"))];
    for (name, major, minor) in STANDARD_DEVICES {
        steps.push(Step::Device { path: format!("/dev/{name}"), major, minor, mode: 0o666 });
    }
    for (name, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ] {
        steps.push(Step::Symlink { path: format!("/dev/{name}"), target: target.to_string() });
    }
    if !sandboxed {
        for path in INSECURE_HOST_DEVICES.iter().map(|p| p.to_string()).chain(host.loop_devices.iter().cloned()) {
            steps.push(Step::HostDevice { path });
        }
    }
    steps.push(fs("/dev/pts", "devpts", NOSUID | NOEXEC, Some("newinstance,ptmxmode=0666,mode=0620,gid=5")));
    steps.push(fs("/dev/shm", "tmpfs", NOSUID | NODEV | NOEXEC, Some("mode=1777,size=65536k")));
    steps.push(fs("/dev/mqueue", "mqueue", NOSUID | NODEV | NOEXEC, None));
    let sys_ro = if sandboxed { MsFlags::MS_RDONLY } else { MsFlags::empty() };
    steps.push(fs("/sys", "sysfs", NOSUID | NODEV | NOEXEC | sys_ro, None));
    if let Some(path) = &host.resolv_conf {
        steps.push(host_file("/etc/resolv.conf", path));
    }
    if let Some(path) = &host.hosts {
        steps.push(host_file("/etc/hosts", path));
    }
    for m in &spec.mounts {
        steps.push(Step::Mount(match &m.kind {
            MountSpecKind::Bind { source, readonly } => Mount {
                target: m.target.clone(),
                source: Source::Bind { path: source.clone(), recursive: true },
                flags: nodev,
                data: None,
                readonly: *readonly,
            },
            MountSpecKind::Overlay { rootfs, subpath, readonly } => Mount {
                target: m.target.clone(),
                source: Source::Overlay { rootfs: rootfs.clone(), subpath: subpath.clone() },
                flags: nodev,
                data: None,
                readonly: *readonly,
            },
            MountSpecKind::Tmpfs { size, mode } => {
                let mut data = format!("mode={mode:o}");
                if let Some(size) = size {
                    data.push_str(&format!(",size={size}"));
                }
                Mount {
                    target: m.target.clone(),
                    source: Source::Fs { fstype: "tmpfs" },
                    flags: NOSUID | NODEV | MsFlags::MS_STRICTATIME,
                    data: Some(data),
                    readonly: false,
                }
            }
            MountSpecKind::Secret { data, mode, uid, gid } => Mount {
                target: m.target.clone(),
                source: Source::Secret { data: data.clone(), mode: *mode, uid: *uid, gid: *gid },
                flags: NOSUID | NODEV | NOEXEC,
                data: None,
                readonly: true,
            },
        }));
    }
    let mut after_pivot = Vec::new();
    if sandboxed {
        after_pivot.extend(MASKED_PATHS.iter().map(|p| PathRule::Mask(p.to_string())));
        after_pivot.extend(READONLY_PATHS.iter().map(|p| PathRule::ReadOnly(p.to_string())));
    }
    MountPlan { steps, after_pivot }
}

/// Paths BuildKit treats as mount stubs: created only to be mounted on, removed after the run
/// when still empty (`executor.MountStubsCleaner`).
pub fn stub_candidates(spec: &SandboxSpec) -> Vec<String> {
    let mut names = vec!["/etc/resolv.conf".to_string(), "/etc/hosts".to_string()];
    names.extend(spec.mounts.iter().map(|m| m.target.clone()));
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{MountSpec, Network, Process, Security};

    fn spec(mounts: Vec<MountSpec>) -> SandboxSpec {
        SandboxSpec {
            rootfs: Rootfs { lower: vec![], upper: "/u".into(), work: "/w".into() },
            process: Process { args: vec!["true".into()], env: vec![], cwd: "/".into(), user: String::new() },
            hostname: "h".into(),
            network: Network::None,
            security: Security::Sandbox,
            mounts,
        }
    }

    fn targets(plan: &MountPlan) -> Vec<&str> {
        plan.steps
            .iter()
            .filter_map(|s| match s {
                Step::Mount(m) => Some(m.target.as_str()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn no_process_sandbox_binds_the_host_proc() {
        let spec = spec(vec![]);
        let host = HostFiles { share_host_proc: true, ..Default::default() };
        let p = plan(&spec, &host);
        let Step::Mount(proc) = &p.steps[0] else { panic!("{:?}", p.steps[0]) };
        assert_eq!(
            (proc.target.as_str(), &proc.source),
            ("/proc", &Source::Bind { path: "/proc".into(), recursive: true })
        );
        let Step::Mount(fresh) = &plan(&spec, &HostFiles::default()).steps[0] else { panic!() };
        assert_eq!(fresh.source, Source::Fs { fstype: "proc" });
    }

    #[test]
    fn default_mounts_in_order() {
        let host = HostFiles {
            resolv_conf: Some("/etc/resolv.conf".into()),
            hosts: Some("/etc/hosts".into()),
            ..Default::default()
        };
        let plan = plan(&spec(vec![]), &host);
        assert_eq!(
            targets(&plan),
            ["/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/etc/resolv.conf", "/etc/hosts"]
        );
        let sys = plan.steps.iter().find_map(|s| match s {
            Step::Mount(m) if m.target == "/sys" => Some(m),
            _ => None,
        });
        assert!(sys.unwrap().flags.contains(MsFlags::MS_RDONLY));
        let hosts = plan.steps.iter().find_map(|s| match s {
            Step::Mount(m) if m.target == "/etc/hosts" => Some(m),
            _ => None,
        });
        let hosts = hosts.unwrap();
        assert!(hosts.readonly);
        assert_eq!(hosts.source, Source::Bind { path: "/etc/hosts".into(), recursive: false });
    }

    #[test]
    fn devices_are_created_before_dev_submounts() {
        let plan = plan(&spec(vec![]), &HostFiles::default());
        let pos = |pred: &dyn Fn(&Step) -> bool| plan.steps.iter().position(pred).unwrap();
        let dev = pos(&|s| matches!(s, Step::Mount(m) if m.target == "/dev"));
        let null = pos(&|s| matches!(s, Step::Device { path, major: 1, minor: 3, mode: 0o666 } if path == "/dev/null"));
        let ptmx = pos(&|s| matches!(s, Step::Symlink { path, target } if path == "/dev/ptmx" && target == "pts/ptmx"));
        let pts = pos(&|s| matches!(s, Step::Mount(m) if m.target == "/dev/pts"));
        assert!(dev < null && null < pts && ptmx < pts);
        let devices = plan.steps.iter().filter(|s| matches!(s, Step::Device { .. })).count();
        assert_eq!(devices, 6);
    }

    #[test]
    fn missing_host_files_are_not_mounted() {
        let plan = plan(&spec(vec![]), &HostFiles::default());
        assert!(!targets(&plan).iter().any(|t| t.starts_with("/etc")));
    }

    #[test]
    fn extra_mounts_come_last_with_their_options() {
        let mounts = vec![
            MountSpec { target: "/cache".into(), kind: MountSpecKind::Tmpfs { size: Some(1024), mode: 0o1777 } },
            MountSpec {
                target: "/src".into(),
                kind: MountSpecKind::Bind { source: "/host/src".into(), readonly: true },
            },
        ];
        let plan = plan(&spec(mounts), &HostFiles::default());
        let t = targets(&plan);
        assert_eq!(&t[t.len() - 2..], ["/cache", "/src"]);
        let Step::Mount(tmp) = &plan.steps[plan.steps.len() - 2] else { panic!() };
        assert_eq!(tmp.data.as_deref(), Some("mode=1777,size=1024"));
        let Step::Mount(src) = plan.steps.last().unwrap() else { panic!() };
        assert!(src.readonly);
        assert_eq!(src.source, Source::Bind { path: "/host/src".into(), recursive: true });
    }

    #[test]
    fn masks_and_readonly_paths_follow_runc() {
        let plan = plan(&spec(vec![]), &HostFiles::default());
        assert!(plan.after_pivot.contains(&PathRule::Mask("/proc/kcore".into())));
        assert!(plan.after_pivot.contains(&PathRule::ReadOnly("/proc/sys".into())));
        assert_eq!(plan.after_pivot.len(), MASKED_PATHS.len() + READONLY_PATHS.len());
    }

    #[test]
    fn sandboxed_mounts_are_nodev_insecure_ones_not() {
        let bind =
            MountSpec { target: "/b".into(), kind: MountSpecKind::Bind { source: "/h".into(), readonly: false } };
        let secret = MountSpec {
            target: "/run/secrets/s".into(),
            kind: MountSpecKind::Secret { data: SecretData(b"v".to_vec()), mode: 0o400, uid: 0, gid: 0 },
        };
        let host = HostFiles { loop_devices: vec!["/dev/loop0".into()], ..Default::default() };
        let find = |plan: &MountPlan, target: &str| {
            plan.steps
                .iter()
                .find_map(|s| match s {
                    Step::Mount(m) if m.target == target => Some(m.clone()),
                    _ => None,
                })
                .unwrap()
        };
        let sandboxed = plan(&spec(vec![bind.clone(), secret.clone()]), &host);
        assert!(find(&sandboxed, "/dev").flags.contains(MsFlags::MS_NODEV));
        assert!(find(&sandboxed, "/b").flags.contains(MsFlags::MS_NODEV));
        assert!(find(&sandboxed, "/sys").flags.contains(MsFlags::MS_RDONLY));
        let s = find(&sandboxed, "/run/secrets/s");
        assert!(s.readonly && s.flags.contains(NOSUID | NODEV | NOEXEC));
        assert!(!sandboxed.steps.iter().any(|s| matches!(s, Step::HostDevice { .. })));

        let mut insecure = spec(vec![bind, secret]);
        insecure.security = Security::Insecure;
        let insecure = plan(&insecure, &host);
        assert!(!find(&insecure, "/dev").flags.contains(MsFlags::MS_NODEV));
        assert!(!find(&insecure, "/b").flags.contains(MsFlags::MS_NODEV));
        assert!(!find(&insecure, "/sys").flags.contains(MsFlags::MS_RDONLY));
        assert!(insecure.after_pivot.is_empty(), "no masks");
        let host_devices: Vec<&str> = insecure
            .steps
            .iter()
            .filter_map(|s| match s {
                Step::HostDevice { path } => Some(path.as_str()),
                _ => None,
            })
            .collect();
        assert!(host_devices.contains(&"/dev/fuse") && host_devices.contains(&"/dev/loop0"), "{host_devices:?}");
    }

    #[test]
    fn stubs_are_resolv_hosts_and_mount_targets() {
        let mounts = vec![MountSpec { target: "/a/b".into(), kind: MountSpecKind::Tmpfs { size: None, mode: 0o755 } }];
        assert_eq!(stub_candidates(&spec(mounts)), ["/etc/resolv.conf", "/etc/hosts", "/a/b"]);
    }
}
