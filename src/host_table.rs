//! A small table of per-host state shared by the clones of a middleware.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// How many hosts and ports a table tracks before it starts over, which
/// bounds its memory.
const MAX_HOSTS: usize = 1024;

/// Shared state of type `T` per host and port.
///
/// A call looks its host up once and keeps the `Arc`, so that what it
/// records later takes no lookup. The map is keyed by the host alone, so
/// that a lookup borrows the caller's `&str` and only a new host allocates.
/// Each host keeps a short list of its ports, because a host is rarely
/// reached on more than one or two.
#[derive(Debug)]
pub(crate) struct HostTable<T> {
    inner: Mutex<Entries<T>>,
}

/// The state of each port of one host.
type Ports<T> = Vec<(Option<u16>, Arc<T>)>;

#[derive(Debug)]
struct Entries<T> {
    hosts: HashMap<String, Ports<T>>,
    /// The number of host and port pairs, across all hosts.
    len: usize,
}

impl<T> Default for HostTable<T> {
    fn default() -> Self {
        HostTable {
            inner: Mutex::new(Entries {
                hosts: HashMap::new(),
                len: 0,
            }),
        }
    }
}

impl<T: Default> HostTable<T> {
    /// Returns the state of `host` and `port`, created with `T::default()`
    /// when new.
    pub(crate) fn get(&self, host: &str, port: Option<u16>) -> Arc<T> {
        // The map stays consistent whatever panicked while holding the
        // lock, because it is only looked up, extended or cleared.
        let mut entries = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let Entries { hosts, len } = &mut *entries;
        if let Some(ports) = hosts.get(host) {
            if let Some((_, state)) = ports.iter().find(|(entry_port, _)| *entry_port == port) {
                return Arc::clone(state);
            }
        }
        if *len >= MAX_HOSTS {
            // Calls in flight keep their own `Arc` of the state.
            hosts.clear();
            *len = 0;
        }
        let state = Arc::new(T::default());
        hosts
            .entry(host.to_owned())
            .or_default()
            .push((port, Arc::clone(&state)));
        *len += 1;
        state
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn add(table: &HostTable<AtomicU32>, host: &str, port: Option<u16>, count: u32) {
        table.get(host, port).fetch_add(count, Ordering::Relaxed);
    }

    fn count(table: &HostTable<AtomicU32>, host: &str, port: Option<u16>) -> u32 {
        table.get(host, port).load(Ordering::Relaxed)
    }

    #[test]
    fn state_is_kept_per_host_and_port() {
        let table = HostTable::default();

        add(&table, "a.test", Some(80), 1);
        add(&table, "a.test", Some(80), 1);
        add(&table, "a.test", Some(443), 5);

        assert_eq!(count(&table, "a.test", Some(80)), 2);
        assert_eq!(count(&table, "a.test", Some(443)), 5);
        assert_eq!(count(&table, "b.test", Some(80)), 0);
    }

    #[test]
    fn table_starts_over_when_full() {
        let table = HostTable::default();
        for port in 0..MAX_HOSTS as u16 {
            add(&table, "a.test", Some(port), 1);
        }
        let held = table.get("a.test", Some(0));

        add(&table, "new.test", None, 1);

        assert_eq!(count(&table, "new.test", None), 1);
        assert_eq!(count(&table, "a.test", Some(0)), 0, "forgotten");
        assert_eq!(held.load(Ordering::Relaxed), 1, "still held by a call");
    }
}
