//! BuildKit's build-check test cases, as data (`data/lint-buildkit-cases.txt`, from moby/buildkit's
//! `dockerfile_lint_test.go`): every case's warnings must be exactly the ones BuildKit's tests
//! expect — for a normal build (the target's stages) and for `--check` (every stage) — and
//! `error=true` must raise BuildKit's error.

use std::collections::BTreeMap;
use std::path::Path;

use strata_frontend::convert::{ImageResolver, ResolvedImage};
use strata_frontend::dockerignore::IgnoreMatcher;
use strata_frontend::lint::{self, LintOptions};
use strata_store::digest::Digest;
use strata_store::oci::{ImageConfig, Platform};

#[derive(Default, Debug)]
struct Case {
    name: String,
    args: BTreeMap<String, String>,
    target: Option<String>,
    dockerfile: String,
    dockerignore: Option<String>,
    build: Vec<String>,
    check: Option<Vec<String>>,
    error: Option<String>,
}

fn cases() -> Vec<Case> {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/lint-buildkit-cases.txt"))
            .expect("case file");
    let mut out: Vec<Case> = Vec::new();
    let mut section: Option<String> = None;
    for line in text.split('\n') {
        if let Some(name) = line.strip_prefix("=== ") {
            out.push(Case { name: name.to_string(), ..Case::default() });
            section = None;
            continue;
        }
        let Some(case) = out.last_mut() else { continue };
        if let Some(s) = line.strip_prefix("--- ") {
            section = Some(s.to_string());
            if s == "check" {
                case.check = Some(Vec::new());
            }
            if s == ".dockerignore" {
                case.dockerignore = Some(String::new());
            }
            continue;
        }
        match section.as_deref() {
            None => {
                if let Some(kv) = line.strip_prefix("arg ") {
                    let (k, v) = kv.split_once('=').expect("arg K=V");
                    case.args.insert(k.to_string(), v.to_string());
                } else if let Some(t) = line.strip_prefix("target ") {
                    case.target = Some(t.to_string());
                }
            }
            Some("Dockerfile") => {
                case.dockerfile.push_str(line);
                case.dockerfile.push('\n');
            }
            Some(".dockerignore") => {
                let d = case.dockerignore.get_or_insert_with(String::new);
                d.push_str(line);
                d.push('\n');
            }
            Some("build") if !line.is_empty() => case.build.push(line.to_string()),
            Some("check") if !line.is_empty() => case.check.get_or_insert_with(Vec::new).push(line.to_string()),
            Some("error") if !line.is_empty() => case.error = Some(line.to_string()),
            _ => {}
        }
    }
    // A case ends with a blank separator line that belongs to no Dockerfile.
    for c in &mut out {
        if c.dockerfile.ends_with("\n\n") {
            c.dockerfile.pop();
        }
    }
    out
}

/// The base images of the cases: the busybox config BuildKit 0.13 pulled, under the names the
/// cases use; `arm64image` is the same config for another architecture.
struct Images;

impl ImageResolver for Images {
    fn resolve(&self, reference: &str, _platform: &Platform) -> Result<ResolvedImage, String> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/buildkit-configs/base-busybox.json");
        let raw = std::fs::read(path).map_err(|e| e.to_string())?;
        let mut config: ImageConfig = serde_json::from_slice(&raw).map_err(|e| e.to_string())?;
        match reference {
            "arm64image" => config.architecture = "arm64".into(),
            r if r.starts_with("alpine") || r.starts_with("busybox") => {}
            other => return Err(format!("no image {other} in this test")),
        }
        Ok(ResolvedImage { name: reference.to_string(), manifest_digest: Digest::of(&raw), config })
    }
}

fn amd64() -> Platform {
    Platform { architecture: "amd64".into(), os: "linux".into(), os_version: None, os_features: None, variant: None }
}

fn run(case: &Case, all_stages: bool) -> (Vec<String>, Option<String>) {
    let df = strata_frontend::parser::parse(&case.dockerfile, "Dockerfile")
        .unwrap_or_else(|e| panic!("{}: does not parse: {e}", case.name));
    let ignore = case.dockerignore.as_deref().map(|t| IgnoreMatcher::from_dockerignore(t).expect("dockerignore"));
    let opts = LintOptions {
        file_name: "Dockerfile".into(),
        source: &case.dockerfile,
        build_args: case.args.clone(),
        target: case.target.clone(),
        all_stages: all_stages && case.target.is_none(),
        target_platform: amd64(),
        build_platform: amd64(),
        ignore: ignore.as_ref(),
        resolver: Some(&Images),
    };
    let report = lint::check(&df, &opts).unwrap_or_else(|e| panic!("{}: {e}", case.name));
    let mut got: Vec<(usize, String, String)> =
        report.warnings.iter().map(|w| (w.lines.0, w.detail.clone(), w.rule.name.to_string())).collect();
    // BuildKit's tests compare sorted by line, then message.
    got.sort();
    let got = got.into_iter().map(|(line, detail, rule)| format!("{rule}|{line}|{detail}")).collect();
    (got, report.error.map(|e| e.message))
}

fn sorted(lines: &[String]) -> Vec<String> {
    let mut v: Vec<(usize, String, String)> = lines
        .iter()
        .map(|l| {
            let mut p = l.splitn(3, '|');
            let (rule, line, detail) = (p.next().unwrap(), p.next().unwrap(), p.next().unwrap());
            (line.parse().unwrap(), detail.to_string(), rule.to_string())
        })
        .collect();
    v.sort();
    v.into_iter().map(|(line, detail, rule)| format!("{rule}|{line}|{detail}")).collect()
}

#[test]
fn buildkit_lint_cases() {
    let cases = cases();
    assert!(cases.len() >= 75, "the case file was read ({} cases)", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let (build, error) = run(case, false);
        if build != sorted(&case.build) {
            failures.push(format!("{} (build):\n  want {:#?}\n  got  {:#?}", case.name, sorted(&case.build), build));
        }
        if error != case.error {
            failures.push(format!("{} (error): want {:?}, got {:?}", case.name, case.error, error));
        }
        let (check, _) = run(case, true);
        let want = sorted(case.check.as_ref().unwrap_or(&case.build));
        if check != want {
            failures.push(format!("{} (check):\n  want {want:#?}\n  got  {check:#?}", case.name));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases differ:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

#[test]
fn every_rule_is_covered_by_a_case() {
    let text = cases().iter().flat_map(|c| c.build.iter().chain(c.check.iter().flatten()).cloned()).collect::<Vec<_>>();
    for rule in lint::rules::ALL {
        assert!(text.iter().any(|l| l.starts_with(&format!("{}|", rule.name))), "no case shows rule {}", rule.name);
    }
}
