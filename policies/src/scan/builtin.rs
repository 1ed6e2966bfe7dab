//! The built-in classifiers (STUB: being written): patterns the compiler builds into scan sets, and how their
//! candidates are validated.

use crate::detect::Validator;

/// One built-in classifier.
#[derive(Clone, Copy, Debug)]
pub struct Builtin {
    /// The id policies name it by (`credit_card`, `us_ssn`, ...).
    pub id: &'static str,
    /// The regex (regex-automata syntax) that finds candidates.
    pub pattern: &'static str,
    /// How candidates are confirmed.
    pub validator: Validator,
    /// The longest match the pattern produces, in bytes.
    pub max_len: u16,
    /// Lower-case keywords one of which must appear shortly before a match (empty: none needed).
    pub context: &'static [&'static str],
    /// How far before a match to look for context.
    pub context_window: u16,
    /// Default confidence of a confirmed finding (0–100).
    pub confidence: u8,
    /// A built-in this one is layered on: a detection of it must `require` a detection of that one.
    pub requires: Option<&'static str>,
}

/// Every built-in classifier.
pub const BUILTINS: &[Builtin] = &[
    Builtin {
        id: "credit_card",
        pattern: r"[0-9](?:[ -]?[0-9]){12,18}",
        validator: Validator::CreditCard,
        max_len: 40,
        context: &[],
        context_window: 0,
        confidence: 95,
        requires: None,
    },
    Builtin {
        id: "card_expiry",
        pattern: r"(?:0[1-9]|1[0-2])/(?:[0-9]{2}|20[0-9]{2})",
        validator: Validator::CardExpiry,
        max_len: 7,
        context: &[],
        context_window: 0,
        confidence: 80,
        requires: Some("credit_card"),
    },
];

/// Looks a built-in classifier up by id.
pub fn builtin(id: &str) -> Option<&'static Builtin> {
    BUILTINS.iter().find(|b| b.id == id)
}
