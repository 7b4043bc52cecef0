//! Tests of the whole parser: directives, continuations, heredocs, comments, warnings, errors
//! and their positions. Expectations marked "BuildKit" are carried over from BuildKit's
//! `parser_test.go`, `parser_heredoc_test.go` and `directives_test.go`.

use super::*;

fn ok(src: &str) -> Dockerfile {
    parse(src, "Dockerfile").unwrap_or_else(|e| panic!("unexpected error:\n{e}"))
}

fn err(src: &str) -> ParseError {
    match parse(src, "Dockerfile") {
        Ok(d) => panic!("expected an error, got:\n{}", d.dump()),
        Err(e) => e,
    }
}

fn at(e: &ParseError) -> (usize, usize) {
    (e.pos.line, e.pos.column)
}

fn hd(name: &str, raw: &str, expand: bool, chomp: bool, fd: Option<u32>) -> Heredoc {
    let content = if chomp { chomp_heredoc_content(raw) } else { raw.to_string() };
    Heredoc { name: name.into(), content, raw_content: raw.into(), expand, chomp, file_descriptor: fd }
}

// ---- heredocs ------------------------------------------------------------------------------

/// BuildKit's TestParseExtractsHeredoc, with its expected heredocs per instruction.
#[test]
fn extracts_heredocs_like_buildkit() {
    let src = "
FROM alpine:3.6

ENV NAME=me

RUN ls

USER <<INVALID
INVALID

RUN <<EMPTY
EMPTY

RUN 3<<EMPTY2
EMPTY2

RUN \"<<NOHEREDOC\"

RUN <<INDENT
\tfoo
\tbar
INDENT

RUN <<-UNINDENT
\tbaz
\tquux
UNINDENT

RUN <<-UNINDENT2
\tbaz
\tquux
\tUNINDENT2

RUN <<-EXPAND
\texpand $NAME
EXPAND

RUN <<-'NOEXPAND'
\tdon't expand $NAME
NOEXPAND

RUN <<COPY
echo hello world
echo foo bar
COPY

RUN <<COMMENT
# internal comment
echo hello world
echo foo bar # trailing comment
COMMENT

RUN --mount=type=cache,target=/foo <<MOUNT
echo hello
MOUNT

COPY <<FILE1 <<FILE2 /dest
content 1
FILE1
content 2
FILE2

COPY <<EOF /quotes
\"foo\"
'bar'
EOF

COPY <<X <<Y /dest
Y
X
X
Y

RUN <<COMPLEX python3
print('hello world')
COMPLEX

COPY <<file.txt /dest
hello world
file.txt

RUN <<eo'f'
echo foo
eof

RUN <<eo\\'f
echo foo
eo'f

RUN <<'e'o\\'f
echo foo
eo'f

RUN <<'one two'
echo bar
one two

RUN <<$EOF
$EOF

RUN <<  EOF
EOF

RUN <<  EOF  > foo
EOF
\t";
    let d = ok(src);
    let expected: Vec<Vec<Heredoc>> = vec![
        vec![],                                                  // ENV
        vec![],                                                  // RUN ls
        vec![],                                                  // USER <<INVALID
        vec![],                                                  // INVALID
        vec![hd("EMPTY", "", true, false, None)],                // RUN <<EMPTY
        vec![hd("EMPTY2", "", true, false, Some(3))],            // RUN 3<<EMPTY2
        vec![],                                                  // RUN "<<NOHEREDOC"
        vec![hd("INDENT", "\tfoo\n\tbar\n", true, false, None)], // RUN <<INDENT
        vec![hd("UNINDENT", "\tbaz\n\tquux\n", true, true, None)],
        vec![hd("UNINDENT2", "\tbaz\n\tquux\n", true, true, None)],
        vec![hd("EXPAND", "\texpand $NAME\n", true, true, None)],
        vec![hd("NOEXPAND", "\tdon't expand $NAME\n", false, true, None)],
        vec![hd("COPY", "echo hello world\necho foo bar\n", true, false, None)],
        vec![hd(
            "COMMENT",
            "# internal comment\necho hello world\necho foo bar # trailing comment\n",
            true,
            false,
            None,
        )],
        vec![hd("MOUNT", "echo hello\n", true, false, None)],
        vec![hd("FILE1", "content 1\n", true, false, None), hd("FILE2", "content 2\n", true, false, None)],
        vec![hd("EOF", "\"foo\"\n'bar'\n", true, false, None)],
        vec![hd("X", "Y\n", true, false, None), hd("Y", "X\n", true, false, None)],
        vec![hd("COMPLEX", "print('hello world')\n", true, false, None)],
        vec![hd("file.txt", "hello world\n", true, false, None)],
        vec![hd("eof", "echo foo\n", false, false, None)],
        vec![hd("eo'f", "echo foo\n", true, false, None)],
        vec![hd("eo'f", "echo foo\n", false, false, None)],
        vec![hd("one two", "echo bar\n", false, false, None)],
        vec![hd("$EOF", "", true, false, None)],
        vec![hd("EOF", "", true, false, None)],
        vec![hd("EOF", "", true, false, None)],
    ];
    assert_eq!(d.instructions.len(), expected.len() + 1);
    for (i, want) in expected.iter().enumerate() {
        let got = &d.instructions[i + 1];
        assert_eq!(&got.heredocs, want, "instruction {} ({})", i + 1, got.original);
    }
    // The chomped content is what RUN/COPY use.
    assert_eq!(d.instructions[9].heredocs[0].content, "baz\nquux\n");
}

