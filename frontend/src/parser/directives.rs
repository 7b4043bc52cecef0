//! Parser directives: `# syntax=…`, `# escape=…`, `# check=…` at the top of a Dockerfile.
//!
//! BuildKit's `DirectiveParser` rules, which this follows: every first line of an instruction
//! or comment is offered (leading whitespace trimmed) until the first line that is not a
//! directive. A directive is `#`, optional whitespace, a name (`[a-zA-Z][a-zA-Z0-9]*`, matched
//! case-insensitively against `syntax`, `escape`, `check`), optional blanks, `=`, optional
//! blanks, a non-empty value (trailing blanks trimmed). Any other line — a blank line, an
//! ordinary comment, a comment naming an unknown directive, an instruction — ends the directive
//! section for good. Naming a directive twice is an error; `escape` takes only `` ` `` or `\`.

use crate::ast::Directives;

use super::ParseErrorKind;

/// Go's regexp `\s`: ASCII blanks only.
fn is_re_space(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\x0c' | '\r' | ' ')
}

#[derive(Debug)]
pub(crate) struct DirectiveState {
    done: bool,
    seen: Vec<&'static str>,
    /// The escape character in force: `\` until `# escape=` says otherwise.
    pub escape: char,
    syntax: Option<String>,
    check: Option<String>,
}

impl Default for DirectiveState {
    fn default() -> DirectiveState {
        DirectiveState { done: false, seen: Vec::new(), escape: '\\', syntax: None, check: None }
    }
}

/// A directive error: the kind, the byte offset in the offered line it is about, a hint.
pub(crate) type DirectiveError = (ParseErrorKind, usize, Option<String>);

impl DirectiveState {
    /// Offers a line (leading whitespace trimmed, line ending removed). Returns whether it was a
    /// directive.
    pub(crate) fn parse_line(&mut self, line: &str) -> Result<bool, DirectiveError> {
        if self.done {
            return Ok(false);
        }
        let Some((name, name_at, value, value_at)) = split_directive(line) else {
            self.done = true;
            return Ok(false);
        };
        let key = match name.to_ascii_lowercase().as_str() {
            "syntax" => "syntax",
            "escape" => "escape",
            "check" => "check",
            _ => {
                self.done = true;
                return Ok(false);
            }
        };
        if self.seen.contains(&key) {
            return Err((
                ParseErrorKind::DuplicateDirective(key.to_string()),
                name_at,
                Some(format!("remove one of the `# {key}=` lines")),
            ));
        }
        self.seen.push(key);
        match key {
            "escape" => match value {
                "\\" | "`" => self.escape = value.chars().next().unwrap_or('\\'),
                _ => {
                    return Err((
                        ParseErrorKind::InvalidEscape(value.to_string()),
                        value_at,
                        Some("use `# escape=\\` (the default) or `# escape=`` (for Windows paths)".to_string()),
                    ));
                }
            },
            "syntax" => self.syntax = Some(value.to_string()),
            _ => self.check = Some(value.to_string()),
        }
        Ok(true)
    }

    pub(crate) fn into_directives(self) -> Directives {
        Directives { escape: self.escape, syntax: self.syntax, check: self.check }
    }
}

/// Matches BuildKit's directive pattern `#` then `^([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$` after
/// trimming whitespace: returns the name, its offset, the value and its offset.
fn split_directive(line: &str) -> Option<(&str, usize, &str, usize)> {
    let after_hash = line.strip_prefix('#')?;
    let body = after_hash.trim_start_matches(char::is_whitespace);
    let name_at = line.len() - body.len();
    let name_len = body
        .char_indices()
        .find(|&(i, c)| if i == 0 { !c.is_ascii_alphabetic() } else { !c.is_ascii_alphanumeric() })
        .map_or(body.len(), |(i, _)| i);
    if name_len == 0 {
        return None;
    }
    let rest = body[name_len..].trim_start_matches(is_re_space).strip_prefix('=')?;
    if rest.is_empty() {
        return None;
    }
    let trimmed = rest.trim_start_matches(is_re_space);
    // `\s*` is greedy but `(.+?)` needs one character: a value of only blanks leaves its last
    // blank as the value (so `# escape=  ` is an invalid escape token ' ').
    let value = if trimmed.is_empty() { &rest[rest.len() - 1..] } else { trimmed.trim_end_matches(is_re_space) };
    let value_at = if trimmed.is_empty() { line.len() - 1 } else { line.len() - trimmed.len() };
    Some((&body[..name_len], name_at, value, value_at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_matches_buildkit() {
        assert_eq!(split_directive("# escape=`"), Some(("escape", 2, "`", 9)));
        assert_eq!(split_directive("#escape = ` "), Some(("escape", 1, "`", 10)));
        assert_eq!(split_directive("# syntax=docker/dockerfile:1 "), Some(("syntax", 2, "docker/dockerfile:1", 9)));
        assert_eq!(split_directive("# Check = skip=all;error=true"), Some(("Check", 2, "skip=all;error=true", 10)));
        assert_eq!(split_directive("# escape=  ").map(|d| d.2), Some(" "));
        assert_eq!(split_directive("# escape="), None);
        assert_eq!(split_directive("# 1escape=x"), None);
        assert_eq!(split_directive("# esc ape=x"), None);
        assert_eq!(split_directive("escape=x"), None);
        assert_eq!(split_directive("# just a comment"), None);
    }

    #[test]
    fn directives_end_at_first_other_line() {
        let mut d = DirectiveState::default();
        assert_eq!(d.parse_line("# syntax=x"), Ok(true));
        assert_eq!(d.parse_line("# hello"), Ok(false));
        assert_eq!(d.parse_line("# escape=`"), Ok(false));
        assert_eq!(d.escape, '\\');

        let mut d = DirectiveState::default();
        assert_eq!(d.parse_line("# unknown=1"), Ok(false));
        assert_eq!(d.parse_line("# escape=`"), Ok(false));

        let mut d = DirectiveState::default();
        assert_eq!(d.parse_line(""), Ok(false));
        assert_eq!(d.parse_line("# escape=`"), Ok(false));
    }

    #[test]
    fn duplicates_and_bad_escapes_are_errors() {
        let mut d = DirectiveState::default();
        assert_eq!(d.parse_line("# ESCAPE=`"), Ok(true));
        assert_eq!(d.escape, '`');
        let e = d.parse_line("# escape=\\").unwrap_err();
        assert_eq!(e.0, ParseErrorKind::DuplicateDirective("escape".to_string()));
        assert_eq!(e.1, 2);

        let e = DirectiveState::default().parse_line("# escape=x").unwrap_err();
        assert_eq!((e.0, e.1), (ParseErrorKind::InvalidEscape("x".to_string()), 9));
        assert_eq!(
            ParseErrorKind::InvalidEscape("x".to_string()).to_string(),
            "invalid escape token 'x' does not match ` or \\"
        );
    }

    #[test]
    fn records_syntax_and_check() {
        let mut d = DirectiveState::default();
        assert_eq!(d.parse_line("# syntax = docker/dockerfile:1.7"), Ok(true));
        assert_eq!(d.parse_line("# check=skip=JSONArgsRecommended"), Ok(true));
        let got = d.into_directives();
        assert_eq!(got.syntax.as_deref(), Some("docker/dockerfile:1.7"));
        assert_eq!(got.check.as_deref(), Some("skip=JSONArgsRecommended"));
        assert_eq!(got.escape, '\\');
    }
}
