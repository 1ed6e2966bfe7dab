//! Counters over time in the filter: the bundle's counters bound to shared data, and what one exchange's rules
//! looked at (for the access-log evidence).
//!
//! A counter is updated once per exchange, in the earliest phase that has everything it reads: with the request
//! headers (before the rules, so `count()` includes this exchange), or when the exchange ends (a `when` on
//! `response.code`, say). Rules read counters as they are at the time of the rule.

use std::cell::RefCell;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::rc::Rc;

use portcullis_policies::detect::{CounterDef, CounterKind};
use portcullis_policies::engine::{CounterEvent, CounterInput};
use portcullis_shared_state::{CounterError, DistinctCounter, Footprint, LastSeen, Salt, SharedData, SlidingCounter};

use crate::active::ActiveBundle;
use crate::hashed::HashedMap;
use crate::metrics::Metrics;

/// One bundle counter over shared data. Its shared-data name is the counter id: a bundle that changes a counter's
/// kind or shape starts it afresh (values of another shape read as empty), and the key space stays bounded by the
/// largest shape ever used.
#[derive(Debug)]
pub enum CounterStore {
    /// `requests` and `sum`.
    Sliding(SlidingCounter),
    /// `distinct`.
    Distinct(DistinctCounter),
    /// `last_seen`, with its window in milliseconds.
    Seen(LastSeen, u64),
}

/// What applying an event did: the counter's value after it, the CAS retries it took, and (last-seen counters)
/// whether the key was last seen elsewhere within the window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// Count, sum or distinct count after the update (0 for last-seen).
    pub value: i64,
    /// Compare-and-swap retries used.
    pub retries: u32,
    /// Last-seen counters: the key was seen within the window with another value.
    pub elsewhere: Option<bool>,
}

impl CounterStore {
    /// Binds counter `def` to shared data, its bucket hash keyed by `salt` (this Envoy's).
    pub fn new(def: &CounterDef, salt: Salt) -> CounterStore {
        let window_ms = def.window_seconds.saturating_mul(1000);
        match def.kind {
            CounterKind::Requests | CounterKind::Sum => {
                CounterStore::Sliding(SlidingCounter::new(&def.id, def.max_keys, window_ms).salted(salt))
            }
            CounterKind::Distinct => CounterStore::Distinct(
                DistinctCounter::new(&def.id, def.max_keys, window_ms, def.max_distinct).salted(salt),
            ),
            CounterKind::LastSeen => CounterStore::Seen(LastSeen::new(&def.id, def.max_keys).salted(salt), window_ms),
        }
    }

    /// What the counter may use and uses of shared data.
    pub fn footprint(&self) -> &dyn Footprint {
        match self {
            CounterStore::Sliding(c) => c,
            CounterStore::Distinct(c) => c,
            CounterStore::Seen(c, _) => c,
        }
    }

    /// The value for `key` at `now_ms` (one read).
    pub fn read(&self, store: &dyn SharedData, key: &[u8], now_ms: u64) -> i64 {
        match self {
            CounterStore::Sliding(c) => i64::try_from(c.estimate(store, key, now_ms)).unwrap_or(i64::MAX),
            CounterStore::Distinct(c) => i64::from(c.count(store, key, now_ms)),
            CounterStore::Seen(..) => 0,
        }
    }

