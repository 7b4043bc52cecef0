//! `--cache-to` and `--cache-from`, spelled as `docker buildx build` spells them:
//! `type=registry,ref=REG/repo:tag[,mode=min|max][,mounts=true]`, `type=local,dest=DIR` /
//! `type=local,src=DIR` (`tag=` names the cache in the layout), `type=inline` (the cache in the
//! image's own config; export only: `--cache-from` reads it with `type=registry,ref=IMAGE`, as
//! with buildx), or a bare reference for `type=registry`. `ignore-error=true` turns a failed
//! export into a warning; `compression=gzip|zstd|uncompressed`, `compression-level=N` and
//! `force-compression` choose the encoding of the exported layers.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Result, bail};
use strata_builder::remote_cache::{CacheRemote, DEFAULT_LAYOUT_TAG, LayoutRemote, RegistryRemote};
use strata_store::export::variants::Target;
use strata_store::oci::Compression;
use strata_store::reference::Reference;
use strata_store::registry::RegistryClient;

/// Where a cache goes or comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheLocation {
    Registry(Reference),
    Local {
        dir: PathBuf,
        tag: String,
    },
    /// In the built image's config (export only).
    Inline,
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
    /// The exported layers' encoding (`None`: as stored).
    pub compression: Option<Target>,
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
                compression: None,
            });
        }
        let mut kind = "registry".to_string();
        let (mut reference, mut dir, mut tag) = (None, None, DEFAULT_LAYOUT_TAG.to_string());
        let (mut all_steps, mut mounts, mut ignore_error) = (false, false, false);
        let (mut compression, mut level) = (None, None);
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
                    compression = Some(match v {
                        "gzip" => Compression::Gzip,
                        "zstd" => Compression::Zstd,
                        "uncompressed" => Compression::None,
                        other => bail!("{flag}: compression={other}: expected gzip, zstd or uncompressed"),
                    })
                }
                "compression-level" if export => {
                    level = Some(
                        v.parse::<i32>().map_err(|_| anyhow::anyhow!("{flag}: compression-level={v}: not a number"))?,
                    )
                }
                // Accepted for compatibility: a layer is re-encoded whenever its encoding differs,
                // and strata's cache manifests are always OCI.
                "force-compression" | "oci-mediatypes" | "image-manifest" => {}
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
            "inline" if export => {
                if mounts {
                    bail!(
                        "{flag} type=inline cannot carry cache mounts (mounts=true needs type=registry or type=local)"
                    );
                }
                CacheLocation::Inline
            }
            "inline" => bail!("{flag} type=inline: an image's inline cache is read with type=registry,ref=IMAGE"),
            other => bail!("{flag}: unknown cache type {other:?} (registry or local)"),
        };
        let compression = match (compression, level) {
            (None, None) => None,
            (c, l) => Some(Target::new(c.unwrap_or(Compression::Gzip), l).map_err(|e| anyhow::anyhow!("{flag}: {e}"))?),
        };
        Ok(CacheSpec { location, all_steps, mounts, ignore_error, compression })
    }

    /// The transport for this location (`None` for inline: the image carries it).
    pub fn remote(&self, client: &Arc<RegistryClient>) -> Option<Box<dyn CacheRemote>> {
        match &self.location {
            CacheLocation::Registry(r) => {
                Some(Box::new(RegistryRemote { client: client.clone(), reference: r.clone() }))
            }
            CacheLocation::Local { dir, tag } => Some(Box::new(LayoutRemote { dir: dir.clone(), tag: tag.clone() })),
            CacheLocation::Inline => None,
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
        assert_eq!(CacheSpec::parse("type=inline", true).unwrap().location, CacheLocation::Inline);
        assert!(CacheSpec::parse("type=inline", false).is_err(), "imported with type=registry");
        assert!(CacheSpec::parse("type=inline,mounts=true", true).is_err());
        let s = CacheSpec::parse("type=registry,ref=r/x:1,compression=zstd,compression-level=9", true).unwrap();
        assert_eq!(s.compression, Some(Target::new(Compression::Zstd, Some(9)).unwrap()));
        assert!(CacheSpec::parse("type=registry,ref=r/x:1,compression=lz4", true).is_err());
        assert!(CacheSpec::parse("type=registry,ref=r/x:1,compression=gzip,compression-level=12", true).is_err());
        assert!(CacheSpec::parse("type=registry,ref=r/x:1,bogus=1", true).is_err());
        assert!(CacheSpec::parse("type=registry,ref=r/x:1,mode=huge", true).is_err());
    }
}
