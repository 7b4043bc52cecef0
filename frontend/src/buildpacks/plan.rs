//! The build plan: what `bin/detect` says a buildpack provides and requires, and the choice of
//! a consistent combination for a group (Buildpack API spec, "Phase #1: Detection").
//!
//! Each passing buildpack offers one or more plan sections (the top-level `provides`/`requires`
//! and each `[[or]]` alternative). A trial picks one section per buildpack, depth-first and left
//! to right (the first buildpack's choice varies slowest); an optional buildpack may also be
//! left out, which is tried after its sections. A trial holds when every `requires` is met by a
//! `provides` of the same or an earlier buildpack and every `provides` is required by the same
//! or a later one. The first trial that holds gives the group and the plan.
//!
//! The resolved plan lists, per dependency name, the buildpacks that provide it and the
//! requirements on it, as the lifecycle's `plan.toml`; [`BuildpackPlans`] then hands each
//! requirement to its first provider, and to the next provider when one reports it unmet in
//! `build.toml`.

use serde::{Deserialize, Serialize};

/// `[[provides]]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Provide {
    pub name: String,
}

/// `[[requires]]` (the deprecated `version` key is moved into `metadata.version`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Require {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default)]
    pub metadata: toml::Table,
}

/// One `provides`/`requires` pairing.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct PlanSection {
    #[serde(default)]
    pub provides: Vec<Provide>,
    #[serde(default)]
    pub requires: Vec<Require>,
}

/// What `bin/detect` wrote to `$CNB_BUILD_PLAN_PATH`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct DetectPlan {
    #[serde(flatten)]
    pub main: PlanSection,
    #[serde(default)]
    pub or: Vec<PlanSection>,
}

impl DetectPlan {
    /// Parses a plan file (an empty file is an empty plan).
    pub fn parse(text: &str) -> Result<DetectPlan, String> {
        let mut plan: DetectPlan = toml::from_str(text).map_err(|e| super::descriptor::toml_error(&e))?;
        for s in std::iter::once(&mut plan.main).chain(plan.or.iter_mut()) {
            for r in &mut s.requires {
                if let Some(v) = r.version.take() {
                    r.metadata.entry("version").or_insert(toml::Value::String(v));
                }
            }
        }
        Ok(plan)
    }

    fn sections(&self) -> impl Iterator<Item = &PlanSection> {
        std::iter::once(&self.main).chain(self.or.iter())
    }
}

/// A buildpack that passed detection, with its plan.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// `id@version`.
    pub key: String,
    pub optional: bool,
    pub plan: DetectPlan,
}

/// The lifecycle's `plan.toml` entry: who provides a dependency and what is required of it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanEntry {
    pub providers: Vec<String>,
    pub requires: Vec<Require>,
}

/// A group's resolution: which candidates build (indexes, in order) and the plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolution {
    pub members: Vec<usize>,
    /// Per dependency name, in order of first appearance.
    pub entries: Vec<(String, PlanEntry)>,
}

/// Trials stop after this many (a plan this ambiguous is a buildpack bug, not a use case).
const MAX_TRIALS: usize = 100_000;

/// The first trial of `candidates` that holds, if any.
pub fn resolve(candidates: &[Candidate]) -> Option<Resolution> {
    let mut choice: Vec<Option<&PlanSection>> = Vec::with_capacity(candidates.len());
    let mut trials = 0;
    search(candidates, &mut choice, &mut trials)
}

fn search<'a>(
    candidates: &'a [Candidate],
    choice: &mut Vec<Option<&'a PlanSection>>,
    trials: &mut usize,
) -> Option<Resolution> {
    if choice.len() == candidates.len() {
        *trials += 1;
        return check(candidates, choice);
    }
    let c = &candidates[choice.len()];
    let options: Vec<Option<&PlanSection>> = c.plan.sections().map(Some).chain(c.optional.then_some(None)).collect();
    for o in options {
        if *trials >= MAX_TRIALS {
            return None;
        }
        choice.push(o);
        let found = search(candidates, choice, trials);
        choice.pop();
        if found.is_some() {
            return found;
        }
    }
    None
}

