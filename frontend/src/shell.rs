//! Shell-word expansion of Dockerfile instruction arguments, the way BuildKit's lexer does it.
//!
//! Instructions such as `ENV`, `ARG`, `LABEL`, `WORKDIR`, `USER`, `COPY`, `ADD`, `EXPOSE` or
//! `VOLUME` expand variables and remove quotes from their arguments before using them. BuildKit
//! does that with a small shell-like lexer (`frontend/dockerfile/shell/lex.go`); this module
//! follows its observable behaviour, checked against BuildKit's own test data
//! (`shared/conformance/buildkit-shell`, walked by `tests/shell_conformance.rs`):
//!
//! - `'…'` keeps everything literally; `"…"` expands `$` forms and lets the escape character
//!   escape only `"`, `$` and itself (other escapes stay as written). Outside quotes the escape
//!   character (`\`, or `` ` `` with `# escape=`) makes the next character literal; a trailing
//!   escape is dropped.
//! - `$name` and `${name}`, where a name is letters, digits and `_` (Unicode letters and decimal
//!   digits, like Go's `unicode.IsLetter`/`IsDigit`), or a run of digits (positional parameters),
//!   or one of the special parameters `@ * # ? - $ ! 0`. Positional and special parameters are
//!   simply looked up like any name, so they are normally unset. A `$` not followed by a name is
//!   kept as `$`.
//! - `${v:-w}` / `${v-w}` (default when unset-or-empty / unset), `${v:+w}` / `${v+w}` (alternate),
//!   `${v:?msg}` / `${v?msg}` (error), `${v#p}` / `${v##p}` (shortest / longest prefix removal),
//!   `${v%p}` / `${v%%p}` (suffix removal), `${v/p/r}` / `${v//p/r}` (first / every match
//!   replaced). The words after the operator are themselves expanded (nesting works). Patterns
//!   know `*` (any run of characters) and `?` (one character), both of which, like Go's regexp
//!   `.`, never match a newline; `\*`, `\?` and `\\` are literal and `\}` / `\/` stand for `}` /
//!   `/` inside the braces; any other escape in a pattern is an error. `${v//p/r}` expands `$0`
//!   / `${0}` in `r` to the matched text and drops other `$name` references (Go's
//!   `Regexp.ReplaceAllString` template rules), `${v/p/r}` inserts `r` literally.
//! - Errors where BuildKit errors, with BuildKit's wording: unterminated quotes, `${}`, `${:…}`,
//!   `${{…}`, a missing `}`, an unknown operator (`${v:=w}`, `${v:#p}`), `${v:?msg}` on an
//!   unset or empty variable, a bad pattern escape. [`ExpandError`] also carries the byte offset
//!   of the construct at fault (the opening quote or the `$`) so a caller can point a caret.
//! - [`Lexer::process_words`] splits the result into words on unquoted whitespace, where the
//!   whitespace may come from an expanded variable (`$v` with `v="a b"` gives two words), but not
//!   from quoted text or escaped characters.
//!
//! Two deliberate departures, both about input BuildKit handles badly: BuildKit's newest lexer
//! shares one buffer between nested `${…}` words when splitting words, so `pre${x:-a}b` splits as
//! `ab`; strata keeps `preab`, as BuildKit 0.13 (the `docker26` reference here) does. And nesting
//! deeper than [`MAX_NESTING`] levels is an error instead of unbounded recursion.
//!
//! The lexer options mirror BuildKit's: [`Lexer::raw_quotes`] keeps quote characters,
//! [`Lexer::raw_escapes`] keeps escape characters, [`Lexer::skip_process_quotes`] treats quotes as
//! ordinary characters and [`Lexer::skip_unset_env`] leaves references to unset variables as
//! written (BuildKit uses these to expand only the known build args inside `RUN` heredocs).

use crate::gofmt::quote as go_quote;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::hash::BuildHasher;

/// How deeply `${…}` forms may nest inside each other's words before expansion fails.
pub const MAX_NESTING: usize = 128;

/// Where expansion looks variables up. Names are compared exactly (Unix semantics).
pub trait EnvLookup {
    /// The value of `name`, or `None` when it is unset (an empty value is set).
    fn lookup(&self, name: &str) -> Option<&str>;
}

impl EnvLookup for BTreeMap<String, String> {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

impl<S: BuildHasher> EnvLookup for HashMap<String, String, S> {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

/// A list of `(name, value)` pairs; when a name repeats, the last pair wins (as in an image's
/// `Env`, where a later definition replaces an earlier one).
impl EnvLookup for [(String, String)] {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.iter().rev().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }
}

impl EnvLookup for Vec<(String, String)> {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.as_slice().lookup(name)
    }
}

impl<T: EnvLookup + ?Sized> EnvLookup for &T {
    fn lookup(&self, name: &str) -> Option<&str> {
        (**self).lookup(name)
    }
}

/// The variable names a word referenced (BuildKit's `ProcessWordResult.Matched`/`Unmatched`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Matches {
    /// Names that were looked up and set (possibly to the empty string).
    pub matched: BTreeSet<String>,
    /// Names that were looked up and unset.
    pub unmatched: BTreeSet<String>,
}

/// Why a word could not be expanded; the messages are BuildKit's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpandErrorKind {
    #[error("unexpected end of statement while looking for matching single-quote")]
    UnterminatedSingleQuote,
    #[error("unexpected end of statement while looking for matching double-quote")]
    UnterminatedDoubleQuote,
    /// A `${` without its closing `}`.
    #[error("syntax error: missing '}}'")]
    MissingBrace,
    /// A `${v/pattern` without the `/` that ends the pattern.
    #[error("syntax error: missing '/' in ${{}}")]
    MissingSlash,
    /// `${}`, `${{…}`, `${:…}`.
    #[error("syntax error: bad substitution")]
    BadSubstitution,
    /// The operator after the name, as written (`:=`, `:#`, `.`).
    #[error("unsupported modifier ({0}) in substitution")]
    UnsupportedModifier(String),
    /// `${name:?message}` / `${name?message}` on an unset (or, with `:`, empty) variable.
    #[error("{name}: {message}")]
    Required { name: String, message: String },
    /// A pattern of `#`, `%` or `/` with an escape other than `\*`, `\?`, `\\`, `\}`, `\/`.
    #[error("invalid pattern ({pattern}) in substitution: invalid escape '\\{escaped}'")]
    InvalidPattern { pattern: String, escaped: char },
    #[error("substitutions nested more than {0} levels deep")]
    TooDeep(usize),
}

/// A failed expansion: what went wrong, and where in the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpandError {
    /// The whole input word.
    pub input: String,
    /// Byte offset in `input` of the construct at fault: the opening quote of an unterminated
    /// quote, the `$` of a failing `${…}`, the operator of an unsupported modifier.
    pub offset: usize,
    pub kind: ExpandErrorKind,
}

impl fmt::Display for ExpandError {
    /// BuildKit's wording: `failed to process "<input>": <reason>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "failed to process {}: {}", go_quote(&self.input), self.kind)
    }
}

impl std::error::Error for ExpandError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.kind)
    }
}

/// BuildKit's shell lexer: quote removal, escapes and variable expansion for one escape character.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lexer {
    escape: char,
    /// Keep the quote characters in the result (BuildKit's `RawQuotes`).
    pub raw_quotes: bool,
    /// Keep the escape characters in the result (BuildKit's `RawEscapes`).
    pub raw_escapes: bool,
    /// Treat `'` and `"` as ordinary characters (BuildKit's `SkipProcessQuotes`).
    pub skip_process_quotes: bool,
    /// Leave references to unset variables as written, operators included (BuildKit's
    /// `SkipUnsetEnv`).
    pub skip_unset_env: bool,
}

impl Lexer {
    /// A lexer with the given escape character (`\` by default, `` ` `` after `# escape=`).
    pub fn new(escape: char) -> Lexer {
        Lexer { escape, raw_quotes: false, raw_escapes: false, skip_process_quotes: false, skip_unset_env: false }
    }

    /// The escape character.
    pub fn escape(&self) -> char {
        self.escape
    }

    /// One word: quotes removed, escapes processed, variables expanded. Whitespace is kept as
    /// is. For `ENV`/`LABEL`/`ARG` values, `WORKDIR`, `USER`, `FROM`, `--flag` values...
    pub fn process_word(&self, input: &str, env: &dyn EnvLookup) -> Result<String, ExpandError> {
        self.run(input, env).map(|done| done.word)
    }

    /// Several words, split on unquoted whitespace after expansion (the non-JSON forms of
    /// `COPY`/`ADD` sources and destination, `EXPOSE`, `VOLUME`...).
    pub fn process_words(&self, input: &str, env: &dyn EnvLookup) -> Result<Vec<String>, ExpandError> {
        self.run(input, env).map(|done| done.words)
    }

