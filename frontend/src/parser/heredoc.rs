//! Here-documents: finding `<<EOF` markers on a RUN/COPY/ADD line, and reading their names.
//!
//! BuildKit finds the markers by running its shell lexer over the whole logical line with
//! quotes and escapes kept and unset variables left as written, then matching every word
//! against `^(\d*)<<(-?)\s*([^<]*)$`: optional file descriptor digits, `<<`, optional `-`
//! (strip leading tabs), then the delimiter word. The lexer keeps the blanks (space, tab, CR)
//! right after an unquoted `<<` in the same word, so `<< EOF` is one marker (`<<- EOF` is not:
//! the `-` comes first). The delimiter is lexed again twice, without and with its quotes: it
//! must be exactly one word; the name is the unquoted word; any quoting at all (`<<'EOF'`,
//! `<<"EOF"`, `<<E"O"F`) turns off expansion of the body, while an escaped quote (`<<eo\'f`)
//! does not. If the line as a whole does not lex (an unmatched quote), it has no heredocs.
//! Both lexer runs use `\` as escape character whatever `# escape=` says, as BuildKit does.
//!
//! The lexer here is a private, faithful copy of the parts of BuildKit's `shell.Lex` that decide
//! this (word splitting, quotes, escapes, `$name`/`${…}` with an empty environment); variable
//! expansion proper lives in the shell-word module.

use super::{LineError, ParseErrorKind};
use crate::gofmt::quote as go_quote;

/// A heredoc marker word such as `<<-'EOF'` or `3<<EOF`, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeredocMarker {
    /// The delimiter, quotes removed.
    pub name: String,
    /// False if any part of the delimiter was quoted: the body is not expanded.
    pub expand: bool,
    /// True for `<<-`.
    pub chomp: bool,
    /// The digits before `<<`, if any (saturating at `u32::MAX`).
    pub file_descriptor: Option<u32>,
}

/// BuildKit's `ParseHeredoc`: decodes one word if it is a heredoc marker. `Ok(None)` for a word
/// that is not one (`<<`, `<EOF`, `<<EOF sh`, `"<<EOF"`), `Err` with BuildKit's message for a
/// delimiter that does not lex (`<<'EOF`). BuildKit's instruction step uses it as
/// `MustParseHeredoc`, i.e. `.ok().flatten()`, on each COPY/ADD source and on a RUN command line.
pub fn parse_heredoc_word(word: &str) -> Result<Option<HeredocMarker>, ParseErrorKind> {
    let digits = word.len() - word.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let Some(rest) = word[digits..].strip_prefix("<<") else { return Ok(None) };
    let (chomp, rest) = match rest.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    let rest = rest.trim_start_matches(['\t', '\n', '\x0c', '\r', ' ']);
    if rest.is_empty() || rest.contains('<') {
        return Ok(None);
    }
    let file_descriptor = (digits > 0).then(|| word[..digits].parse::<u32>().unwrap_or(u32::MAX));
    let lex = |raw_quotes: bool| {
        Lexer::new(rest, raw_quotes)
            .words(false)
            .map_err(|e| ParseErrorKind::HeredocWord(format!("failed to process {}: {e}", go_quote(rest))))
    };
    let plain = lex(false)?;
    if plain.len() != 1 {
        return Ok(None);
    }
    let raw = lex(true)?;
    if raw.len() != plain.len() {
        return Err(ParseErrorKind::HeredocWord(format!(
            "internal lexing of heredoc produced inconsistent results: {rest}"
        )));
    }
    let quotes = |s: &str| s.chars().filter(|&c| c == '\'' || c == '"').count();
    let expand = quotes(&plain[0].0) == quotes(&raw[0].0);
    Ok(Some(HeredocMarker { name: plain[0].0.clone(), expand, chomp, file_descriptor }))
}

/// BuildKit's `ChompHeredocContent`: removes the leading tabs of every line.
pub fn chomp_heredoc_content(content: &str) -> String {
    content.split_inclusive('\n').map(|line| line.trim_start_matches('\t')).collect()
}

/// The heredoc markers of a logical line, each with the byte offset of its word.
pub(crate) fn heredocs_from_line(line: &str) -> Result<Vec<(HeredocMarker, usize)>, LineError> {
    let mut lexer = Lexer::new(line, true);
    let Ok(words) = lexer.words(true) else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    for (word, at) in words {
        let byte_at = lexer.byte_offset(at);
        match parse_heredoc_word(&word) {
            Ok(Some(marker)) => out.push((marker, byte_at)),
            Ok(None) => {}
            Err(kind) => {
                return Err(LineError::new(
                    kind,
                    Some(byte_at),
                    Some("quote the here-document delimiter with matching quotes, e.g. <<'EOF'".to_string()),
                ));
            }
        }
    }
    Ok(out)
}

