//! Buildpack descriptors (`buildpack.toml`) and the builder-like default order (`order.toml`).
//!
//! A buildpack is a directory holding `buildpack.toml` (Buildpack API spec, "buildpack.toml"):
//! `api`, `[buildpack] id/version/name/clear-env`, and either executables `bin/detect` +
//! `bin/build` or, for a composite buildpack, `[[order]]` groups of other buildpacks. API 0.12
//! adds `[[targets]]` (os/arch/variant/distros) in place of the older `[[stacks]]`.
//!
//! Accepted Buildpack API versions: 0.7 to 0.12 (lifecycle v0.21 supports 0.7 and later). The
//! differences strata honours: before 0.9 a process `command` is a string run by a shell unless
//! `direct = true`; from 0.9 it is a list run directly.
//!
//! `order.toml` is strata's stand-in for a builder: `[[order]]` groups as in a composite
//! buildpack, plus `[build] image` and `[run] image` naming the default build and run images.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The oldest and newest Buildpack API versions strata speaks.
pub const MIN_API: Api = Api { major: 0, minor: 7 };
pub const MAX_API: Api = Api { major: 0, minor: 12 };

/// Errors reading descriptors and finding buildpacks.
#[derive(Debug, thiserror::Error)]
pub enum DescriptorError {
    #[error("{path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("no buildpack {id}{} among {}", version.as_ref().map(|v| format!("@{v}")).unwrap_or_default(), known.join(", "))]
    NotFound { id: String, version: Option<String>, known: Vec<String> },
    #[error("composite buildpacks nest too deeply (a cycle?) at {0}")]
    TooDeep(String),
}

/// A Buildpack API version, `<major>.<minor>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Api {
    pub major: u64,
    pub minor: u64,
}

impl Api {
    /// Parses `<major>.<minor>` or `<major>`.
    pub fn parse(s: &str) -> Option<Api> {
        let (major, minor) = s.split_once('.').unwrap_or((s, "0"));
        let num = |p: &str| (!p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())).then(|| p.parse().ok()).flatten();
        Some(Api { major: num(major)?, minor: num(minor)? })
    }
}

impl fmt::Display for Api {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// `buildpack.toml`.
#[derive(Debug, Clone, Deserialize)]
pub struct BuildpackToml {
    pub api: String,
    pub buildpack: BuildpackInfo,
    #[serde(default)]
    pub order: Vec<OrderGroup>,
    #[serde(default)]
    pub targets: Vec<TargetSpec>,
    #[serde(default)]
    pub stacks: Vec<StackSpec>,
}

/// `[buildpack]`.
#[derive(Debug, Clone, Deserialize)]
pub struct BuildpackInfo {
    pub id: String,
    pub version: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub homepage: Option<String>,
    /// Don't pass user-provided (platform) env vars to this buildpack's processes.
    #[serde(default, rename = "clear-env")]
    pub clear_env: bool,
}

/// One `[[order]]` entry: a group of buildpack references.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct OrderGroup {
    #[serde(default)]
    pub group: Vec<GroupRef>,
}

/// `[[order.group]] id/version/optional`.
#[derive(Debug, Clone, Deserialize)]
pub struct GroupRef {
    pub id: String,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub optional: bool,
}

/// `[[targets]]` (API 0.12).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TargetSpec {
    #[serde(default)]
    pub os: Option<String>,
    #[serde(default)]
    pub arch: Option<String>,
    #[serde(default)]
    pub variant: Option<String>,
    #[serde(default)]
    pub distros: Vec<DistroSpec>,
}

/// `[[targets.distros]]`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct DistroSpec {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub version: Option<String>,
}

/// `[[stacks]]` (before API 0.12; accepted and not checked: strata has no stack ids).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct StackSpec {
    #[serde(default)]
    pub id: String,
}

/// What a build runs on, for matching `[[targets]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildTarget {
    pub os: String,
    pub arch: String,
    pub variant: Option<String>,
    /// From the build image's `/etc/os-release` (`ID`, `VERSION_ID`), when it has one.
    pub distro: Option<(String, String)>,
}

