//! Where `strata build` gets its context and Dockerfile from, as `docker build` accepts them:
//!
//! - a directory (the Dockerfile is `-f PATH`, default `DIR/Dockerfile`);
//! - `-`: standard input holds either a tar archive (plain, gzip, bzip2, xz or zstd), which is
//!   the context (its `Dockerfile`, or `-f PATH` inside it), or a Dockerfile with no context;
//! - `-f -` with a directory: the Dockerfile is read from standard input;
//! - a git URL (`https://host/repo.git#ref:dir`, `git@host:repo.git`, `git://...`, BuildKit's
//!   syntax): the repository is checked out by the builder's git source and `dir` of it is the
//!   context (`-f` is relative to it).
//!
//! `.dockerignore` applies to every kind, read from the context as for a directory
//! (`<Dockerfile>.dockerignore` beside a Dockerfile that has a path, else `.dockerignore`).
//!
//! Contexts that are not a directory of the user's are made into directories at stable places
//! in the store, so that builds from the same content hit the cache (step keys include the
//! context's path): a tar from standard input is extracted to `cache/contexts/tar-<sha256 of
//! the stream>` (the last few are kept), a git context is the builder's checkout of the commit,
//! and a Dockerfile-only build uses an empty directory.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use sha2::{Digest as _, Sha256};
use strata_builder::graph::GitSource;
use strata_builder::remote::{Fetcher, parse_git_url};
use strata_store::Store;

/// Extracted standard-input contexts kept for later builds to reuse.
const KEEP_TAR_CONTEXTS: usize = 3;

/// A context directory and the Dockerfile to build.
#[derive(Debug)]
pub struct Prepared {
    /// The context directory.
    pub dir: PathBuf,
    /// The Dockerfile's bytes.
    pub dockerfile: Vec<u8>,
    /// The Dockerfile's path when it has one (for the ignore file beside it and the cache
    /// scope), `None` when it came from standard input.
    pub dockerfile_path: Option<PathBuf>,
    /// The name errors show (`Dockerfile` for standard input, as BuildKit's).
    pub display_name: String,
}

/// Resolves `context` and `file` (both as given on the command line).
pub fn prepare(store: &Store, context: &Path, file: Option<&Path>, stdin: &mut dyn Read) -> Result<Prepared> {
    let dockerfile_from_stdin = file.is_some_and(|f| f == Path::new("-"));
    let text = context.to_string_lossy();
    if text == "-" {
        if dockerfile_from_stdin {
            bail!("standard input cannot be both the build context and the Dockerfile (`-f -` with context `-`)");
        }
        return from_stdin(store, file, stdin);
    }
    let dir = if !context.exists()
        && let Some(url) = parse_git_url(&text)
    {
        git_context(store, &url.remote, url.reference, url.subdir)?
    } else {
        let dir = context.canonicalize().with_context(|| format!("build context {}", context.display()))?;
        if !dir.is_dir() {
            bail!("build context {} is not a directory (nor `-` or a git URL)", context.display());
        }
        dir
    };
    if dockerfile_from_stdin {
        let mut dockerfile = Vec::new();
        stdin.read_to_end(&mut dockerfile).context("reading the Dockerfile from standard input")?;
        return Ok(Prepared { dir, dockerfile, dockerfile_path: None, display_name: "Dockerfile".into() });
    }
    let remote = !context.exists();
    let path = match file {
        // For a git context `-f` names a file of the repository (docker's rule).
        Some(f) if remote => confined(&dir, f)?,
        Some(f) => f.to_path_buf(),
        None => dir.join("Dockerfile"),
    };
    let dockerfile = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let display_name = display_name(&path);
    Ok(Prepared { dir, dockerfile, dockerfile_path: Some(path), display_name })
}

