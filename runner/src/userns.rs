//! Rootless: a non-root user's strata runs inside a user namespace where it is root.
//!
//! As rootless Podman and rootless BuildKit (rootlesskit) do: the user's own uid and gid become
//! 0 inside, and the subordinate ranges `/etc/subuid` and `/etc/subgid` grant the user (Debian
//! package `uidmap`, which `useradd` fills for new users) become 1..=N, so files of every owner
//! an image uses can be created. Inside, strata has every capability over the namespaces it
//! creates, which is all the sandbox needs: mount namespaces, overlayfs (Linux 5.11+, mounted
//! with `userxattr`: opaque directories are `user.overlay.opaque`), pid/uts/ipc/net namespaces.
//! What differs there is handled where it happens: device nodes cannot be created (`mknod` is
//! refused in a user namespace; the host's `/dev/null` & co are bound in instead, as rootless
//! runc does), and `sysfs` cannot be mounted without a network namespace of our own (the
//! host's `/sys` is bound read-only instead).
//!
//! Writing the id maps of another user's namespace takes the setuid helpers `newuidmap` and
//! `newgidmap`, run by a process *outside* the namespace. So [`run_in_user_namespace`] (the
//! parent, the user's `strata`) re-executes the binary with the same arguments; the child calls
//! [`enter_if_child`] first thing: it unshares its user namespace, says so on a pipe, and waits
//! on another until the parent has run the helpers on its pid. From then on it is uid 0 and
//! carries on as a root strata would, in its own namespace; the parent only forwards SIGINT,
//! SIGTERM and SIGHUP to it and exits with its status.

use std::ffi::OsString;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::Command;

use nix::sched::CloneFlags;

use crate::sys;

/// Set by the parent for the child: the child's two pipe ends, `READ,WRITE`.
const SYNC_ENV: &str = "STRATA_USERNS_SYNC";
/// Set by the parent for the child and kept: strata runs rootless (for the store's location).
pub const ROOTLESS_ENV: &str = "STRATA_ROOTLESS";

#[derive(Debug, thiserror::Error)]
pub enum UsernsError {
    #[error("rootless: {0}")]
    Setup(String),
    #[error(
        "rootless: no subordinate {kind} range for user {user} in {file}; add one (e.g. `usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {user}`)"
    )]
    NoRange { kind: &'static str, user: String, file: &'static str },
    #[error("rootless: {what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> UsernsError {
    let what = what.into();
    move |source| UsernsError::Io { what, source }
}

/// True in the rootless child [`run_in_user_namespace`] started (uid 0, but a user's strata:
/// its store lives in the user's home).
pub fn is_rootless_child() -> bool {
    std::env::var_os(ROOTLESS_ENV).is_some()
}

/// In the re-executed child: enter the user namespace and wait for the id maps. Call first in
/// `main()`, before any thread exists. Does nothing in any other process.
pub fn enter_if_child() -> Result<(), UsernsError> {
    let Some(spec) = std::env::var_os(SYNC_ENV) else { return Ok(()) };
    // Not for the sandbox helpers this process starts.
    // SAFETY: single-threaded at this point (first thing in main).
    unsafe { std::env::remove_var(SYNC_ENV) };
    let spec = spec.to_string_lossy().into_owned();
    let (r, w) = spec
        .split_once(',')
        .and_then(|(r, w)| Some((r.parse::<i32>().ok()?, w.parse::<i32>().ok()?)))
        .ok_or_else(|| UsernsError::Setup(format!("malformed {SYNC_ENV}={spec}")))?;
    let (read_end, write_end) = (sys::own_fd(r), sys::own_fd(w));
    sys::unshare(CloneFlags::CLONE_NEWUSER).map_err(io_err("unshare(CLONE_NEWUSER)"))?;
    sys::write_all(&write_end, b"u").map_err(io_err("telling the parent"))?;
    drop(write_end);
    let mut byte = [0u8; 1];
    match sys::read(std::os::fd::AsFd::as_fd(&read_end), &mut byte) {
        Ok(1) if byte[0] == b'm' => Ok(()),
        _ => Err(UsernsError::Setup("the parent could not set up the id maps".into())),
    }
}

/// A user's subordinate id range: first id and count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub start: u64,
    pub count: u64,
}

