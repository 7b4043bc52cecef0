//! The `strata` binary: parses the command line and wires the libraries together. All the
//! work happens in the frontend, builder, runner and store crates; this file only decides
//! which of them to call and turns their errors into messages and exit codes.

mod cache_flags;
mod cli;
mod commands;
mod context;
mod deliver;
mod outputs;
mod platforms;
mod resolver;
mod secrets;
mod signals;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;
use strata_store::Store;

use cli::{Cli, Command};

fn main() -> ExitCode {
    // Before anything else (and before any thread exists): when re-executed as a sandbox
    // helper, become the sandbox and never return.
    strata_runner::maybe_run_sandbox();
    // The rootless child: become root of its user namespace before anything else runs.
    if let Err(e) = strata_runner::userns::enter_if_child() {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    let cli = Cli::parse();
    // A non-root user's strata works inside a user namespace of its own (rootless): every
    // command that touches the store, since snapshots hold files of other owners.
    if !rustix::process::geteuid().is_root() && !matches!(cli.command, Command::Debug(_)) {
        return match strata_runner::userns::run_in_user_namespace() {
            Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    match run(cli) {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the command; returns the exit status (non-zero only for `strata run`'s process).
fn run(cli: Cli) -> Result<i32> {
    let root = store_root(cli.root)?;
    let open_plain = || Store::open(&root).with_context(|| format!("opening the store at {}", root.display()));
    // Every command that uses content holds a lease for its whole run: nothing it uses is pruned.
    let lease = std::cell::OnceCell::new();
    let open = || -> Result<Store> {
        let store = open_plain()?;
        if lease.get().is_none() {
            let l = store.acquire_lease().with_context(|| format!("taking a lease on {}", root.display()))?;
            let _ = lease.set(l);
        }
        Ok(store)
    };
    let done = |r: Result<()>| r.map(|()| 0);
    if matches!(cli.command, Command::Images(_) | Command::Inspect(_) | Command::Debug(_)) {
        signals::quiet_on_closed_pipe();
    }
    match cli.command {
        Command::Build(a) => {
            enter_private_mount_namespace()?;
            commands::build::build(&open()?, &a)
        }
        Command::Run(a) => {
            enter_private_mount_namespace()?;
            commands::run::run(&open()?, &a)
        }
        Command::Push(a) => done(commands::push::push(&open()?, &a)),
        Command::Pull(a) => done(commands::pull::pull(&open()?, &a)),
        // Read-only: no lease (they work on a full disk; named images are GC roots anyway).
        Command::Images(a) => done(commands::images::images(&open_plain()?, &a)),
        Command::Inspect(a) => done(commands::images::inspect(&open_plain()?, &a)),
        Command::Import(a) => done(commands::import::import(&open()?, &a)),
        Command::Tag(a) => done(commands::images::tag(&open()?, &a)),
        Command::Detect(a) => {
            enter_private_mount_namespace()?;
            done(commands::buildpacks::detect(&open()?, &a))
        }
        Command::Rebase(a) => done(commands::buildpacks::rebase(&open()?, &a)),
        Command::Rmi(a) => done(commands::images::rmi(&open()?, &a)),
        Command::Login(a) => done(commands::login::login(&a)),
        Command::Logout(a) => done(commands::login::logout(&a)),
        Command::Debug(cli::DebugCommand::Parse { file }) => done(commands::debug::parse(&file)),
        Command::Fsck(a) => commands::system::fsck(&open_plain()?, &a),
        Command::Prune(a) | Command::System(cli::SystemCommand::Prune(a)) => {
            done(commands::system::prune(&open_plain()?, &a))
        }
        Command::System(cli::SystemCommand::Df) => done(commands::system::df(&open_plain()?)),
    }
}

/// Mounts made from here on are private to this process and vanish with it, even on SIGKILL.
fn enter_private_mount_namespace() -> Result<()> {
    if !rustix::process::geteuid().is_root() {
        anyhow::bail!("strata needs root, or a user namespace of its own (rootless: newuidmap and /etc/subuid)");
    }
    strata_runner::enter_private_mount_namespace().context("entering a private mount namespace")
}

/// The registry client, reading docker's config.json for credentials and remembering in the
/// store which repositories hold which blobs (for cross-repository mounts).
pub fn registry_client(store: &Store) -> Result<strata_store::registry::RegistryClient> {
    strata_store::registry::RegistryClient::new(strata_store::registry::RegistryOptions {
        blob_sources: Some(store.root().join("blob-sources")),
        ..strata_store::registry::RegistryOptions::default()
    })
    .context("starting the registry client")
}

/// The registry client for commands without a store (`login`).
pub fn registry_client_without_store() -> Result<strata_store::registry::RegistryClient> {
    strata_store::registry::RegistryClient::new(strata_store::registry::RegistryOptions::default())
        .context("starting the registry client")
}

/// `--root`/`STRATA_ROOT`, else `$XDG_DATA_HOME/strata`, else `/var/lib/strata` for root and
/// `~/.local/share/strata` for other users.
fn store_root(flag: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(r) = flag {
        return Ok(r);
    }
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(x).join("strata"));
    }
    if rustix::process::geteuid().is_root() && !strata_runner::userns::is_rootless_child() {
        return Ok(PathBuf::from("/var/lib/strata"));
    }
    let home = std::env::var_os("HOME").context("neither --root, STRATA_ROOT, XDG_DATA_HOME nor HOME is set")?;
    Ok(PathBuf::from(home).join(".local/share/strata"))
}
