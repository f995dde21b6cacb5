//! A server that goes silent after reading the request.

use std::ops::Deref;

use super::http::RequestReader;
use super::server::{bind_loopback, hold_until_client_closes, Server};

/// Simulates a hung backend: reads the request head, never writes, and keeps the socket open.
///
/// Records when the client closes each connection, so a test can check that a
/// cancelled call releases its socket promptly.
#[derive(Debug)]
pub struct StallHead {
    server: Server,
}

impl StallHead {
    /// Starts the server on a free loopback port.
    pub async fn start() -> Self {
        let server = Server::spawn(bind_loopback().await, |mut connection| async move {
            let mut reader = RequestReader::new();
            if let Ok(Some(_head)) = reader.read_head(&mut connection.stream).await {
                connection.stats.record_request();
            }
            hold_until_client_closes(&mut connection.stream, &connection.stats).await;
        });
        Self { server }
    }
}

impl Deref for StallHead {
    type Target = Server;

    fn deref(&self) -> &Server {
        &self.server
    }
}
