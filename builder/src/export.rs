//! Turning a built root filesystem into an image: the target's config completed with the
//! layer list and timestamps, written to the store as an OCI manifest.
//!
//! Timestamps follow what BuildKit 0.13 writes (checked on its images): a history entry that
//! made a layer gets the time that layer was created; an entry without a layer (ENV, LABEL,
//! ...) gets the time of the next layer after it, or of the last layer if none follows; the
//! config's `created` is the last of these. Layer times come from the cache records, so a
//! rebuild served from cache writes byte-identical config and manifest, hence the same digest.
//! History entries inherited from the base image keep their own times.
//!
//! With SOURCE_DATE_EPOCH every time this build writes (new history entries, `created`) is the
//! epoch, as BuildKit writes them when it is set.

use strata_store::Store;
use strata_store::image::{Image, ImageError, write_image};
use strata_store::oci::{self, ImageConfig};

use crate::cache::Layer;

/// Fills in `config` for the layer `chain` (bottom first) and stores the image. With `source_date_epoch`,
/// every time this build adds is that time instead (see `BuildConfig::source_date_epoch`).
pub fn export_image(
    store: &Store,
    config: &ImageConfig,
    chain: &[Layer],
    source_date_epoch: Option<i64>,
) -> Result<Image, ImageError> {
    let config = match source_date_epoch {
        Some(e) => {
            let epoch = oci::rfc3339(e, 0);
            let chain: Vec<Layer> = chain
                .iter()
                .map(|l| Layer { created: l.created.as_ref().map(|_| epoch.clone()), ..l.clone() })
                .collect();
            complete_config(config, &chain, &epoch)
        }
        None => complete_config(config, chain, &oci::now_rfc3339()),
    };
    let layers: Vec<_> = chain.iter().map(|l| l.blob.clone()).collect();
    write_image(&store.blobs, &config, &layers, None)
}

