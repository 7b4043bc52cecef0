//! moby/patternmatcher's cases (`dockerignore/matches.tsv`, `multi.tsv`, `single-pattern.tsv`),
//! walked as `shared/conformance/README.md` describes. The data directory is
//! `$STRATA_CONFORMANCE_DIR` (default: the repository's `testdata/conformance`); a missing file fails the test.

use std::path::PathBuf;

use strata_frontend::dockerignore::IgnoreMatcher;

/// The data rows of a TSV file: `(line number, fields)`, comments and blank lines left out.
fn rows(name: &str) -> (PathBuf, Vec<(usize, Vec<String>)>) {
    let dir = std::env::var_os("STRATA_CONFORMANCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/conformance"));
    let path = dir.join("dockerignore").join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("conformance data {} is required: {e}", path.display()));
    let rows: Vec<_> = text
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.starts_with('#') && !line.is_empty())
        .map(|(idx, line)| {
            let fields: Vec<String> = line.split('\t').map(str::to_string).collect();
            assert_eq!(fields.len(), 3, "{}:{}: expected 3 tab-separated fields", path.display(), idx + 1);
            (idx + 1, fields)
        })
        .collect();
    assert!(!rows.is_empty(), "{} has no cases", path.display());
    (path, rows)
}

/// Runs every row: builds a matcher from the patterns and compares `is_excluded(path)` (or the
/// construction error) with the expected `true`/`false`/`error`.
fn check(name: &str, patterns_of: impl Fn(&str) -> Vec<String>) {
    let (path, rows) = rows(name);
    let mut failures = Vec::new();
    for (lineno, fields) in &rows {
        let (patterns, file, expected) = (patterns_of(&fields[0]), &fields[1], fields[2].as_str());
        let got = match IgnoreMatcher::new(&patterns) {
            Ok(matcher) => matcher.is_excluded(file).to_string(),
            Err(_) => "error".to_string(),
        };
        assert!(matches!(expected, "true" | "false" | "error"), "{}:{lineno}: bad expectation", path.display());
        if got != expected {
            failures
                .push(format!("line {lineno}: patterns {patterns:?}, path {file:?}: got {got}, expected {expected}"));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), rows.len(), failures.join("\n"));
    eprintln!("{name}: {} cases passed", rows.len());
}

#[test]
fn matches_tsv() {
    check("matches.tsv", |p| vec![p.to_string()]);
}

#[test]
fn multi_tsv() {
    check("multi.tsv", |p| p.split(' ').filter(|s| !s.is_empty()).map(str::to_string).collect());
}

#[test]
fn single_pattern_tsv() {
    check("single-pattern.tsv", |p| vec![p.to_string()]);
}
