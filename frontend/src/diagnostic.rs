//! Errors a user can act on: where (file:line:column), what, the offending line with a caret
//! under the column, and a hint when there is one.
//!
//! ```text
//! Dockerfile:4:1: unknown instruction: COPPY
//!     4 | COPPY a.txt /a
//!       | ^
//!   hint: did you mean COPY?
//! ```

use std::fmt;

use crate::ast::Pos;

/// A located error in a Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: String,
    pub pos: Pos,
    pub message: String,
    /// The source line `pos.line` refers to, if known.
    pub line_text: Option<String>,
    pub hint: Option<String>,
}

impl Diagnostic {
    /// A diagnostic at `pos` of `source` (the whole file), picking out the line.
    pub fn new(file: &str, source: &str, pos: Pos, message: impl Into<String>) -> Diagnostic {
        let line_text = pos.line.checked_sub(1).and_then(|i| source.lines().nth(i)).map(str::to_string);
        Diagnostic { file: file.to_string(), pos, message: message.into(), line_text, hint: None }
    }

    pub fn with_hint(mut self, hint: Option<String>) -> Diagnostic {
        self.hint = hint;
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: {}", self.file, self.pos.line, self.pos.column.max(1), self.message)?;
        if let Some(line) = &self.line_text {
            let number = self.pos.line.to_string();
            let pad = " ".repeat(number.len());
            // Tabs are kept so the caret lines up under them in a terminal.
            let caret_pad: String = line
                .chars()
                .take(self.pos.column.saturating_sub(1))
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            write!(f, "\n {number} | {line}\n {pad} | {caret_pad}^")?;
        }
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostic {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_position_line_caret_and_hint() {
        let src = "FROM x\n\tCOPPY a /a\n";
        let d = Diagnostic::new("Dockerfile", src, Pos { line: 2, column: 2 }, "unknown instruction: COPPY")
            .with_hint(Some("did you mean COPY?".into()));
        assert_eq!(
            d.to_string(),
            "Dockerfile:2:2: unknown instruction: COPPY\n 2 | \tCOPPY a /a\n   | \t^\n  hint: did you mean COPY?"
        );
        let d = Diagnostic::new("Dockerfile", src, Pos { line: 9, column: 1 }, "x");
        assert_eq!(d.to_string(), "Dockerfile:9:1: x");
    }
}
