//! Physical lines and logical lines.
//!
//! [`LineReader`] reads lines the way BuildKit does: Go's `bufio.Scanner` with a splitter that
//! cuts at `\n` only (a lone `\r` is an ordinary character; trailing `\r`s are trimmed later by
//! whoever looks at the line). The scanner's buffer holds at most 64 KiB including the `\n`, so
//! a line of more than 65,535 bytes without its `\n` fails (also the last line of a file with no
//! final newline). A UTF-8 byte-order mark at the start of the file is dropped.
//!
//! [`Logical`] is one instruction's text after continuation lines are joined, with a map from
//! each of its bytes back to the physical line and byte column it came from, for error positions.

use super::MAX_LINE_BYTES;

/// One physical line.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawLine<'a> {
    /// 1-based line number.
    pub number: usize,
    /// The line without its `\n` (a `\r` before it is still there); the first line without BOM.
    pub text: &'a str,
    /// False for a last line that has no `\n`.
    pub has_newline: bool,
}

/// The scanner's error: line `number` is `len` bytes long.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TooLong {
    pub number: usize,
    pub len: usize,
}

pub(crate) struct LineReader<'a> {
    src: &'a str,
    pos: usize,
    /// Start offset of every line handed out (and of an over-long one), by line number - 1.
    starts: Vec<usize>,
}

const BOM: char = '\u{feff}';

impl<'a> LineReader<'a> {
    pub(crate) fn new(src: &'a str) -> LineReader<'a> {
        LineReader { src, pos: 0, starts: Vec::new() }
    }

    /// How many lines were read so far (BuildKit's `currentLine` at the end of the file).
    pub(crate) fn lines_read(&self) -> usize {
        self.starts.len()
    }

    pub(crate) fn next_line(&mut self) -> Result<Option<RawLine<'a>>, TooLong> {
        if self.pos >= self.src.len() {
            return Ok(None);
        }
        let start = self.pos;
        let (end, has_newline) = match self.src[start..].find('\n') {
            Some(i) => (start + i, true),
            None => (self.src.len(), false),
        };
        self.starts.push(start);
        let number = self.starts.len();
        if end - start > MAX_LINE_BYTES {
            self.pos = self.src.len();
            return Err(TooLong { number, len: end - start });
        }
        self.pos = if has_newline { end + 1 } else { end };
        let mut text = &self.src[start..end];
        if number == 1 {
            text = text.strip_prefix(BOM).unwrap_or(text);
        }
        Ok(Some(RawLine { number, text, has_newline }))
    }

    /// The text of a line already read (as in [`RawLine::text`]); empty for any other number.
    pub(crate) fn line_text(&self, number: usize) -> &'a str {
        let Some(&start) = number.checked_sub(1).and_then(|i| self.starts.get(i)) else { return "" };
        let end = self.src[start..].find('\n').map_or(self.src.len(), |i| start + i);
        let text = &self.src[start..end];
        if number == 1 { text.strip_prefix(BOM).unwrap_or(text) } else { text }
    }
}

/// A piece of the logical line: from byte `at` on, it is line `line` from byte column `col` on.
#[derive(Debug, Clone, Copy)]
struct Segment {
    at: usize,
    line: usize,
    col: usize,
}

/// An instruction's joined text with the way back to the physical lines.
#[derive(Debug, Clone)]
pub(crate) struct Logical {
    pub text: String,
    start_line: usize,
    segments: Vec<Segment>,
}

impl Logical {
    pub(crate) fn new(start_line: usize) -> Logical {
        Logical { text: String::new(), start_line, segments: Vec::new() }
    }

    /// Appends `piece`, which starts at byte column `col` of physical line `line`.
    pub(crate) fn push(&mut self, piece: &str, line: usize, col: usize) {
        if !piece.is_empty() {
            self.segments.push(Segment { at: self.text.len(), line, col });
            self.text.push_str(piece);
        }
    }

    /// The physical line and byte column of byte `at` of the logical line.
    pub(crate) fn locate(&self, at: usize) -> (usize, usize) {
        match self.segments.iter().rev().find(|s| s.at <= at) {
            Some(s) => (s.line, s.col + (at - s.at)),
            None => (self.start_line, 0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(src: &str) -> Vec<(usize, String, bool)> {
        let mut r = LineReader::new(src);
        let mut out = Vec::new();
        while let Some(l) = r.next_line().unwrap() {
            out.push((l.number, l.text.to_string(), l.has_newline));
        }
        out
    }

    #[test]
    fn splits_at_newline_only_and_keeps_carriage_returns() {
        assert_eq!(
            lines("a\r\nb\rc\n\nlast"),
            vec![
                (1, "a\r".to_string(), true),
                (2, "b\rc".to_string(), true),
                (3, String::new(), true),
                (4, "last".to_string(), false)
            ]
        );
        assert!(lines("").is_empty());
        assert_eq!(lines("x\n"), vec![(1, "x".to_string(), true)]);
    }

    #[test]
    fn drops_the_bom_of_the_first_line_only() {
        let got = lines("\u{feff}FROM a\n\u{feff}RUN b\n");
        assert_eq!(got[0].1, "FROM a");
        assert_eq!(got[1].1, "\u{feff}RUN b");
    }

    #[test]
    fn line_length_limit_is_65535_bytes_without_the_newline() {
        let ok = format!("{}\n{}", "a".repeat(65_535), "b".repeat(65_535));
        assert_eq!(lines(&ok).len(), 2);
        for bad in [format!("x\n{}\n", "a".repeat(65_536)), format!("x\n{}", "a".repeat(65_536))] {
            let mut r = LineReader::new(&bad);
            assert!(r.next_line().unwrap().is_some());
            let e = r.next_line().unwrap_err();
            assert_eq!((e.number, e.len), (2, 65_536));
            assert_eq!(r.line_text(2).len(), 65_536);
        }
        // The BOM counts: it is part of the scanned line.
        let bom = format!("\u{feff}{}", "a".repeat(65_533));
        assert!(LineReader::new(&bom).next_line().is_err());
    }

    #[test]
    fn logical_line_maps_back_to_physical_positions() {
        let mut l = Logical::new(3);
        l.push("RUN a ", 3, 2);
        l.push("  b", 5, 0);
        assert_eq!(l.text, "RUN a   b");
        assert_eq!(l.locate(0), (3, 2));
        assert_eq!(l.locate(4), (3, 6));
        assert_eq!(l.locate(8), (5, 2));
        assert_eq!(l.locate(9), (5, 3));
        assert_eq!(Logical::new(7).locate(0), (7, 0));
    }
}
