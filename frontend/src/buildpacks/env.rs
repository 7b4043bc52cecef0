//! Environment variables buildpacks set through files (Buildpack API spec, "Provided by the
//! Buildpacks"), and the layer path variables (`bin/` → `PATH`, `lib/` → `LD_LIBRARY_PATH`, …).
//!
//! A file in `<layer>/env/`, `env.build/`, `env.launch/` or `env.launch/<process>/` names a
//! variable up to its first `.`; the suffix says how its content (taken verbatim) changes the
//! variable: none or `.override` replaces, `.default` sets it only when unset or empty,
//! `.append`/`.prepend` join it after/before the current value with the delimiter from
//! `NAME.delim` in the same directory (none if absent).
//!
//! The spec orders these per operation (later buildpacks override and prepend over earlier
//! ones, earlier defaults win, within a layer `env/` before `env.build/`/`env.launch/` before
//! `env.launch/<process>/`, …). Applying every file in one pass — buildpacks in group order,
//! layers alphabetically, then those directories in that order — gives exactly these results,
//! so both the build phase ([`Env::apply`]) and the launcher script ([`shell_ops`]) do that.

use std::collections::BTreeMap;
use std::path::Path;

/// How a file changes its variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Modifier {
    Override,
    Default,
    Append,
    Prepend,
}

/// One variable change read from an env directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvOp {
    pub name: String,
    pub modifier: Modifier,
    pub value: String,
    pub delim: String,
}

/// The changes an env directory makes, by file name order. A missing directory makes none.
/// Files with an unknown suffix and names that are not valid variable names are reported in
/// `warnings` and skipped.
pub fn read_env_dir(dir: &Path, warnings: &mut Vec<String>) -> std::io::Result<Vec<EnvOp>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut files: Vec<(String, std::path::PathBuf)> = Vec::new();
    for e in entries {
        let e = e?;
        // Only regular files (a following symlink to one is fine); subdirectories are
        // process-specific directories, read separately.
        if !e.path().is_file() {
            continue;
        }
        files.push((e.file_name().to_string_lossy().into_owned(), e.path()));
    }
    files.sort();
    let mut delims: BTreeMap<String, String> = BTreeMap::new();
    for (name, path) in &files {
        if let Some(var) = name.strip_suffix(".delim") {
            delims.insert(var.to_string(), std::fs::read_to_string(path)?);
        }
    }
    let mut ops = Vec::new();
    for (name, path) in &files {
        let (var, suffix) = name.split_once('.').unwrap_or((name, ""));
        let modifier = match suffix {
            "" | "override" => Modifier::Override,
            "default" => Modifier::Default,
            "append" => Modifier::Append,
            "prepend" => Modifier::Prepend,
            "delim" => continue,
            other => {
                warnings.push(format!("{}: unknown env file suffix .{other}, ignored", path.display()));
                continue;
            }
        };
        if !valid_name(var) {
            warnings.push(format!("{}: {var:?} is not a variable name, ignored", path.display()));
            continue;
        }
        let value = String::from_utf8_lossy(&std::fs::read(path)?).into_owned();
        ops.push(EnvOp { name: var.to_string(), modifier, value, delim: delims.get(var).cloned().unwrap_or_default() });
    }
    Ok(ops)
}

/// `[A-Za-z_][A-Za-z0-9_]*`: names a shell can set.
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The layer path variables: which subdirectory of a layer goes on which variable, for the
/// build phase and for launch.
pub const BUILD_PATHS: &[(&str, &str)] = &[
    ("bin", "PATH"),
    ("lib", "LD_LIBRARY_PATH"),
    ("lib", "LIBRARY_PATH"),
    ("include", "CPATH"),
    ("pkgconfig", "PKG_CONFIG_PATH"),
];
pub const LAUNCH_PATHS: &[(&str, &str)] = &[("bin", "PATH"), ("lib", "LD_LIBRARY_PATH")];

