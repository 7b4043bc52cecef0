//! The complete `strata build --check` output for a Dockerfile that breaks every rule
//! (`data/check-every-rule/`), compared with the expected output kept beside it.
//!
//! The layout is `docker buildx build --check`'s (buildx's `printResult`, BuildKit's
//! `lint.Warning.PrintTo` and `errdefs.Source.Print`; the excerpts are checked against real
//! BuildKit output in `lint::tests::source_excerpts_match_buildkit`). Docker 26's buildx (0.13)
//! has no `--check`, so the expected file was written by strata and reviewed against those
//! sources and BuildKit's lint test cases. After a deliberate change, `STRATA_BLESS=1 cargo test
//! -p strata-frontend --test lint_check_output` rewrites it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use strata_frontend::convert::{ImageResolver, ResolvedImage};
use strata_frontend::dockerignore::IgnoreMatcher;
use strata_frontend::lint::{self, LintOptions};
use strata_store::digest::Digest;
use strata_store::oci::{ImageConfig, Platform};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/check-every-rule")
}

/// `busybox` is the config BuildKit 0.13 pulled, relabelled arm64 so that it does not match the
/// amd64 build (`InvalidBaseImagePlatform`).
struct Arm64Busybox;

impl ImageResolver for Arm64Busybox {
    fn resolve(&self, reference: &str, _platform: &Platform) -> Result<ResolvedImage, String> {
        if !reference.starts_with("busybox") {
            return Err(format!("no image {reference} in this test"));
        }
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/buildkit-configs/base-busybox.json");
        let raw = std::fs::read(path).map_err(|e| e.to_string())?;
        let mut config: ImageConfig = serde_json::from_slice(&raw).map_err(|e| e.to_string())?;
        config.architecture = "arm64".into();
        Ok(ResolvedImage { name: reference.to_string(), manifest_digest: Digest::of(&raw), config })
    }
}

#[test]
fn check_output_for_every_rule() {
    let source = std::fs::read_to_string(dir().join("Dockerfile")).unwrap();
    let ignore =
        IgnoreMatcher::from_dockerignore(&std::fs::read_to_string(dir().join("dockerignore")).unwrap()).unwrap();
    let df = strata_frontend::parser::parse(&source, "Dockerfile").unwrap();
    let amd64 = Platform {
        architecture: "amd64".into(),
        os: "linux".into(),
        os_version: None,
        os_features: None,
        variant: None,
    };
    let opts = LintOptions {
        file_name: "Dockerfile".into(),
        source: &source,
        build_args: BTreeMap::from([("IMAGE_TAG".to_string(), "1.36".to_string())]),
        target: None,
        all_stages: true,
        target_platform: amd64.clone(),
        build_platform: amd64,
        ignore: Some(&ignore),
        resolver: Some(&Arm64Busybox),
    };
    let report = lint::check(&df, &opts).unwrap();
    let mut seen: Vec<&str> = report.warnings.iter().map(|w| w.rule.name).collect();
    seen.sort_unstable();
    seen.dedup();
    let mut all: Vec<&str> = lint::rules::ALL.iter().map(|r| r.name).collect();
    all.sort_unstable();
    assert_eq!(seen, all, "the Dockerfile breaks every rule");

    let got = lint::render::check_output(&report, "Dockerfile", &source);
    let expected_path = dir().join("expected.txt");
    if std::env::var_os("STRATA_BLESS").is_some() {
        std::fs::write(&expected_path, &got).unwrap();
    }
    let expected = std::fs::read_to_string(&expected_path).unwrap();
    assert_eq!(got, expected, "--check output differs from {}", expected_path.display());
}
