//! An image as an OCI image layout (`-o type=oci`) or a `docker load` archive
//! (`-o type=docker`), written as BuildKit's exporters write them: through containerd's archive
//! exporter (`images/archive/exporter.go`).
//!
//! The layout holds `oci-layout` (`{"imageLayoutVersion":"1.0.0"}`), `index.json` (schema 2,
//! one manifest descriptor per image name, annotated with `io.containerd.image.name` = the full
//! name and `org.opencontainers.image.ref.name` = its tag, plus
//! `org.opencontainers.image.created`, which BuildKit adds), and `blobs/sha256/<hex>` for the
//! manifest, config and layers. The docker flavour adds `manifest.json` — `[{"Config":
//! "blobs/sha256/…","RepoTags":[familiar names],"Layers":["blobs/sha256/…",…]}]`, which
//! `docker load` reads — and, as BuildKit's `docker` exporter does by default
//! (`oci-mediatypes=false`), rewrites the manifest with Docker media types (schema 2 manifest,
//! container config, `rootfs.diff.tar.gzip` layers); zstd layers have no Docker type, so an
//! image with one keeps OCI types, as BuildKit forces.
//!
//! As a tarball (the default, `tar=true`): entries sorted by name, blobs mode 0444, `index.json`
//! and `manifest.json` 0644, `oci-layout` 0444, `blobs/` directories 0755, owner 0:0, time 0,
//! each blob checked against its digest while it is copied. With `tar=false` the same files are
//! written into a directory. Nothing is held in memory but the small JSON documents.

use std::fs;
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;

use super::{ExportError, io_err};
use crate::blobs::{BlobError, BlobStore};
use crate::digest::{Digest, Hasher};
use crate::layer::tar_write::{EntryType, TarHeader, TarWriter};
use crate::layout::{CONTAINERD_NAME, REF_NAME};
use crate::oci::{self, Descriptor, Index, Manifest, media};
use crate::reference::Reference;

/// Which archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OCI image layout.
    Oci,
    /// OCI image layout plus Docker's `manifest.json`.
    Docker,
}

/// How to write the layout.
#[derive(Debug, Clone)]
pub struct LayoutOptions {
    pub format: Format,
    /// The image's names (one index entry each; none: one unnamed entry).
    pub names: Vec<Reference>,
    /// The `org.opencontainers.image.created` annotation (RFC 3339), if any.
    pub created: Option<String>,
    /// Keep OCI media types in a Docker archive (`oci-mediatypes=true`).
    pub oci_media_types: bool,
}

/// One file of the layout.
enum Content {
    Dir,
    Bytes(Vec<u8>, u32),
    Blob(Digest, u64),
}

/// The layout's files, sorted by name, for the image whose manifest is `manifest`.
fn records(
    blobs: &BlobStore,
    manifest: &Descriptor,
    opts: &LayoutOptions,
) -> Result<Vec<(String, Content)>, ExportError> {
    if media::is_index(&manifest.media_type) && opts.format == Format::Oci && opts.oci_media_types {
        return index_records(blobs, manifest, opts);
    }
    if !media::is_manifest(&manifest.media_type) {
        return Err(ExportError::Path {
            path: "index.json".into(),
            message: format!("only single-platform images can be exported (got {})", manifest.media_type),
        });
    }
    let raw = blobs.read(&manifest.digest)?;
    let mut doc: Manifest = serde_json::from_slice(&raw).map_err(|source| {
        ExportError::Image(crate::image::ImageError::BadManifest { digest: manifest.digest.clone(), source })
    })?;
    let blob_path = |d: &Digest| format!("blobs/sha256/{}", d.hex());
    let mut out: Vec<(String, Content)> = Vec::new();
    for d in std::iter::once(&doc.config).chain(&doc.layers) {
        out.push((blob_path(&d.digest), Content::Blob(d.digest.clone(), d.size)));
    }
    // The manifest as exported: the stored one, or its Docker-typed rewrite.
    let (manifest_desc, manifest_bytes) = match to_docker_types(&mut doc, opts) {
        Some(bytes) => (Descriptor::new(media::DOCKER_MANIFEST, Digest::of(&bytes), bytes.len() as u64), bytes),
        None => (manifest.clone(), raw),
    };
    out.push((blob_path(&manifest_desc.digest), Content::Bytes(manifest_bytes, 0o444)));

    let mut entries = Vec::new();
    let base =
        Descriptor { annotations: None, platform: None, urls: None, artifact_type: None, ..manifest_desc.clone() };
    let with_names = |name: Option<&Reference>| named_entry(&base, name, opts);
    if opts.names.is_empty() {
        entries.push(with_names(None));
    }
    for n in &opts.names {
        entries.push(with_names(Some(n)));
    }
    let index = Index { manifests: entries, media_type: None, ..Index::empty() };
    out.push(("index.json".to_string(), Content::Bytes(oci::to_canonical_json(&index), 0o644)));
    out.push(("oci-layout".to_string(), Content::Bytes(br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(), 0o444)));
    if opts.format == Format::Docker {
        #[derive(serde::Serialize)]
        #[serde(rename_all = "PascalCase")]
        struct DockerManifest {
            config: String,
            repo_tags: Option<Vec<String>>,
            layers: Vec<String>,
        }
        let tags: Vec<String> = opts.names.iter().map(Reference::familiar).collect();
        let m = [DockerManifest {
            config: blob_path(&doc.config.digest),
            repo_tags: (!tags.is_empty()).then_some(tags),
            layers: doc.layers.iter().map(|l| blob_path(&l.digest)).collect(),
        }];
        out.push(("manifest.json".to_string(), Content::Bytes(oci::to_canonical_json(&m), 0o644)));
    }
    out.push(("blobs/".to_string(), Content::Dir));
    out.push(("blobs/sha256/".to_string(), Content::Dir));
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out.dedup_by(|a, b| a.0 == b.0);
    Ok(out)
}

