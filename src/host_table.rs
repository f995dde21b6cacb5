//! A small table of per-host state shared by the clones of a middleware.

use std::collections::HashMap;
use std::sync::Mutex;

/// How many hosts and ports a table tracks before it starts over, which
/// bounds its memory.
const MAX_HOSTS: usize = 1024;

/// State of type `T` per host and port, behind one lock.
#[derive(Debug, Default)]
pub(crate) struct HostTable<T> {
    hosts: Mutex<HashMap<(String, Option<u16>), T>>,
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
        let mut hosts = self.hosts.lock().ok()?;
        let key = (host.to_owned(), port);
        if hosts.len() >= MAX_HOSTS && !hosts.contains_key(&key) {
            hosts.clear();
        }
        Some(update(hosts.entry(key).or_default()))
    }

    /// Runs `read` on the state of `host` and `port`, if there is any.
    pub(crate) fn read<R>(
        &self,
        host: &str,
        port: Option<u16>,
        read: impl FnOnce(&T) -> R,
    ) -> Option<R> {
        let hosts = self.hosts.lock().ok()?;
        hosts.get(&(host.to_owned(), port)).map(read)
    }
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
