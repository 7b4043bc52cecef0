//! `strata fsck`: checks that everything in a store is what it claims to be, and with `repair`
//! removes what is not.
//!
//! Checks, in order:
//! - `oci-layout` says `{"imageLayoutVersion":"1.0.0"}` (repair: rewritten);
//! - every file in `blobs/sha256/` is named by a digest and hashes to it (repair: removed; a
//!   missing layer is fetched again from its registry when needed, a missing image is broken);
//! - `index.json` reads (repair: moved aside to `index.json.damaged`, an empty one written);
//! - every name's manifest is present and valid, its config present and valid, and the config
//!   lists as many diff_ids as the manifest has layers (repair: the name is removed, only if it
//!   still points at the same manifest). Layer blobs that are absent are not a problem: a base
//!   image's layers are fetched when a build first needs them. They are listed as notes;
//! - every build cache record reads and its layer blob is present (repair: the record goes;
//!   the step runs again next time);
//! - every entry of `snapshots/` is a directory named by a diff_id. A snapshot only ever appears
//!   by a rename of a finished tree, so a present one is complete; its content is not re-hashed
//!   (that would mean re-packing every layer).
//!
//! Leftovers of killed processes — scratch directories, ingest files, `.tmp-*` files, dead
//! leases — are expected after a crash and harmless: they are notes, and `strata prune`
//! removes them. Repairs take the GC lock (like `strata prune`), and re-check each problem
//! under it, so fsck never removes something a concurrent process has just made valid. Checks
//! run without the lock: everything in the store appears atomically, so a concurrent build
//! cannot make fsck see a half-written item.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rayon::prelude::*;

use crate::Store;
use crate::digest::{Digest, Hasher};
use crate::gc::BuildCache;
use crate::lease::{self, GcLock};
use crate::oci::{ImageConfig, Index, Manifest, media};

/// Errors that stop fsck (problems it finds are in the report instead).
#[derive(Debug, thiserror::Error)]
pub enum FsckError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Lease(#[from] lease::LeaseError),
    #[error("repairing: {0}")]
    Repair(String),
}

/// What kind of problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    BadLayoutMarker,
    CorruptBlob,
    StrayFile,
    DamagedIndex,
    BrokenImage,
    BrokenRecord,
    DanglingRecord,
    BadSnapshot,
}

/// One thing found broken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub kind: ProblemKind,
    /// A path, an image name or a record id.
    pub subject: String,
    pub detail: String,
    pub repaired: bool,
}

/// What fsck found.
#[derive(Debug, Clone, Default)]
pub struct FsckReport {
    pub problems: Vec<Problem>,
    /// Harmless findings (stale temporary files, layers not yet fetched).
    pub notes: Vec<String>,
    pub blobs: usize,
    pub images: usize,
    pub records: usize,
    pub snapshots: usize,
}

impl FsckReport {
    /// No problem left unrepaired.
    pub fn ok(&self) -> bool {
        self.problems.iter().all(|p| p.repaired)
    }
}

/// Blobs checked so far, and a way to check ones that appeared since the listing.
struct Verified<'a> {
    store: &'a Store,
    good: Mutex<HashSet<Digest>>,
}

impl Verified<'_> {
    fn is_good(&self, d: &Digest) -> bool {
        if self.good.lock().is_ok_and(|g| g.contains(d)) {
            return true;
        }
        // Written after the listing (a concurrent build): check it now.
        if matches!(hash_file(&self.store.blobs.path(d)), Ok(Some(actual)) if &actual == d) {
            if let Ok(mut g) = self.good.lock() {
                g.insert(d.clone());
            }
            return true;
        }
        false
    }
}

/// The sha256 of a file, or `None` if it vanished.
fn hash_file(path: &Path) -> io::Result<Option<Digest>> {
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut h = Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(Some(h.finish()))
}

