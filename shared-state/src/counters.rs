//! Bounded per-key counters shared by every worker VM: request rates, distinct items, last-seen facts.
//!
//! Three counters share one storage design, documented on [`SlidingCounter`]:
//!
//! - [`SlidingCounter`]: "how many requests did this token make in the last minute?"
//! - [`DistinctCounter`]: "how many different endpoints did this token get a 4xx from in the window?"
//! - [`LastSeen`]: "which client address did this token last come from, and when?"

use std::fmt;

use sha2::{Digest, Sha256};

use crate::buckets::{self, Fingerprint, Salt, FINGERPRINT_LEN};
use crate::{Footprint, SharedData, WriteError, CREATE_CAS};

/// Slots per bucket.
const WAYS: usize = 8;
const KEY_PREFIX: &str = "portcullis.counter.";
/// Compare-and-swap retries a change makes before giving up.
const MAX_CAS_RETRIES: u32 = 8;

/// Version bytes: each counter kind has its own, so a value written by another kind reads as an empty bucket.
const SLIDING_VERSION: u8 = 1;
const DISTINCT_VERSION: u8 = 2;
const LAST_SEEN_VERSION: u8 = 3;

/// Sliding slot: `fingerprint[16] | window_start_ms u64 | current u32 | previous u32`.
const SLIDING_SLOT_LEN: usize = FINGERPRINT_LEN + 8 + 4 + 4;
const SLIDING_START: usize = FINGERPRINT_LEN;
const SLIDING_CURRENT: usize = SLIDING_START + 8;
const SLIDING_PREVIOUS: usize = SLIDING_CURRENT + 4;

/// Distinct slot: `fingerprint[16] | window_start_ms u64 | count u8 | items[max_distinct] u32`.
const DISTINCT_START: usize = FINGERPRINT_LEN;
const DISTINCT_COUNT: usize = DISTINCT_START + 8;
const DISTINCT_ITEMS: usize = DISTINCT_COUNT + 1;
/// The largest `max_distinct`.
const MAX_DISTINCT: u32 = 64;

/// Last-seen slot: `fingerprint[16] | at_ms u64 | kind u8 | len u8 | value[64]`.
const SEEN_AT: usize = FINGERPRINT_LEN;
const SEEN_KIND: usize = SEEN_AT + 8;
const SEEN_LEN: usize = SEEN_KIND + 1;
const SEEN_VALUE: usize = SEEN_LEN + 1;
/// Values up to this length are kept verbatim; longer ones as their SHA-256.
const SEEN_VALUE_MAX: usize = 64;
const LAST_SEEN_SLOT_LEN: usize = SEEN_VALUE + SEEN_VALUE_MAX;
const KIND_FREE: u8 = 0;
const KIND_VERBATIM: u8 = 1;
const KIND_DIGEST: u8 = 2;

/// Why a counter change did not happen. The counter is unchanged by the call either way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CounterError {
    /// Other VMs kept writing the bucket: [`SlidingCounter::MAX_CAS_RETRIES`] retries were not enough.
    Contention,
    /// The host refused a write.
    WriteFailed,
}

impl fmt::Display for CounterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CounterError::Contention => "counter bucket contended: compare-and-swap retries exhausted",
            CounterError::WriteFailed => "host refused a shared data write",
        })
    }
}

impl std::error::Error for CounterError {}

/// A per-key request count over a sliding window, in shared data, seen by every worker VM.
///
/// ```
/// use portcullis_shared_state::{MemoryStore, SlidingCounter};
///
/// let store = MemoryStore::new();
/// let per_token = SlidingCounter::new("requests-per-token", 10_000, 60_000);
/// assert_eq!(per_token.add(&store, b"token-1", 0, 1), Ok((1, 0)));
/// assert_eq!(per_token.add(&store, b"token-1", 30_000, 2), Ok((3, 0)));
/// // Half-way through the next minute, half of the previous minute still counts.
/// assert_eq!(per_token.estimate(&store, b"token-1", 90_000), 1);
/// assert_eq!(per_token.estimate(&store, b"token-1", 120_000), 0);
/// ```
///
/// # Layout (all three counters)
///
/// A counter named `name` with room for `max_keys` is a set-associative table of `B = ceil(max_keys / 8)` buckets
/// of 8 ways each, bucket `b` stored under `portcullis.counter.<name>.<b>`. Shared data never forgets a key, so keys
/// are never derived from request data: a counter uses at most `B` keys and `shared_bytes_budget()` bytes of values.
/// Names must be unique across all counters of one Envoy.
///
/// A bucket value is a version byte (1 sliding, 2 distinct, 3 last-seen) followed by exactly 8 fixed-size slots. A
/// value that does not decode (wrong version, wrong length) reads as an empty bucket and is overwritten by the next
/// change. Slots are kept in most-recently-written-first order, which costs no bytes and breaks eviction ties.
///
/// # Identity
///
/// The keyed 128-bit SipHash of `name || 0x00 || key` is the key's fingerprint and gives its bucket, as in
/// [`TtlList`](crate::TtlList): keys (token ids, client addresses, endpoint templates, or a combination) are never
/// stored and collisions are negligible.
///
/// # Sliding window
///
/// Time is cut into fixed sub-windows of `window_ms` aligned on multiples of `window_ms`. A slot holds the start of
/// the key's current sub-window and two counts, current and previous. At time `now` in the sub-window starting at
/// `w`, the estimate is `current + previous × (window − (now − w)) / window`: the previous sub-window counts in
/// proportion to its overlap with the sliding window `(now − window, now]`, assuming its requests were spread evenly
/// (the estimator of pingora-limits' `Rate`). An add rolls the slot forward (current becomes previous after one
/// sub-window; both reset after two), then adds to current. A VM whose clock is behind the slot's sub-window adds
/// to current too, so no add is ever lost to clock skew between workers.
///
/// # Expiry and eviction
///
/// A slot whose two counts have rolled out (no add for two sub-windows) is free, and is reclaimed in place.
/// **Eviction rule: when a bucket is full of live slots, the slot with the lowest estimate is replaced; among
/// equals, the least recently written.** A flood of one-off keys churns among themselves, while any key counted
/// twice or more (heavy hitters) survives: the counts that matter for rate limits are the ones kept. An evicted key
/// starts again from zero, so counts under-estimate, never over-estimate.
///
/// # Concurrency
///
/// Every change is a read-modify-write of one bucket with compare-and-swap, retried at most
/// [`MAX_CAS_RETRIES`](SlidingCounter::MAX_CAS_RETRIES) times; the retries are returned so the filter can count
/// contention. A checked write succeeds only on the value it was computed from, so every successful add is counted
/// exactly once and a failed one ([`CounterError`]) not at all.
///
/// A never-written bucket has no CAS token; it is written with [`CREATE_CAS`](crate::CREATE_CAS), which creates it
/// only if no other VM did since we read it as missing (else: a CAS mismatch, and a retry like any other). So no
/// write is ever blind, and with two workers under parallel load N adds count N.
///
/// The hash is keyed by a salt (`salted`), the same for every VM of one Envoy and secret to everyone else, so keys
/// that share a bucket cannot be searched offline. Unsalted (all zero) in tests and tools.
///
/// # Cost
///
/// A change hashes the key, builds the bucket key on the stack, reads the bucket (`1 + 32 × 8` = 257 bytes) and
/// writes it back in place. [`estimate`](SlidingCounter::estimate) is one read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlidingCounter {
    table: Table,
    window_ms: u64,
}

