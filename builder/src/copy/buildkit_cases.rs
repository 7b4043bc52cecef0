//! Copies compared, entry by entry, with what BuildKit 0.13 produced for the same
//! Dockerfile lines.
//!
//! How the expected listings were captured (on the development machine, Nov 2026): each
//! source tree below was built as a real build context or stage with
//! `docker26 buildx build --no-cache --load -t 127.0.0.1:5000/copyexp/<case>:1 <dir>`
//! (dockerd 26.1.5, embedded BuildKit 0.13, builtin Dockerfile frontend), pushed with
//! `docker26 push`, copied to an OCI layout with `skopeo copy docker://... oci:<dir>:1`, and
//! the layer tars of the COPY steps were merged in order (later layers win) and listed with
//! Python's `tarfile`: type, mode, uid:gid, size, first 12 hex digits of the content's
//! SHA-256, link target — the same fields as [`testutil::listing`]. Modification times are
//! not compared here (layer tars only keep whole seconds, and BuildKit's context transfer
//! does not reliably keep directory times); `tests.rs` checks them.

use std::path::Path;

use super::testutil::{self, Ignore, Roots, chmod, chown, mkdir, symlink, write};
use super::{CopyOptions, CopySource, copy};
use crate::graph::{Chmod, PathFilter};

fn context<'a>(root: &'a Path, filter: Option<&'a dyn PathFilter>) -> CopySource<'a> {
    CopySource { root, filter, is_context: true }
}

fn stage(root: &Path) -> CopySource<'_> {
    CopySource { root, filter: None, is_context: false }
}

/// One COPY line: sources, destination, options on top of the Dockerfile defaults.
fn run(src: &CopySource<'_>, dst: &Path, sources: &[&str], dest: &str, tweak: impl FnOnce(&mut CopyOptions)) {
    let mut opts = CopyOptions::dockerfile();
    tweak(&mut opts);
    let sources: Vec<String> = sources.iter().map(|s| s.to_string()).collect();
    copy(src, &sources, dst, dest, &opts).unwrap_or_else(|e| panic!("COPY {sources:?} {dest}: {e}"));
}

fn assert_listing(dst: &Path, tops: &[&str], want: &str) {
    let mut got = Vec::new();
    for t in tops {
        got.extend(testutil::listing(dst, t));
    }
    let want = testutil::expected(want);
    if got != want {
        let diff: Vec<String> = got
            .iter()
            .filter(|l| !want.contains(l))
            .map(|l| format!("+ {l}"))
            .chain(want.iter().filter(|l| !got.contains(l)).map(|l| format!("- {l}")))
            .collect();
        panic!("listing differs from BuildKit's (+ ours, - BuildKit's):\n{}", diff.join("\n"));
    }
}

/// `/work/shared/peers/cases/copy-semantics`, recreated byte for byte (files 0444, dirs
/// 0555, as in the shared case).
const CS_DOCKERFILE: &str = "FROM 127.0.0.1:5000/busybox:latest\nCOPY src /a/\nCOPY src/ /b\nCOPY src/*.txt /c/\n\
COPY --chown=1000:1000 src/sub /d\nCOPY --chmod=0640 src/one.txt /e/one\nCOPY one-file.txt /f\nCOPY one-file.txt /g/\n\
ADD bundle.tar.gz /h/\nADD bundle.tar.gz /i.tgz.d/\nCOPY . /all/\nWORKDIR relative/path\nWORKDIR more\nRUN pwd > /workdir.txt\n";
const CS_DOCKERIGNORE: &str = "skip\n!skip/keep.txt\n*.bin\n";
const CS_BUNDLE: &[u8] = &[
    0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0xed, 0xd1, 0x31, 0x0a, 0x02, 0x31, 0x10, 0x85, 0xe1,
    0xd4, 0x9e, 0x22, 0x27, 0xd0, 0x89, 0x66, 0x32, 0xe7, 0x11, 0xdc, 0x62, 0x9b, 0x5d, 0x88, 0x11, 0x3c, 0xbe, 0xd9,
    0xd8, 0xc8, 0x16, 0x2b, 0x08, 0x41, 0xc4, 0xff, 0x6b, 0x66, 0x20, 0x29, 0xde, 0xf0, 0xc6, 0x69, 0x1a, 0xf2, 0xc1,
    0x75, 0x25, 0x95, 0xa9, 0xb6, 0x59, 0xad, 0x67, 0xdb, 0x83, 0x9e, 0x44, 0x92, 0xc5, 0x60, 0x47, 0x27, 0x61, 0xd9,
    0x9c, 0xd7, 0xbe, 0xb1, 0x9e, 0x6e, 0xd7, 0x72, 0xce, 0xde, 0xbb, 0x3c, 0xcf, 0x65, 0xeb, 0xdf, 0xbb, 0xf7, 0x1f,
    0x35, 0xb6, 0xfe, 0xcb, 0xbe, 0xdc, 0xfb, 0x5d, 0xb7, 0x14, 0x9c, 0x62, 0xdc, 0xe8, 0xdf, 0x56, 0xfd, 0x87, 0x64,
    0xea, 0xbc, 0x74, 0x4b, 0xf4, 0xe2, 0xcf, 0xfb, 0xaf, 0xc7, 0xe7, 0xe1, 0xb2, 0xfb, 0x76, 0x0c, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1f, 0x78, 0x00, 0x24, 0xbc, 0x01, 0xdd, 0x00, 0x28,
    0x00, 0x00,
];