/// Words with the character index where each starts.
type Words = Vec<(String, usize)>;

struct Lexer {
    chars: Vec<char>,
    pos: usize,
    raw_quotes: bool,
    raw_escapes: bool,
}

#[derive(Default)]
struct WordBuilder {
    word: String,
    start: usize,
    in_word: bool,
    words: Words,
}

impl WordBuilder {
    fn add_char(&mut self, ch: char, at: usize) {
        if ch.is_whitespace() {
            if self.in_word && !self.word.is_empty() {
                self.words.push((std::mem::take(&mut self.word), self.start));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(ch, at);
        }
    }

    fn add_raw_char(&mut self, ch: char, at: usize) {
        if self.word.is_empty() {
            self.start = at;
        }
        self.word.push(ch);
        self.in_word = true;
    }

    fn add_string(&mut self, s: &str, at: usize) {
        for ch in s.chars() {
            self.add_char(ch, at);
        }
    }

    fn add_raw_string(&mut self, s: &str, at: usize) {
        if self.word.is_empty() {
            self.start = at;
        }
        self.word.push_str(s);
        self.in_word = true;
    }

    fn finish(mut self) -> Words {
        if !self.word.is_empty() {
            self.words.push((self.word, self.start));
        }
        self.words
    }
}

const ESCAPE: char = '\\';

impl Lexer {
    fn new(text: &str, raw_quotes: bool) -> Lexer {
        Lexer { chars: text.chars().collect(), pos: 0, raw_quotes, raw_escapes: false }
    }

    /// Byte offset of character index `at`.
    fn byte_offset(&self, at: usize) -> usize {
        self.chars[..at.min(self.chars.len())].iter().map(|c| c.len_utf8()).sum()
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += 1;
        Some(c)
    }

    fn words(&mut self, raw_escapes: bool) -> Result<Words, String> {
        self.stop_on(None, raw_escapes).map(|(_, words)| words)
    }

    fn stop_on(&mut self, stop: Option<char>, raw_escapes: bool) -> Result<(String, Words), String> {
        let saved = std::mem::replace(&mut self.raw_escapes, raw_escapes);
        let result = self.stop_on_inner(stop);
        self.raw_escapes = saved;
        result
    }

    fn stop_on_inner(&mut self, stop: Option<char>) -> Result<(String, Words), String> {
        let mut result = String::new();
        let mut words = WordBuilder::default();
        while let Some(ch) = self.peek() {
            let at = self.pos;
            if Some(ch) == stop {
                self.pos += 1;
                return Ok((result, words.finish()));
            }
            match ch {
                '$' => {
                    let value = self.dollar()?;
                    result.push_str(&value);
                    words.add_string(&value, at);
                }
                '<' => {
                    let value = self.possible_heredoc();
                    result.push_str(&value);
                    words.add_raw_string(&value, at);
                }
                '\'' | '"' => {
                    let value = if ch == '\'' { self.single_quote()? } else { self.double_quote()? };
                    result.push_str(&value);
                    words.add_raw_string(&value, at);
                }
                _ => {
                    self.pos += 1;
                    let mut ch = ch;
                    if ch == ESCAPE {
                        if self.raw_escapes {
                            words.add_raw_char(ch, at);
                            result.push(ch);
                        }
                        let Some(next) = self.bump() else { break };
                        ch = next;
                        words.add_raw_char(ch, at);
                    } else {
                        words.add_char(ch, at);
                    }
                    result.push(ch);
                }
            }
        }
        match stop {
            Some(stop) => Err(format!("unexpected end of statement while looking for matching {stop}")),
            None => Ok((result, words.finish())),
        }
    }

    fn single_quote(&mut self) -> Result<String, String> {
        self.pos += 1;
        let mut result = String::new();
        if self.raw_quotes {
            result.push('\'');
        }
        loop {
            match self.bump() {
                None => return Err("unexpected end of statement while looking for matching single-quote".into()),
                Some('\'') => {
                    if self.raw_quotes {
                        result.push('\'');
                    }
                    return Ok(result);
                }
                Some(c) => result.push(c),
            }
        }
    }

