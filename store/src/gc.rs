//! Garbage collection: `strata prune` and the inventory behind `strata system df`.
//!
//! What is kept (the GC roots):
//! - every image named in `index.json`, with everything it references (index → manifests →
//!   config and layer blobs; the config's diff_ids → snapshots);
//! - the build cache records the policy keeps, with the layer blob and snapshot each names;
//! - everything the live leases of running `strata` processes name ([`crate::lease`]), and every
//!   temporary file or directory modified since the oldest live lease began.
//!
//! What the policy ([`Policy`]) chooses among: build cache records and cache mounts. With no
//! filter every record and cache mount goes (as `docker builder prune -a` empties the build
//! cache); `until` keeps those used more recently than that; `keep_storage` removes the least
//! recently used first and stops once the build cache (content only records reference, plus
//! cache mounts) fits. Records and mounts in use are never candidates; cache mounts are only
//! removed while no build runs, since a running step may have one mounted without a lease.
//! Then everything not reachable from a root goes: blobs, snapshots, stale temporary files
//! (scratch directories and ingest files of dead processes, `.tmp-*` leftovers of atomic
//! writes), dead lease files.
//!
//! GC holds `ROOT/gc.lock` exclusively while it reads the roots and leases and moves what it
//! removes into `ROOT/tmp/gc-*` (a rename, so the lock is held briefly); the trash is deleted
//! after the lock is released. If the roots cannot be read (a damaged `index.json`), nothing is
//! removed: GC never guesses. The build cache's record format belongs to the builder, so GC sees
//! it through the [`BuildCache`] trait.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::Store;
use crate::digest::Digest;
use crate::lease::{self, GcLock, Item, LiveLeases};

/// How deep indexes may nest before GC stops following them.
const MAX_DEPTH: usize = 8;

/// Errors of GC.
#[derive(Debug, thiserror::Error)]
pub enum GcError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Lease(#[from] lease::LeaseError),
    #[error("cannot read the store's image names, so nothing was removed: {0}")]
    Roots(String),
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> GcError {
    let context = context.into();
    move |source| GcError::Io { context, source }
}

/// One build cache record as GC sees it.
#[derive(Debug, Clone)]
pub struct CacheEntry {
    /// The record's id (its key's hex), as leases name it.
    pub id: String,
    /// The record's file.
    pub path: PathBuf,
    /// When a build last used (or wrote) it.
    pub last_used: SystemTime,
    /// The layer blob it names.
    pub blob: Option<Digest>,
    /// The snapshot (diff_id) it names.
    pub snapshot: Option<Digest>,
    /// Why it cannot be read, if it cannot.
    pub broken: Option<String>,
}

/// The builder's cache, as GC and fsck need it.
pub trait BuildCache {
    /// Every record, readable or not.
    fn records(&self) -> Vec<CacheEntry>;
    /// Removes one record.
    fn remove_record(&self, id: &str) -> io::Result<()>;
    /// The directory whose subdirectories are cache mounts (`RUN --mount=type=cache`).
    fn mounts_dir(&self) -> Option<PathBuf>;
    /// Directories where the cache writes files atomically (`.tmp-*` leftovers live there).
    fn write_dirs(&self) -> Vec<PathBuf>;
    /// Directories of small history files (for `--explain`) pruned by age with the records.
    fn history_dirs(&self) -> Vec<PathBuf>;
}

/// A cache without records (for stores used without the builder).
pub struct NoBuildCache;

impl BuildCache for NoBuildCache {
    fn records(&self) -> Vec<CacheEntry> {
        Vec::new()
    }
    fn remove_record(&self, _: &str) -> io::Result<()> {
        Ok(())
    }
    fn mounts_dir(&self) -> Option<PathBuf> {
        None
    }
    fn write_dirs(&self) -> Vec<PathBuf> {
        Vec::new()
    }
    fn history_dirs(&self) -> Vec<PathBuf> {
        Vec::new()
    }
}

/// What `strata prune` removes from the build cache.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// Keep records and cache mounts used within this long (`--filter until=24h`).
    pub until: Option<Duration>,
    /// Keep at most this many bytes of build cache, least recently used removed first
    /// (`--keep-storage`).
    pub keep_storage: Option<u64>,
    /// Report what would be removed without removing anything.
    pub dry_run: bool,
}

