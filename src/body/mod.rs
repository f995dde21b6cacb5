//! Protection of an attempt once its connection is open: the upload of the
//! request body, the wait for the response headers and the response body.

mod progress;
mod settings;

pub use progress::BodyProgress;
pub use settings::MinThroughput;
pub(crate) use settings::BodySettings;
