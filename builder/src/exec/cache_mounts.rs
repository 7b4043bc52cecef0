//! `RUN --mount=type=cache`: directories kept in the store across steps and builds, never in a
//! layer, shared between steps as BuildKit shares its cache mounts.
//!
//! What BuildKit 0.13 does, and was checked to do on this machine (docker26 buildx):
//! * A cache is found by its id and its base: the `from=` source's content if given, else the
//!   `uid`/`gid`/`mode` it is created with (BuildKit makes those with a small mkdir state that
//!   becomes the cache's parent). So `id=c,mode=0700` and `id=c,mode=0755` are two caches, and
//!   `id=c,from=seed` is yet another.
//! * A cache with `from=` starts as a copy-on-write view of that source's whole filesystem; the
//!   mount shows its `source=` path (e.g. `from=seed,source=/data` first shows the seed's
//!   `/data`, and a later `source=/data/sub` mount of the same cache shows `/data/sub` of it,
//!   writes included). Without `from=`, `source=` is a path inside the cache directory, which
//!   must exist (BuildKit fails with "no such file or directory").
//! * `sharing=shared` (default): concurrent steps use the same directory. `private`: a step
//!   takes a directory no other step is using, making a new empty one if all are in use.
//!   `locked`: a step waits until it can have a directory to itself.
//!
//! In the store, cache `K` (a digest of id and base) has instances `ROOT/cache/mounts/K-N`,
//! each with a lock file `K-N.lock`. Users hold `flock`s on the lock files for the whole step:
//! shared users a shared lock, private and locked users an exclusive one, so the rules above
//! hold between concurrent steps and between concurrent strata processes alike. An instance
//! without `from=` is a plain directory bind-mounted; one with `from=` is an overlay upper
//! (`K-N/upper`, `K-N/work`) over the source's layers, mounted like a `from=` bind mount but
//! kept. Two overlays must not share an upper, so concurrent `shared` users of a `from=` cache
//! get separate instances (a deviation only visible to steps running at the same time).

use std::fs::{self, File};
use std::os::unix::fs::{PermissionsExt, chown};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::fs::FlockOperation;
use sha2::{Digest as _, Sha256};
use strata_runner::Cancel;
use strata_store::Store;
use strata_store::digest::to_hex;

use crate::graph::CacheSharing;
use crate::solve::StepError;

/// What a cache is based on, besides its id.
pub enum CacheBase<'a> {
    /// A fresh directory with this mode and owner.
    Empty { mode: u32, uid: u32, gid: u32 },
    /// A copy-on-write view of a filesystem, named by its layers' diff_ids.
    From { layers: &'a [String] },
}

/// A cache instance in use: its directory, and the lock that keeps it ours until dropped.
pub struct CacheInstance {
    pub dir: PathBuf,
    _lock: File,
}

/// How long a `locked` user naps between tries (BuildKit's interval).
const LOCKED_RETRY: Duration = Duration::from_millis(100);

/// The store's name for cache `id` on `base`.
fn cache_key(id: &str, base: &CacheBase<'_>) -> String {
    let mut h = Sha256::new();
    h.update(id.as_bytes());
    h.update([0]);
    match base {
        CacheBase::Empty { mode, uid, gid } => h.update(format!("empty {mode:o} {uid} {gid}").as_bytes()),
        CacheBase::From { layers } => {
            h.update(b"from");
            for l in *layers {
                h.update([0]);
                h.update(l.as_bytes());
            }
        }
    }
    to_hex(&h.finalize())
}

/// The first instance directory of a cache without `from=` (what `sharing=shared` steps use):
/// where `--cache-to ...,mounts=true` reads a cache mount and `--cache-from` seeds one.
pub fn primary_dir(store: &Store, id: &str, mode: u32, uid: u32, gid: u32) -> PathBuf {
    let key = cache_key(id, &CacheBase::Empty { mode, uid, gid });
    store.cache_dir().join("mounts").join(format!("{key}-0"))
}

/// Takes an instance of cache `id` for one step, following `sharing`; see the module docs.
pub fn acquire(
    store: &Store,
    id: &str,
    base: &CacheBase<'_>,
    sharing: CacheSharing,
    cancel: &Cancel,
) -> Result<CacheInstance, StepError> {
    let root = store.cache_dir().join("mounts");
    fs::create_dir_all(&root).map_err(StepError::io("creating the cache mount directory"))?;
    let key = cache_key(id, base);
    let from = matches!(base, CacheBase::From { .. });
    let exclusive = sharing != CacheSharing::Shared || from;
    loop {
        let mut n = 0;
        loop {
            let dir = root.join(format!("{key}-{n}"));
            let exists = dir.exists();
            // `locked` waits for an existing instance rather than making a new one.
            if !exists && sharing == CacheSharing::Locked && n > 0 {
                break;
            }
            let lock = File::create(root.join(format!("{key}-{n}.lock"))).map_err(StepError::io("cache mount lock"))?;
            let op = if exclusive {
                FlockOperation::NonBlockingLockExclusive
            } else {
                FlockOperation::NonBlockingLockShared
            };
            match rustix::fs::flock(&lock, op) {
                Ok(()) => {
                    if !exists {
                        create_instance(&root, &dir, base)?;
                    }
                    return Ok(CacheInstance { dir, _lock: lock });
                }
                Err(rustix::io::Errno::WOULDBLOCK) => n += 1,
                Err(e) => return Err(StepError::msg(format!("locking cache mount {id}: {e}"))),
            }
        }
        if cancel.is_cancelled() {
            return Err(StepError::msg("cancelled while waiting for a locked cache mount"));
        }
        std::thread::sleep(LOCKED_RETRY);
    }
}

