//! The HTTP listener: our own accept loop rather than `axum::serve`, since
//! every connection must be bounded in time and in number. A client that
//! sends nothing, half a header, or keeps an idle connection open would
//! otherwise hold a descriptor for ever, and enough of them stop the
//! banner and the API ("Too many open files").

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use tracing::warn;

use crate::telemetry::LogThrottle;

/// How long and how many connections the listener keeps.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// From accepting a connection, or from the end of the last response,
    /// until a request's headers are complete.
    pub header_read_timeout: Duration,
    /// A connection that neither reads nor writes for this long is closed.
    pub idle_timeout: Duration,
    /// Connections open at once; more wait in the kernel's backlog until
    /// one closes (the timeouts above make sure one does).
    pub max_connections: usize,
}

/// Serves `router` on `listener` until `shutdown`, then lets open requests
/// finish (each bounded by the router's own timeout) and returns.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let open = Arc::new(OpenConnections::default());
    let full = LogThrottle::new(Duration::from_secs(10));
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let slot = tokio::select! {
            slot = free_slot(&slots, &open, limits, &full) => slot?,
            () = shutdown.cancelled() => break,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.cancelled() => break,
        };
        match accepted {
            Ok((stream, peer)) => {
                let connection = Connection {
                    router: router.clone(),
                    limits,
                    entry: open.register(),
                    open: open.clone(),
                    _slot: slot,
                };
                connections.spawn(connection.run(stream, peer, shutdown.clone()));
            }
            Err(err) => accept_failed(&err, &full).await,
        }
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
    Ok(())
}

/// A slot for the next connection. At the limit, the oldest connection
/// with no request in progress is closed to make room: an attacker's idle
/// connections go before a reader's banner request waits behind them.
async fn free_slot(
    slots: &Arc<Semaphore>,
    open: &OpenConnections,
    limits: ConnectionLimits,
    full: &LogThrottle,
) -> io::Result<OwnedSemaphorePermit> {
    if let Ok(slot) = slots.clone().try_acquire_owned() {
        return Ok(slot);
    }
    let shed = open.shed_oldest_idle();
    if let Some(suppressed) = full.allow("full") {
        warn!(
            max_connections = limits.max_connections,
            shed,
            suppressed,
            "The HTTP listener is at its connection limit; idle ones are closed first."
        );
    }
    slots
        .clone()
        .acquire_owned()
        .await
        .map_err(io::Error::other)
}

/// How long a new connection is safe from being shed at the limit.
const SHED_AFTER: Duration = Duration::from_secs(1);

/// The open connections, oldest first, with what each is doing.
#[derive(Default)]
struct OpenConnections {
    next: std::sync::atomic::AtomicU64,
    entries: std::sync::Mutex<std::collections::BTreeMap<u64, Arc<Entry>>>,
}

struct Entry {
    id: u64,
    /// When its task first ran (and read what had arrived): a connection
    /// not yet served, or served for less than `SHED_AFTER`, is never shed,
    /// so a reader's request is read before its connection can be taken
    /// for the next one, however busy the machine.
    opened: std::sync::OnceLock<std::time::Instant>,
    /// It has sent a byte: a client, not (yet) an idle attacker.
    spoke: std::sync::atomic::AtomicBool,
    /// Requests being answered on it.
    busy: std::sync::atomic::AtomicUsize,
    /// Cancelled to close it (after the request in progress, if any).
    close: CancellationToken,
}

