//! The per-request context: evaluate the snapshot bundle on request headers, then block, monitor or pass.

use portcullis_policies::Action;
use proxy_wasm::traits::{Context, HttpContext};

use crate::config::FailureMode;
use crate::evidence::{block_body, no_bundle_body, verdict_line, VERDICT_PROPERTY};
use crate::host::HostRequest;
use crate::metrics::Metrics;
use crate::root::Snapshot;

/// One request. Holds the bundle that was active when the request began, so a swap never splits a request.
pub struct RequestFilter {
    snapshot: Snapshot,
}

impl RequestFilter {
    /// A request context over `snapshot`.
    pub fn new(snapshot: Snapshot) -> RequestFilter {
        RequestFilter { snapshot }
    }

    fn respond_json(&self, status: u32, body: &[u8]) {
        let headers = vec![("content-type", "application/json"), ("cache-control", "no-store")];
        self.send_http_response(status, headers, Some(body));
    }
}

impl Context for RequestFilter {}

impl HttpContext for RequestFilter {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> proxy_wasm::types::Action {
        use proxy_wasm::types::Action as Flow;
        let Some(active) = self.snapshot.active.clone() else {
            Metrics::bump(self.snapshot.metrics.requests_without_bundle);
            return match self.snapshot.failure_mode {
                FailureMode::Open => Flow::Continue,
                FailureMode::Closed => {
                    let request_id = self.get_http_request_header_bytes("x-request-id");
                    self.respond_json(503, &no_bundle_body(request_id.as_deref()));
                    Flow::Pause
                }
            };
        };
        let request = HostRequest::new(self.get_http_request_headers_bytes());
        let verdict = active.bundle.evaluate(&request);
        let rule_id = verdict.rule.and_then(|i| active.bundle.rule_id(i));
        let Some(line) = verdict_line(&verdict, rule_id, &active.label) else {
            return Flow::Continue;
        };
        self.set_property(vec![VERDICT_PROPERTY], Some(line.as_bytes()));
        match verdict.action {
            Some(Action::Block) => {
                Metrics::bump(self.snapshot.metrics.requests_blocked);
                let body = block_body(rule_id.unwrap_or("-"), request.first("x-request-id"));
                self.respond_json(u32::from(verdict.status), &body);
                Flow::Pause
            }
            Some(Action::Monitor) => {
                Metrics::bump(self.snapshot.metrics.requests_monitored);
                Flow::Continue
            }
            None => Flow::Continue,
        }
    }
}
