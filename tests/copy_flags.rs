//! End to end: COPY/ADD flags and rules beyond the shared `copy-semantics` case — `--chown`
//! corner cases, several sources without a trailing slash, here-documents after the other
//! sources, `--link`, `--parents`, `--exclude`, symbolic `--chmod` — compared with what BuildKit
//! 0.13 (docker26) produced for the same lines where it implements them.

mod common;

use common::{Env, blob_path, layer_digests, layer_listing};

fn layers(env: &Env, tag: &str) -> Vec<Vec<String>> {
    let image = env.inspect(tag);
    layer_digests(&image).iter().skip(1).map(|d| layer_listing(&blob_path(&env.root, d))).collect()
}

/// The owners BuildKit 0.13 gave (docker26, listed from the pushed layers): names resolved in
/// the image's passwd/group, unknown names silently 0 (user) or unchanged (group), an empty
/// side 0.
#[test]
fn chown_resolves_names_like_buildkit() {
    let env = Env::new();
    let specs = [
        (":grp", "0/4321"),
        ("usr", "1234/4321"),
        ("1234", "1234/1234"),
        ("usr:1", "1234/1"),
        (":4321", "0/4321"),
        ("nogrp", "1500/9999"),
        ("5:grp", "5/4321"),
        ("root:usr", "0/0"),
        ("root:nosuch", "0/0"),
        ("5:nosuch", "5/5"),
        ("nosuch", "0/0"),
        ("usr:nosuch", "1234/4321"),
        (":", "0/0"),
        ("usr:", "1234/0"),
    ];
    let mut df = format!(
        "FROM {}\nRUN echo 'grp:x:4321:' >> /etc/group && echo 'usr:x:1234:4321::/home:/bin/sh' >> /etc/passwd \
         && echo 'nogrp:x:1500:9999::/home:/bin/sh' >> /etc/passwd\n",
        env.base
    );
    for (i, (spec, _)) in specs.iter().enumerate() {
        df.push_str(&format!("COPY --chown={spec} f.txt /c{i}/\n"));
    }
    let ctx = env.context("ctx", &[("Dockerfile", &df), ("f.txt", "f\n")]);
    env.build(&ctx, "chown:1", &[]).ok();
    let got = layers(&env, "chown:1");
    for (i, (spec, owner)) in specs.iter().enumerate() {
        assert_eq!(
            got[i + 1],
            [format!("drwxr-xr-x {owner} 0 c{i}/"), format!("-rw-r--r-- {owner} 2 c{i}/f.txt")],
            "--chown={spec}"
        );
    }
    // Names need a filesystem to look in.
    let ctx = env.context("scratch", &[("Dockerfile", "FROM scratch\nCOPY --chown=usr f.txt /\n"), ("f.txt", "f\n")]);
    let r = env.build(&ctx, "chown:2", &[]).fails();
    assert!(r.stderr.contains("--chown=usr") && r.stderr.contains("numeric ids"), "{r}");
}

/// BuildKit 0.13: several sources into a destination without a trailing slash are copied in
/// turn (the last file wins), not refused; here-documents come after the other sources.
#[test]
fn several_sources_and_heredocs_like_buildkit() {
    let env = Env::new();
    let df = format!("FROM {}\nCOPY a b /dst\nCOPY a <<EOF /dst2\nx\nEOF\nCOPY a b <<EOF /dir/\nhd\nEOF\n", env.base);
    let ctx = env.context("ctx", &[("Dockerfile", &df), ("a", "a\n"), ("b", "b\n")]);
    env.build(&ctx, "multi:1", &[]).ok();
    let image = env.inspect("multi:1");
    let l = layer_digests(&image);
    assert_eq!(common::layer_file(&blob_path(&env.root, &l[1]), "dst"), "b\n");
    assert_eq!(common::layer_file(&blob_path(&env.root, &l[2]), "dst2"), "x\n");
    let dir = layers(&env, "multi:1")[2].clone();
    // (Layer entries are in byte order, as BuildKit's: upper case first.)
    assert_eq!(
        dir,
        ["drwxr-xr-x 0/0 0 dir/", "-rw-r--r-- 0/0 3 dir/EOF", "-rw-r--r-- 0/0 2 dir/a", "-rw-r--r-- 0/0 2 dir/b"]
    );
}