/// The layout's files for a multi-platform image (an OCI archive only: `docker load` takes no
/// index, and BuildKit's docker exporter refuses one too): every platform's config, layers and
/// manifest, the index blob, and `index.json` naming the index as containerd's archive exporter
/// names a manifest (same annotations).
fn index_records(
    blobs: &BlobStore,
    index_desc: &Descriptor,
    opts: &LayoutOptions,
) -> Result<Vec<(String, Content)>, ExportError> {
    let blob_path = |d: &Digest| format!("blobs/sha256/{}", d.hex());
    let raw_index = blobs.read(&index_desc.digest)?;
    let index: Index = serde_json::from_slice(&raw_index).map_err(|e| ExportError::Path {
        path: "index.json".into(),
        message: format!("image index {} is not valid JSON: {e}", index_desc.digest),
    })?;
    let mut out: Vec<(String, Content)> = Vec::new();
    for child in &index.manifests {
        if !media::is_manifest(&child.media_type) {
            return Err(ExportError::Path {
                path: "index.json".into(),
                message: format!("nested image indexes cannot be exported (got {})", child.media_type),
            });
        }
        let raw = blobs.read(&child.digest)?;
        let doc: Manifest = serde_json::from_slice(&raw).map_err(|source| {
            ExportError::Image(crate::image::ImageError::BadManifest { digest: child.digest.clone(), source })
        })?;
        for d in std::iter::once(&doc.config).chain(&doc.layers) {
            out.push((blob_path(&d.digest), Content::Blob(d.digest.clone(), d.size)));
        }
        out.push((blob_path(&child.digest), Content::Bytes(raw, 0o444)));
    }
    out.push((blob_path(&index_desc.digest), Content::Bytes(raw_index, 0o444)));
    let base = Descriptor::new(index_desc.media_type.clone(), index_desc.digest.clone(), index_desc.size);
    let mut entries = Vec::new();
    let names: Vec<Option<&Reference>> =
        if opts.names.is_empty() { vec![None] } else { opts.names.iter().map(Some).collect() };
    for name in names {
        entries.push(named_entry(&base, name, opts));
    }
    let top = Index { manifests: entries, media_type: None, ..Index::empty() };
    out.push(("index.json".to_string(), Content::Bytes(oci::to_canonical_json(&top), 0o644)));
    out.push(("oci-layout".to_string(), Content::Bytes(br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(), 0o444)));
    out.push(("blobs/".to_string(), Content::Dir));
    out.push(("blobs/sha256/".to_string(), Content::Dir));
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out.dedup_by(|a, b| a.0 == b.0);
    Ok(out)
}

