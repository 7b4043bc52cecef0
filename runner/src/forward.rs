//! Forwarding a host Unix socket into a sandbox: the SSH agent of `RUN --mount=type=ssh`.
//!
//! BuildKit does not hand the client's agent socket to the step: it listens on a socket of
//! its own, made with the mount's owner and mode (default `root:root 0600`), and relays every
//! connection to the agent. strata does the same. [`SocketForward::start`] listens on a new
//! socket in a private temporary directory (0700) and relays each accepted connection to
//! `upstream` on two threads, one per direction; the builder bind-mounts that socket at the
//! mount's target. The user's own socket is thus never exposed or changed, and each step gets
//! exactly the owner and mode its mount asks for.
//!
//! The listener polls for connections (non-blocking accept, 50 ms naps) so that dropping the
//! [`SocketForward`] stops it promptly; relays of connections still open end when either side
//! closes, which happens at the latest when the sandbox's processes are gone.

use std::io;
use std::net::Shutdown;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::sys;

/// A listening socket relaying to another; stops when dropped.
#[derive(Debug)]
pub struct SocketForward {
    _dir: tempfile::TempDir,
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl SocketForward {
    /// Listens on a fresh socket owned by `uid:gid` with `mode`, relaying to `upstream`.
    /// `upstream` is checked once here, so a wrong path is an error now rather than a silent
    /// failure inside the step.
    pub fn start(upstream: &Path, mode: u32, uid: u32, gid: u32) -> io::Result<SocketForward> {
        UnixStream::connect(upstream)
            .map_err(|e| io::Error::new(e.kind(), format!("connecting to {}: {e}", upstream.display())))?;
        let dir = tempfile::Builder::new().prefix(".strata-ssh-").tempdir()?;
        let path = dir.path().join("agent.sock");
        let listener = UnixListener::bind(&path)?;
        sys::lchown(&path, uid, gid)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode & 0o7777))?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let upstream = upstream.to_path_buf();
        let thread = std::thread::spawn({
            let stop = stop.clone();
            move || accept_loop(&listener, &upstream, &stop)
        });
        Ok(SocketForward { _dir: dir, path, stop, thread: Some(thread) })
    }

    /// The socket to bind into the sandbox.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SocketForward {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn accept_loop(listener: &UnixListener, upstream: &Path, stop: &AtomicBool) {
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((conn, _)) => {
                if conn.set_nonblocking(false).is_err() {
                    continue;
                }
                // A failed upstream connection closes the client's: it sees end of file.
                if let Ok(agent) = UnixStream::connect(upstream) {
                    relay(conn, agent);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(50)),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                tracing::warn!("ssh agent forwarding stopped: {e}");
                return;
            }
        }
    }
}

/// Copies both ways on two threads; each direction's end is passed on as a write shutdown.
fn relay(a: UnixStream, b: UnixStream) {
    let pairs = [(a.try_clone(), b.try_clone()), (b.try_clone(), a.try_clone())];
    for (from, to) in pairs {
        let (Ok(mut from), Ok(mut to)) = (from, to) else { continue };
        std::thread::spawn(move || {
            let _ = io::copy(&mut from, &mut to);
            let _ = to.shutdown(Shutdown::Write);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn relays_both_ways_with_the_asked_owner_and_mode() {
        let dir = tempfile::tempdir().unwrap();
        let agent_path = dir.path().join("agent");
        let agent = UnixListener::bind(&agent_path).unwrap();
        let server = std::thread::spawn(move || {
            // The start-up check connects once; then the relayed connection.
            for _ in 0..2 {
                let (mut c, _) = agent.accept().unwrap();
                let mut buf = Vec::new();
                c.read_to_end(&mut buf).unwrap();
                let _ = c.write_all(&[b"echo:".as_slice(), &buf].concat());
            }
        });
        let uid = rustix::process::getuid().as_raw();
        let gid = rustix::process::getgid().as_raw();
        let fwd = SocketForward::start(&agent_path, 0o640, uid, gid).unwrap();
        let meta = std::fs::metadata(fwd.path()).unwrap();
        assert_eq!((meta.mode() & 0o7777, meta.uid(), meta.gid()), (0o640, uid, gid));
        let mut c = UnixStream::connect(fwd.path()).unwrap();
        c.write_all(b"hello").unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        let mut got = String::new();
        c.read_to_string(&mut got).unwrap();
        assert_eq!(got, "echo:hello");
        server.join().unwrap();
        let path = fwd.path().to_path_buf();
        drop(fwd);
        assert!(!path.exists(), "the socket's directory goes with the forward");
    }

    #[test]
    fn a_missing_upstream_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = SocketForward::start(&dir.path().join("nope"), 0o600, 0, 0).unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
    }
}