fn check(candidates: &[Candidate], choice: &[Option<&PlanSection>]) -> Option<Resolution> {
    let included: Vec<(usize, &PlanSection)> =
        choice.iter().enumerate().filter_map(|(i, s)| s.map(|s| (i, s))).collect();
    if included.is_empty() {
        return None;
    }
    for (pos, (_, section)) in included.iter().enumerate() {
        let met = |name: &str| included[..=pos].iter().any(|(_, s)| s.provides.iter().any(|p| p.name == name));
        let wanted = |name: &str| included[pos..].iter().any(|(_, s)| s.requires.iter().any(|r| r.name == name));
        if !section.requires.iter().all(|r| met(&r.name)) || !section.provides.iter().all(|p| wanted(&p.name)) {
            return None;
        }
    }
    let mut entries: Vec<(String, PlanEntry)> = Vec::new();
    for (i, section) in &included {
        let key = &candidates[*i].key;
        for p in &section.provides {
            let e = entry(&mut entries, &p.name);
            if !e.providers.contains(key) {
                e.providers.push(key.clone());
            }
        }
        for r in &section.requires {
            entry(&mut entries, &r.name).requires.push(r.clone());
        }
    }
    Some(Resolution { members: included.iter().map(|(i, _)| *i).collect(), entries })
}

fn entry<'a>(entries: &'a mut Vec<(String, PlanEntry)>, name: &str) -> &'a mut PlanEntry {
    let pos = match entries.iter().position(|(n, _)| n == name) {
        Some(p) => p,
        None => {
            entries.push((name.to_string(), PlanEntry { providers: Vec::new(), requires: Vec::new() }));
            entries.len() - 1
        }
    };
    &mut entries[pos].1
}

/// The lifecycle's `plan.toml` text for a resolution.
pub fn plan_toml(entries: &[(String, PlanEntry)]) -> String {
    #[derive(Serialize)]
    struct Provider<'a> {
        id: &'a str,
        version: &'a str,
    }
    #[derive(Serialize)]
    struct Entry<'a> {
        providers: Vec<Provider<'a>>,
        requires: &'a [Require],
    }
    #[derive(Serialize)]
    struct Plan<'a> {
        entries: Vec<Entry<'a>>,
    }
    let plan = Plan {
        entries: entries
            .iter()
            .map(|(_, e)| Entry {
                providers: e
                    .providers
                    .iter()
                    .map(|k| {
                        let (id, version) = k.rsplit_once('@').unwrap_or((k, ""));
                        Provider { id, version }
                    })
                    .collect(),
                requires: &e.requires,
            })
            .collect(),
    };
    toml::to_string(&plan).unwrap_or_default()
}

/// Hands plan entries to buildpacks during the build phase.
#[derive(Debug, Clone)]
pub struct BuildpackPlans {
    /// Per entry: its name, providers, requirements and the index of the provider it is with.
    entries: Vec<(String, PlanEntry, usize)>,
}

/// `[[entries]] name/metadata` of a buildpack plan (`$CNB_BP_PLAN_PATH`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuildpackPlanEntry {
    pub name: String,
    #[serde(default)]
    pub metadata: toml::Table,
}

impl BuildpackPlans {
    pub fn new(entries: &[(String, PlanEntry)]) -> BuildpackPlans {
        BuildpackPlans { entries: entries.iter().map(|(n, e)| (n.clone(), e.clone(), 0)).collect() }
    }

    /// The entries `key` is to meet now.
    pub fn for_buildpack(&self, key: &str) -> Vec<BuildpackPlanEntry> {
        self.entries
            .iter()
            .filter(|(_, e, at)| e.providers.get(*at).is_some_and(|p| p == key))
            .flat_map(|(name, e, _)| {
                e.requires.iter().map(|r| BuildpackPlanEntry { name: name.clone(), metadata: r.metadata.clone() })
            })
            .collect()
    }

    /// After `key` built: entries it left unmet go to their next provider, the others are done.
    pub fn finished(&mut self, key: &str, unmet: &[String]) {
        for (name, e, at) in &mut self.entries {
            if e.providers.get(*at).is_some_and(|p| p == key) {
                *at = if unmet.contains(name) { *at + 1 } else { usize::MAX };
            }
        }
    }

