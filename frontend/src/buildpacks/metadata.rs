//! The labels a buildpack-built image carries, in the lifecycle's JSON shapes, so that tools
//! that read `pack inspect`-style metadata (and strata's own analyze and rebase) find them:
//!
//! - `io.buildpacks.lifecycle.metadata`: per buildpack its launch layers (diff_id as `sha`,
//!   `[metadata]` as `data`, types) and `store.toml` data; the app layers; the launcher and
//!   config layers; the run image (`topLayer` = its last diff_id, `reference` = its manifest
//!   digest, `image` = its name), which `rebase` replaces;
//! - `io.buildpacks.build.metadata`: the buildpacks of the group, the processes, the default
//!   process type, the launcher's version;
//! - `io.buildpacks.project.metadata`: project information (empty: strata reads no
//!   `project.toml`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::layers::Process;

pub const LIFECYCLE_LABEL: &str = "io.buildpacks.lifecycle.metadata";
pub const BUILD_LABEL: &str = "io.buildpacks.build.metadata";
pub const PROJECT_LABEL: &str = "io.buildpacks.project.metadata";

/// A layer reference by diff_id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerSha {
    #[serde(default)]
    pub sha: String,
}

/// A launch layer in the lifecycle metadata.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LayerMetadata {
    #[serde(default)]
    pub sha: String,
    #[serde(default)]
    pub data: serde_json::Value,
    #[serde(default)]
    pub launch: bool,
    #[serde(default)]
    pub build: bool,
    #[serde(default)]
    pub cache: bool,
}

/// `store.toml` as kept in the image.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StoreMetadata {
    #[serde(default)]
    pub metadata: serde_json::Value,
}

/// One buildpack's entry in the lifecycle metadata.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BuildpackLayers {
    /// The buildpack id.
    pub key: String,
    pub version: String,
    #[serde(default)]
    pub layers: BTreeMap<String, LayerMetadata>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<StoreMetadata>,
}

/// The run image an app image was built on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunImage {
    #[serde(default, rename = "topLayer")]
    pub top_layer: String,
    #[serde(default)]
    pub reference: String,
    #[serde(default)]
    pub image: String,
}

/// `io.buildpacks.lifecycle.metadata`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LifecycleMetadata {
    #[serde(default)]
    pub app: Vec<LayerSha>,
    #[serde(default)]
    pub buildpacks: Vec<BuildpackLayers>,
    #[serde(default)]
    pub config: LayerSha,
    #[serde(default)]
    pub launcher: LayerSha,
    #[serde(default, rename = "processDirectory")]
    pub process_directory: String,
    #[serde(default, rename = "runImage")]
    pub run_image: RunImage,
}

impl LifecycleMetadata {
    /// Reads the label from an image's labels, if it has one that parses.
    pub fn from_labels(labels: Option<&BTreeMap<String, String>>) -> Option<LifecycleMetadata> {
        serde_json::from_str(labels?.get(LIFECYCLE_LABEL)?).ok()
    }

    /// The entry of buildpack `id`.
    pub fn buildpack(&self, id: &str) -> Option<&BuildpackLayers> {
        self.buildpacks.iter().find(|b| b.key == id)
    }
}

/// A buildpack of the group in the build metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupBuildpack {
    pub id: String,
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub homepage: Option<String>,
}

/// The launcher's identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Launcher {
    pub version: String,
    pub source: serde_json::Value,
}

/// `io.buildpacks.build.metadata`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuildMetadata {
    pub bom: Option<serde_json::Value>,
    pub buildpacks: Vec<GroupBuildpack>,
    pub launcher: Launcher,
    pub processes: Vec<Process>,
    #[serde(default, rename = "buildpack-default-process-type", skip_serializing_if = "Option::is_none")]
    pub default_process: Option<String>,
}

/// A TOML table as JSON (for `data`/`store` in the label).
pub fn toml_to_json(t: &toml::Table) -> serde_json::Value {
    serde_json::to_value(t).unwrap_or(serde_json::Value::Null)
}

/// JSON back to a TOML table (objects only; anything else is an empty table).
pub fn json_to_toml(v: &serde_json::Value) -> toml::Table {
    match v {
        serde_json::Value::Object(_) => toml::Table::try_from(v.clone()).unwrap_or_default(),
        _ => toml::Table::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_reads_lifecycle_json() {
        // The shape pack and the lifecycle write (fields strata does not use are ignored).
        let text = r#"{"app":[{"sha":"sha256:a"}],"buildpacks":[{"key":"x/y","version":"1.0.0",
            "layers":{"deps":{"sha":"sha256:d","data":{"hash":"h"},"launch":true,"cache":true}},
            "store":{"metadata":{"n":1}}}],"config":{"sha":"sha256:c"},"launcher":{"sha":"sha256:l"},
            "processDirectory":"/cnb/process","runImage":{"topLayer":"sha256:t","reference":"sha256:r","image":"run"},
            "stack":{"runImage":{"image":"run"}}}"#;
        let mut labels = BTreeMap::new();
        labels.insert(LIFECYCLE_LABEL.to_string(), text.to_string());
        let m = LifecycleMetadata::from_labels(Some(&labels)).unwrap();
        let bp = m.buildpack("x/y").unwrap();
        assert!(bp.layers["deps"].launch && bp.layers["deps"].cache && !bp.layers["deps"].build);
        assert_eq!(json_to_toml(&bp.layers["deps"].data)["hash"].as_str(), Some("h"));
        assert_eq!(m.run_image.top_layer, "sha256:t");
        let again: LifecycleMetadata = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
        assert_eq!(again, m);
        labels.insert(LIFECYCLE_LABEL.to_string(), "{not json".into());
        assert!(LifecycleMetadata::from_labels(Some(&labels)).is_none());
    }
}
