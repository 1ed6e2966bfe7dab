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
use portcullis_policies::token_analysis::JwtVerifier;
use portcullis_policies::{Action, Bundle, Phase};
use portcullis_shared_state::{BundleHead, BundleSlot, FetchRecord, Lease, TtlList};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{ContextType, LogLevel};

use crate::config::{FailureMode, PluginConfig};
use crate::evidence::BundleLabel;
use crate::host::HostSharedData;
use crate::http::RequestFilter;
use crate::metrics::Metrics;
use crate::schedule::FetchSchedule;
use crate::token::{new_cache, SharedCache};

/// Shared-data key of this Envoy's random token-identity key (used when neither configuration nor bundle has one).
const TOKEN_KEY: &str = "portcullis.token-identity-key";

/// How often every VM looks for a newer bundle in shared data: the bound on propagation between workers.
const TICK: Duration = Duration::from_millis(250);

/// A validated bundle and how it is named in logs. Requests hold it by `Rc`, so a swap never affects one in flight.
#[derive(Debug)]
pub struct ActiveBundle {
    /// The bundle.
    pub bundle: Bundle,
    /// Its revision and short digest, as logged.
    pub label: BundleLabel,
    /// The bundle's dynamic lists over shared data, indexed like `bundle.lists()`.
    pub lists: Vec<TtlList>,
    /// A blocking rule reads the request body: requests with a body are held until it is decided.
    pub hold_request_body: bool,
    /// Which phases have rules, so a request skips the empty ones.
    phases_with_rules: [bool; 3],
    /// The JWT verifier built from the bundle's keys, when the policy judges JWTs.
    pub verifier: Option<JwtVerifier>,
    /// The key of token identities (plugin configuration, else bundle, else this Envoy's random key).
    pub token_key: Vec<u8>,
}

impl ActiveBundle {
    fn new(bundle: Bundle, token_key: Vec<u8>) -> ActiveBundle {
        let short_digest = bundle::hex(bundle.digest().get(..4).unwrap_or_default());
        let label = BundleLabel { revision: bundle.revision(), short_digest };
        let lists = bundle.lists().iter().map(|l| TtlList::new(&l.id, l.max_entries)).collect();
        let hold_request_body =
            bundle.rules().iter().any(|r| r.phase == Phase::RequestBody && r.action == Action::Block);
        let mut phases_with_rules = [false; 3];
        for rule in bundle.rules() {
            if let Some(slot) = phases_with_rules.get_mut(phase_index(rule.phase)) {
                *slot = true;
            }
        }
        // The loader already built this verifier once to validate the bundle, so it cannot fail here.
        let verifier = bundle.tokens().and_then(|t| t.jwt.as_ref()).and_then(|jwt| JwtVerifier::new(jwt).ok());
        ActiveBundle { bundle, label, lists, hold_request_body, phases_with_rules, verifier, token_key }
    }

    /// True when some rule is decided in `phase`.
    pub fn has_rules(&self, phase: Phase) -> bool {
        self.phases_with_rules.get(phase_index(phase)).copied().unwrap_or(true)
    }

