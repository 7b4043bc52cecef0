//! `-o/--output` specs as `docker buildx build` spells them: CSV `key=value` fields
//! (`type=oci,dest=out.tar,"name=a:1,b:2"`), or the shorthands `-o DIR` (= `type=local,dest=DIR`)
//! and `-o -` (= `type=tar` to stdout).
//!
//! Types: `image` (the local store; `push=true` also pushes), `registry` (= `image,push=true`,
//! what `--push` means), `oci` and `docker` (an image layout tarball at `dest`, or a directory
//! with `tar=false`; `dest=-` writes the tarball to stdout), `local` (the root filesystem into the
//! directory `dest`), `tar` (the root filesystem as a tar at `dest`). Image outputs take
//! `name=`, `compression=gzip|zstd|uncompressed`, `compression-level=N`,
//! `force-compression=true` (also recompress the base image's layers) and, for `docker`,
//! `oci-mediatypes=true`. An option strata does not implement is an error, never ignored.

use std::path::PathBuf;

use strata_store::oci::Compression;

/// What an output produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Image,
    Registry,
    Oci,
    Docker,
    Local,
    Tar,
}

impl Kind {
    /// True for outputs that are images (and so have a manifest digest, names, compression).
    pub fn is_image(self) -> bool {
        matches!(self, Kind::Image | Kind::Registry | Kind::Oci | Kind::Docker)
    }
}

/// Where a file output goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dest {
    Stdout,
    Path(PathBuf),
}

/// One parsed `-o`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub kind: Kind,
    pub dest: Option<Dest>,
    /// `name=`: image names (comma separated inside a quoted field).
    pub names: Vec<String>,
    pub push: bool,
    /// oci/docker: a tarball (default) or a directory.
    pub tar: bool,
    pub compression: Option<Compression>,
    pub compression_level: Option<i32>,
    pub force_compression: bool,
    pub oci_media_types: Option<bool>,
}

impl Output {
    /// `type=image`, the default output.
    pub fn image() -> Output {
        Output {
            kind: Kind::Image,
            dest: None,
            names: Vec::new(),
            push: false,
            tar: true,
            compression: None,
            compression_level: None,
            force_compression: false,
            oci_media_types: None,
        }
    }
}

fn parse_bool(key: &str, v: &str) -> Result<bool, String> {
    match v {
        "" | "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(format!("{key}={v:?}: expected true or false")),
    }
}

/// Parses one `-o` value.
pub fn parse_output(spec: &str) -> Result<Output, String> {
    let err = |m: String| format!("invalid output {spec:?}: {m}");
    if !spec.contains('=') {
        let mut o = Output::image();
        if spec == "-" {
            o.kind = Kind::Tar;
            o.dest = Some(Dest::Stdout);
        } else if spec.is_empty() {
            return Err(err("empty".to_string()));
        } else {
            o.kind = Kind::Local;
            o.dest = Some(Dest::Path(PathBuf::from(spec)));
        }
        return Ok(o);
    }
    let mut o = Output::image();
    let mut kind = None;
    for field in strata_frontend::csv::fields(spec).map_err(err)? {
        let (k, v) = field.split_once('=').unwrap_or((field.as_str(), ""));
        let k = k.trim().to_ascii_lowercase();
        match k.as_str() {
            "type" => {
                kind = Some(match v {
                    "image" => Kind::Image,
                    "registry" => Kind::Registry,
                    "oci" => Kind::Oci,
                    "docker" => Kind::Docker,
                    "local" => Kind::Local,
                    "tar" => Kind::Tar,
                    "cacheonly" => return Err(err("type=cacheonly is not supported".to_string())),
                    other => {
                        return Err(err(format!("unknown type {other:?} (image, registry, oci, docker, local, tar)")));
                    }
                })
            }
            "dest" => {
                o.dest = Some(if v == "-" { Dest::Stdout } else { Dest::Path(PathBuf::from(v)) });
            }
            "name" => o.names.extend(v.split(',').map(str::trim).filter(|n| !n.is_empty()).map(str::to_string)),
            "push" => o.push = parse_bool(&k, v).map_err(err)?,
            "tar" => o.tar = parse_bool(&k, v).map_err(err)?,
            "force-compression" => o.force_compression = parse_bool(&k, v).map_err(err)?,
            "oci-mediatypes" => o.oci_media_types = Some(parse_bool(&k, v).map_err(err)?),
            "compression" => o.compression = Some(parse_compression(v).map_err(err)?),
            "compression-level" => {
                o.compression_level =
                    Some(v.parse().map_err(|_| err(format!("compression-level={v:?} is not an integer")))?)
            }
            _ => return Err(err(format!("option {k:?} is not supported"))),
        }
    }
    o.kind = kind.ok_or_else(|| err("no type= (image, registry, oci, docker, local, tar)".to_string()))?;
    if o.kind == Kind::Registry {
        o.push = true;
    }
    match o.kind {
        Kind::Image | Kind::Registry => {
            if o.dest.is_some() {
                return Err(err(format!("type={} has no dest", kind_name(o.kind))));
            }
        }
        Kind::Oci | Kind::Docker | Kind::Tar => {
            if o.dest.is_none() {
                return Err(err(format!("type={} needs dest=FILE (or dest=- for stdout)", kind_name(o.kind))));
            }
            if !o.tar && o.dest == Some(Dest::Stdout) {
                return Err(err("tar=false writes a directory: dest=- is not possible".to_string()));
            }
        }
        Kind::Local => match &o.dest {
            None => return Err(err("type=local needs dest=DIRECTORY".to_string())),
            Some(Dest::Stdout) => return Err(err("type=local writes a directory: dest=- is not possible".to_string())),
            Some(Dest::Path(_)) => {}
        },
    }
    if o.push && o.kind != Kind::Image && o.kind != Kind::Registry {
        return Err(err(format!("push=true is for type=image, not type={}", kind_name(o.kind))));
    }
    if !o.kind.is_image()
        && (o.compression.is_some() || o.compression_level.is_some() || o.force_compression || !o.names.is_empty())
    {
        return Err(err(format!(
            "type={} writes files, not an image: no name= or compression options",
            kind_name(o.kind)
        )));
    }
    Ok(o)
}

