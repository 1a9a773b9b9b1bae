//! The `access_log` files read in parallel: one thread reads (and decodes gzip) the files in
//! order into chunks of whole lines, worker threads parse the chunks, and the calling
//! thread gets each chunk's result back in the files' order, to join and count. Memory is
//! bounded: a fixed number of chunk buffers circulate between the three (the reader waits
//! for one to come back), and a line longer than [`MAX_LINE`] is skipped as it streams.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};
use std::sync::{Mutex, PoisonError};

use crate::error_chain;
use crate::logs::{LogFile, Logs};

use super::access_log::{Class, Parser};
use super::join::request_digest;
use super::lines::{MAX_LINE, decoded};
use super::tally::ClientRef;

/// The size of a chunk: whole lines, up to this many bytes.
const CHUNK: usize = 1 << 20;

/// Chunks in flight per worker.
const PER_WORKER: usize = 3;

/// The accounts asked about, by name: what a worker keeps of a line.
pub(crate) type Accounts = HashMap<Box<[u8]>, u32, foldhash::fast::RandomState>;

/// One request with the WHM header of an account asked about; its client's address and
/// user agent are ranges of the chunk's bytes.
#[derive(Clone, Debug)]
pub(crate) struct Request {
    pub(crate) time: i64,
    pub(crate) account: u32,
    pub(crate) request: u64,
    pub(crate) ok: bool,
    pub(crate) ip: (u32, u32),
    pub(crate) agent: (u32, u32),
    /// The client's id ([`ClientRef::id`]).
    pub(crate) client: u128,
}

/// A chunk, parsed.
#[derive(Debug, Default)]
pub(crate) struct Parsed {
    seq: u64,
    /// The index of its file's read.
    pub(crate) file: usize,
    /// The chunk's bytes, which the requests' ranges point into.
    pub(crate) data: Vec<u8>,
    pub(crate) lines: u64,
    pub(crate) unparsed: u64,
    pub(crate) first: Option<i64>,
    pub(crate) last: Option<i64>,
    pub(crate) requests: Vec<Request>,
    /// The file could not be opened or read on from here.
    pub(crate) error: Option<String>,
}

impl Parsed {
    pub(crate) fn bytes(&self, (start, end): (u32, u32)) -> &[u8] {
        &self.data[start as usize..end as usize]
    }
}

/// What the reader hands the workers: a chunk of whole lines, or why a file stopped.
enum Piece {
    Chunk {
        seq: u64,
        file: usize,
        /// A buffer holding whole lines in its first `len` bytes.
        data: Vec<u8>,
        len: usize,
        /// Lines over a chunk's size skipped just before it.
        too_long: u64,
    },
    Error {
        seq: u64,
        file: usize,
        error: String,
    },
}

/// Reads `files` (each with the index of its read) and hands each chunk's result to
/// `consume`, in order, on the calling thread; `workers` threads parse.
pub(crate) fn run(
    logs: &dyn Logs,
    files: &[(usize, LogFile)],
    accounts: &Accounts,
    workers: usize,
    mut consume: impl FnMut(&Parsed),
) {
    let workers = workers.max(1);
    let buffers = workers * PER_WORKER + 2;
    let (pool_send, pool) = sync_channel::<Vec<u8>>(buffers);
    for _ in 0..buffers {
        let _ = pool_send.send(Vec::new());
    }
    let (work_send, work) = sync_channel::<Piece>(buffers);
    let work = Mutex::new(work);
    let (done_send, done) = channel::<Parsed>();
    std::thread::scope(|scope| {
        // Owned here, so that a panic below drops them and every thread ends (the reader
        // waiting for a buffer, the workers for a chunk) instead of waiting forever.
        let (pool_send, done) = (pool_send, done);
        scope.spawn(move || read_all(logs, files, &pool, &work_send));
        for _ in 0..workers {
            let done_send = done_send.clone();
            let work = &work;
            scope.spawn(move || parse_all(work, &done_send, accounts));
        }
        drop(done_send);
        let mut waiting = BTreeMap::new();
        let mut next = 0;
        for parsed in done {
            waiting.insert(parsed.seq, parsed);
            while let Some(parsed) = waiting.remove(&next) {
                next += 1;
                consume(&parsed);
                // The reader may be gone (every file read): then the buffer is not needed.
                let _ = pool_send.send(parsed.data);
            }
        }
    });
}

