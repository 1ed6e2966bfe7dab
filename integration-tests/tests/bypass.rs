//! No encoding slips past a rule, end to end through the real Envoy: compressed bodies are decoded and matched,
//! bodies in an encoding that cannot be decoded are decided by the rule's `on_uninspectable` (and logged as
//! `inspection=encoded`), JSON string escapes do not hide a card, a deeply nested body does not hide a field, a
//! body past the field-read limit is not "no match", and equivalent spellings of a host and path reach the same
//! rules and endpoint lists. No size trick either: a body past the inspection cap is `inspection=truncated`, decided
//! by `on_uninspectable` like an undecodable one, and a binary `content-type` on a text body does not hide it.
//!
//! The harness's Envoy does not normalise paths itself (no `normalize_path`, `merge_slashes`), so every path
//! variant below reaches the filter as sent: what is tested is the filter's own normalisation.

use std::io::Write;
use std::time::Duration;

use portcullis_integration_tests::body::digest;
use portcullis_integration_tests::http::{send_in_parts, send_raw};
use portcullis_integration_tests::{assert_field, compile, Envoy, HttpResponse, Stack};

/// A blocking body rule, a body-field rule, a path rule and a static endpoint list.
const POLICY: &str = r#"version: 1
detections:
  - id: cards-in
    classifier: credit_card
    in: request.body
  - id: cards-out
    classifier: credit_card
    in: response.body
lists:
  - id: denied-endpoints
    key: endpoint
    entries: ["GET portcullis.test/internal/users/{id}"]
rules:
  - id: canary
    when: request.path == "/canary"
    action: block
  - id: admin-path
    when: request.url_path.startsWith("/admin")
    action: block
  - id: denied-endpoint
    when: endpoint in lists["denied-endpoints"]
    action: block
    status: 451
  - id: admin-login
    when: request.path == "/login" && request.body["username"] == "admin"
    action: block
    status: 401
  - id: cards-out-watched
    when: detected("cards-out")
    action: monitor
    on_uninspectable: block
  - id: cards-in-body
    when: detected("cards-in")
    action: block
    status: 422
ON_UNINSPECTABLE"#;

const REVISION: u64 = 5;
const ENFORCEMENT_TIMEOUT: Duration = Duration::from_secs(15);
/// A Visa test number.
const CARD: &str = "4111 1111 1111 1111";

fn stack_with(on_uninspectable: Option<&str>) -> Stack {
    let line = on_uninspectable.map(|v| format!("    on_uninspectable: {v}\n")).unwrap_or_default();
    let policy = POLICY.replace("ON_UNINSPECTABLE", &line);
    let stack = Stack::start("open");
    stack.control_plane.push("demo", &compile(&policy, "demo", REVISION));
    stack.wait_for_status_on_every_worker("/canary", &[], 403, ENFORCEMENT_TIMEOUT);
    stack
}

fn post(envoy: &Envoy, path: &str, id: &str, headers: &[(&str, &str)], body: &[u8]) -> HttpResponse {
    let mut all = vec![("x-request-id", id), ("content-type", "application/json")];
    all.extend_from_slice(headers);
    envoy.client_new_connection_each().request("POST", path, &all, body)
}

fn gzip(body: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(body).expect("gzip");
    e.finish().expect("gzip")
}

fn brotli(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    brotli::BrotliCompress(&mut &body[..], &mut out, &brotli::enc::BrotliEncoderParams::default()).expect("br");
    out
}

