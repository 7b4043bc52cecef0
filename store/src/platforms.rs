//! Platforms as users write them (`--platform linux/amd64,linux/arm64`, `FROM --platform=…`)
//! and multi-platform image indexes in the store.
//!
//! Parsing and normalization follow containerd's `platforms` package, which BuildKit uses: a
//! specifier is `os/arch[/variant]`; `x86_64` is `amd64`, `aarch64` is `arm64`; `arm64/v8` is
//! plain `arm64` (v8 is the only arm64 there is for images, so the variant is dropped), `arm`
//! without a variant is `arm/v7`. Two platforms match when their normalized os, architecture and
//! variant agree (see [`same`]).
//!
//! [`write_index`] stores an OCI image index over single-platform images as BuildKit's image
//! exporter writes one: `application/vnd.oci.image.index.v1+json`, one entry per platform in
//! the order given, each with `platform {architecture, os, variant when any}`.
//! [`pick`] reads a stored index and returns the entry for a platform.

use crate::blobs::{BlobError, BlobStore};
use crate::digest::Digest;
use crate::oci::{self, Descriptor, Index, Platform, media};

/// Errors parsing platforms or reading/writing indexes.
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    #[error("invalid platform {spec:?}: {reason} (expected os/arch[/variant], e.g. linux/arm64)")]
    Invalid { spec: String, reason: &'static str },
    #[error("platform {spec} is given twice")]
    Duplicate { spec: String },
    #[error(transparent)]
    Blob(#[from] BlobError),
    #[error("image index {digest} is not valid JSON: {source}")]
    BadIndex {
        digest: Digest,
        #[source]
        source: serde_json::Error,
    },
}

/// Normalizes an architecture and variant as containerd does.
fn normalize_arch(arch: &str, variant: Option<&str>) -> (String, Option<String>) {
    let arch = arch.to_ascii_lowercase();
    let variant = variant.map(str::to_ascii_lowercase).filter(|v| !v.is_empty());
    match arch.as_str() {
        "i386" => ("386".into(), None),
        "x86_64" | "x86-64" | "amd64" => ("amd64".into(), variant.filter(|v| v != "v1")),
        "aarch64" | "arm64" => {
            let variant = match variant.as_deref() {
                Some("8" | "v8" | "v8.0") => None,
                Some("9" | "9.0" | "v9.0") => Some("v9".into()),
                _ => variant,
            };
            ("arm64".into(), variant)
        }
        "armhf" => ("arm".into(), Some("v7".into())),
        "armel" => ("arm".into(), Some("v6".into())),
        "arm" => {
            let variant = match variant.as_deref() {
                None | Some("7") => Some("v7".into()),
                Some(v @ ("5" | "6" | "8")) => Some(format!("v{v}")),
                _ => variant,
            };
            ("arm".into(), variant)
        }
        _ => (arch, variant),
    }
}

/// `p` normalized (see the module doc); os.version/os.features are kept.
pub fn normalize(p: &Platform) -> Platform {
    let (architecture, variant) = normalize_arch(&p.architecture, p.variant.as_deref());
    let os = match p.os.to_ascii_lowercase().as_str() {
        "macos" => "darwin".to_string(),
        other => other.to_string(),
    };
    Platform { architecture, os, variant, ..p.clone() }
}

/// True if `a` and `b` name the same platform once normalized (a missing variant on either
/// side matches, as images often omit it).
pub fn same(a: &Platform, b: &Platform) -> bool {
    normalize(a).matches(&normalize(b))
}

/// Parses one `os/arch[/variant]` specifier, normalized. `local` is the host platform.
pub fn parse(spec: &str) -> Result<Platform, PlatformError> {
    let spec = spec.trim();
    if spec == "local" {
        return Ok(normalize(&Platform::host()));
    }
    let invalid = |reason| PlatformError::Invalid { spec: spec.to_string(), reason };
    let parts: Vec<&str> = spec.split('/').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(invalid("empty component"));
    }
    if parts.iter().any(|p| !p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')) {
        return Err(invalid("unexpected character"));
    }
    let (os, arch, variant) = match parts.as_slice() {
        [os, arch] => (*os, *arch, None),
        [os, arch, variant] => (*os, *arch, Some(*variant)),
        _ => return Err(invalid("wrong number of components")),
    };
    Ok(normalize(&Platform {
        architecture: arch.to_string(),
        os: os.to_string(),
        os_version: None,
        os_features: None,
        variant: variant.map(str::to_string),
    }))
}

/// Parses a comma-separated `--platform` list, in order; the same platform twice is an error.
pub fn parse_list(spec: &str) -> Result<Vec<Platform>, PlatformError> {
    let mut out: Vec<Platform> = Vec::new();
    for one in spec.split(',') {
        let p = parse(one)?;
        if out.contains(&p) {
            return Err(PlatformError::Duplicate { spec: p.to_spec() });
        }
        out.push(p);
    }
    Ok(out)
}

/// The platform as an index entry records it: architecture, os and variant only.
fn entry_platform(p: &Platform) -> Platform {
    let n = normalize(p);
    Platform { os_version: None, os_features: None, ..n }
}

