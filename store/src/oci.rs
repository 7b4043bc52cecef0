//! OCI and Docker image documents: manifests, indexes, image configs, descriptors.
//!
//! Our own serde types instead of the `oci-spec` crate, for two reasons: that crate drops the
//! Docker fields BuildKit keeps (`Healthcheck`, `OnBuild`, `Shell`, `ArgsEscaped`), and the byte
//! layout of what we write must match what BuildKit writes, because image digests are hashes of
//! these bytes.
//!
//! Field order, as BuildKit 0.13 writes it (checked against images it built):
//! - image config, top level: keys sorted alphabetically (BuildKit patches the config through a
//!   `map[string]json.RawMessage`), so the struct fields below are declared in that order;
//! - the inner `config`: Go struct order of `ocispec.ImageConfig` followed by Docker's extension
//!   (`User, ExposedPorts, Env, Entrypoint, Cmd, Volumes, WorkingDir, Labels, StopSignal,
//!   ArgsEscaped, Healthcheck, OnBuild, Shell`);
//! - manifests, indexes and descriptors: OCI's Go struct order.
//!
//! Maps are `BTreeMap`s so that they serialize sorted, as Go does. Reading is lenient (unknown
//! fields ignored, `null` accepted wherever Go would accept it), writing is exact.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

use crate::digest::Digest;

pub mod media {
    //! Media types strata reads and writes.
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
    pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
    pub const OCI_LAYER_NONDIST_GZIP: &str = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
    pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
    pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
    pub const DOCKER_LAYER_FOREIGN_GZIP: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";

    /// True for single-image manifests (OCI or Docker schema 2).
    pub fn is_manifest(mt: &str) -> bool {
        mt == OCI_MANIFEST || mt == DOCKER_MANIFEST
    }

    /// True for multi-platform indexes (OCI index or Docker manifest list).
    pub fn is_index(mt: &str) -> bool {
        mt == OCI_INDEX || mt == DOCKER_MANIFEST_LIST
    }

    /// How a layer blob of this media type is compressed, if it is a layer at all.
    pub fn layer_compression(mt: &str) -> Option<super::Compression> {
        use super::Compression::*;
        match mt {
            OCI_LAYER => Some(None),
            OCI_LAYER_GZIP | DOCKER_LAYER_GZIP | DOCKER_LAYER_FOREIGN_GZIP | OCI_LAYER_NONDIST_GZIP => Some(Gzip),
            OCI_LAYER_ZSTD => Some(Zstd),
            "application/vnd.docker.image.rootfs.diff.tar" => Some(None),
            _ => Option::None,
        }
    }
}

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// The OCI layer media type for this compression.
    pub fn oci_layer_media_type(self) -> &'static str {
        match self {
            Compression::None => media::OCI_LAYER,
            Compression::Gzip => media::OCI_LAYER_GZIP,
            Compression::Zstd => media::OCI_LAYER_ZSTD,
        }
    }
}

/// Deserializes `null` as the type's default, as Go's encoding/json does for slices and maps.
fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A platform: which OS and CPU an image runs on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(rename = "os.version", default, skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
    #[serde(rename = "os.features", default, skip_serializing_if = "Option::is_none")]
    pub os_features: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// The platform of the machine strata runs on (`linux/amd64`, `linux/arm64`, …).
    pub fn host() -> Platform {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            other => other,
        };
        let variant = (arch == "arm64").then(|| "v8".to_string());
        Platform {
            architecture: arch.to_string(),
            os: "linux".to_string(),
            os_version: None,
            os_features: None,
            variant,
        }
    }

    /// `os/arch[/variant]`, as BuildKit prints and `--platform` takes.
    pub fn to_spec(&self) -> String {
        match &self.variant {
            Some(v) => format!("{}/{}/{}", self.os, self.architecture, v),
            None => format!("{}/{}", self.os, self.architecture),
        }
    }

    /// True if an image for `candidate` runs here: same os and arch, and a matching variant
    /// where both name one (arm64 images often omit `v8`).
    pub fn matches(&self, candidate: &Platform) -> bool {
        if self.os != candidate.os || self.architecture != candidate.architecture {
            return false;
        }
        match (&self.variant, &candidate.variant) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        }
    }
}

