//! `RUN --mount=...` values, parsed as BuildKit's `instructions/commands_runmount.go` reads
//! them: a CSV list of `key=value` fields (keys case-insensitive, some booleans may stand
//! alone), defaults per mount type, and BuildKit's error wording.
//!
//! The parse is syntax only: `from=` stays a name here; the stage translator resolves it to a
//! graph node (a stage, an image, or the build context when absent). Secret and SSH mounts need
//! no node: [`secret_or_ssh`] turns them into graph mounts with BuildKit's defaults.

use strata_builder::graph::{Mount, MountKind};

/// The mount types BuildKit's Dockerfile frontend knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountType {
    Bind,
    Cache,
    Tmpfs,
    Secret,
    Ssh,
}

/// Concurrent access to a cache mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharing {
    Shared,
    Private,
    Locked,
}

/// One parsed `--mount`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunMount {
    pub kind: MountType,
    pub target: String,
    pub source: Option<String>,
    pub from: Option<String>,
    pub readonly: bool,
    pub id: Option<String>,
    pub sharing: Sharing,
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub required: bool,
    pub env: Option<String>,
}

fn parse_bool(key: &str, v: Option<&str>) -> Result<bool, String> {
    match v.map(str::to_ascii_lowercase).as_deref() {
        None | Some("true") | Some("1") => Ok(true),
        Some("false") | Some("0") => Ok(false),
        Some(other) => Err(format!("invalid value for {key}: {other}")),
    }
}

fn parse_u32(key: &str, v: &str, radix: u32) -> Result<u32, String> {
    u32::from_str_radix(v, radix).map_err(|_| format!("invalid value for {key}: {v}"))
}

/// Parses a tmpfs size: bytes, or a number with a k/m/g suffix (as Docker's units package).
fn parse_size(v: &str) -> Result<u64, String> {
    let lower = v.to_ascii_lowercase();
    let trimmed = lower.trim_end_matches('b');
    let (num, mult) = match trimmed.chars().last() {
        Some('k') => (&trimmed[..trimmed.len() - 1], 1u64 << 10),
        Some('m') => (&trimmed[..trimmed.len() - 1], 1 << 20),
        Some('g') => (&trimmed[..trimmed.len() - 1], 1 << 30),
        _ => (trimmed, 1),
    };
    num.trim().parse::<u64>().ok().and_then(|n| n.checked_mul(mult)).ok_or_else(|| format!("invalid size: {v}"))
}

/// Parses one `--mount` value. `secret_index`/`ssh_index` number unnamed secret and ssh mounts
/// for their default targets.
pub fn parse_mount(value: &str) -> Result<RunMount, String> {
    let fields = crate::csv::fields(value).map_err(|e| format!("{e}: {value}"))?;
    let mut kind = MountType::Bind;
    // First pass: the type decides the defaults.
    for f in &fields {
        if let Some((k, v)) = f.split_once('=')
            && k.trim().eq_ignore_ascii_case("type")
        {
            kind = match v.trim().to_ascii_lowercase().as_str() {
                "bind" => MountType::Bind,
                "cache" => MountType::Cache,
                "tmpfs" => MountType::Tmpfs,
                "secret" => MountType::Secret,
                "ssh" => MountType::Ssh,
                other => return Err(format!("unsupported mount type \"{other}\"")),
            };
        }
    }
    let mut m = RunMount {
        kind,
        target: String::new(),
        source: None,
        from: None,
        readonly: kind == MountType::Bind,
        id: None,
        sharing: Sharing::Shared,
        mode: None,
        uid: None,
        gid: None,
        size: None,
        required: false,
        env: None,
    };
    let mut sharing_given = false;
    for f in &fields {
        let f = f.trim();
        if f.is_empty() {
            continue;
        }
        let (key, val) = match f.split_once('=') {
            Some((k, v)) => (k.trim().to_ascii_lowercase(), Some(v.trim())),
            None => (f.to_ascii_lowercase(), None),
        };
        let need = |v: Option<&str>| {
            v.map(str::to_string).ok_or_else(|| format!("invalid field '{f}' must be a key=value pair"))
        };
        match key.as_str() {
            "type" => {}
            "readonly" | "ro" => m.readonly = parse_bool(&key, val)?,
            "readwrite" | "rw" => m.readonly = !parse_bool(&key, val)?,
            "required" => {
                if !matches!(kind, MountType::Secret | MountType::Ssh) {
                    return Err(format!("unexpected key '{key}' for mount type '{}'", type_name(kind)));
                }
                m.required = parse_bool(&key, val)?
            }
            "target" | "dst" | "destination" => m.target = need(val)?,
            "source" | "src" => m.source = Some(need(val)?),
            "from" => m.from = Some(need(val)?),
            "id" => m.id = Some(need(val)?),
            "sharing" => {
                sharing_given = true;
                m.sharing = match need(val)?.to_ascii_lowercase().as_str() {
                    "shared" => Sharing::Shared,
                    "private" => Sharing::Private,
                    "locked" => Sharing::Locked,
                    other => return Err(format!("unsupported sharing value \"{other}\"")),
                }
            }
            "mode" => m.mode = Some(parse_u32(&key, &need(val)?, 8)?),
            "uid" => m.uid = Some(parse_u32(&key, &need(val)?, 10)?),
            "gid" => m.gid = Some(parse_u32(&key, &need(val)?, 10)?),
            "size" => {
                if kind != MountType::Tmpfs {
                    return Err(format!("unexpected key '{key}' for mount type '{}'", type_name(kind)));
                }
                m.size = Some(parse_size(&need(val)?)?)
            }
            // Dockerfile 1.10's `env=` (not known to BuildKit 0.13's frontend): secrets only.
            "env" => {
                if kind != MountType::Secret {
                    return Err(format!("unexpected key '{key}' for mount type '{}'", type_name(kind)));
                }
                m.env = Some(need(val)?)
            }
            _ => return Err(format!("unexpected key '{key}' in '{f}'")),
        }
    }
    // BuildKit's validateMount, in its order.
    if !matches!(kind, MountType::Secret | MountType::Ssh | MountType::Cache) {
        for (key, given) in [("mode", m.mode.is_some()), ("uid", m.uid.is_some()), ("gid", m.gid.is_some())] {
            if given {
                return Err(format!("{key} not allowed for \"{}\" type mounts", type_name(kind)));
            }
        }
    }
    if kind == MountType::Secret {
        if m.from.is_some() {
            return Err("secret mount should not have a from".to_string());
        }
        if sharing_given {
            return Err("secret mount should not define sharing".to_string());
        }
        if m.source.is_none() && m.target.is_empty() && m.id.is_none() {
            return Err("invalid secret mount. one of source, target required".to_string());
        }
        if m.source.is_some() && m.id.is_some() {
            return Err("both source and id can't be set".to_string());
        }
    }
    if sharing_given && kind != MountType::Cache {
        return Err(format!("invalid cache sharing set for {} mount", type_name(kind)));
    }
    match kind {
        MountType::Secret | MountType::Ssh => {}
        _ if m.target.is_empty() => return Err("mount destination (target) is required".to_string()),
        _ => {}
    }
    if kind == MountType::Tmpfs && m.from.is_some() {
        return Err("'from' is not supported for tmpfs mounts".to_string());
    }
    Ok(m)
}

