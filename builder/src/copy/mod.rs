//! The file-copy engine behind `COPY` and `ADD`: copies paths of a source tree (the build
//! context, or another stage's root filesystem) into a destination root filesystem, with
//! the observable results of BuildKit 0.13 (Dockerfile frontend + fsutil `copy`), file for
//! file.
//!
//! The builder mounts the destination (an overlay whose writes form the new layer) and the
//! source, and calls [`copy`]. Everything happens confined to the two roots: paths are
//! resolved by [`resolve`] on descriptors (symlinks followed as if the root were `/`), and
//! all writes are relative to directory descriptors and never follow symlinks.
//!
//! What one source path does (BuildKit's `docopy` + fsutil `Copy`; each rule was checked
//! against BuildKit 0.13 — see `buildkit_cases.rs` for the captured results):
//! 1. Wildcards (`*`, `?`, `[...]`, unless escaped with `\`) are expanded (see [`wildcard`]);
//!    each match is then copied on its own. No match is an error unless
//!    `allow_empty_wildcard` (which the Dockerfile frontend always sets: an unmatched
//!    wildcard in `COPY` silently copies nothing). A malformed pattern is an error.
//! 2. The parent directories of `dest` are created (0755, `--chown` owner); with a trailing
//!    `/` (or a last component `.`), `dest` itself too.
//! 3. `dest` is resolved in the destination root, following symlinks even in its last
//!    component. If it is an existing directory and the source is not one, the target is
//!    `dest/<source name>` (the name as written, not a symlink's target).
//! 4. A directory source has its *contents* copied into the target directory, which is
//!    created (0755) if missing; the target itself only gets the source directory's times.
//!    Anything else replaces the target (a directory there is an error).
//! 5. Below the top, entries are recreated with their source metadata (see [`write`]).
//!    Existing directories are merged into and take the source's metadata.
//!
//! Several sources, or a wildcard matching several, with a `dest` that does not end in `/`
//! are *not* an error in BuildKit 0.13 (the classic builder's "When using COPY with more
//! than one source file, the destination must be a directory and end with a /" is not
//! applied): each is copied in turn to `dest`, the last one winning if they are files. This
//! engine does the same.
//!
//! Directory trees are scanned ([`tree`]) and then written ([`write`]) in parallel on the
//! rayon pool.

mod archive;
pub mod chmod;
mod digest;
mod resolve;
mod tree;
mod wildcard;
mod write;

#[cfg(test)]
mod buildkit_cases;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod testutil;

use std::fmt;
use std::io;
use std::os::fd::AsFd;
use std::path::Path;
use std::sync::Arc;

use rustix::fs::{Mode, OFlags};

use self::resolve::{Comps, ResolveError, Root, Visibility};
use self::tree::{Filters, Kind, Meta};
use self::write::{Attrs, ModeChange, Writer};

pub use self::chmod::{BadMode, SymbolicMode};
pub use self::digest::{ContentCache, FileStamp, SourceDigest, source_digest};
use crate::graph::{Chmod, PathFilter};

/// Where files are copied from.
#[derive(Clone, Copy)]
pub struct CopySource<'a> {
    /// The root of the source tree on the host.
    pub root: &'a Path,
    /// Paths of the source that do not exist for the build (`.dockerignore`); paths are
    /// relative to `root`. Excluded files are never opened or read.
    pub filter: Option<&'a dyn PathFilter>,
    /// True for the build context: BuildKit's client sends context files as owned by 0:0, so
    /// copies of them are owned by 0:0 unless `--chown` says otherwise. Files from another
    /// stage keep their owners.
    pub is_context: bool,
}

impl fmt::Debug for CopySource<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CopySource")
            .field("root", &self.root)
            .field("filter", &self.filter.is_some())
            .field("is_context", &self.is_context)
            .finish()
    }
}

