//! The Dockerfile parser: source text to the syntax tree of [`crate::ast`].
//!
//! It follows BuildKit's `frontend/dockerfile/parser` step for step, because strata must accept
//! and reject exactly the Dockerfiles BuildKit does and split their instructions the same way:
//!
//! 1. Lines are read like Go's `bufio.Scanner` with BuildKit's line splitter ([`source`]): split
//!    at `\n` only, a line longer than 65,535 bytes is an error, a UTF-8 byte-order mark on the
//!    first line is dropped.
//! 2. Parser directives (`# syntax=`, `# escape=`, `# check=`) are recognised at the top of the
//!    file only ([`directives`]); the escape character they set drives line continuation and the
//!    word splitting of ENV/LABEL/ARG.
//! 3. A logical line is the first line (leading whitespace trimmed) plus its continuation lines
//!    (comment lines and empty lines inside a continuation dropped, the latter with a warning).
//!    The logical line keeps a map back to the physical lines, so errors point at the exact
//!    line and column ([`source::Logical`]).
//! 4. The logical line is split into keyword, `--flags` and the rest ([`split`]); the rest is
//!    split the way that instruction splits it ([`args`], with Go-compatible JSON in [`json`]).
//! 5. RUN/COPY/ADD (also behind ONBUILD) in shell form may open here-documents; their bodies
//!    are the physical lines that follow ([`heredoc`]).
//!
//! [`Dockerfile::dump`] prints the tree in BuildKit's test `result` format ([`dump`]).
//!
//! Beyond BuildKit's parser, the top-level ENV/LABEL/ARG are checked for what BuildKit's
//! instruction step rejects for every instruction of the file anyway (no arguments, a blank
//! name), so these errors come with a position too. Instructions behind ONBUILD are not checked:
//! BuildKit validates them only when the trigger runs.
//!
//! Columns are 1-based and count characters (Unicode scalar values), not bytes.

// A parse error is rare and carries the source line and a hint for the user; its size on the
// error path does not matter.
#![allow(clippy::result_large_err)]

mod args;
mod directives;
mod dump;
mod heredoc;
mod json;
mod source;
mod split;

use std::fmt;

use crate::ast::{Dockerfile, Heredoc, Instruction, Pos, Warning};
use directives::DirectiveState;
use source::{LineReader, Logical};

pub use heredoc::{HeredocMarker, chomp_heredoc_content, parse_heredoc_word};

/// The longest line BuildKit's scanner accepts, in bytes, without its `\n`.
pub const MAX_LINE_BYTES: usize = 65_535;

/// Why a Dockerfile could not be parsed. The texts are BuildKit's where it has one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseErrorKind {
    #[error("file with no instructions")]
    NoInstructions,
    #[error("dockerfile line greater than max allowed size of {MAX_LINE_BYTES}")]
    LineTooLong,
    #[error("the Dockerfile is not valid UTF-8")]
    InvalidUtf8,
    #[error("only one {0} parser directive can be used")]
    DuplicateDirective(String),
    #[error("invalid escape token '{0}' does not match ` or \\")]
    InvalidEscape(String),
    /// ENV/LABEL in the legacy `KEY name value` form with only a name.
    #[error("{0} must have two arguments")]
    MustHaveTwoArguments(&'static str),
    /// ENV/LABEL `a=b c`: the second word has no `=`.
    #[error("Syntax error - can't find = in {}. Must be of the form: name=value", crate::gofmt::quote(.0))]
    MissingEquals(String),
    #[error("when using JSON array syntax, arrays must be comprised of strings only")]
    JsonNotStringArray,
    #[error("{0} requires at least one argument")]
    AtLeastOneArgument(&'static str),
    #[error("{0} names can not be blank")]
    BlankName(&'static str),
    #[error("unterminated heredoc")]
    UnterminatedHeredoc(String),
    /// The delimiter word of a here-document does not lex (an unmatched quote, a bad `${}`).
    #[error("{0}")]
    HeredocWord(String),
}

/// A parse error with its place in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// The file name given to [`parse`].
    pub file: String,
    /// Where the problem is: the offending character where known, else the keyword.
    pub pos: Pos,
    /// The last line of the offending instruction (BuildKit reports the range `pos.line..=end_line`).
    pub end_line: usize,
    pub kind: ParseErrorKind,
    /// The physical line `pos` is on, without its line ending.
    pub source_line: String,
    /// What to do about it, if there is something to say.
    pub hint: Option<String>,
}

impl std::error::Error for ParseError {}

/// How many characters of a long source line to show around the column.
const SHOW_CHARS: usize = 120;

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.pos, self.kind)?;
        if !self.source_line.is_empty() {
            // A window of the line around the column, so a 64 KiB line does not flood the
            // terminal; tabs are kept in the caret line so the caret lines up.
            let chars: Vec<char> = self.source_line.chars().collect();
            let col = self.pos.column.max(1) - 1;
            let start = if chars.len() > SHOW_CHARS { col.saturating_sub(SHOW_CHARS / 2) } else { 0 };
            let end = (start + SHOW_CHARS).min(chars.len());
            let (lead, tail) = (if start > 0 { "..." } else { "" }, if end < chars.len() { "..." } else { "" });
            let shown: String = chars[start..end].iter().collect();
            let pad: String = chars[start..col.min(end)].iter().map(|&c| if c == '\t' { '\t' } else { ' ' }).collect();
            write!(f, "\n{lead}{shown}{tail}\n{}{pad}^", " ".repeat(lead.len()))?;
        }
        if let Some(hint) = &self.hint {
            write!(f, "\nhint: {hint}")?;
        }
        Ok(())
    }
}