/// What a prune removed (or would remove, for a dry run).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    pub records: usize,
    pub cache_mounts: usize,
    pub blobs: usize,
    pub snapshots: usize,
    pub temporary: usize,
    pub dead_leases: usize,
    /// Bytes on disk freed.
    pub freed: u64,
    /// Records and cache mounts kept because a running build uses them.
    pub in_use: usize,
}

/// The on-disk size of a file or tree (allocated blocks; hard links counted once).
pub fn disk_usage(path: &Path) -> u64 {
    let mut seen = HashSet::new();
    let mut total = 0;
    for e in walkdir::WalkDir::new(path).follow_links(false).into_iter().flatten() {
        if let Ok(md) = e.metadata()
            && (md.nlink() <= 1 || md.is_dir() || seen.insert((md.dev(), md.ino())))
        {
            total += md.blocks() * 512;
        }
    }
    total
}

fn mtime(path: &Path) -> Option<SystemTime> {
    fs::symlink_metadata(path).and_then(|m| m.modified()).ok()
}

/// Blobs and snapshots an image references.
#[derive(Debug, Default, Clone)]
pub struct Refs {
    pub blobs: HashSet<Digest>,
    pub snapshots: HashSet<Digest>,
}

impl Refs {
    /// Adds what the manifest or index `digest` references (itself included). Unreadable or
    /// missing documents add only their own digest: what they would reference is unknown.
    pub fn add_manifest(&mut self, store: &Store, digest: &Digest, depth: usize) {
        if !self.blobs.insert(digest.clone()) || depth > MAX_DEPTH {
            return;
        }
        let Some(raw) = read_verified(store, digest) else { return };
        let Ok(doc) = serde_json::from_slice::<serde_json::Value>(&raw) else { return };
        let digest_of = |v: &serde_json::Value| v["digest"].as_str().and_then(|s| s.parse::<Digest>().ok());
        if let Some(children) = doc["manifests"].as_array() {
            for c in children {
                if let Some(d) = digest_of(c) {
                    self.add_manifest(store, &d, depth + 1);
                }
            }
        }
        if let Some(config) = digest_of(&doc["config"]) {
            self.blobs.insert(config.clone());
            if let Some(raw) = read_verified(store, &config)
                && let Ok(cfg) = serde_json::from_slice::<serde_json::Value>(&raw)
                && let Some(ids) = cfg["rootfs"]["diff_ids"].as_array()
            {
                self.snapshots.extend(ids.iter().filter_map(|d| d.as_str()?.parse().ok()));
            }
        }
        if let Some(layers) = doc["layers"].as_array() {
            self.blobs.extend(layers.iter().filter_map(digest_of));
        }
    }
}

/// A small blob's bytes if present and intact. GC reads without the lease protocol: it holds
/// the exclusive GC lock itself, and a process-local lease would wait for it.
fn read_verified(store: &Store, digest: &Digest) -> Option<Vec<u8>> {
    let raw = fs::read(store.blobs.path(digest)).ok()?;
    (&Digest::of(&raw) == digest).then_some(raw)
}

/// Everything in a store, classified: what `system df` shows and what `prune` decides on.
#[derive(Debug, Default)]
pub struct Inventory {
    /// Named images (name → manifest digest).
    pub images: Vec<(String, Digest)>,
    /// What the named images reference.
    pub image_refs: Refs,
    pub records: Vec<CacheEntry>,
    /// Cache mounts: directory, last use.
    pub mounts: Vec<(PathBuf, SystemTime)>,
    /// Present blobs and snapshots.
    pub blobs: Vec<Digest>,
    pub snapshots: Vec<Digest>,
    /// Temporary entries: path, last modification.
    pub temporary: Vec<(PathBuf, SystemTime)>,
    pub leases: LiveLeases,
}

