//! The per-request context: one exchange from request headers to the end of the response.
//!
//! Rules are decided in phases (see `portcullis_policies::Phase`):
//! 1. **request headers**: attributes, headers, the query string's detections, lists and counters; can block or
//!    throttle. Counters that only read the request headers are updated first, so their values include this
//!    exchange;
//! 2. **request body**: detections in the request body, inspected as it streams up to the cap, and
//!    `request.body["field"]`. When the bundle has a rule there that can answer (block, throttle), the body is held
//!    (Envoy buffers it, at most the cap plus one read) until that rule is decided, so a blocked body never reaches
//!    the upstream; the request headers have gone ahead, and the upstream request is reset when the block is
//!    answered. A body declared longer than the cap is not held (Envoy would answer 413 before the cap is
//!    reached). Otherwise the body streams through untouched while it is inspected. A body past the cap is
//!    decided as soon as the cap is passed (the rest is the `inspection=truncated` finding, which the rule's
//!    `on_uninspectable` decides): a block answers then, before the rest is forwarded;
//! 3. **response**: detections in the response body, `response.code` and `response.bytes`; monitor and
//!    add_to_list only, since the response is already on its way. Counters that read the response and lists with
//!    `add_when` are updated when the exchange is complete, which is how the response acts on *later* requests.
//!
//! The verdict (rules, detections, truncation, lists, counters, endpoint) is written to filter state after each
//! phase, so the access log sees the latest.

use std::rc::Rc;

use portcullis_policies::attacks::values::Findings as AttackFindings;
use portcullis_policies::scan::{scan_value, BodyInspector, Findings, SkipReason};
use portcullis_policies::{Action, Attribute, Location, Phase, Request, Verdict};
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action as Flow;

use crate::active::{ActiveBundle, Snapshot};
use crate::attacks::AttackPlan;
use crate::config::FailureMode;
use crate::evidence::{block_body, no_bundle_body, verdict_line, Evidence, VERDICT_PROPERTY};
use crate::host::{now_ms, now_ns, ExchangeView, HostRequest};
use crate::hostcall;
use crate::metrics::Metrics;
use crate::over_time::{Facts, SharedLocal, MAX_BODY_FIELD_BYTES};
use crate::token::CallerToken;

/// One request. Holds the bundle that was active when the request began, so a swap never splits a request.
pub struct RequestFilter {
    snapshot: Snapshot,
    /// Boxed: the body callbacks take it out and put it back, and an exchange is over a kilobyte.
    exchange: Option<Box<Exchange>>,
}

/// The state of one exchange under a bundle.
struct Exchange {
    active: Rc<ActiveBundle>,
    request: HostRequest,
    /// The caller's token, found and judged with the request headers.
    token: Option<CallerToken>,
    findings: Findings,
    /// What the attack detections found, in the headers and then the body.
    attacks: AttackFindings,
    /// The request body as received, up to the inspection cap, when an attack detection reads the body.
    attack_body: Vec<u8>,
    /// The request body went past the cap before the attack inspection.
    attack_body_truncated: bool,
    verdict: Verdict,
    request_body: Option<BodyInspector>,
    response_body: Option<BodyInspector>,
    /// The body is held (buffered by Envoy) until the request-body rules are decided.
    holding_request: bool,
    /// Bytes of the held request body already inspected (Envoy presents the whole buffer on each call).
    request_seen: usize,
    request_decided: bool,
    concluded: bool,
    /// The response so far, last-seen results, and what the rules looked at.
    facts: Facts,
    /// The time lists and counters use, read once per phase that needs it (a hostcall costs about 2 µs).
    now_ms: std::cell::Cell<Option<u64>>,
    /// This VM's batched counters.
    local: SharedLocal,
}

