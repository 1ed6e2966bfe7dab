//! A time-bounded lease: at most one VM per Envoy holds it at any moment.

use crate::{SharedData, WriteError, CREATE_CAS};

/// A named lease in shared data. The value is `holder (8 bytes LE) | expires_at_ms (8 bytes LE)`.
///
/// A holder renews before expiry; when a holder's VM dies, its lease expires and another VM takes over, so the
/// job keeps running with at most one VM doing it.
#[derive(Clone, Debug)]
pub struct Lease {
    key: String,
    holder: u64,
    duration_ms: u64,
}

impl Lease {
    /// A lease on `key`, taken on behalf of `holder` (a random id per VM), for `duration_ms` at a time.
    pub fn new(key: impl Into<String>, holder: u64, duration_ms: u64) -> Lease {
        Lease { key: key.into(), holder, duration_ms }
    }

    /// Takes or renews the lease at time `now_ms`. True when this holder has it until `now_ms + duration_ms`.
    ///
    /// One compare-and-swap attempt: losing a race means another VM just took it, which is the answer.
    pub fn try_acquire(&self, store: &dyn SharedData, now_ms: u64) -> bool {
        let (value, cas) = store.get(&self.key);
        if let Some((holder, expires_at)) = value.as_deref().and_then(decode) {
            if holder != self.holder && expires_at > now_ms {
                return false;
            }
        }
        let mut next = [0u8; 16];
        let (h, e) = next.split_at_mut(8);
        h.copy_from_slice(&self.holder.to_le_bytes());
        e.copy_from_slice(&now_ms.saturating_add(self.duration_ms).to_le_bytes());
        // A never-written key is created only if still absent; the re-read guards hosts that give no token.
        let cas = if value.is_none() { Some(CREATE_CAS) } else { cas };
        match store.set(&self.key, &next, cas) {
            Ok(()) => store.get(&self.key).0.as_deref().and_then(decode).is_some_and(|(h, _)| h == self.holder),
            Err(WriteError::CasMismatch | WriteError::Failed) => false,
        }
    }
}

impl Lease {
    /// Gives the lease up if this holder has it, so that another VM need not wait for it to expire.
    pub fn release(&self, store: &dyn SharedData) {
        let (value, cas) = store.get(&self.key);
        if value.as_deref().and_then(decode).is_some_and(|(holder, _)| holder == self.holder) {
            let mut next = [0u8; 16];
            if let Some(h) = next.get_mut(..8) {
                h.copy_from_slice(&self.holder.to_le_bytes());
            }
            // Expired at 0; a CAS mismatch means someone else took it meanwhile, which is fine.
            let _ = store.set(&self.key, &next, cas);
        }
    }
}

fn decode(value: &[u8]) -> Option<(u64, u64)> {
    let holder = u64::from_le_bytes(value.get(0..8)?.try_into().ok()?);
    let expires_at = u64::from_le_bytes(value.get(8..16)?.try_into().ok()?);
    Some((holder, expires_at))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStore;

    #[test]
    fn one_holder_at_a_time_and_takeover_after_expiry() {
        let store = MemoryStore::new();
        let a = Lease::new("lease", 1, 1000);
        let b = Lease::new("lease", 2, 1000);
        assert!(a.try_acquire(&store, 0));
        assert!(!b.try_acquire(&store, 500));
        assert!(a.try_acquire(&store, 900), "the holder renews");
        assert!(!b.try_acquire(&store, 1800));
        assert!(b.try_acquire(&store, 1901), "expired lease is taken over");
        assert!(!a.try_acquire(&store, 1950));
    }

    #[test]
    fn a_released_lease_is_free_at_once() {
        let store = MemoryStore::new();
        let (a, b) = (Lease::new("lease", 1, 1000), Lease::new("lease", 2, 1000));
        assert!(a.try_acquire(&store, 0));
        b.release(&store);
        assert!(!b.try_acquire(&store, 10), "releasing a lease one does not hold changes nothing");
        a.release(&store);
        assert!(b.try_acquire(&store, 10));
    }

    #[test]
    fn garbage_value_is_taken_over() {
        let store = MemoryStore::new();
        store.set("lease", b"junk", None).unwrap();
        assert!(Lease::new("lease", 7, 10).try_acquire(&store, 0));
    }
}
