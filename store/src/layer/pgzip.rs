//! Parallel gzip: a streaming gzip writer that compresses on every core and whose output is
//! the same bytes whatever the number of threads.
//!
//! Why: committing a layer was bound by one core running deflate. This writer splits the work
//! the way pigz does, so layers compress on all cores while their digests stay a function of
//! the tar alone (a layer's blob digest must not depend on the machine that built it).
//!
//! Design (pigz's scheme):
//! - the uncompressed stream is cut into blocks of [`GzipOptions::block_size`] bytes at fixed
//!   offsets (block `i` holds bytes `[i*size, (i+1)*size)`), however the caller's writes are
//!   sized. The block size, never the thread count, decides the output;
//! - each block is raw-deflated on its own, primed with the 32 KiB of uncompressed data before
//!   it as a preset dictionary (so matches reach back across the cut as in one deflate stream,
//!   and the ratio stays close to single-threaded gzip), and ended with a sync flush: the
//!   pending bits then an empty stored block, which leaves the stream byte-aligned, so the
//!   blocks' outputs can simply be concatenated. The last block ends with a final block
//!   instead. A block is known to be the last only when [`ParGzEncoder::finish`] is called, so
//!   a full block is held until the first byte after it arrives;
//! - the gzip member is: a fixed 10-byte header (no name, mtime 0, XFL as Go's `compress/gzip`
//!   sets it — 2 at level 9, 4 at level 1, else 0 — and OS 255, the header the single-threaded
//!   encoder wrote before), the concatenated blocks, then the CRC-32 and the length mod 2^32.
//!   The CRC of each block is computed by the thread that compresses it and the CRCs are
//!   combined in order with zlib's `crc32_combine` (a few hundred nanoseconds a block), which
//!   keeps the CRC off the caller's thread: there the tar, two SHA-256s and the file writes
//!   already run.
//!
//! Threads: each encoder starts `threads` workers (all cores by default), which take jobs from
//! a shared queue; at most two jobs per worker are in flight, and the caller writes finished
//! blocks to the inner writer in order, waiting for the oldest one when the bound is reached,
//! so memory stays at about `4 * threads + 1` blocks (input and output) whatever the stream's
//! length. With one thread everything runs on the caller's thread.
//! Dedicated threads rather than rayon's pool: the caller waits for results, and waiting inside
//! a rayon task for jobs queued on the same pool could deadlock it.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use flate2::{Compress, Crc, FlushCompress, Status};

use super::LayerError;

/// The default block size: 1 MiB, large enough that the 5-byte sync markers and the restart
/// of the Huffman statistics at each cut cost well under 0.1% of the output.
pub const DEFAULT_BLOCK_SIZE: usize = 1 << 20;

/// The default compression level: zlib's default, whose sizes are those of Go's
/// `compress/gzip` default (what BuildKit writes).
pub const DEFAULT_LEVEL: u32 = 6;

/// How much uncompressed history primes each block: deflate's whole window.
const WINDOW: usize = 32 * 1024;

/// Jobs in flight per worker: one being compressed, one waiting, so no worker idles while
/// the caller fills the next block.
const IN_FLIGHT_PER_THREAD: usize = 2;

/// How to gzip. `level` and `block_size` decide the bytes written; `threads` only the speed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GzipOptions {
    /// zlib compression level, 0 (store) to 9 (best).
    pub level: u32,
    /// Uncompressed bytes per independently compressed block (at least 1).
    pub block_size: usize,
    /// Compression threads; 0 means one per available core.
    pub threads: usize,
}

impl Default for GzipOptions {
    fn default() -> Self {
        GzipOptions { level: DEFAULT_LEVEL, block_size: DEFAULT_BLOCK_SIZE, threads: 0 }
    }
}

impl GzipOptions {
    /// The options with `level`, other fields default.
    pub fn with_level(level: u32) -> Self {
        GzipOptions { level, ..GzipOptions::default() }
    }

    /// The number of threads these options run: `threads`, or the available cores for 0.
    pub fn effective_threads(&self) -> usize {
        match self.threads {
            0 => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            n => n,
        }
    }

    /// Checks the level (0 to 9) and block size (not 0).
    pub fn validate(&self) -> Result<(), LayerError> {
        if self.level > 9 {
            return Err(LayerError::Unsupported(format!("gzip level {} (levels are 0 to 9)", self.level)));
        }
        if self.block_size == 0 {
            return Err(LayerError::Unsupported("a gzip block size of 0 bytes".into()));
        }
        Ok(())
    }
}

