//! `strata build --secret` and `--ssh`: what buildx accepts, read into the builder's
//! [`BuildSecrets`].
//!
//! `--secret` follows buildx (`parseSecret`) and BuildKit's secrets provider:
//! `id=NAME[,src|source=FILE][,env=VAR][,type=file|env]` as one CSV record; `type=env` takes
//! `src` as the variable's name; with neither `src` nor `env`, the variable named like the id is
//! used when it is set, else a file named like the id. A file is read at once (so a missing one
//! fails before the build, "failed to stat") and may hold at most 500 KiB, BuildKit's limit.
//!
//! `--ssh` follows buildx: `ID[=PATH]`, where PATH defaults to `$SSH_AUTH_SOCK`. strata forwards
//! agent sockets only; buildx's other form, private key files loaded into an in-process agent,
//! is refused with a clear error.

use std::os::unix::fs::FileTypeExt;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use strata_builder::exec::BuildSecrets;

/// BuildKit's `MaxSecretSize`.
const MAX_SECRET_SIZE: u64 = 500 * 1024;

/// Parses every `--secret` and `--ssh` flag; `env` looks variables up (the process
/// environment in the CLI, a map in tests). Two flags for one id: the last wins, as in buildx.
pub fn parse(secrets: &[String], ssh: &[String], env: &dyn Fn(&str) -> Option<String>) -> Result<BuildSecrets> {
    let mut out = BuildSecrets::default();
    for spec in secrets {
        let (id, value) = parse_secret(spec, env).with_context(|| format!("--secret {spec}"))?;
        out.secrets.insert(id, value);
    }
    for spec in ssh {
        let (id, path) = parse_ssh(spec, env).with_context(|| format!("--ssh {spec}"))?;
        out.ssh_agents.insert(id, path);
    }
    Ok(out)
}

