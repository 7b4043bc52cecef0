//! End to end: `ADD` of HTTP(S) URLs and git repositories, against peers started here — a
//! small HTTP server on a loopback port (a thread of this test) and `git daemon` serving a
//! repository made with the real `git` — with the results BuildKit 0.13 gave for the same
//! lines (captured with docker26, a Python `http.server` and `git daemon`: see each test).

mod common;

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use common::{Env, blob_path, layer_digests, run, tool};

/// One response of the test server.
#[derive(Clone)]
struct Resource {
    body: Vec<u8>,
    headers: Vec<(String, String)>,
}

/// A minimal HTTP/1.1 server: GET only, one request per connection, `If-None-Match` answered
/// with 304 when the resource's `ETag` matches. Counts requests per path.
struct Server {
    port: u16,
    hits: Arc<Mutex<HashMap<String, usize>>>,
    resources: Arc<Mutex<HashMap<String, Resource>>>,
}

impl Server {
    fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(Mutex::new(HashMap::new()));
        let resources: Arc<Mutex<HashMap<String, Resource>>> = Arc::new(Mutex::new(HashMap::new()));
        let (h, r) = (hits.clone(), resources.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (h, r) = (h.clone(), r.clone());
                std::thread::spawn(move || serve(stream, &h, &r));
            }
        });
        Server { port, hits, resources }
    }

    fn put(&self, path: &str, body: &[u8], headers: &[(&str, &str)]) {
        let headers = headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        self.resources.lock().unwrap().insert(path.to_string(), Resource { body: body.to_vec(), headers });
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

fn serve(stream: TcpStream, hits: &Mutex<HashMap<String, usize>>, resources: &Mutex<HashMap<String, Resource>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let target = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let path = target.split('?').next().unwrap_or("/").to_string();
    let mut if_none_match = None;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':')
            && k.eq_ignore_ascii_case("if-none-match")
        {
            if_none_match = Some(v.trim().to_string());
        }
    }
    *hits.lock().unwrap().entry(path.clone()).or_default() += 1;
    let res = resources.lock().unwrap().get(&path).cloned();
    let mut out = stream;
    let Some(res) = res else {
        let _ = out.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\nConnection: close\r\n\r\nno\n");
        return;
    };
    let etag = res.headers.iter().find(|(k, _)| k == "ETag").map(|(_, v)| v.clone());
    let mut head = String::new();
    if etag.is_some() && etag == if_none_match {
        head.push_str("HTTP/1.1 304 Not Modified\r\n");
    } else {
        head.push_str(&format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n", res.body.len()));
    }
    for (k, v) in &res.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("Connection: close\r\n\r\n");
    let _ = out.write_all(head.as_bytes());
    if !head.starts_with("HTTP/1.1 304") {
        let _ = out.write_all(&res.body);
    }
}

/// `TYPE MODE UID:GID SIZE NAME [MTIME]` lines of a gzip layer (Python-free: GNU tar's
/// verbose listing with full times), directories without their mtime.
fn listing(blob: &Path, with_file_mtimes: bool) -> Vec<String> {
    let r = run(Command::new(tool("tar", "tar")).args(["--numeric-owner", "--full-time", "-tvzf"]).arg(blob)).ok();
    r.stdout
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let name = f[5..].join(" ");
            if with_file_mtimes && !f[0].starts_with('d') {
                format!("{} {} {} {name} {} {}", f[0], f[1], f[2], f[3], f[4])
            } else {
                format!("{} {} {} {name}", f[0], f[1], f[2])
            }
        })
        .collect()
}

fn layers(env: &Env, tag: &str) -> Vec<Vec<String>> {
    let image = env.inspect(tag);
    layer_digests(&image).iter().skip(1).map(|d| listing(&blob_path(&env.root, d), true)).collect()
}

fn sha256(data: &[u8]) -> String {
    common::sha256_hex(data)
}

fn tar_gz() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(7);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, "t.txt", &b"tarball"[..]).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&b.into_inner().unwrap()).unwrap();
    gz.finish().unwrap()
}

