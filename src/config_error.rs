use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use crate::format::DisplayDuration;

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

/// The origin of a setting's value in `build`, for messages about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ValueSource {
    /// The user set it.
    Set,
    /// The default, as documented.
    Default,
    /// The default, lowered to follow a short total timeout.
    FollowsTotal,
}

/// A setting's name, value and source, which `Display` writes as
/// `attempt_timeout 5s (the default for this total_timeout)`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Resolved {
    pub(crate) name: &'static str,
    pub(crate) value: Duration,
    pub(crate) source: ValueSource,
}

impl Resolved {
    /// Returns the advice to make the value longer: a value that follows
    /// the total timeout grows only with it.
    pub(crate) fn raise(&self) -> String {
        match self.source {
            ValueSource::FollowsTotal => "raise total_timeout".to_owned(),
            ValueSource::Set | ValueSource::Default => {
                format!("raise {} (at most total_timeout)", self.name)
            }
        }
    }
}

impl fmt::Display for Resolved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.name, DisplayDuration(self.value))?;
        match self.source {
            ValueSource::Set => Ok(()),
            ValueSource::Default => f.write_str(" (the default)"),
            ValueSource::FollowsTotal => f.write_str(" (the default for this total_timeout)"),
        }
    }
}