impl BuildTarget {
    /// True if one of `targets` matches (no targets at all means "any", as for older APIs).
    pub fn matches(&self, targets: &[TargetSpec]) -> bool {
        if targets.is_empty() {
            return true;
        }
        let same = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == "*" || w == have);
        targets.iter().any(|t| {
            same(&t.os, &self.os)
                && same(&t.arch, &self.arch)
                && (t.variant.is_none() || t.variant == self.variant)
                && (t.distros.is_empty()
                    || match &self.distro {
                        // An image that does not say what it is cannot be ruled out.
                        None => true,
                        Some((name, version)) => t
                            .distros
                            .iter()
                            .any(|d| same(&d.name, name) && d.version.as_deref().is_none_or(|v| v == version)),
                    })
        })
    }
}

/// A buildpack found on disk.
#[derive(Debug, Clone)]
pub struct Buildpack {
    pub dir: PathBuf,
    pub descriptor: BuildpackToml,
    pub api: Api,
}

impl Buildpack {
    /// Reads and checks `DIR/buildpack.toml`.
    pub fn load(dir: &Path) -> Result<Buildpack, DescriptorError> {
        let path = dir.join("buildpack.toml");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| DescriptorError::Read { path: path.clone(), message: e.to_string() })?;
        let invalid = |message: String| DescriptorError::Invalid { path: path.clone(), message };
        let descriptor: BuildpackToml = toml::from_str(&text).map_err(|e| invalid(toml_error(&e)))?;
        let api = Api::parse(&descriptor.api).ok_or_else(|| invalid(format!("invalid api {:?}", descriptor.api)))?;
        if api < MIN_API || api > MAX_API {
            return Err(invalid(format!(
                "buildpack API {api} is not supported (strata speaks {MIN_API} to {MAX_API})"
            )));
        }
        check_id(&descriptor.buildpack.id).map_err(invalid)?;
        if descriptor.buildpack.version.is_empty() {
            return Err(invalid("[buildpack] version is empty".into()));
        }
        let dir = dir
            .canonicalize()
            .map_err(|e| DescriptorError::Read { path: dir.to_path_buf(), message: e.to_string() })?;
        let bp = Buildpack { dir, descriptor, api };
        if !bp.is_composite() {
            for exe in ["bin/detect", "bin/build"] {
                let p = bp.dir.join(exe);
                if !p.is_file() {
                    return Err(invalid(format!(
                        "{exe} is missing (a buildpack needs bin/detect and bin/build, or [[order]])"
                    )));
                }
            }
        }
        Ok(bp)
    }

    pub fn id(&self) -> &str {
        &self.descriptor.buildpack.id
    }

    pub fn version(&self) -> &str {
        &self.descriptor.buildpack.version
    }

    /// `id@version`.
    pub fn key(&self) -> String {
        format!("{}@{}", self.id(), self.version())
    }

    /// A composite (order) buildpack: `[[order]]` instead of executables.
    pub fn is_composite(&self) -> bool {
        !self.descriptor.order.is_empty()
    }

    /// The id as a directory name (`/` → `_`), as the lifecycle names `<layers>/<id>`.
    pub fn escaped_id(&self) -> String {
        escape_id(self.id())
    }
}

/// A buildpack id as a path component.
pub fn escape_id(id: &str) -> String {
    id.replace('/', "_")
}

/// Buildpack ids: letters, digits, `.`, `/`, `-` (and `_`, which real-world ids use); not
/// `app`, `config` or `sbom`, which name lifecycle directories.
fn check_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("[buildpack] id is empty".into());
    }
    if let Some(c) = id.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '/' | '-' | '_'))) {
        return Err(format!("buildpack id {id:?} contains {c:?} (letters, digits, '.', '/', '-' only)"));
    }
    if matches!(id, "app" | "config" | "sbom") || id.starts_with('/') || id.contains("..") {
        return Err(format!("buildpack id {id:?} is reserved or not a valid name"));
    }
    Ok(())
}