/// BuildKit 0.13 on the same lines (docker26, a Python http.server and a server sending
/// Content-Disposition): mode 0600, owner 0:0 unless --chown, mtime = Last-Modified or the
/// epoch, the file named after the URL path (`__unnamed__` for `/`), archives not unpacked.
#[test]
fn add_url_downloads_like_buildkit() {
    let env = Env::new();
    let server = Server::start();
    let body = b"remote content\n";
    server.put("/file.txt", body, &[("Last-Modified", "Sat, 03 Feb 2001 04:05:06 GMT"), ("ETag", "\"v1\"")]);
    server.put("/remote.tar.gz", &tar_gz(), &[]);
    server.put("/", b"index\n", &[]);
    server.put("/cd", b"disposition\n", &[("Content-Disposition", "attachment; filename=\"named.bin\"")]);
    let sum = sha256(body);
    let dockerfile = format!(
        "FROM {base}\n\
         ADD {f} /h1/\n\
         ADD {f} /h2\n\
         ADD {tgz} /h3/\n\
         ADD {f}?x=1 /h4/\n\
         ADD {root} /h5/\n\
         ADD --chown=7:8 --chmod=0640 {f} /h6/\n\
         ADD --checksum=sha256:{sum} {f} /h7/\n\
         ADD {cd} /h8/\n",
        base = env.base,
        f = server.url("/file.txt"),
        tgz = server.url("/remote.tar.gz"),
        root = server.url("/"),
        cd = server.url("/cd"),
    );
    let ctx = env.context("ctx", &[("Dockerfile", &dockerfile)]);
    env.build(&ctx, "remote:1", &[]).ok();
    let got = layers(&env, "remote:1");
    let t = "2001-02-03 04:05:06";
    let epoch = "1970-01-01 00:00:00";
    let want: Vec<Vec<String>> = vec![
        vec!["drwxr-xr-x 0/0 0 h1/".into(), format!("-rw------- 0/0 15 h1/file.txt {t}")],
        vec![format!("-rw------- 0/0 15 h2 {t}")],
        vec!["drwxr-xr-x 0/0 0 h3/".into(), "-rw------- 0/0 {TGZ} h3/remote.tar.gz".into()],
        vec!["drwxr-xr-x 0/0 0 h4/".into(), format!("-rw------- 0/0 15 h4/file.txt {t}")],
        vec!["drwxr-xr-x 0/0 0 h5/".into(), format!("-rw------- 0/0 6 h5/__unnamed__ {epoch}")],
        vec!["drwxr-xr-x 7/8 0 h6/".into(), format!("-rw-r----- 7/8 15 h6/file.txt {t}")],
        vec!["drwxr-xr-x 0/0 0 h7/".into(), format!("-rw------- 0/0 15 h7/file.txt {t}")],
        vec!["drwxr-xr-x 0/0 0 h8/".into(), format!("-rw------- 0/0 12 h8/cd {epoch}")],
    ];
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        if i == 2 {
            // The archive is copied as is: its size, and its time is the server's (none: epoch).
            assert_eq!(g[1], format!("-rw------- 0/0 {} h3/remote.tar.gz {epoch}", tar_gz().len()));
            assert_eq!(g[0], w[0]);
            continue;
        }
        assert_eq!(g, w, "layer {}", i + 1);
    }

    // A rebuild revalidates (ETag → 304) and reuses every step; the checksummed download is
    // not even requested again.
    let before = server.hits("/file.txt");
    let r = env.build(&ctx, "remote:2", &[]).ok();
    assert_eq!(env.inspect("remote:2")["Manifest"], env.inspect("remote:1")["Manifest"], "{r}");
    let requests = server.hits("/file.txt") - before;
    assert_eq!(requests, 4, "one revalidation per ADD of file.txt without --checksum (h1 h2 h4 h6)");

    // A changed file changes the result.
    server.put("/file.txt", b"changed\n", &[("ETag", "\"v2\"")]);
    let ctx2 =
        env.context("ctx2", &[("Dockerfile", &format!("FROM {}\nADD {} /c/\n", env.base, server.url("/file.txt")))]);
    env.build(&ctx2, "remote:3", &[]).ok();
    let got = layers(&env, "remote:3");
    assert_eq!(got[0][1], format!("-rw------- 0/0 8 c/file.txt {epoch}"));
}

