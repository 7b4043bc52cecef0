//! Shell-style path patterns with the exact semantics of Go's `path/filepath.Match` on Unix.
//!
//! BuildKit resolves `COPY`/`ADD` wildcards with Go's `filepath.Match` (and checks them with
//! `path.Match`, which is identical on Unix), so strata must match names the same way,
//! including its corner cases:
//!
//! - `*` matches any run of non-`/` bytes, `?` one non-`/` character;
//! - `[...]` / `[^...]` is a non-empty class of characters and `lo-hi` ranges; unlike `*` and
//!   `?`, a class *can* match `/`;
//! - `\` escapes the next character, in and outside classes;
//! - a malformed pattern (unclosed `[`, empty class, a trailing `\`, a range with a missing end,
//!   invalid UTF-8 inside a class) is reported as [`BadPattern`] whatever the name, because Go
//!   keeps validating the rest of the pattern after a mismatch. One exception is inherited from
//!   Go: a pattern whose only remaining part is a trailing `*` returns early, so nothing after
//!   a successful match of the earlier chunks is re-checked (there is nothing after it).
//!
//! Matching works on bytes (file names need not be UTF-8); classes decode UTF-8 characters the
//! way Go does (an invalid byte in the name is U+FFFD).

use std::fmt;

/// Go's `filepath.ErrBadPattern`: the pattern is malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadPattern;

impl fmt::Display for BadPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Go's error text, which BuildKit shows as is.
        f.write_str("syntax error in pattern")
    }
}

impl std::error::Error for BadPattern {}

/// Reports whether `name` matches the shell pattern `pattern` (Go `filepath.Match`).
pub fn matches(pattern: &str, name: &str) -> Result<bool, BadPattern> {
    matches_bytes(pattern.as_bytes(), name.as_bytes())
}

/// [`matches`] on raw bytes, for file names that are not UTF-8.
pub fn matches_bytes(mut pattern: &[u8], mut name: &[u8]) -> Result<bool, BadPattern> {
    'chunks: while !pattern.is_empty() {
        let (star, chunk, rest) = scan_chunk(pattern);
        pattern = rest;
        if star && chunk.is_empty() {
            // A trailing `*` matches the rest of the name unless it crosses a `/`.
            return Ok(!name.contains(&b'/'));
        }
        // Try the chunk at the current position; the last chunk must consume the whole name.
        let (result, err) = match_chunk(chunk, name);
        if let Some(t) = result
            && (t.is_empty() || !pattern.is_empty())
        {
            name = t;
            continue;
        }
        if err {
            return Err(BadPattern);
        }
        if star {
            // Let the star swallow 1, 2, ... bytes, never a `/`.
            let mut i = 0;
            while i < name.len() && name[i] != b'/' {
                let (result, err) = match_chunk(chunk, &name[i + 1..]);
                if let Some(t) = result {
                    if pattern.is_empty() && !t.is_empty() {
                        i += 1;
                        continue;
                    }
                    name = t;
                    continue 'chunks;
                }
                if err {
                    return Err(BadPattern);
                }
                i += 1;
            }
        }
        // No match: still report a malformed remainder, as Go does.
        while !pattern.is_empty() {
            let (_, chunk, rest) = scan_chunk(pattern);
            pattern = rest;
            if match_chunk(chunk, b"").1 {
                return Err(BadPattern);
            }
        }
        return Ok(false);
    }
    Ok(name.is_empty())
}

/// Checks a pattern's syntax without matching anything.
pub fn validate(pattern: &str) -> Result<(), BadPattern> {
    // Matching against the empty name walks every chunk of the pattern.
    matches(pattern, "").map(|_| ())
}

/// Reports whether `s` contains any of the characters Go's `filepath.Glob` treats as magic
/// on Unix: `*`, `?`, `[` and `\`.
pub fn has_meta(s: &str) -> bool {
    s.bytes().any(|b| matches!(b, b'*' | b'?' | b'[' | b'\\'))
}

/// Splits off the next chunk: leading stars, then the text up to the next star outside a
/// class. Returns (had stars, chunk, rest).
fn scan_chunk(mut pattern: &[u8]) -> (bool, &[u8], &[u8]) {
    let mut star = false;
    while let [b'*', rest @ ..] = pattern {
        pattern = rest;
        star = true;
    }
    let mut in_range = false;
    let mut i = 0;
    while i < pattern.len() {
        match pattern[i] {
            // An escape takes the next byte along; a trailing `\` is reported by match_chunk.
            b'\\' if i + 1 < pattern.len() => i += 1,
            b'[' => in_range = true,
            b']' => in_range = false,
            b'*' if !in_range => break,
            _ => {}
        }
        i += 1;
    }
    (star, &pattern[..i], &pattern[i..])
}