/// One line of a TOML parse error (the crate's message spans several lines).
pub(crate) fn toml_error(e: &toml::de::Error) -> String {
    let msg = e.message().trim().to_string();
    match e.span() {
        Some(span) => format!("{msg} (at byte {})", span.start),
        None => msg,
    }
}

/// The buildpacks a build can use, by id.
#[derive(Debug, Default, Clone)]
pub struct Registry {
    pub buildpacks: Vec<Buildpack>,
}

impl Registry {
    /// Adds `dir` (a buildpack) or, when it has no `buildpack.toml`, every subdirectory that
    /// has one (a directory of buildpacks such as strata's `buildpacks/`).
    pub fn add_dir(&mut self, dir: &Path) -> Result<(), DescriptorError> {
        if dir.join("buildpack.toml").is_file() {
            let bp = Buildpack::load(dir)?;
            if !self.buildpacks.iter().any(|b| b.key() == bp.key()) {
                self.buildpacks.push(bp);
            }
            return Ok(());
        }
        let entries = std::fs::read_dir(dir)
            .map_err(|e| DescriptorError::Read { path: dir.to_path_buf(), message: e.to_string() })?;
        let mut subdirs: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        subdirs.sort();
        for sub in subdirs {
            if sub.join("buildpack.toml").is_file() {
                self.add_dir(&sub)?;
            }
        }
        Ok(())
    }

    /// The buildpack `id` (at `version`, or the highest version known).
    pub fn find(&self, id: &str, version: Option<&str>) -> Result<&Buildpack, DescriptorError> {
        let mut candidates: Vec<&Buildpack> =
            self.buildpacks.iter().filter(|b| b.id() == id && version.is_none_or(|v| b.version() == v)).collect();
        candidates.sort_by_key(|b| version_key(b.version()));
        candidates.pop().ok_or_else(|| DescriptorError::NotFound {
            id: id.to_string(),
            version: version.map(str::to_string),
            known: self.buildpacks.iter().map(Buildpack::key).collect(),
        })
    }
}

/// Orders `X.Y.Z` numerically (anything else sorts first, by text).
fn version_key(v: &str) -> (Vec<u64>, String) {
    (v.split('.').map(|p| p.parse().unwrap_or(0)).collect(), v.to_string())
}

/// `order.toml`: the default order and images, like a builder's `builder.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct OrderToml {
    #[serde(default)]
    pub order: Vec<OrderGroup>,
    #[serde(default)]
    pub build: Option<ImageRef>,
    #[serde(default)]
    pub run: Option<ImageRef>,
    /// Anything else is kept for tools that read the file.
    #[serde(flatten)]
    pub extra: BTreeMap<String, toml::Value>,
}

/// `[build] image = "..."` / `[run] image = "..."`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ImageRef {
    #[serde(default)]
    pub image: Option<String>,
}

