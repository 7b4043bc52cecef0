//! End to end: how a RUN step is confined, compared with BuildKit 0.13 (docker26 buildx, runc)
//! on this kind of machine: Docker's seccomp profile (every syscall number's outcome), masked
//! and read-only `/proc` paths, read-only `/sys`, rlimits, `--network`, `--security=insecure`.

mod common;

use common::{Env, blob_path, compile_static, layer_digests, layer_file};

/// Builds `dockerfile` (context files `extra`) and returns a reader of its last layer's files.
fn build_and_read(env: &Env, name: &str, dockerfile: &str, flags: &[&str]) -> impl Fn(&str) -> String + use<> {
    let ctx = env.context(name, &[("Dockerfile", dockerfile)]);
    env.build(&ctx, &format!("{name}:1"), flags).ok();
    let image = env.inspect(&format!("{name}:1"));
    let last = blob_path(&env.root, layer_digests(&image).last().unwrap());
    move |path: &str| layer_file(&last, path)
}

/// BuildKit runs RUN steps under runc's default seccomp profile (`Seccomp: 2`, filter mode) unless
/// `security.insecure` is granted; `NoNewPrivs` stays 0.
#[test]
fn run_is_confined_by_a_seccomp_filter_like_buildkit() {
    let env = Env::new();
    let read = build_and_read(
        &env,
        "seccomp",
        "FROM {BASE}\nRUN grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status > /sec.txt\n",
        &[],
    );
    assert_eq!(read("sec.txt"), "NoNewPrivs:\t0\nSeccomp:\t2\n");
}

/// Every syscall number 0-470 (x86-64), `personality`, `socket` and `clone` arguments: the
/// outcome in a strata RUN step is exactly what `tests/data/seccomp_probe.c` recorded under
/// BuildKit (`tests/data/seccomp_buildkit.txt`).
#[test]
#[cfg(target_arch = "x86_64")]
fn every_syscall_decided_as_buildkit_decides() {
    let env = Env::new();
    let ctx = env.context("probe", &[("Dockerfile", "FROM {BASE}\nCOPY probe /probe\nRUN /probe > /probe.txt 2>&1\n")]);
    compile_static("seccomp_probe", &ctx.join("probe"));
    env.build(&ctx, "probe:1", &[]).ok();
    let image = env.inspect("probe:1");
    let got = layer_file(&blob_path(&env.root, layer_digests(&image).last().unwrap()), "probe.txt");
    let want = include_str!("data/seccomp_buildkit.txt");
    let diff: Vec<String> = want
        .lines()
        .zip(got.lines())
        .filter(|(w, g)| w != g)
        .map(|(w, g)| format!("buildkit {w:?} strata {g:?}"))
        .collect();
    assert!(diff.is_empty() && want.lines().count() == got.lines().count(), "differences:\n{}", diff.join("\n"));
}

/// runc's masked paths (those this kernel has) are hidden, its read-only ones and `/sys` are
/// read-only: the mounts BuildKit's RUN step shows, and writes through them fail.
#[test]
fn masked_and_read_only_paths_like_buildkit() {
    let env = Env::new();
    let script = "grep -oE ' /(proc|sys)/[a-z_/-]+ [a-z,]+' /proc/self/mountinfo | sort > /mounts; \
                  grep -E '^([^ ]+ ){4}/sys ' /proc/self/mountinfo | cut -d' ' -f6 > /sys-opts; \
                  (echo 1 > /proc/sys/vm/drop_caches) 2>/dev/null || echo refused > /proc-sys; \
                  (echo x > /sys/kernel/uevent_helper) 2>/dev/null || echo refused > /sys-write; \
                  cat /proc/keys /proc/timer_list 2>&1 | wc -c > /masked-size";
    let read = build_and_read(&env, "masks", &format!("FROM {{BASE}}\nRUN {script}\n"), &[]);
    // What BuildKit shows on this machine for the paths the kernel has (`/proc/kcore`,
    // `/proc/sysrq-trigger` and others are absent here, and so not mounted either).
    let mut want: Vec<String> = Vec::new();
    for (path, opts) in [
        ("/proc/acpi", "ro,relatime"),
        ("/proc/bus", "ro,nosuid,nodev,noexec,relatime"),
        ("/proc/fs", "ro,nosuid,nodev,noexec,relatime"),
        ("/proc/irq", "ro,nosuid,nodev,noexec,relatime"),
        ("/proc/keys", "rw,nosuid"),
        ("/proc/sys", "ro,nosuid,nodev,noexec,relatime"),
        ("/proc/timer_list", "rw,nosuid"),
        ("/sys/firmware", "ro,relatime"),
    ] {
        if std::path::Path::new(path).exists() {
            want.push(format!(" {path} {opts}"));
        }
    }
    want.sort();
    let got = read("mounts");
    let got: Vec<&str> = got.lines().collect();
    assert_eq!(got, want);
    assert_eq!(read("sys-opts"), "ro,nosuid,nodev,noexec,relatime\n");
    assert_eq!(read("proc-sys"), "refused\n");
    assert_eq!(read("sys-write"), "refused\n");
    assert_eq!(read("masked-size"), "0\n");
}

