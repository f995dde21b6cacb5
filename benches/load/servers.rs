//! Loopback servers, each on its own thread with its own single-threaded
//! tokio runtime, so that server work never runs on the client's runtime.
//!
//! A server stops when dropped: its runtime is shut down, which closes every
//! socket it holds, and its thread is joined.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::oneshot;

use super::clients::CALL_ID_HEADER;

/// Listen backlog; Linux caps it at `net.core.somaxconn` (4096 on the
/// benchmark machine), so that 5 000 connects arriving together are not
/// dropped while the accept loop catches up.
const BACKLOG: u32 = 8192;

/// Upper bound on a request head read by the raw TCP servers.
const MAX_HEAD_LEN: usize = 16 * 1024;

/// The response, or the lack of one, that a server gives each request.
#[derive(Debug, Clone)]
pub enum Behavior {
    /// Responds `200 OK` with `body`, keeping connections alive (hyper).
    Fixed { body: Bytes },
    /// Responds `200 OK` with `len` bytes sent as repeated `chunk`s (hyper).
    Download { len: u64, chunk: Bytes },
    /// Responds `status` with an empty body and, if set, `Retry-After`
    /// in seconds (hyper).
    Status {
        status: u16,
        retry_after_secs: Option<u32>,
    },
    /// Reads the request head and never responds; closes its side only
    /// when the client closes (raw TCP).
    StallHeaders,
    /// Sends a `200 OK` head announcing `len` bytes, then one byte after
    /// each `interval` (raw TCP).
    Drip { len: usize, interval: Duration },
    /// Reads the request head, then closes the connection without a
    /// response (raw TCP).
    CloseAfterHead,
}

/// Whether a server keeps the arrival time of each request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Log {
    /// Counters only: no memory grows with the number of requests.
    Counts,
    /// Counters plus one [`Arrival`] per request.
    Arrivals,
}

/// One request as a server saw it.
#[derive(Debug, Clone, Copy)]
pub struct Arrival {
    /// The value of the `x-call-id` header, if the request had one.
    pub call_id: Option<u64>,
    /// When the request head had been read in full.
    pub at: Instant,
}

/// Counters shared between a server thread and its owner.
#[derive(Debug)]
pub struct ServerStats {
    requests: AtomicU64,
    accepted: AtomicU64,
    open: AtomicU64,
    arrivals: Option<Mutex<Vec<Arrival>>>,
}

impl ServerStats {
    fn new(log: Log) -> Self {
        ServerStats {
            requests: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            open: AtomicU64::new(0),
            arrivals: (log == Log::Arrivals).then(|| Mutex::new(Vec::new())),
        }
    }

    fn record(&self, call_id: Option<u64>) {
        let at = Instant::now();
        self.requests.fetch_add(1, Ordering::SeqCst);
        if let Some(arrivals) = &self.arrivals {
            lock(arrivals).push(Arrival { call_id, at });
        }
    }
}

/// Decrements the open-connection count when a connection task ends,
/// whether it returns or its runtime drops it.
struct OpenGuard(Arc<ServerStats>);

