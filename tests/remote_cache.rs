//! End to end: the build cache travels between machines (here, two store roots) through a
//! registry or a directory: `--cache-to` on one, `--cache-from` on the other with an empty store,
//! and the second build runs none of the steps the cache covers, giving the same image.

mod common;

use common::{Env, StepState, plain_steps, step};

const DOCKERFILE: &str = "FROM {BASE} AS tools
RUN echo tool > /tool

FROM {BASE}
ARG ROUND=1
COPY --from=tools /tool /tool
RUN --mount=type=cache,target=/cache echo $ROUND >> /cache/log && wc -l < /cache/log > /lines
COPY app.txt /app.txt
";

#[test]
fn a_registry_cache_lets_an_empty_store_run_nothing() {
    let env = Env::new();
    let ctx = env.context("rc", &[("Dockerfile", DOCKERFILE), ("app.txt", "app\n")]);
    let cache = format!("{}/cache/app:buildcache", env.registry.host);
    let to = format!("type=registry,ref={cache},mode=max,mounts=true");
    env.build(&ctx, "app:1", &["--cache-to", &to]).ok();
    let first = env.inspect("app:1")["Descriptor"]["digest"].clone();

    // A second machine: empty store, same registry.
    let other = env.path("other-store");
    let r = env.build_at(&other, &ctx, "app:1", &["--cache-from", &format!("type=registry,ref={cache}")]).ok();
    let steps = plain_steps(&r.stderr);
    for s in steps.iter().filter(|s| !s.name.contains("FROM")) {
        assert_eq!(s.state, StepState::Cached, "{} ran on the second machine:\n{r}", s.name);
    }
    assert_eq!(common::inspect_at(&env, &other, "app:1")["Descriptor"]["digest"], first, "same image");

    // The cache mount traveled too: a step that re-runs finds the first machine's log.
    let r = env.build_at(&other, &ctx, "app:2", &["--build-arg", "ROUND=2"]).ok();
    assert_eq!(step(&plain_steps(&r.stderr), "RUN --mount").state, StepState::Done, "{r}");
    let image = common::inspect_at(&env, &other, "app:2");
    let layers = common::layer_digests(&image);
    let run_layer = common::blob_path(&other, &layers[layers.len() - 2]);
    assert_eq!(common::layer_file(&run_layer, "lines").trim(), "2", "the seeded cache mount held one line");
}

#[test]
fn a_local_cache_and_mode_min_keep_only_the_final_images_steps() {
    let env = Env::new();
    let ctx = env.context("lc", &[("Dockerfile", DOCKERFILE), ("app.txt", "app\n")]);
    let dir = env.path("cache-dir");
    env.build(&ctx, "app:1", &["--cache-to", &format!("type=local,dest={}", dir.display())]).ok();
    assert!(dir.join("index.json").is_file() && dir.join("oci-layout").is_file(), "an OCI layout");

    let other = env.path("other-store");
    let r = env.build_at(&other, &ctx, "app:1", &["--cache-from", &format!("type=local,src={}", dir.display())]).ok();
    let steps = plain_steps(&r.stderr);
    // mode=min: the tools stage is not the final image's, so it runs again; the final image's
    // steps come from the cache.
    assert_eq!(step(&steps, "RUN echo tool").state, StepState::Done, "{r}");
    assert_eq!(step(&steps, "COPY app.txt").state, StepState::Cached, "{r}");
    assert_eq!(step(&steps, "RUN --mount").state, StepState::Cached, "{r}");
}

#[test]
fn cache_flags_are_checked() {
    let env = Env::new();
    let ctx = env.context("flags", &[("Dockerfile", "FROM {BASE}\n")]);
    let r = env.build(&ctx, "f:1", &["--cache-to", "type=inline,mounts=true"]).fails();
    assert!(r.stderr.contains("cannot carry cache mounts"), "{r}");
    let r = env.build(&ctx, "f:1", &["--cache-from", "type=inline"]).fails();
    assert!(r.stderr.contains("type=registry,ref=IMAGE"), "{r}");
    let r = env.build(&ctx, "f:1", &["--cache-to", "type=local,dest=/tmp/x,compression=lz4"]).fails();
    assert!(r.stderr.contains("compression=lz4"), "{r}");
    let r = env.build(&ctx, "f:1", &["--cache-to", "type=registry"]).fails();
    assert!(r.stderr.contains("needs ref="), "{r}");
    // An unreadable --cache-from only warns: the build goes on.
    let r = env.build(&ctx, "f:1", &["--cache-from", "type=local,src=/nonexistent/cache"]).ok();
    assert!(r.stderr.contains("importing cache from") || r.stderr.contains("warning"), "{r}");
}

