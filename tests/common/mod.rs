//! Shared helpers for strata's end-to-end tests: they run the real `strata` binary (the one cargo
//! builds for this test profile) against real peers only.
//!
//! Every test makes its own [`Env`]: a temporary directory holding the store root (`--root`), an
//! empty docker config directory (so the machine's `~/.docker/config.json` never leaks in), and its
//! own `docker-registry` on a free loopback port (from `strata-testkit`). The base image is
//! Debian's static busybox: `testkit::busybox_rootfs` → `strata import` → `strata push`, so builds
//! find it in the store and a fresh store can pull it from the registry. Tests therefore run in
//! parallel without sharing anything.
//!
//! External tools (skopeo, umoci, oci-image-tool, tar, gzip) are found with [`tool`], which fails
//! the test with the `apt-get install` line when one is missing: a test that skipped itself would
//! pass without testing anything.

#![allow(dead_code)] // each test binary uses a different subset

use std::collections::BTreeSet;
use std::fmt;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
pub use strata_testkit::TestRegistry;

/// The strata binary under test.
pub const STRATA: &str = env!("CARGO_BIN_EXE_strata");

/// How long any one command may take before the test fails (a hang is a bug, not a slow test).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// A busybox root filesystem in `dir`.
pub fn busybox_rootfs(dir: &Path) {
    strata_testkit::busybox_rootfs(dir);
}

/// Starts a registry (open, or htpasswd with `creds`).
pub fn start_registry(creds: Option<(&str, &str)>) -> TestRegistry {
    match creds {
        Some((user, pass)) => TestRegistry::start_with_htpasswd(user, pass),
        None => TestRegistry::start(),
    }
}

/// One finished command: what ran, its exit code and its output, printable for assertion messages.
pub struct Run {
    pub cmd: String,
    /// `None` when killed by a signal.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// Panics unless the command exited 0.
    #[track_caller]
    pub fn ok(self) -> Run {
        assert!(self.success(), "command failed:\n{self}");
        self
    }

    /// Panics unless the command exited non-zero (and not by a signal), and without a panic
    /// message: bad input must get an error, never a crash.
    #[track_caller]
    pub fn fails(self) -> Run {
        assert!(matches!(self.code, Some(c) if c != 0), "command should have failed:\n{self}");
        assert!(!self.stderr.contains("panicked"), "strata panicked instead of reporting an error:\n{self}");
        self
    }
}

impl fmt::Display for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "$ {}\nexit: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.cmd, self.code, self.stdout, self.stderr
        )
    }
}

/// Runs a command to completion with a timeout, capturing its output.
pub fn run(cmd: &mut Command) -> Run {
    let text = format!(
        "{} {}",
        cmd.get_program().to_string_lossy(),
        cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect::<Vec<_>>().join(" ")
    );
    let spawned = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn();
    let mut child = spawned.unwrap_or_else(|e| panic!("starting {text}: {e}"));
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = out.read_to_end(&mut b);
        b
    });
    let err_reader = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = err.read_to_end(&mut b);
        b
    });
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    let status = loop {
        if let Some(s) = child.try_wait().expect("waiting for a child") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = String::from_utf8_lossy(&err_reader.join().unwrap()).into_owned();
            panic!("{text} did not finish within {COMMAND_TIMEOUT:?}; stderr so far:\n{stderr}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Run {
        cmd: text,
        code: status.code(),
        stdout: String::from_utf8_lossy(&out_reader.join().unwrap()).into_owned(),
        stderr: String::from_utf8_lossy(&err_reader.join().unwrap()).into_owned(),
    }
}

/// Finds an external tool on PATH, or fails the test with the line that installs it.
pub fn tool(name: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{name} is not installed: apt-get install -y {package}"))
}

/// `skopeo ARGS...` (registry TLS is off for the loopback registries: pass the flags explicitly).
pub fn skopeo(args: &[&str]) -> Run {
    run(Command::new(tool("skopeo", "skopeo")).args(args))
}

/// Lower-case hex SHA-256 of `data`, as in `sha256:<hex>` digests.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

