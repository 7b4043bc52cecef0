//! End to end, rootless: a non-root user's `strata` imports, builds (RUN steps with owners,
//! deletions, opaque directories, cache/secret/tmpfs mounts, `--network=none`, seccomp), and
//! pushes, inside a user namespace mapped through `newuidmap`/`newgidmap` (Debian `uidmap`) and
//! the user's `/etc/subuid` range; its layers must be the ones a root strata makes.
//!
//! The user is `strata-rootless`, which `scripts/test.sh` creates (`useradd -m`, which also
//! gives it a subordinate id range); without it the test fails and says so.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Run, STRATA, busybox_rootfs, layer_file, layer_listing, run, start_registry};

const USER: &str = "strata-rootless";

/// The user's uid, gid and home, from /etc/passwd.
fn rootless_user() -> (u32, u32, PathBuf) {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    let line = passwd.lines().find(|l| l.starts_with(&format!("{USER}:"))).unwrap_or_else(|| {
        panic!("no user {USER}: create it with `useradd -m -s /bin/sh {USER}` (scripts/test.sh does)")
    });
    let f: Vec<&str> = line.split(':').collect();
    let subuid = std::fs::read_to_string("/etc/subuid").unwrap_or_default();
    assert!(
        subuid.lines().any(|l| l.starts_with(&format!("{USER}:"))),
        "{USER} has no range in /etc/subuid (usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {USER})"
    );
    (f[2].parse().unwrap(), f[3].parse().unwrap(), PathBuf::from(f[5]))
}

/// A directory tree the user owns, inside a world-traversable temporary directory.
struct Home {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    uid: u32,
    gid: u32,
}

