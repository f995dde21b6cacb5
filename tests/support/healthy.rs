//! A well-behaved server, used on its own and as the recovered state of the flaky fixtures.

use std::net::SocketAddr;
use std::ops::Deref;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use super::http::{ok, RequestReader};
use super::server::{bind_loopback, Accepted, Server};

/// Body of every response from a healthy server.
pub const HEALTHY_BODY: &[u8] = b"ok";

/// Simulates a working server: responds to every request with `200 OK` and body `ok`, keeping connections alive.
#[derive(Debug)]
pub struct Healthy {
    server: Server,
}

impl Healthy {
    /// Starts the server on a free loopback port.
    pub async fn start() -> Self {
        Self::on_listener(bind_loopback().await)
    }

    /// Starts the server on `addr`, such as a port returned earlier by [`super::closed_port`].
    pub async fn start_on(addr: SocketAddr) -> Self {
        let listener = TcpListener::bind(addr)
            .await
            .unwrap_or_else(|error| panic!("failed to bind the healthy server on {addr}: {error}"));
        Self::on_listener(listener)
    }

    fn on_listener(listener: TcpListener) -> Self {
        Self {
            server: Server::spawn(listener, serve_healthy),
        }
    }
}

impl Deref for Healthy {
    type Target = Server;

    fn deref(&self) -> &Server {
        &self.server
    }
}

/// Responds to each request on the connection with `200 OK` and body `ok` until the client closes it.
pub async fn serve_healthy(mut connection: Accepted) {
    let mut reader = RequestReader::new();
    while let Ok(Some(_head)) = reader.read_request(&mut connection.stream).await {
        connection.stats.record_request();
        if connection
            .stream
            .write_all(&ok(HEALTHY_BODY))
            .await
            .is_err()
        {
            break;
        }
    }
    connection.stats.record_close();
}
