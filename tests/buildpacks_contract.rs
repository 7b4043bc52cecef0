//! Buildpacks end to end on busybox images (fast): the handwritten contract buildpacks of
//! `testdata/buildpacks/contract` (every point of the Buildpack API they check prints
//! `contract: ok: ...`), the layers and labels of the image, launching its processes, restoring
//! layers on a rebuild, rebase, detect errors, and the shipped static-site buildpack serving
//! HTTP on loopback.

mod buildpacks;
mod common;

use std::time::Duration;

use buildpacks::{Served, copy_app, json_label, labels, repo, step_logs};
use common::{Env, blob_path, busybox_rootfs, layer_digests, layer_entries, run};
use serde_json::Value;

const TAG: &str = "localhost/contract/app:1";

fn contract_build(env: &Env, app: &std::path::Path) -> common::Run {
    let builder = repo().join("testdata/buildpacks/contract");
    env.strata(&[
        "build",
        "--progress",
        "plain",
        "-t",
        TAG,
        "--builder",
        builder.to_str().unwrap(),
        "--build-image",
        &env.base,
        "--run-image",
        &env.base,
        "--env",
        "CONTRACT_VAR=from platform",
        app.to_str().unwrap(),
    ])
}

/// What the `web` process prints (see the provider's `greet`).
fn greet(env: &Env, args: &[&str]) -> String {
    let mut a = vec!["run", "--rm"];
    a.extend_from_slice(args);
    env.strata(&a).ok().stdout.trim().to_string()
}

