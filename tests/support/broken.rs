//! Servers that break the connection for the first few connections, then behave.
//!
//! Each fixture misbehaves on connections with an index below its failure count and
//! serves the rest like [`Healthy`](super::Healthy), so "fails twice, then recovers"
//! is `failing(2)` and "always fails" is `always()`.

use std::ops::Deref;

use tokio::io::AsyncWriteExt;

use super::healthy::serve_healthy;
use super::http::RequestReader;
use super::server::{bind_loopback, Accepted, Server};

/// Bytes a [`TruncatedHead`] connection sends before closing: a status line and half a header.
pub const TRUNCATED_HEAD: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Len";

/// Simulates a backend that crashes while writing the response head: sends half a head, then closes.
#[derive(Debug)]
pub struct TruncatedHead {
    server: Server,
}

impl TruncatedHead {
    /// Starts a server whose every connection is truncated.
    pub async fn always() -> Self {
        Self::failing(usize::MAX).await
    }

    /// Starts a server that truncates the first `failures` connections and serves the rest.
    pub async fn failing(failures: usize) -> Self {
        let server = Server::spawn(bind_loopback().await, move |mut connection| async move {
            if connection.index >= failures {
                return serve_healthy(connection).await;
            }
            if read_one_head(&mut connection).await {
                // A write error means the client already left, which is the outcome this fixture forces anyway.
                let _ = connection.stream.write_all(TRUNCATED_HEAD).await;
                let _ = connection.stream.shutdown().await;
            }
        });
        Self { server }
    }
}

impl Deref for TruncatedHead {
    type Target = Server;

    fn deref(&self) -> &Server {
        &self.server
    }
}

/// Simulates a backend that aborts the connection: reads the request, then closes with
/// `SO_LINGER` 0 so the client receives a TCP RST instead of a FIN.
#[derive(Debug)]
pub struct Reset {
    server: Server,
}

impl Reset {
    /// Starts a server that resets every connection.
    pub async fn always() -> Self {
        Self::failing(usize::MAX).await
    }

    /// Starts a server that resets the first `failures` connections and serves the rest.
    pub async fn failing(failures: usize) -> Self {
        let server = Server::spawn(bind_loopback().await, move |mut connection| async move {
            if connection.index >= failures {
                return serve_healthy(connection).await;
            }
            if read_one_head(&mut connection).await {
                connection
                    .stream
                    .set_zero_linger()
                    .expect("failed to set SO_LINGER 0 on the reset fixture's socket");
            }
            // Dropping a socket with a zero linger time sends RST.
            drop(connection);
        });
        Self { server }
    }
}

impl Deref for Reset {
    type Target = Server;

    fn deref(&self) -> &Server {
        &self.server
    }
}

/// Simulates an overloaded or misconfigured proxy: accepts each connection and closes it at once,
/// without reading the request.
///
/// Whether the client sees a FIN or an RST depends on whether its request bytes
/// reached the socket before the close.
#[derive(Debug)]
pub struct AcceptClose {
    server: Server,
}

impl AcceptClose {
    /// Starts a server that closes every connection.
    pub async fn always() -> Self {
        Self::failing(usize::MAX).await
    }

    /// Starts a server that closes the first `failures` connections and serves the rest.
    pub async fn failing(failures: usize) -> Self {
        let server = Server::spawn(bind_loopback().await, move |connection| async move {
            if connection.index >= failures {
                serve_healthy(connection).await;
            }
        });
        Self { server }
    }
}

impl Deref for AcceptClose {
    type Target = Server;

    fn deref(&self) -> &Server {
        &self.server
    }
}

/// Reads one request head and counts it. Returns false when the client closed or failed first.
async fn read_one_head(connection: &mut Accepted) -> bool {
    let mut reader = RequestReader::new();
    match reader.read_head(&mut connection.stream).await {
        Ok(Some(_head)) => {
            connection.stats.record_request();
            true
        }
        Ok(None) | Err(_) => false,
    }
}
