//! Splitting a logical line: keyword, `--flags`, and the word splitters the line parsers use.
//!
//! These follow BuildKit's `splitCommand`, `extractBuilderFlags` and `parseWords` including
//! their quirks, since they decide what strata's instructions see:
//! - the keyword ends at the first run of `[\t\v\f\r ]` (other Unicode spaces do not end it);
//! - flags are the words starting with `--` right after the keyword, up to a bare `--` (dropped)
//!   or the first other word; quotes are removed and `\` escapes the next byte whatever the
//!   `# escape=` directive says. BuildKit scans flags byte by byte and turns each byte into the
//!   character of the same number, so a non-ASCII byte in a flag becomes a Latin-1 character
//!   (`--chown=josé` gives `--chown=josÃ©`) and the bytes 0x85 and 0xA0 separate words; this is
//!   reproduced exactly;
//! - `parse_words` (ENV/LABEL/ARG) splits at Unicode whitespace outside quotes and keeps quotes
//!   and escape characters in the words.

/// The pieces of a logical line.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Split {
    /// The keyword, lower-cased.
    pub keyword: String,
    /// Byte offset of the keyword in the line.
    pub keyword_at: usize,
    pub flags: Vec<String>,
    /// The rest after the flags, trimmed.
    pub rest: String,
    /// Byte offset of `rest` in the line (exact unless the flags scanner stopped inside a
    /// multi-byte character, see the module docs).
    pub rest_at: usize,
}

/// BuildKit's `reWhitespace`: `[\t\v\f\r ]`.
pub(crate) fn is_token_space(c: char) -> bool {
    matches!(c, '\t' | '\x0b' | '\x0c' | '\r' | ' ')
}

/// Go's `unicode.IsSpace` applied to a single byte taken as a character.
fn is_space_byte(b: u8) -> bool {
    matches!(b, b'\t'..=b'\r' | b' ' | 0x85 | 0xa0)
}

/// Go's `strings.TrimSpace`, returning the offset of the trimmed text too.
pub(crate) fn trim_space(s: &str) -> (&str, usize) {
    let start = s.len() - s.trim_start_matches(char::is_whitespace).len();
    (s[start..].trim_end_matches(char::is_whitespace), start)
}

pub(crate) fn split_command(line: &str) -> Split {
    let (trimmed, keyword_at) = trim_space(line);
    let Some(end) = trimmed.find(is_token_space) else {
        return Split {
            keyword: trimmed.to_lowercase(),
            keyword_at,
            flags: Vec::new(),
            rest: String::new(),
            rest_at: line.len(),
        };
    };
    let after = trimmed[end..].trim_start_matches(is_token_space);
    let after_at = keyword_at + trimmed.len() - after.len();
    let (rest_start, flags) = extract_builder_flags(after.as_bytes());
    let rest = match after.get(rest_start..) {
        Some(s) => s.to_string(),
        None => String::from_utf8_lossy(&after.as_bytes()[rest_start..]).into_owned(),
    };
    let (trimmed_rest, lead) = trim_space(&rest);
    Split {
        keyword: trimmed[..end].to_lowercase(),
        keyword_at,
        flags,
        rest: trimmed_rest.to_string(),
        rest_at: after_at + rest_start + lead,
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Spaces,
    Word,
    Quote,
}

/// Returns where the non-flag rest starts and the flags, byte-wise like BuildKit.
fn extract_builder_flags(line: &[u8]) -> (usize, Vec<String>) {
    let n = line.len();
    let mut flags = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word = String::new();
    let mut quote = 0u8;
    let mut blank_ok = false;
    let mut pos = 0;
    while pos <= n {
        if phase == Phase::Spaces {
            if pos == n {
                break;
            }
            if is_space_byte(line[pos]) {
                pos += 1;
                continue;
            }
            if line[pos] != b'-' || pos + 1 == n || line[pos + 1] != b'-' {
                return (pos, flags);
            }
            phase = Phase::Word;
        }
        if pos == n {
            if word != "--" && (blank_ok || !word.is_empty()) {
                flags.push(word);
            }
            break;
        }
        let mut ch = line[pos];
        if phase == Phase::Word {
            if is_space_byte(ch) {
                if word == "--" {
                    return (pos, flags);
                }
                if blank_ok || !word.is_empty() {
                    flags.push(std::mem::take(&mut word));
                }
                phase = Phase::Spaces;
                blank_ok = false;
                pos += 1;
                continue;
            }
            if ch == b'\'' || ch == b'"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
                pos += 1;
                continue;
            }
        } else if ch == quote {
            phase = Phase::Word;
            pos += 1;
            continue;
        }
        if ch == b'\\' {
            if pos + 1 == n {
                // A `\` at the very end is dropped (and ends a quote).
                phase = Phase::Word;
                pos += 1;
                continue;
            }
            pos += 1;
            ch = line[pos];
        }
        word.push(char::from(ch));
        pos += 1;
    }
    (n, flags)
}

