//! A server that closes an idle keep-alive connection just as the client reuses it.

use std::ops::Deref;

use tokio::io::AsyncWriteExt;

use super::http::{response, RequestReader};
use super::server::{bind_loopback, Server};

/// Simulates a server whose keep-alive timeout races the client's reuse: on each
/// connection it responds to the first request with `200 OK` and `Connection: keep-alive`,
/// then closes without a response when the second request arrives.
#[derive(Debug)]
pub struct KeepaliveThenClose {
    server: Server,
}

impl KeepaliveThenClose {
    /// Starts the server on a free loopback port.
    pub async fn start() -> Self {
        let server = Server::spawn(bind_loopback().await, |mut connection| async move {
            let mut reader = RequestReader::new();
            let Ok(Some(_first)) = reader.read_request(&mut connection.stream).await else {
                return;
            };
            connection.stats.record_request();
            let reply = response("200 OK", &[("Connection", "keep-alive")], b"ok");
            if connection.stream.write_all(&reply).await.is_err() {
                return;
            }

            if let Ok(Some(_second)) = reader.read_request(&mut connection.stream).await {
                connection.stats.record_request();
            }
            // Dropping the stream closes the connection with a FIN and no response.
        });
        Self { server }
    }
}

impl Deref for KeepaliveThenClose {
    type Target = Server;

    fn deref(&self) -> &Server {
        &self.server
    }
}
