//! End to end: a RUN + COPY build like `shared/peers/cases/basic`, checked against what BuildKit
//! (docker buildx 0.13) writes for the same Dockerfile: the config, the history's `created_by`
//! strings and empty-layer flags, the layers and their contents.

mod common;

use std::fs;

use common::{Env, blob_path, host_arch, layer_digests, layer_entries, layer_file, missing_parents};
use serde_json::{Value, json};

const DOCKERFILE: &str = r#"FROM {BASE}
LABEL org.opencontainers.image.title="basic" maintainer="dev@example.com"
ENV APP_HOME=/srv/app GREETING="hello world"
WORKDIR $APP_HOME
COPY hello.txt ./
RUN echo "$GREETING from $(pwd)" > built.txt && echo "app:x:1000:1000::/home/app:/bin/sh" >> /etc/passwd
EXPOSE 8080/tcp 9090
USER app
CMD ["cat", "/srv/app/built.txt"]
"#;

fn build_basic(env: &Env) -> Value {
    let ctx = env.context("basic", &[("Dockerfile", DOCKERFILE), ("hello.txt", "hi there\n")]);
    let iid = env.path("iid");
    env.build(&ctx, "basic:1", &["--label", "extra=yes", "--iidfile", iid.to_str().unwrap()]).ok();
    let image = env.inspect("basic:1");
    let id = fs::read_to_string(&iid).expect("--iidfile written");
    assert_eq!(id, image["Manifest"]["config"]["digest"].as_str().unwrap(), "--iidfile holds the config digest");
    image
}

#[test]
fn basic_build_config_history_and_layers() {
    let env = Env::new();
    let image = build_basic(&env);
    assert_eq!(image["Name"], "docker.io/library/basic:1");
    let config = &image["Config"];
    let c = &config["config"];

    assert_eq!(config["os"], "linux");
    assert_eq!(config["architecture"], host_arch());
    assert_eq!(
        c["Env"],
        json!([
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "APP_HOME=/srv/app",
            "GREETING=hello world"
        ])
    );
    assert_eq!(c["WorkingDir"], "/srv/app");
    assert_eq!(c["User"], "app");
    assert_eq!(c["Cmd"], json!(["cat", "/srv/app/built.txt"]));
    assert_eq!(c["ArgsEscaped"], true, "BuildKit sets ArgsEscaped on Linux images");
    assert_eq!(c["ExposedPorts"], json!({"8080/tcp": {}, "9090/tcp": {}}));
    assert_eq!(
        c["Labels"],
        json!({"org.opencontainers.image.title": "basic", "maintainer": "dev@example.com", "extra": "yes"})
    );
    assert!(c.get("Entrypoint").is_none_or(Value::is_null), "no ENTRYPOINT was given: {c}");

    // History as BuildKit writes it: one entry per instruction after FROM, the base's first.
    let history = config["history"].as_array().expect("history");
    assert_eq!(history.len(), 9, "{history:#?}");
    assert_eq!(history[0]["comment"].as_str().map(|s| s.starts_with("Imported from")), Some(true), "{history:#?}");
    let expected: [(&str, bool); 8] = [
        ("LABEL org.opencontainers.image.title=basic maintainer=dev@example.com", true),
        ("ENV APP_HOME=/srv/app GREETING=hello world", true),
        ("WORKDIR /srv/app", false),
        ("COPY hello.txt ./ # buildkit", false),
        (
            "RUN /bin/sh -c echo \"$GREETING from $(pwd)\" > built.txt && echo \"app:x:1000:1000::/home/app:/bin/sh\" >> /etc/passwd # buildkit",
            false,
        ),
        ("EXPOSE map[8080/tcp:{} 9090/tcp:{}]", true),
        ("USER app", true),
        ("CMD [\"cat\" \"/srv/app/built.txt\"]", true),
    ];
    for (h, (created_by, empty)) in history[1..].iter().zip(expected) {
        assert_eq!(h["created_by"], created_by, "{h}");
        assert_eq!(h["comment"], "buildkit.dockerfile.v0", "{h}");
        assert_eq!(h["empty_layer"].as_bool().unwrap_or(false), empty, "empty_layer of {h}");
    }
    // BuildKit: the image's creation time is the last history entry's.
    assert_eq!(config["created"], history[8]["created"]);

    // Layers: base, WORKDIR (creates /srv/app), COPY, RUN.
    let manifest = &image["Manifest"];
    assert_eq!(manifest["mediaType"], "application/vnd.oci.image.manifest.v1+json");
    assert_eq!(manifest["config"]["mediaType"], "application/vnd.oci.image.config.v1+json");
    let layers = layer_digests(&image);
    assert_eq!(layers.len(), 4, "{manifest:#}");
    assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 4);
    assert_eq!(history.iter().filter(|h| !h["empty_layer"].as_bool().unwrap_or(false)).count(), 4);
    for l in manifest["layers"].as_array().unwrap() {
        assert_eq!(l["mediaType"], "application/vnd.oci.image.layer.v1.tar+gzip", "{l}");
        let blob = fs::read(blob_path(&env.root, l["digest"].as_str().unwrap())).expect("layer blob in the store");
        assert_eq!(blob.len() as u64, l["size"].as_u64().unwrap());
        assert_eq!(format!("sha256:{}", common::sha256_hex(&blob)), l["digest"].as_str().unwrap());
    }

    let workdir_layer = layer_entries(&blob_path(&env.root, &layers[1]));
    assert!(workdir_layer.iter().any(|e| e == "srv/app/"), "WORKDIR layer: {workdir_layer:?}");
    let copy_layer = blob_path(&env.root, &layers[2]);
    assert_eq!(layer_file(&copy_layer, "srv/app/hello.txt"), "hi there\n");
    let run_layer = blob_path(&env.root, &layers[3]);
    assert_eq!(layer_file(&run_layer, "srv/app/built.txt"), "hello world from /srv/app\n");
    let passwd = layer_file(&run_layer, "etc/passwd");
    assert!(passwd.starts_with("root:x:0:0:"), "{passwd}");
    assert!(passwd.ends_with("app:x:1000:1000::/home/app:/bin/sh\n"), "{passwd}");
    let run_entries = layer_entries(&run_layer);
    assert!(!run_entries.iter().any(|e| e.contains("hello.txt")), "RUN layer holds only its changes: {run_entries:?}");
}