fn card_json() -> String {
    format!(r#"{{"order":7,"payment":{{"number":"{CARD}","holder":"A. Lee"}}}}"#)
}

#[test]
fn compressed_bodies_are_decoded() {
    let stack = stack_with(None);
    let envoy = &stack.envoy;
    let json = card_json();
    for (i, (encoding, body)) in
        [("gzip", gzip(json.as_bytes())), ("br", brotli(json.as_bytes()))].into_iter().enumerate()
    {
        let id = format!("enc-{i}");
        let response = post(envoy, "/orders", &id, &[("content-encoding", encoding)], &body);
        assert_eq!(response.status, 422, "{encoding}: {}", response.text());
        let verdict = envoy.verdict(&id);
        assert_field(&verdict, "rule", Some("cards-in-body"));
        assert_field(&verdict, "detections", Some("cards-in:1"));
    }
    // The same encodings without a card pass, and reach the upstream as sent.
    let clean = br#"{"order":7,"note":"leave at the door"}"#;
    for (encoding, body) in [("gzip", gzip(clean)), ("br", brotli(clean))] {
        let response = post(envoy, "/orders", &format!("clean-{encoding}"), &[("content-encoding", encoding)], &body);
        assert_eq!(response.status, 200, "{encoding}: {}", response.text());
    }
    envoy.assert_no_critical_wasm();
}

#[test]
fn undecodable_bodies_are_blocked_by_default() {
    let stack = stack_with(None);
    let envoy = &stack.envoy;
    let json = card_json();
    let clean = br#"{"order":7,"note":"leave at the door"}"#;
    // An encoding nobody can decode, stacked codings and a corrupt stream: uninspectable, so blocked by default.
    let mut corrupt = gzip(json.as_bytes());
    corrupt.truncate(corrupt.len() / 2);
    for (i, (encoding, body)) in [
        ("x-anything", json.clone().into_bytes()),
        ("gzip, br", brotli(&gzip(json.as_bytes()))),
        ("gzip", corrupt),
        ("x-anything", clean.to_vec()),
    ]
    .into_iter()
    .enumerate()
    {
        let id = format!("undecodable-{i}");
        let response = post(envoy, "/orders", &id, &[("content-encoding", encoding)], &body);
        assert_eq!(response.status, 422, "{encoding}: {}", response.text());
        let verdict = envoy.verdict(&id);
        assert_field(&verdict, "rule", Some("cards-in-body"));
        assert_field(&verdict, "inspection", Some("encoded"));
    }
    envoy.assert_no_critical_wasm();
}

#[test]
fn on_uninspectable_pass_lets_an_undecodable_body_through_and_says_so() {
    let stack = stack_with(Some("pass"));
    let envoy = &stack.envoy;
    let json = card_json();
    let response = post(envoy, "/orders", "pass-0", &[("content-encoding", "x-anything")], json.as_bytes());
    assert_eq!(response.status, 200, "{}", response.text());
    let verdict = envoy.verdict("pass-0");
    assert_field(&verdict, "action", Some("none"));
    assert_field(&verdict, "inspection", Some("encoded"));
    // A body it can decode is still matched.
    let response = post(envoy, "/orders", "pass-1", &[("content-encoding", "gzip")], &gzip(json.as_bytes()));
    assert_eq!(response.status, 422, "{}", response.text());
    envoy.assert_no_critical_wasm();
}

#[test]
fn json_escapes_hide_no_card() {
    let stack = stack_with(None);
    let envoy = &stack.envoy;
    let escaped = r#"{"payment":{"number":"\u0034111 1111 1111 1111"}}"#;
    let response = post(envoy, "/orders", "escaped-0", &[], escaped.as_bytes());
    assert_eq!(response.status, 422, "{}", response.text());
    let escaped = r#"{"payment":{"number":"\u0034\u0031\u0031\u0031\u002d1111-1111\u00201111"}}"#;
    let response = post(envoy, "/orders", "escaped-1", &[], escaped.as_bytes());
    assert_eq!(response.status, 422, "{}", response.text());
    envoy.assert_no_critical_wasm();
}

#[test]
fn deep_nesting_and_repeated_keys_hide_no_field() {
    let stack = stack_with(None);
    let envoy = &stack.envoy;
    // 200 levels of nesting before the field an upstream parser reads.
    let deep = format!(r#"{{"meta":{}1{},"username":"admin"}}"#, "[".repeat(200), "]".repeat(200));
    let response = post(envoy, "/login", "deep-0", &[], deep.as_bytes());
    assert_eq!(response.status, 401, "{}", response.text());
    assert_field(&envoy.verdict("deep-0"), "rule", Some("admin-login"));
    let deep_object = format!(r#"{}{{"x":1}}{}"#, r#"{"a":"#.repeat(200), "}".repeat(200));
    let deep_object = format!(r#"{{"meta":{deep_object},"username":"admin"}}"#);
    let response = post(envoy, "/login", "deep-1", &[], deep_object.as_bytes());
    assert_eq!(response.status, 401, "{}", response.text());
    // An escaped key is the same key, and the last of two is the one upstream parsers keep.
    let response = post(envoy, "/login", "key-0", &[], br#"{"user\u006eame":"admin"}"#);
    assert_eq!(response.status, 401, "{}", response.text());
    let response = post(envoy, "/login", "key-1", &[], br#"{"username":"ann","username":"admin"}"#);
    assert_eq!(response.status, 401, "{}", response.text());
    // The control: another user logs in.
    let response = post(envoy, "/login", "ann-0", &[], br#"{"username":"ann"}"#);
    assert_eq!(response.status, 200, "{}", response.text());
    envoy.assert_no_critical_wasm();
}

#[test]
fn compressed_bodies_have_readable_fields() {
    let stack = stack_with(None);
    let envoy = &stack.envoy;
    let admin = br#"{"username":"admin"}"#;
    let ann = br#"{"username":"ann"}"#;
    for (encoding, compress) in [("gzip", gzip as fn(&[u8]) -> Vec<u8>), ("br", brotli)] {
        let response =
            post(envoy, "/login", &format!("{encoding}-admin"), &[("content-encoding", encoding)], &compress(admin));
        assert_eq!(response.status, 401, "{encoding}: {}", response.text());
        let response =
            post(envoy, "/login", &format!("{encoding}-ann"), &[("content-encoding", encoding)], &compress(ann));
        assert_eq!(response.status, 200, "{encoding}: {}", response.text());
    }
    // Fields of a body in an encoding nobody can decode are unreadable: blocked by default.
    let response = post(envoy, "/login", "x-ann", &[("content-encoding", "x-anything")], ann);
    assert_eq!(response.status, 401, "{}", response.text());
    assert_field(&envoy.verdict("x-ann"), "rule", Some("admin-login"));
    envoy.assert_no_critical_wasm();
}

#[test]
fn a_body_padded_past_the_field_limit_is_unreadable_not_no_match() {
    let stack = stack_with(None);
    let envoy = &stack.envoy;
    // A body padded past the field-read limit is unreadable, not "no match".
    let padded = format!(r#"{{"pad":"{}","username":"admin"}}"#, "x".repeat(9000));
    let response = post(envoy, "/login", "padded-0", &[], padded.as_bytes());
    assert_eq!(response.status, 401, "{}", response.text());
    assert_field(&envoy.verdict("padded-0"), "inspection", Some("unreadable"));
    // A small body with another user passes.
    let response = post(envoy, "/login", "ann-1", &[], br#"{"username":"ann"}"#);
    assert_eq!(response.status, 200, "{}", response.text());
    envoy.assert_no_critical_wasm();
}

#[test]
fn equivalent_paths_and_hosts_reach_the_same_rules() {
    let stack = stack_with(None);
    let envoy = &stack.envoy;
    let get = |path: &str, id: &str, host: Option<&str>| {
        let mut headers = vec![("x-request-id", id)];
        if let Some(host) = host {
            headers.push(("host", host));
        }
        envoy.client_new_connection_each().request("GET", path, &headers, b"")
    };
    // The controls: the plain forms are blocked, a neighbour is not.
    assert_eq!(get("/admin/users", "path-plain", None).status, 403);
    assert_eq!(get("/internal/users/12", "list-plain", None).status, 451);
    assert_eq!(get("/internal/groups/12", "list-neighbour", None).status, 200);
    assert_eq!(get("/public/users", "path-neighbour", None).status, 200);
    for (i, path) in [
        "/./admin/users",
        "/%61dmin/users",
        "/%61%64%6d%69%6e/users",
        "/admin;x=1/users",
        "//admin/users",
        "/public/../admin/users",
        "/public/%2e%2e/admin/users",
        "/public/..;/admin/users",
        "/public%2F..%2Fadmin/users",
    ]
    .into_iter()
    .enumerate()
    {
        let response = get(path, &format!("path-{i}"), None);
        assert_eq!(response.status, 403, "{path}: {}", response.text());
        assert_field(&envoy.verdict(&format!("path-{i}")), "rule", Some("admin-path"));
    }
    for (i, (path, host)) in [
        ("/./internal/users/12", None),
        ("/%69nternal/users/12", None),
        ("/internal;a=b/users/12", None),
        ("//internal//users//12", None),
        ("/x/../internal/users/12", None),
        ("/internal/users/12", Some("PORTCULLIS.test")),
        ("/internal/users/12", Some("portcullis.test:443")),
        ("/internal/users/12", Some("Portcullis.Test.")),
        ("/internal/users/12", Some("portcullis.test.:10000")),
    ]
    .into_iter()
    .enumerate()
    {
        let id = format!("list-{i}");
        let response = get(path, &id, host);
        assert_eq!(response.status, 451, "{path} {host:?}: {}", response.text());
        let verdict = envoy.verdict(&id);
        assert_field(&verdict, "rule", Some("denied-endpoint"));
        assert_field(&verdict, "endpoint", Some("GET portcullis.test/internal/users/{id}"));
    }
    envoy.assert_no_critical_wasm();
}

/// Padding past the default inspection cap (256 KiB).
const PADDING: usize = 300 * 1024;

/// `POST path` of `body` as JSON, with a `content-length` (the body is then not held: it is larger than the cap) or
/// chunked in 64 KiB chunks (held, as its length is unknown). Envoy may answer before reading it all.
fn post_large(envoy: &Envoy, path: &str, id: &str, body: &[u8], chunked: bool) -> HttpResponse {
    let framing =
        if chunked { "transfer-encoding: chunked".to_string() } else { format!("content-length: {}", body.len()) };
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nhost: portcullis.test\r\ncontent-type: application/json\r\n{framing}\r\n\
         x-request-id: {id}\r\nconnection: close\r\n\r\n"
    )
    .into_bytes();
    if chunked {
        for chunk in body.chunks(64 * 1024) {
            request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            request.extend_from_slice(chunk);
            request.extend_from_slice(b"\r\n");
        }
        request.extend_from_slice(b"0\r\n\r\n");
    } else {
        request.extend_from_slice(body);
    }
    send_raw(envoy.addr(), &request).unwrap_or_else(|e| panic!("{id}: no answer: {e}"))
}

/// A JSON document with a card after `padding` bytes of padding.
fn padded_card(padding: usize) -> Vec<u8> {
    format!(r#"{{"pad":"{}","payment":{{"number":"{CARD}"}}}}"#, "x".repeat(padding)).into_bytes()
}

#[test]
fn a_card_past_the_cap_is_blocked_by_default() {
    let stack = stack_with(None);
    let envoy = &stack.envoy;
    let body = padded_card(PADDING);
    for chunked in [false, true] {
        let id = format!("past-cap-{chunked}");
        let path = format!("/orders-past-cap-{chunked}");
        let response = post_large(envoy, &path, &id, &body, chunked);
        assert_eq!(response.status, 422, "{id}: {}", response.text());
        let verdict = envoy.verdict(&id);
        assert_field(&verdict, "rule", Some("cards-in-body"));
        assert_field(&verdict, "inspection", Some("truncated"));
        assert_field(&verdict, "truncated", Some("request"));
        assert_field(&verdict, "detections", None);
        // Decided at the cap, answered before the rest went on: the upstream never got a whole request. A body
        // declared longer than the cap is not held, so its first bytes (at most the cap and one read) did reach it.
        assert_eq!(stack.upstream.requests_for(&path), 0, "{id} reached the upstream");
        let partial = stack.upstream.cut_short_for(&path);
        eprintln!("{id}: the upstream got {partial:?} of {} bytes", body.len());
        assert!(partial.iter().all(|p| p.len < body.len() as u64), "{id}: {partial:?}");
    }
    // Sent slowly, the part of a body declared longer than the cap that came before it has gone upstream by the time
    // the cap is passed; the rest never does, and the upstream request is reset.
    let head = format!(
        "POST /orders-slow HTTP/1.1\r\nhost: portcullis.test\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nx-request-id: past-cap-slow\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let (front, back) = body.split_at(100 * 1024);
    let first = [head.as_bytes(), front].concat();
    let response = send_in_parts(envoy.addr(), &[&first, back], Duration::from_millis(500)).expect("an answer");
    assert_eq!(response.status, 422, "{}", response.text());
    assert_field(&envoy.verdict("past-cap-slow"), "inspection", Some("truncated"));
    assert_eq!(stack.upstream.requests_for("/orders-slow"), 0);
    let partial = stack.upstream.cut_short_for("/orders-slow");
    eprintln!("past-cap-slow: the upstream got {partial:?} of {} bytes", body.len());
    assert!(partial.iter().all(|p| p.len <= 256 * 1024), "{partial:?}");

    // A body under the cap without a card passes as before.
    let clean = format!(r#"{{"pad":"{}"}}"#, "x".repeat(200 * 1024));
    let response = post_large(envoy, "/orders-under-cap", "under-cap", clean.as_bytes(), false);
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(stack.upstream.received_for("/orders-under-cap"), vec![digest(clean.as_bytes())]);
    envoy.assert_no_critical_wasm();
}

#[test]
fn on_uninspectable_pass_lets_a_body_past_the_cap_through_and_says_so() {
    let stack = stack_with(Some("pass"));
    let envoy = &stack.envoy;
    let body = padded_card(PADDING);
    for chunked in [false, true] {
        let id = format!("pass-cap-{chunked}");
        let path = format!("/orders-pass-cap-{chunked}");
        let response = post_large(envoy, &path, &id, &body, chunked);
        assert_eq!(response.status, 200, "{id}: {}", response.text());
        assert_eq!(stack.upstream.received_for(&path), vec![digest(&body)], "{id}: the upstream gets the body as sent");
        let verdict = envoy.verdict(&id);
        assert_field(&verdict, "action", Some("none"));
        assert_field(&verdict, "inspection", Some("truncated"));
        assert_field(&verdict, "truncated", Some("request"));
    }
    // What was found before the cap still counts.
    let early = [card_json().as_bytes(), " ".repeat(PADDING).as_bytes()].concat();
    let response = post_large(envoy, "/orders-early", "early-card", &early, false);
    assert_eq!(response.status, 422, "{}", response.text());
    assert_field(&envoy.verdict("early-card"), "detections", Some("cards-in:1"));
    envoy.assert_no_critical_wasm();
}

#[test]
fn a_response_past_the_cap_is_decided_by_on_uninspectable() {
    let stack = stack_with(None);
    let envoy = &stack.envoy;
    // Response rules only monitor (the response is on its way); this one says `on_uninspectable: block`, so a
    // response past the cap makes it match, and the client still gets the whole response.
    let body = padded_card(PADDING);
    stack.upstream.set_route("/export", portcullis_integration_tests::upstream::Route::json(body.clone()));
    let response = envoy.get("/export", &[("x-request-id", "export-0")]);
    assert_eq!(response.status, 200);
    assert_eq!(response.body, body);
    let verdict = envoy.verdict("export-0");
    assert_field(&verdict, "action", Some("monitor"));
    assert_field(&verdict, "rule", Some("cards-out-watched"));
    assert_field(&verdict, "inspection", Some("truncated"));
    assert_field(&verdict, "truncated", Some("response"));
    // A response under the cap with no card leaves no verdict.
    stack.upstream.set_route("/export-small", portcullis_integration_tests::upstream::Route::json(&b"{}"[..]));
    assert_eq!(envoy.get("/export-small", &[("x-request-id", "export-1")]).status, 200);
    assert!(envoy.verdict_for("export-1").is_none());
    envoy.assert_no_critical_wasm();
}

/// `len` bytes that are not text (a fixed xorshift sequence).
fn noise(len: usize) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 56) as u8
        })
        .collect()
}

/// `POST path` of `body` labelled `content_type` (and nothing else).
fn post_as(envoy: &Envoy, path: &str, id: &str, content_type: &str, body: &[u8]) -> HttpResponse {
    envoy.client_new_connection_each().request(
        "POST",
        path,
        &[("x-request-id", id), ("content-type", content_type)],
        body,
    )
}

#[test]
fn a_binary_label_does_not_hide_a_text_body() {
    let stack = stack_with(None);
    let envoy = &stack.envoy;
    let json = card_json();
    for (i, content_type) in ["application/octet-stream", "image/png", "application/grpc"].into_iter().enumerate() {
        let id = format!("label-{i}");
        let path = format!("/upload-label-{i}");
        let response = post_as(envoy, &path, &id, content_type, json.as_bytes());
        if content_type == "application/grpc" {
            // Envoy turns a local reply to a gRPC request into a gRPC error: HTTP 200 with a `grpc-status`.
            assert!(response.header("grpc-status").is_some_and(|s| s != "0"), "{content_type}: {:?}", response.headers);
        } else {
            assert_eq!(response.status, 422, "{content_type}: {}", response.text());
        }
        let verdict = envoy.verdict(&id);
        assert_field(&verdict, "rule", Some("cards-in-body"));
        assert_field(&verdict, "detections", Some("cards-in:1"));
        assert_eq!(stack.upstream.requests_for(&path), 0, "{content_type}: reached the upstream");
    }
    // A multipart part labelled binary is sniffed the same way.
    let multipart = format!(
        "--XyZ\r\nContent-Disposition: form-data; name=\"f\"; filename=\"order.bin\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n{json}\r\n--XyZ--\r\n"
    );
    let response =
        post_as(envoy, "/upload-part", "label-part", "multipart/form-data; boundary=XyZ", multipart.as_bytes());
    assert_eq!(response.status, 422, "{}", response.text());
    assert_eq!(stack.upstream.requests_for("/upload-part"), 0);
    // A base64 part (RFC 7578 forbids transfer encodings in form data) is not read: `inspection=encoded`, blocked.
    let base64 = "--XyZ\r\nContent-Disposition: form-data; name=\"card\"\r\nContent-Transfer-Encoding: base64\r\n\r\n\
                  NDExMSAxMTExIDExMTEgMTExMQ==\r\n--XyZ--\r\n";
    let response =
        post_as(envoy, "/upload-base64", "base64-part", "multipart/form-data; boundary=XyZ", base64.as_bytes());
    assert_eq!(response.status, 422, "{}", response.text());
    assert_field(&envoy.verdict("base64-part"), "inspection", Some("encoded"));
    assert_eq!(stack.upstream.requests_for("/upload-base64"), 0);
    // Real binary (a PNG header, then noise, a card's digits among it) is still not inspected: it passes as sent.
    let png = [&b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"[..], &noise(4096), json.as_bytes(), &noise(4096)].concat();
    for (i, content_type) in ["image/png", "application/octet-stream"].into_iter().enumerate() {
        let (id, path) = (format!("binary-{i}"), format!("/upload-binary-{i}"));
        let response = post_as(envoy, &path, &id, content_type, &png);
        assert_eq!(response.status, 200, "{content_type}: {}", response.text());
        assert_eq!(stack.upstream.received_for(&path), vec![digest(&png)], "{content_type}");
        assert!(envoy.verdict_for(&id).is_none(), "{content_type}: a binary body leaves no verdict");
    }
    envoy.assert_no_critical_wasm();
}
