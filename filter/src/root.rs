//! The root context: configuration, the bundle fetch loop, and the active bundle every request snapshots.
//!
//! Every tick, each worker VM compares the bundle head in shared data with its own and swaps in a newer bundle
//! (validated again locally). One VM per Envoy, the holder of the fetch lease, also polls the control plane:
//! a bundle it accepts is published to shared data for the others. A refused bundle is logged and counted once,
//! and the last good bundle stays active. A control plane that is down only delays updates.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::rc::Rc;
use std::time::Duration;

use portcullis_policies::bundle::{self, MAX_BUNDLE_BYTES};
use portcullis_policies::program::Node;
use portcullis_policies::signing::{self, TrustedKey};
use portcullis_policies::token_analysis::{JwtVerifier, DEFAULT_VERIFICATIONS_PER_SECOND};
use portcullis_policies::{Bundle, Phase};
use portcullis_shared_state::{BundleHead, BundleSlot, FetchRecord, Footprint, Lease, Salt, TtlList};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{ContextType, LogLevel};

use crate::config::{FailureMode, PluginConfig};
use crate::evidence::BundleLabel;
use crate::host::HostSharedData;
use crate::hostcall;
use crate::http::RequestFilter;
use crate::metrics::Metrics;
use crate::over_time::{CounterStore, SharedLocal, Sweep};
use crate::schedule::FetchSchedule;
use crate::token::{new_cache, IdCache, SharedCache};

/// Shared-data key of this Envoy's random token-identity key (used when neither configuration nor bundle has one).
const TOKEN_KEY: &str = "portcullis.token-identity-key";

/// Shared-data key of this Envoy's random salt of list and counter bucket hashes.
const BUCKET_SALT_KEY: &str = "portcullis.bucket-salt";

/// How often every VM looks for a newer bundle in shared data: the bound on propagation between workers.
const TICK: Duration = Duration::from_millis(250);

/// Longest ETag kept from a control plane's response (ours are a quoted SHA-256).
const MAX_ETAG_BYTES: usize = 128;

/// Shared-data buckets the sweep reads per tick (a full pass over 1M list entries takes ~2 minutes).
const SWEEP_READS_PER_TICK: u32 = 1024;

/// A validated bundle and how it is named in logs. Requests hold it by `Rc`, so a swap never affects one in flight.
#[derive(Debug)]
pub struct ActiveBundle {
    /// The bundle.
    pub bundle: Bundle,
    /// Its revision and short digest, as logged.
    pub label: BundleLabel,
    /// The bundle's dynamic lists over shared data, indexed like `bundle.lists()`.
    pub lists: Vec<TtlList>,
    /// The bundle's counters over shared data, indexed like `bundle.counters()`.
    pub counters: Vec<CounterStore>,
    /// A blocking rule reads the request body: requests with a body are held until it is decided.
    pub hold_request_body: bool,
    /// Something reads `response.code` / `response.bytes` (a counter, a rule or a list's `add_when`).
    pub reads_response: bool,
    /// Ending an exchange touches shared data: counters updated at the end, or lists with `add_when`.
    pub concludes_with_state: bool,
    /// Something reads `request.body["field"]`: the first bytes of request bodies are kept.
    pub reads_body_fields: bool,
    /// Every dynamic list and counter is batched: the time of the worker's last tick is precise enough.
    ticks_suffice: bool,
    /// Which phases have rules, so a request skips the empty ones.
    phases_with_rules: [bool; 3],
    /// The JWT verifier built from the bundle's keys, when the policy judges JWTs.
    pub verifier: Option<JwtVerifier>,
    /// The key of token identities (plugin configuration, else bundle, else this Envoy's random key).
    pub token_key: Vec<u8>,
    /// Token identities this VM already computed under this bundle and key.
    pub token_ids: std::cell::RefCell<IdCache>,
}