/// BuildKit's TestParseJSONHeredoc: JSON form never has heredocs.
#[test]
fn json_form_has_no_heredocs() {
    let d = ok("FROM alpine:3.6\nRUN [\"whoami\"]\nRUN [\"<<EOF\"]\nRUN [\"<<'EOF'\"]\nCOPY [\"<<EOF\", \"/x\"]\n");
    assert!(d.instructions.iter().all(|i| i.heredocs.is_empty()));
    assert_eq!(d.instructions.len(), 5);
}

#[test]
fn heredoc_instruction_keeps_the_marker_in_args_and_original() {
    let d = ok(
        "FROM a\nRUN <<EOF\nset -e\nmkdir -p /hd\nEOF\nRUN python3 <<X\nprint(1)\nX\nCOPY --chmod=644 <<a.txt <<b.txt /dst/\nA\na.txt\nB\nb.txt\n",
    );
    let run = &d.instructions[1];
    assert_eq!(
        (run.args.as_slice(), run.original.as_str(), run.json),
        (&["<<EOF".to_string()][..], "RUN <<EOF", false)
    );
    assert_eq!(run.heredocs, vec![hd("EOF", "set -e\nmkdir -p /hd\n", true, false, None)]);
    assert_eq!((run.start.line, run.end_line), (2, 5));
    let python = &d.instructions[2];
    assert_eq!(python.args, ["python3 <<X"]);
    assert_eq!((python.start.line, python.end_line), (6, 8));
    let copy = &d.instructions[3];
    assert_eq!(copy.flags, ["--chmod=644"]);
    assert_eq!(copy.args, ["<<a.txt", "<<b.txt", "/dst/"]);
    assert_eq!(copy.heredocs.iter().map(|h| h.name.as_str()).collect::<Vec<_>>(), ["a.txt", "b.txt"]);
    assert_eq!(copy.end_line, 13);
    assert_eq!(
        d.dump(),
        "(from \"a\")\n(run \"<<EOF\")\n(run \"python3 <<X\")\n(copy [\"--chmod=644\"] \"<<a.txt\" \"<<b.txt\" \"/dst/\")\n"
    );
}

#[test]
fn heredoc_forms() {
    let d = ok("FROM a\nRUN <<\"Q\" <<'S' 3<<-T cat\n$x\nQ\n$y\nS\n\t\tz\n\tT\nADD <<EOF /f\nEOF\n");
    assert_eq!(
        d.instructions[1].heredocs,
        vec![
            hd("Q", "$x\n", false, false, None),
            hd("S", "$y\n", false, false, None),
            hd("T", "\t\tz\n", true, true, Some(3))
        ]
    );
    assert_eq!(d.instructions[1].heredocs[2].content, "z\n");
    assert_eq!(d.instructions[2].heredocs, vec![hd("EOF", "", true, false, None)]);
    // Only RUN, COPY and ADD open heredocs; the body lines of others are instructions.
    let d = ok("FROM a\nLABEL x=<<EOF\nEOF\n");
    assert_eq!(d.instructions.len(), 3);
    assert_eq!(d.instructions[2].keyword, "eof");
}

