//! End to end: Ctrl-C (SIGINT) or SIGTERM to `strata build` while a RUN step runs. The whole
//! process tree of the sandbox dies, its mounts go (in no process's mount table, the host's
//! included, is anything of the build left), and neither the store's `tmp/` nor `$TMPDIR` keeps
//! a scratch directory.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Env, STRATA, dir_names};

/// Pids whose command line has `arg` as one of its arguments.
fn pids_with_arg(arg: &str) -> Vec<i32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline"))
            && cmdline.split(|b| *b == 0).any(|a| a == arg.as_bytes())
        {
            found.push(pid);
        }
    }
    found
}

/// Sandbox helpers (`strata __sandbox PARENT`) started by `parent`.
fn helpers_of(parent: u32) -> Vec<i32> {
    let mut found = Vec::new();
    for pid in pids_with_arg("__sandbox") {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if cmdline.split(|b| *b == 0).any(|a| a == parent.to_string().as_bytes()) {
            found.push(pid);
        }
    }
    found
}

/// Mount table lines of every process that mention `needle`.
fn mounts_mentioning(needle: &Path) -> Vec<String> {
    let needle = needle.to_string_lossy().into_owned();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if entry.file_name().to_string_lossy().parse::<i32>().is_err() {
            continue;
        }
        if let Ok(table) = std::fs::read_to_string(entry.path().join("mountinfo")) {
            for line in table.lines().filter(|l| l.contains(&needle)) {
                found.push(format!("pid {}: {line}", entry.file_name().to_string_lossy()));
            }
        }
    }
    found
}

fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn interrupt_during_run(signal: &str) {
    let env = Env::new();
    // A number unique to this test run, to find exactly our sleeps.
    let marker = format!("{}", 400_000 + (std::process::id() % 100_000) * 2 + u32::from(signal == "TERM"));
    let dockerfile = format!(
        "FROM {{BASE}}\nRUN --mount=type=cache,target=/cache --mount=type=tmpfs,target=/t \
         sh -c 'sleep {marker} & sleep {marker}'\n"
    );
    let ctx = env.context("interrupt", &[("Dockerfile", &dockerfile)]);
    let tmp = env.path("tmpdir");
    std::fs::create_dir_all(&tmp).unwrap();
    let mut child = Command::new(STRATA)
        .arg("--root")
        .arg(&env.root)
        .args(["build", "--progress", "plain", "-t", "interrupt:1"])
        .arg(&ctx)
        .env("DOCKER_CONFIG", &env.docker_config)
        .env("TMPDIR", &tmp)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let strata = child.id();
    wait_until("the RUN step's sleeps", Duration::from_secs(60), || pids_with_arg(&marker).len() == 2);
    assert_eq!(helpers_of(strata).len(), 1, "one sandbox helper");
    assert!(!mounts_mentioning(&env.root).is_empty(), "the sandbox's mounts exist while it runs");

    let st = Command::new("kill").args([&format!("-{signal}"), &strata.to_string()]).status().unwrap();
    assert!(st.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "strata did not stop within 30 s of SIG{signal}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "an interrupted build must fail:\n{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    assert_eq!(pids_with_arg(&marker), Vec::<i32>::new(), "sandboxed processes survived");
    assert_eq!(helpers_of(strata), Vec::<i32>::new(), "the sandbox helper survived");
    let left = mounts_mentioning(&env.root);
    assert!(left.is_empty(), "mounts left:\n{}", left.join("\n"));
    let left = mounts_mentioning(&tmp);
    assert!(left.is_empty(), "mounts left:\n{}", left.join("\n"));
    assert_eq!(dir_names(&env.root.join("tmp")), Vec::<String>::new(), "scratch left in the store's tmp/");
    assert_eq!(dir_names(&tmp), Vec::<String>::new(), "left in TMPDIR");
    assert!(env.names().iter().all(|n| !n.contains("interrupt")), "no image was named");
}

#[test]
fn sigint_during_run_leaves_nothing() {
    interrupt_during_run("INT");
}

#[test]
fn sigterm_during_run_leaves_nothing() {
    interrupt_during_run("TERM");
}
