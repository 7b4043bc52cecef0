//! BuildKit's `Node.Dump` text form of the tree, as in its parser test `result` files.
//!
//! One line per instruction: `(keyword`, then ` ["--flag" …]` if there are flags, then each
//! argument as ` "…"` quoted like Go's `strconv.Quote` (ONBUILD: ` (inner)` instead), then `)`.
//!
//! `go_quote` reproduces `strconv.Quote`: `\"` and `\\`, the C escapes `\a \b \f \n \r \t \v`,
//! `\xNN` for other ASCII controls and DEL, `\uNNNN`/`\UNNNNNNNN` for other characters Go does
//! not consider printable. Go's printable set is Unicode categories L, M, N, P, S plus the ASCII
//! space; without Unicode category tables this uses Rust's control/whitespace tests plus the
//! format (Cf) and private-use ranges, so an unassigned code point prints as itself where Go
//! would escape it.

use crate::ast::Instruction;

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

/// Go's `strconv.Quote`.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if is_go_printable(c) => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{7f}' => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// Go's `unicode.IsPrint`, approximated (see the module docs).
fn is_go_printable(c: char) -> bool {
    let u = c as u32;
    if u < 0x100 {
        return matches!(u, 0x20..=0x7e | 0xa1..=0xac | 0xae..=0xff);
    }
    !(c.is_control() || c.is_whitespace() || is_format(u) || is_private_use(u) || is_noncharacter(u))
}

/// Unicode category Cf (format characters) above U+00FF.
fn is_format(u: u32) -> bool {
    matches!(
        u,
        0x600..=0x605
            | 0x61c
            | 0x6dd
            | 0x70f
            | 0x890..=0x891
            | 0x8e2
            | 0x180e
            | 0x200b..=0x200f
            | 0x202a..=0x202e
            | 0x2060..=0x2064
            | 0x2066..=0x206f
            | 0xfeff
            | 0xfff9..=0xfffb
            | 0x110bd
            | 0x110cd
            | 0x13430..=0x1343f
            | 0x1bca0..=0x1bca3
            | 0x1d173..=0x1d17a
            | 0xe0001
            | 0xe0020..=0xe007f
    )
}

fn is_private_use(u: u32) -> bool {
    matches!(u, 0xe000..=0xf8ff | 0xf0000..=0xffffd | 0x100000..=0x10fffd)
}

fn is_noncharacter(u: u32) -> bool {
    (0xfdd0..=0xfdef).contains(&u) || (u & 0xfffe) == 0xfffe
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_like_go() {
        assert_eq!(go_quote("a\\\"b"), r#""a\\\"b""#);
        assert_eq!(go_quote("\" \\ / \u{8} \u{c} \n \r \t \0"), r#""\" \\ / \b \f \n \r \t \x00""#);
        assert_eq!(go_quote("\u{7}\u{b}\u{1b}\u{7f}"), r#""\a\v\x1b\x7f""#);
        assert_eq!(go_quote("☃ ♥ é"), "\"☃ ♥ é\"");
        assert_eq!(go_quote("\u{85}\u{a0}\u{ad}"), r#""\u0085\u00a0\u00ad""#);
        assert_eq!(go_quote("\u{2028}\u{200b}\u{feff}\u{3000}"), r#""\u2028\u200b\ufeff\u3000""#);
        assert_eq!(go_quote("\u{e000}\u{10fffd}😀"), "\"\\ue000\\U0010fffd😀\"");
    }
}
