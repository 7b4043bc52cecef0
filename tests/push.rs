//! End to end: `strata build --push` and read back with skopeo (media types, digests, raw bytes
//! equal to the store's), then the registry pull path: a fresh store builds FROM the pushed image,
//! and a layer whose bytes do not match its digest is refused.

mod common;

use std::fs;

use common::{Env, StepState, blob_path, inspect_at, layer_digests, layer_file, plain_steps, sha256_hex, skopeo};
use serde_json::Value;

const DOCKERFILE: &str =
    "FROM {BASE}\nCOPY app.txt /srv/app.txt\nRUN echo built > /srv/built.txt\nCMD [\"cat\", \"/srv/built.txt\"]\n";

/// Builds and pushes `REG/x:1`; returns its name and `strata inspect`.
fn build_and_push(env: &Env) -> (String, Value) {
    let name = format!("{}/x:1", env.registry.host);
    let ctx = env.context("x", &[("Dockerfile", DOCKERFILE), ("app.txt", "app\n")]);
    let r = env.build(&ctx, &name, &["--push"]).ok();
    assert!(r.stderr.contains(&format!("pushed {name}@")), "push not reported:\n{r}");
    (name.clone(), env.inspect(&name))
}

#[test]
fn pushed_image_reads_back_with_skopeo() {
    let env = Env::new();
    let (name, image) = build_and_push(&env);
    let docker = format!("docker://{name}");
    let desc_digest = image["Descriptor"]["digest"].as_str().unwrap();

    // The manifest bytes in the registry are the store's, byte for byte.
    let raw = skopeo(&["inspect", "--tls-verify=false", "--raw", &docker]).ok();
    assert_eq!(format!("sha256:{}", sha256_hex(raw.stdout.as_bytes())), desc_digest);
    assert_eq!(raw.stdout.as_bytes(), fs::read(blob_path(&env.root, desc_digest)).unwrap());
    let manifest: Value = serde_json::from_str(&raw.stdout).unwrap();
    assert_eq!(manifest["schemaVersion"], 2);
    assert_eq!(manifest["mediaType"], "application/vnd.oci.image.manifest.v1+json");
    assert_eq!(manifest["config"]["mediaType"], "application/vnd.oci.image.config.v1+json");
    assert_eq!(manifest, image["Manifest"]);
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 3);
    for l in layers {
        assert_eq!(l["mediaType"], "application/vnd.oci.image.layer.v1.tar+gzip", "{l}");
    }

    // The config: raw bytes hash to the manifest's config digest; skopeo's parse agrees.
    let raw_config = skopeo(&["inspect", "--tls-verify=false", "--raw", "--config", &docker]).ok();
    assert_eq!(
        format!("sha256:{}", sha256_hex(raw_config.stdout.as_bytes())),
        manifest["config"]["digest"].as_str().unwrap()
    );
    let config: Value = serde_json::from_str(&raw_config.stdout).unwrap();
    assert_eq!(config, image["Config"]);
    let parsed = skopeo(&["inspect", "--tls-verify=false", "--config", &docker]).ok();
    let parsed: Value = serde_json::from_str(&parsed.stdout).unwrap();
    assert_eq!(parsed["config"]["Cmd"], serde_json::json!(["cat", "/srv/built.txt"]));
    assert_eq!(parsed["rootfs"]["diff_ids"], image["Config"]["rootfs"]["diff_ids"]);

    // skopeo's summary: digest and layer list.
    let summary = skopeo(&["inspect", "--tls-verify=false", &docker]).ok();
    let summary: Value = serde_json::from_str(&summary.stdout).unwrap();
    assert_eq!(summary["Digest"], desc_digest);
    let want: Vec<Value> = layer_digests(&image).into_iter().map(Value::from).collect();
    assert_eq!(summary["Layers"], Value::from(want));

    // Every layer blob in the registry is the store's blob.
    for d in layer_digests(&image) {
        assert_eq!(fs::read(env.registry_blob(&d)).unwrap(), fs::read(blob_path(&env.root, &d)).unwrap(), "{d}");
    }
}