#[test]
fn heredoc_delimiter_must_match_exactly() {
    // Trailing blanks or leading spaces do not end a heredoc; `<<-` allows leading tabs only.
    let d = ok("FROM a\nRUN <<EOF\nEOF \n  EOF\nEOF\nRUN <<-X\n  X\n\t\tX\n");
    assert_eq!(d.instructions[1].heredocs[0].raw_content, "EOF \n  EOF\n");
    assert_eq!(d.instructions[2].heredocs[0].raw_content, "  X\n");
    assert_eq!(d.instructions[2].end_line, 8);
}

#[test]
fn heredoc_after_continuation_and_under_onbuild() {
    let d = ok("FROM a\nRUN --network=none \\\n  <<EOF \\\n  sh\necho hi\nEOF\nONBUILD RUN <<X\nbody\nX\n");
    let run = &d.instructions[1];
    assert_eq!(run.original, "RUN --network=none   <<EOF   sh");
    assert_eq!(run.heredocs, vec![hd("EOF", "echo hi\n", true, false, None)]);
    assert_eq!((run.start.line, run.end_line), (2, 6));
    // BuildKit attaches the heredocs of an ONBUILD trigger to the ONBUILD instruction.
    let onbuild = &d.instructions[2];
    assert_eq!(onbuild.heredocs, vec![hd("X", "body\n", true, false, None)]);
    let inner = onbuild.inner.as_deref().unwrap();
    assert_eq!((inner.keyword.as_str(), inner.args.as_slice()), ("run", &["<<X".to_string()][..]));
    assert_eq!((inner.start, inner.end_line), (Pos { line: 7, column: 9 }, 9));
}

#[test]
fn heredoc_bodies_keep_crlf_and_the_delimiter_may_end_in_cr() {
    let d = ok("FROM a\r\nRUN <<EOF\r\nline\r\nEOF\r\nRUN x\r\n");
    assert_eq!(d.instructions[1].heredocs[0].raw_content, "line\r\n");
    assert_eq!(d.instructions[2].args, ["x"]);
    // The delimiter on the last line needs no newline; a body line without one is kept as is.
    let d = ok("FROM a\nRUN <<EOF\nno newline\nEOF");
    assert_eq!(d.instructions[1].heredocs[0].raw_content, "no newline\n");
}

#[test]
fn unterminated_heredoc_points_at_its_marker() {
    let e = err("FROM a\nRUN cat <<A <<B\nA\nnever ends\n");
    assert_eq!(e.kind, ParseErrorKind::UnterminatedHeredoc("B".into()));
    assert_eq!(at(&e), (2, 13));
    assert_eq!(e.end_line, 4);
    assert_eq!(
        e.to_string(),
        "Dockerfile:2:13: unterminated heredoc\nRUN cat <<A <<B\n            ^\nhint: the here-document needs a line that is exactly `B` to end it"
    );
    let e = err("FROM a\nCOPY <<-EOF /x\n");
    assert_eq!((at(&e), e.end_line), ((2, 6), 2));
    assert!(e.hint.as_deref().unwrap_or_default().contains("leading tabs"));
}

// ---- directives ----------------------------------------------------------------------------

#[test]
fn directives_at_the_top() {
    let d = ok("# syntax=docker/dockerfile:1\n# ESCAPE = `\n#check=skip=all\nFROM a `\n  b\n");
    assert_eq!(d.directives.syntax.as_deref(), Some("docker/dockerfile:1"));
    assert_eq!(d.directives.check.as_deref(), Some("skip=all"));
    assert_eq!(d.directives.escape, '`');
    assert_eq!(d.dump(), "(from \"a\" \"b\")\n");
    assert!(d.instructions[0].comments.is_empty(), "directives are not comments");
}

