//! A store on a full disk: a 48 MiB tmpfs holds the store root, and builds fill it — inside a RUN
//! step, while committing a layer, while pulling a base image too big for it, and with the disk
//! already full when strata starts. Every time: a clean error (exit status 1, "No space left on
//! device", no panic), no partial blob or scratch directory left, `strata fsck` finds nothing
//! wrong, earlier images still run, and once space is back builds work again.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Env, run};

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        fs::create_dir_all(dir).unwrap();
        run(Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"]).arg(dir)).ok();
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Deterministic incompressible bytes.
fn noise(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x2545F4914F6CDD1D;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// The store is sound and its first image still runs; nothing half-written is left.
#[track_caller]
fn assert_intact(env: &Env, root: &Path, what: &str) {
    let f = env.strata_at(root, &["fsck"]);
    assert!(f.success() && f.stdout.contains("no problems"), "after {what}:\n{f}");
    assert_eq!(fs::read_dir(root.join("ingest")).unwrap().count(), 0, "after {what}: partial blobs left");
    assert_eq!(fs::read_dir(root.join("tmp")).unwrap().count(), 0, "after {what}: scratch left");
    assert_eq!(env.strata_at(root, &["run", "ok:1", "cat", "/ok"]).ok().stdout, "ok\n", "after {what}");
}

#[track_caller]
fn assert_enospc(r: common::Run, what: &str) {
    let r = r.fails();
    assert!(r.stderr.contains("No space left on device"), "{what}: the error must say the disk is full:\n{r}");
}

#[test]
fn a_full_disk_gives_a_clean_error_and_an_intact_store() {
    let env = Env::new();
    let disk = Tmpfs::mount(&env.path("small"), "48m");
    let root = disk.0.join("store");
    let build = |name: &str, dockerfile: &str| {
        let ctx = env.context(name, &[("Dockerfile", dockerfile)]);
        env.build_at(&root, &ctx, &format!("{name}:1"), &[])
    };
    build("ok", "FROM {BASE}\nRUN echo ok > /ok\n").ok();
    assert_intact(&env, &root, "the first build");

    // The RUN step itself fills the disk: its process fails, strata reports it.
    let r = build("fill", "FROM {BASE}\nRUN head -c 100000000 /dev/urandom > /fill\n").fails();
    assert!(r.stderr.contains("did not complete successfully"), "{r}");
    assert_intact(&env, &root, "a RUN step filling the disk");

    // The step fits, its compressed layer does not.
    assert_enospc(build("commit", "FROM {BASE}\nRUN head -c 30000000 /dev/urandom > /big\n"), "layer commit");
    assert_intact(&env, &root, "a layer commit filling the disk");

    // A base image larger than the disk.
    let rootfs = env.path("huge-rootfs");
    common::busybox_rootfs(&rootfs);
    fs::write(rootfs.join("huge"), noise(60 << 20)).unwrap();
    let huge = format!("{}/huge:1", env.registry.host);
    env.strata(&["import", rootfs.to_str().unwrap(), "-t", &huge]).ok();
    env.strata(&["push", &huge]).ok();
    assert_enospc(build("pull", &format!("FROM {huge}\nRUN true\n")), "pull");
    assert_intact(&env, &root, "a pull filling the disk");
    assert_enospc(env.strata_at(&root, &["pull", &huge]), "strata pull");
    assert_intact(&env, &root, "strata pull filling the disk");

    // The disk is full before strata starts: still a clean error, and GC still works.
    let filler = disk.0.join("filler");
    let mut f = fs::File::create(&filler).unwrap();
    let chunk = vec![0x5au8; 1 << 20];
    while std::io::Write::write_all(&mut f, &chunk).is_ok() {}
    drop(f);
    let r = build("full", "FROM {BASE}\nRUN echo full > /full\n").fails();
    assert!(r.stderr.contains("No space left on device"), "{r}");
    let f = env.strata_at(&root, &["fsck"]);
    assert!(f.success() && f.stdout.contains("no problems"), "fsck on a full disk:\n{f}");
    let images = env.strata_at(&root, &["images"]).ok();
    assert!(images.stdout.contains("ok") && !images.stdout.contains("unreadable"), "{images}");
    env.strata_at(&root, &["prune", "--filter", "until=1h"]).ok();

    // Space again: the store works as before.
    fs::remove_file(&filler).unwrap();
    assert_intact(&env, &root, "a build on a full disk");
    let r = build("ok", "FROM {BASE}\nRUN echo ok > /ok\n").ok();
    assert!(common::plain_steps(&r.stderr).iter().all(|s| s.state == common::StepState::Cached), "{r}");
    build("after", "FROM {BASE}\nRUN echo after > /after\n").ok();
    assert_eq!(env.strata_at(&root, &["run", "after:1", "cat", "/after"]).ok().stdout, "after\n");
}