/// Runs every check; with `repair`, removes what is broken.
pub fn fsck(store: &Store, cache: &dyn BuildCache, repair: bool) -> Result<FsckReport, FsckError> {
    let mut report = FsckReport::default();
    let mut problems: Vec<Problem> = Vec::new();
    let mut problem = |kind, subject: String, detail: String| {
        problems.push(Problem { kind, subject, detail, repaired: false });
    };

    if !store.layout.marker_ok() {
        problem(ProblemKind::BadLayoutMarker, "oci-layout".into(), "missing or not an OCI layout marker".into());
    }

    // Blobs.
    let dir = store.blobs.dir();
    let entries: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(|source| FsckError::Io { context: format!("listing {}", dir.display()), source })?
        .flatten()
        .map(|e| e.path())
        .collect();
    let results: Vec<(PathBuf, Result<Option<Digest>, String>)> = entries
        .par_iter()
        .map(|p| {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let r = match Digest::from_hex(&name) {
                Err(_) => Err("not named by a sha256 digest".to_string()),
                Ok(expected) => match fs::symlink_metadata(p) {
                    Ok(m) if !m.is_file() => Err("not a regular file".to_string()),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(format!("cannot read: {e}")),
                    Ok(_) => match hash_file(p) {
                        Ok(Some(actual)) if actual == expected => Ok(Some(expected)),
                        Ok(Some(actual)) => Err(format!("content hashes to {actual}")),
                        Ok(None) => Ok(None),
                        Err(e) => Err(format!("cannot read: {e}")),
                    },
                },
            };
            (p.clone(), r)
        })
        .collect();
    let mut good = HashSet::new();
    for (path, r) in results {
        match r {
            Ok(Some(d)) => {
                good.insert(d);
            }
            Ok(None) => {}
            Err(detail) => {
                let kind = if detail.contains("hashes to") || detail.starts_with("cannot read") {
                    ProblemKind::CorruptBlob
                } else {
                    ProblemKind::StrayFile
                };
                problem(kind, path.display().to_string(), detail);
            }
        }
    }
    report.blobs = good.len();
    let verified = Verified { store, good: Mutex::new(good) };

    // Names.
    let mut known_snapshots: HashSet<Digest> = HashSet::new();
    let mut missing_layers = 0usize;
    match store.layout.read_index() {
        Err(e) => problem(ProblemKind::DamagedIndex, "index.json".into(), e.to_string()),
        Ok(index) => {
            for d in &index.manifests {
                report.images += 1;
                let name = d.annotation(crate::layout::REF_NAME).unwrap_or("(unnamed)").to_string();
                let subject = format!("{name}@{}", d.digest);
                match check_image(store, &verified, &d.digest, &d.media_type, 0) {
                    Ok(found) => {
                        missing_layers += found.missing_layers;
                        known_snapshots.extend(found.diff_ids);
                    }
                    Err(detail) => problem(ProblemKind::BrokenImage, subject, detail),
                }
            }
        }
    }

    // Cache records.
    for r in cache.records() {
        report.records += 1;
        if let Some(why) = &r.broken {
            problem(ProblemKind::BrokenRecord, r.id.clone(), why.clone());
            continue;
        }
        if let Some(b) = &r.blob
            && !verified.is_good(b)
        {
            problem(ProblemKind::DanglingRecord, r.id.clone(), format!("its layer blob {b} is not in the store"));
        }
        known_snapshots.extend(r.snapshot.clone());
    }

    // Snapshots.
    let sdir = store.snapshots.dir();
    for e in fs::read_dir(sdir)
        .map_err(|source| FsckError::Io { context: format!("listing {}", sdir.display()), source })?
        .flatten()
    {
        let name = e.file_name().to_string_lossy().into_owned();
        let path = e.path();
        let is_dir = fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir());
        match (Digest::from_hex(&name), is_dir) {
            (Ok(_), true) => report.snapshots += 1,
            (Ok(_), false) => problem(ProblemKind::BadSnapshot, path.display().to_string(), "not a directory".into()),
            (Err(_), _) => problem(
                ProblemKind::BadSnapshot,
                path.display().to_string(),
                "not named by a diff_id (not made by strata)".into(),
            ),
        }
    }
    report.problems = problems;
    for d in &known_snapshots {
        let p = store.snapshots.path(d);
        if fs::symlink_metadata(&p).is_ok_and(|m| !m.is_dir())
            && !report.problems.iter().any(|x| x.subject == p.display().to_string())
        {
            report.problems.push(Problem {
                kind: ProblemKind::BadSnapshot,
                subject: p.display().to_string(),
                detail: "not a directory".into(),
                repaired: false,
            });
        }
    }

    // Notes.
    if missing_layers > 0 {
        report.notes.push(format!(
            "{missing_layers} layer blob(s) of named images are not in the store (fetched from the registry when a build needs them)"
        ));
    }
    let inv = crate::gc::Inventory::take(store, cache, false).ok();
    if let Some(inv) = &inv {
        let stale = inv.temporary.iter().filter(|(_, t)| !inv.temp_in_use(*t)).count();
        if stale > 0 {
            report.notes.push(format!(
                "{stale} leftover temporary file(s) of interrupted processes (strata prune removes them)"
            ));
        }
        if !inv.leases.dead.is_empty() {
            report.notes.push(format!(
                "{} lease(s) of processes that are gone (strata prune removes them)",
                inv.leases.dead.len()
            ));
        }
    }

    if repair && !report.problems.is_empty() {
        repair_all(store, cache, &mut report)?;
    }
    Ok(report)
}

/// What an image check found besides problems.
#[derive(Default)]
struct ImageCheck {
    missing_layers: usize,
    diff_ids: Vec<Digest>,
}

