//! End to end: what the cache does beyond hits and misses — `--explain` names the input that
//! changed, `--no-cache-filter` re-runs only the named stage, the context's content digests are
//! remembered across processes, and a failing stage is reported together with every other
//! failure while independent stages run in parallel.

mod common;

use std::fs;

use common::{Env, StepState, plain_steps, step};

#[test]
fn explain_names_the_changed_arg_file_and_parent() {
    let env = Env::new();
    let ctx = env.context(
        "explain",
        &[
            ("Dockerfile", "FROM {BASE}\nARG MODE=fast\nCOPY a.txt /a/\nRUN cat /a/a.txt > /out && echo $MODE >> /out\nCOPY b.txt /b/\n"),
            ("a.txt", "a\n"),
            ("b.txt", "b\n"),
        ],
    );
    env.build(&ctx, "x:1", &[]).ok();
    fs::write(ctx.join("b.txt"), "b, edited\n").unwrap();
    let r = env.build(&ctx, "x:2", &["--explain", "--build-arg", "MODE=slow"]).ok();
    let summary = r.stderr.split("cache explanation:").nth(1).unwrap_or_else(|| panic!("no explanation:\n{r}"));
    let lines: Vec<&str> = summary.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let at = |needle: &str| lines.iter().position(|l| l.contains(needle)).unwrap_or_else(|| panic!("{needle}:\n{r}"));
    assert!(lines[at("COPY a.txt")].starts_with("HIT"), "{r}");
    let run = at("RUN cat /a/a.txt");
    assert!(lines[run].starts_with("MISS"), "{r}");
    assert_eq!(lines[run + 1], "env MODE changed: fast → slow", "{r}");
    let copy_b = at("COPY b.txt");
    assert!(lines[copy_b].starts_with("MISS"), "{r}");
    let reasons = &lines[copy_b + 1..];
    assert!(reasons.contains(&"copied files changed: ~/b.txt"), "{r}");
    assert!(reasons.iter().any(|l| l.starts_with("the step before it changed") && l.contains("RUN cat")), "{r}");
    // Progress carries the same verdicts, per step.
    assert!(r.stderr.contains("explain: miss: env MODE changed: fast → slow"), "{r}");
    assert!(r.stderr.contains("explain: cache hit"), "{r}");
}

#[test]
fn no_cache_filter_reruns_only_that_stage() {
    let env = Env::new();
    let ctx = env.context(
        "filter",
        &[(
            "Dockerfile",
            "FROM {BASE} AS deps\nRUN echo deps > /deps\n\nFROM {BASE} AS app\nCOPY --from=deps /deps /deps\nRUN echo app > /app\n",
        )],
    );
    env.build(&ctx, "f:1", &[]).ok();
    let r = env.build(&ctx, "f:2", &["--no-cache-filter", "deps"]).ok();
    let steps = plain_steps(&r.stderr);
    assert_eq!(step(&steps, "RUN echo deps").state, StepState::Done, "{r}");
    // The deps layer is rebuilt to the same content, so the app stage's inputs are unchanged.
    assert_eq!(step(&steps, "RUN echo app").state, StepState::Cached, "{r}");
}

#[test]
fn context_digests_are_remembered_across_processes() {
    let env = Env::new();
    let ctx = env.context("remember", &[("Dockerfile", "FROM {BASE}\nCOPY data /data\n"), ("data/one.txt", "1\n")]);
    // Files changed within the last two seconds are not remembered (their stamp could repeat):
    // let the context age first.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    env.build(&ctx, "r:1", &[]).ok();
    let table = env.root.join("cache/content-digests.json");
    let rows: serde_json::Value = serde_json::from_slice(&fs::read(&table).expect("content cache written")).unwrap();
    assert_eq!(rows.as_array().map(Vec::len), Some(1), "one file remembered: {rows}");
    assert_eq!(
        rows[0]["sha256"].as_str().unwrap(),
        common::sha256_hex(b"1\n"),
        "the remembered digest is the file's content digest"
    );
    // A second process uses it: the build is fully cached.
    let r = env.build(&ctx, "r:2", &[]).ok();
    assert!(plain_steps(&r.stderr).iter().all(|s| s.state == StepState::Cached), "{r}");
}

