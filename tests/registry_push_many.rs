//! End to end: one build pushed under several tags, repositories and registries (`--push` with
//! several `-t`, `-o type=registry,name=…`); every destination serves the same manifest, and
//! the store remembers where its blobs went (for cross-repository mounts).

mod common;

use common::{Env, layer_digests, sha256_hex, skopeo, start_registry};

#[test]
fn push_to_several_tags_repositories_and_registries() {
    let env = Env::new();
    let other = start_registry(None);
    let ctx = env.context("many", &[("Dockerfile", "FROM {BASE}\nRUN echo many > /many\n")]);
    let a = env.registry.host.clone();
    let tags = [format!("{a}/x:1"), format!("{a}/x:2"), format!("{a}/y:1"), format!("{}/x:1", other.host)];
    let mut args = vec!["--push"];
    for t in &tags[1..] {
        args.push("-t");
        args.push(t);
    }
    let r = env.build(&ctx, &tags[0], &args).ok();
    let image = env.inspect(&tags[0]);
    let digest = image["Descriptor"]["digest"].as_str().unwrap();
    for t in &tags {
        assert!(r.stderr.contains(&format!("pushed {t}@{digest}")), "{t}:\n{r}");
        let raw = skopeo(&["inspect", "--tls-verify=false", "--raw", &format!("docker://{t}")]).ok();
        assert_eq!(format!("sha256:{}", sha256_hex(raw.stdout.as_bytes())), digest, "{t}");
    }
    // The store knows which repositories hold the new layer.
    let layer = &layer_digests(&image)[1];
    let sources: Vec<String> =
        serde_json::from_slice(&std::fs::read(env.root.join("blob-sources").join(&layer[7..])).unwrap()).unwrap();
    for repo in [format!("{a}/x"), format!("{a}/y"), format!("{}/x", other.host)] {
        assert!(sources.contains(&repo), "{repo} in {sources:?}");
    }

    // type=registry with its own name.
    let named = format!("{}/z:9", other.host);
    env.build(&ctx, &tags[0], &["-o", &format!("type=registry,name={named}")]).ok();
    skopeo(&["inspect", "--tls-verify=false", &format!("docker://{named}")]).ok();

    // --push without a name is an error before building.
    let r = env.strata(&["build", "--progress", "plain", "--push", ctx.to_str().unwrap()]).fails();
    assert!(r.stderr.contains("needs at least one -t NAME"), "{r}");
}