    /// Like [`Lexer::process_word`], plus which variable names were looked up and which of them
    /// were unset (BuildKit's `ProcessWordWithMatches`, used for the `UndefinedVar` check and
    /// to track which build args a step uses).
    pub fn process_word_with_matches(
        &self,
        input: &str,
        env: &dyn EnvLookup,
    ) -> Result<(String, Matches), ExpandError> {
        self.run(input, env).map(|done| (done.word, done.matches))
    }

    fn run(&self, input: &str, env: &dyn EnvLookup) -> Result<Done, ExpandError> {
        let mut expander = Expander {
            lexer: self,
            src: input,
            // Go's text/scanner skips a byte-order mark at the very start.
            pos: if input.starts_with('\u{feff}') { '\u{feff}'.len_utf8() } else { 0 },
            env,
            raw_escapes: self.raw_escapes,
            depth: 0,
            matches: Matches::default(),
        };
        match expander.process_stop_on(None, self.raw_escapes) {
            Ok((word, words)) => Ok(Done { word, words, matches: expander.matches }),
            Err(Fail { offset, kind }) => Err(ExpandError { input: input.to_string(), offset, kind }),
        }
    }
}

impl Default for Lexer {
    fn default() -> Lexer {
        Lexer::new('\\')
    }
}

struct Done {
    word: String,
    words: Vec<String>,
    matches: Matches,
}

/// An error before it is tied to its input.
struct Fail {
    offset: usize,
    kind: ExpandErrorKind,
}

fn fail<T>(offset: usize, kind: ExpandErrorKind) -> Result<T, Fail> {
    Err(Fail { offset, kind })
}

/// The words being split out of one (sub)word: characters from expansions may split, quoted and
/// escaped ones never do.
#[derive(Default)]
struct Words {
    buf: String,
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, c: char) {
        if c.is_whitespace() {
            // Go's unicode.IsSpace and Rust's White_Space property are the same set.
            if self.in_word && !self.buf.is_empty() {
                self.words.push(std::mem::take(&mut self.buf));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(c);
        }
    }

    fn add_raw_char(&mut self, c: char) {
        self.buf.push(c);
        self.in_word = true;
    }

    fn add_string(&mut self, s: &str) {
        s.chars().for_each(|c| self.add_char(c));
    }

    fn add_raw_string(&mut self, s: &str) {
        self.buf.push_str(s);
        self.in_word = true;
    }

    fn finish(mut self) -> Vec<String> {
        if !self.buf.is_empty() {
            self.words.push(self.buf);
        }
        self.words
    }
}

struct Expander<'a> {
    lexer: &'a Lexer,
    src: &'a str,
    pos: usize,
    env: &'a dyn EnvLookup,
    /// Whether escapes are kept right now: pattern words of `#`, `%`, `/` keep them so that the
    /// pattern compiler sees `\*`.
    raw_escapes: bool,
    depth: usize,
    matches: Matches,
}

impl Expander<'_> {
    fn peek(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn get_env(&mut self, name: &str) -> Option<String> {
        match self.env.lookup(name) {
            Some(value) => {
                self.matches.matched.insert(name.to_string());
                Some(value.to_string())
            }
            None => {
                self.matches.unmatched.insert(name.to_string());
                None
            }
        }
    }

    /// Processes characters up to `stop` (consumed) or the end of input, returning the word and
    /// its split words. Reaching the end while looking for `stop` fails; the caller names the
    /// missing character.
    fn process_stop_on(&mut self, stop: Option<char>, raw_escapes: bool) -> Result<(String, Vec<String>), Fail> {
        let saved = std::mem::replace(&mut self.raw_escapes, raw_escapes);
        let result = self.process_stop_on_inner(stop);
        self.raw_escapes = saved;
        result
    }

    fn process_stop_on_inner(&mut self, stop: Option<char>) -> Result<(String, Vec<String>), Fail> {
        let mut result = String::new();
        let mut words = Words::default();
        let quotes = !self.lexer.skip_process_quotes;
        while let Some(c) = self.peek() {
            if Some(c) == stop {
                self.next();
                return Ok((result, words.finish()));
            }
            match c {
                '$' => {
                    let value = self.process_dollar()?;
                    result.push_str(&value);
                    words.add_string(&value);
                }
                '\'' if quotes => {
                    let value = self.process_single_quote()?;
                    result.push_str(&value);
                    words.add_raw_string(&value);
                }
                '"' if quotes => {
                    let value = self.process_double_quote()?;
                    result.push_str(&value);
                    words.add_raw_string(&value);
                }
                _ => {
                    self.next();
                    if c == self.lexer.escape {
                        if self.raw_escapes {
                            words.add_raw_char(c);
                            result.push(c);
                        }
                        // The escape makes the next character literal; at the end it vanishes.
                        let Some(escaped) = self.next() else { break };
                        words.add_raw_char(escaped);
                        result.push(escaped);
                    } else {
                        words.add_char(c);
                        result.push(c);
                    }
                }
            }
        }
        if stop.is_some() {
            // Always renamed by the caller (missing '}' or '/'), which knows the construct.
            return fail(self.pos, ExpandErrorKind::MissingBrace);
        }
        Ok((result, words.finish()))
    }

    fn process_single_quote(&mut self) -> Result<String, Fail> {
        let start = self.pos;
        let mut result = String::new();
        let quote = self.next();
        if self.lexer.raw_quotes {
            result.extend(quote);
        }
        loop {
            match self.next() {
                None => return fail(start, ExpandErrorKind::UnterminatedSingleQuote),
                Some('\'') => {
                    if self.lexer.raw_quotes {
                        result.push('\'');
                    }
                    return Ok(result);
                }
                Some(c) => result.push(c),
            }
        }
    }

    fn process_double_quote(&mut self) -> Result<String, Fail> {
        let start = self.pos;
        let mut result = String::new();
        let quote = self.next();
        if self.lexer.raw_quotes {
            result.extend(quote);
        }
        loop {
            match self.peek() {
                None => return fail(start, ExpandErrorKind::UnterminatedDoubleQuote),
                Some('"') => {
                    self.next();
                    if self.lexer.raw_quotes {
                        result.push('"');
                    }
                    return Ok(result);
                }
                Some('$') => {
                    let value = self.process_dollar()?;
                    result.push_str(&value);
                }
                Some(c) => {
                    self.next();
                    let mut c = c;
                    if c == self.lexer.escape {
                        if self.raw_escapes {
                            result.push(c);
                        }
                        match self.peek() {
                            // An escape right before the end: dropped (the quote is unterminated
                            // anyway).
                            None => continue,
                            // Only these can be escaped inside double quotes; other escapes stay.
                            Some(next) if next == '"' || next == '$' || next == self.lexer.escape => {
                                self.next();
                                c = next;
                            }
                            Some(_) => {}
                        }
                    }
                    result.push(c);
                }
            }
        }
    }

    /// A name after `$` or `${`: a run of digits, one special parameter, or letters, digits and
    /// underscores. Empty when none follows.
    fn process_name(&mut self) -> String {
        let mut name = String::new();
        while let Some(c) = self.peek() {
            if name.is_empty() && go_unicode::is_digit(c) {
                while let Some(d) = self.peek().filter(|&d| go_unicode::is_digit(d)) {
                    self.next();
                    name.push(d);
                }
                return name;
            }
            if name.is_empty() && is_special_param(c) {
                self.next();
                name.push(c);
                return name;
            }
            if !go_unicode::is_letter(c) && !go_unicode::is_digit(c) && c != '_' {
                break;
            }
            self.next();
            name.push(c);
        }
        name
    }

    fn process_dollar(&mut self) -> Result<String, Fail> {
        let start = self.pos;
        self.next();
        if self.peek() != Some('{') {
            let name = self.process_name();
            if name.is_empty() {
                return Ok("$".to_string());
            }
            return Ok(match self.get_env(&name) {
                Some(value) => value,
                None if self.lexer.skip_unset_env => format!("${name}"),
                None => String::new(),
            });
        }
        self.next();
        match self.peek() {
            None => return fail(start, ExpandErrorKind::MissingBrace),
            Some('{' | '}' | ':') => return fail(start, ExpandErrorKind::BadSubstitution),
            Some(_) => {}
        }
        if self.depth >= MAX_NESTING {
            return fail(start, ExpandErrorKind::TooDeep(MAX_NESTING));
        }
        self.depth += 1;
        let result = self.process_braced(start);
        self.depth -= 1;
        result
    }

    /// The `${name…}` forms, after the `${`.
    fn process_braced(&mut self, start: usize) -> Result<String, Fail> {
        let name = self.process_name();
        let op_pos = self.pos;
        let Some(op) = self.next() else {
            // `${name` and the end: BuildKit reports the end-of-input rune as an "unsupported
            // modifier"; the missing brace is the real problem.
            return fail(start, ExpandErrorKind::MissingBrace);
        };
        match op {
            '}' => Ok(match self.get_env(&name) {
                Some(value) => value,
                None if self.lexer.skip_unset_env => format!("${{{name}}}"),
                None => String::new(),
            }),
            ':' | '+' | '-' | '?' | '#' | '%' => {
                let mut written = op.to_string();
                let (null_is_unset, op) = if op == ':' {
                    let op = self.next();
                    written.push(op.unwrap_or(char::REPLACEMENT_CHARACTER));
                    (true, op)
                } else {
                    (false, Some(op))
                };
                let pattern_op = matches!(op, Some('#' | '%'));
                if null_is_unset && pattern_op {
                    return fail(op_pos, ExpandErrorKind::UnsupportedModifier(written));
                }
                let word = self.sub_word('}', pattern_op, start, ExpandErrorKind::MissingBrace)?;
                let value = self.get_env(&name);
                if self.lexer.skip_unset_env && value.is_none() {
                    return Ok(format!("${{{name}{written}{word}}}"));
                }
                let empty = value.as_deref().is_none_or(|v| null_is_unset && v.is_empty());
                match op {
                    Some('-') => Ok(if empty { word } else { value.unwrap_or_default() }),
                    Some('+') => Ok(if empty { String::new() } else { word }),
                    Some('?') => match value {
                        None => {
                            let message = if word.is_empty() { "is not allowed to be unset".to_string() } else { word };
                            fail(start, ExpandErrorKind::Required { name, message })
                        }
                        Some(v) if null_is_unset && v.is_empty() => {
                            let message = if word.is_empty() { "is not allowed to be empty".to_string() } else { word };
                            fail(start, ExpandErrorKind::Required { name, message })
                        }
                        Some(v) => Ok(v),
                    },
                    Some(op @ ('#' | '%')) => {
                        // `##` / `%%`: the longest match; one operator: the shortest.
                        let (pattern, greedy) = match word.strip_prefix(op) {
                            Some(rest) => (rest, true),
                            None => (word.as_str(), false),
                        };
                        let value = value.unwrap_or_default();
                        let trimmed = if op == '%' {
                            trim_suffix(pattern, &value, greedy)
                        } else {
                            trim_prefix(pattern, &value, greedy)
                        };
                        trimmed.or_else(|kind| fail(start, kind))
                    }
                    _ => fail(op_pos, ExpandErrorKind::UnsupportedModifier(written)),
                }
            }
            '/' => {
                let replace_all = self.peek() == Some('/');
                if replace_all {
                    self.next();
                }
                let pattern = self.sub_word('/', true, start, ExpandErrorKind::MissingSlash)?;
                let replacement = self.sub_word('}', true, start, ExpandErrorKind::MissingBrace)?;
                let value = self.get_env(&name);
                if self.lexer.skip_unset_env && value.is_none() {
                    return Ok(format!("${{{name}/{pattern}/{replacement}}}"));
                }
                let value = value.unwrap_or_default();
                let tokens = compile_pattern(&pattern).or_else(|kind| fail(start, kind))?;
                let text: Vec<char> = value.chars().collect();
                let ends = first_match_ends(&tokens, &text, true);
                Ok(if replace_all {
                    replace_all_matches(&text, &ends, &replacement)
                } else {
                    match ends.iter().enumerate().find_map(|(s, end)| end.map(|e| (s, e))) {
                        Some((s, e)) => {
                            let mut out: String = text[..s].iter().collect();
                            out.push_str(&replacement);
                            out.extend(&text[e..]);
                            out
                        }
                        None => value,
                    }
                })
            }
            other => fail(op_pos, ExpandErrorKind::UnsupportedModifier(other.to_string())),
        }
    }

    /// The word after an operator, up to `stop`. Any failure that ran into the end of the input
    /// is reported as `missing` at the `$` (BuildKit does the same, whatever failed inside).
    fn sub_word(
        &mut self,
        stop: char,
        raw_escapes: bool,
        start: usize,
        missing: ExpandErrorKind,
    ) -> Result<String, Fail> {
        match self.process_stop_on(Some(stop), raw_escapes) {
            Ok((word, _)) => Ok(word),
            Err(_) if self.peek().is_none() => fail(start, missing),
            Err(other) => Err(other),
        }
    }
}

