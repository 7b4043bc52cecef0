//! Multi-platform builds end to end: `strata build --platform linux/amd64,linux/arm64` against a
//! real registry, arm64 RUN steps through QEMU user emulation (Debian's qemu-user-static,
//! registered in binfmt_misc with the F flag by scripts/test.sh).
//!
//! The two-platform base image is made as a user would: the amd64 busybox root filesystem
//! (testkit's `busybox_rootfs`) and an arm64 one built the same way from Debian's
//! `busybox-static:arm64` package (`apt-get download`; scripts/test.sh adds the arm64 dpkg
//! architecture), copied in by a `FROM scratch` Dockerfile per `TARGETARCH` and pushed as an
//! index with `strata build --platform linux/amd64,linux/arm64 --push`.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::*;
use serde_json::Value;

/// The static aarch64 busybox from Debian's `busybox-static:arm64`, fetched once per test run.
fn arm64_busybox() -> &'static Path {
    static BUSYBOX: OnceLock<PathBuf> = OnceLock::new();
    BUSYBOX.get_or_init(|| {
        let dir = tempfile::Builder::new().prefix("strata-bb-arm64-").tempdir().unwrap().keep();
        let r = run(Command::new("apt-get").args(["download", "busybox-static:arm64"]).current_dir(&dir));
        assert!(
            r.success(),
            "apt-get download busybox-static:arm64 failed (scripts/test.sh runs `dpkg --add-architecture arm64` \
             and `apt-get update`):\n{r}"
        );
        let deb = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "deb"))
            .expect("the downloaded .deb");
        let out = dir.join("x");
        run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&out)).ok();
        let busybox = out.join("bin/busybox");
        assert!(busybox.is_file(), "no bin/busybox in {}", deb.display());
        busybox
    })
}

/// testkit's busybox root filesystem with the aarch64 busybox in place of the host's (same
/// Debian version, so the same applet links).
fn arm64_rootfs(dir: &Path) {
    busybox_rootfs(dir);
    let target = dir.join("bin/busybox");
    fs::remove_file(&target).unwrap();
    fs::copy(arm64_busybox(), &target).unwrap();
    fs::set_permissions(&target, fs::Permissions::from_mode(0o755)).unwrap();
}

/// Pushes `REG/mbase:1`, an index of an amd64 and an arm64 busybox image, and returns its name.
fn push_two_platform_base(env: &Env) -> String {
    let ctx =
        env.context("base-ctx", &[("Dockerfile", "FROM scratch\nARG TARGETARCH\nCOPY rootfs-${TARGETARCH}/ /\n")]);
    busybox_rootfs(&ctx.join("rootfs-amd64"));
    arm64_rootfs(&ctx.join("rootfs-arm64"));
    let name = format!("{}/mbase:1", env.registry.host);
    env.build(&ctx, &name, &["--platform", "linux/amd64,linux/arm64", "--push"]).ok();
    name
}

fn raw_manifest(name: &str, extra: &[&str]) -> Value {
    let mut args = vec!["inspect", "--tls-verify=false"];
    args.extend_from_slice(extra);
    let target = format!("docker://{name}");
    args.push(&target);
    let r = skopeo(&args).ok();
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("skopeo printed invalid JSON ({e}):\n{r}"))
}

/// The (architecture, variant) of each entry of an index, in order.
fn index_platforms(index: &Value) -> Vec<(String, Option<String>)> {
    index["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .map(|m| {
            assert_eq!(m["platform"]["os"], "linux", "{m}");
            (
                m["platform"]["architecture"].as_str().unwrap().to_string(),
                m["platform"]["variant"].as_str().map(String::from),
            )
        })
        .collect()
}

fn run_steps(stderr: &str) -> Vec<Step> {
    plain_steps(stderr).into_iter().filter(|s| s.name.contains("] RUN ")).collect()
}

fn read(dir: &Path, rel: &str) -> String {
    fs::read_to_string(dir.join(rel)).unwrap_or_else(|e| panic!("reading {rel} in {}: {e}", dir.display()))
}