/// The reader: every file in turn, cut into chunks of whole lines.
fn read_all(
    logs: &dyn Logs,
    files: &[(usize, LogFile)],
    pool: &Receiver<Vec<u8>>,
    work: &SyncSender<Piece>,
) {
    let mut seq = 0;
    for (file, log) in files {
        let mut send = |piece| work.send(piece).is_ok();
        let opened = logs
            .open(log)
            .map_err(|e| error_chain(&e))
            .and_then(|raw| decoded(raw).map_err(|e| format!("{}: {e}", log.location)));
        let ok = match opened {
            Ok(mut raw) => chunk_file(&mut *raw, *file, (&mut seq, pool), &log.location, &mut send),
            Err(error) => {
                seq += 1;
                send(Piece::Error {
                    seq: seq - 1,
                    file: *file,
                    error,
                })
            }
        };
        if !ok {
            return;
        }
    }
}

/// Cuts one file into chunks; `false` when the workers are gone.
fn chunk_file(
    raw: &mut dyn Read,
    file: usize,
    (seq, pool): (&mut u64, &Receiver<Vec<u8>>),
    location: &str,
    send: &mut impl FnMut(Piece) -> bool,
) -> bool {
    let mut cutter = Cutter {
        raw,
        carry: Vec::new(),
        skipping: false,
    };
    loop {
        let Ok(mut data) = pool.recv() else {
            return false;
        };
        // Buffers keep their size from one chunk to the next: no zeroing per chunk.
        data.resize(CHUNK, 0);
        let (mut len, end, failed) = cutter.fill(&mut data);
        let mut too_long = 0;
        if !end {
            match memchr::memrchr(b'\n', &data[..len]) {
                Some(at) => {
                    cutter.carry.extend_from_slice(&data[at + 1..len]);
                    len = at + 1;
                }
                None => {
                    // A chunk without a line feed: a line longer than any kept.
                    too_long = 1;
                    cutter.skipping = true;
                    len = 0;
                }
            }
        }
        *seq += 1;
        let chunk = Piece::Chunk {
            seq: *seq - 1,
            file,
            data,
            len,
            too_long,
        };
        if !send(chunk) {
            return false;
        }
        if let Some(e) = failed {
            *seq += 1;
            return send(Piece::Error {
                seq: *seq - 1,
                file,
                error: format!("{location}: {e}"),
            });
        }
        if end {
            return true;
        }
    }
}

/// A file being cut into chunks: the start of a line the last chunk ended in, and whether
/// an overlong line is being skipped.
struct Cutter<'a> {
    raw: &'a mut dyn Read,
    carry: Vec<u8>,
    skipping: bool,
}

impl Cutter<'_> {
    /// Fills `data` with the carried line start and what follows: how much, whether the
    /// file ended (or failed: the error), so that nothing follows.
    fn fill(&mut self, data: &mut [u8]) -> (usize, bool, Option<std::io::Error>) {
        let mut len = self.carry.len();
        data[..len].copy_from_slice(&self.carry);
        self.carry.clear();
        while len < data.len() {
            match self.raw.read(&mut data[len..]) {
                Ok(0) => return (len, true, None),
                Ok(read) if self.skipping => {
                    if let Some(at) = memchr::memchr(b'\n', &data[len..len + read]) {
                        data.copy_within(len + at + 1..len + read, len);
                        len += read - at - 1;
                        self.skipping = false;
                    }
                }
                Ok(read) => len += read,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return (len, true, Some(e)),
            }
        }
        (len, false, None)
    }
}

/// A worker: parses chunks until the reader is done.
fn parse_all(work: &Mutex<Receiver<Piece>>, done: &Sender<Parsed>, accounts: &Accounts) {
    loop {
        let piece = work.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let parsed = match piece {
            Err(_) => return,
            Ok(Piece::Error { seq, file, error }) => Parsed {
                seq,
                file,
                error: Some(error),
                ..Parsed::default()
            },
            Ok(Piece::Chunk {
                seq,
                file,
                data,
                len,
                too_long,
            }) => parse_chunk(seq, file, (data, len), too_long, accounts),
        };
        if done.send(parsed).is_err() {
            return;
        }
    }
}

/// Offsets of `part` (a slice of `data`) in `data`.
fn range_in(data: &[u8], part: &[u8]) -> (u32, u32) {
    let start = part.as_ptr() as usize - data.as_ptr() as usize;
    (start as u32, (start + part.len()) as u32)
}

