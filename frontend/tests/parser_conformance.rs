//! BuildKit's own parser test data (shared/conformance/buildkit-parser), walked at test time:
//! every `testfiles/*/Dockerfile` must dump byte for byte to its `result`, every
//! `testfiles-negative/*/Dockerfile` must fail, and `testfile-line/Dockerfile` must give the line
//! ranges BuildKit's test expects. The data directory comes from `STRATA_CONFORMANCE_DIR`
//! (default: the repository's `testdata/conformance`); a missing directory fails the test.

use std::fs;
use std::path::{Path, PathBuf};

use strata_frontend::parser::parse_bytes;

fn conformance_dir() -> PathBuf {
    let dir = match std::env::var_os("STRATA_CONFORMANCE_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/conformance"),
    };
    let parser_dir = dir.join("buildkit-parser");
    assert!(
        parser_dir.is_dir(),
        "conformance data not found at {} (it ships in testdata/conformance; STRATA_CONFORMANCE_DIR overrides it)",
        parser_dir.display()
    );
    parser_dir
}

fn case_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert!(!dirs.is_empty(), "no test cases in {}", dir.display());
    dirs
}

/// A line-by-line diff of expected and actual output, enough to see what differs.
fn diff(expected: &str, actual: &str) -> String {
    let (e, a): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), actual.lines().collect());
    let mut out = String::new();
    for i in 0..e.len().max(a.len()) {
        match (e.get(i), a.get(i)) {
            (Some(x), Some(y)) if x == y => out.push_str(&format!("   {x}\n")),
            (x, y) => {
                if let Some(x) = x {
                    out.push_str(&format!(" - {x}\n"));
                }
                if let Some(y) = y {
                    out.push_str(&format!(" + {y}\n"));
                }
            }
        }
    }
    if expected.ends_with('\n') != actual.ends_with('\n') {
        out.push_str(" (the final newline differs)\n");
    }
    out
}

#[test]
fn positive_cases_dump_exactly_to_their_result() {
    let dir = conformance_dir().join("testfiles");
    let cases = case_dirs(&dir);
    let mut failures = Vec::new();
    for case in &cases {
        let name = case.file_name().unwrap_or_default().to_string_lossy().into_owned();
        let source = fs::read(case.join("Dockerfile")).expect("read Dockerfile");
        let expected = fs::read_to_string(case.join("result")).expect("read result");
        match parse_bytes(&source, "Dockerfile") {
            Ok(parsed) => {
                let actual = parsed.dump();
                if actual != expected {
                    failures
                        .push(format!("{name}: dump differs (- expected, + actual):\n{}", diff(&expected, &actual)));
                }
            }
            Err(e) => failures.push(format!("{name}: unexpected error:\n{e}")),
        }
    }
    println!("{} of {} positive cases pass", cases.len() - failures.len(), cases.len());
    assert!(failures.is_empty(), "{} failing case(s):\n\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn negative_cases_fail_to_parse() {
    let dir = conformance_dir().join("testfiles-negative");
    let cases = case_dirs(&dir);
    let mut failures = Vec::new();
    for case in &cases {
        let name = case.file_name().unwrap_or_default().to_string_lossy().into_owned();
        let source = fs::read(case.join("Dockerfile")).expect("read Dockerfile");
        match parse_bytes(&source, "Dockerfile") {
            Ok(parsed) => failures.push(format!("{name}: parsed, but must fail; got:\n{}", parsed.dump())),
            Err(e) => println!("{name}: fails as it must:\n{e}\n"),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn line_numbers_match_buildkit() {
    let path = conformance_dir().join("testfile-line/Dockerfile");
    let source = fs::read(&path).expect("read testfile-line");
    let parsed = parse_bytes(&source, "Dockerfile").unwrap_or_else(|e| panic!("{e}"));
    let ranges: Vec<(usize, usize)> = parsed.instructions.iter().map(|i| (i.start.line, i.end_line)).collect();
    assert_eq!(ranges, [(5, 5), (11, 12), (17, 31)]);
    let first = parsed.instructions.first().map(|i| i.start.line);
    let last = parsed.instructions.last().map(|i| i.end_line);
    assert_eq!((first, last), (Some(5), Some(31)), "the whole file's instructions span 5-31");
}