impl Exchange {
    /// The exchange as rules see it now.
    fn view(&self, metrics: Metrics) -> ExchangeView<'_> {
        let now = match self.now_ms.get() {
            Some(now) => now,
            None => {
                let tick = self.local.try_borrow().map_or(0, |local| local.tick_ms());
                let now = self.active.clock_at(tick);
                self.now_ms.set(Some(now));
                now
            }
        };
        let (request, findings, token) = (&self.request, &self.findings, self.token.as_ref());
        ExchangeView::new(request, findings, &self.active, &self.local, token, &self.facts, metrics, now)
    }
}

impl RequestFilter {
    /// A request context over `snapshot`.
    pub fn new(snapshot: Snapshot) -> RequestFilter {
        RequestFilter { snapshot, exchange: None }
    }

    fn respond_json(&self, status: u32, body: &[u8], retry_after: Option<&str>) {
        let mut headers = vec![("content-type", "application/json"), ("cache-control", "no-store")];
        if let Some(seconds) = retry_after {
            headers.push(("retry-after", seconds));
        }
        hostcall::send_response(status, &headers, body);
    }

    /// Evaluates one phase and folds its verdict in; answers the request if it blocks or throttles. True when
    /// answered.
    fn decide(&mut self, phase: Phase) -> bool {
        let metrics = self.snapshot.metrics;
        let Some(ex) = self.exchange.as_mut() else { return false };
        if !ex.active.has_rules(phase) {
            return false;
        }
        let verdict = ex.active.bundle.evaluate_phase(phase, &ex.view(metrics));
        ex.verdict = ex.verdict.then(verdict);
        if !ex.verdict.is_block() {
            return false;
        }
        let throttled = ex.verdict.action == Some(Action::Throttle);
        Metrics::bump(if throttled { metrics.requests_throttled } else { metrics.requests_blocked });
        self.conclude();
        let Some(ex) = self.exchange.as_ref() else { return true };
        let rule_id = ex.verdict.rule.and_then(|i| ex.active.bundle.rule_id(i)).unwrap_or("-");
        let body = block_body(rule_id, ex.request.first("x-request-id"));
        let retry_after = throttled.then(|| ex.verdict.retry_after.to_string());
        self.respond_json(u32::from(ex.verdict.status), &body, retry_after.as_deref());
        true
    }

    /// Ends the exchange once: list updates, counters, and the final verdict in filter state.
    fn conclude(&mut self) {
        let Some(ex) = self.exchange.as_mut() else { return };
        if ex.concluded {
            return;
        }
        ex.concluded = true;
        if ex.active.concludes_with_state {
            // The exchange may have lasted: end-of-exchange counters and list additions use the time it ended.
            ex.now_ms.set(None);
        }
        let view = ex.view(self.snapshot.metrics);
        // Counters that read the response (or a body) count the exchange now that it is complete.
        if !ex.active.counters.is_empty() {
            view.update_counters(Phase::Response);
        }
        for list in ex.active.bundle.lists_to_add(&view) {
            let ttl = ex.active.bundle.lists().get(usize::from(list)).map_or(0, |def| def.ttl_seconds);
            view.add_key_to_list(list, ttl.saturating_mul(1000));
        }
        if ex.verdict.action == Some(Action::Monitor) {
            Metrics::bump(self.snapshot.metrics.requests_monitored);
        }
        if ex.findings.nonzero().next().is_some() {
            Metrics::bump(self.snapshot.metrics.exchanges_with_detections);
        }
        AttackPlan::count_classes(&ex.attacks, &self.snapshot.metrics);
        self.record();
    }

