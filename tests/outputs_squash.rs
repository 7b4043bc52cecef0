//! End to end: `--squash` merges the layers a build adds into one layer over the base image (as
//! buildah's `--squash` and Docker's squash do): the base layers are untouched, every history
//! entry is kept (the merged ones marked empty) plus one for the merged layer, the layer holds
//! the net change (a file made and deleted within the build is absent, a deleted base file is a
//! whiteout), and the image's root filesystem is the same as without squashing.

mod common;

use std::process::Command;

use common::{Env, blob_path, layer_digests, layer_entries, run, tool};
use serde_json::Value;

const DOCKERFILE: &str = "FROM {BASE}
RUN echo a > /a && mkdir -p /opt/app && echo 1 > /opt/app/v
ENV MODE=squashed
RUN rm /bin/vi && echo b > /b && echo 2 > /opt/app/v
RUN rm /a
CMD [\"cat\", \"/b\"]
";

fn history(image: &Value) -> Vec<Value> {
    image["Config"]["history"].as_array().unwrap().clone()
}

#[test]
fn squash_merges_the_new_layers_over_the_base() {
    let env = Env::new();
    let ctx = env.context("sq", &[("Dockerfile", DOCKERFILE)]);
    let (plain_tar, squashed_tar) = (env.path("plain.tar"), env.path("squashed.tar"));
    env.build(&ctx, "plain:1", &["-o", "type=image", "-o", &format!("type=tar,dest={}", plain_tar.display())]).ok();
    env.build(
        &ctx,
        "squashed:1",
        &["--squash", "-o", "type=image", "-o", &format!("type=tar,dest={}", squashed_tar.display())],
    )
    .ok();
    let (plain, squashed, base) = (env.inspect("plain:1"), env.inspect("squashed:1"), env.inspect(&env.base));

    let layers = layer_digests(&squashed);
    assert_eq!(layers.len(), 2, "the base layer and one merged layer");
    assert_eq!(layers[0], layer_digests(&base)[0]);
    assert_eq!(squashed["Config"]["rootfs"]["diff_ids"][0], base["Config"]["rootfs"]["diff_ids"][0]);
    let (ph, sh) = (history(&plain), history(&squashed));
    assert_eq!(sh.len(), ph.len() + 1, "every entry kept, one added");
    for (p, s) in ph.iter().zip(&sh) {
        assert_eq!(p["created_by"], s["created_by"]);
    }
    let non_empty: Vec<&Value> = sh.iter().filter(|h| h["empty_layer"] != true).collect();
    assert_eq!(non_empty.len(), 2, "as many non-empty entries as layers");
    assert!(sh.last().unwrap()["comment"].as_str().unwrap().contains("merge of 3 layers"), "{sh:#?}");
    assert_eq!(squashed["Config"]["config"]["Env"], plain["Config"]["config"]["Env"]);

    // The merged layer holds the net change.
    let entries = layer_entries(&blob_path(&env.root, &layers[1]));
    for want in ["b", "bin/.wh.vi", "opt/app/v"] {
        assert!(entries.iter().any(|e| e == want), "{want} in {entries:?}");
    }
    assert!(
        !entries.iter().any(|e| e == "a" || e.ends_with(".wh.a")),
        "made and deleted within the build: {entries:?}"
    );
    let v =
        run(Command::new(tool("tar", "tar")).arg("-xzOf").arg(blob_path(&env.root, &layers[1])).arg("opt/app/v")).ok();
    assert_eq!(v.stdout, "2\n");

    // Same root filesystem as the unsquashed image.
    let names = |tar: &std::path::Path| {
        let l = run(Command::new(tool("tar", "tar")).arg("-tf").arg(tar)).ok();
        l.stdout.lines().map(str::to_string).collect::<Vec<_>>()
    };
    assert_eq!(names(&squashed_tar), names(&plain_tar));

    // And it runs.
    let r = env.strata(&["run", "--rm", "squashed:1"]).ok();
    assert_eq!(r.stdout, "b\n");
}
