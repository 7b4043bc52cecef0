//! The JSON ("exec") form of RUN/CMD/ENTRYPOINT/SHELL/COPY/ADD/VOLUME/HEALTHCHECK CMD.
//!
//! BuildKit decodes the arguments with Go's `json.Decoder` into `[]interface{}`. What matters:
//! - only the first JSON value is read; anything after the closing `]` is ignored
//!   (`CMD ["a"] junk` is `CMD ["a"]`, as BuildKit 0.13 shows);
//! - any syntax error (RFC 8259 grammar, as Go's scanner checks it, nesting deeper than 10,000)
//!   makes the instruction fall back to its shell form, which is not an error;
//! - a syntactically valid array with an element that is not a string (a number, `null`, a
//!   nested array) is an error: "arrays must be comprised of strings only";
//! - strings are unescaped as Go does, a lone or mismatched UTF-16 surrogate giving U+FFFD.
//!
//! The scanner is iterative (an explicit stack), so hostile nesting cannot overflow the stack.

/// Why the text is not a JSON array of strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JsonError {
    /// Not valid JSON: the caller falls back to the shell form.
    Syntax,
    /// Valid JSON, but the element at this byte offset is not a string.
    NotString(usize),
}

/// Go's `maxNestingDepth`.
const MAX_DEPTH: usize = 10_000;

/// Decodes the JSON array at the start of `s` (which starts with `[`).
pub(crate) fn parse_string_array(s: &str) -> Result<Vec<String>, JsonError> {
    let mut p = Scanner { s, pos: 0 };
    p.skip_ws();
    if p.next() != Some(b'[') {
        return Err(JsonError::Syntax);
    }
    let mut out = Vec::new();
    p.skip_ws();
    if p.peek() == Some(b']') {
        return Ok(out);
    }
    let mut first_non_string = None;
    loop {
        p.skip_ws();
        let at = p.pos;
        if p.peek() == Some(b'"') {
            out.push(p.string()?);
        } else {
            p.skip_value()?;
            first_non_string.get_or_insert(at);
        }
        p.skip_ws();
        match p.next() {
            Some(b',') => continue,
            Some(b']') => break,
            _ => return Err(JsonError::Syntax),
        }
    }
    match first_non_string {
        Some(at) => Err(JsonError::NotString(at)),
        None => Ok(out),
    }
}

