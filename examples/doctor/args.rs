//! Command-line arguments, parsed with the standard library only.

use std::fmt;
use std::time::Duration;

use reqwest::Url;

pub const USAGE: &str = "\
usage: cargo run --example doctor -- [URL] [OPTIONS]

Without URL, starts misbehaving servers on 127.0.0.1 and shows how the
middleware reports each one. With URL, makes one GET request to it and
reports the result the same way.

options:
  --attempt-timeout DURATION  time limit of one attempt (default 600ms)
  --total-timeout DURATION    time limit of the whole call, waits included (default 2.5s)
  --retries N                 retries after the first attempt (default 2)
  --connect-timeout DURATION  connect timeout set on the reqwest::Client, below the attempt timeout (default 250ms)
  -h, --help                  print this help

DURATION is a positive number with a unit: 250ms, 2s, 1.5s or 1m.

exit status: 0 when the URL answered with a success status and its whole
body, or when every demo case ended as expected; 1 otherwise; 2 for invalid
arguments.";

/// The options that take a value, without their leading `--`.
const OPTIONS: [&str; 4] = [
    "attempt-timeout",
    "total-timeout",
    "retries",
    "connect-timeout",
];

/// The client and middleware settings. The backoff settings have no option.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub connect_timeout: Duration,
    pub attempt_timeout: Duration,
    pub total_timeout: Duration,
    pub max_retries: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    pub jitter: bool,
    pub max_retry_after: Duration,
}

impl Default for Settings {
    /// Values that let every demo case show retries and the whole demo
    /// finish in a few seconds.
    fn default() -> Self {
        Settings {
            connect_timeout: Duration::from_millis(250),
            attempt_timeout: Duration::from_millis(600),
            total_timeout: Duration::from_millis(2_500),
            max_retries: 2,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            jitter: true,
            max_retry_after: Duration::from_secs(5),
        }
    }
}

/// The action that the command line selects.
#[derive(Debug)]
pub enum Command {
    Help,
    Demo(Settings),
    Diagnose(Url, Settings),
}

/// An invalid command line, with a message that names the bad argument.
#[derive(Debug)]
pub struct ArgsError(String);

impl fmt::Display for ArgsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Parses the arguments that follow the program name.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Command, ArgsError> {
    let mut settings = Settings::default();
    let mut url = None;
    let mut args = args.into_iter();

    while let Some(arg) = args.next() {
        if arg == "-h" || arg == "--help" {
            return Ok(Command::Help);
        }
        let Some(option) = arg.strip_prefix("--") else {
            if arg.starts_with('-') {
                return Err(ArgsError(format!("unknown option {arg:?}; see --help")));
            }
            if url.is_some() {
                return Err(ArgsError(
                    "more than one URL given; the doctor checks one URL per run".to_owned(),
                ));
            }
            url = Some(parse_url(&arg)?);
            continue;
        };

        // Both `--retries 3` and `--retries=3` are accepted.
        let (name, inline_value) = match option.split_once('=') {
            Some((name, value)) => (name, Some(value.to_owned())),
            None => (option, None),
        };
        if !OPTIONS.contains(&name) {
            return Err(ArgsError(format!("unknown option --{name}; see --help")));
        }
        let value = match inline_value {
            Some(value) => value,
            None => args
                .next()
                .ok_or_else(|| ArgsError(format!("missing value for --{name}")))?,
        };
        match name {
            "attempt-timeout" => settings.attempt_timeout = parse_duration(name, &value)?,
            "total-timeout" => settings.total_timeout = parse_duration(name, &value)?,
            "connect-timeout" => settings.connect_timeout = parse_duration(name, &value)?,
            "retries" => settings.max_retries = parse_count(name, &value)?,
            _ => unreachable!("every name in OPTIONS has a branch"),
        }
    }

    Ok(match url {
        Some(url) => Command::Diagnose(url, settings),
        None => Command::Demo(settings),
    })
}

/// Parses an absolute `http` or `https` URL. The messages never repeat the
/// URL, because its userinfo or query string may contain a secret.
fn parse_url(text: &str) -> Result<Url, ArgsError> {
    let url = Url::parse(text).map_err(|error| {
        ArgsError(format!(
            "invalid URL: {error}; expected an absolute URL such as http://127.0.0.1:8080/health"
        ))
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ArgsError(format!(
            "unsupported URL scheme {:?}; use http:// or https://",
            url.scheme()
        )));
    }
    if url.host_str().is_none() {
        return Err(ArgsError("invalid URL: it has no host".to_owned()));
    }
    Ok(url)
}

/// Parses a positive duration written as a number and a unit: `ms`, `s` or
/// `m`.
fn parse_duration(option: &str, value: &str) -> Result<Duration, ArgsError> {
    let invalid = || {
        ArgsError(format!(
            "invalid value {value:?} for --{option}: expected a positive duration with a unit, \
             such as 500ms, 2s, 1.5s or 1m"
        ))
    };

    let (number, unit_secs) = if let Some(number) = value.strip_suffix("ms") {
        (number, 0.001)
    } else if let Some(number) = value.strip_suffix('s') {
        (number, 1.0)
    } else if let Some(number) = value.strip_suffix('m') {
        (number, 60.0)
    } else {
        return Err(invalid());
    };
    let number: f64 = number.trim().parse().map_err(|_| invalid())?;
    if number.is_nan() || number <= 0.0 {
        return Err(invalid());
    }

    let duration = Duration::try_from_secs_f64(number * unit_secs).map_err(|_| invalid())?;
    if duration.is_zero() {
        return Err(invalid());
    }
    Ok(duration)
}

fn parse_count(option: &str, value: &str) -> Result<u32, ArgsError> {
    value.parse().map_err(|_| {
        ArgsError(format!(
            "invalid value {value:?} for --{option}: expected a whole number from 0 to {}",
            u32::MAX
        ))
    })
}
