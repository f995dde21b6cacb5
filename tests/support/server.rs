//! Accept loop, counters and shutdown guard shared by every server fixture.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// Task handle that aborts the task when dropped, so a fixture stops with its owner.
#[derive(Debug)]
pub struct AbortOnDrop(pub JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Counters and timestamps that fixtures update and tests read.
#[derive(Debug, Default)]
pub struct Stats {
    connections: AtomicUsize,
    requests: AtomicUsize,
    request_times: Mutex<Vec<Instant>>,
    close_times: Mutex<Vec<Instant>>,
}

impl Stats {
    /// Records one received request head and returns its 0-based index across all connections.
    pub fn record_request(&self) -> usize {
        let mut times = lock(&self.request_times);
        times.push(Instant::now());
        self.requests.fetch_add(1, Ordering::SeqCst)
    }

    /// Records that a client closed (or reset) one of its connections.
    pub fn record_close(&self) {
        lock(&self.close_times).push(Instant::now());
    }
}

/// One accepted connection, handed to a fixture's connection handler.
#[derive(Debug)]
pub struct Accepted {
    /// The server side of the connection.
    pub stream: TcpStream,
    /// 0-based position of this connection in accept order.
    pub index: usize,
    /// Counters of the server that accepted the connection.
    pub stats: Arc<Stats>,
}

/// Loopback server that runs one handler task per accepted connection.
///
/// Dropping it aborts the accept loop. The per-connection tasks live in a
/// `JoinSet` owned by that loop, so they are aborted too and their sockets closed.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    stats: Arc<Stats>,
    _accept_loop: AbortOnDrop,
}

/// Binds a listener on 127.0.0.1 with a port chosen by the kernel.
pub async fn bind_loopback() -> TcpListener {
    TcpListener::bind("127.0.0.1:0")
        .await
        .expect("failed to bind a listener on 127.0.0.1:0")
}

impl Server {
    /// Starts accepting on `listener` and runs `handler` for each connection.
    pub fn spawn<H, F>(listener: TcpListener, handler: H) -> Server
    where
        H: Fn(Accepted) -> F + Send + Sync + 'static,
        F: Future<Output = ()> + Send + 'static,
    {
        let addr = listener
            .local_addr()
            .expect("failed to read the fixture listener's local address");
        let stats = Arc::new(Stats::default());
        let loop_stats = Arc::clone(&stats);

        let accept_loop = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                let stream = match listener.accept().await {
                    Ok((stream, _peer)) => stream,
                    Err(error) => {
                        // Errors such as ECONNABORTED concern one pending connection only.
                        eprintln!("fixture on {addr}: accept failed: {error}");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                while connections.try_join_next().is_some() {}

                let index = loop_stats.connections.fetch_add(1, Ordering::SeqCst);
                connections.spawn(handler(Accepted {
                    stream,
                    index,
                    stats: Arc::clone(&loop_stats),
                }));
            }
        });

        Server {
            addr,
            stats,
            _accept_loop: AbortOnDrop(accept_loop),
        }
    }

    /// Address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Port the server listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `http://127.0.0.1:PORT` followed by `path`, with a `/` added if `path` lacks one.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, absolute(path))
    }

    /// `https://127.0.0.1:PORT` followed by `path`, for the fixtures that stand in for TLS servers.
    pub fn https_url(&self, path: &str) -> String {
        format!("https://{}{}", self.addr, absolute(path))
    }

    /// `http://HOST:PORT` followed by `path`, for requests that go through a custom DNS resolver.
    pub fn url_with_host(&self, host: &str, path: &str) -> String {
        format!("http://{host}:{}{}", self.addr.port(), absolute(path))
    }

    /// Number of accepted connections.
    pub fn connections(&self) -> usize {
        self.stats.connections.load(Ordering::SeqCst)
    }

    /// Number of complete request heads received, across all connections.
    pub fn requests(&self) -> usize {
        self.stats.requests.load(Ordering::SeqCst)
    }

    /// Arrival time of each request head, in arrival order.
    pub fn request_times(&self) -> Vec<Instant> {
        lock(&self.stats.request_times).clone()
    }

    /// Time at which the client closed each connection, for fixtures that hold connections open.
    pub fn close_times(&self) -> Vec<Instant> {
        lock(&self.stats.close_times).clone()
    }

    /// Waits until at least `count` requests arrived and returns their arrival times.
    ///
    /// Panics if that does not happen within `limit`.
    pub async fn wait_for_requests(&self, count: usize, limit: Duration) -> Vec<Instant> {
        wait_for_len(&self.stats.request_times, count, limit, "request heads").await
    }

    /// Waits until clients closed at least `count` connections and returns the close times.
    ///
    /// Panics if that does not happen within `limit`.
    pub async fn wait_for_closes(&self, count: usize, limit: Duration) -> Vec<Instant> {
        wait_for_len(&self.stats.close_times, count, limit, "client-side closes").await
    }
}

/// Reads and discards everything the client sends until it closes or resets the connection,
/// then records the close time.
pub async fn hold_until_client_closes<S>(stream: &mut S, stats: &Stats)
where
    S: AsyncRead + Unpin,
{
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    stats.record_close();
}

fn absolute(path: &str) -> String {
    if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .expect("fixture counters poisoned by a panicking connection handler")
}

async fn wait_for_len(
    times: &Mutex<Vec<Instant>>,
    count: usize,
    limit: Duration,
    description: &str,
) -> Vec<Instant> {
    let deadline = Instant::now() + limit;
    loop {
        let snapshot = lock(times).clone();
        if snapshot.len() >= count {
            return snapshot;
        }
        assert!(
            Instant::now() < deadline,
            "expected at least {count} {description} within {limit:?}, saw {}",
            snapshot.len()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