impl ActiveBundle {
    fn new(bundle: Bundle, token_key: Vec<u8>, salt: Salt) -> ActiveBundle {
        let short_digest = bundle::hex(bundle.digest().get(..4).unwrap_or_default());
        let label = BundleLabel { revision: bundle.revision(), short_digest };
        let lists = bundle.lists().iter().map(|l| TtlList::new(&l.id, l.max_entries).salted(salt)).collect();
        let counters = bundle.counters().iter().map(|def| CounterStore::new(def, salt)).collect();
        let hold_request_body = bundle.rules().iter().any(|r| r.phase == Phase::RequestBody && r.action.answers());
        let mut phases_with_rules = [false; 3];
        for rule in bundle.rules() {
            if let Some(slot) = phases_with_rules.get_mut(phase_index(rule.phase)) {
                *slot = true;
            }
        }
        // The loader already built this verifier once to validate the bundle, so it cannot fail here.
        let verifier = bundle.tokens().and_then(|t| t.jwt.as_ref()).and_then(|jwt| JwtVerifier::new(jwt).ok());
        let reads_response = reads_response(&bundle);
        let concludes_with_state = bundle.counters().iter().any(|c| c.phase != Phase::RequestHeaders)
            || bundle.lists().iter().any(|l| !l.add_when.is_empty());
        let reads_body_fields = reads_nodes(&bundle, |n| matches!(n, Node::BodyField(_)));
        let ticks_suffice =
            bundle.lists().iter().all(|l| l.batched || !l.is_dynamic()) && bundle.counters().iter().all(|c| c.batched);
        ActiveBundle {
            bundle,
            label,
            lists,
            counters,
            hold_request_body,
            reads_response,
            concludes_with_state,
            reads_body_fields,
            ticks_suffice,
            phases_with_rules,
            verifier,
            token_key,
            token_ids: std::cell::RefCell::default(),
        }
    }

    /// The most bytes of shared data the bundle's dynamic lists and counters can ever use.
    pub fn shared_bytes_limit(&self) -> u64 {
        shared_bytes_needed(&self.bundle)
    }

    /// True when some rule is decided in `phase`.
    pub fn has_rules(&self, phase: Phase) -> bool {
        self.phases_with_rules.get(phase_index(phase)).copied().unwrap_or(true)
    }

    /// The time list lookups and counters use; without either no hostcall is spent on the clock. When every list and
    /// counter is batched, the time of the worker's last tick (`tick_ms`, when known) serves: they work at a tick's
    /// resolution anyway.
    pub fn clock_at(&self, tick_ms: u64) -> u64 {
        if self.ticks_suffice && tick_ms > 0 {
            return tick_ms;
        }
        self.clock()
    }

    /// The time list lookups and counters use; without either no hostcall is spent on the clock.
    pub fn clock(&self) -> u64 {
        if self.lists.is_empty() && self.counters.is_empty() {
            0
        } else {
            crate::host::now_ms()
        }
    }
}

/// True when a rule, a list's `add_when` or a counter reads `response.code` or `response.bytes`.
fn reads_response(bundle: &Bundle) -> bool {
    reads_nodes(bundle, |n| matches!(n, Node::ResponseCode | Node::ResponseBytes))
}

/// True when some node of a rule, a list's `add_when` or a counter satisfies `wanted`.
fn reads_nodes(bundle: &Bundle, wanted: impl Fn(&Node) -> bool) -> bool {
    let reads = |nodes: &[Node]| nodes.iter().any(&wanted);
    bundle.rules().iter().any(|r| reads(&r.condition))
        || bundle.lists().iter().any(|l| reads(&l.add_when))
        || bundle.counters().iter().any(|c| c.per.iter().any(|p| reads(p)) || reads(&c.of) || reads(&c.when))
}

/// The most bytes of shared data `bundle`'s dynamic lists and counters can ever use.
pub fn shared_bytes_needed(bundle: &Bundle) -> u64 {
    let lists = bundle.lists().iter().filter(|def| def.is_dynamic());
    let lists: u64 = lists.map(|def| TtlList::new(&def.id, def.max_entries).shared_bytes_budget()).sum();
    let counters =
        bundle.counters().iter().map(|def| CounterStore::new(def, Salt::default()).footprint().shared_bytes_budget());
    lists.saturating_add(counters.sum())
}

fn phase_index(phase: Phase) -> usize {
    match phase {
        Phase::RequestHeaders => 0,
        Phase::RequestBody => 1,
        Phase::Response => 2,
    }
}

