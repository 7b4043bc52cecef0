//! A tar stream parser: headers and data, nothing touches the filesystem here.
//!
//! Our own reader rather than the `tar` crate's, so that every name and number that reaches
//! the extractor went through one place we control. It follows Go's `archive/tar` reader
//! (what containerd and BuildKit use), so it accepts what they accept:
//! - V7, USTAR (with its 155-byte prefix), PAX (`x` records: `path`, `linkpath`, `size`,
//!   `uid`, `gid`, `mtime`, `SCHILY.xattr.*`; `g` global headers are skipped) and GNU
//!   (`L`/`K` long names, base-256 numbers);
//! - a header's checksum may be the signed or the unsigned sum;
//! - type `0`, NUL and `7` are regular files (NUL with a trailing `/` is a directory); links,
//!   devices, directories and fifos carry no data whatever their size field says;
//! - the archive ends at two zero blocks, at one zero block followed by the end of the stream,
//!   or at the end of the stream on a header boundary;
//! - GNU sparse files (type `S`, `GNU.sparse.*` records) are refused as unsupported.
//!
//! Special payloads (PAX records, GNU long names) are limited to 1 MiB like Go's, so a hostile
//! size field cannot make us allocate; file data is streamed by the caller.

use std::io::{self, Read};

use super::LayerError;
use super::tar_write::{BLOCK, MAX_SPECIAL_FILE, padding};

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Regular,
    HardLink,
    Symlink,
    Char,
    Block,
    Directory,
    Fifo,
    /// A type strata does not extract (GNU volume labels, multi-volume parts, …).
    Other(u8),
}

/// One parsed entry header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The path as recorded (not cleaned).
    pub name: Vec<u8>,
    pub kind: Kind,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    /// Bytes of data that follow (0 for types that carry none).
    pub size: u64,
    pub mtime: i64,
    pub mtime_nsec: u32,
    pub linkname: Vec<u8>,
    pub devmajor: u32,
    pub devminor: u32,
    /// `SCHILY.xattr.*` records, in archive order.
    pub xattrs: Records,
}

impl Entry {
    /// The name for messages.
    pub fn display_name(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }
}

/// Reads entries from a tar stream.
pub struct TarReader<R> {
    inner: R,
    /// Bytes consumed so far (for error messages).
    offset: u64,
    /// Data bytes of the current entry not yet read, and the padding after them.
    remaining: u64,
    pad: usize,
    current: Option<String>,
    done: bool,
}

fn parse_str(b: &[u8]) -> &[u8] {
    match b.iter().position(|&c| c == 0) {
        Some(n) => &b[..n],
        None => b,
    }
}

/// Go's `parser.parseNumeric`: base-256 when the high bit is set, octal otherwise.
fn parse_numeric(b: &[u8]) -> Result<i64, String> {
    if let Some(&first) = b.first()
        && first & 0x80 != 0
    {
        let inv: u8 = if first & 0x40 != 0 { 0xff } else { 0 };
        let mut x: u64 = 0;
        for (i, &c) in b.iter().enumerate() {
            let mut c = c ^ inv;
            if i == 0 {
                c &= 0x7f;
            }
            if x >> 56 > 0 {
                return Err("base-256 number overflows".into());
            }
            x = (x << 8) | u64::from(c);
        }
        if x >> 63 > 0 {
            return Err("base-256 number overflows".into());
        }
        return Ok(if inv == 0xff { !(x as i64) } else { x as i64 });
    }
    parse_octal(b)
}

fn parse_octal(b: &[u8]) -> Result<i64, String> {
    let start = b.iter().position(|&c| c != b' ' && c != 0).unwrap_or(b.len());
    let end = b.iter().rposition(|&c| c != b' ' && c != 0).map_or(start, |p| p + 1);
    let trimmed = parse_str(&b[start..end.max(start)]);
    if trimmed.is_empty() {
        return Ok(0);
    }
    let s = std::str::from_utf8(trimmed).map_err(|_| format!("invalid octal number {trimmed:?}"))?;
    u64::from_str_radix(s, 8)
        .ok()
        .and_then(|v| i64::try_from(v).ok())
        .ok_or_else(|| format!("invalid octal number {:?}", String::from_utf8_lossy(trimmed)))
}