#[test]
fn contract_buildpacks_build_launch_rebuild_and_rebase() {
    let env = Env::new();
    let app = copy_app(&env, "contract/app", "app");
    let builder = repo().join("testdata/buildpacks/contract");

    // detect: group 1 fails (a required buildpack does not apply); the composite's group
    // passes without its optional member; the plan lists providers and requirements.
    let d = env
        .strata(&[
            "detect",
            "--builder",
            builder.to_str().unwrap(),
            "--build-image",
            &env.base,
            "--env",
            "CONTRACT_VAR=from platform",
            app.to_str().unwrap(),
        ])
        .ok();
    let group: toml_like::Doc = toml_like::parse(&d.stdout);
    assert_eq!(group.group_ids(), ["test/provider", "test/consumer"], "{d}");
    assert!(d.stdout.contains("name = \"deferred\"") && d.stdout.contains("from = \"consumer\""), "{d}");
    assert!(!d.stderr.contains("contract: FAILED"), "{d}");

    // First build: every check passes.
    let b = contract_build(&env, &app).ok();
    let logs = step_logs(&b.stderr);
    let oks: Vec<&String> = logs.iter().filter(|l| l.starts_with("contract: ok:")).collect();
    assert!(!b.stderr.contains("contract: FAILED"), "{b}");
    assert_eq!(oks.len(), 22, "every detect/build check ran once: {oks:#?}\n{b}");
    assert!(logs.iter().any(|l| l == "contract: cache counter is 1"), "{b}");
    assert!(logs.iter().any(|l| l == "contract: store.toml builds is 1"), "{b}");

    // The image: run image layer, the two launch layers (by name), a slice, the app, the
    // launcher and the config.
    let img = env.inspect(TAG);
    let cfg = &img["Config"]["config"];
    assert_eq!(cfg["Entrypoint"], serde_json::json!(["/cnb/process/web"]));
    assert_eq!(cfg["WorkingDir"], "/workspace");
    let l = labels(&env, TAG);
    assert_eq!(l["contract.provider"], "yes");
    assert_eq!(l["contract.consumer"], "yes");
    let meta = json_label(&env, TAG, "io.buildpacks.lifecycle.metadata");
    let bps = meta["buildpacks"].as_array().unwrap();
    assert_eq!(bps.iter().map(|b| b["key"].as_str().unwrap()).collect::<Vec<_>>(), ["test/provider", "test/consumer"]);
    let layers_meta = bps[0]["layers"].as_object().unwrap();
    assert_eq!(layers_meta.keys().collect::<Vec<_>>(), ["both", "runtime"], "only launch layers are in the image");
    assert_eq!(layers_meta["runtime"]["data"]["version"], 1);
    assert_eq!(layers_meta["both"]["cache"], true);
    assert_eq!(bps[0]["store"]["metadata"]["builds"], 1);
    let digests = layer_digests(&img);
    assert_eq!(digests.len(), 7, "{img:#}");
    let diff_ids: Vec<String> = img["Config"]["rootfs"]["diff_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().to_string())
        .collect();
    assert_eq!(layers_meta["both"]["sha"], diff_ids[1]);
    assert_eq!(layers_meta["runtime"]["sha"], diff_ids[2]);
    assert_eq!(meta["app"].as_array().unwrap().len(), 2, "a slice and the rest");
    assert_eq!(meta["runImage"]["topLayer"], diff_ids[0]);
    let build_meta = json_label(&env, TAG, "io.buildpacks.build.metadata");
    let procs: Vec<&str> =
        build_meta["processes"].as_array().unwrap().iter().map(|p| p["type"].as_str().unwrap()).collect();
    assert_eq!(procs, ["worker", "web"]);
    assert_eq!(build_meta["buildpack-default-process-type"], "web");

    let entries = |i: usize| layer_entries(&blob_path(&env.root, &digests[i]));
    assert!(entries(2).iter().any(|e| e == "layers/test_provider/runtime/bin/greet"), "{:?}", entries(2));
    assert!(entries(3).iter().any(|e| e == "workspace/static/a.txt"), "the slice: {:?}", entries(3));
    let app_layer = entries(4);
    assert!(app_layer.iter().any(|e| e == "workspace/marker.txt") && !app_layer.iter().any(|e| e.contains("a.txt")));
    assert!(entries(5).iter().any(|e| e == "cnb/lifecycle/launcher"));
    let config_layer = entries(6);
    assert!(
        config_layer.iter().any(|e| e == "cnb/process/web")
            && config_layer.iter().any(|e| e == "layers/config/metadata.toml")
    );
    // Timestamps are normalized, so layers depend on content only.
    let listing = run(std::process::Command::new("tar").arg("-tvzf").arg(blob_path(&env.root, &digests[2]))).ok();
    assert!(listing.stdout.lines().all(|l| l.contains("1980-01-01")), "{}", listing.stdout);
    assert_eq!(img["Config"]["created"], "1980-01-01T00:00:01Z");

    // Launch: the default process with its env, profile.d, working dir and default args; user
    // args replace the args; another process type; the launcher running a plain command.
    let env_part = "GREETING=hello WEB_ONLY=yes FROM_PROFILE=1 OVERRIDE= ONLY_LAUNCH_TOOL= USER_VAR=";
    assert_eq!(greet(&env, &[TAG]), format!("greet: fixed default-arg | pwd=/workspace/sub {env_part}"));
    assert_eq!(greet(&env, &[TAG, "mine"]), format!("greet: fixed mine | pwd=/workspace/sub {env_part}"));
    assert_eq!(
        greet(&env, &["--entrypoint", "/cnb/process/worker", TAG]),
        "greet: from-worker | pwd=/workspace GREETING=hello WEB_ONLY= FROM_PROFILE=1 OVERRIDE= ONLY_LAUNCH_TOOL= USER_VAR="
    );
    assert_eq!(
        greet(&env, &["-e", "USER_VAR=x", "--entrypoint", "/cnb/lifecycle/launcher", TAG, "greet", "direct"]),
        "greet: direct | pwd=/workspace GREETING=hello WEB_ONLY= FROM_PROFILE=1 OVERRIDE= ONLY_LAUNCH_TOOL= USER_VAR=x"
    );

    // Rebuild after editing the app: layers restored (cache counter, store.toml, the launch
    // layer kept by its metadata, the launch+cache layer), launch layers reused by digest.
    std::fs::write(app.join("marker.txt"), "the app, edited").unwrap();
    let b2 = contract_build(&env, &app).ok();
    let logs2 = step_logs(&b2.stderr);
    assert!(!b2.stderr.contains("contract: FAILED"), "{b2}");
    for want in [
        "contract: cache counter is 2",
        "contract: store.toml builds is 2",
        "contract: ok: rebuild: runtime.toml restored from the previous image without its directory",
        "contract: ok: rebuild: launch+cache layer restored with metadata and contents",
    ] {
        assert!(logs2.iter().any(|l| l == want), "missing {want:?}:\n{b2}");
    }
    let img2 = env.inspect(TAG);
    let digests2 = layer_digests(&img2);
    assert_eq!(digests2[..3], digests[..3], "run image and both launch layers are the same layers");
    assert_ne!(digests2[4], digests[4], "the app layer changed");
    assert_eq!(
        json_label(&env, TAG, "io.buildpacks.lifecycle.metadata")["buildpacks"][0]["store"]["metadata"]["builds"],
        2
    );
    assert!(greet(&env, &[TAG]).starts_with("greet: fixed default-arg"));

    // --clear-cache: the cache layer starts over, the image metadata still comes back.
    let b3 = env
        .strata(&[
            "build",
            "--progress",
            "plain",
            "-t",
            TAG,
            "--clear-cache",
            "--builder",
            builder.to_str().unwrap(),
            "--build-image",
            &env.base,
            "--run-image",
            &env.base,
            "--env",
            "CONTRACT_VAR=from platform",
            app.to_str().unwrap(),
        ])
        .ok();
    let logs3 = step_logs(&b3.stderr);
    assert!(logs3.iter().any(|l| l == "contract: cache counter is 1"), "{b3}");
    assert!(logs3.iter().any(|l| l == "contract: store.toml builds is 3"), "{b3}");

    // Rebase onto another run image: only the run image's layers change.
    let rootfs = env.path("run2");
    busybox_rootfs(&rootfs);
    std::fs::write(rootfs.join("marker"), "run image 2\n").unwrap();
    env.strata(&["import", rootfs.to_str().unwrap(), "-t", "localhost/run2:1"]).ok();
    let before = layer_digests(&env.inspect(TAG));
    let r = env.strata(&["rebase", TAG, "--run-image", "localhost/run2:1"]).ok();
    let after_img = env.inspect(TAG);
    assert_eq!(after_img["Descriptor"]["digest"].as_str().unwrap(), r.stdout.trim(), "{r}");
    let after = layer_digests(&after_img);
    let run2 = layer_digests(&env.inspect("localhost/run2:1"));
    assert_eq!(after[0], run2[0]);
    assert_eq!(after[1..], before[1..], "the app's layers are kept as they are");
    let meta = json_label(&env, TAG, "io.buildpacks.lifecycle.metadata");
    assert_eq!(meta["runImage"]["image"], "localhost/run2:1");
    assert_eq!(meta["runImage"]["topLayer"], after_img["Config"]["rootfs"]["diff_ids"][0]);
    assert_eq!(greet(&env, &["--entrypoint", "/bin/cat", TAG, "/marker"]), "run image 2");
    assert!(greet(&env, &[TAG]).starts_with("greet: fixed default-arg"));
    // Rebasing an image not built by buildpacks is an error.
    let e = env.strata(&["rebase", "localhost/run2:1", "--run-image", &env.base]).fails();
    assert!(e.stderr.contains("not built by buildpacks"), "{e}");
}

#[test]
fn detect_reports_failures_and_bad_buildpacks() {
    let env = Env::new();
    let app = env.context("plain", &[("README", "nothing to detect here")]);
    // No shipped buildpack applies.
    let r = env.strata(&["detect", "--build-image", &env.base, app.to_str().unwrap()]).fails();
    assert!(r.stderr.contains("no buildpack group passed detection"), "{r}");
    assert!(r.stderr.contains("strata/static-site@0.1.0 fail"), "{r}");

    // A detect that errors (exit code other than 0 and 100) is reported as such.
    let bp = env.context(
        "bp-error",
        &[
            ("buildpack.toml", "api = \"0.12\"\n[buildpack]\nid = \"t/err\"\nversion = \"1.0.0\"\n"),
            ("bin/detect", "#!/bin/sh\necho broken >&2\nexit 3\n"),
            ("bin/build", "#!/bin/sh\nexit 0\n"),
        ],
    );
    run(std::process::Command::new("chmod").arg("-R").arg("755").arg(bp.join("bin"))).ok();
    let r = env
        .strata(&["detect", "--buildpack", bp.to_str().unwrap(), "--build-image", &env.base, app.to_str().unwrap()])
        .fails();
    assert!(r.stderr.contains("t/err@1.0.0 detect failed: exit code 3"), "{r}");

    // Malformed descriptors and unsupported APIs are errors naming the file.
    let bad = env.context("bp-bad", &[("buildpack.toml", "api = \"0.12\"\n[buildpack\n")]);
    let r = env
        .strata(&["detect", "--buildpack", bad.to_str().unwrap(), "--build-image", &env.base, app.to_str().unwrap()])
        .fails();
    assert!(r.stderr.contains("bp-bad/buildpack.toml"), "{r}");
    let old = env.context(
        "bp-old",
        &[
            ("buildpack.toml", "api = \"0.2\"\n[buildpack]\nid = \"t/old\"\nversion = \"1\"\n"),
            ("bin/detect", ""),
            ("bin/build", ""),
        ],
    );
    let r = env
        .strata(&["detect", "--buildpack", old.to_str().unwrap(), "--build-image", &env.base, app.to_str().unwrap()])
        .fails();
    assert!(r.stderr.contains("buildpack API 0.2 is not supported"), "{r}");

    // A build whose bin/build fails stops with the buildpack named.
    let failing = env.context(
        "bp-fail",
        &[
            ("buildpack.toml", "api = \"0.12\"\n[buildpack]\nid = \"t/fail\"\nversion = \"1.0.0\"\n"),
            ("bin/detect", "#!/bin/sh\nexit 0\n"),
            ("bin/build", "#!/bin/sh\necho 'cannot build' >&2\nexit 7\n"),
        ],
    );
    run(std::process::Command::new("chmod").arg("-R").arg("755").arg(failing.join("bin"))).ok();
    let r = env
        .strata(&[
            "build",
            "--progress",
            "plain",
            "--buildpack",
            failing.to_str().unwrap(),
            "--build-image",
            &env.base,
            "--run-image",
            &env.base,
            app.to_str().unwrap(),
        ])
        .fails();
    assert!(
        r.stderr.contains("buildpack t/fail@1.0.0 build failed: exit code 7") && r.stderr.contains("cannot build"),
        "{r}"
    );
}

#[test]
fn static_site_is_served_by_busybox_httpd() {
    let env = Env::new();
    let app = copy_app(&env, "apps/static", "site");
    let tag = "localhost/site:1";
    let d = env.strata(&["detect", "--build-image", &env.base, app.to_str().unwrap()]).ok();
    assert!(d.stdout.contains("id = \"strata/static-site\""), "{d}");
    let build = |env: &Env| {
        env.strata(&[
            "build",
            "--progress",
            "plain",
            "-t",
            tag,
            "--build-image",
            &env.base,
            "--run-image",
            &env.base,
            app.to_str().unwrap(),
        ])
        .ok()
    };
    let b = build(&env);
    assert!(step_logs(&b.stderr).iter().any(|l| l == "static-site: adding busybox httpd"), "{b}");
    let first = env.inspect(tag);
    {
        let mut served = Served::start(&env, tag);
        let (status, body) = served.get(Duration::from_secs(30));
        assert!(status.contains("200"), "{status}\n{}", served.log());
        assert!(body.contains("hello from a static site built by strata buildpacks"), "{body}");
    }
    // A rebuild keeps the httpd layer from the previous image (metadata only) and, with nothing
    // else changed, makes the very same image.
    let b2 = build(&env);
    assert!(
        step_logs(&b2.stderr).iter().any(|l| l == "static-site: reusing the httpd layer of the previous image"),
        "{b2}"
    );
    let second = env.inspect(tag);
    assert_eq!(
        first["Descriptor"]["digest"], second["Descriptor"]["digest"],
        "a rebuild of unchanged input is the same image"
    );
    // The layer really is the old one: the previous image's layer is not rebuilt.
    assert_eq!(layer_digests(&first)[1], layer_digests(&second)[1]);
    let meta: Value = json_label(&env, tag, "io.buildpacks.build.metadata");
    assert_eq!(meta["processes"][0]["type"], "web");

    // Outputs work as for Dockerfile builds: the root filesystem, an OCI archive, metadata, a
    // squash above the run image; Dockerfile-only flags are refused, not ignored.
    let site = app.to_str().unwrap();
    let out = env.path("site-rootfs");
    let archive = env.path("site.tar");
    let meta_file = env.path("meta.json");
    let (o1, o2) = (format!("type=local,dest={}", out.display()), format!("type=oci,dest={}", archive.display()));
    let common_args = ["build", "-q", "--build-image", &env.base, "--run-image", &env.base];
    let mut args = common_args.to_vec();
    args.extend(["-o", &o1, "-o", &o2, "--metadata-file", meta_file.to_str().unwrap(), site]);
    env.strata(&args).ok();
    assert!(out.join("workspace/public/index.html").is_file(), "the app in the exported root filesystem");
    let listing = run(std::process::Command::new("tar").arg("tf").arg(&archive)).ok().stdout;
    assert!(listing.lines().any(|l| l == "index.json"), "{listing}");
    let meta: Value = serde_json::from_str(&std::fs::read_to_string(&meta_file).unwrap()).unwrap();
    assert!(meta["containerimage.digest"].as_str().unwrap().starts_with("sha256:"), "{meta}");
    let mut args = common_args.to_vec();
    args.extend(["--squash", "-t", "localhost/site:squashed", site]);
    env.strata(&args).ok();
    let run_layers = env.inspect(&env.base)["Config"]["rootfs"]["diff_ids"].as_array().unwrap().len();
    assert_eq!(
        layer_digests(&env.inspect("localhost/site:squashed")).len(),
        run_layers + 1,
        "one layer above the run image"
    );
    let mut args = common_args.to_vec();
    args.extend(["--build-arg", "X=1", site]);
    let r = env.strata(&args).fails();
    assert!(r.stderr.contains("--build-arg (buildpacks take --env)"), "{r}");
}

/// A minimal reader of the `[[group]] id = "..."` lines `strata detect` prints.
mod toml_like {
    pub struct Doc(String);
    pub fn parse(s: &str) -> Doc {
        Doc(s.to_string())
    }
    impl Doc {
        pub fn group_ids(&self) -> Vec<String> {
            let mut out = Vec::new();
            let mut in_group = false;
            for line in self.0.lines() {
                if line.starts_with("[[") {
                    in_group = line == "[[group]]";
                } else if in_group && let Some(v) = line.strip_prefix("id = ") {
                    out.push(v.trim_matches('"').to_string());
                }
            }
            out
        }
    }
}