/// Stores an OCI image index over `images` (manifest descriptor and platform, in order) and
/// returns its descriptor. The manifests must be in the store already.
pub fn write_index(blobs: &BlobStore, images: &[(Descriptor, Platform)]) -> Result<Descriptor, PlatformError> {
    let manifests = images
        .iter()
        .map(|(d, p)| Descriptor {
            platform: Some(entry_platform(p)),
            annotations: None,
            ..Descriptor::new(d.media_type.clone(), d.digest.clone(), d.size)
        })
        .collect();
    let index = Index {
        schema_version: 2,
        media_type: Some(media::OCI_INDEX.to_string()),
        artifact_type: None,
        manifests,
        subject: None,
        annotations: None,
    };
    let bytes = oci::to_canonical_json(&index);
    let digest = blobs.put(&bytes)?;
    Ok(Descriptor::new(media::OCI_INDEX, digest, bytes.len() as u64))
}

/// Reads the stored index `desc`.
pub fn read_index(blobs: &BlobStore, desc: &Descriptor) -> Result<Index, PlatformError> {
    let bytes = blobs.read(&desc.digest)?;
    serde_json::from_slice(&bytes).map_err(|source| PlatformError::BadIndex { digest: desc.digest.clone(), source })
}

/// The entry of `index` for `platform`: an exact match (variant included) before a
/// variant-tolerant one, as containerd's matcher orders them. Only image manifests count.
pub fn pick<'a>(index: &'a Index, platform: &Platform) -> Option<&'a Descriptor> {
    let want = normalize(platform);
    let candidates = || index.manifests.iter().filter(|d| media::is_manifest(&d.media_type));
    candidates()
        .find(|d| d.platform.as_ref().map(normalize).is_some_and(|p| want.matches(&p) && p.variant == want.variant))
        .or_else(|| candidates().find(|d| d.platform.as_ref().is_some_and(|p| same(&want, p))))
}

/// The directory name buildx gives a platform's files in a multi-platform local export
/// (`linux_amd64`, `linux_arm_v7`).
pub fn dir_name(p: &Platform) -> String {
    normalize(p).to_spec().replace('/', "_")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(spec: &str) -> Platform {
        parse(spec).unwrap()
    }

    #[test]
    fn parses_and_normalizes_like_containerd() {
        assert_eq!(p("linux/amd64").to_spec(), "linux/amd64");
        assert_eq!(p("linux/x86_64").to_spec(), "linux/amd64");
        assert_eq!(p("linux/arm64").to_spec(), "linux/arm64");
        assert_eq!(p("linux/arm64/v8").to_spec(), "linux/arm64");
        assert_eq!(p("linux/aarch64").to_spec(), "linux/arm64");
        assert_eq!(p("linux/arm").to_spec(), "linux/arm/v7");
        assert_eq!(p("linux/armhf").to_spec(), "linux/arm/v7");
        assert_eq!(p("Linux/AMD64").to_spec(), "linux/amd64");
        assert_eq!(p("local"), normalize(&Platform::host()));
    }

    #[test]
    fn rejects_bad_specifiers() {
        for bad in ["", "linux", "linux/", "/amd64", "linux/amd64/v1/x", "linux/am d64", "linux//amd64"] {
            assert!(parse(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(matches!(parse_list("linux/arm64,linux/arm64/v8"), Err(PlatformError::Duplicate { .. })));
        let list = parse_list("linux/amd64,linux/arm64").unwrap();
        assert_eq!(list.iter().map(Platform::to_spec).collect::<Vec<_>>(), ["linux/amd64", "linux/arm64"]);
    }

    #[test]
    fn arm64_matches_arm64_v8_but_not_amd64() {
        let v8 = Platform { variant: Some("v8".into()), ..p("linux/arm64") };
        assert!(same(&p("linux/arm64"), &v8));
        assert!(!same(&p("linux/arm64"), &p("linux/amd64")));
        assert!(!same(&p("linux/arm/v6"), &p("linux/arm/v7")));
    }

    #[test]
    fn index_round_trip_and_pick() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::open(dir.path()).unwrap();
        let a = Descriptor::new(media::OCI_MANIFEST, blobs.put(b"{\"a\":1}").unwrap(), 7);
        let b = Descriptor::new(media::OCI_MANIFEST, blobs.put(b"{\"b\":1}").unwrap(), 7);
        let v8 = Platform { variant: Some("v8".into()), ..p("linux/arm64") };
        let desc = write_index(&blobs, &[(a.clone(), p("linux/amd64")), (b.clone(), v8)]).unwrap();
        assert_eq!(desc.media_type, media::OCI_INDEX);
        let index = read_index(&blobs, &desc).unwrap();
        assert_eq!(index.media_type.as_deref(), Some(media::OCI_INDEX));
        assert_eq!(index.manifests[0].digest, a.digest);
        let arm = index.manifests[1].platform.as_ref().unwrap();
        assert_eq!((arm.architecture.as_str(), arm.os.as_str(), arm.variant.as_ref()), ("arm64", "linux", None));
        assert_eq!(pick(&index, &p("linux/arm64/v8")).unwrap().digest, b.digest);
        assert_eq!(pick(&index, &p("linux/amd64")).unwrap().digest, a.digest);
        assert!(pick(&index, &p("linux/s390x")).is_none());
        let raw = String::from_utf8(blobs.read(&desc.digest).unwrap()).unwrap();
        assert!(!raw.contains("annotations"), "{raw}");
    }

    #[test]
    fn malformed_index_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::open(dir.path()).unwrap();
        let d = Descriptor::new(media::OCI_INDEX, blobs.put(b"{not json").unwrap(), 9);
        assert!(matches!(read_index(&blobs, &d), Err(PlatformError::BadIndex { .. })));
    }
}