/// What a request context needs from the root; cheap to clone.
#[derive(Clone)]
pub struct Snapshot {
    /// The bundle to enforce, if any arrived yet.
    pub active: Option<Rc<ActiveBundle>>,
    /// What to do without a bundle.
    pub failure_mode: FailureMode,
    /// Counter ids.
    pub metrics: Metrics,
    /// This VM's cache of token analyses.
    pub token_cache: SharedCache,
    /// This VM's batched counters.
    pub local: SharedLocal,
    /// Time body inspection (plugin configuration `time_inspection`).
    pub time_inspection: bool,
}

/// The plugin's root context (one per worker VM).
pub struct PortcullisRoot {
    config: Option<PluginConfig>,
    active: Option<Rc<ActiveBundle>>,
    /// The head we last refused from shared data, so a bad one is validated and logged once, not every tick.
    refused_head: Option<BundleHead>,
    slot: Option<BundleSlot>,
    lease: Option<Lease>,
    schedule: Option<FetchSchedule>,
    random: RandomState,
    metrics: Metrics,
    token_cache: SharedCache,
    /// Keys trusted to sign bundles (empty: unsigned bundles are accepted).
    trusted: Vec<TrustedKey>,
    /// When the fetch in flight was sent, to tell a long poll that waited from a server that answered at once.
    fetch_sent_ms: u64,
    /// What this Envoy reports to the control plane.
    fleet: FleetStatus,
    /// Measures the shared data lists and counters hold (fetch-lease holder only).
    sweep: Sweep,
    /// This VM's batched counters, flushed every tick.
    local: SharedLocal,
    /// Flushes of batched counters run in one VM at a time.
    flush_lease: Option<Lease>,
    /// The reason of the last refusal since a bundle was accepted: the same reason again is logged at debug only.
    last_refusal: Option<String>,
}

/// This Envoy's status as reported to the control plane (`POST /v1/status`) by the VM holding the fetch lease.
#[derive(Debug, Default)]
struct FleetStatus {
    last_fetch_ok_ms: Option<u64>,
    last_error: Option<String>,
    next_report_ms: u64,
    call: Option<u32>,
}

impl PortcullisRoot {
    /// A root context that has not been configured yet.
    pub fn new() -> PortcullisRoot {
        PortcullisRoot {
            config: None,
            active: None,
            refused_head: None,
            slot: None,
            lease: None,
            schedule: None,
            random: RandomState::new(),
            metrics: Metrics::default(),
            token_cache: new_cache(DEFAULT_VERIFICATIONS_PER_SECOND),
            trusted: Vec::new(),
            fetch_sent_ms: 0,
            fleet: FleetStatus::default(),
            sweep: Sweep::default(),
            local: SharedLocal::default(),
            flush_lease: None,
            last_refusal: None,
        }
    }

    fn now_ms(&self) -> u64 {
        crate::host::now_ms()
    }

    /// A fresh random number (WASI seeds `RandomState`), for jitter and the lease holder id.
    fn random(&self) -> u64 {
        let mut hasher = self.random.build_hasher();
        hasher.write_u64(self.now_ms());
        hasher.finish()
    }

    /// Picks up a bundle another VM published, if it differs from ours.
    fn sync_from_shared_data(&mut self) {
        let Some(slot) = &self.slot else { return };
        let store = HostSharedData;
        let Some(head) = slot.head(&store) else { return };
        if self.active.as_ref().is_some_and(|a| *a.bundle.digest() == head.digest) || self.refused_head == Some(head) {
            return;
        }
        let Some(bytes) = slot.bytes(&store) else { return };
        match self.accept(&bytes) {
            Ok(bundle) => self.activate(bundle, LogLevel::Debug),
            Err(e) => {
                // Only a mixed fleet (filter versions or trusted keys) gets here: another VM published what this
                // one cannot accept.
                self.refused_head = Some(head);
                crate::hostcall::log(
                    LogLevel::Warn,
                    &format!("refused bundle {} from shared data: {e}", bundle::hex(&head.digest)),
                );
            }
        }
    }

