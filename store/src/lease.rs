//! Leases and the GC lock: how running `strata` processes keep garbage collection away from
//! what they use, while sharing one store root with each other.
//!
//! Design (containerd's leases and GC lock, on plain files):
//! - A process that uses the store takes a **lease** ([`Lease::acquire`]): a file
//!   `ROOT/leases/<start ns>-<pid>.lease` on which it holds an exclusive `flock` for as long as
//!   it runs. The kernel drops the lock when the process dies, even by SIGKILL, so a lease file
//!   whose lock can be taken belongs to a dead process and is removed by GC. The file is created
//!   under a temporary name, locked, then renamed, so GC never sees an unlocked live lease.
//! - Whenever the process is about to use (or has just made) a blob, a snapshot or a cache
//!   record, it calls [`protect`]: under a **shared** lock on `ROOT/gc.lock` it appends the item
//!   to its lease file, then (still under the shared lock, via the returned guard) checks that
//!   the item exists or renames it into place. Any number of processes hold the shared lock at
//!   once, so builds never wait for each other.
//! - GC (`strata prune`, `strata fsck --repair`) takes `ROOT/gc.lock` **exclusively** while it
//!   decides and removes ([`GcLock::exclusive`]), and treats every item named by a live lease as
//!   a root. Because "record in the lease, then check" and "read the leases, then delete" exclude
//!   each other, either GC saw the item in the lease (and keeps it), or the process checks after
//!   GC finished (and sees the item gone, so it fetches or rebuilds it).
//! - Scratch directories and ingest files have no digest yet; GC keeps every one modified after
//!   the oldest live lease began ([`LiveLeases::protect_after`]).
//!
//! A lease file is preallocated (1 MiB, `FALLOC_FL_KEEP_SIZE`) so that recording items keeps
//! working on a full disk as long as the lease started while there was room. Lease files are
//! not fsynced: they only matter while their process runs.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustix::fs::{FlockOperation, flock};

use crate::digest::Digest;

/// Bytes reserved for a lease file's records up front.
const PREALLOCATE: u64 = 1 << 20;

/// How much earlier than the oldest live lease GC still treats temporary files as in use, to
/// allow for coarse file system timestamps.
const CLOCK_MARGIN: Duration = Duration::from_secs(2);

/// Errors of leases and the GC lock.
#[derive(Debug, thiserror::Error)]
#[error("{context}: {source}")]
pub struct LeaseError {
    context: String,
    #[source]
    source: io::Error,
}

fn err(context: impl Into<String>) -> impl FnOnce(io::Error) -> LeaseError {
    let context = context.into();
    move |source| LeaseError { context, source }
}

/// Something a lease keeps from GC.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Item {
    Blob(Digest),
    /// A snapshot, by diff_id.
    Snapshot(Digest),
    /// A build cache record, by its id (the cache key's hex).
    CacheRecord(String),
}

impl Item {
    fn line(&self) -> String {
        match self {
            Item::Blob(d) => format!("blob {}\n", d.hex()),
            Item::Snapshot(d) => format!("snapshot {}\n", d.hex()),
            Item::CacheRecord(id) => format!("cache {id}\n"),
        }
    }

    fn parse(line: &str) -> Option<Item> {
        let (kind, value) = line.split_once(' ')?;
        match kind {
            "blob" => Digest::from_hex(value).ok().map(Item::Blob),
            "snapshot" => Digest::from_hex(value).ok().map(Item::Snapshot),
            "cache" if !value.is_empty() && !value.contains('/') => Some(Item::CacheRecord(value.to_string())),
            _ => None,
        }
    }
}

/// `ROOT/gc.lock`, shared or exclusive. Released on drop (or when the process dies).
#[derive(Debug)]
pub struct GcLock {
    _file: File,
}

impl GcLock {
    fn open(root: &Path) -> Result<File, LeaseError> {
        let path = root.join("gc.lock");
        File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(err(format!("opening {}", path.display())))
    }

    /// Taken by GC: waits for every [`protect`] section in progress to end.
    pub fn exclusive(root: &Path) -> Result<GcLock, LeaseError> {
        let file = GcLock::open(root)?;
        flock(&file, FlockOperation::LockExclusive).map_err(|e| err("locking the store for GC")(e.into()))?;
        Ok(GcLock { _file: file })
    }

    /// Taken around "record in the lease, then check". A new open file each time: flock locks
    /// belong to an open file, so threads sharing one would unlock each other.
    pub fn shared(root: &Path) -> Result<GcLock, LeaseError> {
        let file = GcLock::open(root)?;
        flock(&file, FlockOperation::LockShared).map_err(|e| err("locking the store")(e.into()))?;
        Ok(GcLock { _file: file })
    }
}

