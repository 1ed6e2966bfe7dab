//! Bounded, self-expiring lists shared by every worker VM: "sensitive-endpoints", "abusive-tokens".
//!
//! The design (layout, identity, expiry, eviction rule, concurrency) is documented on [`TtlList`].

use std::fmt;

use crate::buckets::{self, Fingerprint, Salt, FINGERPRINT_LEN};
use crate::{Footprint, SharedData, WriteError, CREATE_CAS};

/// Slots per bucket.
const WAYS: usize = 8;
/// First byte of a bucket value.
const VERSION: u8 = 1;
/// `fingerprint[16] | expires_at_ms u64 LE`.
const SLOT_LEN: usize = FINGERPRINT_LEN + 8;
/// A full bucket value, as written.
const VALUE_LEN: usize = 1 + SLOT_LEN * WAYS;
const KEY_PREFIX: &str = "portcullis.list.";

/// A bounded, self-expiring set of keys in shared data, seen by every worker VM.
///
/// A `TtlList` answers "was this key added less than its TTL ago?" for every worker of one Envoy. It costs a fixed
/// number of shared-data keys and bytes whatever the traffic, and entries expire by themselves: nothing has to sweep.
///
/// ```
/// use portcullis_shared_state::{AddOutcome, MemoryStore, TtlList};
///
/// let store = MemoryStore::new();
/// let list = TtlList::new("sensitive-endpoints", 10_000);
/// let outcome = list.add(&store, b"GET /users/{id}", 0, 60_000);
/// assert_eq!(outcome, Ok(AddOutcome::Added { retries: 0 }));
/// assert!(list.contains(&store, b"GET /users/{id}", 59_999));
/// assert!(!list.contains(&store, b"GET /users/{id}", 60_000), "expired, with no sweep");
/// ```
///
/// # Layout
///
/// A list named `id` with room for `max_entries` is a set-associative table of `B = ceil(max_entries / 8)` buckets
/// of 8 ways each, bucket `b` stored under the key `portcullis.list.<id>.<b>`. Shared data never forgets a key, so
/// keys are never derived from request data: a list uses at most `B` keys, and
/// [`TtlList::shared_bytes_budget`] bytes of values, `B × (1 + 24 × 8)`.
///
/// A bucket value is a version byte (1) followed by 8 slots of 24 bytes (readers accept fewer):
/// `fingerprint[16] | expires_at_ms` (u64 little-endian). A slot with `expires_at_ms <= now` is free; the all-zero slot is free at any time. A value
/// that does not decode (wrong version, wrong length) reads as an empty bucket, and is overwritten by the next add.
///
/// # Identity
///
/// The 128-bit SipHash-1-3 of `id || 0x00 || key`, keyed by the list's salt (see [`TtlList::salted`]), is the
/// entry's fingerprint, and its first 8 bytes (a little-endian u64, modulo `B`) the bucket. Keys themselves (endpoint templates, token ids) are never
/// stored, so values stay fixed-size and shared memory holds no raw request data. Two keys share a fingerprint with
/// probability about 2⁻¹²⁸ per pair in a bucket: false positives are negligible.
///
/// # Expiry and eviction
///
/// Expiry lives in the values: [`TtlList::contains`] ignores expired slots, and [`TtlList::add`] reclaims them in
/// place (that is the sweep). Adding a key already present extends its expiry to the later of the two, and writes
/// nothing when that is the expiry it already has.
///
/// **Eviction rule: when a bucket is full of live entries, the entry closest to expiry is replaced.** Keys that are
/// added again and again (heavy hitters) are refreshed and survive a flood of one-off keys.
///
/// The hash is not keyed: someone who knows the list id can search offline for keys that land in one bucket and
/// use them to evict its entries early. Only that bucket's 8 entries are exposed, and only if the attacker can get
/// arbitrary keys added; a per-Envoy salt agreed through shared data would close it.
///
/// # Concurrency
///
/// Every change is a read-modify-write of one bucket with compare-and-swap, retried on
/// [`WriteError::CasMismatch`](crate::WriteError::CasMismatch) at most [`TtlList::MAX_CAS_RETRIES`] times; the
/// outcome reports the retries used, so the filter can count contention.
///
/// A bucket that was never written has no CAS token: it is written with [`CREATE_CAS`](crate::CREATE_CAS), which
/// creates it only if no other VM did since we read it as missing (else a CAS mismatch, and a retry). No write is
/// blind. (Should a host ever hand out an existing value without a token, the write is unchecked, so we read the
/// bucket again and retry if our entry is missing.)
///
/// # Cost
///
/// A `TtlList` holds only the list's name and size: cheap to create per bundle load and to clone.
/// [`contains`](TtlList::contains) hashes the key, builds the bucket key on the stack and makes one shared-data read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TtlList {
    id: Box<str>,
    buckets: u32,
    salt: Salt,
}

