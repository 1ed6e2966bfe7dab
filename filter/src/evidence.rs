//! What a decision leaves behind: the access-log verdict and the body of a blocked response.
//!
//! The verdict goes to Envoy filter state `wasm.portcullis.verdict` as one logfmt line, e.g.
//! `action=block rule=admin-needs-key status=403 revision=7 bundle=3f2a9c1d`. It names the rule and the exact bundle,
//! never request content: tokens, bodies and header values stay out of logs.

use portcullis_policies::{Action, Verdict};

/// Filter-state key of the verdict (Envoy prefixes `wasm.`; the access log reads `wasm.portcullis.verdict`).
pub const VERDICT_PROPERTY: &str = "portcullis.verdict";

/// The bundle a verdict came from, as logged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BundleLabel {
    /// The bundle's revision.
    pub revision: u64,
    /// The first 8 hex characters of the bundle's SHA-256.
    pub short_digest: String,
}

/// The logfmt verdict line for a request that matched a rule, or `None` when nothing matched.
pub fn verdict_line(verdict: &Verdict, rule_id: Option<&str>, bundle: &BundleLabel) -> Option<String> {
    let action = verdict.action?;
    let mut line = format!("action={} rule={}", action.as_str(), rule_id.unwrap_or("-"));
    if action == Action::Block {
        line.push_str(&format!(" status={}", verdict.status));
    }
    if verdict.matched > 1 {
        line.push_str(&format!(" matched={}", verdict.matched));
    }
    if verdict.errors > 0 {
        line.push_str(&format!(" errors={}", verdict.errors));
    }
    line.push_str(&format!(" revision={} bundle={}", bundle.revision, bundle.short_digest));
    Some(line)
}

/// The JSON body of a blocked request: the rule and Envoy's request id, so a caller can quote it to support.
pub fn block_body(rule_id: &str, request_id: Option<&[u8]>) -> Vec<u8> {
    let request_id = request_id.map(String::from_utf8_lossy);
    let body = serde_json::json!({
        "error": "request blocked by policy",
        "rule": rule_id,
        "request_id": request_id,
    });
    body.to_string().into_bytes()
}

/// The JSON body answered in `failure_mode: closed` before any bundle is active.
pub fn no_bundle_body(request_id: Option<&[u8]>) -> Vec<u8> {
    let request_id = request_id.map(String::from_utf8_lossy);
    serde_json::json!({ "error": "no policy bundle loaded yet", "request_id": request_id })
        .to_string()
        .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label() -> BundleLabel {
        BundleLabel {
            revision: 7,
            short_digest: "3f2a9c1d".into(),
        }
    }

    #[test]
    fn block_and_monitor_lines() {
        let v = Verdict::ALLOW.with_match(0, Action::Block, 403);
        assert_eq!(
            verdict_line(&v, Some("admin-needs-key"), &label()).unwrap(),
            "action=block rule=admin-needs-key status=403 revision=7 bundle=3f2a9c1d"
        );
        let v = Verdict::ALLOW.with_match(2, Action::Monitor, 403).with_error();
        assert_eq!(
            verdict_line(&v, Some("watch-exports"), &label()).unwrap(),
            "action=monitor rule=watch-exports errors=1 revision=7 bundle=3f2a9c1d"
        );
        assert_eq!(verdict_line(&Verdict::ALLOW, None, &label()), None);
    }

    #[test]
    fn block_body_is_json_even_for_hostile_request_ids() {
        let body = block_body("r", Some(b"a\"b\xff"));
        let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(parsed["rule"], "r");
        assert_eq!(parsed["request_id"], "a\"b\u{fffd}");
    }
}
