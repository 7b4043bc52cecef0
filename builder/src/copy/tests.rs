//! Tests of the copy engine on real directories (they run as root: chown, mknod, trusted
//! xattrs). Behaviour compared with BuildKit listings lives in `buildkit_cases.rs`; these
//! cover the rest: confinement, metadata details, errors, filters, parallel copies.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;

use rustix::fs::FileType;

use super::testutil::{self, Ignore, Roots, chmod, chown, listing, mkdir, mknod, mtime, set_mtime, symlink, write};
use super::{CopyError, CopyOptions, CopySource, CopyStats, copy};
use crate::graph::{Chmod, PathFilter};

fn ctx(root: &Path) -> CopySource<'_> {
    CopySource { root, filter: None, is_context: true }
}

fn stage(root: &Path) -> CopySource<'_> {
    CopySource { root, filter: None, is_context: false }
}

fn cp(src: &CopySource<'_>, dst: &Path, sources: &[&str], dest: &str) -> Result<CopyStats, CopyError> {
    cp_with(src, dst, sources, dest, CopyOptions::dockerfile())
}

fn cp_with(
    src: &CopySource<'_>,
    dst: &Path,
    sources: &[&str],
    dest: &str,
    opts: CopyOptions,
) -> Result<CopyStats, CopyError> {
    let sources: Vec<String> = sources.iter().map(|s| s.to_string()).collect();
    copy(src, &sources, dst, dest, &opts)
}

fn read(root: &Path, rel: &str) -> String {
    fs::read_to_string(root.join(rel)).unwrap()
}

fn meta(root: &Path, rel: &str) -> fs::Metadata {
    fs::symlink_metadata(root.join(rel)).unwrap()
}

fn owner_mode(root: &Path, rel: &str) -> (u32, u32, u32) {
    let m = meta(root, rel);
    (m.uid(), m.gid(), m.mode() & 0o7777)
}

fn exists(root: &Path, rel: &str) -> bool {
    fs::symlink_metadata(root.join(rel)).is_ok()
}

#[test]
fn directory_sources_copy_their_contents() {
    let r = Roots::new();
    write(&r.src, "src/a.txt", "a");
    write(&r.src, "src/sub/b.txt", "b");
    cp(&ctx(&r.src), &r.dst, &["src"], "/into/").unwrap();
    cp(&ctx(&r.src), &r.dst, &["src/"], "/noslash").unwrap();
    cp(&ctx(&r.src), &r.dst, &["."], "/all/").unwrap();
    for top in ["into", "noslash"] {
        assert_eq!(read(&r.dst, &format!("{top}/a.txt")), "a");
        assert_eq!(read(&r.dst, &format!("{top}/sub/b.txt")), "b");
        assert!(!exists(&r.dst, &format!("{top}/src")));
    }
    assert_eq!(read(&r.dst, "all/src/sub/b.txt"), "b");
    // Copying a directory onto the root merges into the root.
    cp(&ctx(&r.src), &r.dst, &["src"], "/").unwrap();
    assert_eq!(read(&r.dst, "sub/b.txt"), "b");
    r.assert_outside_untouched();
}

#[test]
fn file_sources_go_to_dest_or_into_it() {
    let r = Roots::new();
    write(&r.src, "f", "data");
    mkdir(&r.dst, "existing");
    cp(&ctx(&r.src), &r.dst, &["f"], "/file").unwrap();
    cp(&ctx(&r.src), &r.dst, &["f"], "/dir/").unwrap();
    cp(&ctx(&r.src), &r.dst, &["f"], "/existing").unwrap();
    cp(&ctx(&r.src), &r.dst, &["f"], "/dot/.").unwrap();
    cp(&ctx(&r.src), &r.dst, &["f"], "/").unwrap();
    assert_eq!(read(&r.dst, "file"), "data");
    assert_eq!(read(&r.dst, "dir/f"), "data");
    assert_eq!(read(&r.dst, "existing/f"), "data");
    assert_eq!(read(&r.dst, "dot/f"), "data");
    assert_eq!(read(&r.dst, "f"), "data");
}