fn parse_secret(spec: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<(String, Vec<u8>)> {
    let (mut id, mut file, mut var, mut typ) = (String::new(), None::<String>, None::<String>, None::<String>);
    for field in strata_frontend::csv::fields(spec).map_err(|e| anyhow::anyhow!("{e}"))? {
        let Some((key, value)) = field.split_once('=') else {
            bail!("invalid field '{field}' must be a key=value pair");
        };
        match key.to_ascii_lowercase().as_str() {
            "type" => {
                if value != "file" && value != "env" {
                    bail!("unsupported secret type \"{value}\"");
                }
                typ = Some(value.to_string());
            }
            "id" => id = value.to_string(),
            "source" | "src" => file = Some(value.to_string()),
            "env" => var = Some(value.to_string()),
            other => bail!("unexpected key '{other}' in '{field}'"),
        }
    }
    if typ.as_deref() == Some("env") && var.is_none() {
        var = file.take();
    }
    if id.is_empty() {
        bail!("secret ID missing");
    }
    if file.is_some() && var.is_some() {
        bail!("can't set both file and env source");
    }
    if file.is_none() && var.is_none() {
        if env(&id).is_some() {
            var = Some(id.clone());
        } else {
            file = Some(id.clone());
        }
    }
    if let Some(var) = var {
        let value = env(&var).with_context(|| format!("environment variable {var} is not set"))?;
        return Ok((id, value.into_bytes()));
    }
    let path = PathBuf::from(file.unwrap_or_default());
    let meta = std::fs::metadata(&path).with_context(|| format!("failed to stat {}", path.display()))?;
    if meta.len() > MAX_SECRET_SIZE {
        bail!("secret {id} too big. max size 500KB");
    }
    let value = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok((id, value))
}

fn parse_ssh(spec: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<(String, PathBuf)> {
    let (id, paths) = match spec.split_once('=') {
        Some((id, paths)) => (id.to_string(), paths.to_string()),
        None => (spec.to_string(), String::new()),
    };
    if id.is_empty() {
        bail!("an SSH id is needed (`default` for `--mount=type=ssh` without id=)");
    }
    let paths: Vec<&str> = paths.split(',').filter(|p| !p.is_empty()).collect();
    let path = match paths.as_slice() {
        [] => match env("SSH_AUTH_SOCK").filter(|s| !s.is_empty()) {
            Some(sock) => PathBuf::from(sock),
            None => bail!("invalid empty ssh agent socket: make sure SSH_AUTH_SOCK is set"),
        },
        [one] => PathBuf::from(one),
        _ => bail!("only one agent socket per SSH id is supported"),
    };
    let meta = std::fs::metadata(&path).with_context(|| format!("failed to stat {}", path.display()))?;
    if !meta.file_type().is_socket() {
        bail!("{} is not an agent socket (SSH key files are not supported: load them into ssh-agent)", path.display());
    }
    Ok((id, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn file_and_env_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tok.txt");
        std::fs::write(&file, "file-value").unwrap();
        let env = |k: &str| (k == "MY_TOKEN" || k == "tok2").then(|| format!("value-of-{k}"));
        let specs = [
            format!("id=tok,src={}", file.display()),
            "id=viaenv,env=MY_TOKEN".to_string(),
            "id=typed,type=env,src=MY_TOKEN".to_string(),
            "id=tok2".to_string(),
            format!("\"id=quoted\",\"source={}\"", file.display()),
        ];
        let s = parse(&specs, &[], &env).unwrap();
        assert_eq!(s.secrets["tok"], b"file-value");
        assert_eq!(s.secrets["viaenv"], b"value-of-MY_TOKEN");
        assert_eq!(s.secrets["typed"], b"value-of-MY_TOKEN");
        assert_eq!(s.secrets["tok2"], b"value-of-tok2", "an id alone names a set variable");
        assert_eq!(s.secrets["quoted"], b"file-value");
        assert_eq!(s.secrets.len(), 5);
    }

    #[test]
    fn bad_secret_flags() {
        let err = |spec: &str| format!("{:#}", parse(&[spec.to_string()], &[], &no_env).unwrap_err());
        assert!(err("src=/x").contains("secret ID missing"));
        assert!(err("id=a,src=/x,env=Y").contains("can't set both file and env source"));
        assert!(err("id=a,type=ssh").contains("unsupported secret type"));
        assert!(err("id=a,bogus=1").contains("unexpected key 'bogus'"));
        assert!(err("id=a,novalue").contains("must be a key=value pair"));
        assert!(err("id=a,src=/does/not/exist").contains("failed to stat /does/not/exist"));
        assert!(err("id=a,env=UNSET").contains("UNSET is not set"));
        assert!(err("id=nonexistent-file-and-var").contains("failed to stat nonexistent-file-and-var"));
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'x'; 500 * 1024 + 1]).unwrap();
        assert!(err(&format!("id=big,src={}", big.display())).contains("too big"));
    }

    #[test]
    fn ssh_agents() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("agent.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let sock_str = sock.display().to_string();
        let env = |k: &str| (k == "SSH_AUTH_SOCK").then(|| sock_str.clone());
        let s = parse(&[], &["default".to_string(), format!("work={}", sock.display())], &env).unwrap();
        assert_eq!(s.ssh_agents["default"], sock);
        assert_eq!(s.ssh_agents["work"], sock);
        let err = |spec: &str, env: &dyn Fn(&str) -> Option<String>| {
            format!("{:#}", parse(&[], &[spec.to_string()], env).unwrap_err())
        };
        assert!(err("default", &no_env).contains("make sure SSH_AUTH_SOCK is set"));
        let key = dir.path().join("id_ed25519");
        std::fs::write(&key, "-----BEGIN OPENSSH PRIVATE KEY-----").unwrap();
        assert!(err(&format!("default={}", key.display()), &no_env).contains("not an agent socket"));
        assert!(err("default=/no/such/sock", &no_env).contains("failed to stat"));
        assert!(err("=x", &no_env).contains("an SSH id is needed"));
    }
}
