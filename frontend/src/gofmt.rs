//! Go formatting, reproduced where BuildKit's output is Go `fmt` output: the parser's `result`
//! dump and error texts quote with `strconv.Quote`, and history strings are `fmt.Sprintf`.
//!
//! BuildKit writes `created_by` with `fmt.Sprintf`: `CMD %q` of a `[]string` gives
//! `CMD ["a" "b"]`, `VOLUME %v` gives `VOLUME [/a /b]`, and `HEALTHCHECK %q` of a
//! `*HealthConfig` gives `&{["CMD-SHELL" "x"] "5s" "0s" "0s" "0s" '\x03'}` (durations through
//! `time.Duration.String`, the retry count as a quoted rune). Image histories are compared
//! byte for byte by users diffing builders, so these follow Go's rules exactly:
//! `strconv.Quote`, `strconv.QuoteRune` and `time.Duration.String` / `time.ParseDuration`.

/// Go's `strconv.Quote`.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        escape_into(&mut out, c, '"');
    }
    out.push('"');
    out
}

/// Go's `strconv.QuoteRune` of an integer (what `%q` does to an `int`). Values that are not
/// Unicode scalar values print as U+FFFD, as in Go.
pub fn quote_rune(v: i64) -> String {
    let c = u32::try_from(v).ok().and_then(char::from_u32).unwrap_or('\u{FFFD}');
    let mut out = String::from("'");
    escape_into(&mut out, c, '\'');
    out.push('\'');
    out
}

fn escape_into(out: &mut String, c: char, quote: char) {
    match c {
        '\x07' => out.push_str("\\a"),
        '\x08' => out.push_str("\\b"),
        '\x0c' => out.push_str("\\f"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\x0b' => out.push_str("\\v"),
        '\\' => out.push_str("\\\\"),
        c if c == quote => {
            out.push('\\');
            out.push(c);
        }
        c if is_go_printable(c) => out.push(c),
        c if (c as u32) < 0x20 || c == '\u{7f}' => out.push_str(&format!("\\x{:02x}", c as u32)),
        c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
        c => out.push_str(&format!("\\U{:08x}", c as u32)),
    }
}

/// Go's `strconv.IsPrint`: Unicode categories L, M, N, P, S and the ASCII space. Without
/// Unicode category tables this uses Rust's control/whitespace tests plus the format (Cf),
/// private-use and noncharacter ranges, so an unassigned code point prints as itself where Go
/// would escape it.
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

/// `%q` of a `[]string`: `["a" "b"]`.
pub fn quote_list(items: &[String]) -> String {
    let inner: Vec<String> = items.iter().map(|s| quote(s)).collect();
    format!("[{}]", inner.join(" "))
}

/// `%v` of a `[]string`: `[a b]`.
pub fn plain_list(items: &[String]) -> String {
    format!("[{}]", items.join(" "))
}

/// Parses a Go duration (`1h30m`, `5s`, `100ms`, `1.5s`, `-2us`) into nanoseconds.
pub fn parse_duration(s: &str) -> Result<i64, String> {
    let bad = || format!("time: invalid duration {}", quote(s));
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        if num_len == 0 {
            return Err(bad());
        }
        let value: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => return Err(format!("time: missing unit in duration {}", quote(s))),
            u => return Err(format!("time: unknown unit {} in duration {}", quote(u), quote(s))),
        };
        rest = &rest[unit_len..];
        total += value * unit;
    }
    if total > i64::MAX as f64 {
        return Err(bad());
    }
    let ns = total.round() as i64;
    Ok(if neg { -ns } else { ns })
}

