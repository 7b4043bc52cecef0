//! Every system call the runner makes that changes process or mount state, in one place.
//!
//! The rest of the crate decides *what* to do as plain data (`mounts.rs`, `overlay.rs`,
//! `users.rs`) and calls these thin wrappers to do it. Keeping them together means the few
//! `unsafe` blocks (fork, signal handlers, the loopback ioctl) can be audited at once, and every
//! wrapper turns the raw errno into an [`io::Error`] the callers give context to.
//!
//! Most wrappers sit on `nix`/`rustix`' safe functions; the `unsafe` ones say why they are sound.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{AtomicI32, Ordering};

use nix::errno::Errno;
use nix::libc;
use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::sys::stat::{Mode, SFlag};
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus};
use nix::unistd::{ForkResult, Gid, Pid, Uid};
use rustix::mount::{FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags};

fn io_err(e: Errno) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

// ---------------------------------------------------------------------------------------------
// Namespaces and mounts.

/// `unshare(2)` with the given namespace flags.
pub fn unshare(flags: CloneFlags) -> io::Result<()> {
    nix::sched::unshare(flags).map_err(io_err)
}

/// Makes every mount under `path` private (`mount --make-rprivate`), so mounts made from now on
/// do not propagate to the namespace this one was copied from, nor back.
pub fn make_rprivate(path: &Path) -> io::Result<()> {
    nix::mount::mount(None::<&str>, path, None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>)
        .map_err(io_err)
}

/// Classic `mount(2)`.
pub fn mount(source: &str, target: &Path, fstype: &str, flags: MsFlags, data: Option<&str>) -> io::Result<()> {
    nix::mount::mount(Some(source), target, Some(fstype), flags, data).map_err(io_err)
}

/// Bind-mounts `source` on `target` (recursively if asked).
pub fn bind(source: &Path, target: &Path, recursive: bool) -> io::Result<()> {
    let flags = if recursive { MsFlags::MS_BIND | MsFlags::MS_REC } else { MsFlags::MS_BIND };
    nix::mount::mount(Some(source), target, None::<&str>, flags, None::<&str>).map_err(io_err)
}

/// Remounts the bind mount at `target` with `flags` (`MS_RDONLY`, `MS_NOSUID`, ...) added to
/// the restrictions it already has. Keeping those matters in a user namespace: a mount that came
/// from a more privileged namespace has them locked, and a remount dropping one fails.
pub fn remount_bind(target: &Path, flags: MsFlags) -> io::Result<()> {
    use nix::sys::statvfs::FsFlags;
    let current = nix::sys::statvfs::statvfs(target).map_err(io_err)?.flags();
    let mut flags = flags | MsFlags::MS_BIND | MsFlags::MS_REMOUNT;
    for (st, ms) in [
        (FsFlags::ST_RDONLY, MsFlags::MS_RDONLY),
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if current.contains(st) {
            flags |= ms;
        }
    }
    nix::mount::mount(None::<&str>, target, None::<&str>, flags, None::<&str>).map_err(io_err)
}

/// `umount2(target, 0)`: fails with `EBUSY` while something uses the mount.
pub fn unmount(target: &Path) -> io::Result<()> {
    nix::mount::umount2(target, MntFlags::empty()).map_err(io_err)
}

/// `umount2(target, MNT_DETACH)`: detaches now, frees when the last user goes.
pub fn unmount_detach(target: &Path) -> io::Result<()> {
    nix::mount::umount2(target, MntFlags::MNT_DETACH).map_err(io_err)
}

/// An overlayfs superblock being configured through the new mount API (`fsopen`).
pub struct FsContext(OwnedFd);

impl FsContext {
    /// `fsopen(fstype, FSOPEN_CLOEXEC)`; `ENOSYS` on kernels before 5.2.
    pub fn open(fstype: &str) -> io::Result<FsContext> {
        Ok(FsContext(rustix::mount::fsopen(fstype, FsOpenFlags::FSOPEN_CLOEXEC)?))
    }

    /// `fsconfig(FSCONFIG_SET_STRING, key, value)`.
    pub fn set_string(&self, key: &str, value: &str) -> io::Result<()> {
        Ok(rustix::mount::fsconfig_set_string(&self.0, key, value)?)
    }

    /// `fsconfig(FSCONFIG_SET_FLAG, key)`.
    pub fn set_flag(&self, key: &str) -> io::Result<()> {
        Ok(rustix::mount::fsconfig_set_flag(&self.0, key)?)
    }

