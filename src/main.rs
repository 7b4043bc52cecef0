//! The `strata` binary: parses the command line and wires the libraries together. All the
//! work happens in the frontend, builder, runner and store crates; this file only decides
//! which of them to call and turns their errors into messages and exit codes.

mod cli;
mod commands;
mod context;
mod resolver;
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
    let cli = Cli::parse();
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
    let open = || Store::open(&root).with_context(|| format!("opening the store at {}", root.display()));
    let done = |r: Result<()>| r.map(|()| 0);
    match cli.command {
        Command::Build(a) => {
            enter_private_mount_namespace()?;
            done(commands::build::build(&open()?, &a))
        }
        Command::Run(a) => {
            enter_private_mount_namespace()?;
            commands::run::run(&open()?, &a)
        }
        Command::Push(a) => done(commands::push::push(&open()?, &a)),
        Command::Pull(a) => done(commands::pull::pull(&open()?, &a)),
        Command::Images(a) => done(commands::images::images(&open()?, &a)),
        Command::Inspect(a) => done(commands::images::inspect(&open()?, &a)),
        Command::Import(a) => done(commands::import::import(&open()?, &a)),
        Command::Tag(a) => done(commands::images::tag(&open()?, &a)),
        Command::Rmi(a) => done(commands::images::rmi(&open()?, &a)),
        Command::Debug(cli::DebugCommand::Parse { file }) => done(commands::debug::parse(&file)),
    }
}

/// Mounts made from here on are private to this process and vanish with it, even on SIGKILL.
fn enter_private_mount_namespace() -> Result<()> {
    if !rustix::process::geteuid().is_root() {
        anyhow::bail!("strata needs root to build and run images for now (rootless mode is not supported yet)");
    }
    strata_runner::enter_private_mount_namespace().context("entering a private mount namespace")
}

/// The registry client, reading docker's config.json for credentials.
pub fn registry_client() -> Result<strata_store::registry::RegistryClient> {
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
    if rustix::process::geteuid().is_root() {
        return Ok(PathBuf::from("/var/lib/strata"));
    }
    let home = std::env::var_os("HOME").context("neither --root, STRATA_ROOT, XDG_DATA_HOME nor HOME is set")?;
    Ok(PathBuf::from(home).join(".local/share/strata"))
}
