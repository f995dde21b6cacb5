//! A server that stops reading a request body partway through.

use std::ops::Deref;

use tokio::net::TcpSocket;

use super::http::RequestReader;
use super::server::Server;

/// Simulates a backend that stalls an upload: reads the request head, then stops
/// reading while keeping the socket open, so the client's body writes block once the
/// socket buffers are full.
#[derive(Debug)]
pub struct StopReading {
    server: Server,
}

impl StopReading {
    /// Receive buffer requested for accepted sockets. Linux doubles the value and
    /// enforces a minimum, so the real buffer is a few KiB.
    pub const RECV_BUFFER: u32 = 4096;

    /// Starts the server on a free loopback port.
    pub async fn start() -> Self {
        let socket = TcpSocket::new_v4().expect("failed to create the stop-reading socket");
        // Accepted sockets inherit the listener's receive buffer size.
        socket
            .set_recv_buffer_size(Self::RECV_BUFFER)
            .expect("failed to set SO_RCVBUF on the stop-reading socket");
        socket
            .bind(
                "127.0.0.1:0"
                    .parse()
                    .expect("127.0.0.1:0 is a valid address"),
            )
            .expect("failed to bind the stop-reading socket on 127.0.0.1:0");
        let listener = socket
            .listen(128)
            .expect("failed to listen on the stop-reading socket");

        let server = Server::spawn(listener, |mut connection| async move {
            let mut reader = RequestReader::new();
            if let Ok(Some(_head)) = reader.read_head(&mut connection.stream).await {
                connection.stats.record_request();
            }
            // Keep the socket open without reading until the fixture is dropped.
            std::future::pending::<()>().await;
        });
        Self { server }
    }
}

impl Deref for StopReading {
    type Target = Server;

    fn deref(&self) -> &Server {
        &self.server
    }
}
