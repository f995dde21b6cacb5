//! Minimal HTTP/1.1 request reading and response building for the raw TCP fixtures.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt};

/// Upper bound on a request head, so a client that never sends `\r\n\r\n` cannot grow the buffer forever.
const MAX_HEAD_LEN: usize = 64 * 1024;

/// Parsed start line and the one header the fixtures need.
#[derive(Debug, Clone)]
pub struct RequestHead {
    /// Request method, such as `GET`.
    pub method: String,
    /// Request target as sent, such as `/path?query`.
    pub target: String,
    /// Value of `Content-Length`, or 0 when the header is absent.
    pub content_length: usize,
    /// Whether `Transfer-Encoding` ends in `chunked`.
    pub chunked: bool,
    /// The head bytes, up to and including the blank line.
    pub raw: Vec<u8>,
}

/// Per-connection buffer that splits the byte stream into request heads.
///
/// Bytes read past one head stay buffered for the next call, so keep-alive
/// connections that send several requests are parsed correctly.
#[derive(Debug, Default)]
pub struct RequestReader {
    buf: Vec<u8>,
}

impl RequestReader {
    /// Creates a reader with an empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads one request head, ending in `\r\n\r\n`.
    ///
    /// Returns `Ok(None)` when the client closes the connection before a full head arrives.
    pub async fn read_head<S>(&mut self, stream: &mut S) -> io::Result<Option<RequestHead>>
    where
        S: AsyncRead + Unpin,
    {
        loop {
            if let Some(end) = find_head_end(&self.buf) {
                let raw: Vec<u8> = self.buf.drain(..end).collect();
                return parse_head(raw).map(Some);
            }
            if self.buf.len() > MAX_HEAD_LEN {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("request head exceeds {MAX_HEAD_LEN} bytes without a blank line"),
                ));
            }
            if self.fill(stream).await? == 0 {
                return Ok(None);
            }
        }
    }

    /// Reads one request head and then discards its `Content-Length` body.
    ///
    /// Returns `Ok(None)` when the client closes the connection before a full head arrives,
    /// and an `UnexpectedEof` error when it closes in the middle of the body.
    /// NOTE: chunked request bodies are not supported; their bytes would be parsed as the next head.
    pub async fn read_request<S>(&mut self, stream: &mut S) -> io::Result<Option<RequestHead>>
    where
        S: AsyncRead + Unpin,
    {
        let Some(head) = self.read_head(stream).await? else {
            return Ok(None);
        };
        while self.buf.len() < head.content_length {
            if self.fill(stream).await? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "client closed after {} of {} body bytes",
                        self.buf.len(),
                        head.content_length
                    ),
                ));
            }
        }
        self.buf.drain(..head.content_length);
        Ok(Some(head))
    }

    /// Reads the body of the request with `head`: `Content-Length` bytes, or the chunks of a
    /// chunked body up to its last chunk and trailer fields.
    ///
    /// Returns the decoded bytes that arrived and whether the body ended where its framing
    /// specifies. A body that the client cuts off by closing or resetting the connection, or
    /// whose chunk framing is invalid, returns false.
    pub async fn read_body<S>(&mut self, stream: &mut S, head: &RequestHead) -> (Vec<u8>, bool)
    where
        S: AsyncRead + Unpin,
    {
        if head.chunked {
            let mut body = Vec::new();
            let complete = self.read_chunks(stream, &mut body).await.unwrap_or(false);
            return (body, complete);
        }
        let complete = self.fill_to(stream, head.content_length).await;
        let len = head.content_length.min(self.buf.len());
        (self.buf.drain(..len).collect(), complete)
    }

    /// Decodes chunks into `body` until the last chunk and its trailer fields have arrived
    /// (`Ok(true)`), or the connection ends first (`Ok(false)`). An invalid chunk size is an
    /// `InvalidData` error.
    async fn read_chunks<S>(&mut self, stream: &mut S, body: &mut Vec<u8>) -> io::Result<bool>
    where
        S: AsyncRead + Unpin,
    {
        loop {
            let Some(line) = self.read_line(stream).await? else {
                return Ok(false);
            };
            let size_text = line.split(';').next().unwrap_or_default().trim();
            let size = usize::from_str_radix(size_text, 16).map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("invalid chunk size line {line:?}"),
                )
            })?;
            if size == 0 {
                // The trailer section ends with an empty line.
                loop {
                    match self.read_line(stream).await? {
                        Some(line) if line.is_empty() => return Ok(true),
                        Some(_trailer_field) => continue,
                        None => return Ok(false),
                    }
                }
            }
            let complete = self.fill_to(stream, size + 2).await;
            let len = size.min(self.buf.len());
            body.extend(self.buf.drain(..len));
            if !complete {
                return Ok(false);
            }
            self.buf.drain(..2);
        }
    }

    /// Reads one line ending in `\r\n` and returns it without the line ending, or `None` when
    /// the connection ends first.
    async fn read_line<S>(&mut self, stream: &mut S) -> io::Result<Option<String>>
    where
        S: AsyncRead + Unpin,
    {
        loop {
            if let Some(end) = self.buf.windows(2).position(|window| window == b"\r\n") {
                let line: Vec<u8> = self.buf.drain(..end + 2).take(end).collect();
                return Ok(Some(String::from_utf8_lossy(&line).into_owned()));
            }
            if self.fill(stream).await? == 0 {
                return Ok(None);
            }
        }
    }

    /// Reads until at least `len` bytes are buffered. Returns false when the connection ends
    /// or fails first.
    async fn fill_to<S>(&mut self, stream: &mut S, len: usize) -> bool
    where
        S: AsyncRead + Unpin,
    {
        while self.buf.len() < len {
            if !matches!(self.fill(stream).await, Ok(read) if read > 0) {
                return false;
            }
        }
        true
    }

    async fn fill<S>(&mut self, stream: &mut S) -> io::Result<usize>
    where
        S: AsyncRead + Unpin,
    {
        let mut chunk = [0u8; 8192];
        let read = stream.read(&mut chunk).await?;
        self.buf.extend_from_slice(&chunk[..read]);
        Ok(read)
    }
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4)
        .position(|window| window == b"\r\n\r\n")
        .map(|position| position + 4)
}

fn parse_head(raw: Vec<u8>) -> io::Result<RequestHead> {
    let text = String::from_utf8_lossy(&raw);
    let mut lines = text.split("\r\n");
    let start_line = lines.next().unwrap_or_default();
    let mut parts = start_line.split(' ');
    let method = parts.next().unwrap_or_default().to_owned();
    let target = parts.next().unwrap_or_default().to_owned();

    let mut content_length = 0;
    let mut chunked = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if name.trim().eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.trim().to_ascii_lowercase().ends_with("chunked");
        }
        if name.trim().eq_ignore_ascii_case("content-length") {
            content_length = value.trim().parse().map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("invalid Content-Length value {value:?}"),
                )
            })?;
        }
    }

    Ok(RequestHead {
        method,
        target,
        content_length,
        chunked,
        raw,
    })
}

/// Builds a raw HTTP/1.1 response with a `Content-Length` matching `body`.
///
/// `status` is the part of the status line after the version, such as `"503 Service Unavailable"`.
pub fn response(status: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut head = format!("HTTP/1.1 {status}\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));

    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// Builds a `200 OK` response carrying `body`.
pub fn ok(body: &[u8]) -> Vec<u8> {
    response("200 OK", &[], body)
}
