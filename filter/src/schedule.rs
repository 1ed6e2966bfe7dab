//! When to fetch the next bundle: a steady poll, exponential backoff with jitter while the control plane fails or
//! answers with nothing usable (a refused bundle, or the active one again from a server ignoring `If-None-Match`).

/// The fetch timetable of the VM that holds the fetch lease. Pure: time and randomness come in as arguments.
#[derive(Clone, Debug)]
pub struct FetchSchedule {
    poll_interval_ms: u64,
    max_backoff_ms: u64,
    failures: u32,
    /// Consecutive answers that brought nothing usable.
    fruitless: u32,
    next_at_ms: u64,
    in_flight: Option<u32>,
}

impl FetchSchedule {
    /// A schedule that is due at once.
    pub fn new(poll_interval_ms: u64, max_backoff_ms: u64) -> FetchSchedule {
        FetchSchedule { poll_interval_ms, max_backoff_ms, failures: 0, fruitless: 0, next_at_ms: 0, in_flight: None }
    }

    /// True when no fetch is in flight and the next one is due.
    pub fn is_due(&self, now_ms: u64) -> bool {
        self.in_flight.is_none() && now_ms >= self.next_at_ms
    }

    /// Records a dispatched fetch, identified by the host's call token.
    pub fn started(&mut self, token: u32) {
        self.in_flight = Some(token);
    }

    /// True when `token` is the fetch in flight (and clears it).
    pub fn finish(&mut self, token: u32) -> bool {
        if self.in_flight == Some(token) {
            self.in_flight = None;
            true
        } else {
            false
        }
    }

    /// Consecutive failures so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// The control plane answered: poll again after the interval, spread by up to 10% so a fleet does not align.
    pub fn succeeded(&mut self, now_ms: u64, random: u64) {
        self.failures = 0;
        self.fruitless = 0;
        self.next_at_ms = now_ms.saturating_add(spread(self.poll_interval_ms, random, 10));
    }

    /// A long poll came back: ask again at once (the server does the waiting).
    pub fn succeeded_now(&mut self, now_ms: u64) {
        self.failures = 0;
        self.fruitless = 0;
        self.next_at_ms = now_ms;
    }

    /// The fetch failed: wait `min(max, poll * 2^failures)`, with "equal jitter" (half fixed, half random).
    pub fn failed(&mut self, now_ms: u64, random: u64) {
        self.in_flight = None;
        self.failures = self.failures.saturating_add(1);
        self.next_at_ms = now_ms.saturating_add(self.backoff(self.failures, random));
    }

    /// The control plane answered, but with nothing usable: back off as for a failure (it is reachable, so this
    /// is not counted as one), never sooner than the poll interval.
    pub fn fruitless(&mut self, now_ms: u64, random: u64) {
        self.in_flight = None;
        self.failures = 0;
        self.fruitless = self.fruitless.saturating_add(1);
        let wait = self.backoff(self.fruitless, random).max(self.poll_interval_ms);
        self.next_at_ms = now_ms.saturating_add(wait);
    }

    /// `min(max, poll * 2^streak)`, with "equal jitter" (half fixed, half random).
    fn backoff(&self, streak: u32, random: u64) -> u64 {
        let exponent = streak.min(20);
        let backoff = self.poll_interval_ms.saturating_mul(1u64 << exponent).min(self.max_backoff_ms);
        let half = backoff / 2;
        half.saturating_add(random % half.max(1))
    }
}

/// `base` plus a random share of up to `percent`% of it.
fn spread(base: u64, random: u64, percent: u64) -> u64 {
    let room = base / 100 * percent;
    base.saturating_add(random % room.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steady_polling_and_one_fetch_in_flight() {
        let mut s = FetchSchedule::new(1000, 8000);
        assert!(s.is_due(0));
        s.started(7);
        assert!(!s.is_due(10_000), "never two fetches at once");
        assert!(!s.finish(8), "a stale token is ignored");
        assert!(s.finish(7));
        s.succeeded(0, 12345);
        assert!(!s.is_due(999));
        assert!(s.is_due(1100));
    }

    #[test]
    fn backoff_doubles_is_jittered_and_capped() {
        let mut s = FetchSchedule::new(1000, 8000);
        for (i, expected_max) in [(1u32, 2000u64), (2, 4000), (3, 8000), (4, 8000), (5, 8000)] {
            for random in [0u64, 1, 999, u64::MAX] {
                let mut t = s.clone();
                t.failed(0, random);
                assert_eq!(t.failures(), i);
                assert!(t.is_due(expected_max), "due by the cap");
                assert!(!t.is_due(expected_max / 2 - 1), "never before half the backoff");
            }
            s.failed(0, 0);
        }
        s.succeeded(0, 0);
        assert_eq!(s.failures(), 0);
    }

    #[test]
    fn fruitless_answers_back_off_and_a_real_bundle_resets() {
        let mut s = FetchSchedule::new(1000, 8000);
        let mut now = 0;
        let mut fetches = 0;
        // A server answering 200 at once with the same (or refused) content, for a minute.
        while now < 60_000 {
            if s.is_due(now) {
                s.started(1);
                assert!(s.finish(1));
                s.fruitless(now, now.wrapping_mul(2_654_435_761));
                fetches += 1;
            }
            now += 250;
        }
        assert!(fetches <= 20, "{fetches} fetches in a minute: backed off to the cap, not four a second");
        s.fruitless(now, 0);
        assert!(!s.is_due(now + 999), "never sooner than the poll interval");
        s.succeeded(now, 0);
        s.fruitless(now, 0);
        assert!(s.is_due(now + 2000), "the streak starts again after a useful answer");
    }
}
