//! End to end: cache mount options, compared with what BuildKit 0.13 (docker26 buildx) gave the
//! same Dockerfile on this machine: `sharing=private` gets its own directory while a shared user
//! holds the cache, `sharing=locked` serializes, `from=`/`source=` seed the cache with a stage's
//! files, `mode`/`uid`/`gid` make (and name) the cache directory, and a missing `source=` path in
//! a cache is an error.

mod common;

use common::{Env, blob_path, layer_digests, layer_file};

const DOCKERFILE: &str = r#"FROM {BASE} AS seed
RUN mkdir -p /data/sub && echo seeded > /data/sub/f && echo top > /data/t

FROM {BASE} AS a
RUN --mount=type=cache,id=c1,target=/c sh -c 'echo a > /c/a; sleep 4; ls /c > /a-list'

FROM {BASE} AS b
RUN --mount=type=cache,id=c1,target=/c,sharing=private sh -c 'sleep 1; ls /c > /b-list; echo b > /c/b'

FROM {BASE} AS l1
RUN --mount=type=cache,id=c2,target=/c,sharing=locked sh -c 'date +%s > /l1-start; sleep 3; date +%s > /l1-end'
FROM {BASE} AS l2
RUN --mount=type=cache,id=c2,target=/c,sharing=locked sh -c 'date +%s > /l2-start; sleep 3; date +%s > /l2-end'

FROM {BASE} AS s
RUN --mount=type=cache,id=c3,target=/c,from=seed,source=/data sh -c 'ls -R /c > /s-list; cat /c/sub/f >> /s-list; echo w > /c/written'
RUN --mount=type=cache,id=c3,target=/c,from=seed,source=/data/sub sh -c 'ls /c > /s2-list'
RUN --mount=type=cache,id=c3,target=/c sh -c 'ls /c > /s3-list'
RUN --mount=type=cache,id=c5,target=/c,mode=0700,uid=33,gid=44 sh -c 'stat -c "%a %u %g" /c > /s5'
RUN --mount=type=cache,id=c5,target=/c,mode=0755 sh -c 'stat -c "%a %u %g" /c > /s6'

FROM {BASE}
COPY --from=a /a-list /
COPY --from=b /b-list /
COPY --from=l1 /l1-start /l1-end /
COPY --from=l2 /l2-start /l2-end /
COPY --from=s /s-list /s2-list /s3-list /s5 /s6 /
"#;

#[test]
fn cache_mount_options_like_buildkit() {
    let env = Env::new();
    let ctx = env.context("cacheopts", &[("Dockerfile", DOCKERFILE)]);
    env.build(&ctx, "cacheopts:1", &["--jobs", "8"]).ok();
    let image = env.inspect("cacheopts:1");
    let layers = layer_digests(&image);
    let read = |path: &str| {
        let found = layers.iter().find_map(|d| {
            let blob = blob_path(&env.root, d);
            common::layer_entries(&blob).iter().any(|e| e == path).then(|| layer_file(&blob, path))
        });
        found.unwrap_or_else(|| panic!("{path} in no layer"))
    };
    // BuildKit's results, file by file.
    assert_eq!(read("a-list"), "a\n", "the private user's write is not in the shared directory");
    assert_eq!(read("b-list"), "", "the private user got a fresh directory");
    let num = |p: &str| read(p).trim().parse::<u64>().unwrap();
    assert!(num("l2-start") >= num("l1-end") || num("l1-start") >= num("l2-end"), "locked users overlapped");
    assert_eq!(read("s-list"), "/c:\nsub\nt\n\n/c/sub:\nf\nseeded\n");
    assert_eq!(read("s2-list"), "f\n", "same cache, another source path");
    assert_eq!(read("s3-list"), "", "without from= it is another cache");
    assert_eq!(read("s5"), "700 33 44\n");
    assert_eq!(read("s6"), "755 0 0\n", "another mode is another cache");
}

#[test]
fn caches_persist_across_builds_and_stay_out_of_layers() {
    let env = Env::new();
    let dockerfile = "FROM {BASE}\nARG N\nRUN --mount=type=cache,target=/var/cache/app sh -c \
                      'echo $N >> /var/cache/app/log; cat /var/cache/app/log | wc -l > /count'\n";
    let ctx = env.context("persist", &[("Dockerfile", dockerfile)]);
    env.build(&ctx, "persist:1", &["--build-arg", "N=1"]).ok();
    env.build(&ctx, "persist:2", &["--build-arg", "N=2"]).ok();
    let image = env.inspect("persist:2");
    let last = blob_path(&env.root, layer_digests(&image).last().unwrap());
    assert_eq!(layer_file(&last, "count"), "2\n");
    let entries = common::layer_entries(&last);
    assert!(entries.iter().all(|e| !e.starts_with("var/cache")), "the cache is not in the layer: {entries:?}");
}

#[test]
fn missing_cache_source_is_an_error() {
    let env = Env::new();
    let ctx = env.context(
        "cachesrc",
        &[("Dockerfile", "FROM {BASE}\nRUN --mount=type=cache,id=c4,target=/c,source=/sub ls /c\n")],
    );
    let r = env.build(&ctx, "cachesrc:1", &[]).fails();
    assert!(r.stderr.contains("/sub") && r.stderr.contains("No such file or directory"), "{r}");
}
