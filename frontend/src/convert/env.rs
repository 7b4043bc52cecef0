//! Variable scopes of the translation: the ordered environment of a stage and the global
//! (pre-FROM) arguments.
//!
//! BuildKit keeps one environment per stage in its LLB state: the base image's `Env`, then every
//! `ENV` and every `ARG` that has a value, each replacing an earlier definition of the same name
//! in place. That one list is what `$VAR` in instructions expands against and what RUN
//! processes get; the image config's `Env` only ever receives `ENV` (see `dispatchEnv` and
//! `dispatchArg` in BuildKit's dockerfile2llb).

use strata_store::oci::Platform;

use crate::shell::EnvLookup;

/// An ordered list of `NAME=value` with replace-in-place semantics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvList {
    vars: Vec<(String, String)>,
}

impl EnvList {
    /// From `NAME=value` strings (an image config's `Env`); a string without `=` is a name
    /// with an empty value, as Docker reads it.
    pub fn from_config(env: &[String]) -> EnvList {
        let mut list = EnvList::default();
        for kv in env {
            let (k, v) = kv.split_once('=').unwrap_or((kv.as_str(), ""));
            list.set(k, v);
        }
        list
    }

    pub fn set(&mut self, name: &str, value: &str) {
        match self.vars.iter_mut().find(|(k, _)| k == name) {
            Some(slot) => slot.1 = value.to_string(),
            None => self.vars.push((name.to_string(), value.to_string())),
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// `NAME=value` strings, in definition order.
    pub fn to_strings(&self) -> Vec<String> {
        self.vars.iter().map(|(k, v)| format!("{k}={v}")).collect()
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.vars.iter().map(|(k, _)| k.as_str())
    }
}

impl EnvLookup for EnvList {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.get(name)
    }
}

/// BuildKit's automatic platform arguments: usable in `FROM` lines, and inside a stage once
/// declared with a bare `ARG NAME`.
pub fn platform_args(target: &Platform, build: &Platform) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (prefix, p) in [("TARGET", target), ("BUILD", build)] {
        out.push((format!("{prefix}PLATFORM"), p.to_spec()));
        out.push((format!("{prefix}OS"), p.os.clone()));
        out.push((format!("{prefix}ARCH"), p.architecture.clone()));
        out.push((format!("{prefix}VARIANT"), p.variant.clone().unwrap_or_default()));
    }
    out
}

/// The build arguments Docker predefines: usable without `ARG`, passed to RUN steps, and never
/// written to the image history (they often hold credentials).
pub const PROXY_ARGS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_definitions_replace_in_place() {
        let mut e = EnvList::from_config(&["PATH=/bin".into(), "A=1".into(), "EMPTY".into()]);
        e.set("PATH", "/usr/bin");
        e.set("B", "2");
        assert_eq!(e.to_strings(), ["PATH=/usr/bin", "A=1", "EMPTY=", "B=2"]);
        assert_eq!(e.lookup("A"), Some("1"));
        assert_eq!(e.lookup("C"), None);
    }

    #[test]
    fn platform_args_of_amd64() {
        let p = Platform {
            architecture: "amd64".into(),
            os: "linux".into(),
            os_version: None,
            os_features: None,
            variant: None,
        };
        let args = platform_args(&p, &p);
        assert!(args.contains(&("TARGETPLATFORM".into(), "linux/amd64".into())));
        assert!(args.contains(&("BUILDARCH".into(), "amd64".into())));
        assert!(args.contains(&("TARGETVARIANT".into(), String::new())));
    }
}
