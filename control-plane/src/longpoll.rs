//! Long polls: `GET /v1/bundles/{name}?wait=S` with a matching `If-None-Match` waits for the served file to change.
//!
//! One task stats each watched file every [`POLL_INTERVAL`] and wakes that file's waiters through a
//! `tokio::sync::watch` channel; a local PUT wakes them at once. Polling the file (not only local PUTs) is what
//! makes a push to one replica wake waiters on another replica sharing the data directory. Waiters are futures,
//! not threads, and at most [`MAX_WAITERS`] wait at a time, at most a configured number per client address. A
//! waiter holds its `If-None-Match` and the identity of the file it last saw, never the bundle's bytes.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

/// How often watched files are checked for changes made by other replicas.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Longest wait a client may ask for, in seconds; longer requests are shortened to it.
pub const MAX_WAIT_SECS: u64 = 60;
/// Most requests waiting at once; past it a long poll is answered 503.
pub const MAX_WAITERS: usize = 10_000;

/// What identifies one version of a file without reading it: an atomic rename gives a new inode, a rewrite in
/// place a new length or modification time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileId {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
}

impl FileId {
    /// The identity of the file `metadata` describes.
    pub fn of(metadata: &std::fs::Metadata) -> FileId {
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(metadata);
        #[cfg(not(unix))]
        let inode = 0;
        FileId { len: metadata.len(), modified: metadata.modified().ok(), inode }
    }

    /// The file's length in bytes.
    pub fn size(&self) -> u64 {
        self.len
    }

    /// The identity of the file at `path`, `None` if it does not exist (or cannot be read).
    pub fn at(path: &Path) -> Option<FileId> {
        std::fs::metadata(path).ok().map(|m| FileId::of(&m))
    }
}

/// The watched files and their waiters.
#[derive(Default)]
pub struct Watchers {
    files: Mutex<HashMap<PathBuf, watch::Sender<Option<FileId>>>>,
    waiting: AtomicUsize,
    /// Waiters per client address (IPv6: per /64); an address leaves the map with its last waiter.
    per_client: Mutex<HashMap<IpAddr, usize>>,
}

/// Why a long poll may not wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Full {
    /// [`MAX_WAITERS`] requests are waiting.
    Server,
    /// This client address holds as many waiting requests as it may.
    Client,
}

/// A place among the waiters; gives it back when dropped (also when the client disconnects mid-wait).
pub struct WaiterSlot<'a> {
    watchers: &'a Watchers,
    client: IpAddr,
}

impl Drop for WaiterSlot<'_> {
    fn drop(&mut self) {
        self.watchers.waiting.fetch_sub(1, Ordering::AcqRel);
        let mut per_client = self.watchers.per_client.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = per_client.get_mut(&self.client) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                per_client.remove(&self.client);
            }
        }
    }
}

/// The address a per-client bound counts by: IPv4 as is, IPv6 by its /64 (one host usually holds a whole /64).
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !u128::from(u64::MAX);
            IpAddr::V6(Ipv6Addr::from(prefix))
        }
        v4 => v4,
    }
}

impl Watchers {
    /// A waiter slot for a request from `client`, or why there is none: [`MAX_WAITERS`] are already waiting, or
    /// `per_client` from the same address (see [`client_key`]).
    pub fn try_slot(&self, client: IpAddr, per_client: usize) -> Result<WaiterSlot<'_>, Full> {
        let client = client_key(client);
        let mut clients = self.per_client.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = clients.get(&client).copied().unwrap_or(0);
        if count >= per_client {
            return Err(Full::Client);
        }
        let taken =
            self.waiting.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < MAX_WAITERS).then(|| n + 1));
        if taken.is_err() {
            return Err(Full::Server);
        }
        clients.insert(client, count + 1);
        Ok(WaiterSlot { watchers: self, client })
    }

    /// Subscribes to changes of `path`. The receiver's current value is the poller's latest view of the file.
    pub fn subscribe(&self, path: &Path) -> watch::Receiver<Option<FileId>> {
        let mut files = self.files.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(sender) = files.get(path) {
            return sender.subscribe();
        }
        // Stat once here so a change between the caller's read and the first poll is not missed.
        let (sender, receiver) = watch::channel(FileId::at(path));
        files.insert(path.to_owned(), sender);
        receiver
    }

    /// Re-checks `path` now and wakes its waiters if it changed (after a local PUT).
    pub fn poke(&self, path: &Path) {
        let files = self.files.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(sender) = files.get(path) {
            let id = FileId::at(path);
            sender.send_if_modified(|seen| replace_if_changed(seen, id));
        }
    }

    /// Checks every watched file once, wakes the waiters of changed ones and forgets files nobody waits on.
    pub fn poll_once(&self) {
        let paths: Vec<PathBuf> = {
            let mut files = self.files.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            files.retain(|_, sender| sender.receiver_count() > 0);
            files.keys().cloned().collect()
        };
        // Stat outside the lock: a slow disk must not hold up subscribers.
        let ids: Vec<(Option<FileId>, PathBuf)> = paths.into_iter().map(|p| (FileId::at(&p), p)).collect();
        let files = self.files.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for (id, path) in ids {
            if let Some(sender) = files.get(&path) {
                sender.send_if_modified(|seen| replace_if_changed(seen, id));
            }
        }
    }
}

