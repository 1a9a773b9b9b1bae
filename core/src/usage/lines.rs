//! Lines of a log, streamed: a fixed buffer, never a whole file in memory. A line longer
//! than [`MAX_LINE`] is skipped (read past, never held) and reported as such; a gzip
//! stream (cPanel's archives, possibly of several members) is decoded as it is read, so a
//! small file that inflates to gigabytes costs time, never memory.

use std::io::{self, Read};
use std::ops::Range;

use flate2::read::MultiGzDecoder;

/// The longest line kept: longer ones are skipped and counted as unparsed.
pub const MAX_LINE: usize = 64 * 1024;

/// The buffer lines are cut from: a line up to [`MAX_LINE`] always fits.
const BUFFER: usize = 256 * 1024;

/// One line, without its line feed.
#[cfg(test)]
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Line<'a> {
    Text(&'a [u8]),
    /// Over [`MAX_LINE`] bytes: skipped.
    TooLong,
}

/// Where a line is in the reader's buffer, without its line feed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Span {
    Text(Range<usize>),
    /// Over [`MAX_LINE`] bytes: skipped.
    TooLong,
}

/// Cuts a stream into lines with one fixed buffer.
pub(crate) struct LineReader<R> {
    inner: R,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    eof: bool,
}

impl<R: Read> LineReader<R> {
    pub(crate) fn new(inner: R) -> Self {
        Self {
            inner,
            buf: vec![0; BUFFER].into_boxed_slice(),
            start: 0,
            end: 0,
            eof: false,
        }
    }

    /// The next line; `None` at the end. The last line needs no line feed.
    #[cfg(test)]
    pub(crate) fn next_line(&mut self) -> io::Result<Option<Line<'_>>> {
        Ok(match self.next_span()? {
            None => None,
            Some(Span::TooLong) => Some(Line::TooLong),
            Some(Span::Text(range)) => Some(Line::Text(&self.buf[range])),
        })
    }

    /// Where the next line is in the buffer (see [`text`](Self::text)), valid until the
    /// next call; `None` at the end. The last line needs no line feed.
    pub(crate) fn next_span(&mut self) -> io::Result<Option<Span>> {
        loop {
            if let Some(at) = memchr::memchr(b'\n', &self.buf[self.start..self.end]) {
                let start = self.start;
                self.start += at + 1;
                if at > MAX_LINE {
                    return Ok(Some(Span::TooLong));
                }
                return Ok(Some(Span::Text(start..start + at)));
            }
            if self.end - self.start > MAX_LINE {
                self.skip_to_next_line()?;
                return Ok(Some(Span::TooLong));
            }
            if self.eof {
                if self.start == self.end {
                    return Ok(None);
                }
                let start = self.start;
                self.start = self.end;
                return Ok(Some(Span::Text(start..self.end)));
            }
            self.fill()?;
        }
    }

    /// The text of a span [`next_span`](Self::next_span) returned.
    pub(crate) fn text(&self, range: &Range<usize>) -> &[u8] {
        &self.buf[range.clone()]
    }

    /// Moves what is left to the front and reads more after it.
    fn fill(&mut self) -> io::Result<()> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let read = read_retrying(&mut self.inner, &mut self.buf[self.end..])?;
        if read == 0 {
            self.eof = true;
        }
        self.end += read;
        Ok(())
    }

    /// Drops the rest of an overlong line, reading on until its line feed or the end.
    fn skip_to_next_line(&mut self) -> io::Result<()> {
        loop {
            self.start = 0;
            self.end = read_retrying(&mut self.inner, &mut self.buf)?;
            if self.end == 0 {
                self.eof = true;
                return Ok(());
            }
            if let Some(at) = memchr::memchr(b'\n', &self.buf[..self.end]) {
                self.start = at + 1;
                return Ok(());
            }
        }
    }
}

