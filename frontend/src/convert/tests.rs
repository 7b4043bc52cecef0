//! Translation tests: strata's image config and history for real Dockerfiles, compared with
//! what BuildKit 0.13 produced for the same files (`testdata/buildkit-configs`, captured from
//! real builds; see its README), plus the graph's shape and the error cases.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use strata_builder::graph::{FileAction, Op};
use strata_store::digest::Digest;
use strata_store::oci::{ImageConfig, Platform};

use super::*;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Resolves the two base images the comparison cases use to their real configs.
struct BaseImages;

impl ImageResolver for BaseImages {
    fn resolve(&self, reference: &str, _platform: &Platform) -> Result<ResolvedImage, String> {
        let file = match reference {
            "127.0.0.1:5000/busybox:latest" | "127.0.0.1:5000/busybox" => "base-busybox.json",
            "127.0.0.1:5000/debian:bookworm" => "base-debian.json",
            other => return Err(format!("no such image {other}")),
        };
        let raw = std::fs::read(repo().join("testdata/buildkit-configs").join(file)).map_err(|e| e.to_string())?;
        let config: ImageConfig = serde_json::from_slice(&raw).map_err(|e| e.to_string())?;
        let name = if reference.contains(':') && reference.rsplit('/').next().is_some_and(|l| l.contains(':')) {
            reference.to_string()
        } else {
            format!("{reference}:latest")
        };
        Ok(ResolvedImage { name, manifest_digest: Digest::of(&raw), config })
    }
}

fn amd64() -> Platform {
    Platform { architecture: "amd64".into(), os: "linux".into(), os_version: None, os_features: None, variant: None }
}

fn options(source: &str, args: &[(&str, &str)]) -> ConvertOptions {
    ConvertOptions {
        file_name: "Dockerfile".into(),
        source: source.into(),
        build_args: args.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>(),
        target: None,
        target_platform: amd64(),
        build_platform: amd64(),
        context: Some(ContextDir { path: PathBuf::from("/ctx"), filter: None }),
        no_cache: false,
        no_cache_filter: vec![],
        allow: vec![],
    }
}

fn translate(source: &str, args: &[(&str, &str)]) -> Result<BuildPlan, Diagnostic> {
    let df = crate::parser::parse(source, "Dockerfile")
        .map_err(|e| Diagnostic::new("Dockerfile", source, Pos { line: 1, column: 1 }, e.to_string()))?;
    convert(&df, &options(source, args), &BaseImages)
}

/// The config fields compare.py compares, and the history without timestamps.
/// A history entry without its time: (created_by, comment, empty_layer).
type HistoryLine = (Option<String>, Option<String>, bool);

fn comparable(cfg: &ImageConfig) -> (serde_json::Value, Vec<HistoryLine>) {
    let mut c = serde_json::to_value(&cfg.config).unwrap();
    if let Some(o) = c.as_object_mut() {
        o.remove("ArgsEscaped");
    }
    let history =
        cfg.history.iter().flatten().map(|h| (h.created_by.clone(), h.comment.clone(), h.empty_layer)).collect();
    (c, history)
}

fn check_case(case: &str, args: &[(&str, &str)]) {
    let dockerfile = repo().join("testdata/cases").join(case).join("Dockerfile");
    let source = std::fs::read_to_string(&dockerfile).unwrap();
    let plan = translate(&source, args).unwrap_or_else(|e| panic!("{case}: {e}"));
    let raw = std::fs::read(repo().join("testdata/buildkit-configs").join(format!("{case}.json"))).unwrap();
    let expected: ImageConfig = serde_json::from_slice(&raw).unwrap();
    let (want_cfg, want_hist) = comparable(&expected);
    let (got_cfg, got_hist) = comparable(&plan.target.config);
    assert_eq!(got_cfg, want_cfg, "{case}: config differs from BuildKit's");
    assert_eq!(got_hist, want_hist, "{case}: history differs from BuildKit's");
    assert_eq!(plan.target.config.config.args_escaped, expected.config.args_escaped, "{case}: ArgsEscaped");
    assert_eq!(plan.target.config.author, expected.author, "{case}: author");
}

#[test]
fn basic_matches_buildkit() {
    check_case("basic", &[]);
}