/// BuildKit's `parseWords`: words separated by Unicode whitespace outside quotes; quotes and
/// escape characters stay in the words (the escape character and the character after it are
/// both kept; a trailing escape character is dropped). Returns each word with its byte offset.
pub(crate) fn parse_words(rest: &str, escape: char) -> Vec<(String, usize)> {
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word = String::new();
    let mut word_at = 0;
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut chars = rest.char_indices().peekable();
    loop {
        let Some((pos, mut ch)) = chars.next() else {
            if phase != Phase::Spaces && (blank_ok || !word.is_empty()) {
                words.push((word, word_at));
            }
            break;
        };
        let at_end = |chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>| chars.peek().is_none();
        if phase == Phase::Spaces {
            if ch.is_whitespace() {
                continue;
            }
            phase = Phase::Word;
            word_at = pos;
        }
        if phase == Phase::Word {
            if ch.is_whitespace() {
                phase = Phase::Spaces;
                if blank_ok || !word.is_empty() {
                    words.push((std::mem::take(&mut word), word_at));
                }
                blank_ok = false;
                continue;
            }
            if ch == '\'' || ch == '"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
            }
            if ch == escape {
                if at_end(&mut chars) {
                    continue;
                }
                word.push(ch);
                if let Some((_, next)) = chars.next() {
                    ch = next;
                }
            }
            word.push(ch);
            continue;
        }
        // In quotes.
        if ch == quote {
            phase = Phase::Word;
        }
        if ch == escape && quote != '\'' {
            if at_end(&mut chars) {
                phase = Phase::Word;
                continue;
            }
            word.push(ch);
            if let Some((_, next)) = chars.next() {
                ch = next;
            }
        }
        word.push(ch);
    }
    words
}

/// BuildKit's `parseStringsWhitespaceDelimited` on a trimmed string: pieces between runs of
/// `[\t\v\f\r ]`, each with its byte offset.
pub(crate) fn split_whitespace_delimited(rest: &str) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in rest.char_indices() {
        match (is_token_space(c), start) {
            (true, Some(s)) => {
                out.push((rest[s..i].to_string(), s));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((rest[s..].to_string(), s));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        parse_words(s, '\\').into_iter().map(|w| w.0).collect()
    }

    #[test]
    fn parse_words_matches_buildkit_cases() {
        assert_eq!(words("foo"), ["foo"]);
        assert_eq!(words("foo bar"), ["foo", "bar"]);
        assert_eq!(words("foo\\ bar"), ["foo\\ bar"]);
        assert_eq!(words("foo=bar"), ["foo=bar"]);
        assert_eq!(words("foo bar 'abc xyz'"), ["foo", "bar", "'abc xyz'"]);
        assert_eq!(words("foo bar \"abc xyz\""), ["foo", "bar", "\"abc xyz\""]);
        assert_eq!(words("àöû"), ["àöû"]);
        assert_eq!(words("föo bàr \"âbc xÿz\""), ["föo", "bàr", "\"âbc xÿz\""]);
        assert_eq!(words("a\\"), ["a"]);
        assert_eq!(words("\"a\\"), ["\"a"]);
        assert_eq!(words("''"), ["''"]);
        assert_eq!(words("'a\\'b'"), ["'a\\'b'"]);
        assert_eq!(parse_words("  x  y", '`'), vec![("x".to_string(), 2), ("y".to_string(), 5)]);
        assert_eq!(parse_words("a`\"b c", '`')[0].0, "a`\"b");
    }

    #[test]
    fn split_command_separates_keyword_flags_and_rest() {
        let s = split_command("  COPY --from=a --chown=1:1 src dst ");
        assert_eq!(s.keyword, "copy");
        assert_eq!(s.keyword_at, 2);
        assert_eq!(s.flags, ["--from=a", "--chown=1:1"]);
        assert_eq!(s.rest, "src dst");
        assert_eq!(s.rest_at, 28);

        let s = split_command("CMD --doit -- [ ]");
        assert_eq!((s.flags, s.rest.as_str()), (vec!["--doit".to_string()], "[ ]"));
        let s = split_command("COPY -- foo /tmp/");
        assert!(s.flags.is_empty());
        assert_eq!(s.rest, "foo /tmp/");
        let s = split_command("RUN --mount=\"type=cache,target=/a b\" --x=\\\" echo");
        assert_eq!(s.flags, ["--mount=type=cache,target=/a b", "--x=\""]);
        assert_eq!(s.rest, "echo");
        let s = split_command("RUN --a --");
        assert_eq!((s.flags, s.rest.as_str()), (vec!["--a".to_string()], ""));
        let s = split_command("run\u{a0}x y");
        assert_eq!(s.keyword, "run\u{a0}x");
        let s = split_command("FROM");
        assert_eq!((s.keyword.as_str(), s.rest.as_str()), ("from", ""));
    }

    #[test]
    fn flags_are_read_byte_by_byte_like_buildkit() {
        let s = split_command("COPY --chown=josé a b");
        assert_eq!(s.flags, ["--chown=josÃ©"]);
        // 0xA0 (the second byte of 'à') separates words in BuildKit's flag scanner.
        let s = split_command("COPY --x=à a");
        assert_eq!(s.flags, ["--x=Ã"]);
        assert_eq!(s.rest, "a");
    }

    #[test]
    fn whitespace_delimited_splits_on_ascii_blanks_only() {
        assert_eq!(
            split_whitespace_delimited("a \t b\u{a0}c"),
            vec![("a".to_string(), 0), ("b\u{a0}c".to_string(), 4)]
        );
    }
}