/// `--link`: the copy is made over an empty filesystem and merged (BuildKit's MergeOp on
/// workers that have it; docker26's graphdriver worker has none and runs --link as a plain
/// copy): the destination's symlinks and modes are not seen, created directories are 0755 in
/// the layer, and the layer is reused when the base changes.
#[test]
fn link_copies_are_independent_of_their_base() {
    let env = Env::new();
    let df = |marker: &str| {
        format!(
            "FROM {}\nRUN echo {marker} > /marker && mkdir -p /ex/dir && chmod 0700 /ex/dir && ln -s /ex/dir /ex/dlink\n\
             COPY --link f.txt /app/deep/\nCOPY --link f.txt /ex/dlink/\nCOPY --link --chown=7:8 f.txt /own/\n\
             COPY --link --chmod=0600 f.txt /ex/dlink/chmodded\nCOPY --link <<EOF /doc/\ndoc\nEOF\nCOPY f.txt /plain/\n",
            env.base
        )
    };
    let ctx = env.context("ctx", &[("Dockerfile", &df("one")), ("f.txt", "hello\n")]);
    env.build(&ctx, "link:1", &[]).ok();
    let got = layers(&env, "link:1");
    assert_eq!(got[1], ["drwxr-xr-x 0/0 0 app/", "drwxr-xr-x 0/0 0 app/deep/", "-rw-r--r-- 0/0 6 app/deep/f.txt"]);
    assert_eq!(
        got[2],
        ["drwxr-xr-x 0/0 0 ex/", "drwxr-xr-x 0/0 0 ex/dlink/", "-rw-r--r-- 0/0 6 ex/dlink/f.txt"],
        "the base's symlink is not followed"
    );
    assert_eq!(got[3], ["drwxr-xr-x 7/8 0 own/", "-rw-r--r-- 7/8 6 own/f.txt"]);
    // With --chmod BuildKit does not link: an ordinary copy over the stage so far, where
    // /ex/dlink is now the directory the linked copy above put over the symlink.
    assert_eq!(got[4], ["drwxr-xr-x 0/0 0 ex/", "drwxr-xr-x 0/0 0 ex/dlink/", "-rw------- 0/0 6 ex/dlink/chmodded"]);
    assert_eq!(got[5], ["drwxr-xr-x 0/0 0 doc/", "-rw-r--r-- 0/0 4 doc/EOF"]);

    // A changed base: the linked layers are reused as they are, the plain copy is not.
    let ctx = env.context("ctx", &[("Dockerfile", &df("two")), ("f.txt", "hello\n")]);
    let r = env.build(&ctx, "link:2", &[]).ok();
    let one = layer_digests(&env.inspect("link:1"));
    let two = layer_digests(&env.inspect("link:2"));
    assert_ne!(one[1], two[1], "the RUN layer differs");
    for i in [2, 3, 4, 6] {
        assert_eq!(one[i], two[i], "linked layer {i} is reused:\n{r}");
    }
    assert!(r.stderr.matches("CACHED").count() >= 4, "{r}");

    // Names cannot be resolved in a linked copy: refused with the line.
    let ctx = env.context(
        "named",
        &[("Dockerfile", &format!("FROM {}\nCOPY --link --chown=nobody f.txt /x/\n", env.base)), ("f.txt", "x")],
    );
    let r = env.build(&ctx, "link:3", &[]).fails();
    assert!(r.stderr.contains("Dockerfile:2") && r.stderr.contains("numeric ids"), "{r}");
}

