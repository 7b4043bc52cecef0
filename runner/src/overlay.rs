//! overlayfs mounts of layer directories: which options, and how to hand them to the kernel.
//!
//! Options (computed as data by [`OverlayOptions`], so they are unit-tested):
//! * `lowerdir` is top-most first, the reverse of [`crate::spec::Rootfs::lower`].
//! * `index=off,redirect_dir=off,metacopy=off` whatever the host's module defaults: renaming a
//!   lower directory then copies it up whole instead of leaving a `trusted.overlay.redirect`
//!   xattr, and copy-up copies data rather than leaving a metacopy stub, so `upper` is a plain
//!   self-contained layer diff (whiteouts as 0/0 char devices, opaque dirs as
//!   `trusted.overlay.opaque=y`) — the format containerd's overlay differ expects.
//! * overlay needs at least one lower, and two when there is no upper: an empty directory
//!   fills in (a read-only view of a single layer must still hide its whiteouts, which a plain
//!   bind mount would not).
//!
//! Mounting prefers the new mount API (`fsopen`/`fsconfig`/`fsmount`/`move_mount`) with one
//! `lowerdir+` call per layer (Linux 6.8+): each path is passed on its own, so neither the
//! 4096-byte limit of `mount(2)` options nor escaping of `:` and `,` in paths applies. On older
//! kernels, or for a single path over `fsconfig`'s 255-byte limit, it falls back to `mount(2)`
//! with an escaped `lowerdir=a:b:c` string, failing with a clear error when that exceeds a page.

use std::io;
use std::path::{Path, PathBuf};

use nix::mount::MsFlags;

use crate::sys;

/// Options that make `upper` a plain layer diff; see the module docs.
pub const FIXED_OPTIONS: [(&str, &str); 3] = [("index", "off"), ("redirect_dir", "off"), ("metacopy", "off")];

/// The longest value `fsconfig(FSCONFIG_SET_STRING)` accepts (the kernel copies at most 256
/// bytes including the NUL).
const FSCONFIG_MAX_STRING: usize = 255;

/// The largest option string `mount(2)` accepts (one page, including the NUL).
const LEGACY_LIMIT: usize = 4095;

/// Everything needed to mount one overlay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverlayOptions {
    /// Top-most first, as overlayfs wants them.
    pub lowers_top_first: Vec<PathBuf>,
    /// `(upperdir, workdir)`; `None` for a read-only overlay.
    pub upper: Option<(PathBuf, PathBuf)>,
    /// Mount with `userxattr` (overlay's own attributes as `user.overlay.*`): needed, and
    /// chosen by [`OverlayOptions::new`], inside a user namespace (rootless), where `trusted.*`
    /// attributes cannot be used.
    pub userxattr: bool,
}

/// How to hand the options to the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountMethod {
    /// The new mount API with `lowerdir+`, falling back to `mount(2)` where unsupported.
    Auto,
    /// Only the new mount API.
    NewApi,
    /// Only `mount(2)` with one option string.
    Legacy,
}

#[derive(Debug, thiserror::Error)]
pub enum OverlayError {
    #[error("overlay options for {layers} layers are {len} bytes, over the {LEGACY_LIMIT}-byte limit of mount(2)")]
    TooLong { layers: usize, len: usize },
    #[error("overlay path {0:?} is not valid UTF-8")]
    NonUtf8(PathBuf),
    #[error("mounting overlay on {}: {source}{}", target.display(), detail_suffix(detail))]
    Mount { target: PathBuf, source: io::Error, detail: String },
}

fn detail_suffix(detail: &str) -> String {
    if detail.is_empty() { String::new() } else { format!(" ({detail})") }
}

impl OverlayOptions {
    /// Options for `lowers` given bottom-first, with an optional upper. `empty` is an empty
    /// directory used where overlayfs needs more lowers than there are.
    pub fn new(lowers_bottom_first: &[PathBuf], upper: Option<(PathBuf, PathBuf)>, empty: &Path) -> OverlayOptions {
        let mut lowers_top_first: Vec<PathBuf> = lowers_bottom_first.iter().rev().cloned().collect();
        let needed = if upper.is_some() { 1 } else { 2 };
        while lowers_top_first.len() < needed {
            lowers_top_first.push(empty.to_path_buf());
        }
        OverlayOptions { lowers_top_first, upper, userxattr: rootless() }
    }