impl Inventory {
    /// Reads the store. Fails if `index.json` cannot be read (the roots would be unknown).
    pub fn take(store: &Store, cache: &dyn BuildCache, remove_dead_leases: bool) -> Result<Inventory, GcError> {
        let leases = lease::read_leases(store.root(), remove_dead_leases)?;
        let named = store.layout.list().map_err(|e| GcError::Roots(e.to_string()))?;
        let mut image_refs = Refs::default();
        let mut images = Vec::new();
        for n in named {
            image_refs.add_manifest(store, &n.descriptor.digest, 0);
            images.push((n.name, n.descriptor.digest));
        }
        let blobs = store.blobs.list().map_err(|e| GcError::Roots(e.to_string()))?;
        let snapshots = store.snapshots.list().map_err(|e| GcError::Roots(e.to_string()))?;
        let mut mounts = Vec::new();
        let mut temporary = Vec::new();
        if let Some(dir) = cache.mounts_dir()
            && let Ok(entries) = fs::read_dir(&dir)
        {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let path = e.path();
                if name.starts_with(".new-") {
                    temporary.push((path.clone(), mtime(&path).unwrap_or(UNIX_EPOCH)));
                } else if e.file_type().is_ok_and(|t| t.is_dir()) {
                    let lock = dir.join(format!("{name}.lock"));
                    let used = [mtime(&path), mtime(&lock)].into_iter().flatten().max().unwrap_or(UNIX_EPOCH);
                    mounts.push((path, used));
                }
            }
        }
        let temp_dirs = [store.snapshots.tmp_dir().to_path_buf(), store.blobs.ingest_dir().to_path_buf()];
        let mut write_dirs = vec![store.root().to_path_buf()];
        write_dirs.extend(cache.write_dirs());
        write_dirs.extend(cache.history_dirs());
        for dir in &temp_dirs {
            if let Ok(entries) = fs::read_dir(dir) {
                for e in entries.flatten() {
                    let p = e.path();
                    temporary.push((p.clone(), newest_mtime(&p)));
                }
            }
        }
        for dir in write_dirs.drain(..) {
            if let Ok(entries) = fs::read_dir(&dir) {
                for e in entries.flatten() {
                    if e.file_name().to_string_lossy().starts_with(".tmp-") {
                        let p = e.path();
                        temporary.push((p.clone(), mtime(&p).unwrap_or(UNIX_EPOCH)));
                    }
                }
            }
        }
        Ok(Inventory { images, image_refs, records: cache.records(), mounts, blobs, snapshots, temporary, leases })
    }

    /// Whether a temporary entry may belong to a live process.
    pub fn temp_in_use(&self, modified: SystemTime) -> bool {
        self.leases.protect_after().is_some_and(|t| modified >= t)
    }

    /// Whether a record is in use by a running build.
    pub fn record_in_use(&self, r: &CacheEntry) -> bool {
        self.leases.protects(&Item::CacheRecord(r.id.clone()))
            || self.leases.protect_after().is_some_and(|t| r.last_used >= t)
    }
}

/// The newest modification time of a directory's top two levels (a scratch directory's own
/// time does not change when a step writes deep inside it; its upper's does, often enough).
fn newest_mtime(path: &Path) -> SystemTime {
    let mut newest = mtime(path).unwrap_or(UNIX_EPOCH);
    if let Ok(entries) = fs::read_dir(path) {
        for e in entries.flatten() {
            if let Some(t) = mtime(&e.path()) {
                newest = newest.max(t);
            }
        }
    }
    newest
}

/// Sizes of blobs and snapshots, computed once.
#[derive(Default)]
pub struct Sizes {
    cache: HashMap<(bool, Digest), u64>,
}

impl Sizes {
    pub fn blob(&mut self, store: &Store, d: &Digest) -> u64 {
        *self
            .cache
            .entry((true, d.clone()))
            .or_insert_with(|| fs::metadata(store.blobs.path(d)).map(|m| m.blocks() * 512).unwrap_or(0))
    }
    pub fn snapshot(&mut self, store: &Store, d: &Digest) -> u64 {
        *self.cache.entry((false, d.clone())).or_insert_with(|| {
            let p = store.snapshots.path(d);
            if p.is_dir() { disk_usage(&p) } else { 0 }
        })
    }
}

/// One thing the policy may remove, with when it was last used.
enum Candidate {
    Record(usize),
    Mount(usize),
}

