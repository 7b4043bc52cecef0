//! Git sources: parsing BuildKit's git URLs, resolving references, checking out with the real
//! `git` binary.
//!
//! URLs (BuildKit's `gitutil.ParseURL` / `dfgitutil.ParseGitRef`): `http://`, `https://`,
//! `ssh://` and `git://` URLs, and scp-like `user@host:path`; an http(s) URL is a git source
//! only when its path ends in `.git`. The fragment is `#ref:subdir`, both parts optional.
//!
//! A checkout follows BuildKit's git source: the reference is resolved with `git ls-remote`
//! (a full commit hash is taken as is; a name is tried as given, then under `refs/`,
//! `refs/tags/` (annotated tags peeled to their commit) and `refs/heads/`, as `git fetch`
//! resolves it; a hex string that names no ref is taken as an abbreviated commit), then a
//! fresh repository fetches that commit at depth 1 (falling back to fetching the ref by name,
//! then to a full fetch, for servers that refuse unadvertised objects), checks it out detached
//! (HEAD holds the commit, `origin` is the remote), initialises submodules, and drops `.git`
//! unless it is to be kept. Files get git's modes with umask 022 (0644, 0755 for executables),
//! owned by the building user (root), as BuildKit's are.

use std::fs;
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};

use super::{Fetched, Fetcher, RemoteError, install_dir, name_of};
use crate::cache::KeyBuilder;
use crate::graph::{GitSource, LocalSource};

/// A parsed git URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitUrl {
    /// What `git` is given (the URL without its fragment).
    pub remote: String,
    pub reference: Option<String>,
    pub subdir: Option<String>,
}

/// Parses `s` as BuildKit does for `ADD` sources and build contexts; `None` if it is not a git
/// URL (a plain http(s) URL, a local path).
pub fn parse_git_url(s: &str) -> Option<GitUrl> {
    let (without, fragment) = match s.split_once('#') {
        Some((a, f)) => (a, Some(f)),
        None => (s, None),
    };
    let scheme_end = without.find("://");
    if let Some(i) = scheme_end {
        let scheme = without[..i].to_ascii_lowercase();
        if !without[..i].bytes().all(|b| b.is_ascii_alphanumeric()) {
            return None;
        }
        match scheme.as_str() {
            "git" | "ssh" => {}
            "http" | "https" => {
                let rest = &without[i + 3..];
                let path = rest.find('/').map_or("", |p| &rest[p..]);
                let path = path.split('?').next().unwrap_or("");
                if !path.ends_with(".git") {
                    return None;
                }
            }
            _ => return None,
        }
        if without.len() == i + 3 {
            return None;
        }
    } else if !is_scp_like(without) {
        return None;
    }
    let (reference, subdir) = match fragment {
        None | Some("") => (None, None),
        Some(f) => {
            let (r, d) = match f.split_once(':') {
                Some((r, d)) => (r, Some(d)),
                None => (f, None),
            };
            (Some(r.to_string()).filter(|r| !r.is_empty()), d.filter(|d| !d.is_empty()).map(str::to_string))
        }
    };
    Some(GitUrl { remote: without.to_string(), reference, subdir })
}

/// `user@host:path` (BuildKit's `sshutil.IsImplicitSSHTransport`).
fn is_scp_like(s: &str) -> bool {
    let Some((user, rest)) = s.split_once('@') else { return false };
    let Some((host, path)) = rest.split_once(':') else { return false };
    !user.is_empty()
        && user.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && !host.is_empty()
        && host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        && !path.is_empty()
}

/// A finished checkout.
#[derive(Debug, Clone)]
pub struct GitCheckout {
    /// The checkout's top directory.
    pub dir: PathBuf,
    pub commit: String,
}

