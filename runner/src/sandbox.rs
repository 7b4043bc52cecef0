//! The sandbox side: the re-executed helper and the sandbox's pid 1, as runc does it for
//! BuildKit `RUN` steps.
//!
//! **Helper** (`/proc/self/exe __sandbox <parent-pid>`, single-threaded, started by `launch.rs`):
//! 1. dies with its parent (`PR_SET_PDEATHSIG`), reads the [`HelperRequest`], starts a session;
//! 2. `unshare`s mount, pid, UTS and IPC namespaces (and network for [`Network::None`], where it
//!    brings `lo` up), makes `/` rprivate so no mount propagates to the host, sets the hostname;
//! 3. mounts the rootfs overlay on `scratch/root` (`nodev` unless insecure, see `mounts.rs`),
//!    a device tmpfs on `scratch/devices`, and records the mount stubs (`stubs.rs`);
//! 4. forks pid 1 of the new pid namespace, waits for it (forwarding SIGTERM/SIGINT as SIGKILL),
//!    removes the stubs through the still-mounted overlay, and reports the exit status.
//!
//! **Pid 1** (the fork): dies with the helper; takes its own mount namespace (so `pivot_root`
//! leaves the helper's view alone); carries out the mount plan (`mounts.rs`) inside the rootfs;
//! `pivot_root(".", ".")` and detaches the old root; applies masks; resolves the user in the new
//! root (`users.rs`); creates the working directory (0755, owned by that user, as BuildKit's
//! executor does) and enters it; sets umask 022; narrows the bounding set to Docker's default
//! capabilities, installs Docker's seccomp profile (`seccomp.rs`) while `CAP_SYS_ADMIN` is still
//! effective (there is no `no_new_privs`, so setuid programs work, as in BuildKit), then sets
//! groups, gid, uid and the remaining capabilities (with `--security=insecure`: no filter, and
//! every capability kept, as ambient ones for a non-root user); builds the environment
//! (exactly `spec.process.env`, plus `PATH` and `HOME` when absent); looks `args[0]` up in that
//! `PATH`; and `execve`s. The process thus *is* pid 1: when it exits, the kernel kills whatever
//! it left running in the namespace.
//!
//! Setup errors go to the report socket; exec errors go to the process's stderr with Docker's
//! exit codes (127 not found, 126 not executable), since from the user's view the command ran
//! and failed.

use std::ffi::{CString, OsStr};
use std::io::{Read as _, Write as _};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use nix::mount::MsFlags;
use nix::sched::CloneFlags;

use crate::launch::{ExitStatus, SANDBOX_ARG};
use crate::mounts::{self, HostFiles, PathRule, Source, Step};
use crate::overlay::{MountMethod, OverlayOptions};
use crate::protocol::{HelperRequest, Report};
use crate::rootpath::resolve_in_root;
use crate::seccomp;
use crate::spec::{Network, Security};
use crate::stubs;
use crate::sys;
use crate::users;

/// The capabilities a `RUN` step keeps (Docker's default set, which BuildKit uses): chown,
/// dac_override, fowner, fsetid, kill, setgid, setuid, setpcap, net_bind_service, net_raw,
/// sys_chroot, mknod, audit_write, setfcap. Notably no `CAP_SYS_ADMIN`: no mounting inside.
pub const DEFAULT_CAPABILITIES: [u32; 14] = [0, 1, 3, 4, 5, 6, 7, 8, 10, 13, 18, 27, 29, 31];

/// [`DEFAULT_CAPABILITIES`] as a bit mask.
pub fn default_capability_mask() -> u64 {
    DEFAULT_CAPABILITIES.iter().fold(0, |mask, cap| mask | 1 << cap)
}

/// `PATH` when the spec's environment has none (runc's and BuildKit's default).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Call first thing in `main()`, before any thread exists: if this process was started as the
/// sandbox helper (`argv[1] == "__sandbox"`), run the sandbox and exit; otherwise return.
pub fn maybe_run_sandbox() {
    let mut args = std::env::args_os().skip(1);
    if args.next().as_deref() != Some(OsStr::new(SANDBOX_ARG)) {
        return;
    }
    let expected_parent = args.next().and_then(|a| a.to_str().and_then(|s| s.parse::<i32>().ok()));
    std::process::exit(helper_main(expected_parent));
}

