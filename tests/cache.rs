//! End to end: the build cache. With nothing changed every step is CACHED and the image is the
//! same (same manifest digest); editing one copied file re-runs that COPY and every later step,
//! nothing before it; `--no-cache` re-runs everything. `--progress=plain` says which, as BuildKit's
//! does (`#N CACHED` / `#N DONE`), and a re-run RUN prints its output again.

mod common;

use std::fs;

use common::{Env, Step, StepState, plain_steps, step};

const DOCKERFILE: &str = "FROM {BASE}
COPY a.txt /a.txt
RUN cat /a.txt | tee /a.copy
COPY b.txt /b.txt
RUN cat /b.txt | tee /b.copy
ENV DONE=1
";

fn state(steps: &[Step], needle: &str) -> StepState {
    step(steps, needle).state
}

#[test]
fn cache_hits_edits_and_no_cache() {
    let env = Env::new();
    let ctx = env.context("cache", &[("Dockerfile", DOCKERFILE), ("a.txt", "alpha\n"), ("b.txt", "beta\n")]);
    let digest = |tag: &str| env.inspect(tag)["Descriptor"]["digest"].as_str().unwrap().to_string();

    // First build: every step runs.
    let r = env.build(&ctx, "c:1", &[]).ok();
    let steps = plain_steps(&r.stderr);
    for s in ["COPY a.txt", "RUN cat /a.txt", "COPY b.txt", "RUN cat /b.txt"] {
        assert_eq!(state(&steps, s), StepState::Done, "{s} on the first build:\n{r}");
    }
    assert_eq!(step(&steps, "RUN cat /a.txt").logs, ["alpha"], "{r}");
    let first = digest("c:1");

    // Nothing changed: everything CACHED, same image.
    let r = env.build(&ctx, "c:2", &[]).ok();
    let steps = plain_steps(&r.stderr);
    assert!(steps.len() >= 5, "{r}");
    for s in &steps {
        assert_eq!(s.state, StepState::Cached, "step {:?} should be CACHED:\n{r}", s.name);
        assert!(s.logs.is_empty(), "a cached RUN prints nothing: {s:?}");
    }
    assert_eq!(digest("c:2"), first, "a fully cached build gives the same manifest");

    // Edit b.txt: the steps before its COPY stay cached, its COPY and everything after re-run.
    fs::write(ctx.join("b.txt"), "beta, edited\n").unwrap();
    let r = env.build(&ctx, "c:3", &[]).ok();
    let steps = plain_steps(&r.stderr);
    assert_eq!(state(&steps, "FROM"), StepState::Cached, "{r}");
    assert_eq!(state(&steps, "COPY a.txt"), StepState::Cached, "{r}");
    assert_eq!(state(&steps, "RUN cat /a.txt"), StepState::Cached, "{r}");
    assert_eq!(state(&steps, "COPY b.txt"), StepState::Done, "{r}");
    assert_eq!(state(&steps, "RUN cat /b.txt"), StepState::Done, "{r}");
    assert_eq!(step(&steps, "RUN cat /b.txt").logs, ["beta, edited"], "{r}");
    let edited = env.inspect("c:3");
    let before = env.inspect("c:1");
    let layers = |v: &serde_json::Value| common::layer_digests(v);
    assert_eq!(layers(&edited)[..3], layers(&before)[..3], "layers before the edit are reused");
    assert_ne!(layers(&edited)[3], layers(&before)[3], "the COPY of the edited file is new");
    let b_copy = common::blob_path(&env.root, &layers(&edited)[4]);
    assert_eq!(common::layer_file(&b_copy, "b.copy"), "beta, edited\n");

    // Again with nothing changed: all cached, same digest as the edited build.
    let r = env.build(&ctx, "c:4", &[]).ok();
    assert!(plain_steps(&r.stderr).iter().all(|s| s.state == StepState::Cached), "{r}");
    assert_eq!(digest("c:4"), digest("c:3"));

    // --no-cache: every step after FROM runs again, RUNs print their output again.
    let r = env.build(&ctx, "c:5", &["--no-cache"]).ok();
    let steps = plain_steps(&r.stderr);
    for s in steps.iter().filter(|s| !s.name.contains("FROM")) {
        assert_eq!(s.state, StepState::Done, "step {:?} must re-run with --no-cache:\n{r}", s.name);
    }
    assert_eq!(step(&steps, "RUN cat /a.txt").logs, ["alpha"], "{r}");
    assert_eq!(step(&steps, "RUN cat /b.txt").logs, ["beta, edited"], "{r}");
    let no_cache = env.inspect("c:5");
    assert_eq!(layers(&no_cache).len(), layers(&edited).len());
    assert_ne!(digest("c:5"), digest("c:3"), "a rebuilt image has new creation times, so a new digest");
}
