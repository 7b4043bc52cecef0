//! Helpers for the copy tests: building source trees with exact metadata, a `.dockerignore`
//! style filter, and tar-like listings of results to compare with what BuildKit produced.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, Mode, Timespec, Timestamps};
use sha2::{Digest, Sha256};

use crate::graph::PathFilter;
use crate::pathmatch;

/// Include patterns (`COPY --parents`) for the tests, as the frontend builds them: an entry is
/// selected when a pattern (Go `filepath.Match`, no `**` here) matches it or one of its parent
/// directories; a directory is entered when a pattern could match something below it.
#[derive(Debug)]
pub(crate) struct Include(pub Vec<String>);

impl PathFilter for Include {
    fn is_excluded(&self, rel_path: &str) -> bool {
        !self.0.iter().any(|pattern| {
            let mut p = rel_path;
            loop {
                if pathmatch::matches(pattern, p).unwrap_or(false) {
                    return true;
                }
                match p.rfind('/') {
                    Some(i) => p = &p[..i],
                    None => return false,
                }
            }
        })
    }

    fn may_include_below(&self, rel_dir: &str) -> bool {
        let dir: Vec<&str> = rel_dir.split('/').collect();
        self.0.iter().any(|pattern| {
            let pat: Vec<&str> = pattern.split('/').collect();
            pat.len() > dir.len() && dir.iter().zip(&pat).all(|(d, p)| pathmatch::matches(p, d).unwrap_or(false))
        })
    }
}

/// A `.dockerignore`-like filter for the tests (the real one lives in the frontend, which
/// this crate cannot depend on): patterns in order, `!` for exceptions, the last matching
/// pattern wins, and a pattern matching a parent directory matches everything below it.
#[derive(Debug)]
pub(crate) struct Ignore(Vec<(bool, String)>);

impl Ignore {
    pub(crate) fn new(lines: &[&str]) -> Ignore {
        Ignore(
            lines
                .iter()
                .map(|l| match l.strip_prefix('!') {
                    Some(p) => (true, p.trim_matches('/').to_string()),
                    None => (false, l.trim_matches('/').to_string()),
                })
                .collect(),
        )
    }
}

impl PathFilter for Ignore {
    fn is_excluded(&self, rel_path: &str) -> bool {
        let mut excluded = false;
        for (exception, pattern) in &self.0 {
            let mut p = rel_path;
            let hit = loop {
                if pathmatch::matches(pattern, p).unwrap_or(false) {
                    break true;
                }
                match p.rfind('/') {
                    Some(i) => p = &p[..i],
                    None => break false,
                }
            };
            if hit {
                excluded = !exception;
            }
        }
        excluded
    }

    fn may_include_below(&self, rel_dir: &str) -> bool {
        let prefix = format!("{rel_dir}/");
        self.0.iter().any(|(exception, p)| *exception && (p.starts_with(&prefix) || pathmatch::has_meta(p)))
    }
}

/// A temporary source and destination, plus a sentinel directory next to the destination
/// root that nothing may ever write into.
pub(crate) struct Roots {
    _tmp: tempfile::TempDir,
    pub src: PathBuf,
    pub dst: PathBuf,
    pub outside: PathBuf,
}

impl Roots {
    pub(crate) fn new() -> Roots {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src-root");
        let dst = tmp.path().join("dst-root");
        let outside = tmp.path().join("outside");
        for d in [&src, &dst, &outside] {
            fs::create_dir(d).unwrap();
        }
        fs::write(outside.join("sentinel"), "untouched").unwrap();
        Roots { _tmp: tmp, src, dst, outside }
    }

    /// Fails if anything was written next to the destination root.
    pub(crate) fn assert_outside_untouched(&self) {
        let names: Vec<_> = fs::read_dir(&self.outside).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("sentinel")], "something escaped the destination root");
        assert_eq!(fs::read_to_string(self.outside.join("sentinel")).unwrap(), "untouched");
        let parent = self.dst.parent().unwrap();
        let mut top: Vec<_> = fs::read_dir(parent).unwrap().map(|e| e.unwrap().file_name()).collect();
        top.sort();
        assert_eq!(top, ["dst-root", "outside", "src-root"].map(std::ffi::OsString::from).to_vec());
    }
}

pub(crate) fn write(root: &Path, rel: &str, data: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, data).unwrap();
}