/// Checks a manifest or index and what it references; `Err` says why the image is broken.
fn check_image(
    store: &Store,
    verified: &Verified<'_>,
    digest: &Digest,
    media_type: &str,
    depth: usize,
) -> Result<ImageCheck, String> {
    if depth > 4 {
        return Err("indexes nested too deep".into());
    }
    if !verified.is_good(digest) {
        return Err(format!("its manifest {digest} is missing or corrupt"));
    }
    let raw = fs::read(store.blobs.path(digest)).map_err(|e| format!("reading manifest {digest}: {e}"))?;
    if media::is_index(media_type) {
        let index: Index =
            serde_json::from_slice(&raw).map_err(|e| format!("index {digest} is not a valid OCI index: {e}"))?;
        let mut out = ImageCheck::default();
        for child in &index.manifests {
            // Other platforms of a pulled index are not fetched: absent children are fine.
            if !store.blobs.path(&child.digest).exists() {
                continue;
            }
            let c = check_image(store, verified, &child.digest, &child.media_type, depth + 1)?;
            out.missing_layers += c.missing_layers;
            out.diff_ids.extend(c.diff_ids);
        }
        return Ok(out);
    }
    let manifest: Manifest =
        serde_json::from_slice(&raw).map_err(|e| format!("manifest {digest} is not a valid manifest: {e}"))?;
    let config = &manifest.config.digest;
    if !verified.is_good(config) {
        return Err(format!("its config {config} is missing or corrupt"));
    }
    let raw = fs::read(store.blobs.path(config)).map_err(|e| format!("reading config {config}: {e}"))?;
    let cfg: ImageConfig =
        serde_json::from_slice(&raw).map_err(|e| format!("config {config} is not a valid image config: {e}"))?;
    if cfg.rootfs.diff_ids.len() != manifest.layers.len() {
        return Err(format!(
            "the manifest lists {} layers but the config {} diff_ids",
            manifest.layers.len(),
            cfg.rootfs.diff_ids.len()
        ));
    }
    let mut out = ImageCheck { diff_ids: cfg.rootfs.diff_ids.clone(), ..ImageCheck::default() };
    for (layer, diff_id) in manifest.layers.iter().zip(&cfg.rootfs.diff_ids) {
        if !verified.is_good(&layer.digest) && !store.snapshots.path(diff_id).is_dir() {
            out.missing_layers += 1;
        }
    }
    Ok(out)
}

/// Removes what the report lists as broken, re-checking each item under the GC lock.
fn repair_all(store: &Store, cache: &dyn BuildCache, report: &mut FsckReport) -> Result<(), FsckError> {
    let _lock = GcLock::exclusive(store.root())?;
    let records_now = cache.records();
    let fail = |e: &dyn std::fmt::Display| FsckError::Repair(e.to_string());
    for p in &mut report.problems {
        match p.kind {
            ProblemKind::BadLayoutMarker => {
                store.layout.repair_marker().map_err(|e| fail(&e))?;
                p.repaired = true;
            }
            ProblemKind::CorruptBlob | ProblemKind::StrayFile | ProblemKind::BadSnapshot => {
                let path = PathBuf::from(&p.subject);
                // Still broken? (A blob may have been re-fetched intact meanwhile.)
                let still = match (p.kind, path.file_name().and_then(|n| Digest::from_hex(&n.to_string_lossy()).ok())) {
                    (ProblemKind::CorruptBlob, Some(d)) => !matches!(hash_file(&path), Ok(Some(a)) if a == d),
                    (ProblemKind::BadSnapshot, Some(_)) => fs::symlink_metadata(&path).is_ok_and(|m| !m.is_dir()),
                    _ => path.exists(),
                };
                if still {
                    crate::gc::remove_any(&path).map_err(|e| fail(&format!("removing {}: {e}", path.display())))?;
                }
                p.repaired = true;
            }
            ProblemKind::DamagedIndex => {
                store.layout.reset_damaged_index().map_err(|e| fail(&e))?;
                p.repaired = true;
            }
            ProblemKind::BrokenImage => {
                let Some((name, digest)) = p.subject.rsplit_once('@') else { continue };
                let Ok(digest) = digest.parse::<Digest>() else { continue };
                if name == "(unnamed)" {
                    continue;
                }
                store.layout.remove_if(name, &digest).map_err(|e| fail(&e))?;
                p.repaired = true;
            }
            ProblemKind::BrokenRecord | ProblemKind::DanglingRecord => {
                let Some(now) = records_now.iter().find(|r| r.id == p.subject) else {
                    p.repaired = true;
                    continue;
                };
                let still = now.broken.is_some() || now.blob.as_ref().is_some_and(|b| !store.blobs.path(b).is_file());
                if still {
                    cache
                        .remove_record(&p.subject)
                        .map_err(|e| fail(&format!("removing record {}: {e}", p.subject)))?;
                }
                p.repaired = true;
            }
        }
    }
    Ok(())
}