impl SlidingCounter {
    /// The same counter with its bucket hash keyed by `salt` (the same for every VM of one Envoy).
    #[must_use]
    pub fn salted(mut self, salt: Salt) -> SlidingCounter {
        self.table.salt = salt;
        self
    }

    /// Slots per bucket (all counters).
    pub const WAYS: u32 = WAYS as u32;
    /// Compare-and-swap retries a change makes before giving up (all counters).
    pub const MAX_CAS_RETRIES: u32 = MAX_CAS_RETRIES;

    /// The counter named `name` (part of its shared-data keys) with room for `max_keys` keys, rounded up to a whole
    /// number of buckets (at least one), counting over a sliding window of `window_ms` (0 counts as 1).
    ///
    /// Every VM must use the same parameters for the same counter: they decide where and how a key is stored.
    pub fn new(name: &str, max_keys: u32, window_ms: u64) -> SlidingCounter {
        SlidingCounter {
            table: Table::new(name, max_keys, SLIDING_VERSION, SLIDING_SLOT_LEN),
            window_ms: window_ms.max(1),
        }
    }

    /// The counter's name.
    pub fn name(&self) -> &str {
        &self.table.name
    }

    /// The window length in milliseconds.
    pub fn window_ms(&self) -> u64 {
        self.window_ms
    }

    /// Counts `n` events for `key` at `now_ms`. Returns the estimate over the window ending at `now_ms`, this add
    /// included, and the compare-and-swap retries used. Counts saturate at `u32::MAX` per sub-window.
    ///
    /// # Errors
    ///
    /// [`CounterError::Contention`] when the bucket changed under us on every one of
    /// [`MAX_CAS_RETRIES`](SlidingCounter::MAX_CAS_RETRIES) + 1 attempts; [`CounterError::WriteFailed`] when the
    /// host refused the write. Nothing is counted then.
    pub fn add(&self, store: &dyn SharedData, key: &[u8], now_ms: u64, n: u32) -> Result<(u64, u32), CounterError> {
        let window = self.window_ms;
        let start = now_ms - now_ms % window;
        self.table.update(store, key, |body, fingerprint| {
            let live = |slot: &[u8]| rolled(slot, start, window) != (0, 0);
            let weight = |slot: &[u8]| weighted(rolled(slot, start, window), now_ms, start, window);
            let (index, found) = match choose(body, SLIDING_SLOT_LEN, fingerprint, live, weight) {
                Some(Choice::Found(index)) => (index, true),
                Some(Choice::Take(index)) => (index, false),
                None => return Step::Keep(0),
            };
            let Some(slot) = slot_mut(body, SLIDING_SLOT_LEN, index) else { return Step::Keep(0) };
            let (current, previous) = if found { rolled(slot, start, window) } else { (0, 0) };
            let slot_start = if found { read_u64(slot, SLIDING_START).max(start) } else { start };
            let current = current.saturating_add(n);
            put(slot, 0, fingerprint);
            put(slot, SLIDING_START, &slot_start.to_le_bytes());
            put(slot, SLIDING_CURRENT, &current.to_le_bytes());
            put(slot, SLIDING_PREVIOUS, &previous.to_le_bytes());
            move_to_front(body, SLIDING_SLOT_LEN, index);
            Step::Write(weighted((current, previous), now_ms, start, window))
        })
    }

    /// The estimate for `key` over the window ending at `now_ms`; 0 for a key never counted (or evicted). One read.
    pub fn estimate(&self, store: &dyn SharedData, key: &[u8], now_ms: u64) -> u64 {
        let window = self.window_ms;
        let start = now_ms - now_ms % window;
        self.table.find(store, key, |slot| weighted(rolled(slot, start, window), now_ms, start, window)).unwrap_or(0)
    }
}

/// A slot's `(current, previous)` counts as seen from the sub-window starting at `start`.
fn rolled(slot: &[u8], start: u64, window: u64) -> (u32, u32) {
    let (slot_start, current, previous) =
        (read_u64(slot, SLIDING_START), read_u32(slot, SLIDING_CURRENT), read_u32(slot, SLIDING_PREVIOUS));
    if slot_start >= start {
        // This sub-window, or a later one written by a VM whose clock is ahead.
        (current, previous)
    } else if slot_start.saturating_add(window) == start {
        (0, current)
    } else {
        (0, 0)
    }
}

/// `current + previous × (window − elapsed) / window`, where `elapsed` is the time since `start`.
fn weighted((current, previous): (u32, u32), now_ms: u64, start: u64, window: u64) -> u64 {
    let remaining = window.saturating_sub(now_ms.saturating_sub(start));
    let carried = u128::from(previous) * u128::from(remaining) / u128::from(window);
    u64::from(current).saturating_add(u64::try_from(carried).unwrap_or(u64::MAX))
}

/// Per key, the number of distinct items (endpoints, status classes) seen in a window, in shared data.
///
/// ```
/// use portcullis_shared_state::{DistinctCounter, MemoryStore};
///
/// let store = MemoryStore::new();
/// let endpoints = DistinctCounter::new("4xx-endpoints-per-token", 10_000, 60_000, 16);
/// assert_eq!(endpoints.add(&store, b"token-1", b"GET /users/{id}", 0), Ok((1, 0)));
/// assert_eq!(endpoints.add(&store, b"token-1", b"GET /users/{id}", 10), Ok((1, 0)));
/// assert_eq!(endpoints.add(&store, b"token-1", b"GET /orders/{id}", 20), Ok((2, 0)));
/// assert_eq!(endpoints.count(&store, b"token-1", 60_000), 0, "the window started at 0 and is over");
/// ```
///
/// Layout, identity, concurrency and the eviction tie-break are those of [`SlidingCounter`]. A slot is
/// `fingerprint[16] | window_start_ms u64 | count u8 | items[max_distinct]` (u32 each): the set of items seen,
/// each as the first 4 bytes of the keyed hash of `name || 0x01 || item`. Two distinct items collide with probability
/// 2⁻³², so a count can rarely be one short; items themselves are never stored.
///
/// # Window reset rule
///
/// A key's window starts at the first add that finds no live set for it, and lasts `window_ms`: until
/// `window_start + window_ms` the set grows, and from then on the key reads 0 and its next add starts a new window
/// with that item alone. (A tumbling window per key: a burst is never split by a boundary it did not start.)
///
/// # Saturation
///
/// The set keeps at most `max_distinct` items (1 to 64). The next new item saturates it: the count is then
/// `max_distinct + 1`, meaning "more than `max_distinct`", until the window ends.
///
/// # Eviction
///
/// When a bucket is full of live sets, the set with the lowest count is replaced (among equals, the least recently
/// written). A set's slot is rewritten only when its count changes: repeating a known item is one read, no write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DistinctCounter {
    table: Table,
    window_ms: u64,
    max_distinct: u32,
}

