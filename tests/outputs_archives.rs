//! End to end: `-o type=oci` and `-o type=docker` archives (tarballs, a layout directory,
//! stdout) read back by skopeo (`oci-archive:`, `docker-archive:`, `oci:`), validated by
//! oci-image-tool and unpacked by umoci; `--metadata-file` agrees with what was written.

mod common;

use std::fs;
use std::process::{Command, Stdio};

use common::{Env, STRATA, run, sha256_hex, skopeo, tool};
use serde_json::Value;

const DOCKERFILE: &str = "FROM {BASE}\nRUN echo hi > /hi && rm /bin/vi\nCMD [\"cat\", \"/hi\"]\n";

fn read_json(path: &std::path::Path) -> Value {
    serde_json::from_slice(&fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

#[test]
fn oci_and_docker_archives_read_back_with_other_tools() {
    let env = Env::new();
    let ctx = env.context("arch", &[("Dockerfile", DOCKERFILE)]);
    let name = format!("{}/arch/app:1", env.registry.host);
    let (oci_tar, docker_tar, layout, meta) =
        (env.path("img.tar"), env.path("docker.tar"), env.path("layout"), env.path("meta.json"));
    let r = env
        .build(
            &ctx,
            &name,
            &[
                "--metadata-file",
                meta.to_str().unwrap(),
                "-o",
                &format!("type=oci,dest={}", oci_tar.display()),
                "-o",
                &format!("type=docker,dest={}", docker_tar.display()),
                "-o",
                &format!("type=oci,dest={},tar=false", layout.display()),
            ],
        )
        .ok();
    assert!(!env.names().contains(&name), "no image output: the store's names are untouched:\n{r}");

    // The metadata file, as buildx writes it.
    let m = read_json(&meta);
    let digest = m["containerimage.digest"].as_str().unwrap().to_string();
    let config_digest = m["containerimage.config.digest"].as_str().unwrap().to_string();
    assert_eq!(m["containerimage.descriptor"]["digest"], digest);
    assert_eq!(m["containerimage.descriptor"]["mediaType"], "application/vnd.oci.image.manifest.v1+json");
    assert_eq!(m["image.name"], name);

    // OCI tarball: skopeo finds the image by its tag and reads every blob.
    let summary: Value =
        serde_json::from_str(&skopeo(&["inspect", &format!("oci-archive:{}", oci_tar.display())]).ok().stdout).unwrap();
    assert_eq!(summary["Digest"], digest);
    assert_eq!(summary["Layers"].as_array().unwrap().len(), 2);
    let raw = skopeo(&["inspect", "--raw", &format!("oci-archive:{}:1", oci_tar.display())]).ok();
    assert_eq!(format!("sha256:{}", sha256_hex(raw.stdout.as_bytes())), digest);
    let listing = run(Command::new(tool("tar", "tar")).arg("-tvf").arg(&oci_tar)).ok();
    let names: Vec<&str> = listing.stdout.lines().map(|l| l.split_whitespace().last().unwrap()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "entries are sorted by name");
    assert_eq!(names[..2], ["blobs/", "blobs/sha256/"]);
    assert!(
        listing
            .stdout
            .lines()
            .filter(|l| l.contains("blobs/sha256/") && !l.ends_with('/'))
            .all(|l| l.starts_with("-r--r--r-- 0/0"))
    );

    // The layout directory: oci-image-tool validates it, umoci unpacks it.
    let index = read_json(&layout.join("index.json"));
    assert_eq!(index["manifests"][0]["annotations"]["io.containerd.image.name"], name);
    assert_eq!(index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"], "1");
    let r =
        run(Command::new(tool("oci-image-tool", "oci-image-tool")).args(["validate", "--type", "image"]).arg(&layout))
            .ok();
    assert!(r.stdout.contains("Validation succeeded") || r.stderr.contains("Validation succeeded"), "{r}");
    let bundle = env.path("bundle");
    run(Command::new(tool("umoci", "umoci"))
        .args(["unpack", "--image", &format!("{}:1", layout.display())])
        .arg(&bundle))
    .ok();
    assert_eq!(fs::read_to_string(bundle.join("rootfs/hi")).unwrap(), "hi\n");
    assert!(bundle.join("rootfs/bin/sh").symlink_metadata().is_ok() && !bundle.join("rootfs/bin/vi").exists());

    // Docker archive: manifest.json names the image; Docker media types; same config (image ID).
    let docker = format!("docker-archive:{}", docker_tar.display());
    let raw = skopeo(&["inspect", "--raw", &docker]).ok();
    let manifest: Value = serde_json::from_str(&raw.stdout).unwrap();
    assert_eq!(manifest["mediaType"], "application/vnd.docker.distribution.manifest.v2+json");
    assert_eq!(manifest["config"]["digest"], config_digest);
    assert!(
        manifest["layers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["mediaType"] == "application/vnd.docker.image.rootfs.diff.tar.gzip")
    );
    let summary: Value = serde_json::from_str(&skopeo(&["inspect", &docker]).ok().stdout).unwrap();
    assert_eq!(summary["Layers"].as_array().unwrap().len(), 2);
    // skopeo also finds it by the name manifest.json gives it.
    skopeo(&["inspect", &format!("{docker}:{name}")]).ok();
    // What `docker load` reads: manifest.json pointing at the blobs.
    let extracted = env.path("docker-extracted");
    fs::create_dir_all(&extracted).unwrap();
    run(Command::new(tool("tar", "tar")).arg("-xf").arg(&docker_tar).arg("-C").arg(&extracted)).ok();
    let mj = read_json(&extracted.join("manifest.json"));
    assert_eq!(mj[0]["Config"], format!("blobs/sha256/{}", &config_digest[7..]));
    assert_eq!(mj[0]["RepoTags"], serde_json::json!([name.clone()]));
    for l in mj[0]["Layers"].as_array().unwrap() {
        assert!(extracted.join(l.as_str().unwrap()).is_file(), "{l}");
    }
    // The archive goes to a registry as it is.
    let pushed = format!("docker://{}/from-archive:1", env.registry.host);
    skopeo(&["copy", "--quiet", "--dest-tls-verify=false", &docker, &pushed]).ok();
    let config: Value =
        serde_json::from_str(&skopeo(&["inspect", "--tls-verify=false", "--config", "--raw", &pushed]).ok().stdout)
            .unwrap();
    assert_eq!(config["config"]["Cmd"], serde_json::json!(["cat", "/hi"]));
}

#[test]
fn archives_go_to_stdout_and_bad_outputs_are_refused_before_building() {
    let env = Env::new();
    let ctx = env.context("stdout", &[("Dockerfile", DOCKERFILE)]);
    let out = Command::new(STRATA)
        .arg("--root")
        .arg(&env.root)
        .args(["build", "--progress", "plain", "-t", "s:1", "-o", "type=oci,dest=-"])
        .arg(&ctx)
        .env("DOCKER_CONFIG", &env.docker_config)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let tar = env.path("from-stdout.tar");
    fs::write(&tar, &out.stdout).unwrap();
    let summary: Value =
        serde_json::from_str(&skopeo(&["inspect", &format!("oci-archive:{}", tar.display())]).ok().stdout).unwrap();
    assert_eq!(summary["Layers"].as_array().unwrap().len(), 2);

    for (spec, needle) in [
        ("type=oci", "needs dest"),
        ("type=docker,dest=x.tar,compression=lz4", "unknown compression"),
        ("type=image,compression=zstd,compression-level=40", "invalid compression level 40"),
        ("type=local,dest=-", "not possible"),
    ] {
        let r = env.build(&ctx, "bad:1", &["-o", spec]).fails();
        assert!(r.stderr.contains(needle), "{spec}:\n{r}");
        assert!(!r.stderr.contains("#1 "), "refused before building:\n{r}");
    }
    let r = env.build(&ctx, "bad:1", &["-o", "type=tar,dest=-", "-o", "type=oci,dest=-"]).fails();
    assert!(r.stderr.contains("only one output can go to stdout"), "{r}");
    // A destination that cannot be written: an error, and no partial file.
    let missing = env.path("no-such-dir/img.tar");
    let r = env.build(&ctx, "bad:1", &["-o", &format!("type=oci,dest={}", missing.display())]).fails();
    assert!(r.stderr.contains("no-such-dir"), "{r}");
    assert!(!missing.parent().unwrap().exists());
}
