//! HTTP/2 stream resets and GOAWAY frames, read from h2's error, which hyper
//! passes on as the source of its own.
//!
//! reqwest 0.13 reports a stream that the server ended as
//! `hyper::Error(Http2, h2::Error)`, before the headers as well as in the
//! body. Only h2's error carries the code, and only through its own type, so
//! reading it takes the `http2` feature. h2's error has no source: when it
//! wraps an I/O error, such as a connection closed mid-body, that error is
//! reached with [`io_error`].

use std::error::Error as StdError;
use std::io;

use crate::diagnosis::Diagnosis;

/// The codes of RFC 9113, section 7, that the rules below name.
mod code {
    pub(super) const NO_ERROR: u32 = 0x0;
    pub(super) const REFUSED_STREAM: u32 = 0x7;
    pub(super) const ENHANCE_YOUR_CALM: u32 = 0xb;
    pub(super) const INADEQUATE_SECURITY: u32 = 0xc;
    pub(super) const HTTP_1_1_REQUIRED: u32 = 0xd;
}

/// The frame that ended an HTTP/2 stream, and the side that sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StreamEnd {
    /// A GOAWAY frame, which ends the connection. Otherwise a RST_STREAM
    /// frame, which ends one stream.
    go_away: bool,
    code: u32,
    /// Whether the server sent the frame. Otherwise the client's HTTP/2
    /// layer ended the stream, most often because the server's frames broke
    /// the protocol.
    by_server: bool,
}

/// The diagnosis of an attempt that a [`StreamEnd`] ended, and whether to
/// retry it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Verdict {
    pub(crate) diagnosis: Diagnosis,
    /// Whether another attempt, on a new stream, may succeed.
    pub(crate) retryable: bool,
    pub(crate) evidence: String,
}