/// BuildKit gives RUN steps the daemon's own resource limits (runc gets no rlimits from
/// BuildKit's spec); strata's steps get strata's, i.e. those of whoever started it.
#[test]
fn rlimits_are_inherited_like_buildkit() {
    let env = Env::new();
    let read = build_and_read(&env, "limits", "FROM {BASE}\nRUN cat /proc/self/limits > /limits\n", &[]);
    let mine = std::fs::read_to_string("/proc/self/limits").unwrap();
    assert_eq!(read("limits"), mine);
}

#[test]
fn network_modes() {
    let env = Env::new();
    let dockerfile = "FROM {BASE}\nRUN --network=none sh -c 'ip -o link | cut -d: -f2 > /links; \
                      ip -o link show lo | grep -o \"state [A-Z]*\\|UP\" | head -1 > /lo; cat /proc/net/dev | wc -l > /devs'\n";
    let read = build_and_read(&env, "netnone", dockerfile, &[]);
    assert_eq!(read("links"), " lo\n", "only loopback");
    assert_eq!(read("lo"), "UP\n", "loopback is up");
    assert_eq!(read("devs"), "3\n", "two header lines and lo");

    let host = "FROM {BASE}\nRUN --network=host ls /sys/class/net | sort > /links\n";
    let ctx = env.context("nethost", &[("Dockerfile", host)]);
    let r = env.build(&ctx, "nethost:1", &[]).fails();
    assert!(r.stderr.contains("network.host is not allowed"), "{r}");
    assert!(r.stderr.contains("--allow network.host"), "{r}");
    let read = build_and_read(&env, "nethost2", host, &["--allow", "network.host"]);
    let mut want: Vec<String> = std::fs::read_dir("/sys/class/net")
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    want.sort();
    assert_eq!(read("links"), format!("{}\n", want.join("\n")), "the host's interfaces");
}

/// `--security=insecure` needs `--allow security.insecure`, and then gets what BuildKit's
/// `WithInsecureSpec` gives: every capability, no seccomp filter, no masked paths, /sys writable.
#[test]
fn security_insecure_needs_the_entitlement() {
    let env = Env::new();
    let dockerfile = "FROM {BASE}\nRUN --security=insecure sh -c \"grep -E '^(CapEff|Seccomp):' /proc/self/status > /st; \
                      grep -c ' /proc/sys ' /proc/self/mountinfo > /masks; unshare -U true && echo unshared > /ns; \
                      grep -E '^([^ ]+ ){4}/sys ' /proc/self/mountinfo | cut -d' ' -f6 > /sys-opts\"\n";
    let ctx = env.context("insecure", &[("Dockerfile", dockerfile)]);
    let r = env.build(&ctx, "insecure:1", &[]).fails();
    assert!(r.stderr.contains("security.insecure is not allowed"), "{r}");
    let read = build_and_read(&env, "insecure2", dockerfile, &["--allow", "security.insecure"]);
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let cap_eff = status.lines().find(|l| l.starts_with("CapEff:")).unwrap();
    assert_eq!(read("st"), format!("{cap_eff}\nSeccomp:\t0\n"));
    assert_eq!(read("masks"), "0\n");
    assert_eq!(read("ns"), "unshared\n");
    assert_eq!(read("sys-opts"), "rw,nosuid,nodev,noexec,relatime\n");
}
