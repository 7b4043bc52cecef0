//! End to end: failing builds fail clearly. Each case checks strata's exit status, that stderr
//! names what went wrong and where (step, `Dockerfile:LINE[:COL]`), that nothing panicked, and
//! that a failed build names no image in the store.

mod common;

use common::{Env, StepState, plain_steps, step};

/// The store names no image whose name ends with `/NAME`.
#[track_caller]
fn assert_not_named(env: &Env, name: &str) {
    let names = env.names();
    assert!(
        !names.iter().any(|n| n.ends_with(&format!("/{name}"))),
        "{name} was named after a failed build: {names:?}"
    );
}

#[test]
fn failing_run_reports_step_line_and_exit_code() {
    let env = Env::new();
    let ctx = env.context(
        "run-fails",
        &[("Dockerfile", "FROM {BASE}\nRUN echo before\nRUN echo oops >&2; exit 3\nRUN echo after\n")],
    );
    let r = env.build(&ctx, "fails:1", &[]).fails();
    let err = &r.stderr;
    assert!(err.contains("Dockerfile:3"), "the Dockerfile line of the failing RUN:\n{r}");
    assert!(err.contains("RUN echo oops >&2; exit 3"), "the failing step:\n{r}");
    assert!(err.contains("exit code: 3"), "the exit code:\n{r}");
    let steps = plain_steps(err);
    let failed = step(&steps, "RUN echo oops");
    assert_eq!(failed.state, StepState::Error, "{r}");
    assert_eq!(failed.logs, ["oops"], "the step's stderr is shown:\n{r}");
    assert!(!steps.iter().any(|s| s.name.contains("RUN echo after")), "no step after a failure runs:\n{r}");
    assert_not_named(&env, "fails:1");

    // An existing name is left as it was when a rebuild under it fails.
    let good = env.context("good", &[("Dockerfile", "FROM {BASE}\nRUN echo good > /good\n")]);
    env.build(&good, "keep:1", &[]).ok();
    let before = env.inspect("keep:1")["Descriptor"]["digest"].clone();
    env.build(&ctx, "keep:1", &[]).fails();
    assert_eq!(env.inspect("keep:1")["Descriptor"]["digest"], before);
}

#[test]
fn unknown_instruction_points_at_line_and_column() {
    let env = Env::new();
    let ctx = env.context("typo", &[("Dockerfile", "FROM {BASE}\nRUN echo hi\n  COPPY a b\n")]);
    let r = env.build(&ctx, "typo:1", &[]).fails();
    let err = &r.stderr;
    assert!(err.contains("Dockerfile:3:3"), "file:line:column of the unknown word:\n{r}");
    assert!(err.contains("unknown instruction: COPPY"), "{r}");
    assert!(err.contains("did you mean COPY"), "a suggestion:\n{r}");
    // The source line and a caret under the column.
    let lines: Vec<&str> = err.lines().collect();
    let src = lines.iter().position(|l| l.ends_with("  COPPY a b")).unwrap_or_else(|| panic!("source line:\n{r}"));
    let caret = lines.get(src + 1).unwrap_or_else(|| panic!("no caret line:\n{r}"));
    let col_in_src = lines[src].find("COPPY").unwrap();
    assert_eq!(caret.find('^'), Some(col_in_src), "caret under COPPY:\n{}\n{}", lines[src], caret);
    assert!(plain_steps(err).is_empty(), "nothing runs when the Dockerfile does not parse:\n{r}");
    assert_not_named(&env, "typo:1");
}

#[test]
fn missing_copy_source_is_a_clear_error() {
    let env = Env::new();
    let ctx = env.context(
        "missing",
        &[("Dockerfile", "FROM {BASE}\nCOPY present.txt /\nCOPY missing.txt /dst/\n"), ("present.txt", "x")],
    );
    let r = env.build(&ctx, "missing:1", &[]).fails();
    assert!(r.stderr.contains("Dockerfile:3"), "{r}");
    assert!(r.stderr.contains("missing.txt") && r.stderr.contains("not found"), "{r}");
    assert_not_named(&env, "missing:1");
}

#[test]
fn unsupported_flags_are_refused() {
    let env = Env::new();
    let ctx = env.context("flags", &[("Dockerfile", "FROM {BASE}\nRUN echo ran > /ran\n")]);
    // (`--platform` is supported: tests/multiplatform.rs covers its errors.)
    let r = env.build(&ctx, "flags:1", &["--load"]).fails();
    assert!(r.stderr.contains("not supported yet"), "{r}");
    assert!(r.stderr.contains("--load"), "names the flag:\n{r}");
    assert!(plain_steps(&r.stderr).is_empty(), "nothing is built:\n{r}");
    assert_not_named(&env, "flags:1");
}

#[test]
fn from_an_image_that_exists_nowhere() {
    let env = Env::new();
    let missing = format!("{}/nowhere:1", env.registry.host);
    let ctx = env.context("nowhere", &[("Dockerfile", &format!("FROM {missing}\nRUN true\n"))]);
    let r = env.build(&ctx, "nowhere:1", &[]).fails();
    assert!(r.stderr.contains(&missing), "names the image:\n{r}");
    assert!(r.stderr.contains("Dockerfile:1"), "points at the FROM:\n{r}");
    let lower = r.stderr.to_lowercase();
    assert!(lower.contains("not found") || lower.contains("unknown"), "says it does not exist:\n{r}");
    assert_not_named(&env, "nowhere:1");

    // A registry that does not answer at all: a prompt error naming it, not a hang.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let ctx = env.context("down", &[("Dockerfile", &format!("FROM 127.0.0.1:{port}/x:1\n"))]);
    let started = std::time::Instant::now();
    let r = env.build(&ctx, "down:1", &[]).fails();
    assert!(r.stderr.contains(&format!("127.0.0.1:{port}")), "{r}");
    assert!(started.elapsed() < std::time::Duration::from_secs(30), "took {:?}", started.elapsed());
}