#[test]
fn misplaced_directives_are_plain_comments() {
    for src in [
        "# a comment\n# escape=`\nFROM a `\nRUN b\n",
        "\n# escape=`\nFROM a `\nRUN b\n",
        "FROM a `\n# escape=`\nRUN b\n",
        "# unknown=1\n# escape=`\nFROM a `\nRUN b\n",
    ] {
        let d = ok(src);
        assert_eq!(d.directives.escape, '\\', "{src:?}");
        assert_eq!(d.instructions.len(), 2, "{src:?}");
    }
    // A duplicate after the directive section is an ordinary comment too.
    let d = ok("FROM a\n# escape=`\n# escape=`\nRUN b\n");
    assert_eq!(d.instructions[1].comments, ["escape=`", "escape=`"]);
}

#[test]
fn duplicate_directive_is_an_error_at_its_line() {
    let e = err("# escape=`\n  # Escape=\\\nFROM a\n");
    assert_eq!(e.kind, ParseErrorKind::DuplicateDirective("escape".into()));
    assert_eq!(at(&e), (2, 5));
    assert_eq!(e.to_string().lines().next(), Some("Dockerfile:2:5: only one escape parser directive can be used"));
    let e = err("# syntax=a\n# syntax=b\nFROM a\n");
    assert_eq!(e.kind.to_string(), "only one syntax parser directive can be used");
}

#[test]
fn invalid_escape_points_at_the_value() {
    let e = err("# escape = x\nFROM a\n");
    assert_eq!(e.kind, ParseErrorKind::InvalidEscape("x".into()));
    assert_eq!(at(&e), (1, 12));
    assert_eq!(e.kind.to_string(), "invalid escape token 'x' does not match ` or \\");
    assert_eq!(err("# escape=\\\\\nFROM a\n").kind, ParseErrorKind::InvalidEscape("\\\\".into()));
}

#[test]
fn windows_paths_with_backtick_escape() {
    let src = "# escape=`\n\nFROM mcr.microsoft.com/windows/servercore\nCOPY testfile.txt c:\\\nRUN dir c:\\\nWORKDIR c:\\Users\\app\nRUN powershell -Command `\n    Write-Host hi\nENV PATH=C:\\bin` x\n";
    let d = ok(src);
    assert_eq!(
        d.dump(),
        "(from \"mcr.microsoft.com/windows/servercore\")\n(copy \"testfile.txt\" \"c:\\\\\")\n(run \"dir c:\\\\\")\n(workdir \"c:\\\\Users\\\\app\")\n(run \"powershell -Command     Write-Host hi\")\n(env \"PATH\" \"C:\\\\bin` x\" \"=\")\n"
    );
    // Without the directive, `c:\` continues onto the next line.
    let d = ok("FROM x\nCOPY testfile.txt c:\\\nRUN dir c:\\\nWORKDIR c:\\Users\\app\n");
    assert_eq!(d.instructions[1].args, ["testfile.txt", "c:RUN", "dir", "c:WORKDIR", "c:\\Users\\app"]);
}

// ---- lines, continuations, comments, warnings ----------------------------------------------

#[test]
fn crlf_and_bom_parse_like_lf() {
    let lf = "# escape=`\nFROM a\nRUN echo `\n  hi\n# c\nENV a=b\n";
    let crlf = format!("\u{feff}{}", lf.replace('\n', "\r\n"));
    let (a, b) = (ok(lf), ok(&crlf));
    assert_eq!(a.dump(), b.dump());
    assert_eq!(b.directives.escape, '`');
    assert_eq!(b.instructions[2].comments, ["c"]);
    assert_eq!(b.instructions[1].start, Pos { line: 3, column: 1 });
}

#[test]
fn continuation_rules() {
    let d = ok("FROM a\nRUN a \\\\\nRUN b \\ \t\n  c\n  \\\nRUN d\\\n# comment\n\n   e\n");
    // An escaped escape character at the end does not continue; blanks after the escape
    // character are allowed; one alone on a line continues too.
    assert_eq!(d.dump(), "(from \"a\")\n(run \"a \\\\\\\\\")\n(run \"b   c\")\n(run \"d   e\")\n");
    assert_eq!((d.instructions[2].start.line, d.instructions[2].end_line), (3, 4));
    // `start` is where the keyword is, here on the line after the lone `\`.
    assert_eq!((d.instructions[3].start.line, d.instructions[3].end_line), (6, 9));
}

