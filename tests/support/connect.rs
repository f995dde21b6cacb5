//! Addresses where TCP connects fail: refused at once, or never completed.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// Returns a loopback address with no listener, so connects to it are refused.
///
/// The port was free a moment ago. Another process may claim it in the meantime,
/// which is unlikely on a test machine but not impossible.
/// [`Healthy::start_on`](super::Healthy::start_on) can later start a server on it.
pub fn closed_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("failed to bind a listener on 127.0.0.1:0 to reserve a port");
    let addr = listener
        .local_addr()
        .expect("failed to read the reserved port's local address");
    drop(listener);
    addr
}

/// Simulates an unreachable host: connects to its address neither complete nor get refused.
///
/// The listener has backlog 1 and never accepts. [`Blackhole::start`] fills its accept
/// queue with held connections, after which Linux drops new SYNs (with the default
/// `net.ipv4.tcp_abort_on_overflow = 0`), so a client connect hangs until its own timeout.
#[derive(Debug)]
pub struct Blackhole {
    addr: SocketAddr,
    fillers: Vec<TcpStream>,
    _listener: TcpListener,
}

impl Blackhole {
    /// A connect that has not finished after this long counts as hanging.
    const HANG_PROBE: Duration = Duration::from_millis(200);
    /// Upper bound on filler connections before giving up.
    const MAX_FILLERS: usize = 64;

    /// Starts the listener and fills its accept queue.
    ///
    /// Opens filler connections until one fails to complete within 200 ms, which
    /// shows that the accept queue is full and new SYNs are dropped. Panics if a
    /// connect is refused or if 64 fillers all complete, since the fixture would then
    /// not simulate a blackhole. On Linux 6.18, backlog 1 took 2 fillers.
    pub async fn start() -> Self {
        let socket = TcpSocket::new_v4().expect("failed to create the blackhole socket");
        let bind_addr: SocketAddr = "127.0.0.1:0"
            .parse()
            .expect("127.0.0.1:0 is a valid address");
        socket
            .bind(bind_addr)
            .expect("failed to bind the blackhole socket on 127.0.0.1:0");
        let listener = socket
            .listen(1)
            .expect("failed to listen on the blackhole socket");
        let addr = listener
            .local_addr()
            .expect("failed to read the blackhole listener's local address");

        let mut fillers = Vec::new();
        loop {
            assert!(
                fillers.len() < Self::MAX_FILLERS,
                "blackhole on {addr}: {} connects completed without the accept queue filling up",
                fillers.len()
            );
            match tokio::time::timeout(Self::HANG_PROBE, TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => fillers.push(stream),
                Ok(Err(error)) => panic!(
                    "blackhole on {addr}: connect {} failed instead of hanging: {error} \
                     (is net.ipv4.tcp_abort_on_overflow set to 1?)",
                    fillers.len() + 1
                ),
                Err(_elapsed) => break,
            }
        }

        Self {
            addr,
            fillers,
            _listener: listener,
        }
    }

    /// Address whose connects hang.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        let separator = if path.starts_with('/') { "" } else { "/" };
        format!("http://{}{separator}{path}", self.addr)
    }

    /// `https://127.0.0.1:PORT` followed by `path`.
    pub fn https_url(&self, path: &str) -> String {
        let separator = if path.starts_with('/') { "" } else { "/" };
        format!("https://{}{separator}{path}", self.addr)
    }

    /// Number of connections the server accepted, which is always 0.
    pub fn connections(&self) -> usize {
        0
    }

    /// Number of filler connections that were needed to fill the accept queue.
    pub fn filler_count(&self) -> usize {
        self.fillers.len()
    }
}
