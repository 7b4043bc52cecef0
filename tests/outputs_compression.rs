//! End to end: layer compression. `--compression=zstd` (and `-o type=image,compression=…` as
//! buildx spells it) gives new layers the OCI zstd media type, base layers keep theirs unless
//! `force-compression=true`; `uncompressed` layers are their diff_ids; a level makes a variant
//! once, which later builds reuse instead of compressing again. skopeo and a fresh store read
//! the pushed zstd image.

mod common;

use std::fs;

use common::{Env, blob_path, layer_digests, skopeo};
use serde_json::Value;

const DOCKERFILE: &str = "FROM {BASE}\nRUN echo zstd > /z && seq 1 20000 > /numbers\n";

fn media_types(image: &Value) -> Vec<String> {
    image["Manifest"]["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["mediaType"].as_str().unwrap().to_string())
        .collect()
}

fn blob_count(root: &std::path::Path) -> usize {
    fs::read_dir(root.join("blobs/sha256")).unwrap().count()
}

#[test]
fn zstd_uncompressed_and_levels() {
    let env = Env::new();
    let ctx = env.context("z", &[("Dockerfile", DOCKERFILE)]);
    let name = format!("{}/z/app:1", env.registry.host);
    env.build(&ctx, &name, &["--compression", "zstd", "--push"]).ok();
    let image = env.inspect(&name);
    assert_eq!(
        media_types(&image),
        ["application/vnd.oci.image.layer.v1.tar+gzip", "application/vnd.oci.image.layer.v1.tar+zstd"]
    );
    let top = layer_digests(&image)[1].clone();
    assert_eq!(&fs::read(blob_path(&env.root, &top)).unwrap()[..4], &[0x28, 0xb5, 0x2f, 0xfd], "zstd magic");

    // Other tools and a fresh store read it.
    let docker = format!("docker://{name}");
    skopeo(&["copy", "--quiet", "--src-tls-verify=false", &docker, &format!("oci:{}:z", env.path("copy").display())])
        .ok();
    let fresh = env.path("fresh");
    let child = env.context("child", &[("Dockerfile", &format!("FROM {name}\nRUN cat /z > /seen\n"))]);
    env.build_at(&fresh, &child, "child:1", &[]).ok();
    let child_image = common::inspect_at(&env, &fresh, "child:1");
    assert_eq!(layer_digests(&child_image)[..2], layer_digests(&image)[..]);

    // force-compression converts the base layer too, as buildx spells it.
    let forced = format!("{}/z/forced:1", env.registry.host);
    env.build(&ctx, &forced, &["-o", "type=image,compression=zstd,force-compression=true"]).ok();
    assert!(media_types(&env.inspect(&forced)).iter().all(|m| m.ends_with("+zstd")));
    assert_eq!(env.inspect(&forced)["Manifest"]["config"], image["Manifest"]["config"], "same config: same image ID");

    // Uncompressed: the blob is the tar, its digest the diff_id.
    env.build(&ctx, "plain:1", &["--compression", "uncompressed"]).ok();
    let plain = env.inspect("plain:1");
    assert_eq!(media_types(&plain)[1], "application/vnd.oci.image.layer.v1.tar");
    assert_eq!(layer_digests(&plain)[1], plain["Config"]["rootfs"]["diff_ids"][1].as_str().unwrap());

    // A level: one conversion, remembered; a rebuild compresses nothing again.
    env.build(&ctx, "level:1", &["-o", "type=image,compression=zstd,compression-level=19"]).ok();
    let level = env.inspect("level:1");
    assert!(media_types(&level)[1].ends_with("+zstd"));
    let diff_id = plain["Config"]["rootfs"]["diff_ids"][1].as_str().unwrap().to_string();
    let record: Value =
        serde_json::from_slice(&fs::read(env.root.join("layer-variants").join(&diff_id[7..])).unwrap()).unwrap();
    assert_eq!(record["zstd-19"]["digest"], layer_digests(&level)[1].as_str());
    let before = blob_count(&env.root);
    env.build(&ctx, "level:2", &["-o", "type=image,compression=zstd,compression-level=19"]).ok();
    assert_eq!(blob_count(&env.root), before, "no new blob: the variant was reused");
    assert_eq!(env.inspect("level:2")["Descriptor"]["digest"], level["Descriptor"]["digest"]);

    // Bad values are refused.
    let r = env.build(&ctx, "bad:1", &["--compression", "lz4"]).fails();
    assert!(r.stderr.contains("unknown compression \"lz4\""), "{r}");
    let r = env.build(&ctx, "bad:1", &["--compression", "gzip", "--compression-level", "12"]).fails();
    assert!(r.stderr.contains("invalid compression level 12 for gzip"), "{r}");
}