/// The steps of a build that ran rather than came from a cache (base images aside).
fn ran(r: &common::Run) -> Vec<String> {
    plain_steps(&r.stderr)
        .into_iter()
        .filter(|s| !s.name.contains("FROM") && s.state != StepState::Cached)
        .map(|s| s.name)
        .collect()
}

#[test]
fn an_inline_cache_travels_in_the_image_itself() {
    let env = Env::new();
    let ctx = env.context("inline", &[("Dockerfile", DOCKERFILE), ("app.txt", "app\n")]);
    let image = format!("{}/inline/app:1", env.registry.host);
    env.build(&ctx, &image, &["--cache-to", "type=inline", "--push"]).ok();
    let pushed = env.inspect(&image);
    let records = pushed["Config"]["strata.cache.v1"]["records"].as_array().expect("an inline cache").len();
    // mode=min: the final image's RUN and two COPYs, not the tools stage's RUN.
    assert_eq!(records, 3, "{}", pushed["Config"]);

    // Another machine pulls the cache with the image's own name, as `type=registry` does with
    // BuildKit: none of the final image's steps runs, and the image is the same.
    let other = env.path("other-store");
    let r = env.build_at(&other, &ctx, &image, &["--cache-to", "type=inline", "--cache-from", &image]).ok();
    assert_eq!(ran(&r), ["[tools 2/2] RUN echo tool > /tool"], "only the tools stage runs:\n{r}");
    assert_eq!(common::inspect_at(&env, &other, &image)["Descriptor"], pushed["Descriptor"], "same image");

    // BUILDKIT_INLINE_CACHE=1 is the same request, and an image built on this one does not
    // inherit its cache.
    let third = env.path("third-store");
    env.build_at(&third, &ctx, "same:1", &["--build-arg", "BUILDKIT_INLINE_CACHE=1", "--cache-from", &image]).ok();
    let same = common::inspect_at(&env, &third, "same:1");
    assert_eq!(same["Descriptor"]["digest"], pushed["Descriptor"]["digest"], "{}", same["Config"]);
    let child = env.context("child", &[("Dockerfile", &format!("FROM {image}\nRUN true\n"))]);
    env.build_at(&other, &child, "child:1", &[]).ok();
    let config = &common::inspect_at(&env, &other, "child:1")["Config"];
    assert!(config.get("strata.cache.v1").is_none(), "inherited: {config}");
}

#[test]
fn a_cache_exported_with_zstd_layers() {
    let env = Env::new();
    let ctx = env.context("zstd", &[("Dockerfile", DOCKERFILE), ("app.txt", "app\n")]);
    let cache = format!("{}/cache/zstd:buildcache", env.registry.host);
    let to = format!("type=registry,ref={cache},mode=max,mounts=true,compression=zstd,compression-level=5");
    env.build(&ctx, "app:1", &["--cache-to", &to]).ok();
    let raw = common::skopeo(&["inspect", "--raw", "--tls-verify=false", &format!("docker://{cache}")]).ok();
    let manifest: serde_json::Value = serde_json::from_str(&raw.stdout).unwrap();
    let types: Vec<&str> =
        manifest["layers"].as_array().unwrap().iter().map(|l| l["mediaType"].as_str().unwrap()).collect();
    assert!(
        !types.is_empty() && types.iter().all(|t| *t == "application/vnd.oci.image.layer.v1.tar+zstd"),
        "{types:?}"
    );

    let other = env.path("other-store");
    let r = env.build_at(&other, &ctx, "app:1", &["--cache-from", &cache]).ok();
    assert!(ran(&r).is_empty(), "everything came from the zstd cache:\n{r}");
    // The image itself keeps the store's gzip layers' identity: same diff_ids as the first.
    let a = &env.inspect("app:1")["Config"]["rootfs"];
    assert_eq!(&common::inspect_at(&env, &other, "app:1")["Config"]["rootfs"], a);
}
