//! The latest accepted bundle, shared by every worker VM.

use crate::{SharedData, WriteError};

/// What a [`BundleSlot`]'s head says: which bundle is current. Small, so every VM can poll it cheaply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BundleHead {
    /// SHA-256 of the bundle payload.
    pub digest: [u8; 32],
    /// The bundle's revision.
    pub revision: u64,
}

/// Three keys per bundle name: `<prefix>.head` (40 bytes: digest, revision), `<prefix>.bytes` (the bundle) and
/// `<prefix>.fetch` (the last [`FetchRecord`]).
///
/// The fetching VM writes the bytes, then the head. Readers poll the head and, when it changes, read the bytes and
/// validate them themselves: a reader racing a writer may see newer bytes than the head, never torn ones, since each
/// key is written whole.
#[derive(Clone, Debug)]
pub struct BundleSlot {
    head_key: String,
    bytes_key: String,
    fetch_key: String,
}

/// What the control plane last served for this bundle name, whoever fetched it.
///
/// Kept in shared data so that when the fetch lease moves to another VM, it asks with the same `If-None-Match` and
/// does not log or count again a refusal that was already reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchRecord {
    /// The entity tag of the last bundle served (accepted or refused).
    pub etag: String,
    /// True when that bundle was refused.
    pub refused: bool,
}

impl BundleSlot {
    /// The slot for bundle `name`.
    pub fn new(name: &str) -> BundleSlot {
        BundleSlot {
            head_key: format!("portcullis.bundle.{name}.head"),
            bytes_key: format!("portcullis.bundle.{name}.bytes"),
            fetch_key: format!("portcullis.bundle.{name}.fetch"),
        }
    }

    /// The current head, if a bundle was ever published.
    pub fn head(&self, store: &dyn SharedData) -> Option<BundleHead> {
        let value = store.get(&self.head_key).0?;
        let digest = value.get(0..32)?.try_into().ok()?;
        let revision = u64::from_le_bytes(value.get(32..40)?.try_into().ok()?);
        Some(BundleHead { digest, revision })
    }

    /// The published bundle bytes (unvalidated: the caller validates before use).
    pub fn bytes(&self, store: &dyn SharedData) -> Option<Vec<u8>> {
        store.get(&self.bytes_key).0
    }

    /// Publishes an accepted bundle: bytes first, then the head that announces them.
    ///
    /// # Errors
    ///
    /// When the host refuses a write.
    pub fn publish(&self, store: &dyn SharedData, head: BundleHead, bytes: &[u8]) -> Result<(), WriteError> {
        store.set(&self.bytes_key, bytes, None)?;
        let mut value = [0u8; 40];
        let (d, r) = value.split_at_mut(32);
        d.copy_from_slice(&head.digest);
        r.copy_from_slice(&head.revision.to_le_bytes());
        store.set(&self.head_key, &value, None)
    }
}

impl BundleSlot {
    /// The last fetch outcome recorded by any VM.
    pub fn last_fetch(&self, store: &dyn SharedData) -> Option<FetchRecord> {
        let value = store.get(&self.fetch_key).0?;
        let (flag, etag) = value.split_first()?;
        Some(FetchRecord { etag: String::from_utf8(etag.to_vec()).ok()?, refused: *flag == 1 })
    }

    /// Records what the control plane served.
    ///
    /// # Errors
    ///
    /// When the host refuses the write.
    pub fn record_fetch(&self, store: &dyn SharedData, record: &FetchRecord) -> Result<(), WriteError> {
        let mut value = Vec::with_capacity(1 + record.etag.len());
        value.push(u8::from(record.refused));
        value.extend_from_slice(record.etag.as_bytes());
        store.set(&self.fetch_key, &value, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStore;

    #[test]
    fn publish_then_read_back() {
        let store = MemoryStore::new();
        let slot = BundleSlot::new("demo");
        assert_eq!(slot.head(&store), None);
        let head = BundleHead { digest: [7; 32], revision: 42 };
        slot.publish(&store, head, b"bundle").unwrap();
        assert_eq!(slot.head(&store), Some(head));
        assert_eq!(slot.bytes(&store).as_deref(), Some(&b"bundle"[..]));
        let record = FetchRecord { etag: "\"abc\"".into(), refused: true };
        slot.record_fetch(&store, &record).unwrap();
        assert_eq!(slot.last_fetch(&store), Some(record));
        assert_eq!(store.key_count(), 3, "a bundle name costs exactly three keys");
    }
}
