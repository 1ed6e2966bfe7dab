//! Adapters from proxy-wasm hostcalls to the plain-Rust traits of `policies` and `shared-state`.

use std::borrow::Cow;
use std::cell::OnceCell;
use std::rc::Rc;

use portcullis_policies::body_field::{json_field, FieldRead};
use portcullis_policies::detect::ListKey;
use portcullis_policies::endpoint::{endpoint_template, normalize_host, normalize_path, path_only};
use portcullis_policies::engine::join_headers;
use portcullis_policies::scan::Findings;
use portcullis_policies::token::{JwtFinding, TokenField};
use portcullis_policies::{Attribute, Phase, Request};
use portcullis_shared_state::{Cas, SharedData, WriteError, CREATE_CAS};

use crate::active::ActiveBundle;
use crate::headers::HeaderMap;
use crate::metrics::Metrics;
use crate::over_time::{
    body_field, field_body, is_json, parse_body_fields, CounterStore, Facts, SharedLocal, MAX_BODY_FIELD_BYTES,
};
use crate::token::CallerToken;

/// Milliseconds since the epoch, from the host's clock.
pub fn now_ms() -> u64 {
    let now = crate::hostcall::current_time();
    let since_epoch = now.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX)
}

/// Nanoseconds since the epoch, from the host's clock (for timing diagnostics).
pub fn now_ns() -> u64 {
    let now = crate::hostcall::current_time();
    u64::try_from(now.duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos()).unwrap_or(u64::MAX)
}

/// A secret shared by every VM of this Envoy: the value at `key`, or `candidate` if this VM is first to set it.
pub fn envoy_secret(key: &str, candidate: &[u8]) -> Vec<u8> {
    let store = HostSharedData;
    if let (Some(existing), _) = store.get(key) {
        if !existing.is_empty() {
            return existing;
        }
    }
    // Created only if still absent: when two VMs race, the first write wins and both read it back.
    let _ = store.set(key, candidate, Some(CREATE_CAS));
    store.get(key).0.filter(|v| !v.is_empty()).unwrap_or_else(|| candidate.to_vec())
}

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_get_header_map_pairs(map_type: u32, return_map_data: *mut *mut u8, return_map_size: *mut usize) -> u32;
}

/// The request headers as Envoy serialized them, read in place (see [`HeaderMap`]); empty if Envoy has none.
pub fn request_headers() -> HeaderMap {
    const REQUEST_HEADERS: u32 = 0;
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size: usize = 0;
    // SAFETY: the host writes a pointer it allocated through this module's `proxy_on_memory_allocate` (a boxed slice
    // of `size` bytes) and that size; the buffer is then ours, exactly as the SDK's own map getter takes it.
    let status = unsafe { proxy_get_header_map_pairs(REQUEST_HEADERS, &mut data, &mut size) };
    if status != 0 || data.is_null() {
        return HeaderMap::default();
    }
    // SAFETY: as above: `size` initialized bytes at `data`, allocated with the global allocator for a `[u8]`.
    HeaderMap::parse(unsafe { Vec::from_raw_parts(data, size, size) })
}

/// Envoy's shared data for this VM id.
pub struct HostSharedData;

impl SharedData for HostSharedData {
    fn get(&self, key: &str) -> (Option<Vec<u8>>, Option<Cas>) {
        crate::hostcall::shared_data(key)
    }

    fn set(&self, key: &str, value: &[u8], cas: Option<Cas>) -> Result<(), WriteError> {
        crate::hostcall::set_shared_data(key, value, cas.unwrap_or(0)).map_err(|e| match e {
            crate::hostcall::SharedWriteError::CasMismatch => WriteError::CasMismatch,
            crate::hostcall::SharedWriteError::Failed => WriteError::Failed,
        })
    }
}

/// One request's headers as Envoy handed them over (bytes, never assumed UTF-8), plus attributes read on demand.
pub struct HostRequest {
    headers: HeaderMap,
    protocol: OnceCell<Option<Vec<u8>>>,
    source: OnceCell<Option<Vec<u8>>>,
    destination: OnceCell<Option<Vec<u8>>>,
    endpoint: OnceCell<Vec<u8>>,
    /// `:path` normalised (see `portcullis_policies::endpoint::normalize_path`), query kept: `request.path`.
    path: OnceCell<Vec<u8>>,
    /// `:authority` normalised and lower-cased: `request.host`.
    host: OnceCell<Vec<u8>>,
}

impl HostRequest {
    /// Wraps the request's headers.
    pub fn new(headers: HeaderMap) -> HostRequest {
        HostRequest {
            headers,
            protocol: OnceCell::new(),
            source: OnceCell::new(),
            destination: OnceCell::new(),
            endpoint: OnceCell::new(),
            path: OnceCell::new(),
            host: OnceCell::new(),
        }
    }

