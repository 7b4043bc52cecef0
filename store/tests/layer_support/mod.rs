//! Helpers shared by the layer tests: building trees with every kind of entry, snapshotting a
//! tree for comparison, and crafting tar streams (including hostile ones) header by header.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::fs;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, Timespec, Timestamps, XattrFlags};
use strata_store::layer::tar_write::{EntryType, TarHeader, TarWriter};

/// What the tests compare about one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub kind: &'static str,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: i64,
    pub content: Vec<u8>,
    pub link: Vec<u8>,
    pub rdev: u64,
    pub xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
    /// For the second and later names of a multiply-linked file: the first name.
    pub same_inode_as: Option<PathBuf>,
}

/// Every path under `root` (not `root` itself) with its metadata. Overlay bookkeeping xattrs
/// other than `opaque` are left out (the kernel adds them); sockets are left out (not packed).
pub fn snapshot(root: &Path) -> BTreeMap<PathBuf, Node> {
    let mut out = BTreeMap::new();
    let mut inodes: HashMap<(u64, u64), PathBuf> = HashMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let mut names: Vec<OsString> = fs::read_dir(root.join(&rel)).unwrap().map(|e| e.unwrap().file_name()).collect();
        names.sort();
        for n in names {
            let r = rel.join(&n);
            let p = root.join(&r);
            let md = fs::symlink_metadata(&p).unwrap();
            let ft = md.file_type();
            if ft.is_socket() {
                continue;
            }
            let kind = if ft.is_dir() {
                stack.push(r.clone());
                "dir"
            } else if ft.is_file() {
                "file"
            } else if ft.is_symlink() {
                "symlink"
            } else if ft.is_char_device() {
                "char"
            } else if ft.is_block_device() {
                "block"
            } else {
                "fifo"
            };
            // Whiteouts may share an inode (overlay links them to one in its work dir).
            let whiteout = ft.is_char_device() && md.rdev() == 0;
            let same_inode_as = if !ft.is_dir() && !whiteout && md.nlink() > 1 {
                match inodes.get(&(md.dev(), md.ino())) {
                    Some(first) => Some(first.clone()),
                    None => {
                        inodes.insert((md.dev(), md.ino()), r.clone());
                        None
                    }
                }
            } else {
                None
            };
            let xattrs = read_xattrs(&p)
                .into_iter()
                .filter(|(k, _)| {
                    !(k.starts_with(b"trusted.overlay.") || k.starts_with(b"user.overlay."))
                        || k == b"trusted.overlay.opaque"
                })
                .collect();
            out.insert(
                r,
                Node {
                    kind,
                    mode: md.mode() & 0o7777,
                    uid: md.uid(),
                    gid: md.gid(),
                    mtime: md.mtime(),
                    content: if ft.is_file() { fs::read(&p).unwrap() } else { Vec::new() },
                    link: if ft.is_symlink() {
                        fs::read_link(&p).unwrap().as_os_str().as_bytes().to_vec()
                    } else {
                        Vec::new()
                    },
                    rdev: md.rdev(),
                    xattrs,
                    same_inode_as,
                },
            );
        }
    }
    out
}

pub fn read_xattrs(p: &Path) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut names = vec![0u8; 65536];
    let n = rustix::fs::llistxattr(p, &mut names[..]).unwrap();
    for name in names[..n].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let mut v = vec![0u8; 65536];
        let len = rustix::fs::lgetxattr(p, name, &mut v[..]).unwrap();
        v.truncate(len);
        out.insert(name.to_vec(), v);
    }
    out
}

pub fn set_xattr(p: &Path, k: &str, v: &[u8]) {
    rustix::fs::lsetxattr(p, k, v, XattrFlags::empty()).unwrap();
}

pub fn mknod(p: &Path, ft: FileType, mode: u32, major: u32, minor: u32) {
    rustix::fs::mknodat(rustix::fs::CWD, p, ft, Mode::from_raw_mode(mode), rustix::fs::makedev(major, minor)).unwrap();
    rustix::fs::chmodat(rustix::fs::CWD, p, Mode::from_raw_mode(mode), AtFlags::empty()).unwrap();
}

pub fn whiteout(p: &Path) {
    mknod(p, FileType::CharacterDevice, 0, 0, 0);
}

/// Sets mtime (and atime) without following symlinks.
pub fn set_mtime(p: &Path, secs: i64, nsec: i64) {
    let t = Timespec { tv_sec: secs, tv_nsec: nsec };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        p,
        &Timestamps { last_access: t, last_modification: t },
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
}

pub fn lchown(p: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(p, Some(uid), Some(gid)).unwrap();
}

pub fn chmod(p: &Path, mode: u32) {
    rustix::fs::chmodat(rustix::fs::CWD, p, Mode::from_raw_mode(mode), AtFlags::empty()).unwrap();
}

pub fn os(b: &[u8]) -> PathBuf {
    PathBuf::from(OsString::from_vec(b.to_vec()))
}

/// A name longer than 100 bytes, and a path longer than 255 bytes.
pub fn long_component(c: char, n: usize) -> String {
    std::iter::repeat_n(c, n).collect()
}

