//! Layer and archive compression: encoders for committing layers, decoders for unpacking
//! them, and magic-byte detection.
//!
//! - gzip: written by [`super::pgzip`] (pigz-style blocks compressed on all cores, the same
//!   bytes whatever the core count), zlib level 6 by default, no file name, mtime 0, OS byte
//!   255 — the header Go's `compress/gzip` writes. Read with flate2 (zlib-rs backend);
//!   multi-member streams are read (Go reads them too).
//! - zstd: the `zstd` crate at level 3 (zstd's default); all frames are read.
//! - bzip2 and xz are recognised by their magic bytes but cannot be decoded: no allowed crate
//!   does it, so they give [`LayerError::Unsupported`].
//!
//! The empty layer is special: BuildKit's gzip of an empty tar (1024 zero bytes) is the
//! well-known blob `sha256:4f4fb700…` that registries already hold and that other images
//! share; our gzip of the same bytes would differ, so [`EMPTY_GZIP_LAYER`] is used instead.

use std::io::{self, BufRead, BufReader, Read, Write};

use flate2::read::MultiGzDecoder;

use super::LayerError;
use super::pgzip::{GzipOptions, ParGzEncoder};
use super::tar_write::BLOCK;
use crate::oci::Compression;

/// The gzip blob BuildKit writes for an empty layer (an empty tar: 1024 zero bytes).
/// Digest `sha256:4f4fb700ef54461cfa02571ae0db9a0dc1e0cdb5577484a6d75e68dc38e8acc1`; its
/// diff_id is `sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef`.
/// These bytes were fetched from a registry after `docker26 buildx build` of
/// `FROM busybox` + `WORKDIR /tmp` (BuildKit 0.13) pushed the empty WORKDIR layer.
pub const EMPTY_GZIP_LAYER: [u8; 32] = [
    0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0x62, 0x18, 0x05, 0xa3, 0x60, 0x14, 0x8c, 0x58, 0x00,
    0x08, 0x00, 0x00, 0xff, 0xff, 0x2e, 0xaf, 0xb5, 0xef, 0x00, 0x04, 0x00, 0x00,
];

/// The zstd level used for layers (zstd's own default).
pub const ZSTD_LEVEL: i32 = 3;

/// What the first bytes of a file say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveKind {
    /// An uncompressed tar.
    Tar,
    Gzip,
    Bzip2,
    Xz,
    Zstd,
}

impl ArchiveKind {
    pub fn name(self) -> &'static str {
        match self {
            ArchiveKind::Tar => "tar",
            ArchiveKind::Gzip => "gzip",
            ArchiveKind::Bzip2 => "bzip2",
            ArchiveKind::Xz => "xz",
            ArchiveKind::Zstd => "zstd",
        }
    }
}

/// The compression magic at the start of `head`, if any (moby's `DetectCompression`).
fn compression_magic(head: &[u8]) -> Option<ArchiveKind> {
    if head.starts_with(&[0x1f, 0x8b, 0x08]) {
        Some(ArchiveKind::Gzip)
    } else if head.starts_with(b"BZh") {
        Some(ArchiveKind::Bzip2)
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        Some(ArchiveKind::Xz)
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Some(ArchiveKind::Zstd)
    } else {
        None
    }
}

/// True if `block` is a tar header with a valid checksum (what Go's `tar.Reader.Next`
/// needs to accept a first header; an all-zero block is an empty archive, not a header).
pub fn is_tar_header(block: &[u8]) -> bool {
    if block.len() < BLOCK || block[..BLOCK].iter().all(|&b| b == 0) {
        return false;
    }
    let field = &block[148..156];
    let digits: Vec<u8> = field.iter().copied().filter(|b| (b'0'..=b'7').contains(b)).collect();
    let Ok(want) = u32::from_str_radix(std::str::from_utf8(&digits).unwrap_or("x"), 8) else {
        return false;
    };
    let (mut unsigned, mut signed) = (0i64, 0i64);
    for (i, &c) in block[..BLOCK].iter().enumerate() {
        let c = if (148..156).contains(&i) { b' ' } else { c };
        unsigned += i64::from(c);
        signed += i64::from(c as i8);
    }
    i64::from(want) == unsigned || i64::from(want) == signed
}

/// Detects a gzip, bzip2, xz or zstd stream, or a plain tar (a valid first header, which needs
/// at least 512 bytes of `head`), from the first bytes of a file. `None`: not an archive.
///
/// For compressed kinds this only says what the compression is; whether the content is a tar
/// is known after decompressing ([`detect_archive`] does both).
pub fn sniff_archive(head: &[u8]) -> Option<ArchiveKind> {
    compression_magic(head).or_else(|| is_tar_header(head).then_some(ArchiveKind::Tar))
}