/// Standard base64 with padding (for `auths.*.auth` in docker's config.json).
pub fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The OCI architecture name of this machine, as strata writes it into configs.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        other => panic!("no OCI name known for architecture {other}"),
    }
}

/// One test's world: a store root, a registry, an empty docker config, the busybox base image.
pub struct Env {
    /// Everything of this test lives here and goes away with it.
    pub dir: tempfile::TempDir,
    /// The store (`--root`).
    pub root: PathBuf,
    /// `DOCKER_CONFIG` for every strata process this Env starts.
    pub docker_config: PathBuf,
    pub registry: TestRegistry,
    /// `127.0.0.1:PORT/busybox:latest`: in the store and pushed to the registry.
    pub base: String,
}

impl Env {
    /// An open registry with the busybox base image in it and in the store.
    pub fn new() -> Env {
        Env::with_registry(start_registry(None), None)
    }

    /// Uses `registry`; with `creds`, the docker config holds them for the registry's host (needed
    /// to push the base image to an htpasswd registry).
    pub fn with_registry(registry: TestRegistry, creds: Option<(&str, &str)>) -> Env {
        let dir = tempfile::Builder::new().prefix("strata-e2e-").tempdir().expect("temporary directory");
        let root = dir.path().join("store");
        let docker_config = dir.path().join("docker-config");
        fs::create_dir_all(&docker_config).unwrap();
        if let Some((user, pass)) = creds {
            write_docker_config(&docker_config, &registry.host, user, pass);
        }
        let base = format!("{}/busybox:latest", registry.host);
        let env = Env { dir, root, docker_config, registry, base };
        let rootfs = env.dir.path().join("busybox-rootfs");
        busybox_rootfs(&rootfs);
        env.strata(&["import", rootfs.to_str().unwrap(), "-t", &env.base]).ok();
        env.strata(&["push", &env.base]).ok();
        env
    }

    /// A path inside this test's directory.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// `strata --root ROOT ARGS...` with this Env's docker config.
    pub fn strata(&self, args: &[&str]) -> Run {
        self.strata_at(&self.root, args)
    }

    /// `strata --root ROOT ARGS...` for another store root (e.g. a fresh one that must pull).
    pub fn strata_at(&self, root: &Path, args: &[&str]) -> Run {
        self.strata_with(root, &self.docker_config, args)
    }

    /// `strata --root ROOT ARGS...` with `DOCKER_CONFIG=docker_config`.
    pub fn strata_with(&self, root: &Path, docker_config: &Path, args: &[&str]) -> Run {
        run(Command::new(STRATA)
            .arg("--root")
            .arg(root)
            .args(args)
            .env("DOCKER_CONFIG", docker_config)
            .env_remove("STRATA_ROOT")
            .env_remove("XDG_DATA_HOME")
            .env("NO_COLOR", "1"))
    }

    /// Writes a build context directory `name` holding `files` (`{BASE}` in any file is replaced
    /// by this Env's base image name). Parent directories of the files are created.
    pub fn context(&self, name: &str, files: &[(&str, &str)]) -> PathBuf {
        let dir = self.dir.path().join(name);
        fs::create_dir_all(&dir).unwrap();
        for (rel, text) in files {
            let path = dir.join(rel);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, text.replace("{BASE}", &self.base)).unwrap();
        }
        dir
    }

    /// `strata build --progress plain -t TAG EXTRA... CONTEXT`.
    pub fn build(&self, context: &Path, tag: &str, extra: &[&str]) -> Run {
        self.build_at(&self.root, context, tag, extra)
    }

    pub fn build_at(&self, root: &Path, context: &Path, tag: &str, extra: &[&str]) -> Run {
        let mut args = vec!["build", "--progress", "plain", "-t", tag];
        args.extend_from_slice(extra);
        args.push(context.to_str().unwrap());
        self.strata_at(root, &args)
    }

    /// `strata inspect NAME` as JSON (Name, Descriptor, Manifest, Config).
    pub fn inspect(&self, name: &str) -> Value {
        inspect_at(self, &self.root, name)
    }

    /// The full names in the store's index.json (`org.opencontainers.image.ref.name`).
    pub fn names(&self) -> Vec<String> {
        store_names(&self.root)
    }

    /// The registry's copy of a blob (distribution's filesystem storage layout).
    pub fn registry_blob(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
        self.registry.dir().join("data/docker/registry/v2/blobs/sha256").join(&hex[..2]).join(hex).join("data")
    }
}