    /// Checks bundle bytes as they arrived (signature envelope, bundle, revision) and loads the bundle.
    fn accept(&self, bytes: &[u8]) -> Result<Bundle, String> {
        let envelope = signing::open(bytes).map_err(|e| e.to_string())?;
        if !self.trusted.is_empty() {
            envelope.verify(&self.trusted).map_err(|e| e.to_string())?;
        }
        let bundle = Bundle::from_bytes(envelope.bundle).map_err(|e| e.to_string())?;
        if let Some(cp) = self.config.as_ref().map(|c| &c.control_plane) {
            // The name is inside what is signed: a bundle signed for one policy cannot be replayed as another.
            if bundle.policy_name() != cp.bundle {
                return Err(format!(
                    "it is bundle '{}', not '{}' (control_plane.bundle)",
                    truncated(bundle.policy_name(), 64),
                    cp.bundle
                ));
            }
            let latest = (self.now_ms() / 1000).saturating_add(cp.max_revision_ahead_seconds);
            if bundle.revision() > latest {
                return Err(format!(
                    "revision {} is more than {} s ahead of this Envoy's clock (max_revision_ahead_seconds): a \
                     revision that far ahead could never be replaced",
                    bundle.revision(),
                    cp.max_revision_ahead_seconds
                ));
            }
        }
        let budget = self.config.as_ref().map_or(u64::MAX, |c| c.shared_data_budget_bytes);
        let needed = shared_bytes_needed(&bundle);
        if needed > budget {
            Metrics::bump(self.metrics.bundle_over_budget);
            return Err(format!(
                "its lists and counters need up to {needed} bytes of shared data, over shared_data_budget_bytes \
                 ({budget}): lower their max_entries / max_keys or raise the budget"
            ));
        }
        if let Some(active) = &self.active {
            let (new, old) = (bundle.revision(), active.bundle.revision());
            // A replayed older bundle must not undo a newer policy; a rollback is published as a new revision.
            if new < old || (new == old && bundle.digest() != active.bundle.digest()) {
                return Err(format!(
                    "revision {new} is not newer than the active revision {old} (replayed or rolled-back bundle)"
                ));
            }
        }
        Ok(bundle)
    }

    fn activate(&mut self, bundle: Bundle, level: LogLevel) {
        let token_key = self.token_key(&bundle);
        let active = ActiveBundle::new(bundle, token_key, self.bucket_salt());
        // Remembered list answers belong to the bundle's list numbering.
        if let Ok(mut local) = self.local.try_borrow_mut() {
            local.forget_observed();
        }
        // Analyses depend on the bundle's keys and rules: start afresh with a new bundle.
        let per_second =
            self.config.as_ref().map_or(DEFAULT_VERIFICATIONS_PER_SECOND, |c| c.jwt_verifications_per_second);
        self.token_cache = new_cache(per_second);
        let message = format!(
            "enforcing bundle '{}' revision {} (sha256 {}, {} rules)",
            active.bundle.policy_name(),
            active.label.revision,
            active.label.short_digest,
            active.bundle.rules().len()
        );
        crate::hostcall::log(level, &message);
        self.active = Some(Rc::new(active));
    }

    /// The key of token identities: the plugin configuration's, else the bundle's, else one random key per Envoy
    /// kept in shared data (so every worker names a token alike).
    fn token_key(&self, bundle: &Bundle) -> Vec<u8> {
        if let Some(key) = self.config.as_ref().and_then(|c| c.token_hash_key.as_deref()) {
            return key.as_bytes().to_vec();
        }
        if let Some(key) = bundle.tokens().and_then(|t| t.hash_key.as_deref()) {
            return key.to_vec();
        }
        crate::host::envoy_secret(TOKEN_KEY, &self.random_bytes(4))
    }

    /// The salt of every list and counter bucket hash: one random value per Envoy, kept in shared data.
    fn bucket_salt(&self) -> Salt {
        let secret = crate::host::envoy_secret(BUCKET_SALT_KEY, &self.random_bytes(2));
        let mut salt = Salt::default();
        for (s, b) in salt.iter_mut().zip(secret) {
            *s = b;
        }
        salt
    }