/// BuildKit writes layers with containerd's tar change writer (`archive.ChangeWriter`), which
/// adds every parent directory of a changed path, whiteouts included, before the path itself
/// (`includeParents`), so each layer tar is self-contained. The reference chain (`docker26 buildx
/// build --load` + `docker26 push`) shows the same for the basic case: its COPY layer is `srv/`,
/// `srv/app/`, `srv/app/hello.txt`, and its RUN layer has `srv/` too.
#[test]
fn layers_include_parent_directories_like_buildkit() {
    let env = Env::new();
    let dockerfile = "FROM {BASE}
WORKDIR /srv/app
COPY hello.txt ./
RUN echo built > /srv/app/built.txt
RUN mkdir -p /deep/a/b && echo x > /deep/a/b/c && echo y > /deep/a/b/d
RUN rm /deep/a/b/c
RUN chmod 700 /deep/a/b
";
    let ctx = env.context("parents", &[("Dockerfile", dockerfile), ("hello.txt", "hi there\n")]);
    env.build(&ctx, "parents:1", &[]).ok();
    let image = env.inspect("parents:1");
    let layers = layer_digests(&image);
    assert_eq!(layers.len(), 7, "base, WORKDIR, COPY and 4 RUN layers");
    let mut problems = Vec::new();
    for (i, digest) in layers.iter().enumerate().skip(1) {
        let entries = layer_entries(&blob_path(&env.root, digest));
        let missing = missing_parents(&entries);
        if !missing.is_empty() {
            problems.push(format!("layer {i} ({digest}) lacks {missing:?}; its entries: {entries:?}"));
        }
    }
    assert!(problems.is_empty(), "layers without their parent directories:\n{}", problems.join("\n"));
}
