//! Servers that send a valid response head and then deliver the body slowly, never finish it,
//! or break the connection in the middle of it.
//!
//! Each fixture frames its body with `Content-Length` or with chunked transfer encoding, as
//! chosen by [`Framing`]; `start()` without a framing means `Content-Length`.

use std::ops::Deref;
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use super::http::RequestReader;
use super::server::{bind_loopback, hold_until_client_closes, Accepted, Server};

/// How a fixture frames its response body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// A `Content-Length` header announces the body length.
    ContentLength,
    /// `Transfer-Encoding: chunked`; each write is one chunk, and the length is never announced.
    Chunked,
}

impl Framing {
    /// Both framings, for tests that run each case under each.
    pub const ALL: [Framing; 2] = [Framing::ContentLength, Framing::Chunked];

    /// Head of a `200 OK` response whose body is `len` bytes long.
    fn head(self, len: usize) -> Vec<u8> {
        match self {
            Framing::ContentLength => {
                format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n\r\n").into_bytes()
            }
            Framing::Chunked => b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec(),
        }
    }

    /// `data` as it goes on the wire: as is, or as one chunk.
    fn chunk(self, data: &[u8]) -> Vec<u8> {
        match self {
            Framing::ContentLength => data.to_vec(),
            Framing::Chunked => {
                let mut bytes = format!("{:x}\r\n", data.len()).into_bytes();
                bytes.extend_from_slice(data);
                bytes.extend_from_slice(b"\r\n");
                bytes
            }
        }
    }

    /// Bytes that end a complete body: nothing, or the last chunk.
    fn end(self) -> &'static [u8] {
        match self {
            Framing::ContentLength => b"",
            Framing::Chunked => b"0\r\n\r\n",
        }
    }

    /// Builds a whole `200 OK` response with a body of `len` bytes `x`.
    fn full_response(self, len: usize) -> Vec<u8> {
        let mut bytes = self.head(len);
        bytes.extend(self.chunk(&vec![b'x'; len]));
        bytes.extend_from_slice(self.end());
        bytes
    }
}

/// Body length that the partial-body fixtures announce, or send in full once they recover.
pub const FULL_BODY_LEN: usize = 100;
/// Body bytes that the partial-body fixtures send before they stall or break the connection.
pub const PARTIAL_BODY_LEN: usize = 10;

/// Simulates a backend that stops mid-body: announces 100 bytes, sends 10, then goes silent
/// with the socket left open.
#[derive(Debug)]
pub struct PartialBody {
    server: Server,
}

impl PartialBody {
    /// Body length announced in `Content-Length`.
    pub const CONTENT_LENGTH: usize = FULL_BODY_LEN;
    /// Body bytes actually sent before the server goes silent.
    pub const SENT_LEN: usize = PARTIAL_BODY_LEN;

    /// Starts the server on a free loopback port, framing the body with `Content-Length`.
    pub async fn start() -> Self {
        Self::start_with(Framing::ContentLength).await
    }

    /// Starts a server whose every connection stalls mid-body.
    pub async fn start_with(framing: Framing) -> Self {
        Self::failing(usize::MAX, framing).await
    }

    /// Starts a server that stalls mid-body on the first `failures` connections and sends the
    /// full 100-byte body on the rest.
    pub async fn failing(failures: usize, framing: Framing) -> Self {
        let server = Server::spawn(bind_loopback().await, move |mut connection| async move {
            if connection.index >= failures {
                return serve_full_body(connection, framing).await;
            }
            if !read_one_request(&mut connection).await {
                return;
            }
            if write_partial_body(&mut connection, framing).await {
                hold_until_client_closes(&mut connection.stream, &connection.stats).await;
            }
        });
        Self { server }
    }
}

impl Deref for PartialBody {
    type Target = Server;

    fn deref(&self) -> &Server {
        &self.server
    }
}

/// Simulates a backend that crashes mid-body: announces 100 bytes, sends 10, then closes
/// the connection with a FIN.
#[derive(Debug)]
pub struct CloseMidBody {
    server: Server,
}

impl CloseMidBody {
    /// Starts a server that closes every connection mid-body.
    pub async fn always(framing: Framing) -> Self {
        Self::failing(usize::MAX, framing).await
    }

    /// Starts a server that closes the first `failures` connections mid-body and sends the
    /// full 100-byte body on the rest.
    pub async fn failing(failures: usize, framing: Framing) -> Self {
        let server = Server::spawn(bind_loopback().await, move |mut connection| async move {
            if connection.index >= failures {
                return serve_full_body(connection, framing).await;
            }
            if !read_one_request(&mut connection).await {
                return;
            }
            if write_partial_body(&mut connection, framing).await {
                // A write error means the client already left, which is the outcome this
                // fixture forces anyway.
                let _ = connection.stream.shutdown().await;
                hold_until_client_closes(&mut connection.stream, &connection.stats).await;
            }
        });
        Self { server }
    }
}

impl Deref for CloseMidBody {
    type Target = Server;

    fn deref(&self) -> &Server {
        &self.server
    }
}

/// Simulates a backend or proxy that aborts mid-body: announces 100 bytes, sends 10, waits
/// [`ResetMidBody::RESET_DELAY`], then closes with `SO_LINGER` 0 so the client receives a
/// TCP RST.
///
/// The delay lets the client read the 10 bytes first; Linux discards received data that the
/// client has not read when the RST arrives, so a loaded client may still see fewer.
#[derive(Debug)]
pub struct ResetMidBody {
    server: Server,
}