impl Home {
    fn new() -> Home {
        let (uid, gid, _) = rootless_user();
        let tmp = tempfile::Builder::new().prefix("strata-rootless-").tempdir().unwrap();
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let dir = tmp.path().join("home");
        for d in ["", "store", "tmp", "docker", "ctx"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        Home { _tmp: tmp, dir, uid, gid }
    }

    /// Hands every file under `path` to the user.
    fn give(&self, path: &Path) {
        run(Command::new("chown").arg("-R").arg(format!("{}:{}", self.uid, self.gid)).arg(path)).ok();
    }

    /// `strata --root STORE ARGS...` as the user.
    fn strata(&self, args: &[&str]) -> Run {
        run(Command::new(STRATA)
            .uid(self.uid)
            .gid(self.gid)
            .current_dir(&self.dir)
            .arg("--root")
            .arg(self.dir.join("store"))
            .args(args)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
            .env("HOME", &self.dir)
            .env("TMPDIR", self.dir.join("tmp"))
            .env("DOCKER_CONFIG", self.dir.join("docker"))
            .env("NO_COLOR", "1"))
    }

    /// `strata --root STORE ARGS...` as the user, with `env` added, inside a mount namespace
    /// whose `/proc` has a masked path (`/proc/kcore`, or the first of Docker's masked files this
    /// kernel has, covered by `/dev/null` as Docker and Kubernetes do in unprivileged containers).
    fn strata_under_masked_proc(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = Command::new("unshare");
        cmd.args(["-m", "--propagation", "private", "sh", "-c"])
            .arg(format!(
                "for f in /proc/kcore /proc/keys /proc/timer_list; do [ -e $f ] && break; done; \
                 mount --bind /dev/null $f && exec setpriv --reuid={} --regid={} --clear-groups \"$@\"",
                self.uid, self.gid
            ))
            .arg("sh")
            .arg(STRATA)
            .arg("--root")
            .arg(self.dir.join("store"))
            .args(args)
            .current_dir(&self.dir)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
            .env("HOME", &self.dir)
            .env("TMPDIR", self.dir.join("tmp"))
            .env("NO_COLOR", "1");
        for (k, v) in env {
            cmd.env(k, v);
        }
        run(&mut cmd)
    }
}

const DOCKERFILE: &str = r#"FROM {BASE} AS tool
RUN echo tool > /tool

FROM {BASE}
RUN id -u > /uid; cat /proc/self/uid_map | wc -l > /maps; grep -E '^(Seccomp|CapEff):' /proc/self/status > /status; \
    mkdir -p /d/sub /keep && echo x > /d/sub/f && echo y > /keep/g && chown 1000:50 /keep/g && chmod 4755 /keep/g; \
    rm /etc/gone; ln -s /keep/g /link
RUN rm -rf /d && mkdir /d && echo new > /d/only
COPY --chown=1000:1000 a.txt /a.txt
COPY --from=tool /tool /tool
RUN --mount=type=cache,target=/c --mount=type=tmpfs,target=/t --mount=type=secret,id=tok --network=none \
    sh -c 'echo c >> /c/log; wc -l < /c/log > /cache-lines; ip -o link | wc -l > /links; wc -c < /run/secrets/tok > /secret-len; \
    echo t > /t/x; (unshare -U true) 2>/dev/null || echo refused > /unshare; head -c3 /dev/urandom | wc -c > /dev-ok'
"#;

#[test]
fn rootless_build_and_push() {
    let home = Home::new();
    let registry = start_registry(None);
    let rootfs = home.dir.join("rootfs");
    busybox_rootfs(&rootfs);
    std::fs::write(rootfs.join("etc/gone"), "deleted later").unwrap();
    let base = format!("{}/busybox:rootless", registry.host);
    let ctx = home.dir.join("ctx");
    std::fs::write(ctx.join("Dockerfile"), DOCKERFILE.replace("{BASE}", &base)).unwrap();
    std::fs::write(ctx.join("a.txt"), "a\n").unwrap();
    let secret = home.dir.join("tok");
    std::fs::write(&secret, "twelve bytes").unwrap();
    home.give(&home.dir);

    home.strata(&["import", rootfs.to_str().unwrap(), "-t", &base]).ok();
    let src = format!("id=tok,src={}", secret.display());
    let r = home.strata(&["build", "--progress", "plain", "-t", "rootless:1", "--secret", &src, ctx.to_str().unwrap()]);
    let r = r.ok();
    assert!(!r.stderr.contains("panicked"), "{r}");

    let inspect = home.strata(&["inspect", "rootless:1"]).ok();
    let image: serde_json::Value = serde_json::from_str(&inspect.stdout).unwrap();
    let layers: Vec<PathBuf> =
        common::layer_digests(&image).iter().map(|d| common::blob_path(&home.dir.join("store"), d)).collect();
    // [base, RUN, RUN rm -rf, COPY, COPY --from, RUN mounts]
    assert_eq!(layers.len(), 6);
    let run1 = &layers[1];
    assert_eq!(layer_file(run1, "uid"), "0\n", "root inside");
    assert_eq!(layer_file(run1, "maps"), "2\n", "the user and its subordinate range");
    assert_eq!(layer_file(run1, "status"), "CapEff:\t00000000a80425fb\nSeccomp:\t2\n");
    let listing = layer_listing(run1);
    let has = |l: &[String], entry: &str| l.iter().any(|e| e == entry);
    assert!(has(&listing, "-rwsr-xr-x 1000/50 2 keep/g"), "owners and setuid bit kept: {listing:#?}");
    assert!(has(&listing, "---------- 0/0 0 etc/.wh.gone"), "a deletion is a whiteout: {listing:#?}");
    assert!(has(&listing, "lrwxrwxrwx 0/0 0 link -> /keep/g"), "{listing:#?}");
    let listing = layer_listing(&layers[2]);
    assert!(
        has(&listing, "-rwxr-xr-x 0/0 0 d/.wh..wh..opq") || has(&listing, "---------- 0/0 0 d/.wh..wh..opq"),
        "the recreated directory is opaque: {listing:#?}"
    );
    assert!(has(&listing, "-rw-r--r-- 0/0 4 d/only"), "{listing:#?}");
    assert!(has(&layer_listing(&layers[3]), "-rw-r--r-- 1000/1000 2 a.txt"));
    assert_eq!(layer_file(&layers[4], "tool"), "tool\n");
    let last = &layers[5];
    assert_eq!(layer_file(last, "cache-lines"), "1\n");
    assert_eq!(layer_file(last, "links"), "1\n", "only lo");
    assert_eq!(layer_file(last, "secret-len"), "12\n");
    assert_eq!(layer_file(last, "unshare"), "refused\n");
    assert_eq!(layer_file(last, "dev-ok"), "3\n");
    let names = common::layer_entries(last);
    assert!(names.iter().all(|n| !n.starts_with("c/") && !n.starts_with("t/") && !n.starts_with("run")), "{names:?}");

    assert_eq!(common::dir_names(&home.dir.join("tmp")), Vec::<String>::new(), "left in TMPDIR");
    assert_eq!(common::dir_names(&home.dir.join("store/tmp")), Vec::<String>::new(), "left in the store's tmp/");
    // The store's files are the user's (or its subordinate ids'), never root's.
    let root_owned = run(Command::new("find").arg(home.dir.join("store")).args(["-uid", "0", "-print"])).ok();
    assert_eq!(root_owned.stdout, "", "files owned by the real root in a rootless store");

    // And it pushes like a root strata.
    let target = format!("{}/rootless:1", registry.host);
    home.strata(&["tag", "rootless:1", &target]).ok();
    home.strata(&["push", &target]).ok();
    let r = common::skopeo(&["inspect", "--tls-verify=false", &format!("docker://{target}")]).ok();
    assert!(r.stdout.contains("\"Layers\""), "{r}");
}

#[test]
fn a_masked_proc_needs_an_opt_in_to_share_it() {
    let home = Home::new();
    let rootfs = home.dir.join("rootfs");
    busybox_rootfs(&rootfs);
    let ctx = home.dir.join("ctx");
    std::fs::write(ctx.join("Dockerfile"), "FROM base:1\nRUN grep -c ^Name: /proc/self/status > /n\n").unwrap();
    home.give(&home.dir);
    home.strata(&["import", rootfs.to_str().unwrap(), "-t", "base:1"]).ok();

    // As in an unprivileged container: the kernel refuses a fresh /proc; the error says what
    // to change.
    let build = ["build", "--progress", "plain", "-t", "p:1", ctx.to_str().unwrap()];
    let r = home.strata_under_masked_proc(&build, &[]).fails();
    assert!(r.stderr.contains("mounting /proc") && r.stderr.contains("STRATA_NO_PROCESS_SANDBOX=1"), "{r}");

    // With the opt-in, the container's /proc is shared and the step runs.
    let r = home.strata_under_masked_proc(&build, &[("STRATA_NO_PROCESS_SANDBOX", "1")]).ok();
    assert!(!r.stderr.contains("panicked"), "{r}");
    let inspect = home.strata(&["inspect", "p:1"]).ok();
    let image: serde_json::Value = serde_json::from_str(&inspect.stdout).unwrap();
    let layers = common::layer_digests(&image);
    let run_layer = common::blob_path(&home.dir.join("store"), &layers[layers.len() - 1]);
    assert_eq!(layer_file(&run_layer, "n"), "1\n", "/proc/self works");
}