    /// The first value of header `name` (pseudo-headers included), without joining.
    pub fn first(&self, name: &str) -> Option<&[u8]> {
        self.headers.first(name)
    }

    /// Every request header, names in lower case, in the order Envoy gave them.
    pub fn headers(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.headers.iter()
    }

    /// The endpoint template (`GET host/users/{id}`), computed once.
    pub fn endpoint(&self) -> &[u8] {
        self.endpoint.get_or_init(|| {
            let mut out = Vec::with_capacity(64);
            let part = |name: &str| self.first(name).unwrap_or_default();
            endpoint_template(part(":method"), part(":authority"), part(":path"), &mut out);
            out
        })
    }

    /// The raw `:path` split into path and query.
    /// The path and the query as they came (`:path` split at the first `?`).
    pub fn path_parts(&self) -> Option<(&[u8], &[u8])> {
        let path = self.first(":path")?;
        Some(match path.iter().position(|b| *b == b'?') {
            Some(q) => (path.get(..q).unwrap_or(path), path.get(q + 1..).unwrap_or_default()),
            None => (path, &[]),
        })
    }

    /// `request.path`: the normalised path, then the query as it came. Equivalent paths (`/./admin`, `/%61dmin`,
    /// `//admin`, `/admin;x=1`) are one, so a rule on the path cannot be sidestepped by spelling it differently.
    fn normalized_path(&self) -> Option<&[u8]> {
        let raw = self.first(":path")?;
        Some(self.path.get_or_init(|| {
            let mut out = Vec::with_capacity(raw.len());
            normalize_path(path_only(raw), &mut out);
            if let Some(q) = raw.iter().position(|b| *b == b'?') {
                out.extend_from_slice(raw.get(q..).unwrap_or_default());
            }
            out
        }))
    }

    /// `request.url_path`: the normalised path without the query.
    fn normalized_url_path(&self) -> Option<&[u8]> {
        let path = self.normalized_path()?;
        Some(path_only(path))
    }
}

/// Reads an Envoy attribute through `get_property`, once per request.
fn property<'a>(cell: &'a OnceCell<Option<Vec<u8>>>, path: &[&str]) -> Option<Cow<'a, [u8]>> {
    cell.get_or_init(|| crate::hostcall::property(path)).as_deref().map(Cow::Borrowed)
}

impl Request for HostRequest {
    fn attribute(&self, attribute: Attribute) -> Option<Cow<'_, [u8]>> {
        let header = |name: &str| self.first(name).map(Cow::Borrowed);
        match attribute {
            Attribute::RequestPath => self.normalized_path().map(Cow::Borrowed),
            Attribute::RequestUrlPath => self.normalized_url_path().map(Cow::Borrowed),
            Attribute::RequestQuery => self.path_parts().map(|(_, q)| Cow::Borrowed(q)),
            Attribute::RequestHost => {
                let authority = self.first(":authority")?;
                let host = self.host.get_or_init(|| normalize_host(authority).to_ascii_lowercase());
                Some(Cow::Borrowed(host.as_slice()))
            }
            Attribute::RequestScheme => header(":scheme"),
            Attribute::RequestMethod => header(":method"),
            Attribute::RequestId => header("x-request-id"),
            Attribute::RequestUserAgent => self.header(b"user-agent"),
            Attribute::RequestReferer => self.header(b"referer"),
            Attribute::RequestProtocol => property(&self.protocol, &["request", "protocol"]),
            Attribute::SourceAddress => property(&self.source, &["source", "address"]),
            Attribute::DestinationAddress => property(&self.destination, &["destination", "address"]),
            Attribute::Endpoint => Some(Cow::Borrowed(self.endpoint())),
            Attribute::SourceIp => match property(&self.source, &["source", "address"])? {
                Cow::Borrowed(address) => Some(Cow::Borrowed(strip_port(address))),
                Cow::Owned(address) => Some(Cow::Owned(strip_port(&address).to_vec())),
            },
        }
    }

    fn header(&self, name: &[u8]) -> Option<Cow<'_, [u8]>> {
        join_headers(self.headers.iter(), name)
    }
}

/// The request as rules see it at a phase: attributes and headers, the findings so far, the response so far,
/// lists and counters. Lookups that matter for the evidence are noted in `facts.notes`.
pub struct ExchangeView<'a> {
    request: &'a HostRequest,
    findings: &'a Findings,
    active: &'a Rc<ActiveBundle>,
    local: &'a SharedLocal,
    token: Option<&'a CallerToken>,
    facts: &'a Facts,
    metrics: Metrics,
    now_ms: u64,
}

