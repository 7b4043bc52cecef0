//! GC and fsck on real store directories: what prune keeps (named images, records the policy
//! keeps, everything a live lease names, temporary files of live processes) and removes (the
//! rest), the keep policies, prune racing a process that uses content, and fsck finding and
//! repairing each kind of damage without touching anything valid.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use strata_store::Store;
use strata_store::digest::Digest;
use strata_store::fsck::{ProblemKind, fsck};
use strata_store::gc::{self, BuildCache, CacheEntry, Policy};
use strata_store::image::write_image;
use strata_store::layer::{self, PackOptions};
use strata_store::lease::{self, Item, Lease};
use strata_store::oci::{Compression, Descriptor, ImageConfig, Platform};

/// A minimal build cache: `ROOT/cache/keys/<id>.json` = `{"blob": "...", "snapshot": "..."}`.
struct TestCache {
    root: PathBuf,
}

impl TestCache {
    fn new(store: &Store) -> TestCache {
        fs::create_dir_all(store.cache_dir().join("keys")).unwrap();
        fs::create_dir_all(store.cache_dir().join("mounts")).unwrap();
        TestCache { root: store.root().to_path_buf() }
    }
    fn dir(&self) -> PathBuf {
        self.root.join("cache/keys")
    }
    fn put(&self, id: &str, layer: &(Digest, Digest), age: Duration) {
        let p = self.dir().join(format!("{id}.json"));
        let doc = serde_json::json!({ "blob": layer.0.to_string(), "snapshot": layer.1.to_string() });
        fs::write(&p, doc.to_string()).unwrap();
        fs::File::options().write(true).open(&p).unwrap().set_modified(SystemTime::now() - age).unwrap();
    }
    /// A cache hit, as the builder's does it: recorded in the lease, then read.
    fn hit(&self, id: &str) -> bool {
        let _g = lease::protect(&self.root, &[Item::CacheRecord(id.to_string())]).unwrap();
        self.dir().join(format!("{id}.json")).exists()
    }
}

impl BuildCache for TestCache {
    fn records(&self) -> Vec<CacheEntry> {
        let mut out = Vec::new();
        for e in fs::read_dir(self.dir()).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(id) = name.strip_suffix(".json") else { continue };
            let path = e.path();
            let last_used = fs::metadata(&path).unwrap().modified().unwrap();
            let mut entry = CacheEntry {
                id: id.to_string(),
                path: path.clone(),
                last_used,
                blob: None,
                snapshot: None,
                broken: None,
            };
            match serde_json::from_slice::<serde_json::Value>(&fs::read(&path).unwrap()) {
                Ok(v) => {
                    entry.blob = v["blob"].as_str().and_then(|s| s.parse().ok());
                    entry.snapshot = v["snapshot"].as_str().and_then(|s| s.parse().ok());
                }
                Err(e) => entry.broken = Some(e.to_string()),
            }
            out.push(entry);
        }
        out
    }
    fn remove_record(&self, id: &str) -> io::Result<()> {
        fs::remove_file(self.dir().join(format!("{id}.json")))
    }
    fn mounts_dir(&self) -> Option<PathBuf> {
        Some(self.root.join("cache/mounts"))
    }
    fn write_dirs(&self) -> Vec<PathBuf> {
        vec![self.dir()]
    }
    fn history_dirs(&self) -> Vec<PathBuf> {
        Vec::new()
    }
}

/// Commits a one-file layer (blob + snapshot); returns (blob digest, diff_id).
fn make_layer(store: &Store, name: &str, size: usize) -> (Digest, Digest, Descriptor) {
    let scratch = store.snapshots.scratch().unwrap();
    let data: Vec<u8> = (0..size).map(|i| (i * 7 + name.len()) as u8).collect();
    fs::write(scratch.upper().join(name), data).unwrap();
    let blob =
        layer::commit_layer(&store.blobs, &scratch.upper(), &[], Compression::Gzip, &PackOptions::default()).unwrap();
    store.snapshots.install(&scratch.upper(), &blob.diff_id).unwrap();
    (blob.descriptor.digest.clone(), blob.diff_id.clone(), blob.descriptor)
}

/// An image of the given layers, named `name` if given; returns its manifest digest.
fn make_image(store: &Store, layers: &[&(Digest, Digest, Descriptor)], name: Option<&str>) -> Digest {
    let mut config = ImageConfig::scratch(&Platform::host());
    config.rootfs.diff_ids = layers.iter().map(|l| l.1.clone()).collect();
    let descs: Vec<Descriptor> = layers.iter().map(|l| l.2.clone()).collect();
    let img = write_image(&store.blobs, &config, &descs, None).unwrap();
    if let Some(n) = name {
        store.layout.set(n, &img.descriptor).unwrap();
    }
    img.descriptor.digest
}

