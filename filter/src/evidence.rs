//! What a decision leaves behind: the access-log verdict and the body of a blocked response.
//!
//! The verdict goes to Envoy filter state `wasm.portcullis.verdict` as one logfmt line, e.g.
//! `action=block rule=admin-needs-key status=403 endpoint="GET h/admin/users" revision=7 bundle=3f2a9c1d`, or, for an
//! exchange whose response carried card numbers,
//! `action=none rule=- detections=cards-out:2 lists+=sensitive-endpoints endpoint="GET h/users/{id}" revision=7 ...`.
//! It names rules, detections (type and count), JWT findings, lists, the caller's token identity (a keyed hash) and
//! the exact bundle, never request content: tokens, bodies and header values stay out of logs (the endpoint template
//! has its identifiers folded).

use portcullis_policies::token::JwtFindings;
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

/// Everything one exchange leaves in the access log.
#[derive(Clone, Debug)]
pub struct Evidence<'a> {
    /// The folded verdict of every phase so far.
    pub verdict: Verdict,
    /// The id of the rule that decided, if any.
    pub rule_id: Option<&'a str>,
    /// Detections that found something: id and count.
    pub detections: Vec<(&'a str, u32)>,
    /// Attack findings, already escaped: `sqli@query.q,xss@body.comment` (see `attacks::evidence`).
    pub attacks: Option<String>,
    /// What could not be inspected (`encoded`: a body in an encoding that cannot be decoded; `unreadable`: a body
    /// field a rule read), decided by the rules' `on_uninspectable`.
    pub inspection: Option<&'static str>,
    /// The request body was longer than the inspection cap.
    pub request_truncated: bool,
    /// The response body was longer than the inspection cap.
    pub response_truncated: bool,
    /// Lists this exchange added its key to.
    pub lists_added: Vec<&'a str>,
    /// Lists a rule found this exchange's key in.
    pub lists_hit: Vec<&'a str>,
    /// Counters rules read or this exchange updated, with their values.
    pub counters: Vec<(&'a str, i64)>,
    /// The endpoint template.
    pub endpoint: &'a [u8],
    /// The caller's token identity (a keyed hash), when the request carried a token.
    pub token_id: Option<&'a str>,
    /// What the analysis of the caller's JWT found.
    pub jwt_findings: JwtFindings,
    /// The bundle that decided.
    pub bundle: &'a BundleLabel,
}

impl Evidence<'_> {
    /// True when there is something to log: a rule matched, a detection fired or a list was updated.
    pub fn is_worth_logging(&self) -> bool {
        self.verdict.action.is_some()
            || !self.detections.is_empty()
            || self.attacks.is_some()
            || self.inspection.is_some()
            || !self.lists_added.is_empty()
            || !self.jwt_findings.is_empty()
    }
}

/// The logfmt verdict line, or `None` when nothing matched.
pub fn verdict_line(e: &Evidence<'_>) -> Option<String> {
    if !e.is_worth_logging() {
        return None;
    }
    let v = &e.verdict;
    let action = v.action.map_or("none", Action::as_str);
    let mut line = format!("action={action} rule={}", e.rule_id.unwrap_or("-"));
    if v.action == Some(Action::Block) {
        line.push_str(&format!(" status={}", v.status));
    }
    if v.action == Some(Action::Throttle) {
        line.push_str(&format!(" status={} retry_after={}", v.status, v.retry_after));
    }
    if v.matched > 1 {
        line.push_str(&format!(" matched={}", v.matched));
    }
    if v.errors > 0 {
        line.push_str(&format!(" errors={}", v.errors));
    }
    if !e.detections.is_empty() {
        let list: Vec<String> = e.detections.iter().map(|(id, n)| format!("{id}:{n}")).collect();
        line.push_str(&format!(" detections={}", list.join(",")));
    }
    if let Some(attacks) = &e.attacks {
        line.push_str(&format!(" attacks={attacks}"));
    }
    if let Some(what) = e.inspection {
        line.push_str(&format!(" inspection={what}"));
    }
    match (e.request_truncated, e.response_truncated) {
        (true, true) => line.push_str(" truncated=request,response"),
        (true, false) => line.push_str(" truncated=request"),
        (false, true) => line.push_str(" truncated=response"),
        (false, false) => {}
    }
    if !e.jwt_findings.is_empty() {
        let names: Vec<&str> = e.jwt_findings.iter().map(|f| f.name().trim_start_matches("jwt.")).collect();
        line.push_str(&format!(" jwt={}", names.join(",")));
    }
    if !e.lists_hit.is_empty() {
        line.push_str(&format!(" lists={}", e.lists_hit.join(",")));
    }
    if !e.lists_added.is_empty() {
        line.push_str(&format!(" lists+={}", e.lists_added.join(",")));
    }
    if !e.counters.is_empty() {
        let counters: Vec<String> = e.counters.iter().map(|(id, n)| format!("{id}:{n}")).collect();
        line.push_str(&format!(" counters={}", counters.join(",")));
    }
    if let Some(id) = e.token_id {
        line.push_str(&format!(" token={id}"));
    }
    line.push_str(" endpoint=\"");
    escape_into(e.endpoint, &mut line);
    line.push('"');
    line.push_str(&format!(" revision={} bundle={}", e.bundle.revision, e.bundle.short_digest));
    Some(line)
}