/// The special parameters of POSIX sh (`$@`, `$#`...), which BuildKit reads as one-character
/// names.
fn is_special_param(c: char) -> bool {
    matches!(c, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0')
}

/// One element of a `#`/`%`/`/` pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PatternToken {
    /// `*`: any run of characters other than newline.
    Star,
    /// `?`: one character other than newline.
    Any,
    Literal(char),
}

/// Parses a pattern the way BuildKit converts it to a Go regexp: `*`, `?`, `\*`, `\?`, `\\`;
/// `\}` and `\/` lose their backslash; every other character is literal.
fn compile_pattern(pattern: &str) -> Result<Vec<PatternToken>, ExpandErrorKind> {
    let mut chars = pattern.strip_prefix('\u{feff}').unwrap_or(pattern).chars().peekable();
    let mut tokens = Vec::new();
    while let Some(c) = chars.next() {
        tokens.push(match c {
            '*' => PatternToken::Star,
            '?' => PatternToken::Any,
            '\\' => {
                if matches!(chars.peek(), Some('}' | '/')) {
                    continue;
                }
                match chars.next() {
                    Some(escaped @ ('*' | '?' | '\\')) => PatternToken::Literal(escaped),
                    other => {
                        return Err(ExpandErrorKind::InvalidPattern {
                            pattern: pattern.to_string(),
                            escaped: other.unwrap_or(char::REPLACEMENT_CHARACTER),
                        });
                    }
                }
            }
            other => PatternToken::Literal(other),
        });
    }
    Ok(tokens)
}

/// For every start position in `text`, the end of the match that a backtracking matcher tries
/// first (Go's leftmost-first semantics), or `None` when the pattern cannot match there. Stars
/// prefer the longest run when `greedy`, the shortest otherwise. Dynamic programming from the
/// end keeps this O(pattern × text) for any input.
fn first_match_ends(tokens: &[PatternToken], text: &[char], greedy: bool) -> Vec<Option<usize>> {
    let n = text.len();
    // `next[j]`: the result for the rest of the pattern starting at `j`; past the last token
    // every position is the end of a match.
    let mut next: Vec<Option<usize>> = (0..=n).map(Some).collect();
    for token in tokens.iter().rev() {
        let mut cur = vec![None; n + 1];
        match *token {
            PatternToken::Literal(l) => {
                for j in 0..n {
                    if text[j] == l {
                        cur[j] = next[j + 1];
                    }
                }
            }
            PatternToken::Any => {
                for j in 0..n {
                    if text[j] != '\n' {
                        cur[j] = next[j + 1];
                    }
                }
            }
            PatternToken::Star => {
                for j in (0..=n).rev() {
                    let more = if j < n && text[j] != '\n' { cur[j + 1] } else { None };
                    let stop = next[j];
                    cur[j] = if greedy { more.or(stop) } else { stop.or(more) };
                }
            }
        }
        next = cur;
    }
    next
}

/// `${v#p}`: removes the first-found match anchored at the start.
fn trim_prefix(pattern: &str, value: &str, greedy: bool) -> Result<String, ExpandErrorKind> {
    let tokens = compile_pattern(pattern)?;
    let text: Vec<char> = value.chars().collect();
    let ends = first_match_ends(&tokens, &text, greedy);
    Ok(match ends[0] {
        Some(end) => text[end..].iter().collect(),
        None => value.to_string(),
    })
}

/// `${v%p}`: BuildKit reverses both the value and the pattern (keeping `\x` pairs in order) and
/// removes a prefix, which turns "shortest suffix" into a leftmost search.
fn trim_suffix(pattern: &str, value: &str, greedy: bool) -> Result<String, ExpandErrorKind> {
    let reversed_value: String = value.chars().rev().collect();
    let trimmed = trim_prefix(&reverse_pattern(pattern), &reversed_value, greedy)?;
    Ok(trimmed.chars().rev().collect())
}

fn reverse_pattern(pattern: &str) -> String {
    let chars: Vec<char> = pattern.chars().collect();
    let Some(last) = chars.len().checked_sub(1) else { return String::new() };
    let mut out = vec!['\0'; chars.len()];
    let mut i = 0;
    while i <= last {
        let out_idx = last - i;
        if chars[i] == '\\' && i != last {
            out[out_idx - 1] = '\\';
            out[out_idx] = chars[i + 1];
            i += 2;
        } else {
            out[out_idx] = chars[i];
            i += 1;
        }
    }
    out.into_iter().collect()
}

