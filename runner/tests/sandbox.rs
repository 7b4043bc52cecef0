//! Real sandbox runs: namespaces, overlayfs, pivot_root, as root.
//!
//! `harness = false`: this binary's `main` first calls `maybe_run_sandbox()`, so the test
//! binary itself is the helper that `run` re-executes through `/proc/self/exe`. Tests run one
//! after another (leak checks look at the whole machine's processes and this process's mounts).
//!
//! The rootfs is built from the host's static busybox (Debian `busybox-static`): `/bin/busybox`
//! plus `busybox --install -s`, and `/etc/passwd` and `/etc/group` with root, nobody and a user
//! 1000. Like the busybox image, it has no `/dev`, `/proc`, `/sys`, `/etc/hosts`.

use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use strata_runner::spec::{MountSpec, MountSpecKind, Network, Process, Rootfs, SandboxSpec, Security};
use strata_runner::{
    Cancel, ExitStatus, OutputStream, RootfsView, RunError, RunnerConfig, UpperDir, mount_rootfs, run, run_with,
};
use tempfile::TempDir;

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
    nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n\
    builder:x:1000:1000:builder:/home/builder:/bin/sh\n";
const GROUP: &str = "root:x:0:\nstaff:x:50:builder\nbuilder:x:1000:\nnogroup:x:65534:\n";

struct Fixture {
    /// The busybox base layer.
    base: TempDir,
    /// A second layer on top: overrides /etc/motd, deletes /etc/gone (whiteout), adds a
    /// non-executable /bin/notexec.
    top: TempDir,
}

fn build_fixture() -> Fixture {
    let base = tempfile::tempdir().unwrap();
    let r = base.path();
    for d in ["bin", "sbin", "usr/bin", "usr/sbin", "etc", "root", "tmp", "home/builder"] {
        std::fs::create_dir_all(r.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", r.join("bin/busybox")).expect("copy /bin/busybox (Debian busybox-static)");
    let st = Command::new("chroot").arg(r).args(["/bin/busybox", "--install", "-s"]).status().unwrap();
    assert!(st.success(), "busybox --install failed");
    std::fs::write(r.join("etc/passwd"), PASSWD).unwrap();
    std::fs::write(r.join("etc/group"), GROUP).unwrap();
    std::fs::write(r.join("etc/motd"), "base\n").unwrap();
    std::fs::write(r.join("etc/gone"), "deleted by the top layer\n").unwrap();
    std::fs::write(r.join("etc/lowerfile"), "delete me\n").unwrap();
    std::fs::set_permissions(r.join("tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();

    let top = tempfile::tempdir().unwrap();
    let t = top.path();
    std::fs::create_dir_all(t.join("etc")).unwrap();
    std::fs::create_dir_all(t.join("bin")).unwrap();
    std::fs::write(t.join("etc/motd"), "top\n").unwrap();
    let st = Command::new("mknod").arg(t.join("etc/gone")).args(["c", "0", "0"]).status().unwrap();
    assert!(st.success());
    std::fs::write(t.join("bin/notexec"), "#!/bin/sh\necho never\n").unwrap();
    std::fs::set_permissions(t.join("bin/notexec"), std::fs::Permissions::from_mode(0o644)).unwrap();
    Fixture { base, top }
}

/// A fresh upper/work pair over the fixture's two layers.
struct Layers {
    dir: TempDir,
    rootfs: Rootfs,
}

impl Layers {
    fn new(fx: &Fixture) -> Layers {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("upper")).unwrap();
        std::fs::create_dir(dir.path().join("work")).unwrap();
        let rootfs = Rootfs {
            lower: vec![fx.base.path().to_path_buf(), fx.top.path().to_path_buf()],
            upper: dir.path().join("upper"),
            work: dir.path().join("work"),
        };
        Layers { dir, rootfs }
    }

    fn upper(&self) -> PathBuf {
        self.dir.path().join("upper")
    }

    fn spec(&self, args: &[&str]) -> SandboxSpec {
        SandboxSpec {
            rootfs: self.rootfs.clone(),
            process: Process {
                args: args.iter().map(|a| a.to_string()).collect(),
                env: vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()],
                cwd: "/".into(),
                user: String::new(),
            },
            hostname: "strata-test".into(),
            network: Network::Host,
            security: Security::Sandbox,
            mounts: vec![],
        }
    }
}

struct Outcome {
    result: Result<ExitStatus, RunError>,
    stdout: String,
    stderr: String,
}

fn run_capture(spec: &SandboxSpec) -> Outcome {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let result = run(spec, &mut |stream, bytes| match stream {
        OutputStream::Stdout => out.extend_from_slice(bytes),
        OutputStream::Stderr => err.extend_from_slice(bytes),
    });
    Outcome {
        result,
        stdout: String::from_utf8_lossy(&out).into_owned(),
        stderr: String::from_utf8_lossy(&err).into_owned(),
    }
}

/// Runs and expects exit 0; returns stdout.
fn run_ok(spec: &SandboxSpec) -> String {
    let o = run_capture(spec);
    assert_eq!(o.result.as_ref().ok(), Some(&ExitStatus::Code(0)), "{:?} stderr: {}", o.result, o.stderr);
    o.stdout
}

/// Every entry of a tree with its kind, mode, owner, size, device and content.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let m = std::fs::symlink_metadata(&path).unwrap();
            let mut desc = format!("{:o} {}:{} {} {}", m.mode(), m.uid(), m.gid(), m.len(), m.rdev());
            if m.is_file() {
                desc.push_str(&String::from_utf8_lossy(&std::fs::read(&path).unwrap()));
            } else if m.file_type().is_symlink() {
                desc.push_str(&std::fs::read_link(&path).unwrap().to_string_lossy());
            } else if m.is_dir() {
                stack.push(path.clone());
            }
            out.insert(path.strip_prefix(root).unwrap().to_path_buf(), desc);
        }
    }
    out
}