impl DistinctCounter {
    /// The same counter with its bucket hash keyed by `salt` (the same for every VM of one Envoy).
    #[must_use]
    pub fn salted(mut self, salt: Salt) -> DistinctCounter {
        self.table.salt = salt;
        self
    }

    /// The largest `max_distinct` a counter accepts.
    pub const MAX_DISTINCT: u32 = MAX_DISTINCT;

    /// The counter named `name` with room for `max_keys` keys (rounded up to whole buckets), counting up to
    /// `max_distinct` items per key (clamped to 1..=64) over windows of `window_ms` (0 counts as 1).
    ///
    /// Every VM must use the same parameters for the same counter.
    pub fn new(name: &str, max_keys: u32, window_ms: u64, max_distinct: u32) -> DistinctCounter {
        let max_distinct = max_distinct.clamp(1, MAX_DISTINCT);
        let slot_len = DISTINCT_ITEMS + 4 * max_distinct as usize;
        DistinctCounter {
            table: Table::new(name, max_keys, DISTINCT_VERSION, slot_len),
            window_ms: window_ms.max(1),
            max_distinct,
        }
    }

    /// The counter's name.
    pub fn name(&self) -> &str {
        &self.table.name
    }

    /// Items tracked per key; a count of `max_distinct() + 1` means "more than this".
    pub fn max_distinct(&self) -> u32 {
        self.max_distinct
    }

    /// Records that `key` saw `item` at `now_ms`. Returns the number of distinct items in the key's window, this
    /// one included (`max_distinct + 1` once saturated), and the compare-and-swap retries used.
    ///
    /// # Errors
    ///
    /// As for [`SlidingCounter::add`]; the item is not recorded then.
    pub fn add(
        &self,
        store: &dyn SharedData,
        key: &[u8],
        item: &[u8],
        now_ms: u64,
    ) -> Result<(u32, u32), CounterError> {
        self.add_until(store, key, item, now_ms).map(|(count, retries, _)| (count, retries))
    }

    /// As [`add`](DistinctCounter::add), also returning when the key's window ends: until then, adding the same
    /// item again changes nothing (a caller may skip it).
    ///
    /// # Errors
    ///
    /// As for [`SlidingCounter::add`].
    pub fn add_until(
        &self,
        store: &dyn SharedData,
        key: &[u8],
        item: &[u8],
        now_ms: u64,
    ) -> Result<(u32, u32, u64), CounterError> {
        let item = self.item_fingerprint(item);
        let (window, max) = (self.window_ms, self.max_distinct);
        let slot_len = self.table.slot_len;
        let ((count, start), retries) = self.table.update(store, key, |body, fingerprint| {
            let live = |slot: &[u8]| distinct_live(slot, now_ms, window);
            let weight = |slot: &[u8]| u64::from(read_u8(slot, DISTINCT_COUNT));
            let (index, found) = match choose(body, slot_len, fingerprint, live, weight) {
                Some(Choice::Found(index)) => (index, true),
                Some(Choice::Take(index)) => (index, false),
                None => return Step::Keep((0, now_ms)),
            };
            let Some(slot) = slot_mut(body, slot_len, index) else { return Step::Keep((0, now_ms)) };
            let count = if found { u32::from(read_u8(slot, DISTINCT_COUNT)) } else { 0 };
            if found {
                let start = read_u64(slot, DISTINCT_START);
                let stored = count.min(max) as usize;
                let known = (0..stored).any(|i| read_u32(slot, DISTINCT_ITEMS + 4 * i) == item);
                if known || count > max {
                    return Step::Keep((count, start));
                }
            } else {
                slot.fill(0);
                put(slot, 0, fingerprint);
                put(slot, DISTINCT_START, &now_ms.to_le_bytes());
            }
            let start = read_u64(slot, DISTINCT_START);
            if count < max {
                put(slot, DISTINCT_ITEMS + 4 * count as usize, &item.to_le_bytes());
            }
            let count = count + 1;
            // `count` is at most MAX_DISTINCT + 1 = 65, which fits a byte.
            put(slot, DISTINCT_COUNT, &[u8::try_from(count).unwrap_or(u8::MAX)]);
            move_to_front(body, slot_len, index);
            Step::Write((count, start))
        })?;
        Ok((count, retries, start.saturating_add(window)))
    }

    /// The number of distinct items `key` saw in its window, as of `now_ms` (0 when the window is over or the key
    /// was never seen or was evicted). One read.
    pub fn count(&self, store: &dyn SharedData, key: &[u8], now_ms: u64) -> u32 {
        let window = self.window_ms;
        self.table
            .find(store, key, |slot| {
                if distinct_live(slot, now_ms, window) {
                    u32::from(read_u8(slot, DISTINCT_COUNT))
                } else {
                    0
                }
            })
            .unwrap_or(0)
    }

    /// The first 4 bytes of the keyed hash of `name || 0x01 || item`.
    fn item_fingerprint(&self, item: &[u8]) -> u32 {
        let digest = buckets::keyed_hash(&self.table.salt, &self.table.name, 1, item);
        digest.first_chunk::<4>().map_or(0, |head| u32::from_le_bytes(*head))
    }
}

/// A set is live while it has items and its window (from its first item) is not over.
fn distinct_live(slot: &[u8], now_ms: u64, window: u64) -> bool {
    read_u8(slot, DISTINCT_COUNT) > 0 && now_ms < read_u64(slot, DISTINCT_START).saturating_add(window)
}

/// The footprint of every counter is its table's: `buckets × (1 + slot × 8)` bytes at most, where the slot is 32
/// bytes for [`SlidingCounter`], `25 + 4 × max_distinct` for [`DistinctCounter`] and 90 for [`LastSeen`].
macro_rules! table_footprint {
    ($($counter:ty),*) => {$(
        impl Footprint for $counter {
            fn buckets(&self) -> u32 {
                self.table.buckets
            }

            fn capacity(&self) -> u64 {
                self.table.capacity()
            }

            fn shared_bytes_budget(&self) -> u64 {
                self.table.shared_bytes_budget()
            }

            fn stored_bytes(&self, store: &dyn SharedData, bucket: u32) -> u64 {
                self.table.stored_bytes(store, bucket)
            }
        }
    )*};
}

table_footprint!(SlidingCounter, DistinctCounter, LastSeen);

/// A value recorded by [`LastSeen`]: the value itself when it was at most 64 bytes, else its SHA-256.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeenValue {
    bytes: [u8; SEEN_VALUE_MAX],
    len: u8,
    digest: bool,
}