/// Writes bytes into a quoted logfmt value: printable ASCII as is, `"` and `\` escaped, anything else as `\xNN`.
fn escape_into(bytes: &[u8], out: &mut String) {
    for &b in bytes {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(char::from(b)),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
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
    serde_json::json!({ "error": "no policy bundle loaded yet", "request_id": request_id }).to_string().into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label() -> BundleLabel {
        BundleLabel { revision: 7, short_digest: "3f2a9c1d".into() }
    }

    fn evidence<'a>(verdict: Verdict, rule_id: Option<&'a str>, label: &'a BundleLabel) -> Evidence<'a> {
        Evidence {
            verdict,
            rule_id,
            detections: vec![],
            attacks: None,
            inspection: None,
            request_truncated: false,
            response_truncated: false,
            lists_added: vec![],
            lists_hit: vec![],
            counters: vec![],
            endpoint: b"GET h/admin",
            token_id: None,
            jwt_findings: JwtFindings::default(),
            bundle: label,
        }
    }

    #[test]
    fn block_and_monitor_lines() {
        let label = label();
        let v = Verdict::ALLOW.with_match(0, Action::Block, 403);
        assert_eq!(
            verdict_line(&evidence(v, Some("admin-needs-key"), &label)).unwrap(),
            "action=block rule=admin-needs-key status=403 endpoint=\"GET h/admin\" revision=7 bundle=3f2a9c1d"
        );
        let v = Verdict::ALLOW.with_match(2, Action::Monitor, 403).with_error();
        assert_eq!(
            verdict_line(&evidence(v, Some("watch-exports"), &label)).unwrap(),
            "action=monitor rule=watch-exports errors=1 endpoint=\"GET h/admin\" revision=7 bundle=3f2a9c1d"
        );
        assert_eq!(verdict_line(&evidence(Verdict::ALLOW, None, &label)), None);
    }

    #[test]
    fn detections_truncation_lists_and_hostile_endpoints() {
        let label = label();
        let mut e = evidence(Verdict::ALLOW, None, &label);
        e.detections = vec![("cards-out", 2), ("expiry-out", 1)];
        e.response_truncated = true;
        e.lists_added = vec!["sensitive-endpoints"];
        e.endpoint = b"GET h/a\"b\\c/\xff";
        assert_eq!(
            verdict_line(&e).unwrap(),
            "action=none rule=- detections=cards-out:2,expiry-out:1 truncated=response lists+=sensitive-endpoints \
             endpoint=\"GET h/a\\\"b\\\\c/\\xff\" revision=7 bundle=3f2a9c1d"
        );
    }

    #[test]
    fn list_memberships_counters_and_throttles() {
        let label = label();
        let v = Verdict::ALLOW.with_match(0, Action::AddToList, 403).with_match(1, Action::Block, 403);
        let mut e = evidence(v, Some("protect-sensitive"), &label);
        e.lists_hit = vec!["sensitive-endpoints", "abusive-tokens"];
        e.lists_added = vec!["abusive-tokens"];
        e.counters = vec![("errors-by-token", 25)];
        assert_eq!(
            verdict_line(&e).unwrap(),
            "action=block rule=protect-sensitive status=403 matched=2 lists=sensitive-endpoints,abusive-tokens \
             lists+=abusive-tokens counters=errors-by-token:25 endpoint=\"GET h/admin\" revision=7 bundle=3f2a9c1d"
        );
        let v = Verdict::ALLOW.with_throttle(4, Action::Throttle, 429, 30);
        assert_eq!(
            verdict_line(&evidence(v, Some("slow-down"), &label)).unwrap(),
            "action=throttle rule=slow-down status=429 retry_after=30 endpoint=\"GET h/admin\" revision=7 \
             bundle=3f2a9c1d"
        );
    }

    #[test]
    fn token_identity_and_jwt_findings_are_named_never_shown() {
        let label = label();
        let v = Verdict::ALLOW.with_match(3, Action::Block, 401);
        let mut e = evidence(v, Some("forged-token"), &label);
        e.token_id = Some("0123456789abcdef0123456789abcdef");
        e.jwt_findings.insert(portcullis_policies::token::JwtFinding::AlgNone);
        e.jwt_findings.insert(portcullis_policies::token::JwtFinding::MissingExp);
        assert_eq!(
            verdict_line(&e).unwrap(),
            "action=block rule=forged-token status=401 jwt=alg_none,missing_exp \
             token=0123456789abcdef0123456789abcdef endpoint=\"GET h/admin\" revision=7 bundle=3f2a9c1d"
        );
        // A JWT finding alone is worth a line, even when no rule names it.
        let mut quiet = evidence(Verdict::ALLOW, None, &label);
        quiet.jwt_findings.insert(portcullis_policies::token::JwtFinding::Expired);
        assert!(verdict_line(&quiet).unwrap().starts_with("action=none rule=- jwt=expired"));
    }

    #[test]
    fn attack_findings_follow_detections() {
        let label = label();
        let v = Verdict::ALLOW.with_match(0, Action::Block, 403);
        let mut e = evidence(v, Some("owasp-block"), &label);
        e.detections = vec![("sqli", 1)];
        e.attacks = Some("sqli@query.q".into());
        assert_eq!(
            verdict_line(&e).unwrap(),
            "action=block rule=owasp-block status=403 detections=sqli:1 attacks=sqli@query.q endpoint=\"GET h/admin\" \
             revision=7 bundle=3f2a9c1d"
        );
    }

    #[test]
    fn block_body_is_json_even_for_hostile_request_ids() {
        let body = block_body("r", Some(b"a\"b\xff"));
        let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(parsed["rule"], "r");
        assert_eq!(parsed["request_id"], "a\"b\u{fffd}");
    }
}