    /// `words` × 8 random bytes (WASI seeds `RandomState`).
    fn random_bytes(&self, words: u64) -> Vec<u8> {
        (0..words)
            .flat_map(|i| {
                let mut hasher = self.random.build_hasher();
                hasher.write_u64(self.now_ms() ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
                hasher.finish().to_le_bytes()
            })
            .collect()
    }

    /// If this VM holds the fetch lease and a fetch is due, asks the control plane for a newer bundle.
    fn maybe_fetch(&mut self) {
        let now = self.now_ms();
        let (Some(config), Some(lease), Some(schedule), Some(slot)) =
            (&self.config, &self.lease, &self.schedule, &self.slot)
        else {
            return;
        };
        if !schedule.is_due(now) || !lease.try_acquire(&HostSharedData, now) {
            return;
        }
        let cp = &config.control_plane;
        let if_none_match = slot.last_fetch(&HostSharedData).map(|r| r.etag);
        // Long poll only when there is a version to wait on: the server holds the request until it changes.
        let long_poll = cp.long_poll_seconds > 0 && if_none_match.is_some();
        let path = if long_poll {
            format!("/v1/bundles/{}?wait={}", cp.bundle, cp.long_poll_seconds)
        } else {
            format!("/v1/bundles/{}", cp.bundle)
        };
        let mut headers = vec![
            (":method", "GET"),
            (":path", path.as_str()),
            (":authority", config.authority()),
            ("accept", "application/octet-stream"),
            ("user-agent", "portcullis-filter"),
        ];
        if let Some(etag) = if_none_match.as_deref() {
            headers.push(("if-none-match", etag));
        }
        let wait_ms = if long_poll { cp.long_poll_seconds.saturating_mul(1000) } else { 0 };
        let timeout = Duration::from_millis(cp.timeout_ms.saturating_add(wait_ms));
        match hostcall::dispatch_http_call(&cp.cluster, &headers, None, timeout) {
            Some(token) => {
                self.fetch_sent_ms = now;
                if let Some(s) = self.schedule.as_mut() {
                    s.started(token);
                }
            }
            None => self.fetch_failed(&format!("could not dispatch to cluster '{}'", cp.cluster)),
        }
    }

    fn fetch_failed(&mut self, why: &str) {
        let (now, random) = (self.now_ms(), self.random());
        let Some(schedule) = self.schedule.as_mut() else { return };
        let first = schedule.failures() == 0;
        schedule.failed(now, random);
        self.fleet.last_error = Some(format!("fetch failed: {why}"));
        Metrics::bump(self.metrics.fetch_failed);
        // Log the first failure of a streak at warn; the rest at debug so a long outage does not flood the log.
        let level = if first { LogLevel::Warn } else { LogLevel::Debug };
        let message = format!(
            "bundle fetch failed ({why}); {} consecutive failures, enforcing {}",
            schedule.failures(),
            self.active.as_ref().map_or("no bundle yet".to_owned(), |a| format!("revision {}", a.label.revision))
        );
        crate::hostcall::log(level, &message);
    }

    /// The control plane answered 304 or 404. After a long poll that waited the next one goes out at once; a server
    /// that answered a long poll immediately gets the plain poll interval, so a control plane without long polling
    /// is never polled in a tight loop.
    fn fetch_answered(&mut self) {
        self.mark_reachable();
        let (now, random) = (self.now_ms(), self.random());
        let long_poll = self.config.as_ref().is_some_and(|c| c.control_plane.long_poll_seconds > 0);
        let waited = now.saturating_sub(self.fetch_sent_ms) >= 1_000;
        if let Some(schedule) = self.schedule.as_mut() {
            if long_poll && waited {
                schedule.succeeded_now(now);
            } else {
                schedule.succeeded(now, random);
            }
        }
    }

    /// The control plane answered: the fleet status says so, and the end of an outage is logged once.
    fn mark_reachable(&mut self) {
        self.fleet.last_fetch_ok_ms = Some(self.now_ms());
        if self.fleet.last_error.as_deref().is_some_and(|e| e.starts_with("fetch failed")) {
            self.fleet.last_error = None;
        }
        if self.schedule.as_ref().is_some_and(|s| s.failures() > 0) {
            crate::hostcall::log(LogLevel::Info, "control plane reachable again");
        }
    }

    /// The fetch-lease holder reports this Envoy's status every `status_interval_ms`.
    fn maybe_report(&mut self) {
        let now = self.now_ms();
        let Some(config) = &self.config else { return };
        let interval = config.control_plane.status_interval_ms;
        if interval == 0 || now < self.fleet.next_report_ms || self.fleet.call.is_some() {
            return;
        }
        if !self.lease.as_ref().is_some_and(|l| l.try_acquire(&HostSharedData, now)) {
            return;
        }
        self.fleet.next_report_ms = now.saturating_add(interval);
        let node = config.node.clone().unwrap_or_else(|| {
            hostcall::property(&["node", "id"])
                .and_then(|id| String::from_utf8(id).ok())
                .filter(|id| !id.is_empty())
                .unwrap_or_else(|| "unknown".to_owned())
        });
        let active = self.active.as_ref();
        let body = serde_json::json!({
            "node": node,
            "bundle": config.control_plane.bundle,
            "revision": active.map(|a| a.label.revision),
            "sha256": active.map(|a| bundle::hex(a.bundle.digest())),
            "last_fetch_ok_ms": self.fleet.last_fetch_ok_ms,
            "last_error": self.fleet.last_error,
            "filter_version": env!("CARGO_PKG_VERSION"),
        })
        .to_string();
        let headers = vec![
            (":method", "POST"),
            (":path", "/v1/status"),
            (":authority", config.authority()),
            ("content-type", "application/json"),
            ("user-agent", "portcullis-filter"),
        ];
        let timeout = Duration::from_millis(config.control_plane.timeout_ms);
        let cluster = config.control_plane.cluster.clone();
        // Status is best effort: a failed report is simply retried at the next interval.
        if let Some(token) = hostcall::dispatch_http_call(&cluster, &headers, Some(body.as_bytes()), timeout) {
            self.fleet.call = Some(token);
        }
    }

    /// Writes this VM's batched counter updates to shared data, one VM at a time (the flush lease is held for the
    /// few microseconds a flush takes; a VM that finds it taken flushes at its next tick).
    fn flush_counters(&mut self) {
        let now = self.now_ms();
        let pending = self.local.borrow().has_pending();
        let Ok(mut local) = self.local.try_borrow_mut() else { return };
        local.set_tick(now);
        match &self.flush_lease {
            Some(lease) if pending && lease.try_acquire(&HostSharedData, now) => {
                local.flush(&HostSharedData, now, self.metrics);
                lease.release(&HostSharedData);
            }
            // Values read this tick must not outlive it: the next read sees what every worker flushed since.
            _ => local.forget_observed(),
        }
    }

    /// The fetch-lease holder measures the shared data the active bundle's lists and counters hold.
    fn maybe_sweep(&mut self) {
        let Some(active) = self.active.clone() else { return };
        if active.counters.is_empty() && !active.bundle.lists().iter().any(|l| l.is_dynamic()) {
            return;
        }
        if !self.lease.as_ref().is_some_and(|l| l.try_acquire(&HostSharedData, self.now_ms())) {
            return;
        }
        if let Some(bytes) = self.sweep.step(&active, &HostSharedData, SWEEP_READS_PER_TICK) {
            Metrics::set(self.metrics.shared_data_bytes, bytes);
            Metrics::set(self.metrics.shared_data_bytes_limit, active.shared_bytes_limit());
        }
    }

    /// Handles a 200 from the control plane. A body over the bundle limit is refused by its declared length without
    /// being read; one that cannot be read (the call failed mid-body) is a failed fetch. Content that changes
    /// nothing (the active bundle again, from a server ignoring `If-None-Match`) or that is refused backs the next
    /// fetch off like a failure, so a misbehaving control plane is never polled faster than `poll_interval_ms`.
    fn bundle_answered(&mut self, body_size: usize) {
        let etag = response_etag();
        let declared = response_content_length();
        let limit = u64::try_from(MAX_BUNDLE_BYTES).unwrap_or(u64::MAX);
        let size = declared
            .unwrap_or(u64::try_from(body_size).unwrap_or(u64::MAX))
            .max(u64::try_from(body_size).unwrap_or(u64::MAX));
        let outcome = if size > limit {
            self.refuse(etag, &format!("its {size} bytes are over the bundle size limit ({limit} bytes)"))
        } else {
            let body = if body_size == 0 { Some(Vec::new()) } else { hostcall::call_response_body(body_size) };
            match body {
                Some(body) if body.len() == body_size => self.receive_bundle(body, etag),
                _ => return self.fetch_failed("the response body could not be read (reset or cut short)"),
            }
        };
        self.mark_reachable();
        let (now, random) = (self.now_ms(), self.random());
        let long_poll = self.config.as_ref().is_some_and(|c| c.control_plane.long_poll_seconds > 0);
        if let Some(schedule) = self.schedule.as_mut() {
            match outcome {
                Received::Activated if long_poll => schedule.succeeded_now(now),
                Received::Activated => schedule.succeeded(now, random),
                Received::Unchanged | Received::Refused => schedule.fruitless(now, random),
            }
        }
    }

    /// Validates a bundle from the control plane, then publishes and enforces it, or refuses it and keeps the last
    /// good one. The active bundle arriving again is a no-op that logs nothing.
    fn receive_bundle(&mut self, body: Vec<u8>, etag: String) -> Received {
        let Some(slot) = self.slot.clone() else { return Received::Unchanged };
        let store = HostSharedData;
        match self.accept(&body) {
            Ok(bundle) if self.active.as_ref().is_some_and(|a| a.bundle.digest() == bundle.digest()) => {
                let _ = slot.record_fetch(&store, &FetchRecord { etag, refused: false });
                Received::Unchanged
            }
            Ok(bundle) => {
                self.fleet.last_error = None;
                self.last_refusal = None;
                let head = BundleHead { digest: *bundle.digest(), revision: bundle.revision() };
                if slot.publish(&store, head, &body).is_err() {
                    crate::hostcall::log(LogLevel::Warn, "could not publish bundle to shared data");
                }
                // Even if publishing failed, this VM enforces what it validated.
                self.activate(bundle, LogLevel::Info);
                Metrics::bump(self.metrics.bundle_loaded);
                let _ = slot.record_fetch(&store, &FetchRecord { etag, refused: false });
                Received::Activated
            }
            Err(e) => self.refuse(etag, &e),
        }
    }

    /// Refuses what the control plane served: counted once per ETag, logged at warn unless the previous refusal had
    /// the same reason (a server handing out fresh garbage under a fresh ETag each time must not flood the log),
    /// last good kept.
    fn refuse(&mut self, etag: String, why: &str) -> Received {
        let Some(slot) = self.slot.clone() else { return Received::Refused };
        let store = HostSharedData;
        let already = slot.last_fetch(&store).is_some_and(|r| r.refused && r.etag == etag);
        if !already {
            Metrics::bump(self.metrics.bundle_refused);
            let keeping =
                self.active.as_ref().map_or("no bundle yet".to_owned(), |a| format!("revision {}", a.label.revision));
            let repeated = self.last_refusal.as_deref() == Some(why);
            let level = if repeated { LogLevel::Debug } else { LogLevel::Warn };
            let message = format!("refused bundle {etag} from control plane: {why}; still enforcing {keeping}");
            crate::hostcall::log(level, &message);
            self.last_refusal = Some(why.to_owned());
        }
        self.fleet.last_error = Some(format!("refused bundle {etag}: {why}"));
        let _ = slot.record_fetch(&store, &FetchRecord { etag, refused: true });
        Received::Refused
    }
}

/// At most `max` characters of `text` (names from a refused bundle are not trusted to be short).
fn truncated(text: &str, max: usize) -> &str {
    text.char_indices().nth(max).map_or(text, |(i, _)| text.get(..i).unwrap_or(text))
}

/// What a 200 from the control plane led to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Received {
    /// A new bundle is enforced.
    Activated,
    /// The bundle already enforced.
    Unchanged,
    /// Refused; the last good bundle stays.
    Refused,
}