impl SeenValue {
    /// Longest value kept verbatim.
    pub const MAX_VERBATIM: usize = SEEN_VALUE_MAX;

    /// The value as stored: the value itself, or its 32-byte SHA-256 when [`is_digest`](SeenValue::is_digest).
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or_default()
    }

    /// True when the value was longer than [`MAX_VERBATIM`](SeenValue::MAX_VERBATIM) and only its SHA-256 is kept.
    pub fn is_digest(&self) -> bool {
        self.digest
    }

    /// True when `value` is the value recorded (compared by SHA-256 for long values).
    pub fn matches(&self, value: &[u8]) -> bool {
        SeenValue::of(value) == *self
    }

    fn of(value: &[u8]) -> SeenValue {
        let mut bytes = [0u8; SEEN_VALUE_MAX];
        if value.len() <= SEEN_VALUE_MAX {
            put(&mut bytes, 0, value);
            // At most 64, which fits a byte.
            SeenValue { bytes, len: u8::try_from(value.len()).unwrap_or(0), digest: false }
        } else {
            let digest: [u8; 32] = Sha256::digest(value).into();
            put(&mut bytes, 0, &digest);
            SeenValue { bytes, len: 32, digest: true }
        }
    }

    fn decode(slot: &[u8]) -> Option<SeenValue> {
        let digest = match read_u8(slot, SEEN_KIND) {
            KIND_VERBATIM => false,
            KIND_DIGEST => true,
            _ => return None,
        };
        let len = read_u8(slot, SEEN_LEN).min(SEEN_VALUE_MAX as u8);
        let bytes = slot.get(SEEN_VALUE..SEEN_VALUE + SEEN_VALUE_MAX)?.try_into().ok()?;
        Some(SeenValue { bytes, len, digest })
    }

    fn encode(&self, slot: &mut [u8]) {
        put(slot, SEEN_KIND, &[if self.digest { KIND_DIGEST } else { KIND_VERBATIM }]);
        put(slot, SEEN_LEN, &[self.len]);
        put(slot, SEEN_VALUE, &self.bytes);
    }
}

/// Per key, the last value seen and when: "which client address did this token last come from?"
///
/// ```
/// use portcullis_shared_state::{LastSeen, MemoryStore};
///
/// let store = MemoryStore::new();
/// let address = LastSeen::new("token-address", 10_000);
/// assert_eq!(address.record(&store, b"token-1", b"10.0.0.1", 1_000), Ok(None));
/// let (previous, at_ms) = address.record(&store, b"token-1", b"10.0.0.2", 2_000).unwrap().unwrap();
/// assert_eq!((previous.as_bytes(), at_ms), (&b"10.0.0.1"[..], 1_000));
/// assert!(address.get(&store, b"token-1").unwrap().0.matches(b"10.0.0.2"));
/// ```
///
/// Layout, identity and concurrency are those of [`SlidingCounter`]. A slot is
/// `fingerprint[16] | at_ms u64 | kind u8 | len u8 | value[64]`, kind 0 free, 1 verbatim, 2 SHA-256 of a value
/// longer than 64 bytes. Short values (client addresses, country codes) are stored as given: they are the point.
///
/// Facts do not expire. **Eviction rule: when a bucket is full, the key seen least recently is replaced** (its
/// next record then returns `None`, as for a new key).
///
/// [`record`](LastSeen::record) writes every time the value or the time changes; with millisecond clocks that is
/// one bucket write per call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LastSeen {
    table: Table,
}

impl LastSeen {
    /// The same counter with its bucket hash keyed by `salt` (the same for every VM of one Envoy).
    #[must_use]
    pub fn salted(mut self, salt: Salt) -> LastSeen {
        self.table.salt = salt;
        self
    }

    /// The facts named `name` with room for `max_keys` keys (rounded up to whole buckets).
    pub fn new(name: &str, max_keys: u32) -> LastSeen {
        LastSeen { table: Table::new(name, max_keys, LAST_SEEN_VERSION, LAST_SEEN_SLOT_LEN) }
    }

    /// The facts' name.
    pub fn name(&self) -> &str {
        &self.table.name
    }

    /// Records that `key` was seen with `value` at `now_ms`. Returns what was recorded before (value and time), if
    /// anything. Nothing is written when the same value is already recorded at `now_ms` or later.
    ///
    /// # Errors
    ///
    /// As for [`SlidingCounter::add`]; nothing is recorded then.
    pub fn record(
        &self,
        store: &dyn SharedData,
        key: &[u8],
        value: &[u8],
        now_ms: u64,
    ) -> Result<Option<(SeenValue, u64)>, CounterError> {
        self.record_counting_retries(store, key, value, now_ms).map(|(previous, _)| previous)
    }

    /// The value last recorded for `key` and when; `None` for a key never recorded (or evicted). One read.
    pub fn get(&self, store: &dyn SharedData, key: &[u8]) -> Option<(SeenValue, u64)> {
        self.table.find(store, key, |slot| SeenValue::decode(slot).map(|v| (v, read_u64(slot, SEEN_AT)))).flatten()
    }

    /// As [`record`](LastSeen::record), also returning the compare-and-swap retries used.
    ///
    /// # Errors
    ///
    /// As for [`SlidingCounter::add`].
    #[allow(clippy::type_complexity)]
    pub fn record_counting_retries(
        &self,
        store: &dyn SharedData,
        key: &[u8],
        value: &[u8],
        now_ms: u64,
    ) -> Result<(Option<(SeenValue, u64)>, u32), CounterError> {
        let value = SeenValue::of(value);
        self.table.update(store, key, |body, fingerprint| {
            let live = |slot: &[u8]| read_u8(slot, SEEN_KIND) != KIND_FREE;
            let weight = |slot: &[u8]| read_u64(slot, SEEN_AT);
            let (index, found) = match choose(body, LAST_SEEN_SLOT_LEN, fingerprint, live, weight) {
                Some(Choice::Found(index)) => (index, true),
                Some(Choice::Take(index)) => (index, false),
                None => return Step::Keep(None),
            };
            let Some(slot) = slot_mut(body, LAST_SEEN_SLOT_LEN, index) else { return Step::Keep(None) };
            let previous = if found { SeenValue::decode(slot).map(|v| (v, read_u64(slot, SEEN_AT))) } else { None };
            if previous.is_some_and(|(v, at)| v == value && at >= now_ms) {
                return Step::Keep(previous);
            }
            put(slot, 0, fingerprint);
            put(slot, SEEN_AT, &now_ms.to_le_bytes());
            value.encode(slot);
            move_to_front(body, LAST_SEEN_SLOT_LEN, index);
            Step::Write(previous)
        })
    }
}

/// The bucketed table under every counter: name, size, and the layout of its values.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Table {
    name: Box<str>,
    buckets: u32,
    version: u8,
    slot_len: usize,
    salt: Salt,
}