#[test]
fn wildcards_follow_go_filepath_match() {
    let r = Roots::new();
    for f in ["q1.txt", "q2.txt", "qa.md", "[x].txt", "a*b.txt", "a\\*b.txt", "aXb.txt"] {
        write(&r.src, f, f);
    }
    write(&r.src, "qd/in.txt", "in");
    write(&r.src, "s1/sub/deep.txt", "deep1");
    write(&r.src, "s2/sub/deep.txt", "deep2");
    write(&r.src, "s2/other/deep.txt", "no");
    let names = |dir: &str| -> Vec<String> {
        let mut v: Vec<String> =
            fs::read_dir(r.dst.join(dir)).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
        v.sort();
        v
    };
    cp(&ctx(&r.src), &r.dst, &["q?.txt"], "/w1/").unwrap();
    assert_eq!(names("w1"), ["q1.txt", "q2.txt"]);
    cp(&ctx(&r.src), &r.dst, &["[[]x].txt"], "/w2/").unwrap();
    assert_eq!(names("w2"), ["[x].txt"]);
    cp(&ctx(&r.src), &r.dst, &["q[^0-9].*"], "/w3/").unwrap();
    assert_eq!(names("w3"), ["qa.md"]);
    // An escaped star next to a real wildcard matches a literal star only.
    cp(&ctx(&r.src), &r.dst, &["a\\*b?txt"], "/w4/").unwrap();
    assert_eq!(names("w4"), ["a*b.txt"]);
    // Only escaped metas: not a wildcard, the name is taken literally (backslash included).
    cp(&ctx(&r.src), &r.dst, &["a\\*b.txt"], "/w5/").unwrap();
    assert_eq!(names("w5"), ["a\\*b.txt"]);
    // A wildcard in a middle component.
    cp(&ctx(&r.src), &r.dst, &["s*/sub/deep.txt"], "/w6/").unwrap();
    assert_eq!(read(&r.dst, "w6/deep.txt"), "deep2", "matches are copied in order, the last one wins");
    // A matched directory has its contents copied, like any directory source.
    cp(&ctx(&r.src), &r.dst, &["q*"], "/w7/").unwrap();
    assert_eq!(names("w7"), ["in.txt", "q1.txt", "q2.txt", "qa.md"]);
}