/// A reference to a blob: what it is, its digest and its size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
}

impl Descriptor {
    pub fn new(media_type: impl Into<String>, digest: Digest, size: u64) -> Descriptor {
        Descriptor {
            media_type: media_type.into(),
            digest,
            size,
            urls: None,
            annotations: None,
            platform: None,
            artifact_type: None,
        }
    }

    /// An annotation's value, if set.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.as_ref()?.get(key).map(String::as_str)
    }
}

/// A single-platform image manifest (OCI, or Docker schema 2 which has the same shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    pub config: Descriptor,
    #[serde(default, deserialize_with = "null_default")]
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// A multi-platform index (OCI index or Docker manifest list), also the shape of an OCI
/// layout's `index.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

impl Index {
    pub fn empty() -> Index {
        Index {
            schema_version: 2,
            media_type: Some(media::OCI_INDEX.to_string()),
            artifact_type: None,
            manifests: Vec::new(),
            subject: None,
            annotations: None,
        }
    }
}

/// An empty JSON object, the value type of `ExposedPorts` and `Volumes` (`{"80/tcp":{}}`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}

/// Docker's health check, as stored in image configs (durations in nanoseconds).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Healthcheck {
    #[serde(rename = "Test", default, skip_serializing_if = "Option::is_none")]
    pub test: Option<Vec<String>>,
    #[serde(rename = "Interval", default, skip_serializing_if = "is_zero")]
    pub interval: i64,
    #[serde(rename = "Timeout", default, skip_serializing_if = "is_zero")]
    pub timeout: i64,
    #[serde(rename = "StartPeriod", default, skip_serializing_if = "is_zero")]
    pub start_period: i64,
    #[serde(rename = "StartInterval", default, skip_serializing_if = "is_zero")]
    pub start_interval: i64,
    #[serde(rename = "Retries", default, skip_serializing_if = "is_zero")]
    pub retries: i64,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

fn is_false(v: &bool) -> bool {
    !*v
}

/// The execution parameters of an image (`config` inside the image config), with Docker's
/// extension fields. Field order is the order BuildKit writes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerConfig {
    #[serde(rename = "User", default, deserialize_with = "null_default", skip_serializing_if = "String::is_empty")]
    pub user: String,
    #[serde(rename = "ExposedPorts", default, skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, Empty>>,
    #[serde(rename = "Env", default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    #[serde(rename = "Entrypoint", default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(rename = "Cmd", default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(rename = "Volumes", default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<BTreeMap<String, Empty>>,
    #[serde(
        rename = "WorkingDir",
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub working_dir: String,
    #[serde(rename = "Labels", default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(
        rename = "StopSignal",
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub stop_signal: String,
    #[serde(rename = "ArgsEscaped", default, deserialize_with = "null_default", skip_serializing_if = "is_false")]
    pub args_escaped: bool,
    #[serde(rename = "Healthcheck", default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Healthcheck>,
    #[serde(rename = "OnBuild", default, skip_serializing_if = "Option::is_none")]
    pub on_build: Option<Vec<String>>,
    #[serde(rename = "Shell", default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<Vec<String>>,
}

impl ContainerConfig {
    /// The value of an environment variable in `Env` (last definition wins, as in Docker).
    pub fn env_var(&self, name: &str) -> Option<&str> {
        self.env.as_ref()?.iter().rev().find_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv.as_str(), ""));
            (k == name).then_some(v)
        })
    }

    /// Sets an environment variable, replacing an earlier definition in place (Docker keeps
    /// the original position of a redefined variable).
    pub fn set_env_var(&mut self, name: &str, value: &str) {
        let env = self.env.get_or_insert_with(Vec::new);
        let entry = format!("{name}={value}");
        match env.iter_mut().find(|kv| kv.split_once('=').map_or(kv.as_str(), |(k, _)| k) == name) {
            Some(slot) => *slot = entry,
            None => env.push(entry),
        }
    }
}

/// One entry of an image's history.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub empty_layer: bool,
}

/// The layer list of an image config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, deserialize_with = "null_default")]
    pub diff_ids: Vec<Digest>,
}

