//! End to end: several `strata` processes on one store root. Two builds sharing base layers run
//! at once and both succeed; `strata prune` running during a build removes nothing the build
//! uses (its cache hits, its base, what it makes) and the build succeeds; `strata fsck` reports
//! damage with exit status 1 and `--repair` fixes it so the next build succeeds; `strata system
//! df` accounts for what prune then reclaims.

mod common;

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Env, STRATA};

/// Starts `strata --root ROOT ARGS...` in the background with this Env's docker config.
fn spawn(env: &Env, root: &Path, args: &[&str]) -> Child {
    Command::new(STRATA)
        .arg("--root")
        .arg(root)
        .args(args)
        .env("DOCKER_CONFIG", &env.docker_config)
        .env_remove("STRATA_ROOT")
        .env_remove("XDG_DATA_HOME")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting strata")
}

/// Waits for a background strata (at most two minutes); returns (success, stderr).
fn finish(child: Child) -> (bool, String) {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut child = child;
    loop {
        if child.try_wait().unwrap().is_some() || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn fsck(env: &Env, root: &Path) -> common::Run {
    env.strata_at(root, &["fsck"])
}

#[test]
fn two_builds_sharing_base_layers_run_at_once() {
    let env = Env::new();
    let fresh = env.path("fresh-store");
    let a = env.context("a", &[("Dockerfile", "FROM {BASE}\nRUN echo a > /a && sleep 1\n")]);
    let b = env.context("b", &[("Dockerfile", "FROM {BASE}\nRUN echo b > /b && sleep 1\n")]);
    // Both start on an empty store: both resolve, pull and unpack the same base layer.
    let build = |ctx: &Path, tag: &str| {
        spawn(&env, &fresh, &["build", "--progress", "plain", "-t", tag, ctx.to_str().unwrap()])
    };
    let (ta, tb) = (build(&a, "a:1"), build(&b, "b:1"));
    let (ra, rb) = (finish(ta), finish(tb));
    assert!(ra.0, "build a failed:\n{}", ra.1);
    assert!(rb.0, "build b failed:\n{}", rb.1);
    let ia = common::inspect_at(&env, &fresh, "a:1");
    let ib = common::inspect_at(&env, &fresh, "b:1");
    assert_eq!(common::layer_digests(&ia)[0], common::layer_digests(&ib)[0], "the base layer is shared");
    assert_eq!(env.strata_at(&fresh, &["run", "a:1", "cat", "/a"]).ok().stdout, "a\n");
    assert_eq!(env.strata_at(&fresh, &["run", "b:1", "cat", "/b"]).ok().stdout, "b\n");
    let f = fsck(&env, &fresh).ok();
    assert!(f.stdout.contains("no problems"), "{f}");
    assert_eq!(fs::read_dir(fresh.join("leases")).unwrap().count(), 0, "leases go with their processes");
}

#[test]
fn prune_during_a_build_removes_nothing_it_uses() {
    let env = Env::new();
    let files = [
        ("Dockerfile", "FROM {BASE}\nCOPY f /f\nRUN cat /f > /g\n"),
        ("Dockerfile.2", "FROM {BASE}\nCOPY f /f\nRUN cat /f > /g\nRUN sleep 4\nRUN cat /g > /h\n"),
        ("f", "content of f\n"),
    ];
    let first = env.context("first", &files);
    env.build(&first, "first:1", &[]).ok();
    // The image goes; its layers stay only as build cache, which a plain prune removes.
    env.strata(&["rmi", "first:1"]).ok();
    let second = first.join("Dockerfile.2");
    let args =
        ["build", "--progress", "plain", "-t", "second:1", "-f", second.to_str().unwrap(), first.to_str().unwrap()];
    let mut build = spawn(&env, &env.root, &args);
    // Once it is past its cache hits, in the sleeping step:
    let lines = std::io::BufRead::lines(std::io::BufReader::new(build.stderr.take().unwrap()));
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in lines.map_while(Result::ok) {
            if line.contains("RUN sleep 4") {
                let _ = tx.send(());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    rx.recv_timeout(Duration::from_secs(60)).expect("the build reached its sleeping step");
    let pruned = env.strata(&["prune"]).ok();
    assert!(pruned.stdout.contains("in use by running builds"), "prune saw the running build:\n{pruned}");
    let (ok, _) = finish(build);
    let stderr = reader.join().unwrap();
    assert!(ok, "the build failed after a concurrent prune:\n{stderr}\n{pruned}");
    let steps = common::plain_steps(&stderr);
    assert_eq!(common::step(&steps, "COPY f").state, common::StepState::Cached, "{stderr}");
    assert_eq!(common::step(&steps, "RUN cat /f").state, common::StepState::Cached, "{stderr}");
    assert_eq!(env.strata(&["run", "second:1", "cat", "/h"]).ok().stdout, "content of f\n");
    let f = fsck(&env, &env.root).ok();
    assert!(f.stdout.contains("no problems"), "{f}");

    // Without a running build, the same prune does take build cache.
    env.strata(&["rmi", "second:1"]).ok();
    let df = env.strata(&["system", "df"]).ok();
    let cache_line = df.stdout.lines().find(|l| l.starts_with("Build cache")).unwrap().to_string();
    assert!(!cache_line.contains(" 0B "), "build cache is accounted: {df}");
    let pruned = env.strata(&["prune"]).ok();
    assert!(pruned.stdout.contains("Removed: 4 cache record(s)"), "{pruned}");
    assert!(!pruned.stdout.contains("in use"), "{pruned}");
    let df = env.strata(&["system", "df"]).ok();
    assert!(df.stdout.lines().any(|l| l.starts_with("Build cache") && l.contains(" 0 ")), "{df}");
    // The base image is named: still there, and builds still work.
    env.build(&first, "again:1", &[]).ok();
}

#[test]
fn fsck_reports_damage_and_repair_makes_the_store_usable_again() {
    let env = Env::new();
    let ctx = env.context("ctx", &[("Dockerfile", "FROM {BASE}\nRUN echo x > /x\n")]);
    env.build(&ctx, "damaged:1", &[]).ok();
    let image = env.inspect("damaged:1");
    let layers = common::layer_digests(&image);
    // Bit rot in the RUN layer's blob, and in the image's config.
    let layer = common::blob_path(&env.root, layers.last().unwrap());
    let mut bytes = fs::read(&layer).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    fs::write(&layer, bytes).unwrap();
    let config = common::blob_path(&env.root, image["Manifest"]["config"]["digest"].as_str().unwrap());
    fs::write(&config, b"{}").unwrap();

    let r = fsck(&env, &env.root);
    assert_eq!(r.code, Some(1), "{r}");
    assert!(r.stdout.contains("CorruptBlob") && r.stdout.contains("BrokenImage"), "{r}");
    assert!(r.stdout.contains("docker.io/library/damaged:1"), "the broken name is named: {r}");
    let r = env.strata(&["fsck", "--repair"]).ok();
    assert!(r.stdout.contains("repaired"), "{r}");
    let r = fsck(&env, &env.root).ok();
    assert!(r.stdout.contains("no problems"), "{r}");
    assert!(!env.names().iter().any(|n| n.contains("damaged")), "the broken name was removed");
    assert!(env.names().contains(&env.base), "valid names stay");
    // The record of the RUN step pointed at the corrupt blob: it was removed, the step runs again.
    let r = env.build(&ctx, "damaged:2", &[]).ok();
    assert_eq!(common::step(&common::plain_steps(&r.stderr), "RUN echo").state, common::StepState::Done, "{r}");
    assert_eq!(env.strata(&["run", "damaged:2", "cat", "/x"]).ok().stdout, "x\n");
}