fn parse_chunk(
    seq: u64,
    file: usize,
    (buffer, len): (Vec<u8>, usize),
    too_long: u64,
    accounts: &Accounts,
) -> Parsed {
    let data = &buffer[..len];
    let mut parsed = Parsed {
        seq,
        file,
        lines: too_long,
        unparsed: too_long,
        ..Parsed::default()
    };
    let mut parser = Parser::default();
    let mut start = 0;
    let ends = memchr::memchr_iter(b'\n', data)
        .chain((data.last() != Some(&b'\n') && !data.is_empty()).then_some(data.len()));
    for end in ends {
        let line = &data[start..end];
        start = end + 1;
        parsed.lines += 1;
        let Some(line) = (line.len() <= MAX_LINE)
            .then(|| parser.parse(line))
            .flatten()
        else {
            parsed.unparsed += 1;
            continue;
        };
        parsed.first = Some(parsed.first.map_or(line.time, |t| t.min(line.time)));
        parsed.last = Some(parsed.last.map_or(line.time, |t| t.max(line.time)));
        let class = line.class();
        if class == Class::Other {
            continue;
        }
        let Some(&account) = accounts.get(line.user) else {
            continue;
        };
        parsed.requests.push(Request {
            time: line.time,
            account,
            request: request_digest(line.request),
            ok: class == Class::AccessKey,
            ip: range_in(data, line.source()),
            agent: range_in(data, line.user_agent),
            client: ClientRef::new(line.source(), Some(line.user_agent)).id(),
        });
    }
    parsed.data = buffer;
    parsed
}

#[cfg(test)]
mod tests {
    use std::io;

    use super::*;

    /// Logs whose files hand out their bytes a few at a time, and fail where told.
    #[derive(Debug)]
    struct Trickle(Vec<(Vec<u8>, Option<usize>)>);

    struct Reader<'a> {
        bytes: &'a [u8],
        fail_at: Option<usize>,
        at: usize,
    }

    impl Read for Reader<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.fail_at.is_some_and(|f| self.at >= f) {
                return Err(io::Error::other("disk on fire"));
            }
            let until = self.fail_at.unwrap_or(self.bytes.len());
            let n = buf.len().min(until - self.at).min(100_003);
            buf[..n].copy_from_slice(&self.bytes[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    impl Logs for Trickle {
        fn location(&self) -> &str {
            "trickle"
        }
        fn files(&self) -> Result<Vec<LogFile>, crate::BackendError> {
            unreachable!()
        }
        fn open(&self, file: &LogFile) -> Result<Box<dyn Read + Send + '_>, crate::BackendError> {
            let (bytes, fail_at) = &self.0[file.modified as usize];
            Ok(Box::new(Reader {
                bytes,
                fail_at: *fail_at,
                at: 0,
            }))
        }
    }

    fn file(index: usize) -> (usize, LogFile) {
        let file = LogFile {
            name: format!("access_log.{}", index + 1),
            location: format!("trickle/{index}"),
            modified: index as i64,
        };
        (index, file)
    }

    /// Every line of every file is counted once, in order, whatever the chunks' cuts;
    /// overlong lines are skipped however long; a failing file keeps what came before.
    #[test]
    fn lines_are_cut_into_chunks_in_order_with_overlong_ones_skipped() {
        let line = |i: usize| {
            format!(
                "192.0.2.1 - bob [12/03/2026:21:19:22 -0000] \"GET /{i} HTTP/1.1\" 200 1 \"-\" \"agent {i}\" \"a\" \"-\" 2087\n"
            )
        };
        let mut first = Vec::new();
        for i in 0..40_000 {
            first.extend(line(i).as_bytes());
            if i == 100 {
                first.extend(vec![b'x'; 3 * CHUNK]);
                first.push(b'\n');
            }
            if i == 200 {
                first.extend(vec![b'y'; MAX_LINE + 1]);
                first.push(b'\n');
            }
        }
        first.extend(b"last line, no line feed");
        let second = line(7).into_bytes().repeat(10);
        let logs = Trickle(vec![
            (first.clone(), None),
            (second.clone(), Some(second.len() / 2 + 3)),
        ]);
        let accounts: Accounts = [(Box::from(&b"bob"[..]), 0)].into_iter().collect();
        let mut seen = vec![(0, 0, 0, None); 2];
        let mut agents = Vec::new();
        run(&logs, &[file(0), file(1)], &accounts, 3, |parsed| {
            let (lines, unparsed, requests, error) = &mut seen[parsed.file];
            *lines += parsed.lines;
            *unparsed += parsed.unparsed;
            *requests += parsed.requests.len();
            if parsed.error.is_some() {
                *error = parsed.error.clone();
            }
            agents.extend(
                parsed
                    .requests
                    .iter()
                    .map(|r| parsed.bytes(r.agent).to_vec()),
            );
        });
        assert_eq!(seen[0], (40_003, 3, 40_000, None));
        assert_eq!(
            agents[..3],
            [
                b"agent 0".to_vec(),
                b"agent 1".to_vec(),
                b"agent 2".to_vec()
            ]
        );
        assert_eq!(agents[39_999], b"agent 39999".to_vec(), "in order");
        let (lines, unparsed, requests, error) = &seen[1];
        assert_eq!((*lines, *unparsed), (6, 1), "5 whole lines, then a cut one");
        assert_eq!(*requests, 5);
        assert_eq!(error.as_deref(), Some("trickle/1: disk on fire"));
    }
}
