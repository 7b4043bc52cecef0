//! End to end: multi-stage builds and `--target`. As in BuildKit, only the stages the target
//! needs run; `COPY --from=NAME` and `COPY --from=INDEX` read other stages; the image holds the
//! target stage's layers only.

mod common;

use common::{Env, StepState, blob_path, layer_digests, layer_entries, layer_file, plain_steps};

const DOCKERFILE: &str = r#"FROM {BASE} AS first
RUN echo zero > /zero
FROM {BASE} AS never
RUN echo ran > /marker && exit 1
FROM {BASE} AS builder
RUN echo built > /artifact
FROM {BASE} AS final
COPY --from=builder /artifact /artifact
COPY --from=0 /zero /zero
FROM final AS after
RUN echo after > /after && exit 1
"#;

#[test]
fn target_builds_only_the_stages_it_needs() {
    let env = Env::new();
    let ctx = env.context("multistage", &[("Dockerfile", DOCKERFILE)]);
    let r = env.build(&ctx, "ms:final", &["--target", "final"]).ok();

    let steps = plain_steps(&r.stderr);
    for s in &steps {
        assert!(!s.name.contains("[never") && !s.name.contains("[after"), "a stage not needed ran: {s:?}\n{r}");
        assert_ne!(s.state, StepState::Error, "{r}");
    }
    for needed in ["[first 2/2] RUN echo zero > /zero", "[builder 2/2] RUN echo built > /artifact"] {
        assert!(steps.iter().any(|s| s.name == needed), "step {needed:?} did not run:\n{r}");
    }

    let image = env.inspect("ms:final");
    let base = env.inspect(&env.base);
    let layers = layer_digests(&image);
    assert_eq!(layers.len(), 3, "base + the two COPY layers: {layers:?}");
    assert_eq!(layers[0], layer_digests(&base)[0], "the final stage starts from the base image");
    let artifact = blob_path(&env.root, &layers[1]);
    assert_eq!(layer_file(&artifact, "artifact"), "built\n");
    assert_eq!(layer_entries(&artifact), ["artifact"], "COPY --from=builder adds only /artifact");
    let zero = blob_path(&env.root, &layers[2]);
    assert_eq!(layer_file(&zero, "zero"), "zero\n");
    assert_eq!(layer_entries(&zero), ["zero"], "COPY --from=0 adds only /zero");

    let history: Vec<&str> = image["Config"]["history"]
        .as_array()
        .unwrap()
        .iter()
        .skip(1)
        .map(|h| h["created_by"].as_str().unwrap_or(""))
        .collect();
    // BuildKit drops COPY's flags from the history.
    assert_eq!(history, ["COPY /artifact /artifact # buildkit", "COPY /zero /zero # buildkit"]);

    // Without --target the last stage is built, and its failing RUN fails the build.
    let r = env.build(&ctx, "ms:last", &[]).fails();
    assert!(r.stderr.contains("exit code: 1"), "{r}");
    assert!(!env.names().iter().any(|n| n.ends_with("/ms:last")), "a failed build must not name an image");

    // A target that is no stage.
    let r = env.build(&ctx, "ms:none", &["--target", "nosuch"]).fails();
    assert!(r.stderr.contains("nosuch"), "the error must name the missing target:\n{r}");
}