/// How to copy.
#[derive(Debug, Clone, Default)]
pub struct CopyOptions {
    /// `--chown`, already resolved to numbers: owner of everything copied and of the
    /// directories created for it.
    pub owner: Option<(u32, u32)>,
    /// `--chmod`. An octal mode replaces all 12 mode bits of every copied file, directory and
    /// special file (not symlinks, not the created parents, not the top directory a
    /// directory's contents are copied into). A symbolic mode (`u+x,g-w`) is applied to each of
    /// those entries' own mode, as newer Dockerfile frontends do; BuildKit 0.13 ignores
    /// symbolic modes silently (see [`chmod`]).
    pub chmod: Option<Chmod>,
    /// Expand `*`, `?`, `[...]` in source paths.
    pub allow_wildcard: bool,
    /// A wildcard that matches nothing copies nothing instead of failing.
    pub allow_empty_wildcard: bool,
    /// `ADD`: a source that is a tar archive (possibly compressed) is unpacked into `dest`.
    pub unpack_archives: bool,
    /// Follow a symlink that is the source path itself (its parents are always followed).
    /// Symlinks inside a copied directory are always copied as symlinks.
    pub follow_src_symlink: bool,
    /// `COPY --exclude`: paths (relative to each copied source) not to copy. The source path
    /// itself is never excluded, only what a copied directory holds (fsutil matches patterns
    /// against paths below the copied source; BuildKit's `testExcludedFilesOnCopy`).
    pub exclude: Option<Arc<dyn PathFilter>>,
    /// `COPY --parents`: fsutil's include patterns. Only entries the filter does not exclude
    /// (paths relative to each copied source directory) are copied, with the directories
    /// leading to them, which are created with their source metadata only when something below
    /// them is copied. The frontend builds this filter from the patterns (its
    /// `is_excluded` means "matches no include pattern").
    pub include: Option<Arc<dyn PathFilter>>,
    /// Paths relative to the source root that must exist (BuildKit's `RequiredPaths`, which
    /// `--parents` sets for sources without wildcards).
    pub required_paths: Vec<String>,
}

impl CopyOptions {
    /// What BuildKit's Dockerfile frontend asks for on `COPY` and `ADD` from the context or a
    /// stage: wildcards allowed, an empty match allowed, the source path followed.
    pub fn dockerfile() -> CopyOptions {
        CopyOptions {
            allow_wildcard: true,
            allow_empty_wildcard: true,
            follow_src_symlink: true,
            ..CopyOptions::default()
        }
    }
}

/// What a copy did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CopyStats {
    /// Regular files written (hard links not included).
    pub files: u64,
    /// Directories created below the top (existing ones merged into are not counted).
    pub dirs: u64,
    pub symlinks: u64,
    /// Extra names of hard-linked files.
    pub hardlinks: u64,
    /// FIFOs, sockets and device nodes.
    pub specials: u64,
    /// Bytes of regular file data.
    pub bytes: u64,
}

/// Why a copy failed. Paths are shown as absolute paths inside their root.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// A source path (after following symlinks) does not exist, or is excluded.
    #[error("{path:?}: not found")]
    NotFound { path: String },
    /// A wildcard matched nothing and empty matches are not allowed.
    #[error("{pattern:?}: not found (no file matches the wildcard)")]
    NoMatch { pattern: String },
    /// A malformed wildcard (Go's `filepath.ErrBadPattern`).
    #[error("{pattern:?}: syntax error in pattern")]
    BadPattern { pattern: String },
    /// A directory was to be copied where a non-directory exists.
    #[error("cannot copy to non-directory: {path}")]
    CopyToNonDirectory { path: String },
    /// A non-directory was to be copied where a directory exists.
    #[error("cannot replace to directory {path} with file")]
    ReplaceDirectoryWithFile { path: String },
    /// Too many symlinks while resolving a path.
    #[error("too many levels of symbolic links: {path}")]
    SymlinkLoop { path: String },
    /// A filesystem operation failed.
    #[error("{op} {path}: {}", resolve::errno_text(source))]
    Io {
        op: &'static str,
        path: String,
        #[source]
        source: io::Error,
    },
    /// A `--chmod` value that is neither octal nor a valid symbolic mode.
    #[error("{0}")]
    BadChmod(String),
    /// Something this engine does not do yet.
    #[error("{0} is not supported yet")]
    Unsupported(&'static str),
}

impl CopyError {
    pub(crate) fn io(op: &'static str, path: String, errno: rustix::io::Errno) -> CopyError {
        CopyError::Io { op, path, source: io::Error::from(errno) }
    }
}