/// For a Docker archive with Docker media types: rewrites `doc` and returns its new bytes
/// (`None`: export the stored manifest as it is).
fn to_docker_types(doc: &mut Manifest, opts: &LayoutOptions) -> Option<Vec<u8>> {
    if opts.format != Format::Docker || opts.oci_media_types {
        return None;
    }
    let mut layers = Vec::with_capacity(doc.layers.len());
    for l in &doc.layers {
        let mt = match media::layer_compression(&l.media_type)? {
            oci::Compression::Gzip => media::DOCKER_LAYER_GZIP,
            oci::Compression::None => "application/vnd.docker.image.rootfs.diff.tar",
            // No Docker media type for zstd: the image stays OCI.
            oci::Compression::Zstd => return None,
        };
        layers.push(Descriptor { media_type: mt.to_string(), ..l.clone() });
    }
    doc.media_type = Some(media::DOCKER_MANIFEST.to_string());
    doc.config.media_type = media::DOCKER_CONFIG.to_string();
    doc.layers = layers;
    Some(oci::to_canonical_json(doc))
}

/// Copies a blob into `out`, checking its digest and size on the way.
fn copy_blob(blobs: &BlobStore, digest: &Digest, size: u64, out: &mut dyn Write) -> Result<(), ExportError> {
    let mut file = blobs.open_blob(digest)?;
    let mut hasher = Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err(format!("reading blob {digest}"))(e)),
        };
        n += k as u64;
        if n > size {
            break;
        }
        hasher.update(&buf[..k]);
        out.write_all(&buf[..k]).map_err(io_err(format!("writing blob {digest}")))?;
    }
    if n != size {
        return Err(ExportError::Blob(BlobError::SizeMismatch { digest: digest.clone(), expected: size, actual: n }));
    }
    let actual = hasher.finish();
    if &actual != digest {
        return Err(ExportError::Blob(BlobError::DigestMismatch { expected: digest.clone(), actual, size }));
    }
    Ok(())
}

/// Writes the layout of the image `manifest` as a tar stream to `out`; returns `out`.
pub fn write_tar<W: Write>(
    blobs: &BlobStore,
    manifest: &Descriptor,
    opts: &LayoutOptions,
    out: W,
) -> Result<W, ExportError> {
    let mut tw = TarWriter::new(out);
    let werr = |e| io_err("writing the image archive")(e);
    for (name, content) in records(blobs, manifest, opts)? {
        let (kind, mode, size) = match &content {
            Content::Dir => (EntryType::Directory, 0o755, 0),
            Content::Bytes(b, mode) => (EntryType::Regular, *mode, b.len() as u64),
            Content::Blob(_, size) => (EntryType::Regular, 0o444, *size),
        };
        let mut h = TarHeader::new(name.into_bytes(), kind);
        h.mode = mode;
        h.size = size;
        tw.header(&h).map_err(werr)?;
        match content {
            Content::Dir => {}
            Content::Bytes(b, _) => tw.data().write_all(&b).map_err(werr)?,
            Content::Blob(d, size) => copy_blob(blobs, &d, size, tw.data())?,
        }
        tw.pad(size).map_err(werr)?;
    }
    tw.finish().map_err(werr)
}

/// Writes the layout into the directory `dest` (created if missing; files of the layout that
/// exist are replaced, others left alone, as an OCI layout directory can hold several images).
pub fn write_dir(
    blobs: &BlobStore,
    manifest: &Descriptor,
    opts: &LayoutOptions,
    dest: &Path,
) -> Result<(), ExportError> {
    for (name, content) in records(blobs, manifest, opts)? {
        let path = dest.join(name.trim_end_matches('/'));
        match content {
            Content::Dir => fs::create_dir_all(&path).map_err(io_err(format!("creating {}", path.display())))?,
            Content::Bytes(b, _) => {
                crate::layout::write_atomically(&path, &b)
                    .map_err(|e| ExportError::Path { path: path.clone(), message: e.to_string() })?;
            }
            Content::Blob(d, size) => {
                if fs::metadata(&path).is_ok_and(|m| m.len() == size) {
                    continue; // content-addressed: an existing blob of the right size is it
                }
                let parent = path.parent().unwrap_or(dest);
                let mut tmp = tempfile::Builder::new()
                    .prefix(".tmp-")
                    .tempfile_in(parent)
                    .map_err(io_err(format!("creating a file in {}", parent.display())))?;
                {
                    let mut w = BufWriter::with_capacity(1 << 20, tmp.as_file_mut());
                    copy_blob(blobs, &d, size, &mut w)?;
                    w.flush().map_err(io_err(format!("writing {}", path.display())))?;
                }
                tmp.persist(&path).map_err(|e| io_err(format!("writing {}", path.display()))(e.error))?;
            }
        }
    }
    Ok(())
}

