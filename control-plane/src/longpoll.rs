//! Long polls: `GET /v1/bundles/{name}?wait=S` with a matching `If-None-Match` waits for the served file to change.
//!
//! One task stats each watched file every [`POLL_INTERVAL`] and wakes that file's waiters through a
//! `tokio::sync::watch` channel; a local PUT wakes them at once. Polling the file (not only local PUTs) is what
//! makes a push to one replica wake waiters on another replica sharing the data directory. Waiters are futures,
//! not threads, and at most [`MAX_WAITERS`] wait at a time.

use std::collections::HashMap;
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
}

/// A place among the waiters; gives it back when dropped (also when the client disconnects mid-wait).
pub struct WaiterSlot<'a> {
    waiting: &'a AtomicUsize,
}

impl Drop for WaiterSlot<'_> {
    fn drop(&mut self) {
        self.waiting.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Watchers {
    /// A waiter slot, or `None` when [`MAX_WAITERS`] are already waiting.
    pub fn try_slot(&self) -> Option<WaiterSlot<'_>> {
        let taken =
            self.waiting.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < MAX_WAITERS).then(|| n + 1));
        taken.ok().map(|_| WaiterSlot { waiting: &self.waiting })
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
        let slots: Vec<_> = (0..MAX_WAITERS).map(|_| watchers.try_slot().unwrap()).collect();
        assert!(watchers.try_slot().is_none());
        drop(slots);
        assert!(watchers.try_slot().is_some());
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