fn checksum_ok(blk: &[u8; BLOCK]) -> Result<bool, String> {
    let want = parse_octal(&blk[148..156])?;
    let (mut unsigned, mut signed) = (0i64, 0i64);
    for (i, &c) in blk.iter().enumerate() {
        let c = if (148..156).contains(&i) { b' ' } else { c };
        unsigned += i64::from(c);
        signed += i64::from(c as i8);
    }
    Ok(want == unsigned || want == signed)
}

/// Parses a PAX time (`secs[.frac]`, maybe negative) into seconds and nanoseconds.
fn parse_pax_time(v: &str) -> Option<(i64, u32)> {
    let (secs, frac) = v.split_once('.').unwrap_or((v, ""));
    let s: i64 = secs.parse().ok()?;
    if frac.is_empty() {
        return Some((s, 0));
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut digits: String = frac.chars().take(9).collect();
    while digits.len() < 9 {
        digits.push('0');
    }
    let n: u32 = digits.parse().ok()?;
    if secs.starts_with('-') && n > 0 {
        // -1.25 is 1.25 s before the epoch: -2 s + 0.75 s.
        return Some((s - 1, 1_000_000_000 - n));
    }
    Some((s, n))
}

/// Splits a PAX payload into (key, value) records, checking each length prefix.
/// PAX records or xattrs: (key, value) pairs in archive order.
pub type Records = Vec<(Vec<u8>, Vec<u8>)>;

fn parse_pax(mut data: &[u8]) -> Result<Records, String> {
    let mut out = Vec::new();
    while !data.is_empty() {
        let sp = data.iter().position(|&c| c == b' ').ok_or("PAX record without a length")?;
        let len: usize = std::str::from_utf8(&data[..sp])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or("PAX record with an invalid length")?;
        if len <= sp + 1 || len > data.len() || data[len - 1] != b'\n' {
            return Err("PAX record length does not match its content".into());
        }
        let rec = &data[sp + 1..len - 1];
        let eq = rec.iter().position(|&c| c == b'=').ok_or("PAX record without '='")?;
        if eq == 0 {
            return Err("PAX record with an empty key".into());
        }
        out.push((rec[..eq].to_vec(), rec[eq + 1..].to_vec()));
        data = &data[len..];
    }
    Ok(out)
}

/// The numeric fields of a header block.
struct Numbers {
    mode: i64,
    uid: i64,
    gid: i64,
    size: i64,
    mtime: i64,
    major: i64,
    minor: i64,
}

fn parse_numbers(blk: &[u8; BLOCK]) -> Result<Numbers, String> {
    let num = |r: std::ops::Range<usize>, what: &str| parse_numeric(&blk[r]).map_err(|e| format!("{what}: {e}"));
    // V7 headers have no device fields (those bytes may be anything).
    let has_dev = &blk[257..263] == b"ustar\0" || &blk[257..265] == b"ustar  \0";
    Ok(Numbers {
        mode: num(100..108, "mode")?,
        uid: num(108..116, "uid")?,
        gid: num(116..124, "gid")?,
        size: num(124..136, "size")?,
        mtime: num(136..148, "mtime")?,
        major: if has_dev { num(329..337, "devmajor")? } else { 0 },
        minor: if has_dev { num(337..345, "devminor")? } else { 0 },
    })
}

impl<R: Read> TarReader<R> {
    pub fn new(inner: R) -> Self {
        TarReader { inner, offset: 0, remaining: 0, pad: 0, current: None, done: false }
    }

    /// The underlying stream (positioned after whatever was read).
    pub fn into_inner(self) -> R {
        self.inner
    }

    fn truncated(&self) -> LayerError {
        LayerError::Truncated { offset: self.offset, entry: self.current.clone() }
    }

    fn read_err(&self, e: io::Error) -> LayerError {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            return self.truncated();
        }
        LayerError::Stream { offset: self.offset, entry: self.current.clone(), source: e }
    }

    fn bad(&self, reason: impl Into<String>) -> LayerError {
        LayerError::BadHeader { offset: self.offset, entry: self.current.clone(), reason: reason.into() }
    }

    /// Reads exactly `buf.len()` bytes; `Ok(false)` if the stream ended before the first byte.
    fn read_full(&mut self, buf: &mut [u8]) -> Result<bool, LayerError> {
        let mut got = 0;
        while got < buf.len() {
            match self.inner.read(&mut buf[got..]) {
                Ok(0) if got == 0 => return Ok(false),
                Ok(0) => {
                    self.offset += got as u64;
                    return Err(self.truncated());
                }
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.offset += got as u64;
                    return Err(self.read_err(e));
                }
            }
        }
        self.offset += got as u64;
        Ok(true)
    }

    fn skip(&mut self, mut n: u64) -> Result<(), LayerError> {
        let mut buf = [0u8; 8192];
        while n > 0 {
            let chunk = n.min(buf.len() as u64) as usize;
            if !self.read_full(&mut buf[..chunk])? {
                return Err(self.truncated());
            }
            n -= chunk as u64;
        }
        Ok(())
    }

    /// Reads a special payload (PAX records, GNU long name) of `size` bytes plus padding.
    fn read_special(&mut self, size: i64) -> Result<Vec<u8>, LayerError> {
        if size < 0 || size as u64 > MAX_SPECIAL_FILE as u64 {
            return Err(self.bad(format!("extended header of {size} bytes (limit {MAX_SPECIAL_FILE})")));
        }
        let mut data = vec![0u8; size as usize];
        if !self.read_full(&mut data)? && size > 0 {
            return Err(self.truncated());
        }
        self.skip(padding(size as u64) as u64)?;
        Ok(data)
    }

    /// Reads the next block of a header; `None` at the end of the archive.
    fn next_block(&mut self) -> Result<Option<[u8; BLOCK]>, LayerError> {
        let mut blk = [0u8; BLOCK];
        if !self.read_full(&mut blk)? {
            return Ok(None);
        }
        if blk.iter().all(|&b| b == 0) {
            if !self.read_full(&mut blk)? || blk.iter().all(|&b| b == 0) {
                return Ok(None);
            }
            return Err(self.bad("a zero block followed by a non-zero block"));
        }
        match checksum_ok(&blk) {
            Ok(true) => Ok(Some(blk)),
            Ok(false) => Err(self.bad("header checksum mismatch")),
            Err(e) => Err(self.bad(format!("header checksum field: {e}"))),
        }
    }

    /// The next entry, or `None` after the end-of-archive marker. Data not read from the
    /// previous entry is skipped.
    pub fn next_entry(&mut self) -> Result<Option<Entry>, LayerError> {
        if self.done {
            return Ok(None);
        }
        let (rest, pad) = (self.remaining, self.pad);
        self.remaining = 0;
        self.pad = 0;
        self.skip(rest + pad as u64)?;
        self.current = None;

        let mut pax: Records = Vec::new();
        let mut long_name: Option<Vec<u8>> = None;
        let mut long_link: Option<Vec<u8>> = None;
        loop {
            let Some(blk) = self.next_block()? else {
                if !pax.is_empty() || long_name.is_some() || long_link.is_some() {
                    return Err(self.truncated());
                }
                self.done = true;
                return Ok(None);
            };
            let flag = blk[156];
            let num =
                |r: std::ops::Range<usize>, what: &str| parse_numeric(&blk[r]).map_err(|e| format!("{what}: {e}"));
            match flag {
                b'x' | b'g' | b'L' | b'K' => {
                    let size = num(124..136, "size").map_err(|e| self.bad(e))?;
                    let data = self.read_special(size)?;
                    match flag {
                        b'x' => pax.extend(parse_pax(&data).map_err(|e| self.bad(e))?),
                        b'g' => {} // Global records: Go returns them as an entry; extractors ignore them.
                        b'L' => long_name = Some(parse_str(&data).to_vec()),
                        _ => long_link = Some(parse_str(&data).to_vec()),
                    }
                    continue;
                }
                _ => {}
            }

            let ustar = &blk[257..263] == b"ustar\0";
            let mut name = parse_str(&blk[0..100]).to_vec();
            if ustar {
                let star = &blk[508..512] == b"tar\0";
                let prefix = parse_str(if star { &blk[345..476] } else { &blk[345..500] });
                if !prefix.is_empty() {
                    let mut full = prefix.to_vec();
                    full.push(b'/');
                    full.extend_from_slice(&name);
                    name = full;
                }
            }
            let mut e = Entry {
                name,
                kind: Kind::Other(flag),
                mode: 0,
                uid: 0,
                gid: 0,
                size: 0,
                mtime: 0,
                mtime_nsec: 0,
                linkname: parse_str(&blk[157..257]).to_vec(),
                devmajor: 0,
                devminor: 0,
                xattrs: Vec::new(),
            };
            if let Some(n) = long_name.take() {
                e.name = n;
            }
            if let Some(l) = long_link.take() {
                e.linkname = l;
            }
            self.current = Some(e.display_name());
            let Numbers { mode, uid, gid, size, mtime, major, minor } =
                parse_numbers(&blk).map_err(|err| self.bad(err))?;
            let (Ok(mode), Ok(uid), Ok(gid), Ok(mut size), Ok(devmajor), Ok(devminor)) = (
                u32::try_from(mode & 0o7777),
                u64::try_from(uid),
                u64::try_from(gid),
                u64::try_from(size),
                u32::try_from(major),
                u32::try_from(minor),
            ) else {
                return Err(self.bad("negative or oversized number in header"));
            };
            e.mode = mode;
            e.uid = uid;
            e.gid = gid;
            e.mtime = mtime;
            e.devmajor = devmajor;
            e.devminor = devminor;

            for (k, v) in pax.drain(..) {
                let text = || String::from_utf8_lossy(&v).into_owned();
                match k.as_slice() {
                    b"path" => e.name = v,
                    b"linkpath" => e.linkname = v,
                    b"size" => size = text().parse().map_err(|_| self.bad(format!("PAX size {:?}", text())))?,
                    b"uid" => e.uid = text().parse().map_err(|_| self.bad(format!("PAX uid {:?}", text())))?,
                    b"gid" => e.gid = text().parse().map_err(|_| self.bad(format!("PAX gid {:?}", text())))?,
                    b"mtime" => {
                        (e.mtime, e.mtime_nsec) =
                            parse_pax_time(&text()).ok_or_else(|| self.bad(format!("PAX mtime {:?}", text())))?
                    }
                    _ if k.starts_with(b"SCHILY.xattr.") => {
                        e.xattrs.push((k[b"SCHILY.xattr.".len()..].to_vec(), v));
                    }
                    _ if k.starts_with(b"GNU.sparse.") => {
                        return Err(LayerError::Unsupported(format!(
                            "tar entry {}: GNU sparse files are not supported",
                            e.display_name()
                        )));
                    }
                    _ => {}
                }
            }
            self.current = Some(e.display_name());

            e.kind = match flag {
                b'0' | b'7' => Kind::Regular,
                0 if e.name.ends_with(b"/") => Kind::Directory,
                0 => Kind::Regular,
                b'1' => Kind::HardLink,
                b'2' => Kind::Symlink,
                b'3' => Kind::Char,
                b'4' => Kind::Block,
                b'5' => Kind::Directory,
                b'6' => Kind::Fifo,
                b'S' => {
                    return Err(LayerError::Unsupported(format!(
                        "tar entry {}: GNU sparse files are not supported",
                        e.display_name()
                    )));
                }
                other => Kind::Other(other),
            };
            // Links, devices, directories and fifos carry no data (Go's isHeaderOnlyType).
            if matches!(
                e.kind,
                Kind::HardLink | Kind::Symlink | Kind::Char | Kind::Block | Kind::Directory | Kind::Fifo
            ) {
                size = 0;
            }
            e.size = size;
            self.remaining = size;
            self.pad = padding(size);
            return Ok(Some(e));
        }
    }

    /// Reads data of the current entry; 0 at its end. A stream that ends early is an error.
    pub fn read_data(&mut self, buf: &mut [u8]) -> Result<usize, LayerError> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = (buf.len() as u64).min(self.remaining) as usize;
        loop {
            match self.inner.read(&mut buf[..want]) {
                Ok(0) => return Err(self.truncated()),
                Ok(n) => {
                    self.remaining -= n as u64;
                    self.offset += n as u64;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.read_err(e)),
            }
        }
    }

    /// Reads the rest of the stream after the end-of-archive marker (so that digests cover
    /// every byte).
    pub fn drain(&mut self) -> Result<u64, LayerError> {
        let mut buf = [0u8; 8192];
        let mut n = 0u64;
        loop {
            match self.inner.read(&mut buf) {
                Ok(0) => return Ok(n),
                Ok(k) => {
                    n += k as u64;
                    self.offset += k as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.read_err(e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::tar_write::{EntryType, TarHeader, TarWriter};

    fn archive(headers: &[(TarHeader, &[u8])]) -> Vec<u8> {
        let mut w = TarWriter::new(Vec::new());
        for (h, data) in headers {
            w.header(h).unwrap();
            std::io::Write::write_all(w.data(), data).unwrap();
            w.pad(data.len() as u64).unwrap();
        }
        w.finish().unwrap()
    }

    #[test]
    fn reads_back_what_the_writer_wrote() {
        let mut f = TarHeader::new("é/".repeat(80).into_bytes(), EntryType::Directory);
        f.mode = 0o4755;
        f.uid = 5_000_000;
        f.mtime = -5;
        f.xattrs.insert(b"user.k".to_vec(), b"v\0w".to_vec());
        let mut g = TarHeader::new(b"f".to_vec(), EntryType::Regular);
        g.size = 3;
        let mut l = TarHeader::new(b"l".to_vec(), EntryType::Symlink);
        l.linkname = "t".repeat(200).into_bytes();
        let data = archive(&[(f.clone(), b""), (g, b"abc"), (l.clone(), b"")]);
        let mut r = TarReader::new(&data[..]);
        let e = r.next_entry().unwrap().unwrap();
        assert_eq!(e.name, f.name);
        assert_eq!((e.kind, e.mode, e.uid, e.mtime), (Kind::Directory, 0o4755, 5_000_000, -5));
        assert_eq!(e.xattrs, vec![(b"user.k".to_vec(), b"v\0w".to_vec())]);
        let e = r.next_entry().unwrap().unwrap();
        let mut buf = [0u8; 10];
        assert_eq!(r.read_data(&mut buf).unwrap(), 3);
        assert_eq!(&buf[..3], b"abc");
        assert_eq!(e.size, 3);
        let e = r.next_entry().unwrap().unwrap();
        assert_eq!(e.linkname, l.linkname);
        assert!(r.next_entry().unwrap().is_none());
    }

    #[test]
    fn numbers_in_base256_and_pax_times() {
        let mut b = [0u8; 12];
        b[0] = 0x80;
        b[11] = 0x2a;
        assert_eq!(parse_numeric(&b).unwrap(), 42);
        assert_eq!(parse_numeric(&[0xff; 8]).unwrap(), -1);
        assert_eq!(parse_octal(b" 0000644\0").unwrap(), 0o644);
        assert!(parse_octal(b"0009").is_err());
        assert_eq!(parse_pax_time("1.5"), Some((1, 500_000_000)));
        assert_eq!(parse_pax_time("-1.25"), Some((-2, 750_000_000)));
        assert_eq!(parse_pax_time("x"), None);
    }

    #[test]
    fn corrupt_and_truncated_streams_are_errors() {
        let mut h = TarHeader::new(b"file".to_vec(), EntryType::Regular);
        h.size = 1000;
        let data = archive(&[(h, &[7u8; 1000])]);
        let mut bad = data.clone();
        bad[10] ^= 1;
        let err = TarReader::new(&bad[..]).next_entry().unwrap_err();
        assert!(err.to_string().contains("checksum"), "{err}");

        let cut = &data[..700];
        let mut r = TarReader::new(cut);
        r.next_entry().unwrap().unwrap();
        let mut buf = vec![0u8; 2000];
        let mut err = None;
        for _ in 0..4 {
            if let Err(e) = r.read_data(&mut buf) {
                err = Some(e);
                break;
            }
        }
        let err = err.expect("truncation detected");
        assert!(matches!(err, LayerError::Truncated { .. }), "{err}");
        assert!(err.to_string().contains("file"), "{err}");

        let err = TarReader::new(&data[..300]).next_entry().unwrap_err();
        assert!(matches!(err, LayerError::Truncated { .. }));
    }

    #[test]
    fn oversized_pax_headers_are_refused_without_allocating() {
        let mut blk = [0u8; 512];
        blk[..4].copy_from_slice(b"pax\0");
        blk[156] = b'x';
        blk[124..136].copy_from_slice(b"77777777777\0");
        blk[257..265].copy_from_slice(b"ustar\x0000");
        blk[148..156].fill(b' ');
        let sum: u32 = blk.iter().map(|&b| u32::from(b)).sum();
        blk[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        let err = TarReader::new(&blk[..]).next_entry().unwrap_err();
        assert!(err.to_string().contains("extended header"), "{err}");
    }
}