fn pair(l: &(Digest, Digest, Descriptor)) -> (Digest, Digest) {
    (l.0.clone(), l.1.clone())
}

fn present(store: &Store, l: &(Digest, Digest, Descriptor)) -> bool {
    store.blobs.path(&l.0).is_file() && store.snapshots.path(&l.1).is_dir()
}

const HOUR: Duration = Duration::from_secs(3600);

#[test]
fn prune_keeps_roots_and_removes_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let cache = TestCache::new(&store);
    let base = make_layer(&store, "base", 100);
    let named = make_image(&store, &[&base], Some("r/named:1"));
    let orphan_layer = make_layer(&store, "orphan", 100);
    let orphan = make_image(&store, &[&base, &orphan_layer], None);
    let cached_old = make_layer(&store, "old", 100);
    let cached_new = make_layer(&store, "new", 100);
    cache.put("old", &pair(&cached_old), 48 * HOUR);
    cache.put("new", &pair(&cached_new), Duration::ZERO);
    // Leftovers of a killed process.
    fs::create_dir_all(dir.path().join("tmp/step-dead/upper")).unwrap();
    fs::write(dir.path().join("ingest/blob-dead"), b"partial").unwrap();
    fs::write(dir.path().join(".tmp-index"), b"{").unwrap();
    fs::create_dir_all(dir.path().join("cache/mounts").join("a".repeat(64))).unwrap();

    // until=24h: the old record goes, the recent one stays; garbage goes either way.
    let r = gc::prune(&store, &cache, &Policy { until: Some(24 * HOUR), ..Policy::default() }).unwrap();
    assert_eq!((r.records, r.blobs, r.snapshots, r.cache_mounts), (1, 4, 2, 0), "{r:?}");
    assert!(r.temporary >= 3, "{r:?}");
    assert!(present(&store, &base) && present(&store, &cached_new));
    assert!(!present(&store, &cached_old) && !store.blobs.path(&orphan_layer.0).exists());
    assert!(store.blobs.path(&named).is_file() && !store.blobs.path(&orphan).exists());
    assert!(!dir.path().join("tmp/step-dead").exists() && !dir.path().join("ingest/blob-dead").exists());
    assert!(!dir.path().join(".tmp-index").exists());
    assert!(dir.path().join("cache/mounts").join("a".repeat(64)).exists(), "a new cache mount stays");
    assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0, "the trash is emptied");

    // No filter: the whole build cache goes, the named image stays.
    let r = gc::prune(&store, &cache, &Policy::default()).unwrap();
    assert_eq!((r.records, r.cache_mounts), (1, 1), "{r:?}");
    assert!(!present(&store, &cached_new) && present(&store, &base));
    let report = fsck(&store, &cache, false).unwrap();
    assert!(report.problems.is_empty() && report.images == 1, "{report:?}");
}

#[test]
fn keep_storage_removes_least_recently_used_first() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let cache = TestCache::new(&store);
    // Incompressible-ish layers of ~40 kB each.
    let layers: Vec<_> = (0..4)
        .map(|i| {
            let scratch = store.snapshots.scratch().unwrap();
            let mut x: u64 = 0x9e3779b97f4a7c15 ^ i;
            let data: Vec<u8> = (0..40_000)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            fs::write(scratch.upper().join("f"), data).unwrap();
            let b =
                layer::commit_layer(&store.blobs, &scratch.upper(), &[], Compression::Gzip, &PackOptions::default())
                    .unwrap();
            store.snapshots.install(&scratch.upper(), &b.diff_id).unwrap();
            (b.descriptor.digest.clone(), b.diff_id.clone(), b.descriptor)
        })
        .collect();
    // Record i was last used i hours ago: record 3 is the least recently used.
    for (i, l) in layers.iter().enumerate() {
        cache.put(&format!("r{i}"), &pair(l), HOUR * i as u32);
    }
    let before = gc::usage(&store, &cache).unwrap().build_cache;
    assert_eq!(before.total, 4);
    let per_record = before.size / 4;
    // Keep room for a bit more than two records: the two least recently used go.
    let keep = per_record * 2 + per_record / 2;
    let r = gc::prune(&store, &cache, &Policy { keep_storage: Some(keep), ..Policy::default() }).unwrap();
    assert_eq!(r.records, 2, "{r:?}");
    let left: Vec<String> = cache.records().into_iter().map(|e| e.id).collect();
    let mut left = left;
    left.sort();
    assert_eq!(left, ["r0", "r1"]);
    let after = gc::usage(&store, &cache).unwrap().build_cache;
    assert!(after.size <= keep, "{after:?} > {keep}");
    // Dry run: reports, removes nothing.
    let r = gc::prune(&store, &cache, &Policy { dry_run: true, ..Policy::default() }).unwrap();
    assert_eq!(r.records, 2);
    assert_eq!(cache.records().len(), 2);
}