#[test]
fn args_env_matches_buildkit() {
    check_case("args-env", &[("VERSION", "2.5")]);
}

#[test]
fn copy_semantics_matches_buildkit() {
    check_case("copy-semantics", &[]);
}

#[test]
fn heredoc_mounts_matches_buildkit() {
    check_case("heredoc-mounts", &[]);
}

#[test]
fn parallel_matches_buildkit() {
    check_case("parallel", &[]);
}

#[test]
fn whiteouts_matches_buildkit() {
    check_case("whiteouts", &[]);
}

#[test]
fn every_instruction_matches_buildkit() {
    let source = std::fs::read_to_string(repo().join("testdata/buildkit-configs/instructions.Dockerfile")).unwrap();
    let plan = translate(&source, &[]).unwrap();
    let raw = std::fs::read(repo().join("testdata/buildkit-configs/instructions.json")).unwrap();
    let expected: ImageConfig = serde_json::from_slice(&raw).unwrap();
    let (want_cfg, want_hist) = comparable(&expected);
    let (got_cfg, got_hist) = comparable(&plan.target.config);
    assert_eq!(got_hist, want_hist);
    assert_eq!(got_cfg, want_cfg);
    assert_eq!(plan.target.config.author.as_deref(), Some("Jane <j@x.org>"));
}

#[test]
fn only_stages_the_target_needs_are_translated() {
    let source = std::fs::read_to_string(repo().join("testdata/cases/parallel/Dockerfile")).unwrap();
    let plan = translate(&source, &[]).unwrap();
    let reachable = plan.graph.reachable(&[plan.target.root]);
    let names: Vec<&str> = reachable.iter().map(|id| plan.graph.node(*id).name.as_str()).collect();
    assert!(names.iter().any(|n| n.starts_with("[a 1/1] RUN seq 1 400000 | sha256sum")), "{names:#?}");
    assert!(names.iter().any(|n| n.starts_with("[stage-5 2/4] COPY --from=a")), "{names:#?}");
    assert!(
        !plan.graph.nodes.iter().any(|n| n.name.contains("unused") || n.name.contains("sleep 5")),
        "the unused stage is skipped"
    );
}

#[test]
fn workdir_is_owned_by_the_current_user_and_root_workdir_adds_no_layer() {
    let plan = translate("FROM 127.0.0.1:5000/busybox:latest\nUSER nobody\nWORKDIR /w\nWORKDIR /\n", &[]).unwrap();
    let Op::File(f) = &plan.graph.node(plan.target.root).op else { panic!("WORKDIR /w makes a file op") };
    let FileAction::Mkdir { path, chown, parents, mode } = &f.actions[0] else { panic!() };
    assert_eq!((path.as_str(), *parents, *mode), ("/w", true, 0o755));
    assert_eq!(chown.as_ref().map(|c| c.user.as_str()), Some("nobody"));
    let hist = plan.target.config.history.unwrap();
    let last = hist.last().unwrap();
    assert_eq!((last.created_by.as_deref(), last.empty_layer), (Some("WORKDIR /"), true));
}

#[test]
fn scratch_gets_buildkits_empty_image_config() {
    let plan = translate("FROM scratch\nCOPY a /a\n", &[]).unwrap();
    let c = &plan.target.config.config;
    assert_eq!(c.working_dir, "/");
    assert_eq!(c.env.as_deref(), Some(&[format!("PATH={}", strata_store::oci::DEFAULT_PATH)][..]));
}

#[test]
fn run_env_has_valued_args_and_env_wins_in_order() {
    let plan = translate(
        "FROM 127.0.0.1:5000/busybox:latest\nARG A=1\nARG NOVAL\nENV A=2 B=$A\nRUN true\n",
        &[("HTTP_PROXY", "http://proxy:3128")],
    )
    .unwrap();
    let Op::Exec(e) = &plan.graph.node(plan.target.root).op else { panic!() };
    assert!(e.env.contains(&"A=2".to_string()), "{:?}", e.env);
    assert!(
        e.env.contains(&"B=1".to_string()),
        "ENV values expand against the env before the instruction: {:?}",
        e.env
    );
    assert!(!e.env.iter().any(|v| v.starts_with("NOVAL")), "an ARG without value is not in the env");
    assert!(e.env.contains(&"HTTP_PROXY=http://proxy:3128".to_string()), "proxy args reach RUN");
    let hist = plan.target.config.history.unwrap();
    let run = hist.last().unwrap().created_by.clone().unwrap();
    assert_eq!(run, "RUN |2 A=2 NOVAL= /bin/sh -c true # buildkit", "proxy args stay out of history");
    assert!(plan.target.config.config.env.unwrap().iter().all(|e| !e.starts_with("HTTP_PROXY")));
}

