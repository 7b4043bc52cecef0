//! End to end: a RUN step cannot reach the host. Each test is one attempt an untrusted
//! Dockerfile could make: reading host files, seeing or signalling host processes, writing
//! through `/proc` or `/sys`, mounting over host paths through symlinked mount targets, or
//! opening host devices through device nodes it creates.

mod common;

use std::os::unix::fs::MetadataExt;

use common::{Env, blob_path, layer_digests, layer_file};

/// Builds and returns a reader of the last layer's files.
fn build_and_read(env: &Env, name: &str, dockerfile: &str, flags: &[&str]) -> impl Fn(&str) -> String + use<> {
    let ctx = env.context(name, &[("Dockerfile", dockerfile)]);
    env.build(&ctx, &format!("{name}:1"), flags).ok();
    let image = env.inspect(&format!("{name}:1"));
    let last = blob_path(&env.root, layer_digests(&image).last().unwrap());
    move |path: &str| layer_file(&last, path)
}

#[test]
fn host_files_outside_mounts_are_invisible() {
    let env = Env::new();
    let marker = format!("strata-escape-marker-{}", std::process::id());
    std::fs::write(env.path(&marker), "host secret").unwrap();
    let host_dir = env.dir.path().display().to_string();
    let store = env.root.display().to_string();
    let dockerfile = format!(
        "FROM {{BASE}}\nRUN sh -c 'find / -xdev -name {marker} > /found 2>/dev/null; \
         for p in {host_dir} {store} /proc/1/root{host_dir}; do test -e $p && echo $p; done > /visible; \
         echo done >> /visible'\n"
    );
    let read = build_and_read(&env, "files", &dockerfile, &[]);
    assert_eq!(read("found"), "");
    assert_eq!(read("visible"), "done\n");
}

#[test]
fn host_processes_are_invisible_and_unreachable() {
    let env = Env::new();
    let me = std::process::id();
    let dockerfile = format!(
        "FROM {{BASE}}\nRUN sh -c 'ls /proc | grep -c \"^[0-9]*$\" > /count; kill -0 {me} 2>/dev/null && echo reached > /kill; \
         kill -0 1 && echo self > /pid1; ps -o comm | sort -u | tr \"\\n\" \" \" > /ps'\n"
    );
    let read = build_and_read(&env, "procs", &dockerfile, &[]);
    let count: u32 = read("count").trim().parse().unwrap();
    assert!(count <= 4, "only the step's own processes: {count}");
    assert_eq!(read("pid1"), "self\n", "pid 1 is the step's shell");
    // `kill -0` of this test's pid found no such process in the step's pid namespace.
    let image = env.inspect("procs:1");
    let last = blob_path(&env.root, layer_digests(&image).last().unwrap());
    assert!(common::layer_entries(&last).iter().all(|e| e != "kill"), "a host process was reachable");
}

#[test]
fn proc_cannot_write_to_the_host() {
    let env = Env::new();
    let before = std::fs::read_to_string("/proc/sys/kernel/domainname").unwrap();
    let aslr = std::fs::read_to_string("/proc/sys/kernel/randomize_va_space").unwrap();
    let dockerfile = "FROM {BASE}\nRUN sh -c 'for f in /proc/sys/kernel/domainname /proc/sys/kernel/randomize_va_space \
        /proc/sys/vm/drop_caches /proc/sysrq-trigger /proc/sys/kernel/core_pattern; do \
        (echo 0 > $f) 2>/dev/null && echo \"wrote $f\"; done > /writes; \
        (mount -t proc proc /mnt) 2>/dev/null && echo mounted >> /writes; echo end >> /writes'\n";
    let read = build_and_read(&env, "procw", dockerfile, &[]);
    assert_eq!(read("writes"), "end\n");
    assert_eq!(std::fs::read_to_string("/proc/sys/kernel/domainname").unwrap(), before);
    assert_eq!(std::fs::read_to_string("/proc/sys/kernel/randomize_va_space").unwrap(), aslr);
}

#[test]
fn sys_cannot_write_to_the_host() {
    let env = Env::new();
    let dockerfile = "FROM {BASE}\nRUN sh -c 'for f in /sys/kernel/uevent_helper /sys/kernel/mm/ksm/run \
        /sys/power/state /sys/fs/cgroup/x; do (echo 0 > $f) 2>/dev/null && echo \"wrote $f\"; done > /writes; \
        mkdir /sys/strata 2>/dev/null && echo mkdir >> /writes; echo end >> /writes'\n";
    let read = build_and_read(&env, "sysw", dockerfile, &[]);
    assert_eq!(read("writes"), "end\n");
}