/// This process's lease on one store root.
#[derive(Debug)]
pub struct Lease {
    root: PathBuf,
    path: PathBuf,
    started: SystemTime,
    state: Mutex<LeaseState>,
}

#[derive(Debug)]
struct LeaseState {
    file: File,
    recorded: HashSet<Item>,
}

/// Leases of this process, by store root: the store's modules find theirs here, so that a
/// lease taken once by the command covers every `BlobStore`/`Snapshots`/cache it opens.
static ACTIVE: Mutex<Vec<(PathBuf, Weak<Lease>)>> = Mutex::new(Vec::new());

impl Lease {
    /// Takes a lease on `root` for this process, held until the returned value is dropped.
    pub fn acquire(root: &Path) -> Result<Arc<Lease>, LeaseError> {
        let dir = root.join("leases");
        fs::create_dir_all(&dir).map_err(err(format!("creating {}", dir.display())))?;
        let started = SystemTime::now();
        let nanos = started.duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        let tmp = tempfile::Builder::new()
            .prefix(".new-")
            .tempfile_in(&dir)
            .map_err(err(format!("creating a lease in {}", dir.display())))?;
        flock(tmp.as_file(), FlockOperation::LockExclusive).map_err(|e| err("locking the lease")(e.into()))?;
        // Best effort: where it is not supported, records simply need space when written.
        let _ = rustix::fs::fallocate(tmp.as_file(), rustix::fs::FallocateFlags::KEEP_SIZE, 0, PREALLOCATE);
        let path = dir.join(format!("{nanos:020}-{}.lease", std::process::id()));
        // The persisted file keeps the descriptor that holds the lock; records are appended to it.
        let file = tmp.persist(&path).map_err(|e| err(format!("installing lease {}", path.display()))(e.error))?;
        let lease = Arc::new(Lease {
            root: root.to_path_buf(),
            path,
            started,
            state: Mutex::new(LeaseState { file, recorded: HashSet::new() }),
        });
        if let Ok(mut active) = ACTIVE.lock() {
            active.retain(|(_, w)| w.strong_count() > 0);
            active.push((root.to_path_buf(), Arc::downgrade(&lease)));
        }
        Ok(lease)
    }

    /// The store root this lease is on.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// When the lease began.
    pub fn started(&self) -> SystemTime {
        self.started
    }

    /// The lease file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn record(&self, items: &[Item]) -> Result<(), LeaseError> {
        let mut state = self.state.lock().map_err(|_| err("recording in the lease")(io::Error::other("poisoned")))?;
        let mut text = String::new();
        for item in items {
            if !state.recorded.contains(item) {
                text.push_str(&item.line());
            }
        }
        if text.is_empty() {
            return Ok(());
        }
        // Only this process writes the file: append at its end.
        state.file.seek(io::SeekFrom::End(0)).map_err(err(format!("recording in lease {}", self.path.display())))?;
        state.file.write_all(text.as_bytes()).map_err(err(format!("recording in lease {}", self.path.display())))?;
        state.recorded.extend(items.iter().cloned());
        Ok(())
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
        if let Ok(mut active) = ACTIVE.lock() {
            active.retain(|(_, w)| w.strong_count() > 0);
        }
    }
}

/// The live lease of this process on `root`, if any.
pub fn current(root: &Path) -> Option<Arc<Lease>> {
    let active = ACTIVE.lock().ok()?;
    active.iter().rev().find(|(r, _)| r == root).and_then(|(_, w)| w.upgrade())
}

/// Records `items` in this process's lease on `root` and returns the shared GC lock, to hold
/// while checking that the items exist (or while making them exist). Without a lease (tests,
/// GC itself) there is nothing to protect and `None` is returned.
pub fn protect(root: &Path, items: &[Item]) -> Result<Option<GcLock>, LeaseError> {
    let Some(lease) = current(root) else { return Ok(None) };
    let guard = GcLock::shared(root)?;
    lease.record(items)?;
    Ok(Some(guard))
}

/// What the live leases of a store protect, as GC sees it (read under the exclusive lock).
#[derive(Debug, Default)]
pub struct LiveLeases {
    /// Start times of live leases.
    pub started: Vec<SystemTime>,
    pub items: HashSet<Item>,
    /// Lease files of dead processes (removed by [`read_leases`] when asked to).
    pub dead: Vec<PathBuf>,
}

impl LiveLeases {
    /// Temporary files and directories modified after this time may belong to a live process.
    /// `None` when no lease is live.
    pub fn protect_after(&self) -> Option<SystemTime> {
        self.started.iter().min().map(|t| t.checked_sub(CLOCK_MARGIN).unwrap_or(UNIX_EPOCH))
    }

    pub fn any(&self) -> bool {
        !self.started.is_empty()
    }

