//! Resolving a `user[:group]` spec against a rootfs's `/etc/passwd` and `/etc/group`.
//!
//! Used by the sandbox for `USER` and by the builder for `COPY --chown`. The rules are runc's
//! `GetExecUser` as BuildKit drives it, checked against BuildKit 0.13 (`id` in a RUN step):
//!
//! * The part before the first `:` is the user, the rest the group. An empty user is root
//!   (uid 0), looked up like `0`.
//! * A numeric user is a uid (0..=2147483647) and need not exist; if an entry with that uid
//!   exists its primary gid and home are used, otherwise gid 0 and home `/`. A name must exist.
//! * A numeric group is a gid and need not exist; a name must exist in `/etc/group`. An explicit
//!   group replaces the primary gid and suppresses the membership lookup.
//! * Without an explicit group, the user (when found in passwd) also gets every group listing
//!   its name as a member.
//! * The process's supplementary groups ([`ResolvedUser::additional_gids`]) are the primary gid
//!   followed by those membership groups (`USER alice` gives `groups=10,50,1000`, `USER 1234`
//!   gives `groups=0`).
//!
//! Files are read through [`crate::rootpath::resolve_in_root`], so symlinks cannot point the
//! lookup outside the rootfs. A missing file counts as empty. Malformed lines (too few fields,
//! non-numeric ids) are skipped rather than read as uid 0 the way runc's parser would.

use std::io;
use std::path::{Path, PathBuf};

use crate::rootpath::resolve_in_root;

/// The identity a process runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups to set (`setgroups`): the primary gid first, then membership groups.
    pub additional_gids: Vec<u32>,
    /// Home directory from the passwd entry, `/` when there is none.
    pub home: String,
}

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("unable to find user {0}: no matching entries in passwd file")]
    UserNotFound(String),
    #[error("unable to find group {0}: no matching entries in group file")]
    GroupNotFound(String),
    #[error("invalid user {spec:?}: uids and gids must be in range 0-2147483647")]
    OutOfRange { spec: String },
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
}

/// The largest id runc accepts (Go's `math.MaxInt32`).
const MAX_ID: i64 = 2_147_483_647;

/// One `/etc/passwd` line: `name:password:uid:gid:gecos:home:shell`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdEntry {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
}

/// One `/etc/group` line: `name:password:gid:member,member`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEntry {
    pub name: String,
    pub gid: u32,
    pub members: Vec<String>,
}

/// Parses a passwd file, skipping blank, comment and malformed lines.
pub fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                return None;
            }
            let fields: Vec<&str> = line.split(':').collect();
            if fields.len() < 4 || fields[0].is_empty() {
                return None;
            }
            Some(PasswdEntry {
                name: fields[0].to_string(),
                uid: parse_id(fields[2])?,
                gid: parse_id(fields[3])?,
                home: fields.get(5).map(|h| h.to_string()).unwrap_or_default(),
            })
        })
        .collect()
}

/// Parses a group file, skipping blank, comment and malformed lines.
pub fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                return None;
            }
            let fields: Vec<&str> = line.split(':').collect();
            if fields.len() < 3 || fields[0].is_empty() {
                return None;
            }
            let members = fields
                .get(3)
                .map(|m| m.split(',').map(str::trim).filter(|m| !m.is_empty()).map(String::from).collect())
                .unwrap_or_default();
            Some(GroupEntry { name: fields[0].to_string(), gid: parse_id(fields[2])?, members })
        })
        .collect()
}

fn parse_id(field: &str) -> Option<u32> {
    let n: i64 = field.trim().parse().ok()?;
    if (0..=MAX_ID).contains(&n) { Some(n as u32) } else { None }
}

/// A spec part that parses as an integer: `Some(Ok(id))`, or `Some(Err)` when out of range.
fn numeric(part: &str, spec: &str) -> Option<Result<u32, UserError>> {
    let n: i64 = part.parse().ok()?;
    Some(if (0..=MAX_ID).contains(&n) { Ok(n as u32) } else { Err(UserError::OutOfRange { spec: spec.to_string() }) })
}