/// Removes what the policy and the roots allow (see the module doc).
pub fn prune(store: &Store, cache: &dyn BuildCache, policy: &Policy) -> Result<PruneReport, GcError> {
    let lock = GcLock::exclusive(store.root())?;
    let inv = Inventory::take(store, cache, !policy.dry_run)?;
    let mut report = PruneReport { dead_leases: inv.leases.dead.len(), ..PruneReport::default() };
    let mut sizes = Sizes::default();
    let now = SystemTime::now();
    let old_enough = |t: SystemTime| policy.until.is_none_or(|u| now.duration_since(t).is_ok_and(|age| age >= u));

    // Records and mounts the policy may take, least recently used first.
    let mut candidates: Vec<(SystemTime, Candidate)> = Vec::new();
    for (i, r) in inv.records.iter().enumerate() {
        if inv.record_in_use(r) {
            report.in_use += 1;
        } else if old_enough(r.last_used) {
            candidates.push((r.last_used, Candidate::Record(i)));
        }
    }
    for (i, (_, used)) in inv.mounts.iter().enumerate() {
        if inv.leases.any() {
            report.in_use += 1;
        } else if old_enough(*used) {
            candidates.push((*used, Candidate::Mount(i)));
        }
    }
    candidates.sort_by_key(|(t, _)| *t);

    // The build cache's size: content only records reference, plus mounts.
    let mut holders: HashMap<(bool, Digest), usize> = HashMap::new();
    for r in inv.records.iter().filter(|r| r.broken.is_none()) {
        if let Some(b) = &r.blob
            && !inv.image_refs.blobs.contains(b)
        {
            *holders.entry((true, b.clone())).or_default() += 1;
        }
        if let Some(s) = &r.snapshot
            && !inv.image_refs.snapshots.contains(s)
        {
            *holders.entry((false, s.clone())).or_default() += 1;
        }
    }
    let mount_sizes: Vec<u64> = inv.mounts.iter().map(|(p, _)| disk_usage(p)).collect();
    let mut cache_size: u64 = mount_sizes.iter().sum();
    for (kind, d) in holders.keys() {
        cache_size += if *kind { sizes.blob(store, d) } else { sizes.snapshot(store, d) };
    }

    let mut drop_records: HashSet<usize> = HashSet::new();
    let mut drop_mounts: Vec<usize> = Vec::new();
    for (_, c) in candidates {
        if policy.keep_storage.is_some_and(|keep| cache_size <= keep) {
            break;
        }
        match c {
            Candidate::Record(i) => {
                drop_records.insert(i);
                let r = &inv.records[i];
                for key in
                    [r.blob.clone().map(|b| (true, b)), r.snapshot.clone().map(|s| (false, s))].into_iter().flatten()
                {
                    if let Some(n) = holders.get_mut(&key) {
                        *n -= 1;
                        if *n == 0 {
                            let size = if key.0 { sizes.blob(store, &key.1) } else { sizes.snapshot(store, &key.1) };
                            cache_size = cache_size.saturating_sub(size);
                        }
                    }
                }
            }
            Candidate::Mount(i) => {
                drop_mounts.push(i);
                cache_size = cache_size.saturating_sub(mount_sizes[i]);
            }
        }
    }

    // Mark.
    let mut keep = inv.image_refs.clone();
    for (i, r) in inv.records.iter().enumerate() {
        if drop_records.contains(&i) {
            continue;
        }
        keep.blobs.extend(r.blob.clone());
        keep.snapshots.extend(r.snapshot.clone());
    }
    for item in &inv.leases.items {
        match item {
            Item::Blob(d) => keep.add_manifest(store, d, 0),
            Item::Snapshot(d) => {
                keep.snapshots.insert(d.clone());
            }
            Item::CacheRecord(_) => {}
        }
    }
    let protect_after = inv.leases.protect_after();
    let recent = |p: &Path| protect_after.is_some_and(|t| mtime(p).is_some_and(|m| m >= t));

    // Sweep: move everything doomed into the trash while holding the lock.
    let trash = Trash::new(store, policy.dry_run)?;
    for (i, r) in inv.records.iter().enumerate() {
        if drop_records.contains(&i) {
            report.records += 1;
            if !policy.dry_run {
                cache.remove_record(&r.id).map_err(io_err(format!("removing cache record {}", r.id)))?;
            }
        }
    }
    for i in drop_mounts {
        let (path, _) = &inv.mounts[i];
        report.cache_mounts += 1;
        report.freed += mount_sizes[i];
        trash.take(path)?;
        if let Some(name) = path.file_name() {
            let lock_file = path.with_file_name(format!("{}.lock", name.to_string_lossy()));
            trash.take(&lock_file)?;
        }
    }
    // The history `--explain` keeps goes by age with the records it explains (not by size: it
    // is small).
    if policy.keep_storage.is_none() {
        for dir in cache.history_dirs() {
            for e in fs::read_dir(&dir).into_iter().flatten().flatten() {
                let p = e.path();
                if !recent(&p) && mtime(&p).is_some_and(old_enough) {
                    trash.take(&p)?;
                }
            }
        }
    }
    for d in &inv.blobs {
        if keep.blobs.contains(d) || recent(&store.blobs.path(d)) {
            continue;
        }
        report.blobs += 1;
        report.freed += sizes.blob(store, d);
        trash.take(&store.blobs.path(d))?;
    }
    for d in &inv.snapshots {
        if keep.snapshots.contains(d) || recent(&store.snapshots.path(d)) {
            continue;
        }
        report.snapshots += 1;
        report.freed += sizes.snapshot(store, d);
        trash.take(&store.snapshots.path(d))?;
    }
    for (path, modified) in &inv.temporary {
        if inv.temp_in_use(*modified) || trash.is(path) {
            continue;
        }
        report.temporary += 1;
        report.freed += disk_usage(path);
        // Another prune may be emptying its own trash here at the same time: not an error.
        if let Err(e) = trash.take(path) {
            tracing::warn!("{e}");
        }
    }
    if !policy.dry_run {
        crate::durable::sync_dir(store.blobs.dir()).map_err(io_err("syncing the blob directory"))?;
    }
    drop(lock);
    // Everything in the trash is already detached from the store; a failure to delete it only
    // leaves a temporary directory for the next prune.
    if let Err(e) = trash.empty() {
        tracing::warn!("{e}");
    }
    Ok(report)
}

