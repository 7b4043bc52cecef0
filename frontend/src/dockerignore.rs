//! `.dockerignore`: which files of a build context are left out, with Docker's exact semantics.
//!
//! The builder's context walker asks an [`IgnoreMatcher`] (through
//! [`strata_builder::graph::PathFilter`]) whether each path is excluded, and whether an excluded
//! directory must still be entered because an exception (`!pattern`) may re-include something
//! below it. [`ignore_file_for`] finds the file to read (`<Dockerfile>.dockerignore` first).
//!
//! # Behaviour followed
//! Reading the file is moby/patternmatcher's `ignorefile.ReadAll`: a UTF-8 BOM is dropped, lines
//! starting with `#` are comments (only in the first column), every other line is trimmed, empty
//! lines are skipped, a `!` prefix marks an exception, and the rest is path-cleaned (Go's
//! `filepath.Clean`) with one leading `/` dropped. Lines of 64 KiB or more are an error.
//!
//! Each pattern then becomes what moby/patternmatcher makes of it: it must be valid for Go's
//! `filepath.Match` (else "syntax error in pattern": `[` unclosed, `[]a]`, `[a-]`, a trailing
//! `\`...), and it is translated to a Go regexp — `*` → `[^/]*`, `?` → `[^/]`, `**` (with a
//! following `/`) → `(.*/)?`, a final `**` → `.*`, `.+()|{}$` escaped, while `[`, `]`, `^` and
//! `\x` go to the regexp as written — except that a pattern without such characters compares
//! exactly, one ending in `**` (and otherwise plain) compares as a string prefix, and one
//! starting with `**` whose rest is plain compares as a string suffix (so `**foo` also excludes
//! `xfoo`). Because the regexp is Go's, `[[:alpha:]]` and `\d` are classes, `^` anchors, `*` and
//! `?` match newlines but `**` does not, and `[^a]` matches `/`.
//!
//! Matching is that of BuildKit's context walker (tonistiigi/fsutil `filterFS.Walk` with
//! `MatchesUsingParentResults`): patterns apply in order, later ones win; an exception is only
//! tried on paths that are excluded at that point; a pattern that matched a directory still counts
//! as matching everything below it; and an excluded directory is not entered at all when no
//! exception could re-include something in it (all exceptions plain paths, none of them below
//! the directory). So with `a/b` then `!a`, `a/b` stays excluded (the exception is not tried on
//! the directory `a`), which differs from patternmatcher's `MatchesOrParentMatches`.
//!
//! # Why not globset
//! The workspace lists globset for `.dockerignore` "with Docker's rules on top", but globset
//! cannot express these rules: its `**` is only special as a whole path component (Docker's
//! `a**/x` and `**file` are not), its classes have no POSIX names or Perl escapes, it has no
//! anchors, its escapes are not Go's, and the exact/prefix/suffix shortcuts above change results
//! (`**foo` matching `xfoo`). So the translation to Go's regexp syntax is done here as
//! patternmatcher does it, and the private `go_regexp` module implements the part of Go's RE2
//! syntax such translations can produce (literals, `.`, classes with ranges, negation,
//! `[:name:]`, `\d\s\w`, escapes, `^ $ \A \z \b \B`, `\Q…\E`, groups, `* + ?`) with a
//! linear-time NFA. Go's Unicode classes (`\pL`) are the one thing it refuses, with a clear
//! error, rather than guess. Patterns are compiled when the matcher is built, so a pattern Go's
//! regexp rejects fails there (BuildKit fails the build when it first tries the pattern).

use std::fmt;
use std::path::{Path, PathBuf};

/// Lines this long or longer fail, as Go's `bufio.Scanner` default limit makes them.
const MAX_LINE: usize = 64 * 1024;

/// Why a pattern list is not usable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError {
    /// 1-based line in the `.dockerignore` file, when the patterns came from one.
    pub line: Option<usize>,
    /// The pattern as cleaned (without its `!`).
    pub pattern: String,
    pub kind: PatternErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternErrorKind {
    /// A `!` with nothing after it.
    #[error("illegal exclusion pattern: \"!\"")]
    LoneExclamation,
    /// Not a valid Go `filepath.Match` pattern (Go's `filepath.ErrBadPattern`).
    #[error("syntax error in pattern")]
    Syntax,
    /// Valid for `filepath.Match`, but the Go regexp it becomes is not (`\1`, `[z-a]`...).
    #[error("error parsing regexp: {0}")]
    Regexp(String),
    /// Go's regexp would take it, strata does not implement it (Unicode classes such as `\pL`).
    #[error("not supported: {0}")]
    Unsupported(String),
    #[error("line too long (64 KiB or more)")]
    LineTooLong,
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, "line {line}: ")?;
        }
        match self.kind {
            PatternErrorKind::LoneExclamation | PatternErrorKind::LineTooLong => write!(f, "{}", self.kind),
            _ => write!(f, "{} ({:?})", self.kind, self.pattern),
        }
    }
}

impl std::error::Error for PatternError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.kind)
    }
}

/// The exclusion rules of a build context.
#[derive(Debug, Clone, Default)]
pub struct IgnoreMatcher {
    patterns: Vec<Pattern>,
    /// Whether any pattern is an exception.
    exceptions: bool,
    /// Whether every exception is a plain path (apart from a trailing `/*` or `/**`), which lets
    /// the walker skip excluded directories that no exception reaches into.
    only_prefix_exceptions: bool,
}

#[derive(Debug, Clone)]
struct Pattern {
    /// The cleaned pattern without its `!`.
    text: String,
    exclusion: bool,
    how: How,
}

/// How a pattern compares, as patternmatcher decides it.
#[derive(Debug, Clone)]
enum How {
    Exact,
    /// The pattern minus its final `**` is a string prefix of the path.
    Prefix,
    /// The pattern minus its leading `**` is a string suffix of the path (or, starting with `/`,
    /// the whole path without that `/`).
    Suffix,
    Regexp(go_regexp::Regexp),
}