/// `strata --root ROOT inspect NAME` as JSON.
pub fn inspect_at(env: &Env, root: &Path, name: &str) -> Value {
    let r = env.strata_at(root, &["inspect", name]).ok();
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("strata inspect printed invalid JSON ({e}):\n{r}"))
}

/// The full names in a store's index.json.
pub fn store_names(root: &Path) -> Vec<String> {
    let index: Value = serde_json::from_slice(&fs::read(root.join("index.json")).expect("index.json")).unwrap();
    index["manifests"]
        .as_array()
        .expect("index.json manifests")
        .iter()
        .filter_map(|m| m["annotations"]["org.opencontainers.image.ref.name"].as_str().map(str::to_string))
        .collect()
}

/// `ROOT/blobs/sha256/HEX` for a digest.
pub fn blob_path(root: &Path, digest: &str) -> PathBuf {
    root.join("blobs/sha256").join(digest.strip_prefix("sha256:").expect("sha256 digest"))
}

/// The layer digests of an inspected image, in order.
pub fn layer_digests(inspect: &Value) -> Vec<String> {
    inspect["Manifest"]["layers"]
        .as_array()
        .expect("Manifest.layers")
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect()
}

/// The entry names of a gzip layer blob (GNU tar's listing: directories end in `/`, no `./`).
pub fn layer_entries(blob: &Path) -> Vec<String> {
    let r = run(Command::new(tool("tar", "tar")).arg("-tzf").arg(blob)).ok();
    r.stdout.lines().map(|l| l.trim_start_matches("./").to_string()).filter(|l| !l.is_empty()).collect()
}

/// A gzip layer blob's entries as `MODE UID/GID SIZE NAME[ -> TARGET | link to TARGET]`, the
/// columns of GNU `tar --numeric-owner -tv` without the date and time.
pub fn layer_listing(blob: &Path) -> Vec<String> {
    let r = run(Command::new(tool("tar", "tar")).args(["--numeric-owner", "-tvzf"]).arg(blob)).ok();
    r.stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            assert!(f.len() >= 6, "unexpected tar listing line {l:?}");
            format!("{} {} {} {}", f[0], f[1], f[2], f[5..].join(" "))
        })
        .collect()
}

/// The content of one regular file inside a gzip layer blob.
pub fn layer_file(blob: &Path, path: &str) -> String {
    let r = run(Command::new(tool("tar", "tar")).arg("-xzOf").arg(blob).arg(path));
    assert!(r.success(), "{path} is not in layer {}:\n{r}", blob.display());
    r.stdout
}

/// Entries of `entries` whose parent directories (up to the root) are not entries themselves.
pub fn missing_parents(entries: &[String]) -> BTreeSet<String> {
    let dirs: BTreeSet<&str> = entries.iter().map(|e| e.trim_end_matches('/')).collect();
    let mut missing = BTreeSet::new();
    for e in entries {
        let mut p = Path::new(e.trim_end_matches('/'));
        while let Some(parent) = p.parent() {
            let s = parent.to_str().unwrap();
            if s.is_empty() {
                break;
            }
            if !dirs.contains(s) {
                missing.insert(format!("{s}/ (parent of {e})"));
            }
            p = parent;
        }
    }
    missing
}

/// Writes `DIR/config.json` with basic-auth credentials for `host`, as `docker login` does.
pub fn write_docker_config(dir: &Path, host: &str, user: &str, pass: &str) {
    fs::create_dir_all(dir).unwrap();
    let auth = base64(format!("{user}:{pass}").as_bytes());
    let json = serde_json::json!({ "auths": { host: { "auth": auth } } });
    fs::write(dir.join("config.json"), serde_json::to_vec_pretty(&json).unwrap()).unwrap();
}

/// How a step of `--progress plain` output ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepState {
    Cached,
    Done,
    Error,
    /// A header with no final line.
    Unfinished,
}