/// `--parents` (BuildKit's labs `testCopyParents`/`testCopyRelativeParents`) and `--exclude`
/// (`testExcludedFilesOnCopy`), and symbolic `--chmod` (newer frontends' `testChmodNonOctal`).
#[test]
fn parents_exclude_and_symbolic_chmod() {
    let env = Env::new();
    let df = format!(
        "FROM {}\nCOPY --parents foo1/foo2/bar /p1/\nWORKDIR /test\nCOPY --parents foo1/foo2/ba* .\n\
         COPY --parents ./foo1/./foo2/bar /p3/\nCOPY --parents **/*.md /p4/\n\
         COPY --exclude=*/*.png --exclude=*/*.jpeg . /e1/\nCOPY --exclude=*.mp3 dir3/ /e2/\n\
         COPY --chmod=go-w,u+x foo1/foo2/bar /m1\nCOPY --chmod=a+X foo1 /m2/\n",
        env.base
    );
    let ctx = env.context(
        "ctx",
        &[
            ("Dockerfile", &df),
            (".dockerignore", "Dockerfile\n"),
            ("foo1/foo2/bar", "testing"),
            ("foo1/foo2/baz", "testing2"),
            ("foo1/other/x.md", "x"),
            ("top.md", "t"),
            ("dir1/file-101.png", "2"),
            ("dir1/file-102.txt", "3"),
            ("dir2/file-203.png", "8"),
            ("dir3/file-301.mp3", "9"),
            ("dir3/file-302.mpeg", "10"),
        ],
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(ctx.join("foo1/foo2/bar"), std::fs::Permissions::from_mode(0o666)).unwrap();
    std::fs::set_permissions(ctx.join("foo1"), std::fs::Permissions::from_mode(0o750)).unwrap();
    env.build(&ctx, "flags:1", &[]).ok();
    let got = layers(&env, "flags:1");
    let names = |l: &[String]| l.iter().map(|e| e.rsplit(' ').next().unwrap().to_string()).collect::<Vec<_>>();
    assert_eq!(names(&got[0]), ["p1/", "p1/foo1/", "p1/foo1/foo2/", "p1/foo1/foo2/bar"]);
    assert!(got[0][1].starts_with("drwxr-x--- 0/0"), "leading directories keep their mode: {:?}", got[0]);
    assert_eq!(names(&got[2]), ["test/", "test/foo1/", "test/foo1/foo2/", "test/foo1/foo2/bar", "test/foo1/foo2/baz"]);
    assert_eq!(names(&got[3]), ["p3/", "p3/foo2/", "p3/foo2/bar"]);
    assert_eq!(names(&got[4]), ["p4/", "p4/foo1/", "p4/foo1/other/", "p4/foo1/other/x.md", "p4/top.md"]);
    let e1 = names(&got[5]);
    assert!(
        e1.contains(&"e1/dir1/file-102.txt".to_string()) && e1.contains(&"e1/dir3/file-301.mp3".to_string()),
        "{e1:?}"
    );
    assert!(!e1.iter().any(|n| n.ends_with(".png")), "{e1:?}");
    assert_eq!(names(&got[6]), ["e2/", "e2/file-302.mpeg"]);
    assert_eq!(got[7], ["-rwxr--r-- 0/0 7 m1"], "0666 with go-w,u+x");
    assert!(got[8].contains(&"drwxr-xr-x 0/0 0 m2/foo2/".to_string()), "{:?}", got[8]);
    assert!(got[8].contains(&"-rw-r--r-- 0/0 8 m2/foo2/baz".to_string()), "a+X leaves plain files: {:?}", got[8]);

    // A missing path without wildcards is an error; bad --chmod values are refused.
    for (i, (line, message)) in [
        ("COPY --parents foo1/missing /x/", "not found"),
        ("COPY --chmod=999 foo1 /x/", "invalid chmod parameter: '999'"),
        ("COPY --chmod=u+q foo1 /x/", "invalid chmod parameter"),
        ("COPY --exclude=[ foo1 /x/", "--exclude"),
    ]
    .iter()
    .enumerate()
    {
        let ctx = env
            .context(&format!("bad{i}"), &[("Dockerfile", &format!("FROM {}\n{line}\n", env.base)), ("foo1/a", "a")]);
        let r = env.build(&ctx, "bad:1", &[]).fails();
        assert!(r.stderr.contains(message), "{line}: expected {message:?}:\n{r}");
    }
}
