//! The fuzz targets' bodies (`strata_store::fuzzing`, also run by cargo-fuzz from `fuzz/`) on
//! stable, in CI: first every file of the hostile corpus (`testdata/hostile/`) and a few valid
//! inputs, then random mutations of them (bit flips, byte changes, truncation, duplication,
//! splicing, interesting numbers in tar size fields) for a fixed time per target —
//! `STRATA_FUZZ_SECONDS` (default 15). The seed is printed; `STRATA_FUZZ_SEED` repeats a run.
//! A failure names the seed and iteration, and the input is written to the temp directory.

mod layer_support;

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use layer_support::*;
use strata_store::fuzzing;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545F4914F6CDD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn seeds(valid: Vec<Vec<u8>>, prefixes: &[&str]) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/hostile");
    let mut out = valid;
    let mut names: Vec<_> = fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    names.sort();
    for p in names {
        let n = p.file_name().unwrap().to_string_lossy().into_owned();
        if prefixes.iter().any(|pre| n.starts_with(pre)) {
            out.push(fs::read(&p).unwrap());
        }
    }
    assert!(out.len() > 3, "no seeds found in {}", dir.display());
    out
}

/// One mutation of `input`, sometimes spliced with `other`.
fn mutate(rng: &mut Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut d = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        match rng.below(8) {
            0 if !d.is_empty() => {
                let i = rng.below(d.len());
                d[i] ^= 1 << rng.below(8);
            }
            1 if !d.is_empty() => {
                let i = rng.below(d.len());
                d[i] = rng.next() as u8;
            }
            2 if !d.is_empty() => d.truncate(rng.below(d.len())),
            3 if !d.is_empty() => {
                let (a, b) = (rng.below(d.len()), rng.below(d.len()));
                let chunk = d[a.min(b)..a.max(b)].to_vec();
                let at = rng.below(d.len());
                d.splice(at..at, chunk);
            }
            4 if !other.is_empty() => {
                let cut = rng.below(d.len() + 1);
                let from = rng.below(other.len());
                d.truncate(cut);
                d.extend_from_slice(&other[from..]);
            }
            5 if d.len() >= 512 => {
                // An interesting number in the size field of a tar header.
                let block = rng.below(d.len() / 512) * 512;
                let values: [&[u8]; 5] = [b"77777777777", b"00000000000", b"\x80\0\0\0\0\0\0\x10\0\0\0", b"-1", b"1e9"];
                let v = values[rng.below(values.len())];
                d[block + 124..block + 124 + v.len()].copy_from_slice(v);
            }
            6 if !d.is_empty() => {
                // JSON-ish: replace a digit run's digit with a large number.
                let i = rng.below(d.len());
                if d[i].is_ascii_digit() {
                    d.splice(i..i + 1, b"18446744073709551615".iter().copied());
                }
            }
            _ => d.extend((0..rng.below(64)).map(|_| rng.next() as u8)),
        }
    }
    d
}

fn budget() -> Duration {
    let secs = std::env::var("STRATA_FUZZ_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(15);
    Duration::from_secs(secs)
}

fn seed() -> u64 {
    std::env::var("STRATA_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
    })
}

/// Runs `body` on every seed, then on mutations until the time budget is spent.
fn smoke(name: &str, body: fn(&[u8]), seeds: Vec<Vec<u8>>) {
    for s in &seeds {
        body(s);
    }
    let seed = seed();
    eprintln!("{name}: seed {seed} (STRATA_FUZZ_SEED={seed} repeats it)");
    let mut rng = Rng(seed | 1);
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < budget() {
        let a = &seeds[rng.below(seeds.len())];
        let b = &seeds[rng.below(seeds.len())];
        let input = mutate(&mut rng, a, b);
        let r = std::panic::catch_unwind(|| body(&input));
        if let Err(p) = r {
            let path = std::env::temp_dir().join(format!("strata-fuzz-{name}-{seed}-{n}"));
            let _ = fs::write(&path, &input);
            eprintln!("{name}: input {n} of seed {seed} failed; saved to {}", path.display());
            std::panic::resume_unwind(p);
        }
        n += 1;
    }
    eprintln!("{name}: {n} mutated inputs in {:?}", start.elapsed());
    assert!(n > 50, "{name}: too few inputs ran ({n})");
}

fn valid_layers() -> Vec<Vec<u8>> {
    let t = tempfile::tempdir().unwrap();
    build_rich_upper(t.path());
    let tar = strata_store::layer::write_tar(t.path(), &[], Vec::new(), &strata_store::layer::PackOptions::default())
        .unwrap();
    vec![gzip(&tar), tar, tar_of(&[dir("d"), file("d/f", b"x"), symlink("l", "d"), hardlink("h", "d/f")])]
}

#[test]
fn tar_read_smoke() {
    smoke("tar_read", fuzzing::tar_read, seeds(valid_layers(), &["layer-"]));
}

#[test]
fn layer_unpack_smoke() {
    smoke("layer_unpack", fuzzing::layer_unpack, seeds(valid_layers(), &["layer-"]));
}

#[test]
fn manifest_smoke() {
    let valid = vec![
        br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":32,"annotations":{"a":"b"}}],"annotations":{"k":"v"}}"#.to_vec(),
        br#"{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":7,"platform":{"architecture":"arm64","os":"linux","variant":"v8"}}]}"#.to_vec(),
        br#"{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/bin"],"Cmd":["sh"],"ExposedPorts":{"80/tcp":{}},"Healthcheck":{"Test":["CMD","true"],"Interval":1000}},"rootfs":{"type":"layers","diff_ids":["sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"]},"history":[{"created":"2026-01-01T00:00:00Z","created_by":"x","empty_layer":true}]}"#.to_vec(),
    ];
    smoke("manifest", fuzzing::manifest, seeds(valid, &["manifest-", "index-", "config-"]));
}