/// What a change does to a bucket: nothing to write, or write the changed bucket; with the caller's answer.
enum Step<R> {
    Keep(R),
    Write(R),
}

/// Where a key goes in a bucket.
enum Choice {
    /// The key's live slot.
    Found(usize),
    /// A free slot, or the one to evict.
    Take(usize),
}

impl Table {
    fn new(name: &str, max_keys: u32, version: u8, slot_len: usize) -> Table {
        Table {
            name: name.into(),
            buckets: max_keys.div_ceil(WAYS as u32).max(1),
            version,
            slot_len,
            salt: Salt::default(),
        }
    }

    fn value_len(&self) -> usize {
        1 + self.slot_len * WAYS
    }

    fn capacity(&self) -> u64 {
        u64::from(self.buckets) * WAYS as u64
    }

    fn shared_bytes_budget(&self) -> u64 {
        u64::from(self.buckets) * self.value_len() as u64
    }

    fn stored_bytes(&self, store: &dyn SharedData, bucket: u32) -> u64 {
        self.with_bucket_key(bucket, |key| store.get(key).0.map_or(0, |v| v.len() as u64))
    }

    /// `f` of `key`'s slot, if the key has one (live or not: `f` decides). One read.
    fn find<R>(&self, store: &dyn SharedData, key: &[u8], f: impl FnOnce(&[u8]) -> R) -> Option<R> {
        let (bucket, fingerprint) = self.locate(key);
        let value = self.with_bucket_key(bucket, |bucket_key| store.get(bucket_key).0)?;
        let body = self.body(&value)?;
        body.chunks_exact(self.slot_len).find(|slot| slot.starts_with(&fingerprint)).map(f)
    }

    /// The slots of a bucket value; none when it does not decode.
    fn body<'v>(&self, value: &'v [u8]) -> Option<&'v [u8]> {
        match value.split_first() {
            Some((version, body)) if *version == self.version && value.len() == self.value_len() => Some(body),
            _ => None,
        }
    }

    /// Read-modify-write of `key`'s bucket with compare-and-swap; `change` gets the slots and the key's
    /// fingerprint. Returns `change`'s answer and the retries used.
    fn update<R>(
        &self,
        store: &dyn SharedData,
        key: &[u8],
        mut change: impl FnMut(&mut [u8], &Fingerprint) -> Step<R>,
    ) -> Result<(R, u32), CounterError> {
        let (bucket, fingerprint) = self.locate(key);
        self.with_bucket_key(bucket, |bucket_key| {
            let mut retries = 0;
            loop {
                let (value, cas) = store.get(bucket_key);
                // Create-if-absent for a bucket never written: see "Concurrency".
                let cas = if value.is_none() { Some(CREATE_CAS) } else { cas };
                // Decode in place: the value read is the buffer written back.
                let mut value = match value {
                    Some(value) if self.body(&value).is_some() => value,
                    _ => self.empty(),
                };
                let answer = match change(value.get_mut(1..).unwrap_or_default(), &fingerprint) {
                    Step::Keep(answer) => return Ok((answer, retries)),
                    Step::Write(answer) => answer,
                };
                match store.set(bucket_key, &value, cas) {
                    Ok(()) => return Ok((answer, retries)),
                    Err(WriteError::CasMismatch) if retries < MAX_CAS_RETRIES => retries += 1,
                    Err(WriteError::CasMismatch) => return Err(CounterError::Contention),
                    Err(WriteError::Failed) => return Err(CounterError::WriteFailed),
                }
            }
        })
    }

    fn empty(&self) -> Vec<u8> {
        let mut value = vec![0u8; self.value_len()];
        put(&mut value, 0, &[self.version]);
        value
    }

    /// The bucket and fingerprint of `key`.
    fn locate(&self, key: &[u8]) -> (u32, Fingerprint) {
        buckets::locate(&self.salt, &self.name, self.buckets, key)
    }

    /// Calls `f` with this structure's shared-data key for `bucket`.
    fn with_bucket_key<R>(&self, bucket: u32, f: impl FnOnce(&str) -> R) -> R {
        buckets::with_bucket_key(KEY_PREFIX, &self.name, bucket, f)
    }
}

/// The key's live slot; else the first free one; else the live slot of lowest `weight`, the last (least recently
/// written) among equals. `None` only for an empty body.
fn choose(
    body: &[u8],
    slot_len: usize,
    fingerprint: &Fingerprint,
    live: impl Fn(&[u8]) -> bool,
    weight: impl Fn(&[u8]) -> u64,
) -> Option<Choice> {
    let mut free = None;
    let mut lightest: Option<(usize, u64)> = None;
    for (index, slot) in body.chunks_exact(slot_len).enumerate() {
        if !live(slot) {
            // The key's own expired slot first, so a key never has two slots.
            if slot.starts_with(fingerprint) || free.is_none() {
                free = Some(index);
            }
            continue;
        }
        if slot.starts_with(fingerprint) {
            return Some(Choice::Found(index));
        }
        let w = weight(slot);
        if lightest.is_none_or(|(_, lowest)| w <= lowest) {
            lightest = Some((index, w));
        }
    }
    free.or(lightest.map(|(index, _)| index)).map(Choice::Take)
}

fn slot_mut(body: &mut [u8], slot_len: usize, index: usize) -> Option<&mut [u8]> {
    body.chunks_exact_mut(slot_len).nth(index)
}

/// Moves slot `index` to the front, shifting the ones before it back: most recently written first.
fn move_to_front(body: &mut [u8], slot_len: usize, index: usize) {
    if let Some(head) = body.get_mut(..(index + 1) * slot_len) {
        head.rotate_right(slot_len);
    }
}

fn put(slot: &mut [u8], at: usize, bytes: &[u8]) {
    if let Some(field) = slot.get_mut(at..at + bytes.len()) {
        field.copy_from_slice(bytes);
    }
}

fn read_u8(slot: &[u8], at: usize) -> u8 {
    slot.get(at).copied().unwrap_or(0)
}

fn read_u32(slot: &[u8], at: usize) -> u32 {
    slot.get(at..at + 4).and_then(|b| b.try_into().ok()).map_or(0, u32::from_le_bytes)
}

fn read_u64(slot: &[u8], at: usize) -> u64 {
    slot.get(at..at + 8).and_then(|b| b.try_into().ok()).map_or(0, u64::from_le_bytes)
}

#[cfg(test)]
mod tests {
    use std::cell::{Cell, RefCell};
    use std::time::Instant;

    use super::*;
    use crate::{Cas, MemoryStore};

    use crate::buckets::testing::SplitMix;

    /// `n` keys that land in `bucket` of `table`.
    fn keys_in_bucket(table: &Table, bucket: u32, n: usize) -> Vec<Vec<u8>> {
        crate::buckets::testing::keys_in_bucket(|key| table.locate(key).0, bucket, n)
    }

