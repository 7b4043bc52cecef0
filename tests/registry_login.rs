//! End to end: `strata login` checks credentials against a real htpasswd `docker-registry` and
//! saves them in config.json as `docker login` does (or in the configured credential store);
//! later commands use them; `strata logout` removes them.

mod common;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

use common::{Env, Run, STRATA, base64, start_registry};
use serde_json::Value;

/// `strata login ARGS` with `stdin` fed, `DOCKER_CONFIG=config`, `PATH` with `extra_path` first.
fn strata_stdin(env: &Env, config: &Path, extra_path: Option<&Path>, args: &[&str], stdin: &str) -> Run {
    let mut cmd = Command::new(STRATA);
    cmd.arg("--root").arg(&env.root).args(args).env("DOCKER_CONFIG", config);
    if let Some(p) = extra_path {
        cmd.env("PATH", format!("{}:{}", p.display(), std::env::var("PATH").unwrap_or_default()));
    }
    let mut child =
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("starting strata");
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    Run {
        cmd: format!("strata {}", args.join(" ")),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn config(dir: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap()
}

#[test]
fn login_push_logout_with_an_htpasswd_registry() {
    let env = Env::with_registry(start_registry(Some(("tester", "s3cret"))), Some(("tester", "s3cret")));
    let host = env.registry.host.clone();
    let dc = env.path("login-config");
    let login = ["login", "-u", "tester", "--password-stdin", host.as_str()];

    let r = strata_stdin(&env, &dc, None, &login, "wrong\n").fails();
    assert!(r.stderr.contains("login to") && r.stderr.contains("failed"), "{r}");
    assert!(!dc.join("config.json").exists(), "nothing saved for bad credentials");

    let r = strata_stdin(&env, &dc, None, &login, "s3cret\n").ok();
    assert!(r.stdout.contains("Login Succeeded"), "{r}");
    assert_eq!(config(&dc)["auths"][&host]["auth"], base64(b"tester:s3cret"));
    assert_eq!(std::fs::metadata(dc.join("config.json")).unwrap().permissions().mode() & 0o777, 0o600);

    let dest = format!("{host}/after-login:1");
    env.strata_with(&env.root, &dc, &["push", &env.base, &dest]).ok();

    let r = env.strata_with(&env.root, &dc, &["logout", &host]).ok();
    assert!(r.stdout.contains(&format!("Removing login credentials for {host}")), "{r}");
    assert!(config(&dc)["auths"].get(&host).is_none());
    let r = env.strata_with(&env.root, &dc, &["push", &env.base, &dest]).fails();
    assert!(r.stderr.contains("401") || r.stderr.to_lowercase().contains("unauthorized"), "{r}");
    let r = env.strata_with(&env.root, &dc, &["logout", &host]).ok();
    assert!(r.stdout.contains(&format!("Not logged in to {host}")), "{r}");

    // Usage errors.
    let r = strata_stdin(&env, &dc, None, &["login", "--password-stdin", &host], "x\n").fails();
    assert!(r.stderr.contains("--password-stdin needs --username"), "{r}");
}

#[test]
fn login_saves_in_the_configured_credential_store() {
    let env = Env::with_registry(start_registry(Some(("tester", "s3cret"))), Some(("tester", "s3cret")));
    let host = env.registry.host.clone();
    // A credential store following the helper protocol, keeping one file per server.
    let bin = env.path("bin");
    let store = env.path("helper-store");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&store).unwrap();
    let helper = bin.join("docker-credential-strata-file");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\ncd {store}\ncase \"$1\" in\n\
             store) cat > last-store.json; sed 's/.*\"ServerURL\":\"\\([^\"]*\\)\".*/\\1/' last-store.json | tr ':/' '__' > key; \
             cp last-store.json \"$(cat key).json\" ;;\n\
             get) read -r s; k=$(printf %s \"$s\" | tr ':/' '__'); if [ -f \"$k.json\" ]; then cat \"$k.json\"; \
             else echo 'credentials not found in native keychain'; exit 1; fi ;;\n\
             erase) read -r s; k=$(printf %s \"$s\" | tr ':/' '__'); rm -f \"$k.json\"; echo erased >> log ;;\n\
             esac\n",
            store = store.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let dc = env.path("login-config");
    std::fs::create_dir_all(&dc).unwrap();
    std::fs::write(dc.join("config.json"), r#"{"credsStore":"strata-file","psFormat":"kept"}"#).unwrap();

    let r = strata_stdin(&env, &dc, Some(&bin), &["login", "-u", "tester", "--password-stdin", &host], "s3cret\n").ok();
    assert!(r.stdout.contains("Login Succeeded"), "{r}");
    assert!(!r.stderr.contains("unencrypted"), "no warning when a store keeps the secret:\n{r}");
    let stored: Value = serde_json::from_slice(&std::fs::read(store.join("last-store.json")).unwrap()).unwrap();
    assert_eq!(stored, serde_json::json!({"ServerURL": host, "Username": "tester", "Secret": "s3cret"}));
    let c = config(&dc);
    assert_eq!(c["auths"][&host], serde_json::json!({}), "docker leaves an empty entry");
    assert_eq!(c["psFormat"], "kept");

    // Later commands get the secret from the store.
    let mut push = Command::new(STRATA);
    push.arg("--root")
        .arg(&env.root)
        .args(["push", &env.base, &format!("{host}/via-helper:1")])
        .env("DOCKER_CONFIG", &dc)
        .env("PATH", format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default()));
    common::run(&mut push).ok();

    strata_stdin(&env, &dc, Some(&bin), &["logout", &host], "").ok();
    assert_eq!(std::fs::read_to_string(store.join("log")).unwrap(), "erased\n");
    assert!(config(&dc)["auths"].get(&host).is_none());
}
