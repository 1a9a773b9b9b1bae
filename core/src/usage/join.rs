//! Telling a token's request from an access hash's: a request with the WHM header is a
//! token's when `api_tokens_log` has a line with the same user and request line at most
//! [`JOIN_SECONDS`] apart (both times in UTC), each token line pairing with one
//! `access_log` line at most; otherwise it is the access hash's. A token line with no
//! partner still counts for its token.
//!
//! Both logs are read once, side by side: the token lines are read ahead of the
//! `access_log` line at hand by the join's width plus [`SLACK`] (lines are written when a
//! request ends, so neither log is strictly in order), and a token line is let go, counted
//! alone if it never paired, once the `access_log` has moved that far past it. Memory
//! holds the token lines of about a minute, whatever the size of the logs.

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::OnceLock;

use foldhash::fast::RandomState;
use std::net::IpAddr;

/// How far apart (seconds) the two lines of one request may be.
pub const JOIN_SECONDS: i64 = 2;

/// How far out of order (seconds) lines of either log may be.
pub(crate) const SLACK: i64 = 60;

/// A request line as the join compares it: a digest, so that no query string (which can
/// carry a credential) is kept; keyed at random once per process, so that a client cannot
/// make its request line collide with another's.
pub(crate) fn request_digest(request: &[u8]) -> u64 {
    static KEYS: OnceLock<RandomState> = OnceLock::new();
    KEYS.get_or_init(RandomState::default).hash_one(request)
}

/// A token line waiting for its `access_log` partner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Pending {
    pub(crate) time: i64,
    pub(crate) account: u32,
    pub(crate) token: u32,
    pub(crate) request: u64,
    pub(crate) ok: bool,
    pub(crate) host: Option<IpAddr>,
    matched: bool,
}

impl Pending {
    pub(crate) fn new(
        time: i64,
        (account, token): (u32, u32),
        request: u64,
        ok: bool,
        host: Option<IpAddr>,
    ) -> Self {
        Self {
            time,
            account,
            token,
            request,
            ok,
            host,
            matched: false,
        }
    }
}

/// The token lines read ahead, in the order read.
#[derive(Debug, Default)]
pub(crate) struct Joiner {
    queue: VecDeque<Pending>,
    /// The sequence number of `queue[0]`.
    base: u64,
    by_key: HashMap<(u32, u64), VecDeque<u64>, RandomState>,
}

impl Joiner {
    pub(crate) fn push(&mut self, pending: Pending) {
        let seq = self.base + self.queue.len() as u64;
        self.by_key
            .entry((pending.account, pending.request))
            .or_default()
            .push_back(seq);
        self.queue.push_back(pending);
    }

    /// The unpaired token line of `account` with `request` nearest to `time` (at most
    /// [`JOIN_SECONDS`] away), now paired. A token line that names its client's address
    /// (`Host`) pairs only with a request from that address (`ip`, as the access_log gives
    /// it): another client's request at the same moment is not the token's.
    pub(crate) fn take(
        &mut self,
        account: u32,
        request: u64,
        time: i64,
        ip: &[u8],
    ) -> Option<Pending> {
        let seqs = self.by_key.get(&(account, request))?;
        let ip: Option<IpAddr> = std::str::from_utf8(ip).ok().and_then(|s| s.parse().ok());
        let best = seqs
            .iter()
            .map(|seq| (*seq, &self.queue[(*seq - self.base) as usize]))
            .filter(|(_, p)| !p.matched && (p.time - time).abs() <= JOIN_SECONDS)
            .filter(|(_, p)| p.host.is_none_or(|host| Some(host) == ip))
            .min_by_key(|(_, p)| (p.time - time).abs())
            .map(|(seq, _)| seq)?;
        let pending = &mut self.queue[(best - self.base) as usize];
        pending.matched = true;
        Some(*pending)
    }

    /// Lets go of the token lines read before any line of time `before` or later, handing
    /// those that never paired to `alone`.
    pub(crate) fn release(&mut self, before: i64, mut alone: impl FnMut(&Pending)) {
        while self.queue.front().is_some_and(|p| p.time < before) {
            self.pop(&mut alone);
        }
    }

    /// Lets go of every token line.
    pub(crate) fn drain(&mut self, mut alone: impl FnMut(&Pending)) {
        while !self.queue.is_empty() {
            self.pop(&mut alone);
        }
    }

    fn pop(&mut self, alone: &mut impl FnMut(&Pending)) {
        let Some(pending) = self.queue.pop_front() else {
            return;
        };
        let key = (pending.account, pending.request);
        if let Some(seqs) = self.by_key.get_mut(&key) {
            seqs.pop_front();
            if seqs.is_empty() {
                self.by_key.remove(&key);
            }
        }
        self.base += 1;
        if !pending.matched {
            alone(&pending);
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(time: i64, request: &[u8]) -> Pending {
        Pending::new(time, (0, 0), request_digest(request), true, None)
    }

    #[test]
    fn a_token_line_pairs_once_with_the_nearest_request_within_two_seconds() {
        let mut joiner = Joiner::default();
        let req = request_digest(b"GET /json-api/version HTTP/1.1");
        joiner.push(pending(100, b"GET /json-api/version HTTP/1.1"));
        joiner.push(pending(104, b"GET /json-api/version HTTP/1.1"));
        assert_eq!(joiner.take(0, req, 97, b"-"), None, "3 s before: too far");
        assert_eq!(joiner.take(1, req, 100, b"-"), None, "another account");
        assert_eq!(
            joiner.take(0, req, 103, b"-").map(|p| p.time),
            Some(104),
            "the nearer"
        );
        assert_eq!(
            joiner.take(0, req, 103, b"-"),
            None,
            "104 is taken, 100 too far"
        );
        assert_eq!(joiner.take(0, req, 102, b"-").map(|p| p.time), Some(100));
        assert_eq!(joiner.take(0, req, 102, b"-"), None, "each pairs once");
        let mut alone = Vec::new();
        joiner.drain(|p| alone.push(p.time));
        assert!(alone.is_empty());
    }

    #[test]
    fn a_request_line_that_differs_does_not_pair_and_unpaired_lines_count_alone() {
        let mut joiner = Joiner::default();
        joiner.push(pending(
            100,
            b"GET /json-api/version?api.version=1 HTTP/1.1",
        ));
        joiner.push(pending(200, b"GET /json-api/applist HTTP/1.1"));
        let other = request_digest(b"GET /json-api/version HTTP/1.1");
        assert_eq!(joiner.take(0, other, 100, b"-"), None);
        let mut alone = Vec::new();
        joiner.release(150, |p| alone.push(p.time));
        assert_eq!(alone, [100]);
        assert_eq!(joiner.len(), 1);
        let applist = request_digest(b"GET /json-api/applist HTTP/1.1");
        assert!(
            joiner.take(0, applist, 201, b"-").is_some(),
            "still there after a release"
        );
        joiner.drain(|p| alone.push(p.time));
        assert_eq!(alone, [100]);
    }

    #[test]
    fn a_token_line_naming_its_client_pairs_only_with_that_clients_request() {
        let mut joiner = Joiner::default();
        let line = b"GET /json-api/listaccts HTTP/1.1";
        let req = request_digest(line);
        let host = "127.0.0.4".parse().ok();
        joiner.push(Pending::new(100, (0, 0), req, true, host));
        assert_eq!(
            joiner.take(0, req, 100, b"127.0.0.5"),
            None,
            "another client's request at the same moment"
        );
        assert_eq!(
            joiner.take(0, req, 101, b"127.0.0.4").map(|p| p.time),
            Some(100)
        );
    }
}