impl Default for PortcullisRoot {
    fn default() -> Self {
        PortcullisRoot::new()
    }
}

impl Context for PortcullisRoot {
    // Every read here goes through `hostcall`: after a call that failed mid-body (a reset, a timeout, a body over
    // Envoy's async-client buffer) the host answers the SDK's getters with an error, and they would panic.
    fn on_http_call_response(&mut self, token_id: u32, _num_headers: usize, body_size: usize, _num_trailers: usize) {
        if self.fleet.call == Some(token_id) {
            self.fleet.call = None;
            return;
        }
        if !self.schedule.as_mut().is_some_and(|s| s.finish(token_id)) {
            return;
        }
        let status = hostcall::call_response_header(":status");
        match status.as_deref() {
            Some(b"200") => self.bundle_answered(body_size),
            Some(b"304") => self.fetch_answered(),
            Some(b"404") => {
                self.fetch_answered();
                crate::hostcall::log(LogLevel::Debug, "control plane has no such bundle yet");
            }
            Some(other) => {
                let other = String::from_utf8_lossy(other.get(..16).unwrap_or(other)).into_owned();
                self.fetch_failed(&format!("status {other}"));
            }
            None => self.fetch_failed("no response: control plane unreachable, reset or timed out"),
        }
    }
}

impl PortcullisRoot {
    /// Enforces the plugin configuration's inline bundle unless a newer one is already active (from shared data).
    /// False when the inline bundle itself is unacceptable: a configuration error.
    fn load_inline(&mut self, bytes: &[u8]) -> bool {
        match self.accept(bytes) {
            Ok(bundle) => {
                let head = BundleHead { digest: *bundle.digest(), revision: bundle.revision() };
                if let Some(slot) = &self.slot {
                    let _ = slot.publish(&HostSharedData, head, bytes);
                }
                self.activate(bundle, LogLevel::Info);
                true
            }
            // Older than what the fleet already enforces: keep the newer one.
            Err(_) if self.active.is_some() => true,
            Err(e) => {
                let message = format!("invalid plugin configuration: bundle_base64: {e}");
                crate::hostcall::log(LogLevel::Error, &message);
                false
            }
        }
    }
}

