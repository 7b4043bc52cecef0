//! `strata fsck [--repair]`, `strata prune`, `strata system df`: the store's health and size.
//!
//! These open the store without a lease (they are the GC side of [`strata_store::lease`]):
//! `prune` and `fsck --repair` take the GC lock, so they run alongside builds without removing
//! anything a build uses. The build cache is seen through the builder's [`CacheStore`].

use std::io::Write;

use anyhow::{Context, Result, bail};
use strata_builder::cache::CacheStore;
use strata_store::Store;
use strata_store::gc::{self, Category, Policy};

use crate::cli::{FsckArgs, PruneArgs};
use crate::commands::images::human_size;

fn cache(store: &Store) -> Result<CacheStore> {
    CacheStore::open(&store.cache_dir()).map_err(|e| anyhow::anyhow!("{e}"))
}

/// Exit status 0 when the store is sound (or everything broken was repaired), 1 otherwise.
pub fn fsck(store: &Store, a: &FsckArgs) -> Result<i32> {
    let report = strata_store::fsck::fsck(store, &cache(store)?, a.repair)?;
    let mut out = std::io::stdout().lock();
    for p in &report.problems {
        let state = if p.repaired { "removed" } else { "BROKEN" };
        writeln!(out, "{state}: {:?} {}: {}", p.kind, p.subject, p.detail)?;
    }
    for n in &report.notes {
        writeln!(out, "note: {n}")?;
    }
    writeln!(
        out,
        "checked {} blobs, {} images, {} cache records, {} snapshots: {}",
        report.blobs,
        report.images,
        report.records,
        report.snapshots,
        match (report.problems.len(), report.ok()) {
            (0, _) => "no problems".to_string(),
            (n, true) => format!("{n} problem(s), repaired"),
            (n, false) => format!("{n} problem(s) (strata fsck --repair removes what is broken)"),
        }
    )?;
    Ok(if report.ok() { 0 } else { 1 })
}

/// `--filter until=24h` (the only filter, as `docker builder prune` has it).
fn policy(a: &PruneArgs) -> Result<Policy> {
    let mut p = Policy { dry_run: a.dry_run, ..Policy::default() };
    for f in &a.filter {
        let Some((k, v)) = f.split_once('=') else { bail!("invalid filter {f:?} (expected until=DURATION)") };
        match k {
            "until" => p.until = Some(gc::parse_duration(v).map_err(anyhow::Error::msg)?),
            _ => bail!("unsupported filter {k:?} (supported: until=DURATION)"),
        }
    }
    if let Some(s) = &a.keep_storage {
        p.keep_storage = Some(gc::parse_size(s).map_err(anyhow::Error::msg)?);
    }
    Ok(p)
}

pub fn prune(store: &Store, a: &PruneArgs) -> Result<()> {
    let policy = policy(a)?;
    let r = gc::prune(store, &cache(store)?, &policy).context("pruning the store")?;
    let verb = if a.dry_run { "Would remove" } else { "Removed" };
    println!(
        "{verb}: {} cache record(s), {} cache mount(s), {} blob(s), {} snapshot(s), {} temporary file(s)",
        r.records, r.cache_mounts, r.blobs, r.snapshots, r.temporary
    );
    if r.in_use > 0 {
        println!("Kept {} cache record(s)/mount(s) in use by running builds", r.in_use);
    }
    println!("Total reclaimed space: {}", human_size(r.freed));
    Ok(())
}

pub fn df(store: &Store) -> Result<()> {
    let u = gc::usage(store, &cache(store)?)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{:<16} {:>8} {:>8} {:>12} {:>12}", "TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE")?;
    let row = |out: &mut dyn Write, name: &str, c: &Category| {
        writeln!(
            out,
            "{:<16} {:>8} {:>8} {:>12} {:>12}",
            name,
            c.total,
            c.active,
            human_size(c.size),
            human_size(c.reclaimable)
        )
    };
    row(&mut out, "Images", &u.images)?;
    row(&mut out, "Build cache", &u.build_cache)?;
    row(&mut out, "Cache mounts", &u.cache_mounts)?;
    row(&mut out, "Unreferenced", &u.unreferenced)?;
    row(&mut out, "Temporary", &u.temporary)?;
    Ok(())
}