impl Pattern {
    fn matches(&self, path: &str) -> bool {
        // Byte-wise, as Go slices strings.
        let text = self.text.as_bytes();
        match &self.how {
            How::Exact => path == self.text,
            How::Prefix => path.as_bytes().starts_with(&text[..text.len().saturating_sub(2)]),
            How::Suffix => {
                let suffix = text.get(2..).unwrap_or_default();
                path.as_bytes().ends_with(suffix) || (suffix.first() == Some(&b'/') && path.as_bytes() == &suffix[1..])
            }
            How::Regexp(re) => re.is_match(path),
        }
    }
}

impl IgnoreMatcher {
    /// Reads a `.dockerignore` file's content (see the module doc for the rules). Errors carry
    /// the line number.
    pub fn from_dockerignore(content: &str) -> Result<IgnoreMatcher, PatternError> {
        IgnoreMatcher::build(read_ignore_file(content)?)
    }

    /// Patterns as patternmatcher takes them: each trimmed and cleaned, empty ones skipped, a
    /// leading `!` marking an exception.
    pub fn new(patterns: &[String]) -> Result<IgnoreMatcher, PatternError> {
        IgnoreMatcher::build(patterns.iter().map(|p| (p.clone(), None)).collect())
    }

    fn build(lines: Vec<(String, Option<usize>)>) -> Result<IgnoreMatcher, PatternError> {
        let mut patterns = Vec::new();
        for (raw, line) in lines {
            let trimmed = raw.trim();
            if trimmed.is_empty() {
                continue;
            }
            let cleaned = go_clean(trimmed);
            let (exclusion, text) = match cleaned.strip_prefix('!') {
                Some("") => {
                    return Err(PatternError { line, pattern: cleaned, kind: PatternErrorKind::LoneExclamation });
                }
                Some(rest) => (true, rest.to_string()),
                None => (false, cleaned),
            };
            let error = |kind| PatternError { line, pattern: text.clone(), kind };
            if strata_builder::pathmatch::validate(&text).is_err() {
                return Err(error(PatternErrorKind::Syntax));
            }
            let how = compile(&text).map_err(|e| {
                error(match e {
                    go_regexp::Error::Syntax(msg) => PatternErrorKind::Regexp(msg),
                    go_regexp::Error::Unsupported(msg) => PatternErrorKind::Unsupported(msg),
                })
            })?;
            patterns.push(Pattern { text, exclusion, how });
        }
        let exceptions = patterns.iter().any(|p| p.exclusion);
        let only_prefix_exceptions = !patterns
            .iter()
            .any(|p| p.exclusion && without_trailing_glob(&p.text).contains(['*', '[', ']', '?', '^', '\\']));
        Ok(IgnoreMatcher { patterns, exceptions, only_prefix_exceptions })
    }

    /// True when there are no patterns (nothing is excluded).
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// The patterns in order, cleaned, exceptions with their `!` (for cache keys and messages).
    pub fn patterns(&self) -> Vec<String> {
        self.patterns.iter().map(|p| if p.exclusion { format!("!{}", p.text) } else { p.text.clone() }).collect()
    }

    /// True if the slash-separated relative path is excluded: the walker's verdict, which
    /// accounts for patterns matching parent directories, the order of patterns and exceptions,
    /// and directories the walker would not enter. The root (`.`, empty) is never excluded.
    pub fn is_excluded(&self, rel_path: &str) -> bool {
        let path = go_clean(rel_path);
        if path == "." || self.patterns.is_empty() {
            return false;
        }
        let components = path.split('/').count();
        let mut parent: Option<Vec<bool>> = None;
        let mut end = 0;
        for (k, component) in path.split('/').enumerate() {
            end += component.len() + usize::from(k > 0);
            let prefix = &path[..end];
            let (excluded, matched) = self.match_step(prefix, parent.as_deref());
            if k + 1 == components {
                return excluded;
            }
            if excluded && !self.may_include_below(prefix) {
                // The walker skips this directory: nothing below it is in the context.
                return true;
            }
            parent = Some(matched);
        }
        false
    }

    /// True if an excluded directory may still contain re-included paths, so a walker must
    /// descend into it (and keep the directory itself only if something below it is kept).
    pub fn may_include_below(&self, rel_dir: &str) -> bool {
        if !self.exceptions {
            return false;
        }
        if !self.only_prefix_exceptions {
            return true;
        }
        let dir_slash = format!("{}/", go_clean(rel_dir));
        self.patterns
            .iter()
            .filter(|p| p.exclusion)
            .any(|p| format!("{}/", without_trailing_glob(&p.text)).starts_with(&dir_slash))
    }

    /// patternmatcher's `MatchesUsingParentResults` for `path`, given which patterns matched its
    /// parent directory (none for a top-level path): whether `path` is excluded, and which
    /// patterns match it.
    fn match_step(&self, path: &str, parent: Option<&[bool]>) -> (bool, Vec<bool>) {
        let mut excluded = false;
        let mut matched = vec![false; self.patterns.len()];
        for (i, pattern) in self.patterns.iter().enumerate() {
            let mut m = parent.is_some_and(|p| p[i]);
            if !m {
                // An exception only matters for an excluded path, an exclusion only for an
                // included one.
                if pattern.exclusion != excluded {
                    continue;
                }
                m = pattern.matches(path);
            }
            matched[i] = m;
            if m {
                excluded = !pattern.exclusion;
            }
        }
        (excluded, matched)
    }
}

impl strata_builder::graph::PathFilter for IgnoreMatcher {
    fn is_excluded(&self, rel_path: &str) -> bool {
        IgnoreMatcher::is_excluded(self, rel_path)
    }

    fn may_include_below(&self, rel_dir: &str) -> bool {
        IgnoreMatcher::may_include_below(self, rel_dir)
    }
}

/// The ignore file BuildKit uses for a build: `<name of the Dockerfile>.dockerignore` next to the
/// Dockerfile (`foo.Dockerfile.dockerignore` for `foo.Dockerfile`, `Dockerfile.dockerignore` for
/// `Dockerfile`) when that is a file, else `.dockerignore` at the root of the context when that
/// is a file (a directory of that name is ignored, as BuildKit does), else none. `dockerfile` is
/// the path of the Dockerfile as given (`-f`), not `-` for standard input.
pub fn ignore_file_for(context_dir: &Path, dockerfile: &Path) -> Option<PathBuf> {
    if let Some(name) = dockerfile.file_name() {
        let mut ignore_name = name.to_os_string();
        ignore_name.push(".dockerignore");
        let specific = dockerfile.with_file_name(ignore_name);
        if specific.is_file() {
            return Some(specific);
        }
    }
    let default = context_dir.join(".dockerignore");
    default.is_file().then_some(default)
}