#[test]
fn bad_downloads_fail_clearly() {
    let env = Env::new();
    let server = Server::start();
    server.put("/file.txt", b"remote content\n", &[]);
    let cases = [
        (format!("ADD {} /m/", server.url("/missing")), "invalid response status 404"),
        (format!("ADD --checksum=sha256:{} {} /c/", "0".repeat(64), server.url("/file.txt")), "checksum mismatch"),
        (format!("ADD --checksum=md5:00 {} /c/", server.url("/file.txt")), "not a sha256 digest"),
        (format!("COPY {} /c/", server.url("/file.txt")), "source can't be a URL for COPY"),
        (format!("ADD --checksum=sha256:{} local.txt /c/", "0".repeat(64)), "checksum requires HTTP(S) or Git sources"),
        (format!("ADD {} /d/", server.url("/..")), "cannot be the name of the downloaded file"),
    ];
    for (i, (line, message)) in cases.iter().enumerate() {
        let ctx = env.context(
            &format!("bad{i}"),
            &[("Dockerfile", &format!("FROM {}\n{line}\n", env.base)), ("local.txt", "l")],
        );
        let r = env.build(&ctx, "bad:1", &[]).fails();
        assert!(r.stderr.contains(message), "{line}: expected {message:?}:\n{r}");
    }
}

/// A repository served by `git daemon` on a free loopback port; the daemon is stopped (by its
/// pid) when this is dropped.
struct GitServer {
    child: Child,
    url: String,
    commits: HashMap<String, String>,
}

impl Drop for GitServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn git(dir: &Path, args: &[&str]) -> String {
    let r = run(Command::new(tool("git", "git"))
        .args(["-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=main"])
        .args(args)
        .current_dir(dir))
    .ok();
    r.stdout.trim().to_string()
}