/// `-`: a context archive or a lone Dockerfile on standard input.
fn from_stdin(store: &Store, file: Option<&Path>, stdin: &mut dyn Read) -> Result<Prepared> {
    let base = store.cache_dir().join("contexts");
    fs::create_dir_all(&base).with_context(|| format!("creating {}", base.display()))?;
    // Spooled to a file: the archive decoders read files, and its hash names the directory.
    let mut spool = tempfile::Builder::new().prefix(".stdin-").tempfile_in(&base).context("spooling standard input")?;
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match stdin.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).context("reading standard input"),
        };
        hash.update(&buf[..n]);
        spool.write_all(&buf[..n]).context("spooling standard input")?;
    }
    let sha = strata_store::digest::to_hex(&hash.finalize());
    let spooled = spool.reopen().context("reading the spooled standard input")?;
    if !strata_builder::copy::is_tar_archive(&spooled).context("reading the spooled standard input")? {
        // Not an archive: a Dockerfile, with an empty context (`docker build - < Dockerfile`).
        if file.is_some() {
            bail!("-f cannot be used when standard input holds a Dockerfile rather than a context archive");
        }
        let dockerfile = fs::read(spool.path()).context("reading the spooled standard input")?;
        let empty = base.join("empty");
        fs::create_dir_all(&empty).with_context(|| format!("creating {}", empty.display()))?;
        return Ok(Prepared { dir: empty, dockerfile, dockerfile_path: None, display_name: "Dockerfile".into() });
    }
    let dir = base.join(format!("tar-{sha}"));
    if !dir.is_dir() {
        let tmp =
            tempfile::Builder::new().prefix(".extract-").tempdir_in(&base).context("creating a context directory")?;
        strata_builder::copy::extract_tar_archive(spooled, tmp.path())
            .map_err(|e| anyhow::anyhow!("extracting the context archive from standard input: {e}"))?;
        let tmp = tmp.keep();
        if fs::rename(&tmp, &dir).is_err() {
            // Another build extracted the same archive meanwhile: use theirs.
            let _ = fs::remove_dir_all(&tmp);
        }
    }
    touch(&dir);
    prune_tar_contexts(&base, &dir);
    let path = confined(&dir, file.unwrap_or(Path::new("Dockerfile")))?;
    let dockerfile = fs::read(&path).with_context(|| {
        format!("reading {} from the context archive", file.unwrap_or(Path::new("Dockerfile")).display())
    })?;
    let display_name = file.map_or("Dockerfile".to_string(), |f| f.display().to_string());
    Ok(Prepared { dir, dockerfile, dockerfile_path: Some(path), display_name })
}

/// A git URL context: the builder's checkout (`.git` left out, as BuildKit's default).
fn git_context(store: &Store, remote: &str, reference: Option<String>, subdir: Option<String>) -> Result<PathBuf> {
    let status = |text: &str| tracing::info!("git context: {text}");
    let fetcher = Fetcher { store, registry: None, status: &status };
    let source = GitSource { remote: remote.to_string(), reference, subdir, keep_git_dir: false, checksum: None };
    let fetched = fetcher.git(&source).map_err(|e| anyhow::anyhow!("git context: {e}"))?;
    Ok(fetched.source.path)
}

/// `rel` inside `dir` (a relative path, no `..` above it), for files named inside contexts
/// that strata made itself.
fn confined(dir: &Path, rel: &Path) -> Result<PathBuf> {
    let mut out = dir.to_path_buf();
    for c in rel.components() {
        match c {
            std::path::Component::Normal(n) => out.push(n),
            std::path::Component::CurDir => {}
            _ => bail!("{}: must be a relative path inside the context", rel.display()),
        }
    }
    Ok(out)
}

/// Marks an extracted context as used now (pruning keeps the most recently used).
fn touch(dir: &Path) {
    let now = rustix::fs::Timestamps {
        last_access: rustix::fs::Timespec { tv_sec: 0, tv_nsec: rustix::fs::UTIME_NOW },
        last_modification: rustix::fs::Timespec { tv_sec: 0, tv_nsec: rustix::fs::UTIME_NOW },
    };
    let _ = rustix::fs::utimensat(rustix::fs::CWD, dir, &now, rustix::fs::AtFlags::empty());
}