/// Mount targets are resolved inside the rootfs: a symlink in the image pointing at a host path
/// (absolute, through `..`, or via `/etc/../..`) leads to that path *inside* the rootfs, never
/// to the host's.
#[test]
fn symlinked_mount_targets_stay_inside_the_rootfs() {
    let env = Env::new();
    let host = env.path("hostdir");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("marker"), "untouched").unwrap();
    let h = host.display().to_string();
    let secret_file = env.path("tok");
    std::fs::write(&secret_file, "tok").unwrap();
    let dockerfile = format!(
        "FROM {{BASE}}\nRUN ln -s {h} /abs && ln -s ../../../../../../..{h} /rel && ln -s /etc/../../../..{h} /dots\n\
         RUN --mount=type=cache,target=/abs/cache --mount=type=tmpfs,target=/rel/tmp \
         --mount=type=bind,target=/dots/ctx --mount=type=secret,id=tok,target=/abs/secret \
         sh -c 'echo pwned > /abs/cache/x; echo pwned > /rel/tmp/x; ls /dots/ctx > /ctx-list; cat /abs/secret > /dev/null; \
         ls {h} > /inside'\n"
    );
    let ctx = env.context("symlinks", &[("Dockerfile", &dockerfile)]);
    env.build(&ctx, "symlinks:1", &["--secret", &format!("id=tok,src={}", secret_file.display())]).ok();
    let names: Vec<String> =
        std::fs::read_dir(&host).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert_eq!(names, ["marker"], "the host directory was written to");
    assert_eq!(std::fs::read_to_string(host.join("marker")).unwrap(), "untouched");
    let mountinfo = std::fs::read_to_string("/proc/1/mountinfo").unwrap();
    assert!(!mountinfo.contains(&h), "a mount reached the host: {mountinfo}");
    let image = env.inspect("symlinks:1");
    let last = blob_path(&env.root, layer_digests(&image).last().unwrap());
    // Inside, the path the links name holds the mount points (empty after the run).
    assert_eq!(layer_file(&last, "ctx-list"), "Dockerfile\n");
    assert_eq!(layer_file(&last, "inside"), "cache\nctx\nsecret\ntmp\n");

    // A bind source in the context that is a symlink out of it is refused.
    let ctx = env.context(
        "bindlink",
        &[("Dockerfile", "FROM {BASE}\nRUN --mount=type=bind,source=out,target=/x cat /x/hostname\n")],
    );
    std::os::unix::fs::symlink("/etc", ctx.join("out")).unwrap();
    let r = env.build(&ctx, "bindlink:1", &[]).fails();
    assert!(r.stderr.contains("outside the build context"), "{r}");
}

/// `mknod` works as in BuildKit, but no node the step makes reaches a device: not one for the
/// host's root disk, not `/dev/mem`, not in `/dev`, a cache mount or `/dev/shm`.
#[test]
fn device_nodes_reach_no_host_device() {
    let env = Env::new();
    let dev = std::fs::metadata("/").unwrap().dev();
    let (major, minor) = (nix::libc::major(dev), nix::libc::minor(dev));
    let dockerfile = format!(
        "FROM {{BASE}}\nRUN --mount=type=cache,target=/cache sh -c 'for p in /tmp/disk /dev/disk /cache/disk /dev/shm/disk; do \
         mknod $p b {major} {minor} && echo made $p; head -c 512 $p > /dev/null 2>&1 && echo \"read $p\"; rm -f $p; done > /out; \
         mknod /tmp/mem c 1 1 && (head -c1 /tmp/mem > /dev/null 2>&1 && echo read-mem || echo mem-refused) >> /out; \
         head -c 4 /dev/urandom | wc -c >> /out'\n"
    );
    let read = build_and_read(&env, "devices", &dockerfile, &[]);
    assert_eq!(
        read("out"),
        "made /tmp/disk\nmade /dev/disk\nmade /cache/disk\nmade /dev/shm/disk\nmem-refused\n4\n",
        "host root device {major}:{minor}"
    );
}
