//! Evaluation of a loaded [`Bundle`] against one request.
//!
//! The engine reads the request through the [`Request`] trait, so the filter can hand it header bytes straight from
//! Envoy and tests can hand it a table. Evaluation allocates only to join repeated headers, never panics, and follows
//! CEL's rules for errors: a condition that reads an absent header is an error, `false && error` is `false`,
//! `true || error` is `true`, and a rule whose condition ends in an error does not match (it is counted in
//! [`Verdict::errors`]) — Portcullis never blocks on what it cannot evaluate.

use std::borrow::Cow;

use regex_automata::dfa::Automaton;
use regex_automata::Input;
use sha2::{Digest, Sha256};

use crate::bundle::Bundle;
use crate::detect::{CounterKind, Location};
use crate::program::{Action, Attribute, Node, NodeIndex, OnUninspectable, Phase};
use crate::token::{JwtFinding, TokenField};
use crate::verdict::Verdict;

/// A request as the engine sees it. Strings are bytes: nothing here assumes UTF-8.
pub trait Request {
    /// The value of a scalar attribute, or `None` when the request does not carry it.
    fn attribute(&self, attribute: Attribute) -> Option<Cow<'_, [u8]>>;
    /// The value of header `name` (lower-case); repeated headers joined with `,`. `None` when absent.
    fn header(&self, name: &[u8]) -> Option<Cow<'_, [u8]>>;
    /// How many findings detection number `detection` has in this exchange so far (0: nothing, or not inspected).
    fn detection_count(&self, detection: u16) -> u32 {
        let _ = detection;
        0
    }
    /// Whether `key` is a live entry of list number `list`; `None` when the lookup itself failed, which
    /// evaluates as an error (the rule does not match).
    fn in_list(&self, list: u16, key: &[u8]) -> Option<bool> {
        let _ = (list, key);
        None
    }
    /// True when the request carries a token in one of the policy's sources.
    fn token_present(&self) -> bool {
        false
    }
    /// `token.id` or `token.kind`; `None` without a token.
    fn token_field(&self, field: TokenField) -> Option<Cow<'_, [u8]>> {
        let _ = field;
        None
    }
    /// A claim of the request's JWT as a string; `None` without a JWT or without that claim.
    fn token_claim(&self, name: &str) -> Option<Cow<'_, [u8]>> {
        let _ = name;
        None
    }
    /// A JOSE header field of the request's JWT as a string; `None` when absent.
    fn token_header(&self, name: &str) -> Option<Cow<'_, [u8]>> {
        let _ = name;
        None
    }
    /// True when the analysis of the request's JWT found `finding`.
    fn jwt_finding(&self, finding: JwtFinding) -> bool {
        let _ = finding;
        false
    }
    /// The value of counter number `counter` for `key` now (count, sum or distinct count); `None` when it cannot
    /// be read, which evaluates as an error.
    fn counter_value(&self, counter: u16, key: &[u8]) -> Option<i64> {
        let _ = (counter, key);
        None
    }
    /// Whether last-seen counter number `counter` had this exchange's key, within its window, with another value;
    /// `None` when the exchange was not recorded (no key, or the counter's `when` did not hold).
    fn seen_elsewhere(&self, counter: u16) -> Option<bool> {
        let _ = counter;
        None
    }
    /// The response status; `None` before (or without) a response.
    fn response_code(&self) -> Option<i64> {
        None
    }
    /// Field `path` of the request body (JSON or form; dots reach into JSON objects) as a string; `None` when
    /// absent or not readable.
    fn body_field(&self, path: &str) -> Option<Cow<'_, [u8]>> {
        let _ = path;
        None
    }
    /// True when the request body's fields cannot be read at all (longer than the field-read limit, in an encoding,
    /// not valid JSON): a rule reading one is then decided by its `on_uninspectable`, never as "no match".
    fn body_fields_unreadable(&self) -> bool {
        false
    }
    /// True when the body in `location` could not be inspected in full (an encoding that cannot be decoded, a
    /// corrupt stream, or longer than `max_body_bytes` as sent or decoded): a detection there that found nothing is
    /// then decided by the rule's `on_uninspectable`.
    fn uninspectable(&self, location: Location) -> bool {
        let _ = location;
        false
    }
    /// Response body bytes seen so far; `None` before the response.
    fn response_bytes(&self) -> Option<i64> {
        None
    }
    /// Told when `key in lists[...]` found the key among list number `list`'s static entries (for evidence).
    fn static_list_hit(&self, list: u16) {
        let _ = list;
    }
    /// Adds this exchange's key to list number `list` for `ttl_seconds` (an `add_to_list` rule matched). Returns
    /// false when the exchange has no key for that list or the addition failed.
    fn add_to_list(&self, list: u16, ttl_seconds: u64) -> bool {
        let _ = (list, ttl_seconds);
        false
    }
}

