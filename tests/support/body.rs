//! Servers that send a valid response head and then deliver the body slowly or never finish it.

use std::ops::Deref;
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use super::http::RequestReader;
use super::server::{bind_loopback, hold_until_client_closes, Accepted, Server};

/// Simulates a backend that stops mid-body: announces 100 bytes, sends 10, then goes silent
/// with the socket left open.
#[derive(Debug)]
pub struct PartialBody {
    server: Server,
}

impl PartialBody {
    /// Body length announced in `Content-Length`.
    pub const CONTENT_LENGTH: usize = 100;
    /// Body bytes actually sent before the server goes silent.
    pub const SENT_LEN: usize = 10;

    /// Starts the server on a free loopback port.
    pub async fn start() -> Self {
        let server = Server::spawn(bind_loopback().await, |mut connection| async move {
            if !read_one_request(&mut connection).await {
                return;
            }
            let mut bytes = body_head(Self::CONTENT_LENGTH);
            bytes.extend(std::iter::repeat_n(b'x', Self::SENT_LEN));
            if connection.stream.write_all(&bytes).await.is_ok() {
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

/// Simulates a trickling backend: announces `len` body bytes, then sends one byte after each `interval`.
#[derive(Debug)]
pub struct Drip {
    server: Server,
}

impl Drip {
    /// Starts the server on a free loopback port.
    ///
    /// The first body byte is sent one `interval` after the head, so the whole body
    /// takes about `len * interval`.
    pub async fn start(len: usize, interval: Duration) -> Self {
        let server = Server::spawn(bind_loopback().await, move |mut connection| async move {
            if !read_one_request(&mut connection).await {
                return;
            }
            if connection.stream.write_all(&body_head(len)).await.is_err() {
                return;
            }
            for _ in 0..len {
                tokio::time::sleep(interval).await;
                if connection.stream.write_all(b"x").await.is_err() {
                    connection.stats.record_close();
                    return;
                }
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

    /// Starts the server on a free loopback port.
    pub async fn start() -> Self {
        let server = Server::spawn(bind_loopback().await, |mut connection| async move {
            if !read_one_request(&mut connection).await {
                return;
            }
            if connection
                .stream
                .write_all(&body_head(Self::BODY_LEN))
                .await
                .is_err()
            {
                return;
            }
            let chunk = vec![b'x'; Self::CHUNK_LEN];
            for _ in 0..Self::BODY_LEN / Self::CHUNK_LEN {
                if connection.stream.write_all(&chunk).await.is_err() {
                    connection.stats.record_close();
                    return;
                }
                tokio::time::sleep(Self::CHUNK_INTERVAL).await;
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

/// Head of a `200 OK` response that announces `len` body bytes.
fn body_head(len: usize) -> Vec<u8> {
    format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n\r\n").into_bytes()
}