/// Writes reports to the parent.
struct Reporter(UnixStream);

impl Reporter {
    fn send(&mut self, report: &Report) {
        // If the parent is gone there is nobody to tell.
        let _ = self.0.write_all(&report.to_line());
    }
}

fn helper_main(expected_parent: Option<i32>) -> i32 {
    // The parent may already be gone (then nobody would kill us later): check after arming.
    if sys::kill_me_with_parent().is_err() || expected_parent != Some(sys::parent_pid()) {
        return 1;
    }
    // The control socket arrives as stdin; keep it on a close-on-exec descriptor instead, so the
    // sandboxed process never inherits it, and give stdin to /dev/null.
    let control = match sys::dup_cloexec(std::io::stdin().as_fd()) {
        Ok(fd) => UnixStream::from(fd),
        Err(_) => return 1,
    };
    let mut reporter = match control.try_clone() {
        Ok(c) => Reporter(c),
        Err(_) => return 1,
    };
    let request = match read_request(control) {
        Ok(r) => r,
        Err(msg) => {
            reporter.send(&Report::Error(msg));
            return 1;
        }
    };
    match helper(&request, &mut reporter) {
        Ok(status) => {
            reporter.send(&Report::Exit(status));
            0
        }
        Err(msg) => {
            reporter.send(&Report::Error(msg));
            1
        }
    }
}

fn read_request(mut control: UnixStream) -> Result<HelperRequest, String> {
    let mut bytes = Vec::new();
    control.read_to_end(&mut bytes).map_err(|e| format!("reading the sandbox request: {e}"))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("malformed sandbox request: {e}"))
}

fn ctx(what: impl FnOnce() -> String) -> impl FnOnce(std::io::Error) -> String {
    move |e| format!("{}: {e}", what())
}

fn helper(request: &HelperRequest, reporter: &mut Reporter) -> Result<ExitStatus, String> {
    let spec = &request.spec;
    sys::new_session().map_err(ctx(|| "setsid".into()))?;
    let devnull = std::fs::File::open("/dev/null").map_err(ctx(|| "opening /dev/null".into()))?;
    sys::replace_stdin(&devnull).map_err(ctx(|| "redirecting stdin".into()))?;
    drop(devnull);
    sys::install_kill_forwarding().map_err(ctx(|| "installing signal handlers".into()))?;

    let mut flags =
        CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWIPC;
    if spec.network == Network::None {
        flags |= CloneFlags::CLONE_NEWNET;
    }
    sys::unshare(flags).map_err(ctx(|| "unshare (mount, pid, uts, ipc, net namespaces)".into()))?;
    sys::make_rprivate(Path::new("/")).map_err(ctx(|| "making / rprivate".into()))?;
    if spec.network == Network::None {
        sys::loopback_up().map_err(ctx(|| "bringing up lo".into()))?;
    }
    sys::set_hostname(&spec.hostname).map_err(ctx(|| format!("setting hostname {:?}", spec.hostname)))?;

    // Everything the sandbox needs on the host side lives on a tmpfs private to this mount
    // namespace: nothing is left in the host's scratch directory, whatever way we die.
    sys::mount("tmpfs", &request.scratch, "tmpfs", MsFlags::MS_NOSUID | MsFlags::MS_NODEV, Some("mode=700"))
        .map_err(ctx(|| format!("mounting a tmpfs on {}", request.scratch.display())))?;
    for dir in ["root", "empty", "mnt", "devices", "secrets"] {
        std::fs::create_dir(request.scratch.join(dir)).map_err(ctx(|| format!("creating scratch {dir}")))?;
    }
    let root = request.scratch.join("root");
    let upper = Some((spec.rootfs.upper.clone(), spec.rootfs.work.clone()));
    OverlayOptions::new(&spec.rootfs.lower, upper, &request.scratch.join("empty"))
        .mount(&root, MountMethod::Auto)
        .map_err(|e| format!("mounting the rootfs: {e}"))?;
    if spec.security == Security::Sandbox {
        // Device nodes in the rootfs cannot be opened (see `mounts.rs`).
        sys::remount_bind(&root, MsFlags::MS_NODEV).map_err(ctx(|| "making the rootfs nodev".into()))?;
    }
    // The standard device nodes are made here and bound into /dev; this tmpfs is the one place
    // without `nodev`, and it is not reachable from inside once the old root is detached.
    let devices = request.scratch.join("devices");
    // Flags as BuildKit's /dev tmpfs (`rw,nosuid`): the bound nodes, and the masks made from
    // /dev/null, show them in mountinfo.
    sys::mount("tmpfs", &devices, "tmpfs", MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME, Some("mode=755"))
        .map_err(ctx(|| "mounting the device tmpfs".into()))?;
    let stub_paths = stubs::find_missing(&root, &mounts::stub_candidates(spec));

    let (alive_r, alive_w) = sys::pipe().map_err(ctx(|| "pipe".into()))?;
    // SAFETY: the helper is single-threaded (it was just exec'd and starts no threads).
    match unsafe { sys::fork() }.map_err(ctx(|| "fork".into()))? {
        sys::Forked::Child => {
            drop(alive_w);
            pid1(request, &root, alive_r, reporter)
        }
        sys::Forked::Parent(pid) => {
            sys::forward_kills_to(pid);
            drop(alive_r);
            let exit = sys::wait_and_reap(pid).map_err(ctx(|| "waiting for the sandbox".into()))?;
            drop(alive_w);
            for warning in stubs::remove_empty(&root, &stub_paths) {
                reporter.send(&Report::Warning(warning));
            }
            Ok(match exit {
                sys::Exit::Code(c) => ExitStatus::Code(c),
                sys::Exit::Signal(s) => ExitStatus::Signal(s),
            })
        }
    }
}

