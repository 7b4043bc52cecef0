//! `strata build --explain`: for every step, whether it came from the cache, and for a miss,
//! which input changed since the last build of the same step — the command, an environment
//! variable, the step before it, or exactly which copied files.
//!
//! How a miss is explained: each step has an identity that survives edits of its inputs (the
//! build's scope — the Dockerfile — plus the instruction's text and its occurrence), and the
//! store remembers the last cache key computed for each identity (`ROOT/cache/steps/`). On a
//! miss, the previous key's record holds the input document it was computed from; comparing it
//! field by field with the current one says what changed. For copies from the build context,
//! the file list behind each content digest is kept (`ROOT/cache/content/`), so the changed,
//! added and removed files can be named.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value as Json;
use sha2::{Digest as _, Sha256};
use strata_store::digest::{Digest, to_hex};

/// How many file names one explanation lists before summarizing.
const MAX_FILES_SHOWN: usize = 8;

/// What `--explain` remembers in the store.
#[derive(Debug, Clone)]
pub struct ExplainStore {
    steps: PathBuf,
    content: PathBuf,
}

impl ExplainStore {
    pub fn open(cache_dir: &Path) -> ExplainStore {
        ExplainStore { steps: cache_dir.join("steps"), content: cache_dir.join("content") }
    }

    /// The identity of a step: scope + the step's display name without its `[stage i/n]`
    /// prefix (which shifts when steps are added) + which occurrence of that text it is.
    pub fn identity(scope: &str, name: &str, occurrence: usize) -> String {
        let text = match name.find("] ") {
            Some(i) if name.starts_with('[') => &name[i + 2..],
            _ => name,
        };
        let stage = name.strip_prefix('[').and_then(|n| n.split_whitespace().next()).unwrap_or("");
        to_hex(&Sha256::digest(format!("{scope}\0{stage}\0{text}\0{occurrence}").as_bytes()))
    }

    /// The key the step had last time, if known.
    pub fn previous_key(&self, identity: &str) -> Option<Digest> {
        let text = std::fs::read_to_string(self.steps.join(identity)).ok()?;
        text.trim().parse().ok()
    }

    /// Remembers the step's key for the next build. Failures only cost explanations.
    pub fn remember_key(&self, identity: &str, key: &Digest) {
        let _ = std::fs::create_dir_all(&self.steps);
        let _ = strata_store::layout::write_atomically(&self.steps.join(identity), key.to_string().as_bytes());
    }

    /// Keeps the file list behind a context content digest (once per digest).
    pub fn remember_listing(&self, content_digest: &str, entries: &[(String, String)]) {
        let path = self.content.join(content_digest);
        if path.exists() {
            return;
        }
        let _ = std::fs::create_dir_all(&self.content);
        if let Ok(data) = serde_json::to_vec(entries) {
            let _ = strata_store::layout::write_atomically(&path, &data);
        }
    }

    fn listing(&self, content_digest: &str) -> Option<BTreeMap<String, String>> {
        let data = std::fs::read(self.content.join(content_digest)).ok()?;
        let rows: Vec<(String, String)> = serde_json::from_slice(&data).ok()?;
        Some(rows.into_iter().collect())
    }

    /// Why a step's inputs `now` differ from `before` (the documents its keys were made of).
    /// `parent` names the step before it, for "the step before it changed".
    pub fn reasons(&self, before: &Json, now: &Json, parent: &str) -> Vec<String> {
        let mut out = Vec::new();
        let (Some(b), Some(n)) = (before.as_object(), now.as_object()) else {
            return vec!["the step's definition changed".to_string()];
        };
        let keys: std::collections::BTreeSet<&String> = b.keys().chain(n.keys()).collect();
        for k in keys {
            let (bv, nv) = (b.get(k).unwrap_or(&Json::Null), n.get(k).unwrap_or(&Json::Null));
            if bv == nv {
                continue;
            }
            match k.as_str() {
                "root" => out.push(format!("the step before it changed ({parent})")),
                "env" => out.extend(env_changes(bv, nv)),
                "actions" => out.extend(self.action_changes(bv, nv)),
                "args" => out.push(format!("the command changed: {} → {}", words(bv), words(nv))),
                other => out.push(format!("{other} changed: {} → {}", short(bv), short(nv))),
            }
        }
        if out.is_empty() {
            out.push("no earlier result is in the cache (first build, --no-cache, or pruned)".to_string());
        }
        out
    }

    fn action_changes(&self, before: &Json, now: &Json) -> Vec<String> {
        let (Some(b), Some(n)) = (before.as_array(), now.as_array()) else {
            return vec!["the file operations changed".into()];
        };
        if b.len() != n.len() {
            return vec![format!("the number of file operations changed ({} → {})", b.len(), n.len())];
        }
        let mut out = Vec::new();
        for (ba, na) in b.iter().zip(n) {
            if ba == na {
                continue;
            }
            let content = |v: &Json| v.get("content").and_then(Json::as_str).map(str::to_string);
            match (content(ba), content(na)) {
                (Some(old), Some(new)) if old != new => out.push(self.files_changed(&old, &new)),
                _ => {}
            }
            if ba.get("source") != na.get("source") {
                out.push("the stage or image it copies from changed".to_string());
            }
            let strip = |v: &Json| {
                let mut v = v.clone();
                if let Some(o) = v.as_object_mut() {
                    o.remove("content");
                    o.remove("source");
                }
                v
            };
            if strip(ba) != strip(na) {
                out.push(format!("the file operation changed: {} → {}", short(&strip(ba)), short(&strip(na))));
            }
        }
        out
    }