/// The gzip header: no flags, mtime 0, XFL by level as Go writes it, OS 255 (unknown).
fn header(level: u32) -> [u8; 10] {
    let xfl = match level {
        9 => 2,
        1 => 4,
        _ => 0,
    };
    [0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, xfl, 0xff]
}

/// Room for one block's deflate output: stored blocks cost 5 bytes per 64 KiB, plus the sync
/// marker and the bits of an unfinished block. More is only allocated if this runs out.
fn output_bound(len: usize) -> usize {
    len + len / 8 + 256
}

/// Raw-deflates `data` at `level` primed with `dict`, ending with a sync flush, or with the
/// final block when `last`. A pure function of its arguments.
///
/// Each block gets a new compressor: zlib-rs (0.6.8) keeps window bytes across `reset`, and
/// its matcher can read them past the end of the input, so a reset compressor's output depends
/// on the blocks it compressed before (zlib-rs issue 459) — that is, on which thread got which
/// block. A new one starts zeroed. Creating it costs tens of microseconds against milliseconds
/// for the block.
fn deflate_block(level: u32, dict: &[u8], data: &[u8], last: bool) -> io::Result<Vec<u8>> {
    let mut c = Compress::new(flate2::Compression::new(level), false);
    let c = &mut c;
    if !dict.is_empty() {
        c.set_dictionary(dict).map_err(|e| io::Error::other(format!("setting the deflate dictionary: {e}")))?;
    }
    let flush = if last { FlushCompress::Finish } else { FlushCompress::Sync };
    let mut out = Vec::with_capacity(output_bound(data.len()));
    let mut pos = 0;
    loop {
        if out.len() == out.capacity() {
            out.reserve(out.capacity() / 2 + 64);
        }
        let (in_before, out_before) = (c.total_in(), out.len());
        let status =
            c.compress_vec(&data[pos..], &mut out, flush).map_err(|e| io::Error::other(format!("deflate: {e}")))?;
        let consumed = usize::try_from(c.total_in() - in_before).map_err(io::Error::other)?;
        pos += consumed;
        match status {
            Status::StreamEnd => return Ok(out),
            // A sync flush is complete once all input is taken and the output was not filled.
            _ if !last && pos == data.len() && out.len() < out.capacity() => return Ok(out),
            // No progress with room to spare: after a sync flush that exactly filled the
            // previous buffer this means the flush was already complete (zlib's contract).
            Status::BufError if consumed == 0 && out.len() == out_before => {
                if !last && pos == data.len() {
                    return Ok(out);
                }
                return Err(io::Error::other("deflate made no progress"));
            }
            _ => {}
        }
    }
}

/// One block to compress.
struct Job {
    level: u32,
    dict: Vec<u8>,
    data: Vec<u8>,
    last: bool,
    reply: SyncSender<Done>,
}

/// A compressed block; `data` comes back to be reused for a later block.
struct Done {
    data: Vec<u8>,
    out: io::Result<Vec<u8>>,
    crc: Crc,
}

/// Compresses a block and computes its CRC.
fn compress(level: u32, dict: &[u8], data: Vec<u8>, last: bool) -> Done {
    let out = deflate_block(level, dict, &data, last);
    let mut crc = Crc::new();
    crc.update(&data);
    Done { data, out, crc }
}

/// The worker threads of one encoder.
struct Pool {
    jobs: Option<Sender<Job>>,
    handles: Vec<JoinHandle<()>>,
}

impl Pool {
    /// Starts up to `threads` workers; `None` if not even one could be started.
    fn start(threads: usize) -> Option<Pool> {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let mut handles = Vec::with_capacity(threads);
        for i in 0..threads {
            let rx = Arc::clone(&rx);
            let spawned = std::thread::Builder::new().name(format!("pgzip-{i}")).spawn(move || worker(&rx));
            match spawned {
                Ok(h) => handles.push(h),
                // Fewer threads only make it slower, never different.
                Err(e) => tracing::warn!("starting a gzip thread: {e}"),
            }
        }
        if handles.is_empty() {
            return None;
        }
        Some(Pool { jobs: Some(tx), handles })
    }