/// Copies `src_paths` (relative to the source root; may contain wildcards) to `dest`
/// (absolute in the destination root; a trailing `/` means "into this directory") of
/// `dest_root`, in order, as one `COPY`/`ADD` instruction does.
pub fn copy(
    src: &CopySource<'_>,
    src_paths: &[String],
    dest_root: &Path,
    dest: &str,
    opts: &CopyOptions,
) -> Result<CopyStats, CopyError> {
    let src_root = Root::open(src.root)?;
    let dest_root = Root::open(dest_root)?;
    let mode = match &opts.chmod {
        Some(Chmod::Octal(m)) => Some(ModeChange::Octal(m & 0o7777)),
        Some(Chmod::Symbolic(s)) => {
            Some(ModeChange::Symbolic(SymbolicMode::parse(s).map_err(|e| CopyError::BadChmod(e.to_string()))?))
        }
        None => None,
    };
    let attrs = Attrs { owner: opts.owner, reset_owner: src.is_context, mode };
    let context_filter = src.filter;
    let visible_fn = move |dir: std::os::fd::BorrowedFd<'_>, name: &[u8], rel: &[u8], m: &Meta| match context_filter {
        Some(f) => tree::visible_in_context(f, dir, name, rel, m),
        None => Ok(true),
    };
    let visible: Option<&Visibility<'_>> = if context_filter.is_some() { Some(&visible_fn) } else { None };
    let job = Job { src, src_root: &src_root, dest_root: &dest_root, opts, attrs, visible };
    check_required(&src_root, &opts.required_paths, visible)?;

    let mut stats = CopyStats::default();
    for p in src_paths {
        for m in wildcard::source_paths(&src_root, p, opts, visible)? {
            job.one(&m, dest, &mut stats)?;
        }
    }
    Ok(stats)
}

/// One `copy` call's fixed inputs.
struct Job<'a> {
    src: &'a CopySource<'a>,
    src_root: &'a Root,
    dest_root: &'a Root,
    opts: &'a CopyOptions,
    attrs: Attrs,
    visible: Option<&'a Visibility<'a>>,
}

impl Job<'_> {
    /// Copies one source path (a wildcard match or a plain path) to `dest`.
    fn one(&self, src_path: &[Vec<u8>], dest: &str, stats: &mut CopyStats) -> Result<(), CopyError> {
        let shown_src = resolve::display(src_path);
        let source = match resolve::resolve(self.src_root, src_path, self.opts.follow_src_symlink, self.visible) {
            Ok(r) => r,
            // A file where a directory must be: nothing there, as BuildKit reports it.
            Err(ResolveError::NotADirectory(_)) => return Err(CopyError::NotFound { path: shown_src }),
            Err(ResolveError::Other(e)) => return Err(e),
        };
        let Some(src_meta) = source.meta else {
            return Err(CopyError::NotFound { path: resolve::display(&source.comps) });
        };

        if self.opts.unpack_archives && src_meta.kind == Kind::File {
            let file = self.open_source_file(&source.comps, &shown_src)?;
            if archive::is_archive(&file).map_err(|e| CopyError::Io {
                op: "read",
                path: shown_src.clone(),
                source: e,
            })? {
                return archive::unpack_archive(file, self.dest_root, dest, self.opts.owner);
            }
        }

        // BuildKit's `ensureDstPath`: the parent of dest, or dest itself when it ends in `/`
        // or `/.`.
        let (dir_part, last) = match dest.rfind('/') {
            Some(i) => (&dest[..=i], &dest[i + 1..]),
            None => ("", dest),
        };
        let ensure = if !last.is_empty() && last != "." { dir_part } else { dest };
        resolve::mkdir_all(self.dest_root, &resolve::clean(ensure.as_bytes()), self.opts.owner)?;

        let target = match resolve::resolve(self.dest_root, &resolve::clean(dest.as_bytes()), true, None) {
            Ok(r) => r,
            Err(ResolveError::NotADirectory(p)) => {
                return Err(CopyError::io("lstat", resolve::display(&p), rustix::io::Errno::NOTDIR));
            }
            Err(ResolveError::Other(e)) => return Err(e),
        };
        let mut dst: Comps = target.comps;
        let src_is_dir = src_meta.kind == Kind::Dir;
        if let Some(tm) = target.meta
            && tm.kind == Kind::Dir
            && !src_is_dir
        {
            // The name as written in the instruction, not a symlink's target.
            dst.push(src_path.last().cloned().unwrap_or_else(|| b"/".to_vec()));
        }
        let parent_of_target: Comps =
            if src_is_dir && target.meta.is_none() { dst.clone() } else { dst[..dst.len().saturating_sub(1)].to_vec() };
        resolve::mkdir_all(self.dest_root, &parent_of_target, self.opts.owner)?;

        let writer = Writer::new(self.attrs.clone(), self.dest_root);
        let dst_shown = resolve::display(&dst);
        if src_is_dir {
            self.copy_dir(&writer, &source.comps, &src_meta, &dst, &dst_shown)?;
        } else {
            let (src_dir, src_name) = split_last(&source.comps);
            let (dst_dir, dst_name) = split_last(&dst);
            let s = self.src_root.open_dir(src_dir, false)?;
            let d = self.dest_root.open_dir(dst_dir, false)?;
            writer.leaf(s.as_fd(), src_name, &src_meta, d.as_fd(), dst_name, dst_shown.as_bytes())?;
        }
        writer.add_stats_to(stats);
        Ok(())
    }

    /// Copies the contents of the source directory `src` into the directory `dst`, which
    /// exists unless it is the last component (then it is created, as fsutil's
    /// `copyDirectoryOnly` does, though `prepareTargetDir` has normally made it already).
    fn copy_dir(
        &self,
        writer: &Writer<'_>,
        src: &[Vec<u8>],
        m: &Meta,
        dst: &[Vec<u8>],
        shown: &str,
    ) -> Result<(), CopyError> {
        let (dst_fd, created) = if dst.is_empty() {
            (self.dest_root.open_dir(dst, true)?, false)
        } else {
            let (parent, name) = split_last(dst);
            let p = self.dest_root.open_dir(parent, false)?;
            let created = writer.ensure_dir(p.as_fd(), name, shown.as_bytes())?;
            (self.dest_root.open_dir(dst, true)?, created)
        };
        let src_fd = self.src_root.open_dir(src, true)?;
        let filters = Filters {
            context: self.src.filter,
            exclude: self.opts.exclude.as_deref(),
            include: self.opts.include.as_deref(),
        };
        let root_rel = src.join(&b'/');
        let src_shown = resolve::display(src);
        let nodes = tree::scan(src_fd.as_fd(), &root_rel, b"", filters, src_shown.as_bytes())?;
        writer.children(src_fd.as_fd(), dst_fd.as_fd(), shown.as_bytes(), &nodes)?;
        if created {
            writer.dir_meta(src_fd.as_fd(), dst_fd.as_fd(), m, shown.as_bytes())
        } else {
            writer.dir_times(dst_fd.as_fd(), m, shown.as_bytes())
        }
    }

    fn open_source_file(&self, comps: &[Vec<u8>], shown: &str) -> Result<std::fs::File, CopyError> {
        let (dir, name) = split_last(comps);
        let d = self.src_root.open_dir(dir, false)?;
        let fd = rustix::fs::openat(
            &d,
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NOCTTY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| CopyError::io("open", shown.to_string(), e))?;
        Ok(std::fs::File::from(fd))
    }
}