/// The graph mount of a secret or SSH mount, with BuildKit's defaults
/// (`dockerfile2llb/convert_secrets.go`, `convert_ssh.go`):
/// * secret: the id is `source`, else `id`, else the base name of `target`; without `env=` the
///   target defaults to `/run/secrets/<base name of id>`, with `env=` and no target there is no
///   file at all (empty target); mode 0400, owner 0:0.
/// * ssh: the id defaults to `default`; an empty target means BuildKit's
///   `/run/buildkit/ssh_agent.N`, which the builder numbers; mode 0600, owner 0:0.
///
/// Targets are taken as absolute (BuildKit does not resolve these against the working
/// directory as it does other mounts).
pub fn secret_or_ssh(m: &RunMount) -> Result<Mount, String> {
    let absolute = |t: &str| if t.is_empty() || t.starts_with('/') { t.to_string() } else { format!("/{t}") };
    let base = |p: &str| p.trim_end_matches('/').rsplit('/').next().unwrap_or("").to_string();
    let (uid, gid) = (m.uid.unwrap_or(0), m.gid.unwrap_or(0));
    match m.kind {
        MountType::Secret => {
            let id = match (m.source.as_deref(), m.id.as_deref()) {
                (Some(s), _) if !s.is_empty() => s.to_string(),
                (_, Some(i)) if !i.is_empty() => i.to_string(),
                _ if !m.target.is_empty() => base(&m.target),
                _ => return Err("one of source, target required".to_string()),
            };
            let target = match (&m.env, m.target.is_empty()) {
                (Some(_), true) => String::new(),
                (None, true) => format!("/run/secrets/{}", base(&id)),
                (_, false) => absolute(&m.target),
            };
            let kind = MountKind::Secret {
                id,
                env: m.env.clone(),
                required: m.required,
                mode: m.mode.unwrap_or(0o400),
                uid,
                gid,
            };
            Ok(Mount { target, kind })
        }
        MountType::Ssh => {
            if m.source.is_some() {
                return Err("ssh does not support source".to_string());
            }
            let id = m.id.clone().filter(|i| !i.is_empty()).unwrap_or_else(|| "default".to_string());
            let kind = MountKind::Ssh { id, required: m.required, mode: m.mode.unwrap_or(0o600), uid, gid };
            Ok(Mount { target: absolute(&m.target), kind })
        }
        other => Err(format!("not a secret or ssh mount: {}", type_name(other))),
    }
}