/// Pid 1 of the sandbox: set up, then become the process. Never returns.
fn pid1(request: &HelperRequest, root: &Path, alive: OwnedFd, reporter: &mut Reporter) -> ! {
    // The helper could have died between fork and arming the death signal: then the pipe's
    // only writer is gone.
    if sys::kill_me_with_parent().is_err() || sys::pipe_writer_gone(alive.as_fd()) {
        sys::exit_now(1);
    }
    drop(alive);
    match setup(request, root) {
        Ok(ready) => {
            let (code, message) = ready.exec();
            let mut stderr = std::io::stderr();
            let _ = stderr.write_all(format!("strata: {message}\n").as_bytes());
            sys::exit_now(code)
        }
        Err(msg) => {
            reporter.send(&Report::Error(msg));
            sys::exit_now(1)
        }
    }
}

/// A process ready to `execve`.
struct Ready {
    path: CString,
    args: Vec<CString>,
    env: Vec<CString>,
    /// For messages: `args[0]` as given.
    name: String,
}

impl Ready {
    /// Execs; on failure returns Docker's exit code and a message.
    fn exec(self) -> (i32, String) {
        let err = sys::execve(&self.path, &self.args, &self.env);
        match err.raw_os_error() {
            Some(nix::libc::ENOENT) => (127, format!("exec: {:?}: no such file or directory", self.name)),
            Some(nix::libc::EACCES) => (126, format!("exec: {:?}: permission denied", self.name)),
            _ => (126, format!("exec: {:?}: {err}", self.name)),
        }
    }
}

