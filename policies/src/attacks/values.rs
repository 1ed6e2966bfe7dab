//! Taking a request apart into values, and running the enabled checks on each (STUB: the interface only; the
//! helper who owns this file implements it).
//!
//! Every part of the request is split into values the way the application will read them, each value normalised
//! ([`super::normalize`]) into the inspector's scratch space, and each enabled [`Check`] run on it. Nothing is
//! allocated per value: the scratch buffers are sized once, by [`Limits`].

use super::{AttackClass, Place, Sensitivity};

/// Bounds that make the cost of one request predictable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The most bytes of one value inspected; a longer value is inspected up to here and reported uninspectable.
    pub max_value_bytes: usize,
    /// The most values of one request inspected (names and values together); past it, the request is reported
    /// uninspectable.
    pub max_values: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits { max_value_bytes: 8 * 1024, max_values: 1024 }
    }
}

/// One part of a request, as the filter has it.
#[derive(Clone, Copy, Debug)]
pub enum Part<'a> {
    /// The URL path, raw (percent-encoded), without the query.
    Path(&'a [u8]),
    /// The query string, raw, without the `?`.
    Query(&'a [u8]),
    /// Request headers (names in lower case): the chosen headers are inspected, and `cookie` split into cookies.
    Headers(&'a [(&'a [u8], &'a [u8])]),
    /// The request body (content coding removed), up to the inspection cap, with its `content-type`.
    Body { content_type: &'a [u8], body: &'a [u8] },
}

/// One detection's check, as the engine hands it to the inspector for this request.
#[derive(Clone, Copy, Debug)]
pub struct Check<'a> {
    /// What to look for.
    pub class: AttackClass,
    /// How eagerly.
    pub sensitivity: Sensitivity,
    /// Where: a bit per [`Place`] (`1 << place as u8`).
    pub places: u8,
    /// Parameter names excluded on this request's endpoint (compared with the value's name as reported).
    pub skip: &'a [&'a [u8]],
}

/// The most findings one request records (further ones are counted, not named).
pub const MAX_FINDINGS: usize = 8;
/// The longest parameter name kept in a finding (longer names are cut, and marked so in evidence).
pub const MAX_NAME: usize = 48;

/// One attack found: which check, where, and the parameter's name (never the value).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Finding {
    /// Index of the check (in the slice given to [`Inspector::inspect`]) that fired.
    pub check: u16,
    /// The class it found.
    pub class: AttackClass,
    /// Where.
    pub place: Place,
    /// The parameter's name as the application sees it (`q`, `user.name` for a JSON path, a header name), cut to
    /// [`MAX_NAME`] bytes: attacker-controlled, escape before logging.
    pub name: [u8; MAX_NAME],
    /// How many bytes of `name` are used.
    pub name_len: u8,
}

/// What the inspection of one request found: fixed size, no allocation.
#[derive(Clone, Copy, Debug, Default)]
pub struct Findings {
    /// The first findings, in the order found.
    pub items: [Option<Finding>; MAX_FINDINGS],
    /// Every finding, including those past [`MAX_FINDINGS`].
    pub total: u32,
    /// A bit per check that fired (checks past 64 share bit 63).
    pub fired: u64,
    /// Whether some value or part could not be inspected (over a cap): a finding the policy decides on.
    pub uninspectable: bool,
}

/// The inspector: scratch space sized once, reused for every value of every request.
#[derive(Debug)]
pub struct Inspector {
    limits: Limits,
}

impl Inspector {
    /// An inspector with scratch space for `limits`.
    pub fn new(limits: Limits) -> Inspector {
        Inspector { limits }
    }

    /// The limits it was made with.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Inspects one part of a request with `checks`, adding to `findings`. Never allocates per value; never panics.
    pub fn inspect(&mut self, _part: Part<'_>, _checks: &[Check<'_>], _findings: &mut Findings) {}
}