/// Decides, as BuildKit's ADD does, whether a stream is a tar archive (after decompression):
/// its first tar header must parse. Returns the kind, or `None` if it is not an archive.
/// bzip2 and xz streams cannot be looked into and are reported by their magic alone.
pub fn detect_archive<R: Read>(reader: R) -> Result<Option<ArchiveKind>, LayerError> {
    let mut buffered = BufReader::new(reader);
    let head = buffered.fill_buf().map_err(|e| LayerError::io("reading the start of an archive", e))?.to_vec();
    let Some(kind) = sniff_head(&mut buffered, &head)? else {
        return Ok(None);
    };
    match kind {
        ArchiveKind::Tar => Ok(Some(kind)),
        ArchiveKind::Bzip2 | ArchiveKind::Xz => Ok(Some(kind)),
        ArchiveKind::Gzip | ArchiveKind::Zstd => {
            let mut dec = decoder(buffered, kind)?;
            let mut block = vec![0u8; BLOCK];
            let mut got = 0;
            while got < BLOCK {
                match dec.read(&mut block[got..]) {
                    Ok(0) => break,
                    Ok(n) => got += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    // Corrupt compressed data: not something ADD would unpack.
                    Err(_) => return Ok(None),
                }
            }
            Ok(is_tar_header(&block[..got]).then_some(kind))
        }
    }
}

/// Sniffs with more than one buffer's worth when a plain tar header is split across reads.
fn sniff_head<R: Read>(buffered: &mut BufReader<R>, head: &[u8]) -> Result<Option<ArchiveKind>, LayerError> {
    if let Some(k) = compression_magic(head) {
        return Ok(Some(k));
    }
    if head.len() >= BLOCK {
        return Ok(is_tar_header(head).then_some(ArchiveKind::Tar));
    }
    // Short first read: look at a full block without losing bytes.
    let mut block = head.to_vec();
    let mut rest = vec![0u8; BLOCK - block.len()];
    buffered.consume(head.len());
    let mut got = 0;
    while got < rest.len() {
        match buffered.read(&mut rest[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(LayerError::io("reading the start of an archive", e)),
        }
    }
    block.extend_from_slice(&rest[..got]);
    Ok(is_tar_header(&block).then_some(ArchiveKind::Tar))
}

/// A decompressing reader for `kind`.
pub fn decoder<'a, R: Read + 'a>(reader: R, kind: ArchiveKind) -> Result<Box<dyn Read + 'a>, LayerError> {
    match kind {
        ArchiveKind::Tar => Ok(Box::new(reader)),
        ArchiveKind::Gzip => Ok(Box::new(MultiGzDecoder::new(reader))),
        ArchiveKind::Zstd => Ok(Box::new(
            zstd::stream::read::Decoder::new(reader).map_err(|e| LayerError::io("starting zstd decompression", e))?,
        )),
        ArchiveKind::Bzip2 | ArchiveKind::Xz => Err(LayerError::Unsupported(format!(
            "{} compressed archives cannot be decompressed yet (no {} decoder is available to strata)",
            kind.name(),
            kind.name()
        ))),
    }
}

/// Checks that a layer blob's first bytes agree with the compression its media type names.
pub fn check_layer_magic(head: &[u8], compression: Compression) -> Result<(), LayerError> {
    let found = compression_magic(head);
    let ok = match compression {
        Compression::Gzip => found == Some(ArchiveKind::Gzip),
        Compression::Zstd => found == Some(ArchiveKind::Zstd),
        Compression::None => found.is_none(),
    };
    if ok || head.is_empty() {
        return Ok(());
    }
    let what = match found {
        Some(k) => format!("{} data", k.name()),
        None => format!("no {} magic (first bytes {:02x?})", layer_name(compression), &head[..head.len().min(4)]),
    };
    Err(LayerError::CompressionMismatch { expected: layer_name(compression), found: what })
}

fn layer_name(c: Compression) -> &'static str {
    match c {
        Compression::None => "uncompressed tar",
        Compression::Gzip => "gzip",
        Compression::Zstd => "zstd",
    }
}

/// The decoder for a layer blob of a known compression.
pub fn layer_decoder<'a, R: Read + 'a>(reader: R, compression: Compression) -> Result<Box<dyn Read + 'a>, LayerError> {
    decoder(
        reader,
        match compression {
            Compression::None => ArchiveKind::Tar,
            Compression::Gzip => ArchiveKind::Gzip,
            Compression::Zstd => ArchiveKind::Zstd,
        },
    )
}