    /// The time list lookups use; without lists no hostcall is spent on the clock.
    pub fn clock(&self) -> u64 {
        if self.lists.is_empty() {
            0
        } else {
            crate::host::now_ms()
        }
    }
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
            token_cache: new_cache(),
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
        match Bundle::from_bytes(&bytes) {
            Ok(bundle) => self.activate(bundle, LogLevel::Debug),
            Err(e) => {
                // Only a mixed fleet of filter versions gets here: a newer VM published what this one cannot read.
                self.refused_head = Some(head);
                proxy_wasm::hostcalls::log(
                    LogLevel::Warn,
                    &format!("refused bundle {} from shared data: {e}", bundle::hex(&head.digest)),
                )
                .ok();
            }
        }
    }

    fn activate(&mut self, bundle: Bundle, level: LogLevel) {
        let token_key = self.token_key(&bundle);
        let active = ActiveBundle::new(bundle, token_key);
        // Analyses depend on the bundle's keys and rules: start afresh with a new bundle.
        self.token_cache = new_cache();
        let message = format!(
            "enforcing bundle '{}' revision {} (sha256 {}, {} rules)",
            active.bundle.policy_name(),
            active.label.revision,
            active.label.short_digest,
            active.bundle.rules().len()
        );
        proxy_wasm::hostcalls::log(level, &message).ok();
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
        let fresh: Vec<u8> = (0..4u64)
            .flat_map(|i| {
                let mut hasher = self.random.build_hasher();
                hasher.write_u64(self.now_ms() ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
                hasher.finish().to_le_bytes()
            })
            .collect();
        crate::host::envoy_secret(TOKEN_KEY, &fresh)
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
        let path = format!("/v1/bundles/{}", cp.bundle);
        let if_none_match = slot.last_fetch(&HostSharedData).map(|r| r.etag);
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
        let timeout = Duration::from_millis(cp.timeout_ms);
        match self.dispatch_http_call(&cp.cluster, headers, None, vec![], timeout) {
            Ok(token) => {
                if let Some(s) = self.schedule.as_mut() {
                    s.started(token);
                }
            }
            Err(status) => self.fetch_failed(&format!("could not dispatch to cluster '{}': {status:?}", cp.cluster)),
        }
    }

    fn fetch_failed(&mut self, why: &str) {
        let (now, random) = (self.now_ms(), self.random());
        let Some(schedule) = self.schedule.as_mut() else { return };
        let first = schedule.failures() == 0;
        schedule.failed(now, random);
        Metrics::bump(self.metrics.fetch_failed);
        // Log the first failure of a streak at warn; the rest at debug so a long outage does not flood the log.
        let level = if first { LogLevel::Warn } else { LogLevel::Debug };
        let message = format!(
            "bundle fetch failed ({why}); {} consecutive failures, enforcing {}",
            schedule.failures(),
            self.active.as_ref().map_or("no bundle yet".to_owned(), |a| format!("revision {}", a.label.revision))
        );
        proxy_wasm::hostcalls::log(level, &message).ok();
    }

    fn fetch_answered(&mut self) {
        let (now, random) = (self.now_ms(), self.random());
        if let Some(schedule) = self.schedule.as_mut() {
            if schedule.failures() > 0 {
                proxy_wasm::hostcalls::log(LogLevel::Info, "control plane reachable again").ok();
            }
            schedule.succeeded(now, random);
        }
    }

    /// Handles a 200 from the control plane: validate, then publish and enforce, or refuse and keep the last good.
    fn receive_bundle(&mut self, body: Vec<u8>, etag: String) {
        let Some(slot) = self.slot.clone() else { return };
        let store = HostSharedData;
        match Bundle::from_bytes(&body) {
            Ok(bundle) => {
                let head = BundleHead { digest: *bundle.digest(), revision: bundle.revision() };
                if slot.publish(&store, head, &body).is_err() {
                    proxy_wasm::hostcalls::log(LogLevel::Warn, "could not publish bundle to shared data").ok();
                }
                // Even if publishing failed, this VM enforces what it validated.
                self.activate(bundle, LogLevel::Info);
                Metrics::bump(self.metrics.bundle_loaded);
                let _ = slot.record_fetch(&store, &FetchRecord { etag, refused: false });
            }
            Err(e) => {
                let already = slot.last_fetch(&store).is_some_and(|r| r.refused && r.etag == etag);
                if !already {
                    Metrics::bump(self.metrics.bundle_refused);
                    let keeping = self
                        .active
                        .as_ref()
                        .map_or("no bundle yet".to_owned(), |a| format!("revision {}", a.label.revision));
                    let message = format!("refused bundle {etag} from control plane: {e}; still enforcing {keeping}");
                    proxy_wasm::hostcalls::log(LogLevel::Warn, &message).ok();
                }
                let _ = slot.record_fetch(&store, &FetchRecord { etag, refused: true });
            }
        }
    }
}

impl Default for PortcullisRoot {
    fn default() -> Self {
        PortcullisRoot::new()
    }
}

impl Context for PortcullisRoot {
    fn on_http_call_response(&mut self, token_id: u32, _num_headers: usize, body_size: usize, _num_trailers: usize) {
        if !self.schedule.as_mut().is_some_and(|s| s.finish(token_id)) {
            return;
        }
        let status = self.get_http_call_response_header_bytes(":status");
        match status.as_deref() {
            Some(b"200") => {
                self.fetch_answered();
                if body_size > MAX_BUNDLE_BYTES {
                    self.receive_bundle(Vec::new(), etag_of(self));
                    return;
                }
                let body = self.get_http_call_response_body(0, body_size).unwrap_or_default();
                let etag = etag_of(self);
                self.receive_bundle(body, etag);
            }
            Some(b"304") => self.fetch_answered(),
            Some(b"404") => {
                self.fetch_answered();
                proxy_wasm::hostcalls::log(LogLevel::Debug, "control plane has no such bundle yet").ok();
            }
            Some(other) => {
                let other = String::from_utf8_lossy(other).into_owned();
                self.fetch_failed(&format!("status {other}"));
            }
            None => self.fetch_failed("no response: control plane unreachable or timed out"),
        }
    }
}

/// The response's ETag, or (when the server sent none) a marker that never matches a real one.
fn etag_of(root: &PortcullisRoot) -> String {
    root.get_http_call_response_header_bytes("etag")
        .and_then(|v| String::from_utf8(v).ok())
        .unwrap_or_else(|| "\"none\"".to_owned())
}

impl RootContext for PortcullisRoot {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let raw = self.get_plugin_configuration().unwrap_or_default();
        let config = match PluginConfig::parse(&raw) {
            Ok(config) => config,
            Err(e) => {
                proxy_wasm::hostcalls::log(LogLevel::Error, &format!("invalid plugin configuration: {e}")).ok();
                return false;
            }
        };
        let cp = &config.control_plane;
        let lease_ms = cp.timeout_ms.saturating_add(4 * u64::try_from(TICK.as_millis()).unwrap_or(1000));
        self.lease = Some(Lease::new(format!("portcullis.bundle.{}.fetch-lease", cp.bundle), self.random(), lease_ms));
        self.slot = Some(BundleSlot::new(&cp.bundle));
        self.schedule = Some(FetchSchedule::new(cp.poll_interval_ms, cp.max_backoff_ms));
        self.metrics = Metrics::define();
        self.config = Some(config);
        // A VM that starts after others (a new worker, a reconfiguration) enforces what they have at once.
        self.sync_from_shared_data();
        self.set_tick_period(TICK);
        true
    }

    fn on_tick(&mut self) {
        self.sync_from_shared_data();
        self.maybe_fetch();
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
        })))
    }
}
