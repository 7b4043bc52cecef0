//! The overlayfs upper-directory format, as strata's snapshots hold layers.
//!
//! From the kernel's `Documentation/filesystems/overlayfs.rst`:
//! - a whiteout (deleted path) is a character device 0/0 with the deleted name;
//! - an opaque directory (lower contents hidden) carries `trusted.overlay.opaque=y`
//!   (`user.overlay.opaque=y` when mounted with `userxattr`, as rootless strata does; both are
//!   read, and [`opaque_xattr`] says which this process writes);
//! - `trusted.overlay.redirect` (renamed directory) and `trusted.overlay.metacopy` (data still
//!   in a lower layer) mean the upper directory is not a self-contained diff: strata's runner
//!   mounts with `redirect_dir=off,metacopy=off`, and packing refuses such trees;
//! - other `trusted.overlay.*` / `user.overlay.*` attributes (`origin`, `impure`, `nlink`, …)
//!   are overlay's bookkeeping and never part of a layer.
//!
//! [`lookup_lower`] resolves a path through a stack of layer directories with overlay's rules
//! (whiteouts and opaque directories hide what is below), for the packer's "unchanged
//! directory" test and the unpacker's implicit parent directories.

use std::collections::BTreeMap;
use std::fs::Metadata;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

pub const OPAQUE_XATTR: &str = "trusted.overlay.opaque";
pub const USER_OPAQUE_XATTR: &str = "user.overlay.opaque";

/// The opaque-directory attribute snapshots made by this process use: `trusted.overlay.opaque`,
/// or inside a user namespace (rootless strata, whose overlays are mounted with `userxattr`,
/// and which may not set `trusted.*` attributes) `user.overlay.opaque`. A store is written by
/// one kind of strata: a root store's snapshots are not usable rootless, nor the reverse.
pub fn opaque_xattr() -> &'static str {
    static NAME: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();
    NAME.get_or_init(|| {
        // The initial user namespace maps every id to itself; any other map means a user namespace.
        let initial = std::fs::read_to_string("/proc/self/uid_map")
            .map(|m| m.split_whitespace().collect::<Vec<_>>() == ["0", "0", "4294967295"])
            .unwrap_or(true);
        if initial { OPAQUE_XATTR } else { USER_OPAQUE_XATTR }
    })
}

/// Xattrs of a path (not following a symlink), names to values.
pub type Xattrs = BTreeMap<Vec<u8>, Vec<u8>>;

/// True for attributes that are overlayfs internals (never written to a layer). SELinux
/// labels are host policy, not image content (Docker and BuildKit do not carry them either).
pub fn is_internal_xattr(name: &[u8]) -> bool {
    name.starts_with(b"trusted.overlay.") || name.starts_with(b"user.overlay.") || name == b"security.selinux"
}

/// True if `md` is an overlay whiteout.
pub fn is_whiteout(md: &Metadata) -> bool {
    md.file_type().is_char_device() && md.rdev() == 0
}

/// True if the xattrs mark an opaque directory.
pub fn is_opaque(x: &Xattrs) -> bool {
    [OPAQUE_XATTR, USER_OPAQUE_XATTR].iter().any(|k| x.get(k.as_bytes()).map(Vec::as_slice) == Some(b"y"))
}

/// Reads every extended attribute of `path` (without following a final symlink).
pub fn read_xattrs(path: &Path) -> io::Result<Xattrs> {
    let mut out = Xattrs::new();
    let names = loop {
        let size = match rustix::fs::llistxattr_query(path) {
            Ok(n) => n,
            Err(rustix::io::Errno::NOTSUP) => return Ok(out),
            Err(e) => return Err(e.into()),
        };
        if size == 0 {
            return Ok(out);
        }
        let mut buf = vec![0u8; size];
        match rustix::fs::llistxattr(path, &mut buf[..]) {
            Ok(n) => {
                buf.truncate(n);
                break buf;
            }
            Err(rustix::io::Errno::RANGE) => continue, // Grew between the two calls.
            Err(e) => return Err(e.into()),
        }
    };
    for name in names.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let value = loop {
            let size = match rustix::fs::lgetxattr_query(path, name) {
                Ok(n) => n,
                Err(rustix::io::Errno::NODATA) => break None,
                Err(e) => return Err(e.into()),
            };
            let mut buf = vec![0u8; size];
            if size == 0 {
                break Some(buf);
            }
            match rustix::fs::lgetxattr(path, name, &mut buf[..]) {
                Ok(n) => {
                    buf.truncate(n);
                    break Some(buf);
                }
                Err(rustix::io::Errno::RANGE) => continue,
                Err(rustix::io::Errno::NODATA) => break None,
                Err(e) => return Err(e.into()),
            }
        };
        if let Some(v) = value {
            out.insert(name.to_vec(), v);
        }
    }
    Ok(out)
}