/// The response's ETag, or (when the server sent none, or one too long to be real) a marker that never matches.
fn response_etag() -> String {
    hostcall::call_response_header("etag")
        .filter(|v| v.len() <= MAX_ETAG_BYTES)
        .and_then(|v| String::from_utf8(v).ok())
        .unwrap_or_else(|| "\"none\"".to_owned())
}

/// The response's `content-length`, when it has a valid one.
fn response_content_length() -> Option<u64> {
    let value = hostcall::call_response_header("content-length")?;
    std::str::from_utf8(&value).ok()?.trim().parse().ok()
}

impl RootContext for PortcullisRoot {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let raw = hostcall::plugin_configuration();
        let config = match PluginConfig::parse(&raw) {
            Ok(config) => config,
            Err(e) => {
                crate::hostcall::log(LogLevel::Error, &format!("invalid plugin configuration: {e}"));
                return false;
            }
        };
        let trusted = match config.trusted_keys() {
            Ok(keys) => keys,
            Err(e) => {
                crate::hostcall::log(LogLevel::Error, &format!("invalid plugin configuration: {e}"));
                return false;
            }
        };
        let cp = &config.control_plane;
        // The holder keeps the lease through a whole long poll.
        let lease_ms = cp
            .timeout_ms
            .saturating_add(cp.long_poll_seconds.saturating_mul(1000))
            .saturating_add(4 * u64::try_from(TICK.as_millis()).unwrap_or(1000));
        self.lease = Some(Lease::new(format!("portcullis.bundle.{}.fetch-lease", cp.bundle), self.random(), lease_ms));
        self.slot = Some(BundleSlot::new(&cp.bundle));
        self.flush_lease =
            Some(Lease::new(format!("portcullis.bundle.{}.flush-lease", cp.bundle), self.random(), 1_000));
        self.schedule = Some(FetchSchedule::new(cp.poll_interval_ms, cp.max_backoff_ms));
        self.metrics = Metrics::define();
        self.trusted = trusted;
        let inline = config.inline_bundle();
        self.config = Some(config);
        // A VM that starts after others (a new worker, a reconfiguration) enforces what they have at once.
        self.sync_from_shared_data();
        if let Some(bytes) = inline {
            if !self.load_inline(&bytes) {
                return false;
            }
        }
        hostcall::set_tick_period(TICK);
        true
    }

    fn on_tick(&mut self) {
        self.sync_from_shared_data();
        self.maybe_fetch();
        self.maybe_report();
        self.maybe_sweep();
        self.flush_counters();
        Metrics::flush();
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        let failure_mode = self.config.as_ref().map_or(FailureMode::Open, |c| c.failure_mode);
        Some(Box::new(RequestFilter::new(Snapshot {
            active: self.active.clone(),
            failure_mode,
            metrics: self.metrics,
            token_cache: self.token_cache.clone(),
            local: self.local.clone(),
            time_inspection: self.config.as_ref().is_some_and(|c| c.time_inspection),
        })))
    }
}