/// What [`TtlList::add`] did, and how many compare-and-swap retries it took (0 when nobody else wrote the bucket).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddOutcome {
    /// The key was not present; it took a free or expired slot.
    Added {
        /// Compare-and-swap retries used.
        retries: u32,
    },
    /// The key was present; its expiry is now the later of the old one and `now + ttl`.
    Refreshed {
        /// Compare-and-swap retries used.
        retries: u32,
    },
    /// The key was not present and its bucket was full: it replaced the live entry closest to expiry.
    Evicted {
        /// Compare-and-swap retries used.
        retries: u32,
    },
}

impl AddOutcome {
    /// Compare-and-swap retries used.
    pub fn retries(self) -> u32 {
        match self {
            AddOutcome::Added { retries } | AddOutcome::Refreshed { retries } | AddOutcome::Evicted { retries } => {
                retries
            }
        }
    }
}

/// Why a list change did not happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListError {
    /// Other VMs kept writing the bucket: [`TtlList::MAX_CAS_RETRIES`] retries were not enough.
    Contention,
    /// The host refused a write.
    WriteFailed,
}

impl fmt::Display for ListError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ListError::Contention => "list bucket contended: compare-and-swap retries exhausted",
            ListError::WriteFailed => "host refused a shared data write",
        })
    }
}

impl std::error::Error for ListError {}

/// One way of a bucket. `expires_at == 0` is never live, so the zero slot is a free one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Slot {
    fingerprint: Fingerprint,
    expires_at: u64,
}

impl Slot {
    fn is_live(&self, now_ms: u64) -> bool {
        self.expires_at > now_ms
    }

    fn holds(&self, fingerprint: &Fingerprint, now_ms: u64) -> bool {
        self.is_live(now_ms) && self.fingerprint == *fingerprint
    }

    fn decode(bytes: &[u8]) -> Option<Slot> {
        let (fingerprint, expires_at) = bytes.split_at_checked(FINGERPRINT_LEN)?;
        Some(Slot {
            fingerprint: fingerprint.try_into().ok()?,
            expires_at: u64::from_le_bytes(expires_at.try_into().ok()?),
        })
    }
}

type Bucket = [Slot; WAYS];

/// The slots of a bucket value, without allocating; none when the value does not decode.
fn slots(value: &[u8]) -> impl Iterator<Item = Slot> + '_ {
    let body = match value.split_first() {
        Some((&VERSION, body)) if body.len() % SLOT_LEN == 0 && body.len() <= SLOT_LEN * WAYS => body,
        _ => &[],
    };
    body.chunks_exact(SLOT_LEN).filter_map(Slot::decode)
}

fn decode(value: Option<&[u8]>) -> Bucket {
    let mut bucket = Bucket::default();
    for (slot, decoded) in bucket.iter_mut().zip(slots(value.unwrap_or_default())) {
        *slot = decoded;
    }
    bucket
}

fn encode(bucket: &Bucket) -> [u8; VALUE_LEN] {
    let mut value = [0u8; VALUE_LEN];
    if let Some((version, body)) = value.split_first_mut() {
        *version = VERSION;
        for (out, slot) in body.chunks_exact_mut(SLOT_LEN).zip(bucket) {
            if let Some((fingerprint, expires_at)) = out.split_at_mut_checked(FINGERPRINT_LEN) {
                fingerprint.copy_from_slice(&slot.fingerprint);
                expires_at.copy_from_slice(&slot.expires_at.to_le_bytes());
            }
        }
    }
    value
}