/// Go's `time.Duration.String`: `1h0m0s`, `1m30s`, `5s`, `1.5s`, `100ms`, `2µs`, `0s`.
pub fn format_duration(ns: i64) -> String {
    if ns == 0 {
        return "0s".to_string();
    }
    let neg = ns < 0;
    let u = ns.unsigned_abs();
    let mut out = String::new();
    if u < 1_000_000_000 {
        // Sub-second: one unit with a fraction.
        let (unit, div) = if u < 1_000 {
            ("ns", 1)
        } else if u < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        out.push_str(&fraction(u, div));
        out.push_str(unit);
    } else {
        let h = u / 3_600_000_000_000;
        let m = (u / 60_000_000_000) % 60;
        let s_ns = u % 60_000_000_000;
        if h > 0 {
            out.push_str(&format!("{h}h"));
        }
        if h > 0 || m > 0 {
            out.push_str(&format!("{m}m"));
        }
        out.push_str(&fraction(s_ns, 1_000_000_000));
        out.push('s');
    }
    if neg { format!("-{out}") } else { out }
}

/// `v / div` with the fraction's trailing zeros dropped.
fn fraction(v: u64, div: u64) -> String {
    let whole = v / div;
    let frac = v % div;
    if frac == 0 {
        return whole.to_string();
    }
    let width = div.ilog10() as usize;
    let digits = format!("{frac:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_matches_go() {
        assert_eq!(quote("a\"b\\c\n\t"), r#""a\"b\\c\n\t""#);
        assert_eq!(quote("héllo 한국어"), "\"héllo 한국어\"");
        assert_eq!(quote("\x01\x7f"), r#""\x01\x7f""#);
        assert_eq!(quote("a\\\"b"), r#""a\\\"b""#);
        assert_eq!(quote("\" \\ / \u{8} \u{c} \n \r \t \0"), r#""\" \\ / \b \f \n \r \t \x00""#);
        assert_eq!(quote("a\"b\\c\n\t\u{1}é\u{a0}"), r#""a\"b\\c\n\t\x01é\u00a0""#);
        assert_eq!(quote("\u{200b}\u{e000}\u{1d173}"), r#""\u200b\ue000\U0001d173""#);
        assert_eq!(quote_rune(3), r"'\x03'");
        assert_eq!(quote_rune(0), r"'\x00'");
        assert_eq!(quote_rune(65), "'A'");
        assert_eq!(quote_rune(39), r"'\''");
        assert_eq!(quote_list(&["cat".into(), "/srv/app/built.txt".into()]), r#"["cat" "/srv/app/built.txt"]"#);
        assert_eq!(plain_list(&["/bin/sh".into(), "-ec".into()]), "[/bin/sh -ec]");
    }

    #[test]
    fn durations_match_go() {
        for (text, ns, shown) in [
            ("5s", 5_000_000_000, "5s"),
            ("1m30s", 90_000_000_000, "1m30s"),
            ("1h", 3_600_000_000_000, "1h0m0s"),
            ("1.5s", 1_500_000_000, "1.5s"),
            ("100ms", 100_000_000, "100ms"),
            ("2us", 2_000, "2µs"),
            ("0", 0, "0s"),
            ("30s", 30_000_000_000, "30s"),
        ] {
            assert_eq!(parse_duration(text), Ok(ns), "{text}");
            assert_eq!(format_duration(ns), shown, "{text}");
        }
        assert!(parse_duration("5").unwrap_err().contains("missing unit"));
        assert!(parse_duration("5x").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn quotes_like_go_in_parser_output() {
        assert_eq!(quote("a\\\"b"), r#""a\\\"b""#);
        assert_eq!(quote("\" \\ / \u{8} \u{c} \n \r \t \0"), r#""\" \\ / \b \f \n \r \t \x00""#);
        assert_eq!(quote("\u{7}\u{b}\u{1b}\u{7f}"), r#""\a\v\x1b\x7f""#);
        assert_eq!(quote("☃ ♥ é"), "\"☃ ♥ é\"");
        assert_eq!(quote("\u{85}\u{a0}\u{ad}"), r#""\u0085\u00a0\u00ad""#);
        assert_eq!(quote("\u{2028}\u{200b}\u{feff}\u{3000}"), r#""\u2028\u200b\ufeff\u3000""#);
        assert_eq!(quote("\u{e000}\u{10fffd}😀"), "\"\\ue000\\U0010fffd😀\"");
    }
}
