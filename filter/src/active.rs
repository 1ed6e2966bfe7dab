//! The bundle a worker enforces, and what each request snapshots of the root: kept apart from the root context so
//! that request-side modules depend on this, not on the fetch loop.

use std::rc::Rc;

use portcullis_policies::bundle;
use portcullis_policies::program::Node;
use portcullis_policies::token_analysis::JwtVerifier;
use portcullis_policies::{Bundle, Phase};
use portcullis_shared_state::{Footprint, Salt, TtlList};

use crate::attacks::AttackPlan;
use crate::config::FailureMode;
use crate::evidence::BundleLabel;
use crate::metrics::Metrics;
use crate::over_time::{CounterStore, SharedLocal};
use crate::token::{IdCache, SharedCache};

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
    /// The bundle's attack detections and this VM's inspector for them.
    pub attacks: AttackPlan,
}

impl ActiveBundle {
    /// Prepares `bundle` (already validated) for enforcement: its lists, counters and verifier, and what it reads.
    pub(crate) fn new(bundle: Bundle, token_key: Vec<u8>, salt: Salt) -> ActiveBundle {
        let short_digest = bundle::hex(bundle.digest().get(..4).unwrap_or_default());
        let label = BundleLabel { revision: bundle.revision(), short_digest };
        let lists = bundle.lists().iter().map(|l| TtlList::new(&l.id, l.max_entries).salted(salt)).collect();
        let counters = bundle.counters().iter().map(|def| CounterStore::new(def, salt)).collect();
        let hold_request_body = bundle.rules().iter().any(|r| r.phase == Phase::RequestBody && r.action.answers());
        let attacks = AttackPlan::new(&bundle);
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
            attacks,
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
