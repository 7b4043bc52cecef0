//! What a buildpack leaves in its layers directory after `bin/build` (Buildpack API spec,
//! "Layers" and "Data Format"): `<layer>.toml` files with `[types]` and `[metadata]`,
//! `launch.toml` (processes, labels, slices), `build.toml` (unmet plan entries) and
//! `store.toml` (data kept across builds).
//!
//! The names `launch`, `build` and `store` are reserved: a layer directory with one of them is
//! an error. A layer directory without a `<layer>.toml` is not a layer (ignored, with a
//! warning); a `<layer>.toml` whose types are all false makes a temporary layer, renamed
//! `<layer>.ignore` once its buildpack is done so later buildpacks cannot depend on it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::descriptor::{Api, toml_error};

/// Errors reading a buildpack's output.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct LayersError {
    pub path: PathBuf,
    pub message: String,
}

fn err(path: &Path, message: impl Into<String>) -> LayersError {
    LayersError { path: path.to_path_buf(), message: message.into() }
}

/// `[types]` of a `<layer>.toml`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct LayerTypes {
    #[serde(default)]
    pub launch: bool,
    #[serde(default)]
    pub build: bool,
    #[serde(default)]
    pub cache: bool,
}

/// A `<layer>.toml`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct LayerToml {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub types: Option<LayerTypes>,
    #[serde(default)]
    pub metadata: toml::Table,
}

impl LayerToml {
    pub fn types(&self) -> LayerTypes {
        self.types.unwrap_or_default()
    }

    /// The file as the analyze/restore phases write it back: metadata only, no types.
    pub fn metadata_only(metadata: toml::Table) -> String {
        toml::to_string(&LayerToml { types: None, metadata }).unwrap_or_default()
    }
}

/// One layer of a buildpack after its build.
#[derive(Debug, Clone)]
pub struct LayerInfo {
    pub name: String,
    pub toml: LayerToml,
    /// The layer directory exists (a launch layer without one reuses the previous image's).
    pub has_dir: bool,
}

/// A process's command: a list (API 0.9+) or a shell string (older APIs).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum CommandField {
    List(Vec<String>),
    Text(String),
}

/// `[[processes]]` in `launch.toml`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ProcessToml {
    #[serde(rename = "type")]
    pub kind: String,
    pub command: CommandField,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub direct: Option<bool>,
    #[serde(default)]
    pub default: bool,
    #[serde(default, rename = "working-dir")]
    pub working_dir: Option<String>,
}

/// `[[labels]]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct LabelToml {
    pub key: String,
    pub value: String,
}

/// `[[slices]]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SliceToml {
    #[serde(default)]
    pub paths: Vec<String>,
}

/// `launch.toml`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct LaunchToml {
    #[serde(default)]
    pub labels: Vec<LabelToml>,
    #[serde(default)]
    pub processes: Vec<ProcessToml>,
    #[serde(default)]
    pub slices: Vec<SliceToml>,
}

/// `build.toml`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct BuildToml {
    #[serde(default)]
    pub unmet: Vec<Unmet>,
}

/// `[[unmet]] name`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Unmet {
    pub name: String,
}

/// A process as the image runs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Process {
    #[serde(rename = "type")]
    pub kind: String,
    /// The executable and its fixed arguments.
    pub command: Vec<String>,
    /// Default arguments, replaced by the user's.
    pub args: Vec<String>,
    pub direct: bool,
    #[serde(rename = "buildpackID")]
    pub buildpack_id: String,
    #[serde(rename = "working-dir")]
    pub working_dir: String,
}

/// Letters, digits, `.`, `_`, `-`.
pub fn valid_process_type(t: &str) -> bool {
    !t.is_empty() && t.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// Reads an optional TOML file (absent → default).
fn read_toml<T: for<'de> Deserialize<'de> + Default>(path: &Path) -> Result<T, LayersError> {
    match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text).map_err(|e| err(path, toml_error(&e))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
        Err(e) => Err(err(path, e.to_string())),
    }
}

/// Everything a buildpack's build left in `dir` (its layers directory).
#[derive(Debug, Clone, Default)]
pub struct BuildOutput {
    pub layers: Vec<LayerInfo>,
    pub launch: LaunchToml,
    pub build: BuildToml,
    /// `store.toml`'s `[metadata]`, if the file exists.
    pub store: Option<toml::Table>,
    pub warnings: Vec<String>,
}

