//! The root context: configuration, the tick, and which bundle is active ([`crate::active`]); its traffic with
//! the control plane (fetches and status reports) is in [`fetch`].
//!
//! Every tick, each worker VM compares the bundle head in shared data with its own and swaps in a newer bundle
//! (validated again locally). One VM per Envoy, the holder of the fetch lease, also polls the control plane:
//! a bundle it accepts is published to shared data for the others. A refused bundle is logged and counted once,
//! and the last good bundle stays active. A control plane that is down only delays updates.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::rc::Rc;
use std::time::Duration;

use portcullis_policies::bundle;
use portcullis_policies::signing::{self, TrustedKey};
use portcullis_policies::token_analysis::DEFAULT_VERIFICATIONS_PER_SECOND;
use portcullis_policies::Bundle;
use portcullis_shared_state::{BundleHead, BundleSlot, Lease, Salt};
use proxy_wasm::traits::{HttpContext, RootContext};
use proxy_wasm::types::{ContextType, LogLevel};

use crate::active::{shared_bytes_needed, ActiveBundle, Snapshot};
use crate::config::{FailureMode, PluginConfig};
use crate::host::HostSharedData;
use crate::hostcall;
use crate::http::RequestFilter;
use crate::metrics::Metrics;
use crate::over_time::{SharedLocal, Sweep};
use crate::schedule::FetchSchedule;
use crate::token::{new_cache, SharedCache};

mod fetch;

/// Shared-data key of this Envoy's random token-identity key (used when neither configuration nor bundle has one).
const TOKEN_KEY: &str = "portcullis.token-identity-key";

/// Shared-data key of this Envoy's random salt of list and counter bucket hashes.
const BUCKET_SALT_KEY: &str = "portcullis.bucket-salt";

/// How often every VM looks for a newer bundle in shared data: the bound on propagation between workers.
const TICK: Duration = Duration::from_millis(250);

/// Shared-data buckets the sweep reads per tick (a full pass over 1M list entries takes ~2 minutes).
const SWEEP_READS_PER_TICK: u32 = 1024;

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
}

/// At most `max` characters of `text` (names from a refused bundle are not trusted to be short).
fn truncated(text: &str, max: usize) -> &str {
    text.char_indices().nth(max).map_or(text, |(i, _)| text.get(..i).unwrap_or(text))
}

impl Default for PortcullisRoot {
    fn default() -> Self {
        PortcullisRoot::new()
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