/// The config with diff_ids and times filled in; `now` is used only when no layer of this
/// build gives a time (an image that adds no layer).
pub fn complete_config(config: &ImageConfig, chain: &[Layer], now: &str) -> ImageConfig {
    let mut config = config.clone();
    // A base image's inline cache describes the base's build, not this one.
    config.inline_cache = None;
    config.rootfs.kind = "layers".to_string();
    config.rootfs.diff_ids = chain.iter().map(|l| l.diff_id.clone()).collect();
    let new_layer_times: Vec<&str> = chain.iter().filter_map(|l| l.created.as_deref()).collect();
    let history = config.history.get_or_insert_with(Vec::new);

    // Entries this build added have no time yet; the ones that made layers take the new layers'
    // times in order (the last ones, if the frontend's and the chain's counts ever disagree).
    let new_layer_entries: Vec<usize> =
        history.iter().enumerate().filter(|(_, h)| h.created.is_none() && !h.empty_layer).map(|(i, _)| i).collect();
    let skip = new_layer_entries.len().saturating_sub(new_layer_times.len());
    let offset = new_layer_times.len().saturating_sub(new_layer_entries.len());
    for (k, &i) in new_layer_entries.iter().enumerate().skip(skip) {
        history[i].created = Some(new_layer_times[offset + k - skip].to_string());
    }
    // Empty entries: the next time after them, else the last time of the build.
    let last_time = new_layer_times.last().copied().unwrap_or(now).to_string();
    let mut next: Option<String> = None;
    for h in history.iter_mut().rev() {
        match &h.created {
            Some(t) => next = Some(t.clone()),
            None => h.created = Some(next.clone().unwrap_or_else(|| last_time.clone())),
        }
    }
    config.created = Some(if new_layer_times.is_empty() { now.to_string() } else { last_time });
    config
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_store::digest::Digest;
    use strata_store::oci::{Descriptor, History, Platform, media};

    fn layer(name: &str, created: Option<&str>) -> Layer {
        Layer {
            diff_id: Digest::of(name.as_bytes()),
            blob: Descriptor::new(media::OCI_LAYER_GZIP, Digest::of(format!("{name}.gz").as_bytes()), 1),
            created: created.map(str::to_string),
        }
    }

    fn entry(by: &str, created: Option<&str>, empty: bool) -> History {
        History {
            created: created.map(str::to_string),
            created_by: Some(by.to_string()),
            author: None,
            comment: None,
            empty_layer: empty,
        }
    }

    #[test]
    fn times_follow_buildkit() {
        let mut cfg = ImageConfig::scratch(&Platform::host());
        cfg.history = Some(vec![
            entry("base", Some("2020-01-01T00:00:00Z"), false),
            entry("LABEL", None, true),
            entry("WORKDIR", None, false),
            entry("ENV", None, true),
            entry("RUN", None, false),
            entry("CMD", None, true),
        ]);
        let chain = [layer("base", None), layer("wd", Some("T1")), layer("run", Some("T2"))];
        let out = complete_config(&cfg, &chain, "NOW");
        let times: Vec<&str> = out.history.as_ref().unwrap().iter().map(|h| h.created.as_deref().unwrap()).collect();
        assert_eq!(times, ["2020-01-01T00:00:00Z", "T1", "T1", "T2", "T2", "T2"]);
        assert_eq!(out.created.as_deref(), Some("T2"));
        assert_eq!(out.rootfs.diff_ids.len(), 3);

        // No new layer: the build time.
        let mut cfg2 = ImageConfig::scratch(&Platform::host());
        cfg2.history = Some(vec![entry("LABEL", None, true)]);
        let out = complete_config(&cfg2, &[layer("base", None)], "NOW");
        assert_eq!(out.created.as_deref(), Some("NOW"));
        assert_eq!(out.history.unwrap()[0].created.as_deref(), Some("NOW"));
    }

    #[test]
    fn export_is_reproducible_from_the_same_layers() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut cfg = ImageConfig::scratch(&Platform::host());
        cfg.history = Some(vec![entry("RUN", None, false)]);
        let chain = [layer("run", Some("2026-11-23T00:00:00Z"))];
        let a = export_image(&store, &cfg, &chain, None).unwrap();
        let b = export_image(&store, &cfg, &chain, None).unwrap();
        assert_eq!(a.descriptor.digest, b.descriptor.digest);
        assert_eq!(a.config.created.as_deref(), Some("2026-11-23T00:00:00Z"));
        // SOURCE_DATE_EPOCH: this build's times are the epoch, the base's history keeps its own.
        cfg.history = Some(vec![entry("base", Some("2020-01-01T00:00:00Z"), false), entry("RUN", None, false)]);
        let chain = [layer("base", None), layer("run", Some("2026-11-23T00:00:00Z"))];
        let c = export_image(&store, &cfg, &chain, Some(1_700_000_000)).unwrap();
        let times: Vec<_> = c.config.history.unwrap().into_iter().map(|h| h.created.unwrap()).collect();
        assert_eq!(times, ["2020-01-01T00:00:00Z", "2023-11-14T22:13:20Z"]);
        assert_eq!(c.config.created.as_deref(), Some("2023-11-14T22:13:20Z"));
    }

    #[test]
    fn an_epoch_pins_every_time_of_the_build() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut cfg = ImageConfig::scratch(&Platform::host());
        cfg.history = Some(vec![entry("base", Some("2020-01-01T00:00:00Z"), false), entry("RUN", None, false)]);
        let epoch = "1980-01-01T00:00:01Z";
        let secs = 315_532_801;
        let a = export_image(&store, &cfg, &[layer("base", None), layer("run", Some("T1"))], Some(secs)).unwrap();
        let b = export_image(&store, &cfg, &[layer("base", None), layer("run", Some("T2"))], Some(secs)).unwrap();
        assert_eq!(a.descriptor.digest, b.descriptor.digest, "layer times must not leak into the image");
        assert_eq!(a.config.created.as_deref(), Some(epoch));
        let times: Vec<_> = a.config.history.unwrap().into_iter().map(|h| h.created.unwrap()).collect();
        assert_eq!(times, ["2020-01-01T00:00:00Z", epoch], "inherited history keeps its times");
    }
}
