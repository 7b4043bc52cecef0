//! End to end: `-o type=local` and `-o type=tar` write the image's final root filesystem —
//! every layer applied, deletions resolved, no whiteout files — as BuildKit's local and tar
//! exporters do (the tar keeps owners; the directory belongs to the user running strata).

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::process::Command;

use common::{Env, run, tool};

const DOCKERFILE: &str = "FROM {BASE}
RUN mkdir -p /d && echo one > /d/f && chown 1000:1000 /d/f && ln /d/f /d/hard && rm /bin/vi && mkdir /gone && touch /gone/x
RUN rm -rf /gone /root && echo two > /d/g && chmod 0600 /d/g && ln -s f /d/link
";

#[test]
fn local_and_tar_outputs_hold_the_final_root_filesystem() {
    let env = Env::new();
    let ctx = env.context("rootfs", &[("Dockerfile", DOCKERFILE)]);
    let (dir, tar) = (env.path("out"), env.path("root.tar"));
    env.build(
        &ctx,
        "rootfs:1",
        &["-o", &format!("type=local,dest={}", dir.display()), "-o", &format!("type=tar,dest={}", tar.display())],
    )
    .ok();

    // The directory.
    assert_eq!(fs::read_to_string(dir.join("d/f")).unwrap(), "one\n");
    assert_eq!(fs::read_to_string(dir.join("d/g")).unwrap(), "two\n");
    assert_eq!(fs::metadata(dir.join("d/g")).unwrap().mode() & 0o7777, 0o600);
    assert_eq!(fs::read_link(dir.join("d/link")).unwrap(), std::path::Path::new("f"));
    assert_eq!(fs::metadata(dir.join("d/hard")).unwrap().ino(), fs::metadata(dir.join("d/f")).unwrap().ino());
    let me = rustix::process::geteuid().as_raw();
    assert_eq!(fs::metadata(dir.join("d/f")).unwrap().uid(), me, "owned by the user running strata, as buildx writes");
    for gone in ["bin/vi", "gone", "root"] {
        assert!(dir.join(gone).symlink_metadata().is_err(), "{gone} was deleted");
    }
    assert!(dir.join("bin/busybox").is_file() && dir.join("etc/passwd").is_file());
    let mut in_dir = BTreeSet::new();
    for e in walk(&dir) {
        assert!(!e.contains(".wh."), "no whiteout files: {e}");
        in_dir.insert(e);
    }

    // The tar: the same entries, owners kept, hard link as a link, no whiteouts.
    let listing = run(Command::new(tool("tar", "tar")).args(["--numeric-owner", "-tvf"]).arg(&tar)).ok();
    let mut in_tar = BTreeSet::new();
    for line in listing.stdout.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let name = f[5].trim_end_matches('/').to_string();
        assert!(!name.contains(".wh."), "{line}");
        if name == "d/f" {
            assert!(line.starts_with("-rw-r--r-- 1000/1000"), "{line}");
        }
        if name == "d/hard" {
            assert!(line.contains("link to d/f"), "{line}");
        }
        in_tar.insert(name);
    }
    assert_eq!(in_tar, in_dir, "the tar and the directory hold the same tree");
    // Extracting the tar gives the directory's contents.
    let x = env.path("x");
    fs::create_dir_all(&x).unwrap();
    run(Command::new(tool("tar", "tar")).arg("-xf").arg(&tar).arg("-C").arg(&x)).ok();
    assert_eq!(fs::read(x.join("bin/busybox")).unwrap(), fs::read(dir.join("bin/busybox")).unwrap());
    assert_eq!(fs::metadata(x.join("d/f")).unwrap().uid(), 1000);
}

/// Relative paths of everything under `root`.
fn walk(root: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            out.push(p.strip_prefix(root).unwrap().display().to_string());
            if p.symlink_metadata().unwrap().is_dir() {
                stack.push(p);
            }
        }
    }
    out
}
