//! The builder's side of a sandbox run: start the helper, stream output, collect the result.
//!
//! The caller is multi-threaded, and `fork` in a threaded process may only be followed by
//! `exec`. So [`run`] never forks itself: it spawns `/proc/self/exe __sandbox <parent-pid>` (the
//! helper, see `sandbox.rs`) with
//! * stdin: one end of a Unix socket pair — the [`HelperRequest`] goes in, [`Report`]s come out;
//! * stdout, stderr: two pipes carrying the sandboxed process's output, passed to the caller's
//!   callback as it arrives (one `poll` loop, so the callback runs on the caller's thread).
//!
//! Nothing outlives the run: the helper dies with the calling thread (`PR_SET_PDEATHSIG`), the
//! sandbox's pid 1 dies with the helper, and every other sandboxed process dies with pid 1 (it
//! is the init of their pid namespace). Mounts live in the helper's own mount namespace and go
//! with it. [`Cancel::cancel`] sends the helper SIGTERM, on which it SIGKILLs pid 1, reaps it,
//! removes mount stubs and exits; [`run_with`] returns once that is done.
//!
//! To never signal a recycled pid, the helper is only signalled while it is unreaped: the
//! parent waits for it with `WNOWAIT`, then, holding the lock [`Cancel`] uses, forgets its pid,
//! and only then reaps it.

use std::ffi::OsString;
use std::io::{Read as _, Write as _};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};

use crate::error::RunError;
use crate::protocol::{HelperRequest, Report};
use crate::spec::SandboxSpec;
use crate::sys;

/// The first argument that turns the binary into the sandbox helper.
pub const SANDBOX_ARG: &str = "__sandbox";

/// Which of the process's output streams a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputStream {
    Stdout,
    Stderr,
}

/// How the sandboxed process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExitStatus {
    /// It exited with this code (127: command not found, 126: not executable).
    Code(i32),
    /// A signal killed it.
    Signal(i32),
}

impl ExitStatus {
    pub fn success(&self) -> bool {
        *self == ExitStatus::Code(0)
    }
}

/// Which program to re-execute as the sandbox helper.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunnerConfig {
    /// The executable; its `main` must call [`crate::maybe_run_sandbox`] first.
    pub program: PathBuf,
    /// Arguments before the parent pid; must start with [`SANDBOX_ARG`].
    pub args: Vec<OsString>,
}

impl Default for RunnerConfig {
    /// `/proc/self/exe __sandbox`: the running binary itself.
    fn default() -> Self {
        RunnerConfig { program: PathBuf::from("/proc/self/exe"), args: vec![OsString::from(SANDBOX_ARG)] }
    }
}

/// Cancels runs from another thread (e.g. on the builder's SIGINT handling or when a sibling
/// step failed). Cloning shares the token; one token can cancel several runs.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<CancelInner>);

#[derive(Debug, Default)]
struct CancelInner {
    cancelled: AtomicBool,
    /// Helpers started and not yet reaped.
    helpers: Mutex<Vec<i32>>,
}

impl Cancel {
    pub fn new() -> Cancel {
        Cancel::default()
    }

    /// Kills every process of the runs using this token (and of any started later with it).
    pub fn cancel(&self) {
        self.0.cancelled.store(true, Ordering::SeqCst);
        let helpers = self.0.helpers.lock().unwrap_or_else(|e| e.into_inner());
        for pid in helpers.iter() {
            // ESRCH cannot happen (unreaped); EPERM would mean it is not ours. Nothing to do.
            let _ = sys::kill(*pid, Signal::SIGTERM);
        }
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.cancelled.load(Ordering::SeqCst)
    }

    fn register(&self, pid: i32) {
        let mut helpers = self.0.helpers.lock().unwrap_or_else(|e| e.into_inner());
        helpers.push(pid);
        if self.is_cancelled() {
            let _ = sys::kill(pid, Signal::SIGTERM);
        }
    }

    fn forget(&self, pid: i32) {
        let mut helpers = self.0.helpers.lock().unwrap_or_else(|e| e.into_inner());
        helpers.retain(|p| *p != pid);
    }
}

/// Runs `spec.process` in a new sandbox with the default [`RunnerConfig`]; see [`run_with`].
pub fn run(spec: &SandboxSpec, output: &mut dyn FnMut(OutputStream, &[u8])) -> Result<ExitStatus, RunError> {
    run_with(&RunnerConfig::default(), spec, &Cancel::new(), output)
}