    /// `fsconfig(FSCONFIG_CMD_CREATE)` then `fsmount`: a detached mount of the new superblock.
    pub fn create_and_mount(&self, readonly: bool) -> io::Result<OwnedFd> {
        rustix::mount::fsconfig_create(&self.0)?;
        let attrs = if readonly { MountAttrFlags::MOUNT_ATTR_RDONLY } else { MountAttrFlags::empty() };
        Ok(rustix::mount::fsmount(&self.0, FsMountFlags::FSMOUNT_CLOEXEC, attrs)?)
    }

    /// The messages the kernel queued on the context ("e overlay: ..."), which explain an
    /// `EINVAL` far better than the errno does.
    pub fn messages(&self) -> String {
        let mut out = Vec::new();
        let mut buf = [0u8; 512];
        // Each read returns one message; ENODATA ends the queue.
        while let Ok(n) = rustix::io::read(&self.0, &mut buf) {
            if n == 0 {
                break;
            }
            out.push(String::from_utf8_lossy(&buf[..n]).trim_end().to_string());
        }
        out.join("; ")
    }
}

/// `move_mount(mnt, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH)`: attaches a detached mount.
pub fn attach_mount(mnt: &OwnedFd, target: &Path) -> io::Result<()> {
    Ok(rustix::mount::move_mount(mnt, "", rustix::fs::CWD, target, MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH)?)
}

/// `pivot_root(".", ".")` with the new root as the working directory, then detaches the old
/// root stacked on top of it. This avoids needing a directory for the old root inside the
/// rootfs (which would otherwise end up in the layer), as runc does.
pub fn pivot_root_here(new_root: &Path) -> io::Result<()> {
    nix::unistd::chdir(new_root).map_err(io_err)?;
    nix::unistd::pivot_root(".", ".").map_err(io_err)?;
    nix::mount::umount2(".", MntFlags::MNT_DETACH).map_err(io_err)?;
    nix::unistd::chdir("/").map_err(io_err)
}

/// `chdir(2)`.
pub fn chdir(path: &Path) -> io::Result<()> {
    nix::unistd::chdir(path).map_err(io_err)
}

/// `sethostname(2)` (in the sandbox's own UTS namespace).
pub fn set_hostname(name: &str) -> io::Result<()> {
    nix::unistd::sethostname(name).map_err(io_err)
}

/// Creates a character device node with exactly `mode` (the umask does not apply).
pub fn mknod_char(path: &Path, major: u64, minor: u64, mode: u32) -> io::Result<()> {
    let perm = Mode::from_bits_truncate(mode);
    nix::sys::stat::mknod(path, SFlag::S_IFCHR, perm, nix::sys::stat::makedev(major, minor)).map_err(io_err)?;
    nix::sys::stat::fchmodat(nix::fcntl::AT_FDCWD, path, perm, nix::sys::stat::FchmodatFlags::FollowSymlink)
        .map_err(io_err)
}

/// Sets the process umask, returning the previous one.
pub fn set_umask(mode: u32) -> u32 {
    nix::sys::stat::umask(Mode::from_bits_truncate(mode)).bits()
}

/// `lchown(2)`.
pub fn lchown(path: &Path, uid: u32, gid: u32) -> io::Result<()> {
    nix::unistd::fchownat(
        nix::fcntl::AT_FDCWD,
        path,
        Some(Uid::from_raw(uid)),
        Some(Gid::from_raw(gid)),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(io_err)
}

/// Brings the loopback interface of the current network namespace up (what `ip link set lo up`
/// does): a fresh network namespace starts with `lo` down.
pub fn loopback_up() -> io::Result<()> {
    // SAFETY: plain socket(2); the returned descriptor is immediately owned.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a fresh descriptor nothing else owns.
    let sock = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) };
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write `req`, a valid ifreq that outlives the call.
    unsafe {
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) < 0 {
            return Err(io::Error::last_os_error());
        }
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Processes.

/// What [`fork`] returned on this side.
pub enum Forked {
    Child,
    Parent(i32),
}

/// `fork(2)`.
///
/// # Safety
/// The calling process must be single-threaded (the sandbox helper is: it was just exec'd and
/// starts no threads), so the child may allocate and run arbitrary code.
pub unsafe fn fork() -> io::Result<Forked> {
    // SAFETY: upheld by the caller (single-threaded process).
    match unsafe { nix::unistd::fork() }.map_err(io_err)? {
        ForkResult::Child => Ok(Forked::Child),
        ForkResult::Parent { child } => Ok(Forked::Parent(child.as_raw())),
    }
}

