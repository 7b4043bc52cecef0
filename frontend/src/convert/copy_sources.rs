//! What the sources of one COPY/ADD become, as BuildKit's `dispatchCopy` decides it: remote
//! sources (an HTTP(S) URL, a git URL) and local ones, `--parents` patterns split at their
//! `/./` pivot, and the compiled `--exclude` / `--parents` pattern filters the copy engine
//! applies (patternmatcher syntax, the same as `.dockerignore`'s).

use strata_builder::copy::SymbolicMode;
use strata_builder::graph::{Chmod, CopyAction, FileAction, NodeId, PathFilter};
use strata_builder::pathmatch;
use strata_builder::remote::{GitUrl, parse_git_url};

use crate::dockerignore::IgnoreMatcher;

/// One source of a COPY/ADD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Source {
    /// A path of the context or of another stage (possibly with wildcards).
    Local(String),
    /// `ADD https://...` (not a git URL): the file name the download gets.
    Http { url: String, filename: String },
    /// `ADD <git url>`.
    Git(GitUrl),
}

/// Classifies `src` (already expanded). Remote sources are only recognised for ADD; COPY of
/// one is BuildKit's error.
pub(super) fn classify(src: &str, is_add: bool) -> Result<Source, String> {
    if let Some(g) = parse_git_url(src) {
        if !is_add {
            return Err("source can't be a git ref for COPY".into());
        }
        return Ok(Source::Git(g));
    }
    if src.starts_with("http://") || src.starts_with("https://") {
        if !is_add {
            return Err("source can't be a URL for COPY".into());
        }
        return Ok(Source::Http { url: src.to_string(), filename: url_filename(src) });
    }
    Ok(Source::Local(src.to_string()))
}

/// The frontend's name for a downloaded file: the last element of the URL's path, or
/// `__unnamed__` when there is none (BuildKit: `path.Base(u.Path)` unless `.` or `/`).
pub(super) fn url_filename(url: &str) -> String {
    let after_scheme = url.split_once("://").map_or(url, |(_, r)| r);
    let without_fragment = after_scheme.split('#').next().unwrap_or("");
    let without_query = without_fragment.split('?').next().unwrap_or("");
    let path = without_query.find('/').map_or("", |i| &without_query[i..]);
    let path = percent_decode(path);
    let base = path.trim_end_matches('/').rsplit('/').next().unwrap_or("");
    if base.is_empty() || base == "." { "__unnamed__".to_string() } else { base.to_string() }
}

/// `%XX` decoding of a URL path (Go's `url.Parse` gives the decoded path); bytes that do not
/// form valid UTF-8 are replaced.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// A `--parents` source: the directory the kept structure is relative to, the pattern below
/// it, and the path that must exist (only when neither part has wildcards).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ParentsSource {
    pub root: String,
    pub pattern: String,
    pub required: Option<String>,
}

/// Splits a `--parents` source at its first `/./` (BuildKit: `strings.Cut(src, "/./")`); without
/// one the root is `/`. The pattern is cleaned as a path and loses its leading `/`.
pub(super) fn split_parents(src: &str) -> ParentsSource {
    let (root, pattern) = match src.split_once("/./") {
        Some((root, pattern)) => (root.to_string(), pattern.to_string()),
        None => ("/".to_string(), src.to_string()),
    };
    let pattern = super::stage::clean_path(&format!("/{pattern}")).trim_start_matches('/').to_string();
    let required = (!has_wildcards(&root) && !has_wildcards(&pattern))
        .then(|| super::stage::clean_path(&format!("/{root}/{pattern}")));
    ParentsSource { root, pattern, required }
}

/// BuildKit's `containsWildcards`: `*`, `?` or `[` not escaped by `\`.
pub(super) fn has_wildcards(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'*' | b'?' | b'[' => return true,
            b'\\' => i += 1,
            _ => {}
        }
        i += 1;
    }
    false
}

/// `--parents` include patterns as the copy engine's filter: `is_excluded` means "selected by
/// no pattern" (a pattern selects what it matches and everything below that, patternmatcher's
/// `MatchesUsingParentResults`), `may_include_below` whether a pattern can still select
/// something below a directory that is not selected itself (so the walk can skip the rest).
#[derive(Debug)]
pub(super) struct IncludeFilter {
    matcher: IgnoreMatcher,
    patterns: Vec<String>,
}

impl IncludeFilter {
    pub(super) fn new(patterns: &[String]) -> Result<IncludeFilter, String> {
        let matcher = IgnoreMatcher::new(patterns).map_err(|e| e.to_string())?;
        let patterns = matcher.patterns();
        Ok(IncludeFilter { matcher, patterns })
    }
}

impl PathFilter for IncludeFilter {
    fn is_excluded(&self, rel_path: &str) -> bool {
        !self.matcher.is_excluded(rel_path)
    }

    fn may_include_below(&self, rel_dir: &str) -> bool {
        let dir: Vec<&str> = rel_dir.split('/').filter(|c| !c.is_empty()).collect();
        self.patterns.iter().any(|p| {
            // Patterns the per-component check below cannot judge exactly: assume they may.
            if p.contains("**") || p.contains('[') || p.contains('\\') || p.starts_with('!') {
                return true;
            }
            let pat: Vec<&str> = p.split('/').collect();
            pat.len() > dir.len() && dir.iter().zip(&pat).all(|(d, c)| pathmatch::matches(c, d).unwrap_or(true))
        })
    }
}

