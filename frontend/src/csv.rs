//! One CSV record split as Go's `encoding/csv` splits it, which is how BuildKit and buildx read
//! `RUN --mount=…` values and the `--secret`, `--ssh` and `-o` flags: fields separated by `,`;
//! a field that starts with `"` runs to the closing quote, may hold commas, and writes a quote
//! as `""`. Shared by the frontend and the CLI so the spellings agree everywhere.

/// The fields of `s`. An empty string is one empty field, as in Go.
pub fn fields(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                    // Go says "extraneous or missing \" in quoted-field" for both mistakes;
                    // this one is worth naming.
                    None => return Err("unterminated quote: extraneous or missing \" in quoted-field".to_string()),
                }
            }
            match chars.next() {
                None => {
                    out.push(field);
                    return Ok(out);
                }
                Some(',') => out.push(field),
                Some(_) => return Err("extraneous or missing \" in quoted-field".to_string()),
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        out.push(field);
                        return Ok(out);
                    }
                    Some(',') => break,
                    Some(c) => field.push(c),
                }
            }
            out.push(field);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fields;

    #[test]
    fn quoting_as_go_encoding_csv() {
        assert_eq!(fields(r#"a=1,"b=2,3","c=""q""""#).unwrap(), ["a=1", "b=2,3", r#"c="q""#]);
        assert_eq!(fields(r#"type=bind,"target=/a,b",ro"#).unwrap(), ["type=bind", "target=/a,b", "ro"]);
        assert_eq!(fields("").unwrap(), [""]);
        assert_eq!(fields("a,,b").unwrap(), ["a", "", "b"]);
        assert!(fields(r#""unterminated"#).is_err());
        assert!(fields(r#""a"b,c"#).is_err());
    }
}
