//! End to end: hostile build contexts, Dockerfiles and archives through the real `strata`
//! binary. Symlinks in a context that lead outside it are never followed out of it (COPY and
//! ADD resolve them inside the context, as BuildKit does; bind mounts refuse them), a context
//! copied whole keeps them as symlinks, archives from the corpus (`testdata/hostile/`) given to
//! ADD or `strata import` cannot write outside their destination, and every failure is an error
//! message, never a panic.

mod common;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use common::Env;

fn corpus(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/hostile").join(name)
}

/// A context next to an `outside` directory holding a secret, with symlinks to it.
fn hostile_context(env: &Env, dockerfile: &str) -> PathBuf {
    let outside = env.path("outside");
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("secret"), "the secret\n").unwrap();
    let ctx = env.context(
        &format!("ctx-{}", &common::sha256_hex(dockerfile.as_bytes())[..12]),
        &[("Dockerfile", dockerfile), ("plain", "plain\n")],
    );
    for (name, target) in
        [("abs", outside.to_str().unwrap()), ("rel", "../outside"), ("passwd", "/etc/passwd"), ("self", ".")]
    {
        let _ = fs::remove_file(ctx.join(name));
        symlink(target, ctx.join(name)).unwrap();
    }
    ctx
}

#[test]
fn context_symlinks_leading_outside_are_not_followed_out() {
    let env = Env::new();
    for (i, step) in
        ["COPY abs/secret /x", "COPY rel/secret /x", "COPY passwd /p", "ADD abs/secret /x", "COPY self/abs/secret /x"]
            .iter()
            .enumerate()
    {
        let ctx = hostile_context(&env, &format!("FROM {{BASE}}\n{step}\n"));
        let r = env.build(&ctx, &format!("h{i}:1"), &[]).fails();
        assert!(r.stderr.contains("not found"), "{step}:\n{r}");
        assert!(!r.stderr.contains("the secret"), "{r}");
    }
    let ctx = hostile_context(&env, "FROM {BASE}\nRUN --mount=type=bind,source=abs,target=/m cat /m/secret\n");
    let r = env.build(&ctx, "hm:1", &[]).fails();
    // As in BuildKit, the link resolves inside the context, where its target does not exist.
    assert!(r.stderr.contains("not in the build context") && r.stderr.contains("not found"), "{r}");
    assert!(!r.stderr.contains("the secret"), "{r}");

    // Copied whole, the context keeps its symlinks as symlinks: no secret in the image.
    let ctx = hostile_context(&env, "FROM {BASE}\nCOPY . /ctx\nRUN cat /ctx/abs/secret || echo absent\n");
    let r = env.build(&ctx, "whole:1", &[]).ok();
    assert!(r.stderr.contains("absent") && !r.stderr.contains("the secret"), "{r}");
    let link = env.strata(&["run", "whole:1", "readlink", "/ctx/rel"]).ok();
    assert_eq!(link.stdout, "../outside\n");
}

#[test]
fn a_dockerfile_that_is_a_symlink_out_of_the_context() {
    // As docker's client does, the Dockerfile is read wherever its link points (it is the
    // user's own file, given on the command line); what it copies is still confined.
    let env = Env::new();
    let ctx = hostile_context(&env, "unused");
    let real = env.path("elsewhere.Dockerfile");
    fs::write(&real, format!("FROM {}\nCOPY plain /plain\nCOPY abs/secret /x\n", env.base)).unwrap();
    fs::remove_file(ctx.join("Dockerfile")).unwrap();
    symlink(&real, ctx.join("Dockerfile")).unwrap();
    let r = env.build(&ctx, "df:1", &[]).fails();
    assert!(r.stderr.contains("COPY abs/secret") && r.stderr.contains("not found"), "{r}");
    // A dangling Dockerfile link is a clear error.
    fs::remove_file(&real).unwrap();
    let r = env.build(&ctx, "df:2", &[]).fails();
    assert!(r.stderr.contains("Dockerfile"), "{r}");
}

#[test]
fn hostile_archives_through_add_and_import() {
    let env = Env::new();
    let ctx = env.context("add", &[("Dockerfile", "FROM {BASE}\nADD evil.tar /\n")]);
    fs::copy(corpus("layer-dotdot.tar"), ctx.join("evil.tar")).unwrap();
    let r = env.build(&ctx, "add:1", &[]).fails();
    assert!(r.stderr.contains("escapes the destination"), "{r}");

    for (name, needle) in [
        ("layer-dotdot.tar", "escapes the destination"),
        ("layer-hardlink-outside.tar", "escapes the destination"),
        ("layer-gnu-sparse-huge.tar", "sparse files are not supported"),
        ("layer-huge-declared-size.tar", "truncated"),
        ("layer-truncated.tar.gz", ""),
    ] {
        let r = env.strata(&["import", corpus(name).to_str().unwrap(), "-t", "imp:1"]).fails();
        assert!(r.stderr.contains(needle), "{name}:\n{r}");
    }
    // Absolute names land inside the image's root filesystem.
    env.strata(&["import", corpus("layer-absolute.tar").to_str().unwrap(), "-t", "abs:1"]).ok();
    let i = env.inspect("abs:1");
    let layer = common::blob_path(&env.root, &common::layer_digests(&i)[0]);
    assert_eq!(common::layer_file(&layer, "etc/evil"), "inside");
    let f = env.strata(&["fsck"]).ok();
    assert!(f.stdout.contains("no problems"), "{f}");
}