/// Resolves `spec` against the already-parsed files; see the module docs for the rules.
pub fn resolve_in(passwd: &[PasswdEntry], groups: &[GroupEntry], spec: &str) -> Result<ResolvedUser, UserError> {
    let (user_part, group_part) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let user_part = if user_part.is_empty() { "0" } else { user_part };

    let entry = match numeric(user_part, spec) {
        Some(uid) => {
            let uid = uid?;
            passwd.iter().find(|e| e.uid == uid)
        }
        None => Some(
            passwd
                .iter()
                .find(|e| e.name == user_part)
                .ok_or_else(|| UserError::UserNotFound(user_part.to_string()))?,
        ),
    };
    let (uid, mut gid, home) = match (entry, numeric(user_part, spec)) {
        (Some(e), _) => (e.uid, e.gid, if e.home.is_empty() { "/".to_string() } else { e.home.clone() }),
        (None, Some(uid)) => (uid?, 0, "/".to_string()),
        (None, None) => return Err(UserError::UserNotFound(user_part.to_string())),
    };

    let mut additional = Vec::new();
    match group_part.filter(|g| !g.is_empty()) {
        Some(group) => {
            gid = match numeric(group, spec) {
                Some(g) => g?,
                None => {
                    groups
                        .iter()
                        .find(|g| g.name == group)
                        .ok_or_else(|| UserError::GroupNotFound(group.to_string()))?
                        .gid
                }
            };
        }
        None => {
            if let Some(e) = entry {
                additional.extend(groups.iter().filter(|g| g.members.contains(&e.name)).map(|g| g.gid));
            }
        }
    }
    let mut additional_gids = vec![gid];
    for g in additional {
        if !additional_gids.contains(&g) {
            additional_gids.push(g);
        }
    }
    Ok(ResolvedUser { uid, gid, additional_gids, home })
}

/// Resolves `spec` against `rootfs`'s `/etc/passwd` and `/etc/group`.
pub fn resolve(rootfs: &Path, spec: &str) -> Result<ResolvedUser, UserError> {
    let passwd = parse_passwd(&read_confined(rootfs, "etc/passwd")?);
    let groups = parse_group(&read_confined(rootfs, "etc/group")?);
    resolve_in(&passwd, &groups, spec)
}

/// Resolves the owner of files a COPY/ADD `--chown` or a WORKDIR creates, by BuildKit's rule
/// for file operations, which differs from a process user's: a numeric user without a group
/// gets the same number as gid (`--chown=1000` is 1000:1000, whatever passwd says), a named
/// user its passwd uid and primary gid; a group, by name or number, overrides the gid.
pub fn resolve_owner(rootfs: &Path, user: &str, group: Option<&str>) -> Result<(u32, u32), UserError> {
    let numeric = |s: &str| -> Result<Option<u32>, UserError> {
        match s.parse::<i64>() {
            Ok(n) if (0..=MAX_ID).contains(&n) => Ok(Some(n as u32)),
            Ok(_) => Err(UserError::OutOfRange { spec: s.to_string() }),
            Err(_) => Ok(None),
        }
    };
    let (uid, mut gid) = match numeric(user)? {
        Some(n) => (n, n),
        None => {
            let passwd = parse_passwd(&read_confined(rootfs, "etc/passwd")?);
            let e = passwd.iter().find(|e| e.name == user).ok_or_else(|| UserError::UserNotFound(user.to_string()))?;
            (e.uid, e.gid)
        }
    };
    if let Some(g) = group.filter(|g| !g.is_empty()) {
        gid = match numeric(g)? {
            Some(n) => n,
            None => {
                let groups = parse_group(&read_confined(rootfs, "etc/group")?);
                groups
                    .iter()
                    .find(|e| e.name == g)
                    .map(|e| e.gid)
                    .ok_or_else(|| UserError::GroupNotFound(g.to_string()))?
            }
        };
    }
    Ok((uid, gid))
}

