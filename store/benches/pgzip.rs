//! Benchmark of layer gzip: the old single-threaded encoder (flate2's `GzEncoder`) against
//! [`strata_store::layer::pgzip`] with one thread and with all cores, at levels 1, 3 and 6,
//! on (a) random bytes (incompressible, like a context of binaries or archives) and (b) the tar
//! of a real tree; then `commit_layer` end to end on a tree of random files, against the old
//! single-threaded pipeline (tar -> sha256 -> GzEncoder -> blob writer).
//!
//! Run: `cargo bench -p strata-store --bench pgzip`. Environment:
//! - `PGZIP_BENCH_RANDOM_MB` (default 128): size of the random data set;
//! - `PGZIP_BENCH_TREE` (default `/var/tmp/peers/debian-rootfs`, else `/usr/lib`): the tree
//!   whose tar is the compressible data set;
//! - `PGZIP_BENCH_E2E_MB` (default 174): size of the random-file tree committed end to end;
//! - `PGZIP_BENCH_LEVELS` (default `1,3,6`), `PGZIP_BENCH_RUNS` (default 2, best run kept);
//! - `PGZIP_BENCH_ONLY` (default `abc`): which of the three parts to run.
//!
//! MB/s are of uncompressed input (10^6 bytes per second of wall time); CPU is the process's
//! user+system seconds, which shows the cost on a machine that is shared.

use std::env;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use strata_store::blobs::BlobStore;
use strata_store::digest::HashingWriter;
use strata_store::layer::{GzipOptions, PackOptions, ParGzEncoder, commit_layer, write_tar};
use strata_store::oci::Compression;

