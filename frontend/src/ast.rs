//! The syntax tree of a Dockerfile: what the parser produces and everything after it reads.
//!
//! It has the shape of BuildKit's `parser.Node` list: one [`Instruction`] per instruction, with
//! the keyword, the raw flags, and the arguments split the way that instruction splits them
//! (see `../shared/conformance/README.md`, "the `result` format"). Nothing is expanded or
//! validated here beyond syntax; typed instructions come from `instructions.rs`.

use std::fmt;

/// A position in a Dockerfile: 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// The parser directives at the top of a file (`# syntax=`, `# escape=`, `# check=`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directives {
    /// The escape character: `\` (default) or `` ` ``.
    pub escape: char,
    pub syntax: Option<String>,
    pub check: Option<String>,
}

impl Default for Directives {
    fn default() -> Directives {
        Directives { escape: '\\', syntax: None, check: None }
    }
}

/// A here-document attached to an instruction (`RUN <<EOF`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The delimiter word, without quotes (`EOF`).
    pub name: String,
    /// The body: every line up to the delimiter line, each ending in `\n` (with `<<-`, leading
    /// tabs already removed). Line endings are kept as written (a CRLF file gives `\r\n`).
    pub content: String,
    /// The body exactly as written, leading tabs kept even with `<<-` (BuildKit's
    /// `Heredoc.Content`). BuildKit uses this form when it hands a multi-heredoc `RUN` line back
    /// to the shell (`RUN cat <<-A <<B`), where the shell itself strips the tabs.
    pub raw_content: String,
    /// False when the delimiter was quoted (`<<"EOF"`, `<<'EOF'`): no variable expansion.
    pub expand: bool,
    /// True for `<<-`: leading tabs were stripped.
    pub chomp: bool,
    /// The file descriptor prefix (`3<<EOF`), if any.
    pub file_descriptor: Option<u32>,
}

/// A non-fatal remark of the parser (BuildKit prints these as warnings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub pos: Pos,
    pub message: String,
}

/// One instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// The keyword in lower case (`run`, `copy`, …), as BuildKit's `Node.Value`. Unknown keywords
    /// are kept (the translation step rejects them with a suggestion).
    pub keyword: String,
    /// Flags as written (`--from=build`, `--link`), up to a bare `--` (not included).
    pub flags: Vec<String>,
    /// Arguments, split according to the instruction (see the module docs).
    pub args: Vec<String>,
    /// True if the arguments came from a JSON array.
    pub json: bool,
    /// The instruction as written, continuation lines joined (BuildKit's `Node.Original`).
    pub original: String,
    /// Here-documents, in the order their delimiters appear. For `ONBUILD RUN <<EOF` they are on
    /// the ONBUILD instruction, as BuildKit attaches them (the `inner` one has none).
    pub heredocs: Vec<Heredoc>,
    /// For `ONBUILD`: the instruction it wraps.
    pub inner: Option<Box<Instruction>>,
    /// Where the keyword starts.
    pub start: Pos,
    /// The last line of the instruction (including continuation lines and heredoc bodies).
    pub end_line: usize,
    /// Comment lines directly above the instruction (without the `#`), as BuildKit's
    /// `PrevComment`, for lints and `--check`.
    pub comments: Vec<String>,
}

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Dockerfile {
    pub directives: Directives,
    pub instructions: Vec<Instruction>,
    pub warnings: Vec<Warning>,
}