fn read_retrying(inner: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match inner.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

/// `raw` as it reads, or decoded when it starts with gzip's magic bytes (`1f 8b`), every
/// member after another.
pub(crate) fn decoded<'a>(raw: Box<dyn Read + Send + 'a>) -> io::Result<Box<dyn Read + Send + 'a>> {
    let mut raw = io::BufReader::with_capacity(64 * 1024, raw);
    let head = io::BufRead::fill_buf(&mut raw)?;
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(MultiGzDecoder::new(raw)))
    } else {
        Ok(Box::new(raw))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn lines(bytes: &[u8]) -> Vec<Result<Vec<u8>, ()>> {
        // A reader that hands out a few bytes at a time: lines cross reads.
        struct Trickle<'a>(&'a [u8]);
        impl Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = buf.len().min(self.0.len()).min(7_777);
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut reader = LineReader::new(Trickle(bytes));
        let mut out = Vec::new();
        while let Some(line) = reader.next_line().unwrap() {
            out.push(match line {
                Line::Text(text) => Ok(text.to_vec()),
                Line::TooLong => Err(()),
            });
        }
        out
    }

    #[test]
    fn lines_are_cut_at_line_feeds_the_last_one_without_one() {
        assert_eq!(
            lines(b"a\nbb\n\nccc"),
            [
                Ok(b"a".to_vec()),
                Ok(b"bb".to_vec()),
                Ok(vec![]),
                Ok(b"ccc".to_vec())
            ]
        );
        assert!(lines(b"").is_empty());
    }

    #[test]
    fn a_line_over_64_kib_is_skipped_whole_and_the_next_one_kept() {
        let mut text = vec![b'x'; MAX_LINE];
        text.push(b'\n');
        text.extend(vec![b'y'; MAX_LINE + 1]);
        text.push(b'\n');
        text.extend(vec![b'z'; 3 * BUFFER]);
        text.extend(b"\nlast\n");
        let got = lines(&text);
        assert_eq!(got.len(), 4);
        assert_eq!(got[0].as_ref().map(Vec::len), Ok(MAX_LINE));
        assert_eq!(got[1], Err(()));
        assert_eq!(got[2], Err(()));
        assert_eq!(got[3], Ok(b"last".to_vec()));
        let mut unfinished = b"ok\n".to_vec();
        unfinished.extend(vec![b'q'; 2 * BUFFER]);
        assert_eq!(lines(&unfinished), [Ok(b"ok".to_vec()), Err(())]);
    }

    #[test]
    fn gzip_members_are_decoded_one_after_another_and_plain_text_passes() {
        let member = |text: &[u8]| {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            encoder.write_all(text).unwrap();
            encoder.finish().unwrap()
        };
        let mut two = member(b"one\n");
        two.extend(member(b"two\n"));
        let mut text = String::new();
        decoded(Box::new(io::Cursor::new(two)))
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "one\ntwo\n");
        text.clear();
        decoded(Box::new(&b"plain\n"[..]))
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "plain\n");
    }

    /// 256 MiB of zeros in a quarter of a MiB of gzip: read in the same fixed buffer, as one
    /// overlong line.
    #[test]
    fn a_gzip_bomb_is_one_skipped_line_read_in_a_fixed_buffer() {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..256 {
            encoder.write_all(&zeros).unwrap();
        }
        encoder.write_all(b"\nafter\n").unwrap();
        let bomb = encoder.finish().unwrap();
        assert!(bomb.len() < 1 << 20, "{} bytes", bomb.len());
        let mut reader = LineReader::new(decoded(Box::new(io::Cursor::new(bomb))).unwrap());
        assert_eq!(reader.next_line().unwrap(), Some(Line::TooLong));
        assert_eq!(reader.next_line().unwrap(), Some(Line::Text(b"after")));
        assert_eq!(reader.next_line().unwrap(), None);
        assert_eq!(reader.buf.len(), BUFFER);
    }
}