#[test]
fn builds_each_platform_pushes_an_index_and_rebuilds_from_cache() {
    let env = Env::new();
    let base = push_two_platform_base(&env);
    let app = format!("{}/app:1", env.registry.host);
    let ctx = env.context("app", &[("Dockerfile", &format!("FROM {base}\nRUN uname -m > /arch\n"))]);

    // A fresh store: both platforms of the base are pulled into it, side by side.
    let fresh = env.path("fresh-store");
    let r = env.build_at(&fresh, &ctx, &app, &["--platform", "linux/amd64,linux/arm64", "--push"]).ok();
    let runs = run_steps(&r.stderr);
    assert_eq!(runs.len(), 2, "one RUN per platform:\n{r}");
    assert!(runs.iter().all(|s| s.state == StepState::Done), "both ran:\n{runs:#?}");

    // The registry has an OCI index listing both platforms, in command-line order.
    let index = raw_manifest(&app, &["--raw"]);
    assert_eq!(index["mediaType"], "application/vnd.oci.image.index.v1+json", "{index}");
    assert_eq!(index_platforms(&index), [("amd64".into(), None), ("arm64".into(), None)]);
    let arm = raw_manifest(&app, &["--override-arch", "arm64", "--config"]);
    assert_eq!((arm["architecture"].as_str(), arm["os"].as_str()), (Some("arm64"), Some("linux")), "{arm}");
    let amd = raw_manifest(&app, &["--override-arch", "amd64", "--config"]);
    assert_eq!(amd["architecture"], "amd64", "{amd}");

    // The store names the index; inspect shows each platform; images lists it.
    let doc = inspect_at(&env, &fresh, &app);
    assert_eq!(doc["Descriptor"]["mediaType"], "application/vnd.oci.image.index.v1+json", "{doc}");
    let archs: Vec<&str> =
        doc["Platforms"].as_array().unwrap().iter().map(|p| p["Config"]["architecture"].as_str().unwrap()).collect();
    assert_eq!(archs, ["amd64", "arm64"]);
    let images = env.strata_at(&fresh, &["images"]).ok();
    let line = images.stdout.lines().find(|l| l.contains("app:1")).unwrap_or_else(|| panic!("{images}"));
    assert!(line.contains("(linux/amd64, linux/arm64)"), "{images}");
    // `strata push` of the stored index uploads both platforms and the same index.
    let copy = format!("{}/copy:1", env.registry.host);
    env.strata_at(&fresh, &["push", &app, &copy]).ok();
    assert_eq!(raw_manifest(&copy, &["--raw"]), index);
    let arm_copy = raw_manifest(&copy, &["--override-arch", "arm64", "--config"]);
    assert_eq!(arm_copy["architecture"], "arm64", "{arm_copy}");
    // The base's two platforms did not clobber each other under one name.
    let base_doc = inspect_at(&env, &fresh, &base);
    let present: Vec<&str> = base_doc["Platforms"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["Config"].is_object())
        .map(|p| p["Platform"].as_str().unwrap())
        .collect();
    assert_eq!(present, ["linux/amd64", "linux/arm64"], "{base_doc}");

    // A rebuild runs no RUN step; the local export writes one directory per platform, and the
    // arm64 RUN really ran as aarch64.
    let out = env.path("out");
    let r = env
        .build_at(
            &fresh,
            &ctx,
            &app,
            &["--platform", "linux/amd64,linux/arm64", "-o", &format!("type=local,dest={}", out.display())],
        )
        .ok();
    let runs = run_steps(&r.stderr);
    assert_eq!(runs.len(), 2, "{r}");
    assert!(runs.iter().all(|s| s.state == StepState::Cached), "a rebuild runs zero RUN steps:\n{runs:#?}");
    assert_eq!(read(&out, "linux_amd64/arch"), "x86_64\n");
    assert_eq!(read(&out, "linux_arm64/arch"), "aarch64\n");

    // An OCI archive holds the index (the same one), named in its index.json.
    let tar = env.path("app-oci.tar");
    env.build_at(
        &fresh,
        &ctx,
        &app,
        &["--platform", "linux/amd64,linux/arm64", "-o", &format!("type=oci,dest={}", tar.display())],
    )
    .ok();
    let archive = format!("oci-archive:{}", tar.display());
    let r = skopeo(&["inspect", "--raw", &archive]).ok();
    let archived: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(archived, index, "the archive's index is the pushed one");
    let r = skopeo(&["inspect", "--override-arch", "arm64", "--config", &archive]).ok();
    let config: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(config["architecture"], "arm64");
}