#[test]
fn fresh_store_builds_from_the_pushed_image() {
    let env = Env::new();
    let (name, image) = build_and_push(&env);
    let fresh = env.path("fresh-store");
    let ctx = env.context(
        "child",
        &[("Dockerfile", &format!("FROM {name}\nRUN cat /srv/app.txt /srv/built.txt > /srv/both.txt\n"))],
    );
    let r = env.build_at(&fresh, &ctx, "child:1", &[]).ok();
    let steps = plain_steps(&r.stderr);
    assert!(steps.iter().any(|s| s.name.contains("RUN cat") && s.state == StepState::Done), "{r}");

    let child = inspect_at(&env, &fresh, "child:1");
    let parent_layers = layer_digests(&image);
    let child_layers = layer_digests(&child);
    assert_eq!(child_layers.len(), parent_layers.len() + 1);
    assert_eq!(child_layers[..parent_layers.len()], parent_layers[..], "the base layers are the pushed ones");
    assert_eq!(child["Config"]["config"]["Cmd"], serde_json::json!(["cat", "/srv/built.txt"]), "config inherited");
    let run_layer = blob_path(&fresh, child_layers.last().unwrap());
    assert_eq!(layer_file(&run_layer, "srv/both.txt"), "app\nbuilt\n");
    // The pulled base is named in the fresh store, like `docker pull` leaves it.
    assert!(common::store_names(&fresh).contains(&name), "{:?}", common::store_names(&fresh));
}

#[test]
fn pull_refuses_a_layer_that_does_not_match_its_digest() {
    let env = Env::new();
    let (name, image) = build_and_push(&env);
    // Flip one byte in the middle of the pushed COPY layer, keeping its size: the registry serves
    // the bytes under the old digest, as a corrupted or hostile mirror would.
    let digest = &layer_digests(&image)[1];
    let path = env.registry_blob(digest);
    let mut bytes = fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    fs::write(&path, bytes).unwrap();

    let fresh = env.path("fresh-store");
    let ctx = env.context("child", &[("Dockerfile", &format!("FROM {name}\nRUN cat /srv/app.txt\n"))]);
    let r = env.build_at(&fresh, &ctx, "child:1", &[]).fails();
    let short = &digest["sha256:".len().."sha256:".len() + 12];
    assert!(r.stderr.contains(short), "the error must name the bad layer {digest}:\n{r}");
    assert!(r.stderr.to_lowercase().contains("digest"), "the error must say the digest does not match:\n{r}");
    assert!(!common::store_names(&fresh).iter().any(|n| n.contains("child")), "no image from a failed build");
    assert!(!blob_path(&fresh, digest).exists(), "a blob that failed verification must not enter the store");
}

/// Base images come from the store first (as `docker build` uses an image it has); `--pull` asks
/// the registry again and takes what the name points at now.
#[test]
fn pull_flag_refreshes_a_stale_base() {
    let env = Env::new();
    let old_base = env.inspect(&env.base)["Descriptor"]["digest"].clone();
    // Somebody else pushes a new image under the base's name.
    let other = env.path("other-store");
    let ctx = env.context("newer", &[("Dockerfile", "FROM {BASE}\nRUN echo newer > /newer\n")]);
    env.build_at(&other, &ctx, &env.base, &["--push"]).ok();
    let new_base = inspect_at(&env, &other, &env.base)["Descriptor"]["digest"].clone();
    assert_ne!(old_base, new_base);

    let child =
        env.context("child", &[("Dockerfile", "FROM {BASE}\nRUN ls /newer > /seen 2>&1 || echo absent > /seen\n")]);
    let r = env.build(&child, "child:local", &[]).ok();
    assert!(r.stderr.contains(old_base.as_str().unwrap()), "the stored base is used without --pull:\n{r}");
    let image = env.inspect("child:local");
    assert_eq!(layer_file(&blob_path(&env.root, layer_digests(&image).last().unwrap()), "seen"), "absent\n");

    let r = env.build(&child, "child:pulled", &["--pull"]).ok();
    assert!(r.stderr.contains(new_base.as_str().unwrap()), "--pull resolves the name again:\n{r}");
    let image = env.inspect("child:pulled");
    assert_eq!(layer_file(&blob_path(&env.root, layer_digests(&image).last().unwrap()), "seen"), "/newer\n");
    assert_eq!(
        env.inspect(&env.base)["Descriptor"]["digest"],
        new_base,
        "the store's name now points at the pulled image"
    );
}