/// `${v//p/r}` with Go's `Regexp.ReplaceAllString` rules: successive leftmost matches, an empty
/// match right after a previous match is not replaced, and the search always advances.
fn replace_all_matches(text: &[char], ends: &[Option<usize>], replacement: &str) -> String {
    let n = text.len();
    let mut out = String::new();
    let mut last_match_end = 0;
    let mut search = 0;
    while search <= n {
        let Some((start, end)) = (search..=n).find_map(|s| ends[s].map(|e| (s, e))) else { break };
        out.extend(&text[last_match_end..start]);
        if end > last_match_end || start == 0 {
            let matched: String = text[start..end].iter().collect();
            out.push_str(&go_expand_template(replacement, &matched));
        }
        last_match_end = end;
        let width = usize::from(search < n);
        if search + width > end {
            search += width;
        } else if search + 1 > end {
            search += 1;
        } else {
            search = end;
        }
    }
    out.extend(&text[last_match_end.min(n)..]);
    out
}

/// Go's `Regexp.Expand` for a pattern without capture groups: `$$` is `$`, `$0`/`${0}` the
/// match, any other well-formed `$name`/`${name}` nothing, a malformed one literal.
fn go_expand_template(template: &str, matched: &str) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        rest = &rest[i + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            out.push('$');
            rest = after;
            continue;
        }
        let (braced, body) = match rest.strip_prefix('{') {
            Some(body) => (true, body),
            None => (false, rest),
        };
        let len = body
            .char_indices()
            .find(|&(_, c)| !(go_unicode::is_letter(c) || go_unicode::is_digit(c) || c == '_'))
            .map_or(body.len(), |(i, _)| i);
        let name = &body[..len];
        let mut after = &body[len..];
        let well_formed = !name.is_empty()
            && (!braced
                || match after.strip_prefix('}') {
                    Some(a) => {
                        after = a;
                        true
                    }
                    None => false,
                });
        if !well_formed {
            out.push('$');
            continue;
        }
        if name == "0" {
            out.push_str(matched);
        }
        rest = after;
    }
    out.push_str(rest);
    out
}

/// Go's `unicode.IsLetter` (general category L) and `unicode.IsDigit` (category Nd), which decide
/// what a variable name is. Generated from UnicodeData.txt 15.0.0 (Debian `unicode-data`, the
/// Unicode version of Go's tables) by merging the code points of categories Lu/Ll/Lt/Lm/Lo, and
/// Nd, into sorted inclusive ranges.
mod go_unicode {
    pub(super) fn is_letter(c: char) -> bool {
        if c.is_ascii() {
            return c.is_ascii_alphabetic();
        }
        in_table(LETTER, c)
    }

    pub(super) fn is_digit(c: char) -> bool {
        if c.is_ascii() {
            return c.is_ascii_digit();
        }
        in_table(DIGIT, c)
    }