impl Default for RootFs {
    fn default() -> RootFs {
        RootFs { kind: "layers".to_string(), diff_ids: Vec::new() }
    }
}

/// An image configuration. Top-level fields are declared in alphabetical order because that is
/// how BuildKit writes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    #[serde(default)]
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub config: ContainerConfig,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<History>>,
    #[serde(default)]
    pub os: String,
    #[serde(rename = "os.features", default, skip_serializing_if = "Option::is_none")]
    pub os_features: Option<Vec<String>>,
    #[serde(rename = "os.version", default, skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub rootfs: RootFs,
    /// A build cache carried in the image (`--cache-to type=inline`), as BuildKit keeps
    /// `moby.buildkit.cache.v0` in its images' configs: opaque here (the builder's remote cache
    /// writes and reads it), and never inherited by an image built on this one.
    #[serde(rename = "strata.cache.v1", default, skip_serializing_if = "Option::is_none")]
    pub inline_cache: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl ImageConfig {
    /// The config of an empty image (`FROM scratch`) for a platform. BuildKit gives scratch
    /// images the default PATH.
    pub fn scratch(platform: &Platform) -> ImageConfig {
        ImageConfig {
            architecture: platform.architecture.clone(),
            author: None,
            config: ContainerConfig { env: Some(vec![format!("PATH={DEFAULT_PATH}")]), ..ContainerConfig::default() },
            created: None,
            history: None,
            os: platform.os.clone(),
            os_features: None,
            os_version: None,
            rootfs: RootFs::default(),
            inline_cache: None,
            variant: platform.variant.clone(),
        }
    }

    /// The platform this config says the image is for.
    pub fn platform(&self) -> Platform {
        Platform {
            architecture: self.architecture.clone(),
            os: self.os.clone(),
            os_version: self.os_version.clone(),
            os_features: self.os_features.clone(),
            variant: self.variant.clone(),
        }
    }
}

/// The PATH BuildKit gives processes and images that do not set one.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Serializes a document the way the store writes it: compact JSON, no trailing newline, `<`,
/// `>` and `&` escaped as `\u003c`, `\u003e`, `\u0026` like Go's encoding/json, so that our
/// bytes (and so digests) match Go tools for the same document.
pub fn to_canonical_json<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing our own types cannot fail (no non-string map keys, no failing Serialize impls).
    let raw = serde_json::to_vec(value).unwrap_or_default();
    go_escape_html(&raw)
}

/// Rewrites `<`, `>`, `&` inside JSON strings as Go does. Outside strings these bytes cannot
/// occur in valid JSON, so a plain byte replacement is exact. U+2028 and U+2029 are escaped too.
fn go_escape_html(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + 16);
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'<' => out.extend_from_slice(b"\\u003c"),
            b'>' => out.extend_from_slice(b"\\u003e"),
            b'&' => out.extend_from_slice(b"\\u0026"),
            0xE2 if raw.get(i + 1) == Some(&0x80) && matches!(raw.get(i + 2), Some(0xA8) | Some(0xA9)) => {
                out.extend_from_slice(if raw[i + 2] == 0xA8 { b"\\u2028" } else { b"\\u2029" });
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    out
}

/// Formats a UNIX time (seconds, nanoseconds) as RFC 3339 in UTC with Go's `time.RFC3339Nano`
/// rules (trailing zeros of the fraction dropped), as image configs carry it.
pub fn rfc3339(secs: i64, nanos: u32) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let (hh, mm, ss) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    let mut s = format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}");
    if nanos > 0 {
        let frac = format!("{nanos:09}");
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    s.push('Z');
    s
}

