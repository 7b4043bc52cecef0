//! End to end: build contexts that are not a directory — a tar archive on standard input, a
//! Dockerfile on standard input (alone, or with `-f -` beside a directory), a git URL — each
//! with its `.dockerignore` applied, and cache hits when the same context comes again.

mod common;

use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use common::{Env, STRATA, blob_path, layer_digests, layer_entries, layer_file, run, tool};

/// `strata build ... ` with `stdin` as standard input.
fn build_with_stdin(env: &Env, args: &[&str], stdin: &[u8]) -> common::Run {
    let mut child = Command::new(STRATA)
        .arg("--root")
        .arg(&env.root)
        .args(["build", "--progress", "plain"])
        .args(args)
        .env("DOCKER_CONFIG", &env.docker_config)
        .env_remove("STRATA_ROOT")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    common::Run {
        cmd: format!("strata build {}", args.join(" ")),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn tar_of(dir: &Path) -> Vec<u8> {
    let r = Command::new(tool("tar", "tar")).arg("-C").arg(dir).args(["-cf", "-", "."]).output().unwrap();
    assert!(r.status.success());
    r.stdout
}

fn last_layer_entries(env: &Env, tag: &str) -> Vec<String> {
    let image = env.inspect(tag);
    let digests = layer_digests(&image);
    layer_entries(&blob_path(&env.root, digests.last().unwrap()))
}

#[test]
fn a_tar_on_stdin_is_the_context_with_its_dockerignore() {
    let env = Env::new();
    let dir = env.context(
        "ctx",
        &[
            ("Dockerfile", "FROM {BASE}\nCOPY . /ctx/\n"),
            ("other.Dockerfile", "FROM {BASE}\nCOPY keep.txt /other/\n"),
            (".dockerignore", "secret.txt\n*.Dockerfile\n"),
            ("keep.txt", "keep\n"),
            ("secret.txt", "secret\n"),
            ("sub/inner.txt", "inner\n"),
        ],
    );
    let tar = tar_of(&dir);
    let r = build_with_stdin(&env, &["-t", "stdin:1", "-"], &tar);
    assert!(r.success(), "{r}");
    let entries = last_layer_entries(&env, "stdin:1");
    assert!(entries.contains(&"ctx/keep.txt".to_string()), "{entries:?}");
    assert!(entries.contains(&"ctx/sub/inner.txt".to_string()));
    assert!(!entries.iter().any(|e| e.contains("secret") || e.contains("other.Dockerfile")), "{entries:?}");

    // The same archive again: every step from the cache, the same image.
    let r = build_with_stdin(&env, &["-t", "stdin:2", "-"], &tar);
    assert!(r.success() && r.stderr.contains("CACHED"), "{r}");
    assert_eq!(env.inspect("stdin:2")["Manifest"], env.inspect("stdin:1")["Manifest"]);

    // -f names a file inside the archive; a gzip'd archive works the same.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar).unwrap();
    let r = build_with_stdin(&env, &["-t", "stdin:3", "-f", "other.Dockerfile", "-"], &gz.finish().unwrap());
    assert!(r.success(), "{r}");
    assert!(last_layer_entries(&env, "stdin:3").contains(&"other/keep.txt".to_string()));

    // A missing Dockerfile inside the archive is a clear error.
    let r = build_with_stdin(&env, &["-t", "stdin:4", "-f", "nope", "-"], &tar);
    assert!(!r.success() && r.stderr.contains("nope") && !r.stderr.contains("panicked"), "{r}");
}

#[test]
fn a_dockerfile_on_stdin() {
    let env = Env::new();
    // Alone: the context is empty, so only here-documents and images can be copied.
    let df = format!("FROM {}\nCOPY <<EOF /from-stdin.txt\nhello\nEOF\n", env.base);
    let r = build_with_stdin(&env, &["-t", "df:1", "-"], df.as_bytes());
    assert!(r.success(), "{r}");
    let image = env.inspect("df:1");
    let last = layer_digests(&image).last().unwrap().clone();
    assert_eq!(layer_file(&blob_path(&env.root, &last), "from-stdin.txt"), "hello\n");
    let r = build_with_stdin(&env, &["-t", "df:2", "-"], format!("FROM {}\nCOPY x.txt /\n", env.base).as_bytes());
    assert!(!r.success() && r.stderr.contains("x.txt") && r.stderr.contains("not found"), "{r}");

    // `-f -` with a directory: the directory is the context, its .dockerignore applies.
    let dir = env.context(
        "ctx",
        &[
            ("Dockerfile", "FROM scratch\nCOPY nothing /\n"),
            (".dockerignore", "hidden.txt\n"),
            ("a.txt", "a\n"),
            ("hidden.txt", "h\n"),
        ],
    );
    let df = format!("FROM {}\nCOPY . /c/\n", env.base);
    let r = build_with_stdin(&env, &["-t", "df:3", "-f", "-", dir.to_str().unwrap()], df.as_bytes());
    assert!(r.success(), "{r}");
    let entries = last_layer_entries(&env, "df:3");
    assert!(entries.contains(&"c/a.txt".to_string()) && !entries.contains(&"c/hidden.txt".to_string()), "{entries:?}");

    // Standard input cannot be both.
    let r = build_with_stdin(&env, &["-t", "df:4", "-f", "-", "-"], b"FROM scratch\n");
    assert!(!r.success() && r.stderr.contains("both"), "{r}");
}

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn git(dir: &Path, args: &[&str]) {
    run(Command::new(tool("git", "git"))
        .args(["-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=main"])
        .args(args)
        .current_dir(dir))
    .ok();
}

#[test]
fn a_git_url_is_the_context_with_its_dockerignore() {
    let env = Env::new();
    let root = env.path("git");
    let src = root.join("src");
    fs::create_dir_all(src.join("app")).unwrap();
    fs::write(src.join("app/Dockerfile"), format!("FROM {}\nCOPY . /app/\n", env.base)).unwrap();
    fs::write(src.join("app/.dockerignore"), "ignored.txt\n").unwrap();
    fs::write(src.join("app/main.txt"), "main\n").unwrap();
    fs::write(src.join("app/ignored.txt"), "x\n").unwrap();
    fs::write(src.join("top.txt"), "top\n").unwrap();
    git(&root, &["init", "-q", "src"]);
    git(&src, &["add", "-A"]);
    git(&src, &["commit", "-qm", "one"]);
    git(&src, &["tag", "v1"]);
    git(&root, &["clone", "-q", "--bare", "src", "repo.git"]);
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let _daemon = Daemon(
        Command::new(tool("git", "git"))
            .args(["daemon", "--reuseaddr", "--export-all", "--listen=127.0.0.1", &format!("--port={port}")])
            .arg(format!("--base-path={}", root.display()))
            .arg(&root)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("git daemon (apt-get install git)"),
    );
    let url = format!("git://127.0.0.1:{port}/repo.git#v1:app");
    for _ in 0..100 {
        if Command::new("git")
            .args(["ls-remote", &url[..url.find('#').unwrap()]])
            .output()
            .is_ok_and(|o| o.status.success())
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let r = env.strata(&["build", "--progress", "plain", "-t", "gitctx:1", &url]).ok();
    let entries = last_layer_entries(&env, "gitctx:1");
    assert!(entries.contains(&"app/main.txt".to_string()), "{entries:?}\n{r}");
    assert!(
        !entries.iter().any(|e| e.contains("ignored.txt") || e.contains("top.txt") || e.contains(".git/")),
        "{entries:?}"
    );
    // Again: the checkout is reused and the steps are cached.
    let r = env.strata(&["build", "--progress", "plain", "-t", "gitctx:2", &url]).ok();
    assert!(r.stderr.contains("CACHED"), "{r}");
    assert_eq!(env.inspect("gitctx:2")["Manifest"], env.inspect("gitctx:1")["Manifest"]);
    let r = env.strata(&["build", "-t", "gitctx:3", &format!("git://127.0.0.1:{port}/repo.git#nope")]).fails();
    assert!(r.stderr.contains("nope"), "{r}");
}
