//! Property tests: whatever the input, the parser returns (no panic, no hang), and what it
//! returns is coherent (positions inside the file, one dump line per instruction, an error
//! that renders).

use proptest::prelude::*;

use super::*;

/// Pieces that exercise every special case of the parser when strung together.
const FRAGMENTS: &[&str] = &[
    "\\", "`", "<<", "<<-", "<< ", "EOF", "'", "\"", "[", "]", "{", "}", ",", "$", "${", "${a:-", "}", "=", "--",
    "--x=", " ", "  ", "\t", "\r", "\u{b}", "a", "1", "3<<", "é", "\u{a0}", "\u{85}", "\u{feff}", "null", ":", "-",
    "#", "/", "\"a\"", "[\"a\"]", "\\u00", "😀", "\0",
];

const HEADS: &[&str] = &[
    "",
    " ",
    "\t",
    "#",
    "# ",
    "# escape=`",
    "# escape=\\",
    "# syntax=x",
    "# check=a",
    "# escape=",
    "FROM ",
    "from ",
    "RUN ",
    "run ",
    "CMD ",
    "ENTRYPOINT ",
    "SHELL ",
    "COPY ",
    "ADD ",
    "VOLUME ",
    "ENV ",
    "LABEL ",
    "ARG ",
    "HEALTHCHECK ",
    "HEALTHCHECK CMD ",
    "ONBUILD ",
    "ONBUILD RUN ",
    "ONBUILD ONBUILD ",
    "MAINTAINER ",
    "USER ",
    "EXPOSE ",
    "WORKDIR ",
    "STOPSIGNAL ",
    "UNKNOWN ",
    "EOF",
    "\tEOF",
    "RUN <<EOF ",
    "COPY <<-EOF /x ",
    "RUN <<'EOF' <<X ",
    "ONBUILD ADD 3<<EOF ",
];

/// Lines that end heredocs.
const DELIMITERS: &[&str] = &["EOF", "\tEOF", "X", "EOF\r"];

fn line() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => (prop::sample::select(HEADS), prop::collection::vec(prop::sample::select(FRAGMENTS), 0..10))
            .prop_map(|(head, rest)| format!("{head}{}", rest.concat())),
        1 => prop::sample::select(DELIMITERS).prop_map(str::to_string),
    ]
}

fn dockerfile() -> impl Strategy<Value = String> {
    (prop::collection::vec(line(), 0..16), any::<bool>(), any::<bool>()).prop_map(|(lines, crlf, final_newline)| {
        let mut text = lines.join(if crlf { "\r\n" } else { "\n" });
        if final_newline {
            text.push('\n');
        }
        text
    })
}

fn check(src: &str) {
    let total_lines = src.split('\n').count();
    match parse(src, "Dockerfile") {
        Ok(d) => {
            assert!(!d.instructions.is_empty());
            assert_eq!(d.dump().lines().count(), d.instructions.len());
            for i in &d.instructions {
                assert!(i.start.line >= 1 && i.start.column >= 1, "{:?}", i.start);
                assert!(i.start.line <= i.end_line && i.end_line <= total_lines, "{} {}", i.start, i.end_line);
                if let Some(inner) = &i.inner {
                    assert!(inner.start.line >= i.start.line && inner.end_line == i.end_line);
                }
            }
            for w in &d.warnings {
                assert!(w.pos.line >= 1 && w.pos.line <= total_lines);
            }
        }
        Err(e) => {
            assert!(e.pos.line >= 1 && e.pos.column >= 1, "{:?}", e.pos);
            assert!(e.pos.line <= total_lines.max(1) && e.end_line >= e.pos.line, "{e:?}");
            assert!(e.to_string().starts_with("Dockerfile:"));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(src in any::<String>()) {
        check(&src);
    }

    #[test]
    fn instruction_like_text_never_panics(src in dockerfile()) {
        check(&src);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        if let Err(e) = parse_bytes(&bytes, "Dockerfile") {
            prop_assert!(e.pos.line >= 1 && e.pos.column >= 1);
            let _ = e.to_string();
        }
    }
}
