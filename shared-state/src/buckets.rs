//! What every bucketed structure in shared data shares: where a key lands, and the name of a bucket's key.

use std::hash::Hasher as _;
use std::io::Write as _;

use siphasher::sip128::{Hasher128 as _, SipHasher13};

/// Bytes of an entry's fingerprint: a 128-bit keyed hash, so keys themselves are never stored.
pub(crate) const FINGERPRINT_LEN: usize = 16;

/// An entry's identity inside its bucket.
pub(crate) type Fingerprint = [u8; FINGERPRINT_LEN];

/// The key of the bucket hash. Every VM of one Envoy must use the same salt (the filter keeps a random one per Envoy
/// in shared data); without it, whoever knows a structure's name could search offline for keys that share a bucket
/// and evict one another. All zero: unsalted (tests, tools).
pub type Salt = [u8; 16];

/// Longest bucket key built on the stack; a longer one falls back to the heap.
const KEY_BUF_LEN: usize = 128;

/// The keyed hash of `name || tag || data`: one structure's keys (`tag` 0) and items (`tag` 1) never meet another's.
pub(crate) fn keyed_hash(salt: &Salt, name: &str, tag: u8, data: &[u8]) -> [u8; 16] {
    let mut hasher = SipHasher13::new_with_key(salt);
    hasher.write(name.as_bytes());
    hasher.write(&[tag]);
    hasher.write(data);
    hasher.finish128().as_bytes()
}

/// The bucket (of `buckets`) and fingerprint of `key` in the structure `name`: the 128-bit SipHash-1-3 of
/// `name || 0x00 || key` under `salt` is the fingerprint, and its first 8 bytes (little-endian) modulo `buckets`
/// the bucket.
pub(crate) fn locate(salt: &Salt, name: &str, buckets: u32, key: &[u8]) -> (u32, Fingerprint) {
    let fingerprint = keyed_hash(salt, name, 0, key);
    let head = fingerprint.first_chunk::<8>().copied().unwrap_or_default();
    // The remainder is below `buckets`, a u32, so it always fits.
    let bucket = u32::try_from(u64::from_le_bytes(head) % u64::from(buckets.max(1))).unwrap_or(0);
    (bucket, fingerprint)
}

/// Calls `f` with the shared-data key `<prefix><name>.<bucket>`, built on the stack unless the name is very long.
pub(crate) fn with_bucket_key<R>(prefix: &str, name: &str, bucket: u32, f: impl FnOnce(&str) -> R) -> R {
    let mut buf = [0u8; KEY_BUF_LEN];
    let mut rest = buf.as_mut_slice();
    if write!(rest, "{prefix}{name}.{bucket}").is_ok() {
        let len = KEY_BUF_LEN - rest.len();
        if let Some(key) = buf.get(..len).and_then(|key| std::str::from_utf8(key).ok()) {
            return f(key);
        }
    }
    f(&format!("{prefix}{name}.{bucket}"))
}

/// What the tests of every bucketed structure use.
#[cfg(test)]
pub(crate) mod testing {
    /// `n` keys (`key-0`, `key-1`, ...) that `bucket_of` puts in `bucket`.
    pub(crate) fn keys_in_bucket(bucket_of: impl Fn(&[u8]) -> u32, bucket: u32, n: usize) -> Vec<Vec<u8>> {
        (0u32..).map(|i| format!("key-{i}").into_bytes()).filter(|key| bucket_of(key) == bucket).take(n).collect()
    }

    /// A cheap deterministic generator (SplitMix64).
    pub(crate) struct SplitMix(pub(crate) u64);

    impl SplitMix {
        pub(crate) fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
    }
}
