//! Unit tests of the checks and their output; BuildKit's own lint test cases run as data in
//! `frontend/tests/lint_buildkit_cases.rs`, the full `--check` output of a Dockerfile that
//! breaks every rule in `frontend/tests/lint_check_output.rs`.

use std::collections::BTreeMap;

use super::*;
use crate::convert::ResolvedImage;
use strata_store::digest::Digest;
use strata_store::oci::ImageConfig;

fn amd64() -> Platform {
    Platform { architecture: "amd64".into(), os: "linux".into(), os_version: None, os_features: None, variant: None }
}

fn options<'a>(source: &'a str, resolver: Option<&'a dyn ImageResolver>) -> LintOptions<'a> {
    LintOptions {
        file_name: "Dockerfile".into(),
        source,
        build_args: BTreeMap::new(),
        target: None,
        all_stages: false,
        target_platform: amd64(),
        build_platform: amd64(),
        ignore: None,
        resolver,
    }
}

fn lint(source: &str, resolver: Option<&dyn ImageResolver>) -> Report {
    let df = crate::parser::parse(source, "Dockerfile").unwrap();
    check(&df, &options(source, resolver)).unwrap()
}

fn names(r: &Report) -> Vec<String> {
    r.warnings.iter().map(|w| format!("{}@{}:{}", w.rule.name, w.pos.line, w.pos.column)).collect()
}

/// A base image with an environment and ONBUILD triggers, as a registry would return it.
struct OnbuildImage;

impl ImageResolver for OnbuildImage {
    fn resolve(&self, reference: &str, _platform: &Platform) -> Result<ResolvedImage, String> {
        let mut config = ImageConfig::scratch(&amd64());
        config.config.env = Some(vec!["PATH=/bin".into(), "HOME=/root".into()]);
        config.config.on_build = Some(vec!["CMD run-me".into(), "COPY $NOPE /x".into()]);
        Ok(ResolvedImage { name: reference.into(), manifest_digest: Digest::of(b"x"), config })
    }
}

#[test]
fn carets_point_at_the_offending_word() {
    let r = lint("FROM scratch as Build\nCOPY $nope${HOME} /x\nENV api_KEY=1\n", None);
    assert_eq!(
        names(&r),
        [
            "StageNameCasing@1:17",
            "FromAsCasing@1:14",
            "UndefinedVar@2:11",
            "UndefinedVar@2:6",
            "SecretsUsedInArgOrEnv@3:5"
        ]
    );
    let caret = render::caret_form(&r.warnings[2], "Dockerfile", "FROM scratch as Build\nCOPY $nope${HOME} /x\n");
    assert_eq!(caret, "Dockerfile:2:11: UndefinedVar\n 2 | COPY $nope${HOME} /x\n   |           ^");
}

#[test]
fn base_image_env_defines_variables_and_its_triggers_are_checked_at_from() {
    let src = "FROM example\nCOPY $HOME $PATH /x\nCOPY $HOMEE /y\n";
    let r = lint(src, Some(&OnbuildImage));
    let got: Vec<String> = r.warnings.iter().map(|w| format!("{}|{}|{}", w.rule.name, w.lines.0, w.detail)).collect();
    assert_eq!(
        got,
        [
            // The triggers run first, located at FROM.
            "JSONArgsRecommended|1|JSON arguments recommended for CMD to prevent unintended behavior related to OS signals",
            "UndefinedVar|1|Usage of undefined variable '$NOPE' (did you mean $HOME?)",
            "UndefinedVar|3|Usage of undefined variable '$HOMEE' (did you mean $HOME?)",
        ]
    );
    // Without the image's config, nothing can be said about its variables.
    let r = lint(src, None);
    assert!(r.warnings.is_empty(), "{:?}", names(&r));
}

#[test]
fn onbuild_of_a_base_stage_runs_in_the_stage_built_on_it() {
    let r = lint("FROM scratch AS base\nONBUILD ENTRYPOINT run\n\nFROM base\nRUN true\n", None);
    assert_eq!(names(&r), ["JSONArgsRecommended@4:1"]);
}

#[test]
fn normal_builds_check_only_the_stages_the_target_needs() {
    let src = "FROM scratch AS a\nCOPY $x /\nFROM scratch AS b\nCOPY --from=a / /\nFROM scratch AS c\nCOPY $y /\n";
    let df = crate::parser::parse(src, "Dockerfile").unwrap();
    let mut opts = options(src, None);
    opts.target = Some("b".into());
    assert_eq!(names(&check(&df, &opts).unwrap()), ["UndefinedVar@2:6"]);
    opts.target = None;
    assert_eq!(names(&check(&df, &opts).unwrap()), ["UndefinedVar@6:6"]);
    opts.all_stages = true;
    assert_eq!(names(&check(&df, &opts).unwrap()), ["UndefinedVar@2:6", "UndefinedVar@6:6"]);
}