fn type_name(k: MountType) -> &'static str {
    match k {
        MountType::Bind => "bind",
        MountType::Cache => "cache",
        MountType::Tmpfs => "tmpfs",
        MountType::Secret => "secret",
        MountType::Ssh => "ssh",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_bind_and_tmpfs() {
        let m = parse_mount("type=cache,target=/var/cache/thing").unwrap();
        assert_eq!(
            (m.kind, m.target.as_str(), m.readonly, m.sharing),
            (MountType::Cache, "/var/cache/thing", false, Sharing::Shared)
        );
        let m = parse_mount("type=bind,from=tools,source=/tool.txt,target=/mnt/tool.txt").unwrap();
        assert_eq!(
            (m.kind, m.from.as_deref(), m.source.as_deref(), m.readonly),
            (MountType::Bind, Some("tools"), Some("/tool.txt"), true)
        );
        let m = parse_mount("target=/src,rw").unwrap();
        assert_eq!((m.kind, m.readonly), (MountType::Bind, false));
        let m = parse_mount("type=tmpfs,target=/scratch,size=64m").unwrap();
        assert_eq!(m.size, Some(64 << 20));
        let m = parse_mount("type=cache,target=/c,id=x,sharing=locked,mode=0700,uid=1000,gid=1000").unwrap();
        assert_eq!((m.id.as_deref(), m.sharing, m.mode, m.uid), (Some("x"), Sharing::Locked, Some(0o700), Some(1000)));
    }

    #[test]
    fn errors_use_buildkit_wording() {
        assert_eq!(parse_mount("type=nfs,target=/x").unwrap_err(), "unsupported mount type \"nfs\"");
        assert_eq!(parse_mount("type=cache").unwrap_err(), "mount destination (target) is required");
        assert!(parse_mount("type=cache,target=/x,bogus=1").unwrap_err().contains("unexpected key 'bogus'"));
        assert!(parse_mount("type=cache,target=/x,sharing=weird").is_err());
        assert!(parse_mount("type=cache,target=/x,size=1").is_err());
        assert!(parse_mount("type=cache,target").is_err());
    }

    #[test]
    fn buildkit_validation_rules() {
        let err = |v: &str| parse_mount(v).unwrap_err();
        assert_eq!(err("type=tmpfs,target=/t,mode=0700"), "mode not allowed for \"tmpfs\" type mounts");
        assert_eq!(err("type=bind,target=/t,uid=1"), "uid not allowed for \"bind\" type mounts");
        assert_eq!(err("type=secret,id=a,from=x"), "secret mount should not have a from");
        assert_eq!(err("type=secret,id=a,sharing=locked"), "secret mount should not define sharing");
        assert_eq!(err("type=secret"), "invalid secret mount. one of source, target required");
        assert_eq!(err("type=secret,source=a,id=b"), "both source and id can't be set");
        assert_eq!(err("type=tmpfs,target=/t,sharing=shared"), "invalid cache sharing set for tmpfs mount");
        assert_eq!(err("type=cache,target=/t,env=X"), "unexpected key 'env' for mount type 'cache'");
        assert_eq!(err("type=cache,target=/t,required"), "unexpected key 'required' for mount type 'cache'");
    }

    #[test]
    fn secret_defaults_like_buildkit() {
        let secret = |v: &str| secret_or_ssh(&parse_mount(v).unwrap()).unwrap();
        let m = secret("type=secret,id=tok");
        assert_eq!(m.target, "/run/secrets/tok");
        assert!(
            matches!(m.kind, MountKind::Secret { ref id, env: None, required: false, mode: 0o400, uid: 0, gid: 0 } if id == "tok")
        );
        let m = secret("type=secret,target=/etc/app/key.pem,mode=0440,uid=1000,gid=50,required");
        assert_eq!(m.target, "/etc/app/key.pem");
        assert!(
            matches!(m.kind, MountKind::Secret { ref id, required: true, mode: 0o440, uid: 1000, gid: 50, .. } if id == "key.pem")
        );
        let m = secret("type=secret,source=a/b");
        assert_eq!(m.target, "/run/secrets/b");
        assert!(matches!(m.kind, MountKind::Secret { ref id, .. } if id == "a/b"));
        let m = secret("type=secret,id=tok,env=TOKEN");
        assert_eq!(m.target, "", "env only");
        assert!(matches!(m.kind, MountKind::Secret { env: Some(ref e), .. } if e == "TOKEN"));
        let m = secret("type=secret,id=tok,env=TOKEN,target=rel/file");
        assert_eq!(m.target, "/rel/file");
    }

    #[test]
    fn ssh_defaults_like_buildkit() {
        let ssh = |v: &str| secret_or_ssh(&parse_mount(v).unwrap());
        let m = ssh("type=ssh").unwrap();
        assert_eq!(m.target, "", "numbered by the builder");
        assert!(
            matches!(m.kind, MountKind::Ssh { ref id, required: false, mode: 0o600, uid: 0, gid: 0 } if id == "default")
        );
        let m = ssh("type=ssh,id=work,target=/agent.sock,mode=0666,uid=5,required=true").unwrap();
        assert_eq!(m.target, "/agent.sock");
        assert!(matches!(m.kind, MountKind::Ssh { ref id, required: true, mode: 0o666, uid: 5, .. } if id == "work"));
        assert_eq!(ssh("type=ssh,source=/x").unwrap_err(), "ssh does not support source");
    }
}
