//! Reading the logs: the `access_log` files (in parallel, [`super::chunks`]) and the
//! `api_tokens_log` files, each oldest first, side by side, joined as they go
//! ([`super::join`]), counted into the ledger ([`super::tally`]). A file that cannot be opened or read to its end is reported with
//! what was read of it; a line that does not parse is counted and skipped.

use std::io::Read;
use std::ops::Range;

use crate::error_chain;
use crate::logs::{LogFile, Logs};

use super::access_log;
use super::chunks;
use super::join::{JOIN_SECONDS, Joiner, Pending, SLACK, request_digest};
use super::lines::{LineReader, Span, decoded};
use super::names::LogKind;
use super::report::{Coverage, LogRead, Window};
use super::tally::{ClientRef, Ledger};
use super::tokens_log;

/// The files to read: each log's, oldest first, and the newest `access_log` file left out
/// (it ends before the window), whose first line shows how far back the logs reach.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    pub(crate) access: Vec<LogFile>,
    pub(crate) tokens: Vec<LogFile>,
    pub(crate) probe: Option<LogFile>,
}

/// The files of one log, read one after the other.
struct Source<'a> {
    logs: &'a dyn Logs,
    /// Each file with the index of its read.
    files: Vec<(usize, LogFile)>,
    next: usize,
    reader: Option<(usize, LineReader<Box<dyn Read + Send + 'a>>)>,
}

impl<'a> Source<'a> {
    fn new(logs: &'a dyn Logs, files: Vec<(usize, LogFile)>) -> Self {
        Self {
            logs,
            files,
            next: 0,
            reader: None,
        }
    }

    /// The next line (see [`text`](Self::text)) and the index of its file's read; `None`
    /// once every file is read.
    fn next(&mut self, reads: &mut [LogRead]) -> Option<(usize, Span)> {
        loop {
            let Some((index, reader)) = &mut self.reader else {
                let (index, file) = self.files.get(self.next)?;
                self.next += 1;
                let opened = self.logs.open(file).map_err(|e| error_chain(&e));
                match opened
                    .and_then(|raw| decoded(raw).map_err(|e| format!("{}: {e}", file.location)))
                {
                    Ok(raw) => self.reader = Some((*index, LineReader::new(raw))),
                    Err(e) => reads[*index].error = Some(e),
                }
                continue;
            };
            let index = *index;
            match reader.next_span() {
                Ok(Some(span)) => return Some((index, span)),
                Ok(None) => self.reader = None,
                Err(e) => {
                    reads[index].error = Some(format!("{}: {e}", reads[index].path));
                    self.reader = None;
                }
            }
        }
    }

    fn text(&self, range: &Range<usize>) -> &[u8] {
        self.reader
            .as_ref()
            .map_or(&[][..], |(_, reader)| reader.text(range))
    }
}

/// Counts a line in its file's read: `Some(time)` when it parsed.
fn tally_line(read: &mut LogRead, time: Option<i64>) {
    read.lines += 1;
    match time {
        None => read.unparsed += 1,
        Some(time) => {
            read.first = Some(read.first.map_or(time, |t| t.min(time)));
            read.last = Some(read.last.map_or(time, |t| t.max(time)));
        }
    }
}

/// `api_tokens_log`'s lines of the accounts asked about, as token lines to pair.
struct TokenLines<'a> {
    source: Source<'a>,
    peeked: Option<Pending>,
}

impl TokenLines<'_> {
    fn next(&mut self, reads: &mut [LogRead], ledger: &mut Ledger) -> Option<Pending> {
        if let Some(peeked) = self.peeked.take() {
            return Some(peeked);
        }
        loop {
            let (index, span) = self.source.next(reads)?;
            let line = match &span {
                Span::Text(range) => tokens_log::parse(self.source.text(range)),
                Span::TooLong => None,
            };
            tally_line(&mut reads[index], line.as_ref().map(|l| l.time));
            let Some(line) = line.filter(tokens_log::TokenLine::is_whm) else {
                continue;
            };
            let Some(account) = ledger.account(line.user) else {
                continue;
            };
            let token = ledger.token(account, line.token);
            let request = request_digest(line.request);
            let ok = line.status < 400;
            return Some(Pending::new(
                line.time,
                (account, token),
                request,
                ok,
                line.host,
            ));
        }
    }

    /// Reads token lines into `joiner` up to time `limit`.
    fn read_until(
        &mut self,
        limit: i64,
        reads: &mut [LogRead],
        ledger: &mut Ledger,
        joiner: &mut Joiner,
    ) {
        while let Some(pending) = self.next(reads, ledger) {
            if pending.time > limit {
                self.peeked = Some(pending);
                return;
            }
            joiner.push(pending);
        }
    }
}