#[test]
fn a_failing_step_ends_the_checks_that_follow_it() {
    // `${x:?}` fails to expand: BuildKit stops there; the translation reports the error.
    let r = lint("FROM scratch\nCOPY ${x:?gone} /\nWORKDIR rel\n", None);
    assert!(r.warnings.is_empty(), "{:?}", names(&r));
    // An unknown instruction stops the typing phase; what came before is kept.
    let r = lint("FROM scratch\nMAINTAINER me\nCOPPY a b\nWORKDIR rel\n", None);
    assert_eq!(names(&r), ["MaintainerDeprecated@2:1"]);
}

#[test]
fn error_true_turns_warnings_into_an_error_at_the_directive() {
    let r = lint("# check=error=true\nFROM scratch\nCMD x\nMAINTAINER y\n", None);
    let e = r.error.expect("error");
    assert_eq!(e.message, "lint violation found for rules: JSONArgsRecommended, MaintainerDeprecated");
    assert_eq!(e.pos.line, 1);
    assert!(lint("# check=error=true\nFROM scratch\nCMD [\"x\"]\n", None).error.is_none());
    let df = crate::parser::parse("# check=bogus\nFROM scratch\n", "Dockerfile").unwrap();
    let e = check(&df, &options("# check=bogus\nFROM scratch\n", None)).unwrap_err();
    assert_eq!(
        e.to_string().lines().next().unwrap(),
        "Dockerfile:1:1: failed to parse check options: invalid check option \"bogus\""
    );
}

#[test]
fn source_excerpts_match_buildkit() {
    // Both captured from `docker26 buildx build` (BuildKit 0.13) error output.
    let src = "FROM 127.0.0.1:5000/busybox\nRUN true\nRUN true\nRUN true\nCOPPY a /b\nRUN true\nRUN true\nRUN true\n";
    assert_eq!(
        render::source_excerpt("Dockerfile", src, &[(5, 5)]),
        "Dockerfile:5\n--------------------\n   3 |     RUN true\n   4 |     RUN true\n   5 | >>> COPPY a /b\n   6 |     RUN true\n   7 |     RUN true\n--------------------\n"
    );
    let src = "FROM 127.0.0.1:5000/busybox\nRUN true\nRUN true\nCOPY --chwon=1 \\\n  a \\\n  /b\nRUN true\nRUN true\nRUN true\n";
    assert_eq!(
        render::source_excerpt("Dockerfile", src, &[(4, 6)]),
        "Dockerfile:4\n--------------------\n   3 |     RUN true\n   4 | >>> COPY --chwon=1 \\\n   5 | >>>   a \\\n   6 | >>>   /b\n   7 |     RUN true\n--------------------\n"
    );
    // From `docker26 buildx build`, a two-line file: the empty last "line" after the final
    // newline is shown, as BuildKit splits on "\n".
    assert_eq!(
        render::source_excerpt("Dockerfile", "FROM 127.0.0.1:5000/busybox\nCOPPY a /b\n", &[(2, 2)]),
        "Dockerfile:2\n--------------------\n   1 |     FROM 127.0.0.1:5000/busybox\n   2 | >>> COPPY a /b\n   3 |     \n--------------------\n"
    );
    assert_eq!(render::source_excerpt("Dockerfile", "FROM x\n", &[(9, 9)]), "");
}

#[test]
fn check_output_and_summary() {
    let src = "FROM scratch\nCMD x\n";
    let r = lint(src, None);
    assert_eq!(
        render::check_output(&r, "Dockerfile", src),
        "Check complete, 1 warning has been found!\n\nWARNING: JSONArgsRecommended - https://docs.docker.com/go/dockerfile/rule/json-args-recommended/\nJSON arguments recommended for CMD to prevent unintended behavior related to OS signals\nDockerfile:2\n--------------------\n   1 |     FROM scratch\n   2 | >>> CMD x\n   3 |     \n--------------------\nDockerfile:2:1: JSONArgsRecommended\n 2 | CMD x\n   | ^\n"
    );
    assert_eq!(
        render::summary(&r),
        "1 warning found (use strata build --check to expand):\n - JSONArgsRecommended: JSON arguments recommended for CMD to prevent unintended behavior related to OS signals (line 2)\n"
    );
    let clean = lint("FROM scratch\nCMD [\"x\"]\n", None);
    assert_eq!(render::check_output(&clean, "Dockerfile", ""), "Check complete, no warnings found.\n");
    assert_eq!(render::summary(&clean), "");
}

#[test]
fn directive_lines() {
    assert_eq!(directive_line("# syntax=x\n#  CHECK = skip=all\nFROM x", "check"), Some(2));
    assert_eq!(directive_line("FROM x\n# check=skip=all", "check"), None);
    assert_eq!(directive_line("# checker=1\n", "check"), None);
}