impl<'a> ExchangeView<'a> {
    /// A view at time `now_ms`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        request: &'a HostRequest,
        findings: &'a Findings,
        active: &'a Rc<ActiveBundle>,
        local: &'a SharedLocal,
        token: Option<&'a CallerToken>,
        facts: &'a Facts,
        metrics: Metrics,
        now_ms: u64,
    ) -> Self {
        ExchangeView { request, findings, active, local, token, facts, metrics, now_ms }
    }

    /// The key this exchange has in a list of kind `key`.
    pub fn list_key(&self, key: ListKey) -> Option<Vec<u8>> {
        match key {
            ListKey::Endpoint => Some(self.request.endpoint().to_vec()),
            ListKey::SourceIp => self.request.attribute(Attribute::SourceIp).map(Cow::into_owned),
            ListKey::Token => self.token.map(|t| t.id.as_bytes().to_vec()),
        }
    }

    /// Adds this exchange's key to list number `list` for `ttl_ms`; counted and noted. False without a key or when
    /// the update gave up.
    pub fn add_key_to_list(&self, list: u16, ttl_ms: u64) -> bool {
        let (Some(def), Some(ttl_list)) =
            (self.active.bundle.lists().get(usize::from(list)), self.active.lists.get(usize::from(list)))
        else {
            return false;
        };
        let Some(key) = self.list_key(def.key) else { return false };
        match ttl_list.add(&HostSharedData, &key, self.now_ms, ttl_ms) {
            Ok(_) => {
                if def.batched {
                    // This worker sees its own addition at once.
                    self.local.borrow_mut().remember_listed(list, &key, true);
                }
                Metrics::bump(self.metrics.list_additions);
                self.facts.notes.borrow_mut().added(list);
                true
            }
            Err(_) => {
                Metrics::bump(self.metrics.list_contention);
                false
            }
        }
    }

    /// Applies every counter updated in `phase` (`RequestHeaders`, or `Response` for the end of the exchange):
    /// returns, per last-seen counter updated, whether its key was seen elsewhere.
    pub fn update_counters(&self, phase: Phase) -> Vec<(u16, bool)> {
        let mut elsewhere = Vec::new();
        let defs = self.active.bundle.counters().iter().zip(&self.active.counters);
        for (index, (def, counter)) in defs.enumerate() {
            let Ok(index) = u16::try_from(index) else { break };
            if def.phase != phase {
                continue;
            }
            let Some(event) = self.active.bundle.counter_event(index, self) else { continue };
            if def.batched {
                let added =
                    self.local.borrow_mut().add(self.active, index, &event, &HostSharedData, self.now_ms, self.metrics);
                match added {
                    Ok(value) => {
                        Metrics::add_later(self.metrics.counter_updates, 1);
                        if let Some(value) = value {
                            self.facts.notes.borrow_mut().counter_updated(index, value);
                            self.facts.updated.borrow_mut().push((index, event.key, value));
                        }
                    }
                    Err(_) => Metrics::bump(self.metrics.counter_failures),
                }
                continue;
            }
            match counter.apply(&HostSharedData, &event, self.now_ms) {
                Ok(applied) => {
                    Metrics::add_later(self.metrics.counter_updates, 1);
                    Metrics::add_later(self.metrics.counter_writes, 1);
                    Metrics::add_later(self.metrics.counter_cas_retries, u64::from(applied.retries));
                    match applied.elsewhere {
                        Some(moved) => elsewhere.push((index, moved)),
                        None => {
                            self.facts.notes.borrow_mut().counter_updated(index, applied.value);
                            // A rule reading this exchange's own key gets this value without another read.
                            self.facts.updated.borrow_mut().push((index, event.key, applied.value));
                        }
                    }
                }
                Err(_) => Metrics::bump(self.metrics.counter_failures),
            }
        }
        elsewhere
    }
}

impl ExchangeView<'_> {
    /// The request body as its fields are read (decoded once), `None` when they cannot be.
    fn field_body(&self) -> Option<&[u8]> {
        let raw = &self.facts.request_body;
        if self.request.first("content-encoding").is_none() {
            return (raw.len() <= MAX_BODY_FIELD_BYTES).then_some(raw.as_slice());
        }
        let decoded = self.facts.field_body.get_or_init(|| field_body(self.request, raw).map(Cow::into_owned));
        decoded.as_deref()
    }
}

