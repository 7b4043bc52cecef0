//! Crash safety, end to end: `strata build --push` is killed with SIGKILL at random moments —
//! while it pulls its base image, while a RUN step runs, while a layer is committed, while it
//! pushes, or at a uniformly random time — and after every kill:
//! - `strata fsck` finds no problem (leftovers of the killed process are only notes);
//! - the same build then succeeds, and its layers are byte-identical (same digests) to those of
//!   an uninterrupted reference build in another store: nothing half-made was reused;
//! - building once more gives the same manifest digest (fully cached: the cache the crash left is
//!   consistent), and the registry holds that manifest.
//!
//! The Dockerfile's layers are deterministic (fixed file times; the base has the sandbox's mount
//! points already), so layer digests can be
//! compared across stores; image digests cannot, since a layer's creation time enters the
//! config. Each iteration uses a fresh store, so every build pulls. The loop is bounded by time
//! (about 90 s) and count; the seed is printed and can be fixed with STRATA_CRASH_SEED.

mod common;

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use common::{Env, STRATA};

const DOCKERFILE: &str = "FROM {BIG}
COPY data /data
RUN mkdir -p /out && head -c 3000000 /big > /out/part && cat /data >> /out/part && touch -d '2000-01-01 00:00:00' /out/part /out
RUN gzip -1 -c /out/part > /out/part.gz && touch -d '2000-01-01 00:00:00' /out/part.gz /out
";

/// xorshift64*: enough randomness for kill times, reproducible from the printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545F4914F6CDD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Deterministic incompressible bytes.
fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut r = Rng(seed | 1);
    (0..n).map(|_| r.next() as u8).collect()
}

/// Where in the build to kill it: after the first stderr line containing `marker`, plus a random
/// delay below `jitter_ms`.
struct Phase {
    name: &'static str,
    marker: &'static str,
    jitter_ms: u64,
}

const PHASES: [Phase; 5] = [
    Phase { name: "pull", marker: "pulling sha256:", jitter_ms: 250 },
    Phase { name: "RUN", marker: "RUN mkdir", jitter_ms: 400 },
    Phase { name: "layer commit", marker: "RUN gzip", jitter_ms: 900 },
    Phase { name: "push", marker: "pushing", jitter_ms: 60 },
    // Jitter 0: anywhere within the reference build's duration.
    Phase { name: "anywhere", marker: "", jitter_ms: 0 },
];

