//! An HTTP/2 server over plain TCP (h2c with prior knowledge) that writes
//! the frames a test scripts for each request: response headers, data,
//! stream resets, GOAWAY frames, pauses and closes.
//!
//! It speaks just enough HTTP/2 for reqwest's client. It acknowledges
//! SETTINGS and PING, counts each HEADERS frame as a request, and ignores the
//! rest.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::Mutex;
use tokio::task::JoinSet;

use super::server::{bind_loopback, Accepted, Server};

const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;

const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;

/// HTTP/2 error codes (RFC 9113, section 7) that the tests send.
pub mod code {
    pub const NO_ERROR: u32 = 0x0;
    pub const PROTOCOL_ERROR: u32 = 0x1;
    pub const REFUSED_STREAM: u32 = 0x7;
    pub const CANCEL: u32 = 0x8;
}

/// One step of the server's response to a request.
#[derive(Debug, Clone)]
pub enum Act {
    /// Response headers with this status and `content-length`. `end` ends
    /// the stream.
    Head {
        status: u16,
        content_length: Option<usize>,
        end: bool,
    },
    /// This many bytes of data. `end` ends the stream.
    Data {
        len: usize,
        end: bool,
    },
    /// RST_STREAM with this code.
    Reset(u32),
    /// GOAWAY with this code, whose last stream id is this request's stream
    /// id plus `offset`.
    GoAway {
        offset: i64,
        code: u32,
    },
    Pause(Duration),
    /// Closes the connection.
    Close,
}

/// The acts for the request with this 0-based index, across connections.
pub type Script = Arc<dyn Fn(usize) -> Vec<Act> + Send + Sync>;

/// Returns the acts of a complete `200` response with a body of `len` bytes.
pub fn ok_acts(len: usize) -> Vec<Act> {
    vec![
        Act::Head {
            status: 200,
            content_length: Some(len),
            end: false,
        },
        Act::Data { len, end: true },
    ]
}

/// Starts the server. The first `silent` connections read every frame and
/// acknowledge none, not even PING, as a connection that stopped working does.
pub async fn start(
    script: impl Fn(usize) -> Vec<Act> + Send + Sync + 'static,
    silent: usize,
) -> Server {
    let script: Script = Arc::new(script);
    Server::spawn(bind_loopback().await, move |accepted: Accepted| {
        let is_silent = accepted.index < silent;
        serve(accepted, Arc::clone(&script), is_silent)
    })
}

async fn serve(accepted: Accepted, script: Script, silent: bool) {
    let (mut reader, writer) = accepted.stream.into_split();
    let writer = Arc::new(Mutex::new(writer));
    let mut preface = [0u8; 24];
    if reader.read_exact(&mut preface).await.is_err() {
        return;
    }
    write(&writer, frame(SETTINGS, 0, 0, &[])).await;
    let mut streams = JoinSet::new();
    // Bounded, so that a client that never stops sending ends the loop.
    for _ in 0..10_000 {
        let mut head = [0u8; 9];
        if reader.read_exact(&mut head).await.is_err() {
            return;
        }
        let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
        let (kind, flags) = (head[3], head[4]);
        let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        let mut payload = vec![0u8; len];
        if reader.read_exact(&mut payload).await.is_err() {
            return;
        }
        match kind {
            HEADERS => {
                let index = accepted.stats.record_request();
                if !silent {
                    streams.spawn(run(Arc::clone(&writer), stream, script(index)));
                }
            }
            _ if silent => {}
            SETTINGS if flags & ACK == 0 => write(&writer, frame(SETTINGS, ACK, 0, &[])).await,
            PING if flags & ACK == 0 => write(&writer, frame(PING, ACK, 0, &payload)).await,
            _ => {}
        }
    }
}

async fn run(writer: Arc<Mutex<OwnedWriteHalf>>, stream: u32, acts: Vec<Act>) {
    for act in acts {
        match act {
            Act::Head {
                status,
                content_length,
                end,
            } => {
                let flags = END_HEADERS | if end { END_STREAM } else { 0 };
                let block = header_block(status, content_length);
                write(&writer, frame(HEADERS, flags, stream, &block)).await;
            }
            Act::Data { len, end } => {
                let flags = if end { END_STREAM } else { 0 };
                write(&writer, frame(DATA, flags, stream, &vec![b'x'; len])).await;
            }
            Act::Reset(code) => {
                write(&writer, frame(RST_STREAM, 0, stream, &code.to_be_bytes())).await;
            }
            Act::GoAway { offset, code } => {
                let last = u32::try_from((i64::from(stream) + offset).max(0)).unwrap_or(0);
                let mut payload = last.to_be_bytes().to_vec();
                payload.extend_from_slice(&code.to_be_bytes());
                write(&writer, frame(GOAWAY, 0, 0, &payload)).await;
            }
            Act::Pause(duration) => tokio::time::sleep(duration).await,
            Act::Close => {
                let _ = writer.lock().await.shutdown().await;
                return;
            }
        }
    }
}

async fn write(writer: &Mutex<OwnedWriteHalf>, bytes: Vec<u8>) {
    // The client may have gone, and the test reads what it saw.
    let _ = writer.lock().await.write_all(&bytes).await;
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    // The frame header holds the length in 24 bits.
    assert!(
        payload.len() < 1 << 24,
        "an HTTP/2 frame holds less than 16 MiB"
    );
    let len = u32::try_from(payload.len()).expect("checked above");
    let mut frame = len.to_be_bytes()[1..].to_vec();
    frame.extend_from_slice(&[kind, flags]);
    frame.extend_from_slice(&stream.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// Returns an HPACK block with `:status` and, when given, `content-length`,
/// as literals without indexing or Huffman coding.
fn header_block(status: u16, content_length: Option<usize>) -> Vec<u8> {
    // Static table indexes: 8 is `:status`, 28 is `content-length`, which
    // takes a 4-bit prefix of 15 and a continuation byte of 13.
    let mut block = vec![0x08];
    push_string(&mut block, &status.to_string());
    if let Some(len) = content_length {
        block.extend_from_slice(&[0x0f, 28 - 15]);
        push_string(&mut block, &len.to_string());
    }
    block
}

fn push_string(block: &mut Vec<u8>, value: &str) {
    block.push(u8::try_from(value.len()).expect("a short header value"));
    block.extend_from_slice(value.as_bytes());
}