    fn in_table(table: &[(u32, u32)], c: char) -> bool {
        let c = c as u32;
        table
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

    #[rustfmt::skip]
    const LETTER: &[(u32, u32)] = &[
        (0x41, 0x5a), (0x61, 0x7a), (0xaa, 0xaa), (0xb5, 0xb5), (0xba, 0xba), (0xc0, 0xd6), (0xd8, 0xf6), (0xf8, 0x2c1),
        (0x2c6, 0x2d1), (0x2e0, 0x2e4), (0x2ec, 0x2ec), (0x2ee, 0x2ee), (0x370, 0x374), (0x376, 0x377), (0x37a, 0x37d),
        (0x37f, 0x37f), (0x386, 0x386), (0x388, 0x38a), (0x38c, 0x38c), (0x38e, 0x3a1), (0x3a3, 0x3f5), (0x3f7, 0x481),
        (0x48a, 0x52f), (0x531, 0x556), (0x559, 0x559), (0x560, 0x588), (0x5d0, 0x5ea), (0x5ef, 0x5f2), (0x620, 0x64a),
        (0x66e, 0x66f), (0x671, 0x6d3), (0x6d5, 0x6d5), (0x6e5, 0x6e6), (0x6ee, 0x6ef), (0x6fa, 0x6fc), (0x6ff, 0x6ff),
        (0x710, 0x710), (0x712, 0x72f), (0x74d, 0x7a5), (0x7b1, 0x7b1), (0x7ca, 0x7ea), (0x7f4, 0x7f5), (0x7fa, 0x7fa),
        (0x800, 0x815), (0x81a, 0x81a), (0x824, 0x824), (0x828, 0x828), (0x840, 0x858), (0x860, 0x86a), (0x870, 0x887),
        (0x889, 0x88e), (0x8a0, 0x8c9), (0x904, 0x939), (0x93d, 0x93d), (0x950, 0x950), (0x958, 0x961), (0x971, 0x980),
        (0x985, 0x98c), (0x98f, 0x990), (0x993, 0x9a8), (0x9aa, 0x9b0), (0x9b2, 0x9b2), (0x9b6, 0x9b9), (0x9bd, 0x9bd),
        (0x9ce, 0x9ce), (0x9dc, 0x9dd), (0x9df, 0x9e1), (0x9f0, 0x9f1), (0x9fc, 0x9fc), (0xa05, 0xa0a), (0xa0f, 0xa10),
        (0xa13, 0xa28), (0xa2a, 0xa30), (0xa32, 0xa33), (0xa35, 0xa36), (0xa38, 0xa39), (0xa59, 0xa5c), (0xa5e, 0xa5e),
        (0xa72, 0xa74), (0xa85, 0xa8d), (0xa8f, 0xa91), (0xa93, 0xaa8), (0xaaa, 0xab0), (0xab2, 0xab3), (0xab5, 0xab9),
        (0xabd, 0xabd), (0xad0, 0xad0), (0xae0, 0xae1), (0xaf9, 0xaf9), (0xb05, 0xb0c), (0xb0f, 0xb10), (0xb13, 0xb28),
        (0xb2a, 0xb30), (0xb32, 0xb33), (0xb35, 0xb39), (0xb3d, 0xb3d), (0xb5c, 0xb5d), (0xb5f, 0xb61), (0xb71, 0xb71),
        (0xb83, 0xb83), (0xb85, 0xb8a), (0xb8e, 0xb90), (0xb92, 0xb95), (0xb99, 0xb9a), (0xb9c, 0xb9c), (0xb9e, 0xb9f),
        (0xba3, 0xba4), (0xba8, 0xbaa), (0xbae, 0xbb9), (0xbd0, 0xbd0), (0xc05, 0xc0c), (0xc0e, 0xc10), (0xc12, 0xc28),
        (0xc2a, 0xc39), (0xc3d, 0xc3d), (0xc58, 0xc5a), (0xc5d, 0xc5d), (0xc60, 0xc61), (0xc80, 0xc80), (0xc85, 0xc8c),
        (0xc8e, 0xc90), (0xc92, 0xca8), (0xcaa, 0xcb3), (0xcb5, 0xcb9), (0xcbd, 0xcbd), (0xcdd, 0xcde), (0xce0, 0xce1),
        (0xcf1, 0xcf2), (0xd04, 0xd0c), (0xd0e, 0xd10), (0xd12, 0xd3a), (0xd3d, 0xd3d), (0xd4e, 0xd4e), (0xd54, 0xd56),
        (0xd5f, 0xd61), (0xd7a, 0xd7f), (0xd85, 0xd96), (0xd9a, 0xdb1), (0xdb3, 0xdbb), (0xdbd, 0xdbd), (0xdc0, 0xdc6),
        (0xe01, 0xe30), (0xe32, 0xe33), (0xe40, 0xe46), (0xe81, 0xe82), (0xe84, 0xe84), (0xe86, 0xe8a), (0xe8c, 0xea3),
        (0xea5, 0xea5), (0xea7, 0xeb0), (0xeb2, 0xeb3), (0xebd, 0xebd), (0xec0, 0xec4), (0xec6, 0xec6), (0xedc, 0xedf),
        (0xf00, 0xf00), (0xf40, 0xf47), (0xf49, 0xf6c), (0xf88, 0xf8c), (0x1000, 0x102a), (0x103f, 0x103f),
        (0x1050, 0x1055), (0x105a, 0x105d), (0x1061, 0x1061), (0x1065, 0x1066), (0x106e, 0x1070), (0x1075, 0x1081),
        (0x108e, 0x108e), (0x10a0, 0x10c5), (0x10c7, 0x10c7), (0x10cd, 0x10cd), (0x10d0, 0x10fa), (0x10fc, 0x1248),
        (0x124a, 0x124d), (0x1250, 0x1256), (0x1258, 0x1258), (0x125a, 0x125d), (0x1260, 0x1288), (0x128a, 0x128d),
        (0x1290, 0x12b0), (0x12b2, 0x12b5), (0x12b8, 0x12be), (0x12c0, 0x12c0), (0x12c2, 0x12c5), (0x12c8, 0x12d6),
        (0x12d8, 0x1310), (0x1312, 0x1315), (0x1318, 0x135a), (0x1380, 0x138f), (0x13a0, 0x13f5), (0x13f8, 0x13fd),
        (0x1401, 0x166c), (0x166f, 0x167f), (0x1681, 0x169a), (0x16a0, 0x16ea), (0x16f1, 0x16f8), (0x1700, 0x1711),
        (0x171f, 0x1731), (0x1740, 0x1751), (0x1760, 0x176c), (0x176e, 0x1770), (0x1780, 0x17b3), (0x17d7, 0x17d7),
        (0x17dc, 0x17dc), (0x1820, 0x1878), (0x1880, 0x1884), (0x1887, 0x18a8), (0x18aa, 0x18aa), (0x18b0, 0x18f5),
        (0x1900, 0x191e), (0x1950, 0x196d), (0x1970, 0x1974), (0x1980, 0x19ab), (0x19b0, 0x19c9), (0x1a00, 0x1a16),
        (0x1a20, 0x1a54), (0x1aa7, 0x1aa7), (0x1b05, 0x1b33), (0x1b45, 0x1b4c), (0x1b83, 0x1ba0), (0x1bae, 0x1baf),
        (0x1bba, 0x1be5), (0x1c00, 0x1c23), (0x1c4d, 0x1c4f), (0x1c5a, 0x1c7d), (0x1c80, 0x1c88), (0x1c90, 0x1cba),
        (0x1cbd, 0x1cbf), (0x1ce9, 0x1cec), (0x1cee, 0x1cf3), (0x1cf5, 0x1cf6), (0x1cfa, 0x1cfa), (0x1d00, 0x1dbf),
        (0x1e00, 0x1f15), (0x1f18, 0x1f1d), (0x1f20, 0x1f45), (0x1f48, 0x1f4d), (0x1f50, 0x1f57), (0x1f59, 0x1f59),
        (0x1f5b, 0x1f5b), (0x1f5d, 0x1f5d), (0x1f5f, 0x1f7d), (0x1f80, 0x1fb4), (0x1fb6, 0x1fbc), (0x1fbe, 0x1fbe),
        (0x1fc2, 0x1fc4), (0x1fc6, 0x1fcc), (0x1fd0, 0x1fd3), (0x1fd6, 0x1fdb), (0x1fe0, 0x1fec), (0x1ff2, 0x1ff4),
        (0x1ff6, 0x1ffc), (0x2071, 0x2071), (0x207f, 0x207f), (0x2090, 0x209c), (0x2102, 0x2102), (0x2107, 0x2107),
        (0x210a, 0x2113), (0x2115, 0x2115), (0x2119, 0x211d), (0x2124, 0x2124), (0x2126, 0x2126), (0x2128, 0x2128),
        (0x212a, 0x212d), (0x212f, 0x2139), (0x213c, 0x213f), (0x2145, 0x2149), (0x214e, 0x214e), (0x2183, 0x2184),
        (0x2c00, 0x2ce4), (0x2ceb, 0x2cee), (0x2cf2, 0x2cf3), (0x2d00, 0x2d25), (0x2d27, 0x2d27), (0x2d2d, 0x2d2d),
        (0x2d30, 0x2d67), (0x2d6f, 0x2d6f), (0x2d80, 0x2d96), (0x2da0, 0x2da6), (0x2da8, 0x2dae), (0x2db0, 0x2db6),
        (0x2db8, 0x2dbe), (0x2dc0, 0x2dc6), (0x2dc8, 0x2dce), (0x2dd0, 0x2dd6), (0x2dd8, 0x2dde), (0x2e2f, 0x2e2f),
        (0x3005, 0x3006), (0x3031, 0x3035), (0x303b, 0x303c), (0x3041, 0x3096), (0x309d, 0x309f), (0x30a1, 0x30fa),
        (0x30fc, 0x30ff), (0x3105, 0x312f), (0x3131, 0x318e), (0x31a0, 0x31bf), (0x31f0, 0x31ff), (0x3400, 0x4dbf),
        (0x4e00, 0xa48c), (0xa4d0, 0xa4fd), (0xa500, 0xa60c), (0xa610, 0xa61f), (0xa62a, 0xa62b), (0xa640, 0xa66e),
        (0xa67f, 0xa69d), (0xa6a0, 0xa6e5), (0xa717, 0xa71f), (0xa722, 0xa788), (0xa78b, 0xa7ca), (0xa7d0, 0xa7d1),
        (0xa7d3, 0xa7d3), (0xa7d5, 0xa7d9), (0xa7f2, 0xa801), (0xa803, 0xa805), (0xa807, 0xa80a), (0xa80c, 0xa822),
        (0xa840, 0xa873), (0xa882, 0xa8b3), (0xa8f2, 0xa8f7), (0xa8fb, 0xa8fb), (0xa8fd, 0xa8fe), (0xa90a, 0xa925),
        (0xa930, 0xa946), (0xa960, 0xa97c), (0xa984, 0xa9b2), (0xa9cf, 0xa9cf), (0xa9e0, 0xa9e4), (0xa9e6, 0xa9ef),
        (0xa9fa, 0xa9fe), (0xaa00, 0xaa28), (0xaa40, 0xaa42), (0xaa44, 0xaa4b), (0xaa60, 0xaa76), (0xaa7a, 0xaa7a),
        (0xaa7e, 0xaaaf), (0xaab1, 0xaab1), (0xaab5, 0xaab6), (0xaab9, 0xaabd), (0xaac0, 0xaac0), (0xaac2, 0xaac2),
        (0xaadb, 0xaadd), (0xaae0, 0xaaea), (0xaaf2, 0xaaf4), (0xab01, 0xab06), (0xab09, 0xab0e), (0xab11, 0xab16),
        (0xab20, 0xab26), (0xab28, 0xab2e), (0xab30, 0xab5a), (0xab5c, 0xab69), (0xab70, 0xabe2), (0xac00, 0xd7a3),
        (0xd7b0, 0xd7c6), (0xd7cb, 0xd7fb), (0xf900, 0xfa6d), (0xfa70, 0xfad9), (0xfb00, 0xfb06), (0xfb13, 0xfb17),
        (0xfb1d, 0xfb1d), (0xfb1f, 0xfb28), (0xfb2a, 0xfb36), (0xfb38, 0xfb3c), (0xfb3e, 0xfb3e), (0xfb40, 0xfb41),
        (0xfb43, 0xfb44), (0xfb46, 0xfbb1), (0xfbd3, 0xfd3d), (0xfd50, 0xfd8f), (0xfd92, 0xfdc7), (0xfdf0, 0xfdfb),
        (0xfe70, 0xfe74), (0xfe76, 0xfefc), (0xff21, 0xff3a), (0xff41, 0xff5a), (0xff66, 0xffbe), (0xffc2, 0xffc7),
        (0xffca, 0xffcf), (0xffd2, 0xffd7), (0xffda, 0xffdc), (0x10000, 0x1000b), (0x1000d, 0x10026),
        (0x10028, 0x1003a), (0x1003c, 0x1003d), (0x1003f, 0x1004d), (0x10050, 0x1005d), (0x10080, 0x100fa),
        (0x10280, 0x1029c), (0x102a0, 0x102d0), (0x10300, 0x1031f), (0x1032d, 0x10340), (0x10342, 0x10349),
        (0x10350, 0x10375), (0x10380, 0x1039d), (0x103a0, 0x103c3), (0x103c8, 0x103cf), (0x10400, 0x1049d),
        (0x104b0, 0x104d3), (0x104d8, 0x104fb), (0x10500, 0x10527), (0x10530, 0x10563), (0x10570, 0x1057a),
        (0x1057c, 0x1058a), (0x1058c, 0x10592), (0x10594, 0x10595), (0x10597, 0x105a1), (0x105a3, 0x105b1),
        (0x105b3, 0x105b9), (0x105bb, 0x105bc), (0x10600, 0x10736), (0x10740, 0x10755), (0x10760, 0x10767),
        (0x10780, 0x10785), (0x10787, 0x107b0), (0x107b2, 0x107ba), (0x10800, 0x10805), (0x10808, 0x10808),
        (0x1080a, 0x10835), (0x10837, 0x10838), (0x1083c, 0x1083c), (0x1083f, 0x10855), (0x10860, 0x10876),
        (0x10880, 0x1089e), (0x108e0, 0x108f2), (0x108f4, 0x108f5), (0x10900, 0x10915), (0x10920, 0x10939),
        (0x10980, 0x109b7), (0x109be, 0x109bf), (0x10a00, 0x10a00), (0x10a10, 0x10a13), (0x10a15, 0x10a17),
        (0x10a19, 0x10a35), (0x10a60, 0x10a7c), (0x10a80, 0x10a9c), (0x10ac0, 0x10ac7), (0x10ac9, 0x10ae4),
        (0x10b00, 0x10b35), (0x10b40, 0x10b55), (0x10b60, 0x10b72), (0x10b80, 0x10b91), (0x10c00, 0x10c48),
        (0x10c80, 0x10cb2), (0x10cc0, 0x10cf2), (0x10d00, 0x10d23), (0x10e80, 0x10ea9), (0x10eb0, 0x10eb1),
        (0x10f00, 0x10f1c), (0x10f27, 0x10f27), (0x10f30, 0x10f45), (0x10f70, 0x10f81), (0x10fb0, 0x10fc4),
        (0x10fe0, 0x10ff6), (0x11003, 0x11037), (0x11071, 0x11072), (0x11075, 0x11075), (0x11083, 0x110af),
        (0x110d0, 0x110e8), (0x11103, 0x11126), (0x11144, 0x11144), (0x11147, 0x11147), (0x11150, 0x11172),
        (0x11176, 0x11176), (0x11183, 0x111b2), (0x111c1, 0x111c4), (0x111da, 0x111da), (0x111dc, 0x111dc),
        (0x11200, 0x11211), (0x11213, 0x1122b), (0x1123f, 0x11240), (0x11280, 0x11286), (0x11288, 0x11288),
        (0x1128a, 0x1128d), (0x1128f, 0x1129d), (0x1129f, 0x112a8), (0x112b0, 0x112de), (0x11305, 0x1130c),
        (0x1130f, 0x11310), (0x11313, 0x11328), (0x1132a, 0x11330), (0x11332, 0x11333), (0x11335, 0x11339),
        (0x1133d, 0x1133d), (0x11350, 0x11350), (0x1135d, 0x11361), (0x11400, 0x11434), (0x11447, 0x1144a),
        (0x1145f, 0x11461), (0x11480, 0x114af), (0x114c4, 0x114c5), (0x114c7, 0x114c7), (0x11580, 0x115ae),
        (0x115d8, 0x115db), (0x11600, 0x1162f), (0x11644, 0x11644), (0x11680, 0x116aa), (0x116b8, 0x116b8),
        (0x11700, 0x1171a), (0x11740, 0x11746), (0x11800, 0x1182b), (0x118a0, 0x118df), (0x118ff, 0x11906),
        (0x11909, 0x11909), (0x1190c, 0x11913), (0x11915, 0x11916), (0x11918, 0x1192f), (0x1193f, 0x1193f),
        (0x11941, 0x11941), (0x119a0, 0x119a7), (0x119aa, 0x119d0), (0x119e1, 0x119e1), (0x119e3, 0x119e3),
        (0x11a00, 0x11a00), (0x11a0b, 0x11a32), (0x11a3a, 0x11a3a), (0x11a50, 0x11a50), (0x11a5c, 0x11a89),
        (0x11a9d, 0x11a9d), (0x11ab0, 0x11af8), (0x11c00, 0x11c08), (0x11c0a, 0x11c2e), (0x11c40, 0x11c40),
        (0x11c72, 0x11c8f), (0x11d00, 0x11d06), (0x11d08, 0x11d09), (0x11d0b, 0x11d30), (0x11d46, 0x11d46),
        (0x11d60, 0x11d65), (0x11d67, 0x11d68), (0x11d6a, 0x11d89), (0x11d98, 0x11d98), (0x11ee0, 0x11ef2),
        (0x11f02, 0x11f02), (0x11f04, 0x11f10), (0x11f12, 0x11f33), (0x11fb0, 0x11fb0), (0x12000, 0x12399),
        (0x12480, 0x12543), (0x12f90, 0x12ff0), (0x13000, 0x1342f), (0x13441, 0x13446), (0x14400, 0x14646),
        (0x16800, 0x16a38), (0x16a40, 0x16a5e), (0x16a70, 0x16abe), (0x16ad0, 0x16aed), (0x16b00, 0x16b2f),
        (0x16b40, 0x16b43), (0x16b63, 0x16b77), (0x16b7d, 0x16b8f), (0x16e40, 0x16e7f), (0x16f00, 0x16f4a),
        (0x16f50, 0x16f50), (0x16f93, 0x16f9f), (0x16fe0, 0x16fe1), (0x16fe3, 0x16fe3), (0x17000, 0x187f7),
        (0x18800, 0x18cd5), (0x18d00, 0x18d08), (0x1aff0, 0x1aff3), (0x1aff5, 0x1affb), (0x1affd, 0x1affe),
        (0x1b000, 0x1b122), (0x1b132, 0x1b132), (0x1b150, 0x1b152), (0x1b155, 0x1b155), (0x1b164, 0x1b167),
        (0x1b170, 0x1b2fb), (0x1bc00, 0x1bc6a), (0x1bc70, 0x1bc7c), (0x1bc80, 0x1bc88), (0x1bc90, 0x1bc99),
        (0x1d400, 0x1d454), (0x1d456, 0x1d49c), (0x1d49e, 0x1d49f), (0x1d4a2, 0x1d4a2), (0x1d4a5, 0x1d4a6),
        (0x1d4a9, 0x1d4ac), (0x1d4ae, 0x1d4b9), (0x1d4bb, 0x1d4bb), (0x1d4bd, 0x1d4c3), (0x1d4c5, 0x1d505),
        (0x1d507, 0x1d50a), (0x1d50d, 0x1d514), (0x1d516, 0x1d51c), (0x1d51e, 0x1d539), (0x1d53b, 0x1d53e),
        (0x1d540, 0x1d544), (0x1d546, 0x1d546), (0x1d54a, 0x1d550), (0x1d552, 0x1d6a5), (0x1d6a8, 0x1d6c0),
        (0x1d6c2, 0x1d6da), (0x1d6dc, 0x1d6fa), (0x1d6fc, 0x1d714), (0x1d716, 0x1d734), (0x1d736, 0x1d74e),
        (0x1d750, 0x1d76e), (0x1d770, 0x1d788), (0x1d78a, 0x1d7a8), (0x1d7aa, 0x1d7c2), (0x1d7c4, 0x1d7cb),
        (0x1df00, 0x1df1e), (0x1df25, 0x1df2a), (0x1e030, 0x1e06d), (0x1e100, 0x1e12c), (0x1e137, 0x1e13d),
        (0x1e14e, 0x1e14e), (0x1e290, 0x1e2ad), (0x1e2c0, 0x1e2eb), (0x1e4d0, 0x1e4eb), (0x1e7e0, 0x1e7e6),
        (0x1e7e8, 0x1e7eb), (0x1e7ed, 0x1e7ee), (0x1e7f0, 0x1e7fe), (0x1e800, 0x1e8c4), (0x1e900, 0x1e943),
        (0x1e94b, 0x1e94b), (0x1ee00, 0x1ee03), (0x1ee05, 0x1ee1f), (0x1ee21, 0x1ee22), (0x1ee24, 0x1ee24),
        (0x1ee27, 0x1ee27), (0x1ee29, 0x1ee32), (0x1ee34, 0x1ee37), (0x1ee39, 0x1ee39), (0x1ee3b, 0x1ee3b),
        (0x1ee42, 0x1ee42), (0x1ee47, 0x1ee47), (0x1ee49, 0x1ee49), (0x1ee4b, 0x1ee4b), (0x1ee4d, 0x1ee4f),
        (0x1ee51, 0x1ee52), (0x1ee54, 0x1ee54), (0x1ee57, 0x1ee57), (0x1ee59, 0x1ee59), (0x1ee5b, 0x1ee5b),
        (0x1ee5d, 0x1ee5d), (0x1ee5f, 0x1ee5f), (0x1ee61, 0x1ee62), (0x1ee64, 0x1ee64), (0x1ee67, 0x1ee6a),
        (0x1ee6c, 0x1ee72), (0x1ee74, 0x1ee77), (0x1ee79, 0x1ee7c), (0x1ee7e, 0x1ee7e), (0x1ee80, 0x1ee89),
        (0x1ee8b, 0x1ee9b), (0x1eea1, 0x1eea3), (0x1eea5, 0x1eea9), (0x1eeab, 0x1eebb), (0x20000, 0x2a6df),
        (0x2a700, 0x2b739), (0x2b740, 0x2b81d), (0x2b820, 0x2cea1), (0x2ceb0, 0x2ebe0), (0x2f800, 0x2fa1d),
        (0x30000, 0x3134a), (0x31350, 0x323af),
    ];

    #[rustfmt::skip]
    const DIGIT: &[(u32, u32)] = &[
        (0x30, 0x39), (0x660, 0x669), (0x6f0, 0x6f9), (0x7c0, 0x7c9), (0x966, 0x96f), (0x9e6, 0x9ef), (0xa66, 0xa6f),
        (0xae6, 0xaef), (0xb66, 0xb6f), (0xbe6, 0xbef), (0xc66, 0xc6f), (0xce6, 0xcef), (0xd66, 0xd6f), (0xde6, 0xdef),
        (0xe50, 0xe59), (0xed0, 0xed9), (0xf20, 0xf29), (0x1040, 0x1049), (0x1090, 0x1099), (0x17e0, 0x17e9),
        (0x1810, 0x1819), (0x1946, 0x194f), (0x19d0, 0x19d9), (0x1a80, 0x1a89), (0x1a90, 0x1a99), (0x1b50, 0x1b59),
        (0x1bb0, 0x1bb9), (0x1c40, 0x1c49), (0x1c50, 0x1c59), (0xa620, 0xa629), (0xa8d0, 0xa8d9), (0xa900, 0xa909),
        (0xa9d0, 0xa9d9), (0xa9f0, 0xa9f9), (0xaa50, 0xaa59), (0xabf0, 0xabf9), (0xff10, 0xff19), (0x104a0, 0x104a9),
        (0x10d30, 0x10d39), (0x11066, 0x1106f), (0x110f0, 0x110f9), (0x11136, 0x1113f), (0x111d0, 0x111d9),
        (0x112f0, 0x112f9), (0x11450, 0x11459), (0x114d0, 0x114d9), (0x11650, 0x11659), (0x116c0, 0x116c9),
        (0x11730, 0x11739), (0x118e0, 0x118e9), (0x11950, 0x11959), (0x11c50, 0x11c59), (0x11d50, 0x11d59),
        (0x11da0, 0x11da9), (0x11f50, 0x11f59), (0x16a60, 0x16a69), (0x16ac0, 0x16ac9), (0x16b50, 0x16b59),
        (0x1d7ce, 0x1d7ff), (0x1e140, 0x1e149), (0x1e2f0, 0x1e2f9), (0x1e4f0, 0x1e4f9), (0x1e950, 0x1e959),
        (0x1fbf0, 0x1fbf9),
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Vec<(String, String)> {
        [("FOO", "xhelloxworldx"), ("EMPTY", ""), ("SPACE", "a  b"), ("PATHS", "/tmp/tmp/bar.txt"), ("STAR", "a***yy*")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn word(input: &str) -> String {
        Lexer::new('\\').process_word(input, &env()).unwrap_or_else(|e| panic!("{input:?}: {e}"))
    }

    fn words(input: &str) -> Vec<String> {
        Lexer::new('\\').process_words(input, &env()).unwrap_or_else(|e| panic!("{input:?}: {e}"))
    }

    fn error(input: &str) -> ExpandError {
        match Lexer::new('\\').process_word(input, &env()) {
            Ok(w) => panic!("{input:?} gave {w:?}, expected an error"),
            Err(e) => e,
        }
    }

    #[test]
    fn quotes_and_escapes() {
        assert_eq!(word(r#"a'b c'"d e""#), "ab cd e");
        assert_eq!(word(r#""\"\$\\\x""#), r#""$\\x"#);
        assert_eq!(word(r"'\$FOO'"), r"\$FOO");
        assert_eq!(word(r"a\ b\$FOO\"), "a b$FOO");
        assert_eq!(word(r#""$FOO'""#), "xhelloxworldx'");
    }

    #[test]
    fn plain_and_braced_variables() {
        assert_eq!(word("$FOO.$EMPTY.$NOPE.${FOO}x"), "xhelloxworldx...xhelloxworldxx");
        assert_eq!(word("$ $. $-x ${FOO}}"), "$ $. x xhelloxworldx}");
        assert_eq!(word("$1x ${12}y $@z $$"), "x y z ");
    }

    #[test]
    fn default_and_alternate() {
        assert_eq!(word("${NOPE:-d} ${EMPTY:-d} ${FOO:-d}"), "d d xhelloxworldx");
        assert_eq!(word("${NOPE-d} ${EMPTY-d} ${FOO-d}"), "d  xhelloxworldx");
        assert_eq!(word("${NOPE:+a} ${EMPTY:+a} ${FOO:+a}"), "  a");
        assert_eq!(word("${NOPE+a} ${EMPTY+a} ${FOO+a}"), " a a");
        assert_eq!(word("${NOPE:-${EMPTY:-${FOO}}}"), "xhelloxworldx");
        assert_eq!(word(r"${NOPE:-\${x}}"), "${x}");
    }

    #[test]
    fn required_values() {
        assert_eq!(word("${FOO:?x} ${EMPTY?x}"), "xhelloxworldx ");
        let e = error("ab${NOPE:?is $FOO}");
        assert_eq!(e.kind, ExpandErrorKind::Required { name: "NOPE".into(), message: "is xhelloxworldx".into() });
        assert_eq!(e.offset, 2);
        assert_eq!(e.to_string(), r#"failed to process "ab${NOPE:?is $FOO}": NOPE: is xhelloxworldx"#);
        assert_eq!(error("${EMPTY:?}").kind.to_string(), "EMPTY: is not allowed to be empty");
        assert_eq!(error("${NOPE?}").kind.to_string(), "NOPE: is not allowed to be unset");
        assert_eq!(error("${NOPE:?}").kind.to_string(), "NOPE: is not allowed to be unset");
    }

    #[test]
    fn prefix_and_suffix_removal() {
        assert_eq!(word("${FOO#*o}|${FOO##*o}|${FOO%o*}|${FOO%%o*}"), "xworldx|rldx|xhelloxw|xhell");
        assert_eq!(
            word("${FOO#x*x}|${FOO%x*x}|${FOO#}|${FOO%%}|${FOO#nomatch}"),
            "worldx|xhello|xhelloxworldx|xhelloxworldx|xhelloxworldx"
        );
        assert_eq!(word(r"${STAR%%\**\*}|${STAR#?\*}"), "a|**yy*");
        assert_eq!(word("${FOO#?}|${NOPE#x}"), "helloxworldx|");
        // `*` and `?` never match a newline, like Go's `.`.
        let env = vec![("NL".to_string(), "ab\ncd".to_string())];
        let lexer = Lexer::new('\\');
        assert_eq!(lexer.process_word("${NL#*d}|${NL##*}|${NL%?d}", &env).unwrap(), "ab\ncd|\ncd|ab\n");
    }

    #[test]
    fn replacement() {
        assert_eq!(word("${PATHS/\\/tmp/}|${PATHS//\\/tmp/}"), "/tmp/bar.txt|/bar.txt");
        assert_eq!(
            word("${FOO/o/0}|${FOO//o/0}|${FOO//?/.}|${FOO//*/.}"),
            "xhell0xworldx|xhell0xw0rldx|.............|."
        );
        assert_eq!(
            word("${FOO//o/'[$0]'}|${FOO/o/'[$0]'}|${FOO//o/'${0}$$$1'}"),
            "xhell[o]xw[o]rldx|xhell[$0]xworldx|xhello$xwo$rldx"
        );
        assert_eq!(word("${FOO///}|${FOO/$EMPTY/ww}|${NOPE//o/x}"), "xhelloxworldx|wwxhelloxworldx|");
        assert_eq!(word("${EMPTY//$EMPTY/-}|${FOO//$EMPTY/-}"), "-|-x-h-e-l-l-o-x-w-o-r-l-d-x-");
        assert_eq!(word(r"${PATHS//\//\/}"), r"\/tmp\/tmp\/bar.txt");
        assert_eq!(error("${FOO//}").kind, ExpandErrorKind::MissingSlash);
        assert_eq!(error("${FOO//o}").kind, ExpandErrorKind::MissingSlash);
        assert_eq!(error("${FOO/o/x").kind, ExpandErrorKind::MissingBrace);
    }

    #[test]
    fn bad_patterns() {
        let e = error(r"${FOO#\x}");
        assert_eq!(e.kind, ExpandErrorKind::InvalidPattern { pattern: r"\x".into(), escaped: 'x' });
        assert_eq!(e.kind.to_string(), r"invalid pattern (\x) in substitution: invalid escape '\x'");
        // Suffix patterns are reported reversed, as BuildKit does.
        assert_eq!(
            error(r"${FOO%ab\x}").kind.to_string(),
            r"invalid pattern (\xba) in substitution: invalid escape '\x'"
        );
        assert_eq!(
            error(r"${FOO/a\x/b}").kind.to_string(),
            r"invalid pattern (a\x) in substitution: invalid escape '\x'"
        );
        assert_eq!(error(r"${FOO#ab\}").kind, ExpandErrorKind::MissingBrace);
    }

    #[test]
    fn syntax_errors_with_offsets() {
        let cases: &[(&str, ExpandErrorKind, usize)] = &[
            ("ab'cd", ExpandErrorKind::UnterminatedSingleQuote, 2),
            ("a\"b\\\"", ExpandErrorKind::UnterminatedDoubleQuote, 1),
            ("x${}", ExpandErrorKind::BadSubstitution, 1),
            ("${{a}", ExpandErrorKind::BadSubstitution, 0),
            ("${:-a}", ExpandErrorKind::BadSubstitution, 0),
            ("x ${", ExpandErrorKind::MissingBrace, 2),
            ("${FOO", ExpandErrorKind::MissingBrace, 0),
            ("${FOO:", ExpandErrorKind::MissingBrace, 0),
            ("${FOO:-'x}", ExpandErrorKind::MissingBrace, 0),
            ("${FOO:-${BAR}", ExpandErrorKind::MissingBrace, 0),
            ("a${FOO:=x}", ExpandErrorKind::UnsupportedModifier(":=".into()), 6),
            ("${FOO:#x}", ExpandErrorKind::UnsupportedModifier(":#".into()), 5),
            ("${FOO:%x}", ExpandErrorKind::UnsupportedModifier(":%".into()), 5),
            ("${FOO:Yz}", ExpandErrorKind::UnsupportedModifier(":Y".into()), 5),
            ("${.}", ExpandErrorKind::UnsupportedModifier(".".into()), 2),
            ("${FOO!}", ExpandErrorKind::UnsupportedModifier("!".into()), 5),
        ];
        for (input, kind, offset) in cases {
            let e = error(input);
            assert_eq!((&e.kind, e.offset), (kind, *offset), "{input:?}");
            assert_eq!(e.input, *input);
        }
        assert_eq!(
            error("\"abc").to_string(),
            r#"failed to process "\"abc": unexpected end of statement while looking for matching double-quote"#
        );
    }

    #[test]
    fn word_splitting() {
        assert_eq!(words("a $SPACE b"), ["a", "a", "b", "b"]);
        assert_eq!(words(r#"a "$SPACE" 'c  d' e\ f"#), ["a", "a  b", "c  d", "e f"]);
        assert_eq!(words("  x${NOPE}  y  "), ["x", "y"]);
        assert_eq!(words(r#"a "" b"#), ["a", "b"]);
        // A `${…}` default inside a word keeps the text before it (BuildKit 0.13's behaviour).
        assert_eq!(words("pre${NOPE:-a}b ${NOPE:-c d}"), ["preab", "c", "d"]);
        assert_eq!(words(""), Vec::<String>::new());
    }

    #[test]
    fn matches_are_reported() {
        let (w, m) = Lexer::new('\\')
            .process_word_with_matches("${FOO:+$EMPTY} ${NOPE:-$OTHER} ${BAR/x/$FOO} '$QUOTED'", &env())
            .unwrap();
        assert_eq!(w, "   $QUOTED");
        let set = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        assert_eq!(m.matched, set(&["EMPTY", "FOO"]));
        assert_eq!(m.unmatched, set(&["BAR", "NOPE", "OTHER"]));
    }

    #[test]
    fn backtick_escape() {
        let lexer = Lexer::new('`');
        let env = env();
        assert_eq!(lexer.process_word(r#"c:\dir`$FOO "a`"b" `x"#, &env).unwrap(), r#"c:\dir$FOO a"b x"#);
        assert_eq!(lexer.process_words(r"a` b c\ d", &env).unwrap(), ["a b", r"c\", "d"]);
        assert_eq!(lexer.escape(), '`');
    }

    #[test]
    fn lexer_options() {
        let env = env();
        let mut lexer = Lexer::new('\\');
        lexer.raw_quotes = true;
        assert_eq!(lexer.process_word(r#"'a'"$FOO""#, &env).unwrap(), r#"'a'"xhelloxworldx""#);
        let mut lexer = Lexer::new('\\');
        lexer.raw_escapes = true;
        assert_eq!(lexer.process_word(r#"a\$b"\$""#, &env).unwrap(), r#"a\$b\$"#);
        let mut lexer = Lexer::new('\\');
        lexer.skip_process_quotes = true;
        assert_eq!(lexer.process_word(r#"'$FOO' "x"#, &env).unwrap(), r#"'xhelloxworldx' "x"#);
        let mut lexer = Lexer::new('\\');
        lexer.skip_unset_env = true;
        assert_eq!(
            lexer.process_word("$FOO $NOPE ${NOPE} ${NOPE:-d} ${NOPE//a/b} ${EMPTY:-d}", &env).unwrap(),
            "xhelloxworldx $NOPE ${NOPE} ${NOPE:-d} ${NOPE/a/b} d"
        );
        assert_eq!(lexer.process_word("${NOPE:Yz}", &env).unwrap(), "${NOPE:Yz}");
    }

    #[test]
    fn env_lookups() {
        let pairs = vec![("A".to_string(), "1".to_string()), ("A".to_string(), "2".to_string())];
        assert_eq!(pairs.lookup("A"), Some("2"));
        assert_eq!(pairs.as_slice().lookup("B"), None);
        let btree: BTreeMap<String, String> = pairs.iter().cloned().collect();
        let hash: HashMap<String, String> = pairs.iter().cloned().collect();
        let lexer = Lexer::default();
        assert_eq!(lexer.process_word("$A", &btree).unwrap(), "2");
        assert_eq!(lexer.process_word("$A", &hash).unwrap(), "2");
        assert_eq!(lexer.process_word("$A", &&pairs).unwrap(), "2");
        // Names are case-sensitive.
        assert_eq!(lexer.process_word("${a:-none}", &pairs).unwrap(), "none");
    }

    #[test]
    fn unicode_names_follow_go() {
        let env = vec![("안녕".to_string(), "hi".to_string()), ("x٣".to_string(), "d".to_string())];
        let lexer = Lexer::default();
        // Letters (category L) and decimal digits (Nd) form names; other symbols end them.
        assert_eq!(lexer.process_word("$안녕!${x٣}$٣x", &env).unwrap(), "hi!dx");
        assert_eq!(lexer.process_word("$ⅷ", &env).unwrap(), "$ⅷ"); // Nl is not a letter
        assert!(go_unicode::is_letter('ᵃ') && go_unicode::is_letter('中') && !go_unicode::is_letter('²'));
        assert!(go_unicode::is_digit('٣') && !go_unicode::is_digit('²') && !go_unicode::is_digit('a'));
        // A leading byte-order mark is skipped, as Go's scanner does.
        assert_eq!(lexer.process_word("\u{feff}a", &env).unwrap(), "a");
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let depth = 5000;
        let input = format!("{}x{}", "${A:-".repeat(depth), "}".repeat(depth));
        let e = Lexer::default().process_word(&input, &env()).unwrap_err();
        assert_eq!(e.kind, ExpandErrorKind::TooDeep(MAX_NESTING));
        let ok = format!("{}x{}", "${A:-".repeat(MAX_NESTING), "}".repeat(MAX_NESTING));
        assert_eq!(Lexer::default().process_word(&ok, &env()).unwrap(), "x");
    }

    #[test]
    fn large_patterns_stay_fast() {
        let value = "ab".repeat(20_000);
        let env = vec![("V".to_string(), value.clone())];
        let pattern = "*a".repeat(200);
        let start = std::time::Instant::now();
        let out = Lexer::default().process_word(&format!("${{V#{pattern}}}|${{V//{pattern}/x}}"), &env).unwrap();
        assert!(out.starts_with(&value[399..]) && out.ends_with("|xb"), "{}", &out[..40]);
        assert!(start.elapsed() < std::time::Duration::from_secs(20));
    }

    mod prop {
        use super::super::*;
        use proptest::prelude::*;

        fn env() -> Vec<(String, String)> {
            vec![("A".into(), "a b*".into()), ("E".into(), String::new()), ("N".into(), "x\ny".into())]
        }

        fn check(input: &str) {
            for escape in ['\\', '`'] {
                for flags in 0..16u8 {
                    let mut lexer = Lexer::new(escape);
                    lexer.raw_quotes = flags & 1 != 0;
                    lexer.raw_escapes = flags & 2 != 0;
                    lexer.skip_process_quotes = flags & 4 != 0;
                    lexer.skip_unset_env = flags & 8 != 0;
                    let env = env();
                    for result in [
                        lexer.process_word(input, &env).map(|_| ()),
                        lexer.process_words(input, &env).map(|_| ()),
                        lexer.process_word_with_matches(input, &env).map(|_| ()),
                    ] {
                        if let Err(e) = result {
                            assert!(e.offset <= input.len() && input.is_char_boundary(e.offset), "{e:?}");
                            assert!(!e.to_string().is_empty());
                        }
                    }
                }
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]
            #[test]
            fn shell_syntax_soup_never_panics(input in r#"([$\\`'"{}:?#%/*+=\-!@AEN0-9 \n.]|\$\{|\$\{A[:#%/]){0,40}"#) {
                check(&input);
            }

            #[test]
            fn arbitrary_text_never_panics(input in any::<String>()) {
                check(&input);
            }
        }
    }
}