fn holds(value: Option<&[u8]>, fingerprint: &Fingerprint, now_ms: u64) -> bool {
    slots(value.unwrap_or_default()).any(|slot| slot.holds(fingerprint, now_ms))
}

/// What an add does to a bucket.
enum Change {
    /// Nothing to write: the key is present until at least the requested expiry.
    None,
    Added,
    Refreshed,
    Evicted,
}

impl TtlList {
    /// Slots per bucket: a bucket is full, and evicts, after this many live entries.
    pub const WAYS: u32 = WAYS as u32;
    /// Compare-and-swap retries an [`add`](TtlList::add) or [`remove`](TtlList::remove) makes before giving up.
    pub const MAX_CAS_RETRIES: u32 = 4;

    /// The list named `id` (part of its shared-data keys) with room for `max_entries` live entries, rounded up to a
    /// whole number of buckets (at least one).
    ///
    /// Every VM must use the same `id` and `max_entries` for the same list: they decide where a key lives.
    pub fn new(id: &str, max_entries: u32) -> TtlList {
        TtlList { id: id.into(), buckets: max_entries.div_ceil(TtlList::WAYS).max(1), salt: Salt::default() }
    }

    /// The same list with its bucket hash keyed by `salt` (the same for every VM of one Envoy).
    #[must_use]
    pub fn salted(self, salt: Salt) -> TtlList {
        TtlList { salt, ..self }
    }

    /// The list's name.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// True when `key` was added and has not expired at `now_ms`. One shared-data read; no other allocation.
    pub fn contains(&self, store: &dyn SharedData, key: &[u8], now_ms: u64) -> bool {
        let (bucket, fingerprint) = self.locate(key);
        self.with_bucket_key(bucket, |bucket_key| holds(store.get(bucket_key).0.as_deref(), &fingerprint, now_ms))
    }

    /// Adds `key` until `now_ms + ttl_ms` (a TTL of 0 counts as 1 ms), or extends its expiry if present.
    ///
    /// When the key's bucket is full of live entries, the entry closest to expiry is replaced
    /// ([`AddOutcome::Evicted`]).
    ///
    /// # Errors
    ///
    /// [`ListError::Contention`] when the bucket changed under us on every one of
    /// [`MAX_CAS_RETRIES`](TtlList::MAX_CAS_RETRIES) + 1 attempts; [`ListError::WriteFailed`] when the host refused
    /// the write. The list is unchanged by this call either way.
    pub fn add(&self, store: &dyn SharedData, key: &[u8], now_ms: u64, ttl_ms: u64) -> Result<AddOutcome, ListError> {
        let (bucket, fingerprint) = self.locate(key);
        let expires_at = now_ms.saturating_add(ttl_ms.max(1));
        self.with_bucket_key(bucket, |bucket_key| {
            for retries in 0..=TtlList::MAX_CAS_RETRIES {
                let (value, cas) = store.get(bucket_key);
                let cas = if value.is_none() { Some(CREATE_CAS) } else { cas };
                let mut slots = decode(value.as_deref());
                let outcome = match place(&mut slots, &fingerprint, now_ms, expires_at) {
                    Change::None => return Ok(AddOutcome::Refreshed { retries }),
                    Change::Added => AddOutcome::Added { retries },
                    Change::Refreshed => AddOutcome::Refreshed { retries },
                    Change::Evicted => AddOutcome::Evicted { retries },
                };
                match write(store, bucket_key, &slots, cas)? {
                    Written::Checked => return Ok(outcome),
                    // Unchecked only on a host that gave no token: check ours survived.
                    Written::Unchecked if holds(store.get(bucket_key).0.as_deref(), &fingerprint, now_ms) => {
                        return Ok(outcome)
                    }
                    Written::Unchecked | Written::Conflict => {}
                }
            }
            Err(ListError::Contention)
        })
    }