    #[test]
    fn sliding_window_weights_the_previous_sub_window() {
        let store = MemoryStore::new();
        let counter = SlidingCounter::new("c", 100, 1_000);
        assert_eq!(counter.estimate(&store, b"k", 0), 0);
        assert_eq!(store.key_count(), 0, "a read creates no key");
        assert_eq!(counter.add(&store, b"k", 100, 10), Ok((10, 0)));
        assert_eq!(counter.add(&store, b"k", 999, 10), Ok((20, 0)));
        assert_eq!(counter.estimate(&store, b"k", 999), 20);
        // Next sub-window: the previous 20 weigh (1000 - elapsed) / 1000.
        assert_eq!(counter.estimate(&store, b"k", 1_000), 20);
        assert_eq!(counter.estimate(&store, b"k", 1_250), 15);
        assert_eq!(counter.add(&store, b"k", 1_500, 4), Ok((14, 0)));
        assert_eq!(counter.estimate(&store, b"k", 1_999), 4);
        // Two sub-windows later the 20 are gone and the 4 weigh half.
        assert_eq!(counter.estimate(&store, b"k", 2_500), 2);
        assert_eq!(counter.estimate(&store, b"k", 3_000), 0);
        // An add after a long gap starts from zero.
        assert_eq!(counter.add(&store, b"k", 10_000, 1), Ok((1, 0)));
        // A VM whose clock is behind still counts its add.
        assert_eq!(counter.add(&store, b"k", 9_000, 1), Ok((2, 0)));
        assert_eq!(counter.estimate(&store, b"k", 10_000), 2);
        assert_eq!(counter.estimate(&store, b"other", 10_000), 0);
        assert_eq!(SlidingCounter::new("d", 100, 1_000).estimate(&store, b"k", 10_000), 0, "names are independent");
        assert_eq!(store.key_count(), 1);
    }

    #[test]
    fn stale_slots_are_reclaimed_and_full_buckets_evict_the_lowest_count() {
        let store = MemoryStore::new();
        let counter = SlidingCounter::new("c", 16, 1_000);
        let keys = keys_in_bucket(&counter.table, 0, 2 * WAYS + 2);
        for key in &keys[..WAYS] {
            counter.add(&store, key, 0, 5).unwrap();
        }
        // Two sub-windows later every slot is free: the next 8 keys reuse them, nothing is evicted.
        for key in &keys[WAYS..2 * WAYS] {
            counter.add(&store, key, 2_000, 1).unwrap();
        }
        assert!(keys[WAYS..2 * WAYS].iter().all(|key| counter.estimate(&store, key, 2_000) == 1));
        // Key 8 is heavier; the others tie at 1, and the least recently written of them (key 9) goes first.
        counter.add(&store, &keys[WAYS], 2_000, 1).unwrap();
        counter.add(&store, &keys[2 * WAYS], 2_000, 1).unwrap();
        assert_eq!(counter.estimate(&store, &keys[WAYS + 1], 2_000), 0, "evicted");
        assert_eq!(counter.estimate(&store, &keys[WAYS], 2_000), 2, "the heavier key stays");
        counter.add(&store, &keys[2 * WAYS + 1], 2_000, 1).unwrap();
        assert_eq!(counter.estimate(&store, &keys[WAYS + 2], 2_000), 0, "then the next least recent");
        assert_eq!(counter.estimate(&store, &keys[2 * WAYS], 2_000), 1, "the newcomer stays");
        assert_eq!(counter.estimate(&store, &keys[WAYS], 2_000), 2);
        assert_eq!(store.key_count(), 1);
    }

    #[test]
    fn garbage_bucket_values_read_as_empty() {
        let counter = SlidingCounter::new("c", 8, 1_000);
        let key = counter.table.with_bucket_key(0, str::to_owned);
        let mut wrong_version = counter.table.empty();
        wrong_version[0] = DISTINCT_VERSION;
        let mut torn = counter.table.empty();
        torn.pop();
        for junk in [vec![], vec![SLIDING_VERSION], b"junk".to_vec(), wrong_version, torn] {
            let store = MemoryStore::new();
            store.set(&key, &junk, None).unwrap();
            assert_eq!(counter.estimate(&store, b"k", 0), 0, "{junk:?}");
            assert_eq!(counter.add(&store, b"k", 0, 3), Ok((3, 0)));
            assert_eq!(store.get(&key).0.map(|v| v.len()), Some(1 + SLIDING_SLOT_LEN * WAYS));
        }
    }

    /// Other VMs writing the same bucket: before each of our checked writes, while `interfere` lasts, another VM
    /// adds 1 to one of `keys` (with probability `odds` in 256), so our write meets a CAS mismatch.
    struct Rivals {
        inner: MemoryStore,
        counter: SlidingCounter,
        keys: Vec<Vec<u8>>,
        counted: RefCell<Vec<u64>>,
        interfere: Cell<usize>,
        odds: u64,
        rng: RefCell<SplitMix>,
    }

    impl SharedData for Rivals {
        fn get(&self, key: &str) -> (Option<Vec<u8>>, Option<Cas>) {
            self.inner.get(key)
        }

        fn set(&self, key: &str, value: &[u8], cas: Option<Cas>) -> Result<(), WriteError> {
            let n = self.interfere.get();
            let roll = self.rng.borrow_mut().next();
            if cas.is_some() && n > 0 && roll % 256 < self.odds {
                self.interfere.set(n - 1);
                let which = (roll >> 8) as usize % self.keys.len();
                self.counter.add(&self.inner, &self.keys[which], 0, 1).unwrap();
                self.counted.borrow_mut()[which] += 1;
            }
            self.inner.set(key, value, cas)
        }
    }

    fn rivals(interfere: usize, odds: u64) -> Rivals {
        let counter = SlidingCounter::new("c", 8, 60_000);
        Rivals {
            inner: MemoryStore::new(),
            keys: keys_in_bucket(&counter.table, 0, 4),
            counter,
            counted: RefCell::new(vec![0; 4]),
            interfere: Cell::new(interfere),
            odds,
            rng: RefCell::new(SplitMix(7)),
        }
    }

    #[test]
    fn interleaved_writers_count_every_add_exactly_once() {
        let store = rivals(usize::MAX, 128);
        let counter = store.counter.clone();
        let mut rng = SplitMix(99);
        let (mut retries, mut contended) = (0u64, 0u64);
        for _ in 0..2_000 {
            let which = rng.next() as usize % store.keys.len();
            let n = 1 + (rng.next() % 3) as u32;
            match counter.add(&store, &store.keys[which].clone(), 0, n) {
                Ok((_, r)) => {
                    retries += u64::from(r);
                    store.counted.borrow_mut()[which] += u64::from(n);
                }
                Err(CounterError::Contention) => contended += 1,
                Err(e) => panic!("{e}"),
            }
        }
        assert!(retries > 1_000, "the rivals did interfere: {retries} retries");
        eprintln!("interleaved: {retries} retries, {contended} adds gave up");
        for (key, counted) in store.keys.iter().zip(store.counted.borrow().iter()) {
            assert_eq!(counter.estimate(&store, key, 0), *counted);
        }
    }

