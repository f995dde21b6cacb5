//! Tracking of the request body: how much of it the connection has taken, so
//! that a failure during the upload is reported in [`Phase::Send`] and the
//! response header timeout starts after the upload.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use reqwest::Request;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::progress::BodyProgress;
use super::rate;
use super::settings::BodySettings;
use crate::classify::Classified;
use crate::diagnosis::Diagnosis;
use crate::phase::Phase;

/// How much of a request body the connection has taken, shared between the
/// wrapped body, which the connection polls, and the middleware.
///
/// The counters are atomics that the body updates once per chunk; they are
/// read only when an attempt fails or the header timer needs them.
#[derive(Debug)]
pub(crate) struct UploadProgress {
    started: Instant,
    len: Option<u64>,
    sent: AtomicU64,
    /// Nanoseconds from `started` to when the connection took the last chunk.
    last_taken: AtomicU64,
    /// The maximum wait between two chunks, in nanoseconds, not counting the
    /// wait before the first one, which includes opening the connection.
    max_gap: AtomicU64,
    done_at: OnceLock<Instant>,
    done: Notify,
}

impl UploadProgress {
    pub(crate) fn new(started: Instant, len: Option<u64>) -> Self {
        UploadProgress {
            started,
            len,
            sent: AtomicU64::new(0),
            last_taken: AtomicU64::new(0),
            max_gap: AtomicU64::new(0),
            done_at: OnceLock::new(),
            done: Notify::new(),
        }
    }

    /// Returns how many bytes the connection has taken.
    pub(crate) fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Returns whether the connection has taken the whole body.
    pub(crate) fn is_done(&self) -> bool {
        self.done_at.get().is_some()
    }

    /// Waits until the connection has taken the whole body and returns when
    /// that happened. Never returns for a body that is not taken in full.
    pub(crate) async fn finished(&self) -> Instant {
        loop {
            if let Some(at) = self.done_at.get() {
                return *at;
            }
            // `notify_one` leaves a permit when no one waits yet, so a body
            // that ends between the check above and this wait is not missed.
            self.done.notified().await;
        }
    }

    fn progress(&self, now: Instant) -> BodyProgress {
        BodyProgress::new(
            self.sent(),
            self.len,
            now.saturating_duration_since(self.started),
        )
    }

    fn was_flowing(&self, now: Instant) -> bool {
        let since_start = now.saturating_duration_since(self.started);
        let last_taken = Duration::from_nanos(self.last_taken.load(Ordering::Relaxed));
        rate::was_flowing(
            self.sent() > 0,
            since_start.saturating_sub(last_taken),
            Duration::from_nanos(self.max_gap.load(Ordering::Relaxed)),
            since_start,
        )
    }

    fn take(&self, bytes: u64, now: Instant, gap: Option<Duration>) {
        self.sent.fetch_add(bytes, Ordering::Relaxed);
        self.last_taken.store(
            nanos(now.saturating_duration_since(self.started)),
            Ordering::Relaxed,
        );
        if let Some(gap) = gap {
            self.max_gap.fetch_max(nanos(gap), Ordering::Relaxed);
        }
    }

    /// Records that the connection has taken the whole body at `now`.
    pub(crate) fn finish(&self, now: Instant) {
        if self.done_at.set(now).is_ok() {
            self.done.notify_one();
        }
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// The largest piece of a request body handed to the connection at once.
///
/// A bytes body is a single frame, which hyper would take whole and then
/// write over time. In pieces, hyper takes the next one only when its write
/// buffer (about 408 KiB by default in hyper 1.13) has room. So the count of
/// bytes taken follows the bytes written. Splitting `Bytes` copies nothing.
const PIECE_LEN: usize = 64 * 1024;

/// A request body that reports to an [`UploadProgress`] as the connection
/// takes it.
#[derive(Debug)]
struct TrackedBody {
    inner: reqwest::Body,
    /// The rest of a frame larger than [`PIECE_LEN`].
    pending: Bytes,
    progress: Arc<UploadProgress>,
    last_taken: Option<Instant>,
}

impl TrackedBody {
    fn next_piece(&mut self) -> Bytes {
        let len = self.pending.len().min(PIECE_LEN);
        self.pending.split_to(len)
    }

    fn record_taken(&mut self, bytes: usize) {
        let now = Instant::now();
        let gap = self
            .last_taken
            .map(|last| now.saturating_duration_since(last));
        self.last_taken = Some(now);
        self.progress.take(bytes as u64, now, gap);
        // hyper stops polling once the body reports that it has ended.
        if self.is_end_stream() {
            self.progress.finish(now);
        }
    }
}

impl HttpBody for TrackedBody {
    type Data = Bytes;
    type Error = reqwest::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, reqwest::Error>>> {
        let this = self.get_mut();
        if this.pending.is_empty() {
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => this.pending = data,
                    Err(trailers) => return Poll::Ready(Some(Ok(trailers))),
                },
                Poll::Ready(None) => {
                    this.progress.finish(Instant::now());
                    return Poll::Ready(None);
                }
                other => return other,
            }
        }
        let piece = this.next_piece();
        this.record_taken(piece.len());
        Poll::Ready(Some(Ok(Frame::data(piece))))
    }

