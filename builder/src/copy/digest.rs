//! The content digest of what a copy would read: the cache key of a COPY from the build
//! context depends on exactly the selected files, so that editing another file keeps the step
//! cached and editing a selected one does not.
//!
//! The selection is made by the same code as the copy itself (wildcard expansion, confined
//! resolution, `.dockerignore` filtering, directory scans), so the key and the copy can never
//! disagree about which files count. For each entry the digest covers its path relative to the
//! source path, type, permission bits, owner (only for non-context sources: context files are
//! reset to 0:0 or `--chown` anyway), device numbers, symlink target, and for regular files the
//! sha256 of the content. Modification times are not included, as in BuildKit's content
//! checksums: touching a file does not invalidate the cache.
//!
//! Files are hashed in parallel on the rayon pool. A [`ContentCache`] can remember content
//! digests by file identity (device, inode, size, mtime, ctime), so an unchanged context is not
//! read again; the returned per-entry digests let `--explain` name the files that changed.

use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd};

use rayon::prelude::*;
use rustix::fs::{Mode, OFlags};
use sha2::{Digest as _, Sha256};

use super::resolve::{self, ResolveError, Root, Visibility};
use super::tree::{self, Filters, Kind, Meta, Node};
use super::{CopyError, CopyOptions, CopySource, wildcard};
use strata_store::digest::to_hex;

/// Identifies one version of a file: any write changes its ctime (and usually mtime and size),
/// so the same stamp means the same content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct FileStamp {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime: (i64, i64),
    pub ctime: (i64, i64),
}

/// Remembers file content digests across builds.
pub trait ContentCache: Sync {
    fn lookup(&self, stamp: &FileStamp) -> Option<[u8; 32]>;
    fn store(&self, stamp: FileStamp, digest: [u8; 32]);
}

/// The digest of a copy's sources, and of each entry (`name`, hex digest of its line) in the
/// order the copy meets them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceDigest {
    pub digest: String,
    pub entries: Vec<(String, String)>,
}

/// One entry to hash, with how to reach its content.
struct Entry {
    /// Path as the digest names it: the source path as matched, then the path inside it.
    name: Vec<u8>,
    meta: Meta,
    /// Resolved components of the entry in the source root (for reading content).
    comps: Vec<Vec<u8>>,
}

/// The sha256 over everything `copy(src, src_paths, ..)` would read.
pub fn source_digest(
    src: &CopySource<'_>,
    src_paths: &[String],
    opts: &CopyOptions,
    cache: Option<&dyn ContentCache>,
) -> Result<SourceDigest, CopyError> {
    let root = Root::open(src.root)?;
    let context_filter = src.filter;
    let visible_fn = move |dir: BorrowedFd<'_>, name: &[u8], rel: &[u8], m: &Meta| match context_filter {
        Some(f) => tree::visible_in_context(f, dir, name, rel, m),
        None => Ok(true),
    };
    let visible: Option<&Visibility<'_>> = if context_filter.is_some() { Some(&visible_fn) } else { None };

    super::check_required(&root, &opts.required_paths, visible)?;
    let mut entries = Vec::new();
    for p in src_paths {
        for m in wildcard::source_paths(&root, p, opts, visible)? {
            let source = match resolve::resolve(&root, &m, opts.follow_src_symlink, visible) {
                Ok(r) => r,
                Err(ResolveError::NotADirectory(_)) => return Err(CopyError::NotFound { path: resolve::display(&m) }),
                Err(ResolveError::Other(e)) => return Err(e),
            };
            let Some(meta) = source.meta else {
                return Err(CopyError::NotFound { path: resolve::display(&source.comps) });
            };
            let name = resolve::display(&m).into_bytes();
            if meta.kind == Kind::Dir {
                let dir = root.open_dir(&source.comps, true)?;
                let filters =
                    Filters { context: src.filter, exclude: opts.exclude.as_deref(), include: opts.include.as_deref() };
                let root_rel = source.comps.join(&b'/');
                let nodes = tree::scan(dir.as_fd(), &root_rel, b"", filters, name.as_slice())?;
                entries.push(Entry { name: name.clone(), meta, comps: source.comps.clone() });
                flatten(&nodes, &name, &source.comps, &mut entries);
            } else {
                entries.push(Entry { name, meta, comps: source.comps });
            }
        }
    }

    let lines: Vec<Vec<u8>> =
        entries.par_iter().map(|e| entry_line(&root, e, src.is_context, cache)).collect::<Result<_, CopyError>>()?;
    let mut h = Sha256::new();
    let mut listed = Vec::with_capacity(lines.len());
    for (e, l) in entries.iter().zip(&lines) {
        h.update(l);
        listed.push((String::from_utf8_lossy(&e.name).into_owned(), to_hex(&Sha256::digest(l))));
    }
    Ok(SourceDigest { digest: to_hex(&h.finalize()), entries: listed })
}