/// Makes instance `dir` (complete, or not at all: built aside and renamed into place).
fn create_instance(root: &Path, dir: &Path, base: &CacheBase<'_>) -> Result<(), StepError> {
    let tmp =
        tempfile::Builder::new().prefix(".new-").tempdir_in(root).map_err(StepError::io("creating a cache mount"))?;
    match base {
        CacheBase::Empty { mode, uid, gid } => {
            fs::set_permissions(tmp.path(), fs::Permissions::from_mode(*mode))
                .map_err(StepError::io("cache mount mode"))?;
            chown(tmp.path(), Some(*uid), Some(*gid)).map_err(StepError::io("cache mount owner"))?;
        }
        CacheBase::From { .. } => {
            for d in ["upper", "work"] {
                fs::create_dir(tmp.path().join(d)).map_err(StepError::io("creating a cache mount"))?;
            }
            fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o700))
                .map_err(StepError::io("cache mount mode"))?;
        }
    }
    let tmp = tmp.keep();
    if fs::rename(&tmp, dir).is_err() {
        // Made by someone else meanwhile (we hold its lock, so it is complete).
        let _ = fs::remove_dir_all(&tmp);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        (dir, store)
    }

    const EMPTY: CacheBase<'static> = CacheBase::Empty { mode: 0o755, uid: 0, gid: 0 };

    #[test]
    fn shared_users_share_and_private_users_get_their_own() {
        let (_d, store) = store();
        let cancel = Cancel::new();
        let a = acquire(&store, "c", &EMPTY, CacheSharing::Shared, &cancel).unwrap();
        let b = acquire(&store, "c", &EMPTY, CacheSharing::Shared, &cancel).unwrap();
        assert_eq!(a.dir, b.dir);
        let p = acquire(&store, "c", &EMPTY, CacheSharing::Private, &cancel).unwrap();
        assert_ne!(p.dir, a.dir, "the shared one is in use");
        let shared_dir = a.dir.clone();
        drop((a, b));
        let p2 = acquire(&store, "c", &EMPTY, CacheSharing::Private, &cancel).unwrap();
        assert_eq!(p2.dir, shared_dir, "a free instance is reused");
        let other = acquire(&store, "other", &EMPTY, CacheSharing::Shared, &cancel).unwrap();
        assert_ne!(other.dir, p2.dir);
    }

    #[test]
    fn mode_owner_and_base_make_different_caches() {
        let (_d, store) = store();
        let cancel = Cancel::new();
        let strict = CacheBase::Empty { mode: 0o700, uid: 33, gid: 44 };
        let a = acquire(&store, "c", &strict, CacheSharing::Shared, &cancel).unwrap();
        let meta = fs::metadata(&a.dir).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_eq!((meta.mode() & 0o7777, meta.uid(), meta.gid()), (0o700, 33, 44));
        let b = acquire(&store, "c", &EMPTY, CacheSharing::Shared, &cancel).unwrap();
        assert_ne!(a.dir, b.dir);
        let layers = vec!["sha256:aa".to_string()];
        let f = acquire(&store, "c", &CacheBase::From { layers: &layers }, CacheSharing::Shared, &cancel).unwrap();
        assert!(f.dir.join("upper").is_dir() && f.dir.join("work").is_dir());
    }

    #[test]
    fn locked_users_wait_their_turn() {
        let (_d, store) = store();
        let store = std::sync::Arc::new(store);
        let cancel = Cancel::new();
        let first = acquire(&store, "c", &EMPTY, CacheSharing::Locked, &cancel).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = std::thread::spawn({
            let store = store.clone();
            let cancel = cancel.clone();
            move || {
                let second = acquire(&store, "c", &EMPTY, CacheSharing::Locked, &cancel).unwrap();
                tx.send(second.dir.clone()).unwrap();
            }
        });
        assert!(rx.recv_timeout(Duration::from_millis(400)).is_err(), "the second user must wait");
        let dir = first.dir.clone();
        drop(first);
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), dir, "then gets the same directory");
        waiter.join().unwrap();

        // Cancelling ends the wait.
        let held = acquire(&store, "c", &EMPTY, CacheSharing::Locked, &cancel).unwrap();
        let cancel2 = Cancel::new();
        cancel2.cancel();
        let err = acquire(&store, "c", &EMPTY, CacheSharing::Locked, &cancel2).err().unwrap();
        assert!(err.message.contains("cancelled"), "{err}");
        drop(held);
    }
}