impl BuildOutput {
    /// Reads the buildpack's layers directory, checks it, and renames temporary layers to
    /// `<name>.ignore`.
    pub fn read(dir: &Path) -> Result<BuildOutput, LayersError> {
        let mut out = BuildOutput {
            launch: read_toml(&dir.join("launch.toml"))?,
            build: read_toml(&dir.join("build.toml"))?,
            ..BuildOutput::default()
        };
        if dir.join("store.toml").exists() {
            #[derive(Deserialize, Default)]
            struct Store {
                #[serde(default)]
                metadata: toml::Table,
            }
            out.store = Some(read_toml::<Store>(&dir.join("store.toml"))?.metadata);
        }
        let mut names: Vec<(String, bool)> = Vec::new();
        for e in std::fs::read_dir(dir).map_err(|e| err(dir, e.to_string()))? {
            let e = e.map_err(|e| err(dir, e.to_string()))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let is_dir = e.file_type().map(|t| t.is_dir()).unwrap_or(false);
            names.push((name, is_dir));
        }
        names.sort();
        for (name, is_dir) in &names {
            if *is_dir {
                if matches!(name.as_str(), "build" | "launch" | "store") {
                    return Err(err(&dir.join(name), "a layer may not be named build, launch or store"));
                }
                if !name.ends_with(".ignore") && !names.iter().any(|(n, d)| !d && *n == format!("{name}.toml")) {
                    out.warnings.push(format!("layer directory {name} has no {name}.toml: not a layer, ignored"));
                }
                continue;
            }
            let Some(layer) = name.strip_suffix(".toml") else { continue };
            if matches!(layer, "launch" | "build" | "store") {
                continue;
            }
            let toml: LayerToml = read_toml(&dir.join(name))?;
            let has_dir = names.iter().any(|(n, d)| *d && n == layer);
            let types = toml.types();
            if !types.launch && !types.build && !types.cache && has_dir {
                let ignored = dir.join(format!("{layer}.ignore"));
                let _ = std::fs::remove_dir_all(&ignored);
                std::fs::rename(dir.join(layer), &ignored).map_err(|e| err(&dir.join(layer), e.to_string()))?;
            }
            out.layers.push(LayerInfo { name: layer.to_string(), toml, has_dir });
        }
        for p in &out.launch.processes {
            if !valid_process_type(&p.kind) {
                return Err(err(&dir.join("launch.toml"), format!("invalid process type {:?}", p.kind)));
            }
        }
        if out.launch.processes.iter().filter(|p| p.default).count() > 1 {
            return Err(err(&dir.join("launch.toml"), "more than one process has default = true"));
        }
        Ok(out)
    }

    /// The processes in the form the image runs them.
    pub fn processes(&self, buildpack_id: &str, api: Api, app_dir: &str) -> Vec<Process> {
        self.launch
            .processes
            .iter()
            .map(|p| {
                let (command, args, direct) = match &p.command {
                    CommandField::List(c) => (c.clone(), p.args.clone(), true),
                    // Before API 0.9: a string, run by a shell unless `direct`.
                    CommandField::Text(c) if p.direct == Some(true) || api >= Api { major: 0, minor: 9 } => {
                        (vec![c.clone()], p.args.clone(), true)
                    }
                    CommandField::Text(c) => {
                        let mut script = c.clone();
                        for a in &p.args {
                            script.push(' ');
                            script.push_str(a);
                        }
                        (vec!["/bin/sh".into(), "-c".into(), script], Vec::new(), false)
                    }
                };
                let working_dir = match p.working_dir.as_deref() {
                    None | Some("") => app_dir.to_string(),
                    Some(w) if w.starts_with('/') => w.to_string(),
                    Some(w) => format!("{app_dir}/{w}"),
                };
                Process {
                    kind: p.kind.clone(),
                    command,
                    args,
                    direct,
                    buildpack_id: buildpack_id.to_string(),
                    working_dir,
                }
            })
            .collect()
    }
}

/// The processes of the whole group and the default one: a later definition of a type
/// replaces an earlier one; the last `default = true` wins, and a later non-default
/// redefinition of the default type leaves no default.
#[derive(Debug, Clone, Default)]
pub struct ProcessList {
    pub processes: Vec<Process>,
    pub default: Option<String>,
}

