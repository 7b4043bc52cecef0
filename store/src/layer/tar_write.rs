//! Tar header encoding, byte-for-byte as Go's `archive/tar` writes a header with
//! `Format = tar.FormatPAX` (what containerd's change writer, and so BuildKit, produce).
//!
//! Matching Go's encoder means the same tree gives the same diff_id as BuildKit. The rules
//! carried over from Go's `Header.allowedFormats` / `Writer.writeUSTARHeader` /
//! `Writer.writePAXHeader`:
//! - if every field fits a USTAR header (ASCII names of at most 100 bytes, or a longer path
//!   that splits at a `/` into a prefix of at most 155 and a name of at most 100 bytes;
//!   numbers that fit their octal fields; no xattrs), a single USTAR header is written;
//! - otherwise a PAX extended header (`x`, named `DIR/PaxHeaders.0/BASE`) carries the
//!   records that do not fit (`path`, `linkpath`, `uid`, `gid`, `size`, `mtime`,
//!   `SCHILY.xattr.*`, keys sorted), followed by the main header whose name is the path with
//!   non-ASCII bytes dropped, cut to 100 bytes, and whose overflowing numbers are 0;
//! - numbers are zero-padded octal with a NUL terminator; the checksum is six octal digits,
//!   NUL, space; magic `ustar\0`, version `00`;
//! - the archive ends with two zero blocks (no padding to a 10 KiB record).
//!
//! GNU tar, bsdtar and Go's reader all read this format (PAX is POSIX.1-2001).

use std::collections::BTreeMap;
use std::io::{self, Write};

pub(crate) const BLOCK: usize = 512;

/// Tar entry types written by strata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryType {
    Regular,
    HardLink,
    Symlink,
    Char,
    Block,
    Directory,
    Fifo,
}

impl EntryType {
    pub(crate) fn flag(self) -> u8 {
        match self {
            EntryType::Regular => b'0',
            EntryType::HardLink => b'1',
            EntryType::Symlink => b'2',
            EntryType::Char => b'3',
            EntryType::Block => b'4',
            EntryType::Directory => b'5',
            EntryType::Fifo => b'6',
        }
    }
}

/// One tar header, as strata writes it (no user or group names: layers carry numeric ids).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TarHeader {
    /// Relative path; directories end with `/`.
    pub name: Vec<u8>,
    pub kind: EntryType,
    /// Permission bits plus setuid/setgid/sticky (no file type bits), as Go's `FileInfoHeader`.
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    /// Data size (regular files only; 0 otherwise).
    pub size: u64,
    /// Modification time in whole seconds (containerd truncates to seconds).
    pub mtime: i64,
    /// Symlink target or hard link target.
    pub linkname: Vec<u8>,
    pub devmajor: u32,
    pub devminor: u32,
    /// Extended attributes, written as `SCHILY.xattr.<name>` PAX records.
    pub xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl TarHeader {
    pub fn new(name: Vec<u8>, kind: EntryType) -> TarHeader {
        TarHeader {
            name,
            kind,
            mode: 0,
            uid: 0,
            gid: 0,
            size: 0,
            mtime: 0,
            linkname: Vec::new(),
            devmajor: 0,
            devminor: 0,
            xattrs: BTreeMap::new(),
        }
    }
}

/// Why a header cannot be encoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EncodeError {
    #[error("device number {major}:{minor} does not fit a tar header")]
    DeviceTooLarge { major: u32, minor: u32 },
    #[error("name contains a NUL byte")]
    NulInName,
    #[error("extended header records exceed 1 MiB")]
    PaxTooLarge,
}

/// Go's `maxSpecialFileSize`: readers refuse larger PAX or GNU long-name payloads.
pub(crate) const MAX_SPECIAL_FILE: usize = 1 << 20;

fn fits_octal(field_len: usize, v: i128) -> bool {
    // One byte is kept for the NUL terminator.
    let digits = field_len as u32 - 1;
    v >= 0 && v < (1i128 << (3 * digits))
}

fn is_ascii(s: &[u8]) -> bool {
    s.iter().all(|&b| b < 0x80 && b != 0)
}

