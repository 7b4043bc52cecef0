//! End to end: the store is an OCI image layout that other tools read as it is: skopeo's `oci:`
//! transport finds images by their `org.opencontainers.image.ref.name`, and Debian's
//! `oci-image-tool validate` checks the layout, index, manifests, configs and blob digests against
//! the image-spec schemas.

mod common;

use std::process::Command;

use common::{Env, layer_digests, run, skopeo, tool};
use serde_json::Value;

#[test]
fn store_is_an_oci_layout_other_tools_read() {
    let env = Env::new();
    let ctx = env.context(
        "app",
        &[
            (
                "Dockerfile",
                "FROM {BASE}\nCOPY a.txt /a.txt\nRUN rm /etc/group && echo x > /x\nENTRYPOINT [\"/bin/sh\"]\n",
            ),
            ("a.txt", "a\n"),
        ],
    );
    let name = format!("{}/app:v1", env.registry.host);
    env.build(&ctx, &name, &[]).ok();
    let image = env.inspect(&name);

    let layout = std::fs::read_to_string(env.root.join("oci-layout")).expect("oci-layout file");
    let layout: Value = serde_json::from_str(&layout).unwrap();
    assert_eq!(layout["imageLayoutVersion"], "1.0.0");
    assert!(common::store_names(&env.root).contains(&name));

    // skopeo reads the image from the store by its full name.
    let oci = format!("oci:{}:{name}", env.root.display());
    let r = skopeo(&["inspect", &oci]).ok();
    let summary: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(summary["Digest"], image["Descriptor"]["digest"]);
    let want: Vec<Value> = layer_digests(&image).into_iter().map(Value::from).collect();
    assert_eq!(summary["Layers"], Value::from(want));
    let raw = skopeo(&["inspect", "--raw", "--config", &oci]).ok();
    let config: Value = serde_json::from_str(&raw.stdout).unwrap();
    assert_eq!(config["config"]["Entrypoint"], serde_json::json!(["/bin/sh"]));
    // ... and copies it out (reading and checking every blob).
    let out = env.path("copy");
    skopeo(&["copy", "--quiet", &oci, &format!("oci:{}:copied", out.display())]).ok();

    // oci-image-tool 1.0.0-rc1 answers `--type imageLayout` with "unimplemented"; `--type image`
    // on a directory autodetects the layout and validates every ref in index.json. It reads every
    // file under the directory, so first the layout proper (oci-layout, index.json, blobs/) alone,
    // to tell content errors from errors about the store's other files.
    let validate = tool("oci-image-tool", "oci-image-tool");
    let proper = env.path("layout-only");
    std::fs::create_dir_all(&proper).unwrap();
    run(Command::new("cp")
        .arg("-a")
        .args(["oci-layout", "index.json", "blobs"].map(|f| env.root.join(f)))
        .arg(&proper))
    .ok();
    let r = run(Command::new(&validate).args(["validate", "--type", "image"]).arg(&proper)).ok();
    assert!(r.stdout.contains("Validation succeeded") || r.stderr.contains("Validation succeeded"), "{r}");
    let r = run(Command::new(&validate)
        .args(["validate", "--type", "image", "--ref", &format!("name={name}")])
        .arg(&proper))
    .ok();
    assert!(r.stdout.contains(&format!("reference [name={name}]: OK")), "{r}");

    // umoci unpacks the image from the store root in place, by its full name.
    let bundle = env.path("bundle");
    run(Command::new(tool("umoci", "umoci"))
        .args(["unpack", "--image", &format!("{}:{name}", env.root.display())])
        .arg(&bundle))
    .ok();
    assert_eq!(std::fs::read_to_string(bundle.join("rootfs/x")).unwrap(), "x\n");
    assert!(!bundle.join("rootfs/etc/group").exists(), "the whiteout applies");
    // (oci-image-tool opens every file under the directory it is given, and the store root
    // also holds unpacked layers whose whiteouts are device nodes; so it is given the layout
    // files above, which is what it validates. README, "The store".)
}

/// oci-image-tool really checks blobs: a store whose config blob no longer matches its descriptor
/// fails validation. (Guards the test above against a validator that accepts anything.)
#[test]
fn oci_image_tool_rejects_a_corrupted_store() {
    let env = Env::new();
    let image = env.inspect(&env.base);
    let config = common::blob_path(&env.root, image["Manifest"]["config"]["digest"].as_str().unwrap());
    let mut perms = std::fs::metadata(&config).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(&config, perms).unwrap();
    std::fs::write(&config, "{\"architecture\": 5}").unwrap();
    let r = run(Command::new(tool("oci-image-tool", "oci-image-tool"))
        .args(["validate", "--type", "image"])
        .arg(&env.root));
    assert!(!r.success(), "{r}");
}
