//! BuildKit's `Node.Dump` text form of the tree, as in its parser test `result` files.
//!
//! One line per instruction: `(keyword`, then ` ["--flag" …]` if there are flags, then each
//! argument as ` "…"` quoted like Go's `strconv.Quote` (ONBUILD: ` (inner)` instead), then `)`.
//!
//! Quoting is Go's `strconv.Quote` ([`crate::gofmt::quote`]).

use crate::ast::Instruction;
use crate::gofmt::quote as go_quote;

pub(crate) fn dump(instructions: &[Instruction]) -> String {
    let mut out = String::new();
    for instruction in instructions {
        out.push('(');
        out.push_str(&dump_instruction(instruction));
        out.push_str(")\n");
    }
    out
}

fn dump_instruction(instruction: &Instruction) -> String {
    let mut s = instruction.keyword.to_lowercase();
    if !instruction.flags.is_empty() {
        let flags: Vec<String> = instruction.flags.iter().map(|f| go_quote(f)).collect();
        s.push_str(&format!(" [{}]", flags.join(" ")));
    }
    if let Some(inner) = &instruction.inner {
        s.push_str(&format!(" ({})", dump_instruction(inner)));
    }
    for arg in &instruction.args {
        s.push(' ');
        s.push_str(&go_quote(arg));
    }
    // Go trims the node's text with strings.TrimSpace.
    s.trim_matches(char::is_whitespace).to_string()
}