/// Go's `toASCII`: drops every non-ASCII character (invalid UTF-8 counts as one).
fn to_ascii(s: &[u8]) -> Vec<u8> {
    if is_ascii(s) {
        return s.to_vec();
    }
    String::from_utf8_lossy(s).chars().filter(|&c| (c as u32) < 0x80 && c != '\0').map(|c| c as u8).collect()
}

/// Go's `splitUSTARPath`: splits a long ASCII path at a `/` into (prefix, name).
fn split_ustar_path(name: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut length = name.len();
    if length <= 100 || !is_ascii(name) {
        return None;
    } else if length > 156 {
        length = 156;
    } else if name[length - 1] == b'/' {
        length -= 1;
    }
    let i = name[..length].iter().rposition(|&b| b == b'/')?;
    let nlen = name.len() - i - 1;
    if i == 0 || nlen > 100 || nlen == 0 || i > 155 {
        return None;
    }
    Some((&name[..i], &name[i + 1..]))
}

/// Go's `formatter.formatString`.
fn put_str(field: &mut [u8], s: &[u8]) {
    let n = s.len().min(field.len());
    field[..n].copy_from_slice(&s[..n]);
    if s.len() < field.len() {
        field[s.len()] = 0;
    }
    // A cut path must not end in '/' in the V7 field, or some readers take it for a directory.
    if s.len() > field.len() && field[field.len() - 1] == b'/' {
        let trimmed = field[..field.len() - 1].iter().rposition(|&b| b != b'/').map_or(0, |p| p + 1);
        field[trimmed] = 0;
    }
}

/// Go's `formatter.formatOctal` (0 when the value does not fit).
fn put_octal(field: &mut [u8], v: i128) {
    let v = if fits_octal(field.len(), v) { v } else { 0 };
    let s = format!("{v:o}");
    let width = field.len() - 1;
    let padded = if s.len() < width { format!("{}{s}", "0".repeat(width - s.len())) } else { s };
    put_str(field, padded.as_bytes());
}

