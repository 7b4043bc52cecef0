//! `strata login` and `strata logout`: credentials in Docker's config.json, as `docker login`
//! and `docker logout` keep them (the same file, keys and credential helpers), so either tool
//! can use what the other saved.
//!
//! Login asks for what is missing (user name on the terminal, password without echo, or
//! `--password-stdin`), checks the credentials against the registry (`GET /v2/` answered with
//! them), and only then saves them: in the credential helper the config names
//! (`credHelpers`, `credsStore`), else base64 in `auths` — or the registry's refresh token
//! instead of the password when its token service issues one.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use strata_store::registry::credentials::{self, Login, StoredIn};

use crate::cli::{LoginArgs, LogoutArgs};

/// The registry a `docker login` argument names: `ghcr.io`, `127.0.0.1:5000`, or `docker.io`
/// (no argument, or any of Docker Hub's names, with or without scheme and path).
pub fn registry_host(arg: Option<&str>) -> Result<String> {
    let Some(raw) = arg.map(str::trim).filter(|s| !s.is_empty()) else { return Ok("docker.io".to_string()) };
    let stripped = raw.strip_prefix("https://").or_else(|| raw.strip_prefix("http://")).unwrap_or(raw);
    let host = stripped.split('/').next().unwrap_or("");
    if host.is_empty() || host.contains(char::is_whitespace) || host.contains('@') {
        bail!("{raw:?} is not a registry (expected a host such as ghcr.io or 127.0.0.1:5000)");
    }
    Ok(match host {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => "docker.io".to_string(),
        h => h.to_string(),
    })
}

fn config_path() -> Result<PathBuf> {
    credentials::default_config_path().context("cannot find Docker's config.json: set DOCKER_CONFIG or HOME")
}

/// Reads one line from the terminal, without echo when `secret`.
fn prompt(label: &str, secret: bool) -> Result<String> {
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .context("no terminal to ask on: pass -u and --password-stdin")?;
    let mut out = tty.try_clone().context("opening the terminal")?;
    write!(out, "{label}: ")?;
    out.flush()?;
    let saved = if secret {
        let saved = nix::sys::termios::tcgetattr(&tty).context("reading the terminal's settings")?;
        let mut quiet = saved.clone();
        quiet.local_flags.remove(nix::sys::termios::LocalFlags::ECHO);
        nix::sys::termios::tcsetattr(&tty, nix::sys::termios::SetArg::TCSANOW, &quiet)
            .context("turning off the terminal's echo")?;
        Some(saved)
    } else {
        None
    };
    let mut line = String::new();
    let read = std::io::BufReader::new(&tty).read_line(&mut line);
    if let Some(saved) = saved {
        let _ = nix::sys::termios::tcsetattr(&tty, nix::sys::termios::SetArg::TCSANOW, &saved);
        let _ = writeln!(out);
    }
    read.context("reading from the terminal")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

pub fn login(a: &LoginArgs) -> Result<()> {
    let registry = registry_host(a.server.as_deref())?;
    let server = credentials::server_key(&registry);
    if a.password.is_some() && a.password_stdin {
        bail!("--password and --password-stdin are mutually exclusive");
    }
    let username = match &a.username {
        Some(u) => u.clone(),
        None if a.password_stdin => bail!("--password-stdin needs --username"),
        None => prompt("Username", false)?,
    };
    if username.is_empty() {
        bail!("a user name is required");
    }
    let password = if a.password_stdin {
        let mut s = String::new();
        std::io::stdin().lock().read_line(&mut s).context("reading the password from stdin")?;
        s.trim_end_matches(['\r', '\n']).to_string()
    } else if let Some(p) = &a.password {
        eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
        p.clone()
    } else if std::io::stdin().is_terminal() || std::path::Path::new("/dev/tty").exists() {
        prompt("Password", true)?
    } else {
        bail!("no password: pass --password-stdin");
    };
    if password.is_empty() {
        bail!("a password is required");
    }
    let client = crate::registry_client_without_store()?;
    let outcome = client.login(&registry, &username, &password).with_context(|| format!("logging in to {server}"))?;
    let login = match outcome.identity_token {
        Some(token) => Login { username: username.clone(), secret: token, identity_token: true },
        None => Login { username: username.clone(), secret: password, identity_token: false },
    };
    let path = config_path()?;
    let stored = credentials::store_credential(&path, &registry, &login)
        .with_context(|| format!("saving the credentials for {server}"))?;
    if stored == StoredIn::File {
        eprintln!(
            "WARNING! Your password will be stored unencrypted in {}.\n\
             Configure a credential helper to remove this warning. See\n\
             https://docs.docker.com/engine/reference/commandline/login/#credential-stores",
            path.display()
        );
    }
    println!("Login Succeeded");
    Ok(())
}

pub fn logout(a: &LogoutArgs) -> Result<()> {
    let registry = registry_host(a.server.as_deref())?;
    let server = credentials::server_key(&registry);
    let path = config_path()?;
    if credentials::erase_credential(&path, &registry).with_context(|| format!("logging out of {server}"))? {
        println!("Removing login credentials for {server}");
    } else {
        println!("Not logged in to {server}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_names_as_docker_login_takes_them() {
        assert_eq!(registry_host(None).unwrap(), "docker.io");
        assert_eq!(registry_host(Some("https://index.docker.io/v1/")).unwrap(), "docker.io");
        assert_eq!(registry_host(Some("registry-1.docker.io")).unwrap(), "docker.io");
        assert_eq!(registry_host(Some("127.0.0.1:5000")).unwrap(), "127.0.0.1:5000");
        assert_eq!(registry_host(Some("https://ghcr.io/v2/")).unwrap(), "ghcr.io");
        assert!(registry_host(Some("https:///x")).is_err());
        assert!(registry_host(Some("user@host")).is_err());
    }
}