/// The repository of the BuildKit comparison: `a.txt`, `link -> a.txt`, `sub/{s.txt, run.sh
/// (0755), deep/d.txt}` (tag `v1`), then `b.txt` (main), and a branch `dev` adding `dev.txt`.
fn git_server(root: &Path, extra: &[(&str, &str)]) -> GitServer {
    let src = root.join("src");
    fs::create_dir_all(src.join("sub/deep")).unwrap();
    git(root, &["init", "-q", "src"]);
    fs::write(src.join("a.txt"), "a\n").unwrap();
    fs::write(src.join("sub/s.txt"), "s\n").unwrap();
    fs::write(src.join("sub/deep/d.txt"), "d\n").unwrap();
    fs::write(src.join("sub/run.sh"), "#!/bin/sh\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(src.join("sub/run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink("a.txt", src.join("link")).unwrap();
    for (name, text) in extra {
        fs::create_dir_all(src.join(name).parent().unwrap()).unwrap();
        fs::write(src.join(name), text).unwrap();
    }
    git(&src, &["add", "-A"]);
    git(&src, &["commit", "-qm", "one"]);
    git(&src, &["tag", "-a", "v1", "-m", "v1"]);
    let mut commits = HashMap::new();
    commits.insert("v1".to_string(), git(&src, &["rev-parse", "HEAD"]));
    fs::write(src.join("b.txt"), "b\n").unwrap();
    git(&src, &["add", "-A"]);
    git(&src, &["commit", "-qm", "two"]);
    commits.insert("main".to_string(), git(&src, &["rev-parse", "HEAD"]));
    git(&src, &["checkout", "-q", "-b", "dev"]);
    fs::write(src.join("dev.txt"), "devf\n").unwrap();
    git(&src, &["add", "-A"]);
    git(&src, &["commit", "-qm", "dev"]);
    git(&src, &["checkout", "-q", "main"]);
    git(root, &["clone", "-q", "--bare", "src", "repo.git"]);
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(tool("git", "git"))
        .args(["daemon", "--reuseaddr", "--export-all", "--listen=127.0.0.1", &format!("--port={port}")])
        .arg(format!("--base-path={}", root.display()))
        .arg(root)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("git daemon (apt-get install git)");
    let url = format!("git://127.0.0.1:{port}/repo.git");
    // Wait until it answers.
    for _ in 0..100 {
        if Command::new(tool("git", "git")).args(["ls-remote", &url]).output().is_ok_and(|o| o.status.success()) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    GitServer { child, url, commits }
}

/// BuildKit 0.13 on the same repository and lines (docker26 + git daemon): the commit's files
/// with git's modes (0644, 0755 for executables, symlinks), owned by 0:0 unless --chown, `.git`
/// only with --keep-git-dir, a subdirectory's contents for `#ref:dir`.
#[test]
fn add_git_sources_like_buildkit() {
    let env = Env::new();
    let g = git_server(&env.path("git"), &[]);
    let v1 = &g.commits["v1"];
    let dockerfile = format!(
        "FROM {base}\n\
         ADD {u} /g1/\n\
         ADD {u}#v1:sub /g2\n\
         ADD {u}#dev /g3/\n\
         ADD --keep-git-dir=true {u}#{v1} /g4/\n\
         ADD --chown=5:6 --chmod=0700 {u}#:sub/deep /g5/\n",
        base = env.base,
        u = g.url,
    );
    let ctx = env.context("ctx", &[("Dockerfile", &dockerfile)]);
    env.build(&ctx, "git:1", &[]).ok();
    let image = env.inspect("git:1");
    let got: Vec<Vec<String>> =
        layer_digests(&image).iter().skip(1).map(|d| listing(&blob_path(&env.root, d), false)).collect();
    let files = |p: &str, with_b: bool, with_dev: bool| {
        let mut v = vec![format!("drwxr-xr-x 0/0 0 {p}/"), format!("-rw-r--r-- 0/0 2 {p}/a.txt")];
        if with_b {
            v.push(format!("-rw-r--r-- 0/0 2 {p}/b.txt"));
        }
        if with_dev {
            v.push(format!("-rw-r--r-- 0/0 5 {p}/dev.txt"));
        }
        v.extend([
            format!("lrwxrwxrwx 0/0 0 {p}/link -> a.txt"),
            format!("drwxr-xr-x 0/0 0 {p}/sub/"),
            format!("drwxr-xr-x 0/0 0 {p}/sub/deep/"),
            format!("-rw-r--r-- 0/0 2 {p}/sub/deep/d.txt"),
            format!("-rwxr-xr-x 0/0 10 {p}/sub/run.sh"),
            format!("-rw-r--r-- 0/0 2 {p}/sub/s.txt"),
        ]);
        v
    };
    assert_eq!(got[0], files("g1", true, false));
    assert_eq!(
        got[1],
        [
            "drwxr-xr-x 0/0 0 g2/",
            "drwxr-xr-x 0/0 0 g2/deep/",
            "-rw-r--r-- 0/0 2 g2/deep/d.txt",
            "-rwxr-xr-x 0/0 10 g2/run.sh",
            "-rw-r--r-- 0/0 2 g2/s.txt"
        ]
    );
    assert_eq!(got[2], files("g3", true, true));
    let without_git: Vec<String> = got[3].iter().filter(|l| !l.contains("g4/.git")).cloned().collect();
    assert_eq!(without_git, files("g4", false, false));
    assert!(
        got[3].iter().any(|l| l.ends_with("g4/.git/HEAD")) && got[3].iter().any(|l| l.ends_with("g4/.git/shallow"))
    );
    let head = common::layer_file(&blob_path(&env.root, &layer_digests(&image)[4]), "g4/.git/HEAD");
    assert_eq!(head.trim(), v1, "HEAD is the commit, detached");
    assert_eq!(got[4], ["drwxr-xr-x 5/6 0 g5/", "-rwx------ 5/6 2 g5/d.txt"]);

    // Wrong checksum, unknown ref, missing subdirectory, COPY of a git URL.
    for (i, (line, message)) in [
        (format!("ADD --checksum=0123abc {}#v1 /x/", g.url), "checksum mismatch"),
        (format!("ADD {}#nope /x/", g.url), "no branch, tag or commit named \"nope\""),
        (format!("ADD {}#main:missing /x/", g.url), "subdirectory \"missing\""),
        (format!("COPY {} /x/", g.url), "source can't be a git ref for COPY"),
    ]
    .iter()
    .enumerate()
    {
        let ctx = env.context(&format!("bad{i}"), &[("Dockerfile", &format!("FROM {}\n{line}\n", env.base))]);
        let r = env.build(&ctx, "gitbad:1", &[]).fails();
        assert!(r.stderr.contains(message), "{line}: expected {message:?}:\n{r}");
    }
    // The right checksum (a prefix of the commit) passes.
    let ctx = env.context(
        "good",
        &[("Dockerfile", &format!("FROM {}\nADD --checksum={} {}#v1 /x/\n", env.base, &v1[..12], g.url))],
    );
    env.build(&ctx, "gitok:1", &[]).ok();
}