/// A compressing writer for layer blobs.
pub enum LayerEncoder<W: Write> {
    None(W),
    Gzip(Box<ParGzEncoder<W>>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write> LayerEncoder<W> {
    /// An encoder with the default gzip options ([`GzipOptions::default`]).
    pub fn new(out: W, compression: Compression) -> Result<Self, LayerError> {
        Self::with_gzip(out, compression, &GzipOptions::default())
    }

    /// An encoder; `gzip` sets the level, block size and threads when `compression` is gzip.
    pub fn with_gzip(out: W, compression: Compression, gzip: &GzipOptions) -> Result<Self, LayerError> {
        Ok(match compression {
            Compression::None => LayerEncoder::None(out),
            Compression::Gzip => LayerEncoder::Gzip(Box::new(ParGzEncoder::new(out, gzip)?)),
            Compression::Zstd => LayerEncoder::Zstd(
                zstd::stream::write::Encoder::new(out, ZSTD_LEVEL)
                    .map_err(|e| LayerError::io("starting zstd compression", e))?,
            ),
        })
    }

    /// Ends the compressed stream and returns the inner writer.
    pub fn finish(self) -> io::Result<W> {
        match self {
            LayerEncoder::None(w) => Ok(w),
            LayerEncoder::Gzip(g) => g.finish(),
            LayerEncoder::Zstd(z) => z.finish(),
        }
    }
}

impl<W: Write> Write for LayerEncoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            LayerEncoder::None(w) => w.write(buf),
            LayerEncoder::Gzip(g) => g.write(buf),
            LayerEncoder::Zstd(z) => z.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            LayerEncoder::None(w) => w.flush(),
            LayerEncoder::Gzip(g) => g.flush(),
            LayerEncoder::Zstd(z) => z.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Digest;

    #[test]
    fn the_embedded_empty_layer_is_buildkits() {
        assert_eq!(
            Digest::of(&EMPTY_GZIP_LAYER).to_string(),
            "sha256:4f4fb700ef54461cfa02571ae0db9a0dc1e0cdb5577484a6d75e68dc38e8acc1"
        );
        let mut tar = Vec::new();
        MultiGzDecoder::new(&EMPTY_GZIP_LAYER[..]).read_to_end(&mut tar).unwrap();
        assert_eq!(tar, vec![0u8; 1024]);
        assert_eq!(
            Digest::of(&tar).to_string(),
            "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"
        );
    }

    #[test]
    fn sniffing_magic_bytes() {
        assert_eq!(sniff_archive(&[0x1f, 0x8b, 0x08, 0]), Some(ArchiveKind::Gzip));
        assert_eq!(sniff_archive(b"BZh91AY&SY"), Some(ArchiveKind::Bzip2));
        assert_eq!(sniff_archive(&[0xfd, b'7', b'z', b'X', b'Z', 0, 0]), Some(ArchiveKind::Xz));
        assert_eq!(sniff_archive(&[0x28, 0xb5, 0x2f, 0xfd, 0]), Some(ArchiveKind::Zstd));
        assert_eq!(sniff_archive(b"#!/bin/sh\necho hi\n"), None);
        assert_eq!(sniff_archive(&[0u8; 1024]), None, "an empty tar is not an archive to ADD");
        let mut w = crate::layer::tar_write::TarWriter::new(Vec::new());
        w.header(&crate::layer::tar_write::TarHeader::new(b"a".to_vec(), crate::layer::tar_write::EntryType::Regular))
            .unwrap();
        let tar = w.finish().unwrap();
        assert_eq!(sniff_archive(&tar), Some(ArchiveKind::Tar));
        assert_eq!(sniff_archive(&tar[..100]), None, "too short to check a header");
        let mut gz = LayerEncoder::new(Vec::new(), Compression::Gzip).unwrap();
        gz.write_all(&tar).unwrap();
        let gz = gz.finish().unwrap();
        assert_eq!(detect_archive(&gz[..]).unwrap(), Some(ArchiveKind::Gzip));
        let mut not_tar = LayerEncoder::new(Vec::new(), Compression::Gzip).unwrap();
        not_tar.write_all(b"just some text").unwrap();
        assert_eq!(detect_archive(&not_tar.finish().unwrap()[..]).unwrap(), None);
        assert_eq!(detect_archive(&tar[..]).unwrap(), Some(ArchiveKind::Tar));
    }

    #[test]
    fn media_type_and_magic_must_agree() {
        let gz = [0x1f, 0x8b, 0x08, 0x00];
        assert!(check_layer_magic(&gz, Compression::Gzip).is_ok());
        let err = check_layer_magic(&gz, Compression::Zstd).unwrap_err();
        assert!(err.to_string().contains("gzip data"), "{err}");
        assert!(check_layer_magic(&gz, Compression::None).is_err());
        assert!(check_layer_magic(b"etc/\0\0\0", Compression::Gzip).is_err());
        assert!(check_layer_magic(&[0x28, 0xb5, 0x2f, 0xfd], Compression::Zstd).is_ok());
    }

    #[test]
    fn gzip_header_is_gos() {
        let mut gz = LayerEncoder::new(Vec::new(), Compression::Gzip).unwrap();
        gz.write_all(b"x").unwrap();
        let out = gz.finish().unwrap();
        assert_eq!(&out[..10], &[0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 0xff]);
    }
}
