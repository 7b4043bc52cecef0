//! The shipped language buildpacks (Python, Node.js, Go, Rust) build their sample apps from
//! `testdata/buildpacks/apps` on strata's default build and run images, and each image answers
//! an HTTP request on loopback when started with `strata run`. A rebuild after a source edit
//! reuses the installed dependencies (no pip/npm install, no recompiled crates) and the
//! dependency layers keep their digests.
//!
//! The default images come from Debian packages: `buildpacks/images/debian-rootfs.sh` makes
//! the root filesystems with mmdebstrap (cached under `$STRATA_IMAGE_CACHE`, default
//! /var/tmp/strata-images, keyed by the script, the package list and the host CA bundle), and
//! this test imports them once into a store kept next to them (`store-<key>`, also reused
//! across runs). Each run works on a hard-linked copy of that store (blobs and snapshots are
//! never modified in place), so nothing a test does leaks into the next one. Dependencies come
//! from PyPI, npm and crates.io.

mod buildpacks;
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use buildpacks::{Served, copy_app, repo, step_logs};
use common::{Env, inspect_at, layer_digests, run};

const BUILD_IMAGE: &str = "localhost/strata/buildpacks-build:bookworm";
const RUN_IMAGE: &str = "localhost/strata/buildpacks-run:bookworm";

/// The root filesystem archive of the default `kind` image (made or found in the cache).
fn rootfs(kind: &str) -> PathBuf {
    let script = repo().join("buildpacks/images/debian-rootfs.sh");
    common::tool("mmdebstrap", "mmdebstrap");
    // Making the build image downloads and unpacks ~1 GB of packages: no command time limit.
    let out = Command::new("bash").arg(&script).arg(kind).output().expect("running debian-rootfs.sh");
    assert!(out.status.success(), "debian-rootfs.sh {kind} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// A store holding the default images, shared across runs, prepared once per image content.
fn prepared_store(env: &Env) -> PathBuf {
    let build = rootfs("build");
    let run_tar = rootfs("run");
    let cache = build.parent().unwrap().to_path_buf();
    let key = |p: &Path| p.file_stem().unwrap().to_string_lossy().rsplit('-').next().unwrap().to_string();
    let store = cache.join(format!("store-{}-{}", key(&build), key(&run_tar)));
    // Serialize preparation between concurrent test runs (released when `lock` closes).
    let lock = std::fs::File::create(cache.join(".lock-store")).unwrap();
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).unwrap();
    if !store.join("ready").exists() {
        // Leftovers of runs that died while preparing (nobody else prepares: we hold the lock).
        for e in std::fs::read_dir(&cache).unwrap().flatten() {
            if e.file_name().to_string_lossy().starts_with("store-tmp-") {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
        let tmp = cache.join(format!("store-tmp-{}", std::process::id()));
        for (tar, name) in [(&build, BUILD_IMAGE), (&run_tar, RUN_IMAGE)] {
            // Packing a 1.5 GB root filesystem can take longer than the usual command limit.
            let out = Command::new(common::STRATA)
                .arg("--root")
                .arg(&tmp)
                .args(["import", tar.to_str().unwrap(), "-t", name])
                .output()
                .expect("running strata import");
            assert!(out.status.success(), "importing {name}: {}", String::from_utf8_lossy(&out.stderr));
        }
        std::fs::write(tmp.join("ready"), "").unwrap();
        let _ = std::fs::remove_dir_all(&store);
        std::fs::rename(&tmp, &store).unwrap();
    }
    let copy = env.path("store");
    let _ = std::fs::remove_dir_all(&copy);
    run(Command::new("cp").arg("-al").arg(&store).arg(&copy)).ok();
    copy
}

#[test]
fn shipped_buildpacks_build_and_serve_each_sample_app() {
    let env = Env::new();
    let root = prepared_store(&env);
    let build = |app: &Path, tag: &str| {
        env.strata_at(&root, &["build", "--progress", "plain", "-t", tag, app.to_str().unwrap()]).ok()
    };
    let serve = |tag: &str, want: &str| {
        let mut served = Served::start_at(&env, &root, tag);
        let (status, body) = served.get(Duration::from_secs(60));
        assert!(status.contains("200") && body.contains(want), "{tag}: {status}\n{body}\n{}", served.log());
    };

    struct Case {
        app: &'static str,
        buildpack: &'static str,
        answer: &'static str,
        edit: &'static str,
        /// A log line of the first build that must not come back after the edit.
        installs: &'static str,
        /// The launch layer holding the dependencies, kept across the edit.
        deps_layer: Option<&'static str>,
    }
    let cases = [
        Case {
            app: "python",
            buildpack: "strata/python",
            answer: "hello from python, six 1.16.0",
            edit: "app.py",
            installs: "python: installing dependencies",
            deps_layer: Some("venv"),
        },
        Case {
            app: "nodejs",
            buildpack: "strata/nodejs",
            answer: "hello from node, ms says 1m",
            edit: "server.js",
            installs: "nodejs: installing dependencies",
            deps_layer: Some("modules"),
        },
        Case {
            app: "go",
            buildpack: "strata/go",
            answer: "hello from go",
            edit: "main.go",
            installs: "",
            deps_layer: None,
        },
        Case {
            app: "rust",
            buildpack: "strata/rust",
            answer: "hello from rust, 42 bytes of itoa",
            edit: "src/main.rs",
            installs: "Compiling itoa",
            deps_layer: None,
        },
    ];
    for c in &cases {
        let app = copy_app(&env, &format!("apps/{}", c.app), c.app);
        let tag = format!("localhost/sample/{}:1", c.app);
        let d = env.strata_at(&root, &["detect", app.to_str().unwrap()]).ok();
        assert!(d.stdout.contains(&format!("id = \"{}\"", c.buildpack)), "{d}");
        let first = build(&app, &tag);
        let logs = step_logs(&first.stderr);
        if !c.installs.is_empty() {
            assert!(logs.iter().any(|l| l.contains(c.installs)), "{}: {first}", c.app);
        }
        serve(&tag, c.answer);
        let before = inspect_at(&env, &root, &tag);

        // Edit the source and rebuild: dependencies are not installed again.
        let path = app.join(c.edit);
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str(if c.edit.ends_with(".py") { "\n# edited\n" } else { "\n// edited\n" });
        std::fs::write(&path, text).unwrap();
        let second = build(&app, &tag);
        let logs2 = step_logs(&second.stderr);
        if !c.installs.is_empty() {
            assert!(
                !logs2.iter().any(|l| l.contains(c.installs)),
                "{}: dependencies installed again:\n{second}",
                c.app
            );
        }
        serve(&tag, c.answer);
        let after = inspect_at(&env, &root, &tag);
        if let Some(layer) = c.deps_layer {
            let sha = |img: &serde_json::Value| {
                let labels = &img["Config"]["config"]["Labels"];
                let meta: serde_json::Value =
                    serde_json::from_str(labels["io.buildpacks.lifecycle.metadata"].as_str().unwrap()).unwrap();
                meta["buildpacks"][0]["layers"][layer]["sha"].as_str().unwrap().to_string()
            };
            assert_eq!(sha(&before), sha(&after), "{}: the {layer} layer is reused by digest", c.app);
            let (b, a) = (layer_digests(&before), layer_digests(&after));
            let run_layers = 1;
            assert_eq!(b[run_layers], a[run_layers], "{}: same dependency layer blob", c.app);
            assert_ne!(b, a, "{}: the app layer changed", c.app);
        }
    }
}