/// Now, as RFC 3339.
pub fn now_rfc3339() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    rfc3339(now.as_secs() as i64, now.subsec_nanos())
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day) (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A config BuildKit 0.13 wrote for `../shared/peers/cases/basic`: reading it and writing
    /// it back must give the same bytes, which pins field order, omission and escaping.
    const BUILDKIT_CONFIG: &str = r#"{"architecture":"amd64","config":{"User":"app","ExposedPorts":{"8080/tcp":{},"9090/tcp":{}},"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin","APP_HOME=/srv/app","GREETING=hello world"],"Cmd":["cat","/srv/app/built.txt"],"WorkingDir":"/srv/app","Labels":{"io.buildah.version":"1.28.2","maintainer":"dev@example.com","org.opencontainers.image.title":"basic"},"ArgsEscaped":true},"created":"2026-11-23T01:44:43.649451734Z","history":[{"created":"2026-11-23T01:41:02.136590615Z","created_by":"/bin/sh"},{"created":"2026-11-23T01:44:43.267295474Z","created_by":"LABEL org.opencontainers.image.title=basic maintainer=dev@example.com","comment":"buildkit.dockerfile.v0","empty_layer":true},{"created":"2026-11-23T01:44:43.267295474Z","created_by":"WORKDIR /srv/app","comment":"buildkit.dockerfile.v0"},{"created":"2026-11-23T01:44:43.649451734Z","created_by":"RUN /bin/sh -c echo \"$GREETING from $(pwd)\" \u003e built.txt \u0026\u0026 echo \"app:x:1000:1000::/home/app:/bin/sh\" \u003e\u003e /etc/passwd # buildkit","comment":"buildkit.dockerfile.v0"}],"os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:68c21642b217faeba59a6050916de0f610b385799b19e93a9f5a6195ffa73edc","sha256:be44803ddababd8bfbc6872d4f591691d08975981c6aff6f6de7f32aa26cc286"]}}"#;

    #[test]
    fn buildkit_config_round_trips_byte_for_byte() {
        let cfg: ImageConfig = serde_json::from_str(BUILDKIT_CONFIG).unwrap();
        assert_eq!(cfg.config.user, "app");
        assert!(cfg.config.args_escaped);
        assert_eq!(String::from_utf8(to_canonical_json(&cfg)).unwrap(), BUILDKIT_CONFIG);
    }

    #[test]
    fn docker_style_nulls_are_read_as_empty() {
        let raw = r#"{"architecture":"amd64","os":"linux","config":{"Hostname":"","User":"","Env":null,"Cmd":["sh"],"Volumes":null,"WorkingDir":"","Entrypoint":null,"OnBuild":null,"Labels":null},"rootfs":{"type":"layers","diff_ids":null},"container_config":{"Hostname":"x"}}"#;
        let cfg: ImageConfig = serde_json::from_str(raw).unwrap();
        assert_eq!(cfg.config.cmd.as_deref(), Some(&["sh".to_string()][..]));
        assert!(cfg.config.env.is_none() && cfg.rootfs.diff_ids.is_empty());
        let out = String::from_utf8(to_canonical_json(&cfg)).unwrap();
        assert_eq!(
            out,
            r#"{"architecture":"amd64","config":{"Cmd":["sh"]},"os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#
        );
    }

    #[test]
    fn env_is_replaced_in_place() {
        let mut c =
            ContainerConfig { env: Some(vec!["A=1".into(), "PATH=/bin".into(), "B=2".into()]), ..Default::default() };
        c.set_env_var("PATH", "/usr/bin:/bin");
        c.set_env_var("C", "3");
        assert_eq!(c.env.as_ref().unwrap(), &["A=1", "PATH=/usr/bin:/bin", "B=2", "C=3"]);
        assert_eq!(c.env_var("PATH"), Some("/usr/bin:/bin"));
        assert_eq!(c.env_var("NOPE"), None);
    }

    #[test]
    fn rfc3339_matches_go_formatting() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1445412480, 0), "2015-10-21T07:28:00Z");
        assert_eq!(rfc3339(1795398283, 649_451_734), "2026-11-23T01:44:43.649451734Z");
        assert_eq!(rfc3339(1795398283, 500_000_000), "2026-11-23T01:44:43.5Z");
        assert_eq!(rfc3339(951_782_400, 0), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn platform_matching_tolerates_missing_variant() {
        let host = Platform {
            architecture: "arm64".into(),
            os: "linux".into(),
            os_version: None,
            os_features: None,
            variant: Some("v8".into()),
        };
        let plain = Platform { variant: None, ..host.clone() };
        assert!(host.matches(&plain));
        assert!(!host.matches(&Platform { architecture: "amd64".into(), ..plain.clone() }));
        assert_eq!(host.to_spec(), "linux/arm64/v8");
    }
}