#[test]
fn wildcard_errors_and_empty_matches() {
    let r = Roots::new();
    write(&r.src, "q1.txt", "1");
    // The Dockerfile frontend allows an empty match: nothing is copied, dest is not created.
    let stats = cp(&ctx(&r.src), &r.dst, &["nomatch*"], "/empty/").unwrap();
    assert_eq!(stats, CopyStats::default());
    assert!(!exists(&r.dst, "empty"));
    let strict = CopyOptions { allow_empty_wildcard: false, ..CopyOptions::dockerfile() };
    let e = cp_with(&ctx(&r.src), &r.dst, &["nomatch*"], "/x/", strict).unwrap_err();
    assert_eq!(e.to_string(), r#""/nomatch*": not found (no file matches the wildcard)"#);
    let e = cp(&ctx(&r.src), &r.dst, &["q[.txt"], "/x/").unwrap_err();
    assert_eq!(e.to_string(), r#""/q[.txt": syntax error in pattern"#);
    let e = cp(&ctx(&r.src), &r.dst, &["nodir/*.txt"], "/x/").unwrap_err();
    assert_eq!(e.to_string(), "lstat /nodir: no such file or directory");
    // Without allow_wildcard the metas are plain characters.
    let literal = CopyOptions { allow_wildcard: false, ..CopyOptions::dockerfile() };
    let e = cp_with(&ctx(&r.src), &r.dst, &["q*.txt"], "/x/", literal).unwrap_err();
    assert_eq!(e.to_string(), r#""/q*.txt": not found"#);
}

#[test]
fn several_sources_without_a_trailing_slash_overwrite_in_turn() {
    // BuildKit 0.13 does not reject this (verified): each source goes to dest in turn.
    let r = Roots::new();
    write(&r.src, "q1.txt", "one");
    write(&r.src, "q2.txt", "two");
    write(&r.src, "d/in.txt", "in");
    cp(&ctx(&r.src), &r.dst, &["q1.txt", "q2.txt"], "/dst").unwrap();
    assert_eq!(read(&r.dst, "dst"), "two");
    cp(&ctx(&r.src), &r.dst, &["d", "q1.txt"], "/m").unwrap();
    assert_eq!(read(&r.dst, "m/in.txt"), "in");
    assert_eq!(read(&r.dst, "m/q1.txt"), "one");
}

#[test]
fn created_parents_and_existing_directories() {
    let r = Roots::new();
    write(&r.src, "f.txt", "f");
    mkdir(&r.dst, "keep");
    chown(&r.dst, "keep", 55, 56);
    chmod(&r.dst, "keep", 0o700);
    let opts = CopyOptions { owner: Some((1000, 1000)), ..CopyOptions::dockerfile() };
    cp_with(&ctx(&r.src), &r.dst, &["f.txt"], "/p/q/r/", opts.clone()).unwrap();
    for d in ["p", "p/q", "p/q/r"] {
        assert_eq!(owner_mode(&r.dst, d), (1000, 1000, 0o755), "{d}");
    }
    assert_eq!(owner_mode(&r.dst, "p/q/r/f.txt").0, 1000);
    cp_with(&ctx(&r.src), &r.dst, &["f.txt"], "/keep/new/", opts).unwrap();
    assert_eq!(owner_mode(&r.dst, "keep"), (55, 56, 0o700), "existing directories keep owner and mode");
    assert_eq!(owner_mode(&r.dst, "keep/new"), (1000, 1000, 0o755));
    // Without --chown, created parents belong to root, whatever the umask.
    let old = rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    let res = cp(&ctx(&r.src), &r.dst, &["f.txt"], "/u/v/");
    rustix::process::umask(old);
    res.unwrap();
    assert_eq!(owner_mode(&r.dst, "u/v"), (0, 0, 0o755));
}

#[test]
fn ownership_context_versus_stage() {
    let r = Roots::new();
    write(&r.src, "d/f", "x");
    chown(&r.src, "d/f", 1234, 5678);
    chown(&r.src, "d", 11, 12);
    mkdir(&r.src, "d/sub");
    chown(&r.src, "d/sub", 7, 8);
    symlink(&r.src, "d/l", "f");
    chown(&r.src, "d/l", 9, 10);
    cp(&ctx(&r.src), &r.dst, &["d"], "/c/").unwrap();
    cp(&stage(&r.src), &r.dst, &["d"], "/s/").unwrap();
    let chowned = CopyOptions { owner: Some((3, 4)), ..CopyOptions::dockerfile() };
    cp_with(&stage(&r.src), &r.dst, &["d"], "/o/", chowned).unwrap();
    for (f, c, s) in [("f", (0, 0), (1234, 5678)), ("sub", (0, 0), (7, 8)), ("l", (0, 0), (9, 10))] {
        let (cu, cg, _) = owner_mode(&r.dst, &format!("c/{f}"));
        let (su, sg, _) = owner_mode(&r.dst, &format!("s/{f}"));
        let (ou, og, _) = owner_mode(&r.dst, &format!("o/{f}"));
        assert_eq!((cu, cg), c, "context {f}");
        assert_eq!((su, sg), s, "stage {f}");
        assert_eq!((ou, og), (3, 4), "--chown {f}");
    }
    // The directory the contents go into is created, not copied: 0:0 (or --chown).
    assert_eq!(owner_mode(&r.dst, "s").0, 0);
    assert_eq!(owner_mode(&r.dst, "o").0, 3);
}

#[test]
fn chmod_applies_to_files_dirs_and_specials_not_symlinks() {
    let r = Roots::new();
    write(&r.src, "d/f", "x");
    chmod(&r.src, "d/f", 0o4755);
    mkdir(&r.src, "d/sub");
    chmod(&r.src, "d/sub", 0o2750);
    symlink(&r.src, "d/l", "f");
    mknod(&r.src, "d/fifo", FileType::Fifo, 0o644, 0);
    let opts = |m| CopyOptions { chmod: Some(Chmod::Octal(m)), ..CopyOptions::dockerfile() };
    cp_with(&stage(&r.src), &r.dst, &["d"], "/x/", opts(0o640)).unwrap();
    assert_eq!(owner_mode(&r.dst, "x").2, 0o755, "the top directory is created, not chmodded");
    assert_eq!(owner_mode(&r.dst, "x/f").2, 0o640, "setuid is replaced too");
    assert_eq!(owner_mode(&r.dst, "x/sub").2, 0o640);
    assert_eq!(owner_mode(&r.dst, "x/fifo").2, 0o640);
    assert_eq!(owner_mode(&r.dst, "x/l").2, 0o777);
    cp_with(&stage(&r.src), &r.dst, &["d/f"], "/y/deep/", opts(0o4711)).unwrap();
    assert_eq!(owner_mode(&r.dst, "y/deep/f").2, 0o4711, "all 12 bits of --chmod are applied");
    assert_eq!(owner_mode(&r.dst, "y/deep").2, 0o755, "created parents are not chmodded");
}

/// Symbolic modes start from each entry's own mode (newer Dockerfile frontends; BuildKit 0.13
/// ignores them): `X` adds execute to directories and already executable files only.
#[test]
fn symbolic_chmod_applies_to_each_entrys_own_mode() {
    let r = Roots::new();
    write(&r.src, "d/f", "x");
    chmod(&r.src, "d/f", 0o4755);
    write(&r.src, "d/plain", "p");
    chmod(&r.src, "d/plain", 0o640);
    mkdir(&r.src, "d/sub");
    chmod(&r.src, "d/sub", 0o700);
    symlink(&r.src, "d/l", "f");
    let sym = |s: &str| CopyOptions { chmod: Some(Chmod::Symbolic(s.into())), ..CopyOptions::dockerfile() };
    cp_with(&stage(&r.src), &r.dst, &["d/f"], "/z", sym("u-x,g+w")).unwrap();
    assert_eq!(owner_mode(&r.dst, "z").2, 0o4675);
    cp_with(&stage(&r.src), &r.dst, &["d"], "/x/", sym("go=r,go+X")).unwrap();
    assert_eq!(owner_mode(&r.dst, "x").2, 0o755, "the top directory is not chmodded");
    assert_eq!(owner_mode(&r.dst, "x/f").2, 0o4755, "g/o get r, and x since f was executable; u's setuid stays");
    assert_eq!(owner_mode(&r.dst, "x/plain").2, 0o644);
    assert_eq!(owner_mode(&r.dst, "x/sub").2, 0o755);
    assert_eq!(owner_mode(&r.dst, "x/l").2, 0o777, "symlinks keep their mode");
    let err = cp_with(&stage(&r.src), &r.dst, &["d/f"], "/bad", sym("u+q")).unwrap_err();
    assert!(err.to_string().contains("invalid chmod parameter"), "{err}");
}

#[test]
fn symlinks_source_path_followed_inner_kept() {
    let r = Roots::new();
    write(&r.src, "real/f.txt", "f");
    symlink(&r.src, "real/inner", "f.txt");
    symlink(&r.src, "real/abs", "/etc/passwd");
    symlink(&r.src, "linkdir", "real");
    symlink(&r.src, "linkfile", "real/f.txt");
    symlink(&r.src, "chain", "linkfile");
    cp(&stage(&r.src), &r.dst, &["linkdir"], "/d/").unwrap();
    assert_eq!(read(&r.dst, "d/f.txt"), "f");
    assert_eq!(fs::read_link(r.dst.join("d/inner")).unwrap().to_str(), Some("f.txt"));
    assert_eq!(fs::read_link(r.dst.join("d/abs")).unwrap().to_str(), Some("/etc/passwd"));
    cp(&stage(&r.src), &r.dst, &["chain"], "/f/").unwrap();
    assert!(meta(&r.dst, "f/chain").is_file(), "the source path is followed, its name is kept");
    // Not following: the symlink itself is copied.
    let nofollow = CopyOptions { follow_src_symlink: false, ..CopyOptions::dockerfile() };
    cp_with(&stage(&r.src), &r.dst, &["linkfile"], "/n", nofollow).unwrap();
    assert_eq!(fs::read_link(r.dst.join("n")).unwrap().to_str(), Some("real/f.txt"));
}

#[test]
fn source_symlinks_cannot_leave_the_source_root() {
    let r = Roots::new();
    // Outside the source root, next to it: must never be reached.
    fs::write(r.src.parent().unwrap().join("host-secret"), "host").unwrap();
    write(&r.src, "host-secret", "inside");
    symlink(&r.src, "up", "../host-secret");
    symlink(&r.src, "abs", "/../../host-secret");
    symlink(&r.src, "dir", "../../../..");
    cp(&stage(&r.src), &r.dst, &["up"], "/u").unwrap();
    cp(&stage(&r.src), &r.dst, &["abs"], "/a").unwrap();
    cp(&stage(&r.src), &r.dst, &["dir/host-secret"], "/d").unwrap();
    cp(&stage(&r.src), &r.dst, &["dir/../../host-secret"], "/e").unwrap();
    for f in ["u", "a", "d", "e"] {
        assert_eq!(read(&r.dst, f), "inside", "{f} must resolve inside the source root");
    }
    // A wildcard under an escaping symlink also stays inside.
    cp(&stage(&r.src), &r.dst, &["dir/host-*"], "/w/").unwrap();
    assert_eq!(read(&r.dst, "w/host-secret"), "inside");
}

#[test]
fn destination_symlinks_cannot_leave_the_destination_root() {
    let r = Roots::new();
    write(&r.src, "f", "payload");
    write(&r.src, "d/g", "g");
    let outside = r.outside.to_str().unwrap().to_string();
    symlink(&r.dst, "abs", &outside);
    symlink(&r.dst, "rel", "../outside");
    symlink(&r.dst, "deep", "../../../../../../outside");
    symlink(&r.dst, "file-link", "../outside/sentinel");
    mkdir(&r.dst, "var");
    symlink(&r.dst, "var/run", "/run");
    for dest in ["/abs/", "/rel/", "/deep/", "/rel/x/y/", "/var/run/"] {
        cp(&stage(&r.src), &r.dst, &["f"], dest).unwrap_or_else(|e| panic!("{dest}: {e}"));
        cp(&stage(&r.src), &r.dst, &["d"], dest).unwrap_or_else(|e| panic!("{dest}: {e}"));
    }
    cp(&stage(&r.src), &r.dst, &["f"], "/file-link").unwrap();
    r.assert_outside_untouched();
    // Each symlink resolved as if the destination root were `/`.
    assert_eq!(read(&r.dst, &format!("{}/f", outside.trim_start_matches('/'))), "payload");
    assert_eq!(read(&r.dst, "outside/f"), "payload");
    assert_eq!(read(&r.dst, "outside/x/y/g"), "g");
    assert_eq!(read(&r.dst, "outside/sentinel"), "payload", "a link as the last component is followed");
    assert_eq!(read(&r.dst, "run/f"), "payload", "/var/run -> /run");
    assert!(meta(&r.dst, "rel").file_type().is_symlink(), "the symlinks themselves stay");
}

#[test]
fn dangling_destination_symlinks_get_their_target_created() {
    let r = Roots::new();
    write(&r.src, "f", "x");
    symlink(&r.dst, "dang", "/made/by/copy");
    symlink(&r.dst, "file", "/target-file");
    cp(&stage(&r.src), &r.dst, &["f"], "/dang/").unwrap();
    cp(&stage(&r.src), &r.dst, &["f"], "/file").unwrap();
    assert_eq!(read(&r.dst, "made/by/copy/f"), "x");
    assert_eq!(read(&r.dst, "target-file"), "x");
    r.assert_outside_untouched();
}

#[test]
fn hardlinks_are_kept_within_one_source() {
    let r = Roots::new();
    write(&r.src, "d/a", "same");
    mkdir(&r.src, "d/sub");
    fs::hard_link(r.src.join("d/a"), r.src.join("d/b")).unwrap();
    fs::hard_link(r.src.join("d/a"), r.src.join("d/sub/c")).unwrap();
    let stats = cp(&stage(&r.src), &r.dst, &["d"], "/x/").unwrap();
    assert_eq!((stats.files, stats.hardlinks), (1, 2));
    let ino = meta(&r.dst, "x/a").ino();
    assert_eq!(meta(&r.dst, "x/b").ino(), ino);
    assert_eq!(meta(&r.dst, "x/sub/c").ino(), ino);
    assert_eq!(meta(&r.dst, "x/a").nlink(), 3);
    // Each wildcard match is its own copy, as in BuildKit: links are not kept across them.
    cp(&stage(&r.src), &r.dst, &["d/*"], "/w/").unwrap();
    assert_ne!(meta(&r.dst, "w/a").ino(), meta(&r.dst, "w/b").ino());
}

#[test]
fn empty_dirs_and_times_are_copied() {
    let r = Roots::new();
    mkdir(&r.src, "d/empty");
    write(&r.src, "d/f", "x");
    symlink(&r.src, "d/l", "f");
    set_mtime(&r.src, "d/f", 1_000_000_001, 123_456_789);
    set_mtime(&r.src, "d/l", 1_000_000_002, 5);
    set_mtime(&r.src, "d/empty", 1_000_000_003, 7);
    set_mtime(&r.src, "d", 1_000_000_004, 9);
    cp(&stage(&r.src), &r.dst, &["d"], "/x/").unwrap();
    assert!(meta(&r.dst, "x/empty").is_dir());
    assert_eq!(mtime(&r.dst, "x/f"), (1_000_000_001, 123_456_789));
    assert_eq!(mtime(&r.dst, "x/l"), (1_000_000_002, 5));
    assert_eq!(mtime(&r.dst, "x/empty"), (1_000_000_003, 7));
    assert_eq!(mtime(&r.dst, "x"), (1_000_000_004, 9), "the top directory gets the source directory's times");
    // Merging into an existing directory keeps its owner and mode but takes the times.
    mkdir(&r.dst, "ex");
    chmod(&r.dst, "ex", 0o701);
    cp(&stage(&r.src), &r.dst, &["d"], "/ex").unwrap();
    assert_eq!(mtime(&r.dst, "ex"), (1_000_000_004, 9));
    assert_eq!(owner_mode(&r.dst, "ex").2, 0o701);
}

#[test]
fn xattrs_are_copied() {
    let r = Roots::new();
    write(&r.src, "d/f", "x");
    mkdir(&r.src, "d/sub");
    symlink(&r.src, "d/l", "f");
    let set = |rel: &str, name: &str, value: &[u8]| {
        rustix::fs::lsetxattr(r.src.join(rel), name, value, rustix::fs::XattrFlags::empty()).unwrap();
    };
    set("d/f", "user.strata", b"file");
    set("d/f", "trusted.strata", b"t");
    set("d/sub", "user.strata", b"dir");
    set("d/l", "trusted.strata", b"link");
    cp(&stage(&r.src), &r.dst, &["d"], "/x/").unwrap();
    let get = |rel: &str, name: &str| {
        let mut buf = vec![0u8; 64];
        let n = rustix::fs::lgetxattr(r.dst.join(rel), name, &mut buf).unwrap();
        buf.truncate(n);
        buf
    };
    assert_eq!(get("x/f", "user.strata"), b"file");
    assert_eq!(get("x/f", "trusted.strata"), b"t");
    assert_eq!(get("x/sub", "user.strata"), b"dir");
    assert_eq!(get("x/l", "trusted.strata"), b"link");
}

#[test]
fn special_files_from_stages() {
    let r = Roots::new();
    mkdir(&r.src, "d");
    mknod(&r.src, "d/fifo", FileType::Fifo, 0o640, 0);
    mknod(&r.src, "d/null", FileType::CharacterDevice, 0o666, rustix::fs::makedev(1, 3));
    mknod(&r.src, "d/loop", FileType::BlockDevice, 0o660, rustix::fs::makedev(7, 0));
    mknod(&r.src, "d/sock", FileType::Socket, 0o755, 0);
    let stats = cp(&stage(&r.src), &r.dst, &["d"], "/x/").unwrap();
    assert_eq!(stats.specials, 4);
    assert_eq!(
        listing(&r.dst, "x"),
        testutil::expected(
            "d 0755 0:0 0 x
             p 0640 0:0 0 x/fifo
             c 0660 0:0 0 x/loop 7,0
             c 0666 0:0 0 x/null 1,3
             s 0755 0:0 0 x/sock"
        ),
        "a block device comes out as a character device, like BuildKit 0.13's"
    );
}

/// Reads the open events inotify saw for the watched names (non-blocking).
fn opened(fd: &rustix::fd::OwnedFd, watches: &[(i32, &str)]) -> Vec<String> {
    use rustix::fs::inotify;
    let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 4096];
    let mut reader = inotify::Reader::new(fd, &mut buf);
    let mut out = Vec::new();
    while let Ok(ev) = reader.next() {
        if let Some((_, name)) = watches.iter().find(|(w, _)| *w == ev.wd()) {
            out.push(name.to_string());
        }
    }
    // Opening and reading are separate events.
    out.dedup();
    out
}

#[test]
fn excluded_files_are_never_opened() {
    use rustix::fs::inotify;
    let r = Roots::new();
    write(&r.src, "keep.txt", "k");
    write(&r.src, "secret.txt", "s");
    write(&r.src, "skip/inner.txt", "i");
    write(&r.src, "skip/keep.txt", "sk");
    mknod(&r.src, "pipe", FileType::Fifo, 0o644, 0);
    symlink(&r.src, "to-secret", "secret.txt");
    let ignore = Ignore::new(&["secret.txt", "pipe", "skip", "!skip/keep.txt"]);
    let src = CopySource { root: &r.src, filter: Some(&ignore), is_context: true };
    let fd = inotify::init(inotify::CreateFlags::NONBLOCK | inotify::CreateFlags::CLOEXEC).unwrap();
    let watch = |rel: &str| {
        inotify::add_watch(&fd, r.src.join(rel), inotify::WatchFlags::OPEN | inotify::WatchFlags::ACCESS).unwrap()
    };
    let watches = [
        (watch("secret.txt"), "secret.txt"),
        (watch("skip/inner.txt"), "skip/inner.txt"),
        (watch("pipe"), "pipe"),
        (watch("keep.txt"), "keep.txt"),
    ];
    cp(&src, &r.dst, &["."], "/all/").unwrap();
    assert_eq!(opened(&fd, &watches), ["keep.txt"], "only the included file may be opened");
    assert_eq!(
        listing(&r.dst, "all"),
        testutil::expected(
            "d 0755 0:0 0 all
             f 0644 0:0 1 all/keep.txt 8254c329a928
             d 0755 0:0 0 all/skip
             f 0644 0:0 2 all/skip/keep.txt 32b56ed53348
             l 0777 0:0 0 all/to-secret -> secret.txt"
        )
    );
    // Named directly, through a symlink or a wildcard, an excluded file does not exist.
    let e = cp(&src, &r.dst, &["secret.txt"], "/x").unwrap_err();
    assert_eq!(e.to_string(), r#""/secret.txt": not found"#);
    let e = cp(&src, &r.dst, &["to-secret"], "/x").unwrap_err();
    assert_eq!(e.to_string(), r#""/secret.txt": not found"#);
    let e = cp(&src, &r.dst, &["skip/inner.txt"], "/x").unwrap_err();
    assert_eq!(e.to_string(), r#""/skip/inner.txt": not found"#);
    cp(&src, &r.dst, &["s*"], "/w/").unwrap();
    assert_eq!(listing(&r.dst, "w"), testutil::expected("d 0755 0:0 0 w\nf 0644 0:0 2 w/keep.txt 32b56ed53348"));
    assert!(opened(&fd, &watches).iter().all(|n| n == "keep.txt"));
    // An excluded directory with nothing re-included below it does not exist either.
    let none = Ignore::new(&["skip", "!skip/absent.txt"]);
    let src = CopySource { root: &r.src, filter: Some(&none), is_context: true };
    cp(&src, &r.dst, &["."], "/none/").unwrap();
    assert!(!exists(&r.dst, "none/skip"));
    assert!(exists(&r.dst, "none/secret.txt"));
}

#[test]
fn copy_exclude_is_relative_to_each_source() {
    let r = Roots::new();
    write(&r.src, "src/a.txt", "a");
    write(&r.src, "src/b.md", "b");
    write(&r.src, "src/sub/c.txt", "c");
    let exclude: Arc<dyn PathFilter> = Arc::new(Ignore::new(&["*.txt"]));
    let opts = CopyOptions { exclude: Some(exclude), ..CopyOptions::dockerfile() };
    cp_with(&stage(&r.src), &r.dst, &["src"], "/x/", opts).unwrap();
    assert!(!exists(&r.dst, "x/a.txt"));
    assert!(exists(&r.dst, "x/b.md"));
    assert!(exists(&r.dst, "x/sub/c.txt"), "the pattern is matched against sub/c.txt, which *.txt does not match");
}

#[test]
fn copying_over_existing_entries() {
    let r = Roots::new();
    write(&r.src, "d/f", "new");
    write(&r.src, "d/sub/g", "g");
    chown(&r.src, "d/sub", 99, 98);
    chmod(&r.src, "d/sub", 0o711);
    write(&r.dst, "file", "old");
    write(&r.dst, "m/f", "old");
    write(&r.dst, "m/keep", "keep");
    mkdir(&r.dst, "m/sub");
    chown(&r.dst, "m/sub", 66, 66);
    symlink(&r.dst, "m/sub/g", "/outside-target");
    cp(&stage(&r.src), &r.dst, &["d/f"], "/file").unwrap();
    assert_eq!(read(&r.dst, "file"), "new");
    cp(&stage(&r.src), &r.dst, &["d"], "/m").unwrap();
    assert_eq!(read(&r.dst, "m/f"), "new");
    assert_eq!(read(&r.dst, "m/keep"), "keep", "directories are merged");
    assert_eq!(
        owner_mode(&r.dst, "m/sub"),
        (99, 98, 0o711),
        "an existing nested directory takes the source's metadata"
    );
    assert!(meta(&r.dst, "m/sub/g").is_file(), "an existing symlink is replaced, not followed");
    assert!(!exists(&r.dst, "outside-target"));
}

#[test]
fn errors_have_buildkit_messages() {
    let r = Roots::new();
    write(&r.src, "f", "x");
    write(&r.src, "d/g", "g");
    write(&r.dst, "file", "x");
    mkdir(&r.dst, "has/f");
    let e = cp(&stage(&r.src), &r.dst, &["missing"], "/x").unwrap_err();
    assert_eq!(e.to_string(), r#""/missing": not found"#);
    let e = cp(&stage(&r.src), &r.dst, &["f/inside"], "/x").unwrap_err();
    assert_eq!(e.to_string(), r#""/f/inside": not found"#);
    let e = cp(&stage(&r.src), &r.dst, &["d"], "/file").unwrap_err();
    assert_eq!(e.to_string(), "cannot copy to non-directory: /file");
    let e = cp(&stage(&r.src), &r.dst, &["f"], "/file/x").unwrap_err();
    assert_eq!(e.to_string(), "mkdir /file: not a directory");
    let e = cp(&stage(&r.src), &r.dst, &["f"], "/has/").unwrap_err();
    assert_eq!(e.to_string(), "cannot replace to directory /has/f with file");
    symlink(&r.src, "loop1", "loop2");
    symlink(&r.src, "loop2", "loop1");
    let e = cp(&stage(&r.src), &r.dst, &["loop1"], "/x").unwrap_err();
    assert!(matches!(e, CopyError::SymlinkLoop { .. }), "{e}");
    let e = copy(&stage(Path::new("/nonexistent-root")), &["f".into()], &r.dst, "/x", &CopyOptions::dockerfile())
        .unwrap_err();
    assert_eq!(e.to_string(), "open /nonexistent-root: no such file or directory");
}

#[test]
fn add_unpacks_archives_and_copies_other_files() {
    use std::io::Write as _;
    let r = Roots::new();
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(2);
    h.set_mode(0o640);
    h.set_uid(7);
    h.set_gid(8);
    h.set_cksum();
    b.append_data(&mut h, "inner/one.txt", &b"hi"[..]).unwrap();
    let tar_bytes = b.into_inner().unwrap();
    fs::write(r.src.join("bundle.tar"), &tar_bytes).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar_bytes).unwrap();
    fs::write(r.src.join("bundle.tgz"), gz.finish().unwrap()).unwrap();
    write(&r.src, "plain.txt", "plain");
    let add = CopyOptions { unpack_archives: true, ..CopyOptions::dockerfile() };

    cp_with(&ctx(&r.src), &r.dst, &["bundle.tar"], "/h/", add.clone()).unwrap();
    assert_eq!(read(&r.dst, "h/inner/one.txt"), "hi");
    let m = meta(&r.dst, "h/inner/one.txt");
    assert_eq!((m.mode() & 0o7777, m.uid(), m.gid()), (0o640, 7, 8), "owners come from the archive");
    // A destination without a trailing slash is still a directory for an archive.
    cp_with(&ctx(&r.src), &r.dst, &["bundle.tgz"], "/z", CopyOptions { owner: Some((5, 6)), ..add.clone() }).unwrap();
    let m = meta(&r.dst, "z/inner/one.txt");
    assert_eq!((m.uid(), m.gid()), (5, 6), "--chown owns extracted entries");
    assert!(!exists(&r.dst, "z/bundle.tgz"));

    cp_with(&ctx(&r.src), &r.dst, &["plain.txt"], "/h/", add).unwrap();
    assert_eq!(read(&r.dst, "h/plain.txt"), "plain");
    // COPY never unpacks.
    cp(&ctx(&r.src), &r.dst, &["bundle.tar"], "/c/").unwrap();
    assert!(meta(&r.dst, "c/bundle.tar").is_file());
}

/// `COPY --parents` (BuildKit's `testCopyParents` / `testCopyRelativeParents`): the frontend
/// turns each source into a source directory (the context root, or the part before a `/./`
/// pivot) plus an include pattern; only matches and the directories leading to them are
/// copied, those directories with their source metadata.
#[test]
fn parents_copy_matches_with_the_directories_leading_to_them() {
    let r = Roots::new();
    write(&r.src, "foo1/foo2/bar", "testing");
    write(&r.src, "foo1/foo2/baz", "testing2");
    write(&r.src, "foo1/other/x", "x");
    write(&r.src, "top.txt", "t");
    chmod(&r.src, "foo1", 0o700);
    chmod(&r.src, "foo1/foo2", 0o750);
    let parents = |patterns: &[&str], required: &[&str]| CopyOptions {
        include: Some(Arc::new(testutil::Include(patterns.iter().map(|p| p.to_string()).collect()))),
        required_paths: required.iter().map(|p| p.to_string()).collect(),
        ..CopyOptions::dockerfile()
    };
    cp_with(&ctx(&r.src), &r.dst, &["."], "/", parents(&["foo1/foo2/bar"], &["foo1/foo2/bar"])).unwrap();
    assert_eq!(read(&r.dst, "foo1/foo2/bar"), "testing");
    assert_eq!(owner_mode(&r.dst, "foo1").2, 0o700, "leading directories keep their source mode");
    assert_eq!(owner_mode(&r.dst, "foo1/foo2").2, 0o750);
    assert!(!exists(&r.dst, "foo1/foo2/baz") && !exists(&r.dst, "foo1/other") && !exists(&r.dst, "top.txt"));

    cp_with(&ctx(&r.src), &r.dst, &["."], "/test/", parents(&["foo1/foo2/ba*"], &[])).unwrap();
    assert_eq!(read(&r.dst, "test/foo1/foo2/bar"), "testing");
    assert_eq!(read(&r.dst, "test/foo1/foo2/baz"), "testing2");
    assert!(!exists(&r.dst, "test/foo1/other"), "a directory nothing is selected in is not created");

    // A pivot: `foo1/./foo2` copies `foo2` relative to `foo1`; a pattern naming a directory
    // selects everything in it; a wildcard in the part before the pivot is expanded.
    cp_with(&ctx(&r.src), &r.dst, &["foo1"], "/p/", parents(&["foo2"], &["foo1/foo2"])).unwrap();
    assert_eq!(read(&r.dst, "p/foo2/baz"), "testing2");
    assert!(!exists(&r.dst, "p/foo1") && !exists(&r.dst, "p/other"));
    cp_with(&ctx(&r.src), &r.dst, &["fo*"], "/w/", parents(&["*/x"], &[])).unwrap();
    assert_eq!(read(&r.dst, "w/other/x"), "x");
    assert!(!exists(&r.dst, "w/foo2"));

    // Nothing matches a wildcard pattern: nothing is copied; a missing plain path is an error.
    cp_with(&ctx(&r.src), &r.dst, &["."], "/n/", parents(&["nothing*"], &[])).unwrap();
    assert!(fs::read_dir(r.dst.join("n")).unwrap().next().is_none());
    let e = cp_with(&ctx(&r.src), &r.dst, &["."], "/m/", parents(&["foo1/missing"], &["foo1/missing"])).unwrap_err();
    assert_eq!(e.to_string(), r#""/foo1/missing": not found"#);
}

#[test]
fn big_trees_are_copied_completely_in_parallel() {
    let r = Roots::new();
    for d in 0..40 {
        for f in 0..50 {
            write(&r.src, &format!("data/d{d:03}/f{f:03}.txt"), &format!("{d}-{f}-{}", "x".repeat(f * 37)));
        }
    }
    let stats = cp(&ctx(&r.src), &r.dst, &["data"], "/data").unwrap();
    assert_eq!((stats.files, stats.dirs), (2000, 40));
    let strip = |lines: Vec<String>, top: &str| -> Vec<String> {
        lines.into_iter().map(|l| l.replacen(&format!(" {top}"), " ", 1)).collect()
    };
    let mut src_list = strip(listing(&r.src, "data"), "data");
    let dst_list = strip(listing(&r.dst, "data"), "data");
    // The context's own top directory is the only difference (created 0755, owned by root).
    src_list[0] = dst_list[0].clone();
    assert_eq!(src_list, dst_list);
    assert_eq!(
        stats.bytes,
        (0..40u64).map(|d| (0..50u64).map(|f| format!("{d}-{f}-").len() as u64 + f * 37).sum::<u64>()).sum::<u64>()
    );
}

#[test]
fn names_that_are_not_utf8_are_copied_byte_for_byte() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let r = Roots::new();
    let name = OsStr::from_bytes(b"caf\xe9.txt");
    mkdir(&r.src, "d");
    fs::write(r.src.join("d").join(name), "latin1").unwrap();
    fs::hard_link(r.src.join("d").join(name), r.src.join("d/other")).unwrap();
    cp(&stage(&r.src), &r.dst, &["d"], "/x/").unwrap();
    assert_eq!(fs::read_to_string(r.dst.join("x").join(name)).unwrap(), "latin1");
    assert_eq!(meta(&r.dst, "x/other").ino(), fs::symlink_metadata(r.dst.join("x").join(name)).unwrap().ino());
    cp(&stage(&r.src), &r.dst, &["d/caf?.txt"], "/w/").unwrap();
    assert_eq!(fs::read_to_string(r.dst.join("w").join(name)).unwrap(), "latin1");
}