/// Runs git (umask 022, no prompts, messages in English) in `cwd`; returns stdout.
fn git(cwd: Option<&Path>, args: &[&str]) -> Result<String, RemoteError> {
    let mut cmd = Command::new("/bin/sh");
    // The umask makes checked-out modes independent of strata's own (BuildKit's daemon: 022).
    cmd.arg("-c").arg("umask 022 && exec git \"$@\"").arg("git").args(args);
    if let Some(d) = cwd {
        cmd.current_dir(d);
    }
    cmd.env("GIT_TERMINAL_PROMPT", "0").env("LC_ALL", "C").env("GIT_ASKPASS", "/bin/true");
    let shown = args.join(" ");
    let out = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| RemoteError::Git { args: shown.clone(), message: format!("cannot run git: {e}") })?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
        let message = if err.is_empty() { format!("exited with {}", out.status) } else { err };
        return Err(RemoteError::Git { args: shown, message });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn is_full_hash(s: &str) -> bool {
    (s.len() == 40 || s.len() == 64) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `git ls-remote` of `remote`: (object, ref name) pairs.
pub fn ls_remote(remote: &str) -> Result<Vec<(String, String)>, RemoteError> {
    let out = git(None, &["ls-remote", "--", remote])?;
    Ok(out
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(o, r)| (o.trim().to_string(), r.trim().to_string()))
        .collect())
}

/// What a reference resolves to: a commit, or an abbreviated hash to look for after a fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Resolved {
    /// The commit, and the ref name it came from (to fetch by name if by hash is refused).
    Commit(String, Option<String>),
    Abbreviated(String),
}

fn resolve_ref(refs: &[(String, String)], reference: Option<&str>) -> Option<Resolved> {
    let r = reference.unwrap_or("HEAD");
    let find = |name: &str| refs.iter().find(|(_, n)| n == name).map(|(o, _)| o.clone());
    let candidates = [
        r.to_string(),
        format!("refs/{r}"),
        format!("refs/tags/{r}"),
        format!("refs/heads/{r}"),
        format!("refs/remotes/{r}"),
    ];
    for c in &candidates {
        // An annotated tag's own object is not a commit: take the peeled entry.
        if let Some(peeled) = find(&format!("{c}^{{}}")) {
            return Some(Resolved::Commit(peeled, Some(c.clone())));
        }
        if let Some(o) = find(c) {
            return Some(Resolved::Commit(o, Some(c.clone())));
        }
    }
    if r.len() >= 4 && r.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Some(Resolved::Abbreviated(r.to_ascii_lowercase()));
    }
    None
}