impl StreamEnd {
    /// Reads the stream's end from `source` when it is h2's error for a
    /// reset or a GOAWAY.
    #[cfg(feature = "http2")]
    pub(crate) fn read(source: &(dyn StdError + 'static)) -> Option<Self> {
        let error = source.downcast_ref::<h2::Error>()?;
        if !error.is_reset() && !error.is_go_away() {
            return None;
        }
        Some(StreamEnd {
            go_away: error.is_go_away(),
            code: u32::from(error.reason()?),
            by_server: error.is_remote(),
        })
    }

    /// Without the `http2` feature, h2's error is not read.
    #[cfg(not(feature = "http2"))]
    pub(crate) fn read(_source: &(dyn StdError + 'static)) -> Option<Self> {
        None
    }

    /// Returns the verdict on the attempt that this frame ended, `in_body`
    /// when the response headers had arrived, and `https` when the
    /// connection uses TLS.
    pub(crate) fn verdict(self, in_body: bool, https: bool) -> Verdict {
        let name = code_name(self.code);
        let frame = if self.go_away {
            "closed the HTTP/2 connection (GOAWAY)"
        } else {
            "reset the HTTP/2 stream (RST_STREAM)"
        };
        if !self.by_server {
            // As over HTTP/1, a malformed response head is final, and a body
            // that breaks off, such as one shorter than its Content-Length,
            // is a closed connection.
            let (diagnosis, retryable) = if in_body {
                (Diagnosis::ConnectionClosed, true)
            } else {
                (Diagnosis::Other, false)
            };
            return Verdict {
                diagnosis,
                retryable,
                evidence: format!(
                    "the client {frame} with {name}, because the server's frames broke the HTTP/2 protocol, for instance with a body shorter than its Content-Length; the source error has the detail"
                ),
            };
        }
        let (diagnosis, retryable, evidence) = match self.code {
            code::REFUSED_STREAM if !self.go_away && !in_body => (
                Diagnosis::StreamRefused,
                true,
                "the server refused the HTTP/2 stream (REFUSED_STREAM), which by RFC 9113 means that it did not process the request; reqwest's default retry policy sends such a request again by itself, so the server may have refused it more than once".to_owned(),
            ),
            code::NO_ERROR if self.go_away => (
                Diagnosis::ConnectionClosed,
                true,
                "the server shut the HTTP/2 connection down (GOAWAY with NO_ERROR) before it processed this request, as a server does when it restarts or retires connections".to_owned(),
            ),
            code::HTTP_1_1_REQUIRED => (
                Diagnosis::Other,
                false,
                format!("the server {frame} with HTTP_1_1_REQUIRED: it serves this request only over HTTP/1.1, so build the client with `http1_only()` for this host"),
            ),
            code::INADEQUATE_SECURITY if https => (
                Diagnosis::TlsFailed,
                false,
                format!("the server {frame} with INADEQUATE_SECURITY: it rejects the TLS version or cipher suite that the connection uses for HTTP/2"),
            ),
            code::INADEQUATE_SECURITY => (
                Diagnosis::Other,
                false,
                format!("the server {frame} with INADEQUATE_SECURITY: it serves HTTP/2 only over TLS, so use https://"),
            ),
            code::ENHANCE_YOUR_CALM => (
                Diagnosis::ConnectionClosed,
                true,
                format!("the server {frame} with ENHANCE_YOUR_CALM: it takes the client's traffic for abuse, so send fewer requests or streams at once"),
            ),
            _ => (
                Diagnosis::ConnectionClosed,
                true,
                format!("the server {frame} with {name}"),
            ),
        };
        Verdict {
            diagnosis,
            retryable,
            evidence,
        }
    }
}

/// Returns the I/O error that h2's error wraps, which its `source` does not
/// return.
#[cfg(feature = "http2")]
pub(crate) fn io_error<'a>(source: &'a (dyn StdError + 'static)) -> Option<&'a io::Error> {
    source.downcast_ref::<h2::Error>()?.get_io()
}

/// Without the `http2` feature, h2's error is not read.
#[cfg(not(feature = "http2"))]
pub(crate) fn io_error<'a>(_source: &'a (dyn StdError + 'static)) -> Option<&'a io::Error> {
    None
}

/// Returns the name that RFC 9113 gives an error code.
fn code_name(code: u32) -> String {
    const NAMES: [&str; 14] = [
        "NO_ERROR",
        "PROTOCOL_ERROR",
        "INTERNAL_ERROR",
        "FLOW_CONTROL_ERROR",
        "SETTINGS_TIMEOUT",
        "STREAM_CLOSED",
        "FRAME_SIZE_ERROR",
        "REFUSED_STREAM",
        "CANCEL",
        "COMPRESSION_ERROR",
        "CONNECT_ERROR",
        "ENHANCE_YOUR_CALM",
        "INADEQUATE_SECURITY",
        "HTTP_1_1_REQUIRED",
    ];
    usize::try_from(code)
        .ok()
        .and_then(|index| NAMES.get(index))
        .map_or_else(
            || format!("error code {code:#x}"),
            |name| (*name).to_owned(),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent_by_server(go_away: bool, code: u32) -> StreamEnd {
        StreamEnd {
            go_away,
            code,
            by_server: true,
        }
    }

    #[test]
    fn refused_stream_before_headers_is_retried_as_refused() {
        let verdict = sent_by_server(false, code::REFUSED_STREAM).verdict(false, false);

        assert_eq!(verdict.diagnosis, Diagnosis::StreamRefused);
        assert!(verdict.retryable);
        assert!(
            verdict.evidence.contains("REFUSED_STREAM"),
            "{}",
            verdict.evidence
        );
    }

    #[test]
    fn graceful_go_away_is_retryable_close() {
        let verdict = sent_by_server(true, code::NO_ERROR).verdict(false, false);

        assert_eq!(verdict.diagnosis, Diagnosis::ConnectionClosed);
        assert!(verdict.retryable);
        assert!(
            verdict.evidence.contains("GOAWAY with NO_ERROR"),
            "{}",
            verdict.evidence
        );
    }

    #[test]
    fn reset_mid_body_names_its_code() {
        let verdict = sent_by_server(false, 0x8).verdict(true, false);

        assert_eq!(verdict.diagnosis, Diagnosis::ConnectionClosed);
        assert!(verdict.retryable);
        assert_eq!(
            verdict.evidence,
            "the server reset the HTTP/2 stream (RST_STREAM) with CANCEL"
        );
    }

    #[test]
    fn http1_required_is_final_and_names_the_fix() {
        let verdict = sent_by_server(true, code::HTTP_1_1_REQUIRED).verdict(false, false);

        assert_eq!(verdict.diagnosis, Diagnosis::Other);
        assert!(!verdict.retryable);
        assert!(
            verdict.evidence.contains("http1_only()"),
            "{}",
            verdict.evidence
        );
    }

    #[test]
    fn end_by_the_client_before_headers_is_final() {
        let end = StreamEnd {
            go_away: false,
            code: 0x1,
            by_server: false,
        };

        let verdict = end.verdict(false, false);

        assert_eq!(verdict.diagnosis, Diagnosis::Other);
        assert!(!verdict.retryable);
        assert!(
            verdict.evidence.contains("PROTOCOL_ERROR"),
            "{}",
            verdict.evidence
        );
    }

    #[test]
    fn client_end_in_body_is_close() {
        let end = StreamEnd {
            go_away: false,
            code: 0x1,
            by_server: false,
        };

        let verdict = end.verdict(true, false);

        assert_eq!(verdict.diagnosis, Diagnosis::ConnectionClosed);
        assert!(verdict.retryable);
        assert!(
            verdict.evidence.contains("shorter than its Content-Length"),
            "{}",
            verdict.evidence
        );
    }

    #[test]
    fn inadequate_security_blames_tls_only_over_tls() {
        let end = sent_by_server(true, code::INADEQUATE_SECURITY);

        let over_tls = end.verdict(false, true);
        let over_plain = end.verdict(false, false);

        assert_eq!(over_tls.diagnosis, Diagnosis::TlsFailed);
        assert!(!over_tls.retryable);
        assert_eq!(over_plain.diagnosis, Diagnosis::Other);
        assert!(!over_plain.retryable);
        assert!(
            over_plain.evidence.contains("https://"),
            "{}",
            over_plain.evidence
        );
    }

    #[test]
    fn unknown_codes_are_shown_in_hex() {
        assert_eq!(code_name(0x1f), "error code 0x1f");
        assert_eq!(code_name(u32::MAX), "error code 0xffffffff");
        assert_eq!(code_name(0xb), "ENHANCE_YOUR_CALM");
    }

    #[cfg(feature = "http2")]
    #[test]
    fn protocol_errors_without_a_frame_are_not_read() {
        let error: h2::Error = h2::Reason::REFUSED_STREAM.into();

        assert_eq!(StreamEnd::read(&error), None);
        assert!(io_error(&error).is_none());
    }
}