/// Matches `chunk` (no stars outside classes) against the start of `s`. Returns the rest of
/// `s` on a match, and whether the chunk is malformed. After a mismatch the chunk is still
/// scanned to the end so that syntax errors are always found.
fn match_chunk<'s>(mut chunk: &[u8], mut s: &'s [u8]) -> (Option<&'s [u8]>, bool) {
    let mut failed = false;
    while let Some(&c) = chunk.first() {
        if !failed && s.is_empty() {
            failed = true;
        }
        match c {
            b'[' => {
                let mut r = 0u32;
                if !failed {
                    let (ch, n) = decode_rune(s);
                    r = ch;
                    s = &s[n..];
                }
                chunk = &chunk[1..];
                let negated = chunk.first() == Some(&b'^');
                if negated {
                    chunk = &chunk[1..];
                }
                let mut matched = false;
                let mut nrange = 0;
                loop {
                    if chunk.first() == Some(&b']') && nrange > 0 {
                        chunk = &chunk[1..];
                        break;
                    }
                    let Some((lo, rest)) = get_esc(chunk) else { return (None, true) };
                    chunk = rest;
                    let mut hi = lo;
                    if chunk.first() == Some(&b'-') {
                        let Some((h, rest)) = get_esc(&chunk[1..]) else { return (None, true) };
                        hi = h;
                        chunk = rest;
                    }
                    if lo <= r && r <= hi {
                        matched = true;
                    }
                    nrange += 1;
                }
                if matched == negated {
                    failed = true;
                }
            }
            b'?' => {
                if !failed {
                    if s[0] == b'/' {
                        failed = true;
                    }
                    let (_, n) = decode_rune(s);
                    s = &s[n..];
                }
                chunk = &chunk[1..];
            }
            _ => {
                if c == b'\\' {
                    chunk = &chunk[1..];
                    if chunk.is_empty() {
                        return (None, true);
                    }
                }
                if !failed {
                    if chunk[0] != s[0] {
                        failed = true;
                    }
                    s = &s[1..];
                }
                chunk = &chunk[1..];
            }
        }
    }
    if failed { (None, false) } else { (Some(s), false) }
}

/// Reads one (possibly escaped) character of a class. `None` if the class is malformed here:
/// nothing left, an unescaped `-` or `]`, invalid UTF-8, or nothing following the character
/// (a class must still be closed).
fn get_esc(chunk: &[u8]) -> Option<(u32, &[u8])> {
    let mut chunk = chunk;
    match chunk.first() {
        None | Some(b'-') | Some(b']') => return None,
        Some(b'\\') => {
            chunk = &chunk[1..];
            if chunk.is_empty() {
                return None;
            }
        }
        _ => {}
    }
    let (r, n) = decode_rune(chunk);
    if r == REPLACEMENT && n == 1 {
        return None;
    }
    let rest = &chunk[n..];
    if rest.is_empty() {
        return None;
    }
    Some((r, rest))
}

const REPLACEMENT: u32 = 0xFFFD;

