//! The bodies of the fuzz targets (`fuzz/fuzz_targets/{parse,expand}.rs`): whatever the input,
//! the frontend returns — no panic, no hang — and what it returns is coherent.
//!
//! They live here, not in the fuzz crate, so that the same code runs in three places: under
//! libFuzzer (`cargo +nightly fuzz run parse`), in the proptests, and in the fixed-time smoke and
//! hang-guard tests of `frontend/tests/fuzz_bodies.rs`, which CI runs on the stable toolchain.
//!
//! [`dockerfile`] drives a Dockerfile through everything that reads one without running it:
//! parsing, the tree dump, typing each instruction, the build checks (every stage, with base
//! images resolved to an empty config) and the translation to a build graph, rendering every
//! error and warning. [`expand`] drives the shell-word expander with every option combination
//! and checks that its three entry points agree.

use std::collections::BTreeMap;
use std::path::PathBuf;

use strata_store::digest::Digest;
use strata_store::oci::{ImageConfig, Platform};

use crate::convert::{self, ContextDir, ConvertOptions, ImageResolver, ResolvedImage};
use crate::lint::{self, LintOptions};
use crate::shell::Lexer;

/// Every image resolves to an empty (scratch-like) config: translation needs no registry.
struct EmptyImages;

impl ImageResolver for EmptyImages {
    fn resolve(&self, reference: &str, platform: &Platform) -> Result<ResolvedImage, String> {
        if reference.len() > 255 {
            return Err("reference too long".into());
        }
        Ok(ResolvedImage {
            name: reference.to_string(),
            manifest_digest: Digest::of(reference.as_bytes()),
            config: ImageConfig::scratch(platform),
        })
    }
}

fn amd64() -> Platform {
    Platform { architecture: "amd64".into(), os: "linux".into(), os_version: None, os_features: None, variant: None }
}

/// Parses, dumps, types, checks and translates one Dockerfile. Panics only if the frontend
/// does (or breaks one of the invariants checked here).
pub fn dockerfile(data: &[u8]) {
    let df = match crate::parser::parse_bytes(data, "Dockerfile") {
        Ok(df) => df,
        Err(e) => {
            let text = e.to_string();
            assert!(text.starts_with("Dockerfile:"), "a parse error names the file: {text}");
            assert!(e.pos.line >= 1 && e.pos.line <= e.end_line, "error lines in order: {e:?}");
            return;
        }
    };
    let dump = df.dump();
    assert_eq!(dump.lines().count(), df.instructions.len(), "one dump line per instruction");
    for ins in &df.instructions {
        assert!(ins.start.line >= 1 && ins.start.line <= ins.end_line, "instruction lines in order");
        let _ = crate::instructions::parse_command(ins);
    }
    let source = String::from_utf8_lossy(data);
    let lint_opts = LintOptions {
        file_name: "Dockerfile".into(),
        source: &source,
        build_args: BTreeMap::new(),
        target: None,
        all_stages: true,
        target_platform: amd64(),
        build_platform: amd64(),
        ignore: None,
        resolver: Some(&EmptyImages),
    };
    match lint::check(&df, &lint_opts) {
        Ok(report) => {
            let _ = lint::render::check_output(&report, "Dockerfile", &source);
            let _ = lint::render::summary(&report);
            for w in &report.warnings {
                assert!(w.lines.0 >= 1 && w.lines.0 <= w.lines.1, "warning lines in order: {w:?}");
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
    let opts = ConvertOptions {
        file_name: "Dockerfile".into(),
        source: source.to_string(),
        build_args: BTreeMap::new(),
        target: None,
        target_platform: amd64(),
        build_platform: amd64(),
        context: Some(ContextDir { path: PathBuf::from("/nonexistent-context"), filter: None }),
        no_cache: false,
        no_cache_filter: Vec::new(),
        allow: Vec::new(),
    };
    if let Err(e) = convert::convert(&df, &opts, &EmptyImages) {
        let _ = e.to_string();
    }
}

/// The variables [`expand`] expands against.
fn env() -> Vec<(String, String)> {
    [("A", "a"), ("EMPTY", ""), ("PATH", "/usr/bin:/bin"), ("SPACE", "a b  c"), ("GLOB", "*?[x]"), ("Q", "'\"")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Expands one word: the first byte picks the escape character and the lexer's options, the
/// rest is the word. The single-word, word-list and with-matches entry points must agree.
pub fn expand(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else { return };
    let word = String::from_utf8_lossy(rest);
    let mut lexer = Lexer::new(if flags & 1 == 0 { '\\' } else { '`' });
    lexer.raw_quotes = flags & 2 != 0;
    lexer.raw_escapes = flags & 4 != 0;
    lexer.skip_process_quotes = flags & 8 != 0;
    lexer.skip_unset_env = flags & 16 != 0;
    let env = env();
    let one = lexer.process_word(&word, &env);
    let many = lexer.process_words(&word, &env);
    let matched = lexer.process_word_with_matches(&word, &env);
    match (&one, &matched) {
        (Ok(a), Ok((b, m))) => {
            assert_eq!(a, b, "process_word and process_word_with_matches disagree on {word:?}");
            assert!(m.matched.is_disjoint(&m.unmatched), "a name both set and unset in {word:?}");
        }
        (Err(a), Err(b)) => assert_eq!(a, b, "the entry points fail differently on {word:?}"),
        _ => panic!("process_word and process_word_with_matches disagree on {word:?}: {one:?} / {matched:?}"),
    }
    assert_eq!(one.is_ok(), many.is_ok(), "process_word and process_words disagree on {word:?}");
    if let Err(e) = &one {
        assert!(e.offset <= e.input.len() && e.input.is_char_boundary(e.offset), "error offset inside the word: {e:?}");
        let _ = e.to_string();
    }
}