/// Asks the kernel to send SIGKILL to this process when its parent (thread) dies.
pub fn kill_me_with_parent() -> io::Result<()> {
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(io_err)
}

/// `getppid(2)`.
pub fn parent_pid() -> i32 {
    nix::unistd::getppid().as_raw()
}

/// `setsid(2)`: the sandbox gets its own session, so a terminal's Ctrl-C reaches the builder
/// (which decides) rather than the sandboxed processes directly.
pub fn new_session() -> io::Result<()> {
    nix::unistd::setsid().map(drop).map_err(io_err)
}

/// `kill(pid, sig)`.
pub fn kill(pid: i32, sig: Signal) -> io::Result<()> {
    nix::sys::signal::kill(Pid::from_raw(pid), sig).map_err(io_err)
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

fn exit_of(status: WaitStatus) -> Option<Exit> {
    match status {
        WaitStatus::Exited(_, code) => Some(Exit::Code(code)),
        WaitStatus::Signaled(_, sig, _) => Some(Exit::Signal(sig as i32)),
        _ => None,
    }
}

/// Waits for `pid` to end and reaps it, retrying on `EINTR` (signal handlers run meanwhile).
pub fn wait_and_reap(pid: i32) -> io::Result<Exit> {
    loop {
        match nix::sys::wait::waitpid(Pid::from_raw(pid), None) {
            Ok(status) => {
                if let Some(exit) = exit_of(status) {
                    return Ok(exit);
                }
            }
            Err(Errno::EINTR) => {}
            Err(e) => return Err(io_err(e)),
        }
    }
}

/// Waits for `pid` to end *without* reaping it, so its pid cannot be reused while the caller
/// still might signal it.
pub fn wait_without_reaping(pid: i32) -> io::Result<()> {
    loop {
        match nix::sys::wait::waitid(Id::Pid(Pid::from_raw(pid)), WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT) {
            Ok(_) => return Ok(()),
            Err(Errno::EINTR) => {}
            Err(e) => return Err(io_err(e)),
        }
    }
}

/// `_exit(2)`: leaves without running destructors or flushing buffers shared with the parent
/// (what a forked child must do).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit(2) takes no pointers and never returns.
    unsafe { libc::_exit(code) }
}

/// The pid the helper's termination handler forwards SIGKILL to (0: none yet).
static FORWARD_TO: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward_kill(sig: libc::c_int) {
    let pid = FORWARD_TO.load(Ordering::SeqCst);
    if pid > 0 {
        // SAFETY: kill(2) is async-signal-safe.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    } else {
        // Nothing started yet: just go, as the default action would.
        // SAFETY: _exit(2) is async-signal-safe.
        unsafe { libc::_exit(128 + sig) };
    }
}

/// Installs SIGTERM/SIGINT/SIGHUP handlers that SIGKILL the process registered with
/// [`forward_kills_to`] (the sandbox's pid 1, whose death kills its whole pid namespace), so the
/// helper itself survives to reap it, clean up and report.
pub fn install_kill_forwarding() -> io::Result<()> {
    let action = SigAction::new(SigHandler::Handler(forward_kill), SaFlags::SA_RESTART, SigSet::empty());
    for sig in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        // SAFETY: the handler only calls async-signal-safe functions and reads an atomic.
        unsafe { nix::sys::signal::sigaction(sig, &action) }.map_err(io_err)?;
    }
    Ok(())
}

/// Sets the pid [`install_kill_forwarding`]'s handler kills.
pub fn forward_kills_to(pid: i32) {
    FORWARD_TO.store(pid, Ordering::SeqCst);
}

