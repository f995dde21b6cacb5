//! Protection of an attempt once its connection is open: the upload of the
//! request body, the wait for the response headers and the response body.
//!
//! The middleware returns a response as soon as its headers arrive, so
//! without a guard a body that stalls or trickles fails later, in the
//! caller's hands, with no diagnosis. Here:
//!
//! - [`upload`] counts the bytes of the request body the connection takes, so
//!   that a stalled upload fails in `Phase::Send`;
//! - [`header_timeout`] limits the wait for the response headers;
//! - [`guard`] wraps the response body, enforces the idle and throughput
//!   limits ([`watch`], [`rate`]) and turns every body failure into a
//!   diagnosed error;
//! - [`buffered`] reads the whole body within the attempt, so that its
//!   failures can be retried;
//! - [`response`] puts the guard or the buffered body into the response.

mod buffered;
mod guard;
mod header_timeout;
mod progress;
mod rate;
mod response;
mod settings;
mod upload;
mod watch;

pub use buffered::BodyBuffering;
pub(crate) use guard::BodyContext;
pub(crate) use header_timeout::{within_header_timeout, HeaderTimedOut};
pub use progress::BodyProgress;
pub(crate) use response::{buffer_within_attempt, guard};
pub(crate) use settings::BodySettings;
pub use settings::MinThroughput;
pub(crate) use upload::{refine_after_upload, track_upload, UploadProgress};