/// Removes all but the most recently used extracted contexts (never `keep`).
fn prune_tar_contexts(base: &Path, keep: &Path) {
    let Ok(entries) = fs::read_dir(base) else { return };
    let mut found: Vec<(std::time::SystemTime, PathBuf)> = entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("tar-"))
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    found.sort_by_key(|f| std::cmp::Reverse(f.0));
    for (_, p) in found.into_iter().skip(KEEP_TAR_CONTEXTS) {
        if p != keep {
            let _ = fs::remove_dir_all(&p);
        }
    }
}

/// The Dockerfile's name as errors show it: relative to the working directory when possible.
pub fn display_name(path: &Path) -> String {
    let cwd = std::env::current_dir().ok();
    match cwd.and_then(|c| path.strip_prefix(&c).ok().map(Path::to_path_buf)) {
        Some(rel) => rel.display().to_string(),
        None => path.display().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(d.path()).unwrap();
        (d, s)
    }

    fn tar_of(files: &[(&str, &str)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, name, data.as_bytes()).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn a_tar_on_stdin_is_the_context() {
        let (_d, s) = store();
        let tar = tar_of(&[("Dockerfile", "FROM scratch\n"), ("sub/f.txt", "f"), ("other.Dockerfile", "FROM x\n")]);
        let p = prepare(&s, Path::new("-"), None, &mut &tar[..]).unwrap();
        assert_eq!(p.dockerfile, b"FROM scratch\n");
        assert_eq!(fs::read_to_string(p.dir.join("sub/f.txt")).unwrap(), "f");
        // The same archive again reuses the directory (stable keys), -f names a file inside.
        let again = prepare(&s, Path::new("-"), Some(Path::new("other.Dockerfile")), &mut &tar[..]).unwrap();
        assert_eq!(again.dir, p.dir);
        assert_eq!(again.dockerfile, b"FROM x\n");
        assert!(prepare(&s, Path::new("-"), Some(Path::new("../x")), &mut &tar[..]).is_err());
        assert!(prepare(&s, Path::new("-"), Some(Path::new("-")), &mut &tar[..]).is_err());
        // A gzip'd tar works the same.
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&tar).unwrap();
        let p = prepare(&s, Path::new("-"), None, &mut &gz.finish().unwrap()[..]).unwrap();
        assert_eq!(fs::read_to_string(p.dir.join("sub/f.txt")).unwrap(), "f");
    }

    #[test]
    fn a_dockerfile_on_stdin_has_an_empty_context() {
        let (_d, s) = store();
        let p = prepare(&s, Path::new("-"), None, &mut &b"FROM scratch\nCOPY x /\n"[..]).unwrap();
        assert_eq!(p.dockerfile, b"FROM scratch\nCOPY x /\n");
        assert_eq!(fs::read_dir(&p.dir).unwrap().count(), 0);
        assert_eq!(p.display_name, "Dockerfile");
        let ctx = tempfile::tempdir().unwrap();
        fs::write(ctx.path().join("Dockerfile"), "FROM on-disk\n").unwrap();
        let p = prepare(&s, ctx.path(), Some(Path::new("-")), &mut &b"FROM stdin\n"[..]).unwrap();
        assert_eq!(p.dockerfile, b"FROM stdin\n");
        assert_eq!(p.dir, ctx.path().canonicalize().unwrap());
        assert!(p.dockerfile_path.is_none());
    }

    #[test]
    fn bad_contexts_are_clear_errors() {
        let (_d, s) = store();
        let e = prepare(&s, Path::new("/nonexistent/ctx"), None, &mut &b""[..]).unwrap_err();
        assert!(format!("{e:#}").contains("/nonexistent/ctx"), "{e:#}");
        let f = tempfile::NamedTempFile::new().unwrap();
        let e = prepare(&s, f.path(), None, &mut &b""[..]).unwrap_err();
        assert!(e.to_string().contains("not a directory"), "{e}");
    }
}