    /// Applies one exchange's event at `now_ms`.
    ///
    /// # Errors
    ///
    /// The counter's [`CounterError`] (contention past the retry bound, or a refused write): nothing was counted.
    pub fn apply(&self, store: &dyn SharedData, event: &CounterEvent, now_ms: u64) -> Result<Applied, CounterError> {
        let key = event.key.as_slice();
        match (self, &event.input) {
            (CounterStore::Sliding(c), input) => {
                let n = match input {
                    CounterInput::Amount(n) => u32::try_from(*n).unwrap_or(u32::MAX),
                    _ => 1,
                };
                let (value, retries) = c.add(store, key, now_ms, n)?;
                Ok(Applied { value: i64::try_from(value).unwrap_or(i64::MAX), retries, elsewhere: None })
            }
            (CounterStore::Distinct(c), CounterInput::Value(item)) => {
                let (value, retries) = c.add(store, key, item, now_ms)?;
                Ok(Applied { value: i64::from(value), retries, elsewhere: None })
            }
            (CounterStore::Seen(c, window_ms), CounterInput::Value(value)) => {
                let (previous, retries) = c.record_counting_retries(store, key, value, now_ms)?;
                let elsewhere =
                    previous.is_some_and(|(seen, at)| now_ms.saturating_sub(at) < *window_ms && !seen.matches(value));
                Ok(Applied { value: 0, retries, elsewhere: Some(elsewhere) })
            }
            // The loader checked each kind's value type: nothing else reaches here.
            _ => Ok(Applied::default()),
        }
    }
}

/// What one exchange's rules looked at, for the evidence line. Bounded: one entry per list and per counter.
#[derive(Debug, Default)]
pub struct Notes {
    /// Lists a lookup found the exchange's key in.
    pub lists_hit: Vec<u16>,
    /// Lists the exchange's key was added to (`add_when`, `add_to_list`).
    pub lists_added: Vec<u16>,
    /// Counters read or updated, with the latest value seen.
    pub counters: Vec<(u16, i64)>,
}

impl Notes {
    /// Records a list the key was found in.
    pub fn hit(&mut self, list: u16) {
        if !self.lists_hit.contains(&list) {
            self.lists_hit.push(list);
        }
    }

    /// Records a list the key was added to.
    pub fn added(&mut self, list: u16) {
        if !self.lists_added.contains(&list) {
            self.lists_added.push(list);
        }
    }

    /// Records the value a rule read: the evidence shows what the decision saw.
    pub fn counter(&mut self, counter: u16, value: i64) {
        match self.counters.iter_mut().find(|(c, _)| *c == counter) {
            Some(entry) => entry.1 = value,
            None => self.counters.push((counter, value)),
        }
    }

    /// Records a counter's value after this exchange updated it, unless a rule already read it.
    pub fn counter_updated(&mut self, counter: u16, value: i64) {
        if !self.counters.iter().any(|(c, _)| *c == counter) {
            self.counters.push((counter, value));
        }
    }
}

/// Facts about the exchange that rules and counters read besides the request.
#[derive(Debug, Default)]
pub struct Facts {
    /// The response status, once the response headers arrived.
    pub response_code: Option<u16>,
    /// Response body bytes seen so far.
    pub response_bytes: u64,
    /// Last-seen counters recorded for this exchange, and whether the key was seen elsewhere.
    pub elsewhere: Vec<(u16, bool)>,
    /// What the rules looked at.
    pub notes: RefCell<Notes>,
    /// Counters this exchange updated with the request headers: (counter, key, value after the update).
    pub updated: RefCell<Vec<(u16, Vec<u8>, i64)>>,
    /// The first bytes of the request body, kept when the policy reads body fields (at most
    /// [`MAX_BODY_FIELD_BYTES`] + 1, so a longer body is known to be cut).
    pub request_body: Vec<u8>,
    /// A form body's fields, parsed once when first read (`None`: not a form, or cut).
    pub body_fields: std::cell::OnceCell<Option<serde_json::Value>>,
    /// The request body with its `content-encoding` removed, decoded once when a field is first read (`None`: its
    /// fields cannot be read, see [`field_body`]).
    pub field_body: std::cell::OnceCell<Option<Vec<u8>>>,
    /// A rule read a field of a body that could not be read (see [`body_fields_unreadable`]).
    pub body_unreadable: std::cell::Cell<bool>,
}

