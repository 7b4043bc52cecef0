//! One logical line to one [`Instruction`]: BuildKit's `newNodeFromLine` and its line parsers.
//!
//! The keyword decides how the rest of the line is split (BuildKit's dispatch table):
//! - ADD, COPY, VOLUME: a JSON array, else whitespace-separated words;
//! - RUN, CMD, ENTRYPOINT, SHELL: a JSON array, else the whole rest as one argument;
//! - ENV, LABEL: `name value ""` for the legacy `KEY name value` form (the value is the rest of
//!   the line after the first blanks, as written), else `name value "="` per `name=value` word,
//!   words split by `parse_words` (quotes and escapes kept);
//! - ARG: the `parse_words` words;
//! - FROM, EXPOSE: words separated by `[\t\v\f\r ]`;
//! - MAINTAINER, STOPSIGNAL, USER, WORKDIR: the whole rest as one argument;
//! - HEALTHCHECK: the first word (`CMD`, `NONE`, anything) then the rest as for CMD;
//! - ONBUILD: the rest parsed as an instruction of its own ([`Instruction::inner`]);
//! - anything else: one empty argument (BuildKit's `parseIgnore`); the translator rejects the
//!   keyword.
//!
//! An empty rest gives no arguments (except for unknown keywords).

use crate::ast::{Instruction, Pos};

use super::json::{JsonError, parse_string_array};
use super::split::{is_token_space, parse_words, split_command, split_whitespace_delimited};
use super::{LineError, ParseErrorKind};

/// The arguments of an instruction as its line parser splits them.
#[derive(Default)]
struct Parsed {
    args: Vec<String>,
    json: bool,
    inner: Option<Box<Instruction>>,
}

impl Parsed {
    fn args(args: Vec<String>) -> Parsed {
        Parsed { args, ..Parsed::default() }
    }
}

/// Context for splitting one line: the escape character, whether to apply the instruction-level
/// checks (top-level instructions only), and the way from a byte offset of the logical line to
/// a position in the file.
struct Ctx<'a> {
    escape: char,
    strict: bool,
    locate: &'a dyn Fn(usize) -> Pos,
}

/// Parses `line`, which starts at byte `base` of the logical line. `strict` adds the checks
/// BuildKit's instruction step makes for ENV/LABEL/ARG.
pub(crate) fn new_node(
    line: &str,
    base: usize,
    escape: char,
    strict: bool,
    locate: &dyn Fn(usize) -> Pos,
) -> Result<Instruction, LineError> {
    new_node_in(line, base, &Ctx { escape, strict, locate })
}

fn new_node_in(line: &str, base: usize, ctx: &Ctx<'_>) -> Result<Instruction, LineError> {
    let split = split_command(line);
    let keyword_at = base + split.keyword_at;
    let rest = split.rest.as_str();
    let at = base + split.rest_at;
    let parsed = match split.keyword.as_str() {
        "add" | "copy" | "volume" => maybe_json_to_list(rest, at)?,
        "run" | "cmd" | "entrypoint" | "shell" => maybe_json(rest, at)?,
        "env" => name_val(rest, at, "ENV", keyword_at, ctx)?,
        "label" => name_val(rest, at, "LABEL", keyword_at, ctx)?,
        "arg" => {
            let words: Vec<String> = parse_words(rest, ctx.escape).into_iter().map(|w| w.0).collect();
            if ctx.strict && words.is_empty() {
                return Err(at_least_one("ARG", keyword_at));
            }
            Parsed::args(words)
        }
        "from" | "expose" => Parsed::args(split_whitespace_delimited(rest).into_iter().map(|w| w.0).collect()),
        "maintainer" | "stopsignal" | "user" | "workdir" => {
            Parsed::args(if rest.is_empty() { Vec::new() } else { vec![rest.to_string()] })
        }
        "healthcheck" => health(rest, at)?,
        "onbuild" if rest.is_empty() => Parsed::default(),
        "onbuild" => {
            let inner = new_node_in(rest, at, &Ctx { strict: false, ..*ctx })?;
            Parsed { inner: Some(Box::new(inner)), ..Parsed::default() }
        }
        _ => Parsed::args(vec![String::new()]),
    };
    Ok(Instruction {
        keyword: split.keyword,
        flags: split.flags,
        args: parsed.args,
        json: parsed.json,
        original: line.to_string(),
        heredocs: Vec::new(),
        inner: parsed.inner,
        start: (ctx.locate)(keyword_at),
        end_line: 0,
        comments: Vec::new(),
    })
}