/// Decodes the first UTF-8 character of `s` like Go's `utf8.DecodeRuneInString`: an invalid
/// or truncated sequence yields (U+FFFD, 1). `s` must not be empty.
fn decode_rune(s: &[u8]) -> (u32, usize) {
    let len = match s[0] {
        0x00..=0x7f => return (u32::from(s[0]), 1),
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf4 => 4,
        _ => return (REPLACEMENT, 1),
    };
    match s.get(..len).and_then(|b| std::str::from_utf8(b).ok()) {
        Some(ch) => (ch.chars().next().map_or(REPLACEMENT, u32::from), len),
        None => (REPLACEMENT, 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Go's own `filepath.Match` test table (path/filepath/match_test.go, Unix cases), carried
    /// over as data: (pattern, name, matches, bad pattern).
    const GO_CASES: &[(&str, &str, bool, bool)] = &[
        ("abc", "abc", true, false),
        ("*", "abc", true, false),
        ("*c", "abc", true, false),
        ("a*", "a", true, false),
        ("a*", "abc", true, false),
        ("a*", "ab/c", false, false),
        ("a*/b", "abc/b", true, false),
        ("a*/b", "a/c/b", false, false),
        ("a*b*c*d*e*/f", "axbxcxdxe/f", true, false),
        ("a*b*c*d*e*/f", "axbxcxdxexxx/f", true, false),
        ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", false, false),
        ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", false, false),
        ("a*b?c*x", "abxbbxdbxebxczzx", true, false),
        ("a*b?c*x", "abxbbxdbxebxczzy", false, false),
        ("ab[c]", "abc", true, false),
        ("ab[b-d]", "abc", true, false),
        ("ab[e-g]", "abc", false, false),
        ("ab[^c]", "abc", false, false),
        ("ab[^b-d]", "abc", false, false),
        ("ab[^e-g]", "abc", true, false),
        ("a\\*b", "a*b", true, false),
        ("a\\*b", "ab", false, false),
        ("a?b", "a☺b", true, false),
        ("a[^a]b", "a☺b", true, false),
        ("a???b", "a☺b", false, false),
        ("a[^a][^a][^a]b", "a☺b", false, false),
        ("[a-ζ]*", "α", true, false),
        ("*[a-ζ]", "A", false, false),
        ("a?b", "a/b", false, false),
        ("a*b", "a/b", false, false),
        ("[\\]a]", "]", true, false),
        ("[\\-]", "-", true, false),
        ("[x\\-]", "x", true, false),
        ("[x\\-]", "-", true, false),
        ("[x\\-]", "z", false, false),
        ("[\\-x]", "x", true, false),
        ("[\\-x]", "-", true, false),
        ("[\\-x]", "a", false, false),
        ("[]a]", "]", false, true),
        ("[-]", "-", false, true),
        ("[x-]", "x", false, true),
        ("[x-]", "-", false, true),
        ("[x-]", "z", false, true),
        ("[-x]", "x", false, true),
        ("[-x]", "-", false, true),
        ("[-x]", "a", false, true),
        ("\\", "a", false, true),
        ("[a-b-c]", "a", false, true),
        ("[", "a", false, true),
        ("[^", "a", false, true),
        ("[^bc", "a", false, true),
        ("a[", "a", false, true),
        ("a[", "ab", false, true),
        ("a[", "x", false, true),
        ("a/b[", "x", false, true),
        ("*x", "xxx", true, false),
    ];

    #[test]
    fn go_match_table() {
        for &(pattern, name, want, bad) in GO_CASES {
            let got = matches(pattern, name);
            if bad {
                assert_eq!(got, Err(BadPattern), "{pattern:?} vs {name:?} must be a bad pattern");
            } else {
                assert_eq!(got, Ok(want), "{pattern:?} vs {name:?}");
            }
        }
    }

    #[test]
    fn classes_can_match_a_slash_but_stars_cannot() {
        assert_eq!(matches("a[/]b", "a/b"), Ok(true));
        assert_eq!(matches("a[^x]b", "a/b"), Ok(true));
        assert_eq!(matches("a*", "a/b"), Ok(false));
        assert_eq!(matches("*/*.txt", "src/one.txt"), Ok(true));
        assert_eq!(matches("*.txt", "src/one.txt"), Ok(false));
    }

    #[test]
    fn escapes_make_metas_literal() {
        assert_eq!(matches("a\\?b", "a?b"), Ok(true));
        assert_eq!(matches("a\\?b", "axb"), Ok(false));
        assert_eq!(matches("\\[x\\].txt", "[x].txt"), Ok(true));
        assert_eq!(matches("[[]x].txt", "[x].txt"), Ok(true));
        assert_eq!(matches("a\\*b?txt", "a*b.txt"), Ok(true));
        assert_eq!(matches("a\\*b?txt", "a\\*b.txt"), Ok(false));
    }

    #[test]
    fn malformed_patterns_are_reported_after_a_mismatch() {
        // The first chunk fails on "x" but the unclosed class later is still found.
        assert_eq!(matches("a*[", "xyz"), Err(BadPattern));
        assert_eq!(matches("q[.txt", "q1.txt"), Err(BadPattern));
        assert_eq!(validate("q[.txt"), Err(BadPattern));
        assert_eq!(validate("src/*.txt"), Ok(()));
        assert_eq!(validate("ab[^c-"), Err(BadPattern));
    }

    #[test]
    fn non_utf8_names_are_matched_bytewise() {
        assert_eq!(matches_bytes(b"a*", b"a\xff\xfe"), Ok(true));
        assert_eq!(matches_bytes(b"a?", b"a\xff"), Ok(true));
        assert_eq!(matches_bytes(b"a[^x]", b"a\xff"), Ok(true));
        // Invalid UTF-8 inside a class is a malformed pattern.
        assert_eq!(matches_bytes(b"a[\xff]", b"a"), Err(BadPattern));
    }

    #[test]
    fn has_meta_knows_the_unix_magic_characters() {
        assert!(has_meta("*.txt"));
        assert!(has_meta("a?"));
        assert!(has_meta("[ab]"));
        assert!(has_meta("a\\b"));
        assert!(!has_meta("plain/path.txt"));
    }
}
