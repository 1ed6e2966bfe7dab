//! The per-VM cache of token analyses.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher};
use std::rc::Rc;

use siphasher::sip128::{Hasher128, SipHasher13};

use super::TokenAnalysis;

/// A 128-bit SipHash of a token under the cache's random key: the cache key. The token itself is never kept.
/// Nobody can search offline for two tokens that share an entry (the key is drawn per cache), and two tokens share
/// one by chance with odds of about 2⁻¹²⁸ per pair. A tenth of a SHA-256's cost, paid on every request.
#[derive(Clone, Copy, PartialEq, Eq)]
struct TokenDigest(u128);

impl Hash for TokenDigest {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Truncation is the point: the low 64 bits of a keyed hash.
        state.write_u64(self.0 as u64);
    }
}

/// A keyed digest is already uniform: its low 8 bytes are the hash (no second SipHash).
#[derive(Default)]
struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

struct Slot {
    key: TokenDigest,
    value: Rc<TokenAnalysis>,
    referenced: bool,
}

/// A bounded cache of [`TokenAnalysis`] by token, for one VM.
///
/// Keyed by a keyed 128-bit hash of the whole token, so two tokens that differ in any byte (a forged signature on a known
/// token's claims, say) never share an entry. Holds at most `capacity` analyses whatever the traffic; when full it
/// evicts with CLOCK (second chance): an entry read since the hand last passed survives one more round, so the
/// tokens of active callers stay while a flood of one-off tokens cycles through. `get` and `insert` are O(1)
/// (amortized for `insert`).
pub struct AnalysisCache {
    /// The SipHash key of [`TokenDigest`]s, drawn when the cache is made.
    key: (u64, u64),
    capacity: usize,
    slots: Vec<Slot>,
    index: HashMap<TokenDigest, usize, BuildHasherDefault<DigestHasher>>,
    hand: usize,
}

impl AnalysisCache {
    /// An empty cache holding at most `capacity` analyses (0 disables caching).
    pub fn new(capacity: usize) -> AnalysisCache {
        // Two outputs of a randomly keyed hasher (seeded from the OS, or WASI inside the VM) make the key.
        let random = RandomState::new();
        AnalysisCache {
            key: (random.hash_one(0u8), random.hash_one(1u8)),
            capacity,
            slots: Vec::with_capacity(capacity),
            index: HashMap::with_capacity_and_hasher(capacity, BuildHasherDefault::default()),
            hand: 0,
        }
    }

    /// The cached analysis of `token`, if any.
    pub fn get(&mut self, token: &[u8]) -> Option<Rc<TokenAnalysis>> {
        let slot = *self.index.get(&self.digest(token))?;
        let slot = self.slots.get_mut(slot)?;
        slot.referenced = true;
        Some(Rc::clone(&slot.value))
    }

    /// Caches `analysis` for `token` (replacing an older one) and returns it, shared.
    pub fn insert(&mut self, token: &[u8], analysis: TokenAnalysis) -> Rc<TokenAnalysis> {
        let value = Rc::new(analysis);
        if self.capacity == 0 {
            return value;
        }
        let key = self.digest(token);
        if let Some(slot) = self.index.get(&key).and_then(|&i| self.slots.get_mut(i)) {
            slot.value = Rc::clone(&value);
            slot.referenced = true;
            return value;
        }
        let fresh = Slot { key, value: Rc::clone(&value), referenced: false };
        if self.slots.len() < self.capacity {
            self.index.insert(key, self.slots.len());
            self.slots.push(fresh);
            return value;
        }
        // The hand clears reference bits until it finds an entry not read since its last pass.
        loop {
            let hand = self.hand;
            self.hand = (hand + 1) % self.slots.len();
            let Some(slot) = self.slots.get_mut(hand) else { return value };
            if slot.referenced {
                slot.referenced = false;
                continue;
            }
            self.index.remove(&slot.key);
            *slot = fresh;
            self.index.insert(key, hand);
            return value;
        }
    }

    /// The key `token` is cached under.
    fn digest(&self, token: &[u8]) -> TokenDigest {
        let mut hasher = SipHasher13::new_with_keys(self.key.0, self.key.1);
        hasher.write(token);
        TokenDigest(hasher.finish128().as_u128())
    }

    /// How many analyses are cached.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The most analyses this cache holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}
