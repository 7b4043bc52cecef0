//! `strata run IMAGE [CMD...]`: runs an image from the store in the sandbox, so a built image
//! can be tried without Docker.
//!
//! The process is what `docker run` would start: the image's Entrypoint followed by its Cmd (or
//! the command given on the line), its Env plus `-e` values, its WorkingDir and User, on the
//! host network unless `--network none`. The root filesystem is the image's layers with a
//! scratch upper that is thrown away when the process exits, so the image never changes; stdout
//! and stderr are passed through and the exit code is strata's exit code.

use std::io::Write;

use anyhow::{Context, Result, bail};
use strata_builder::cache::Layer;
use strata_builder::layers;
use strata_runner::spec::{Network, Process, Rootfs, SandboxSpec};
use strata_runner::{Cancel, ExitStatus, OutputStream, RunnerConfig};
use strata_store::Store;
use strata_store::oci::DEFAULT_PATH;

use crate::cli::RunArgs;
use crate::commands::images::find_image;

/// Runs the image; returns the process's exit code.
pub fn run(store: &Store, a: &RunArgs) -> Result<i32> {
    let (_, desc) = find_image(store, &a.image)?;
    // An index (a multi-platform image) runs as the host's platform.
    let image = crate::commands::images::image_for_platform(store, &desc, &strata_store::oci::Platform::host())
        .with_context(|| format!("reading image {}", a.image))?;
    let cfg = &image.config.config;
    let mut args: Vec<String> = match &a.entrypoint {
        Some(ep) => vec![ep.clone()],
        None => cfg.entrypoint.clone().unwrap_or_default(),
    };
    if a.command.is_empty() && a.entrypoint.is_none() {
        args.extend(cfg.cmd.clone().unwrap_or_default());
    } else {
        args.extend(a.command.iter().cloned());
    }
    if args.is_empty() {
        bail!("image {} has no Entrypoint or Cmd: give a command (strata run {} CMD...)", a.image, a.image);
    }
    let mut env = cfg.env.clone().unwrap_or_default();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(0, format!("PATH={DEFAULT_PATH}"));
    }
    for kv in &a.env {
        let name = kv.split_once('=').map_or(kv.as_str(), |(k, _)| k);
        let value = match kv.split_once('=') {
            Some(_) => kv.clone(),
            // `-e NAME` takes the value from strata's environment, as docker run does.
            None => match std::env::var(name) {
                Ok(v) => format!("{name}={v}"),
                Err(_) => continue,
            },
        };
        env.retain(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) != name);
        env.push(value);
    }
    let chain: Vec<Layer> = image
        .layers()
        .map(|(blob, diff_id)| Layer { diff_id: diff_id.clone(), blob: blob.clone(), created: None })
        .collect();
    let lower = layers::snapshots(store, &chain).map_err(|e| anyhow::anyhow!("{e}"))?;
    let scratch = store.snapshots.scratch()?;
    let spec = SandboxSpec {
        rootfs: Rootfs { lower, upper: scratch.upper(), work: scratch.work() },
        process: Process {
            args,
            env,
            cwd: if cfg.working_dir.is_empty() { "/".to_string() } else { cfg.working_dir.clone() },
            user: a.user.clone().unwrap_or_else(|| cfg.user.clone()),
        },
        hostname: a.hostname.clone().unwrap_or_else(|| image.descriptor.digest.short().to_string()),
        network: match a.network.as_deref() {
            None | Some("host") | Some("default") => Network::Host,
            Some("none") => Network::None,
            Some(other) => bail!("unsupported --network {other:?} (host or none)"),
        },
        security: strata_runner::spec::Security::Sandbox,
        mounts: Vec::new(),
    };
    let cancel = Cancel::new();
    crate::signals::on_interrupt(cancel.clone());
    let mut stdout = std::io::stdout();
    let mut stderr = std::io::stderr();
    let status = strata_runner::run_with(&RunnerConfig::default(), &spec, &cancel, &mut |stream, data| {
        // A closed pipe on our side must not kill the container's output handling.
        let _ = match stream {
            OutputStream::Stdout => stdout.write_all(data).and_then(|_| stdout.flush()),
            OutputStream::Stderr => stderr.write_all(data),
        };
    })
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(match status {
        ExitStatus::Code(c) => c,
        ExitStatus::Signal(s) => 128 + s,
    })
}