/// Restores default signal dispositions and an empty mask before `execve`: handlers would be
/// reset by exec anyway, but ignored signals (Rust ignores SIGPIPE) and the mask are inherited.
pub fn reset_signals_for_exec() -> io::Result<()> {
    let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    for sig in Signal::iterator() {
        if sig == Signal::SIGKILL || sig == Signal::SIGSTOP {
            continue;
        }
        // SAFETY: installing SIG_DFL has no handler code to be unsafe.
        unsafe { nix::sys::signal::sigaction(sig, &default) }.map_err(io_err)?;
    }
    nix::sys::signal::sigprocmask(nix::sys::signal::SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
        .map_err(io_err)
}

/// Switches to `uid`/`gid` with exactly `groups` as supplementary groups, in the order that
/// keeps the privilege to do each step (groups and gid while still root).
pub fn switch_user(uid: u32, gid: u32, groups: &[u32]) -> io::Result<()> {
    let groups: Vec<Gid> = groups.iter().map(|g| Gid::from_raw(*g)).collect();
    nix::unistd::setgroups(&groups).map_err(io_err)?;
    let gid = Gid::from_raw(gid);
    nix::unistd::setresgid(gid, gid, gid).map_err(io_err)?;
    let uid = Uid::from_raw(uid);
    nix::unistd::setresuid(uid, uid, uid).map_err(io_err)
}

/// Removes every capability not in `keep` (a bit mask of `CAP_*` numbers) from the bounding
/// set, so nothing the process execs can regain it. Needs `CAP_SETPCAP`: call before
/// [`switch_user`].
pub fn restrict_bounding_set(keep: u64) -> io::Result<()> {
    use rustix::thread::{CapabilitySet, capability_is_in_bounding_set, remove_capability_from_bounding_set};
    for cap in 0..64u32 {
        let one = CapabilitySet::from_bits_retain(1 << cap);
        match capability_is_in_bounding_set(one) {
            // Past the kernel's last capability.
            Err(rustix::io::Errno::INVAL) => break,
            Err(e) => return Err(e.into()),
            Ok(true) if keep & (1 << cap) == 0 => remove_capability_from_bounding_set(one)?,
            Ok(_) => {}
        }
    }
    Ok(())
}

/// Limits the effective and permitted sets to `keep` and clears the inheritable set (what runc
/// does with the spec's capability lists). After [`switch_user`] to a non-root user the
/// permitted set is already empty, and stays so.
pub fn restrict_capabilities(keep: u64) -> io::Result<()> {
    use rustix::thread::{CapabilitySet, CapabilitySets, capabilities, set_capabilities};
    let now = capabilities(None)?;
    let keep = CapabilitySet::from_bits_retain(keep);
    let sets = CapabilitySets {
        effective: now.permitted & keep,
        permitted: now.permitted & keep,
        inheritable: CapabilitySet::empty(),
    };
    Ok(set_capabilities(None, sets)?)
}

/// The capabilities this process may use (its permitted set), as a bit mask.
pub fn permitted_capabilities() -> io::Result<u64> {
    Ok(rustix::thread::capabilities(None)?.permitted.bits())
}

/// Gives the process exactly `keep` (a bit mask) as permitted and effective capabilities and
/// as ambient ones, which survive `execve` even for a non-root user (BuildKit's insecure mode
/// grants every capability that way). Call after [`switch_user`], which must have been
/// preceded by [`keep_capabilities`]`(true)`.
pub fn grant_ambient_capabilities(keep: u64) -> io::Result<()> {
    use rustix::thread::{CapabilitySet, CapabilitySets, configure_capability_in_ambient_set, set_capabilities};
    let all = CapabilitySet::from_bits_retain(keep);
    set_capabilities(None, CapabilitySets { effective: all, permitted: all, inheritable: all })?;
    for cap in 0..64u32 {
        if keep & (1 << cap) != 0 {
            configure_capability_in_ambient_set(CapabilitySet::from_bits_retain(1 << cap), true)?;
        }
    }
    rustix::thread::set_keep_capabilities(false)?;
    Ok(())
}

/// `prctl(PR_SET_KEEPCAPS)`: keep the permitted capabilities across a switch away from uid 0.
pub fn keep_capabilities(on: bool) -> io::Result<()> {
    Ok(rustix::thread::set_keep_capabilities(on)?)
}

/// Installs a seccomp BPF program on this thread (`seccomp(SECCOMP_SET_MODE_FILTER)`). Without
/// `no_new_privs` (which BuildKit does not set: setuid programs must work) this needs
/// `CAP_SYS_ADMIN`, so call it before dropping capabilities; every later syscall of the setup
/// (setgroups, setresuid, capset, close_range, execve) is one the filter allows.
pub fn install_seccomp_filter(prog: &[crate::seccomp::Insn]) -> io::Result<()> {
    let mut filter: Vec<libc::sock_filter> =
        prog.iter().map(|i| libc::sock_filter { code: i.code, jt: i.jt, jf: i.jf, k: i.k }).collect();
    let len = u16::try_from(filter.len()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let fprog = libc::sock_fprog { len, filter: filter.as_mut_ptr() };
    // SAFETY: `fprog` points at `filter`, which outlives the call; the kernel copies the program.
    let rc = unsafe {
        libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, 0, &fprog as *const libc::sock_fprog)
    };
    if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// `execve(2)`; returns only on failure.
pub fn execve(path: &CStr, args: &[CString], env: &[CString]) -> io::Error {
    match nix::unistd::execve(path, args, env) {
        Err(e) => io_err(e),
        Ok(never) => match never {},
    }
}

/// `access(path, X_OK)` as the current (still privileged) credentials see it is not what the
/// process will see, so executability is judged from the mode bits instead, as Go's
/// `exec.LookPath` does: a regular file with any execute bit.
pub fn is_executable_file(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
}

// ---------------------------------------------------------------------------------------------
// User namespaces (rootless).

/// True if this process is not in the initial user namespace (whose `uid_map` maps all ids
/// to themselves).
pub fn in_user_namespace() -> bool {
    match std::fs::read_to_string("/proc/self/uid_map") {
        Ok(map) => map.split_whitespace().collect::<Vec<_>>() != ["0", "0", "4294967295"],
        Err(_) => false,
    }
}

/// The login name of `uid`, from the password database.
pub fn user_name(uid: u32) -> Option<String> {
    nix::unistd::User::from_uid(Uid::from_raw(uid)).ok().flatten().map(|u| u.name)
}

/// The signal [`forward_signals_to`]'s handler passes on goes to this pid.
static SIGNAL_TARGET: AtomicI32 = AtomicI32::new(0);

extern "C" fn pass_signal_on(sig: libc::c_int) {
    let pid = SIGNAL_TARGET.load(Ordering::SeqCst);
    if pid > 0 {
        // SAFETY: kill(2) is async-signal-safe.
        unsafe { libc::kill(pid, sig) };
    }
}

/// Passes SIGINT, SIGTERM and SIGHUP received by this process on to `pid` (the rootless child,
/// which decides what they mean), instead of dying of them.
pub fn forward_signals_to(pid: i32) -> io::Result<()> {
    SIGNAL_TARGET.store(pid, Ordering::SeqCst);
    let action = SigAction::new(SigHandler::Handler(pass_signal_on), SaFlags::SA_RESTART, SigSet::empty());
    for sig in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        // SAFETY: the handler only reads an atomic and calls kill(2).
        unsafe { nix::sys::signal::sigaction(sig, &action) }.map_err(io_err)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// File descriptors.

/// Takes ownership of an inherited descriptor number.
pub fn own_fd(fd: i32) -> OwnedFd {
    // SAFETY: the caller names a descriptor it inherited and nothing else owns.
    unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) }
}

/// Clears `FD_CLOEXEC`, so the descriptor survives `execve` (between fork and exec).
pub fn clear_cloexec(fd: i32) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor number only changes its flags; async-signal-safe.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

/// Writes all of `data` to `fd`.
pub fn write_all(fd: &OwnedFd, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        match rustix::io::write(fd, data) {
            Ok(n) => data = &data[n..],
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Marks every descriptor from 3 up close-on-exec, so the process inherits only stdio — not
/// what the builder itself inherited without `O_CLOEXEC` (runc does the same before exec).
pub fn cloexec_from_3() -> io::Result<()> {
    // SAFETY: close_range(2) with CLOSE_RANGE_CLOEXEC only changes descriptor flags.
    let rc = unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, libc::CLOSE_RANGE_CLOEXEC) };
    if rc == 0 {
        return Ok(());
    }
    // Kernels before 5.11: walk the descriptor table instead.
    let fds: Vec<i32> = std::fs::read_dir("/proc/self/fd")?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|fd| *fd >= 3)
        .collect();
    for fd in fds {
        // SAFETY: F_SETFD on a number that may or may not still be open only changes flags.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    Ok(())
}

/// Duplicates `fd` to a new close-on-exec descriptor.
pub fn dup_cloexec(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    Ok(rustix::io::fcntl_dupfd_cloexec(fd, 3)?)
}

/// Replaces the standard input with `fd`.
pub fn replace_stdin(fd: impl AsFd) -> io::Result<()> {
    nix::unistd::dup2_stdin(fd).map_err(io_err)
}

/// A close-on-exec pipe: (read end, write end).
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io_err)
}