fn copy_semantics_context(root: &Path) {
    write(root, "Dockerfile", CS_DOCKERFILE);
    write(root, ".dockerignore", CS_DOCKERIGNORE);
    std::fs::write(root.join("bundle.tar.gz"), CS_BUNDLE).unwrap();
    write(root, "one-file.txt", "x\n");
    write(root, "src/one.txt", "one\n");
    write(root, "src/two.txt", "two\n");
    write(root, "src/three.bin", "bin\n");
    write(root, "src/sub/deep.txt", "deep\n");
    write(root, "skip/keep.txt", "keep\n");
    write(root, "skip/secret.txt", "secret\n");
    for f in [
        "Dockerfile",
        ".dockerignore",
        "bundle.tar.gz",
        "one-file.txt",
        "src/one.txt",
        "src/two.txt",
        "src/three.bin",
        "src/sub/deep.txt",
        "skip/keep.txt",
        "skip/secret.txt",
    ] {
        chmod(root, f, 0o444);
    }
    for d in ["src/sub", "src", "skip"] {
        chmod(root, d, 0o555);
    }
}

#[test]
fn copy_semantics_case_matches_buildkit() {
    let r = Roots::new();
    copy_semantics_context(&r.src);
    let ignore = Ignore::new(&["skip", "!skip/keep.txt", "*.bin"]);
    let ctx = context(&r.src, Some(&ignore));
    run(&ctx, &r.dst, &["src"], "/a/", |_| {});
    run(&ctx, &r.dst, &["src/"], "/b", |_| {});
    run(&ctx, &r.dst, &["src/*.txt"], "/c/", |_| {});
    run(&ctx, &r.dst, &["src/sub"], "/d", |o| o.owner = Some((1000, 1000)));
    run(&ctx, &r.dst, &["src/one.txt"], "/e/one", |o| o.chmod = Some(Chmod::Octal(0o640)));
    run(&ctx, &r.dst, &["one-file.txt"], "/f", |_| {});
    run(&ctx, &r.dst, &["one-file.txt"], "/g/", |_| {});
    run(&ctx, &r.dst, &["."], "/all/", |_| {});
    assert_listing(
        &r.dst,
        &["a", "all", "b", "c", "d", "e", "f", "g"],
        r"
        d 0755 0:0 0 a
        f 0444 0:0 4 a/one.txt 2c8b08da5ce6
        d 0555 0:0 0 a/sub
        f 0444 0:0 5 a/sub/deep.txt 64896f89fd11
        f 0444 0:0 4 a/three.bin 47de97e16916
        f 0444 0:0 4 a/two.txt 27dd8ed44a83
        d 0755 0:0 0 all
        f 0444 0:0 26 all/.dockerignore a2f6876fb7c5
        f 0444 0:0 315 all/Dockerfile 17f798253699
        f 0444 0:0 154 all/bundle.tar.gz 806ad5adbc06
        f 0444 0:0 2 all/one-file.txt 73cb3858a687
        d 0555 0:0 0 all/skip
        f 0444 0:0 5 all/skip/keep.txt f660a7996dea
        d 0555 0:0 0 all/src
        f 0444 0:0 4 all/src/one.txt 2c8b08da5ce6
        d 0555 0:0 0 all/src/sub
        f 0444 0:0 5 all/src/sub/deep.txt 64896f89fd11
        f 0444 0:0 4 all/src/three.bin 47de97e16916
        f 0444 0:0 4 all/src/two.txt 27dd8ed44a83
        d 0755 0:0 0 b
        f 0444 0:0 4 b/one.txt 2c8b08da5ce6
        d 0555 0:0 0 b/sub
        f 0444 0:0 5 b/sub/deep.txt 64896f89fd11
        f 0444 0:0 4 b/three.bin 47de97e16916
        f 0444 0:0 4 b/two.txt 27dd8ed44a83
        d 0755 0:0 0 c
        f 0444 0:0 4 c/one.txt 2c8b08da5ce6
        f 0444 0:0 4 c/two.txt 27dd8ed44a83
        d 0755 1000:1000 0 d
        f 0444 1000:1000 5 d/deep.txt 64896f89fd11
        d 0755 0:0 0 e
        f 0640 0:0 4 e/one 2c8b08da5ce6
        f 0444 0:0 2 f 73cb3858a687
        d 0755 0:0 0 g
        f 0444 0:0 2 g/one-file.txt 73cb3858a687
        ",
    );
    r.assert_outside_untouched();
}

