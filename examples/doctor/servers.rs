//! Servers on 127.0.0.1 that each misbehave in one way, one per demo case.
//!
//! Each one speaks just enough HTTP/1.1 by hand to produce its failure, and
//! sends `Connection: close`, so every request gets a new connection.

use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use reqwest::Url;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

const LOOPBACK: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0);

/// The maximum size of a request head, in bytes, that the servers read.
const MAX_REQUEST_HEAD: usize = 64 * 1024;

/// One demo case: a kind of misbehaving server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    Healthy,
    Refused,
    Blackholed,
    HeaderStall,
    BodyStall,
    UnavailableThenOk,
}

impl Scenario {
    pub const ALL: [Scenario; 6] = [
        Scenario::Healthy,
        Scenario::Refused,
        Scenario::Blackholed,
        Scenario::HeaderStall,
        Scenario::BodyStall,
        Scenario::UnavailableThenOk,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::Healthy => "healthy",
            Scenario::Refused => "refused",
            Scenario::Blackholed => "blackholed",
            Scenario::HeaderStall => "header stall",
            Scenario::BodyStall => "body stall",
            Scenario::UnavailableThenOk => "503 then 200",
        }
    }

    /// Returns what the server does, in one line.
    pub fn behaviour(self) -> &'static str {
        match self {
            Scenario::Healthy => "responds with 200 and a small body",
            Scenario::Refused => "nothing listens on the port, so connects are refused",
            Scenario::Blackholed => "never accepts and its accept queue is full, so connects hang",
            Scenario::HeaderStall => "reads the request and never responds",
            Scenario::BodyStall => {
                "sends headers with Content-Length 100, then 10 body bytes, then nothing"
            }
            Scenario::UnavailableThenOk => {
                "responds to the first request with 503 and Retry-After: 1, to later ones with 200"
            }
        }
    }

    fn path(self) -> &'static str {
        match self {
            Scenario::Healthy => "/health",
            Scenario::Refused | Scenario::Blackholed => "/",
            Scenario::HeaderStall => "/slow",
            Scenario::BodyStall => "/download",
            Scenario::UnavailableThenOk => "/busy",
        }
    }

    /// Starts this case's server.
    pub async fn start(self) -> io::Result<Server> {
        match self {
            Scenario::Healthy => healthy().await,
            Scenario::Refused => refused(),
            Scenario::Blackholed => blackholed().await,
            Scenario::HeaderStall => header_stall().await,
            Scenario::BodyStall => body_stall().await,
            Scenario::UnavailableThenOk => unavailable_then_ok().await,
        }
        .map(|server| server.with_path(self.path()))
    }
}

/// A running server. Dropping it stops the server and closes its
/// connections.
#[derive(Debug)]
pub struct Server {
    url: Url,
    // The fields below are held only so that dropping the server ends them.
    _accept_loop: Option<AbortOnDrop>,
    _blackhole: Option<(TcpListener, Vec<TcpStream>)>,
}

impl Server {
    fn with_path(mut self, path: &str) -> Self {
        self.url.set_path(path);
        self
    }

    pub fn url(&self) -> &Url {
        &self.url
    }
}

fn loopback_url(addr: SocketAddr) -> Url {
    Url::parse(&format!("http://{addr}/")).expect("a socket address forms a valid URL")
}

/// Aborts the task when dropped.
#[derive(Debug)]
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Simulates a working server: responds to every request with 200 and a
/// short text body.
async fn healthy() -> io::Result<Server> {
    serve(|mut stream, _| async move {
        read_request_head(&mut stream).await?;
        let body = "ok from the doctor\n";
        let head = response_head("200 OK", body.len(), "");
        stream.write_all(format!("{head}{body}").as_bytes()).await
    })
    .await
}

/// Simulates a server that is not running: a port on which nothing listens.
fn refused() -> io::Result<Server> {
    // NOTE: another process could bind the port between the drop and the
    // request. That is unlikely on a loopback port picked by the kernel.
    let listener = std::net::TcpListener::bind(LOOPBACK)?;
    let addr = listener.local_addr()?;
    drop(listener);
    Ok(Server {
        url: loopback_url(addr),
        _accept_loop: None,
        _blackhole: None,
    })
}

