//! Order resolution: turning an order (groups of buildpack references, possibly naming
//! composite buildpacks with orders of their own) into flat groups of executable buildpacks.
//!
//! Buildpack API spec, "Order Resolution": references expand depth-first, left to right; a group
//! containing a composite buildpack becomes one group per group of the composite's order (the
//! cartesian product when there are several). A composite referenced with `optional = true`
//! makes its members optional. A buildpack that appears twice in one expanded group is kept
//! once, at its first place (as the lifecycle does).
//!
//! The spec's "a group with an optional entry is repeated without it" needs no copy here: the
//! detect phase drops optional buildpacks that fail, and plan resolution ([`super::plan`])
//! tries every group with and without each optional buildpack.

use super::descriptor::{DescriptorError, GroupRef, OrderGroup, Registry};

/// One buildpack of an expanded group: an index into [`Registry::buildpacks`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    pub bp: usize,
    pub optional: bool,
}

/// Composite buildpacks nested deeper than this are taken for a cycle.
const MAX_DEPTH: usize = 16;

/// Every group `order` stands for, in the order they are to be tried.
pub fn expand(order: &[OrderGroup], registry: &Registry) -> Result<Vec<Vec<Member>>, DescriptorError> {
    expand_order(order, registry, 0)
}

fn expand_order(order: &[OrderGroup], registry: &Registry, depth: usize) -> Result<Vec<Vec<Member>>, DescriptorError> {
    let mut out = Vec::new();
    for g in order {
        out.extend(expand_group(&g.group, registry, depth)?);
    }
    Ok(out)
}

fn expand_group(group: &[GroupRef], registry: &Registry, depth: usize) -> Result<Vec<Vec<Member>>, DescriptorError> {
    let mut acc: Vec<Vec<Member>> = vec![Vec::new()];
    for r in group {
        let found = registry.find(&r.id, r.version.as_deref())?;
        if depth > MAX_DEPTH {
            return Err(DescriptorError::TooDeep(found.key()));
        }
        let index = registry.buildpacks.iter().position(|b| b.key() == found.key()).unwrap_or_default();
        let alternatives: Vec<Vec<Member>> = if found.is_composite() {
            expand_order(&found.descriptor.order, registry, depth + 1)?
                .into_iter()
                .map(|g| g.into_iter().map(|m| Member { optional: m.optional || r.optional, ..m }).collect())
                .collect()
        } else {
            vec![vec![Member { bp: index, optional: r.optional }]]
        };
        acc = acc
            .iter()
            .flat_map(|prefix| {
                alternatives.iter().map(move |alt| {
                    let mut g = prefix.clone();
                    for m in alt {
                        if !g.iter().any(|x| x.bp == m.bp) {
                            g.push(*m);
                        }
                    }
                    g
                })
            })
            .collect();
    }
    Ok(acc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buildpacks::descriptor::Buildpack;
    use std::path::Path;

    fn bp(root: &Path, id: &str, order: &str) {
        let dir = root.join(id);
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        std::fs::write(
            dir.join("buildpack.toml"),
            format!("api = \"0.12\"\n[buildpack]\nid = \"{id}\"\nversion = \"1.0.0\"\n{order}"),
        )
        .unwrap();
        if order.is_empty() {
            std::fs::write(dir.join("bin/detect"), "").unwrap();
            std::fs::write(dir.join("bin/build"), "").unwrap();
        }
    }

    fn group(ids: &[&str]) -> String {
        let mut s = "[[order]]\n".to_string();
        for id in ids {
            let (id, opt) = id.strip_suffix('?').map_or((*id, false), |i| (i, true));
            s += &format!("[[order.group]]\nid = \"{id}\"\noptional = {opt}\n");
        }
        s
    }

    fn names(reg: &Registry, groups: &[Vec<Member>]) -> Vec<String> {
        groups
            .iter()
            .map(|g| {
                g.iter()
                    .map(|m| format!("{}{}", reg.buildpacks[m.bp].id(), if m.optional { "?" } else { "" }))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .collect()
    }

    #[test]
    fn expands_depth_first_left_to_right() {
        let d = tempfile::tempdir().unwrap();
        for id in ["a", "b", "c", "d", "e", "f", "g", "h"] {
            bp(d.path(), id, "");
        }
        // The spec's example: O = [A,B | C,D], P = [E,F | G,H].
        bp(d.path(), "o", &(group(&["a", "b"]) + &group(&["c", "d"])));
        bp(d.path(), "p", &(group(&["e", "f"]) + &group(&["g", "h"])));
        let mut reg = Registry::default();
        reg.add_dir(d.path()).unwrap();
        let order: Vec<OrderGroup> =
            toml::from_str::<crate::buildpacks::descriptor::OrderToml>(&group(&["e", "o", "f"])).unwrap().order;
        assert_eq!(names(&reg, &expand(&order, &reg).unwrap()), ["e,a,b,f", "e,c,d,f"]);
        let order = toml::from_str::<crate::buildpacks::descriptor::OrderToml>(&group(&["o", "p"])).unwrap().order;
        assert_eq!(names(&reg, &expand(&order, &reg).unwrap()), ["a,b,e,f", "a,b,g,h", "c,d,e,f", "c,d,g,h"]);
        // An optional composite makes its members optional; duplicates are kept once.
        let order = toml::from_str::<crate::buildpacks::descriptor::OrderToml>(&group(&["a", "o?"])).unwrap().order;
        assert_eq!(names(&reg, &expand(&order, &reg).unwrap()), ["a,b?", "a,c?,d?"]);
        assert!(Buildpack::load(&d.path().join("o")).unwrap().is_composite());
    }

    #[test]
    fn cycles_and_unknown_ids_are_errors() {
        let d = tempfile::tempdir().unwrap();
        bp(d.path(), "x", &group(&["y"]));
        bp(d.path(), "y", &group(&["x"]));
        let mut reg = Registry::default();
        reg.add_dir(d.path()).unwrap();
        let order = toml::from_str::<crate::buildpacks::descriptor::OrderToml>(&group(&["x"])).unwrap().order;
        assert!(matches!(expand(&order, &reg), Err(DescriptorError::TooDeep(_))));
        let order = toml::from_str::<crate::buildpacks::descriptor::OrderToml>(&group(&["nope"])).unwrap().order;
        assert!(expand(&order, &reg).unwrap_err().to_string().contains("no buildpack nope"));
    }
}