    fn double_quote(&mut self) -> Result<String, String> {
        self.pos += 1;
        let mut result = String::new();
        if self.raw_quotes {
            result.push('"');
        }
        loop {
            match self.peek() {
                None => return Err("unexpected end of statement while looking for matching double-quote".into()),
                Some('"') => {
                    self.pos += 1;
                    if self.raw_quotes {
                        result.push('"');
                    }
                    return Ok(result);
                }
                Some('$') => {
                    let value = self.dollar()?;
                    result.push_str(&value);
                }
                Some(mut ch) => {
                    self.pos += 1;
                    if ch == ESCAPE {
                        if self.raw_escapes {
                            result.push(ch);
                        }
                        match self.peek() {
                            // A `\` at the very end is dropped; the loop then fails.
                            None => continue,
                            Some(next @ ('"' | '$' | ESCAPE)) => {
                                self.pos += 1;
                                ch = next;
                            }
                            Some(_) => {}
                        }
                    }
                    result.push(ch);
                }
            }
        }
    }

    /// `$name` or `${…}` with every variable unset and left as written.
    fn dollar(&mut self) -> Result<String, String> {
        const MISSING_BRACE: &str = "syntax error: missing '}'";
        self.pos += 1;
        if self.peek() != Some('{') {
            let name = self.name();
            return Ok(format!("${name}"));
        }
        self.pos += 1;
        match self.peek() {
            None => return Err(MISSING_BRACE.into()),
            Some('{' | '}' | ':') => return Err("syntax error: bad substitution".into()),
            Some(_) => {}
        }
        let name = self.name();
        // Go's string of the EOF rune is U+FFFD.
        let mut ch = self.bump();
        let mut modifier = String::from(ch.unwrap_or('\u{fffd}'));
        match ch {
            Some('}') => Ok(format!("${{{name}}}")),
            Some(':' | '+' | '-' | '?' | '#' | '%') => {
                if ch == Some(':') {
                    ch = self.bump();
                    modifier.push(ch.unwrap_or('\u{fffd}'));
                }
                let raw = matches!(ch, Some('#' | '%'));
                let (word, _) = self.stop_on(Some('}'), raw).map_err(|e| self.at_eof_or(e, MISSING_BRACE))?;
                Ok(format!("${{{name}{modifier}{word}}}"))
            }
            Some('/') => {
                if self.peek() == Some('/') {
                    self.pos += 1;
                }
                let (pattern, _) =
                    self.stop_on(Some('/'), true).map_err(|e| self.at_eof_or(e, "syntax error: missing '/' in ${}"))?;
                let (replacement, _) = self.stop_on(Some('}'), true).map_err(|e| self.at_eof_or(e, MISSING_BRACE))?;
                Ok(format!("${{{name}/{pattern}/{replacement}}}"))
            }
            _ => Err(format!("unsupported modifier ({modifier}) in substitution")),
        }
    }

    fn at_eof_or(&self, e: String, message: &str) -> String {
        if self.peek().is_none() { message.to_string() } else { e }
    }

    /// A variable name: digits, one special parameter character, or letters/digits/underscores.
    fn name(&mut self) -> String {
        let is_digit = |c: char| c.is_ascii_digit() || (!c.is_ascii() && c.is_numeric());
        let mut name = String::new();
        while let Some(ch) = self.peek() {
            if name.is_empty() && is_digit(ch) {
                while let Some(d) = self.peek().filter(|&c| is_digit(c)) {
                    name.push(d);
                    self.pos += 1;
                }
                return name;
            }
            if name.is_empty() && matches!(ch, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                self.pos += 1;
                return ch.to_string();
            }
            if !ch.is_alphabetic() && !is_digit(ch) && ch != '_' {
                break;
            }
            self.pos += 1;
            name.push(ch);
        }
        name
    }