/// Simulates a host behind a firewall that drops packets: connects neither
/// complete nor get refused.
///
/// The listener has backlog 1 and never accepts. Filler connections fill its
/// accept queue, after which Linux drops new SYNs (with the default
/// `net.ipv4.tcp_abort_on_overflow = 0`), so a connect hangs until the
/// client's connect timeout. Other systems may refuse instead, which this
/// function reports as an error.
async fn blackholed() -> io::Result<Server> {
    // A connect that has not finished after this long counts as hanging.
    const HANG_PROBE: Duration = Duration::from_millis(200);
    const MAX_FILLERS: usize = 64;

    let socket = TcpSocket::new_v4()?;
    socket.bind(LOOPBACK)?;
    let listener = socket.listen(1)?;
    let addr = listener.local_addr()?;

    let mut fillers = Vec::new();
    while fillers.len() < MAX_FILLERS {
        match tokio::time::timeout(HANG_PROBE, TcpStream::connect(addr)).await {
            Ok(Ok(filler)) => fillers.push(filler),
            Ok(Err(error)) => {
                return Err(io::Error::new(
                    error.kind(),
                    format!(
                        "connect {} to {addr} failed instead of hanging: {error}",
                        fillers.len() + 1
                    ),
                ))
            }
            // The probe hung, which shows that the accept queue is full and
            // new SYNs are dropped. Dropping the probe abandons its connect.
            Err(_elapsed) => {
                return Ok(Server {
                    url: loopback_url(addr),
                    _accept_loop: None,
                    _blackhole: Some((listener, fillers)),
                })
            }
        }
    }
    Err(io::Error::other(format!(
        "{MAX_FILLERS} connects to {addr} completed, so the accept queue never filled; \
         this case needs Linux with net.ipv4.tcp_abort_on_overflow = 0"
    )))
}

/// Simulates a server that hangs while handling a request: it reads the
/// request and never sends a response.
async fn header_stall() -> io::Result<Server> {
    serve(|mut stream, _| async move {
        read_request_head(&mut stream).await?;
        hold_until_closed(&mut stream).await
    })
    .await
}

/// Simulates a response cut off mid-transfer: headers that announce 100
/// bytes, 10 bytes of body, then silence with the connection left open.
async fn body_stall() -> io::Result<Server> {
    serve(|mut stream, _| async move {
        read_request_head(&mut stream).await?;
        let head = response_head("200 OK", 100, "");
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(b"0123456789").await?;
        hold_until_closed(&mut stream).await
    })
    .await
}

/// Simulates an overloaded server that recovers: the first request gets 503
/// with `Retry-After: 1`, every later one gets 200.
async fn unavailable_then_ok() -> io::Result<Server> {
    serve(|mut stream, connection| async move {
        read_request_head(&mut stream).await?;
        // Connection numbers count requests, because every response closes
        // its connection.
        let response = if connection == 0 {
            response_head("503 Service Unavailable", 0, "Retry-After: 1\r\n")
        } else {
            let body = "recovered\n";
            format!("{}{body}", response_head("200 OK", body.len(), ""))
        };
        stream.write_all(response.as_bytes()).await
    })
    .await
}

/// Starts an accept loop on a new loopback port that runs `handle` on each
/// connection, with the connection's number counted from 0.
async fn serve<H, F>(handle: H) -> io::Result<Server>
where
    H: Fn(TcpStream, usize) -> F + Send + 'static,
    F: Future<Output = io::Result<()>> + Send + 'static,
{
    let listener = TcpListener::bind(LOOPBACK).await?;
    let addr = listener.local_addr()?;

    let accept_loop = tokio::spawn(async move {
        // Dropping the set when this task is aborted aborts the connections.
        let mut connections = JoinSet::new();
        let mut count = 0;
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _peer)) => stream,
                Err(error) => {
                    eprintln!("server on {addr}: accept failed, stopping: {error}");
                    return;
                }
            };
            // A connection's I/O errors are ignored, because the clients in
            // these cases time out and close connections mid-request.
            connections.spawn(handle(stream, count));
            count += 1;
            while connections.try_join_next().is_some() {}
        }
    });

    Ok(Server {
        url: loopback_url(addr),
        _accept_loop: Some(AbortOnDrop(accept_loop)),
        _blackhole: None,
    })
}

/// Reads up to the blank line that ends the request head. The body of the
/// request, if any, is left unread.
async fn read_request_head(stream: &mut TcpStream) -> io::Result<()> {
    let mut head = Vec::new();
    let mut buffer = [0; 1024];
    while !head.windows(4).any(|window| window == b"\r\n\r\n") {
        if head.len() > MAX_REQUEST_HEAD {
            return Err(io::Error::other("request head is too long"));
        }
        let read = stream.read(&mut buffer).await?;
        if read == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        head.extend_from_slice(&buffer[..read]);
    }
    Ok(())
}

/// Keeps the connection open, sending nothing, until the client closes it.
async fn hold_until_closed(stream: &mut TcpStream) -> io::Result<()> {
    let mut buffer = [0; 1024];
    while stream.read(&mut buffer).await? > 0 {}
    Ok(())
}

/// Returns a response head with the status, a `Content-Length` and
/// `Connection: close`. `extra_headers` is empty or lines that end in CRLF.
fn response_head(status: &str, content_length: usize, extra_headers: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\n\
         Content-Type: text/plain\r\n\
         Content-Length: {content_length}\r\n\
         Connection: close\r\n\
         {extra_headers}\r\n"
    )
}
