//! The filter's Envoy stats. Envoy shows them with its `wasmcustom.` prefix, e.g.
//! `wasmcustom.portcullis.requests_blocked`.

use proxy_wasm::hostcalls;
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
}

impl Metrics {
    /// Defines (or looks up) every counter.
    pub fn define() -> Metrics {
        let counter = |name: &str| hostcalls::define_metric(MetricType::Counter, name).ok();
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
        }
    }

    /// Adds one to a counter; a metric the host refused to define is skipped.
    pub fn bump(id: Option<u32>) {
        if let Some(id) = id {
            // Stats are best effort: a failed increment must never affect the request.
            let _ = hostcalls::increment_metric(id, 1);
        }
    }
}