#[test]
fn nothing_a_live_lease_uses_or_made_is_pruned() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let cache = TestCache::new(&store);
    let used = make_layer(&store, "used", 100);
    let hit = make_layer(&store, "hit", 100);
    cache.put("hit", &pair(&hit), 48 * HOUR);
    let unused = make_layer(&store, "unused", 100);
    // Made an hour ago, by a process long gone.
    for p in [store.blobs.path(&unused.0), store.snapshots.path(&unused.1)] {
        fs::File::open(&p).unwrap().set_modified(SystemTime::now() - HOUR).unwrap();
    }
    let stale_scratch = dir.path().join("tmp/step-stale");
    fs::create_dir_all(&stale_scratch).unwrap();
    fs::File::open(&stale_scratch).unwrap().set_modified(SystemTime::now() - HOUR).unwrap();

    let lease = Lease::acquire(dir.path()).unwrap();
    // What a build does: look up a blob and a snapshot, hit a record, make new content and a
    // scratch directory.
    assert!(store.blobs.contains(&used.0) && store.snapshots.contains(&used.1));
    assert!(cache.hit("hit"));
    let made = make_layer(&store, "made-by-the-build", 100);
    let live_scratch = store.snapshots.scratch().unwrap();
    let mount = dir.path().join("cache/mounts").join("b".repeat(64));
    fs::create_dir_all(&mount).unwrap();

    let r = gc::prune(&store, &cache, &Policy::default()).unwrap();
    assert!(present(&store, &used) && present(&store, &hit) && present(&store, &made));
    assert!(cache.records().iter().any(|e| e.id == "hit"), "a record in use is kept");
    assert!(live_scratch.path().exists() && mount.exists());
    assert!(!present(&store, &unused) && !stale_scratch.exists(), "{r:?}");
    assert!(r.in_use >= 2, "{r:?}");
    let u = gc::usage(&store, &cache).unwrap();
    assert_eq!(u.build_cache.active, 1);

    // The process ends: everything it held becomes collectable.
    drop(live_scratch);
    drop(lease);
    let r = gc::prune(&store, &cache, &Policy::default()).unwrap();
    assert!(!present(&store, &used) && !present(&store, &hit) && !present(&store, &made), "{r:?}");
    assert!(!mount.exists());
}

#[test]
fn a_killed_process_lease_protects_nothing() {
    // A lease whose process is gone (its file stays, its lock does not).
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let cache = TestCache::new(&store);
    let l = make_layer(&store, "l", 10);
    let leases = dir.path().join("leases");
    fs::create_dir_all(&leases).unwrap();
    fs::write(leases.join("00000000000000000001-4242.lease"), format!("blob {}\nsnapshot {}\n", l.0.hex(), l.1.hex()))
        .unwrap();
    let r = gc::prune(&store, &cache, &Policy::default()).unwrap();
    assert_eq!((r.blobs, r.snapshots, r.dead_leases), (1, 1, 1), "{r:?}");
    assert_eq!(fs::read_dir(&leases).unwrap().count(), 0);
}

#[test]
fn prune_racing_a_user_of_the_content_never_removes_what_it_checked() {
    // One thread keeps "using" unnamed content the way builds do (look it up in the store, then
    // read it); another prunes in a loop. Every successful look-up must be followed by a
    // successful read. Without the lease protocol prune removes the content between the two.
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let cache = TestCache::new(&store);
    let _lease = Lease::acquire(dir.path()).unwrap();
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let pruner = s.spawn(|| {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                gc::prune(&store, &cache, &Policy::default()).unwrap();
                n += 1;
            }
            n
        });
        let used = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            for i in 0..40 {
                // Content that existed before this process looked (not made by it): only the look-up
                // protects it.
                let data = format!("blob {i}");
                let d = Digest::of(data.as_bytes());
                let path = store.blobs.path(&d);
                fs::write(&path, &data).unwrap();
                fs::File::options().write(true).open(&path).unwrap().set_modified(SystemTime::now() - HOUR).unwrap();
                if store.blobs.contains(&d) {
                    std::thread::sleep(Duration::from_millis(5));
                    let read = store.blobs.read(&d);
                    assert!(read.is_ok_and(|r| r == data.as_bytes()), "blob {i} pruned after it was looked up");
                }
            }
        }));
        stop.store(true, Ordering::SeqCst);
        if let Err(p) = used {
            std::panic::resume_unwind(p);
        }
        assert!(pruner.join().unwrap() > 5, "prune ran concurrently");
    });
}