/// Where GC moves what it removes, so the lock is held only for renames.
struct Trash {
    dir: Option<PathBuf>,
    dry_run: bool,
    n: std::cell::Cell<usize>,
}

impl Trash {
    fn new(store: &Store, dry_run: bool) -> Result<Trash, GcError> {
        if dry_run {
            return Ok(Trash { dir: None, dry_run, n: 0.into() });
        }
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        let dir = store.snapshots.tmp_dir().join(format!("gc-{nanos}-{}", std::process::id()));
        // On a full disk even a directory may not fit: then entries are removed in place.
        let dir = fs::create_dir(&dir).ok().map(|()| dir);
        Ok(Trash { dir, dry_run, n: 0.into() })
    }

    fn is(&self, path: &Path) -> bool {
        self.dir.as_deref() == Some(path)
    }

    fn take(&self, path: &Path) -> Result<(), GcError> {
        if self.dry_run {
            return Ok(());
        }
        if let Some(dir) = &self.dir {
            let n = self.n.get();
            self.n.set(n + 1);
            match fs::rename(path, dir.join(n.to_string())) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(_) => {}
            }
        }
        remove_any(path).map_err(io_err(format!("removing {}", path.display())))
    }

    fn empty(self) -> Result<(), GcError> {
        if let Some(dir) = &self.dir {
            remove_any(dir).map_err(io_err(format!("removing {}", dir.display())))?;
        }
        Ok(())
    }
}

/// Removes a file or a directory tree; a missing path is not an error.
pub fn remove_any(path: &Path) -> io::Result<()> {
    let r = match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) => Err(e),
    };
    match r {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Parses a size as docker does for `--keep-storage`: bytes, or with a unit (`512MB`, `10GB`,
/// `1.5GiB`, `100m`). Decimal units are powers of 1000, binary (`KiB`…) of 1024; a bare
/// `k`/`m`/`g` is binary, as go-units' RAMInBytes reads them.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| format!("invalid size {text:?} (expected e.g. 512MB, 10GB)"))?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kib" => 1024.0,
        "m" | "mib" => 1024.0 * 1024.0,
        "g" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tib" => 1024.0f64.powi(4),
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        _ => return Err(format!("invalid size {text:?}: unknown unit {unit:?}")),
    };
    Ok((n * mult) as u64)
}

/// Parses a duration as docker's `until` filter accepts it (Go's `time.ParseDuration`):
/// `24h`, `90m`, `1h30m`, `45s`, plus `d` for days.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration {text:?} (expected e.g. 24h, 90m, 7d)");
    let mut total = 0f64;
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let split = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(bad)?;
        let (num, tail) = rest.split_at(split);
        let n: f64 = num.parse().map_err(|_| bad())?;
        let unit_len = tail.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let secs = match unit {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            _ => return Err(bad()),
        };
        total += n * secs;
        rest = tail;
    }
    Ok(Duration::from_secs_f64(total))
}

/// Per-category totals for `strata system df`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Category {
    pub total: usize,
    /// In use by a running build.
    pub active: usize,
    pub size: u64,
    /// What `strata prune` with no filter would free.
    pub reclaimable: u64,
}