    /// `<` is a word character; `<<` also takes the blanks that follow it into the word.
    fn possible_heredoc(&mut self) -> String {
        self.pos += 1;
        if self.peek() != Some('<') {
            return "<".to_string();
        }
        self.pos += 1;
        let mut result = "<<".to_string();
        while let Some(c @ (' ' | '\t' | '\r')) = self.peek() {
            result.push(c);
            self.pos += 1;
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(line: &str) -> Vec<String> {
        heredocs_from_line(line).unwrap().into_iter().map(|(m, _)| m.name).collect()
    }

    fn marker(word: &str) -> HeredocMarker {
        parse_heredoc_word(word).unwrap().unwrap()
    }

    #[test]
    fn buildkit_heredoc_helper_cases() {
        for valid in
            ["<<EOF", "<<'EOF'", "<<\"EOF\"", "<<-EOF", "<<-'EOF'", "<<-\"EOF\"", "<<EO\"F\"", "<< EOF", "<<- EOF"]
        {
            assert_eq!(marker(valid).name, "EOF", "{valid}");
        }
        for invalid in ["<<'EOF", "<<\"EOF", "<<EOF'", "<<EOF\""] {
            assert!(parse_heredoc_word(invalid).is_err(), "{invalid}");
        }
        for not in ["", "EOF", "<<", "<<-", "<EOF", "<<<EOF", "<<EOF sh"] {
            assert_eq!(parse_heredoc_word(not), Ok(None), "{not}");
        }
    }

    #[test]
    fn expansion_depends_on_quoting_only() {
        assert!(marker("<<EOF").expand);
        assert!(!marker("<<'EOF'").expand);
        assert!(!marker("<<\"EOF\"").expand);
        let m = marker("<<eo'f'");
        assert_eq!((m.name.as_str(), m.expand), ("eof", false));
        let m = marker("<<eo\\'f");
        assert_eq!((m.name.as_str(), m.expand), ("eo'f", true));
        let m = marker("<<'e'o\\'f");
        assert_eq!((m.name.as_str(), m.expand), ("eo'f", false));
        let m = marker("<<'one two'");
        assert_eq!((m.name.as_str(), m.expand), ("one two", false));
        assert_eq!(marker("<<$EOF").name, "$EOF");
        assert_eq!(marker("<<${EOF}").name, "${EOF}");
    }

    #[test]
    fn file_descriptor_and_chomp() {
        let m = marker("3<<-EOF");
        assert_eq!((m.file_descriptor, m.chomp), (Some(3), true));
        assert_eq!(marker("<<EOF").file_descriptor, None);
        assert_eq!(marker("99999999999<<EOF").file_descriptor, Some(u32::MAX));
        assert_eq!(marker("<< -EOF").name, "-EOF");
    }

    #[test]
    fn buildkit_heredocs_from_line_cases() {
        assert_eq!(names("RUN <<EOF"), ["EOF"]);
        assert_eq!(names("RUN <<-EOF"), ["EOF"]);
        assert_eq!(names("RUN << -EOF"), ["-EOF"]);
        assert_eq!(names("RUN <<'EOF'"), ["EOF"]);
        assert_eq!(names("RUN 4<<EOF"), ["EOF"]);
        assert_eq!(names("RUN <<EOF <<EOF2"), ["EOF", "EOF2"]);
        assert!(names("RUN '<<EOF'").is_empty());
        assert!(names("RUN \"<<EOF\"").is_empty());
        assert_eq!(names("RUN <<  EOF"), ["EOF"]);
        assert_eq!(names("RUN <<  EOF  > foo"), ["EOF"]);
        assert_eq!(names("RUN --mount=type=cache,target=/foo <<MOUNT"), ["MOUNT"]);
        assert_eq!(names("RUN <<COMPLEX python3"), ["COMPLEX"]);
        // `<<- EOF` splits into `<<-` and `EOF` in BuildKit's lexer: no heredoc.
        assert!(names("RUN <<- EOF").is_empty());
        // A line that does not lex has no heredocs at all.
        assert!(names("RUN <<EOF 'unterminated").is_empty());
        assert!(names("RUN cat <<EOF ${").is_empty());
    }

    #[test]
    fn marker_offsets_point_at_the_word() {
        let got = heredocs_from_line("COPY <<A  é<<B /d").unwrap();
        assert_eq!(got.iter().map(|(m, at)| (m.name.as_str(), *at)).collect::<Vec<_>>(), [("A", 5)]);
        let got = heredocs_from_line("COPY  <<A 3<<B /d").unwrap();
        assert_eq!(got.iter().map(|(_, at)| *at).collect::<Vec<_>>(), [6, 10]);
    }

    #[test]
    fn a_delimiter_that_does_not_lex_is_an_error() {
        // Reachable through an expansion that splits into words.
        let e = heredocs_from_line("RUN ${A:-\" <<'x\"}").unwrap_err();
        assert_eq!(
            e.kind,
            ParseErrorKind::HeredocWord(
                "failed to process \"'x\\\"}\": unexpected end of statement while looking for matching single-quote"
                    .to_string()
            )
        );
    }

    #[test]
    fn chomp_removes_leading_tabs_of_each_line() {
        assert_eq!(chomp_heredoc_content("\thello\n\t\tworld\n  \tkeep\n"), "hello\nworld\n  \tkeep\n");
        assert_eq!(chomp_heredoc_content(""), "");
    }
}