/// The first range in a `/etc/subuid`-format text for `user` (by name or numeric id).
pub fn find_range(text: &str, user: &str, uid: u32) -> Option<Range> {
    text.lines().find_map(|line| {
        let mut f = line.trim().split(':');
        let (owner, start, count) = (f.next()?, f.next()?, f.next()?);
        if owner != user && owner != uid.to_string() {
            return None;
        }
        let (start, count) = (start.parse().ok()?, count.parse().ok()?);
        (count > 0).then_some(Range { start, count })
    })
}

/// The parent: runs this binary again with the same arguments inside a new user namespace
/// and returns its exit status (128+N if a signal ended it).
pub fn run_in_user_namespace() -> Result<i32, UsernsError> {
    let uid = rustix::process::getuid().as_raw();
    let gid = rustix::process::getgid().as_raw();
    let user =
        sys::user_name(uid).ok_or_else(|| UsernsError::Setup(format!("uid {uid} has no name in /etc/passwd")))?;
    let read_map = |file: &'static str, kind: &'static str| -> Result<Range, UsernsError> {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        find_range(&text, &user, uid).ok_or_else(|| UsernsError::NoRange { kind, user: user.clone(), file })
    };
    let subuid = read_map("/etc/subuid", "uid")?;
    let subgid = read_map("/etc/subgid", "gid")?;

    let (parent_read, child_write) = sys::pipe().map_err(io_err("pipe"))?;
    let (child_read, parent_write) = sys::pipe().map_err(io_err("pipe"))?;
    let (cr, cw) = (child_read.as_raw_fd(), child_write.as_raw_fd());
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let mut command = Command::new("/proc/self/exe");
    command.args(&args).env(SYNC_ENV, format!("{cr},{cw}")).env(ROOTLESS_ENV, "1");
    // SAFETY: only fcntl (async-signal-safe) between fork and exec.
    unsafe {
        command.pre_exec(move || {
            sys::clear_cloexec(cr)?;
            sys::clear_cloexec(cw)
        });
    }
    let mut child = command.spawn().map_err(io_err("starting strata in a user namespace"))?;
    drop((child_read, child_write));
    let pid = child.id() as i32;
    sys::forward_signals_to(pid).map_err(io_err("installing signal forwarding"))?;

    let mut byte = [0u8; 1];
    let mapped = match sys::read(std::os::fd::AsFd::as_fd(&parent_read), &mut byte) {
        Ok(1) => write_maps(pid, uid, gid, subuid, subgid),
        // The child failed before unsharing; its own message says why.
        _ => Ok(()),
    };
    if mapped.is_ok() {
        let _ = sys::write_all(&parent_write, b"m");
    }
    drop(parent_write);
    let status = child.wait().map_err(io_err("waiting for strata"))?;
    mapped?;
    use std::os::unix::process::ExitStatusExt;
    Ok(status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
}

fn write_maps(pid: i32, uid: u32, gid: u32, subuid: Range, subgid: Range) -> Result<(), UsernsError> {
    for (tool, own, range) in [("newuidmap", uid, subuid), ("newgidmap", gid, subgid)] {
        let out = Command::new(tool)
            .arg(pid.to_string())
            .args(["0", &own.to_string(), "1", "1", &range.start.to_string(), &range.count.to_string()])
            .output()
            .map_err(|e| UsernsError::Setup(format!("running {tool} (Debian package uidmap): {e}")))?;
        if !out.status.success() {
            return Err(UsernsError::Setup(format!("{tool} failed: {}", String::from_utf8_lossy(&out.stderr).trim())));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_by_name_or_id() {
        let text = "alice:100000:65536\nbob:165536:0\n1002:300000:1000\nbob:200000:65536\n";
        assert_eq!(find_range(text, "alice", 1001), Some(Range { start: 100000, count: 65536 }));
        assert_eq!(find_range(text, "bob", 1003), Some(Range { start: 200000, count: 65536 }), "empty ranges skipped");
        assert_eq!(find_range(text, "carol", 1002), Some(Range { start: 300000, count: 1000 }));
        assert_eq!(find_range(text, "dave", 1004), None);
        assert_eq!(find_range("garbage\nx:y:z\n", "x", 1), None);
    }
}