    /// [`FIXED_OPTIONS`], except that with `userxattr` the kernel refuses `redirect_dir=off`
    /// (which means "follow" when the module's `redirect_always_follow` is set): `nofollow`
    /// then, the same for layers that never carry redirects.
    fn fixed_options(&self) -> impl Iterator<Item = (&'static str, &'static str)> + '_ {
        FIXED_OPTIONS.iter().map(|(k, v)| match (*k, self.userxattr) {
            ("redirect_dir", true) => (*k, "nofollow"),
            _ => (*k, *v),
        })
    }

    /// The `fsconfig` calls, in order: one `lowerdir+` per layer, then upper, work, fixed options.
    pub fn fsconfig_params(&self) -> Vec<(&'static str, PathOrStr)> {
        let mut params: Vec<(&'static str, PathOrStr)> =
            self.lowers_top_first.iter().map(|l| ("lowerdir+", PathOrStr::Path(l.clone()))).collect();
        if let Some((upper, work)) = &self.upper {
            params.push(("upperdir", PathOrStr::Path(upper.clone())));
            params.push(("workdir", PathOrStr::Path(work.clone())));
        }
        params.extend(self.fixed_options().map(|(k, v)| (k, PathOrStr::Str(v.to_string()))));
        if self.userxattr {
            params.push(("userxattr", PathOrStr::Flag));
        }
        params
    }

    /// The single `mount(2)` option string, with `\`, `:` and `,` in paths escaped.
    pub fn legacy_data(&self) -> Result<String, OverlayError> {
        let escape = |p: &Path| -> Result<String, OverlayError> {
            let s = p.to_str().ok_or_else(|| OverlayError::NonUtf8(p.to_path_buf()))?;
            let mut out = String::with_capacity(s.len());
            for c in s.chars() {
                if matches!(c, '\\' | ':' | ',') {
                    out.push('\\');
                }
                out.push(c);
            }
            Ok(out)
        };
        let lowers: Vec<String> = self.lowers_top_first.iter().map(|l| escape(l)).collect::<Result<_, _>>()?;
        let mut data = format!("lowerdir={}", lowers.join(":"));
        if let Some((upper, work)) = &self.upper {
            data.push_str(&format!(",upperdir={},workdir={}", escape(upper)?, escape(work)?));
        }
        for (k, v) in self.fixed_options() {
            data.push_str(&format!(",{k}={v}"));
        }
        if self.userxattr {
            data.push_str(",userxattr");
        }
        if data.len() > LEGACY_LIMIT {
            return Err(OverlayError::TooLong { layers: self.lowers_top_first.len(), len: data.len() });
        }
        Ok(data)
    }

    /// Mounts the overlay on `target`.
    pub fn mount(&self, target: &Path, method: MountMethod) -> Result<(), OverlayError> {
        match method {
            MountMethod::NewApi => self.mount_new_api(target).map_err(|e| e.into_error(target)),
            MountMethod::Legacy => self.mount_legacy(target),
            MountMethod::Auto => match self.mount_new_api(target) {
                Ok(()) => Ok(()),
                Err(e) if e.unsupported => {
                    tracing::debug!("new mount API unusable for overlay ({}), using mount(2)", e.source);
                    self.mount_legacy(target)
                }
                Err(e) => Err(e.into_error(target)),
            },
        }
    }

    fn mount_new_api(&self, target: &Path) -> Result<(), NewApiError> {
        let ctx = sys::FsContext::open("overlay").map_err(|source| NewApiError {
            // ENOSYS: kernel before 5.2 (or a seccomp filter that hides the call).
            unsupported: source.raw_os_error() == Some(nix::libc::ENOSYS),
            source,
            detail: String::new(),
        })?;
        for (i, (key, value_kind)) in self.fsconfig_params().into_iter().enumerate() {
            let value = value_kind.as_str().map_err(|p| NewApiError {
                unsupported: false,
                source: io::Error::new(io::ErrorKind::InvalidInput, format!("non-UTF-8 path {p:?}")),
                detail: String::new(),
            })?;
            let set =
                if matches!(value_kind, PathOrStr::Flag) { ctx.set_flag(key) } else { ctx.set_string(key, value) };
            if let Err(source) = set {
                let detail = ctx.messages();
                // An unknown `lowerdir+` (kernel < 6.8) is rejected on the very first call, and
                // fsconfig takes strings of at most 255 bytes; mount(2) may still manage both.
                let einval = source.raw_os_error() == Some(nix::libc::EINVAL);
                let unsupported = einval && ((i == 0 && key == "lowerdir+") || value.len() > FSCONFIG_MAX_STRING);
                return Err(NewApiError { unsupported, source, detail: format!("{key}={value}: {detail}") });
            }
        }
        let readonly = self.upper.is_none();
        let mnt = ctx.create_and_mount(readonly).map_err(|source| NewApiError {
            unsupported: false,
            source,
            detail: ctx.messages(),
        })?;
        sys::attach_mount(&mnt, target).map_err(|source| NewApiError {
            unsupported: false,
            source,
            detail: "move_mount".to_string(),
        })
    }

    fn mount_legacy(&self, target: &Path) -> Result<(), OverlayError> {
        let data = self.legacy_data()?;
        let flags = if self.upper.is_none() { MsFlags::MS_RDONLY } else { MsFlags::empty() };
        sys::mount("overlay", target, "overlay", flags, Some(&data)).map_err(|source| OverlayError::Mount {
            target: target.to_path_buf(),
            source,
            detail: "mount(2)".to_string(),
        })
    }
}