impl Fetcher<'_> {
    /// Checks out `g` (or reuses an earlier checkout of the same commit).
    pub fn git(&self, g: &GitSource) -> Result<Fetched, RemoteError> {
        let reference = g.reference.as_deref().filter(|r| !r.is_empty());
        (self.status)(&format!("resolving {}", reference.unwrap_or("HEAD")));
        let resolved = match reference {
            Some(r) if is_full_hash(r) => Resolved::Commit(r.to_ascii_lowercase(), None),
            _ => resolve_ref(&ls_remote(&g.remote)?, reference).ok_or_else(|| RemoteError::GitRef {
                remote: g.remote.clone(),
                message: format!("no branch, tag or commit named {:?}", reference.unwrap_or("HEAD")),
            })?,
        };
        let base = self.dir("git")?;
        let checkout = match &resolved {
            Resolved::Commit(c, _) => {
                let dir = base.join(name_of(&[&g.remote, c, if g.keep_git_dir { "keep" } else { "" }]));
                if dir.is_dir() { GitCheckout { dir, commit: c.clone() } } else { self.checkout(&base, g, &resolved)? }
            }
            Resolved::Abbreviated(_) => self.checkout(&base, g, &resolved)?,
        };
        if let Some(want) = g.checksum.as_deref().filter(|c| !c.is_empty())
            && !checkout.commit.starts_with(&want.to_ascii_lowercase())
        {
            return Err(RemoteError::GitRef {
                remote: g.remote.clone(),
                message: format!(
                    "checksum mismatch: {} is commit {}, --checksum expects {want}",
                    show_ref(reference),
                    checkout.commit
                ),
            });
        }
        let path = match g.subdir.as_deref().filter(|d| !d.is_empty()) {
            None => checkout.dir.clone(),
            Some(sub) => subdir_of(&checkout.dir, sub).map_err(|message| RemoteError::GitRef {
                remote: g.remote.clone(),
                message: format!("subdirectory {sub:?}: {message}"),
            })?,
        };
        let key = KeyBuilder::new("git")
            .add("remote", &g.remote)
            .add("commit", &checkout.commit)
            .add("subdir", g.subdir.as_deref().unwrap_or(""))
            .add("keep_git_dir", g.keep_git_dir)
            .finish()
            .0;
        Ok(Fetched { source: LocalSource { name: "git".into(), path, filter: None }, key })
    }

    /// Makes a checkout in a temporary directory beside `base`'s entries and moves it into place.
    fn checkout(&self, base: &Path, g: &GitSource, resolved: &Resolved) -> Result<GitCheckout, RemoteError> {
        let tmp = tempfile::Builder::new()
            .prefix(".checkout-")
            .tempdir_in(base)
            .map_err(RemoteError::io("creating a checkout directory"))?;
        let dir = tmp.path();
        git(Some(dir), &["init", "-q"])?;
        git(Some(dir), &["remote", "add", "origin", &g.remote])?;
        (self.status)("fetching");
        let commit = match resolved {
            Resolved::Commit(c, name) => {
                let by_hash = git(Some(dir), &["fetch", "-q", "--depth=1", "--no-tags", "origin", c]);
                if by_hash.is_err() {
                    let by_name = match name {
                        Some(n) if n != "HEAD" => {
                            git(Some(dir), &["fetch", "-q", "--depth=1", "--no-tags", "origin", n])
                        }
                        _ => git(Some(dir), &["fetch", "-q", "--depth=1", "--no-tags", "origin", "HEAD"]),
                    };
                    let has =
                        by_name.is_ok() && git(Some(dir), &["cat-file", "-e", &format!("{c}^{{commit}}")]).is_ok();
                    if !has {
                        fetch_everything(dir)?;
                    }
                }
                c.clone()
            }
            Resolved::Abbreviated(a) => {
                fetch_everything(dir)?;
                let full = git(Some(dir), &["rev-parse", "--verify", "--quiet", &format!("{a}^{{commit}}")]).map_err(
                    |_| RemoteError::GitRef {
                        remote: g.remote.clone(),
                        message: format!("no branch, tag or commit named {a:?}"),
                    },
                )?;
                full.trim().to_string()
            }
        };
        git(Some(dir), &["-c", "advice.detachedHead=false", "checkout", "-q", "--detach", &commit])?;
        if dir.join(".gitmodules").is_file() {
            (self.status)("updating submodules");
            git(Some(dir), &["submodule", "update", "-q", "--init", "--recursive", "--depth=1"])?;
        }
        if g.keep_git_dir {
            // What a fetch and checkout leave behind that BuildKit's checkout does not have: a
            // FETCH_HEAD, and reflog lines (its `logs/HEAD` is empty).
            let _ = fs::remove_file(dir.join(".git/FETCH_HEAD"));
            if dir.join(".git/logs/HEAD").is_file() {
                let _ = fs::write(dir.join(".git/logs/HEAD"), b"");
            }
        } else {
            fs::remove_dir_all(dir.join(".git")).map_err(RemoteError::io("removing .git"))?;
        }
        let final_dir = base.join(name_of(&[&g.remote, &commit, if g.keep_git_dir { "keep" } else { "" }]));
        let tmp_path = tmp.keep();
        install_dir(&tmp_path, &final_dir)?;
        Ok(GitCheckout { dir: final_dir, commit })
    }
}

fn fetch_everything(dir: &Path) -> Result<(), RemoteError> {
    git(
        Some(dir),
        &["fetch", "-q", "--no-tags", "origin", "+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*"],
    )
    .map(|_| ())
}

fn show_ref(r: Option<&str>) -> String {
    r.map_or("HEAD".to_string(), |r| format!("{r:?}"))
}