/// What `strata system df` shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    pub images: Category,
    pub build_cache: Category,
    pub cache_mounts: Category,
    pub unreferenced: Category,
    pub temporary: Category,
}

/// Measures the store (no lock: a concurrent change makes the numbers approximate, never wrong
/// about what is kept).
pub fn usage(store: &Store, cache: &dyn BuildCache) -> Result<Usage, GcError> {
    let inv = Inventory::take(store, cache, false)?;
    let mut sizes = Sizes::default();
    let mut u = Usage::default();
    let refs = &inv.image_refs;
    u.images.total = inv.images.len();
    u.images.active = inv.images.iter().filter(|(_, d)| inv.leases.protects(&Item::Blob(d.clone()))).count();
    let present_blobs: HashSet<&Digest> = inv.blobs.iter().collect();
    let present_snaps: HashSet<&Digest> = inv.snapshots.iter().collect();
    for d in refs.blobs.iter().filter(|d| present_blobs.contains(d)) {
        u.images.size += sizes.blob(store, d);
    }
    for d in refs.snapshots.iter().filter(|d| present_snaps.contains(d)) {
        u.images.size += sizes.snapshot(store, d);
    }
    // Cache content: referenced by records, not by images; reclaimable if no record in use
    // references it.
    let mut cache_content: BTreeMap<(bool, Digest), bool> = BTreeMap::new();
    for r in &inv.records {
        u.build_cache.total += 1;
        let in_use = inv.record_in_use(r);
        if in_use {
            u.build_cache.active += 1;
        }
        for key in [r.blob.clone().map(|b| (true, b)), r.snapshot.clone().map(|s| (false, s))].into_iter().flatten() {
            let referenced_by_image = if key.0 { refs.blobs.contains(&key.1) } else { refs.snapshots.contains(&key.1) };
            if !referenced_by_image {
                *cache_content.entry(key).or_insert(false) |= in_use;
            }
        }
    }
    for ((is_blob, d), in_use) in &cache_content {
        let size = if *is_blob { sizes.blob(store, d) } else { sizes.snapshot(store, d) };
        u.build_cache.size += size;
        if !in_use {
            u.build_cache.reclaimable += size;
        }
    }
    for (p, _) in &inv.mounts {
        let size = disk_usage(p);
        u.cache_mounts.total += 1;
        u.cache_mounts.size += size;
        if !inv.leases.any() {
            u.cache_mounts.reclaimable += size;
        }
    }
    let in_cache = |kind: bool, d: &Digest| cache_content.contains_key(&(kind, d.clone()));
    for d in &inv.blobs {
        if !refs.blobs.contains(d) && !in_cache(true, d) {
            let size = sizes.blob(store, d);
            u.unreferenced.total += 1;
            u.unreferenced.size += size;
            if inv.leases.protects(&Item::Blob(d.clone())) {
                u.unreferenced.active += 1;
            } else {
                u.unreferenced.reclaimable += size;
            }
        }
    }
    for d in &inv.snapshots {
        if !refs.snapshots.contains(d) && !in_cache(false, d) {
            let size = sizes.snapshot(store, d);
            u.unreferenced.total += 1;
            u.unreferenced.size += size;
            if inv.leases.protects(&Item::Snapshot(d.clone())) {
                u.unreferenced.active += 1;
            } else {
                u.unreferenced.reclaimable += size;
            }
        }
    }
    for (p, modified) in &inv.temporary {
        let size = disk_usage(p);
        u.temporary.total += 1;
        u.temporary.size += size;
        if inv.temp_in_use(*modified) {
            u.temporary.active += 1;
        } else {
            u.temporary.reclaimable += size;
        }
    }
    Ok(u)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_parse_like_docker() {
        assert_eq!(parse_size("1024").unwrap(), 1024);
        assert_eq!(parse_size("10GB").unwrap(), 10_000_000_000);
        assert_eq!(parse_size("512mb").unwrap(), 512_000_000);
        assert_eq!(parse_size("1.5GiB").unwrap(), 1_610_612_736);
        assert_eq!(parse_size("100m").unwrap(), 100 << 20);
        assert!(parse_size("ten").unwrap_err().contains("invalid size"));
        assert!(parse_size("10XB").unwrap_err().contains("unknown unit"));
        assert_eq!(parse_duration("24h").unwrap(), Duration::from_secs(86400));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("7d").unwrap(), Duration::from_secs(7 * 86400));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        for bad in ["", "h", "10", "10y", "1h30"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
