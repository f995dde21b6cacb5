use std::error::Error as StdError;
use std::fmt;

/// An invalid setting found by [`TimeoutMiddlewareBuilder::build`].
///
/// The message names the setting, its value and how to fix it.
///
/// [`TimeoutMiddlewareBuilder::build`]: crate::TimeoutMiddlewareBuilder::build
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    setting: &'static str,
    message: String,
}

impl ConfigError {
    pub(crate) fn new(setting: &'static str, message: String) -> Self {
        ConfigError { setting, message }
    }

    /// Returns the name of the builder setting that is invalid, such as
    /// `"attempt_timeout"`.
    pub fn setting(&self) -> &'static str {
        self.setting
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid {}: {}", self.setting, self.message)
    }
}

impl StdError for ConfigError {}