    fn size_hint(&self) -> SizeHint {
        let hint = self.inner.size_hint();
        let pending = self.pending.len() as u64;
        let mut total = SizeHint::new();
        total.set_lower(hint.lower().saturating_add(pending));
        if let Some(upper) = hint.upper() {
            total.set_upper(upper.saturating_add(pending));
        }
        total
    }

    fn is_end_stream(&self) -> bool {
        self.pending.is_empty() && self.inner.is_end_stream()
    }
}

/// Wraps the body of `request`, an attempt that starts at `started`, when
/// tracking is on and the body is not empty.
/// Bodies shorter than this are not tracked. They fit in the buffers of
/// the connection and the kernel, so the count of bytes taken would not show
/// a server that stops reading, and they stay cloneable for redirects.
pub(crate) const MIN_TRACKED_LEN: u64 = 64 * 1024;

pub(crate) fn track_upload(
    request: &mut Request,
    settings: &BodySettings,
    started: Instant,
) -> Option<Arc<UploadProgress>> {
    if !settings.track_request_body {
        return None;
    }
    let body = request.body_mut().take()?;
    let len = body.size_hint().exact();
    if len.is_some_and(|len| len < MIN_TRACKED_LEN) {
        *request.body_mut() = Some(body);
        return None;
    }
    let progress = Arc::new(UploadProgress::new(started, len));
    *request.body_mut() = Some(reqwest::Body::wrap(TrackedBody {
        inner: body,
        pending: Bytes::new(),
        progress: Arc::clone(&progress),
        last_taken: None,
    }));
    Some(progress)
}

/// Moves a failure that happened while the connection was still taking the
/// request body to [`Phase::Send`], with the bytes sent.
///
/// A failure before any byte of the body was taken stays where it was: the
/// connection may never have opened, and nothing shows that the request head
/// went out either. Once bytes went out, the server may have received the
/// request, so a non-idempotent request is not sent again.
pub(crate) fn refine_after_upload(
    mut classified: Classified,
    upload: Option<&UploadProgress>,
) -> Classified {
    let Some(upload) = upload else {
        return classified;
    };
    if upload.sent() == 0 {
        return classified;
    }
    classified.not_sent = false;
    if upload.is_done() || classified.failure.phase != Phase::Headers {
        return classified;
    }
    let now = Instant::now();
    classified.failure.phase = Phase::Send;
    classified.failure.note = None;
    if classified.failure.timed_out {
        classified.failure.diagnosis = if upload.was_flowing(now) {
            Diagnosis::TimeoutTooShort
        } else {
            Diagnosis::UploadStalled
        };
    }
    classified.failure.progress = Some(upload.progress(now));
    classified
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Failure;

    const MS: Duration = Duration::from_millis(1);

    fn timed_out_before_headers() -> Classified {
        Classified {
            failure: Failure {
                phase: Phase::Headers,
                diagnosis: Diagnosis::ServerStalled,
                timed_out: true,
                limit: None,
                note: None,
                source: None,
                progress: None,
                connect_addr: None,
                redirected: false,
                retryable: true,
                evidence: Vec::new(),
                probe: None,
            },
            not_sent: true,
        }
    }

    #[test]
    fn stalled_upload_moves_to_send() {
        let started = Instant::now() - 500 * MS;
        let upload = UploadProgress::new(started, Some(1_000));
        upload.take(400, started + 10 * MS, None);
        upload.take(100, started + 20 * MS, Some(10 * MS));

        let refined = refine_after_upload(timed_out_before_headers(), Some(&upload));

        assert_eq!(refined.failure.phase, Phase::Send);
        assert_eq!(refined.failure.diagnosis, Diagnosis::UploadStalled);
        assert!(!refined.not_sent);
        let progress = refined.failure.progress.unwrap();
        assert_eq!(progress.bytes(), 500);
        assert_eq!(progress.expected_len(), Some(1_000));
    }

    #[test]
    fn finished_upload_keeps_the_phase() {
        let started = Instant::now();
        let upload = UploadProgress::new(started, Some(10));
        upload.take(10, started, None);
        upload.finish(started);

        let refined = refine_after_upload(timed_out_before_headers(), Some(&upload));

        assert_eq!(refined.failure.phase, Phase::Headers);
        assert_eq!(refined.failure.diagnosis, Diagnosis::ServerStalled);
        assert!(!refined.not_sent);
    }

    #[test]
    fn untouched_body_keeps_the_failure() {
        let upload = UploadProgress::new(Instant::now(), Some(10));

        let refined = refine_after_upload(timed_out_before_headers(), Some(&upload));

        assert_eq!(refined.failure.phase, Phase::Headers);
        assert!(refined.not_sent);
    }

    #[tokio::test]
    async fn finished_wakes_a_waiter_that_came_first() {
        let upload = Arc::new(UploadProgress::new(Instant::now(), None));
        let waiter = tokio::spawn({
            let upload = Arc::clone(&upload);
            async move { upload.finished().await }
        });
        tokio::task::yield_now().await;

        let at = Instant::now();
        upload.finish(at);

        assert_eq!(waiter.await.unwrap(), at);
    }

    #[tokio::test]
    async fn finished_returns_at_once_after_the_end() {
        let upload = UploadProgress::new(Instant::now(), None);
        let at = Instant::now();
        upload.finish(at);

        assert_eq!(upload.finished().await, at);
        assert!(upload.is_done());
    }
}