    /// Writes the current verdict line to filter state (the access log reads the last one written).
    fn record(&self) {
        let Some(ex) = self.exchange.as_ref() else { return };
        // Most requests match nothing: leave before building anything.
        let jwt_clean = ex.token.as_ref().is_none_or(|t| t.findings.is_empty());
        let notes = ex.facts.notes.borrow();
        if ex.verdict.action.is_none()
            && ex.verdict.uninspectable == 0
            && !ex.findings.any_uninspectable()
            && notes.lists_added.is_empty()
            && jwt_clean
            && ex.findings.nonzero().next().is_none()
            && ex.attacks.total == 0
        {
            return;
        }
        let bundle = &ex.active.bundle;
        let detections =
            ex.findings.nonzero().filter_map(|(d, n)| Some((bundle.detections().get(usize::from(d))?.id.as_str(), n)));
        let evidence = Evidence {
            verdict: ex.verdict,
            rule_id: ex.verdict.rule.and_then(|i| bundle.rule_id(i)),
            detections: detections.collect(),
            attacks: crate::attacks::evidence(&ex.attacks),
            // What could not be read: an undecodable body, else a body past the cap, else a body field a rule could
            // not read.
            inspection: if ex.findings.any_uninspectable() {
                let bodies = [ex.request_body.as_ref(), ex.response_body.as_ref()];
                let encoded = bodies.iter().flatten().any(|i| i.encoded());
                Some(if encoded { "encoded" } else { "truncated" })
            } else if ex.verdict.uninspectable > 0 {
                Some("unreadable")
            } else {
                None
            },
            request_truncated: ex.request_body.as_ref().is_some_and(BodyInspector::truncated),
            response_truncated: ex.response_body.as_ref().is_some_and(BodyInspector::truncated),
            lists_added: notes
                .lists_added
                .iter()
                .filter_map(|l| Some(bundle.lists().get(usize::from(*l))?.id.as_str()))
                .collect(),
            lists_hit: notes
                .lists_hit
                .iter()
                .filter_map(|l| Some(bundle.lists().get(usize::from(*l))?.id.as_str()))
                .collect(),
            counters: notes
                .counters
                .iter()
                .filter_map(|(c, v)| Some((bundle.counters().get(usize::from(*c))?.id.as_str(), *v)))
                .collect(),
            endpoint: ex.request.endpoint(),
            token_id: ex.token.as_ref().map(|t| &*t.id),
            jwt_findings: ex.token.as_ref().map(|t| t.findings).unwrap_or_default(),
            bundle: &ex.active.label,
        };
        if let Some(line) = verdict_line(&evidence) {
            hostcall::set_property(VERDICT_PROPERTY, line.as_bytes());
        }
    }

    /// Inspects the part of a body chunk that is still within the cap (fetching no more than that from Envoy).
    fn inspect(&self, inspector: &mut BodyInspector, bundle: &ActiveBundle, start: usize, len: usize, request: bool) {
        let wanted = len.min(scan_room(inspector, bundle));
        if wanted == 0 {
            return;
        }
        let chunk =
            if request { hostcall::request_body(start, wanted) } else { hostcall::response_body(start, wanted) };
        if let Some(chunk) = chunk {
            self.feed(inspector, bundle, &chunk);
        }
    }

    /// Feeds a chunk already in the VM to the scan, timing it when asked.
    fn feed(&self, inspector: &mut BodyInspector, bundle: &ActiveBundle, chunk: &[u8]) {
        if !self.snapshot.time_inspection {
            inspector.feed(&bundle.bundle, chunk);
            return;
        }
        let started = now_ns();
        inspector.feed(&bundle.bundle, chunk);
        Metrics::add_later(self.snapshot.metrics.inspection_ns, now_ns().saturating_sub(started));
        Metrics::add_later(self.snapshot.metrics.inspected_bytes, u64::try_from(chunk.len()).unwrap_or(u64::MAX));
    }