/// A token line that no `access_log` line paired with: its token's use all the same, from
/// the host it names.
fn count_alone(ledger: &mut Ledger, pending: &Pending) {
    let host = pending.host.map(|h| h.to_string());
    let ip = host.as_deref().map_or(&b"-"[..], str::as_bytes);
    ledger.count(
        (pending.account, Some(pending.token)),
        pending.time,
        pending.ok,
        (ip, None),
    );
}

/// Reads every file of `plan`, counting into `ledger`: the reads, oldest first
/// (`access_log`'s, then `api_tokens_log`'s), and how far back the logs reach.
pub(crate) fn read(
    logs: &dyn Logs,
    plan: Plan,
    ledger: &mut Ledger,
    window: Window,
) -> (Vec<LogRead>, Coverage) {
    let mut reads = Vec::new();
    let mut indexed = |files: Vec<LogFile>, kind: LogKind| -> Vec<(usize, LogFile)> {
        files
            .into_iter()
            .map(|file| {
                reads.push(LogRead {
                    path: file.location.clone(),
                    kind,
                    first: None,
                    last: None,
                    lines: 0,
                    unparsed: 0,
                    error: None,
                });
                (reads.len() - 1, file)
            })
            .collect()
    };
    let access = indexed(plan.access, LogKind::Access);
    let tokens = indexed(plan.tokens, LogKind::ApiTokens);
    let mut tokens = TokenLines {
        source: Source::new(logs, tokens),
        peeked: None,
    };
    join_all(logs, &access, &mut tokens, &mut reads, ledger);
    let probed = plan.probe.and_then(|file| first_time(logs, &file));
    let from = reads
        .iter()
        .filter(|r| r.kind == LogKind::Access)
        .filter_map(|r| r.first)
        .chain(probed)
        .min();
    let coverage = Coverage {
        from,
        complete: from.is_some_and(|from| from <= window.from),
    };
    (reads, coverage)
}

/// Every `access_log` line (parsed on worker threads, [`chunks`]) against the token lines
/// read ahead of it.
fn join_all(
    logs: &dyn Logs,
    access: &[(usize, LogFile)],
    tokens: &mut TokenLines<'_>,
    reads: &mut [LogRead],
    ledger: &mut Ledger,
) {
    let mut joiner = Joiner::default();
    let mut watermark = i64::MIN;
    let accounts = ledger.accounts();
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    chunks::run(logs, access, &accounts, workers, |parsed| {
        let read = &mut reads[parsed.file];
        read.lines += parsed.lines;
        read.unparsed += parsed.unparsed;
        for time in [parsed.first, parsed.last].into_iter().flatten() {
            read.first = Some(read.first.map_or(time, |t| t.min(time)));
            read.last = Some(read.last.map_or(time, |t| t.max(time)));
        }
        if let Some(error) = &parsed.error {
            read.error = Some(error.clone());
        }
        for request in &parsed.requests {
            tokens.read_until(
                request.time + JOIN_SECONDS + SLACK,
                reads,
                ledger,
                &mut joiner,
            );
            watermark = watermark.max(request.time);
            joiner.release(watermark - JOIN_SECONDS - SLACK, |p| count_alone(ledger, p));
            let token = joiner
                .take(
                    request.account,
                    request.request,
                    request.time,
                    parsed.bytes(request.ip),
                )
                .map(|pending| pending.token);
            let client =
                || ClientRef::new(parsed.bytes(request.ip), Some(parsed.bytes(request.agent)));
            let at = (request.account, token);
            ledger.count_id(at, request.time, request.ok, request.client, client);
        }
    });
    joiner.drain(|p| count_alone(ledger, p));
    while let Some(pending) = tokens.next(reads, ledger) {
        count_alone(ledger, &pending);
    }
}

/// The time of the first line of `file` that parses (among its first thousand).
fn first_time(logs: &dyn Logs, file: &LogFile) -> Option<i64> {
    let mut reader = LineReader::new(decoded(logs.open(file).ok()?).ok()?);
    for _ in 0..1000 {
        if let Span::Text(range) = reader.next_span().ok()??
            && let Some(line) = access_log::parse(reader.text(&range))
        {
            return Some(line.time);
        }
    }
    None
}
