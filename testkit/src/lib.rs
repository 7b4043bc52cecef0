//! Real peers for strata's tests: a Debian `docker-registry` on a free loopback port, and a minimal
//! busybox root filesystem.
//!
//! The project's tests talk to real programs, never to mocks (see the brief), and they start
//! their own instances instead of sharing the machine's reference registries, so tests can run
//! in parallel and leave nothing behind. Missing tools are a hard failure with the apt-get line
//! that installs them: a test that skips itself would pass without testing anything.
//!
//! - [`TestRegistry`]: `docker-registry serve CONFIG` (distribution 2.8, Debian package
//!   `docker-registry`) with filesystem storage in a temporary directory, optionally behind
//!   htpasswd basic auth (a bcrypt line made by `htpasswd` from `apache2-utils`, the only hash
//!   distribution accepts). Killed on drop.
//! - [`busybox_rootfs`]: the host's static busybox (`busybox-static`) with its applet symlinks,
//!   `/etc/passwd`, `/etc/group` and a sticky `/tmp`, built the way `shared/peers/setup.sh`
//!   builds the busybox base image the reference tools use.
//!
//! This crate is a dev-dependency only and panics on failure: a broken peer is a broken test.

use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `docker-registry` on `127.0.0.1:port`, killed when dropped.
pub struct TestRegistry {
    /// The TCP port it listens on.
    pub port: u16,
    /// `127.0.0.1:PORT`, the registry part of image references.
    pub host: String,
    child: Child,
    dir: tempfile::TempDir,
}

impl TestRegistry {
    /// Starts an open registry (no authentication).
    pub fn start() -> TestRegistry {
        start_registry(None)
    }

    /// Starts a registry that requires HTTP basic auth as `user`/`pass` (htpasswd, bcrypt).
    pub fn start_with_htpasswd(user: &str, pass: &str) -> TestRegistry {
        start_registry(Some((user, pass)))
    }