impl Request for ExchangeView<'_> {
    fn attribute(&self, attribute: Attribute) -> Option<Cow<'_, [u8]>> {
        self.request.attribute(attribute)
    }

    fn header(&self, name: &[u8]) -> Option<Cow<'_, [u8]>> {
        self.request.header(name)
    }

    fn detection_count(&self, detection: u16) -> u32 {
        self.findings.count(detection)
    }

    fn uninspectable(&self, location: portcullis_policies::Location) -> bool {
        self.findings.uninspectable(location)
    }

    fn body_fields_unreadable(&self) -> bool {
        self.facts.body_unreadable.get() || self.field_body().is_none()
    }

    fn in_list(&self, list: u16, key: &[u8]) -> Option<bool> {
        let batched = self.active.bundle.lists().get(usize::from(list)).is_some_and(|def| def.batched);
        let remembered = if batched { self.local.borrow().listed(list, key) } else { None };
        let found = match remembered {
            Some(found) => found,
            None => {
                let found = self.active.lists.get(usize::from(list))?.contains(&HostSharedData, key, self.now_ms);
                if batched {
                    self.local.borrow_mut().remember_listed(list, key, found);
                }
                found
            }
        };
        if found {
            self.facts.notes.borrow_mut().hit(list);
        }
        Some(found)
    }

    fn token_present(&self) -> bool {
        self.token.is_some()
    }

    fn token_field(&self, field: TokenField) -> Option<Cow<'_, [u8]>> {
        self.token.map(|t| t.field(field))
    }

    fn token_claim(&self, name: &str) -> Option<Cow<'_, [u8]>> {
        self.token?.claim(name)
    }

    fn token_header(&self, name: &str) -> Option<Cow<'_, [u8]>> {
        self.token?.header(name)
    }

    fn jwt_finding(&self, finding: JwtFinding) -> bool {
        self.token.is_some_and(|t| t.has(finding))
    }

    fn static_list_hit(&self, list: u16) {
        self.facts.notes.borrow_mut().hit(list);
    }

    fn counter_value(&self, counter: u16, key: &[u8]) -> Option<i64> {
        let updated = self.facts.updated.borrow();
        let known = updated.iter().find(|(c, k, _)| *c == counter && k.as_slice() == key).map(|(_, _, v)| *v);
        drop(updated);
        let store = self.active.counters.get(usize::from(counter))?;
        let batched = self.active.bundle.counters().get(usize::from(counter)).is_some_and(|def| def.batched);
        let value = match (known, store) {
            (Some(value), _) => value,
            (None, CounterStore::Sliding(_)) if batched => {
                self.local.borrow_mut().read(self.active, counter, key, &HostSharedData, self.now_ms)
            }
            (None, store) => store.read(&HostSharedData, key, self.now_ms),
        };
        self.facts.notes.borrow_mut().counter(counter, value);
        Some(value)
    }

    fn seen_elsewhere(&self, counter: u16) -> Option<bool> {
        self.facts.elsewhere.iter().find(|(c, _)| *c == counter).map(|(_, moved)| *moved)
    }

    fn body_field(&self, path: &str) -> Option<Cow<'_, [u8]>> {
        let body = self.field_body()?;
        // No body has no fields (not an unreadable one).
        if body.trim_ascii().is_empty() {
            return None;
        }
        let content_type = self.request.first("content-type");
        if is_json(content_type) {
            return match json_field(body, path) {
                FieldRead::Found(value) => Some(value),
                FieldRead::Absent => None,
                FieldRead::Unreadable => {
                    self.facts.body_unreadable.set(true);
                    None
                }
            };
        }
        let fields = self.facts.body_fields.get_or_init(|| parse_body_fields(content_type, body));
        body_field(fields.as_ref()?, path)
    }

    fn response_code(&self) -> Option<i64> {
        self.facts.response_code.map(i64::from)
    }

    fn response_bytes(&self) -> Option<i64> {
        self.facts.response_code.map(|_| i64::try_from(self.facts.response_bytes).unwrap_or(i64::MAX))
    }

    fn add_to_list(&self, list: u16, ttl_seconds: u64) -> bool {
        self.add_key_to_list(list, ttl_seconds.saturating_mul(1000))
    }
}

/// `1.2.3.4:5678` → `1.2.3.4`; `[::1]:5678` → `::1`; anything else unchanged.
pub fn strip_port(address: &[u8]) -> &[u8] {
    if let Some(rest) = address.strip_prefix(b"[") {
        return match rest.iter().position(|b| *b == b']') {
            Some(end) => rest.get(..end).unwrap_or(rest),
            None => address,
        };
    }
    match address.iter().rposition(|b| *b == b':') {
        // One colon only: IPv4 with a port (a bare IPv6 address has several).
        Some(i) if address.iter().filter(|b| **b == b':').count() == 1 => address.get(..i).unwrap_or(address),
        _ => address,
    }
}

#[cfg(test)]
mod tests {
    use super::strip_port;

    #[test]
    fn ports_are_stripped_from_both_families() {
        assert_eq!(strip_port(b"10.0.0.1:443"), b"10.0.0.1");
        assert_eq!(strip_port(b"[2001:db8::1]:443"), b"2001:db8::1");
        assert_eq!(strip_port(b"2001:db8::1"), b"2001:db8::1");
        assert_eq!(strip_port(b"10.0.0.1"), b"10.0.0.1");
        assert_eq!(strip_port(b"[oops"), b"[oops");
    }
}