fn setup(request: &HelperRequest, root: &Path) -> Result<Ready, String> {
    let spec = &request.spec;
    // Compiled before anything changes, so a profile problem is a clean setup error.
    let filter = match spec.security {
        Security::Sandbox => Some(seccomp::default_filter(default_capability_mask()).map_err(|e| e.to_string())?),
        Security::Insecure => None,
    };
    sys::reset_signals_for_exec().map_err(ctx(|| "resetting signals".into()))?;
    sys::set_umask(0o022);
    // Our own mount namespace: pivot_root below must not move the helper's root too.
    sys::unshare(CloneFlags::CLONE_NEWNS).map_err(ctx(|| "unshare(CLONE_NEWNS)".into()))?;
    sys::make_rprivate(Path::new("/")).map_err(ctx(|| "making / rprivate".into()))?;

    // BuildKit gives RUN steps its own /etc/hosts naming the sandbox's hostname, not the
    // host's file; resolv.conf is the host's.
    let hosts = request.scratch.join("hosts");
    std::fs::write(&hosts, mounts::hosts_file(&spec.hostname)).map_err(ctx(|| "writing the hosts file".into()))?;
    let plan = mounts::plan(spec, &HostFiles { hosts: Some(hosts), ..HostFiles::from_host() });
    for (i, step) in plan.steps.iter().enumerate() {
        apply_step(root, step, &request.scratch, i)?;
    }
    sys::pivot_root_here(root).map_err(ctx(|| "pivot_root".into()))?;
    for rule in &plan.after_pivot {
        apply_rule(rule)?;
    }

    let user = users::resolve(Path::new("/"), &spec.process.user).map_err(|e| e.to_string())?;
    let cwd = PathBuf::from(&spec.process.cwd);
    create_workdir(&cwd, user.uid, user.gid)?;
    sys::chdir(&cwd).map_err(ctx(|| format!("changing to working directory {}", cwd.display())))?;

    let env = final_env(&spec.process.env, &user.home);
    let name = spec.process.args.first().cloned().ok_or("no command to run")?;
    let path = match lookup(&name, &env) {
        Some(p) => p,
        None => {
            // Reported like runc's exec.LookPath error, with the code Docker gives it.
            let _ = std::io::stderr()
                .write_all(format!("strata: exec: {name:?}: executable file not found in $PATH\n").as_bytes());
            sys::exit_now(127);
        }
    };
    let cstring = |s: &[u8], what: &str| CString::new(s).map_err(|_| format!("{what} contains a NUL byte"));
    let args = spec.process.args.iter().map(|a| cstring(a.as_bytes(), "an argument")).collect::<Result<_, _>>()?;
    let env = env.iter().map(|e| cstring(e.as_bytes(), "an environment entry")).collect::<Result<_, _>>()?;
    let path = cstring(path.as_os_str().as_bytes(), "the command path")?;

    let switch = || {
        sys::switch_user(user.uid, user.gid, &user.additional_gids)
            .map_err(ctx(|| format!("switching to uid {} gid {}", user.uid, user.gid)))
    };
    match &filter {
        Some(filter) => {
            let caps = default_capability_mask();
            sys::restrict_bounding_set(caps).map_err(ctx(|| "dropping capabilities".into()))?;
            // While CAP_SYS_ADMIN is still effective (runc's order without no_new_privs).
            sys::install_seccomp_filter(filter).map_err(ctx(|| "installing the seccomp filter".into()))?;
            switch()?;
            sys::restrict_capabilities(caps).map_err(ctx(|| "dropping capabilities".into()))?;
        }
        None => {
            let caps = sys::permitted_capabilities().map_err(ctx(|| "reading capabilities".into()))?;
            sys::keep_capabilities(true).map_err(ctx(|| "keeping capabilities".into()))?;
            switch()?;
            sys::grant_ambient_capabilities(caps).map_err(ctx(|| "granting capabilities".into()))?;
        }
    }
    sys::cloexec_from_3().map_err(ctx(|| "closing inherited descriptors".into()))?;
    Ok(Ready { path, args, env, name })
}

