//! A scripted server that plays back canned responses in order.

use std::ops::Deref;
use std::sync::Arc;

use tokio::io::AsyncWriteExt;

use super::connect::closed_port;
use super::http::{response, RequestReader};
use super::server::{bind_loopback, Server};

/// Simulates a backend whose responses change over time: the n-th request, counted
/// across all connections, gets the n-th canned raw response, and the last one repeats.
///
/// Build responses with [`response`](super::response), for example a 503 with
/// `Retry-After: 1` followed by a 200. [`Server::request_times`] gives the arrival time of each request.
#[derive(Debug)]
pub struct Sequence {
    server: Server,
}

impl Sequence {
    /// Starts a server that redirects every request with `status` to a
    /// loopback port where nothing listens, and returns it with that port's
    /// address.
    pub async fn redirect_to_closed_port(status: &str) -> (Self, std::net::SocketAddr) {
        let closed = closed_port();
        let location = format!("http://{closed}/receipt");
        let server = Self::start(vec![response(status, &[("Location", &location)], b"")]).await;
        (server, closed)
    }

    /// Starts the server on a free loopback port. Panics if `responses` is empty.
    pub async fn start(responses: Vec<Vec<u8>>) -> Self {
        assert!(
            !responses.is_empty(),
            "Sequence needs at least one response"
        );
        let responses = Arc::new(responses);
        let server = Server::spawn(bind_loopback().await, move |mut connection| {
            let responses = Arc::clone(&responses);
            async move {
                let mut reader = RequestReader::new();
                while let Ok(Some(_head)) = reader.read_request(&mut connection.stream).await {
                    let index = connection.stats.record_request();
                    let reply = &responses[index.min(responses.len() - 1)];
                    if connection.stream.write_all(reply).await.is_err() {
                        break;
                    }
                }
            }
        });
        Self { server }
    }
}

impl Deref for Sequence {
    type Target = Server;

    fn deref(&self) -> &Server {
        &self.server
    }
}