/// Reads a file of the rootfs; a missing one reads as empty.
fn read_confined(rootfs: &Path, path: &str) -> Result<String, UserError> {
    let real = resolve_in_root(rootfs, Path::new(path))
        .map_err(|source| UserError::Read { path: rootfs.join(path), source })?;
    match std::fs::read(&real) {
        Ok(bytes) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
        Err(e) if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(nix::libc::ENOTDIR) => {
            Ok(String::new())
        }
        Err(source) => Err(UserError::Read { path: real, source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_owners_follow_buildkits_chown_rules() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("etc")).unwrap();
        std::fs::write(
            root.path().join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(root.path().join("etc/group"), "root:x:0:\nstaff:x:50:\n").unwrap();
        assert_eq!(resolve_owner(root.path(), "1000", None).unwrap(), (1000, 1000), "numeric user: gid = uid");
        assert_eq!(resolve_owner(root.path(), "app", None).unwrap(), (1000, 1001), "named user: passwd gid");
        assert_eq!(resolve_owner(root.path(), "app", Some("staff")).unwrap(), (1000, 50));
        assert_eq!(resolve_owner(root.path(), "7", Some("8")).unwrap(), (7, 8));
        assert!(matches!(resolve_owner(root.path(), "ghost", None), Err(UserError::UserNotFound(_))));
        assert!(matches!(resolve_owner(root.path(), "app", Some("nogroup")), Err(UserError::GroupNotFound(_))));
        // No passwd at all: numbers still work.
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(resolve_owner(empty.path(), "42", None).unwrap(), (42, 42));
    }

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
        nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n\
        alice:x:1000:1000:alice:/home/alice:/bin/sh\n\
        nohome:x:1001:1001::\n";
    const GROUP: &str = "root:x:0:\nwheel:x:10:alice,root\nstaff:x:50:alice\nalice:x:1000:\nnogroup:x:65534:\n";

    fn resolve_str(spec: &str) -> Result<ResolvedUser, UserError> {
        resolve_in(&parse_passwd(PASSWD), &parse_group(GROUP), spec)
    }

    fn user(uid: u32, gid: u32, groups: &[u32], home: &str) -> ResolvedUser {
        ResolvedUser { uid, gid, additional_gids: groups.to_vec(), home: home.to_string() }
    }

    // Expected values are what BuildKit 0.13 printed with `id` for the same files.
    #[test]
    fn names_and_ids_like_buildkit() {
        assert_eq!(resolve_str("").unwrap(), user(0, 0, &[0, 10], "/root"));
        assert_eq!(resolve_str("0").unwrap(), user(0, 0, &[0, 10], "/root"));
        assert_eq!(resolve_str("root").unwrap(), user(0, 0, &[0, 10], "/root"));
        assert_eq!(resolve_str("alice").unwrap(), user(1000, 1000, &[1000, 10, 50], "/home/alice"));
        assert_eq!(resolve_str("1000").unwrap(), user(1000, 1000, &[1000, 10, 50], "/home/alice"));
        assert_eq!(resolve_str("alice:staff").unwrap(), user(1000, 50, &[50], "/home/alice"));
        assert_eq!(resolve_str("1000:1000").unwrap(), user(1000, 1000, &[1000], "/home/alice"));
        assert_eq!(resolve_str("root:wheel").unwrap(), user(0, 10, &[10], "/root"));
        assert_eq!(resolve_str("1234").unwrap(), user(1234, 0, &[0], "/"));
        assert_eq!(resolve_str("1234:777").unwrap(), user(1234, 777, &[777], "/"));
        assert_eq!(resolve_str("nobody").unwrap(), user(65534, 65534, &[65534], "/nonexistent"));
        assert_eq!(resolve_str(":staff").unwrap(), user(0, 50, &[50], "/root"));
        assert_eq!(resolve_str("nohome").unwrap(), user(1001, 1001, &[1001], "/"));
    }

    #[test]
    fn missing_users_and_groups_are_errors() {
        let err = resolve_str("bob").unwrap_err();
        assert_eq!(err.to_string(), "unable to find user bob: no matching entries in passwd file");
        let err = resolve_str("alice:nosuch").unwrap_err();
        assert_eq!(err.to_string(), "unable to find group nosuch: no matching entries in group file");
        assert!(matches!(resolve_str("-1"), Err(UserError::OutOfRange { .. })));
        assert!(matches!(resolve_str("2147483648"), Err(UserError::OutOfRange { .. })));
        assert!(matches!(resolve_str("0:99999999999"), Err(UserError::OutOfRange { .. })));
    }

    #[test]
    fn malformed_lines_are_skipped() {
        let passwd = parse_passwd(
            "# comment\n\n  \nevil:x:notanumber:0::/:/bin/sh\nshort:x:5\n:x:7:7::/:\nneg:x:-3:0::/:\n\
             ok:x:12:34:gecos:/home/ok:/bin/sh\ntrailing:x:13:13\n",
        );
        let names: Vec<&str> = passwd.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["ok", "trailing"]);
        assert_eq!(passwd[1].home, "");
        let groups = parse_group("g1:x:1:a, b ,,c\nbad:x:zz:a\ng2:x:2\nshort:x\n");
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].members, ["a", "b", "c"]);
        assert!(groups[1].members.is_empty());
        // "evil" must not resolve to root just because its uid field is garbage.
        let err = resolve_in(&passwd, &groups, "evil").unwrap_err();
        assert!(matches!(err, UserError::UserNotFound(_)));
    }

    #[test]
    fn first_matching_entry_wins_and_groups_are_deduplicated() {
        let passwd = parse_passwd("a:x:5:5::/one:\na:x:6:6::/two:\n");
        let groups = parse_group("five:x:5:a\nx:x:9:a\ny:x:9:a\n");
        let got = resolve_in(&passwd, &groups, "a").unwrap();
        assert_eq!(got, user(5, 5, &[5, 9], "/one"));
    }

    #[test]
    fn reads_files_confined_to_the_rootfs() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("etc")).unwrap();
        std::fs::write(root.path().join("etc/real-passwd"), "bob:x:77:88::/home/bob:/bin/sh\n").unwrap();
        std::fs::write(root.path().join("etc/real-group"), "bobs:x:88:\nextra:x:99:bob\n").unwrap();
        // Absolute and climbing symlinks mean the rootfs's own files, never the host's.
        std::os::unix::fs::symlink("/etc/real-passwd", root.path().join("etc/passwd")).unwrap();
        std::os::unix::fs::symlink("../../../../etc/real-group", root.path().join("etc/group")).unwrap();
        let got = resolve(root.path(), "bob").unwrap();
        assert_eq!(got, user(77, 88, &[88, 99], "/home/bob"));
        // The host's /etc/passwd has root; the rootfs's does not.
        assert!(matches!(resolve(root.path(), "root"), Err(UserError::UserNotFound(_))));

        // A symlink loop is an error, not a fallback to anything.
        let looped = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(looped.path().join("etc")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", looped.path().join("etc/passwd")).unwrap();
        assert!(matches!(resolve(looped.path(), "0"), Err(UserError::Read { .. })));
    }

    #[test]
    fn missing_files_behave_as_empty() {
        let root = tempfile::tempdir().unwrap();
        assert_eq!(resolve(root.path(), "").unwrap(), user(0, 0, &[0], "/"));
        assert_eq!(resolve(root.path(), "4000:4000").unwrap(), user(4000, 4000, &[4000], "/"));
        assert!(matches!(resolve(root.path(), "root"), Err(UserError::UserNotFound(_))));
    }
}
