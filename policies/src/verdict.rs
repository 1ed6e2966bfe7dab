//! What the engine decided about one request.

use crate::program::Action;

/// The outcome of evaluating a bundle against a request. Small and `Copy`: the filter keeps it per request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Verdict {
    /// The strongest action of the rules that matched (`None`: no rule matched).
    pub action: Option<Action>,
    /// Index of the rule that decided: the first blocking rule, else the first monitoring rule.
    pub rule: Option<u16>,
    /// The HTTP status to answer with when the action is `Block` or `Throttle`.
    pub status: u16,
    /// The `Retry-After` seconds of a throttle (0 otherwise).
    pub retry_after: u32,
    /// How many rules matched in all (a block stops evaluation, so later rules are not counted).
    pub matched: u16,
    /// How many rule conditions ended in an evaluation error (e.g. a header they read was absent) and so did not match.
    pub errors: u16,
    /// How many rule conditions depended on data that could not be inspected (decided by their `on_uninspectable`).
    pub uninspectable: u16,
}

impl Verdict {
    /// No rule matched.
    pub const ALLOW: Verdict =
        Verdict { action: None, rule: None, status: 0, retry_after: 0, matched: 0, errors: 0, uninspectable: 0 };

    /// True when the request must be answered by the filter (block or throttle).
    pub fn is_block(&self) -> bool {
        self.action.is_some_and(Action::answers)
    }

    /// Folds in a matching rule: the stronger action wins (block > throttle > monitor > add_to_list), and the first
    /// rule of an action keeps the decision.
    #[must_use]
    pub fn with_match(self, index: u16, action: Action, status: u16) -> Verdict {
        self.with_throttle(index, action, status, 0)
    }

    /// [`with_match`](Verdict::with_match) for a rule that also carries a `Retry-After`.
    #[must_use]
    pub fn with_throttle(self, index: u16, action: Action, status: u16, retry_after: u32) -> Verdict {
        let matched = self.matched.saturating_add(1);
        match self.action {
            Some(current) if current >= action => Verdict { matched, ..self },
            _ => Verdict { action: Some(action), rule: Some(index), status, retry_after, matched, ..self },
        }
    }

    /// Folds in the verdict of a later phase: the stronger action wins (an earlier decision keeps a tie),
    /// counts add up.
    #[must_use]
    pub fn then(self, later: Verdict) -> Verdict {
        let matched = self.matched.saturating_add(later.matched);
        let errors = self.errors.saturating_add(later.errors);
        let uninspectable = self.uninspectable.saturating_add(later.uninspectable);
        let decided = if later.action > self.action { later } else { self };
        Verdict { matched, errors, uninspectable, ..decided }
    }

    /// Counts a rule whose condition depended on data that could not be inspected.
    #[must_use]
    pub fn with_uninspectable(self) -> Verdict {
        Verdict { uninspectable: self.uninspectable.saturating_add(1), ..self }
    }

    /// Counts a rule whose condition could not be evaluated.
    #[must_use]
    pub fn with_error(self) -> Verdict {
        Verdict { errors: self.errors.saturating_add(1), ..self }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_outranks_monitor_and_first_rule_of_an_action_wins() {
        let v = Verdict::ALLOW.with_match(2, Action::Monitor, 0).with_match(3, Action::Monitor, 0);
        assert_eq!((v.action, v.rule, v.matched), (Some(Action::Monitor), Some(2), 2));
        let v = v.with_match(5, Action::Block, 451);
        assert_eq!((v.action, v.rule, v.status, v.matched), (Some(Action::Block), Some(5), 451, 3));
        assert!(v.is_block());
    }

    #[test]
    fn later_phases_fold_in() {
        let headers = Verdict::ALLOW.with_match(1, Action::Monitor, 0);
        let body = Verdict::ALLOW.with_match(4, Action::Monitor, 0).with_error();
        let v = headers.then(body);
        assert_eq!((v.action, v.rule, v.matched, v.errors), (Some(Action::Monitor), Some(1), 2, 1));
        let v = v.then(Verdict::ALLOW.with_match(6, Action::Block, 409));
        assert_eq!((v.action, v.rule, v.status, v.matched), (Some(Action::Block), Some(6), 409, 3));
    }
}