/// Go's `formatPAXRecord`: `"<len> <key>=<value>\n"` where len counts the whole record.
fn pax_record(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    let base = key.len() + value.len() + 3;
    let mut size = base + base.to_string().len();
    if (base + size.to_string().len()) != size {
        size = base + size.to_string().len();
    }
    out.extend_from_slice(size.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

/// Fills the checksum and magic of a header block (Go's `block.setFormat` for USTAR/PAX).
fn finish_block(blk: &mut [u8; BLOCK]) {
    blk[257..263].copy_from_slice(b"ustar\0");
    blk[263..265].copy_from_slice(b"00");
    blk[148..156].fill(b' ');
    let sum: u32 = blk.iter().map(|&b| u32::from(b)).sum();
    put_octal(&mut blk[148..155], i128::from(sum));
    blk[155] = b' ';
}

/// The V7+USTAR fields shared by both paths (Go's `templateV7Plus`).
fn template(h: &TarHeader, name: &[u8]) -> [u8; BLOCK] {
    let mut blk = [0u8; BLOCK];
    blk[156] = h.kind.flag();
    put_str(&mut blk[0..100], name);
    put_str(&mut blk[157..257], &h.linkname);
    put_octal(&mut blk[100..108], i128::from(h.mode));
    put_octal(&mut blk[108..116], i128::from(h.uid));
    put_octal(&mut blk[116..124], i128::from(h.gid));
    put_octal(&mut blk[124..136], i128::from(h.size));
    put_octal(&mut blk[136..148], i128::from(h.mtime));
    // uname (265..297) and gname (297..329) stay empty.
    put_octal(&mut blk[329..337], i128::from(h.devmajor));
    put_octal(&mut blk[337..345], i128::from(h.devminor));
    blk
}

/// Encodes one header as Go would (one USTAR block, or a PAX header, its records and the
/// main block), appending the bytes to `out`. Data and padding are the caller's.
pub fn encode_header(h: &TarHeader, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    if h.name.contains(&0) || h.linkname.contains(&0) {
        return Err(EncodeError::NulInName);
    }
    if !fits_octal(8, i128::from(h.devmajor)) || !fits_octal(8, i128::from(h.devminor)) {
        return Err(EncodeError::DeviceTooLarge { major: h.devmajor, minor: h.devminor });
    }
    let mut ustar_ok = true;
    let mut pax: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    if !is_ascii(&h.name) || h.name.len() > 100 {
        if split_ustar_path(&h.name).is_none() {
            ustar_ok = false;
        }
        pax.insert(b"path".to_vec(), h.name.clone());
    }
    if !is_ascii(&h.linkname) || h.linkname.len() > 100 {
        ustar_ok = false;
        pax.insert(b"linkpath".to_vec(), h.linkname.clone());
    }
    for (key, v, len) in [("uid", h.uid, 8), ("gid", h.gid, 8), ("size", h.size, 12)] {
        if !fits_octal(len, i128::from(v)) {
            ustar_ok = false;
            pax.insert(key.as_bytes().to_vec(), v.to_string().into_bytes());
        }
    }
    if !fits_octal(12, i128::from(h.mtime)) {
        ustar_ok = false;
        pax.insert(b"mtime".to_vec(), h.mtime.to_string().into_bytes());
    }
    if !h.xattrs.is_empty() {
        ustar_ok = false;
        for (k, v) in &h.xattrs {
            let mut key = b"SCHILY.xattr.".to_vec();
            key.extend_from_slice(k);
            pax.insert(key, v.clone());
        }
    }

    if ustar_ok {
        let (prefix, name) = split_ustar_path(&h.name).unwrap_or((&[], &h.name));
        let mut blk = template(h, name);
        put_str(&mut blk[345..500], prefix);
        finish_block(&mut blk);
        out.extend_from_slice(&blk);
        return Ok(());
    }

    let mut records = Vec::new();
    for (k, v) in &pax {
        pax_record(&mut records, k, v);
    }
    if records.len() > MAX_SPECIAL_FILE {
        return Err(EncodeError::PaxTooLarge);
    }
    // Go: path.Join(dir, "PaxHeaders.0", file) of path.Split(name), then toASCII, cut to 100,
    // trailing slashes trimmed.
    let split = h.name.iter().rposition(|&b| b == b'/').map_or(0, |p| p + 1);
    let (dir, file) = h.name.split_at(split);
    let mut xname = dir.to_vec();
    xname.extend_from_slice(b"PaxHeaders.0");
    if !file.is_empty() {
        xname.push(b'/');
        xname.extend_from_slice(file);
    }
    let mut xname = to_ascii(&xname);
    xname.truncate(100);
    while xname.last() == Some(&b'/') {
        xname.pop();
    }
    let mut xblk = [0u8; BLOCK];
    xblk[156] = b'x';
    put_str(&mut xblk[0..100], &xname);
    put_octal(&mut xblk[100..108], 0);
    put_octal(&mut xblk[108..116], 0);
    put_octal(&mut xblk[116..124], 0);
    put_octal(&mut xblk[124..136], records.len() as i128);
    put_octal(&mut xblk[136..148], 0);
    finish_block(&mut xblk);
    out.extend_from_slice(&xblk);
    out.extend_from_slice(&records);
    out.resize(out.len() + padding(records.len() as u64), 0);

    let mut blk = template(h, &to_ascii(&h.name));
    finish_block(&mut blk);
    out.extend_from_slice(&blk);
    Ok(())
}

/// Zero bytes needed after `size` bytes of data to reach a block boundary.
pub(crate) fn padding(size: u64) -> usize {
    ((BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64) as usize
}

/// Writes headers, data and the end-of-archive marker to a stream.
pub struct TarWriter<W: Write> {
    out: W,
    scratch: Vec<u8>,
}

impl<W: Write> TarWriter<W> {
    pub fn new(out: W) -> Self {
        TarWriter { out, scratch: Vec::with_capacity(4 * BLOCK) }
    }

    /// Writes a header. For a regular file the caller then writes exactly `size` bytes with
    /// [`TarWriter::data`] and calls [`TarWriter::pad`].
    pub fn header(&mut self, h: &TarHeader) -> io::Result<()> {
        self.scratch.clear();
        encode_header(h, &mut self.scratch).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        self.out.write_all(&self.scratch)
    }

    pub fn data(&mut self) -> &mut W {
        &mut self.out
    }

    /// Pads the data of an entry of `size` bytes to the block boundary.
    pub fn pad(&mut self, size: u64) -> io::Result<()> {
        self.out.write_all(&[0u8; BLOCK][..padding(size)])
    }

    /// Writes the two zero blocks that end an archive and returns the stream.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.write_all(&[0u8; 2 * BLOCK])?;
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header_bytes(h: &TarHeader) -> Vec<u8> {
        let mut out = Vec::new();
        encode_header(h, &mut out).unwrap();
        out
    }

    /// The `bin/` header BuildKit's docker exporter wrote for a RUN step (Go archive/tar):
    /// mode 0755, mtime 1795424864, checksum "007775\0 ".
    #[test]
    fn ustar_directory_header_matches_go() {
        let mut h = TarHeader::new(b"bin/".to_vec(), EntryType::Directory);
        h.mode = 0o755;
        h.mtime = 1_795_424_864;
        let b = header_bytes(&h);
        assert_eq!(b.len(), 512);
        assert_eq!(&b[100..108], b"0000755\0");
        assert_eq!(&b[124..136], b"00000000000\0");
        assert_eq!(&b[136..148], b"15301001140\0");
        assert_eq!(&b[148..156], b"007775\0 ");
        assert_eq!(&b[257..265], b"ustar\x0000");
        assert_eq!(&b[329..345], b"0000000\x000000000\0");
    }

    #[test]
    fn pax_record_length_counts_itself() {
        let mut out = Vec::new();
        pax_record(&mut out, b"path", b"x");
        assert_eq!(out, b"9 path=x\n");
        // 4 + 91 + 3 = 98 bytes plus two digits is 100, which needs three digits: 101.
        let mut out = Vec::new();
        let v = vec![b'a'; 91];
        pax_record(&mut out, b"path", &v);
        assert!(out.starts_with(b"101 path=aaa"));
        assert_eq!(out.len(), 101);
    }

    #[test]
    fn long_splittable_names_stay_ustar_and_others_use_pax() {
        let name = format!("{}/{}", "d".repeat(120), "f".repeat(90));
        let h = TarHeader::new(name.clone().into_bytes(), EntryType::Regular);
        let b = header_bytes(&h);
        assert_eq!(b.len(), 512, "prefix/name split keeps a single header");
        assert_eq!(&b[345..465], "d".repeat(120).as_bytes());

        let long = "x".repeat(300);
        let h = TarHeader::new(long.clone().into_bytes(), EntryType::Regular);
        let b = header_bytes(&h);
        assert_eq!(b[156], b'x');
        assert_eq!(&b[0..12], b"PaxHeaders.0");
        let rec = format!("310 path={long}\n");
        assert_eq!(&b[512..512 + rec.len()], rec.as_bytes());
        let main = &b[b.len() - 512..];
        assert_eq!(&main[0..100], &long.as_bytes()[..100]);
    }

    #[test]
    fn big_sizes_and_ids_go_to_pax_with_zero_fields() {
        let mut h = TarHeader::new(b"big".to_vec(), EntryType::Regular);
        h.size = 9 << 30;
        h.uid = 3_000_000;
        let b = header_bytes(&h);
        let recs = String::from_utf8_lossy(&b[512..1024]);
        assert!(recs.starts_with("19 size=9663676416\n15 uid=3000000\n"), "{recs}");
        let main = &b[1024..1536];
        assert_eq!(&main[124..136], b"00000000000\0");
        assert_eq!(&main[108..116], b"0000000\0");
    }

    #[test]
    fn devices_that_do_not_fit_are_refused() {
        let mut h = TarHeader::new(b"dev".to_vec(), EntryType::Char);
        h.devmajor = 1 << 22;
        let mut out = Vec::new();
        assert!(matches!(encode_header(&h, &mut out), Err(EncodeError::DeviceTooLarge { .. })));
    }
}