/// `ignorefile.ReadAll`: the patterns of an ignore file with their line numbers.
fn read_ignore_file(content: &str) -> Result<Vec<(String, Option<usize>)>, PatternError> {
    let content = content.strip_prefix('\u{feff}').unwrap_or(content);
    let mut lines: Vec<&str> = content.split('\n').collect();
    // A final newline ends the last line; it does not start an empty one.
    if lines.last() == Some(&"") {
        lines.pop();
    }
    let mut patterns = Vec::new();
    for (idx, line) in lines.into_iter().enumerate() {
        let lineno = idx + 1;
        if line.len() >= MAX_LINE {
            return Err(PatternError {
                line: Some(lineno),
                pattern: String::new(),
                kind: PatternErrorKind::LineTooLong,
            });
        }
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.starts_with('#') {
            continue;
        }
        let mut pattern = line.trim();
        if pattern.is_empty() {
            continue;
        }
        let invert = pattern.starts_with('!');
        if invert {
            pattern = pattern[1..].trim();
        }
        let mut pattern = pattern.to_string();
        if !pattern.is_empty() {
            pattern = go_clean(&pattern);
            if pattern.len() > 1 && pattern.starts_with('/') {
                pattern.remove(0);
            }
        }
        if invert {
            pattern.insert(0, '!');
        }
        patterns.push((pattern, Some(lineno)));
    }
    Ok(patterns)
}

/// fsutil's `patternWithoutTrailingGlob`.
fn without_trailing_glob(pattern: &str) -> &str {
    let pattern = pattern.strip_suffix("/**").unwrap_or(pattern);
    pattern.strip_suffix("/*").unwrap_or(pattern)
}

