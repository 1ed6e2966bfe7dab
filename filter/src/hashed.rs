//! Per-VM tables whose keys are already randomly keyed hashes (token fingerprints, counter slots, list answers).
//!
//! A `HashMap` with the default hasher would run SipHash over such a key a second time on every lookup; their low
//! 64 bits are as good as any hash of them, and nobody can aim keys at one table slot without knowing the VM's
//! random key.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A map from a keyed hash (`u64` or `u128`) to `V`, hashed by the key's own low bits.
pub type HashedMap<K, V> = HashMap<K, V, BuildHasherDefault<Prehashed>>;

/// The hasher of [`HashedMap`]: passes an integer key through.
#[derive(Default)]
pub struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only reached by keys that are not integers; still a fine mix for a table.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }

    fn write_u128(&mut self, n: u128) {
        // Truncation is the point: the low 64 bits of a keyed hash.
        self.0 = n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_keys_pass_through() {
        let mut map: HashedMap<u64, u8> = HashedMap::default();
        map.insert(7, 1);
        map.insert(u64::MAX, 2);
        assert_eq!(map.get(&7), Some(&1));
        assert_eq!(map.get(&u64::MAX), Some(&2));
        let mut wide: HashedMap<u128, u8> = HashedMap::default();
        wide.insert(1 << 100 | 5, 3);
        assert_eq!(wide.get(&(1 << 100 | 5)), Some(&3));
        assert_eq!(wide.get(&5), None, "the high bits still tell keys apart");
    }
}
