//! The persisted content-digest cache of build contexts: `ROOT/cache/content-digests.json` maps
//! a file version (device, inode, size, mtime, ctime) to the sha256 of its content, so a build
//! whose context did not change hashes nothing and a build after an edit reads only the edited
//! files. One table serves every context of the store, since file identities are global.
//!
//! The table is loaded once per build and written back (merged with what other processes wrote
//! meanwhile, atomically) only if the build learned something. It is bounded: past
//! [`MAX_ENTRIES`] entries, those this build did not use are dropped. A damaged or missing file
//! is an empty cache, never an error: the cost is re-reading the context once.
//!
//! Concurrent builds: the read-merge-write of [`PersistedContentCache::save`] holds an exclusive
//! `flock` on `content-digests.lock`, so two builds finishing together both keep what they
//! learned; the write itself is atomic (fsynced temporary file and rename), so a crash leaves
//! the old or the new table.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::copy::{ContentCache, FileStamp};

/// The most entries kept across builds.
pub const MAX_ENTRIES: usize = 500_000;

#[derive(Serialize, Deserialize)]
struct Row {
    #[serde(flatten)]
    stamp: FileStamp,
    sha256: String,
}

/// The cache of one store, for one build.
pub struct PersistedContentCache {
    path: PathBuf,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    known: HashMap<FileStamp, [u8; 32]>,
    learned: HashMap<FileStamp, [u8; 32]>,
    used: HashSet<FileStamp>,
}

fn read_rows(path: &Path) -> HashMap<FileStamp, [u8; 32]> {
    let Ok(data) = std::fs::read(path) else { return HashMap::new() };
    let rows: Vec<Row> = serde_json::from_slice(&data).unwrap_or_default();
    rows.into_iter().filter_map(|r| Some((r.stamp, parse_hex32(&r.sha256)?))).collect()
}

fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

impl PersistedContentCache {
    /// Loads the table of the store whose cache directory is `cache_dir`.
    pub fn load(cache_dir: &Path) -> PersistedContentCache {
        let path = cache_dir.join("content-digests.json");
        let known = read_rows(&path);
        PersistedContentCache { path, state: Mutex::new(State { known, ..State::default() }) }
    }

    /// Writes what this build learned, merged with the table on disk now.
    pub fn save(&self) -> std::io::Result<()> {
        let Ok(state) = self.state.lock() else { return Ok(()) };
        if state.learned.is_empty() {
            return Ok(());
        }
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let lock =
            std::fs::File::options().create(true).truncate(false).write(true).open(self.path.with_extension("lock"))?;
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)?;
        let mut table = read_rows(&self.path);
        table.extend(state.learned.iter().map(|(k, v)| (*k, *v)));
        if table.len() > MAX_ENTRIES {
            table.retain(|k, _| state.used.contains(k) || state.learned.contains_key(k));
        }
        let rows: Vec<Row> =
            table.into_iter().map(|(stamp, d)| Row { stamp, sha256: strata_store::digest::to_hex(&d) }).collect();
        let data = serde_json::to_vec(&rows).map_err(std::io::Error::other)?;
        strata_store::layout::write_atomically(&self.path, &data).map_err(std::io::Error::other)
    }
}

impl ContentCache for PersistedContentCache {
    fn lookup(&self, stamp: &FileStamp) -> Option<[u8; 32]> {
        let mut s = self.state.lock().ok()?;
        let hit = s.known.get(stamp).or_else(|| s.learned.get(stamp)).copied();
        if hit.is_some() {
            s.used.insert(*stamp);
        }
        hit
    }

    fn store(&self, stamp: FileStamp, digest: [u8; 32]) {
        if let Ok(mut s) = self.state.lock() {
            s.learned.insert(stamp, digest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(ino: u64) -> FileStamp {
        FileStamp { dev: 1, ino, size: 3, mtime: (10, 0), ctime: (10, 5) }
    }

    #[test]
    fn learned_digests_survive_to_the_next_build_and_merge_with_others() {
        let dir = tempfile::tempdir().unwrap();
        let a = PersistedContentCache::load(dir.path());
        assert_eq!(a.lookup(&stamp(1)), None);
        a.store(stamp(1), [1; 32]);
        // Another process saves meanwhile.
        let b = PersistedContentCache::load(dir.path());
        b.store(stamp(2), [2; 32]);
        b.save().unwrap();
        a.save().unwrap();
        let c = PersistedContentCache::load(dir.path());
        assert_eq!(c.lookup(&stamp(1)), Some([1; 32]));
        assert_eq!(c.lookup(&stamp(2)), Some([2; 32]));
        assert_eq!(c.lookup(&FileStamp { ctime: (11, 0), ..stamp(1) }), None, "another version of the file");
    }

    #[test]
    fn concurrent_saves_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        std::thread::scope(|s| {
            for t in 0..8u64 {
                let dir = dir.path();
                s.spawn(move || {
                    let c = PersistedContentCache::load(dir);
                    c.store(stamp(100 + t), [t as u8; 32]);
                    c.save().unwrap();
                });
            }
        });
        let c = PersistedContentCache::load(dir.path());
        for t in 0..8u64 {
            assert_eq!(c.lookup(&stamp(100 + t)), Some([t as u8; 32]), "entry of saver {t}");
        }
    }

    #[test]
    fn a_damaged_table_is_an_empty_cache() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("content-digests.json"), b"[{garbage").unwrap();
        let c = PersistedContentCache::load(dir.path());
        assert_eq!(c.lookup(&stamp(1)), None);
        c.store(stamp(1), [9; 32]);
        c.save().unwrap();
        assert_eq!(PersistedContentCache::load(dir.path()).lookup(&stamp(1)), Some([9; 32]));
    }
}