/// An error found inside one logical line, before it is placed in the file.
#[derive(Debug)]
pub(crate) struct LineError {
    pub kind: ParseErrorKind,
    /// Byte offset in the logical line of the offending text; `None` for the keyword.
    pub at: Option<usize>,
    pub hint: Option<String>,
}

impl LineError {
    pub(crate) fn new(kind: ParseErrorKind, at: Option<usize>, hint: Option<String>) -> LineError {
        LineError { kind, at, hint }
    }
}

/// Parses a Dockerfile. `file` is the name used in errors (e.g. "Dockerfile").
pub fn parse(source: &str, file: &str) -> Result<Dockerfile, ParseError> {
    Parser { reader: LineReader::new(source), file, directives: DirectiveState::default() }.run()
}

/// Parses a Dockerfile given as bytes: BuildKit reads bytes, strata needs UTF-8, so invalid
/// UTF-8 is an error that points at the first bad byte.
pub fn parse_bytes(source: &[u8], file: &str) -> Result<Dockerfile, ParseError> {
    match std::str::from_utf8(source) {
        Ok(text) => parse(text, file),
        Err(e) => {
            let good = &source[..e.valid_up_to()];
            let line_start = good.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            let prefix = String::from_utf8_lossy(&good[line_start..]).into_owned();
            let line_end =
                source[line_start..].iter().position(|&b| b == b'\n').map_or(source.len(), |i| line_start + i);
            let line = good.iter().filter(|&&b| b == b'\n').count() + 1;
            Err(ParseError {
                file: file.to_string(),
                pos: Pos { line, column: prefix.chars().count() + 1 },
                end_line: line,
                kind: ParseErrorKind::InvalidUtf8,
                source_line: String::from_utf8_lossy(&source[line_start..line_end]).trim_end_matches('\r').to_string(),
                hint: Some("save the Dockerfile as UTF-8".to_string()),
            })
        }
    }
}

impl Dockerfile {
    /// BuildKit's `result` format (see the conformance README), one line per instruction.
    pub fn dump(&self) -> String {
        dump::dump(&self.instructions)
    }
}

struct Parser<'a> {
    reader: LineReader<'a>,
    file: &'a str,
    directives: DirectiveState,
}