#[test]
fn empty_continuation_lines_warn() {
    // BuildKit's TestParseWarnsOnEmptyContinutationLine.
    let src = "\nFROM alpine:3.6\n\nRUN something \\\n\n    following \\\n\n    more\n\nRUN another \\\n\n    thing\nRUN non-indented \\\n# this is a comment\n   after-comment\n\nRUN indented \\\n    # this is an indented comment\n    comment\n\t";
    let d = ok(src);
    assert_eq!(d.warnings.len(), 2);
    assert_eq!(d.warnings[0].message, "Empty continuation line found in: RUN something     following     more");
    assert_eq!(d.warnings[0].pos, Pos { line: 5, column: 1 });
    assert_eq!(d.warnings[1].message, "Empty continuation line found in: RUN another     thing");
    assert_eq!(d.instructions[3].args, ["non-indented    after-comment"]);
    assert_eq!(d.instructions[4].args, ["indented     comment"]);
}

#[test]
fn comments_before_an_instruction() {
    let d = ok("# syntax=x\n# one\n  # two\n\n# three\nFROM a\n# four\n#\n# five\nRUN b \\\n# inside\n  c\n");
    // BuildKit drops the first byte of the raw line, so an indented comment keeps its `#`.
    assert_eq!(d.instructions[0].comments, ["one", "# two", "three"]);
    assert_eq!(d.instructions[1].comments, ["five"]);
}

#[test]
fn positions_of_instructions() {
    let d = ok("\n  \tFROM a\nRUN x \\\n  y\n\\\n  COPY a b\n");
    assert_eq!((d.instructions[0].start, d.instructions[0].end_line), (Pos { line: 2, column: 4 }, 2));
    assert_eq!((d.instructions[1].start, d.instructions[1].end_line), (Pos { line: 3, column: 1 }, 4));
    // A lone continuation line: the keyword is on the next line.
    assert_eq!((d.instructions[2].start, d.instructions[2].end_line), (Pos { line: 6, column: 3 }, 6));
    assert_eq!(d.instructions[2].original, "  COPY a b");
}

#[test]
fn lines_longer_than_the_scanner_limit_fail() {
    // BuildKit's TestParseReturnsScannerErrors.
    let label = "a".repeat(65_536);
    let e = err(&format!("\n\t\tFROM image\n\t\tLABEL test={label}\n"));
    assert_eq!(e.kind.to_string(), "dockerfile line greater than max allowed size of 65535");
    assert_eq!(e.pos.line, 3);
    // The column of the first byte past the limit.
    assert_eq!(e.pos.column, 65_536);
    let shown = e.to_string();
    assert!(shown.len() < 500, "the display shows a window of the line");
    // Exactly 65,535 bytes is fine.
    let d = ok(&format!("FROM a\nLABEL a={}\n", "b".repeat(65_535 - 8)));
    assert_eq!(d.instructions[1].args[1].len(), 65_535 - 8);
    // Inside a heredoc body too.
    assert_eq!(err(&format!("FROM a\nRUN <<E\n{label}\nE\n")).kind, ParseErrorKind::LineTooLong);
}

#[test]
fn files_without_instructions_fail() {
    for src in ["", "\n\n", "# only\n# comments\n", "\u{feff}", "# syntax=x\n", "\\\n"] {
        let e = parse(src, "Dockerfile");
        if src == "\\\n" {
            // A lone continuation character makes an (empty) instruction in BuildKit.
            assert_eq!(e.map(|d| d.dump()).ok().as_deref(), Some("(\"\")\n"));
            continue;
        }
        assert_eq!(e.map(|_| ()).unwrap_err().kind, ParseErrorKind::NoInstructions, "{src:?}");
    }
}

// ---- argument errors and their positions ---------------------------------------------------