/// Carries out plan step number `i` inside `root` (before `pivot_root`), using the helper's
/// scratch tmpfs (`mnt/i` to stage overlays, `empty/`, `devices/`, `secrets/`).
fn apply_step(root: &Path, step: &Step, scratch: &Path, i: usize) -> Result<(), String> {
    let stage = &scratch.join("mnt").join(i.to_string());
    let empty = &scratch.join("empty");
    match step {
        Step::Mount(m) => {
            let target = resolve_in_root(root, Path::new(&m.target))
                .map_err(ctx(|| format!("resolving mount point {}", m.target)))?;
            let what = || format!("mounting {}", m.target);
            match &m.source {
                Source::Fs { fstype } => {
                    make_dir(&target)?;
                    match sys::mount(fstype, &target, fstype, m.flags, m.data.as_deref()) {
                        // Rootless without a network namespace of our own, sysfs cannot be
                        // mounted: bind the host's, read-only (what rootless runc does).
                        Err(e) if *fstype == "sysfs" && e.raw_os_error() == Some(nix::libc::EPERM) => {
                            sys::bind(Path::new("/sys"), &target, true).map_err(ctx(what))?;
                            sys::remount_bind(&target, m.flags).map_err(ctx(what))?;
                        }
                        // An unprivileged container with a masked /proc (Docker's and
                        // Kubernetes' default): say what to change.
                        Err(e) if *fstype == "proc" && e.raw_os_error() == Some(nix::libc::EPERM) => {
                            return Err(format!(
                                "{}: {e} (the container's /proc has masked paths: run it with an unmasked /proc \
                                 — docker --security-opt systempaths=unconfined, Kubernetes procMount: Unmasked — \
                                 or set {}=1 to share its /proc; see docs/running-in-containers.md)",
                                what(),
                                mounts::NO_PROCESS_SANDBOX_ENV
                            ));
                        }
                        other => other.map_err(ctx(what))?,
                    }
                }
                Source::Bind { path, recursive } => {
                    make_mount_point(&target, path.is_dir())?;
                    sys::bind(path, &target, *recursive).map_err(ctx(what))?;
                }
                Source::Overlay { rootfs, subpath } => {
                    make_dir(stage)?;
                    let upper = Some((rootfs.upper.clone(), rootfs.work.clone()));
                    OverlayOptions::new(&rootfs.lower, upper, empty)
                        .mount(stage, MountMethod::Auto)
                        .map_err(|e| format!("{}: {e}", what()))?;
                    let source = resolve_in_root(stage, Path::new(subpath))
                        .map_err(ctx(|| format!("resolving {subpath} in the mount for {}", m.target)))?;
                    make_mount_point(&target, source.is_dir())?;
                    sys::bind(&source, &target, true).map_err(ctx(what))?;
                }
                Source::Secret { data, mode, uid, gid } => {
                    let file = scratch.join("secrets").join(i.to_string());
                    write_private_file(&file, &data.0, *mode, *uid, *gid)
                        .map_err(ctx(|| format!("writing the secret for {}", m.target)))?;
                    make_mount_point(&target, false)?;
                    sys::bind(&file, &target, false).map_err(ctx(what))?;
                }
            }
            let is_bind = !matches!(m.source, Source::Fs { .. });
            if is_bind && (m.readonly || !m.flags.is_empty()) {
                let flags = if m.readonly { m.flags | MsFlags::MS_RDONLY } else { m.flags };
                sys::remount_bind(&target, flags).map_err(ctx(|| format!("remounting {}", m.target)))?;
            }
            Ok(())
        }
        Step::Device { path, major, minor, mode } => {
            let node = scratch.join("devices").join(i.to_string());
            // Without CAP_MKNOD (a user namespace), the host's own node serves, as rootless runc
            // does it.
            let source = match sys::mknod_char(&node, *major, *minor, *mode) {
                Ok(()) => node,
                Err(e) if e.raw_os_error() == Some(nix::libc::EPERM) => PathBuf::from(path),
                Err(e) => return Err(format!("creating device {path}: {e}")),
            };
            let target = root.join(path.trim_start_matches('/'));
            make_mount_point(&target, false)?;
            sys::bind(&source, &target, false).map_err(ctx(|| format!("binding device {path}")))
        }
        Step::HostDevice { path } => {
            let source = Path::new(path);
            if std::fs::symlink_metadata(source).is_err() {
                return Ok(());
            }
            let target = root.join(path.trim_start_matches('/'));
            make_mount_point(&target, false)?;
            sys::bind(source, &target, false).map_err(ctx(|| format!("binding host device {path}")))
        }
        Step::Symlink { path, target } => {
            symlink(target, root.join(path.trim_start_matches('/'))).map_err(ctx(|| format!("creating {path}")))
        }
    }
}

fn make_dir(path: &Path) -> Result<(), String> {
    std::fs::create_dir_all(path).map_err(ctx(|| format!("creating mount point {}", path.display())))
}

fn make_mount_point(path: &Path, dir: bool) -> Result<(), String> {
    if dir {
        return make_dir(path);
    }
    if let Some(parent) = path.parent() {
        make_dir(parent)?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(_) => Ok(()),
        Err(_) => {
            std::fs::File::create(path).map(drop).map_err(ctx(|| format!("creating mount point {}", path.display())))
        }
    }
}

/// Creates `path` (new, not following a symlink) holding `data`, with exactly `mode` and owner.
fn write_private_file(path: &Path, data: &[u8], mode: u32, uid: u32, gid: u32) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)?;
    file.write_all(data)?;
    sys::lchown(path, uid, gid)?;
    file.set_permissions(std::fs::Permissions::from_mode(mode & 0o7777))
}