impl ResetMidBody {
    /// Wait between the partial body and the reset.
    pub const RESET_DELAY: Duration = Duration::from_millis(100);

    /// Starts a server that resets every connection mid-body.
    pub async fn always(framing: Framing) -> Self {
        let server = Server::spawn(bind_loopback().await, move |mut connection| async move {
            if !read_one_request(&mut connection).await {
                return;
            }
            if write_partial_body(&mut connection, framing).await {
                tokio::time::sleep(Self::RESET_DELAY).await;
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

impl Deref for ResetMidBody {
    type Target = Server;

    fn deref(&self) -> &Server {
        &self.server
    }
}

/// Simulates a trickling backend: announces `len` body bytes, then sends one byte after each `interval`.
#[derive(Debug)]
pub struct Drip {
    server: Server,
}

impl Drip {
    /// Starts the server on a free loopback port, framing the body with `Content-Length`.
    ///
    /// The first body byte is sent one `interval` after the head, so the whole body
    /// takes about `len * interval`.
    pub async fn start(len: usize, interval: Duration) -> Self {
        Self::start_with(len, interval, Framing::ContentLength).await
    }

    /// Starts the server with the given framing; with chunked framing each byte is one chunk.
    pub async fn start_with(len: usize, interval: Duration, framing: Framing) -> Self {
        let server = Server::spawn(bind_loopback().await, move |mut connection| async move {
            if !read_one_request(&mut connection).await {
                return;
            }
            if connection
                .stream
                .write_all(&framing.head(len))
                .await
                .is_err()
            {
                return;
            }
            let byte = framing.chunk(b"x");
            for _ in 0..len {
                tokio::time::sleep(interval).await;
                if connection.stream.write_all(&byte).await.is_err() {
                    connection.stats.record_close();
                    return;
                }
            }
            if connection.stream.write_all(framing.end()).await.is_err() {
                return;
            }
            hold_until_client_closes(&mut connection.stream, &connection.stats).await;
        });
        Self { server }
    }
}

impl Deref for Drip {
    type Target = Server;

    fn deref(&self) -> &Server {
        &self.server
    }
}

/// Simulates a slow but steady download: a 2 MiB body sent in 64 KiB chunks, one every 20 ms.
///
/// The server pauses 20 ms after each of the 32 chunks, so the body takes at least 640 ms to arrive.
#[derive(Debug)]
pub struct SlowSteady {
    server: Server,
}

impl SlowSteady {
    /// Total body length in bytes.
    pub const BODY_LEN: usize = 2 * 1024 * 1024;
    /// Bytes written per chunk.
    pub const CHUNK_LEN: usize = 64 * 1024;
    /// Pause after each chunk.
    pub const CHUNK_INTERVAL: Duration = Duration::from_millis(20);

    /// Starts the server on a free loopback port, framing the body with `Content-Length`.
    pub async fn start() -> Self {
        Self::start_with(Framing::ContentLength).await
    }

    /// Starts the server with the given framing; with chunked framing each 64 KiB write is one chunk.
    pub async fn start_with(framing: Framing) -> Self {
        let server = Server::spawn(bind_loopback().await, move |mut connection| async move {
            if !read_one_request(&mut connection).await {
                return;
            }
            if connection
                .stream
                .write_all(&framing.head(Self::BODY_LEN))
                .await
                .is_err()
            {
                return;
            }
            let chunk = framing.chunk(&vec![b'x'; Self::CHUNK_LEN]);
            for _ in 0..Self::BODY_LEN / Self::CHUNK_LEN {
                if connection.stream.write_all(&chunk).await.is_err() {
                    connection.stats.record_close();
                    return;
                }
                tokio::time::sleep(Self::CHUNK_INTERVAL).await;
            }
            if connection.stream.write_all(framing.end()).await.is_err() {
                return;
            }
            hold_until_client_closes(&mut connection.stream, &connection.stats).await;
        });
        Self { server }
    }
}

impl Deref for SlowSteady {
    type Target = Server;

    fn deref(&self) -> &Server {
        &self.server
    }
}

/// Reads one request and counts it. Returns false when the client closed or failed first.
async fn read_one_request(connection: &mut Accepted) -> bool {
    let mut reader = RequestReader::new();
    match reader.read_request(&mut connection.stream).await {
        Ok(Some(_head)) => {
            connection.stats.record_request();
            true
        }
        Ok(None) | Err(_) => false,
    }
}

/// Sends the head that announces [`FULL_BODY_LEN`] bytes and the first [`PARTIAL_BODY_LEN`]
/// of them. Returns false when the client already left.
async fn write_partial_body(connection: &mut Accepted, framing: Framing) -> bool {
    let mut bytes = framing.head(FULL_BODY_LEN);
    bytes.extend(framing.chunk(&[b'x'; PARTIAL_BODY_LEN]));
    connection.stream.write_all(&bytes).await.is_ok()
}

/// Responds to each request on the connection with the full [`FULL_BODY_LEN`]-byte body
/// until the client closes it.
async fn serve_full_body(mut connection: Accepted, framing: Framing) {
    let mut reader = RequestReader::new();
    let reply = framing.full_response(FULL_BODY_LEN);
    while let Ok(Some(_head)) = reader.read_request(&mut connection.stream).await {
        connection.stats.record_request();
        if connection.stream.write_all(&reply).await.is_err() {
            break;
        }
    }
    connection.stats.record_close();
}
