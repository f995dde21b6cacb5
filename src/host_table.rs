//! A small table of per-host state shared by the clones of a middleware.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// How many hosts and ports a table tracks before it forgets some, which
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
        // lock, because it is only looked up, extended or pruned.
        let mut entries = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let Entries { hosts, len } = &mut *entries;
        if let Some(ports) = hosts.get(host) {
            if let Some((_, state)) = ports.iter().find(|(entry_port, _)| *entry_port == port) {
                return Arc::clone(state);
            }
        }
        if *len >= MAX_HOSTS {
            forget_idle(hosts, len);
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

/// Forgets the states that no call in flight holds, so that a call in
/// flight and the calls after it keep sharing one state. When calls still
/// hold half of the entries or more, it forgets them all, so that the next
/// new host does not scan the table again; those calls then finish with a
/// state of their own.
fn forget_idle<T>(hosts: &mut HashMap<String, Ports<T>>, len: &mut usize) {
    hosts.retain(|_, ports| {
        ports.retain(|(_, state)| Arc::strong_count(state) > 1);
        !ports.is_empty()
    });
    *len = hosts.values().map(Vec::len).sum();
    if *len >= MAX_HOSTS / 2 {
        hosts.clear();
        *len = 0;
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
    fn full_table_forgets_idle_hosts() {
        let table = HostTable::default();
        for port in 0..MAX_HOSTS as u16 {
            add(&table, "a.test", Some(port), 1);
        }
        let held = table.get("a.test", Some(0));

        add(&table, "new.test", None, 1);

        assert_eq!(count(&table, "new.test", None), 1);
        assert_eq!(count(&table, "a.test", Some(1)), 0, "idle entry forgotten");
        assert_eq!(count(&table, "a.test", Some(0)), 1, "held entry kept");
        assert!(Arc::ptr_eq(&held, &table.get("a.test", Some(0))));
    }

    #[test]
    fn full_table_of_held_hosts_starts_over() {
        let table: HostTable<AtomicU32> = HostTable::default();
        let held: Vec<_> = (0..MAX_HOSTS as u16)
            .map(|port| table.get("a.test", Some(port)))
            .collect();
        held[0].fetch_add(1, Ordering::Relaxed);

        add(&table, "new.test", None, 1);

        assert_eq!(count(&table, "new.test", None), 1);
        assert_eq!(count(&table, "a.test", Some(0)), 0, "forgotten");
        assert_eq!(held[0].load(Ordering::Relaxed), 1, "still held by a call");
    }
}