    pub fn protects(&self, item: &Item) -> bool {
        self.items.contains(item)
    }
}

/// Reads every lease of `root`: live ones (whose lock is held) contribute their items; dead
/// ones are listed and, with `remove_dead`, deleted.
pub fn read_leases(root: &Path, remove_dead: bool) -> Result<LiveLeases, LeaseError> {
    let dir = root.join("leases");
    let mut out = LiveLeases::default();
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(err(format!("listing {}", dir.display()))(e)),
    };
    for e in entries {
        let e = e.map_err(err(format!("listing {}", dir.display())))?;
        let name = e.file_name().to_string_lossy().into_owned();
        let path = e.path();
        let Some(stem) = name.strip_suffix(".lease") else {
            // A lease being created (".new-*"): its creator holds the lock; a leftover of a
            // killed creator is unlocked.
            if name.starts_with(".new-") && lock_is_free(&path)? {
                out.dead.push(path);
            }
            continue;
        };
        if lock_is_free(&path)? {
            out.dead.push(path);
            continue;
        }
        let nanos: u64 = stem.split('-').next().and_then(|n| n.parse().ok()).unwrap_or(0);
        out.started.push(UNIX_EPOCH + Duration::from_nanos(nanos));
        let text = match fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(err(format!("reading lease {}", path.display()))(e)),
        };
        // Preallocated space reads as nothing (KEEP_SIZE); stray NULs are skipped anyway.
        for line in String::from_utf8_lossy(&text).lines() {
            if let Some(item) = Item::parse(line.trim_matches('\0')) {
                out.items.insert(item);
            }
        }
    }
    if remove_dead {
        for p in &out.dead {
            match fs::remove_file(p) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(err(format!("removing dead lease {}", p.display()))(e)),
            }
        }
    }
    Ok(out)
}

/// True if nobody holds the lock of the file at `path` (its process is gone).
fn lock_is_free(path: &Path) -> Result<bool, LeaseError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(err(format!("opening lease {}", path.display()))(e)),
    };
    match flock(&file, FlockOperation::NonBlockingLockShared) {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(false),
        Err(e) => Err(err(format!("checking lease {}", path.display()))(e.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_leases_protect_and_dead_ones_are_found() {
        let root = tempfile::tempdir().unwrap();
        assert!(protect(root.path(), &[Item::Blob(Digest::of(b"x"))]).unwrap().is_none(), "no lease, no guard");
        let lease = Lease::acquire(root.path()).unwrap();
        let d = Digest::of(b"x");
        let guard = protect(root.path(), &[Item::Blob(d.clone()), Item::CacheRecord("k1".into())]).unwrap();
        assert!(guard.is_some());
        drop(guard);
        // Recorded once even if protected twice.
        protect(root.path(), &[Item::Blob(d.clone())]).unwrap();
        assert_eq!(fs::read_to_string(lease.path()).unwrap().matches("blob").count(), 1);

        let live = read_leases(root.path(), true).unwrap();
        assert!(live.any() && live.dead.is_empty());
        assert!(live.protects(&Item::Blob(d.clone())) && live.protects(&Item::CacheRecord("k1".into())));
        assert!(!live.protects(&Item::Snapshot(d.clone())));
        assert!(live.protect_after().unwrap() <= lease.started());

        // A lease file left by a killed process: present, but its lock is free.
        let dead = root.path().join("leases/00000000000000000001-999999.lease");
        fs::write(&dead, "blob ".to_string() + Digest::of(b"dead").hex() + "\n").unwrap();
        let live = read_leases(root.path(), true).unwrap();
        assert_eq!(live.dead, vec![dead.clone()]);
        assert!(!live.protects(&Item::Blob(Digest::of(b"dead"))));
        assert!(!dead.exists(), "dead leases are removed");

        drop(lease);
        let live = read_leases(root.path(), false).unwrap();
        assert!(!live.any(), "a dropped lease is gone");
        assert_eq!(fs::read_dir(root.path().join("leases")).unwrap().count(), 0);
    }

    #[test]
    fn the_exclusive_lock_waits_for_shared_sections() {
        let root = tempfile::tempdir().unwrap();
        let _lease = Lease::acquire(root.path()).unwrap();
        let guard = protect(root.path(), &[Item::Snapshot(Digest::of(b"s"))]).unwrap().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let r = root.path().to_path_buf();
        let t = std::thread::spawn(move || {
            let _gc = GcLock::exclusive(&r).unwrap();
            tx.send(()).unwrap();
        });
        assert!(rx.recv_timeout(Duration::from_millis(200)).is_err(), "GC must wait for the shared section");
        drop(guard);
        rx.recv_timeout(Duration::from_secs(5)).unwrap();
        t.join().unwrap();
    }
}