/// True when the write end of the pipe `read_end` belongs to is closed everywhere.
pub fn pipe_writer_gone(read_end: BorrowedFd<'_>) -> bool {
    use nix::poll::{PollFd, PollFlags, PollTimeout};
    let mut fds = [PollFd::new(read_end, PollFlags::POLLIN)];
    match nix::poll::poll(&mut fds, PollTimeout::ZERO) {
        Ok(n) if n > 0 => fds[0].revents().is_some_and(|r| r.contains(PollFlags::POLLHUP)),
        _ => false,
    }
}

/// What [`poll_readable`] saw on one descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ready {
    Nothing,
    /// Data to read, or end of file / error (a read tells which).
    Readable,
}

/// Blocks until at least one of `fds` is readable or closed, retrying on `EINTR`.
pub fn poll_readable(fds: &[BorrowedFd<'_>]) -> io::Result<Vec<Ready>> {
    use nix::poll::{PollFd, PollFlags, PollTimeout};
    let mut pfds: Vec<PollFd<'_>> = fds.iter().map(|fd| PollFd::new(*fd, PollFlags::POLLIN)).collect();
    loop {
        match nix::poll::poll(&mut pfds, PollTimeout::NONE) {
            Ok(_) => break,
            Err(Errno::EINTR) => {}
            Err(e) => return Err(io_err(e)),
        }
    }
    Ok(pfds
        .iter()
        .map(|p| match p.revents() {
            Some(r) if !r.is_empty() => Ready::Readable,
            _ => Ready::Nothing,
        })
        .collect())
}

/// `read(2)` retrying on `EINTR`.
pub fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match rustix::io::read(fd, &mut *buf) {
            Ok(n) => return Ok(n),
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Confined file operations on a directory tree the sandboxed process could have changed.

/// Opens the directory `name` inside `dir` without following a symlink.
pub fn open_dir_nofollow(dir: BorrowedFd<'_>, name: &str) -> io::Result<OwnedFd> {
    use rustix::fs::{Mode as RMode, OFlags};
    Ok(rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        RMode::empty(),
    )?)
}

/// Opens a directory by path.
pub fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    use rustix::fs::{Mode as RMode, OFlags};
    Ok(rustix::fs::open(path, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, RMode::empty())?)
}

