//! End to end: `RUN --mount=type=secret` and `type=ssh` with `strata build --secret/--ssh`,
//! compared with what BuildKit 0.13 (docker26 buildx) gives the same Dockerfile: secret files at
//! `/run/secrets/<id>` mode 0400 root:root on a read-only mount, the agent socket at
//! `/run/buildkit/ssh_agent.0` (`srw------- root root`) with `SSH_AUTH_SOCK` pointing at it.
//! And the property BuildKit promises: a secret's value is in no layer, no history entry, no
//! cache record and no file of the store.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::time::{SystemTime, UNIX_EPOCH};

use common::{
    Env, StepState, blob_path, compile_static, dir_names, files_containing, layer_digests, layer_entries, layer_file,
    plain_steps, step,
};

/// A value that occurs nowhere unless the build leaked it.
fn unique_secret() -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    format!("s3cr3t-{}-{nanos:x}", std::process::id())
}

#[test]
fn secret_mounts_and_env_like_buildkit_and_never_stored() {
    let env = Env::new();
    let secret = unique_secret();
    let secret_file = env.path("token.txt");
    std::fs::write(&secret_file, &secret).unwrap();
    let dockerfile = r#"FROM {BASE}
RUN --mount=type=secret,id=tok \
    --mount=type=secret,id=tok,target=/etc/app/key,mode=0440,uid=1000,gid=50 \
    --mount=type=secret,id=tok,env=TOKEN \
    sh -c 'stat -c "%a %u %g %s" /run/secrets/tok /etc/app/key > /stat; \
           test "$TOKEN" = "$(cat /run/secrets/tok)" && echo env-ok > /env; \
           (echo x >> /run/secrets/tok) 2>/dev/null || echo read-only > /ro'
RUN test ! -e /run/secrets && test ! -e /etc/app && test -z "$TOKEN" && echo gone > /gone
"#;
    let ctx = env.context("secrets", &[("Dockerfile", dockerfile)]);
    let src = format!("id=tok,src={}", secret_file.display());
    let (r, tmp) = env.build_private_tmp(&ctx, "secrets:1", &["--secret", &src]);
    let r = r.ok();
    let image = env.inspect("secrets:1");
    let layers = layer_digests(&image);
    let run1 = blob_path(&env.root, &layers[1]);
    let n = secret.len();
    assert_eq!(layer_file(&run1, "stat"), format!("400 0 0 {n}\n440 1000 50 {n}\n"));
    assert_eq!(layer_file(&run1, "env"), "env-ok\n");
    assert_eq!(layer_file(&run1, "ro"), "read-only\n");
    // Mount points made for the secrets were removed again, as BuildKit's stub cleaner does.
    let entries = layer_entries(&run1);
    assert!(!entries.iter().any(|e| e.starts_with("run") || e.starts_with("etc/app")), "{entries:?}");
    assert_eq!(layer_file(&blob_path(&env.root, &layers[2]), "gone"), "gone\n");

    // The value is nowhere: not in any blob (decompressed), snapshot, cache record, index or
    // history, nor in the build's output.
    let leaks = files_containing(&env.root, secret.as_bytes());
    assert!(leaks.is_empty(), "the secret leaked into {leaks:?}");
    assert!(!r.stderr.contains(&secret) && !r.stdout.contains(&secret), "{r}");
    assert_eq!(dir_names(&tmp), Vec::<String>::new(), "left in TMPDIR");
}

#[test]
fn secret_values_are_not_part_of_the_cache_key() {
    let env = Env::new();
    let file = env.path("tok");
    let ctx = env.context(
        "seckey",
        &[("Dockerfile", "FROM {BASE}\nRUN --mount=type=secret,id=tok,required wc -c < /run/secrets/tok > /len\n")],
    );
    let src = format!("id=tok,src={}", file.display());
    std::fs::write(&file, "first").unwrap();
    env.build(&ctx, "seckey:1", &["--secret", &src]).ok();
    std::fs::write(&file, "second value").unwrap();
    let r = env.build(&ctx, "seckey:2", &["--secret", &src]).ok();
    // As in BuildKit: only the id is part of the key, so the step is reused.
    assert_eq!(step(&plain_steps(&r.stderr), "RUN").state, StepState::Cached, "{r}");
}

