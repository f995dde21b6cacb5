//! A small table of per-host state shared by the clones of a middleware.

use std::collections::HashMap;
use std::sync::Mutex;

/// How many hosts and ports a table tracks before it starts over, which
/// bounds its memory.
const MAX_HOSTS: usize = 1024;

/// State of type `T` per host and port, behind one lock.
///
/// The map is keyed by the host alone, so that a lookup borrows the caller's
/// `&str` and only a new host allocates. Each host keeps a short list of its
/// ports, because a host is rarely reached on more than one or two.
#[derive(Debug)]
pub(crate) struct HostTable<T> {
    inner: Mutex<Entries<T>>,
}

#[derive(Debug)]
struct Entries<T> {
    hosts: HashMap<String, Vec<(Option<u16>, T)>>,
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
    /// Runs `update` on the state of `host` and `port`, created with
    /// `T::default()` when new. Returns `None` only if another thread
    /// panicked while holding the lock.
    pub(crate) fn update<R>(
        &self,
        host: &str,
        port: Option<u16>,
        update: impl FnOnce(&mut T) -> R,
    ) -> Option<R> {
        let mut entries = self.inner.lock().ok()?;
        let Entries { hosts, len } = &mut *entries;
        if let Some(ports) = hosts.get_mut(host) {
            if let Some(state) = find_port(ports, port) {
                return Some(update(state));
            }
        }
        if *len >= MAX_HOSTS {
            hosts.clear();
            *len = 0;
        }
        let ports = hosts.entry(host.to_owned()).or_default();
        ports.push((port, T::default()));
        *len += 1;
        ports.last_mut().map(|(_, state)| update(state))
    }

    /// Runs `read` on the state of `host` and `port`, if there is any.
    pub(crate) fn read<R>(
        &self,
        host: &str,
        port: Option<u16>,
        read: impl FnOnce(&T) -> R,
    ) -> Option<R> {
        let entries = self.inner.lock().ok()?;
        let ports = entries.hosts.get(host)?;
        ports
            .iter()
            .find(|(entry_port, _)| *entry_port == port)
            .map(|(_, state)| read(state))
    }
}

fn find_port<T>(ports: &mut [(Option<u16>, T)], port: Option<u16>) -> Option<&mut T> {
    ports
        .iter_mut()
        .find(|(entry_port, _)| *entry_port == port)
        .map(|(_, state)| state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_is_kept_per_host_and_port() {
        let table: HostTable<u32> = HostTable::default();

        table.update("a.test", Some(80), |count| *count += 1);
        table.update("a.test", Some(80), |count| *count += 1);
        table.update("a.test", Some(443), |count| *count += 5);

        assert_eq!(table.read("a.test", Some(80), |count| *count), Some(2));
        assert_eq!(table.read("a.test", Some(443), |count| *count), Some(5));
        assert_eq!(table.read("b.test", Some(80), |count| *count), None);
    }

    #[test]
    fn table_starts_over_when_full() {
        let table: HostTable<u32> = HostTable::default();
        for port in 0..MAX_HOSTS as u16 {
            table.update("a.test", Some(port), |count| *count += 1);
        }

        table.update("new.test", None, |count| *count += 1);

        assert_eq!(table.read("new.test", None, |count| *count), Some(1));
        assert_eq!(table.read("a.test", Some(0), |count| *count), None);
    }
}