/// The build context of the symlink/wildcard/chmod experiment ("case A"):
/// ```text
/// src/            0750 1234:5678   f1.txt 0600 1234:5678 "one"   sub/ 0700 (deep.txt)
///                 empty/   link -> f1.txt   abslink -> /etc/passwd   hl1 = hl2 (hard links)
///                 x.txt (xattr user.foo)
/// escape -> ../../../../etc   linkdir -> src   linkfile -> src/f1.txt   abslinkdir -> /src/sub
/// a*b.txt  [x].txt  q1.txt  q2.txt  qd/in.txt  suid.sh 4755
/// ```
fn context_a(root: &Path) {
    write(root, "src/f1.txt", "one\n");
    chmod(root, "src/f1.txt", 0o600);
    chown(root, "src/f1.txt", 1234, 5678);
    write(root, "src/sub/deep.txt", "deep\n");
    chmod(root, "src/sub", 0o700);
    mkdir(root, "src/empty");
    chmod(root, "src/empty", 0o755);
    symlink(root, "src/link", "f1.txt");
    symlink(root, "src/abslink", "/etc/passwd");
    write(root, "src/hl1", "hard\n");
    std::fs::hard_link(root.join("src/hl1"), root.join("src/hl2")).unwrap();
    write(root, "src/x.txt", "x\n");
    rustix::fs::setxattr(root.join("src/x.txt"), "user.foo", b"bar", rustix::fs::XattrFlags::empty()).unwrap();
    chmod(root, "src", 0o750);
    chown(root, "src", 1234, 5678);
    symlink(root, "escape", "../../../../etc");
    symlink(root, "linkdir", "src");
    symlink(root, "linkfile", "src/f1.txt");
    symlink(root, "abslinkdir", "/src/sub");
    write(root, "a*b.txt", "a\n");
    write(root, "[x].txt", "b\n");
    write(root, "q1.txt", "q1\n");
    write(root, "q2.txt", "q2\n");
    write(root, "qd/in.txt", "in\n");
    write(root, "suid.sh", "u\n");
    chmod(root, "suid.sh", 0o4755);
    for f in ["src/sub/deep.txt", "src/hl1", "src/x.txt", "a*b.txt", "[x].txt", "q1.txt", "q2.txt", "qd/in.txt"] {
        chmod(root, f, 0o644);
    }
    chmod(root, "qd", 0o755);
}