    /// Removes `key`. True when it was present (live); nothing is written when it was not.
    ///
    /// # Errors
    ///
    /// As for [`add`](TtlList::add).
    pub fn remove(&self, store: &dyn SharedData, key: &[u8], now_ms: u64) -> Result<bool, ListError> {
        let (bucket, fingerprint) = self.locate(key);
        self.with_bucket_key(bucket, |bucket_key| {
            for _ in 0..=TtlList::MAX_CAS_RETRIES {
                let (value, cas) = store.get(bucket_key);
                let cas = if value.is_none() { Some(CREATE_CAS) } else { cas };
                let mut slots = decode(value.as_deref());
                let mut present = false;
                for slot in slots.iter_mut().filter(|slot| slot.fingerprint == fingerprint) {
                    present |= slot.is_live(now_ms);
                    *slot = Slot::default();
                }
                if !present {
                    return Ok(false);
                }
                match write(store, bucket_key, &slots, cas)? {
                    Written::Checked => return Ok(true),
                    Written::Unchecked if !holds(store.get(bucket_key).0.as_deref(), &fingerprint, now_ms) => {
                        return Ok(true)
                    }
                    Written::Unchecked | Written::Conflict => {}
                }
            }
            Err(ListError::Contention)
        })
    }

    /// Number of live entries at `now_ms`. Reads every bucket: for tests and statistics, not the request path.
    pub fn live_entries(&self, store: &dyn SharedData, now_ms: u64) -> usize {
        (0..self.buckets)
            .map(|bucket| {
                self.with_bucket_key(bucket, |bucket_key| {
                    let value = store.get(bucket_key).0;
                    slots(value.as_deref().unwrap_or_default()).filter(|slot| slot.is_live(now_ms)).count()
                })
            })
            .sum()
    }

    /// The bucket and fingerprint of `key`.
    fn locate(&self, key: &[u8]) -> (u32, Fingerprint) {
        buckets::locate(&self.salt, &self.id, self.buckets, key)
    }

    /// Calls `f` with this structure's shared-data key for `bucket`.
    fn with_bucket_key<R>(&self, bucket: u32, f: impl FnOnce(&str) -> R) -> R {
        buckets::with_bucket_key(KEY_PREFIX, &self.id, bucket, f)
    }
}

/// A list's footprint: at most `buckets × (1 + 24 × 8)` bytes.
impl Footprint for TtlList {
    fn buckets(&self) -> u32 {
        self.buckets
    }

    fn capacity(&self) -> u64 {
        u64::from(self.buckets) * u64::from(TtlList::WAYS)
    }

    fn shared_bytes_budget(&self) -> u64 {
        u64::from(self.buckets) * VALUE_LEN as u64
    }

    fn stored_bytes(&self, store: &dyn SharedData, bucket: u32) -> u64 {
        self.with_bucket_key(bucket, |key| store.get(key).0.map_or(0, |v| v.len() as u64))
    }
}

/// Puts `fingerprint` in `slots` until `expires_at`: refresh, else a free or expired slot, else evict the live
/// entry closest to expiry.
fn place(slots: &mut Bucket, fingerprint: &Fingerprint, now_ms: u64, expires_at: u64) -> Change {
    if let Some(slot) = slots.iter_mut().find(|slot| slot.holds(fingerprint, now_ms)) {
        if slot.expires_at >= expires_at {
            return Change::None;
        }
        slot.expires_at = expires_at;
        return Change::Refreshed;
    }
    let new = Slot { fingerprint: *fingerprint, expires_at };
    if let Some(slot) = slots.iter_mut().find(|slot| !slot.is_live(now_ms)) {
        *slot = new;
        return Change::Added;
    }
    match slots.iter_mut().min_by_key(|slot| slot.expires_at) {
        Some(slot) => {
            *slot = new;
            Change::Evicted
        }
        // Unreachable: a bucket has WAYS > 0 slots.
        None => Change::None,
    }
}

