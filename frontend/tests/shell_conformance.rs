//! BuildKit's own lexer test data (`buildkit-shell/envVarTest` and `wordsTest`), walked as
//! `shared/conformance/README.md` describes. The data directory is `$STRATA_CONFORMANCE_DIR`
//! (default: the repository's `testdata/conformance`); a missing directory or file fails the test.

use std::path::PathBuf;

use strata_frontend::shell::Lexer;

fn conformance_file(name: &str) -> (PathBuf, String) {
    let dir = std::env::var_os("STRATA_CONFORMANCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/conformance"));
    let path = dir.join("buildkit-shell").join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("conformance data {} is required: {e}", path.display()));
    (path, text)
}

#[test]
fn env_var_test() {
    let (path, text) = conformance_file("envVarTest");
    let env: Vec<(String, String)> = [("PWD", "/home"), ("SHELL", "bash"), ("KOREAN", "한국어"), ("NULL", "")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let lexer = Lexer::new('\\');
    let mut run = 0;
    let mut failures = Vec::new();
    for (idx, line) in text.lines().enumerate() {
        let lineno = idx + 1;
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('|').collect();
        assert_eq!(fields.len(), 3, "{}:{lineno}: expected PLATFORM | INPUT | EXPECTED", path.display());
        let (platform, input, expected) = (fields[0].trim(), fields[1].trim(), fields[2].trim());
        match platform {
            "A" | "U" => {}
            "W" => continue,
            other => panic!("{}:{lineno}: unknown platform {other:?}", path.display()),
        }
        run += 1;
        let got = lexer.process_word(input, &env);
        let with_matches = lexer.process_word_with_matches(input, &env).map(|(word, _)| word);
        assert_eq!(got, with_matches, "{}:{lineno}: process_word_with_matches disagrees", path.display());
        match (expected, got) {
            ("error", Ok(word)) => failures.push(format!("line {lineno}: {input:?} gave {word:?}, expected an error")),
            ("error", Err(_)) => {}
            (want, Ok(word)) if word == want => {}
            (want, got) => failures.push(format!("line {lineno}: {input:?} gave {got:?}, expected {want:?}")),
        }
    }
    assert!(run > 0, "{} has no A/U cases", path.display());
    assert!(failures.is_empty(), "{} of {run} cases failed:\n{}", failures.len(), failures.join("\n"));
    eprintln!("envVarTest: {run} cases passed");
}

#[test]
fn words_test() {
    let (path, text) = conformance_file("wordsTest");
    let lexer = Lexer::new('\\');
    let mut env: Vec<(String, String)> = Vec::new();
    let mut run = 0;
    let mut failures = Vec::new();
    for (idx, line) in text.lines().enumerate() {
        let lineno = idx + 1;
        if line.starts_with('#') {
            continue;
        }
        if let Some(def) = line.strip_prefix("ENV ") {
            let def = def.trim_start_matches(' ');
            let (name, value) = def.split_once('=').unwrap_or((def, ""));
            env.push((name.to_string(), value.to_string()));
            continue;
        }
        let fields: Vec<&str> = line.split('|').collect();
        assert_eq!(fields.len(), 2, "{}:{lineno}: expected exactly one | in {line:?}", path.display());
        let input = fields[0].trim();
        let expected: Vec<&str> = fields[1].trim_start_matches(' ').split(',').collect();
        run += 1;
        let got = match lexer.process_words(input, &env) {
            Ok(words) => words,
            Err(_) => vec!["error".to_string()],
        };
        if got != expected {
            failures.push(format!("line {lineno}: {input:?} gave {got:?}, expected {expected:?}"));
        }
    }
    assert!(run > 0, "{} has no cases", path.display());
    assert!(failures.is_empty(), "{} of {run} cases failed:\n{}", failures.len(), failures.join("\n"));
    eprintln!("wordsTest: {run} cases passed");
}