/// `sub` inside `top`, symlinks followed without leaving `top`; it must be a directory.
fn subdir_of(top: &Path, sub: &str) -> Result<PathBuf, String> {
    let rel = Path::new(sub.trim_start_matches('/'));
    if rel.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err("must not contain ..".into());
    }
    let real = strata_runner::rootpath::resolve_in_root(top, rel).map_err(|e| e.to_string())?;
    match fs::metadata(&real) {
        Ok(m) if m.is_dir() => Ok(real),
        Ok(_) => Err("not a directory".into()),
        Err(_) => Err("not found in the repository".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_urls_are_recognised_like_buildkit() {
        let p = |s| parse_git_url(s);
        assert_eq!(
            p("https://github.com/moby/buildkit.git#v0.13.0:frontend"),
            Some(GitUrl {
                remote: "https://github.com/moby/buildkit.git".into(),
                reference: Some("v0.13.0".into()),
                subdir: Some("frontend".into())
            })
        );
        assert_eq!(p("git@github.com:moby/buildkit.git").unwrap().remote, "git@github.com:moby/buildkit.git");
        assert_eq!(p("git://127.0.0.1:9418/repo.git#:sub").unwrap().subdir.as_deref(), Some("sub"));
        assert_eq!(p("git://127.0.0.1:9418/repo.git#:sub").unwrap().reference, None);
        assert_eq!(p("ssh://git@host/repo").unwrap().reference, None);
        assert_eq!(p("https://host/repo.git?x=1#main").unwrap().reference.as_deref(), Some("main"));
        // Not git: a plain URL, a file path, other schemes.
        for not in [
            "https://host/file.tar.gz",
            "http://host/",
            "./repo.git",
            "repo.git",
            "ftp://h/r.git",
            "file:///r.git",
            "git://",
        ] {
            assert_eq!(p(not), None, "{not}");
        }
    }

    #[test]
    fn references_resolve_as_git_fetch_does() {
        let refs: Vec<(String, String)> = [
            ("aaaa", "HEAD"),
            ("aaaa", "refs/heads/main"),
            ("bbbb", "refs/heads/dev"),
            ("cccc", "refs/tags/v1"),
            ("dddd", "refs/tags/v2"),
            ("eeee", "refs/tags/v2^{}"),
            ("ffff", "refs/heads/v1"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        let c = |o: &str, n: &str| Some(Resolved::Commit(o.into(), Some(n.into())));
        assert_eq!(resolve_ref(&refs, None), c("aaaa", "HEAD"));
        assert_eq!(resolve_ref(&refs, Some("dev")), c("bbbb", "refs/heads/dev"));
        assert_eq!(resolve_ref(&refs, Some("v1")), c("cccc", "refs/tags/v1"), "tags before branches");
        assert_eq!(resolve_ref(&refs, Some("v2")), c("eeee", "refs/tags/v2"), "annotated tags are peeled");
        assert_eq!(resolve_ref(&refs, Some("refs/heads/v1")), c("ffff", "refs/heads/v1"));
        assert_eq!(resolve_ref(&refs, Some("abc123")), Some(Resolved::Abbreviated("abc123".into())));
        assert_eq!(resolve_ref(&refs, Some("nope")), None);
    }

    #[test]
    fn subdirectories_stay_inside_the_checkout() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("a/b")).unwrap();
        fs::write(d.path().join("f"), "x").unwrap();
        std::os::unix::fs::symlink("/etc", d.path().join("esc")).unwrap();
        assert_eq!(subdir_of(d.path(), "a/b").unwrap(), d.path().join("a/b"));
        assert_eq!(subdir_of(d.path(), "/a").unwrap(), d.path().join("a"));
        assert!(subdir_of(d.path(), "../x").is_err());
        assert!(subdir_of(d.path(), "f").is_err());
        assert!(subdir_of(d.path(), "missing").is_err());
        // A symlink to /etc resolves to the checkout's own (missing) etc, never the host's.
        assert!(subdir_of(d.path(), "esc").is_err());
    }
}