/// The path-variable changes for a buildpack's layers (`layers`: (host dir, path inside the
/// sandbox), alphabetical): each variable gets the layers' directories that exist, in that order,
/// in front of its value.
pub fn path_ops(layers: &[(std::path::PathBuf, String)], table: &[(&str, &str)]) -> Vec<EnvOp> {
    let mut ops = Vec::new();
    for (sub, var) in table {
        let dirs: Vec<String> = layers
            .iter()
            .filter(|(host, _)| host.join(sub).is_dir())
            .map(|(_, inside)| format!("{inside}/{sub}"))
            .collect();
        if !dirs.is_empty() {
            ops.push(EnvOp {
                name: var.to_string(),
                modifier: Modifier::Prepend,
                value: dirs.join(":"),
                delim: ":".into(),
            });
        }
    }
    ops
}

/// An ordered environment (`NAME=value` list semantics, names unique).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Env {
    vars: Vec<(String, String)>,
}

impl Env {
    /// From `NAME=value` entries (later duplicates win).
    pub fn from_list(list: &[String]) -> Env {
        let mut env = Env::default();
        for kv in list {
            let (k, v) = kv.split_once('=').unwrap_or((kv.as_str(), ""));
            env.set(k, v);
        }
        env
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub fn set(&mut self, name: &str, value: &str) {
        match self.vars.iter_mut().find(|(k, _)| k == name) {
            Some(slot) => slot.1 = value.to_string(),
            None => self.vars.push((name.to_string(), value.to_string())),
        }
    }

    pub fn remove(&mut self, name: &str) {
        self.vars.retain(|(k, _)| k != name);
    }

    /// Applies one change.
    pub fn apply(&mut self, op: &EnvOp) {
        let current = self.get(&op.name).unwrap_or("").to_string();
        let value = match op.modifier {
            Modifier::Override => op.value.clone(),
            Modifier::Default if current.is_empty() => op.value.clone(),
            Modifier::Default => return,
            Modifier::Append if current.is_empty() => op.value.clone(),
            Modifier::Append => format!("{current}{}{}", op.delim, op.value),
            Modifier::Prepend if current.is_empty() => op.value.clone(),
            Modifier::Prepend => format!("{}{}{current}", op.value, op.delim),
        };
        self.set(&op.name, &value);
    }

    pub fn to_list(&self) -> Vec<String> {
        self.vars.iter().map(|(k, v)| format!("{k}={v}")).collect()
    }
}

/// `s` as one single-quoted shell word.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Shell statements making the changes `ops`, evaluated against the environment the container
/// starts with (so `-e` values and the image's `Env` take part as they should).
pub fn shell_ops(ops: &[EnvOp]) -> String {
    let mut out = String::new();
    for op in ops {
        let (n, v, d) = (&op.name, shell_quote(&op.value), shell_quote(&op.delim));
        let line = match op.modifier {
            Modifier::Override => format!("{n}={v}; export {n}\n"),
            Modifier::Default => format!("if [ -z \"${{{n}:-}}\" ]; then {n}={v}; export {n}; fi\n"),
            Modifier::Append => {
                format!("if [ -n \"${{{n}:-}}\" ]; then {n}=\"${n}\"{d}{v}; else {n}={v}; fi; export {n}\n")
            }
            Modifier::Prepend => {
                format!("if [ -n \"${{{n}:-}}\" ]; then {n}={v}{d}\"${n}\"; else {n}={v}; fi; export {n}\n")
            }
        };
        out.push_str(&line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn op(name: &str, m: Modifier, v: &str, d: &str) -> EnvOp {
        EnvOp { name: name.into(), modifier: m, value: v.into(), delim: d.into() }
    }

    #[test]
    fn reads_suffixes_and_delimiters() {
        let d = tempfile::tempdir().unwrap();
        for (f, c) in [
            ("A", "plain"),
            ("B.override", "over"),
            ("C.default", "def"),
            ("D.append", "app"),
            ("D.delim", ","),
            ("E.prepend", "pre"),
            ("F.weird", "x"),
            ("bad-name", "x"),
            ("G", " spaced \n"),
        ] {
            std::fs::write(d.path().join(f), c).unwrap();
        }
        std::fs::create_dir(d.path().join("web")).unwrap();
        let mut warnings = Vec::new();
        let ops = read_env_dir(d.path(), &mut warnings).unwrap();
        assert_eq!(
            ops,
            [
                op("A", Modifier::Override, "plain", ""),
                op("B", Modifier::Override, "over", ""),
                op("C", Modifier::Default, "def", ""),
                op("D", Modifier::Append, "app", ","),
                op("E", Modifier::Prepend, "pre", ""),
                op("G", Modifier::Override, " spaced \n", ""),
            ]
        );
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(read_env_dir(&d.path().join("missing"), &mut warnings).unwrap().is_empty());
    }

    #[test]
    fn one_pass_gives_the_spec_orders() {
        // Two buildpacks' layers, in group order.
        let ops = [
            op("O", Modifier::Override, "first", ""),
            op("DEF", Modifier::Default, "first", ""),
            op("APP", Modifier::Append, "first", ":"),
            op("PRE", Modifier::Prepend, "first", ":"),
            op("O", Modifier::Override, "second", ""),
            op("DEF", Modifier::Default, "second", ""),
            op("APP", Modifier::Append, "second", ":"),
            op("PRE", Modifier::Prepend, "second", ":"),
            op("NODELIM", Modifier::Append, "x", ""),
        ];
        let mut env = Env::from_list(&["APP=base".into(), "PRE=base".into(), "NODELIM=y".into()]);
        for o in &ops {
            env.apply(o);
        }
        assert_eq!(env.get("O"), Some("second"), "later buildpacks override");
        assert_eq!(env.get("DEF"), Some("first"), "earlier defaults win");
        assert_eq!(env.get("APP"), Some("base:first:second"));
        assert_eq!(env.get("PRE"), Some("second:first:base"), "later buildpacks come first");
        assert_eq!(env.get("NODELIM"), Some("yx"), "no delimiter file: plain concatenation");

        // The shell version computes the same values, quoting included.
        let mut tricky = ops.to_vec();
        tricky.push(op("Q", Modifier::Override, "it's $HOME `x` \"q\"", ""));
        let script = format!(
            "APP=base; PRE=base; NODELIM=y; export APP PRE NODELIM\n{}printf '%s|' \"$O\" \"$DEF\" \"$APP\" \"$PRE\" \"$NODELIM\" \"$Q\"",
            shell_ops(&tricky)
        );
        let out = Command::new("sh").arg("-c").arg(&script).env_clear().output().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "second|first|base:first:second|second:first:base|yx|it's $HOME `x` \"q\"|"
        );
    }

    #[test]
    fn default_applies_to_empty_values() {
        let mut env = Env::from_list(&["E=".into()]);
        env.apply(&op("E", Modifier::Default, "set", ""));
        assert_eq!(env.get("E"), Some("set"));
    }

    #[test]
    fn path_ops_list_existing_dirs_in_order() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("a/bin")).unwrap();
        std::fs::create_dir_all(d.path().join("b/bin")).unwrap();
        std::fs::create_dir_all(d.path().join("b/lib")).unwrap();
        let layers =
            vec![(d.path().join("a"), "/layers/x/a".to_string()), (d.path().join("b"), "/layers/x/b".to_string())];
        let ops = path_ops(&layers, LAUNCH_PATHS);
        assert_eq!(
            ops,
            [
                op("PATH", Modifier::Prepend, "/layers/x/a/bin:/layers/x/b/bin", ":"),
                op("LD_LIBRARY_PATH", Modifier::Prepend, "/layers/x/b/lib", ":"),
            ]
        );
        assert!(valid_name("_A1") && !valid_name("1A") && !valid_name("A-B") && !valid_name(""));
    }
}