/// The JSON array at the start of `rest`, `None` if it is not valid JSON (shell form).
fn json_of(rest: &str, at: usize) -> Result<Option<Vec<String>>, LineError> {
    let trimmed = rest.trim_start_matches(char::is_whitespace);
    if !trimmed.starts_with('[') {
        return Ok(None);
    }
    match parse_string_array(trimmed) {
        Ok(args) => Ok(Some(args)),
        Err(JsonError::Syntax) => Ok(None),
        Err(JsonError::NotString(i)) => Err(LineError::new(
            ParseErrorKind::JsonNotStringArray,
            Some(at + rest.len() - trimmed.len() + i),
            Some(
                "every element of the JSON array must be a string in double quotes, e.g. [\"sh\", \"-c\", \"echo hi\"]"
                    .into(),
            ),
        )),
    }
}

fn maybe_json(rest: &str, at: usize) -> Result<Parsed, LineError> {
    if rest.is_empty() {
        return Ok(Parsed::default());
    }
    Ok(match json_of(rest, at)? {
        Some(args) => Parsed { args, json: true, inner: None },
        None => Parsed::args(vec![rest.to_string()]),
    })
}

fn maybe_json_to_list(rest: &str, at: usize) -> Result<Parsed, LineError> {
    Ok(match json_of(rest, at)? {
        Some(args) => Parsed { args, json: true, inner: None },
        None => Parsed::args(split_whitespace_delimited(rest).into_iter().map(|w| w.0).collect()),
    })
}

/// Go's `unicode.IsSpace` of a byte taken as a character (BuildKit scans HEALTHCHECK by bytes).
fn is_space_byte(b: u8) -> bool {
    matches!(b, b'\t'..=b'\r' | b' ' | 0x85 | 0xa0)
}

fn health(rest: &str, at: usize) -> Result<Parsed, LineError> {
    let bytes = rest.as_bytes();
    let sep = bytes.iter().position(|&b| is_space_byte(b)).unwrap_or(bytes.len());
    if sep == 0 {
        return Ok(Parsed::default());
    }
    let next = bytes[sep..].iter().position(|&b| !is_space_byte(b)).map_or(bytes.len(), |i| sep + i);
    let kind = String::from_utf8_lossy(&bytes[..sep]).into_owned();
    let command = String::from_utf8_lossy(&bytes[next..]);
    let mut parsed = maybe_json(&command, at + next)?;
    parsed.args.insert(0, kind);
    Ok(parsed)
}

fn at_least_one(key: &'static str, keyword_at: usize) -> LineError {
    let example = if key == "ARG" { "ARG NAME or ARG NAME=default" } else { "NAME=value" };
    LineError::new(
        ParseErrorKind::AtLeastOneArgument(key),
        Some(keyword_at),
        Some(format!("e.g. `{}`", if key == "ARG" { example.to_string() } else { format!("{key} {example}") })),
    )
}

/// ENV and LABEL: triples of name, value and separator.
fn name_val(rest: &str, at: usize, key: &'static str, keyword_at: usize, ctx: &Ctx<'_>) -> Result<Parsed, LineError> {
    let words = parse_words(rest, ctx.escape);
    let Some((first, _)) = words.first() else {
        if ctx.strict {
            return Err(at_least_one(key, keyword_at));
        }
        return Ok(Parsed::default());
    };
    if !first.contains('=') {
        // Legacy `KEY name value`: the value is everything after the first blanks, as written.
        let Some(i) = rest.find(is_token_space) else {
            return Err(LineError::new(
                ParseErrorKind::MustHaveTwoArguments(key),
                Some(at),
                Some(format!("give it a value: `{key} {rest}=value` (or `{key} {rest} value`)")),
            ));
        };
        let value = rest[i..].trim_start_matches(is_token_space);
        return Ok(Parsed::args(vec![rest[..i].to_string(), value.to_string(), String::new()]));
    }
    let mut args = Vec::with_capacity(words.len() * 3);
    for (word, word_at) in &words {
        let Some((name, value)) = word.split_once('=') else {
            return Err(LineError::new(
                ParseErrorKind::MissingEquals(word.clone()),
                Some(at + word_at),
                Some("every word needs `=` in this form; quote or escape values with spaces: NAME=\"a b\"".into()),
            ));
        };
        args.extend([name.to_string(), value.to_string(), "=".to_string()]);
    }
    if ctx.strict
        && let Some((_, word_at)) = words.iter().find(|(w, _)| w.starts_with('='))
    {
        return Err(LineError::new(
            ParseErrorKind::BlankName(key),
            Some(at + word_at),
            Some("put the variable name before `=`".into()),
        ));
    }
    Ok(Parsed::args(args))
}
