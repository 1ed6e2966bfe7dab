//! The filter's Envoy stats. Envoy shows them with its `wasmcustom.` prefix, e.g.
//! `wasmcustom.portcullis.requests_blocked`.

use std::cell::RefCell;

use portcullis_policies::attacks::AttackClass;
use proxy_wasm::types::MetricType;

/// Ids of the counters this VM defined (Envoy shares a metric of the same name across VMs).
#[derive(Clone, Copy, Debug, Default)]
pub struct Metrics {
    /// Requests answered with a block.
    pub requests_blocked: Option<u32>,
    /// Requests that matched a monitor rule and passed.
    pub requests_monitored: Option<u32>,
    /// Requests seen before any bundle was active.
    pub requests_without_bundle: Option<u32>,
    /// Bundles accepted and swapped in (counted by the VM that fetched them).
    pub bundle_loaded: Option<u32>,
    /// Bundles refused (once per distinct bundle served).
    pub bundle_refused: Option<u32>,
    /// Fetches that failed (control plane unreachable, timeout, unexpected status).
    pub fetch_failed: Option<u32>,
    /// Exchanges in which at least one detection found something.
    pub exchanges_with_detections: Option<u32>,
    /// Bodies longer than the inspection cap (inspected up to it).
    pub bodies_truncated: Option<u32>,
    /// Keys added to (or refreshed in) dynamic lists.
    pub list_additions: Option<u32>,
    /// List updates given up after bounded compare-and-swap retries.
    pub list_contention: Option<u32>,
    /// Requests answered with a throttle (429 and `Retry-After`).
    pub requests_throttled: Option<u32>,
    /// Exchanges counted by a counter (one per counter and exchange; batched ones included before they are
    /// written).
    pub counter_updates: Option<u32>,
    /// Counter writes to shared data (one per update, or one per key and flush for batched counters).
    pub counter_writes: Option<u32>,
    /// Compare-and-swap retries spent by counter writes (divide by `counter_writes` for the retry rate).
    pub counter_cas_retries: Option<u32>,
    /// Counter updates given up (retries exhausted or a refused write): that exchange was not counted.
    pub counter_failures: Option<u32>,
    /// Bundles refused because their lists and counters need more shared data than `shared_data_budget_bytes`.
    pub bundle_over_budget: Option<u32>,
    /// With `time_inspection`: nanoseconds spent scanning bodies inside the VM.
    pub inspection_ns: Option<u32>,
    /// With `time_inspection`: body bytes scanned (the two give the scan's MB/s inside the VM).
    pub inspected_bytes: Option<u32>,
    /// Gauge: bytes of shared data the active bundle's lists and counters use, as last swept.
    pub shared_data_bytes: Option<u32>,
    /// Gauge: the most bytes of shared data the active bundle's lists and counters can ever use.
    pub shared_data_bytes_limit: Option<u32>,
    /// Attack findings per class (`portcullis.attacks_sqli`, ...), indexed like `AttackClass::ALL`.
    pub attacks: [Option<u32>; 13],
}

thread_local! {
    /// Counter increments waiting for the next tick: one entry per metric id, so it stays tiny.
    static PENDING: RefCell<Vec<(u32, u64)>> = const { RefCell::new(Vec::new()) };
}

impl Metrics {
    /// Defines (or looks up) every counter.
    pub fn define() -> Metrics {
        let counter = |name: &str| crate::hostcall::define_metric(MetricType::Counter, name);
        let gauge = |name: &str| crate::hostcall::define_metric(MetricType::Gauge, name);
        Metrics {
            requests_blocked: counter("portcullis.requests_blocked"),
            requests_monitored: counter("portcullis.requests_monitored"),
            requests_without_bundle: counter("portcullis.requests_without_bundle"),
            bundle_loaded: counter("portcullis.bundle_loaded"),
            bundle_refused: counter("portcullis.bundle_refused"),
            fetch_failed: counter("portcullis.fetch_failed"),
            exchanges_with_detections: counter("portcullis.exchanges_with_detections"),
            bodies_truncated: counter("portcullis.bodies_truncated"),
            list_additions: counter("portcullis.list_additions"),
            list_contention: counter("portcullis.list_contention"),
            requests_throttled: counter("portcullis.requests_throttled"),
            counter_updates: counter("portcullis.counter_updates"),
            counter_writes: counter("portcullis.counter_writes"),
            counter_cas_retries: counter("portcullis.counter_cas_retries"),
            counter_failures: counter("portcullis.counter_failures"),
            bundle_over_budget: counter("portcullis.bundle_over_budget"),
            inspection_ns: counter("portcullis.inspection_ns"),
            inspected_bytes: counter("portcullis.inspected_bytes"),
            shared_data_bytes: gauge("portcullis.shared_data_bytes"),
            shared_data_bytes_limit: gauge("portcullis.shared_data_bytes_limit"),
            attacks: AttackClass::ALL.map(|class| counter(&format!("portcullis.attacks_{}", class.name()))),
        }
    }

    /// Adds `n` to a counter (nothing for 0).
    pub fn add(id: Option<u32>, n: u64) {
        if let (Some(id), true) = (id, n > 0) {
            crate::hostcall::increment_metric(id, i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    /// Adds `n` to a counter at the next [`Metrics::flush`] (every tick): for counters bumped several times per
    /// request, where a hostcall each (about 2 µs in Envoy's V8) would cost more than the work counted.
    pub fn add_later(id: Option<u32>, n: u64) {
        let Some(id) = id.filter(|_| n > 0) else { return };
        PENDING.with(|pending| {
            let mut pending = pending.borrow_mut();
            match pending.iter_mut().find(|(i, _)| *i == id) {
                Some(entry) => entry.1 = entry.1.saturating_add(n),
                None => pending.push((id, n)),
            }
        });
    }

    /// Applies what [`Metrics::add_later`] collected.
    pub fn flush() {
        let pending = PENDING.with(|pending| std::mem::take(&mut *pending.borrow_mut()));
        for (id, n) in pending {
            Metrics::add(Some(id), n);
        }
    }

    /// Sets a gauge.
    pub fn set(id: Option<u32>, value: u64) {
        if let Some(id) = id {
            crate::hostcall::record_metric(id, value);
        }
    }

    /// Adds one to a counter; a metric the host refused to define is skipped.
    pub fn bump(id: Option<u32>) {
        if let Some(id) = id {
            // Stats are best effort: a failed increment must never affect the request.
            crate::hostcall::increment_metric(id, 1);
        }
    }
}