/// Runs the build in the background and SIGKILLs it in `phase`. Returns what happened.
fn build_and_kill(env: &Env, root: &Path, args: &[&str], phase: &Phase, whole_ms: u64, rng: &mut Rng) -> String {
    let mut child = Command::new(STRATA)
        .arg("--root")
        .arg(root)
        .args(args)
        .env("DOCKER_CONFIG", &env.docker_config)
        .env_remove("STRATA_ROOT")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    if !phase.marker.is_empty() {
        loop {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(line) => {
                    let hit = line.contains(phase.marker);
                    seen.push(line);
                    if hit {
                        break;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() < deadline => {}
                Err(_) => break,
            }
        }
    }
    let jitter = if phase.jitter_ms == 0 { whole_ms } else { phase.jitter_ms };
    std::thread::sleep(Duration::from_millis(rng.below(jitter)));
    let outcome = match child.try_wait().unwrap() {
        Some(status) => format!("finished before the kill ({status})"),
        None => {
            child.kill().unwrap();
            child.wait().unwrap();
            "killed".to_string()
        }
    };
    drop(rx);
    let _ = reader.join();
    let last = seen.last().cloned().unwrap_or_default();
    format!("{outcome} after {last:?}")
}

fn manifest_digest(env: &Env, root: &Path, name: &str) -> String {
    common::inspect_at(env, root, name)["Descriptor"]["digest"].as_str().unwrap().to_string()
}

#[test]
fn builds_killed_at_random_moments_leave_a_sound_store() {
    let env = Env::new();
    // A base image big enough that pulling and unpacking it takes a while.
    let rootfs = env.path("big-rootfs");
    common::busybox_rootfs(&rootfs);
    fs::write(rootfs.join("big"), noise(24 << 20, 7)).unwrap();
    // The sandbox's mount points exist already, so RUN layers hold only what the steps wrote.
    for d in ["dev", "proc", "sys"] {
        fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    for f in ["etc/hosts", "etc/resolv.conf", "etc/hostname"] {
        fs::write(rootfs.join(f), "").unwrap();
    }
    let big = format!("{}/bigbase:1", env.registry.host);
    env.strata(&["import", rootfs.to_str().unwrap(), "-t", &big]).ok();
    env.strata(&["push", &big]).ok();

    let ctx = env.context("ctx", &[("Dockerfile", &DOCKERFILE.replace("{BIG}", &big)), ("data", "some data\n")]);
    let epoch = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    fs::File::options().write(true).open(ctx.join("data")).unwrap().set_modified(epoch).unwrap();
    let target = format!("{}/crash:latest", env.registry.host);
    let args = ["build", "--progress", "plain", "-t", &target, "--push", ctx.to_str().unwrap()];

    // The uninterrupted reference, in its own store.
    let reference = env.path("reference");
    let t = Instant::now();
    env.strata_at(&reference, &args).ok();
    let whole_ms = t.elapsed().as_millis() as u64;
    let ref_layers = common::layer_digests(&common::inspect_at(&env, &reference, &target));

    let seed = std::env::var("STRATA_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_nanos() as u64);
    eprintln!("crash test seed: {seed} (STRATA_CRASH_SEED={seed} repeats it)");
    let mut rng = Rng(seed | 1);
    let start = Instant::now();
    let mut killed = 0;
    let mut i = 0;
    while i < 20 && (i < PHASES.len() * 2 || start.elapsed() < Duration::from_secs(90)) {
        let phase = &PHASES[i % PHASES.len()];
        let root = env.path(&format!("store-{i}"));
        let what = build_and_kill(&env, &root, &args, phase, whole_ms, &mut rng);
        if what.starts_with("killed") {
            killed += 1;
        }
        let context = format!("iteration {i} (seed {seed}), killed during {}: {what}", phase.name);
        eprintln!("{context}");

        let f = env.strata_at(&root, &["fsck"]);
        assert!(f.success() && f.stdout.contains("no problems"), "{context}\n{f}");
        let rebuilt = env.strata_at(&root, &args);
        assert!(rebuilt.success(), "{context}: the build after the crash failed\n{rebuilt}");
        let layers = common::layer_digests(&common::inspect_at(&env, &root, &target));
        assert_eq!(layers, ref_layers, "{context}: layers differ from the uninterrupted build");
        let digest = manifest_digest(&env, &root, &target);
        env.strata_at(&root, &args).ok();
        assert_eq!(manifest_digest(&env, &root, &target), digest, "{context}: a cached rebuild differs");
        let pushed = common::skopeo(&["inspect", "--tls-verify=false", "--raw", &format!("docker://{target}")]).ok();
        assert_eq!(format!("sha256:{}", common::sha256_hex(pushed.stdout.as_bytes())), digest, "{context}");
        let f = env.strata_at(&root, &["fsck"]).ok();
        assert!(f.stdout.contains("no problems"), "{context}\n{f}");
        // Prune clears what the crash left behind, then the store is still sound.
        env.strata_at(&root, &["prune", "--filter", "until=1h"]).ok();
        assert_eq!(fs::read_dir(root.join("tmp")).unwrap().count(), 0, "{context}: scratch left after prune");
        assert_eq!(fs::read_dir(root.join("ingest")).unwrap().count(), 0, "{context}: ingest left after prune");
        fs::remove_dir_all(&root).unwrap();
        i += 1;
    }
    assert!(killed * 2 >= i, "most builds must really be killed ({killed} of {i})");
}
