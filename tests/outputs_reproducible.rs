//! End to end: with SOURCE_DATE_EPOCH (from the environment, or `--build-arg` as BuildKit takes
//! it) two builds of the same inputs on two store roots give the same image digest: history and
//! creation times are the epoch, and file times in new layers (RUN's included) are clamped to
//! it. Without it the digests differ (the times are the build's).

mod common;

use std::path::Path;
use std::process::Command;

use common::{Env, STRATA, blob_path, layer_digests, run, tool};
use serde_json::Value;

const EPOCH: &str = "1700000000";
const EPOCH_TIME: &str = "2023-11-14T22:13:20Z";

const DOCKERFILE: &str = "FROM {BASE}
COPY app.txt /srv/app.txt
RUN echo built > /srv/built && mkdir -p /var/made && touch /var/made/now
WORKDIR /srv
";

fn build(env: &Env, root: &Path, ctx: &Path, epoch_env: Option<&str>, extra: &[&str]) -> Value {
    let meta = root.with_extension("json");
    let mut cmd = Command::new(STRATA);
    cmd.arg("--root")
        .arg(root)
        .args(["build", "--progress", "plain", "-t", "repro:1", "--metadata-file"])
        .arg(&meta)
        .args(extra)
        .arg(ctx)
        .env("DOCKER_CONFIG", &env.docker_config)
        .env_remove("SOURCE_DATE_EPOCH");
    if let Some(e) = epoch_env {
        cmd.env("SOURCE_DATE_EPOCH", e);
    }
    run(&mut cmd).ok();
    serde_json::from_slice(&std::fs::read(&meta).unwrap()).unwrap()
}

#[test]
fn source_date_epoch_gives_the_same_digest_on_two_store_roots() {
    let env = Env::new();
    let ctx = env.context("repro", &[("Dockerfile", DOCKERFILE), ("app.txt", "app\n")]);
    let a = build(&env, &env.path("root-a"), &ctx, Some(EPOCH), &[]);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let b = build(&env, &env.path("root-b"), &ctx, Some(EPOCH), &[]);
    assert_eq!(a["containerimage.digest"], b["containerimage.digest"], "same inputs, same epoch, same image");
    let c = build(&env, &env.path("root-c"), &ctx, None, &["--build-arg", &format!("SOURCE_DATE_EPOCH={EPOCH}")]);
    assert_eq!(a["containerimage.digest"], c["containerimage.digest"], "--build-arg works as the variable");

    let image = common::inspect_at(&env, &env.path("root-a"), "repro:1");
    assert_eq!(image["Config"]["created"], EPOCH_TIME);
    let history = image["Config"]["history"].as_array().unwrap();
    let base = env.inspect(&env.base);
    let base_entries = base["Config"]["history"].as_array().unwrap().len();
    assert_eq!(history[..base_entries], base["Config"]["history"].as_array().unwrap()[..], "the base's times kept");
    assert!(history[base_entries..].iter().all(|h| h["created"] == EPOCH_TIME), "{history:#?}");
    // File times in the new layers (the RUN's files and directories too) are clamped.
    for layer in &layer_digests(&image)[1..] {
        let l = run(Command::new(tool("tar", "tar"))
            .args(["--numeric-owner", "--full-time", "-tvzf"])
            .arg(blob_path(&env.path("root-a"), layer)))
        .ok();
        for line in l.stdout.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            let stamp = format!("{}T{}Z", f[3], f[4]);
            assert!(stamp.as_str() <= EPOCH_TIME, "{line}");
        }
        if l.stdout.contains("var/made/now") {
            assert!(l.stdout.lines().any(|x| x.contains("var/made/now") && x.contains("2023-11-14 22:13:20")));
        }
    }

    // Without the epoch, the build's own times: another digest.
    let d = build(&env, &env.path("root-d"), &ctx, None, &[]);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let e = build(&env, &env.path("root-e"), &ctx, None, &[]);
    assert_ne!(d["containerimage.digest"], e["containerimage.digest"]);
    assert_ne!(d["containerimage.digest"], a["containerimage.digest"]);

    let r = env.build(&ctx, "bad:1", &["--build-arg", "SOURCE_DATE_EPOCH=yesterday"]).fails();
    assert!(r.stderr.contains("invalid SOURCE_DATE_EPOCH \"yesterday\""), "{r}");
}
