//! End to end: what a RUN step sees, compared with what BuildKit 0.13 (docker26 buildx, runc) gives
//! the same Dockerfile on this kind of machine: user and groups, environment, capabilities,
//! `/dev`, hostname, umask, SHELL, `/etc/hosts` and the seccomp filter. The expected values were
//! read off files written by RUN steps in images built by the reference.

mod common;

use common::{Env, blob_path, layer_digests, layer_file};

/// Builds `dockerfile` and returns a reader of files from its last layer.
fn build_and_read(env: &Env, name: &str, dockerfile: &str) -> impl Fn(&str) -> String {
    let ctx = env.context(name, &[("Dockerfile", dockerfile)]);
    env.build(&ctx, &format!("{name}:1"), &[]).ok();
    let image = env.inspect(&format!("{name}:1"));
    let last = blob_path(&env.root, layer_digests(&image).last().unwrap());
    move |path: &str| layer_file(&last, path)
}

/// BuildKit's default capability set (docker's): chown dac_override fowner fsetid kill setgid
/// setuid setpcap net_bind_service net_raw sys_chroot mknod audit_write setfcap.
const DEFAULT_CAPS: &str = "00000000a80425fb";

#[test]
fn run_environment_matches_buildkit() {
    let env = Env::new();
    let dockerfile = r#"FROM {BASE}
RUN id > /root-id; env | sort > /root-env; grep -E '^Cap(Prm|Eff|Bnd)' /proc/self/status > /root-caps; ls /dev > /dev-list; hostname > /hostname
RUN echo "app:x:1000:1000::/home/app:/bin/sh" >> /etc/passwd && echo "app:x:1000:" >> /etc/group && mkdir -p /home/app && chown 1000 /home/app
USER app
WORKDIR /home/app/w
RUN id > id; env | sort > env; grep -E '^Cap(Prm|Eff|Bnd)' /proc/self/status > caps; umask > umask; pwd > pwd
USER 0:0
SHELL ["/bin/sh", "-ec"]
RUN echo $0 $- > /shell
"#;
    let ctx = env.context("runenv", &[("Dockerfile", dockerfile)]);
    env.build(&ctx, "runenv:1", &[]).ok();
    let image = env.inspect("runenv:1");
    let layers = layer_digests(&image);
    let first_run = blob_path(&env.root, &layers[1]);
    let user_run = blob_path(&env.root, &layers[4]);
    let last_run = blob_path(&env.root, layers.last().unwrap());

    assert_eq!(layer_file(&first_run, "root-id"), "uid=0(root) gid=0(root) groups=0(root)\n");
    assert_eq!(
        layer_file(&first_run, "root-env"),
        "HOME=/root\nPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\nPWD=/\nSHLVL=1\n"
    );
    assert_eq!(
        layer_file(&first_run, "root-caps"),
        format!("CapPrm:\t{DEFAULT_CAPS}\nCapEff:\t{DEFAULT_CAPS}\nCapBnd:\t{DEFAULT_CAPS}\n")
    );
    assert_eq!(
        layer_file(&first_run, "dev-list"),
        "fd\nfull\nmqueue\nnull\nptmx\npts\nrandom\nshm\nstderr\nstdin\nstdout\ntty\nurandom\nzero\n"
    );
    assert_eq!(layer_file(&first_run, "hostname"), "buildkitsandbox\n");

    assert_eq!(layer_file(&user_run, "home/app/w/id"), "uid=1000(app) gid=1000(app) groups=1000(app)\n");
    assert_eq!(
        layer_file(&user_run, "home/app/w/env"),
        "HOME=/home/app\nPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\nPWD=/home/app/w\nSHLVL=1\n"
    );
    assert_eq!(
        layer_file(&user_run, "home/app/w/caps"),
        format!("CapPrm:\t0000000000000000\nCapEff:\t0000000000000000\nCapBnd:\t{DEFAULT_CAPS}\n")
    );
    assert_eq!(layer_file(&user_run, "home/app/w/umask"), "0022\n");
    assert_eq!(layer_file(&user_run, "home/app/w/pwd"), "/home/app/w\n");

    assert_eq!(layer_file(&last_run, "shell"), "/bin/sh ce\n");
}

/// BuildKit writes its own `/etc/hosts` for every RUN (the sandbox hostname on 127.0.0.1, and the
/// IPv6 loopback line), never the host's: `hostname -i` / `getent hosts $(hostname)` resolve.
#[test]
fn run_sees_buildkits_etc_hosts() {
    let env = Env::new();
    let read = build_and_read(&env, "hosts", "FROM {BASE}\nRUN cat /etc/hosts > /hosts.txt\n");
    assert_eq!(read("hosts.txt"), "127.0.0.1\tlocalhost buildkitsandbox\n::1\tlocalhost ip6-localhost ip6-loopback\n");
}
