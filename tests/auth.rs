//! End to end: registries that require credentials (docker-registry with htpasswd). strata reads
//! them from docker's config.json in `$DOCKER_CONFIG`, for pushing and for pulling a base image;
//! without them, or with wrong ones, the error says so and names the registry.

mod common;

use std::fs;

use common::{Env, layer_digests, start_registry, write_docker_config};

#[test]
fn build_from_a_registry_that_needs_credentials() {
    // Env pushes the busybox base with the credentials in its DOCKER_CONFIG.
    let env = Env::with_registry(start_registry(Some(("tester", "s3cret"))), Some(("tester", "s3cret")));
    let ctx = env.context("auth", &[("Dockerfile", "FROM {BASE}\nRUN echo authed > /authed\n")]);

    // A fresh store must pull the base: with the credentials it works.
    let fresh = env.path("fresh-store");
    let r = env.build_at(&fresh, &ctx, "authed:1", &[]).ok();
    let image = common::inspect_at(&env, &fresh, "authed:1");
    let base = env.inspect(&env.base);
    assert_eq!(layer_digests(&image)[0], layer_digests(&base)[0], "{r}");

    // No credentials: a clear error naming the registry, and no image.
    let empty = env.path("empty-docker-config");
    fs::create_dir_all(&empty).unwrap();
    let other = env.path("store-no-creds");
    let r = env
        .strata_with(&other, &empty, &["build", "--progress", "plain", "-t", "nocreds:1", ctx.to_str().unwrap()])
        .fails();
    let lower = r.stderr.to_lowercase();
    assert!(r.stderr.contains(&env.registry.host), "names the registry:\n{r}");
    assert!(lower.contains("401") || lower.contains("unauthorized") || lower.contains("authentication"), "{r}");
    assert!(r.stderr.contains("config.json"), "says where it looked for credentials:\n{r}");
    assert!(!other.join("index.json").exists() || !common::store_names(&other).iter().any(|n| n.contains("nocreds")));

    // Wrong password: refused as well.
    let wrong = env.path("wrong-docker-config");
    write_docker_config(&wrong, &env.registry.host, "tester", "not-the-password");
    let r = env
        .strata_with(
            &env.path("store-wrong"),
            &wrong,
            &["build", "--progress", "plain", "-t", "wrong:1", ctx.to_str().unwrap()],
        )
        .fails();
    let lower = r.stderr.to_lowercase();
    assert!(lower.contains("401") || lower.contains("unauthorized") || lower.contains("authentication"), "{r}");

    // Pushing without credentials is refused too.
    let r = env.strata_with(&env.root, &empty, &["push", &env.base, &format!("{}/copy:1", env.registry.host)]).fails();
    assert!(r.stderr.to_lowercase().contains("401") || r.stderr.to_lowercase().contains("unauthorized"), "{r}");
}