    /// The plan file text for `key`.
    pub fn toml_for(&self, key: &str) -> String {
        #[derive(Serialize)]
        struct Plan {
            entries: Vec<BuildpackPlanEntry>,
        }
        toml::to_string(&Plan { entries: self.for_buildpack(key) }).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(key: &str, optional: bool, plan: &str) -> Candidate {
        Candidate { key: key.into(), optional, plan: DetectPlan::parse(plan).unwrap() }
    }

    fn members(r: &Option<Resolution>) -> Vec<usize> {
        r.as_ref().map(|r| r.members.clone()).unwrap_or_default()
    }

    #[test]
    fn requires_need_earlier_providers_and_provides_later_requirers() {
        let node = cand("node@1", false, "[[provides]]\nname = \"node\"\n");
        let app = cand("app@1", false, "[[requires]]\nname = \"node\"\n[requires.metadata]\nv = \"20\"\n");
        let r = resolve(&[node.clone(), app.clone()]);
        assert_eq!(members(&r), [0, 1]);
        let r = r.unwrap();
        assert_eq!(r.entries.len(), 1);
        assert_eq!(r.entries[0].1.providers, ["node@1"]);
        // Reversed: the requirement comes before its provider.
        assert!(resolve(&[app.clone(), node.clone()]).is_none());
        // Provided but never required.
        assert!(resolve(std::slice::from_ref(&node)).is_none());
        // Nothing at all is a valid (empty) plan.
        assert_eq!(members(&resolve(&[cand("x@1", false, "")])), [0]);
    }

    #[test]
    fn or_alternatives_and_optional_buildpacks() {
        // `a` provides x only in its second alternative, which `b` needs.
        let a = cand(
            "a@1",
            false,
            "[[provides]]\nname = \"y\"\n[[requires]]\nname = \"y\"\n[[or]]\n[[or.provides]]\nname = \"x\"\n",
        );
        let b = cand("b@1", false, "[[requires]]\nname = \"x\"\n");
        let r = resolve(&[a, b]).unwrap();
        assert_eq!(r.members, [0, 1]);
        assert_eq!(r.entries.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["x"]);
        // An optional buildpack whose provision nobody needs is left out; the group still holds.
        let opt = cand("opt@1", true, "[[provides]]\nname = \"z\"\n");
        let c = cand("c@1", false, "");
        assert_eq!(members(&resolve(&[opt.clone(), c.clone()])), [1]);
        // A required one in the same situation fails the group.
        let req = cand("req@1", false, "[[provides]]\nname = \"z\"\n");
        assert!(resolve(&[req, c]).is_none());
        // Only optional ones, all left out: no group.
        assert!(resolve(&[opt]).is_none());
    }

    #[test]
    fn deprecated_version_moves_into_metadata_and_plan_toml_lists_providers() {
        let p = cand("p/x@1.0.0", false, "[[provides]]\nname = \"dep\"\n");
        let q = cand("q@2", false, "[[requires]]\nname = \"dep\"\nversion = \"3\"\n");
        let r = resolve(&[p, q]).unwrap();
        let text = plan_toml(&r.entries);
        let v: toml::Table = toml::from_str(&text).unwrap();
        let e = &v["entries"].as_array().unwrap()[0];
        assert_eq!(e["providers"][0]["id"].as_str(), Some("p/x"));
        assert_eq!(e["providers"][0]["version"].as_str(), Some("1.0.0"));
        assert_eq!(e["requires"][0]["metadata"]["version"].as_str(), Some("3"));
    }

    #[test]
    fn unmet_entries_move_to_the_next_provider() {
        let entries = vec![(
            "dep".to_string(),
            PlanEntry {
                providers: vec!["a@1".into(), "b@1".into()],
                requires: vec![Require { name: "dep".into(), version: None, metadata: toml::Table::new() }],
            },
        )];
        let mut plans = BuildpackPlans::new(&entries);
        assert_eq!(plans.for_buildpack("a@1").len(), 1);
        assert!(plans.for_buildpack("b@1").is_empty(), "the first provider gets it first");
        plans.finished("a@1", &["dep".into()]);
        assert_eq!(plans.for_buildpack("b@1").len(), 1, "unmet: on to the next provider");
        plans.finished("b@1", &[]);
        assert!(plans.for_buildpack("b@1").is_empty());
        let mut met = BuildpackPlans::new(&entries);
        met.finished("a@1", &[]);
        assert!(met.for_buildpack("b@1").is_empty(), "met entries are not passed on");
        assert!(plans.toml_for("a@1").is_empty() || !plans.toml_for("a@1").contains("dep"));
    }

    #[test]
    fn malformed_plans_are_errors() {
        assert!(DetectPlan::parse("[[requires]]\n").is_err(), "requires without a name");
        assert!(DetectPlan::parse("provides = 3").is_err());
        assert_eq!(DetectPlan::parse("").unwrap(), DetectPlan::default());
    }
}