/// The most request-body bytes kept for `request.body["field"]`: login and token requests are small. A longer
/// body's fields are unreadable, and a rule reading one is decided by its `on_uninspectable` (a blocking rule
/// blocks by default), so padding a body past the limit is no way around a rule.
pub const MAX_BODY_FIELD_BYTES: usize = 8 * 1024;

/// True when the content type says JSON.
pub fn is_json(content_type: Option<&[u8]>) -> bool {
    content_type.is_some_and(|c| c.windows(4).any(|w| w.eq_ignore_ascii_case(b"json")))
}

/// The request body as its fields are read: `body` (the first bytes kept) with its `content-encoding` removed;
/// `None` when its fields cannot be read at all (longer than [`MAX_BODY_FIELD_BYTES`] as sent or decoded, or in an
/// encoding that cannot be decoded).
pub fn field_body<'b>(request: &crate::host::HostRequest, body: &'b [u8]) -> Option<std::borrow::Cow<'b, [u8]>> {
    if body.len() > MAX_BODY_FIELD_BYTES {
        return None;
    }
    portcullis_policies::scan::decode_body(request.first("content-encoding"), body, MAX_BODY_FIELD_BYTES)
}

/// The fields of a form request body: an object of its first values (`None` when the content type is not a form).
pub fn parse_body_fields(content_type: Option<&[u8]>, body: &[u8]) -> Option<serde_json::Value> {
    if body.len() > MAX_BODY_FIELD_BYTES {
        return None;
    }
    let content_type = content_type.map(|c| c.to_ascii_lowercase()).unwrap_or_default();
    let has = |needle: &[u8]| content_type.windows(needle.len()).any(|w| w == needle);
    if !has(b"application/x-www-form-urlencoded") {
        return None;
    }
    let mut fields = serde_json::Map::new();
    for pair in body.split(|b| *b == b'&') {
        let (name, value) = match pair.iter().position(|b| *b == b'=') {
            Some(eq) => (pair.get(..eq).unwrap_or_default(), pair.get(eq + 1..).unwrap_or_default()),
            None => (pair, &[][..]),
        };
        let name = String::from_utf8_lossy(&percent_decode(name)).into_owned();
        let value = String::from_utf8_lossy(&percent_decode(value)).into_owned();
        fields.entry(name).or_insert(serde_json::Value::String(value));
    }
    Some(serde_json::Value::Object(fields))
}

/// Field `path` (dots reach into objects) of `fields` as text: strings as they are, numbers and booleans as JSON.
pub fn body_field<'v>(fields: &'v serde_json::Value, path: &str) -> Option<std::borrow::Cow<'v, [u8]>> {
    let mut value = fields;
    for segment in path.split('.') {
        value = value.get(segment)?;
    }
    match value {
        serde_json::Value::String(s) => Some(std::borrow::Cow::Borrowed(s.as_bytes())),
        serde_json::Value::Number(_) | serde_json::Value::Bool(_) => Some(value.to_string().into_bytes().into()),
        _ => None,
    }
}