    fn files_changed(&self, old: &str, new: &str) -> String {
        let (Some(before), Some(now)) = (self.listing(old), self.listing(new)) else {
            return "the copied files changed".to_string();
        };
        let mut changed = Vec::new();
        for (name, d) in &now {
            match before.get(name) {
                None => changed.push(format!("+{name}")),
                Some(o) if o != d => changed.push(format!("~{name}")),
                _ => {}
            }
        }
        changed.extend(before.keys().filter(|k| !now.contains_key(*k)).map(|k| format!("-{k}")));
        let total = changed.len();
        changed.truncate(MAX_FILES_SHOWN);
        let more =
            if total > MAX_FILES_SHOWN { format!(" and {} more", total - MAX_FILES_SHOWN) } else { String::new() };
        format!("copied files changed: {}{more}", changed.join(" "))
    }
}

fn env_changes(before: &Json, now: &Json) -> Vec<String> {
    let to_map = |v: &Json| -> BTreeMap<String, String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(Json::as_str)
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                (k.to_string(), v.to_string())
            })
            .collect()
    };
    let (b, n) = (to_map(before), to_map(now));
    let mut out = Vec::new();
    for (k, v) in &n {
        match b.get(k) {
            None => out.push(format!("env {k}={v} was added")),
            Some(old) if old != v => out.push(format!("env {k} changed: {old} → {v}")),
            _ => {}
        }
    }
    out.extend(b.keys().filter(|k| !n.contains_key(*k)).map(|k| format!("env {k} was removed")));
    out
}

fn words(v: &Json) -> String {
    match v.as_array() {
        Some(a) => a.iter().filter_map(Json::as_str).collect::<Vec<_>>().join(" "),
        None => short(v),
    }
}

fn short(v: &Json) -> String {
    let s = v.to_string();
    if s.chars().count() > 120 { format!("{}…", s.chars().take(120).collect::<String>()) } else { s }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn identities_ignore_the_step_number_but_not_the_stage_or_text() {
        let a = ExplainStore::identity("/p/Dockerfile", "[build 2/4] RUN make", 0);
        assert_eq!(a, ExplainStore::identity("/p/Dockerfile", "[build 3/5] RUN make", 0));
        assert_ne!(a, ExplainStore::identity("/p/Dockerfile", "[test 3/5] RUN make", 0));
        assert_ne!(a, ExplainStore::identity("/p/Dockerfile", "[build 2/4] RUN make all", 0));
        assert_ne!(a, ExplainStore::identity("/other/Dockerfile", "[build 2/4] RUN make", 0));
        assert_ne!(a, ExplainStore::identity("/p/Dockerfile", "[build 2/4] RUN make", 1));
    }

    #[test]
    fn reasons_name_what_changed() {
        let dir = tempfile::tempdir().unwrap();
        let x = ExplainStore::open(dir.path());
        let before =
            json!({"kind": "exec", "root": "r1", "args": ["sh", "-c", "make"], "env": ["A=1", "B=2"], "cwd": "/"});
        let now = json!({"kind": "exec", "root": "r2", "args": ["sh", "-c", "make all"], "env": ["A=1", "B=3", "C=4"], "cwd": "/"});
        let r = x.reasons(&before, &now, "[build 1/2] COPY . .");
        assert!(r.contains(&"the step before it changed ([build 1/2] COPY . .)".to_string()), "{r:?}");
        assert!(r.contains(&"the command changed: sh -c make → sh -c make all".to_string()), "{r:?}");
        assert!(r.contains(&"env B changed: 2 → 3".to_string()), "{r:?}");
        assert!(r.contains(&"env C=4 was added".to_string()), "{r:?}");

        x.remember_listing("c1", &[("/src/a.txt".into(), "1".into()), ("/src/b.txt".into(), "2".into())]);
        x.remember_listing("c2", &[("/src/a.txt".into(), "9".into()), ("/src/c.txt".into(), "3".into())]);
        let before = json!({"kind": "file", "root": "r", "actions": [{"copy": {"dest": "/app"}, "source": "s", "content": "c1"}]});
        let now = json!({"kind": "file", "root": "r", "actions": [{"copy": {"dest": "/app"}, "source": "s", "content": "c2"}]});
        let r = x.reasons(&before, &now, "");
        assert_eq!(r, ["copied files changed: ~/src/a.txt +/src/c.txt -/src/b.txt"]);
    }

    #[test]
    fn keys_are_remembered_per_identity() {
        let dir = tempfile::tempdir().unwrap();
        let x = ExplainStore::open(dir.path());
        let id = ExplainStore::identity("s", "[1/1] RUN true", 0);
        assert_eq!(x.previous_key(&id), None);
        let k = Digest::of(b"key");
        x.remember_key(&id, &k);
        assert_eq!(x.previous_key(&id), Some(k));
    }
}
