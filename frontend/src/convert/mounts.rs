//! `RUN --mount=...` values, parsed as BuildKit's `instructions/commands_runmount.go` reads
//! them: a CSV list of `key=value` fields (keys case-insensitive, some booleans may stand
//! alone), defaults per mount type, and BuildKit's error wording.
//!
//! The parse is syntax only: `from=` stays a name here; the stage translator resolves it to a
//! graph node (a stage, an image, or the build context when absent).

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

/// Splits a CSV line as Go's encoding/csv does for one record: fields separated by `,`, a field
/// may be double-quoted (with `""` for a quote) to hold commas.
fn csv_fields(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                    None => return Err(format!("extraneous or missing \" in quoted-field: {s}")),
                }
            }
            match chars.next() {
                None => {
                    out.push(field);
                    return Ok(out);
                }
                Some(',') => out.push(field),
                Some(_) => return Err(format!("extraneous or missing \" in quoted-field: {s}")),
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        out.push(field);
                        return Ok(out);
                    }
                    Some(',') => break,
                    Some(c) => field.push(c),
                }
            }
            out.push(field);
        }
    }
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
    let fields = csv_fields(value)?;
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
            "env" => m.env = Some(need(val)?),
            _ => return Err(format!("unexpected key '{key}' in '{f}'")),
        }
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
    fn quoted_csv_fields() {
        assert_eq!(csv_fields(r#"type=bind,"target=/a,b",ro"#).unwrap(), ["type=bind", "target=/a,b", "ro"]);
        assert!(csv_fields(r#""unterminated"#).is_err());
    }
}