impl ProcessList {
    pub fn add(&mut self, new: Vec<Process>, defaults: &[bool]) {
        for (p, is_default) in new.into_iter().zip(defaults.iter().copied().chain(std::iter::repeat(false))) {
            if is_default {
                self.default = Some(p.kind.clone());
            } else if self.default.as_deref() == Some(p.kind.as_str()) {
                self.default = None;
            }
            match self.processes.iter_mut().find(|x| x.kind == p.kind) {
                Some(slot) => *slot = p,
                None => self.processes.push(p),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const API12: Api = Api { major: 0, minor: 12 };

    #[test]
    fn reads_layers_and_renames_temporary_ones() {
        let d = tempfile::tempdir().unwrap();
        let w = |p: &str, c: &str| {
            let path = d.path().join(p);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, c).unwrap();
        };
        w("deps.toml", "[types]\nlaunch = true\ncache = true\n[metadata]\nhash = \"abc\"\n");
        w("deps/x", "");
        w("tmp.toml", "[types]\n");
        w("tmp/x", "");
        w("kept.toml", "[types]\nlaunch = true\n");
        w("stray/x", "");
        w(
            "launch.toml",
            "[[processes]]\ntype = \"web\"\ncommand = [\"srv\"]\nargs = [\"-p\"]\ndefault = true\nworking-dir = \"sub\"\n[[labels]]\nkey = \"k\"\nvalue = \"v\"\n[[slices]]\npaths = [\"static/*\"]\n",
        );
        w("build.toml", "[[unmet]]\nname = \"dep\"\n");
        w("store.toml", "[metadata]\nn = 1\n");
        let out = BuildOutput::read(d.path()).unwrap();
        let layers: Vec<(&str, LayerTypes, bool)> =
            out.layers.iter().map(|l| (l.name.as_str(), l.toml.types(), l.has_dir)).collect();
        assert_eq!(
            layers,
            [
                ("deps", LayerTypes { launch: true, build: false, cache: true }, true),
                ("kept", LayerTypes { launch: true, build: false, cache: false }, false),
                ("tmp", LayerTypes::default(), true),
            ]
        );
        assert!(d.path().join("tmp.ignore/x").exists() && !d.path().join("tmp").exists());
        assert_eq!(out.layers[0].toml.metadata["hash"].as_str(), Some("abc"));
        assert!(out.warnings.iter().any(|w| w.contains("stray")), "{:?}", out.warnings);
        assert_eq!(out.build.unmet, [Unmet { name: "dep".into() }]);
        assert_eq!(out.store.as_ref().unwrap()["n"].as_integer(), Some(1));
        assert_eq!(out.launch.labels[0].key, "k");
        assert_eq!(out.launch.slices[0].paths, ["static/*"]);
        let procs = out.processes("bp", API12, "/workspace");
        assert_eq!(procs[0].command, ["srv"]);
        assert_eq!(procs[0].args, ["-p"]);
        assert_eq!(procs[0].working_dir, "/workspace/sub");
    }

    #[test]
    fn rejects_bad_output() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("launch")).unwrap();
        assert!(BuildOutput::read(d.path()).unwrap_err().to_string().contains("may not be named"));
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("launch.toml"), "[[processes]]\ntype = \"a b\"\ncommand = [\"x\"]\n").unwrap();
        assert!(BuildOutput::read(d.path()).unwrap_err().to_string().contains("invalid process type"));
        std::fs::write(d.path().join("launch.toml"), "[[processes]]\ntype = ").unwrap();
        assert!(BuildOutput::read(d.path()).unwrap_err().to_string().contains("launch.toml"));
    }

    #[test]
    fn old_api_string_commands_run_in_a_shell() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("launch.toml"),
            "[[processes]]\ntype = \"web\"\ncommand = \"echo hi\"\nargs = [\"there\"]\n[[processes]]\ntype = \"d\"\ncommand = \"/bin/x\"\ndirect = true\n",
        )
        .unwrap();
        let api8 = Api { major: 0, minor: 8 };
        let out = BuildOutput::read(d.path()).unwrap();
        let p = out.processes("bp", api8, "/w");
        assert_eq!(p[0].command, ["/bin/sh", "-c", "echo hi there"]);
        assert!(!p[0].direct);
        assert_eq!(p[1].command, ["/bin/x"]);
    }

    #[test]
    fn later_definitions_win_and_defaults_follow() {
        let p = |kind: &str, bp: &str| Process {
            kind: kind.into(),
            command: vec![bp.into()],
            args: vec![],
            direct: true,
            buildpack_id: bp.into(),
            working_dir: "/w".into(),
        };
        let mut list = ProcessList::default();
        list.add(vec![p("web", "a"), p("worker", "a")], &[true, false]);
        assert_eq!(list.default.as_deref(), Some("web"));
        list.add(vec![p("worker", "b")], &[true]);
        assert_eq!(list.default.as_deref(), Some("worker"), "the last default wins");
        assert_eq!(list.processes.iter().map(|x| x.buildpack_id.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        list.add(vec![p("worker", "c")], &[false]);
        assert_eq!(list.default, None, "a non-default redefinition drops the default");
        assert!(valid_process_type("web.1_x-y") && !valid_process_type("a/b") && !valid_process_type(""));
    }
}
