//! Child processes that stop gracefully, and unique numbers for parallel tests.

use std::process::Child;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Asks `child` to stop with SIGTERM, waits up to `grace`, then kills it. Reaps it either way.
pub(crate) fn terminate(child: &mut Child, grace: Duration) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: `pid` is our own child, not yet reaped (try_wait above), so the id cannot have been reused.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A number no other call in this process returns.
pub(crate) fn unique_number() -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// An Envoy `--base-id` unlikely to be in use by a concurrent test: the process id, then a per-process counter.
pub(crate) fn unique_base_id() -> u32 {
    (std::process::id() % 4_000_000) * 100 + unique_number() % 100
}

/// A random-enough token for the control plane: not a secret worth more than the test it guards.
pub(crate) fn random_token() -> String {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut token = String::new();
    for _ in 0..2 {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u32(unique_number());
        token.push_str(&format!("{:016x}", hasher.finish()));
    }
    token
}