/// How a bucket write went.
enum Written {
    /// Written under the CAS token we read: nobody wrote in between.
    Checked,
    /// Written without a token (the bucket had none): another VM may have overwritten it.
    Unchecked,
    /// Another VM wrote first; read again.
    Conflict,
}

fn write(store: &dyn SharedData, key: &str, slots: &Bucket, cas: Option<crate::Cas>) -> Result<Written, ListError> {
    // The host treats a token of 0 as "no check", like no token.
    let checked = cas.is_some_and(|cas| cas != 0);
    match store.set(key, &encode(slots), cas) {
        Ok(()) if checked => Ok(Written::Checked),
        Ok(()) => Ok(Written::Unchecked),
        Err(WriteError::CasMismatch) => Ok(Written::Conflict),
        Err(WriteError::Failed) => Err(ListError::WriteFailed),
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::time::Instant;

    use super::*;
    use crate::{Cas, MemoryStore};

    use crate::buckets::testing::SplitMix;

    /// `n` keys that land in `bucket` of `list`.
    fn keys_in_bucket(list: &TtlList, bucket: u32, n: usize) -> Vec<Vec<u8>> {
        crate::buckets::testing::keys_in_bucket(|key| list.locate(key).0, bucket, n)
    }

    #[test]
    fn add_then_contains_until_expiry() {
        let store = MemoryStore::new();
        let list = TtlList::new("sensitive-endpoints", 100);
        assert!(!list.contains(&store, b"GET /a", 0));
        assert_eq!(store.key_count(), 0, "a read creates no key");
        assert_eq!(list.add(&store, b"GET /a", 1_000, 500), Ok(AddOutcome::Added { retries: 0 }));
        assert!(list.contains(&store, b"GET /a", 1_000));
        assert!(list.contains(&store, b"GET /a", 1_499));
        assert!(!list.contains(&store, b"GET /a", 1_500), "gone after the TTL, with no sweep");
        assert!(!list.contains(&store, b"GET /b", 1_000));
        assert_eq!(list.live_entries(&store, 1_000), 1);
        assert_eq!(list.live_entries(&store, 1_500), 0);
        // Another list with the same keys is independent.
        assert!(!TtlList::new("abusive-tokens", 100).contains(&store, b"GET /a", 1_000));
    }

    #[test]
    fn refresh_extends_and_never_shortens() {
        let store = MemoryStore::new();
        let list = TtlList::new("l", 100);
        list.add(&store, b"k", 0, 1_000).unwrap();
        assert_eq!(list.add(&store, b"k", 500, 1_000), Ok(AddOutcome::Refreshed { retries: 0 }));
        assert!(list.contains(&store, b"k", 1_499));
        assert!(!list.contains(&store, b"k", 1_500));
        // A shorter TTL leaves the later expiry, and writes nothing.
        let (_, cas_before) = store.get(&list.key_for(b"k"));
        assert_eq!(list.add(&store, b"k", 600, 10), Ok(AddOutcome::Refreshed { retries: 0 }));
        assert_eq!(store.get(&list.key_for(b"k")).1, cas_before);
        assert!(list.contains(&store, b"k", 1_499));
        assert_eq!(list.live_entries(&store, 600), 1, "refreshed, not duplicated");
    }

    #[test]
    fn expired_slots_are_reclaimed_not_evicted() {
        let store = MemoryStore::new();
        let list = TtlList::new("l", 16);
        let keys = keys_in_bucket(&list, 0, 2 * WAYS);
        let (old, new) = keys.split_at(WAYS);
        for key in old {
            assert_eq!(list.add(&store, key, 0, 100), Ok(AddOutcome::Added { retries: 0 }));
        }
        for key in new {
            assert_eq!(list.add(&store, key, 100, 100), Ok(AddOutcome::Added { retries: 0 }));
        }
        assert!(new.iter().all(|key| list.contains(&store, key, 150)));
        assert_eq!(list.live_entries(&store, 150), WAYS);
    }

    #[test]
    fn full_bucket_evicts_the_entry_closest_to_expiry() {
        let store = MemoryStore::new();
        let list = TtlList::new("l", 16);
        assert_eq!(list.buckets(), 2);
        let keys = keys_in_bucket(&list, 0, WAYS + 2);
        // Entry i expires at 1_000 + i, except entry 3, which expires first.
        for (i, key) in keys.iter().take(WAYS).enumerate() {
            let ttl = if i == 3 { 500 } else { 1_000 + i as u64 };
            assert_eq!(list.add(&store, key, 0, ttl), Ok(AddOutcome::Added { retries: 0 }));
        }
        assert_eq!(list.add(&store, &keys[WAYS], 10, 1_000), Ok(AddOutcome::Evicted { retries: 0 }));
        assert!(!list.contains(&store, &keys[3], 10), "the entry closest to expiry is replaced");
        assert!(keys.iter().take(WAYS + 1).enumerate().all(|(i, key)| i == 3 || list.contains(&store, key, 10)));
        // Refreshing entry 0 (the earliest now) moves eviction to entry 1.
        assert_eq!(list.add(&store, &keys[0], 20, 5_000), Ok(AddOutcome::Refreshed { retries: 0 }));
        assert_eq!(list.add(&store, &keys[WAYS + 1], 20, 1_000), Ok(AddOutcome::Evicted { retries: 0 }));
        assert!(list.contains(&store, &keys[0], 20));
        assert!(!list.contains(&store, &keys[1], 20));
        assert_eq!(list.live_entries(&store, 20), WAYS);
        assert_eq!(store.key_count(), 1, "one bucket written");
    }

    #[test]
    fn remove_clears_the_entry() {
        let store = MemoryStore::new();
        let list = TtlList::new("l", 100);
        assert_eq!(list.remove(&store, b"k", 0), Ok(false));
        assert_eq!(store.key_count(), 0, "removing from a never-written bucket writes nothing");
        list.add(&store, b"k", 0, 1_000).unwrap();
        list.add(&store, b"other", 0, 1_000).unwrap();
        assert_eq!(list.remove(&store, b"k", 10), Ok(true));
        assert!(!list.contains(&store, b"k", 10));
        assert!(list.contains(&store, b"other", 10));
        assert_eq!(list.remove(&store, b"k", 10), Ok(false));
    }

    #[test]
    fn garbage_bucket_values_read_as_empty() {
        let list = TtlList::new("l", 8);
        assert_eq!(list.buckets(), 1);
        let key = list.key_for(b"k");
        let mut valid = vec![VERSION];
        valid.extend_from_slice(&[0xff; SLOT_LEN * WAYS]);
        let mut too_long = valid.clone();
        too_long.extend_from_slice(&[0xff; SLOT_LEN]);
        let mut wrong_version = valid.clone();
        wrong_version[0] = 2;
        let torn = valid[..valid.len() - 1].to_vec();
        for junk in [vec![], vec![VERSION], b"junk".to_vec(), too_long, wrong_version, torn] {
            let store = MemoryStore::new();
            store.set(&key, &junk, None).unwrap();
            assert!(!list.contains(&store, b"k", 0), "{junk:?}");
            assert_eq!(list.live_entries(&store, 0), 0, "{junk:?}");
            assert_eq!(list.remove(&store, b"k", 0), Ok(false));
            assert_eq!(list.add(&store, b"k", 0, 10), Ok(AddOutcome::Added { retries: 0 }));
            assert!(list.contains(&store, b"k", 0));
            assert_eq!(store.get(&key).0.map(|v| v.len()), Some(VALUE_LEN));
        }
        // All-0xff slots are valid: 8 live entries (expiring at u64::MAX) that are not ours.
        let store = MemoryStore::new();
        store.set(&key, &valid, None).unwrap();
        assert_eq!(list.live_entries(&store, 0), WAYS);
        assert!(!list.contains(&store, b"k", 0));
    }

    /// Another VM that writes the bucket between our read and our write, `interfere` times.
    struct Meddler {
        inner: MemoryStore,
        list: TtlList,
        other_keys: Vec<Vec<u8>>,
        interfere: Cell<usize>,
    }

    impl SharedData for Meddler {
        fn get(&self, key: &str) -> (Option<Vec<u8>>, Option<Cas>) {
            self.inner.get(key)
        }

        fn set(&self, key: &str, value: &[u8], cas: Option<Cas>) -> Result<(), WriteError> {
            let n = self.interfere.get();
            if n > 0 {
                self.interfere.set(n - 1);
                self.list.add(&self.inner, &self.other_keys[n - 1], 0, 1_000).unwrap();
            }
            self.inner.set(key, value, cas)
        }
    }

    fn meddler(interfere: usize) -> Meddler {
        let list = TtlList::new("l", 16);
        let keys = keys_in_bucket(&list, 0, 1 + TtlList::MAX_CAS_RETRIES as usize + 1);
        let inner = MemoryStore::new();
        // The bucket exists, so every write is checked.
        list.add(&inner, &keys[0], 0, 1_000).unwrap();
        Meddler { inner, list, other_keys: keys[1..].to_vec(), interfere: Cell::new(interfere) }
    }

    #[test]
    fn concurrent_writers_cost_retries_and_lose_nothing() {
        let store = meddler(3);
        let list = store.list.clone();
        let ours = keys_in_bucket(&list, 0, 7).pop().unwrap();
        assert_eq!(list.add(&store, &ours, 0, 1_000), Ok(AddOutcome::Added { retries: 3 }));
        assert!(list.contains(&store, &ours, 0));
        assert!(store.other_keys[..3].iter().all(|key| list.contains(&store, key, 0)), "their entries kept");
        assert_eq!(list.live_entries(&store, 0), 5);
    }

    #[test]
    fn too_much_contention_gives_up() {
        let store = meddler(TtlList::MAX_CAS_RETRIES as usize + 1);
        let list = store.list.clone();
        let ours = keys_in_bucket(&list, 0, 7).pop().unwrap();
        assert_eq!(list.add(&store, &ours, 0, 1_000), Err(ListError::Contention));
        assert!(!list.contains(&store, &ours, 0));
        assert_eq!(store.interfere.get(), 0, "exactly MAX_CAS_RETRIES + 1 attempts");
        // Once the others stop, it goes through.
        assert_eq!(list.add(&store, &ours, 0, 1_000), Ok(AddOutcome::Added { retries: 0 }));
    }

    /// Another VM that creates the same bucket between our read (missing) and our write.
    struct BlindRival {
        inner: MemoryStore,
        rival_value: Vec<u8>,
        armed: Cell<bool>,
    }

    impl SharedData for BlindRival {
        fn get(&self, key: &str) -> (Option<Vec<u8>>, Option<Cas>) {
            self.inner.get(key)
        }

        fn set(&self, key: &str, value: &[u8], cas: Option<Cas>) -> Result<(), WriteError> {
            if self.armed.replace(false) {
                self.inner.set(key, &self.rival_value, Some(CREATE_CAS))?;
            }
            self.inner.set(key, value, cas)
        }
    }

    #[test]
    fn bucket_creation_race_is_detected_and_retried() {
        let list = TtlList::new("l", 8);
        // What the rival VM writes: the bucket holding only its own key.
        let scratch = MemoryStore::new();
        list.add(&scratch, b"theirs", 0, 1_000).unwrap();
        let store = BlindRival {
            inner: MemoryStore::new(),
            rival_value: scratch.get(&list.key_for(b"theirs")).0.unwrap(),
            armed: Cell::new(true),
        };
        assert_eq!(list.add(&store, b"ours", 0, 1_000), Ok(AddOutcome::Added { retries: 1 }));
        assert!(list.contains(&store, b"ours", 0));
        assert!(list.contains(&store, b"theirs", 0));
    }

    #[test]
    fn the_salt_keys_where_entries_live() {
        let store = MemoryStore::new();
        let salted = TtlList::new("l", 8_000).salted([7; 16]);
        salted.add(&store, b"k", 0, 1_000).unwrap();
        assert!(salted.contains(&store, b"k", 0));
        assert!(TtlList::new("l", 8_000).salted([7; 16]).contains(&store, b"k", 0), "same salt, same place");
        assert!(!TtlList::new("l", 8_000).contains(&store, b"k", 0), "another salt finds nothing");
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
        assert_eq!(TtlList::new("l", 8).add(&Refusing, b"k", 0, 10), Err(ListError::WriteFailed));
    }

    #[test]
    fn sizes_and_budget() {
        let list = TtlList::new("sensitive-endpoints", 10_000);
        assert_eq!(list.buckets(), 1_250);
        assert_eq!(list.capacity(), 10_000);
        assert_eq!(list.shared_bytes_budget(), 1_250 * (1 + 24 * 8));
        assert_eq!(list.shared_bytes_budget(), 241_250);
        assert_eq!(TtlList::new("l", 0).buckets(), 1);
        assert_eq!(TtlList::new("l", 9).buckets(), 2);
        assert_eq!(TtlList::new("l", u32::MAX).buckets(), u32::MAX.div_ceil(8));
        // A long id still works (its keys are built on the heap).
        let long = TtlList::new(&"x".repeat(300), 16);
        let store = MemoryStore::new();
        long.add(&store, b"k", 0, 10).unwrap();
        assert!(long.contains(&store, b"k", 0));
    }

    /// One million distinct keys into a 10,000-entry list, with 100 heavy hitters re-added every 1,000 keys.
    /// Under Wasmtime (a debug build, interpreted hashing is slow) the flood is 200,000 keys.
    #[test]
    fn flood_stays_bounded_and_keeps_heavy_hitters() {
        const FLOOD: u64 = if cfg!(target_arch = "wasm32") { 200_000 } else { 1_000_000 };
        const HITTERS: u64 = 100;
        // Entries outlive the flood: the bucket stays full and only eviction makes room.
        const TTL_MS: u64 = 10_000_000;
        let started = Instant::now();
        let store = MemoryStore::new();
        let list = TtlList::new("sensitive-endpoints", 10_000);
        let hitter = |i: u64| format!("GET /hot/{i}").into_bytes();
        let mut rng = SplitMix(42);
        let (mut evicted, mut retries) = (0u64, 0u64);
        for now in 0..FLOOD {
            let key = [rng.next().to_le_bytes(), rng.next().to_le_bytes()].concat();
            let outcome = list.add(&store, &key, now, TTL_MS).unwrap();
            evicted += u64::from(matches!(outcome, AddOutcome::Evicted { .. }));
            retries += u64::from(outcome.retries());
            if now % 1_000 == 0 {
                for i in 0..HITTERS {
                    list.add(&store, &hitter(i), now, TTL_MS).unwrap();
                }
            }
        }
        let now = FLOOD;
        let live = list.live_entries(&store, now);
        let present = (0..HITTERS).filter(|i| list.contains(&store, &hitter(*i), now)).count();
        let bytes: u64 = (0..list.buckets())
            .map(|b| store.get(&format!("portcullis.list.sensitive-endpoints.{b}")).0.map_or(0, |v| v.len() as u64))
            .sum();
        eprintln!(
            "flood: {FLOOD} keys in {:?}; {} keys, {bytes} bytes (budget {}), {live} live, {evicted} evicted, \
             {present}/{HITTERS} heavy hitters",
            started.elapsed(),
            store.key_count(),
            list.shared_bytes_budget(),
        );
        assert_eq!(retries, 0);
        assert_eq!(store.key_count(), list.buckets() as usize, "one key per bucket, nothing else");
        assert_eq!(bytes, list.shared_bytes_budget());
        assert!(live as u64 <= list.capacity());
        assert!(live as u64 >= list.capacity() * 9 / 10, "the flood fills the list: {live}");
        assert!(evicted > 0);
        assert!(present >= 95, "heavy hitters survive the flood: {present}/100");
    }

    impl TtlList {
        /// The shared-data key of `key`'s bucket.
        fn key_for(&self, key: &[u8]) -> String {
            self.with_bucket_key(self.locate(key).0, str::to_owned)
        }
    }
}