    /// Request body finished (or past the cap): settle its detections and decide its rules.
    fn decide_request_body(&mut self) -> Flow {
        let Some(ex) = self.exchange.as_mut() else {
            return Flow::Continue;
        };
        ex.request_decided = true;
        if let Some(inspector) = ex.request_body.as_mut() {
            inspector.finish(&ex.active.bundle);
            if inspector.truncated() {
                Metrics::bump(self.snapshot.metrics.bodies_truncated);
            }
            ex.findings.absorb(&ex.active.bundle, Location::RequestBody, inspector.classifier_counts());
            ex.findings.set_uninspectable(Location::RequestBody, inspector.uninspectable());
        }
        if ex.active.attacks.reads_body() && !ex.attack_body.is_empty() {
            let cap = usize::try_from(ex.active.bundle.inspection().max_body_bytes).unwrap_or(usize::MAX);
            let (content_type, encoding) = (ex.request.first("content-type"), ex.request.first("content-encoding"));
            let body = std::mem::take(&mut ex.attack_body);
            let endpoint = ex.request.endpoint();
            ex.active.attacks.inspect_body(content_type, encoding, &body, cap, endpoint, &mut ex.attacks);
            for (detection, count) in ex.active.attacks.counts(&ex.attacks) {
                ex.findings.set_count(detection, count);
            }
            if ex.attacks.uninspectable || ex.attack_body_truncated {
                ex.findings.set_uninspectable(Location::RequestBody, true);
            }
        }
        ex.holding_request = false;
        if self.decide(Phase::RequestBody) {
            return Flow::Pause;
        }
        self.record();
        Flow::Continue
    }
}

impl Context for RequestFilter {}