/// `gzip`, `zstd`, `uncompressed`, as BuildKit names them.
pub fn parse_compression(v: &str) -> Result<Compression, String> {
    match v {
        "gzip" => Ok(Compression::Gzip),
        "zstd" => Ok(Compression::Zstd),
        "uncompressed" => Ok(Compression::None),
        "estargz" => Err("compression=estargz is not supported (gzip, zstd, uncompressed)".to_string()),
        other => Err(format!("unknown compression {other:?} (gzip, zstd, uncompressed)")),
    }
}

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::Image => "image",
        Kind::Registry => "registry",
        Kind::Oci => "oci",
        Kind::Docker => "docker",
        Kind::Local => "local",
        Kind::Tar => "tar",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buildx_spellings() {
        let o = parse_output("type=oci,dest=out.tar").unwrap();
        assert_eq!((o.kind, o.dest, o.tar), (Kind::Oci, Some(Dest::Path("out.tar".into())), true));
        let o = parse_output("type=oci,dest=layout,tar=false").unwrap();
        assert!(!o.tar);
        let o = parse_output("type=registry").unwrap();
        assert!(o.push && o.kind == Kind::Registry);
        let o = parse_output("type=image,compression=zstd,compression-level=19,force-compression=true").unwrap();
        assert_eq!(
            (o.compression, o.compression_level, o.force_compression),
            (Some(Compression::Zstd), Some(19), true)
        );
        let o = parse_output(r#"type=docker,dest=-,"name=a:1,b:2""#).unwrap();
        assert_eq!((o.dest, o.names), (Some(Dest::Stdout), vec!["a:1".to_string(), "b:2".to_string()]));
        assert_eq!(parse_output("out-dir").unwrap().kind, Kind::Local);
        let o = parse_output("-").unwrap();
        assert_eq!((o.kind, o.dest), (Kind::Tar, Some(Dest::Stdout)));
        let o = parse_output("type=image,push=true,compression=uncompressed").unwrap();
        assert_eq!((o.push, o.compression), (true, Some(Compression::None)));
    }

    #[test]
    fn mistakes_are_errors() {
        for (spec, needle) in [
            ("type=oci", "needs dest"),
            ("type=local", "needs dest"),
            ("type=local,dest=-", "not possible"),
            ("dest=x", "no type"),
            ("type=weird", "unknown type"),
            ("type=image,compression=lz4", "unknown compression"),
            ("type=image,compression=estargz", "not supported"),
            ("type=image,compression-level=high", "not an integer"),
            ("type=image,unpack=true", "not supported"),
            ("type=tar,dest=x,compression=zstd", "writes files"),
            ("type=oci,dest=x,push=true", "push=true is for type=image"),
            ("type=image,dest=x", "has no dest"),
            ("type=image,push=maybe", "expected true or false"),
            (r#"type=oci,"dest=x"#, "unterminated"),
        ] {
            let e = parse_output(spec).unwrap_err();
            assert!(e.contains(needle), "{spec}: {e}");
        }
    }
}