#[test]
fn errors_point_at_the_instruction() {
    let e = translate("FROM 127.0.0.1:5000/busybox:latest\nCOPPY a /a\n", &[]).unwrap_err();
    assert_eq!((e.pos.line, e.pos.column), (2, 1));
    assert_eq!(e.message, "unknown instruction: COPPY");
    assert_eq!(e.hint.as_deref(), Some("did you mean COPY?"));
    assert!(e.to_string().starts_with("Dockerfile:2:1: unknown instruction: COPPY\n 2 | COPPY a /a"), "{e}");

    let e = translate(
        "FROM 127.0.0.1:5000/busybox:latest AS a\nCOPY --from=b /x /y\nFROM 127.0.0.1:5000/busybox:latest AS b\nFROM a\n",
        &[],
    )
        .map(|_| ())
        .unwrap_err();
    assert!(e.message.contains("needs to be defined before current stage"), "{e}");
    assert_eq!(e.pos.line, 2);

    let e = translate("FROM $NOPE\n", &[]).unwrap_err();
    assert!(e.hint.as_deref().unwrap_or("").contains("NOPE"), "{e}");

    let e = translate("RUN true\n", &[]).unwrap_err();
    assert_eq!(e.message, "no build stage in current context");

    let e = translate("FROM 127.0.0.1:5000/busybox:latest\nRUN --network=host true\n", &[]).unwrap_err();
    assert_eq!(e.message, "network.host is not allowed");

    let mut opts = options("FROM scratch AS a\n", &[]);
    opts.target = Some("nope".into());
    let df = crate::parser::parse("FROM scratch AS a\n", "Dockerfile").unwrap();
    let e = convert(&df, &opts, &BaseImages).unwrap_err();
    assert_eq!(e.message, "target stage \"nope\" could not be found");
    assert_eq!(e.hint.as_deref(), Some("stages are: a"));

    let e = translate("FROM 127.0.0.1:5000/nothere:1\n", &[]).unwrap_err();
    assert!(e.message.contains("no such image"), "{e}");
}

#[test]
fn errors_suggest_what_was_meant() {
    // A mistyped stage in --target, FROM and COPY --from.
    let src = "FROM 127.0.0.1:5000/busybox:latest AS build\nFROM scratch AS test\n";
    let mut opts = options(src, &[]);
    opts.target = Some("biuld".into());
    let df = crate::parser::parse(src, "Dockerfile").unwrap();
    let e = convert(&df, &opts, &BaseImages).unwrap_err();
    assert_eq!(e.hint.as_deref(), Some("did you mean build? (stages are: build, test)"));
    let e = translate("FROM 127.0.0.1:5000/busybox:latest AS build\nFROM biuld\n", &[]).unwrap_err();
    assert_eq!(e.pos.line, 2);
    assert_eq!(e.hint.as_deref(), Some("did you mean the stage build? (stages are: build)"), "{e}");
    let e = translate("FROM 127.0.0.1:5000/busybox:latest AS build\nFROM scratch\nCOPY --from=biuld /a /b\n", &[])
        .unwrap_err();
    assert_eq!((e.pos.line, e.pos.column), (3, 13), "points at the name: {e}");
    assert_eq!(e.hint.as_deref(), Some("did you mean the stage build? (stages are: build)"), "{e}");

    // An ARG used in FROM but never declared.
    let e = translate("FROM 127.0.0.1:5000/busybox:${VERSION}x\n", &[]).unwrap_err();
    assert_eq!(e.hint.as_deref(), Some("VERSION used in FROM but not declared with ARG before the first FROM"), "{e}");

    // A misspelled flag: pointed at, and the flag meant.
    let e = translate("FROM scratch\nCOPY --chwon=1 a /b\n", &[]).unwrap_err();
    assert_eq!((e.pos.line, e.pos.column), (2, 6), "{e}");
    assert!(e.hint.as_deref().unwrap().starts_with("did you mean --chown?"), "{e}");
}