/// Counter keys longer than this are replaced by their SHA-256, so what a worker keeps per key is small whatever
/// the request carried (a `per` on a header can be kilobytes long). Room for a token id and an endpoint template
/// (`per: [token.id, endpoint]`), so the common combined key costs no hash (about a microsecond in the VM).
pub const MAX_COUNTER_KEY: usize = 128;

/// `key` itself when it is at most [`MAX_COUNTER_KEY`] bytes, else `0xff` and its SHA-256 (no shorter key starts
/// with `0xff` followed by exactly 32 bytes that collide with it, short of a SHA-256 collision).
pub fn bounded_key(key: Vec<u8>) -> Vec<u8> {
    if key.len() <= MAX_COUNTER_KEY {
        return key;
    }
    let mut out = Vec::with_capacity(33);
    out.push(0xff);
    out.extend_from_slice(&Sha256::digest(&key));
    out
}

/// What one exchange contributes to a counter: computed by [`Bundle::counter_event`], applied by the caller to the
/// shared store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CounterEvent {
    /// The key (the `per` parts joined with `0x1f`).
    pub key: Vec<u8>,
    /// What is counted for the key.
    pub input: CounterInput,
}

/// The value an exchange adds to a counter, by kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CounterInput {
    /// `requests`: one more exchange.
    One,
    /// `sum`: this amount (negative amounts count as 0).
    Amount(u64),
    /// `distinct` and `last_seen`: this value.
    Value(Vec<u8>),
}

/// A value during evaluation. `Err` is CEL's error value: it propagates, except where `&&`/`||` absorb it.
#[derive(Debug, Clone)]
enum Value<'a> {
    Bool(bool),
    Int(i64),
    Str(Cow<'a, [u8]>),
}

/// Evaluation did not produce a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EvalError {
    /// An absent attribute, type confusion in a bad bundle, a DFA quit: the rule does not match.
    Error,
    /// The value depends on data that could not be inspected (an undecodable body, an unreadable body field): the
    /// rule's `on_uninspectable` decides. It wins over a plain error, so that an error elsewhere cannot hide it.
    Uninspectable,
}

impl EvalError {
    /// The error of an operation on two operands that did not both evaluate.
    fn either(a: Result<bool, EvalError>, b: Result<bool, EvalError>) -> EvalError {
        if a == Err(EvalError::Uninspectable) || b == Err(EvalError::Uninspectable) {
            EvalError::Uninspectable
        } else {
            EvalError::Error
        }
    }
}

type Eval<'a> = Result<Value<'a>, EvalError>;

impl Bundle {
    /// Evaluates every rule, whatever its phase, in policy order, and returns the verdict. Stops at the first
    /// blocking rule. For tools and tests that have the whole exchange; the filter uses [`Bundle::evaluate_phase`].
    pub fn evaluate(&self, request: &dyn Request) -> Verdict {
        self.evaluate_rules(None, request)
    }

    /// Evaluates the rules decided in `phase` (see [`Phase`]) and returns their verdict; the caller folds the
    /// verdicts of successive phases together with [`Verdict::then`].
    pub fn evaluate_phase(&self, phase: Phase, request: &dyn Request) -> Verdict {
        self.evaluate_rules(Some(phase), request)
    }

