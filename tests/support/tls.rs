//! Servers on an `https://` URL that do not complete a TLS handshake.

use std::ops::Deref;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::http::response;
use super::server::{bind_loopback, Server};

/// Maximum wait for the client to close after [`PlainOnTls`] responded, before the server drops the socket.
const DRAIN_LIMIT: Duration = Duration::from_secs(2);

/// Simulates a TLS endpoint that hangs in the handshake: accepts TCP, reads the
/// ClientHello and everything after it, and never sends a byte.
#[derive(Debug)]
pub struct TlsSilent {
    server: Server,
    received: Arc<AtomicUsize>,
}

impl TlsSilent {
    /// Starts the server on a free loopback port.
    pub async fn start() -> Self {
        let received = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&received);
        let server = Server::spawn(bind_loopback().await, move |mut connection| {
            let counter = Arc::clone(&counter);
            async move {
                let mut buf = [0u8; 4096];
                loop {
                    match connection.stream.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(read) => {
                            counter.fetch_add(read, Ordering::SeqCst);
                        }
                    }
                }
                connection.stats.record_close();
            }
        });
        Self { server, received }
    }

    /// Total bytes received from clients, across all connections.
    pub fn received_bytes(&self) -> usize {
        self.received.load(Ordering::SeqCst)
    }
}

impl Deref for TlsSilent {
    type Target = Server;

    fn deref(&self) -> &Server {
        &self.server
    }
}

/// Simulates a plain-HTTP server behind an `https://` URL: responds to the first bytes it
/// receives, such as a ClientHello, with `400 Bad Request` in plain text and closes.
#[derive(Debug)]
pub struct PlainOnTls {
    server: Server,
}

impl PlainOnTls {
    /// Starts the server on a free loopback port.
    pub async fn start() -> Self {
        let server = Server::spawn(bind_loopback().await, |mut connection| async move {
            let mut buf = [0u8; 4096];
            match connection.stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let reply = response("400 Bad Request", &[("Connection", "close")], b"");
            if connection.stream.write_all(&reply).await.is_err() {
                return;
            }
            let _ = connection.stream.shutdown().await;

            // Reading until the client closes avoids an RST caused by closing with unread bytes.
            let drain = async {
                while let Ok(read) = connection.stream.read(&mut buf).await {
                    if read == 0 {
                        break;
                    }
                }
            };
            let _ = tokio::time::timeout(DRAIN_LIMIT, drain).await;
        });
        Self { server }
    }
}

impl Deref for PlainOnTls {
    type Target = Server;

    fn deref(&self) -> &Server {
        &self.server
    }
}

/// A TLS 1.2 fatal alert record, "unexpected message", as a TLS server sends it
/// when the first bytes it receives are not a ClientHello.
pub const TLS_ALERT: &[u8] = &[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x0a];

/// Simulates a TLS-only port behind an `http://` URL: answers the plain request with
/// a TLS alert record and closes.
#[derive(Debug)]
pub struct TlsOnPlain {
    server: Server,
}

impl TlsOnPlain {
    /// Starts the server on a free loopback port.
    pub async fn start() -> Self {
        let server = Server::spawn(bind_loopback().await, |mut connection| async move {
            let mut buf = [0u8; 4096];
            match connection.stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            connection.stats.record_request();
            if connection.stream.write_all(TLS_ALERT).await.is_err() {
                return;
            }
            let _ = connection.stream.shutdown().await;
            let drain = async {
                while let Ok(read) = connection.stream.read(&mut buf).await {
                    if read == 0 {
                        break;
                    }
                }
            };
            let _ = tokio::time::timeout(DRAIN_LIMIT, drain).await;
        });
        Self { server }
    }
}

impl Deref for TlsOnPlain {
    type Target = Server;

    fn deref(&self) -> &Server {
        &self.server
    }
}
