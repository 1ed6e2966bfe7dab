//! The root context's traffic with the control plane: the bundle fetch loop (long polls, backoff, refusals) and
//! this Envoy's status reports. Every read of a response goes through `hostcall`: after a call that failed
//! mid-body (a reset, a timeout, a body over Envoy's async-client buffer) the host answers the SDK's getters with an
//! error, and they would panic.

use std::time::Duration;

use portcullis_policies::bundle::{self, MAX_BUNDLE_BYTES};
use portcullis_shared_state::{BundleHead, FetchRecord};
use proxy_wasm::traits::Context;
use proxy_wasm::types::LogLevel;

use super::PortcullisRoot;
use crate::host::HostSharedData;
use crate::hostcall;
use crate::metrics::Metrics;

/// Longest ETag kept from a control plane's response (ours are a quoted SHA-256).
const MAX_ETAG_BYTES: usize = 128;

impl PortcullisRoot {
    /// If this VM holds the fetch lease and a fetch is due, asks the control plane for a newer bundle.
    pub(super) fn maybe_fetch(&mut self) {
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
    pub(super) fn maybe_report(&mut self) {
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
