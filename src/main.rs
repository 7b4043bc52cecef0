//! The `strata` binary: parses the command line and wires the libraries together. All the
//! work happens in the frontend, builder, runner and store crates; this file only decides
//! which of them to call and turns their errors into messages and exit codes.

mod cli;
mod commands;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;
use strata_store::Store;

use cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    let root = store_root(cli.root)?;
    let open = || Store::open(&root).with_context(|| format!("opening the store at {}", root.display()));
    match cli.command {
        Command::Images(a) => commands::images::images(&open()?, &a),
        Command::Inspect(a) => commands::images::inspect(&open()?, &a),
        Command::Tag(a) => commands::images::tag(&open()?, &a),
        Command::Rmi(a) => commands::images::rmi(&open()?, &a),
        other => anyhow::bail!("{other:?} is not wired yet"),
    }
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