    #[test]
    fn too_much_contention_gives_up_and_counts_nothing() {
        let store = rivals(MAX_CAS_RETRIES as usize + 1, 256);
        let counter = store.counter.clone();
        let ours = keys_in_bucket(&counter.table, 0, 5).pop().unwrap();
        // Create the bucket first: the rivals only meddle with checked writes.
        counter.add(&store.inner, &store.keys[0], 0, 1).unwrap();
        assert_eq!(counter.add(&store, &ours, 0, 1), Err(CounterError::Contention));
        assert_eq!(counter.estimate(&store, &ours, 0), 0);
        assert_eq!(store.interfere.get(), 0, "exactly MAX_CAS_RETRIES + 1 attempts");
        assert_eq!(counter.add(&store, &ours, 0, 1), Ok((1, 0)), "once the others stop, it goes through");
        assert_eq!(counter.estimate(&store, &store.keys[0], 0), 1 + store.counted.borrow()[0]);
    }

    /// A new bucket is created with the create token; another VM creating it first makes ours retry.
    #[test]
    fn a_new_bucket_is_created_only_if_still_absent() {
        struct Recorder {
            inner: MemoryStore,
            writes: RefCell<Vec<bool>>,
        }
        impl SharedData for Recorder {
            fn get(&self, key: &str) -> (Option<Vec<u8>>, Option<Cas>) {
                self.inner.get(key)
            }
            fn set(&self, key: &str, value: &[u8], cas: Option<Cas>) -> Result<(), WriteError> {
                self.writes.borrow_mut().push(cas.is_some());
                self.inner.set(key, value, cas)
            }
        }
        let store = Recorder { inner: MemoryStore::new(), writes: RefCell::new(vec![]) };
        let counter = SlidingCounter::new("c", 8, 1_000);
        assert_eq!(counter.add(&store, b"k", 0, 1), Ok((1, 0)));
        assert_eq!(*store.writes.borrow(), [true], "one write, with the create token");
        assert_eq!(counter.add(&store, b"k", 0, 1), Ok((2, 0)));
        assert_eq!(*store.writes.borrow(), [true, true]);

        // Another VM creates the bucket between our read and our write: ours meets a mismatch and retries.
        struct Rival {
            inner: MemoryStore,
            counter: SlidingCounter,
            armed: Cell<bool>,
        }
        impl SharedData for Rival {
            fn get(&self, key: &str) -> (Option<Vec<u8>>, Option<Cas>) {
                self.inner.get(key)
            }
            fn set(&self, key: &str, value: &[u8], cas: Option<Cas>) -> Result<(), WriteError> {
                if self.armed.replace(false) {
                    self.counter.add(&self.inner, b"theirs", 0, 5).unwrap();
                }
                self.inner.set(key, value, cas)
            }
        }
        let counter = SlidingCounter::new("c", 1, 1_000);
        let store = Rival { inner: MemoryStore::new(), counter: counter.clone(), armed: Cell::new(true) };
        assert_eq!(counter.add(&store, b"ours", 0, 1), Ok((1, 1)), "one retry");
        assert_eq!(counter.estimate(&store, b"theirs", 0), 5, "their creation survived");
        assert_eq!(counter.estimate(&store, b"ours", 0), 1);
    }

    #[test]
    fn a_failed_write_is_reported() {
        struct Refusing;
        impl SharedData for Refusing {
            fn get(&self, _: &str) -> (Option<Vec<u8>>, Option<Cas>) {
                (None, None)
            }
            fn set(&self, _: &str, _: &[u8], _: Option<Cas>) -> Result<(), WriteError> {
                Err(WriteError::Failed)
            }
        }
        assert_eq!(SlidingCounter::new("c", 8, 10).add(&Refusing, b"k", 0, 1), Err(CounterError::WriteFailed));
        assert_eq!(DistinctCounter::new("d", 8, 10, 4).add(&Refusing, b"k", b"i", 0), Err(CounterError::WriteFailed));
        assert_eq!(LastSeen::new("l", 8).record(&Refusing, b"k", b"v", 0), Err(CounterError::WriteFailed));
    }

    #[test]
    fn distinct_items_count_once_saturate_and_reset() {
        let store = MemoryStore::new();
        let endpoints = DistinctCounter::new("d", 100, 1_000, 3);
        assert_eq!(endpoints.add(&store, b"t", b"/a", 100), Ok((1, 0)));
        let (_, cas) = store.get(&endpoints.table.with_bucket_key(endpoints.table.locate(b"t").0, str::to_owned));
        assert_eq!(endpoints.add(&store, b"t", b"/a", 200), Ok((1, 0)));
        assert_eq!(
            store.get(&endpoints.table.with_bucket_key(endpoints.table.locate(b"t").0, str::to_owned)).1,
            cas,
            "a known item writes nothing"
        );
        assert_eq!(endpoints.add(&store, b"t", b"/b", 300), Ok((2, 0)));
        assert_eq!(endpoints.add(&store, b"t", b"/c", 400), Ok((3, 0)));
        assert_eq!(endpoints.add(&store, b"t", b"/d", 500), Ok((4, 0)), "saturated: more than 3");
        assert_eq!(endpoints.add(&store, b"t", b"/e", 600), Ok((4, 0)));
        assert_eq!(endpoints.add(&store, b"t", b"/a", 700), Ok((4, 0)));
        assert_eq!(endpoints.count(&store, b"t", 1_099), 4);
        assert_eq!(endpoints.count(&store, b"other", 500), 0);
        // The window started at the first add (100): it is over at 1_100, and the next add starts afresh.
        assert_eq!(endpoints.count(&store, b"t", 1_100), 0);
        assert_eq!(endpoints.add(&store, b"t", b"/a", 1_100), Ok((1, 0)));
        assert_eq!(endpoints.add(&store, b"t", b"/b", 2_099), Ok((2, 0)));
        assert_eq!(endpoints.count(&store, b"t", 2_100), 0);
        assert_eq!(DistinctCounter::new("d", 8, 1, 0).max_distinct(), 1);
        assert_eq!(DistinctCounter::new("d", 8, 1, 1_000).max_distinct(), 64);
    }

    #[test]
    fn distinct_full_bucket_evicts_the_smallest_set() {
        let store = MemoryStore::new();
        let endpoints = DistinctCounter::new("d", 8, 1_000, 64);
        let keys = keys_in_bucket(&endpoints.table, 0, WAYS + 1);
        for (i, key) in keys[..WAYS].iter().enumerate() {
            for item in 0..=i {
                endpoints.add(&store, key, format!("/{item}").as_bytes(), 0).unwrap();
            }
        }
        assert_eq!(endpoints.add(&store, &keys[WAYS], b"/x", 0), Ok((1, 0)));
        assert_eq!(endpoints.count(&store, &keys[0], 0), 0, "the smallest set is replaced");
        assert!((1..=WAYS).all(|i| endpoints.count(&store, &keys[i], 0) == if i == WAYS { 1 } else { i as u32 + 1 }));
        let max = DistinctCounter::new("d", 8, 1_000, 64);
        let store = MemoryStore::new();
        for item in 0..100u32 {
            max.add(&store, b"k", &item.to_le_bytes(), 0).unwrap();
        }
        assert_eq!(max.count(&store, b"k", 0), 65);
    }