/// An `fsconfig` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathOrStr {
    Path(PathBuf),
    Str(String),
    /// A flag option without a value (`FSCONFIG_SET_FLAG`).
    Flag,
}

impl PathOrStr {
    fn as_str(&self) -> Result<&str, PathBuf> {
        match self {
            PathOrStr::Path(p) => p.to_str().ok_or_else(|| p.clone()),
            PathOrStr::Str(s) => Ok(s),
            PathOrStr::Flag => Ok(""),
        }
    }
}

/// Whether this process is in a user namespace (decided once).
fn rootless() -> bool {
    static ROOTLESS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ROOTLESS.get_or_init(sys::in_user_namespace)
}

struct NewApiError {
    unsupported: bool,
    source: io::Error,
    detail: String,
}

impl NewApiError {
    fn into_error(self, target: &Path) -> OverlayError {
        OverlayError::Mount { target: target.to_path_buf(), source: self.source, detail: self.detail }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> PathBuf {
        PathBuf::from(s)
    }

    #[test]
    fn lowers_are_reversed_and_fixed_options_follow() {
        let o = OverlayOptions::new(&[p("/l/base"), p("/l/mid"), p("/l/top")], Some((p("/u"), p("/w"))), &p("/e"));
        assert_eq!(o.lowers_top_first, [p("/l/top"), p("/l/mid"), p("/l/base")]);
        let keys: Vec<&str> = o.fsconfig_params().iter().map(|(k, _)| *k).collect();
        assert_eq!(
            keys,
            ["lowerdir+", "lowerdir+", "lowerdir+", "upperdir", "workdir", "index", "redirect_dir", "metacopy"]
        );
        assert_eq!(
            o.legacy_data().unwrap(),
            "lowerdir=/l/top:/l/mid:/l/base,upperdir=/u,workdir=/w,index=off,redirect_dir=off,metacopy=off"
        );
    }

    #[test]
    fn userxattr_for_rootless_mounts() {
        let mut o = OverlayOptions::new(&[p("/l")], Some((p("/u"), p("/w"))), &p("/e"));
        o.userxattr = true;
        assert_eq!(o.fsconfig_params().last(), Some(&("userxattr", PathOrStr::Flag)));
        assert!(o.legacy_data().unwrap().ends_with(",index=off,redirect_dir=nofollow,metacopy=off,userxattr"));
    }

    #[test]
    fn empty_dir_fills_in_missing_lowers() {
        // With an upper, one lower is enough.
        let o = OverlayOptions::new(&[], Some((p("/u"), p("/w"))), &p("/e"));
        assert_eq!(o.lowers_top_first, [p("/e")]);
        // Read-only needs two.
        let o = OverlayOptions::new(&[p("/only")], None, &p("/e"));
        assert_eq!(o.lowers_top_first, [p("/only"), p("/e")]);
        let o = OverlayOptions::new(&[p("/a"), p("/b")], None, &p("/e"));
        assert_eq!(o.lowers_top_first, [p("/b"), p("/a")]);
        assert!(!o.legacy_data().unwrap().contains("upperdir"));
    }

    #[test]
    fn legacy_data_escapes_separators() {
        let o = OverlayOptions::new(&[p("/a:b"), p("/c,d\\e")], None, &p("/e"));
        assert_eq!(o.legacy_data().unwrap(), "lowerdir=/c\\,d\\\\e:/a\\:b,index=off,redirect_dir=off,metacopy=off");
    }

    #[test]
    fn legacy_data_refuses_more_than_a_page() {
        let lowers: Vec<PathBuf> = (0..100).map(|i| p(&format!("/var/lib/strata/layers/{i:064}"))).collect();
        let o = OverlayOptions::new(&lowers, Some((p("/u"), p("/w"))), &p("/e"));
        let err = o.legacy_data().unwrap_err();
        assert!(matches!(err, OverlayError::TooLong { layers: 100, .. }), "{err}");
        // The new API has no such limit: one short value per call.
        assert!(o.fsconfig_params().iter().all(|(_, v)| v.as_str().unwrap().len() < 256));
    }
}
