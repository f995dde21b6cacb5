//! A small table of per-host state shared by the clones of a middleware.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// How many hosts and ports a table tracks before it removes the ones that
/// no call uses, which bounds its memory.
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
    /// The number of pairs at which the table next removes idle ones: at
    /// least [`MAX_HOSTS`], and twice the pairs in use the last time, so
    /// that pairs in use do not make every new host scan the table.
    limit: usize,
}

impl<T> Default for HostTable<T> {
    fn default() -> Self {
        HostTable {
            inner: Mutex::new(Entries {
                hosts: HashMap::new(),
                len: 0,
                limit: MAX_HOSTS,
            }),
        }
    }
}

impl<T: Default> HostTable<T> {
    /// Returns the state of `host` and `port`, created with `T::default()`
    /// when new.
    pub(crate) fn get(&self, host: &str, port: Option<u16>) -> Arc<T> {
        // The map stays consistent whatever panicked while holding the
        // lock, because it is only looked up, extended or pruned.
        let mut entries = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let Entries { hosts, len, limit } = &mut *entries;
        if let Some(ports) = hosts.get(host) {
            if let Some((_, state)) = ports.iter().find(|(entry_port, _)| *entry_port == port) {
                return Arc::clone(state);
            }
        }
        if *len >= *limit {
            remove_idle(hosts);
            *len = hosts.values().map(Vec::len).sum();
            *limit = MAX_HOSTS.max(2 * *len);
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

/// Removes the states that no call in flight uses. A state in use stays, so
/// that its call and the calls after it keep sharing it.
fn remove_idle<T>(hosts: &mut HashMap<String, Ports<T>>) {
    hosts.retain(|_, ports| {
        ports.retain(|(_, state)| Arc::strong_count(state) > 1);
        !ports.is_empty()
    });
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
    fn full_table_removes_idle_hosts() {
        let table = HostTable::default();
        for port in 0..MAX_HOSTS as u16 {
            add(&table, "a.test", Some(port), 1);
        }
        let in_use = table.get("a.test", Some(0));

        add(&table, "new.test", None, 1);

        assert_eq!(count(&table, "new.test", None), 1);
        assert_eq!(count(&table, "a.test", Some(1)), 0, "idle entry removed");
        assert_eq!(count(&table, "a.test", Some(0)), 1, "entry in use kept");
        assert!(Arc::ptr_eq(&in_use, &table.get("a.test", Some(0))));
    }

    #[test]
    fn hosts_in_use_are_kept() {
        let table: HostTable<AtomicU32> = HostTable::default();
        let in_use: Vec<_> = (0..MAX_HOSTS as u16)
            .map(|port| table.get("a.test", Some(port)))
            .collect();
        in_use[0].fetch_add(1, Ordering::Relaxed);

        add(&table, "new.test", None, 1);

        assert_eq!(count(&table, "new.test", None), 1);
        assert_eq!(count(&table, "a.test", Some(0)), 1, "still shared");
        assert!(Arc::ptr_eq(&in_use[0], &table.get("a.test", Some(0))));
    }

    #[test]
    fn hosts_in_use_raise_next_limit() {
        let table: HostTable<AtomicU32> = HostTable::default();
        let in_use: Vec<_> = (0..MAX_HOSTS as u16)
            .map(|port| table.get("a.test", Some(port)))
            .collect();
        add(&table, "new.test", None, 1);

        for port in 0..MAX_HOSTS as u16 - 1 {
            add(&table, "b.test", Some(port), 1);
        }

        let entries = table.inner.lock().unwrap();
        assert_eq!(
            entries.len,
            2 * MAX_HOSTS,
            "nothing removed below the limit"
        );
        assert_eq!(entries.limit, 2 * MAX_HOSTS);
        drop(in_use);
    }
}