/// Counts bytes and throws them away.
struct Count(u64);
impl Write for Count {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn env_num(name: &str, default: usize) -> usize {
    env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The process's CPU time (user + system) in seconds, from /proc/self/stat.
fn cpu_seconds() -> f64 {
    let stat = fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 =
        f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0) + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

/// Deterministic incompressible bytes (xorshift64*).
fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        v.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    v.truncate(len);
    v
}

struct Run {
    wall: f64,
    cpu: f64,
    out: u64,
}

/// Best of `runs` (by wall time) of `f`.
fn best(runs: usize, mut f: impl FnMut() -> u64) -> Run {
    let mut best: Option<Run> = None;
    for _ in 0..runs.max(1) {
        let (t, c) = (Instant::now(), cpu_seconds());
        let out = f();
        let r = Run { wall: t.elapsed().as_secs_f64(), cpu: cpu_seconds() - c, out };
        if best.as_ref().is_none_or(|b| r.wall < b.wall) {
            best = Some(r);
        }
    }
    best.expect("at least one run")
}

/// Feeds `data` in 256 KiB writes, as the tar writer does.
fn feed(w: &mut impl Write, data: &[u8]) {
    for chunk in data.chunks(256 * 1024) {
        w.write_all(chunk).expect("write");
    }
}

fn old_gzip(data: &[u8], level: u32) -> u64 {
    let mut e = flate2::GzBuilder::new().mtime(0).write(Count(0), flate2::Compression::new(level));
    feed(&mut e, data);
    e.finish().expect("finish").0
}

fn new_gzip(data: &[u8], level: u32, threads: usize) -> u64 {
    let opts = GzipOptions { level, threads, ..GzipOptions::default() };
    let mut e = ParGzEncoder::new(Count(0), &opts).expect("options");
    feed(&mut e, data);
    e.finish().expect("finish").0
}

fn report(name: &str, input: usize, r: &Run, base: &Run) {
    let mb = input as f64 / 1e6;
    println!(
        "  {name:<26} {:>8.1} MB/s  wall {:>6.2}s  cpu {:>6.2}s  out {:>11} B ({:>6.2}%)  speed x{:.2}",
        mb / r.wall,
        r.wall,
        r.cpu,
        r.out,
        100.0 * r.out as f64 / input as f64,
        base.wall / r.wall
    );
}

fn bench_data(label: &str, data: &[u8], levels: &[u32], runs: usize, cores: usize) {
    println!("\n== {label}: {:.1} MB", data.len() as f64 / 1e6);
    for &level in levels {
        println!(" level {level}");
        let old = best(runs, || old_gzip(data, level));
        report("old GzEncoder (1 thread)", data.len(), &old, &old);
        let one = best(runs, || new_gzip(data, level, 1));
        report("pgzip 1 thread", data.len(), &one, &old);
        let all = best(runs, || new_gzip(data, level, cores));
        report(&format!("pgzip {cores} threads"), data.len(), &all, &old);
        assert_eq!(one.out, all.out, "thread count changed the size");
    }
}

/// A tree of random files adding up to `total` bytes: sizes from 1 KiB to 4 MiB, in a few
/// directories, like a build context of binaries.
fn make_tree(root: &Path, total: usize) -> usize {
    let (mut written, mut i) = (0usize, 0u64);
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    while written < total {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        let size = (1024 + (x % (4 << 20)) as usize).min(total - written);
        let dir = root.join(format!("d{}", i % 16));
        fs::create_dir_all(&dir).expect("mkdir");
        fs::write(dir.join(format!("f{i:05}")), random_bytes(size, i + 1)).expect("write file");
        written += size;
        i += 1;
    }
    written
}

/// The pipeline commit_layer had before: tar -> sha256 -> GzEncoder -> blob writer.
fn old_commit(blobs: &BlobStore, upper: &Path, level: u32) -> u64 {
    let gz = flate2::GzBuilder::new().mtime(0).write(blobs.writer().expect("blob"), flate2::Compression::new(level));
    let hashing = write_tar(upper, &[], HashingWriter::new(gz), &PackOptions::default()).expect("tar");
    let (gz, _diff_id, _) = hashing.finish();
    let (_digest, size) = gz.finish().expect("gzip").commit(None).expect("commit");
    size
}

fn new_commit(blobs: &BlobStore, upper: &Path, gzip: GzipOptions) -> u64 {
    let opts = PackOptions { gzip, ..PackOptions::default() };
    commit_layer(blobs, upper, &[], Compression::Gzip, &opts).expect("commit").descriptor.size
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is taken from the command line.
    let levels: Vec<u32> = env::var("PGZIP_BENCH_LEVELS")
        .unwrap_or_else(|_| "1,3,6".into())
        .split(',')
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    let runs = env_num("PGZIP_BENCH_RUNS", 2);
    let cores = GzipOptions::default().effective_threads();
    println!("pgzip benchmark: {cores} cores, block {} KiB, best of {runs}", GzipOptions::default().block_size / 1024);
    if let Ok(load) = fs::read_to_string("/proc/loadavg") {
        println!("load average at start: {}", load.trim());
    }

    let only = env::var("PGZIP_BENCH_ONLY").unwrap_or_else(|_| "abc".into());
    if only.contains('a') {
        bench_random(&levels, runs, cores);
    }
    if only.contains('b') {
        bench_tree(&levels, runs, cores);
    }
    if only.contains('c') {
        bench_commit(&levels, runs, cores);
    }
    if let Ok(load) = fs::read_to_string("/proc/loadavg") {
        println!("\nload average at end: {}", load.trim());
    }
}

fn bench_random(levels: &[u32], runs: usize, cores: usize) {
    let random = random_bytes(env_num("PGZIP_BENCH_RANDOM_MB", 128) << 20, 42);
    // What the CRC would cost on the caller's thread if it were not done by the workers.
    let crc = best(runs, || {
        let mut c = flate2::Crc::new();
        c.update(&random);
        u64::from(c.sum())
    });
    println!("crc32 alone, one thread: {:.0} MB/s", random.len() as f64 / 1e6 / crc.wall);
    bench_data("(a) random bytes", &random, levels, runs, cores);
}

fn bench_tree(levels: &[u32], runs: usize, cores: usize) {
    let tree = env::var_os("PGZIP_BENCH_TREE").map(PathBuf::from).unwrap_or_else(|| {
        let debian = PathBuf::from("/var/tmp/peers/debian-rootfs");
        if debian.is_dir() { debian } else { PathBuf::from("/usr/lib") }
    });
    let tar = write_tar(&tree, &[], Vec::new(), &PackOptions::default()).expect("tar of the tree");
    bench_data(&format!("(b) tar of {}", tree.display()), &tar, levels, runs, cores);
}

fn bench_commit(levels: &[u32], runs: usize, cores: usize) {
    let work = tempfile::Builder::new().prefix("pgzip-bench-").tempdir_in("/var/tmp").expect("tempdir");
    let upper = work.path().join("tree");
    let total = make_tree(&upper, env_num("PGZIP_BENCH_E2E_MB", 174) * 1_000_000);
    let blobs = BlobStore::open(&work.path().join("store")).expect("blob store");
    println!("\n== (c) commit_layer of {:.1} MB of random files", total as f64 / 1e6);
    let old = best(runs, || old_commit(&blobs, &upper, 6));
    report("old pipeline, level 6", total, &old, &old);
    for &level in levels {
        let one =
            best(runs, || new_commit(&blobs, &upper, GzipOptions { level, threads: 1, ..GzipOptions::default() }));
        report(&format!("commit_layer L{level} 1 thread"), total, &one, &old);
        let all = best(runs, || new_commit(&blobs, &upper, GzipOptions::with_level(level)));
        report(&format!("commit_layer L{level} {cores} threads"), total, &all, &old);
    }
}