fn replace_if_changed(seen: &mut Option<FileId>, id: Option<FileId>) -> bool {
    if *seen == id {
        return false;
    }
    *seen = id;
    true
}

/// Runs [`Watchers::poll_once`] every [`POLL_INTERVAL`], on the blocking pool (it stats files), forever.
pub async fn poll_forever(watchers: Arc<Watchers>) {
    let mut interval = tokio::time::interval(POLL_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let watchers = Arc::clone(&watchers);
        // A failed poll (a panicking stat cannot happen, but a cancelled task can) is retried on the next tick.
        let _ = tokio::task::spawn_blocking(move || watchers.poll_once()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_bounded_and_returned() {
        let watchers = Watchers::default();
        let client = |i: usize| IpAddr::from([10, 0, (i / 256) as u8, (i % 256) as u8]);
        let slots: Vec<_> = (0..MAX_WAITERS).map(|i| watchers.try_slot(client(i), 1).unwrap()).collect();
        assert_eq!(watchers.try_slot(client(MAX_WAITERS), 1).err(), Some(Full::Server));
        drop(slots);
        assert!(watchers.try_slot(client(0), 1).is_ok());
        assert!(watchers.per_client.lock().unwrap().is_empty());
    }

    #[test]
    fn each_client_address_has_its_own_bound() {
        let watchers = Watchers::default();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let held: Vec<_> = (0..3).map(|_| watchers.try_slot(a, 3).unwrap()).collect();
        assert_eq!(watchers.try_slot(a, 3).err(), Some(Full::Client));
        // The same address mapped into IPv6 is the same client; another address is not.
        assert_eq!(watchers.try_slot("::ffff:192.0.2.1".parse().unwrap(), 3).err(), Some(Full::Client));
        let other = watchers.try_slot("192.0.2.2".parse().unwrap(), 3).unwrap();
        // IPv6 counts by /64.
        let v6: Vec<_> =
            (1..=3).map(|i| watchers.try_slot(format!("2001:db8::{i}").parse().unwrap(), 3).unwrap()).collect();
        assert_eq!(watchers.try_slot("2001:db8::ffff:1".parse().unwrap(), 3).err(), Some(Full::Client));
        assert!(watchers.try_slot("2001:db8:0:1::1".parse().unwrap(), 3).is_ok());
        drop(held);
        assert!(watchers.try_slot(a, 3).is_ok());
        drop((other, v6));
    }

    #[test]
    fn a_replaced_file_wakes_its_subscribers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.bundle");
        std::fs::write(&path, b"one").unwrap();
        let watchers = Watchers::default();
        let mut rx = watchers.subscribe(&path);
        rx.borrow_and_update();
        watchers.poll_once();
        assert!(!rx.has_changed().unwrap());
        let temp = dir.path().join(".x.tmp");
        std::fs::write(&temp, b"two").unwrap();
        std::fs::rename(&temp, &path).unwrap();
        watchers.poll_once();
        assert!(rx.has_changed().unwrap());
        drop(rx);
        watchers.poll_once();
        assert!(watchers.files.lock().unwrap().is_empty());
    }
}