/// The content xattrs (overlay internals removed).
pub fn content_xattrs(x: &Xattrs) -> Xattrs {
    x.iter().filter(|(k, _)| !is_internal_xattr(k)).map(|(k, v)| (k.clone(), v.clone())).collect()
}

fn lstat(p: &Path) -> io::Result<Option<Metadata>> {
    match std::fs::symlink_metadata(p) {
        Ok(m) => Ok(Some(m)),
        Err(e)
            if e.kind() == io::ErrorKind::NotFound
                || e.raw_os_error() == Some(rustix::io::Errno::NOTDIR.raw_os_error()) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Finds what the merged view of `lowers` (top-most first) shows at `rel` (a relative path):
/// the layer directory path holding it and its metadata, or `None` if nothing is visible
/// there (absent, whited out, or hidden by an opaque directory or a non-directory above it).
pub fn lookup_lower(lowers: &[PathBuf], rel: &Path) -> io::Result<Option<(PathBuf, Metadata)>> {
    let comps: Vec<_> = rel.components().collect();
    if comps.is_empty() {
        return Ok(None);
    }
    'layers: for lower in lowers {
        let mut last_layer = false;
        let mut p = lower.clone();
        for c in &comps[..comps.len() - 1] {
            p.push(c);
            match lstat(&p)? {
                None => continue 'layers,
                Some(md) if md.is_dir() => {
                    if is_opaque(&read_xattrs(&p)?) {
                        last_layer = true;
                    }
                }
                // A whiteout or a non-directory ancestor hides everything below, here and in
                // every lower layer.
                Some(_) => return Ok(None),
            }
        }
        let full = lower.join(rel);
        match lstat(&full)? {
            Some(md) if is_whiteout(&md) => return Ok(None),
            Some(md) => return Ok(Some((full, md))),
            None if last_layer => return Ok(None),
            None => {}
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whiteout(p: &Path) {
        rustix::fs::mknodat(rustix::fs::CWD, p, rustix::fs::FileType::CharacterDevice, 0.into(), 0).unwrap();
    }

    #[test]
    fn lookup_follows_overlay_rules() {
        let t = tempfile::tempdir().unwrap();
        let (top, mid, bottom) = (t.path().join("top"), t.path().join("mid"), t.path().join("bottom"));
        for d in [&top, &mid, &bottom] {
            std::fs::create_dir_all(d.join("d")).unwrap();
        }
        std::fs::write(bottom.join("d/a"), "a").unwrap();
        std::fs::write(bottom.join("d/b"), "b").unwrap();
        std::fs::write(bottom.join("d/c"), "c").unwrap();
        std::fs::create_dir_all(bottom.join("e/f")).unwrap();
        whiteout(&mid.join("d/a"));
        rustix::fs::setxattr(top.join("d"), OPAQUE_XATTR, b"y", rustix::fs::XattrFlags::empty()).unwrap();
        std::fs::write(top.join("d/c"), "top c").unwrap();
        std::fs::write(mid.join("e"), "file hides dir").unwrap();
        let lowers = vec![top.clone(), mid.clone(), bottom.clone()];
        assert!(lookup_lower(&lowers, Path::new("d/b")).unwrap().is_none(), "hidden by opaque d");
        assert_eq!(lookup_lower(&lowers, Path::new("d/c")).unwrap().unwrap().0, top.join("d/c"));
        assert!(lookup_lower(&lowers, Path::new("e/f")).unwrap().is_none(), "hidden by file e");
        let below_top = vec![mid.clone(), bottom.clone()];
        assert!(lookup_lower(&below_top, Path::new("d/a")).unwrap().is_none(), "whited out");
        assert_eq!(lookup_lower(&below_top, Path::new("d/b")).unwrap().unwrap().0, bottom.join("d/b"));
        assert!(lookup_lower(&below_top, Path::new("nope/x")).unwrap().is_none());
    }
}