pub(crate) fn mkdir(root: &Path, rel: &str) {
    fs::create_dir_all(root.join(rel)).unwrap();
}

pub(crate) fn symlink(root: &Path, rel: &str, target: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(target, p).unwrap();
}

pub(crate) fn chmod(root: &Path, rel: &str, mode: u32) {
    fs::set_permissions(root.join(rel), fs::Permissions::from_mode(mode)).unwrap();
}

pub(crate) fn chown(root: &Path, rel: &str, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(root.join(rel), Some(uid), Some(gid)).unwrap();
}

/// Sets access and modification time (seconds, nanoseconds) without following symlinks.
pub(crate) fn set_mtime(root: &Path, rel: &str, sec: i64, nsec: i64) {
    let t = Timespec { tv_sec: sec, tv_nsec: nsec as _ };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        root.join(rel),
        &Timestamps { last_access: t, last_modification: t },
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
}

pub(crate) fn mtime(root: &Path, rel: &str) -> (i64, i64) {
    let m = fs::symlink_metadata(root.join(rel)).unwrap();
    (m.mtime(), m.mtime_nsec())
}

pub(crate) fn mknod(root: &Path, rel: &str, kind: rustix::fs::FileType, mode: u32, dev: u64) {
    rustix::fs::mknodat(rustix::fs::CWD, root.join(rel), kind, Mode::from_raw_mode(mode), dev).unwrap();
    // mknod is subject to the umask.
    chmod(root, rel, mode);
}

/// One line per entry below `root/sub`, in the order a tar of it lists them (depth first,
/// names sorted), in the format of the listings captured from BuildKit's layers:
/// `<type> <mode> <uid>:<gid> <size> <path>[ <sha256 prefix>| -> <link>]`, where type is
/// `d f l h p c b s`, a hard link (`h`, size 0) points to the first name of its inode, and
/// `<path>` is relative to `root`. `sub` itself is listed too unless it is empty.
pub(crate) fn listing(root: &Path, sub: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut seen: HashMap<(u64, u64), String> = HashMap::new();
    let start = if sub.is_empty() { root.to_path_buf() } else { root.join(sub) };
    let walker = walkdir::WalkDir::new(&start).sort_by_file_name().min_depth(usize::from(sub.is_empty()));
    for e in walker {
        let e = e.unwrap();
        let rel = e.path().strip_prefix(root).unwrap().to_string_lossy().into_owned();
        out.push(line(root, &rel, &mut seen));
    }
    out
}

fn line(root: &Path, rel: &str, seen: &mut HashMap<(u64, u64), String>) -> String {
    let p = root.join(rel);
    let m = fs::symlink_metadata(&p).unwrap();
    let ft = m.file_type();
    use std::os::unix::fs::FileTypeExt;
    let mode = m.mode() & 0o7777;
    let owner = format!("{}:{}", m.uid(), m.gid());
    let (t, size, extra) = if ft.is_dir() {
        ('d', 0, String::new())
    } else if ft.is_symlink() {
        ('l', 0, format!(" -> {}", fs::read_link(&p).unwrap().to_string_lossy()))
    } else if ft.is_file() {
        if m.nlink() > 1 {
            if let Some(first) = seen.get(&(m.dev(), m.ino())) {
                return format!("h {mode:04o} {owner} 0 {rel} -> {first}");
            }
            seen.insert((m.dev(), m.ino()), rel.to_string());
        }
        let hash = Sha256::digest(fs::read(&p).unwrap());
        let hex: String = hash.iter().take(6).map(|b| format!("{b:02x}")).collect();
        ('f', m.len(), format!(" {hex}"))
    } else if ft.is_fifo() {
        ('p', 0, String::new())
    } else if ft.is_char_device() || ft.is_block_device() {
        let t = if ft.is_char_device() { 'c' } else { 'b' };
        let rdev = m.rdev();
        (t, 0, format!(" {},{}", rustix::fs::major(rdev), rustix::fs::minor(rdev)))
    } else {
        ('s', 0, String::new())
    };
    format!("{t} {mode:04o} {owner} {size} {rel}{extra}")
}

/// Lines of a captured listing, trimmed, without blank lines or `#` comments.
pub(crate) fn expected(text: &str) -> Vec<String> {
    text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(str::to_string).collect()
}