struct Scanner<'a> {
    s: &'a str,
    pos: usize,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.pos += 1;
        Some(b)
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    /// Skips one value of any kind (at depth 1, inside the outer array).
    fn skip_value(&mut self) -> Result<(), JsonError> {
        let mut stack: Vec<u8> = Vec::new();
        loop {
            self.skip_ws();
            match self.peek() {
                Some(b'"') => {
                    self.string()?;
                }
                Some(open @ (b'[' | b'{')) => {
                    // Go counts the new container (even an empty one) plus the outer array.
                    if stack.len() + 2 > MAX_DEPTH {
                        return Err(JsonError::Syntax);
                    }
                    self.pos += 1;
                    self.skip_ws();
                    let close = if open == b'[' { b']' } else { b'}' };
                    if self.peek() == Some(close) {
                        self.pos += 1;
                    } else {
                        stack.push(open);
                        if open == b'{' {
                            self.key()?;
                        }
                        continue;
                    }
                }
                Some(b'-' | b'0'..=b'9') => self.number()?,
                Some(b't') => self.literal("true")?,
                Some(b'f') => self.literal("false")?,
                Some(b'n') => self.literal("null")?,
                _ => return Err(JsonError::Syntax),
            }
            // A value ended: close containers until one expects another value.
            loop {
                let Some(&top) = stack.last() else { return Ok(()) };
                self.skip_ws();
                match (top, self.next()) {
                    (b'[', Some(b',')) => break,
                    (b'{', Some(b',')) => {
                        self.key()?;
                        break;
                    }
                    (b'[', Some(b']')) | (b'{', Some(b'}')) => {
                        stack.pop();
                    }
                    _ => return Err(JsonError::Syntax),
                }
            }
        }
    }

    /// An object key and its colon.
    fn key(&mut self) -> Result<(), JsonError> {
        self.skip_ws();
        if self.peek() != Some(b'"') {
            return Err(JsonError::Syntax);
        }
        self.string()?;
        self.skip_ws();
        if self.next() != Some(b':') {
            return Err(JsonError::Syntax);
        }
        Ok(())
    }

    fn literal(&mut self, word: &str) -> Result<(), JsonError> {
        if self.s[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(JsonError::Syntax)
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self) -> Result<(), JsonError> {
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(JsonError::Syntax),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return Err(JsonError::Syntax);
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(JsonError::Syntax);
            }
        }
        Ok(())
    }

    /// Four hex digits at `at`, if there are.
    fn hex4(&self, at: usize) -> Option<u32> {
        let h = self.s.get(at..at + 4)?;
        if h.bytes().all(|b| b.is_ascii_hexdigit()) { u32::from_str_radix(h, 16).ok() } else { None }
    }

    /// A string starting at the current `"`, unescaped.
    fn string(&mut self) -> Result<String, JsonError> {
        self.pos += 1;
        let mut out = String::new();
        loop {
            let run_start = self.pos;
            while let Some(b) = self.peek() {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.pos += 1;
            }
            out.push_str(&self.s[run_start..self.pos]);
            match self.next() {
                Some(b'"') => return Ok(out),
                Some(b'\\') => {}
                _ => return Err(JsonError::Syntax),
            }
            let c = match self.next() {
                Some(b'"') => '"',
                Some(b'\\') => '\\',
                Some(b'/') => '/',
                Some(b'b') => '\u{8}',
                Some(b'f') => '\u{c}',
                Some(b'n') => '\n',
                Some(b'r') => '\r',
                Some(b't') => '\t',
                Some(b'u') => {
                    let unit = self.hex4(self.pos).ok_or(JsonError::Syntax)?;
                    self.pos += 4;
                    self.utf16(unit)
                }
                _ => return Err(JsonError::Syntax),
            };
            out.push(c);
        }
    }

    /// The character of a `\u` escape; a high surrogate takes a following `\u` low surrogate.
    fn utf16(&mut self, unit: u32) -> char {
        if !(0xd800..0xe000).contains(&unit) {
            return char::from_u32(unit).unwrap_or('\u{fffd}');
        }
        if (0xd800..0xdc00).contains(&unit)
            && self.s[self.pos..].starts_with("\\u")
            && let Some(low @ 0xdc00..=0xdfff) = self.hex4(self.pos + 2)
        {
            self.pos += 6;
            return char::from_u32(0x10000 + ((unit - 0xd800) << 10) + (low - 0xdc00)).unwrap_or('\u{fffd}');
        }
        '\u{fffd}'
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> Vec<String> {
        parse_string_array(s).unwrap()
    }

    #[test]
    fn decodes_arrays_of_strings() {
        assert!(ok("[]").is_empty());
        assert!(ok("[ \t]").is_empty());
        assert_eq!(ok("[\"\"]"), [""]);
        assert_eq!(ok("[ \"a\" ,\t\"b\" ]"), ["a", "b"]);
        assert_eq!(ok(r#"["\" \\ \/ \b \f \n \r \t \u0000 \u00e9"]"#), ["\" \\ / \u{8} \u{c} \n \r \t \0 é"]);
        assert_eq!(
            ok(r#"["\ud83d\ude00", "\ud83d", "\ude00x", "\ud83d\u0041"]"#),
            ["😀", "\u{fffd}", "\u{fffd}x", "\u{fffd}A"]
        );
        assert_eq!(ok("[\"a\"] trailing junk"), ["a"]);
        assert_eq!(ok("[\"a\"],"), ["a"]);
    }

    #[test]
    fn syntax_errors_fall_back() {
        for bad in [
            "[",
            "[\"a\"",
            "[\"a\",]",
            "['a']",
            "[\"a\" \"b\"]",
            "[\"unterminated]",
            "[\"tab\there\"]",
            "[\"\\x\"]",
            "[\"\\u12\"]",
            "[01]",
            "[1.]",
            "[1e]",
            "[tru]",
            "[{\"a\" 1}]",
            "[{1:2}]",
            "[[1,]]",
            "[[1}]",
        ] {
            assert_eq!(parse_string_array(bad), Err(JsonError::Syntax), "{bad}");
        }
    }

    #[test]
    fn valid_non_strings_are_reported_with_their_offset() {
        assert_eq!(parse_string_array("[ \"echo\", [ \"nested json\" ] ]"), Err(JsonError::NotString(10)));
        assert_eq!(parse_string_array("[1]"), Err(JsonError::NotString(1)));
        assert_eq!(parse_string_array("[\"a\", null, true]"), Err(JsonError::NotString(6)));
        assert_eq!(parse_string_array("[{\"k\": [1, -2.5e+3, false]}, {}]"), Err(JsonError::NotString(1)));
        // A syntax error anywhere wins over a non-string.
        assert_eq!(parse_string_array("[1, \"a\""), Err(JsonError::Syntax));
    }

    #[test]
    fn deep_nesting_is_a_syntax_error_not_a_crash() {
        let deep = format!("[{}{}]", "[".repeat(20_000), "]".repeat(20_000));
        assert_eq!(parse_string_array(&deep), Err(JsonError::Syntax));
        // 10,000 levels in all are fine, 10,001 are not (Go's limit).
        let fine = format!("[{}{}]", "[".repeat(9_999), "]".repeat(9_999));
        assert_eq!(parse_string_array(&fine), Err(JsonError::NotString(1)));
        let over = format!("[{}{}]", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(parse_string_array(&over), Err(JsonError::Syntax));
    }
}