/// How recent a change must be for its digest not to be remembered: a file written again
/// within the clock's granularity could keep its stamp (git's "racy clean" problem).
const RACY_SECONDS: i64 = 2;

fn content_digest(mut file: std::fs::File, shown: &str) -> Result<[u8; 32], CopyError> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut buf).map_err(|source| CopyError::Io { op: "read", path: shown.to_string(), source })?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().into())
}

fn flatten(nodes: &[Node], prefix: &[u8], comps: &[Vec<u8>], out: &mut Vec<Entry>) {
    for n in nodes {
        let mut name = prefix.to_vec();
        name.push(b'/');
        name.extend_from_slice(&n.name);
        let mut c = comps.to_vec();
        c.push(n.name.clone());
        out.push(Entry { name: name.clone(), meta: n.meta, comps: c.clone() });
        flatten(&n.children, &name, &c, out);
    }
}

/// `name \0 kind \0 perm \0 [uid:gid] \0 rdev \0 payload \n`, where the payload is the
/// content digest of a file or the target of a symlink.
fn entry_line(
    root: &Root,
    e: &Entry,
    is_context: bool,
    cache: Option<&dyn ContentCache>,
) -> Result<Vec<u8>, CopyError> {
    let shown = String::from_utf8_lossy(&e.name).into_owned();
    let payload: Vec<u8> = match e.meta.kind {
        Kind::File => {
            let m = &e.meta;
            let stamp = FileStamp { dev: m.dev, ino: m.ino, size: m.size, mtime: m.mtime, ctime: m.ctime };
            if let Some(d) = cache.and_then(|c| c.lookup(&stamp)) {
                d.to_vec()
            } else {
                let (dir, name) = match e.comps.split_last() {
                    Some((last, parent)) => (parent, last.as_slice()),
                    None => return Err(CopyError::NotFound { path: shown }),
                };
                let d = root.open_dir(dir, false)?;
                let fd =
                    rustix::fs::openat(&d, name, OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())
                        .map_err(|err| CopyError::io("open", shown.clone(), err))?;
                let digest = content_digest(std::fs::File::from(fd), &shown)?;
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as i128)
                    .unwrap_or(0);
                let changed = i128::from(m.ctime.0) * 1_000_000_000 + i128::from(m.ctime.1);
                if let Some(c) = cache
                    && now - changed > i128::from(RACY_SECONDS) * 1_000_000_000
                {
                    c.store(stamp, digest);
                }
                digest.to_vec()
            }
        }
        Kind::Symlink => {
            let (dir, name) = match e.comps.split_last() {
                Some((last, parent)) => (parent, last.as_slice()),
                None => return Err(CopyError::NotFound { path: shown }),
            };
            let d = root.open_dir(dir, false)?;
            rustix::fs::readlinkat(d.as_fd(), name, Vec::new())
                .map_err(|err| CopyError::io("readlink", shown.clone(), err))?
                .into_bytes()
        }
        _ => Vec::new(),
    };
    let mut line = e.name.clone();
    let owner = if is_context { String::new() } else { format!("{}:{}", e.meta.uid, e.meta.gid) };
    line.extend_from_slice(format!("\0{:?}\0{:o}\0{owner}\0{}\0", e.meta.kind, e.meta.perm, e.meta.rdev).as_bytes());
    line.extend_from_slice(&payload);
    line.push(b'\n');
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::copy::testutil::{Ignore, mkdir, symlink, write};
    use std::path::Path;

    fn digest(root: &Path, filter: Option<&dyn crate::graph::PathFilter>, paths: &[&str]) -> String {
        let src = CopySource { root, filter, is_context: true };
        let paths: Vec<String> = paths.iter().map(|s| s.to_string()).collect();
        source_digest(&src, &paths, &CopyOptions::dockerfile(), None).unwrap().digest
    }

    #[test]
    fn only_selected_files_count() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        write(r, "src/a.txt", "a");
        write(r, "src/b.txt", "b");
        write(r, "other.txt", "o");
        mkdir(r, "src/empty");
        symlink(r, "src/link", "a.txt");
        let base = digest(r, None, &["src"]);
        let one = digest(r, None, &["src/*.txt"]);
        assert_ne!(base, one);

        // Editing a file outside the selection keeps the digest.
        write(r, "other.txt", "changed");
        assert_eq!(digest(r, None, &["src"]), base);
        // Editing, adding, chmodding, relinking inside it changes it.
        write(r, "src/a.txt", "A");
        let edited = digest(r, None, &["src"]);
        assert_ne!(edited, base);
        crate::copy::testutil::chmod(r, "src/b.txt", 0o600);
        let chmodded = digest(r, None, &["src"]);
        assert_ne!(chmodded, edited);
        std::fs::remove_file(r.join("src/link")).unwrap();
        symlink(r, "src/link", "b.txt");
        assert_ne!(digest(r, None, &["src"]), chmodded);
        // Touching a file (mtime only) does not.
        let before = digest(r, None, &["src"]);
        crate::copy::testutil::set_mtime(r, "src/a.txt", 1, 0);
        assert_eq!(digest(r, None, &["src"]), before);
    }

    #[test]
    fn ignored_files_do_not_count_and_missing_sources_fail() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        write(r, "src/keep.txt", "k");
        write(r, "src/skip.log", "s");
        let ignore = Ignore::new(&["src/*.log"]);
        let a = digest(r, Some(&ignore), &["src"]);
        write(r, "src/skip.log", "changed");
        assert_eq!(digest(r, Some(&ignore), &["src"]), a);
        assert_ne!(digest(r, None, &["src"]), a);
        let src = CopySource { root: r, filter: None, is_context: true };
        let e = source_digest(&src, &["missing".into()], &CopyOptions::dockerfile(), None).unwrap_err();
        assert!(matches!(e, CopyError::NotFound { .. }), "{e}");
    }

    /// Counts how often content had to be read, and serves remembered digests.
    #[derive(Default)]
    struct Remember(std::sync::Mutex<std::collections::HashMap<FileStamp, [u8; 32]>>, std::sync::atomic::AtomicUsize);

    impl ContentCache for Remember {
        fn lookup(&self, stamp: &FileStamp) -> Option<[u8; 32]> {
            self.0.lock().unwrap().get(stamp).copied()
        }
        fn store(&self, stamp: FileStamp, digest: [u8; 32]) {
            self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            self.0.lock().unwrap().insert(stamp, digest);
        }
    }

    #[test]
    fn remembered_digests_are_reused_and_recent_changes_are_not_remembered() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        write(r, "old.txt", "old");
        write(r, "new.txt", "new");
        let cache = Remember::default();
        let src = CopySource { root: r, filter: None, is_context: true };
        let paths = vec!["old.txt".to_string(), "new.txt".to_string()];
        let a = source_digest(&src, &paths, &CopyOptions::dockerfile(), Some(&cache)).unwrap();
        // Both files were just written: inside the racy window, nothing is remembered.
        assert_eq!(cache.1.load(std::sync::atomic::Ordering::SeqCst), 0);
        // A remembered (even wrong) digest for a stamp is used instead of reading the file:
        // that is what makes an unchanged context cheap, and why stamps must be exact.
        let meta = std::fs::metadata(r.join("old.txt")).unwrap();
        use std::os::unix::fs::MetadataExt;
        let stamp = FileStamp {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        };
        cache.0.lock().unwrap().insert(stamp, [7u8; 32]);
        let b = source_digest(&src, &paths, &CopyOptions::dockerfile(), Some(&cache)).unwrap();
        assert_ne!(a.digest, b.digest, "the remembered digest was used");
        assert_eq!(a.entries[1], b.entries[1], "new.txt is unchanged");
        // Writing the file changes its stamp, so the remembered digest no longer applies.
        write(r, "old.txt", "old");
        let c = source_digest(&src, &paths, &CopyOptions::dockerfile(), Some(&cache)).unwrap();
        assert_eq!(c.digest, a.digest);
    }
}