#[test]
fn a_failure_cancels_running_stages_and_every_one_is_reported() {
    let env = Env::new();
    let ctx = env.context(
        "failures",
        &[(
            "Dockerfile",
            "FROM {BASE} AS a\nRUN echo a && exit 3\n\nFROM {BASE} AS b\nRUN echo b && sleep 60 && exit 4\n\nFROM {BASE}\nCOPY --from=a /etc/passwd /a\nCOPY --from=b /etc/passwd /b\n",
        )],
    );
    // Both stages start together (independent, and the job limit allows it). a fails; b, still
    // sleeping, is cancelled (its sandbox killed) instead of running its minute; both are
    // reported with their lines.
    let r = env.build(&ctx, "fail:1", &["--jobs", "4"]).fails();
    let report = r.stderr.split("error: ").last().unwrap_or_default();
    assert!(report.contains("Dockerfile:2") && report.contains("exit code: 3"), "{r}");
    assert!(report.contains("Dockerfile:5") && report.contains("cancelled"), "{r}");
    assert!(!r.stderr.contains("exit code: 4"), "{r}");
    assert!(!env.names().iter().any(|n| n.contains("fail")), "no name for a failed build");
}

#[test]
fn context_bind_mounts_are_keyed_by_content_and_checkouts_share_the_cache() {
    let env = Env::new();
    let files =
        [("Dockerfile", "FROM {BASE}\nRUN --mount=type=bind,target=/ctx cat /ctx/f.txt > /seen\n"), ("f.txt", "one\n")];
    let ctx = env.context("bind", &files);
    env.build(&ctx, "b:1", &[]).ok();
    // The same project in another directory: every step comes from the cache.
    let other = env.context("bind-elsewhere", &files);
    let r = env.build(&other, "b:2", &[]).ok();
    assert!(plain_steps(&r.stderr).iter().all(|s| s.state == StepState::Cached), "{r}");
    assert_eq!(env.inspect("b:2")["Descriptor"]["digest"], env.inspect("b:1")["Descriptor"]["digest"]);
    // Changing a file the RUN step sees through its mount re-runs it.
    fs::write(ctx.join("f.txt"), "two\n").unwrap();
    let r = env.build(&ctx, "b:3", &[]).ok();
    assert_eq!(step(&plain_steps(&r.stderr), "RUN --mount").state, StepState::Done, "{r}");
}

#[test]
fn adding_a_stage_does_not_invalidate_unchanged_copies() {
    let env = Env::new();
    let v1 = "FROM {BASE} AS s\nRUN echo s > /s\n\nFROM {BASE}\nCOPY --from=s /s /s\n";
    let ctx = env.context("stages", &[("Dockerfile", v1)]);
    env.build(&ctx, "st:1", &[]).ok();
    // A new stage first: every step of the graph moves, but nothing the COPY reads changed.
    let v2 = "FROM {BASE} AS t\nRUN echo t > /t\n\nFROM {BASE} AS s\nRUN echo s > /s\n\nFROM {BASE}\nCOPY --from=s /s /s\nCOPY --from=t /t /t\n";
    let ctx = env.context("stages", &[("Dockerfile", v2)]);
    let r = env.build(&ctx, "st:2", &[]).ok();
    let steps = plain_steps(&r.stderr);
    assert_eq!(step(&steps, "RUN echo s").state, StepState::Cached, "{r}");
    assert_eq!(step(&steps, "COPY --from=s").state, StepState::Cached, "{r}");
    assert_eq!(step(&steps, "COPY --from=t").state, StepState::Done, "{r}");
}
