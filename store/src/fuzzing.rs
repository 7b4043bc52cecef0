//! The bodies of strata's fuzz targets, shared by the cargo-fuzz targets in `fuzz/` (run with
//! libFuzzer where a nightly toolchain is available) and by `store/tests/fuzz_smoke.rs` (run in
//! CI on stable, over the hostile corpus and mutations of it for a fixed time).
//!
//! Each body takes arbitrary bytes and must never panic, hang or allocate in proportion to a
//! size the input merely claims; a body panics only to report a broken guarantee (an archive
//! that changed something outside its destination, a document that does not survive its own
//! round trip).

use std::fs;
use std::io::Read;
use std::path::Path;

use crate::layer::tar_read::TarReader;
use crate::layer::{self, ExtractOptions, UnpackOptions};
use crate::oci::{self, Compression, ImageConfig, Index, Manifest};

/// Reads `data` as a tar stream to its end: every header parsed, every data byte read.
pub fn tar_read(data: &[u8]) {
    let mut tar = TarReader::new(data);
    let mut buf = vec![0u8; 64 * 1024];
    while let Ok(Some(_)) = tar.next_entry() {
        while let Ok(n) = tar.read_data(&mut buf) {
            if n == 0 {
                break;
            }
        }
    }
}

/// Unpacks `data` as a layer (overlay upper format) and as a plain archive into fresh
/// directories, and checks that nothing outside the destination changed. The compression is
/// taken from the magic bytes, as media types and blobs agree for a valid layer.
pub fn layer_unpack(data: &[u8]) {
    let compression = match layer::sniff_archive(data) {
        Some(layer::ArchiveKind::Gzip) => Compression::Gzip,
        Some(layer::ArchiveKind::Zstd) => Compression::Zstd,
        _ => Compression::None,
    };
    for as_layer in [true, false] {
        let Ok(t) = tempfile::tempdir() else { return };
        let dest = t.path().join("dest");
        let outside = t.path().join("outside");
        if fs::create_dir(&dest).is_err() || fs::create_dir(&outside).is_err() {
            return;
        }
        let secret = outside.join("secret");
        if fs::write(&secret, b"secret").is_err() {
            return;
        }
        let result = if as_layer {
            layer::unpack_layer(data, compression, &dest, &UnpackOptions::default()).map(|_| ())
        } else {
            layer::extract_archive(data, &dest, &ExtractOptions::default()).map(|_| ())
        };
        if let Err(e) = result {
            assert!(!e.to_string().is_empty(), "an error without a message");
        }
        let mut top: Vec<String> = fs::read_dir(t.path())
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into())
            .collect();
        top.sort();
        assert_eq!(top, ["dest", "outside"], "an entry escaped the destination");
        let inside: Vec<String> = fs::read_dir(&outside)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into())
            .collect();
        assert_eq!(inside, ["secret"], "an entry was written outside the destination");
        let mut content = Vec::new();
        let read = fs::File::open(&secret).and_then(|mut f| f.read_to_end(&mut content));
        assert!(read.is_ok() && content == b"secret", "a file outside the destination was changed");
        assert!(fs::symlink_metadata(&secret).is_ok_and(|m| m.is_file()), "a file outside was replaced");
        let _ = fix_permissions(&dest);
    }
}

/// Makes every directory under `dir` writable again so the temporary directory can be removed
/// (an archive may create directories with mode 0).
fn fix_permissions(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for e in walkdir::WalkDir::new(dir).follow_links(false).into_iter().flatten() {
        if e.file_type().is_dir() {
            fs::set_permissions(e.path(), fs::Permissions::from_mode(0o755))?;
        }
    }
    Ok(())
}

/// Parses `data` as a manifest, an index and an image config (what the registry client and the
/// store read); whatever parses must serialize canonically and parse back to the same value.
pub fn manifest(data: &[u8]) {
    if let Ok(m) = serde_json::from_slice::<Manifest>(data) {
        let back: Manifest = serde_json::from_slice(&oci::to_canonical_json(&m)).expect("manifest round trip");
        assert_eq!(back, m, "a manifest changed in its round trip");
    }
    if let Ok(i) = serde_json::from_slice::<Index>(data) {
        let back: Index = serde_json::from_slice(&oci::to_canonical_json(&i)).expect("index round trip");
        assert_eq!(back, i, "an index changed in its round trip");
    }
    if let Ok(c) = serde_json::from_slice::<ImageConfig>(data) {
        let back: ImageConfig = serde_json::from_slice(&oci::to_canonical_json(&c)).expect("config round trip");
        assert_eq!(back, c, "a config changed in its round trip");
    }
}