impl OpenConnections {
    fn entries(&self) -> std::sync::MutexGuard<'_, std::collections::BTreeMap<u64, Arc<Entry>>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn register(&self) -> Arc<Entry> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let entry = Arc::new(Entry {
            id,
            opened: std::sync::OnceLock::new(),
            spoke: std::sync::atomic::AtomicBool::new(false),
            busy: std::sync::atomic::AtomicUsize::new(0),
            close: CancellationToken::new(),
        });
        self.entries().insert(id, entry.clone());
        entry
    }

    fn forget(&self, id: u64) {
        self.entries().remove(&id);
    }

    /// Asks the oldest idle connection to close; whether there was one.
    /// Only one open for `SHED_AFTER` counts: otherwise attackers who
    /// reconnect at once would shed each new connection, a reader's too,
    /// before its request is read (seen on a loaded machine: the banner's
    /// request cut with IncompleteMessage).
    /// Connections that never sent a byte go first, then those idle
    /// between requests.
    fn shed_oldest_idle(&self) -> bool {
        let entries = self.entries();
        let sheddable = |entry: &&Arc<Entry>, spoke: bool| {
            entry.busy.load(Ordering::Acquire) == 0
                && entry.spoke.load(Ordering::Acquire) == spoke
                && !entry.close.is_cancelled()
                && entry
                    .opened
                    .get()
                    .is_some_and(|opened| opened.elapsed() >= SHED_AFTER)
        };
        let idle = entries
            .values()
            .find(|entry| sheddable(entry, false))
            .or_else(|| entries.values().find(|entry| sheddable(entry, true)));
        idle.map(|entry| entry.close.cancel()).is_some()
    }
}

/// A failed accept: a connection reset before we took it is nothing; out
/// of descriptors or memory, wait a little rather than spin.
async fn accept_failed(err: &io::Error, throttle: &LogThrottle) {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        err.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    if let Some(suppressed) = throttle.allow("accept") {
        warn!(error = %err, suppressed, "Accepting an HTTP connection failed.");
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
}

struct Connection {
    router: Router,
    limits: ConnectionLimits,
    entry: Arc<Entry>,
    open: Arc<OpenConnections>,
    /// Released when the connection closes.
    _slot: OwnedSemaphorePermit,
}

impl Connection {
    async fn run(self, stream: TcpStream, peer: SocketAddr, shutdown: CancellationToken) {
        let _ = self.entry.opened.set(std::time::Instant::now());
        // Small responses (the banner) go out at once.
        let _ = stream.set_nodelay(true);
        let io = TokioIo::new(Watched::new(stream, self.entry.clone(), self.limits));
        let entry = self.entry.clone();
        let service = tower::service_fn(move |mut request: axum::http::Request<Incoming>| {
            // The console rate-limits sign-ins by the peer's address.
            request.extensions_mut().insert(ConnectInfo(peer));
            let busy = Busy::new(entry.clone());
            let answer = self.router.clone().oneshot(request);
            async move {
                let response = answer.await;
                drop(busy);
                response
            }
        });
        let mut builder = Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.limits.header_read_timeout);
        builder.http2().timer(TokioTimer::new());
        let conn = builder.serve_connection_with_upgrades(io, TowerToHyperService::new(service));
        tokio::pin!(conn);
        tokio::select! {
            _ = conn.as_mut() => {}
            () = shutdown.cancelled() => {
                conn.as_mut().graceful_shutdown();
                let _ = conn.await;
            }
            () = self.entry.close.cancelled() => {
                conn.as_mut().graceful_shutdown();
                let _ = conn.await;
            }
        }
        self.open.forget(self.entry.id);
    }
}

/// A request in progress on a connection, for as long as it lives.
struct Busy(Arc<Entry>);

impl Busy {
    fn new(entry: Arc<Entry>) -> Self {
        entry.busy.fetch_add(1, Ordering::AcqRel);
        Self(entry)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A TCP stream that fails its reads once nothing moved for too long: at
/// first `header_read_timeout` (a client that connects and says nothing),
/// then `idle_timeout` after each read or write.
struct Watched {
    stream: TcpStream,
    entry: Arc<Entry>,
    idle: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl Watched {
    fn new(stream: TcpStream, entry: Arc<Entry>, limits: ConnectionLimits) -> Self {
        Self {
            stream,
            entry,
            idle: limits.idle_timeout,
            deadline: Box::pin(tokio::time::sleep(limits.header_read_timeout)),
        }
    }

    fn moved(&mut self) {
        let next = Instant::now() + self.idle;
        self.deadline.as_mut().reset(next);
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.stream).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    self.entry.spoke.store(true, Ordering::Release);
                    self.moved();
                }
                Poll::Ready(result)
            }
            Poll::Pending => match self.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "idle connection closed",
                ))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.stream).poll_write(cx, buf);
        if matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            self.moved();
        }
        written
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        if matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            self.moved();
        }
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