/// Go's `path.Clean`: the shortest equivalent slash-separated path.
pub(crate) fn go_clean(path: &str) -> String {
    if path.is_empty() {
        return ".".to_string();
    }
    let rooted = path.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for component in path.split('/') {
        match component {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|last| *last != "..") {
                    out.pop();
                } else if !rooted {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    let joined = out.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

/// patternmatcher's `compile`: the comparison kind and, for regexps, the Go regexp.
fn compile(pattern: &str) -> Result<How, go_regexp::Error> {
    #[derive(PartialEq)]
    enum Kind {
        Exact,
        Prefix,
        Suffix,
        Regexp,
    }
    let mut re = String::from("^");
    let mut kind = Kind::Exact;
    // Go's text/scanner skips a leading byte-order mark.
    let mut chars = pattern.strip_prefix('\u{feff}').unwrap_or(pattern).chars().peekable();
    let mut i = 0;
    while let Some(c) = chars.next() {
        match c {
            '*' if chars.peek() == Some(&'*') => {
                chars.next();
                // `**/` is `**`.
                if chars.peek() == Some(&'/') {
                    chars.next();
                }
                if chars.peek().is_none() {
                    if kind == Kind::Exact {
                        kind = Kind::Prefix;
                    } else {
                        re.push_str(".*");
                        kind = Kind::Regexp;
                    }
                } else {
                    re.push_str("(.*/)?");
                    kind = Kind::Regexp;
                }
                if i == 0 {
                    kind = Kind::Suffix;
                }
            }
            '*' => {
                re.push_str("[^/]*");
                kind = Kind::Regexp;
            }
            '?' => {
                re.push_str("[^/]");
                kind = Kind::Regexp;
            }
            '.' | '+' | '(' | ')' | '|' | '{' | '}' | '$' => {
                re.push('\\');
                re.push(c);
            }
            '\\' => match chars.next() {
                Some(escaped) => {
                    re.push('\\');
                    re.push(escaped);
                    kind = Kind::Regexp;
                }
                None => re.push('\\'),
            },
            '[' | ']' => {
                re.push(c);
                kind = Kind::Regexp;
            }
            _ => re.push(c),
        }
        i += 1;
    }
    Ok(match kind {
        Kind::Exact => How::Exact,
        Kind::Prefix => How::Prefix,
        Kind::Suffix => How::Suffix,
        Kind::Regexp => {
            re.push('$');
            How::Regexp(go_regexp::Regexp::new(&re)?)
        }
    })
}

/// The subset of Go's `regexp` (RE2 syntax, Perl flags: `.` excludes `\n`, negated classes
/// include it, `^`/`$` are text anchors) that `.dockerignore` translations produce, matched with
/// a Thompson NFA: time linear in pattern × path, no recursion on the input.
mod go_regexp {
    use std::fmt;

    #[derive(Debug, Clone, PartialEq, Eq)]
    pub(super) enum Error {
        /// Go's regexp rejects it; the message follows Go's (`invalid escape sequence: \e`).
        Syntax(String),
        /// Go's regexp takes it; this implementation does not.
        Unsupported(String),
    }

    fn syntax<T>(code: &str, expr: &str) -> Result<T, Error> {
        Err(Error::Syntax(format!("{code}: `{expr}`")))
    }

    const MAX_CHAR: u32 = 0x10ffff;

    /// A set of characters as sorted, non-overlapping inclusive ranges.
    #[derive(Clone, PartialEq, Eq, Default)]
    struct Class(Vec<(u32, u32)>);

    impl fmt::Debug for Class {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "Class({} ranges)", self.0.len())
        }
    }

    impl Class {
        fn of(ranges: &[(u32, u32)]) -> Class {
            let mut class = Class::default();
            ranges.iter().for_each(|&(lo, hi)| class.add(lo, hi));
            class
        }

        fn add(&mut self, lo: u32, hi: u32) {
            self.0.push((lo, hi));
            self.0.sort_unstable();
            let mut merged: Vec<(u32, u32)> = Vec::with_capacity(self.0.len());
            for &(lo, hi) in &self.0 {
                match merged.last_mut() {
                    Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
                    _ => merged.push((lo, hi)),
                }
            }
            self.0 = merged;
        }

        fn add_class(&mut self, other: &Class) {
            other.0.iter().for_each(|&(lo, hi)| self.add(lo, hi));
        }

        fn negated(&self) -> Class {
            let mut out = Vec::new();
            let mut next = 0u32;
            for &(lo, hi) in &self.0 {
                if lo > next {
                    out.push((next, lo - 1));
                }
                next = hi + 1;
            }
            if next <= MAX_CHAR {
                out.push((next, MAX_CHAR));
            }
            Class(out)
        }

        fn contains(&self, c: char) -> bool {
            let c = c as u32;
            self.0
                .binary_search_by(|&(lo, hi)| {
                    if hi < c {
                        std::cmp::Ordering::Less
                    } else if lo > c {
                        std::cmp::Ordering::Greater
                    } else {
                        std::cmp::Ordering::Equal
                    }
                })
                .is_ok()
        }
    }

    /// `\d \s \w` and their negations (ASCII, as in Go).
    fn perl_class(c: char) -> Option<Class> {
        let (base, negate) = match c {
            'd' => (Class::of(&[(0x30, 0x39)]), false),
            'D' => (Class::of(&[(0x30, 0x39)]), true),
            's' => (Class::of(&[(0x9, 0xa), (0xc, 0xd), (0x20, 0x20)]), false),
            'S' => (Class::of(&[(0x9, 0xa), (0xc, 0xd), (0x20, 0x20)]), true),
            'w' => (Class::of(&[(0x30, 0x39), (0x41, 0x5a), (0x5f, 0x5f), (0x61, 0x7a)]), false),
            'W' => (Class::of(&[(0x30, 0x39), (0x41, 0x5a), (0x5f, 0x5f), (0x61, 0x7a)]), true),
            _ => return None,
        };
        Some(if negate { base.negated() } else { base })
    }

    /// `[:alpha:]` and friends (ASCII, as in Go), `[:^alpha:]` negated.
    fn posix_class(name: &str) -> Option<Class> {
        let (negate, name) = match name.strip_prefix('^') {
            Some(rest) => (true, rest),
            None => (false, name),
        };
        let ranges: &[(u32, u32)] = match name {
            "alnum" => &[(0x30, 0x39), (0x41, 0x5a), (0x61, 0x7a)],
            "alpha" => &[(0x41, 0x5a), (0x61, 0x7a)],
            "ascii" => &[(0x0, 0x7f)],
            "blank" => &[(0x9, 0x9), (0x20, 0x20)],
            "cntrl" => &[(0x0, 0x1f), (0x7f, 0x7f)],
            "digit" => &[(0x30, 0x39)],
            "graph" => &[(0x21, 0x7e)],
            "lower" => &[(0x61, 0x7a)],
            "print" => &[(0x20, 0x7e)],
            "punct" => &[(0x21, 0x2f), (0x3a, 0x40), (0x5b, 0x60), (0x7b, 0x7e)],
            "space" => &[(0x9, 0xd), (0x20, 0x20)],
            "upper" => &[(0x41, 0x5a)],
            "word" => &[(0x30, 0x39), (0x41, 0x5a), (0x5f, 0x5f), (0x61, 0x7a)],
            "xdigit" => &[(0x30, 0x39), (0x41, 0x46), (0x61, 0x66)],
            _ => return None,
        };
        let class = Class::of(ranges);
        Some(if negate { class.negated() } else { class })
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Look {
        BeginText,
        EndText,
        WordBoundary,
        NotWordBoundary,
    }

    #[derive(Debug, Clone)]
    enum Node {
        Char(Class),
        Look(Look),
        Concat(Vec<Node>),
        Alternate(Vec<Node>),
        /// `*` (0, None), `+` (1, None), `?` (0, Some(1)).
        Repeat(Box<Node>, u8, Option<u8>),
    }

    fn literal(c: char) -> Node {
        Node::Char(Class::of(&[(c as u32, c as u32)]))
    }

    struct Parser<'a> {
        src: &'a str,
        pos: usize,
    }

    impl Parser<'_> {
        fn rest(&self) -> &str {
            &self.src[self.pos..]
        }

        fn peek(&self) -> Option<char> {
            self.rest().chars().next()
        }

        fn bump(&mut self) -> Option<char> {
            let c = self.peek()?;
            self.pos += c.len_utf8();
            Some(c)
        }

        fn parse_alternate(&mut self, depth: usize) -> Result<Node, Error> {
            let mut branches = vec![self.parse_concat(depth)?];
            while self.peek() == Some('|') {
                self.bump();
                branches.push(self.parse_concat(depth)?);
            }
            Ok(if branches.len() == 1 { branches.remove(0) } else { Node::Alternate(branches) })
        }

        fn parse_concat(&mut self, depth: usize) -> Result<Node, Error> {
            let mut items: Vec<Node> = Vec::new();
            // Whether the last item was produced by a repetition operator (`a**` is an error).
            let mut repeated = false;
            while let Some(c) = self.peek() {
                match c {
                    '|' | ')' => break,
                    '*' | '+' | '?' => {
                        let op_start = self.pos;
                        self.bump();
                        if self.peek() == Some('?') {
                            self.bump(); // non-greedy: the same yes/no answer
                        }
                        if repeated {
                            return syntax("invalid nested repetition operator", &self.src[op_start..self.pos]);
                        }
                        let Some(item) = items.pop() else {
                            return syntax("missing argument to repetition operator", &self.src[op_start..self.pos]);
                        };
                        let (min, max) = match c {
                            '*' => (0, None),
                            '+' => (1, None),
                            _ => (0, Some(1)),
                        };
                        items.push(Node::Repeat(Box::new(item), min, max));
                        repeated = true;
                        continue;
                    }
                    _ => {}
                }
                repeated = false;
                match c {
                    '(' => {
                        let start = self.pos;
                        self.bump();
                        if self.peek() == Some('?') {
                            return Err(Error::Unsupported(format!("regexp flags or named groups: `{}`", self.rest())));
                        }
                        if depth > 64 {
                            return Err(Error::Unsupported("groups nested more than 64 deep".into()));
                        }
                        let inner = self.parse_alternate(depth + 1)?;
                        if self.bump() != Some(')') {
                            return syntax("missing closing )", &self.src[start..]);
                        }
                        items.push(inner);
                    }
                    '[' => items.push(Node::Char(self.parse_class()?)),
                    '.' => {
                        self.bump();
                        items.push(Node::Char(Class::of(&[(0, 0x9), (0xb, MAX_CHAR)])));
                    }
                    '^' => {
                        self.bump();
                        items.push(Node::Look(Look::BeginText));
                    }
                    '$' => {
                        self.bump();
                        items.push(Node::Look(Look::EndText));
                    }
                    '\\' => self.parse_backslash(&mut items)?,
                    _ => {
                        self.bump();
                        items.push(literal(c));
                    }
                }
            }
            if depth == 0 && self.peek() == Some(')') {
                return syntax("unexpected )", self.src);
            }
            Ok(Node::Concat(items))
        }

        /// A `\` outside a class: assertions, `\Q…\E`, Perl classes, or one escaped character.
        fn parse_backslash(&mut self, items: &mut Vec<Node>) -> Result<(), Error> {
            let mut after = self.rest()[1..].chars();
            match after.next() {
                Some(c @ ('A' | 'z' | 'b' | 'B')) => {
                    self.pos += 2;
                    items.push(Node::Look(match c {
                        'A' => Look::BeginText,
                        'z' => Look::EndText,
                        'b' => Look::WordBoundary,
                        _ => Look::NotWordBoundary,
                    }));
                    return Ok(());
                }
                Some('C') => return syntax("invalid escape sequence", "\\C"),
                Some('Q') => {
                    let body = &self.rest()[2..];
                    let (lit, consumed) = match body.find("\\E") {
                        Some(i) => (&body[..i], i + 2),
                        None => (body, body.len()),
                    };
                    items.extend(lit.chars().map(literal));
                    self.pos += 2 + consumed;
                    return Ok(());
                }
                Some(c @ ('p' | 'P')) => {
                    return Err(Error::Unsupported(format!("Unicode class \\{c} in a .dockerignore pattern")));
                }
                Some(c) => {
                    if let Some(class) = perl_class(c) {
                        self.pos += 1 + c.len_utf8();
                        items.push(Node::Char(class));
                        return Ok(());
                    }
                }
                None => {}
            }
            let c = self.parse_escape()?;
            items.push(literal(c));
            Ok(())
        }

        /// Go's `parseEscape`: the character a `\…` sequence stands for.
        fn parse_escape(&mut self) -> Result<char, Error> {
            let start = self.pos;
            self.bump(); // the backslash
            let Some(c) = self.bump() else { return syntax("trailing backslash at end of expression", "") };
            let invalid = |p: &Parser<'_>| syntax("invalid escape sequence", &p.src[start..p.pos]);
            match c {
                c if c.is_ascii() && !c.is_ascii_alphanumeric() => Ok(c),
                '0'..='7' => {
                    // A lone non-zero digit would be a backreference, which Go rejects.
                    if c != '0' && !self.peek().is_some_and(|d| ('0'..='7').contains(&d)) {
                        return invalid(self);
                    }
                    let mut value = c as u32 - '0' as u32;
                    for _ in 0..2 {
                        match self.peek() {
                            Some(d @ '0'..='7') => {
                                self.bump();
                                value = value * 8 + (d as u32 - '0' as u32);
                            }
                            _ => break,
                        }
                    }
                    char::from_u32(value).map_or_else(|| invalid(self), Ok)
                }
                'x' => {
                    if self.peek() == Some('{') {
                        self.bump();
                        let mut value: u32 = 0;
                        let mut digits = 0;
                        loop {
                            match self.bump() {
                                Some('}') if digits > 0 => break,
                                Some(d) if d.is_ascii_hexdigit() => {
                                    value = value * 16 + d.to_digit(16).unwrap_or(0);
                                    digits += 1;
                                    if value > MAX_CHAR {
                                        return invalid(self);
                                    }
                                }
                                _ => return invalid(self),
                            }
                        }
                        return char::from_u32(value).map_or_else(|| invalid(self), Ok);
                    }
                    let hi = self.bump().and_then(|d| d.to_digit(16));
                    let lo = self.bump().and_then(|d| d.to_digit(16));
                    match (hi, lo) {
                        (Some(hi), Some(lo)) => char::from_u32(hi * 16 + lo).map_or_else(|| invalid(self), Ok),
                        _ => invalid(self),
                    }
                }
                'a' => Ok('\u{7}'),
                'f' => Ok('\u{c}'),
                'n' => Ok('\n'),
                'r' => Ok('\r'),
                't' => Ok('\t'),
                'v' => Ok('\u{b}'),
                _ => invalid(self),
            }
        }

        /// Go's `parseClass`, with Perl flags (so a negated class also matches `\n`).
        fn parse_class(&mut self) -> Result<Class, Error> {
            let start = self.pos;
            self.bump(); // [
            let negate = self.peek() == Some('^');
            if negate {
                self.bump();
            }
            let missing = |p: &Parser<'_>| syntax("missing closing ]", &p.src[start..]);
            let mut class = Class::default();
            let mut first = true;
            loop {
                match self.peek() {
                    None => return missing(self),
                    Some(']') if !first => {
                        self.bump();
                        break;
                    }
                    _ => {}
                }
                first = false;
                let rest = self.rest();
                if rest.len() > 2
                    && rest.starts_with("[:")
                    && let Some(end) = rest[2..].find(":]")
                {
                    let name = &rest[..end + 4];
                    let Some(group) = posix_class(&rest[2..end + 2]) else {
                        return syntax("invalid character class range", name);
                    };
                    class.add_class(&group);
                    self.pos += name.len();
                    continue;
                }
                if rest.starts_with("\\p") || rest.starts_with("\\P") {
                    return Err(Error::Unsupported("Unicode classes (\\p, \\P) in a .dockerignore pattern".into()));
                }
                if let Some(group) = rest.strip_prefix('\\').and_then(|r| r.chars().next()).and_then(perl_class) {
                    self.pos += 2;
                    class.add_class(&group);
                    continue;
                }
                let range_start = self.pos;
                let lo = self.class_char()?;
                let mut hi = lo;
                let rest = self.rest();
                if rest.len() >= 2 && rest.starts_with('-') && !rest[1..].starts_with(']') {
                    self.bump();
                    hi = self.class_char()?;
                    if hi < lo {
                        return syntax("invalid character class range", &self.src[range_start..self.pos]);
                    }
                }
                class.add(lo as u32, hi as u32);
            }
            Ok(if negate { class.negated() } else { class })
        }

        /// Go's `parseClassChar`: one character of a class, escapes allowed.
        fn class_char(&mut self) -> Result<char, Error> {
            match self.peek() {
                None => syntax("missing closing ]", self.src),
                Some('\\') => self.parse_escape(),
                Some(c) => {
                    self.bump();
                    Ok(c)
                }
            }
        }
    }

    #[derive(Debug, Clone)]
    enum Inst {
        Char(Class),
        Look(Look),
        Split(usize, usize),
        Jmp(usize),
        Match,
    }

    /// A compiled regexp; [`Regexp::is_match`] is Go's `MatchString`.
    #[derive(Debug, Clone)]
    pub(super) struct Regexp {
        prog: Vec<Inst>,
    }

    impl Regexp {
        pub(super) fn new(src: &str) -> Result<Regexp, Error> {
            let mut parser = Parser { src, pos: 0 };
            let node = parser.parse_alternate(0)?;
            if parser.pos != src.len() {
                return syntax("unexpected )", src);
            }
            let mut prog = Vec::new();
            emit(&node, &mut prog);
            prog.push(Inst::Match);
            Ok(Regexp { prog })
        }

        /// Whether the regexp matches anywhere in `text`.
        pub(super) fn is_match(&self, text: &str) -> bool {
            let chars: Vec<char> = text.chars().collect();
            let n = chars.len();
            let mut current = Threads::new(self.prog.len());
            let mut next = Threads::new(self.prog.len());
            for i in 0..=n {
                // Unanchored search: a new thread starts at every position.
                self.add(&mut current, 0, i, &chars);
                if current.list.iter().any(|&pc| matches!(self.prog[pc], Inst::Match)) {
                    return true;
                }
                if i == n {
                    break;
                }
                for &pc in &current.list {
                    if let Inst::Char(class) = &self.prog[pc]
                        && class.contains(chars[i])
                    {
                        self.add(&mut next, pc + 1, i + 1, &chars);
                    }
                }
                std::mem::swap(&mut current, &mut next);
                next.clear();
            }
            false
        }

        /// Adds `pc` and everything reachable from it without consuming input at `pos`.
        fn add(&self, threads: &mut Threads, pc: usize, pos: usize, chars: &[char]) {
            let mut stack = vec![pc];
            while let Some(pc) = stack.pop() {
                if !threads.insert(pc) {
                    continue;
                }
                match &self.prog[pc] {
                    Inst::Jmp(to) => stack.push(*to),
                    Inst::Split(a, b) => {
                        // Order does not matter for a yes/no answer.
                        stack.push(*b);
                        stack.push(*a);
                    }
                    Inst::Look(look) => {
                        if look_holds(*look, pos, chars) {
                            stack.push(pc + 1);
                        }
                    }
                    Inst::Char(_) | Inst::Match => {}
                }
            }
        }
    }

    fn look_holds(look: Look, pos: usize, chars: &[char]) -> bool {
        let word = |c: Option<&char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || *c == '_');
        let before = pos.checked_sub(1).and_then(|p| chars.get(p));
        let after = chars.get(pos);
        match look {
            Look::BeginText => pos == 0,
            Look::EndText => pos == chars.len(),
            Look::WordBoundary => word(before) != word(after),
            Look::NotWordBoundary => word(before) == word(after),
        }
    }

    /// A set of program counters in insertion order, with O(1) membership.
    struct Threads {
        list: Vec<usize>,
        seen: Vec<bool>,
    }

    impl Threads {
        fn new(size: usize) -> Threads {
            Threads { list: Vec::new(), seen: vec![false; size] }
        }

        fn insert(&mut self, pc: usize) -> bool {
            if self.seen[pc] {
                return false;
            }
            self.seen[pc] = true;
            self.list.push(pc);
            true
        }

        fn clear(&mut self) {
            for &pc in &self.list {
                self.seen[pc] = false;
            }
            self.list.clear();
        }
    }

    fn emit(node: &Node, prog: &mut Vec<Inst>) {
        match node {
            Node::Char(class) => prog.push(Inst::Char(class.clone())),
            Node::Look(look) => prog.push(Inst::Look(*look)),
            Node::Concat(items) => items.iter().for_each(|item| emit(item, prog)),
            Node::Alternate(branches) => {
                // split L1, next; L1: branch; jmp end; next: split ...
                let mut jumps = Vec::new();
                for (i, branch) in branches.iter().enumerate() {
                    if i + 1 < branches.len() {
                        let split = prog.len();
                        prog.push(Inst::Split(split + 1, 0));
                        emit(branch, prog);
                        jumps.push(prog.len());
                        prog.push(Inst::Jmp(0));
                        let next = prog.len();
                        prog[split] = Inst::Split(split + 1, next);
                    } else {
                        emit(branch, prog);
                    }
                }
                let end = prog.len();
                for j in jumps {
                    prog[j] = Inst::Jmp(end);
                }
            }
            Node::Repeat(item, min, max) => match (min, max) {
                (0, None) => {
                    let split = prog.len();
                    prog.push(Inst::Split(split + 1, 0));
                    emit(item, prog);
                    prog.push(Inst::Jmp(split));
                    let end = prog.len();
                    prog[split] = Inst::Split(split + 1, end);
                }
                (1, None) => {
                    let start = prog.len();
                    emit(item, prog);
                    let split = prog.len();
                    prog.push(Inst::Split(start, split + 1));
                }
                _ => {
                    let split = prog.len();
                    prog.push(Inst::Split(split + 1, 0));
                    emit(item, prog);
                    let end = prog.len();
                    prog[split] = Inst::Split(split + 1, end);
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matcher(patterns: &[&str]) -> IgnoreMatcher {
        let patterns: Vec<String> = patterns.iter().map(|p| p.to_string()).collect();
        IgnoreMatcher::new(&patterns).unwrap_or_else(|e| panic!("{patterns:?}: {e}"))
    }

    fn pattern_error(patterns: &[&str]) -> PatternError {
        let patterns: Vec<String> = patterns.iter().map(|p| p.to_string()).collect();
        IgnoreMatcher::new(&patterns).expect_err("expected an error")
    }

    #[test]
    fn reads_ignore_files_like_ignorefile() {
        let content = concat!(
            "\u{feff}test1\r\n/test2\n/a/file/here\n\nlastfile\n# comment\n",
            "  # not a comment\n! /inverted/abs/path\n./x/../y/\n\t spaced \t\n/"
        );
        let m = IgnoreMatcher::from_dockerignore(content).unwrap();
        assert_eq!(
            m.patterns(),
            ["test1", "test2", "a/file/here", "lastfile", "# not a comment", "!inverted/abs/path", "y", "spaced", "/"]
        );
        assert!(IgnoreMatcher::from_dockerignore("").unwrap().is_empty());
        assert!(IgnoreMatcher::from_dockerignore("# only\n\n   \n").unwrap().is_empty());
    }

    #[test]
    fn ignore_file_errors_carry_line_numbers() {
        let e = IgnoreMatcher::from_dockerignore("a\n# c\n!\n").unwrap_err();
        assert_eq!((e.line, &e.kind), (Some(3), &PatternErrorKind::LoneExclamation));
        assert_eq!(e.to_string(), "line 3: illegal exclusion pattern: \"!\"");
        let e = IgnoreMatcher::from_dockerignore("a\nb[c\n").unwrap_err();
        assert_eq!((e.line, &e.kind, e.pattern.as_str()), (Some(2), &PatternErrorKind::Syntax, "b[c"));
        assert_eq!(e.to_string(), "line 2: syntax error in pattern (\"b[c\")");
        let long = format!("ok\n{}\n", "x".repeat(MAX_LINE));
        let e = IgnoreMatcher::from_dockerignore(&long).unwrap_err();
        assert_eq!((e.line, e.kind), (Some(2), PatternErrorKind::LineTooLong));
        assert!(IgnoreMatcher::from_dockerignore(&"x".repeat(MAX_LINE - 1)).is_ok());
    }

    #[test]
    fn pattern_list_rules() {
        let m = matcher(&["  docs  ", "", "!docs/README.md ", "./a/../b/"]);
        assert_eq!(m.patterns(), ["docs", "!docs/README.md", "b"]);
        assert_eq!(pattern_error(&["!"]).kind, PatternErrorKind::LoneExclamation);
        assert_eq!(pattern_error(&["a", " ! "]).kind, PatternErrorKind::LoneExclamation);
        for bad in ["[", "a[", "[^", "[]a]", "[-]", "[x-]", "[a-b-c]", "a\\", "*[", "[\\"] {
            assert_eq!(pattern_error(&[bad]).kind, PatternErrorKind::Syntax, "{bad:?}");
        }
        // Valid for filepath.Match, rejected by Go's regexp.
        for bad in ["a\\1", "a\\8", "[z-a]", "a\\e", "a\\xZ1", "a\\x{42}", "[[:foo:]]", "a\\C", "\\é"] {
            assert!(matches!(pattern_error(&[bad]).kind, PatternErrorKind::Regexp(_)), "{bad:?}");
        }
        assert!(matches!(pattern_error(&["a\\pL"]).kind, PatternErrorKind::Unsupported(_)));
        assert!(matches!(pattern_error(&["[\\pL]"]).kind, PatternErrorKind::Unsupported(_)));
    }

    #[test]
    fn quirks_seen_on_buildkit() {
        // Each checked against `docker26 buildx build` (BuildKit's context transfer).
        let m = matcher(&["**foo", "c\\d", "^abc*", "a/b", "!a", "we^ird", "[[:digit:]]"]);
        for (path, excluded) in [
            ("xfoo", true),
            ("foo", true),
            ("yfoo.txt", false),
            ("c5", true),
            ("cd", false),
            ("abc", true),
            ("abcd", true),
            ("a/b", true),
            ("a/c", false),
            ("we^ird", true),
            ("7", true),
            ("q", false),
        ] {
            assert_eq!(m.is_excluded(path), excluded, "{path}");
        }
        let m = matcher(&["[[:alpha:]]"]);
        assert!(m.is_excluded("q") && !m.is_excluded("ab") && !m.is_excluded("1"));
    }

    #[test]
    fn exceptions_and_parent_directories() {
        let m = matcher(&["docs", "!docs/README.md"]);
        assert!(m.is_excluded("docs") && m.is_excluded("docs/other.md") && !m.is_excluded("docs/README.md"));
        assert!(m.may_include_below("docs") && !m.may_include_below("src"));
        // A directory that no exception reaches is skipped whole, whatever is below it.
        let m = matcher(&["keep", "!keep/sub", "d/e", "!d/e/f.log"]);
        assert!(!m.is_excluded("keep/sub/b.txt") && m.is_excluded("keep/a.txt"));
        assert!(!m.is_excluded("d/e/f.log") && m.is_excluded("d/e/g.log"));
        // Glob exceptions force the walker into every excluded directory.
        let m = matcher(&["**", "!**/*.md", "!s"]);
        assert!(m.may_include_below("anything"));
        assert!(!m.is_excluded("deep/er/x.md") && m.is_excluded("deep/er/x.txt") && !m.is_excluded("s"));
        // A directory re-included by an exception brings its contents back too.
        assert!(!m.is_excluded("s/1.txt"));
        // Without exceptions nothing is re-included.
        let m = matcher(&["a"]);
        assert!(!m.may_include_below("a") && m.is_excluded("a/b/c"));
        // Later patterns win.
        assert!(matcher(&["*.go", "!fileutils.go"]).is_excluded("a.go"));
        assert!(!matcher(&["*.go", "!fileutils.go"]).is_excluded("fileutils.go"));
        assert!(matcher(&["!fileutils.go", "*.go"]).is_excluded("fileutils.go"));
    }

    #[test]
    fn paths_are_cleaned_and_the_root_is_never_excluded() {
        let m = matcher(&["**"]);
        assert!(!m.is_excluded(".") && !m.is_excluded("") && !m.is_excluded("./"));
        assert!(m.is_excluded("a/") && m.is_excluded("./a//b"));
        assert!(!IgnoreMatcher::default().is_excluded("a"));
        let m = matcher(&["dir/**"]);
        assert!(!m.is_excluded("dir") && m.is_excluded("dir/x") && m.is_excluded("dir/x/y"));
        assert!(matcher(&["a/*.txt"]).is_excluded("a/b.txt") && !matcher(&["a/*.txt"]).is_excluded("a/b/c.txt"));
    }

    #[test]
    fn go_regexp_semantics() {
        // `*` and `?` become `[^/]`, which (negated) matches a newline; `**` uses `.`, which doesn't.
        assert!(matcher(&["a*b"]).is_excluded("a\nb"));
        assert!(matcher(&["a?b"]).is_excluded("a\nb"));
        assert!(!matcher(&["a**/b"]).is_excluded("a\n/b"));
        assert!(matcher(&["a**/b"]).is_excluded("ax/y/b") && matcher(&["a**/b"]).is_excluded("ab"));
        // `[^…]` may match `/` (it is Go's class, not filepath.Match's).
        assert!(matcher(&["a[^x]b"]).is_excluded("a/b"));
        // Escapes and classes of Go's syntax.
        assert!(matcher(&["\\x41\\101"]).is_excluded("AA"));
        assert!(matcher(&["a\\sb"]).is_excluded("a b") && matcher(&["[\\d_]x"]).is_excluded("_x"));
        assert!(matcher(&["a\\b*"]).is_excluded("a") && !matcher(&["a\\b*"]).is_excluded("ab"));
        assert!(matcher(&["\\Qa.b"]).is_excluded("a\\.b$"));
        assert!(matcher(&["[*]"]).is_excluded("]") && matcher(&["[*]"]).is_excluded("^/]"));
        assert!(matcher(&["[[:^digit:]]"]).is_excluded("x") && !matcher(&["[[:^digit:]]"]).is_excluded("1"));
        assert!(matcher(&["a[b-d]e"]).is_excluded("ace") && !matcher(&["a[b-d]e"]).is_excluded("aae"));
        // Plain patterns compare exactly, even with characters a regexp would treat specially.
        assert!(matcher(&["a(b)c+d{e}$"]).is_excluded("a(b)c+d{e}$"));
    }

    #[test]
    fn usable_as_a_path_filter() {
        use std::sync::Arc;
        use strata_builder::graph::PathFilter;
        let filter: Arc<dyn PathFilter> = Arc::new(matcher(&["target", "!target/keep"]));
        assert!(filter.is_excluded("target/x") && !filter.is_excluded("target/keep/y"));
        assert!(filter.may_include_below("target"));
    }

    #[test]
    fn finds_the_ignore_file() {
        let tmp = tempfile::tempdir().unwrap();
        let ctx = tmp.path();
        std::fs::create_dir_all(ctx.join("df")).unwrap();
        let dockerfile = ctx.join("df/foo.Dockerfile");
        assert_eq!(ignore_file_for(ctx, &dockerfile), None);
        // A directory named .dockerignore is not an ignore file.
        std::fs::create_dir(ctx.join(".dockerignore")).unwrap();
        assert_eq!(ignore_file_for(ctx, &dockerfile), None);
        std::fs::remove_dir(ctx.join(".dockerignore")).unwrap();
        std::fs::write(ctx.join(".dockerignore"), "x").unwrap();
        assert_eq!(ignore_file_for(ctx, &dockerfile), Some(ctx.join(".dockerignore")));
        // The Dockerfile's own ignore file, next to it, wins.
        std::fs::write(ctx.join("df/foo.Dockerfile.dockerignore"), "y").unwrap();
        assert_eq!(ignore_file_for(ctx, &dockerfile), Some(ctx.join("df/foo.Dockerfile.dockerignore")));
        // Not one in the context root named after it, nor one for another Dockerfile.
        std::fs::write(ctx.join("Dockerfile.dockerignore"), "z").unwrap();
        assert_eq!(ignore_file_for(ctx, &ctx.join("df/Dockerfile")), Some(ctx.join(".dockerignore")));
        assert_eq!(ignore_file_for(ctx, &ctx.join("Dockerfile")), Some(ctx.join("Dockerfile.dockerignore")));
    }

    #[test]
    fn go_clean_matches_go() {
        for (input, want) in [
            ("", "."),
            (".", "."),
            ("a/b/", "a/b"),
            ("a//b", "a/b"),
            ("./a/./b/../c", "a/c"),
            ("../../a", "../../a"),
            ("a/../..", ".."),
            ("/../a", "/a"),
            ("/", "/"),
            ("//a//", "/a"),
            ("!./x", "!./x"),
        ] {
            assert_eq!(go_clean(input), want, "{input:?}");
        }
    }

    mod prop {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(3000))]
            #[test]
            fn any_patterns_and_paths_never_panic(
                patterns in proptest::collection::vec(
                    r"!?([a-c*?/\\\[\]^\-!.:{}()|$+QEdxpb0-9]|\[:alpha:\]|\*\*){0,12}",
                    0..5,
                ),
                paths in proptest::collection::vec(r"([a-c/.\n\]\-^*]){0,12}", 1..5),
            ) {
                if let Ok(m) = IgnoreMatcher::new(&patterns) {
                    for path in &paths {
                        let _ = m.is_excluded(path);
                        let _ = m.may_include_below(path);
                    }
                }
            }

            #[test]
            fn any_ignore_file_never_panics(content in any::<String>(), path in any::<String>()) {
                if let Ok(m) = IgnoreMatcher::from_dockerignore(&content) {
                    let _ = m.is_excluded(&path);
                    let _ = m.may_include_below(&path);
                }
            }

            /// A plain name pattern excludes exactly that path and everything below it.
            #[test]
            fn plain_patterns_exclude_their_subtree(
                name in "[a-z]{1,8}",
                other in "[a-z]{1,8}",
                below in "[a-z]{1,8}",
            ) {
                let m = IgnoreMatcher::new(std::slice::from_ref(&name)).unwrap();
                prop_assert!(m.is_excluded(&name));
                let nested = format!("{name}/{below}");
                prop_assert!(m.is_excluded(&nested));
                prop_assert_eq!(m.is_excluded(&other), other == name);
            }
        }
    }
}