/// Writes the layout tarball to the file `dest` (replaced atomically when complete).
pub fn write_tar_file(
    blobs: &BlobStore,
    manifest: &Descriptor,
    opts: &LayoutOptions,
    dest: &Path,
) -> Result<(), ExportError> {
    let dir = dest.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let tmp = tempfile::Builder::new()
        .prefix(".strata-export-")
        .tempfile_in(dir)
        .map_err(io_err(format!("creating a file in {}", dir.display())))?;
    let w = write_tar(blobs, manifest, opts, BufWriter::with_capacity(1 << 20, tmp))?;
    let tmp = w.into_inner().map_err(|e| io_err(format!("writing {}", dest.display()))(e.into_error()))?;
    tmp.persist(dest).map_err(|e| io_err(format!("writing {}", dest.display()))(e.error))?;
    Ok(())
}

/// An `index.json` entry for `base` under `name`: the creation time and the names containerd
/// (`io.containerd.image.name`, the full reference) and OCI tools (`ref.name`, the tag) read.
fn named_entry(base: &Descriptor, name: Option<&Reference>, opts: &LayoutOptions) -> Descriptor {
    let mut d = base.clone();
    let mut a = std::collections::BTreeMap::new();
    if let Some(c) = &opts.created {
        a.insert("org.opencontainers.image.created".to_string(), c.clone());
    }
    if let Some(n) = name {
        a.insert(CONTAINERD_NAME.to_string(), n.to_string());
        a.insert(REF_NAME.to_string(), n.tag.clone().unwrap_or_else(|| "latest".to_string()));
    }
    d.annotations = (!a.is_empty()).then_some(a);
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::write_image;
    use crate::layer::tar_read::{Kind, TarReader};
    use crate::oci::{ImageConfig, Platform};

    fn image(blobs: &BlobStore, layer_type: &str) -> Descriptor {
        let layer = blobs.put(b"pretend layer").unwrap();
        let mut config = ImageConfig::scratch(&Platform::host());
        config.rootfs.diff_ids.push(Digest::of(b"x"));
        write_image(blobs, &config, &[Descriptor::new(layer_type, layer, 13)], None).unwrap().descriptor
    }

    fn entries(tar: &[u8]) -> Vec<(String, u32, Vec<u8>)> {
        let mut r = TarReader::new(tar);
        let mut out = Vec::new();
        while let Some(e) = r.next_entry().unwrap() {
            let mut data = vec![0u8; e.size as usize];
            let mut got = 0;
            while got < data.len() {
                got += r.read_data(&mut data[got..]).unwrap();
            }
            assert!(e.kind == Kind::Regular || e.kind == Kind::Directory);
            assert_eq!((e.uid, e.gid, e.mtime), (0, 0, 0));
            out.push((e.display_name(), e.mode, data));
        }
        out
    }

    #[test]
    fn oci_layout_tarballs_are_containerds() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::open(dir.path()).unwrap();
        let m = image(&blobs, media::OCI_LAYER_GZIP);
        let opts = LayoutOptions {
            format: Format::Oci,
            names: vec![Reference::parse("127.0.0.1:5000/a/b:1").unwrap(), Reference::parse("x").unwrap()],
            created: Some("2023-11-14T22:13:20Z".into()),
            oci_media_types: false,
        };
        let tar = write_tar(&blobs, &m, &opts, Vec::new()).unwrap();
        let e = entries(&tar);
        let names: Vec<&str> = e.iter().map(|(n, _, _)| n.as_str()).collect();
        assert_eq!(names[..2], ["blobs/", "blobs/sha256/"]);
        assert_eq!(names[names.len() - 2..], ["index.json", "oci-layout"]);
        assert_eq!(names.len(), 2 + 3 + 2, "config, layer, manifest");
        assert!(
            e.iter().filter(|(n, _, _)| n.starts_with("blobs/sha256/") && n.len() > 14).all(|(_, m, _)| *m == 0o444)
        );
        let index: serde_json::Value = serde_json::from_slice(&e[e.len() - 2].2).unwrap();
        assert_eq!(index["schemaVersion"], 2);
        assert_eq!(index["manifests"].as_array().unwrap().len(), 2);
        assert_eq!(index["manifests"][0]["digest"], m.digest.to_string());
        let a = &index["manifests"][0]["annotations"];
        assert_eq!(a["io.containerd.image.name"], "127.0.0.1:5000/a/b:1");
        assert_eq!(a["org.opencontainers.image.ref.name"], "1");
        assert_eq!(a["org.opencontainers.image.created"], "2023-11-14T22:13:20Z");
        assert_eq!(index["manifests"][1]["annotations"]["io.containerd.image.name"], "docker.io/library/x:latest");
        assert_eq!(e[e.len() - 1].2, br#"{"imageLayoutVersion":"1.0.0"}"#);
        // Every blob is its digest.
        for (n, _, data) in e.iter().filter(|(n, _, _)| n.len() > 14 && n.starts_with("blobs/sha256/")) {
            assert_eq!(Digest::of(data).hex(), &n["blobs/sha256/".len()..]);
        }
    }

    #[test]
    fn docker_archives_have_manifest_json_and_docker_types() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::open(dir.path()).unwrap();
        let m = image(&blobs, media::OCI_LAYER_GZIP);
        let opts = LayoutOptions {
            format: Format::Docker,
            names: vec![Reference::parse("docker.io/library/app:2").unwrap()],
            created: None,
            oci_media_types: false,
        };
        let e = entries(&write_tar(&blobs, &m, &opts, Vec::new()).unwrap());
        let get = |name: &str| e.iter().find(|(n, _, _)| n == name).map(|(_, _, d)| d.clone()).unwrap();
        let mj: serde_json::Value = serde_json::from_slice(&get("manifest.json")).unwrap();
        assert_eq!(mj[0]["RepoTags"], serde_json::json!(["app:2"]));
        let stored: Manifest = serde_json::from_slice(&blobs.read(&m.digest).unwrap()).unwrap();
        assert_eq!(mj[0]["Config"], format!("blobs/sha256/{}", stored.config.digest.hex()));
        assert_eq!(mj[0]["Layers"][0], format!("blobs/sha256/{}", stored.layers[0].digest.hex()));
        let index: serde_json::Value = serde_json::from_slice(&get("index.json")).unwrap();
        let d = index["manifests"][0]["digest"].as_str().unwrap().to_string();
        let docker: serde_json::Value = serde_json::from_slice(&get(&format!("blobs/sha256/{}", &d[7..]))).unwrap();
        assert_eq!(docker["mediaType"], media::DOCKER_MANIFEST);
        assert_eq!(docker["config"]["mediaType"], media::DOCKER_CONFIG);
        assert_eq!(docker["layers"][0]["mediaType"], media::DOCKER_LAYER_GZIP);
        assert_eq!(index["manifests"][0]["mediaType"], media::DOCKER_MANIFEST);

        // zstd layers keep the image OCI; unnamed images have no RepoTags.
        let z = image(&blobs, media::OCI_LAYER_ZSTD);
        let opts = LayoutOptions { names: vec![], ..opts };
        let e = entries(&write_tar(&blobs, &z, &opts, Vec::new()).unwrap());
        let index: serde_json::Value =
            serde_json::from_slice(&e.iter().find(|(n, _, _)| n == "index.json").unwrap().2).unwrap();
        assert_eq!(index["manifests"][0]["digest"], z.digest.to_string());
        let mj: serde_json::Value =
            serde_json::from_slice(&e.iter().find(|(n, _, _)| n == "manifest.json").unwrap().2).unwrap();
        assert_eq!(mj[0]["RepoTags"], serde_json::Value::Null);
    }

    #[test]
    fn a_corrupt_blob_fails_the_export_and_directories_work() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::open(dir.path()).unwrap();
        let m = image(&blobs, media::OCI_LAYER_GZIP);
        let opts = LayoutOptions { format: Format::Oci, names: vec![], created: None, oci_media_types: false };
        let out = tempfile::tempdir().unwrap();
        write_dir(&blobs, &m, &opts, &out.path().join("layout")).unwrap();
        assert!(out.path().join("layout/oci-layout").is_file());
        assert_eq!(
            fs::read(out.path().join("layout/blobs/sha256").join(m.digest.hex())).unwrap(),
            blobs.read(&m.digest).unwrap()
        );
        let layer = Digest::of(b"pretend layer");
        fs::write(blobs.path(&layer), b"pretend lAyer").unwrap();
        let e = write_tar(&blobs, &m, &opts, Vec::new()).unwrap_err();
        assert!(e.to_string().contains("does not match its digest"), "{e}");
        let e = write_tar_file(&blobs, &m, &opts, &out.path().join("x.tar")).unwrap_err();
        assert!(e.to_string().contains("digest"), "{e}");
        assert!(!out.path().join("x.tar").exists(), "no partial archive is left");
    }
}
