//! The fake WHM's connections, each served by hyper (HTTP/1.1) on a task of its own, under
//! the server's [`Limits`]: a connection waiting for a request is closed after the idle
//! timeout; one whose request header has begun gets `408` (and an access-log line) when the
//! header is not complete within the header timeout; a TLS handshake has its own timeout;
//! and at the connection cap, the connection idle the longest is closed to admit a new one
//! (a new connection is refused only when every open one is answering a request).

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};

/// The limits the server keeps to, whatever its clients do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// How long a request header may take, from its first byte (the body then has as long).
    pub header_timeout: Duration,
    /// How long a connection may wait for its next request (or its first).
    pub idle_timeout: Duration,
    /// How long a TLS handshake may take.
    pub handshake_timeout: Duration,
    /// How many connections may be open at once.
    pub max_connections: usize,
    /// The largest request body read, in bytes; a larger one gets `413`.
    pub max_body: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            handshake_timeout: Duration::from_secs(10),
            max_connections: 4096,
            max_body: 64 << 10,
        }
    }
}

/// What a connection is doing.
#[derive(Clone, Copy, Debug)]
enum Phase {
    /// Waiting for a request, or shaking hands: since when.
    Idle(Instant),
    /// Reading a request's header, since its first byte.
    Reading(Instant),
    /// Answering a request.
    Busy,
}

/// How many bytes of a request's beginning are kept, for the log line of a request
/// refused before it reached the handler.
const HEAD_KEPT: usize = 256;

/// One open connection.
#[derive(Debug)]
pub(crate) struct Slot {
    id: u64,
    state: Mutex<State>,
    /// Asks the connection's task to drop it.
    close: Notify,
}

#[derive(Debug)]
struct State {
    phase: Phase,
    /// The first bytes of the request being read.
    head: Vec<u8>,
    /// The header timeout struck while reading `head`.
    timed_out: bool,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Slot {
    fn new(id: u64) -> Self {
        Self {
            id,
            state: Mutex::new(State {
                phase: Phase::Idle(Instant::now()),
                head: Vec::new(),
                timed_out: false,
            }),
            close: Notify::new(),
        }
    }

    /// Since when the connection is idle (or reading a header), `None` while it answers.
    fn idle_since(&self) -> Option<Instant> {
        match lock(&self.state).phase {
            Phase::Idle(since) | Phase::Reading(since) => Some(since),
            Phase::Busy => None,
        }
    }

    /// Bytes arrived from the client.
    fn received(&self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let mut state = lock(&self.state);
        match state.phase {
            Phase::Busy => return,
            Phase::Idle(_) => {
                state.phase = Phase::Reading(Instant::now());
                state.head.clear();
            }
            Phase::Reading(_) => {}
        }
        let room = HEAD_KEPT.saturating_sub(state.head.len());
        state
            .head
            .extend_from_slice(&bytes[..room.min(bytes.len())]);
    }

    /// When the connection is to be closed if nothing changes.
    fn deadline(&self, limits: &Limits) -> Option<Instant> {
        match lock(&self.state).phase {
            Phase::Idle(since) => Some(since + limits.idle_timeout),
            Phase::Reading(since) => Some(since + limits.header_timeout),
            Phase::Busy => None,
        }
    }

    /// The deadline struck: whether a request was being read (then it gets `408`).
    fn strike(&self) -> bool {
        let mut state = lock(&self.state);
        let reading = matches!(state.phase, Phase::Reading(_));
        state.timed_out = reading;
        reading
    }

    /// A request reached the handler.
    pub(crate) fn begin(&self) {
        lock(&self.state).phase = Phase::Busy;
    }

    /// Its answer is ready.
    pub(crate) fn end(&self) {
        lock(&self.state).phase = Phase::Idle(Instant::now());
    }

    /// When the connection ended without reaching the handler: whether the header timeout
    /// struck, the beginning of what the client sent, and since when it was sending it.
    pub(crate) fn unfinished(&self) -> (bool, Vec<u8>, Option<Instant>) {
        let state = lock(&self.state);
        let since = match state.phase {
            Phase::Reading(since) => Some(since),
            _ => None,
        };
        (state.timed_out, state.head.clone(), since)
    }

    /// Resolves when the connection is to be dropped (closed for the cap, or at stop).
    pub(crate) async fn closed(&self) {
        self.close.notified().await;
    }
}

/// The open connections, for the cap.
#[derive(Debug)]
pub(crate) struct Registry {
    slots: Mutex<BTreeMap<u64, Arc<Slot>>>,
    next: AtomicU64,
    cap: usize,
}

impl Registry {
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            slots: Mutex::new(BTreeMap::new()),
            next: AtomicU64::new(0),
            cap: cap.max(1),
        }
    }

    /// A slot for a new connection; at the cap, the connection idle the longest is closed
    /// to make room. `None` when every open connection is answering a request.
    pub(crate) fn admit(&self) -> Option<Arc<Slot>> {
        let mut slots = lock(&self.slots);
        if slots.len() >= self.cap {
            let oldest = slots
                .values()
                .filter_map(|slot| slot.idle_since().map(|since| (since, slot.id)))
                .min()?;
            if let Some(evicted) = slots.remove(&oldest.1) {
                evicted.close.notify_one();
            }
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let slot = Arc::new(Slot::new(id));
        slots.insert(id, Arc::clone(&slot));
        Some(slot)
    }

    /// The connection of `slot` has ended.
    pub(crate) fn leave(&self, slot: &Slot) {
        lock(&self.slots).remove(&slot.id);
    }

    /// Closes every connection not answering a request; how many remain open.
    pub(crate) fn close_idle(&self) -> usize {
        let mut slots = lock(&self.slots);
        slots.retain(|_, slot| {
            let busy = slot.idle_since().is_none();
            if !busy {
                slot.close.notify_one();
            }
            busy
        });
        slots.len()
    }
}

