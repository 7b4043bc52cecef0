//! End to end: `strata import` of a directory, a plain tar and a gzip tar (and a hostile tar);
//! `strata images`, `strata inspect`, `strata tag`/`rmi`; `strata debug parse` in BuildKit's
//! parser-test result format.

mod common;

use std::collections::BTreeSet;
use std::process::Command;

use common::{Env, blob_path, layer_digests, layer_entries, run, tool};

/// The set of entry names of an image's only layer.
fn only_layer_entries(env: &Env, name: &str) -> BTreeSet<String> {
    let image = env.inspect(name);
    let layers = layer_digests(&image);
    assert_eq!(layers.len(), 1, "an imported image has one layer: {image:#}");
    layer_entries(&blob_path(&env.root, &layers[0])).into_iter().map(|e| e.trim_end_matches('/').to_string()).collect()
}

#[test]
fn import_directory_plain_tar_and_gzip_tar() {
    let env = Env::new();
    let rootfs = env.path("busybox-rootfs"); // made by Env::new
    let tar = env.path("rootfs.tar");
    run(Command::new(tool("tar", "tar")).arg("-cf").arg(&tar).arg("-C").arg(&rootfs).arg(".")).ok();
    let tgz = env.path("rootfs.tar.gz");
    let gz = tool("gzip", "gzip");
    run(Command::new("sh").arg("-c").arg(format!("{} -c {} > {}", gz.display(), tar.display(), tgz.display()))).ok();

    let from_dir = only_layer_entries(&env, &env.base);
    assert!(from_dir.contains("bin/busybox") && from_dir.contains("etc/passwd"), "{from_dir:?}");
    for (file, name) in [(&tar, "imported:plain"), (&tgz, "imported:gzip")] {
        let r = env.strata(&["import", file.to_str().unwrap(), "-t", name]).ok();
        let image = env.inspect(name);
        assert_eq!(
            r.stdout.trim(),
            image["Manifest"]["config"]["digest"].as_str().unwrap(),
            "import prints the image id"
        );
        let config = &image["Config"];
        assert_eq!(config["os"], "linux");
        assert_eq!(config["architecture"], common::host_arch());
        assert_eq!(image["Manifest"]["layers"][0]["mediaType"], "application/vnd.oci.image.layer.v1.tar+gzip");
        let history = config["history"].as_array().unwrap();
        assert_eq!(history.len(), 1);
        assert!(history[0]["comment"].as_str().unwrap().starts_with("Imported from"), "{history:?}");
        assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 1);
        assert_eq!(only_layer_entries(&env, name), from_dir, "{name} holds the same tree as the directory import");
    }

    // The imported image is a working base: a build FROM it runs its shell.
    let ctx =
        env.context("on-import", &[("Dockerfile", "FROM imported:gzip\nRUN busybox | head -1 > /v && test -s /v\n")]);
    env.build(&ctx, "on-import:1", &[]).ok();

    // `strata images` lists every name (familiar form for docker.io), `-q` the digests.
    let r = env.strata(&["images"]).ok();
    let listed: Vec<&str> = r.stdout.lines().skip(1).filter_map(|l| l.split_whitespace().next()).collect();
    for want in ["imported:plain", "imported:gzip", "on-import:1", env.base.as_str()] {
        assert!(listed.contains(&want), "{want} missing from strata images:\n{}", r.stdout);
    }
    assert!(r.stdout.lines().next().unwrap().starts_with("NAME"), "{}", r.stdout);
    let q = env.strata(&["images", "-q"]).ok();
    let plain_digest = env.inspect("imported:plain")["Descriptor"]["digest"].as_str().unwrap().to_string();
    assert!(q.stdout.lines().any(|l| l == plain_digest), "{}", q.stdout);

    // tag and rmi.
    env.strata(&["tag", "imported:plain", "again:1"]).ok();
    assert_eq!(env.inspect("again:1")["Descriptor"]["digest"], plain_digest.as_str());
    env.strata(&["rmi", "again:1"]).ok();
    env.strata(&["inspect", "again:1"]).fails();
    assert_eq!(
        env.inspect("imported:plain")["Descriptor"]["digest"],
        plain_digest.as_str(),
        "rmi removes one name only"
    );
}

#[test]
fn import_refuses_a_tar_that_escapes_the_root() {
    let env = Env::new();
    let src = env.path("evil-src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("f"), "pwned\n").unwrap();
    let evil = env.path("evil.tar");
    // GNU tar keeps a leading ../ only with -P.
    run(Command::new(tool("tar", "tar"))
        .arg("-cPf")
        .arg(&evil)
        .arg("-C")
        .arg(&src)
        .arg("--transform=s,^f$,../../escaped-by-strata-e2e,")
        .arg("f"))
    .ok();
    let r = env.strata(&["import", evil.to_str().unwrap(), "-t", "evil:1"]).fails();
    assert!(r.stderr.contains("escaped-by-strata-e2e"), "the error names the entry:\n{r}");
    assert!(!env.names().iter().any(|n| n.contains("evil")), "no image from a refused archive");
    for dir in [env.root.clone(), env.root.join("snapshots"), env.dir.path().to_path_buf(), std::env::temp_dir()] {
        assert!(!dir.join("escaped-by-strata-e2e").exists(), "written outside the root: {}", dir.display());
    }
}

#[test]
fn inspect_of_an_unknown_name_fails_clearly() {
    let env = Env::new();
    let r = env.strata(&["inspect", "no-such-image:1"]).fails();
    assert!(r.stderr.contains("no-such-image:1") && r.stderr.contains("not in the store"), "{r}");
    assert!(r.stdout.is_empty(), "{r}");
    let r = env.strata(&["push", "no-such-image:1"]).fails();
    assert!(r.stderr.contains("no-such-image:1"), "{r}");
}

#[test]
fn debug_parse_prints_buildkit_result_format() {
    let env = Env::new();
    let df = env.path("Dockerfile.parse");
    std::fs::write(
        &df,
        "# syntax=docker/dockerfile:1\nFROM busybox AS base\nCOPY --chown=1:1 --from=base a b /dst/\n\
         RUN echo \"hi\" \\\n && true\nCMD [\"sh\", \"-c\", \"echo a\"]\nENV A=1 B=\"two words\"\nLABEL x y\n\
         ONBUILD RUN make\nHEALTHCHECK --interval=5s CMD [\"true\"]\nEXPOSE 80/tcp 443\n",
    )
    .unwrap();
    let r = env.strata(&["debug", "parse", df.to_str().unwrap()]).ok();
    let want = "(from \"busybox\" \"AS\" \"base\")\n\
                (copy [\"--chown=1:1\" \"--from=base\"] \"a\" \"b\" \"/dst/\")\n\
                (run \"echo \\\"hi\\\"  && true\")\n\
                (cmd \"sh\" \"-c\" \"echo a\")\n\
                (env \"A\" \"1\" \"=\" \"B\" \"\\\"two words\\\"\" \"=\")\n\
                (label \"x\" \"y\" \"\")\n\
                (onbuild (run \"make\"))\n\
                (healthcheck [\"--interval=5s\"] \"CMD\" \"true\")\n\
                (expose \"80/tcp\" \"443\")\n";
    assert_eq!(r.stdout, want, "{r}");

    let bad = env.path("Dockerfile.bad");
    std::fs::write(&bad, "FROM busybox\nENV\n").unwrap();
    let r = env.strata(&["debug", "parse", bad.to_str().unwrap()]).fails();
    assert!(r.stderr.contains(":2"), "the line of the bad instruction:\n{r}");
}