    fn evaluate_rules(&self, phase: Option<Phase>, request: &dyn Request) -> Verdict {
        let mut verdict = Verdict::ALLOW;
        for (index, rule) in self.rules.iter().enumerate() {
            if phase.is_some_and(|p| p != rule.phase) {
                continue;
            }
            let Ok(index) = u16::try_from(index) else { break };
            let holds = match self.condition_holds(&rule.condition, request) {
                Err(EvalError::Uninspectable) => {
                    verdict = verdict.with_uninspectable();
                    Ok(rule.on_uninspectable == OnUninspectable::Block)
                }
                other => other,
            };
            match holds {
                Ok(true) => {
                    if let (Action::AddToList, Some(list)) = (rule.action, rule.list) {
                        // At once, so later rules of this request already see the entry.
                        request.add_to_list(list, rule.ttl_seconds);
                    }
                    verdict = verdict.with_throttle(index, rule.action, rule.status, rule.retry_after_seconds);
                    if verdict.is_block() {
                        break;
                    }
                }
                Ok(false) => {}
                Err(_) => verdict = verdict.with_error(),
            }
        }
        verdict
    }

    /// The lists whose `add_when` holds for this exchange (evaluated once it is complete), as list indices.
    pub fn lists_to_add(&self, request: &dyn Request) -> Vec<u16> {
        self.lists
            .iter()
            .enumerate()
            .filter(|(_, list)| !list.add_when.is_empty())
            .filter(|(_, list)| matches!(self.condition_holds(&list.add_when, request), Ok(true)))
            .filter_map(|(i, _)| u16::try_from(i).ok())
            .collect()
    }

    /// This exchange's key for counter number `counter`: its `per` parts joined with `0x1f` (see [`bounded_key`]);
    /// `None` when a part does not evaluate (no token, an absent header).
    pub fn counter_key(&self, counter: u16, request: &dyn Request) -> Option<Vec<u8>> {
        let def = self.counters.get(usize::from(counter))?;
        let mut key = Vec::with_capacity(64);
        for (i, part) in def.per.iter().enumerate() {
            if i > 0 {
                key.push(0x1f);
            }
            match self.value_of(part, request).ok()? {
                Value::Str(s) => key.extend_from_slice(&s),
                _ => return None,
            }
        }
        Some(bounded_key(key))
    }

    /// What this exchange adds to counter number `counter`: `None` when its `when` does not hold (or errs), or its
    /// key or value does not evaluate.
    pub fn counter_event(&self, counter: u16, request: &dyn Request) -> Option<CounterEvent> {
        let def = self.counters.get(usize::from(counter))?;
        if !def.when.is_empty() && !matches!(self.condition_holds(&def.when, request), Ok(true)) {
            return None;
        }
        let key = self.counter_key(counter, request)?;
        let input = match (def.kind, def.of.is_empty()) {
            (CounterKind::Requests, _) | (_, true) => CounterInput::One,
            _ => match self.value_of(&def.of, request).ok()? {
                Value::Int(n) => CounterInput::Amount(u64::try_from(n).unwrap_or(0)),
                Value::Str(s) => CounterInput::Value(s.into_owned()),
                Value::Bool(_) => return None,
            },
        };
        Some(CounterEvent { key, input })
    }

    fn condition_holds(&self, condition: &[Node], request: &dyn Request) -> Result<bool, EvalError> {
        match self.value_of(condition, request)? {
            Value::Bool(b) => Ok(b),
            _ => Err(EvalError::Error),
        }
    }

    /// The value of an expression arena (root last).
    fn value_of<'a>(&'a self, nodes: &'a [Node], request: &'a dyn Request) -> Eval<'a> {
        let root = nodes.len().checked_sub(1).ok_or(EvalError::Error)?;
        let root = NodeIndex::try_from(root).map_err(|_| EvalError::Error)?;
        Evaluator { bundle: self, nodes, request }.eval(root)
    }
}

struct Evaluator<'a> {
    bundle: &'a Bundle,
    nodes: &'a [Node],
    request: &'a dyn Request,
}