#[test]
fn fsck_finds_and_repairs_each_kind_of_damage_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let store = Store::open(root).unwrap();
    let cache = TestCache::new(&store);
    let good = make_layer(&store, "good", 100);
    let good_image = make_image(&store, &[&good], Some("r/good:1"));
    let bad_layer = make_layer(&store, "bad", 100);
    let missing_manifest = Digest::of(b"never stored");
    store
        .layout
        .set("r/missing:1", &Descriptor::new(strata_store::oci::media::OCI_MANIFEST, missing_manifest, 10))
        .unwrap();
    let no_config = {
        let mut config = ImageConfig::scratch(&Platform::host());
        config.rootfs.diff_ids = vec![good.1.clone()];
        config.created = Some("2026-01-01T00:00:00Z".into()); // not the good image's config
        let img = write_image(&store.blobs, &config, std::slice::from_ref(&good.2), None).unwrap();
        fs::remove_file(store.blobs.path(&img.manifest.config.digest)).unwrap();
        store.layout.set("r/noconfig:1", &img.descriptor).unwrap();
        img.descriptor.digest
    };
    let _ = no_config;
    // A corrupt blob, a stray file, a record pointing at a missing blob, a broken record, a
    // snapshot that is a file.
    fs::write(store.blobs.path(&bad_layer.0), b"flipped bits").unwrap();
    fs::write(root.join("blobs/sha256/not-a-digest"), b"x").unwrap();
    cache.put("dangling", &(Digest::of(b"gone"), Digest::of(b"gone-tar")), Duration::ZERO);
    cache.put("good", &pair(&good), Duration::ZERO);
    fs::write(cache.dir().join("broken.json"), b"{nope").unwrap();
    fs::write(root.join("snapshots").join(Digest::of(b"file").hex()), b"").unwrap();
    // Leftovers of a crash are notes, not problems.
    fs::create_dir_all(root.join("tmp/step-x")).unwrap();

    let report = fsck(&store, &cache, false).unwrap();
    let mut kinds: Vec<(ProblemKind, String)> =
        report.problems.iter().map(|p| (p.kind, p.subject.rsplit('/').next().unwrap().to_string())).collect();
    kinds.sort_by_key(|k| format!("{k:?}"));
    let expect = [
        (ProblemKind::BadSnapshot, Digest::of(b"file").hex().to_string()),
        (ProblemKind::BrokenImage, format!("missing:1@{}", Digest::of(b"never stored"))),
        (ProblemKind::BrokenImage, format!("noconfig:1@{no_config}")),
        (ProblemKind::BrokenRecord, "broken".into()),
        (ProblemKind::CorruptBlob, bad_layer.0.hex().to_string()),
        (ProblemKind::DanglingRecord, "dangling".into()),
        (ProblemKind::StrayFile, "not-a-digest".into()),
    ];
    let mut expect: Vec<_> = expect.into_iter().collect();
    expect.sort_by_key(|k| format!("{k:?}"));
    assert_eq!(kinds, expect, "{report:#?}");
    assert!(!report.ok());
    assert!(report.notes.iter().any(|n| n.contains("leftover temporary")), "{:?}", report.notes);

    let repaired = fsck(&store, &cache, true).unwrap();
    assert!(repaired.ok() && repaired.problems.iter().all(|p| p.repaired));
    let after = fsck(&store, &cache, false).unwrap();
    assert!(after.problems.is_empty(), "{after:#?}");
    // Everything valid is still there.
    assert!(present(&store, &good) && store.blobs.path(&good_image).is_file());
    assert_eq!(store.layout.list().unwrap().into_iter().map(|n| n.name).collect::<Vec<_>>(), ["r/good:1"]);
    assert!(cache.records().iter().any(|r| r.id == "good"));
    assert!(store.snapshots.path(&bad_layer.1).is_dir(), "the snapshot of the corrupt blob's layer is valid");
    assert!(root.join("tmp/step-x").exists(), "fsck leaves leftovers to prune");
}

#[test]
fn fsck_repairs_a_damaged_index_and_layout_marker() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    fs::write(dir.path().join("index.json"), b"{\"manifests\": [").unwrap();
    fs::remove_file(dir.path().join("oci-layout")).unwrap();
    let report = fsck(&store, &gc::NoBuildCache, false).unwrap();
    let kinds: Vec<ProblemKind> = report.problems.iter().map(|p| p.kind).collect();
    assert_eq!(kinds, [ProblemKind::BadLayoutMarker, ProblemKind::DamagedIndex]);
    // GC refuses to run without readable roots.
    let e = gc::prune(&store, &gc::NoBuildCache, &Policy::default()).unwrap_err();
    assert!(e.to_string().contains("nothing was removed"), "{e}");
    fsck(&store, &gc::NoBuildCache, true).unwrap();
    assert!(fsck(&store, &gc::NoBuildCache, false).unwrap().problems.is_empty());
    assert!(dir.path().join("index.json.damaged").exists());
}

/// Keeps the helper referenced when a test is filtered out.
#[allow(dead_code)]
fn _unused(_: &Path) {}