impl<'a> Parser<'a> {
    fn run(mut self) -> Result<Dockerfile, ParseError> {
        let mut instructions = Vec::new();
        let mut warnings = Vec::new();
        // BuildKit's PrevComment: comment lines collect until an instruction takes them; a bare
        // `#` clears them, a blank line does not.
        let mut comments: Vec<String> = Vec::new();

        while let Some(first) = self.next_line()? {
            let text = first.text;
            if is_comment(text) {
                // BuildKit drops the first *byte* of the untrimmed line, not the `#`: an indented
                // comment keeps its `#`. Kept as is, since lints read these.
                let comment = String::from_utf8_lossy(&text.as_bytes()[1..]).trim().to_string();
                if comment.is_empty() {
                    comments.clear();
                } else {
                    comments.push(comment);
                }
            }
            let token = trim_leading_space(trim_newline(text));
            let lead = text.len() - trim_leading_space(text).len();
            match self.directives.parse_line(token) {
                Ok(true) => {
                    comments.pop();
                }
                Ok(false) => {}
                Err((kind, at, hint)) => {
                    let column = char_column(text, lead + at);
                    return Err(self.error_at(kind, Pos { line: first.number, column }, first.number, hint));
                }
            }
            let token = if is_comment(token) { "" } else { token };
            let escape = self.directives.escape;
            let (piece, mut end_of_line) = trim_continuation(token, escape);
            if end_of_line && piece.is_empty() {
                continue;
            }

            let start_line = first.number;
            let mut end_line = start_line;
            let mut logical = Logical::new(start_line);
            logical.push(piece, start_line, lead);
            let mut empty_continuation = None;
            while !end_of_line {
                let Some(next) = self.next_line()? else { break };
                end_line = next.number;
                if is_comment(next.text) {
                    continue;
                }
                let text = trim_newline(next.text);
                if trim_leading_space(text).is_empty() {
                    empty_continuation.get_or_insert(next.number);
                    continue;
                }
                let (piece, eol) = trim_continuation(text, escape);
                end_of_line = eol;
                logical.push(piece, next.number, 0);
            }
            // BuildKit places this warning on the instruction's last line; the first empty line
            // is more useful to point at.
            if let Some(line) = empty_continuation {
                warnings.push(Warning {
                    pos: Pos { line, column: 1 },
                    message: format!("Empty continuation line found in: {}", logical.text),
                });
            }

            let locate = |at: usize| self.locate(&logical, at);
            let node = args::new_node(&logical.text, 0, escape, true, &locate);
            let mut instruction = match node {
                Ok(node) => node,
                Err(e) => return Err(self.line_error(&logical, e, start_line, end_line)),
            };
            instruction.comments = std::mem::take(&mut comments);

            if can_contain_heredoc(&instruction) && logical.text.contains("<<") {
                let markers = heredoc::heredocs_from_line(&logical.text)
                    .map_err(|e| self.line_error(&logical, e, start_line, end_line))?;
                for (marker, at) in markers {
                    let (raw_content, last) = self.read_heredoc_body(&marker).map_err(|e| match e {
                        BodyError::Parse(e) => e,
                        BodyError::Unterminated(last) => self.line_error(
                            &logical,
                            LineError::new(
                                ParseErrorKind::UnterminatedHeredoc(marker.name.clone()),
                                Some(at),
                                Some(format!(
                                    "the here-document needs a line that is exactly `{}` to end it{}",
                                    marker.name,
                                    if marker.chomp { " (leading tabs allowed)" } else { "" }
                                )),
                            ),
                            start_line,
                            last,
                        ),
                    })?;
                    end_line = last;
                    let content = if marker.chomp { chomp_heredoc_content(&raw_content) } else { raw_content.clone() };
                    instruction.heredocs.push(Heredoc {
                        name: marker.name,
                        content,
                        raw_content,
                        expand: marker.expand,
                        chomp: marker.chomp,
                        file_descriptor: marker.file_descriptor,
                    });
                }
            }
            set_end_line(&mut instruction, end_line);
            instructions.push(instruction);
        }

        if instructions.is_empty() {
            let line = self.reader.lines_read().max(1);
            return Err(self.error_at(
                ParseErrorKind::NoInstructions,
                Pos { line, column: 1 },
                line,
                Some("a Dockerfile needs at least one instruction, such as FROM".to_string()),
            ));
        }
        Ok(Dockerfile { directives: self.directives.into_directives(), instructions, warnings })
    }