#[test]
fn context_symlinks_wildcards_chown_chmod_match_buildkit() {
    let r = Roots::new();
    context_a(&r.src);
    let ctx = context(&r.src, None);
    let owner = |u, g| move |o: &mut CopyOptions| o.owner = Some((u, g));
    let mode = |m| move |o: &mut CopyOptions| o.chmod = Some(Chmod::Octal(m));
    run(&ctx, &r.dst, &["src"], "/t1/", |_| {});
    run(&ctx, &r.dst, &["src"], "/t2", |_| {});
    run(&ctx, &r.dst, &["linkdir"], "/t3/", |_| {});
    run(&ctx, &r.dst, &["linkfile"], "/t4/", |_| {});
    run(&ctx, &r.dst, &["linkfile"], "/t5", |_| {});
    run(&ctx, &r.dst, &["abslinkdir"], "/t6/", |_| {});
    run(&ctx, &r.dst, &["src/f1.txt", "src/sub"], "/t7/", |_| {});
    run(&ctx, &r.dst, &["q*.txt"], "/t8/", |_| {});
    run(&ctx, &r.dst, &["[[]x].txt"], "/t9/", |_| {});
    run(&ctx, &r.dst, &["a?b.txt"], "/t10/", |_| {});
    run(&ctx, &r.dst, &["src/f1.txt"], "/p/q/r/", owner(1000, 1000));
    run(&ctx, &r.dst, &["src"], "/t11/", mode(0o700));
    run(&ctx, &r.dst, &["src/f1.txt"], "/t12/new/deep/", mode(0o705));
    run(&ctx, &r.dst, &["src"], "/t13/x/", owner(7, 8));
    run(&ctx, &r.dst, &["suid.sh"], "/t14", |_| {});
    run(&ctx, &r.dst, &["src/link"], "/t15", |_| {});
    run(&ctx, &r.dst, &["q*"], "/t16/", |_| {});
    run(&ctx, &r.dst, &["src/sub/../f1.txt"], "/t17", |_| {});
    run(&ctx, &r.dst, &["./src/./sub/"], "/t18/", |_| {});
    run(&ctx, &r.dst, &["src/nonexist*"], "/t19/", |_| {});
    assert!(!r.dst.join("t19").exists(), "BuildKit's layer for the empty wildcard was empty");
    let tops = [
        "p", "t1", "t10", "t11", "t12", "t13", "t14", "t15", "t16", "t17", "t18", "t2", "t3", "t4", "t5", "t6", "t7",
        "t8", "t9",
    ];
    assert_listing(
        &r.dst,
        &tops,
        r"
        d 0755 1000:1000 0 p
        d 0755 1000:1000 0 p/q
        d 0755 1000:1000 0 p/q/r
        f 0600 1000:1000 4 p/q/r/f1.txt 2c8b08da5ce6
        d 0755 0:0 0 t1
        l 0777 0:0 0 t1/abslink -> /etc/passwd
        d 0755 0:0 0 t1/empty
        f 0600 0:0 4 t1/f1.txt 2c8b08da5ce6
        f 0644 0:0 5 t1/hl1 87e434e018d1
        h 0644 0:0 0 t1/hl2 -> t1/hl1
        l 0777 0:0 0 t1/link -> f1.txt
        d 0700 0:0 0 t1/sub
        f 0644 0:0 5 t1/sub/deep.txt 64896f89fd11
        f 0644 0:0 2 t1/x.txt 73cb3858a687
        d 0755 0:0 0 t10
        f 0644 0:0 2 t10/a*b.txt 87428fc52280
        d 0755 0:0 0 t11
        l 0777 0:0 0 t11/abslink -> /etc/passwd
        d 0700 0:0 0 t11/empty
        f 0700 0:0 4 t11/f1.txt 2c8b08da5ce6
        f 0700 0:0 5 t11/hl1 87e434e018d1
        h 0700 0:0 0 t11/hl2 -> t11/hl1
        l 0777 0:0 0 t11/link -> f1.txt
        d 0700 0:0 0 t11/sub
        f 0700 0:0 5 t11/sub/deep.txt 64896f89fd11
        f 0700 0:0 2 t11/x.txt 73cb3858a687
        d 0755 0:0 0 t12
        d 0755 0:0 0 t12/new
        d 0755 0:0 0 t12/new/deep
        f 0705 0:0 4 t12/new/deep/f1.txt 2c8b08da5ce6
        d 0755 7:8 0 t13
        d 0755 7:8 0 t13/x
        l 0777 7:8 0 t13/x/abslink -> /etc/passwd
        d 0755 7:8 0 t13/x/empty
        f 0600 7:8 4 t13/x/f1.txt 2c8b08da5ce6
        f 0644 7:8 5 t13/x/hl1 87e434e018d1
        h 0644 7:8 0 t13/x/hl2 -> t13/x/hl1
        l 0777 7:8 0 t13/x/link -> f1.txt
        d 0700 7:8 0 t13/x/sub
        f 0644 7:8 5 t13/x/sub/deep.txt 64896f89fd11
        f 0644 7:8 2 t13/x/x.txt 73cb3858a687
        f 4755 0:0 2 t14 ea46748e171a
        f 0600 0:0 4 t15 2c8b08da5ce6
        d 0755 0:0 0 t16
        f 0644 0:0 3 t16/in.txt ab5080369a96
        f 0644 0:0 3 t16/q1.txt bb98a35c4fe1
        f 0644 0:0 3 t16/q2.txt 1733fb947c0c
        f 0600 0:0 4 t17 2c8b08da5ce6
        d 0755 0:0 0 t18
        f 0644 0:0 5 t18/deep.txt 64896f89fd11
        d 0755 0:0 0 t2
        l 0777 0:0 0 t2/abslink -> /etc/passwd
        d 0755 0:0 0 t2/empty
        f 0600 0:0 4 t2/f1.txt 2c8b08da5ce6
        f 0644 0:0 5 t2/hl1 87e434e018d1
        h 0644 0:0 0 t2/hl2 -> t2/hl1
        l 0777 0:0 0 t2/link -> f1.txt
        d 0700 0:0 0 t2/sub
        f 0644 0:0 5 t2/sub/deep.txt 64896f89fd11
        f 0644 0:0 2 t2/x.txt 73cb3858a687
        d 0755 0:0 0 t3
        l 0777 0:0 0 t3/abslink -> /etc/passwd
        d 0755 0:0 0 t3/empty
        f 0600 0:0 4 t3/f1.txt 2c8b08da5ce6
        f 0644 0:0 5 t3/hl1 87e434e018d1
        h 0644 0:0 0 t3/hl2 -> t3/hl1
        l 0777 0:0 0 t3/link -> f1.txt
        d 0700 0:0 0 t3/sub
        f 0644 0:0 5 t3/sub/deep.txt 64896f89fd11
        f 0644 0:0 2 t3/x.txt 73cb3858a687
        d 0755 0:0 0 t4
        f 0600 0:0 4 t4/linkfile 2c8b08da5ce6
        f 0600 0:0 4 t5 2c8b08da5ce6
        d 0755 0:0 0 t6
        f 0644 0:0 5 t6/deep.txt 64896f89fd11
        d 0755 0:0 0 t7
        f 0644 0:0 5 t7/deep.txt 64896f89fd11
        f 0600 0:0 4 t7/f1.txt 2c8b08da5ce6
        d 0755 0:0 0 t8
        f 0644 0:0 3 t8/q1.txt bb98a35c4fe1
        f 0644 0:0 3 t8/q2.txt 1733fb947c0c
        d 0755 0:0 0 t9
        f 0644 0:0 2 t9/[x].txt 0263829989b6
        ",
    );
    r.assert_outside_untouched();
}

