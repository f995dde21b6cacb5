//! Facts about the machine and this process, read from Linux's `/proc`.
//!
//! Off Linux the readers return `None` or "unknown" instead of failing.

use std::backtrace::{Backtrace, BacktraceStatus};
use std::fmt;

/// The machine and its load, printed at the top of every harness's output
/// so that a recorded figure carries its context.
#[derive(Debug, Clone)]
pub struct Machine {
    pub cores: usize,
    pub kernel: String,
    pub cpu_model: String,
    pub load: String,
    pub fd_limit: Option<(u64, u64)>,
    /// Whether `std::backtrace::Backtrace::capture` records a backtrace
    /// (`RUST_LIB_BACKTRACE`, or else `RUST_BACKTRACE`, set and not `0`).
    /// anyhow then captures one for every error that the middleware returns
    /// inside `reqwest_middleware::Error::Middleware`, which costs several
    /// microseconds per failed call.
    pub library_backtraces: bool,
}

impl Machine {
    /// Reads the machine's description and current load.
    pub fn read() -> Machine {
        Machine {
            cores: std::thread::available_parallelism().map_or(0, usize::from),
            kernel: read_trimmed("/proc/sys/kernel/osrelease"),
            cpu_model: cpu_model(),
            load: load_average(),
            fd_limit: fd_limit(),
            library_backtraces: Backtrace::capture().status() == BacktraceStatus::Captured,
        }
    }
}

impl fmt::Display for Machine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "machine: {} cores, kernel {}, cpu {:?}, load average {}",
            self.cores, self.kernel, self.cpu_model, self.load
        )?;
        if let Some((soft, hard)) = self.fd_limit {
            write!(f, ", open files limit {soft} (hard {hard})")?;
        }
        let backtraces = if self.library_backtraces { "on" } else { "off" };
        write!(f, ", library backtraces {backtraces}")
    }
}

/// Returns the 1, 5 and 15 minute load averages from `/proc/loadavg`.
pub fn load_average() -> String {
    let text = read_trimmed("/proc/loadavg");
    text.split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn cpu_model() -> String {
    let text = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    text.lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            (name.trim() == "model name").then(|| value.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|text| text.trim().to_owned())
        .unwrap_or_else(|_| "unknown".to_owned())
}

/// Returns the number of open file descriptors of this process, from
/// `/proc/self/fd`, not counting the one used to list it.
pub fn open_fds() -> Option<usize> {
    let entries = std::fs::read_dir("/proc/self/fd").ok()?;
    Some(entries.count().saturating_sub(1))
}

/// Returns the resident set size of this process in bytes, from the
/// `VmRSS` line of `/proc/self/status`.
pub fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Returns the soft and hard limits on open files.
pub fn fd_limit() -> Option<(u64, u64)> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `getrlimit` writes only into the struct it is given, which
    // lives for the whole call.
    let status = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    (status == 0).then_some((limit.rlim_cur, limit.rlim_max))
}

/// Raises the soft limit on open files to at least `wanted`, up to the hard
/// limit. Returns the soft limit in force afterwards.
pub fn raise_fd_limit(wanted: u64) -> Option<u64> {
    let (soft, hard) = fd_limit()?;
    if soft >= wanted {
        return Some(soft);
    }
    let limit = libc::rlimit {
        rlim_cur: wanted.min(hard),
        rlim_max: hard,
    };
    // SAFETY: `setrlimit` only reads the struct it is given, which lives for
    // the whole call.
    let status = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
    if status != 0 {
        return Some(soft);
    }
    fd_limit().map(|(soft, _hard)| soft)
}

/// Returns `bytes` as KiB or MiB with one decimal.
pub fn human_bytes(bytes: f64) -> String {
    if bytes.abs() >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", bytes / (1024.0 * 1024.0))
    } else {
        format!("{:.1} KiB", bytes / 1024.0)
    }
}
