//! `--cache-to` and `--cache-from`, spelled as `docker buildx build` spells them:
//! `type=registry,ref=REG/repo:tag[,mode=min|max][,mounts=true]`, `type=local,dest=DIR` /
//! `type=local,src=DIR` (`tag=` names the cache in the layout), or a bare reference for
//! `type=registry`. `ignore-error=true` turns a failed export into a warning. `type=inline` and
//! other compressions than gzip are refused as not supported yet.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Result, bail};
use strata_builder::remote_cache::{CacheRemote, DEFAULT_LAYOUT_TAG, LayoutRemote, RegistryRemote};
use strata_store::reference::Reference;
use strata_store::registry::RegistryClient;

/// Where a cache goes or comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheLocation {
    Registry(Reference),
    Local { dir: PathBuf, tag: String },
}

/// One `--cache-to` / `--cache-from` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheSpec {
    pub location: CacheLocation,
    /// mode=max: every step, not only the final image's.
    pub all_steps: bool,
    /// mounts=true: the contents of cache mounts too.
    pub mounts: bool,
    pub ignore_error: bool,
}

impl CacheSpec {
    pub fn parse(text: &str, export: bool) -> Result<CacheSpec> {
        let flag = if export { "--cache-to" } else { "--cache-from" };
        if !text.contains('=') {
            let r = Reference::parse(text).map_err(|e| anyhow::anyhow!("{flag} {text}: {e}"))?;
            return Ok(CacheSpec {
                location: CacheLocation::Registry(r),
                all_steps: false,
                mounts: false,
                ignore_error: false,
            });
        }
        let mut kind = "registry".to_string();
        let (mut reference, mut dir, mut tag) = (None, None, DEFAULT_LAYOUT_TAG.to_string());
        let (mut all_steps, mut mounts, mut ignore_error) = (false, false, false);
        for field in text.split(',') {
            let (k, v) = field.split_once('=').unwrap_or((field, ""));
            let yes = |v: &str| -> Result<bool> {
                match v {
                    "true" | "" => Ok(true),
                    "false" => Ok(false),
                    other => bail!("{flag}: {k}={other}: expected true or false"),
                }
            };
            match k {
                "type" => kind = v.to_string(),
                "ref" => reference = Some(v.to_string()),
                "dest" if export => dir = Some(PathBuf::from(v)),
                "src" if !export => dir = Some(PathBuf::from(v)),
                "tag" => tag = v.to_string(),
                "mode" if export => {
                    all_steps = match v {
                        "max" => true,
                        "min" => false,
                        other => bail!("{flag}: mode={other}: expected min or max"),
                    }
                }
                "mounts" if export => mounts = yes(v)?,
                "ignore-error" => ignore_error = yes(v)?,
                "compression" if export => {
                    if v != "gzip" {
                        bail!("not supported yet: {flag} compression={v} (caches are exported with gzip)");
                    }
                }
                // Accepted for compatibility; strata's cache manifests are always OCI.
                "oci-mediatypes" | "image-manifest" => {}
                other => bail!("{flag}: unknown option {other:?} in {text:?}"),
            }
        }
        let location = match kind.as_str() {
            "registry" => {
                let r = reference.ok_or_else(|| anyhow::anyhow!("{flag} type=registry needs ref=REG/repo:tag"))?;
                CacheLocation::Registry(Reference::parse(&r).map_err(|e| anyhow::anyhow!("{flag} ref={r}: {e}"))?)
            }
            "local" => {
                let which = if export { "dest" } else { "src" };
                let dir = dir.ok_or_else(|| anyhow::anyhow!("{flag} type=local needs {which}=DIR"))?;
                CacheLocation::Local { dir: std::path::absolute(&dir).unwrap_or(dir), tag }
            }
            "inline" => bail!("not supported yet: {flag} type=inline (use type=registry or type=local)"),
            other => bail!("{flag}: unknown cache type {other:?} (registry or local)"),
        };
        Ok(CacheSpec { location, all_steps, mounts, ignore_error })
    }

    /// The transport for this location.
    pub fn remote(&self, client: &Arc<RegistryClient>) -> Box<dyn CacheRemote> {
        match &self.location {
            CacheLocation::Registry(r) => Box::new(RegistryRemote { client: client.clone(), reference: r.clone() }),
            CacheLocation::Local { dir, tag } => Box::new(LayoutRemote { dir: dir.clone(), tag: tag.clone() }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buildx_spellings() {
        let s = CacheSpec::parse("type=registry,ref=127.0.0.1:5000/app:cache,mode=max,mounts=true", true).unwrap();
        assert_eq!(s.location, CacheLocation::Registry(Reference::parse("127.0.0.1:5000/app:cache").unwrap()));
        assert!(s.all_steps && s.mounts && !s.ignore_error);
        let s = CacheSpec::parse("127.0.0.1:5000/app:cache", false).unwrap();
        assert!(matches!(s.location, CacheLocation::Registry(_)));
        let s = CacheSpec::parse("type=local,src=/tmp/c,tag=v2", false).unwrap();
        assert_eq!(s.location, CacheLocation::Local { dir: "/tmp/c".into(), tag: "v2".into() });
        assert!(CacheSpec::parse("type=local,dest=/tmp/c", false).is_err(), "dest is for --cache-to");
        assert!(CacheSpec::parse("type=registry", true).is_err());
        assert!(CacheSpec::parse("type=inline", true).unwrap_err().to_string().contains("not supported yet"));
        assert!(CacheSpec::parse("type=registry,ref=r/x:1,compression=zstd", true).is_err());
        assert!(CacheSpec::parse("type=registry,ref=r/x:1,bogus=1", true).is_err());
        assert!(CacheSpec::parse("type=registry,ref=r/x:1,mode=huge", true).is_err());
    }
}
