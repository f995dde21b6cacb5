//! Protection of an attempt once its connection is open: the upload of the
//! request body, the wait for the response headers and the response body.
//!
//! The middleware returns a response as soon as its headers arrive, so
//! without a guard a body that stalls or trickles fails later, in the
//! caller's hands, with no diagnosis. Here:
//!
//! - [`guard`] wraps the response body, enforces the idle and throughput
//!   limits ([`watch`], [`rate`]) and turns every body failure into a
//!   diagnosed error;
//! - [`response`] puts the guard into the response.

mod guard;
mod progress;
mod rate;
mod response;
mod settings;
mod watch;

pub(crate) use guard::AttemptContext;
pub use progress::BodyProgress;
pub(crate) use response::deliver;
pub(crate) use settings::BodySettings;
pub use settings::MinThroughput;