impl OpenGuard {
    fn new(stats: &Arc<ServerStats>) -> Self {
        stats.accepted.fetch_add(1, Ordering::SeqCst);
        stats.open.fetch_add(1, Ordering::SeqCst);
        OpenGuard(Arc::clone(stats))
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A server on 127.0.0.1 with a port chosen by the kernel.
#[derive(Debug)]
pub struct LoopbackServer {
    addr: SocketAddr,
    stats: Arc<ServerStats>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl LoopbackServer {
    /// Starts a server thread and returns once it listens.
    ///
    /// Panics if the thread, its runtime or the listener cannot be created.
    pub fn start(behavior: Behavior, log: Log) -> LoopbackServer {
        let stats = Arc::new(ServerStats::new(log));
        let (addr_sender, addr_receiver) = std::sync::mpsc::channel();
        let (shutdown, shutdown_receiver) = oneshot::channel();
        let thread_stats = Arc::clone(&stats);
        let thread = std::thread::Builder::new()
            .name("loopback-server".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("failed to build the server runtime");
                runtime.block_on(serve(
                    behavior,
                    thread_stats,
                    addr_sender,
                    shutdown_receiver,
                ));
                // Dropping the runtime here aborts every connection task and
                // closes its socket before the thread is joined.
            })
            .expect("failed to spawn the server thread");
        let addr = addr_receiver
            .recv()
            .expect("the server thread ended before it listened");
        LoopbackServer {
            addr,
            stats,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    /// Returns the address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Returns `http://127.0.0.1:PORT/PATH`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}/{}", self.addr, path.trim_start_matches('/'))
    }

    /// Returns the number of complete request heads received.
    pub fn requests(&self) -> u64 {
        self.stats.requests.load(Ordering::SeqCst)
    }

    /// Returns the number of accepted connections.
    pub fn accepted(&self) -> u64 {
        self.stats.accepted.load(Ordering::SeqCst)
    }

    /// Returns the number of connections still open on the server side.
    pub fn open_connections(&self) -> u64 {
        self.stats.open.load(Ordering::SeqCst)
    }

    /// Returns every arrival so far; empty unless started with
    /// [`Log::Arrivals`].
    pub fn arrivals(&self) -> Vec<Arrival> {
        match &self.stats.arrivals {
            Some(arrivals) => lock(arrivals).clone(),
            None => Vec::new(),
        }
    }

    /// Waits until at least `count` requests arrived, or `limit` passed.
    /// Returns whether they arrived.
    pub async fn wait_for_requests(&self, count: u64, limit: Duration) -> bool {
        wait_until(limit, || self.requests() >= count).await
    }

    /// Waits until the server has no open connection, or `limit` passed.
    /// Returns whether all closed.
    pub async fn wait_for_no_connections(&self, limit: Duration) -> bool {
        wait_until(limit, || self.open_connections() == 0).await
    }
}

impl Drop for LoopbackServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Returns a loopback address where nothing listens, so connects to it are
/// refused. The port was free a moment ago; another process could claim it
/// in the meantime, which is unlikely on a benchmark machine.
pub fn refused_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("failed to bind 127.0.0.1:0 to reserve a port");
    listener
        .local_addr()
        .expect("failed to read the reserved port")
}

async fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn serve(
    behavior: Behavior,
    stats: Arc<ServerStats>,
    addr_sender: std::sync::mpsc::Sender<SocketAddr>,
    mut shutdown: oneshot::Receiver<()>,
) {
    let socket = TcpSocket::new_v4().expect("failed to create the server socket");
    socket
        .bind(([127, 0, 0, 1], 0).into())
        .expect("failed to bind 127.0.0.1:0");
    let listener = socket
        .listen(BACKLOG)
        .expect("failed to listen on the server socket");
    let addr = listener
        .local_addr()
        .expect("failed to read the server address");
    let _ = addr_sender.send(addr);

    loop {
        let stream = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(error) => {
                    // EMFILE and ECONNABORTED concern one connection; back
                    // off briefly instead of spinning.
                    eprintln!("server on {addr}: accept failed: {error}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let guard = OpenGuard::new(&stats);
        let stats = Arc::clone(&stats);
        let behavior = behavior.clone();
        tokio::spawn(async move {
            let _guard = guard;
            match behavior {
                Behavior::StallHeaders => stall(stream, &stats).await,
                Behavior::Drip { len, interval } => drip(stream, &stats, len, interval).await,
                Behavior::CloseAfterHead => {
                    let mut stream = stream;
                    if let Ok(Some(call_id)) = read_head(&mut stream).await {
                        stats.record(call_id);
                    }
                }
                http => serve_http(stream, stats, http).await,
            }
        });
    }
}

/// Serves the hyper-based behaviors on one connection until it closes.
async fn serve_http(stream: TcpStream, stats: Arc<ServerStats>, behavior: Behavior) {
    let service = service_fn(move |request: hyper::Request<Incoming>| {
        stats.record(call_id(request.headers()));
        let response = match &behavior {
            Behavior::Fixed { body } => respond(200, None, RepeatBody::once(body.clone())),
            Behavior::Download { len, chunk } => {
                respond(200, None, RepeatBody::new(chunk.clone(), *len))
            }
            Behavior::Status {
                status,
                retry_after_secs,
            } => respond(*status, *retry_after_secs, RepeatBody::empty()),
            _ => unreachable!("raw TCP behaviors are served elsewhere"),
        };
        async move { Ok::<_, Infallible>(response) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

fn respond(
    status: u16,
    retry_after_secs: Option<u32>,
    body: RepeatBody,
) -> hyper::Response<RepeatBody> {
    let mut response = hyper::Response::builder().status(status);
    if let Some(seconds) = retry_after_secs {
        response = response.header(http::header::RETRY_AFTER, seconds);
    }
    response
        .body(body)
        .expect("a status and a Retry-After number form a valid response")
}

fn call_id(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(CALL_ID_HEADER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok())
}

async fn stall(mut stream: TcpStream, stats: &ServerStats) {
    if let Ok(Some(call_id)) = read_head(&mut stream).await {
        stats.record(call_id);
    }
    drain_until_closed(&mut stream).await;
}

async fn drip(mut stream: TcpStream, stats: &ServerStats, len: usize, interval: Duration) {
    let Ok(Some(call_id)) = read_head(&mut stream).await else {
        return;
    };
    stats.record(call_id);
    let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n\r\n");
    if stream.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    for _ in 0..len {
        tokio::time::sleep(interval).await;
        if stream.write_all(b"x").await.is_err() {
            return;
        }
    }
    drain_until_closed(&mut stream).await;
}

async fn drain_until_closed(stream: &mut TcpStream) {
    let mut buffer = [0u8; 1024];
    while let Ok(read) = stream.read(&mut buffer).await {
        if read == 0 {
            break;
        }
    }
}

/// Reads one request head, ending in a blank line, and returns its
/// `x-call-id`. Returns `Ok(None)` when the client closes first.
async fn read_head(stream: &mut TcpStream) -> io::Result<Option<Option<u64>>> {
    let mut head = Vec::with_capacity(512);
    let mut buffer = [0u8; 1024];
    loop {
        let read = stream.read(&mut buffer).await?;
        if read == 0 {
            return Ok(None);
        }
        head.extend_from_slice(&buffer[..read]);
        if let Some(end) = head.windows(4).position(|window| window == b"\r\n\r\n") {
            return Ok(Some(call_id_in_head(&head[..end])));
        }
        if head.len() > MAX_HEAD_LEN {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "request head longer than 16 KiB",
            ));
        }
    }
}

fn call_id_in_head(head: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(head).ok()?;
    text.split("\r\n").find_map(|line| {
        let (name, value) = line.split_once(':')?;
        if name.trim().eq_ignore_ascii_case(CALL_ID_HEADER) {
            value.trim().parse().ok()
        } else {
            None
        }
    })
}

/// A response body of `remaining` bytes made of clones of one chunk, so a
/// 256 MiB download costs the server no copying.
#[derive(Debug)]
pub struct RepeatBody {
    chunk: Bytes,
    remaining: u64,
}

impl RepeatBody {
    fn new(chunk: Bytes, len: u64) -> Self {
        assert!(
            !chunk.is_empty() || len == 0,
            "a non-empty body needs a non-empty chunk"
        );
        RepeatBody {
            chunk,
            remaining: len,
        }
    }

    fn once(body: Bytes) -> Self {
        let len = body.len() as u64;
        RepeatBody::new(body, len)
    }

    fn empty() -> Self {
        RepeatBody::new(Bytes::new(), 0)
    }
}

impl Body for RepeatBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _context: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let len = self.remaining.min(self.chunk.len() as u64);
        self.remaining -= len;
        let data = self.chunk.slice(..len as usize);
        Poll::Ready(Some(Ok(Frame::data(data))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .expect("server counters poisoned by a panicking connection task")
}