/// Case A's context plus a `.dockerignore` and the destination state a `RUN` made:
/// ```text
/// .dockerignore: excluded.txt  skip2  !skip2/nothere.txt  Dockerfile  .dockerignore
/// RUN mkdir -p /ex/tgt && echo old > /ex/file && ln -s /ex/file /ex/flink
///     && ln -s /ex/tgt /ex/dlink && ln -s ../../../../tmpx /ex/esc
/// ```
#[test]
fn dockerignore_and_destination_symlinks_match_buildkit() {
    let r = Roots::new();
    context_a(&r.src);
    write(&r.src, "excluded.txt", "ex\n");
    symlink(&r.src, "linkex", "excluded.txt");
    write(&r.src, "skip2/other.txt", "o\n");
    write(&r.src, "a\\*b.txt", "bs\n");
    chmod(&r.src, "a\\*b.txt", 0o644);
    symlink(&r.src, "l1", "q1.txt");
    write(&r.src, "Dockerfile", "FROM scratch\n");
    write(&r.src, ".dockerignore", "excluded.txt\nskip2\n!skip2/nothere.txt\nDockerfile\n.dockerignore\n");
    write(&r.dst, "ex/file", "old\n");
    chmod(&r.dst, "ex/file", 0o644);
    mkdir(&r.dst, "ex/tgt");
    chmod(&r.dst, "ex/tgt", 0o755);
    chmod(&r.dst, "ex", 0o755);
    symlink(&r.dst, "ex/flink", "/ex/file");
    symlink(&r.dst, "ex/dlink", "/ex/tgt");
    symlink(&r.dst, "ex/esc", "../../../../tmpx");
    let ignore = Ignore::new(&["excluded.txt", "skip2", "!skip2/nothere.txt", "Dockerfile", ".dockerignore"]);
    let ctx = context(&r.src, Some(&ignore));
    run(&ctx, &r.dst, &["."], "/all/", |_| {});
    run(&ctx, &r.dst, &["l1"], "/w6/", |_| {});
    run(&ctx, &r.dst, &["qd", "q1.txt"], "/m", |_| {});
    run(&ctx, &r.dst, &["q1.txt"], "/w7/.", |_| {});
    run(&ctx, &r.dst, &["q1.txt"], "/ex/flink", |_| {});
    run(&ctx, &r.dst, &["qd"], "/ex/dlink", |_| {});
    run(&ctx, &r.dst, &["q1.txt"], "/ex/esc/", |_| {});
    run(&ctx, &r.dst, &["s*/sub/deep.txt"], "/w8/", |_| {});
    run(&ctx, &r.dst, &["q1.txt"], "/", |_| {});
    // Captured errors of the same context (each failed its build):
    let e = copy(&ctx, &["linkex".into()], &r.dst, "/w9", &CopyOptions::dockerfile()).unwrap_err();
    assert_eq!(e.to_string(), r#""/excluded.txt": not found"#, "BuildKit: \"/excluded.txt\": not found");
    let e = copy(&ctx, &["nodir/*.txt".into()], &r.dst, "/w1/", &CopyOptions::dockerfile()).unwrap_err();
    assert_eq!(e.to_string(), "lstat /nodir: no such file or directory", "BuildKit: lstat <root>/nodir: ...");
    let e = copy(&ctx, &["q[.txt".into()], &r.dst, "/w2/", &CopyOptions::dockerfile()).unwrap_err();
    assert!(e.to_string().ends_with("syntax error in pattern"), "BuildKit: syntax error in pattern");
    assert_listing(
        &r.dst,
        &["all", "ex", "m", "q1.txt", "tmpx", "w6", "w7", "w8"],
        r"
        d 0755 0:0 0 all
        f 0644 0:0 2 all/[x].txt 0263829989b6
        f 0644 0:0 2 all/a*b.txt 87428fc52280
        f 0644 0:0 3 all/a\*b.txt 69c5b67d41d4
        l 0777 0:0 0 all/abslinkdir -> /src/sub
        l 0777 0:0 0 all/escape -> ../../../../etc
        l 0777 0:0 0 all/l1 -> q1.txt
        l 0777 0:0 0 all/linkdir -> src
        l 0777 0:0 0 all/linkex -> excluded.txt
        l 0777 0:0 0 all/linkfile -> src/f1.txt
        f 0644 0:0 3 all/q1.txt bb98a35c4fe1
        f 0644 0:0 3 all/q2.txt 1733fb947c0c
        d 0755 0:0 0 all/qd
        f 0644 0:0 3 all/qd/in.txt ab5080369a96
        d 0750 0:0 0 all/src
        l 0777 0:0 0 all/src/abslink -> /etc/passwd
        d 0755 0:0 0 all/src/empty
        f 0600 0:0 4 all/src/f1.txt 2c8b08da5ce6
        f 0644 0:0 5 all/src/hl1 87e434e018d1
        h 0644 0:0 0 all/src/hl2 -> all/src/hl1
        l 0777 0:0 0 all/src/link -> f1.txt
        d 0700 0:0 0 all/src/sub
        f 0644 0:0 5 all/src/sub/deep.txt 64896f89fd11
        f 0644 0:0 2 all/src/x.txt 73cb3858a687
        f 4755 0:0 2 all/suid.sh ea46748e171a
        d 0755 0:0 0 ex
        l 0777 0:0 0 ex/dlink -> /ex/tgt
        l 0777 0:0 0 ex/esc -> ../../../../tmpx
        f 0644 0:0 3 ex/file bb98a35c4fe1
        l 0777 0:0 0 ex/flink -> /ex/file
        d 0755 0:0 0 ex/tgt
        f 0644 0:0 3 ex/tgt/in.txt ab5080369a96
        d 0755 0:0 0 m
        f 0644 0:0 3 m/in.txt ab5080369a96
        f 0644 0:0 3 m/q1.txt bb98a35c4fe1
        f 0644 0:0 3 q1.txt bb98a35c4fe1
        d 0755 0:0 0 tmpx
        f 0644 0:0 3 tmpx/q1.txt bb98a35c4fe1
        d 0755 0:0 0 w6
        f 0644 0:0 3 w6/l1 bb98a35c4fe1
        d 0755 0:0 0 w7
        f 0644 0:0 3 w7/q1.txt bb98a35c4fe1
        d 0755 0:0 0 w8
        f 0644 0:0 5 w8/deep.txt 64896f89fd11
        ",
    );
    r.assert_outside_untouched();
}

/// `COPY --chmod` variants ("case D"): suid.sh 4755, f.txt, dd/sub 2750 with x.
#[test]
fn chmod_replaces_all_mode_bits_like_buildkit() {
    let r = Roots::new();
    write(&r.src, "suid.sh", "u\n");
    chmod(&r.src, "suid.sh", 0o4755);
    write(&r.src, "f.txt", "f\n");
    write(&r.src, "dd/sub/x", "x\n");
    chmod(&r.src, "dd/sub", 0o2750);
    let ctx = context(&r.src, None);
    let mode = |m| move |o: &mut CopyOptions| o.chmod = Some(Chmod::Octal(m));
    run(&ctx, &r.dst, &["suid.sh"], "/d1", mode(0o755));
    run(&ctx, &r.dst, &["f.txt"], "/d2", mode(0o4755));
    run(&ctx, &r.dst, &["f.txt"], "/d3", mode(0o7777));
    run(&ctx, &r.dst, &["dd"], "/d4/", mode(0o644));
    run(&ctx, &r.dst, &["dd"], "/d5/", mode(0o1777));
    // `--chmod=u+x` and `--chmod=999` were built too: BuildKit 0.13 left the mode unchanged.
    // strata applies symbolic modes as newer frontends do (tests.rs) and the frontend rejects
    // `999` as newer frontends do.
    chmod(&r.src, "f.txt", 0o644);
    assert_listing(
        &r.dst,
        &["d1", "d2", "d3", "d4", "d5"],
        r"
        f 0755 0:0 2 d1 ea46748e171a
        f 4755 0:0 2 d2 092fcfbbcfca
        f 7777 0:0 2 d3 092fcfbbcfca
        d 0755 0:0 0 d4
        d 0644 0:0 0 d4/sub
        f 0644 0:0 2 d4/sub/x 73cb3858a687
        d 0755 0:0 0 d5
        d 1777 0:0 0 d5/sub
        f 1777 0:0 2 d5/sub/x 73cb3858a687
        ",
    );
}

/// `COPY --from` a stage ("case B"). The stage was made by:
/// ```text
/// RUN mkdir -p /s/d/sub /s/empty /s/d/sub2 && echo a > /s/d/f && echo deep > /s/d/sub/deep
///  && chown 1234:5678 /s/d/f && chmod 0640 /s/d/f && ln /s/d/f /s/d/hard && ln -s f /s/d/sym
///  && mkfifo /s/d/fifo && mknod /s/d/null c 1 3 && mknod /s/d/blk b 7 0
///  && chown -h 11:12 /s/d/sym && touch -h -d '2001-01-01 01:01:01' /s/d/sym
///  && touch -d '2001-01-01 01:01:01' /s/d/f /s/d/fifo /s/d/null /s/d/sub/deep
///  && chown 99:98 /s/d/sub && chmod 0711 /s/d/sub && chmod 2755 /s/d/sub2
///  && touch -d '2002-02-02 02:02:02' /s/d/sub /s/d/sub2 && chmod 1777 /s/empty && chown 5:6 /s/empty
///  && touch -d '2003-03-03 03:03:03' /s/empty && chmod 0750 /s/d && chown 3:4 /s/d
///  && touch -d '2004-04-04 04:04:04' /s/d && ln -s /../../../s/d /s/esc && ln -s /s/d /s/dlink
///  && ln -s ../../../../../etc /s/esc2
/// ```
/// and the destination by:
/// ```text
/// RUN mkdir -p /ex/dir /ex/merge/sub /ex/top && chmod 0700 /ex/dir && chown 55:55 /ex/dir
///  && echo old > /ex/file && ln -s /ex/dir /ex/dlink && ln -s /../../ex/target /ex/esclink
///  && ln -s /ex/missingdir /ex/danglink && chown 66:66 /ex/merge /ex/merge/sub
///  && chmod 0701 /ex/merge /ex/merge/sub && echo keep > /ex/merge/keep && echo oldf > /ex/merge/f
///  && touch -d '1999-09-09 09:09:09' /ex/dir /ex/merge /ex/merge/sub /ex/top
///  && chmod 0705 /ex/top && chown 77:77 /ex/top
/// ```
#[test]
fn stage_sources_and_existing_destinations_match_buildkit() {
    use rustix::fs::{FileType, makedev};
    let r = Roots::new();
    let s = &r.src;
    write(s, "etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n");
    write(s, "etc/group", "root:x:0:\nnogroup:x:65534:\n");
    write(s, "s/d/f", "a\n");
    write(s, "s/d/sub/deep", "deep\n");
    mkdir(s, "s/d/sub2");
    mkdir(s, "s/empty");
    chown(s, "s/d/f", 1234, 5678);
    chmod(s, "s/d/f", 0o640);
    std::fs::hard_link(s.join("s/d/f"), s.join("s/d/hard")).unwrap();
    symlink(s, "s/d/sym", "f");
    testutil::mknod(s, "s/d/fifo", FileType::Fifo, 0o644, 0);
    testutil::mknod(s, "s/d/null", FileType::CharacterDevice, 0o644, makedev(1, 3));
    testutil::mknod(s, "s/d/blk", FileType::BlockDevice, 0o644, makedev(7, 0));
    chown(s, "s/d/sym", 11, 12);
    for f in ["s/d/sym", "s/d/f", "s/d/fifo", "s/d/null", "s/d/sub/deep"] {
        testutil::set_mtime(s, f, 978310861, 0);
    }
    chmod(s, "s/d/sub/deep", 0o644);
    chown(s, "s/d/sub", 99, 98);
    chmod(s, "s/d/sub", 0o711);
    chmod(s, "s/d/sub2", 0o2755);
    testutil::set_mtime(s, "s/d/sub", 1012615322, 0);
    testutil::set_mtime(s, "s/d/sub2", 1012615322, 0);
    chmod(s, "s/empty", 0o1777);
    chown(s, "s/empty", 5, 6);
    testutil::set_mtime(s, "s/empty", 1046660583, 0);
    chmod(s, "s/d", 0o750);
    chown(s, "s/d", 3, 4);
    testutil::set_mtime(s, "s/d", 1081051444, 0);
    symlink(s, "s/esc", "/../../../s/d");
    symlink(s, "s/dlink", "/s/d");
    symlink(s, "s/esc2", "../../../../../etc");

    let d = &r.dst;
    for dir in ["ex/dir", "ex/merge/sub", "ex/top"] {
        mkdir(d, dir);
    }
    chmod(d, "ex", 0o755);
    chmod(d, "ex/dir", 0o700);
    chown(d, "ex/dir", 55, 55);
    write(d, "ex/file", "old\n");
    symlink(d, "ex/dlink", "/ex/dir");
    symlink(d, "ex/esclink", "/../../ex/target");
    symlink(d, "ex/danglink", "/ex/missingdir");
    for dir in ["ex/merge", "ex/merge/sub"] {
        chown(d, dir, 66, 66);
        chmod(d, dir, 0o701);
    }
    write(d, "ex/merge/keep", "keep\n");
    write(d, "ex/merge/f", "oldf\n");
    for f in ["ex/file", "ex/merge/keep", "ex/merge/f"] {
        chmod(d, f, 0o644);
    }
    chmod(d, "ex/top", 0o705);
    chown(d, "ex/top", 77, 77);

    let st = stage(&r.src);
    run(&st, d, &["/s/d"], "/x1/", |_| {});
    run(&st, d, &["/s/d/f"], "/ex/dir", |_| {});
    run(&st, d, &["/s/d"], "/ex/merge", |_| {});
    run(&st, d, &["/s/d/f"], "/ex/file", |_| {});
    run(&st, d, &["/s/d/f"], "/ex/dlink/", |_| {});
    run(&st, d, &["/s/d/f"], "/ex/esclink", |_| {});
    run(&st, d, &["/s/d/f"], "/ex/danglink/", |_| {});
    run(&st, d, &["/s/esc"], "/x2/", |_| {});
    run(&st, d, &["/s/dlink"], "/x3/", |_| {});
    run(&st, d, &["/s/d/sym"], "/x4", |_| {});
    run(&st, d, &["/s/empty"], "/x5", |_| {});
    run(&st, d, &["/s/d"], "/x6/", |o| o.chmod = Some(Chmod::Octal(0o600)));
    run(&st, d, &["/s/d"], "/x7/y/z", |_| {});
    run(&st, d, &["/s/d/sub"], "/ex/top/", |_| {});
    run(&st, d, &["/s/d/f"], "/ex/top/", |_| {});
    run(&st, d, &["/s/d/sub"], "/ex/top", |o| o.owner = Some((9, 9)));
    run(&st, d, &["/s/esc2/"], "/x8/", |_| {});
    run(&st, d, &["/s/d/*"], "/x9/", |_| {});
    assert_listing(
        d,
        &["ex", "x1", "x2", "x3", "x4", "x5", "x6", "x7", "x8", "x9"],
        r"
        d 0755 0:0 0 ex
        l 0777 0:0 0 ex/danglink -> /ex/missingdir
        d 0700 55:55 0 ex/dir
        f 0640 1234:5678 2 ex/dir/f 87428fc52280
        l 0777 0:0 0 ex/dlink -> /ex/dir
        l 0777 0:0 0 ex/esclink -> /../../ex/target
        f 0640 1234:5678 2 ex/file 87428fc52280
        d 0701 66:66 0 ex/merge
        c 0644 0:0 0 ex/merge/blk 7,0
        f 0640 1234:5678 2 ex/merge/f 87428fc52280
        p 0644 0:0 0 ex/merge/fifo
        h 0640 1234:5678 0 ex/merge/hard -> ex/merge/f
        f 0644 0:0 5 ex/merge/keep f660a7996dea
        c 0644 0:0 0 ex/merge/null 1,3
        d 0711 99:98 0 ex/merge/sub
        f 0644 0:0 5 ex/merge/sub/deep 64896f89fd11
        d 2755 0:0 0 ex/merge/sub2
        l 0777 11:12 0 ex/merge/sym -> f
        d 0755 0:0 0 ex/missingdir
        f 0640 1234:5678 2 ex/missingdir/f 87428fc52280
        f 0640 1234:5678 2 ex/target 87428fc52280
        d 0705 77:77 0 ex/top
        f 0644 9:9 5 ex/top/deep 64896f89fd11
        f 0640 1234:5678 2 ex/top/f 87428fc52280
        d 0755 0:0 0 x1
        c 0644 0:0 0 x1/blk 7,0
        f 0640 1234:5678 2 x1/f 87428fc52280
        p 0644 0:0 0 x1/fifo
        h 0640 1234:5678 0 x1/hard -> x1/f
        c 0644 0:0 0 x1/null 1,3
        d 0711 99:98 0 x1/sub
        f 0644 0:0 5 x1/sub/deep 64896f89fd11
        d 2755 0:0 0 x1/sub2
        l 0777 11:12 0 x1/sym -> f
        d 0755 0:0 0 x2
        c 0644 0:0 0 x2/blk 7,0
        f 0640 1234:5678 2 x2/f 87428fc52280
        p 0644 0:0 0 x2/fifo
        h 0640 1234:5678 0 x2/hard -> x2/f
        c 0644 0:0 0 x2/null 1,3
        d 0711 99:98 0 x2/sub
        f 0644 0:0 5 x2/sub/deep 64896f89fd11
        d 2755 0:0 0 x2/sub2
        l 0777 11:12 0 x2/sym -> f
        d 0755 0:0 0 x3
        c 0644 0:0 0 x3/blk 7,0
        f 0640 1234:5678 2 x3/f 87428fc52280
        p 0644 0:0 0 x3/fifo
        h 0640 1234:5678 0 x3/hard -> x3/f
        c 0644 0:0 0 x3/null 1,3
        d 0711 99:98 0 x3/sub
        f 0644 0:0 5 x3/sub/deep 64896f89fd11
        d 2755 0:0 0 x3/sub2
        l 0777 11:12 0 x3/sym -> f
        f 0640 1234:5678 2 x4 87428fc52280
        d 0755 0:0 0 x5
        d 0755 0:0 0 x6
        c 0600 0:0 0 x6/blk 7,0
        f 0600 1234:5678 2 x6/f 87428fc52280
        p 0600 0:0 0 x6/fifo
        h 0600 1234:5678 0 x6/hard -> x6/f
        c 0600 0:0 0 x6/null 1,3
        d 0600 99:98 0 x6/sub
        f 0600 0:0 5 x6/sub/deep 64896f89fd11
        d 0600 0:0 0 x6/sub2
        l 0777 11:12 0 x6/sym -> f
        d 0755 0:0 0 x7
        d 0755 0:0 0 x7/y
        d 0755 0:0 0 x7/y/z
        c 0644 0:0 0 x7/y/z/blk 7,0
        f 0640 1234:5678 2 x7/y/z/f 87428fc52280
        p 0644 0:0 0 x7/y/z/fifo
        h 0640 1234:5678 0 x7/y/z/hard -> x7/y/z/f
        c 0644 0:0 0 x7/y/z/null 1,3
        d 0711 99:98 0 x7/y/z/sub
        f 0644 0:0 5 x7/y/z/sub/deep 64896f89fd11
        d 2755 0:0 0 x7/y/z/sub2
        l 0777 11:12 0 x7/y/z/sym -> f
        d 0755 0:0 0 x8
        f 0644 0:0 27 x8/group bc0b500e77f3
        f 0644 0:0 68 x8/passwd 611a17ec8542
        d 0755 0:0 0 x9
        c 0644 0:0 0 x9/blk 7,0
        f 0644 0:0 5 x9/deep 64896f89fd11
        f 0640 1234:5678 2 x9/f 87428fc52280
        p 0644 0:0 0 x9/fifo
        f 0640 1234:5678 2 x9/hard 87428fc52280
        c 0644 0:0 0 x9/null 1,3
        f 0640 1234:5678 2 x9/sym 87428fc52280
        ",
    );
    // Modification times BuildKit's layer recorded (whole seconds).
    for (path, secs) in [
        ("x1", 1081051444),
        ("x1/f", 978310861),
        ("x1/sym", 978310861),
        ("x1/fifo", 978310861),
        ("x1/null", 978310861),
        ("x1/sub", 1012615322),
        ("x1/sub/deep", 978310861),
        ("x5", 1046660583),
        ("x7/y/z", 1081051444),
        ("ex/merge", 1081051444),
        ("ex/merge/sub", 1012615322),
        ("ex/top", 1012615322),
    ] {
        assert_eq!(testutil::mtime(d, path).0, secs, "mtime of {path}");
    }
    r.assert_outside_untouched();
}
