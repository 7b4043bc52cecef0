//! End to end: `strata build --check` lints without building, in `docker buildx build --check`'s
//! layout and exit status; a normal build prints the warnings' summary and builds, unless
//! `# check=error=true` turns them into an error.

mod common;

use common::Env;

/// Breaks FromAsCasing (line 2), LegacyKeyValueFormat (3), JSONArgsRecommended (4).
const WARNED: &str = "# syntax=docker/dockerfile:1\nFROM scratch as build\nENV name value\nCMD run-me\n";
const STRICT: &str = "# check=error=true\nFROM scratch as build\nENV name value\nCMD run-me\n";

#[test]
fn check_reports_without_building_and_exits_1() {
    let env = Env::new();
    let before = env.names();
    let ctx = env.context("warned", &[("Dockerfile", WARNED)]);
    let r = env.strata(&["build", "--check", "-t", "checked:1", ctx.to_str().unwrap()]);
    assert_eq!(r.code, Some(1), "warnings make --check exit 1:\n{r}");
    let out = &r.stdout;
    assert!(out.starts_with("Check complete, 3 warnings have been found!\n"), "{r}");
    for rule in ["FromAsCasing", "LegacyKeyValueFormat", "JSONArgsRecommended"] {
        assert!(
            out.contains(&format!("\nWARNING: {rule} - https://docs.docker.com/go/dockerfile/rule/")),
            "{rule}:\n{r}"
        );
    }
    // BuildKit's excerpt, then strata's caret form.
    assert!(out.contains("Dockerfile:4\n--------------------\n"), "{r}");
    assert!(out.contains("   4 | >>> CMD run-me\n"), "{r}");
    assert!(out.contains(":2:14: FromAsCasing\n 2 | FROM scratch as build\n   |              ^\n"), "{r}");
    assert!(!r.stderr.contains("panicked"), "{r}");
    assert_eq!(env.names(), before, "--check builds and names nothing");

    let clean = env.context("clean", &[("Dockerfile", "FROM scratch AS build\nCMD [\"run-me\"]\n")]);
    let r = env.strata(&["build", "--check", clean.to_str().unwrap()]).ok();
    assert_eq!(r.stdout, "Check complete, no warnings found.\n", "{r}");

    // The directive and the build argument skip rules.
    let skipped = env.context(
        "skipped",
        &[("Dockerfile", "# check=skip=JSONArgsRecommended,LegacyKeyValueFormat\nFROM scratch\nENV a b\nCMD x\n")],
    );
    env.strata(&["build", "--check", skipped.to_str().unwrap()]).ok();
    let r =
        env.strata(&["build", "--check", "--build-arg", "BUILDKIT_DOCKERFILE_CHECK=skip=all", ctx.to_str().unwrap()]);
    assert_eq!(r.code, Some(0), "{r}");
}

#[test]
fn check_reports_build_errors_after_the_warnings() {
    let env = Env::new();
    let ctx = env.context("broken", &[("Dockerfile", "FROM scratch\nCMD x\nSTOPSIGNAL SIGBOGUS\n")]);
    let r = env.strata(&["build", "--check", ctx.to_str().unwrap()]).fails();
    assert!(r.stdout.contains("WARNING: JSONArgsRecommended"), "{r}");
    assert!(r.stderr.contains("Dockerfile:3"), "the error names its line:\n{r}");
}

#[test]
fn builds_print_a_summary_and_error_true_stops_them() {
    let env = Env::new();
    let ctx = env.context("warned", &[("Dockerfile", WARNED)]);
    let r = env.build(&ctx, "warned:1", &[]).ok();
    assert!(r.stderr.contains("3 warnings found"), "{r}");
    assert!(
        r.stderr.contains(" - FromAsCasing: 'as' and 'FROM' keywords' casing do not match (line 2)\n"),
        "BuildKit's short form:\n{r}"
    );
    assert!(env.names().iter().any(|n| n.ends_with("/warned:1")), "warnings do not stop a build");

    let strict = env.context("strict", &[("Dockerfile", STRICT)]);
    let r = env.build(&strict, "strict:1", &[]).fails();
    assert!(
        r.stderr.contains("lint violation found for rules: FromAsCasing, JSONArgsRecommended, LegacyKeyValueFormat"),
        "{r}"
    );
    assert!(!env.names().iter().any(|n| n.ends_with("/strict:1")), "nothing is built");
}
