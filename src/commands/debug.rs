//! `strata debug parse FILE`: the syntax tree in BuildKit's parser test format.

use std::path::Path;

use anyhow::{Context, Result};

pub fn parse(file: &Path) -> Result<()> {
    let source = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let df = strata_frontend::parser::parse_bytes(&source, &file.display().to_string())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    print!("{}", df.dump());
    Ok(())
}