    /// A temporary directory that lives as long as the registry (configs, logs, data).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The registry's log so far (stdout and stderr), for assertion messages.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Finds an executable on `PATH` (or in the usual system directories).
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// A loopback port that was free a moment ago. The registry binds it itself, so another process
/// may take it in between; [`start_registry`] retries with a new port when that happens.
fn free_port() -> u16 {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("binding 127.0.0.1:0");
    l.local_addr().expect("local address of a bound socket").port()
}

fn start_registry(auth: Option<(&str, &str)>) -> TestRegistry {
    let Some(bin) = find_program("docker-registry") else {
        panic!("docker-registry not installed: apt-get install docker-registry");
    };
    let dir = tempfile::Builder::new().prefix("strata-registry-").tempdir().expect("creating a temporary directory");
    let auth_yaml = match auth {
        Some((user, pass)) => {
            let htpasswd = dir.path().join("htpasswd");
            fs::write(&htpasswd, htpasswd_line(user, pass)).expect("writing htpasswd");
            format!("auth: {{htpasswd: {{realm: strata-test, path: {}}}}}\n", htpasswd.display())
        }
        None => String::new(),
    };
    let mut last_log = String::new();
    for _attempt in 0..5 {
        let port = free_port();
        let config = dir.path().join("config.yml");
        fs::write(
            &config,
            format!(
                "version: 0.1\nlog: {{level: warn}}\nstorage:\n  filesystem: {{rootdirectory: {}}}\n  \
                 delete: {{enabled: true}}\nhttp: {{addr: \"127.0.0.1:{port}\"}}\n{auth_yaml}",
                dir.path().join("data").display()
            ),
        )
        .expect("writing registry config");
        let log_path = dir.path().join("registry.log");
        let log = fs::File::create(&log_path).expect("creating registry log");
        let mut child = Command::new(&bin)
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("duplicating log fd"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait().expect("waiting for docker-registry") {
                last_log = fs::read_to_string(&log_path).unwrap_or_default();
                if last_log.contains("address already in use") {
                    break; // lost the race for the port: try another one
                }
                panic!("docker-registry exited ({status}) before serving:\n{last_log}");
            }
            if v2_answers(port) {
                return TestRegistry { port, host: format!("127.0.0.1:{port}"), child, dir };
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "docker-registry did not answer on 127.0.0.1:{port}/v2/:\n{}",
                    fs::read_to_string(&log_path).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    panic!("docker-registry could not bind a free port in 5 attempts:\n{last_log}");
}

/// True once `GET /v2/` answers 200 (open) or 401 (auth required): the registry is serving.
fn v2_answers(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect((Ipv4Addr::LOCALHOST, port)) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let req = format!("GET /v2/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    if s.read_exact(&mut head).is_err() {
        return false;
    }
    head.starts_with(b"HTTP/1.1 200") || head.starts_with(b"HTTP/1.1 401")
}

/// One htpasswd line with a bcrypt hash, made by apache2-utils' `htpasswd -nbB`.
fn htpasswd_line(user: &str, pass: &str) -> String {
    let Some(bin) = find_program("htpasswd") else {
        panic!("htpasswd not installed: apt-get install apache2-utils");
    };
    let out = Command::new(bin).args(["-nbB", user, pass]).output().expect("running htpasswd");
    assert!(out.status.success(), "htpasswd failed: {}", String::from_utf8_lossy(&out.stderr));
    let line = String::from_utf8(out.stdout).expect("htpasswd output is UTF-8");
    format!("{}\n", line.trim_end())
}

/// Builds a minimal busybox root filesystem in `dir` (which may exist): `/bin/busybox` copied from
/// the host's static busybox, the applet symlinks `busybox --install -s` makes (run under
/// `chroot`, so they point at `/bin/busybox` inside the root), `/etc/passwd` and `/etc/group`
/// with root and nobody/nogroup, and `/tmp` with mode 1777.
pub fn busybox_rootfs(dir: &Path) {
    let busybox = ["/bin/busybox", "/usr/bin/busybox"].map(PathBuf::from).into_iter().find(|p| p.is_file());
    let Some(busybox) = busybox else {
        panic!("busybox not installed: apt-get install busybox-static");
    };
    for d in ["bin", "sbin", "usr/bin", "usr/sbin", "etc", "tmp", "root"] {
        fs::create_dir_all(dir.join(d)).unwrap_or_else(|e| panic!("creating {}/{d}: {e}", dir.display()));
    }
    let target = dir.join("bin/busybox");
    fs::copy(&busybox, &target).unwrap_or_else(|e| panic!("copying {}: {e}", busybox.display()));
    fs::set_permissions(&target, fs::Permissions::from_mode(0o755)).expect("chmod busybox");
    // The applet links `busybox --install -s` would make (absolute links to /bin/busybox), from
    // the host binary's own list. Running the fresh copy instead races with tests forking in
    // parallel: a child that inherited the copy's still-open write descriptor makes the exec
    // fail with "Text file busy".
    let out = Command::new(&busybox).arg("--list-full").output().expect("running busybox --list-full");
    assert!(
        out.status.success(),
        "{} --list-full failed (apt-get install busybox-static): {}",
        busybox.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    for applet in String::from_utf8_lossy(&out.stdout).lines().map(str::trim).filter(|l| !l.is_empty()) {
        let link = dir.join(applet);
        if link.symlink_metadata().is_ok() {
            continue;
        }
        if let Some(parent) = link.parent() {
            fs::create_dir_all(parent).unwrap_or_else(|e| panic!("creating {}: {e}", parent.display()));
        }
        std::os::unix::fs::symlink("/bin/busybox", &link).unwrap_or_else(|e| panic!("linking {applet}: {e}"));
    }
    fs::write(dir.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n")
        .expect("writing /etc/passwd");
    fs::write(dir.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").expect("writing /etc/group");
    fs::set_permissions(dir.join("tmp"), fs::Permissions::from_mode(0o1777)).expect("chmod /tmp");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_serves_and_stops_on_drop() {
        let reg = TestRegistry::start();
        assert!(v2_answers(reg.port));
        let port = reg.port;
        drop(reg);
        assert!(!v2_answers(port), "registry still answering after drop");
    }

    #[test]
    fn htpasswd_registry_demands_credentials() {
        let reg = TestRegistry::start_with_htpasswd("tester", "secret");
        let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, reg.port)).unwrap();
        write!(s, "GET /v2/ HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", reg.host).unwrap();
        let mut resp = String::new();
        s.read_to_string(&mut resp).unwrap();
        assert!(resp.starts_with("HTTP/1.1 401"), "{resp}");
        assert!(resp.contains("Basic realm=\"strata-test\""), "{resp}");
    }

    #[test]
    fn busybox_rootfs_has_applets_and_users() {
        let dir = tempfile::tempdir().unwrap();
        busybox_rootfs(dir.path());
        let sh = fs::read_link(dir.path().join("bin/sh")).unwrap();
        assert_eq!(sh, Path::new("/bin/busybox"));
        assert!(fs::symlink_metadata(dir.path().join("usr/bin/env")).unwrap().file_type().is_symlink());
        let mode = fs::metadata(dir.path().join("tmp")).unwrap().permissions().mode();
        assert_eq!(mode & 0o7777, 0o1777);
        let passwd = fs::read_to_string(dir.path().join("etc/passwd")).unwrap();
        assert!(passwd.starts_with("root:x:0:0:") && passwd.contains("nobody:x:65534:65534:"));
        let out = Command::new("chroot").arg(dir.path()).args(["/bin/sh", "-c", "echo ok; id -un"]).output().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "ok\nroot\n");
    }
}