#[test]
fn expansion_errors_point_at_the_construct() {
    let e = translate("FROM scratch\nWORKDIR /a/${NAME:?is required}\n", &[]).unwrap_err();
    assert_eq!((e.pos.line, e.pos.column), (2, 12), "{e}");
    assert_eq!(e.hint.as_deref(), Some("give NAME a value: --build-arg NAME=VALUE, or ARG/ENV before this line"));
    assert!(e.to_string().contains("\n 2 | WORKDIR /a/${NAME:?is required}\n   |            ^"), "{e}");
    let e = translate("FROM scratch\nENV A=\"unterminated\n", &[]).unwrap_err();
    assert_eq!((e.pos.line, e.pos.column), (2, 7), "{e}");
    assert!(e.hint.as_deref().unwrap().contains("close the quote"), "{e}");
    let e = translate("ARG V=${X:=1}\nFROM scratch\n", &[]).unwrap_err();
    assert_eq!(e.pos.line, 1);
    assert!(e.hint.as_deref().unwrap().starts_with("supported forms"), "{e}");
}

#[test]
fn global_args_feed_from_and_redeclared_args_inherit_them() {
    let plan = translate("ARG REG=127.0.0.1:5000\nARG IMG\nFROM ${REG}/busybox:latest\nARG REG\nRUN echo $REG\n", &[])
        .unwrap();
    let Op::Exec(e) = &plan.graph.node(plan.target.root).op else { panic!() };
    assert!(e.env.contains(&"REG=127.0.0.1:5000".to_string()));
    assert!(plan.warnings.is_empty());
    let plan = translate("FROM 127.0.0.1:5000/busybox:latest\n", &[("UNUSED", "1")]).unwrap();
    assert_eq!(plan.warnings, ["One or more build-args [UNUSED] were not consumed"]);
}

#[test]
fn destinations_resolve_against_workdir() {
    assert_eq!(stage::resolve_dest("/app", "./"), "/app/");
    assert_eq!(stage::resolve_dest("/app", "x"), "/app/x");
    assert_eq!(stage::resolve_dest("/app", "."), "/app/");
    assert_eq!(stage::resolve_dest("/app", "/abs/../y/"), "/y/");
    assert_eq!(stage::join_path("/", "relative/path"), "/relative/path");
}

/// Cross-compilation: a `FROM --platform=$BUILDPLATFORM` stage runs as the build platform and
/// sees the target in TARGETARCH; a stage without `--platform` runs as the target.
#[test]
fn build_platform_stage_runs_natively_and_sees_the_target() {
    let source = "FROM --platform=$BUILDPLATFORM scratch AS build\nARG TARGETARCH\nRUN echo $TARGETARCH\n\
                  FROM scratch\nCOPY --from=build /x /x\nRUN true\n";
    let df = crate::parser::parse(source, "Dockerfile").unwrap();
    let mut opts = options(source, &[]);
    opts.target_platform = strata_store::platforms::parse("linux/arm64").unwrap();
    let plan = convert(&df, &opts, &BaseImages).unwrap();
    let execs: Vec<_> = plan
        .graph
        .nodes
        .iter()
        .filter_map(|n| match &n.op {
            Op::Exec(e) => Some(e.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(execs.len(), 2);
    assert_eq!(execs[0].platform.as_ref().map(Platform::to_spec).as_deref(), Some("linux/amd64"));
    assert!(execs[0].env.contains(&"TARGETARCH=arm64".to_string()), "{:?}", execs[0].env);
    assert_eq!(execs[1].platform.as_ref().map(Platform::to_spec).as_deref(), Some("linux/arm64"));
    assert_eq!(plan.target.config.architecture, "arm64");
}

#[test]
fn invalid_from_platform_is_a_positioned_error() {
    let e = translate("FROM --platform=linux/ scratch\nRUN true\n", &[]).unwrap_err().to_string();
    assert!(e.contains("Dockerfile:1") && e.contains("invalid platform"), "{e}");
}