/// What [`stat_nofollow`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryStat {
    pub is_dir: bool,
    pub is_file: bool,
    pub size: u64,
    pub atime: (i64, i64),
    pub mtime: (i64, i64),
}

fn entry_stat(st: rustix::fs::Stat) -> EntryStat {
    let kind = rustix::fs::FileType::from_raw_mode(st.st_mode);
    EntryStat {
        is_dir: kind == rustix::fs::FileType::Directory,
        is_file: kind == rustix::fs::FileType::RegularFile,
        size: st.st_size as u64,
        atime: (st.st_atime, st.st_atime_nsec as i64),
        mtime: (st.st_mtime, st.st_mtime_nsec as i64),
    }
}

/// `fstatat(dir, name, AT_SYMLINK_NOFOLLOW)`.
pub fn stat_nofollow(dir: BorrowedFd<'_>, name: &str) -> io::Result<EntryStat> {
    Ok(entry_stat(rustix::fs::statat(dir, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW)?))
}

/// `fstat(fd)`.
pub fn fstat(fd: BorrowedFd<'_>) -> io::Result<EntryStat> {
    Ok(entry_stat(rustix::fs::fstat(fd)?))
}

/// Removes the entry `name` in `dir` (a directory must be empty).
pub fn remove_at(dir: BorrowedFd<'_>, name: &str, is_dir: bool) -> io::Result<()> {
    let flags = if is_dir { rustix::fs::AtFlags::REMOVEDIR } else { rustix::fs::AtFlags::empty() };
    Ok(rustix::fs::unlinkat(dir, name, flags)?)
}

/// True if the directory open as `dir` has no entries.
pub fn dir_is_empty(dir: BorrowedFd<'_>) -> io::Result<bool> {
    let mut d = rustix::fs::Dir::read_from(dir)?;
    while let Some(entry) = d.read() {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Sets the access and modification times of the directory open as `dir`.
pub fn set_times(dir: BorrowedFd<'_>, atime: (i64, i64), mtime: (i64, i64)) -> io::Result<()> {
    use rustix::fs::{Timespec, Timestamps};
    let times = Timestamps {
        last_access: Timespec { tv_sec: atime.0, tv_nsec: atime.1 as _ },
        last_modification: Timespec { tv_sec: mtime.0, tv_nsec: mtime.1 as _ },
    };
    Ok(rustix::fs::futimens(dir, &times)?)
}