/// One step of `--progress plain` output: `#N [stage k/n] TEXT`, its log lines and how it ended.
#[derive(Debug, Clone)]
pub struct Step {
    pub id: u32,
    /// What follows `#N ` in the header: `[2/4] COPY a.txt /a.txt`.
    pub name: String,
    pub state: StepState,
    /// The step's own output lines (`#N 0.012 text` → `text`).
    pub logs: Vec<String>,
}

/// Parses BuildKit-style plain progress (`#N ...` lines; a header may be printed again when a
/// step's output resumes after another step's).
pub fn plain_steps(stderr: &str) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    for line in stderr.lines() {
        let Some(rest) = line.strip_prefix('#') else { continue };
        let Some((num, body)) = rest.split_once(' ') else { continue };
        let Ok(id) = num.parse::<u32>() else { continue };
        let idx = match steps.iter().position(|s| s.id == id) {
            Some(i) => i,
            None => {
                steps.push(Step { id, name: String::new(), state: StepState::Unfinished, logs: Vec::new() });
                steps.len() - 1
            }
        };
        let step = &mut steps[idx];
        if body.starts_with('[') {
            if step.name.is_empty() {
                step.name = body.to_string();
            }
        } else if body == "CACHED" {
            step.state = StepState::Cached;
        } else if body.starts_with("DONE") {
            step.state = StepState::Done;
        } else if body.starts_with("ERROR") {
            step.state = StepState::Error;
        } else if let Some((time, text)) = body.split_once(' ')
            && time.parse::<f64>().is_ok()
        {
            step.logs.push(text.to_string());
        }
    }
    steps
}

/// The step whose header contains `needle`, or a panic listing the steps.
#[track_caller]
pub fn step<'a>(steps: &'a [Step], needle: &str) -> &'a Step {
    steps.iter().find(|s| s.name.contains(needle)).unwrap_or_else(|| panic!("no step {needle:?} in {steps:#?}"))
}

// ---------------------------------------------------------------------------------------------
// Sandbox tests (issue 5).

/// Compiles a C program from `tests/data/NAME.c` into a static executable at `out` (so it runs
/// in the busybox image). Needs Debian's gcc and libc6-dev.
pub fn compile_static(name: &str, out: &Path) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(format!("{name}.c"));
    run(Command::new(tool("cc", "gcc libc6-dev")).args(["-static", "-O", "-o"]).arg(out).arg(&src)).ok();
}

/// Every file under `root` whose bytes contain `needle`; gzip files (layer blobs) are searched
/// decompressed too. Symlinks are not followed.
pub fn files_containing(root: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = fs::symlink_metadata(&path) else { continue };
            if meta.is_dir() {
                stack.push(path);
                continue;
            }
            if !meta.is_file() {
                continue;
            }
            let Ok(data) = fs::read(&path) else { continue };
            let contains = |hay: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
            if contains(&data) {
                found.push(path);
            } else if data.starts_with(&[0x1f, 0x8b]) {
                let r = run(Command::new(tool("gzip", "gzip")).arg("-dc").arg(&path));
                if contains(r.stdout.as_bytes()) {
                    found.push(path);
                }
            }
        }
    }
    found
}

impl Env {
    /// `strata build --progress plain -t TAG EXTRA... CONTEXT` with `TMPDIR` set to a fresh,
    /// private directory (returned), so a test can see what the build left in it.
    pub fn build_private_tmp(&self, context: &Path, tag: &str, extra: &[&str]) -> (Run, PathBuf) {
        let tmp = tempfile::Builder::new().prefix("tmp-").tempdir_in(self.dir.path()).unwrap().keep();
        let mut args = vec!["build", "--progress", "plain", "-t", tag];
        args.extend_from_slice(extra);
        args.push(context.to_str().unwrap());
        let r = run(Command::new(STRATA)
            .arg("--root")
            .arg(&self.root)
            .args(&args)
            .env("DOCKER_CONFIG", &self.docker_config)
            .env("TMPDIR", &tmp)
            .env_remove("STRATA_ROOT")
            .env_remove("XDG_DATA_HOME")
            .env("NO_COLOR", "1"));
        (r, tmp)
    }
}

/// The names in a directory (for "nothing left behind" checks).
pub fn dir_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        fs::read_dir(dir).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}