/// `application/x-www-form-urlencoded` decoding: `+` is a space, `%XX` a byte; a malformed escape stays as is.
fn percent_decode(input: &[u8]) -> Vec<u8> {
    let hex = |b: u8| char::from(b).to_digit(16).and_then(|d| u8::try_from(d).ok());
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while let Some(&b) = input.get(i) {
        match b {
            b'+' => out.push(b' '),
            b'%' => match (input.get(i + 1).copied().and_then(hex), input.get(i + 2).copied().and_then(hex)) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            _ => out.push(b),
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_fields() {
        assert!(is_json(Some(b"application/vnd.api+JSON")));
        assert!(!is_json(Some(b"text/plain")));
        let form =
            parse_body_fields(Some(b"application/x-www-form-urlencoded"), b"username=a%40b.co&pw=x+y&username=2")
                .expect("form");
        assert_eq!(body_field(&form, "username").as_deref(), Some(&b"a@b.co"[..]), "first value wins");
        assert_eq!(body_field(&form, "pw").as_deref(), Some(&b"x y"[..]));
        assert_eq!(parse_body_fields(Some(b"text/plain"), b"username=a"), None);
        assert_eq!(parse_body_fields(Some(b"application/json"), b"{\"a\":1}"), None, "JSON is read by json_field");
        assert_eq!(percent_decode(b"%zz%4"), b"%zz%4");
    }
}

/// Measures how much shared data the active bundle's dynamic lists and counters hold, reading a bounded number of
/// buckets per call so that no tick stalls. Run by the fetch-lease holder only: one VM per Envoy sweeps.
///
/// Nothing needs reclaiming: every bucket value has a fixed size, expired entries are reused in place by the next
/// write to their bucket, and a structure never uses more keys than its bucket count. The sweep proves it, as the
/// `portcullis.shared_data_bytes` gauge against `portcullis.shared_data_bytes_limit`.
#[derive(Debug, Default)]
pub struct Sweep {
    /// The bundle swept (a new bundle restarts the pass).
    digest: [u8; 32],
    /// Position: structure number (dynamic lists first, then counters) and bucket inside it.
    table: usize,
    bucket: u32,
    /// Bytes found so far in this pass.
    bytes: u64,
}

impl Sweep {
    /// Reads up to `max_reads` buckets of `active`'s structures; returns the total when a whole pass ended.
    pub fn step(&mut self, active: &ActiveBundle, store: &dyn SharedData, max_reads: u32) -> Option<u64> {
        if self.digest != *active.bundle.digest() {
            *self = Sweep { digest: *active.bundle.digest(), ..Sweep::default() };
        }
        // Dynamic lists, then counters: every structure that owns bucket keys in shared data.
        let lists = active.bundle.lists().iter().zip(&active.lists).filter(|(def, _)| def.is_dynamic());
        let tables: Vec<&dyn Footprint> = lists
            .map(|(_, list)| list as &dyn Footprint)
            .chain(active.counters.iter().map(CounterStore::footprint))
            .collect();
        let mut reads = 0;
        while reads < max_reads {
            let Some(table) = tables.get(self.table) else {
                let total = self.bytes;
                *self = Sweep { digest: self.digest, ..Sweep::default() };
                return Some(total);
            };
            if self.bucket >= table.buckets() {
                self.table += 1;
                self.bucket = 0;
                continue;
            }
            self.bytes = self.bytes.saturating_add(table.stored_bytes(store, self.bucket));
            self.bucket += 1;
            reads += 1;
        }
        None
    }
}

/// Most entries a worker keeps in each of its batching tables (adds not yet written, values observed, distinct
/// items recorded). Keys are at most `MAX_COUNTER_KEY` + 1 bytes, so each table stays under about 600 KiB.
const MAX_LOCAL_ENTRIES: usize = 4096;

/// What one worker VM keeps for `batched: true` counters between two flushes (every tick, 250 ms).
///
/// - `requests` / `sum`: adds are summed here and written to shared data at the next flush, one compare-and-swap
///   per key instead of one per exchange. A rule reads the shared value (once per key and tick) plus this worker's
///   adds not yet written: its own exchanges count at once, other workers' within a tick.
/// - `distinct`: an item this worker recorded for a key is not recorded again until the key's window ends (it
///   would change nothing), so a repeat costs no shared-data access.
///
/// Memory is bounded: a table that reaches [`MAX_LOCAL_ENTRIES`] is flushed (adds) or emptied (the others).
#[derive(Debug, Default)]
pub struct LocalCounters {
    /// The bundle the entries belong to: a swap flushes them under it first.
    active: Option<Rc<ActiveBundle>>,
    /// Adds not yet written, by [`LocalCounters::slot`]: the counter, the key (kept to write it) and the amount.
    pending: HashedMap<u64, (u16, Vec<u8>, u64)>,
    /// Shared values read or written since the last flush, by slot (this worker's pending adds not included).
    observed: HashedMap<u64, i64>,
    /// Distinct items recorded by this worker, by a keyed hash of (counter, key, item): when the key's window ends.
    known: HashedMap<u64, u64>,
    /// Seeds the hashes every table is keyed by (randomly, from WASI): an attacker cannot aim collisions at them,
    /// and a lookup hashes borrowed bytes instead of copying the key.
    hasher: RandomState,
    /// Answers of batched list lookups this tick, by a keyed hash of (list, key).
    listed: HashedMap<u64, bool>,
    /// The time of this worker's last tick (0 before the first).
    tick_ms: u64,
}

/// The per-VM batching state, shared by the root context (which flushes) and the request contexts.
pub type SharedLocal = Rc<RefCell<LocalCounters>>;

impl LocalCounters {
    /// Applies `event` to batched counter `counter` of `active`. Returns the value the key now has as this worker
    /// sees it, when known (a repeated distinct item reads nothing), and whether shared data was written.
    ///
    /// # Errors
    ///
    /// The counter's error when a write it had to make failed.
    pub fn add(
        &mut self,
        active: &Rc<ActiveBundle>,
        counter: u16,
        event: &CounterEvent,
        store: &dyn SharedData,
        now_ms: u64,
        metrics: Metrics,
    ) -> Result<Option<i64>, CounterError> {
        self.bind(active, store, now_ms, metrics);
        match (active.counters.get(usize::from(counter)), &event.input) {
            (Some(CounterStore::Sliding(_)), input) => {
                let n = match input {
                    CounterInput::Amount(n) => *n,
                    _ => 1,
                };
                let slot = self.slot(counter, &event.key);
                if !self.pending.contains_key(&slot) && self.pending.len() >= MAX_LOCAL_ENTRIES {
                    // Bounded memory: a full table is written out now rather than grown.
                    self.flush(store, now_ms, metrics);
                }
                let entry = self.pending.entry(slot).or_insert_with(|| (counter, event.key.clone(), 0));
                entry.2 = entry.2.saturating_add(n);
                Ok(Some(self.read_slot(slot, active, counter, &event.key, store, now_ms)))
            }
            (Some(CounterStore::Distinct(c)), CounterInput::Value(item)) => {
                let id = self.hash(counter, &[&event.key, item]);
                if self.known.get(&id).is_some_and(|until| now_ms < *until) {
                    return Ok(None);
                }
                let (count, retries, until) = c.add_until(store, &event.key, item, now_ms)?;
                Metrics::add_later(metrics.counter_writes, 1);
                Metrics::add_later(metrics.counter_cas_retries, u64::from(retries));
                if self.known.len() >= MAX_LOCAL_ENTRIES {
                    self.known.retain(|_, until| *until > now_ms);
                    if self.known.len() >= MAX_LOCAL_ENTRIES {
                        self.known.clear();
                    }
                }
                self.known.insert(id, until);
                Ok(Some(i64::from(count)))
            }
            _ => Ok(None),
        }
    }

    /// The value of batched `requests` / `sum` counter `counter` for `key`: the shared value (read at most once per
    /// key and tick) plus this worker's adds not yet written.
    pub fn read(
        &mut self,
        active: &Rc<ActiveBundle>,
        counter: u16,
        key: &[u8],
        store: &dyn SharedData,
        now_ms: u64,
    ) -> i64 {
        let slot = self.slot(counter, key);
        self.read_slot(slot, active, counter, key, store, now_ms)
    }

    /// [`LocalCounters::read`] with the key's slot already known.
    fn read_slot(
        &mut self,
        slot: u64,
        active: &Rc<ActiveBundle>,
        counter: u16,
        key: &[u8],
        store: &dyn SharedData,
        now_ms: u64,
    ) -> i64 {
        let shared = match self.observed.get(&slot) {
            Some(value) => *value,
            None => {
                let value = active.counters.get(usize::from(counter)).map_or(0, |c| c.read(store, key, now_ms));
                if self.observed.len() >= MAX_LOCAL_ENTRIES {
                    self.observed.clear();
                }
                self.observed.insert(slot, value);
                value
            }
        };
        let pending = self.pending.get(&slot).map_or(0, |(_, _, n)| *n);
        shared.saturating_add(i64::try_from(pending).unwrap_or(i64::MAX))
    }

    /// Writes every pending add to shared data (one compare-and-swap per key) and forgets the values observed, so
    /// the next read of a key sees what every worker flushed.
    pub fn flush(&mut self, store: &dyn SharedData, now_ms: u64, metrics: Metrics) {
        self.forget_observed();
        let Some(active) = self.active.clone() else {
            self.pending.clear();
            return;
        };
        for (slot, (counter, key, n)) in self.pending.drain() {
            let Some(CounterStore::Sliding(c)) = active.counters.get(usize::from(counter)) else { continue };
            match c.add(store, &key, now_ms, u32::try_from(n).unwrap_or(u32::MAX)) {
                Ok((value, retries)) => {
                    Metrics::add_later(metrics.counter_writes, 1);
                    Metrics::add_later(metrics.counter_cas_retries, u64::from(retries));
                    self.observed.insert(slot, i64::try_from(value).unwrap_or(i64::MAX));
                }
                Err(_) => Metrics::bump(metrics.counter_failures),
            }
        }
    }

    /// Forgets the shared values and list answers read since the last tick (done at every tick, flush or not).
    pub fn forget_observed(&mut self) {
        self.observed.clear();
        self.listed.clear();
    }

    /// The answer a batched list lookup got this tick, if any.
    pub fn listed(&self, list: u16, key: &[u8]) -> Option<bool> {
        self.listed.get(&self.hash(list, &[key])).copied()
    }

    /// Remembers a batched list lookup's answer (or this worker's own addition) until the next tick.
    pub fn remember_listed(&mut self, list: u16, key: &[u8], found: bool) {
        if self.listed.len() >= MAX_LOCAL_ENTRIES {
            self.listed.clear();
        }
        self.listed.insert(self.hash(list, &[key]), found);
    }

    /// Records the time of this worker's tick.
    pub fn set_tick(&mut self, now_ms: u64) {
        self.tick_ms = now_ms;
    }

    /// The time of this worker's last tick (0 before the first).
    pub fn tick_ms(&self) -> u64 {
        self.tick_ms
    }

    /// The table key of `(counter, key)`: 64 bits of a randomly keyed hash, so two of the few thousand entries a
    /// worker keeps collide with odds of about 10⁻¹², and nobody can make them.
    fn slot(&self, counter: u16, key: &[u8]) -> u64 {
        self.hash(counter, &[key])
    }

    /// The keyed hash of a table number and byte strings: every part but the last is length-prefixed, so no two
    /// inputs hash the same bytes.
    fn hash(&self, table: u16, parts: &[&[u8]]) -> u64 {
        let mut hasher = self.hasher.build_hasher();
        hasher.write_u16(table);
        if let Some((last, init)) = parts.split_last() {
            for part in init {
                hasher.write_usize(part.len());
                hasher.write(part);
            }
            hasher.write(last);
        }
        hasher.finish()
    }

    /// True when adds are waiting for a flush.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Makes the tables belong to `active`; entries of another bundle are flushed under that bundle first.
    fn bind(&mut self, active: &Rc<ActiveBundle>, store: &dyn SharedData, now_ms: u64, metrics: Metrics) {
        if self.active.as_ref().is_some_and(|current| Rc::ptr_eq(current, active)) {
            return;
        }
        self.flush(store, now_ms, metrics);
        self.forget_observed();
        self.known.clear();
        self.active = Some(Rc::clone(active));
    }
}
