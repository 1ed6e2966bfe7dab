//! The per-VM budget of signature verifications: what bounds the cost of a flood of distinct, well-formed tokens.

/// Signature verifications a VM may run per second when the filter configuration does not say
/// (`jwt_verifications_per_second`).
pub const DEFAULT_VERIFICATIONS_PER_SECOND: u32 = 200;

/// A token bucket of signature verifications: `per_second` of them each second, in bursts of at most one second's
/// worth. A token that would need one more is judged without verifying it (`jwt.unverified`).
///
/// The clock is passed in (milliseconds, any origin) so the budget can be tested with a fake one; a clock that goes
/// back refills nothing.
///
/// ```
/// use portcullis_policies::token_analysis::VerificationBudget;
///
/// let mut budget = VerificationBudget::new(2);
/// assert!(budget.try_spend(0) && budget.try_spend(0));
/// assert!(!budget.try_spend(0), "two per second, both spent");
/// assert!(budget.try_spend(500), "half a second refills one");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerificationBudget {
    per_second: u32,
    /// What is left, in thousandths of a verification.
    available: u64,
    /// When `available` was last brought up to date.
    updated_ms: Option<u64>,
}

impl VerificationBudget {
    /// A full budget of `per_second` verifications per second (0 verifies nothing).
    pub fn new(per_second: u32) -> VerificationBudget {
        VerificationBudget { per_second, available: Self::capacity(per_second), updated_ms: None }
    }

    /// A budget that never runs out (tests, evaluation).
    pub fn unlimited() -> VerificationBudget {
        VerificationBudget::new(u32::MAX)
    }

    /// The configured rate.
    pub fn per_second(&self) -> u32 {
        self.per_second
    }

    fn capacity(per_second: u32) -> u64 {
        u64::from(per_second).saturating_mul(1_000)
    }

    /// Takes one verification at time `now_ms` if the budget has one; false when it is spent.
    pub fn try_spend(&mut self, now_ms: u64) -> bool {
        if self.per_second == u32::MAX {
            return true;
        }
        let elapsed = self.updated_ms.map_or(0, |then| now_ms.saturating_sub(then));
        // per_second verifications per 1,000 ms are per_second thousandths per ms.
        let refill = elapsed.saturating_mul(u64::from(self.per_second));
        self.available = self.available.saturating_add(refill).min(Self::capacity(self.per_second));
        if self.updated_ms.is_none_or(|then| now_ms > then) {
            self.updated_ms = Some(now_ms);
        }
        if self.available < 1_000 {
            return false;
        }
        self.available -= 1_000;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spends_refills_and_caps_with_a_fake_clock() {
        let mut budget = VerificationBudget::new(10);
        let spent = (0..25).filter(|_| budget.try_spend(1_000)).count();
        assert_eq!(spent, 10, "a burst gets one second's worth");
        assert!(!budget.try_spend(1_050), "50 ms refill half a verification");
        assert!(budget.try_spend(1_100), "100 ms refill one");
        assert!(!budget.try_spend(1_100));
        // A long pause refills up to the cap, no more.
        assert_eq!((0..25).filter(|_| budget.try_spend(60_000)).count(), 10);
        // A clock that goes back refills nothing, and does not move the reference back.
        assert!(!budget.try_spend(10));
        assert!(!budget.try_spend(60_050));
        assert!(budget.try_spend(60_100));
    }

    #[test]
    fn zero_verifies_nothing_and_unlimited_everything() {
        let mut none = VerificationBudget::new(0);
        assert!(!none.try_spend(0) && !none.try_spend(1_000_000));
        let mut all = VerificationBudget::unlimited();
        assert!((0..100_000).all(|_| all.try_spend(0)));
    }
}