impl<'a> Evaluator<'a> {
    // Recursion depth is bounded by `MAX_CONDITION_DEPTH`, checked when the bundle was loaded.
    fn eval(&self, index: NodeIndex) -> Eval<'a> {
        let node = usize::try_from(index).ok().and_then(|i| self.nodes.get(i)).ok_or(EvalError::Error)?;
        Ok(match node {
            Node::Bool(b) => Value::Bool(*b),
            Node::Int(i) => Value::Int(*i),
            Node::String(s) => Value::Str(Cow::Borrowed(s.as_bytes())),
            Node::Attribute(a) => Value::Str(self.request.attribute(*a).ok_or(EvalError::Error)?),
            Node::Header(name) => Value::Str(self.request.header(name.as_bytes()).ok_or(EvalError::Error)?),
            Node::HasHeader(name) => Value::Bool(self.request.header(name.as_bytes()).is_some()),
            Node::Not(a) => Value::Bool(!self.bool(*a)?),
            // `false && x` is false whatever `x` is (even an error), so `x` is not evaluated: no lookup is wasted.
            Node::And(a, b) => match self.bool(*a) {
                Ok(false) => Value::Bool(false),
                left => match (left, self.bool(*b)) {
                    (_, Ok(false)) => Value::Bool(false),
                    (Ok(true), Ok(true)) => Value::Bool(true),
                    (left, right) => return Err(EvalError::either(left, right)),
                },
            },
            Node::Or(a, b) => match self.bool(*a) {
                Ok(true) => Value::Bool(true),
                left => match (left, self.bool(*b)) {
                    (_, Ok(true)) => Value::Bool(true),
                    (Ok(false), Ok(false)) => Value::Bool(false),
                    (left, right) => return Err(EvalError::either(left, right)),
                },
            },
            Node::Eq(a, b) => Value::Bool(self.equal(*a, *b)?),
            Node::Ne(a, b) => Value::Bool(!self.equal(*a, *b)?),
            Node::Lt(a, b) => Value::Bool(self.compare(*a, *b)?.is_lt()),
            Node::Le(a, b) => Value::Bool(self.compare(*a, *b)?.is_le()),
            Node::Gt(a, b) => Value::Bool(self.compare(*a, *b)?.is_gt()),
            Node::Ge(a, b) => Value::Bool(self.compare(*a, *b)?.is_ge()),
            Node::StartsWith(a, b) => Value::Bool(self.str(*a)?.starts_with(&self.str(*b)?)),
            Node::EndsWith(a, b) => Value::Bool(self.str(*a)?.ends_with(&self.str(*b)?)),
            Node::Contains(a, b) => {
                let (hay, needle) = (self.str(*a)?, self.str(*b)?);
                Value::Bool(needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle.as_ref()))
            }
            Node::Matches { subject, dfa } => {
                let dfa = usize::try_from(*dfa).ok().and_then(|i| self.bundle.dfas.get(i)).ok_or(EvalError::Error)?;
                let subject = self.str(*subject)?;
                let input = Input::new(subject.as_ref()).earliest(true);
                Value::Bool(dfa.try_search_fwd(&input).map_err(|_| EvalError::Error)?.is_some())
            }
            Node::Size(a) => Value::Int(i64::try_from(self.str(*a)?.len()).map_err(|_| EvalError::Error)?),
            Node::Detected(d) => {
                if self.request.detection_count(*d) > 0 {
                    Value::Bool(true)
                } else if self
                    .bundle
                    .detections
                    .get(usize::from(*d))
                    .is_some_and(|def| self.request.uninspectable(def.location))
                {
                    // Nothing found in a body that could not be read is not "nothing there".
                    return Err(EvalError::Uninspectable);
                } else {
                    Value::Bool(false)
                }
            }
            Node::TokenPresent => Value::Bool(self.request.token_present()),
            Node::TokenField(f) => Value::Str(self.request.token_field(*f).ok_or(EvalError::Error)?),
            Node::TokenClaim(name) => Value::Str(self.request.token_claim(name).ok_or(EvalError::Error)?),
            Node::TokenHeader(name) => Value::Str(self.request.token_header(name).ok_or(EvalError::Error)?),
            Node::JwtFinding(f) => Value::Bool(self.request.jwt_finding(*f)),
            Node::InList { list, key } => {
                let key = self.str(*key)?;
                let def = self.bundle.lists.get(usize::from(*list)).ok_or(EvalError::Error)?;
                if def.contains_static(&key) {
                    self.request.static_list_hit(*list);
                    return Ok(Value::Bool(true));
                }
                if !def.is_dynamic() {
                    return Ok(Value::Bool(false));
                }
                Value::Bool(self.request.in_list(*list, &key).ok_or(EvalError::Error)?)
            }
            Node::Counter { counter, key } => {
                let key = match key {
                    Some(key) => bounded_key(self.str(*key)?.into_owned()),
                    None => self.bundle.counter_key(*counter, self.request).ok_or(EvalError::Error)?,
                };
                Value::Int(self.request.counter_value(*counter, &key).ok_or(EvalError::Error)?)
            }
            Node::SeenElsewhere(c) => Value::Bool(self.request.seen_elsewhere(*c).ok_or(EvalError::Error)?),
            Node::ResponseCode => Value::Int(self.request.response_code().ok_or(EvalError::Error)?),
            Node::ResponseBytes => Value::Int(self.request.response_bytes().ok_or(EvalError::Error)?),
            Node::BodyField(path) => match self.request.body_field(path) {
                Some(value) => Value::Str(value),
                None if self.request.body_fields_unreadable() => return Err(EvalError::Uninspectable),
                None => return Err(EvalError::Error),
            },
        })
    }

    fn bool(&self, index: NodeIndex) -> Result<bool, EvalError> {
        match self.eval(index)? {
            Value::Bool(b) => Ok(b),
            _ => Err(EvalError::Error),
        }
    }

    fn str(&self, index: NodeIndex) -> Result<Cow<'a, [u8]>, EvalError> {
        match self.eval(index)? {
            Value::Str(s) => Ok(s),
            _ => Err(EvalError::Error),
        }
    }

    fn equal(&self, a: NodeIndex, b: NodeIndex) -> Result<bool, EvalError> {
        match (self.eval(a)?, self.eval(b)?) {
            (Value::Bool(x), Value::Bool(y)) => Ok(x == y),
            (Value::Int(x), Value::Int(y)) => Ok(x == y),
            (Value::Str(x), Value::Str(y)) => Ok(x == y),
            _ => Err(EvalError::Error),
        }
    }

    fn compare(&self, a: NodeIndex, b: NodeIndex) -> Result<std::cmp::Ordering, EvalError> {
        match (self.eval(a)?, self.eval(b)?) {
            (Value::Int(x), Value::Int(y)) => Ok(x.cmp(&y)),
            (Value::Str(x), Value::Str(y)) => Ok(x.cmp(&y)),
            _ => Err(EvalError::Error),
        }
    }
}