    /// The next physical line, or the scanner's error for an over-long one.
    fn next_line(&mut self) -> Result<Option<source::RawLine<'a>>, ParseError> {
        self.reader.next_line().map_err(|too_long| {
            let text = self.reader.line_text(too_long.number);
            let column = char_column(text, MAX_LINE_BYTES.min(text.len()));
            self.error_at(
                ParseErrorKind::LineTooLong,
                Pos { line: too_long.number, column },
                too_long.number,
                Some(format!(
                    "this line is {} bytes long; split it with line continuations or move the data into a file",
                    too_long.len
                )),
            )
        })
    }

    /// Reads a here-document body up to its delimiter line; returns the body as written and the
    /// number of the delimiter line.
    fn read_heredoc_body(&mut self, marker: &HeredocMarker) -> Result<(String, usize), BodyError> {
        let mut body = String::new();
        let mut last = self.reader.lines_read();
        loop {
            let line = self.next_line().map_err(BodyError::Parse)?;
            let Some(line) = line else { return Err(BodyError::Unterminated(last)) };
            last = line.number;
            let mut candidate = trim_newline(line.text);
            if marker.chomp {
                candidate = candidate.trim_start_matches('\t');
            }
            if candidate == marker.name {
                return Ok((body, last));
            }
            body.push_str(line.text);
            if line.has_newline {
                body.push('\n');
            }
        }
    }

    fn locate(&self, logical: &Logical, at: usize) -> Pos {
        let (line, byte_col) = logical.locate(at);
        Pos { line, column: char_column(self.reader.line_text(line), byte_col) }
    }

    fn line_error(&self, logical: &Logical, e: LineError, start_line: usize, end_line: usize) -> ParseError {
        let pos = match e.at {
            Some(at) => self.locate(logical, at),
            None => self.locate(logical, logical.text.len() - trim_leading_space(&logical.text).len()),
        };
        let pos = if pos.line == 0 { Pos { line: start_line, column: 1 } } else { pos };
        self.error_at(e.kind, pos, end_line.max(pos.line), e.hint)
    }

    fn error_at(&self, kind: ParseErrorKind, pos: Pos, end_line: usize, hint: Option<String>) -> ParseError {
        ParseError {
            file: self.file.to_string(),
            pos,
            end_line,
            kind,
            source_line: trim_newline(self.reader.line_text(pos.line)).to_string(),
            hint,
        }
    }
}

enum BodyError {
    Parse(ParseError),
    Unterminated(usize),
}

fn set_end_line(instruction: &mut Instruction, end_line: usize) {
    instruction.end_line = end_line;
    if let Some(inner) = instruction.inner.as_deref_mut() {
        set_end_line(inner, end_line);
    }
}

/// RUN, COPY and ADD in shell form may have here-documents, also as the trigger of an ONBUILD.
fn can_contain_heredoc(instruction: &Instruction) -> bool {
    let target = match (&instruction.keyword[..], instruction.inner.as_deref()) {
        ("onbuild", Some(inner)) => inner,
        _ => instruction,
    };
    matches!(&target.keyword[..], "run" | "copy" | "add") && !target.json
}

/// 1-based character column of byte offset `byte` in `line` (clamped to the line).
pub(crate) fn char_column(line: &str, byte: usize) -> usize {
    let mut byte = byte.min(line.len());
    while !line.is_char_boundary(byte) {
        byte -= 1;
    }
    line[..byte].chars().count() + 1
}

/// Go's `unicode.IsSpace` is Unicode White_Space, as Rust's `char::is_whitespace`.
pub(crate) fn trim_leading_space(s: &str) -> &str {
    s.trim_start_matches(char::is_whitespace)
}

/// BuildKit's trimNewline: every trailing `\r` and `\n`.
pub(crate) fn trim_newline(s: &str) -> &str {
    s.trim_end_matches(['\r', '\n'])
}

/// A comment line: `#` after optional leading whitespace.
pub(crate) fn is_comment(line: &str) -> bool {
    trim_leading_space(line).starts_with('#')
}

/// BuildKit's line-continuation rule: the line ends in the escape character (then only spaces
/// and tabs), and that escape character is not itself escaped (preceded by another one), unless
/// it is alone on the line. Returns the line without the escape and the trailing blanks, and
/// whether the instruction ends here.
pub(crate) fn trim_continuation(line: &str, escape: char) -> (&str, bool) {
    let body = line.trim_end_matches([' ', '\t']);
    if let Some(before) = body.strip_suffix(escape)
        && (before.is_empty() || !before.ends_with(escape))
    {
        return (before, false);
    }
    (line, true)
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod proptests;
