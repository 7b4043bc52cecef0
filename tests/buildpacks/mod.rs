//! Helpers of the buildpack end-to-end tests (`tests/buildpacks_*.rs`): copying test apps,
//! serving an image with `strata run` and asking it over HTTP on loopback, reading labels.

#![allow(dead_code)] // each test binary uses a different subset

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{Env, STRATA};

/// The repository directory (buildpacks/, testdata/).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Copies `testdata/buildpacks/<rel>` to `<env dir>/<name>` (tests edit their copies).
pub fn copy_app(env: &Env, rel: &str, name: &str) -> PathBuf {
    let dst = env.path(name);
    let r =
        crate::common::run(Command::new("cp").arg("-a").arg(repo().join("testdata/buildpacks").join(rel)).arg(&dst));
    assert!(r.success(), "{r}");
    dst
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap().local_addr().unwrap().port()
}

/// `strata run -e PORT=<port> IMAGE` in the background; stopped (SIGTERM) when dropped.
pub struct Served {
    child: Child,
    pub port: u16,
    log: PathBuf,
}

impl Served {
    pub fn start(env: &Env, image: &str) -> Served {
        Served::start_at(env, &env.root, image)
    }

    /// Serves from the store at `root`.
    pub fn start_at(env: &Env, root: &Path, image: &str) -> Served {
        let port = free_port();
        let log = env.path(&format!("serve-{port}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(STRATA)
            .arg("--root")
            .arg(root)
            .args(["run", "--rm", "-e", &format!("PORT={port}"), image])
            .env("DOCKER_CONFIG", &env.docker_config)
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("starting strata run");
        Served { child, port, log }
    }

    /// GET / until it answers (at most `timeout`): the status line and body.
    pub fn get(&mut self, timeout: Duration) -> (String, String) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("strata run exited ({status}) before answering:\n{}", self.log());
            }
            if let Some(answer) = http_get(self.port) {
                return answer;
            }
            assert!(
                Instant::now() < deadline,
                "no HTTP answer on port {} within {timeout:?}:\n{}",
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.0 GET / on loopback: (status line, body), or None if nothing answers yet.
pub fn http_get(port: u16) -> Option<(String, String)> {
    let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(format!("GET / HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n").as_bytes()).ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    Some((head.lines().next()?.to_string(), body.to_string()))
}

/// An image's labels.
pub fn labels(env: &Env, image: &str) -> serde_json::Map<String, Value> {
    env.inspect(image)["Config"]["config"]["Labels"].as_object().cloned().unwrap_or_default()
}

/// A JSON label, parsed.
pub fn json_label(env: &Env, image: &str, key: &str) -> Value {
    let l = labels(env, image);
    let text = l.get(key).and_then(Value::as_str).unwrap_or_else(|| panic!("{image} has no label {key}: {l:?}"));
    serde_json::from_str(text).unwrap_or_else(|e| panic!("label {key} is not JSON ({e}): {text}"))
}

/// The log lines of every `--progress plain` step, in order.
pub fn step_logs(stderr: &str) -> Vec<String> {
    crate::common::plain_steps(stderr).into_iter().flat_map(|s| s.logs).collect()
}

/// The file names under `dir`, recursively, relative and sorted.
pub fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            out.push(p.strip_prefix(base).unwrap().display().to_string());
            if p.is_dir() && !p.is_symlink() {
                walk(base, &p, out);
            }
        }
    }
    walk(dir, dir, &mut out);
    out.sort();
    out
}