/// A request held in memory: a method, a path and a header table. For tests, benches and tools.
#[derive(Clone, Debug, Default)]
pub struct TableRequest {
    /// Scalar attributes that are present.
    pub attributes: Vec<(Attribute, Vec<u8>)>,
    /// Headers, lower-case names, in arrival order; repeated names allowed.
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
}

impl TableRequest {
    /// A request with `method` and `path` (and `request.url_path` / `request.query` derived from it; the query is
    /// empty when the path has none, as in Envoy).
    pub fn new(method: &str, path: &str) -> TableRequest {
        let (url_path, query) = match path.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (path, None),
        };
        let attributes = vec![
            (Attribute::RequestMethod, method.as_bytes().to_vec()),
            (Attribute::RequestPath, path.as_bytes().to_vec()),
            (Attribute::RequestUrlPath, url_path.as_bytes().to_vec()),
            (Attribute::RequestQuery, query.unwrap_or("").as_bytes().to_vec()),
        ];
        TableRequest { attributes, headers: Vec::new() }
    }

    /// Adds a header (name lower-cased).
    #[must_use]
    pub fn header(mut self, name: &str, value: impl Into<Vec<u8>>) -> TableRequest {
        self.headers.push((name.to_ascii_lowercase().into_bytes(), value.into()));
        self
    }
}

impl Request for TableRequest {
    fn attribute(&self, attribute: Attribute) -> Option<Cow<'_, [u8]>> {
        self.attributes.iter().find(|(a, _)| *a == attribute).map(|(_, v)| Cow::Borrowed(v.as_slice()))
    }

    fn header(&self, name: &[u8]) -> Option<Cow<'_, [u8]>> {
        join_headers(self.headers.iter().map(|(n, v)| (n.as_slice(), v.as_slice())), name)
    }
}

/// Finds header `name` in `headers`, joining repeated values with `,` as Envoy's `request.headers` does.
pub fn join_headers<'h>(headers: impl Iterator<Item = (&'h [u8], &'h [u8])>, name: &[u8]) -> Option<Cow<'h, [u8]>> {
    let mut found: Option<Cow<'h, [u8]>> = None;
    for (n, v) in headers {
        if n != name {
            continue;
        }
        found = Some(match found {
            None => Cow::Borrowed(v),
            Some(prev) => {
                let mut joined = prev.into_owned();
                joined.push(b',');
                joined.extend_from_slice(v);
                Cow::Owned(joined)
            }
        });
    }
    found
}