#[test]
fn missing_secrets_required_or_optional() {
    let env = Env::new();
    let ctx = env.context(
        "secmiss",
        &[("Dockerfile", "FROM {BASE}\nRUN --mount=type=secret,id=nope,required cat /run/secrets/nope\n")],
    );
    let r = env.build(&ctx, "secmiss:1", &[]).fails();
    assert!(r.stderr.contains("secret nope: not found"), "{r}");
    assert!(r.stderr.contains("Dockerfile:2"), "{r}");

    let ctx = env.context(
        "secopt",
        &[(
            "Dockerfile",
            "FROM {BASE}\nRUN --mount=type=secret,id=nope sh -c 'test -e /run/secrets/nope || echo absent > /absent'\n",
        )],
    );
    env.build(&ctx, "secopt:1", &[]).ok();
    let image = env.inspect("secopt:1");
    assert_eq!(layer_file(&blob_path(&env.root, layer_digests(&image).last().unwrap()), "absent"), "absent\n");

    // Bad flags are refused before anything runs.
    let r = env.build(&ctx, "secopt:2", &["--secret", "id=x,src=/does/not/exist"]).fails();
    assert!(r.stderr.contains("failed to stat /does/not/exist"), "{r}");
    let r = env.build(&ctx, "secopt:2", &["--secret", "src=/x"]).fails();
    assert!(r.stderr.contains("secret ID missing"), "{r}");
}

/// A stand-in SSH agent: answers every connection with `agent:` and what it was sent.
fn start_agent(path: &std::path::Path) -> std::thread::JoinHandle<()> {
    let listener = UnixListener::bind(path).unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut c) = conn else { return };
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let _ = c.read_to_end(&mut buf);
                let _ = c.write_all(&[b"agent:".as_slice(), &buf].concat());
            });
        }
    })
}

#[test]
fn ssh_agent_forwarded_like_buildkit() {
    let env = Env::new();
    let agent = env.path("agent.sock");
    let _agent = start_agent(&agent);
    let ctx = env.context(
        "ssh",
        &[(
            "Dockerfile",
            r#"FROM {BASE}
COPY sockcat /sockcat
RUN --mount=type=ssh sh -c 'echo $SSH_AUTH_SOCK > /sock; stat -c "%a %u %g %F" $SSH_AUTH_SOCK > /stat; \
    /sockcat $SSH_AUTH_SOCK hello > /reply'
RUN --mount=type=ssh,id=work,target=/agent,mode=0660,uid=1000,gid=50 --mount=type=ssh,id=absent \
    sh -c 'stat -c "%a %u %g" /agent > /stat2; /sockcat /agent again > /reply2; \
    echo $SSH_AUTH_SOCK > /sock2; test -e /run/buildkit/ssh_agent.1 || echo skipped > /optional'
"#,
        )],
    );
    compile_static("sockcat", &ctx.join("sockcat"));
    let default = format!("default={}", agent.display());
    let work = format!("work={}", agent.display());
    let (r, tmp) = env.build_private_tmp(&ctx, "ssh:1", &["--ssh", &default, "--ssh", &work]);
    r.ok();
    let image = env.inspect("ssh:1");
    let layers = layer_digests(&image);
    let run1 = blob_path(&env.root, &layers[2]);
    assert_eq!(layer_file(&run1, "sock"), "/run/buildkit/ssh_agent.0\n");
    assert_eq!(layer_file(&run1, "stat"), "600 0 0 socket\n");
    assert_eq!(layer_file(&run1, "reply"), "agent:hello");
    let entries = layer_entries(&run1);
    assert!(!entries.iter().any(|e| e.starts_with("run")), "mount stubs stay out of the layer: {entries:?}");
    let run2 = blob_path(&env.root, &layers[3]);
    assert_eq!(layer_file(&run2, "stat2"), "660 1000 50\n");
    assert_eq!(layer_file(&run2, "reply2"), "agent:again");
    // The first SSH mount names SSH_AUTH_SOCK, as BuildKit's LLB sets it.
    assert_eq!(layer_file(&run2, "sock2"), "/agent\n");
    assert_eq!(layer_file(&run2, "optional"), "skipped\n");
    assert_eq!(dir_names(&tmp), Vec::<String>::new(), "left in TMPDIR (relay sockets)");

    // A required agent that was not forwarded is an error.
    let ctx = env.context("sshreq", &[("Dockerfile", "FROM {BASE}\nRUN --mount=type=ssh,required true\n")]);
    let r = env.build(&ctx, "sshreq:1", &[]).fails();
    assert!(r.stderr.contains("no SSH agent \"default\" forwarded"), "{r}");
}