/// `--exclude` patterns as the copy engine's filter (paths relative to each copied source).
pub(super) fn exclude_filter(patterns: &[String]) -> Result<IgnoreMatcher, String> {
    IgnoreMatcher::new(patterns).map_err(|e| e.to_string())
}

/// Ends a run of local sources: they become one copy action (one per source would be the same
/// copy; keeping them together keeps one context digest for the run).
pub(super) fn flush_locals(
    actions: &mut Vec<FileAction>,
    group: &mut Vec<String>,
    local_source: Option<(NodeId, bool)>,
    is_add: bool,
    base: &CopyAction,
) {
    let Some((source, from_context)) = local_source else { return };
    if group.is_empty() {
        return;
    }
    actions.push(FileAction::Copy(CopyAction {
        source,
        src_paths: std::mem::take(group),
        unpack_archives: is_add && from_context,
        ..base.clone()
    }));
}

/// A `--chmod` value: octal (at most 07777), else a symbolic mode as newer Dockerfile
/// frontends accept (BuildKit 0.13 ignores non-octal values; see `strata_builder::copy::chmod`).
/// A value that starts like a number but is not octal gets BuildKit's octal error.
pub(super) fn parse_chmod(v: &str) -> Result<Chmod, String> {
    if v.starts_with(|c: char| c.is_ascii_digit()) {
        return super::values::parse_chmod(v).map(Chmod::Octal);
    }
    SymbolicMode::parse(v).map(|_| Chmod::Symbolic(v.to_string())).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_classified_like_buildkit() {
        assert_eq!(classify("a/b.txt", true).unwrap(), Source::Local("a/b.txt".into()));
        assert_eq!(
            classify("https://example.com/dl/file.tar.gz?x=1#frag", true).unwrap(),
            Source::Http { url: "https://example.com/dl/file.tar.gz?x=1#frag".into(), filename: "file.tar.gz".into() }
        );
        assert!(matches!(classify("https://example.com/repo.git#main:dir", true).unwrap(), Source::Git(_)));
        assert!(matches!(classify("git@example.com:org/repo.git", true).unwrap(), Source::Git(_)));
        assert_eq!(classify("https://x/f", false).unwrap_err(), "source can't be a URL for COPY");
        assert_eq!(classify("https://x/r.git", false).unwrap_err(), "source can't be a git ref for COPY");
    }

    #[test]
    fn download_names_come_from_the_url_path() {
        assert_eq!(url_filename("http://127.0.0.1:18080/file.txt"), "file.txt");
        assert_eq!(url_filename("http://127.0.0.1:18080/file.txt?x=1"), "file.txt");
        assert_eq!(url_filename("http://127.0.0.1:18080/"), "__unnamed__");
        assert_eq!(url_filename("http://127.0.0.1:18080"), "__unnamed__");
        assert_eq!(url_filename("http://h/dir/"), "dir", "path.Base drops a trailing slash");
        assert_eq!(url_filename("http://h/a%20b.txt"), "a b.txt");
        assert_eq!(url_filename("http://h/.."), "..", "refused later by the download");
    }

    #[test]
    fn parents_sources_split_at_the_pivot() {
        let s = split_parents("/test/a/b/./c/d");
        assert_eq!((s.root.as_str(), s.pattern.as_str()), ("/test/a/b", "c/d"));
        assert_eq!(s.required.as_deref(), Some("/test/a/b/c/d"));
        let s = split_parents("/test/a/b/c/d/.");
        assert_eq!((s.root.as_str(), s.pattern.as_str()), ("/", "test/a/b/c/d"));
        let s = split_parents("/test/a/./b/./c");
        assert_eq!((s.root.as_str(), s.pattern.as_str()), ("/test/a", "b/c"));
        let s = split_parents("/test/a/b*/./c/**/e");
        assert_eq!((s.root.as_str(), s.pattern.as_str(), s.required), ("/test/a/b*", "c/**/e", None));
        let s = split_parents("foo1/foo2/bar");
        assert_eq!((s.root.as_str(), s.pattern.as_str()), ("/", "foo1/foo2/bar"));
        assert!(!has_wildcards(r"a\*b") && has_wildcards("a[b]") && has_wildcards("a?"));
    }

    #[test]
    fn include_filters_select_matches_and_what_is_below_them() {
        let f = IncludeFilter::new(&["foo1/foo2/ba*".to_string()]).unwrap();
        assert!(!f.is_excluded("foo1/foo2/bar"));
        assert!(!f.is_excluded("foo1/foo2/bar/inner"), "below a match");
        assert!(f.is_excluded("foo1") && f.may_include_below("foo1"));
        assert!(f.is_excluded("foo1/foo2") && f.may_include_below("foo1/foo2"));
        assert!(f.is_excluded("other") && !f.may_include_below("other"));
        assert!(f.is_excluded("foo1/foo2/qux") && !f.may_include_below("foo1/foo2/qux"));
        let f = IncludeFilter::new(&["c/**/e".to_string()]).unwrap();
        assert!(!f.is_excluded("c/d/e") && !f.is_excluded("c/d/x/e/f") && f.is_excluded("c/d/f"));
        assert!(f.may_include_below("zzz"), "** patterns are not pruned");
    }
}