#[test]
fn env_label_arg_errors() {
    let e = err("FROM a\nENV PATH\n");
    assert_eq!((e.kind.clone(), at(&e)), (ParseErrorKind::MustHaveTwoArguments("ENV"), (2, 5)));
    let e = err("FROM a\nLABEL a=b \\\n   c=d  e\n");
    assert_eq!(e.kind.to_string(), "Syntax error - can't find = in \"e\". Must be of the form: name=value");
    assert_eq!((at(&e), e.end_line), ((3, 9), 3));
    assert_eq!(e.source_line, "   c=d  e");
    let e = err("FROM a\nENV a=1 =2\n");
    assert_eq!((e.kind.to_string(), at(&e)), ("ENV names can not be blank".to_string(), (2, 9)));
    let e = err("FROM a\n  LABEL\n");
    assert_eq!((e.kind.to_string(), at(&e)), ("LABEL requires at least one argument".to_string(), (2, 3)));
    let e = err("FROM a\nARG\n");
    assert_eq!(e.kind, ParseErrorKind::AtLeastOneArgument("ARG"));
    // BuildKit checks ONBUILD triggers only when they run.
    let d = ok("FROM a\nONBUILD ENV =x\nONBUILD ARG\n");
    assert_eq!(d.dump(), "(from \"a\")\n(onbuild (env \"\" \"x\" \"=\"))\n(onbuild (arg))\n");
    // But the parser's own errors apply inside ONBUILD.
    let e = err("FROM a\nONBUILD  ENV X\n");
    assert_eq!(at(&e), (2, 14));
}

#[test]
fn json_errors_point_at_the_element() {
    let e = err("FROM a\nENTRYPOINT [\"sh\", 1]\n");
    assert_eq!((e.kind.clone(), at(&e)), (ParseErrorKind::JsonNotStringArray, (2, 19)));
    let e = err("FROM a\nHEALTHCHECK --interval=1s CMD [null]\n");
    assert_eq!(at(&e), (2, 32));
    let e = err("FROM a\nCOPY [\"a\", \\\n  {}] /b\n");
    assert_eq!(at(&e), (3, 3));
    // Invalid JSON is the shell form, not an error.
    assert_eq!(ok("FROM a\nCMD [\"a\",\n").dump(), "(from \"a\")\n(cmd \"[\\\"a\\\",\")\n");
}

#[test]
fn error_display_format() {
    let e = err("FROM a\n\tENV \tX\n");
    assert_eq!(
        e.to_string(),
        "Dockerfile:2:7: ENV must have two arguments\n\tENV \tX\n\t    \t^\nhint: give it a value: `ENV X=value` (or `ENV X value`)"
    );
    let e = parse("", "path/to/Dockerfile.dev").unwrap_err();
    assert_eq!(
        e.to_string(),
        "path/to/Dockerfile.dev:1:1: file with no instructions\nhint: a Dockerfile needs at least one instruction, such as FROM"
    );
}

#[test]
fn invalid_utf8_is_an_error_with_position() {
    let e = parse_bytes(b"FROM a\nRUN echo \xff\n", "Dockerfile").unwrap_err();
    assert_eq!((e.kind.clone(), at(&e)), (ParseErrorKind::InvalidUtf8, (2, 10)));
    assert!(parse_bytes(b"FROM a\n", "Dockerfile").is_ok());
}

// ---- splitting -----------------------------------------------------------------------------

#[test]
fn instruction_splitting() {
    let d = ok(
        "FROM --platform=$X a AS b\nonbuild\nHEALTHCHECK NONE\nMAINTAINER  Jane Doe <j@d>\nFOO bar baz\nRUN\nSHELL [\"pwsh\", \"-c\"]\nEXPOSE 80/tcp  443\nSTOPSIGNAL SIGKILL\nVOLUME [\"/a\"] junk\nUSER  u:g \n",
    );
    assert_eq!(
        d.dump(),
        "(from [\"--platform=$X\"] \"a\" \"AS\" \"b\")\n(onbuild)\n(healthcheck \"NONE\")\n(maintainer \"Jane Doe <j@d>\")\n(foo \"\")\n(run)\n(shell \"pwsh\" \"-c\")\n(expose \"80/tcp\" \"443\")\n(stopsignal \"SIGKILL\")\n(volume \"/a\")\n(user \"u:g\")\n"
    );
    assert!(d.instructions[6].json && d.instructions[9].json && !d.instructions[3].json);
    assert_eq!(d.instructions[4].keyword, "foo");
}