impl OrderToml {
    pub fn load(path: &Path) -> Result<OrderToml, DescriptorError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| DescriptorError::Read { path: path.to_path_buf(), message: e.to_string() })?;
        toml::from_str(&text)
            .map_err(|e| DescriptorError::Invalid { path: path.to_path_buf(), message: toml_error(&e) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_bp(dir: &Path, toml: &str, exes: bool) {
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        std::fs::write(dir.join("buildpack.toml"), toml).unwrap();
        if exes {
            std::fs::write(dir.join("bin/detect"), "#!/bin/sh\n").unwrap();
            std::fs::write(dir.join("bin/build"), "#!/bin/sh\n").unwrap();
        }
    }

    #[test]
    fn api_versions() {
        assert_eq!(Api::parse("0.12"), Some(Api { major: 0, minor: 12 }));
        assert_eq!(Api::parse("1"), Some(Api { major: 1, minor: 0 }));
        assert!(Api::parse("0.x").is_none() && Api::parse("").is_none() && Api::parse("0.").is_none());
        assert!(Api::parse("0.9").unwrap() < Api::parse("0.12").unwrap(), "numeric, not textual");
    }

    #[test]
    fn loads_and_checks_descriptors() {
        let d = tempfile::tempdir().unwrap();
        let ok = d.path().join("ok");
        write_bp(
            &ok,
            "api = \"0.12\"\n[buildpack]\nid = \"a/b\"\nversion = \"1.2.3\"\n[[targets]]\nos = \"linux\"\n",
            true,
        );
        let bp = Buildpack::load(&ok).unwrap();
        assert_eq!((bp.key().as_str(), bp.escaped_id().as_str(), bp.is_composite()), ("a/b@1.2.3", "a_b", false));

        let cases = [
            ("api = \"0.3\"\n[buildpack]\nid = \"x\"\nversion = \"1\"\n", "not supported"),
            ("api = \"0.12\"\n[buildpack]\nid = \"app\"\nversion = \"1\"\n", "reserved"),
            ("api = \"0.12\"\n[buildpack]\nid = \"a b\"\nversion = \"1\"\n", "contains ' '"),
            ("api = \"0.12\"\n[buildpack\n", "buildpack.toml"),
            ("api = \"0.12\"\n[buildpack]\nid = \"x\"\n", "version"),
        ];
        for (i, (text, want)) in cases.iter().enumerate() {
            let dir = d.path().join(format!("bad{i}"));
            write_bp(&dir, text, true);
            let err = Buildpack::load(&dir).unwrap_err().to_string();
            assert!(err.contains(want), "{text:?}: {err}");
        }
        let noexe = d.path().join("noexe");
        write_bp(&noexe, "api = \"0.12\"\n[buildpack]\nid = \"x\"\nversion = \"1\"\n", false);
        assert!(Buildpack::load(&noexe).unwrap_err().to_string().contains("bin/detect is missing"));
        let composite = d.path().join("comp");
        write_bp(
            &composite,
            "api = \"0.12\"\n[buildpack]\nid = \"c\"\nversion = \"1\"\n[[order]]\n[[order.group]]\nid = \"a/b\"\n",
            false,
        );
        assert!(Buildpack::load(&composite).unwrap().is_composite());
    }

    #[test]
    fn registry_finds_highest_version() {
        let d = tempfile::tempdir().unwrap();
        for v in ["1.9.0", "1.10.0"] {
            write_bp(&d.path().join(v), &format!("api = \"0.12\"\n[buildpack]\nid = \"x\"\nversion = \"{v}\"\n"), true);
        }
        let mut r = Registry::default();
        r.add_dir(d.path()).unwrap();
        assert_eq!(r.find("x", None).unwrap().version(), "1.10.0");
        assert_eq!(r.find("x", Some("1.9.0")).unwrap().version(), "1.9.0");
        assert!(r.find("y", None).unwrap_err().to_string().contains("no buildpack y"));
    }

    #[test]
    fn targets_match_os_arch_and_distro() {
        let t = BuildTarget {
            os: "linux".into(),
            arch: "amd64".into(),
            variant: None,
            distro: Some(("debian".into(), "12".into())),
        };
        let spec = |os: &str, arch: &str, distro: Option<(&str, &str)>| TargetSpec {
            os: Some(os.into()),
            arch: Some(arch.into()),
            variant: None,
            distros: distro
                .map(|(n, v)| vec![DistroSpec { name: Some(n.into()), version: Some(v.into()) }])
                .unwrap_or_default(),
        };
        assert!(t.matches(&[]));
        assert!(t.matches(&[spec("linux", "amd64", None)]));
        assert!(t.matches(&[spec("linux", "*", Some(("debian", "12")))]));
        assert!(!t.matches(&[spec("linux", "arm64", None)]));
        assert!(!t.matches(&[spec("linux", "amd64", Some(("ubuntu", "22.04")))]));
        assert!(t.matches(&[spec("windows", "amd64", None), spec("linux", "amd64", None)]));
    }
}