    #[test]
    fn last_seen_returns_the_previous_fact() {
        let store = MemoryStore::new();
        let seen = LastSeen::new("l", 16);
        assert_eq!(seen.get(&store, b"t"), None);
        assert_eq!(seen.record(&store, b"t", b"10.0.0.1", 1_000), Ok(None));
        let (previous, at) = seen.record(&store, b"t", b"10.0.0.1", 1_000).unwrap().unwrap();
        assert!(previous.matches(b"10.0.0.1") && !previous.is_digest() && at == 1_000);
        let (previous, at) = seen.record(&store, b"t", b"10.0.0.2", 2_000).unwrap().unwrap();
        assert_eq!((previous.as_bytes(), at), (&b"10.0.0.1"[..], 1_000));
        // Long values are kept as their SHA-256.
        let long = vec![b'x'; 65];
        seen.record(&store, b"t", &long, 3_000).unwrap();
        let (value, at) = seen.get(&store, b"t").unwrap();
        assert!(value.is_digest() && value.matches(&long) && !value.matches(&long[..64]) && at == 3_000);
        assert_eq!(value.as_bytes().len(), 32);
        let exact = vec![b'y'; 64];
        seen.record(&store, b"t", &exact, 4_000).unwrap();
        assert_eq!(seen.get(&store, b"t").unwrap().0.as_bytes(), &exact[..]);
        seen.record(&store, b"t", b"", 5_000).unwrap();
        assert_eq!(seen.get(&store, b"t").map(|(v, at)| (v.as_bytes().len(), at)), Some((0, 5_000)));
    }

    #[test]
    fn last_seen_evicts_the_least_recently_seen() {
        let store = MemoryStore::new();
        let seen = LastSeen::new("l", 8);
        let keys = keys_in_bucket(&seen.table, 0, WAYS + 1);
        for (i, key) in keys.iter().take(WAYS).enumerate() {
            seen.record(&store, key, b"a", 100 + i as u64).unwrap();
        }
        seen.record(&store, &keys[0], b"b", 200).unwrap();
        assert_eq!(seen.record_counting_retries(&store, &keys[WAYS], b"c", 300), Ok((None, 0)));
        assert_eq!(seen.get(&store, &keys[1]), None, "the least recently seen goes");
        assert!(keys.iter().enumerate().all(|(i, key)| i == 1 || seen.get(&store, key).is_some()));
    }

    #[test]
    fn sizes_and_budgets() {
        let sliding = SlidingCounter::new("requests-per-token", 10_000, 60_000);
        assert_eq!((sliding.buckets(), sliding.capacity()), (1_250, 10_000));
        assert_eq!(sliding.shared_bytes_budget(), 1_250 * (1 + 32 * 8));
        assert_eq!(sliding.shared_bytes_budget(), 321_250);
        let distinct = DistinctCounter::new("4xx-endpoints", 10_000, 60_000, 16);
        assert_eq!(distinct.shared_bytes_budget(), 1_250 * (1 + (25 + 4 * 16) * 8));
        assert_eq!(distinct.shared_bytes_budget(), 891_250);
        let seen = LastSeen::new("token-address", 10_000);
        assert_eq!(seen.shared_bytes_budget(), 1_250 * (1 + 90 * 8));
        assert_eq!(seen.shared_bytes_budget(), 901_250);
        assert_eq!(SlidingCounter::new("c", 0, 0).buckets(), 1);
        assert_eq!(SlidingCounter::new("c", 0, 0).window_ms(), 1);
        // A long name still works (its keys are built on the heap).
        let long = SlidingCounter::new(&"x".repeat(300), 16, 10);
        let store = MemoryStore::new();
        long.add(&store, b"k", 0, 1).unwrap();
        assert_eq!(long.estimate(&store, b"k", 0), 1);
    }

    /// One million distinct keys into a 10,000-key counter while 50 heavy keys take 1 operation in 100.
    /// Under Wasmtime (a debug build, interpreted hashing is slow) the flood is 200,000 keys.
    #[test]
    fn flood_stays_bounded_and_keeps_heavy_hitters() {
        const FLOOD: u64 = if cfg!(target_arch = "wasm32") { 200_000 } else { 1_000_000 };
        const HEAVY: u64 = 50;
        // One sub-window spans the flood: only eviction makes room.
        const WINDOW_MS: u64 = 100_000_000;
        let started = Instant::now();
        let store = MemoryStore::new();
        let counter = SlidingCounter::new("requests-per-token", 10_000, WINDOW_MS);
        let heavy = |i: u64| format!("heavy-token-{i}").into_bytes();
        let mut truth = [0u64; HEAVY as usize];
        let mut rng = SplitMix(42);
        let mut retries = 0u64;
        let mut ops = 0u64;
        while ops < FLOOD {
            let now = ops;
            if ops % 100 == 99 {
                let i = (ops / 100) % HEAVY;
                retries += u64::from(counter.add(&store, &heavy(i), now, 1).unwrap().1);
                truth[i as usize] += 1;
            } else {
                let key = [rng.next().to_le_bytes(), rng.next().to_le_bytes()].concat();
                retries += u64::from(counter.add(&store, &key, now, 1).unwrap().1);
            }
            ops += 1;
        }
        let estimates: Vec<u64> = (0..HEAVY).map(|i| counter.estimate(&store, &heavy(i), ops)).collect();
        let worst = estimates.iter().zip(&truth).map(|(e, t)| *e as f64 / *t as f64).fold(f64::INFINITY, f64::min);
        let bytes: u64 = (0..counter.buckets())
            .map(|b| counter.table.with_bucket_key(b, |key| store.get(key).0.map_or(0, |v| v.len() as u64)))
            .sum();
        eprintln!(
            "flood: {ops} operations in {:?}; {} keys, {bytes} bytes (budget {}); heavy keys: {} adds each, \
             worst estimate {:.1}% of truth",
            started.elapsed(),
            store.key_count(),
            counter.shared_bytes_budget(),
            truth[0],
            worst * 100.0,
        );
        assert_eq!(retries, 0);
        assert!(store.key_count() <= counter.buckets() as usize);
        assert!(bytes <= counter.shared_bytes_budget());
        for (i, (estimate, truth)) in estimates.iter().zip(&truth).enumerate() {
            assert!(estimate <= truth, "never over-counts: heavy {i}");
            assert!(*estimate * 10 >= truth * 9, "heavy {i}: {estimate} of {truth}");
        }
    }
}