/// The answer to a request whose header did not arrive in time.
const TIMED_OUT: &[u8] =
    b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";

/// A connection's stream, watched: what arrives moves its [`Slot`] on, and a read that
/// waits past the slot's deadline ends the connection (after writing `408` when a request
/// had begun).
pub(crate) struct Watched<S> {
    inner: S,
    slot: Arc<Slot>,
    limits: Limits,
    timer: Pin<Box<Sleep>>,
    /// How much of [`TIMED_OUT`] is written, once the header timeout struck.
    replying: Option<usize>,
}

impl<S> Watched<S> {
    pub(crate) fn new(inner: S, slot: Arc<Slot>, limits: Limits) -> Self {
        Self {
            inner,
            slot,
            limits,
            timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
            replying: None,
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Watched<S> {
    /// Writes the `408`; then the stream reads as ended.
    fn poll_reply(&mut self, cx: &mut Context<'_>, mut sent: usize) -> Poll<io::Result<()>> {
        while sent < TIMED_OUT.len() {
            match ready!(Pin::new(&mut self.inner).poll_write(cx, &TIMED_OUT[sent..])) {
                Ok(0) | Err(_) => return Poll::Ready(Ok(())),
                Ok(n) => sent += n,
            }
            self.replying = Some(sent);
        }
        let _ = ready!(Pin::new(&mut self.inner).poll_flush(cx));
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(sent) = this.replying {
            return this.poll_reply(cx, sent);
        }
        let before = buf.filled().len();
        if let Poll::Ready(read) = Pin::new(&mut this.inner).poll_read(cx, buf) {
            this.slot.received(&buf.filled()[before..]);
            return Poll::Ready(read);
        }
        let Some(deadline) = this.slot.deadline(&this.limits) else {
            return Poll::Pending;
        };
        if this.timer.deadline() != deadline {
            this.timer.as_mut().reset(deadline);
        }
        ready!(this.timer.as_mut().poll(cx));
        if this.slot.strike() {
            this.replying = Some(0);
            return this.poll_reply(cx, 0);
        }
        // Idle too long: the stream ends, and hyper closes the connection.
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