    fn size(&self) -> usize {
        self.handles.len()
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // Closing the queue ends the workers once they finish their current block.
        self.jobs = None;
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

fn worker(rx: &Mutex<Receiver<Job>>) {
    loop {
        let job = match rx.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        match job {
            Ok(Job { level, dict, data, last, reply }) => {
                // The encoder may have been dropped meanwhile; then nobody wants the result.
                let _ = reply.send(compress(level, &dict, data, last));
            }
            Err(_) => return,
        }
    }
}

/// A streaming gzip writer that compresses blocks on several threads (see the module docs).
/// Bytes reach the inner writer in order, as blocks finish; [`ParGzEncoder::finish`] writes
/// the rest and the trailer. Dropping it unfinished leaves a truncated stream.
pub struct ParGzEncoder<W: Write> {
    out: W,
    level: u32,
    block_size: usize,
    /// The block being filled.
    cur: Vec<u8>,
    /// The last (up to) 32 KiB of uncompressed data before `cur`.
    window: Vec<u8>,
    /// The worker threads; `None`: compress on the caller's thread.
    pool: Option<Pool>,
    pending: VecDeque<Receiver<Done>>,
    max_in_flight: usize,
    /// Block buffers to reuse.
    spare: Vec<Vec<u8>>,
    crc: Crc,
    header_written: bool,
    /// Set by the first error: the stream is broken and further writes fail.
    failed: bool,
}

impl<W: Write> ParGzEncoder<W> {
    /// A writer gzipping into `out` with `opts`. Errors only on invalid options.
    pub fn new(out: W, opts: &GzipOptions) -> Result<Self, LayerError> {
        opts.validate()?;
        let threads = opts.effective_threads();
        let pool = if threads > 1 { Pool::start(threads) } else { None };
        let max_in_flight = pool.as_ref().map_or(1, |p| p.size() * IN_FLIGHT_PER_THREAD);
        Ok(ParGzEncoder {
            out,
            level: opts.level,
            block_size: opts.block_size,
            cur: Vec::new(),
            window: Vec::with_capacity(WINDOW),
            pool,
            pending: VecDeque::new(),
            max_in_flight,
            spare: Vec::new(),
            crc: Crc::new(),
            header_written: false,
            failed: false,
        })
    }

    /// The inner writer.
    pub fn get_ref(&self) -> &W {
        &self.out
    }

    /// Compresses what is buffered as the last block, writes everything and the trailer, and
    /// returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.check()?;
        self.guard(|s| {
            s.dispatch(true)?;
            while !s.pending.is_empty() {
                s.collect_oldest()?;
            }
            let mut trailer = [0u8; 8];
            trailer[..4].copy_from_slice(&s.crc.sum().to_le_bytes());
            // ISIZE: the length modulo 2^32 (RFC 1952); `amount` is exactly that.
            trailer[4..].copy_from_slice(&s.crc.amount().to_le_bytes());
            s.emit(&trailer)?;
            s.out.flush()
        })?;
        let ParGzEncoder { out, pool, .. } = self;
        // Stops the (idle) workers.
        drop(pool);
        Ok(out)
    }

    fn check(&self) -> io::Result<()> {
        if self.failed {
            return Err(io::Error::other("the gzip stream failed earlier"));
        }
        Ok(())
    }

    /// Runs `f`, marking the stream failed if it errs.
    fn guard<T>(&mut self, f: impl FnOnce(&mut Self) -> io::Result<T>) -> io::Result<T> {
        let r = f(self);
        if r.is_err() {
            self.failed = true;
        }
        r
    }

    /// Writes compressed bytes, after the header the first time.
    fn emit(&mut self, bytes: &[u8]) -> io::Result<()> {
        if !self.header_written {
            self.out.write_all(&header(self.level))?;
            self.header_written = true;
        }
        self.out.write_all(bytes)
    }

    fn fresh_block(&mut self) -> Vec<u8> {
        self.spare.pop().unwrap_or_else(|| Vec::with_capacity(self.block_size.min(DEFAULT_BLOCK_SIZE)))
    }

    /// Sends the current block off (or compresses it here without a pool).
    fn dispatch(&mut self, last: bool) -> io::Result<()> {
        let fresh = self.fresh_block();
        let data = std::mem::replace(&mut self.cur, fresh);
        let dict = self.window.clone();
        if data.len() >= WINDOW {
            self.window.clear();
            self.window.extend_from_slice(&data[data.len() - WINDOW..]);
        } else {
            self.window.extend_from_slice(&data);
            let excess = self.window.len().saturating_sub(WINDOW);
            self.window.drain(..excess);
        }
        if self.pool.is_none() {
            let done = compress(self.level, &dict, data, last);
            return self.complete(done);
        }
        while self.pending.len() >= self.max_in_flight {
            self.collect_oldest()?;
        }
        let (reply, rx) = mpsc::sync_channel(1);
        let jobs = self.pool.as_ref().and_then(|p| p.jobs.as_ref());
        let sent = jobs.map(|j| j.send(Job { level: self.level, dict, data, last, reply }).is_ok()).unwrap_or(false);
        if !sent {
            return Err(io::Error::other("the gzip threads stopped"));
        }
        self.pending.push_back(rx);
        Ok(())
    }

    /// Waits for the oldest block in flight and writes it.
    fn collect_oldest(&mut self) -> io::Result<()> {
        let Some(rx) = self.pending.pop_front() else { return Ok(()) };
        let done = rx.recv().map_err(|_| io::Error::other("a gzip thread stopped without finishing its block"))?;
        self.complete(done)
    }

    fn complete(&mut self, done: Done) -> io::Result<()> {
        let Done { mut data, out, crc } = done;
        let out = out?;
        self.crc.combine(&crc);
        self.emit(&out)?;
        if self.spare.len() < self.max_in_flight + 1 {
            data.clear();
            self.spare.push(data);
        }
        Ok(())
    }
}

impl<W: Write> Write for ParGzEncoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.check()?;
        self.guard(|s| {
            let mut rest = buf;
            while !rest.is_empty() {
                // A full block goes only once more data shows it is not the last.
                if s.cur.len() == s.block_size {
                    s.dispatch(false)?;
                }
                let take = (s.block_size - s.cur.len()).min(rest.len());
                s.cur.extend_from_slice(&rest[..take]);
                rest = &rest[take..];
            }
            Ok(buf.len())
        })
    }

    /// Writes the blocks that are done and flushes the inner writer. The block being filled is
    /// kept: cutting it here would make the output depend on when flush was called.
    fn flush(&mut self) -> io::Result<()> {
        self.check()?;
        self.guard(|s| {
            while !s.pending.is_empty() {
                s.collect_oldest()?;
            }
            s.out.flush()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::MultiGzDecoder;
    use proptest::prelude::*;
    use std::io::Read;
    use std::process::{Command, Stdio};

    /// Deterministic pseudo-random bytes (xorshift64*), incompressible.
    fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        let mut v = Vec::with_capacity(len + 8);
        while v.len() < len {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            v.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
        }
        v.truncate(len);
        v
    }

    /// Text-like compressible bytes with repeats longer and shorter than the window.
    fn text_bytes(len: usize) -> Vec<u8> {
        let words = [&b"layer "[..], b"tar ", b"digest ", b"sha256 ", b"overlay\n", b"whiteout ", b"gzip "];
        let mut v = Vec::with_capacity(len);
        let mut i = 7usize;
        while v.len() < len {
            i = i.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            v.extend_from_slice(words[(i >> 16) % words.len()]);
        }
        v.truncate(len);
        v
    }

    /// Binary-like bytes: runs and scattered symbols of a small alphabet, short random spans and
    /// copies of earlier spans. Blocks of this make zlib-rs 0.6.8 give different output from a
    /// compressor reused after `reset` than from a new one (zlib-rs issue 459).
    fn binary_bytes(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        let mut next = move || {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            x.wrapping_mul(0x2545_f491_4f6c_dd1d)
        };
        let alphabet = [0u8, 0x81, 0xb0, 0x20, 0xff];
        let mut v = Vec::with_capacity(len + 64);
        while v.len() < len {
            let r = next();
            let n = (r >> 8) as usize;
            match r % 4 {
                0 => (0..n % 40).for_each(|_| v.push(alphabet[(next() % 5) as usize])),
                1 => (0..n % 12).for_each(|_| v.push(next() as u8)),
                2 => {
                    let dist = 1 + n % 3000;
                    if v.len() > dist {
                        for k in 0..3 + (r >> 20) as usize % 30 {
                            v.push(v[v.len() - dist + k % dist]);
                        }
                    }
                }
                _ => v.extend(std::iter::repeat_n(alphabet[(next() % 5) as usize], n % 20)),
            }
        }
        v.truncate(len);
        v
    }

    fn opts(level: u32, block_size: usize, threads: usize) -> GzipOptions {
        GzipOptions { level, block_size, threads }
    }

    fn gz(data: &[u8], o: &GzipOptions) -> Vec<u8> {
        let mut e = ParGzEncoder::new(Vec::new(), o).unwrap();
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn gunzip(gz: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        MultiGzDecoder::new(gz).read_to_end(&mut out).unwrap();
        out
    }

    /// GNU gzip's own decompressor and integrity check.
    fn gnu_gunzip(gz: &[u8]) -> Vec<u8> {
        let mut child = Command::new("gzip")
            .arg("-dc")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("GNU gzip (Debian package gzip) must be installed");
        let mut stdin = child.stdin.take().unwrap();
        let input = gz.to_vec();
        let feeder = std::thread::spawn(move || stdin.write_all(&input));
        let out = child.wait_with_output().unwrap();
        feeder.join().unwrap().unwrap();
        assert!(out.status.success(), "gzip -dc failed: {}", String::from_utf8_lossy(&out.stderr));
        assert!(out.stderr.is_empty(), "gzip -dc warned: {}", String::from_utf8_lossy(&out.stderr));
        out.stdout
    }

    /// Same bytes with 1, 2 and 8 threads; both decoders give the input back.
    fn check_all_ways(data: &[u8], level: u32, block_size: usize) -> Vec<u8> {
        let one = gz(data, &opts(level, block_size, 1));
        for threads in [2, 8] {
            assert!(one == gz(data, &opts(level, block_size, threads)), "{threads} threads differ from 1");
        }
        assert!(gunzip(&one) == data, "flate2 round trip");
        assert!(gnu_gunzip(&one) == data, "GNU gzip round trip");
        one
    }

    #[test]
    fn edge_lengths_round_trip_identically_on_any_thread_count() {
        let bs = 64 * 1024;
        let random = random_bytes(5 * bs + 3, 1);
        for len in [0, 1, 2, bs - 1, bs, bs + 1, 2 * bs - 1, 2 * bs, 2 * bs + 1, 5 * bs + 3] {
            check_all_ways(&random[..len], 6, bs);
        }
        check_all_ways(&vec![0u8; 3 * bs + 17], 6, bs);
        check_all_ways(&text_bytes(4 * bs + 100), 6, bs);
    }

    #[test]
    fn no_state_leaks_from_one_block_to_the_next_on_a_thread() {
        // Each thread compresses a different sequence of blocks, so any state a compressor
        // carries from one block to the next shows up as a difference here.
        let data = binary_bytes(3_000_000, 5);
        for level in [2, 6] {
            check_all_ways(&data, level, 100_000);
        }
    }

    #[test]
    fn every_level_and_tiny_blocks_round_trip() {
        let data = text_bytes(200_000);
        for level in 0..=9 {
            check_all_ways(&data, level, 70_000);
        }
        // Blocks smaller than the window take their dictionary from several earlier blocks.
        check_all_ways(&data[..50_000], 6, 1000);
        check_all_ways(&data[..5_000], 1, 1);
    }

    #[test]
    fn default_block_size_multi_megabyte() {
        let mut data = random_bytes(3 * DEFAULT_BLOCK_SIZE + 12_345, 9);
        data.extend(text_bytes(2 * DEFAULT_BLOCK_SIZE));
        let out = check_all_ways(&data, DEFAULT_LEVEL, DEFAULT_BLOCK_SIZE);
        // The dictionary keeps the ratio of compressible data close to one deflate stream.
        let mut single = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(DEFAULT_LEVEL));
        single.write_all(&data).unwrap();
        let single = single.finish().unwrap();
        assert!(out.len() as f64 <= single.len() as f64 * 1.005, "{} vs {}", out.len(), single.len());
    }

    #[test]
    fn layout_is_header_blocks_trailer() {
        let bs = 40_000;
        let data = random_bytes(2 * bs + 5, 3);
        let out = gz(&data, &opts(6, bs, 2));
        assert_eq!(&out[..10], &[0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 0xff]);
        let mut crc = Crc::new();
        crc.update(&data);
        let n = out.len();
        assert_eq!(&out[n - 8..n - 4], &crc.sum().to_le_bytes(), "CRC-32 of the whole input");
        assert_eq!(&out[n - 4..], &((2 * bs + 5) as u32).to_le_bytes());
        // Each non-final block ends in a sync marker: an empty stored block.
        let marker = [0x00, 0x00, 0xff, 0xff];
        assert!(out.windows(4).filter(|w| *w == marker).count() >= 2);
        // Each block alone (with its dictionary) gives exactly these bytes, in order.
        let b0 = deflate_block(6, &[], &data[..bs], false).unwrap();
        let b1 = deflate_block(6, &data[bs - WINDOW..bs], &data[bs..2 * bs], false).unwrap();
        let b2 = deflate_block(6, &data[2 * bs - WINDOW..2 * bs], &data[2 * bs..], true).unwrap();
        assert!(b0.ends_with(&marker) && b1.ends_with(&marker));
        assert_eq!(out[10..n - 8], [b0, b1, b2].concat());
        assert_eq!(gz(b"x", &opts(1, bs, 1))[8], 4);
        assert_eq!(gz(b"x", &opts(9, bs, 1))[8], 2);
    }

    #[test]
    fn empty_input_is_a_valid_empty_gzip() {
        let out = check_all_ways(b"", 6, DEFAULT_BLOCK_SIZE);
        // Header, an empty final fixed-Huffman block, CRC 0, ISIZE 0.
        assert_eq!(out, [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn gzip_t_and_gnu_tar_accept_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut tw = crate::layer::tar_write::TarWriter::new(Vec::new());
        let body = random_bytes(300_000, 5);
        let mut h =
            crate::layer::tar_write::TarHeader::new(b"blob".to_vec(), crate::layer::tar_write::EntryType::Regular);
        h.size = body.len() as u64;
        h.mode = 0o644;
        tw.header(&h).unwrap();
        tw.data().write_all(&body).unwrap();
        tw.pad(h.size).unwrap();
        let tar = tw.finish().unwrap();
        let path = dir.path().join("l.tar.gz");
        std::fs::write(&path, gz(&tar, &opts(6, 100_000, 2))).unwrap();
        let t = Command::new("gzip").arg("-t").arg(&path).output().unwrap();
        assert!(t.status.success() && t.stderr.is_empty(), "gzip -t: {}", String::from_utf8_lossy(&t.stderr));
        let x = Command::new("tar").arg("-xzf").arg(&path).arg("-C").arg(dir.path()).output().unwrap();
        assert!(x.status.success(), "tar -xzf: {}", String::from_utf8_lossy(&x.stderr));
        assert!(std::fs::read(dir.path().join("blob")).unwrap() == body);
    }

    #[test]
    fn a_corrupted_stream_is_rejected_by_gzip_t() {
        // The check above can fail: flip one byte of the CRC.
        let mut out = gz(&text_bytes(10_000), &opts(6, 4096, 2));
        let n = out.len();
        out[n - 6] ^= 1;
        let mut child =
            Command::new("gzip").args(["-t", "-"]).stdin(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
        child.stdin.take().unwrap().write_all(&out).unwrap();
        assert!(!child.wait().unwrap().success());
    }

    #[test]
    fn invalid_options_are_errors() {
        assert!(ParGzEncoder::new(Vec::new(), &opts(10, 1024, 1)).is_err());
        let err = ParGzEncoder::new(Vec::new(), &opts(6, 0, 1)).err().unwrap();
        assert!(err.to_string().contains("block size"), "{err}");
    }

    /// A writer failing after `left` bytes.
    struct Failing {
        left: usize,
    }
    impl Write for Failing {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.left == 0 {
                return Err(io::Error::other("disk full"));
            }
            let n = buf.len().min(self.left);
            self.left -= n;
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn inner_write_errors_surface_and_stick() {
        for threads in [1, 3] {
            let mut e = ParGzEncoder::new(Failing { left: 100 }, &opts(6, 4096, threads)).unwrap();
            let data = random_bytes(100_000, 2);
            let first = e.write_all(&data).and_then(|_| e.flush());
            let err = match first {
                Err(err) => err,
                Ok(()) => e.finish().err().expect("finish must fail"),
            };
            assert!(err.to_string().contains("disk full"), "{err}");
        }
        // After a failure, writes and finish keep failing.
        let mut e = ParGzEncoder::new(Failing { left: 0 }, &opts(6, 16, 1)).unwrap();
        assert!(e.write_all(&[1u8; 64]).is_err());
        assert!(e.write_all(b"more").is_err());
        assert!(e.finish().is_err());
    }

    #[test]
    fn dropping_unfinished_stops_the_threads() {
        let mut e = ParGzEncoder::new(Vec::new(), &opts(6, 1024, 4)).unwrap();
        e.write_all(&random_bytes(50_000, 4)).unwrap();
        drop(e);
    }

    #[test]
    fn commit_layer_is_identical_on_any_thread_count_and_unpacks() {
        use crate::layer::{PackOptions, UnpackOptions, commit_layer, unpack_layer};
        use crate::oci::Compression as C;
        let dir = tempfile::tempdir().unwrap();
        let blobs = crate::blobs::BlobStore::open(&dir.path().join("blobs")).unwrap();
        let upper = dir.path().join("upper");
        std::fs::create_dir_all(upper.join("d")).unwrap();
        std::fs::write(upper.join("d/random"), random_bytes(700_000, 11)).unwrap();
        std::fs::write(upper.join("text"), text_bytes(300_000)).unwrap();
        std::fs::write(upper.join("one"), b"1").unwrap();
        let commit = |threads, level| {
            let pack = PackOptions { gzip: opts(level, 64 * 1024, threads), ..PackOptions::default() };
            commit_layer(&blobs, &upper, &[], C::Gzip, &pack).unwrap()
        };
        let one = commit(1, 6);
        for threads in [2, 8] {
            assert_eq!(commit(threads, 6), one, "{threads} threads");
        }
        let fast = commit(2, 1);
        assert_eq!(fast.diff_id, one.diff_id);
        assert_ne!(fast.descriptor.digest, one.descriptor.digest, "the level is part of the blob");
        for layer in [&one, &fast] {
            let dest = dir.path().join(format!("out-{}", layer.descriptor.digest.hex()));
            std::fs::create_dir(&dest).unwrap();
            let uopts = UnpackOptions {
                expected_digest: Some(layer.descriptor.digest.clone()),
                expected_size: Some(layer.descriptor.size),
                expected_diff_id: Some(layer.diff_id.clone()),
                ..UnpackOptions::default()
            };
            let blob = blobs.open_blob(&layer.descriptor.digest).unwrap();
            assert_eq!(unpack_layer(blob, C::Gzip, &dest, &uopts).unwrap(), layer.diff_id);
            assert!(std::fs::read(dest.join("d/random")).unwrap() == random_bytes(700_000, 11));
            assert!(std::fs::read(dest.join("text")).unwrap() == text_bytes(300_000));
            let blob = blobs.read(&layer.descriptor.digest).unwrap();
            assert!(gnu_gunzip(&blob).len() > 1_000_000);
        }
        // The empty layer is still BuildKit's 32 bytes, whatever the options.
        let empty = dir.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        let tiny = PackOptions { gzip: opts(1, 1000, 4), ..PackOptions::default() };
        let e = commit_layer(&blobs, &empty, &[], C::Gzip, &tiny).unwrap();
        assert_eq!(blobs.read(&e.descriptor.digest).unwrap(), crate::layer::EMPTY_GZIP_LAYER);
        // Bad options fail before any work.
        let bad = PackOptions { gzip: opts(11, 1000, 1), ..PackOptions::default() };
        assert!(commit_layer(&blobs, &upper, &[], C::Gzip, &bad).unwrap_err().to_string().contains("level 11"));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn chunking_and_threads_never_change_the_bytes(
            len in 0usize..40_000,
            block in prop_oneof![Just(1usize), 1usize..300, 4096usize..20_000],
            chunks in proptest::collection::vec(1usize..9_000, 1..20),
            threads in 1usize..6,
            level in 0u32..10,
            kind in 0u8..3,
        ) {
            // Tiny blocks cost a compressor each: keep their inputs short.
            let len = if block < 300 { len % 3000 } else { len };
            let data = match kind {
                0 => random_bytes(len, len as u64),
                1 => text_bytes(len),
                _ => binary_bytes(len, len as u64),
            };
            let reference = gz(&data, &opts(level, block, 1));
            let mut e = ParGzEncoder::new(Vec::new(), &opts(level, block, threads)).unwrap();
            let (mut pos, mut i) = (0, 0);
            while pos < data.len() {
                let n = chunks[i % chunks.len()].min(data.len() - pos);
                e.write_all(&data[pos..pos + n]).unwrap();
                if i % 5 == 4 {
                    e.flush().unwrap();
                }
                pos += n;
                i += 1;
            }
            let out = e.finish().unwrap();
            prop_assert!(out == reference);
            prop_assert!(gunzip(&out) == data);
        }
    }
}
