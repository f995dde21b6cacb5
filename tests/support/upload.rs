//! A server that stops reading a request body partway through, and one that records the
//! request bodies it receives.

use std::ops::Deref;
use std::sync::{Arc, Mutex};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpSocket;

use super::http::{response, RequestReader};
use super::server::{bind_loopback, Server};

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

/// A request body as a [`RecordUpload`] server received it.
#[derive(Debug, Clone)]
pub struct ReceivedBody {
    /// The body bytes that arrived, with any chunked framing removed.
    pub bytes: Vec<u8>,
    /// Whether the body ended where its framing specifies: all `Content-Length` bytes, or the last
    /// chunk of a chunked body. False when the client closed or reset the connection first.
    pub complete: bool,
}

/// Simulates a backend that stores uploads: reads each request body, records it, and
/// responds `201 Created` once the body is complete. A body that breaks off ends its
/// connection. [`Server::close_times`] records when each connection ends.
#[derive(Debug)]
pub struct RecordUpload {
    server: Server,
    bodies: Arc<Mutex<Vec<ReceivedBody>>>,
}

impl RecordUpload {
    /// Starts the server on a free loopback port.
    pub async fn start() -> Self {
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let recorded = Arc::clone(&bodies);
        let server = Server::spawn(bind_loopback().await, move |mut connection| {
            let recorded = Arc::clone(&recorded);
            async move {
                let mut reader = RequestReader::new();
                while let Ok(Some(head)) = reader.read_head(&mut connection.stream).await {
                    connection.stats.record_request();
                    let (bytes, complete) = reader.read_body(&mut connection.stream, &head).await;
                    lock(&recorded).push(ReceivedBody { bytes, complete });
                    if !complete {
                        break;
                    }
                    let created = response("201 Created", &[], b"");
                    if connection.stream.write_all(&created).await.is_err() {
                        break;
                    }
                }
                connection.stats.record_close();
            }
        });
        Self { server, bodies }
    }

    /// Returns the request bodies received so far, in arrival order.
    pub fn bodies(&self) -> Vec<ReceivedBody> {
        lock(&self.bodies).clone()
    }
}

impl Deref for RecordUpload {
    type Target = Server;

    fn deref(&self) -> &Server {
        &self.server
    }
}

fn lock(bodies: &Mutex<Vec<ReceivedBody>>) -> std::sync::MutexGuard<'_, Vec<ReceivedBody>> {
    bodies
        .lock()
        .expect("recorded bodies poisoned by a panicking connection handler")
}
