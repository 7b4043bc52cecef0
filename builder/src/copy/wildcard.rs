//! Expansion of wildcard source paths, as BuildKit's `copy.ResolveWildcards` (fsutil) does it.
//!
//! The path is split at its first component that holds an unescaped `*`, `?` or `[`: the
//! part before is a plain directory (resolved in the root, symlinks followed), the part after
//! is a pattern matched with Go's `filepath.Match` against paths relative to that directory.
//! The directory is walked in lexical order without following symlinks; a matching entry is
//! a result and, if it is a directory, not descended into. A path whose metas are all
//! escaped is not a wildcard and is used literally (backslashes included), as in fsutil.
//!
//! Results are paths in the root built from the *resolved* directory, in walk order; each is
//! then copied as its own source (so a matched directory has its contents copied, and a
//! matched symlink is followed).

use std::os::fd::{AsFd, BorrowedFd};

use rustix::fs::{AtFlags, OFlags};

use super::CopyError;
use super::resolve::{self, Comps, ResolveError, Root, Visibility, open_beneath};
use super::tree::{self, Kind, Meta};
use crate::pathmatch;

/// True if a path component has a `*`, `?` or `[` that is not escaped by `\`.
pub(crate) fn contains_wildcards(name: &[u8]) -> bool {
    let mut i = 0;
    while i < name.len() {
        match name[i] {
            b'\\' => i += 1,
            b'*' | b'?' | b'[' => return true,
            _ => {}
        }
        i += 1;
    }
    false
}

/// Splits clean components into the leading plain directory and the pattern (joined with
/// `/`), or `None` if no component is a wildcard.
pub(crate) fn split(comps: &[Vec<u8>]) -> Option<(Comps, Vec<u8>)> {
    let at = comps.iter().position(|c| contains_wildcards(c))?;
    Some((comps[..at].to_vec(), comps[at..].join(&b'/')))
}

/// The paths one COPY source `path` names in `root`: itself (cleaned), or, with wildcards
/// allowed, what its pattern matches — an error when nothing does unless empty matches are
/// allowed. The copy and the copy's cache digest both start from this list.
pub(crate) fn source_paths(
    root: &Root,
    path: &str,
    opts: &super::CopyOptions,
    visible: Option<&Visibility<'_>>,
) -> Result<Vec<Comps>, CopyError> {
    let comps = resolve::clean(path.as_bytes());
    let Some((base, pattern)) = split(&comps).filter(|_| opts.allow_wildcard) else {
        return Ok(vec![comps]);
    };
    let shown = resolve::display(&comps);
    let found = expand(root, &base, &pattern, opts.follow_src_symlink, visible, &shown)?;
    if found.is_empty() && !opts.allow_empty_wildcard {
        return Err(CopyError::NoMatch { pattern: shown });
    }
    Ok(found)
}

/// Expands the pattern `pattern` below the directory `base` of `root`. Returns the matches
/// as clean components, in BuildKit's order.
pub(crate) fn expand(
    root: &Root,
    base: &[Vec<u8>],
    pattern: &[u8],
    follow: bool,
    visible: Option<&Visibility<'_>>,
    shown_pattern: &str,
) -> Result<Vec<Comps>, CopyError> {
    // BuildKit checks the pattern (computing the cache key) before looking at any file.
    pathmatch::matches_bytes(pattern, b"").map_err(|_| CopyError::BadPattern { pattern: shown_pattern.to_string() })?;
    let r = match resolve::resolve(root, base, follow, visible) {
        Ok(r) => r,
        Err(ResolveError::NotADirectory(p)) => {
            return Err(CopyError::io("lstat", resolve::display(&p), rustix::io::Errno::NOTDIR));
        }
        Err(ResolveError::Other(e)) => return Err(e),
    };
    let Some(meta) = r.meta else {
        // fsutil walks the directory and fails on it, before any copy.
        return Err(CopyError::io("lstat", resolve::display(&r.comps), rustix::io::Errno::NOENT));
    };
    if meta.kind != Kind::Dir {
        // Walking a file yields only the file itself as ".", which never matches.
        return Ok(Vec::new());
    }
    // A pattern can only match paths with as many components as it can span: one per `/`
    // plus one per class (a class may match a `/`). Deeper entries need not be visited.
    let max_depth = 1 + pattern.iter().filter(|&&b| b == b'/' || b == b'[').count();
    let dir = root.open_dir(&r.comps, true)?;
    let mut walk = Walk { pattern, max_depth, visible, out: Vec::new() };
    walk.dir(dir.as_fd(), &r.comps, &[], 1)?;
    Ok(walk.out)
}

struct Walk<'p, 'v> {
    pattern: &'p [u8],
    max_depth: usize,
    visible: Option<&'p Visibility<'v>>,
    out: Vec<Comps>,
}

impl Walk<'_, '_> {
    fn dir(&mut self, dir: BorrowedFd<'_>, abs: &[Vec<u8>], rel: &[u8], depth: usize) -> Result<(), CopyError> {
        let names = tree::list(dir, resolve::display(abs).as_bytes())?;
        for (name, _) in names {
            let mut child_abs = abs.to_vec();
            child_abs.push(name.clone());
            let st = match rustix::fs::statat(dir, name.as_slice(), AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                // Gone since the listing: it is not there to match.
                Err(rustix::io::Errno::NOENT) => continue,
                Err(e) => return Err(CopyError::io("lstat", resolve::display(&child_abs), e)),
            };
            let meta = Meta::from_stat(&st);
            let mut child_rel = rel.to_vec();
            if !child_rel.is_empty() {
                child_rel.push(b'/');
            }
            child_rel.extend_from_slice(&name);
            if let Some(visible) = self.visible {
                let root_rel = child_abs.join(&b'/');
                if !visible(dir, &name, &root_rel, &meta)? {
                    continue;
                }
            }
            // A malformed pattern was rejected up front, so errors cannot happen here.
            if pathmatch::matches_bytes(self.pattern, &child_rel).unwrap_or(false) {
                self.out.push(child_abs);
                continue;
            }
            if meta.kind == Kind::Dir && depth < self.max_depth {
                let sub = open_beneath(dir, &name, OFlags::RDONLY)
                    .map_err(|e| CopyError::io("open", resolve::display(&child_abs), e))?;
                self.dir(sub.as_fd(), &child_abs, &child_rel, depth + 1)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaped_metas_are_not_wildcards() {
        assert!(contains_wildcards(b"*.txt"));
        assert!(contains_wildcards(b"a?"));
        assert!(contains_wildcards(b"[ab]"));
        assert!(contains_wildcards(b"a\\*b?txt"));
        assert!(!contains_wildcards(b"a\\*b.txt"));
        assert!(!contains_wildcards(b"a\\[x]"));
        assert!(!contains_wildcards(b"plain"));
    }

    #[test]
    fn split_at_the_first_wildcard_component() {
        let comps = resolve::clean(b"/src/sub*/x/*.txt");
        let (base, pattern) = split(&comps).unwrap();
        assert_eq!(base, vec![b"src".to_vec()]);
        assert_eq!(pattern, b"sub*/x/*.txt".to_vec());
        assert!(split(&resolve::clean(b"/src/a\\*b")).is_none());
        let (base, pattern) = split(&resolve::clean(b"/*")).unwrap();
        assert!(base.is_empty());
        assert_eq!(pattern, b"*".to_vec());
    }
}