/// Applies a mask or read-only rule after `pivot_root`, if the path exists.
fn apply_rule(rule: &PathRule) -> Result<(), String> {
    match rule {
        PathRule::Mask(path) => {
            let p = Path::new(path);
            let Ok(meta) = std::fs::symlink_metadata(p) else { return Ok(()) };
            let what = ctx(|| format!("masking {path}"));
            if meta.is_dir() {
                sys::mount("tmpfs", p, "tmpfs", MsFlags::MS_RDONLY, None).map_err(what)
            } else {
                sys::bind(Path::new("/dev/null"), p, false).map_err(what)
            }
        }
        PathRule::ReadOnly(path) => {
            let p = Path::new(path);
            if std::fs::symlink_metadata(p).is_err() {
                return Ok(());
            }
            sys::bind(p, p, true).map_err(ctx(|| format!("binding {path}")))?;
            let flags = MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
            sys::remount_bind(p, flags).map_err(ctx(|| format!("making {path} read-only")))
        }
    }
}

/// Creates the missing directories of `cwd` (mode 0755 through umask 022, owned by the user).
fn create_workdir(cwd: &Path, uid: u32, gid: u32) -> Result<(), String> {
    if cwd.is_dir() {
        return Ok(());
    }
    let mut path = PathBuf::from("/");
    for part in cwd.components().skip(1) {
        path.push(part);
        if path.exists() {
            continue;
        }
        std::fs::create_dir(&path).map_err(ctx(|| format!("creating working directory {}", path.display())))?;
        sys::lchown(&path, uid, gid).map_err(ctx(|| format!("chown of working directory {}", path.display())))?;
    }
    Ok(())
}

/// The process's environment: exactly `env`, plus `PATH` and `HOME` when absent.
pub fn final_env(env: &[String], home: &str) -> Vec<String> {
    let has = |key: &str| env.iter().any(|e| e.split_once('=').map_or(e == key, |(k, _)| k == key));
    let mut out = env.to_vec();
    if !has("PATH") {
        out.push(format!("PATH={DEFAULT_PATH}"));
    }
    if !has("HOME") {
        out.push(format!("HOME={home}"));
    }
    out
}

/// Finds `name` as Go's `exec.LookPath` does with the process's `PATH`: a name with a `/` is
/// used as is; otherwise the first executable regular file in a `PATH` entry (empty entry: `.`).
pub fn lookup(name: &str, env: &[String]) -> Option<PathBuf> {
    if name.contains('/') {
        return Some(PathBuf::from(name));
    }
    let path = env.iter().rev().find_map(|e| e.strip_prefix("PATH=")).unwrap_or("");
    path.split(':')
        .map(|dir| Path::new(if dir.is_empty() { "." } else { dir }).join(name))
        .find(|p| sys::is_executable_file(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_gets_path_and_home_only_when_absent() {
        let env = vec!["A=1".to_string()];
        assert_eq!(final_env(&env, "/root"), ["A=1", &format!("PATH={DEFAULT_PATH}"), "HOME=/root"]);
        let env = vec!["PATH=/x".to_string(), "HOME=/h".to_string()];
        assert_eq!(final_env(&env, "/root"), ["PATH=/x", "HOME=/h"]);
        // A key without `=` counts as present (and is passed through untouched).
        let env = vec!["HOME".to_string()];
        assert_eq!(final_env(&env, "/root"), ["HOME", &format!("PATH={DEFAULT_PATH}")]);
    }

    #[test]
    fn capabilities_are_dockers_defaults() {
        // CapEff of a root RUN step under BuildKit 0.13.
        assert_eq!(default_capability_mask(), 0xa80425fb);
    }

    #[test]
    fn lookup_follows_path_order_and_skips_non_executables() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        std::fs::write(a.join("tool"), "").unwrap();
        std::fs::set_permissions(a.join("tool"), std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::write(b.join("tool"), "").unwrap();
        std::fs::set_permissions(b.join("tool"), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::create_dir_all(a.join("dir")).unwrap();
        let env = vec![format!("PATH={}:{}", a.display(), b.display())];
        assert_eq!(lookup("tool", &env), Some(b.join("tool")));
        assert_eq!(lookup("dir", &env), None);
        assert_eq!(lookup("missing", &env), None);
        assert_eq!(lookup("./rel/x", &env), Some(PathBuf::from("./rel/x")));
    }
}
