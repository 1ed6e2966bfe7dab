//! What every bucketed structure in shared data shares: where a key lands, and the name of a bucket's key.

use std::io::Write as _;

use sha2::{Digest, Sha256};

/// Bytes of an entry's fingerprint: 128 bits of SHA-256, so keys themselves are never stored.
pub(crate) const FINGERPRINT_LEN: usize = 16;

/// An entry's identity inside its bucket.
pub(crate) type Fingerprint = [u8; FINGERPRINT_LEN];

/// Longest bucket key built on the stack; a longer one falls back to the heap.
const KEY_BUF_LEN: usize = 128;

/// The bucket (of `buckets`) and fingerprint of `key` in the structure `name`: SHA-256 of `name || 0x00 || key`.
pub(crate) fn locate(name: &str, buckets: u32, key: &[u8]) -> (u32, Fingerprint) {
    let digest: [u8; 32] =
        Sha256::new().chain_update(name.as_bytes()).chain_update([0u8]).chain_update(key).finalize().into();
    let (head, rest) = digest.split_first_chunk::<8>().unwrap_or((&[0; 8], &[]));
    let fingerprint = rest.first_chunk::<FINGERPRINT_LEN>().copied().unwrap_or_default();
    // The remainder is below `buckets`, a u32, so it always fits.
    let bucket = u32::try_from(u64::from_le_bytes(*head) % u64::from(buckets.max(1))).unwrap_or(0);
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