/// Fails with [`CopyError::NotFound`] unless every path of `required` exists (visible through
/// the context filter) in the source root.
pub(crate) fn check_required(
    root: &Root,
    required: &[String],
    visible: Option<&Visibility<'_>>,
) -> Result<(), CopyError> {
    for p in required {
        let comps = resolve::clean(p.as_bytes());
        let found = match resolve::resolve(root, &comps, false, visible) {
            Ok(r) => r.meta.is_some(),
            Err(ResolveError::NotADirectory(_)) => false,
            Err(ResolveError::Other(e)) => return Err(e),
        };
        if !found {
            return Err(CopyError::NotFound { path: resolve::display(&comps) });
        }
    }
    Ok(())
}

/// Creates directory `path` (absolute in `dest_root`) and its missing parents, mode 0755,
/// owned by `owner` if given; existing directories are left as they are. Symlinks on the way
/// are followed inside the root. This is what a WORKDIR step does (BuildKit's mkdir with
/// parents).
pub fn mkdir_all(dest_root: &Path, path: &str, owner: Option<(u32, u32)>) -> Result<(), CopyError> {
    let root = Root::open(dest_root)?;
    resolve::mkdir_all(&root, &resolve::clean(path.as_bytes()), owner).map(|_| ())
}

/// True if `file` is a tar archive (plain, gzip, bzip2, xz or zstd) as `ADD` recognises one.
/// Reads from the start and rewinds.
pub fn is_tar_archive(file: &std::fs::File) -> io::Result<bool> {
    archive::is_archive(file)
}

/// Extracts the archive `file` (see [`is_tar_archive`]) into the directory `dest`, keeping the
/// archive's owners, confined to `dest`: what a build context sent as a tar becomes.
pub fn extract_tar_archive(file: std::fs::File, dest: &Path) -> Result<(), CopyError> {
    let root = Root::open(dest)?;
    archive::unpack_archive(file, &root, "/", None)
}

/// (parent components, last component) of a non-root path; the root is (`[]`, `.`).
fn split_last(comps: &[Vec<u8>]) -> (&[Vec<u8>], &[u8]) {
    match comps.split_last() {
        Some((last, parent)) => (parent, last.as_slice()),
        None => (&[], b"."),
    }
}