#[test]
fn build_platform_stage_runs_natively_for_cross_compilation() {
    let env = Env::new();
    let base = push_two_platform_base(&env);
    let dockerfile = format!(
        "FROM --platform=$BUILDPLATFORM {base} AS build\nARG TARGETARCH\n\
         RUN echo $TARGETARCH > /target && uname -m > /ran-on\n\
         FROM {base}\nCOPY --from=build /target /ran-on /\nRUN uname -m > /arch\n"
    );
    let ctx = env.context("cross", &[("Dockerfile", &dockerfile)]);
    let out = env.path("out");
    let dest = format!("type=local,dest={}", out.display());
    env.build(&ctx, "cross:1", &["--platform", "linux/amd64,linux/arm64", "-o", &dest]).ok();
    assert_eq!(read(&out, "linux_arm64/target"), "arm64\n");
    assert_eq!(read(&out, "linux_arm64/ran-on"), "x86_64\n", "the BUILDPLATFORM stage runs natively");
    assert_eq!(read(&out, "linux_arm64/arch"), "aarch64\n", "the final stage is the target's");
    assert_eq!(read(&out, "linux_amd64/target"), "amd64\n");
    assert_eq!(read(&out, "linux_amd64/arch"), "x86_64\n");
}

#[test]
fn one_foreign_platform_is_a_plain_image() {
    let env = Env::new();
    let base = push_two_platform_base(&env);
    let ctx = env.context("one", &[("Dockerfile", &format!("FROM {base}\nRUN uname -m > /arch\n"))]);
    let r = env.build(&ctx, "one:1", &["--platform", "linux/arm64"]).ok();
    assert_eq!(run_steps(&r.stderr).len(), 1, "{r}");
    let doc = env.inspect("one:1");
    assert_eq!(doc["Descriptor"]["mediaType"], "application/vnd.oci.image.manifest.v1+json", "no index: {doc}");
    assert_eq!(doc["Config"]["architecture"], "arm64");
    let out = env.path("out");
    env.build(&ctx, "one:1", &["--platform", "linux/arm64", "-o", &format!("type=local,dest={}", out.display())]).ok();
    assert_eq!(read(&out, "arch"), "aarch64\n");
}

/// Two platforms never share a RUN result, even when everything else about the step is equal:
/// here an amd64 binary copied into `FROM scratch` runs natively for both platforms.
#[test]
fn platforms_never_share_a_run_cache_entry() {
    let env = Env::new();
    let ctx = env.context(
        "same",
        &[("Dockerfile", "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"true\"]\n")],
    );
    fs::copy(env.path("busybox-rootfs/bin/busybox"), ctx.join("busybox")).unwrap();
    let r = env.build(&ctx, "same:1", &["--platform", "linux/amd64,linux/arm64"]).ok();
    let runs = run_steps(&r.stderr);
    assert_eq!(runs.len(), 2, "{r}");
    assert!(runs.iter().all(|s| s.state == StepState::Done), "each platform runs its own step:\n{runs:#?}");
    let r = env.build(&ctx, "same:1", &["--platform", "linux/amd64,linux/arm64"]).ok();
    assert!(run_steps(&r.stderr).iter().all(|s| s.state == StepState::Cached), "{r}");
}

#[test]
fn platform_errors_are_clear() {
    let env = Env::new();
    let ctx = env.context("errs", &[("Dockerfile", "FROM {BASE}\nRUN echo ran > /ran\n")]);
    // The base has no s390x image.
    let r = env.build(&ctx, "errs:1", &["--platform", "linux/s390x"]).fails();
    assert!(r.stderr.contains("linux/s390x") && r.stderr.contains("Dockerfile:1"), "{r}");
    for (flag, says) in [
        ("linux/amd64,linux/amd64", "given twice"),
        ("linux", "invalid platform"),
        ("linux/amd64,", "invalid platform"),
    ] {
        let r = env.build(&ctx, "errs:1", &["--platform", flag]).fails();
        assert!(r.stderr.contains(says), "--platform {flag}:\n{r}");
        assert!(plain_steps(&r.stderr).is_empty(), "nothing is built:\n{r}");
    }
    // No emulator can run a RUN step for this platform.
    let scratch = env.context(
        "wasm",
        &[("Dockerfile", "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"true\"]\n")],
    );
    fs::copy(env.path("busybox-rootfs/bin/busybox"), scratch.join("busybox")).unwrap();
    let r = env.build(&scratch, "errs:1", &["--platform", "linux/wasm"]).fails();
    assert!(r.stderr.contains("cannot run RUN steps for linux/wasm"), "{r}");
    // `docker load` archives take no index (BuildKit's docker exporter refuses one too).
    let dest = format!("type=docker,dest={}", env.path("x.tar").display());
    let r = env.build(&ctx, "errs:1", &["--platform", "linux/amd64,linux/arm64", "-o", &dest]).fails();
    assert!(r.stderr.contains("not supported yet") && r.stderr.contains("type=docker"), "{r}");
    assert!(!env.names().iter().any(|n| n.contains("errs")), "nothing named");
}