/// Builds an upper directory with every kind of entry a layer can hold. Returns the paths of
/// the things the tests look at specifically.
pub fn build_rich_upper(u: &Path) {
    fs::create_dir_all(u.join("etc/conf.d")).unwrap();
    fs::write(u.join("etc/conf.d/app.conf"), "key=value\n").unwrap();
    fs::write(u.join("etc/empty"), "").unwrap();
    fs::write(u.join("big"), vec![0xabu8; 300_000]).unwrap();
    // setuid, setgid, sticky and odd owners.
    fs::write(u.join("suid"), "#!/bin/sh\n").unwrap();
    lchown(&u.join("suid"), 1000, 1001);
    chmod(&u.join("suid"), 0o4755);
    fs::create_dir(u.join("shared")).unwrap();
    chmod(&u.join("shared"), 0o3777);
    fs::write(u.join("bigid"), "x").unwrap();
    lchown(&u.join("bigid"), 3_000_000, 4_000_000);
    // Hard links: three names, one inode.
    fs::write(u.join("etc/hl-a"), "linked").unwrap();
    fs::hard_link(u.join("etc/hl-a"), u.join("hl-b")).unwrap();
    fs::hard_link(u.join("etc/hl-a"), u.join("zz-hl-c")).unwrap();
    // Symlinks, one with a long target.
    std::os::unix::fs::symlink("../etc/conf.d/app.conf", u.join("etc/link")).unwrap();
    std::os::unix::fs::symlink(format!("/nonexistent/{}", long_component('t', 150)), u.join("longlink")).unwrap();
    // Long names: a component over 100 bytes, and a path over 255 bytes.
    let c1 = long_component('a', 120);
    let c2 = long_component('b', 200);
    fs::create_dir_all(u.join(&c1).join(&c2)).unwrap();
    fs::write(u.join(&c1).join(&c2).join(long_component('c', 180)), "deep").unwrap();
    // Non-UTF-8 and non-ASCII names.
    fs::write(u.join(os(b"bin\xffary")), "nonutf8").unwrap();
    fs::write(u.join("caf\u{e9}"), "utf8").unwrap();
    // xattrs (user and security.capability) on a file and a directory.
    set_xattr(&u.join("etc/conf.d/app.conf"), "user.note", b"hello\0world");
    set_xattr(&u.join("etc/conf.d"), "user.dir", b"d");
    set_xattr(&u.join("big"), "security.capability", &[1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    // Special files: fifo, char and block devices, a socket (skipped).
    mknod(&u.join("fifo"), FileType::Fifo, 0o644, 0, 0);
    mknod(&u.join("null"), FileType::CharacterDevice, 0o666, 1, 3);
    mknod(&u.join("loop9"), FileType::BlockDevice, 0o660, 7, 9);
    std::os::unix::net::UnixListener::bind(u.join("sock")).unwrap();
    // Overlay format: a whiteout and an opaque directory.
    whiteout(&u.join("etc/deleted"));
    fs::create_dir(u.join("opq")).unwrap();
    fs::write(u.join("opq/new"), "new").unwrap();
    set_xattr(&u.join("opq"), "trusted.overlay.opaque", b"y");
    // Times: distinct, and set last (children first) so creating entries does not change them.
    let mut all: Vec<PathBuf> =
        walkdir::WalkDir::new(u).min_depth(1).into_iter().map(|e| e.unwrap().into_path()).collect();
    all.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for (i, p) in all.iter().enumerate() {
        set_mtime(p, 1_600_000_000 + i as i64 * 7, 123_456_789);
    }
}

/// Writes a tar from raw headers and data (used for crafted and hostile archives).
pub fn tar_of(entries: &[(TarHeader, Vec<u8>)]) -> Vec<u8> {
    let mut w = TarWriter::new(Vec::new());
    for (h, data) in entries {
        w.header(h).unwrap();
        std::io::Write::write_all(w.data(), data).unwrap();
        w.pad(data.len() as u64).unwrap();
    }
    w.finish().unwrap()
}

pub fn file(name: &str, data: &[u8]) -> (TarHeader, Vec<u8>) {
    let mut h = TarHeader::new(name.as_bytes().to_vec(), EntryType::Regular);
    h.mode = 0o644;
    h.size = data.len() as u64;
    (h, data.to_vec())
}

pub fn dir(name: &str) -> (TarHeader, Vec<u8>) {
    let mut h = TarHeader::new(name.as_bytes().to_vec(), EntryType::Directory);
    h.mode = 0o755;
    (h, Vec::new())
}

pub fn symlink(name: &str, target: &str) -> (TarHeader, Vec<u8>) {
    let mut h = TarHeader::new(name.as_bytes().to_vec(), EntryType::Symlink);
    h.mode = 0o777;
    h.linkname = target.as_bytes().to_vec();
    (h, Vec::new())
}

pub fn hardlink(name: &str, target: &str) -> (TarHeader, Vec<u8>) {
    let mut h = TarHeader::new(name.as_bytes().to_vec(), EntryType::HardLink);
    h.mode = 0o644;
    h.linkname = target.as_bytes().to_vec();
    (h, Vec::new())
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut e, data).unwrap();
    e.finish().unwrap()
}

/// Lists every path under `dir` (recursively, not following symlinks), skipping `except`.
pub fn listing(dir: &Path, except: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_entry(|e| e.path() != except)
        .map(|e| e.unwrap().into_path())
        .collect();
    out.sort();
    out
}

/// Runs a command and returns its stdout, failing the test on a non-zero exit.
pub fn run(cmd: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(cmd).args(args).output().unwrap();
    assert!(out.status.success(), "{cmd} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}