fn mountinfo() -> Vec<String> {
    // Mount ids and the rest; the order is stable for an unchanged namespace.
    std::fs::read_to_string("/proc/self/mountinfo").unwrap().lines().map(String::from).collect()
}

fn scratch_dirs() -> usize {
    std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with(".strata-sandbox-"))
        .count()
}

fn processes_with_arg(arg: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline"))
            && cmdline.split(|b| *b == 0).any(|a| a == arg.as_bytes())
        {
            found.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    found
}

// ---------------------------------------------------------------------------------------------

fn output_streamed_and_exit_codes(fx: &Fixture) {
    let l = Layers::new(fx);
    let o = run_capture(&l.spec(&["sh", "-c", "echo out; echo err >&2; exit 3"]));
    assert_eq!(o.result.unwrap(), ExitStatus::Code(3));
    assert_eq!(o.stdout, "out\n");
    assert_eq!(o.stderr, "err\n");

    assert_eq!(run_capture(&l.spec(&["true"])).result.unwrap(), ExitStatus::Code(0));
    // The process is pid 1 of its namespace: it cannot even SIGKILL itself...
    assert_eq!(run_capture(&l.spec(&["sh", "-c", "kill -9 $$; exit 4"])).result.unwrap(), ExitStatus::Code(4));
    // ...but a SIGKILL from outside ends it, and that is reported as a signal.
    let marker = format!("{}", 800_000 + std::process::id() % 90_000);
    let killer = std::thread::spawn({
        let marker = marker.clone();
        move || {
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Some(pid) = processes_with_arg(&marker).first() {
                    let st = Command::new("kill").args(["-KILL", pid]).status().unwrap();
                    assert!(st.success());
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            panic!("sleep never started");
        }
    });
    let o = run_capture(&l.spec(&["sleep", &marker]));
    killer.join().unwrap();
    assert_eq!(o.result.unwrap(), ExitStatus::Signal(9));

    // Output arrives while the process still runs.
    let start = Instant::now();
    let mut first_at = None;
    let mut all = Vec::new();
    let status = run(&l.spec(&["sh", "-c", "echo first; sleep 1; echo second"]), &mut |_, bytes| {
        first_at.get_or_insert_with(|| start.elapsed());
        all.extend_from_slice(bytes);
    })
    .unwrap();
    let total = start.elapsed();
    assert_eq!(status, ExitStatus::Code(0));
    assert_eq!(all, b"first\nsecond\n");
    assert!(total - first_at.unwrap() >= Duration::from_millis(800), "first output came at the end");
}

fn writes_land_in_upper_only(fx: &Fixture) {
    let l = Layers::new(fx);
    let (base_before, top_before) = (snapshot(fx.base.path()), snapshot(fx.top.path()));
    let spec = l.spec(&["sh", "-c", "echo hi > /newfile && rm /etc/lowerfile && mkdir -p /d/e && cat /etc/motd"]);
    assert_eq!(run_ok(&spec), "top\n");
    assert_eq!(std::fs::read_to_string(l.upper().join("newfile")).unwrap(), "hi\n");
    assert!(l.upper().join("d/e").is_dir());
    let wh = std::fs::symlink_metadata(l.upper().join("etc/lowerfile")).unwrap();
    assert!(wh.file_type().is_char_device(), "deletion must leave a whiteout");
    assert_eq!(wh.rdev(), 0, "whiteout is char 0/0");
    assert_eq!(snapshot(fx.base.path()), base_before, "base layer changed");
    assert_eq!(snapshot(fx.top.path()), top_before, "top layer changed");
    // The top layer's whiteout hides the base's file.
    let o = run_capture(&l.spec(&["cat", "/etc/gone"]));
    assert_eq!(o.result.unwrap(), ExitStatus::Code(1));
}

fn pid1_hostname_devices(fx: &Fixture) {
    let l = Layers::new(fx);
    let script = "echo $$; hostname; test -c /dev/null && echo x > /dev/null && head -c 4 /dev/zero | wc -c; \
                  ls /proc | grep -c '^[0-9]*$'";
    let out = run_ok(&l.spec(&["sh", "-c", script]));
    // pid 1; hostname; /dev works; only sh, ls, grep (and maybe nothing else) in the pid namespace.
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(&lines[..3], ["1", "strata-test", "4"], "{out}");
    assert!(lines[3].parse::<u32>().unwrap() <= 4, "unexpected processes visible: {out}");
}

fn cwd_created_and_owned_by_user(fx: &Fixture) {
    let l = Layers::new(fx);
    let mut spec = l.spec(&["pwd"]);
    spec.process.cwd = "/work/sub".into();
    spec.process.user = "1000".into();
    assert_eq!(run_ok(&spec), "/work/sub\n");
    for dir in ["work", "work/sub"] {
        let m = std::fs::metadata(l.upper().join(dir)).unwrap();
        assert!(m.is_dir());
        assert_eq!((m.mode() & 0o7777, m.uid(), m.gid()), (0o755, 1000, 1000), "{dir}");
    }
}

fn users_by_name_and_id(fx: &Fixture) {
    let l = Layers::new(fx);
    let id = |user: &str| {
        let mut spec = l.spec(&["sh", "-c", "id -u; id -g; id -G; echo $HOME"]);
        spec.process.user = user.into();
        run_ok(&spec)
    };
    assert_eq!(id(""), "0\n0\n0\n/root\n");
    assert_eq!(id("builder"), "1000\n1000\n1000 50\n/home/builder\n");
    assert_eq!(id("1000"), "1000\n1000\n1000 50\n/home/builder\n");
    assert_eq!(id("nobody"), "65534\n65534\n65534\n/nonexistent\n");
    assert_eq!(id("builder:staff"), "1000\n50\n50\n/home/builder\n");
    assert_eq!(id("4321:4321"), "4321\n4321\n4321\n/\n");
    let mut spec = l.spec(&["true"]);
    spec.process.user = "ghost".into();
    match run_capture(&spec).result {
        Err(RunError::Setup(msg)) => assert!(msg.contains("unable to find user ghost"), "{msg}"),
        other => panic!("expected a setup error, got {other:?}"),
    }
}

fn env_exactly_as_given(fx: &Fixture) {
    let l = Layers::new(fx);
    let mut spec = l.spec(&["env"]);
    spec.process.env = vec!["FOO=bar baz".into(), "PATH=/bin:/usr/bin".into(), "EMPTY=".into()];
    let mut lines: Vec<String> = run_ok(&spec).lines().map(String::from).collect();
    lines.sort();
    assert_eq!(lines, ["EMPTY=", "FOO=bar baz", "HOME=/root", "PATH=/bin:/usr/bin"]);
    // No PATH given: the default, used for the lookup too.
    spec.process.env = vec!["HOME=/custom".into()];
    let mut lines: Vec<String> = run_ok(&spec).lines().map(String::from).collect();
    lines.sort();
    assert_eq!(lines, ["HOME=/custom", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]);
}

fn command_not_found_or_not_executable(fx: &Fixture) {
    let l = Layers::new(fx);
    let o = run_capture(&l.spec(&["no-such-command", "x"]));
    assert_eq!(o.result.unwrap(), ExitStatus::Code(127));
    assert!(o.stderr.contains("\"no-such-command\": executable file not found in $PATH"), "{}", o.stderr);
    let o = run_capture(&l.spec(&["/no/such/path"]));
    assert_eq!(o.result.unwrap(), ExitStatus::Code(127));
    assert!(o.stderr.contains("no such file or directory"), "{}", o.stderr);
    let o = run_capture(&l.spec(&["/bin/notexec"]));
    assert_eq!(o.result.unwrap(), ExitStatus::Code(126));
    assert!(o.stderr.contains("permission denied"), "{}", o.stderr);
}

fn network_none_has_only_lo(fx: &Fixture) {
    let l = Layers::new(fx);
    let mut spec = l.spec(&["sh", "-c", "ls /sys/class/net; cat /sys/class/net/lo/flags"]);
    spec.network = Network::None;
    // lo, up (IFF_UP | IFF_LOOPBACK).
    assert_eq!(run_ok(&spec), "lo\n0x9\n");
    // Host network: the host's interfaces (veths come and go with other containers; skip them).
    spec.network = Network::Host;
    spec.process.args = vec!["ls".into(), "/sys/class/net".into()];
    let out = run_ok(&spec);
    let seen: Vec<&str> = out.lines().collect();
    let host: Vec<String> = std::fs::read_dir("/sys/class/net")
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with("veth"))
        .collect();
    assert!(host.len() > 1, "the host has only lo?");
    for name in &host {
        assert!(seen.contains(&name.as_str()), "{name} missing from {seen:?}");
    }
}

fn host_files_invisible(fx: &Fixture) {
    let l = Layers::new(fx);
    let marker = std::env::temp_dir().join(format!("strata-marker-{}", std::process::id()));
    std::fs::write(&marker, "host secret").unwrap();
    let script = format!("test -e {} && echo visible; ls -a /tmp; ls /", marker.display());
    let out = run_ok(&l.spec(&["sh", "-c", &script]));
    std::fs::remove_file(&marker).unwrap();
    assert!(!out.contains("visible"), "{out}");
    assert!(!out.contains("strata-marker"), "{out}");
    assert!(!out.contains(".strata-sandbox"), "{out}");
}

fn stubs_removed_mount_points_kept(fx: &Fixture) {
    let l = Layers::new(fx);
    // BuildKit's generated hosts file naming the sandbox, read-only.
    let spec = l.spec(&["sh", "-c", "cat /etc/hosts; echo x >> /etc/hosts 2>/dev/null || echo ro"]);
    let want = strata_runner::mounts::hosts_file(&spec.hostname);
    let out = run_ok(&spec);
    assert_eq!(out, format!("{want}ro\n"));
    for stub in ["etc/hosts", "etc/resolv.conf"] {
        assert!(std::fs::symlink_metadata(l.upper().join(stub)).is_err(), "{stub} left in the upper layer");
    }
    for dir in ["dev", "proc", "sys"] {
        let p = l.upper().join(dir);
        assert!(p.is_dir(), "{dir}/ should stay, as with BuildKit");
        assert_eq!(std::fs::read_dir(&p).unwrap().count(), 0, "{dir}/ should be empty");
    }
    // Extra mounts: their targets are stubs too, the mounts work, read-only is enforced.
    let host_dir = tempfile::tempdir().unwrap();
    std::fs::write(host_dir.path().join("f"), "from host\n").unwrap();
    let l = Layers::new(fx);
    let mut spec =
        l.spec(&["sh", "-c", "cat /src/f; touch /src/g 2>/dev/null || echo ro; echo t > /cache/x; cat /cache/x"]);
    spec.mounts = vec![
        MountSpec {
            target: "/src".into(),
            kind: MountSpecKind::Bind { source: host_dir.path().to_path_buf(), readonly: true },
        },
        MountSpec { target: "/a/cache".into(), kind: MountSpecKind::Tmpfs { size: Some(1 << 20), mode: 0o755 } },
        MountSpec { target: "/cache".into(), kind: MountSpecKind::Tmpfs { size: None, mode: 0o1777 } },
    ];
    assert_eq!(run_ok(&spec), "from host\nro\nt\n");
    for stub in ["src", "a", "cache", "etc/hosts"] {
        assert!(std::fs::symlink_metadata(l.upper().join(stub)).is_err(), "{stub} left in the upper layer");
    }
    assert!(!host_dir.path().join("g").exists());
}

fn setup_errors_are_reported(fx: &Fixture) {
    let l = Layers::new(fx);
    let mut spec = l.spec(&["true"]);
    spec.rootfs.upper = l.dir.path().join("missing-upper");
    match run_capture(&spec).result {
        Err(RunError::Setup(msg)) => assert!(msg.contains("mounting the rootfs"), "{msg}"),
        other => panic!("expected a setup error, got {other:?}"),
    }
    let mut spec = l.spec(&[]);
    spec.process.args.clear();
    assert!(matches!(run_capture(&spec).result, Err(RunError::InvalidSpec(_))));
}

fn kill_leaves_nothing_behind(fx: &Fixture) {
    let l = Layers::new(fx);
    let mounts_before = mountinfo();
    let scratch_before = scratch_dirs();
    let marker = format!("{}", 900_000 + std::process::id() % 90_000);
    let cancel = Cancel::new();
    let canceller = {
        let cancel = cancel.clone();
        let marker = marker.clone();
        std::thread::spawn(move || {
            // Wait until the sleep runs, then cancel.
            let deadline = Instant::now() + Duration::from_secs(10);
            while processes_with_arg(&marker).is_empty() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            assert!(!processes_with_arg(&marker).is_empty(), "sleep never started");
            cancel.cancel();
        })
    };
    let start = Instant::now();
    // A child of sh that sh does not wait for, to see the whole tree die.
    let spec = l.spec(&["sh", "-c", &format!("sleep {marker} & sleep {marker}")]);
    let result = run_with(&RunnerConfig::default(), &spec, &cancel, &mut |_, _| {});
    canceller.join().unwrap();
    assert!(matches!(result, Err(RunError::Cancelled)), "{result:?}");
    assert!(start.elapsed() < Duration::from_secs(10));
    assert_eq!(processes_with_arg(&marker), Vec::<String>::new(), "processes left behind");
    assert_eq!(mountinfo(), mounts_before, "mounts leaked");
    assert_eq!(scratch_dirs(), scratch_before, "scratch directory left behind");

    // A token cancelled before the run: nothing starts.
    assert!(matches!(run_with(&RunnerConfig::default(), &spec, &cancel, &mut |_, _| {}), Err(RunError::Cancelled)));
}

fn no_mounts_leak_after_runs(fx: &Fixture) {
    let before = mountinfo();
    let l = Layers::new(fx);
    run_ok(&l.spec(&["true"]));
    assert_eq!(mountinfo(), before);
    let host = std::fs::read_to_string("/proc/1/mountinfo").unwrap();
    assert!(!host.contains(".strata-sandbox-"), "a sandbox mount reached the host namespace");
}

fn mount_rootfs_shapes(fx: &Fixture) {
    let before = mountinfo();
    let target = tempfile::tempdir().unwrap();
    let t = target.path();
    let ls = |p: &Path| {
        let mut v: Vec<String> =
            std::fs::read_dir(p).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        v.sort();
        v
    };

    // No layers at all: empty and read-only.
    let g = mount_rootfs(&RootfsView { lower: vec![], upper: None }, t).unwrap();
    assert!(ls(t).is_empty());
    assert!(std::fs::write(t.join("x"), "").is_err());
    drop(g);

    // One layer, read-only: its whiteout hides the path (overlayfs lists whiteouts only in a
    // directory no other layer has, which a real stack never produces for a whiteout).
    let g = mount_rootfs(&RootfsView { lower: vec![fx.top.path().to_path_buf()], upper: None }, t).unwrap();
    assert_eq!(std::fs::read_to_string(t.join("etc/motd")).unwrap(), "top\n");
    assert!(std::fs::symlink_metadata(t.join("etc/gone")).is_err());
    assert!(t.join("bin/notexec").exists());
    assert!(std::fs::write(t.join("x"), "").is_err());
    g.unmount().unwrap();

    // Many layers: the top one wins, whiteouts apply.
    let lower = vec![fx.base.path().to_path_buf(), fx.top.path().to_path_buf()];
    let g = mount_rootfs(&RootfsView { lower: lower.clone(), upper: None }, t).unwrap();
    assert_eq!(std::fs::read_to_string(t.join("etc/motd")).unwrap(), "top\n");
    assert!(!t.join("etc/gone").exists());
    assert!(t.join("bin/busybox").exists());
    drop(g);

    // Writable: changes land in the upper.
    let l = Layers::new(fx);
    let view = RootfsView { lower, upper: Some(UpperDir { upper: l.upper(), work: l.dir.path().join("work") }) };
    let g = mount_rootfs(&view, t).unwrap();
    std::fs::write(t.join("copied"), "c").unwrap();
    std::fs::remove_file(t.join("etc/motd")).unwrap();
    g.unmount().unwrap();
    assert_eq!(std::fs::read_to_string(l.upper().join("copied")).unwrap(), "c");
    assert!(std::fs::symlink_metadata(l.upper().join("etc/motd")).unwrap().file_type().is_char_device());

    // Writable with no lowers (scratch).
    let l = Layers::new(fx);
    let view =
        RootfsView { lower: vec![], upper: Some(UpperDir { upper: l.upper(), work: l.dir.path().join("work") }) };
    let g = mount_rootfs(&view, t).unwrap();
    assert!(ls(t).is_empty());
    std::fs::write(t.join("first"), "1").unwrap();
    drop(g);
    assert!(l.upper().join("first").exists());
    assert_eq!(mountinfo(), before, "guards must unmount");
}

fn many_layers_beyond_the_option_limit(_fx: &Fixture) {
    use strata_runner::overlay::{MountMethod, OverlayError, OverlayOptions};
    let dir = tempfile::tempdir().unwrap();
    // 200 layers with long names: ~20 KB of lowerdir, far past mount(2)'s 4 KB.
    let mut lowers = Vec::new();
    for i in 0..200 {
        let layer = dir.path().join(format!("layer-{i:03}-{}", "x".repeat(80)));
        std::fs::create_dir(&layer).unwrap();
        std::fs::write(layer.join(format!("f{i}")), i.to_string()).unwrap();
        std::fs::write(layer.join("top"), i.to_string()).unwrap();
        lowers.push(layer);
    }
    let target = tempfile::tempdir().unwrap();
    let g = mount_rootfs(&RootfsView { lower: lowers.clone(), upper: None }, target.path()).unwrap();
    assert_eq!(std::fs::read_to_string(target.path().join("top")).unwrap(), "199");
    assert_eq!(std::fs::read_to_string(target.path().join("f0")).unwrap(), "0");
    assert_eq!(std::fs::read_dir(target.path()).unwrap().count(), 201);
    drop(g);

    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let opts = OverlayOptions::new(&lowers, None, &empty);
    assert!(matches!(opts.mount(target.path(), MountMethod::Legacy), Err(OverlayError::TooLong { .. })));
    // The mount(2) fallback itself works for what fits.
    let opts = OverlayOptions::new(&lowers[..3], None, &empty);
    opts.mount(target.path(), MountMethod::Legacy).unwrap();
    assert_eq!(std::fs::read_to_string(target.path().join("top")).unwrap(), "2");
    let st = Command::new("umount").arg(target.path()).status().unwrap();
    assert!(st.success());
}

fn capabilities_like_buildkit(fx: &Fixture) {
    let l = Layers::new(fx);
    let script =
        "grep -E '^Cap(Eff|Bnd)' /proc/self/status; mkdir -p /m; mount -t tmpfs none /m 2>/dev/null || echo denied";
    let out = run_ok(&l.spec(&["sh", "-c", script]));
    assert_eq!(out, "CapEff:\t00000000a80425fb\nCapBnd:\t00000000a80425fb\ndenied\n");
    let mut spec = l.spec(&["grep", "-E", "^Cap(Eff|Prm)", "/proc/self/status"]);
    spec.process.user = "builder".into();
    assert_eq!(run_ok(&spec), "CapPrm:\t0000000000000000\nCapEff:\t0000000000000000\n");
}

/// Docker's seccomp profile is in force without `no_new_privs`: `unshare` (needs
/// CAP_SYS_ADMIN) is refused even for the user namespace the kernel would allow anyone.
fn seccomp_filter_in_force(fx: &Fixture) {
    let l = Layers::new(fx);
    let script = "grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status; unshare -U true 2>/dev/null || echo refused";
    assert_eq!(run_ok(&l.spec(&["sh", "-c", script])), "NoNewPrivs:\t0\nSeccomp:\t2\nrefused\n");
    let mut spec = l.spec(&["sh", "-c", script]);
    spec.process.user = "builder".into();
    assert_eq!(run_ok(&spec), "NoNewPrivs:\t0\nSeccomp:\t2\nrefused\n");
}

/// Device nodes: `mknod` works (as in BuildKit), but only the standard nodes under /dev can be
/// opened; a node made anywhere else, or in /dev itself, reaches no device.
fn device_nodes_unreachable(fx: &Fixture) {
    let l = Layers::new(fx);
    let script = "mknod /tmp/null c 1 3 && echo made; echo x > /tmp/null 2>/dev/null || echo write-refused; \
                  mknod /tmp/vda b 254 0 && head -c1 /tmp/vda >/dev/null 2>&1 || echo block-refused; \
                  mknod /dev/mem2 c 1 1 && head -c1 /dev/mem2 >/dev/null 2>&1 || echo mem-refused; \
                  echo ok > /dev/null && head -c3 /dev/zero | wc -c";
    assert_eq!(run_ok(&l.spec(&["sh", "-c", script])), "made\nwrite-refused\nblock-refused\nmem-refused\n3\n");
    // The node the step made is part of its layer, as BuildKit keeps it.
    assert!(std::fs::symlink_metadata(l.upper().join("tmp/null")).unwrap().file_type().is_char_device());
}

/// `security.insecure`: every capability (also for a non-root user), no seccomp filter, no
/// masked or read-only /proc paths, /sys writable, device nodes usable.
fn insecure_mode(fx: &Fixture) {
    let l = Layers::new(fx);
    let mut spec = l.spec(&[
        "sh",
        "-c",
        "grep -E '^(CapEff|Seccomp):' /proc/self/status; \
        grep -cE ' /proc/(sys|keys|bus) ' /proc/self/mountinfo; grep ' /sys ' /proc/self/mountinfo | cut -d' ' -f6; \
        unshare -U true && echo unshared; mknod /tmp/z c 1 5 && head -c2 /tmp/z | wc -c",
    ]);
    spec.security = Security::Insecure;
    let all = std::fs::read_to_string("/proc/self/status").unwrap();
    let cap_eff = all.lines().find(|l| l.starts_with("CapEff:")).unwrap().to_string();
    let out = run_ok(&spec);
    assert_eq!(out, format!("{cap_eff}\nSeccomp:\t0\n0\nrw,nosuid,nodev,noexec,relatime\nunshared\n2\n"));
    spec.process.user = "builder".into();
    spec.process.args = vec!["grep".into(), "-E".into(), "^Cap(Eff|Amb)".into(), "/proc/self/status".into()];
    let cap = cap_eff.trim_start_matches("CapEff:\t");
    assert_eq!(run_ok(&spec), format!("CapEff:\t{cap}\nCapAmb:\t{cap}\n"));
}

/// A secret file: its content, owner and mode, read-only, and nowhere in the upper layer.
fn secret_file_mount(fx: &Fixture) {
    use strata_runner::spec::SecretData;
    let l = Layers::new(fx);
    let mut spec = l.spec(&[
        "sh",
        "-c",
        "cat /run/secrets/tok; stat -c '%a %u %g' /run/secrets/tok; \
        echo x >> /run/secrets/tok 2>/dev/null || echo read-only; grep -c ' /run/secrets/tok ' /proc/self/mountinfo",
    ]);
    spec.mounts.push(MountSpec {
        target: "/run/secrets/tok".into(),
        kind: MountSpecKind::Secret { data: SecretData(b"s3cr3t-value".to_vec()), mode: 0o440, uid: 1000, gid: 50 },
    });
    assert_eq!(run_ok(&spec), "s3cr3t-value440 1000 50\nread-only\n1\n");
    // The stubs went away again and nothing of the secret is in the layer.
    assert!(!l.upper().join("run").exists(), "{:?}", snapshot(&l.upper()));
}

/// The builder process dying (SIGTERM, default action: no cleanup code runs) takes the
/// sandbox down with it.
fn parent_death_kills_the_sandbox(fx: &Fixture) {
    let l = Layers::new(fx);
    let marker = format!("{}", 700_000 + std::process::id() % 90_000);
    let spec = l.spec(&["sh", "-c", &format!("sleep {marker} & sleep {marker}")]);
    let mut parent =
        Command::new("/proc/self/exe").arg(PARENT_ARG).arg(serde_json::to_string(&spec).unwrap()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while processes_with_arg(&marker).len() < 2 {
        assert!(Instant::now() < deadline, "sandbox never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let st = Command::new("kill").args(["-TERM", &parent.id().to_string()]).status().unwrap();
    assert!(st.success());
    let status = parent.wait().unwrap();
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(15));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !processes_with_arg(&marker).is_empty() {
        assert!(Instant::now() < deadline, "sandbox processes outlived the builder");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Mounts lived in the sandbox's namespaces only.
    let host = std::fs::read_to_string("/proc/1/mountinfo").unwrap();
    assert!(!host.contains(".strata-sandbox-"), "a sandbox mount reached the host namespace");
    // The builder had no chance to remove its (empty) scratch directory; nothing is inside.
    for entry in std::fs::read_dir(std::env::temp_dir()).unwrap().flatten() {
        if entry.file_name().to_string_lossy().starts_with(".strata-sandbox-") {
            assert_eq!(std::fs::read_dir(entry.path()).unwrap().count(), 0);
            std::fs::remove_dir(entry.path()).unwrap();
        }
    }
}

/// Makes this binary act as a builder process for `parent_death_kills_the_sandbox`.
const PARENT_ARG: &str = "__test_parent";

fn act_as_parent(spec_json: &str) -> ! {
    strata_runner::enter_private_mount_namespace().unwrap();
    let spec: SandboxSpec = serde_json::from_str(spec_json).unwrap();
    let _ = run(&spec, &mut |_, _| {});
    std::process::exit(0)
}

fn process_environment_details(fx: &Fixture) {
    let l = Layers::new(fx);
    let script = "umask; cat; echo stdin-empty; \
                  wc -c < /proc/keys; touch /proc/sys/x 2>/dev/null || echo proc-sys-ro";
    let out = run_ok(&l.spec(&["sh", "-c", script]));
    let lines: Vec<&str> = out.lines().collect();
    // Only stdio is inherited; ls sees its own directory handle (3) in /proc/self/fd.
    assert_eq!(run_ok(&l.spec(&["ls", "/proc/self/fd"])), "0\n1\n2\n3\n");
    assert_eq!(lines, ["0022", "stdin-empty", "0", "proc-sys-ro"], "umask, stdin, masked /proc/keys, ro /proc/sys");
}

type TestFn = fn(&Fixture);

fn main() {
    strata_runner::maybe_run_sandbox();
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(PARENT_ARG) {
        act_as_parent(&args[2]);
    }
    strata_runner::enter_private_mount_namespace().expect("entering a private mount namespace (run as root)");

    let tests: &[(&str, TestFn)] = &[
        ("output_streamed_and_exit_codes", output_streamed_and_exit_codes),
        ("writes_land_in_upper_only", writes_land_in_upper_only),
        ("pid1_hostname_devices", pid1_hostname_devices),
        ("process_environment_details", process_environment_details),
        ("cwd_created_and_owned_by_user", cwd_created_and_owned_by_user),
        ("users_by_name_and_id", users_by_name_and_id),
        ("env_exactly_as_given", env_exactly_as_given),
        ("command_not_found_or_not_executable", command_not_found_or_not_executable),
        ("network_none_has_only_lo", network_none_has_only_lo),
        ("host_files_invisible", host_files_invisible),
        ("stubs_removed_mount_points_kept", stubs_removed_mount_points_kept),
        ("setup_errors_are_reported", setup_errors_are_reported),
        ("capabilities_like_buildkit", capabilities_like_buildkit),
        ("seccomp_filter_in_force", seccomp_filter_in_force),
        ("device_nodes_unreachable", device_nodes_unreachable),
        ("insecure_mode", insecure_mode),
        ("secret_file_mount", secret_file_mount),
        ("kill_leaves_nothing_behind", kill_leaves_nothing_behind),
        ("parent_death_kills_the_sandbox", parent_death_kills_the_sandbox),
        ("no_mounts_leak_after_runs", no_mounts_leak_after_runs),
        ("mount_rootfs_shapes", mount_rootfs_shapes),
        ("many_layers_beyond_the_option_limit", many_layers_beyond_the_option_limit),
    ];
    let filters: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let fixture = build_fixture();
    let (mut passed, mut failed) = (0, 0);
    for (name, test) in tests {
        if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| test(&fixture)));
        if outcome.is_ok() {
            println!("test {name} ... ok");
            passed += 1;
        } else {
            println!("test {name} ... FAILED");
            failed += 1;
        }
    }
    println!("\ntest result: {}. {passed} passed; {failed} failed", if failed == 0 { "ok" } else { "FAILED" });
    if failed > 0 {
        std::process::exit(1);
    }
}