impl HttpContext for RequestFilter {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Flow {
        let Some(active) = self.snapshot.active.clone() else {
            Metrics::bump(self.snapshot.metrics.requests_without_bundle);
            return match self.snapshot.failure_mode {
                FailureMode::Open => Flow::Continue,
                FailureMode::Closed => {
                    let request_id = hostcall::request_header("x-request-id");
                    self.respond_json(503, &no_bundle_body(request_id.as_deref()), None);
                    Flow::Pause
                }
            };
        };
        let request = HostRequest::new(crate::host::request_headers());
        // JWT time checks read the clock; lists and counters then use the same reading.
        let mut token_clock = None;
        let token = active.bundle.tokens().and_then(|tokens| {
            let now = tokens.jwt.as_ref().map(|_| now_ms());
            token_clock = now;
            let (verifier, key, cache) = (active.verifier.as_ref(), &active.token_key, &self.snapshot.token_cache);
            CallerToken::of(&active.bundle, verifier, key, cache, &active.token_ids, &request, now.unwrap_or(0))
        });
        let mut findings = Findings::new(&active.bundle);
        if active.bundle.scan_set(Location::RequestQuery).is_some() {
            if let Some(query) = request.attribute(Attribute::RequestQuery).filter(|q| !q.is_empty()) {
                let counts = scan_value(&active.bundle, Location::RequestQuery, &query);
                findings.absorb(&active.bundle, Location::RequestQuery, &counts);
            }
        }
        let mut attacks = AttackFindings::default();
        if !active.attacks.is_empty() {
            let (path, query) = request.path_parts().unwrap_or_default();
            // The header list is copied only for a policy that inspects headers (`Vec::new` allocates nothing).
            let headers: Vec<(&[u8], &[u8])> =
                if active.attacks.reads_headers() { request.headers().collect() } else { Vec::new() };
            active.attacks.inspect_headers(path, query, &headers, request.endpoint(), &mut attacks);
            for (detection, count) in active.attacks.counts(&attacks) {
                findings.set_count(detection, count);
            }
            if attacks.uninspectable {
                findings.set_uninspectable(Location::RequestQuery, true);
            }
        }
        let request_body = if end_of_stream {
            None
        } else {
            let content_type = request.first("content-type");
            let encoding = request.first("content-encoding");
            BodyInspector::new(&active.bundle, Location::RequestBody, content_type, encoding)
        };
        // Only a body that will really be inspected is worth holding (not a skipped binary one, which is one whose
        // first bytes are binary, found with them; an undecodable one is, since rules decide on it), and only one
        // that fits the cap: Envoy buffers what is held, and a large
        // upload arriving in big reads would overflow its buffer limit (413) before the cap is reached. Larger
        // bodies stream and are still inspected.
        let cap = u64::from(active.bundle.inspection().max_body_bytes);
        let fits = declared_length(&request).is_none_or(|length| length <= cap);
        let inspected = request_body.as_ref().is_some_and(|inspector| inspector.skipped() != Some(SkipReason::Binary));
        let holding_request =
            active.hold_request_body && fits && (inspected || active.reads_body_fields || active.attacks.reads_body());
        self.exchange = Some(Box::new(Exchange {
            active,
            request,
            token,
            findings,
            attacks,
            attack_body: Vec::new(),
            attack_body_truncated: false,
            verdict: Verdict::ALLOW,
            request_body,
            response_body: None,
            holding_request,
            request_seen: 0,
            request_decided: false,
            concluded: false,
            facts: Facts::default(),
            now_ms: std::cell::Cell::new(token_clock),
            local: self.snapshot.local.clone(),
        }));
        // Counters that only need the request headers count this exchange before the rules read them.
        if let Some(ex) = self.exchange.as_mut().filter(|ex| !ex.active.counters.is_empty()) {
            let elsewhere = ex.view(self.snapshot.metrics).update_counters(Phase::RequestHeaders);
            ex.facts.elsewhere = elsewhere;
        }
        if self.decide(Phase::RequestHeaders) {
            return Flow::Pause;
        }
        if end_of_stream {
            return self.decide_request_body();
        }
        self.record();
        // Headers always continue: Envoy's proxy-wasm host turns a pause here into "stop all iteration", which
        // would stop body callbacks too (proxy-wasm-cpp-host#143). A held body is paused chunk by chunk instead.
        Flow::Continue
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Flow {
        let Some(mut ex) = self.exchange.take() else {
            return Flow::Continue;
        };
        if ex.request_decided || ex.concluded {
            self.exchange = Some(ex);
            return Flow::Continue;
        }
        // A held body is re-presented whole on every call; a streaming one arrives chunk by chunk.
        let start = if ex.holding_request { ex.request_seen } else { 0 };
        let len = body_size.saturating_sub(start);
        // What each reader still wants of this chunk (one byte past a limit tells a body that went past it), fetched
        // from Envoy once: the scan, the fields rules read, and the attack inspection.
        let cap = usize::try_from(ex.active.bundle.inspection().max_body_bytes).unwrap_or(usize::MAX);
        let scan_wants = ex.request_body.as_ref().map_or(0, |inspector| len.min(scan_room(inspector, &ex.active)));
        let fields_want = if ex.active.reads_body_fields {
            len.min((MAX_BODY_FIELD_BYTES + 1).saturating_sub(ex.facts.request_body.len()))
        } else {
            0
        };
        let attacks_want = if ex.active.attacks.reads_body() {
            len.min(cap.saturating_add(1).saturating_sub(ex.attack_body.len()))
        } else {
            0
        };
        let wanted = scan_wants.max(fields_want).max(attacks_want);
        let chunk = if wanted > 0 { hostcall::request_body(start, wanted) } else { None };
        let chunk = chunk.as_deref().unwrap_or_default();
        let mut full = match ex.request_body.take() {
            Some(mut inspector) => {
                self.feed(&mut inspector, &ex.active, chunk.get(..scan_wants).unwrap_or(chunk));
                // Past the cap, the rules can be decided (the rest is the `truncated` finding) before it goes on;
                // a body labelled binary whose first bytes are binary need not be held any longer.
                let binary = inspector.skipped() == Some(SkipReason::Binary) && !ex.active.reads_body_fields;
                let full = inspector.truncated() || binary;
                ex.request_body = Some(inspector);
                full
            }
            None => false,
        };
        if ex.active.reads_body_fields {
            ex.facts.request_body.extend_from_slice(chunk.get(..fields_want).unwrap_or(chunk));
            full |= ex.facts.request_body.len() > MAX_BODY_FIELD_BYTES && ex.request_body.is_none();
        }
        if ex.active.attacks.reads_body() {
            ex.attack_body.extend_from_slice(chunk.get(..attacks_want).unwrap_or(chunk));
            if ex.attack_body.len() > cap {
                ex.attack_body.truncate(cap);
                ex.attack_body_truncated = true;
                full = true;
            }
        }
        ex.request_seen = body_size;
        let holding = ex.holding_request;
        self.exchange = Some(ex);
        if end_of_stream || full {
            return self.decide_request_body();
        }
        if holding {
            Flow::Pause
        } else {
            Flow::Continue
        }
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Flow {
        let wants_status = self.exchange.as_ref().is_some_and(|ex| !ex.concluded && ex.active.reads_response);
        if wants_status {
            let status = hostcall::response_header(":status");
            let code = status.and_then(|s| std::str::from_utf8(&s).ok()?.parse::<u16>().ok());
            if let Some(ex) = self.exchange.as_mut() {
                ex.facts.response_code = code;
            }
        }
        let wants_body = self.exchange.as_ref().is_some_and(|ex| {
            !end_of_stream && !ex.concluded && ex.active.bundle.scan_set(Location::ResponseBody).is_some()
        });
        if wants_body {
            let content_type = hostcall::response_header("content-type");
            let encoding = hostcall::response_header("content-encoding");
            if let Some(ex) = self.exchange.as_mut() {
                ex.response_body = BodyInspector::new(
                    &ex.active.bundle,
                    Location::ResponseBody,
                    content_type.as_deref(),
                    encoding.as_deref(),
                );
            }
        }
        if end_of_stream {
            self.finish_response();
        }
        Flow::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Flow {
        let Some(mut ex) = self.exchange.take() else {
            return Flow::Continue;
        };
        // Streaming: each call presents the chunk that arrived.
        ex.facts.response_bytes = ex.facts.response_bytes.saturating_add(u64::try_from(body_size).unwrap_or(u64::MAX));
        if let Some(mut inspector) = ex.response_body.take() {
            self.inspect(&mut inspector, &ex.active, 0, body_size, false);
            ex.response_body = Some(inspector);
        }
        self.exchange = Some(ex);
        if end_of_stream {
            self.finish_response();
        }
        Flow::Continue
    }

    fn on_log(&mut self) {
        // A stream that ended early (reset, timeout) still updates lists; its access-log line may predate this.
        self.conclude();
    }
}

/// How many more bytes the scan of a body wants: up to the cap, and one past it to know the body was truncated.
fn scan_room(inspector: &BodyInspector, bundle: &ActiveBundle) -> usize {
    let cap = u64::from(bundle.bundle.inspection().max_body_bytes);
    usize::try_from(cap.saturating_sub(inspector.inspected_bytes())).unwrap_or(usize::MAX).saturating_add(1)
}

/// The request's `content-length`, when it declares one.
fn declared_length(request: &HostRequest) -> Option<u64> {
    std::str::from_utf8(request.first("content-length")?).ok()?.trim().parse().ok()
}

impl RequestFilter {
    /// The response is complete: settle its detections, decide response rules (monitor only), conclude.
    fn finish_response(&mut self) {
        let Some(ex) = self.exchange.as_mut() else { return };
        if ex.concluded {
            return;
        }
        if let Some(inspector) = ex.response_body.as_mut() {
            inspector.finish(&ex.active.bundle);
            if inspector.truncated() {
                Metrics::bump(self.snapshot.metrics.bodies_truncated);
            }
            ex.findings.absorb(&ex.active.bundle, Location::ResponseBody, inspector.classifier_counts());
            ex.findings.set_uninspectable(Location::ResponseBody, inspector.uninspectable());
        }
        // Response rules are monitor-only (the compiler refuses a block there), so this never answers.
        let _ = self.decide(Phase::Response);
        self.conclude();
    }
}