/// Runs `spec.process` in a new sandbox and returns how it ended.
///
/// `output` receives the process's stdout and stderr as they arrive. Setup failures inside the
/// sandbox (overlay mount, unknown user, ...) are [`RunError::Setup`] with the sandbox's
/// message; a command that cannot be executed is `Code(127)`/`Code(126)` with the reason on
/// stderr, as Docker reports it. Blocks until every process of the sandbox is gone.
pub fn run_with(
    config: &RunnerConfig,
    spec: &SandboxSpec,
    cancel: &Cancel,
    output: &mut dyn FnMut(OutputStream, &[u8]),
) -> Result<ExitStatus, RunError> {
    validate(spec)?;
    if cancel.is_cancelled() {
        return Err(RunError::Cancelled);
    }
    let scratch = tempfile::Builder::new()
        .prefix(".strata-sandbox-")
        .tempdir()
        .map_err(|e| RunError::io("creating the sandbox scratch directory", e))?;
    let request = HelperRequest { spec: spec.clone(), scratch: scratch.path().to_path_buf() };
    let request = serde_json::to_vec(&request).map_err(|e| RunError::InvalidSpec(e.to_string()))?;

    let (mut control, helper_control) = UnixStream::pair().map_err(|e| RunError::io("creating a socket pair", e))?;
    let (stdout_r, stdout_w) = sys::pipe().map_err(|e| RunError::io("creating a pipe", e))?;
    let (stderr_r, stderr_w) = sys::pipe().map_err(|e| RunError::io("creating a pipe", e))?;
    let mut command = Command::new(&config.program);
    command
        .args(&config.args)
        .arg(std::process::id().to_string())
        .env_clear()
        .stdin(Stdio::from(OwnedFd::from(helper_control)))
        .stdout(Stdio::from(stdout_w))
        .stderr(Stdio::from(stderr_w));
    // The one host setting the helper reads from its environment (see `HostFiles`).
    if let Some(v) = std::env::var_os(crate::mounts::NO_PROCESS_SANDBOX_ENV) {
        command.env(crate::mounts::NO_PROCESS_SANDBOX_ENV, v);
    }
    let child = command
        .spawn()
        .map_err(|e| RunError::io(format!("starting the sandbox helper {}", config.program.display()), e))?;
    // Our copies of the helper's ends must go, or we would never see end-of-file.
    drop(command);
    let pid = child.id() as i32;
    let mut helper = Helper { pid, cancel: cancel.clone(), reaped: false };
    cancel.register(pid);

    // A helper that died early closes the socket: the write fails, the reports say why.
    let _ = control.write_all(&request);
    let _ = control.shutdown(std::net::Shutdown::Write);

    let reports = pump(&mut control, stdout_r, stderr_r, output)?;
    let helper_exit = helper.reap()?;
    drop(scratch);

    if cancel.is_cancelled() {
        return Err(RunError::Cancelled);
    }
    let mut status = None;
    for report in Report::parse_all(&reports) {
        match report {
            Report::Error(msg) => return Err(RunError::Setup(msg)),
            Report::Warning(msg) => tracing::warn!("{msg}"),
            Report::Exit(s) => status = Some(s),
        }
    }
    status.ok_or_else(|| RunError::HelperDied(format!("{helper_exit:?}")))
}

fn validate(spec: &SandboxSpec) -> Result<(), RunError> {
    if spec.process.args.is_empty() {
        return Err(RunError::InvalidSpec("no command to run".into()));
    }
    if !spec.process.cwd.starts_with('/') {
        return Err(RunError::InvalidSpec(format!("working directory {:?} is not absolute", spec.process.cwd)));
    }
    for m in &spec.mounts {
        if !m.target.starts_with('/') {
            return Err(RunError::InvalidSpec(format!("mount target {:?} is not absolute", m.target)));
        }
    }
    Ok(())
}

/// Reads the output pipes and the report socket until all three are closed.
fn pump(
    control: &mut UnixStream,
    stdout: OwnedFd,
    stderr: OwnedFd,
    output: &mut dyn FnMut(OutputStream, &[u8]),
) -> Result<Vec<u8>, RunError> {
    let mut reports = Vec::new();
    let mut streams = [Some((OutputStream::Stdout, stdout)), Some((OutputStream::Stderr, stderr))];
    let mut control_open = true;
    let mut buf = vec![0u8; 64 * 1024];
    while control_open || streams.iter().any(Option::is_some) {
        let control_fd = control.as_fd();
        let mut fds = Vec::new();
        if control_open {
            fds.push(control_fd);
        }
        fds.extend(streams.iter().flatten().map(|(_, fd)| fd.as_fd()));
        let ready = sys::poll_readable(&fds).map_err(|e| RunError::io("waiting for sandbox output", e))?;
        let mut ready = ready.into_iter();
        if control_open && ready.next() == Some(sys::Ready::Readable) {
            match control.read(&mut buf) {
                Ok(0) | Err(_) => control_open = false,
                Ok(n) => reports.extend_from_slice(&buf[..n]),
            }
        }
        for slot in streams.iter_mut() {
            let Some((stream, fd)) = slot else { continue };
            if ready.next() != Some(sys::Ready::Readable) {
                continue;
            }
            match sys::read(fd.as_fd(), &mut buf) {
                Ok(0) | Err(_) => *slot = None,
                Ok(n) => output(*stream, &buf[..n]),
            }
        }
    }
    Ok(reports)
}

/// The running helper; stops and reaps it if dropped early (a panicking callback).
struct Helper {
    pid: i32,
    cancel: Cancel,
    reaped: bool,
}

impl Helper {
    fn reap(&mut self) -> Result<sys::Exit, RunError> {
        sys::wait_without_reaping(self.pid).map_err(|e| RunError::io("waiting for the sandbox helper", e))?;
        self.cancel.forget(self.pid);
        self.reaped = true;
        sys::wait_and_reap(self.pid).map_err(|e| RunError::io("reaping the sandbox helper", e))
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        if !self.reaped {
            let _ = sys::kill(self.pid, Signal::SIGTERM);
            let _ = sys::wait_without_reaping(self.pid);
            self.cancel.forget(self.pid);
            let _ = sys::wait_and_reap(self.pid);
        }
    }
}
