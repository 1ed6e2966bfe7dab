//! State shared by every worker VM of one Envoy, over proxy-wasm shared data.
//!
//! Envoy's shared data is a process-wide map from string keys to byte values with a compare-and-swap token (`cas`)
//! per key. It has no delete and no TTL, so everything here lives under a fixed, bounded set of keys and carries its
//! own expiry inside the value.
//!
//! The map is reached through the small [`SharedData`] trait: the filter implements it with proxy-wasm hostcalls,
//! and tests use [`MemoryStore`].
//!
//! # Contents
//!
//! - [`Lease`]: one holder at a time for a job that must not run in every worker (fetching bundles).
//! - [`BundleSlot`]: the latest accepted bundle, published by the fetching VM and picked up by all the others.
//! - [`TtlList`]: a bounded, self-expiring set of keys (sensitive endpoints, abusive tokens) shared by all workers.
//! - [`SlidingCounter`], [`DistinctCounter`], [`LastSeen`]: bounded per-key counters (requests per token in a
//!   sliding window, distinct endpoints per token, the address a token last came from).

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use std::cell::RefCell;
use std::collections::HashMap;

mod buckets;
mod bundle_slot;
mod counters;
mod lease;
mod ttl_list;

pub use buckets::Salt;
pub use bundle_slot::{BundleHead, BundleSlot, FetchRecord};
pub use counters::{CounterError, DistinctCounter, LastSeen, SeenValue, SlidingCounter};
pub use lease::Lease;
pub use ttl_list::{AddOutcome, ListError, TtlList};

/// A compare-and-swap token: the version of a key's value as the host last reported it.
pub type Cas = u32;

/// The token that makes a write "create if absent".
///
/// The host (proxy-wasm-cpp-host's `SharedData::set`, used by Envoy and Istio) checks a token only against a key
/// that exists: a write to a key never written always happens, whatever its token. Its tokens are one process-wide
/// sequence starting at 1, so no key carries `u32::MAX` until the Envoy has made 2³²−1 shared-data writes. A write
/// with this token therefore creates a missing key, and meets [`WriteError::CasMismatch`] when another VM created
/// the key since we read it as missing: bucket creation is as safe as every later checked write.
pub const CREATE_CAS: Cas = u32::MAX;

/// Why a write to shared data did not happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteError {
    /// Another VM wrote the key after we read it; read again and retry (or give up).
    CasMismatch,
    /// The host refused the write for another reason.
    Failed,
}

/// Process-wide key/value storage with compare-and-swap, as proxy-wasm shared data provides.
pub trait SharedData {
    /// The value of `key` and its CAS token; `(None, None)` when the key was never written.
    fn get(&self, key: &str) -> (Option<Vec<u8>>, Option<Cas>);
    /// Writes `value`. With `cas: Some(c)` (c ≠ 0) a key that exists is only written if its token is still `c`;
    /// with `None` (or 0) it always is. A key that does not exist is always written (see [`CREATE_CAS`]).
    fn set(&self, key: &str, value: &[u8], cas: Option<Cas>) -> Result<(), WriteError>;
}

/// How much of shared data a bucketed structure ([`TtlList`], the counters) may use and uses: it never writes keys
/// other than its `buckets()` bucket keys, each a fixed-size value, so `shared_bytes_budget()` bounds it for good.
pub trait Footprint {
    /// Number of buckets, which is also the number of shared-data keys the structure can ever use.
    fn buckets(&self) -> u32;
    /// The most entries (list entries, counted keys) held at once: buckets × ways.
    fn capacity(&self) -> u64;
    /// The most bytes of shared-data values the structure ever uses: buckets × the fixed value size.
    fn shared_bytes_budget(&self) -> u64;
    /// Bytes of shared data bucket `bucket` holds now (0 if never written): a sweep adds these up to measure use.
    fn stored_bytes(&self, store: &dyn SharedData, bucket: u32) -> u64;
}

/// An in-memory [`SharedData`] with the host's semantics, for tests and native tools.
#[derive(Debug, Default)]
pub struct MemoryStore {
    entries: RefCell<HashMap<String, (Vec<u8>, Cas)>>,
    /// The last token given out: one sequence for every key, as the host numbers writes.
    last_cas: std::cell::Cell<Cas>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// Number of keys ever written (shared data never forgets a key).
    pub fn key_count(&self) -> usize {
        self.entries.borrow().len()
    }
}

impl SharedData for MemoryStore {
    fn get(&self, key: &str) -> (Option<Vec<u8>>, Option<Cas>) {
        match self.entries.borrow().get(key) {
            Some((value, cas)) => (Some(value.clone()), Some(*cas)),
            None => (None, None),
        }
    }

    fn set(&self, key: &str, value: &[u8], cas: Option<Cas>) -> Result<(), WriteError> {
        let mut entries = self.entries.borrow_mut();
        // The host treats a cas of 0 as "no check"; any other token must match an existing key's.
        if let (Some(expected), Some((_, current))) = (cas.filter(|c| *c != 0), entries.get(key)) {
            if *current != expected {
                return Err(WriteError::CasMismatch);
            }
        }
        // One sequence for all keys, skipping 0 (not a valid token), as the host does.
        let next = self.last_cas.get().wrapping_add(1).max(1);
        self.last_cas.set(next);
        entries.insert(key.to_owned(), (value.to_vec(), next));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_cas_is_refused() {
        let store = MemoryStore::new();
        store.set("k", b"a", None).unwrap();
        let (_, cas) = store.get("k");
        store.set("k", b"b", cas).unwrap();
        assert_eq!(store.set("k", b"c", cas), Err(WriteError::CasMismatch));
        assert_eq!(store.get("k").0.as_deref(), Some(&b"b"[..]));
    }

    #[test]
    fn the_create_token_creates_a_missing_key_only() {
        let store = MemoryStore::new();
        store.set("k", b"first", Some(CREATE_CAS)).unwrap();
        assert_eq!(store.set("k", b"second", Some(CREATE_CAS)), Err(WriteError::CasMismatch));
        assert_eq!(store.get("k").0.as_deref(), Some(&b"first"[..]));
    }
}
