//! Sensitive data, end to end: card numbers found in bodies and query strings by the built-in `credit_card`
//! classifier, blocks before the upstream, endpoints listed for a TTL from what their responses carried, and
//! bodies far past the inspection cap passing untouched through bounded memory.
//!
//! Each test starts its own stack (two workers) and publishes [`POLICY`] (or a variant). A `canary` rule that
//! needs no classifier tells when every worker enforces the bundle, so a failure of the feature under test is
//! reported as such rather than as a bundle that never arrived.
//!
//! Binary bodies are not inspected (a body labelled binary whose first bytes are text is); gzip, deflate and br
//! bodies are decoded and inspected (see `binary_bodies_are_skipped_compressed_ones_decoded`, and `bypass.rs` for
//! encodings that cannot be decoded). A body past the cap is `inspection=truncated`, which blocking rules block by
//! default; the 50 MiB test lets it pass with `on_uninspectable: pass` (see `bypass.rs` for the default).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use portcullis_integration_tests::body::{digest, fill_generated, generated_digest};
use portcullis_integration_tests::http::{send_in_parts, stream_request};
use portcullis_integration_tests::upstream::Route;
use portcullis_integration_tests::{assert_field, compile, eventually, Envoy, HttpResponse, Stack, Verdict};

/// The policy of the issue, plus a `canary` rule to tell when the bundle is enforced.
const POLICY: &str = r#"version: 1
inspection:
  max_body_bytes: 262144
detections:
  - id: cards-out
    classifier: credit_card
    in: response.body
  - id: cards-in
    classifier: credit_card
    in: request.body
lists:
  - id: sensitive-endpoints
    key: endpoint
    add_when: detected("cards-out")
    ttl: 3s
rules:
  - id: canary
    when: request.path == "/canary"
    action: block
  - id: cards-in-query
    when: detected("credit_card", "request.query")
    action: block
  - id: cards-in-body
    when: detected("cards-in")
    action: block
    status: 422
  - id: watch-sensitive
    when: endpoint in lists["sensitive-endpoints"]
    action: monitor
"#;

/// Makes every POST leave a verdict line, so that a body that matched nothing still shows its truncation.
const WATCH_POSTS_RULE: &str = r#"  - id: watch-posts
    when: request.method == "POST"
    action: monitor
"#;

/// The revision every test publishes.
const REVISION: u64 = 3;

/// The list TTL in [`POLICY`].
const LIST_TTL: Duration = Duration::from_secs(3);

/// The inspection cap in [`POLICY`].
const MAX_BODY_BYTES: u64 = 262_144;

/// How long a pushed bundle may take to be enforced by every worker (a poll, plus a backoff, with margin).
const ENFORCEMENT_TIMEOUT: Duration = Duration::from_secs(15);

/// The host the harness's client sends; endpoint templates start with it.
const HOST: &str = "portcullis.test";

/// A Visa test number, formatted as people type it.
const CARD_SPACED: &str = "4111 1111 1111 1111";

/// Another valid Visa test number (Luhn-valid), unformatted.
const CARD_PLAIN: &str = "4539578763621486";

/// Publishes `policy` at [`REVISION`] on a fresh stack and waits until every worker enforces it.
fn stack_with(policy: &str) -> Stack {
    let stack = Stack::start("open");
    let bundle = compile(policy, "demo", REVISION);
    stack.control_plane.push("demo", &bundle);
    stack.wait_for_status_on_every_worker("/canary", &[], 403, ENFORCEMENT_TIMEOUT);
    stack
}

/// `GET path` on a new connection, with `x-request-id: id`.
fn get(envoy: &Envoy, path: &str, id: &str) -> HttpResponse {
    envoy.get(path, &[("x-request-id", id)])
}

/// `POST path` on a new connection with `content_type`, `body` and `x-request-id: id`.
fn post(envoy: &Envoy, path: &str, id: &str, content_type: &str, body: &[u8]) -> HttpResponse {
    envoy.client_new_connection_each().request(
        "POST",
        path,
        &[("x-request-id", id), ("content-type", content_type)],
        body,
    )
}

/// Asserts that `id` left no verdict (nothing matched, nothing detected, no list changed).
fn assert_no_verdict(envoy: &Envoy, id: &str, why: &str) {
    let entry = envoy.wait_access_log_entry(id);
    assert_eq!(
        portcullis_integration_tests::verdict_of(&entry),
        None,
        "{why}: {id} should leave no verdict, access log entry: {entry}"
    );
}

fn assert_from_this_bundle(verdict: &Verdict) {
    assert_field(verdict, "revision", Some(&REVISION.to_string()));
    let digest = verdict.get("bundle").map(String::as_str).unwrap_or("");
    assert!(
        digest.len() == 8 && digest.bytes().all(|b| b.is_ascii_hexdigit()),
        "bundle should be 8 hex digits: {verdict:?}"
    );
}

/// A wasm-defined counter, 0 when the filter has not defined it yet.
fn counter(envoy: &Envoy, name: &str) -> u64 {
    envoy.wasm_stat(&format!("portcullis.{name}")).unwrap_or(0)
}

/// The Portcullis counters these tests watch, for failure messages.
fn counters(envoy: &Envoy) -> String {
    [
        "exchanges_with_detections",
        "bodies_truncated",
        "list_additions",
        "list_contention",
        "requests_blocked",
        "requests_monitored",
    ]
    .iter()
    .map(|name| format!("{name}={}", counter(envoy, name)))
    .collect::<Vec<_>>()
    .join(" ")
}

/// Asserts a blocked answer: `status`, the JSON error naming `rule` and the request id, and the block verdict.
fn assert_blocked(envoy: &Envoy, response: &HttpResponse, id: &str, rule: &str, status: u16) -> Verdict {
    assert_eq!(response.status, status, "{id}: {}", response.text());
    let body = response.json();
    assert_eq!(body["error"], "request blocked by policy", "{id}: {body}");
    assert_eq!(body["rule"], rule, "{id}: {body}");
    assert_eq!(body["request_id"], id, "{id}: {body}");
    let verdict = envoy.verdict(id);
    assert_field(&verdict, "action", Some("block"));
    assert_field(&verdict, "rule", Some(rule));
    assert_field(&verdict, "status", Some(&status.to_string()));
    assert_from_this_bundle(&verdict);
    verdict
}

/// A JSON document with one card number, `card`.
fn card_json(card: &str) -> String {
    format!(r#"{{"user":8812,"cards":[{{"brand":"visa","number":"{card}","expiry":"12/29","holder":"A. Lee"}}]}}"#)
}

/// A JSON document about cards, without a card number in it.
const NO_CARD_JSON: &str = r#"{"user":9999,"cards":[{"brand":"visa","last4":"1111","expiry":"12/29"}]}"#;

/// Whether `digits` passes the Luhn check.
fn luhn_valid(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            let d = u32::from(d - b'0');
            if i % 2 == 1 {
                let doubled = d * 2;
                if doubled > 9 {
                    doubled - 9
                } else {
                    doubled
                }
            } else {
                d
            }
        })
        .sum();
    sum % 10 == 0
}

/// `count` 16-digit numbers with card prefixes (Visa 4, Mastercard 51-55) whose check digit is wrong, from a fixed
/// seed: everything about them looks like a card except the Luhn check.
fn luhn_invalid_numbers(count: usize) -> Vec<String> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..count)
        .map(|i| {
            let mut digits: Vec<u8> = if i % 2 == 0 { vec![b'4'] } else { vec![b'5', b'1' + (next() % 5) as u8] };
            while digits.len() < 15 {
                digits.push(b'0' + (next() % 10) as u8);
            }
            let check = (0..10u8).find(|c| luhn_valid(&[&digits[..], &[b'0' + c]].concat())).unwrap_or(0);
            // Any other check digit fails Luhn.
            digits.push(b'0' + (check + 1 + (next() % 9) as u8) % 10);
            assert!(!luhn_valid(&digits));
            String::from_utf8(digits).unwrap()
        })
        .collect()
}

/// `VmRSS` or `VmHWM` (peak RSS) of process `pid`, in KiB.
fn memory_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/<envoy>/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// CRC-32 (IEEE), as gzip's trailer wants it.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// A valid gzip member holding `data` in one *stored* (uncompressed) deflate block: any gunzip restores `data`,
/// and the card number is still readable in the raw bytes, so only `content-encoding` says not to inspect it.
fn gzip_stored(data: &[u8]) -> Vec<u8> {
    let len = u16::try_from(data.len()).expect("one stored block holds at most 65535 bytes");
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    out.push(1); // BFINAL=1, BTYPE=00 (stored)
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&(!len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

#[test]
fn card_in_response_lists_the_endpoint_then_later_requests_are_monitored_until_ttl() {
    let stack = stack_with(POLICY);
    let envoy = &stack.envoy;
    // Only user 8812's cards come back with a number; user 9999's never do.
    stack.upstream.set_route("/users/8812/cards", Route::json(card_json(CARD_SPACED)));
    stack.upstream.set_route("/users/9999/cards", Route::json(NO_CARD_JSON));
    stack.upstream.set_route("/users/8812/profile", Route::json(r#"{"user":8812,"name":"A. Lee"}"#));
    let cards_endpoint = format!("GET {HOST}/users/{{id}}/cards");

    // The exchange whose response carries a card: detected, and the endpoint listed. Not monitored itself: the
    // list was empty when its request was decided.
    let listed_at = Instant::now();
    let first = get(envoy, "/users/8812/cards", "t1-first");
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(first.text(), card_json(CARD_SPACED), "the response passes untouched");
    let v = envoy.verdict("t1-first");
    assert_field(&v, "action", Some("none"));
    assert_field(&v, "rule", Some("-"));
    assert_field(&v, "detections", Some("cards-out:1"));
    assert_field(&v, "lists+", Some("sensitive-endpoints"));
    assert_field(&v, "endpoint", Some(&cards_endpoint));
    assert_field(&v, "truncated", None);
    assert_from_this_bundle(&v);
    assert!(
        counter(envoy, "list_additions") >= 1 && counter(envoy, "exchanges_with_detections") >= 1,
        "counters after the first exchange: {}",
        counters(envoy)
    );

    // Later requests to the same template, on new connections until both workers have taken some: the list is
    // shared by every worker VM. The query string and the kind of id do not change the template.
    let mut monitored = Vec::new();
    let mut workers = BTreeSet::new();
    for i in 0..30 {
        if i >= 4 && workers.len() == envoy.concurrency() as usize {
            break;
        }
        let id = format!("t1-later-{i}");
        let (response, worker) = envoy.get_on_some_worker("/users/9999/cards", &[("x-request-id", &id)]);
        assert_eq!(response.status, 200, "{id}: {}", response.text());
        monitored.push(id);
        workers.extend(worker);
    }
    for (i, path) in [
        "/users/9999/cards?page=2&sort=desc",
        "/users/3f2a9c1d-4b7e-4c1a-9d2e-8f0a1b2c3d4e/cards",
        "/users/5f0c9a2be4b0c1d2e3f40516/cards",
        "/users/usr_8G2kQ9xZ/cards",
    ]
    .iter()
    .enumerate()
    {
        let id = format!("t1-variant-{i}");
        assert_eq!(get(envoy, path, &id).status, 200, "{path}");
        monitored.push(id);
    }
    let profile = get(envoy, "/users/8812/profile", "t1-profile");
    assert_eq!(profile.status, 200);
    let within_ttl = listed_at.elapsed();
    assert!(
        within_ttl < LIST_TTL,
        "the requests meant to run while the endpoint is listed took {within_ttl:?}, longer than the {LIST_TTL:?} \
         TTL: the machine is too slow for this test"
    );
    assert_eq!(
        workers.len(),
        envoy.concurrency() as usize,
        "both workers should have taken some of the later requests (saw workers {workers:?})"
    );
    for id in &monitored {
        let v = envoy.verdict(id);
        assert_field(&v, "action", Some("monitor"));
        assert_field(&v, "rule", Some("watch-sensitive"));
        assert_field(&v, "endpoint", Some(&cards_endpoint));
        assert_field(&v, "detections", None);
        assert_field(&v, "lists+", None);
        assert_from_this_bundle(&v);
    }
    assert_no_verdict(envoy, "t1-profile", "another endpoint of the same user is not listed");
    assert!(
        counter(envoy, "requests_monitored") >= monitored.len() as u64,
        "{} monitored requests: {}",
        monitored.len(),
        counters(envoy)
    );

    // After the TTL the entry is gone, and nothing re-adds it: user 9999's responses carry no card.
    let mut expired_after = None;
    let mut polls = 0;
    while listed_at.elapsed() < Duration::from_secs(10) {
        let id = format!("t1-poll-{polls}");
        polls += 1;
        let response = get(envoy, "/users/9999/cards", &id);
        let answered_after = listed_at.elapsed();
        assert_eq!(response.status, 200, "{id}: {}", response.text());
        match envoy.verdict_for(&id) {
            None => {
                expired_after = Some(answered_after);
                break;
            }
            Some(v) => {
                assert_field(&v, "action", Some("monitor"));
                assert_field(&v, "rule", Some("watch-sensitive"));
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let expired_after = expired_after.unwrap_or_else(|| {
        panic!(
            "/users/{{id}}/cards was still monitored 10 s after it was listed with a {LIST_TTL:?} TTL; {}",
            counters(envoy)
        )
    });
    // The entry was added after `listed_at`, so no request answered before `listed_at + TTL` may find it gone
    // (50 ms of slack for the two clocks' granularity).
    assert!(
        expired_after + Duration::from_millis(50) >= LIST_TTL,
        "the list entry was gone {expired_after:?} after the listing exchange began, before its {LIST_TTL:?} TTL"
    );
    for i in 0..4 {
        let id = format!("t1-expired-{i}");
        assert_eq!(get(envoy, "/users/9999/cards", &id).status, 200);
        assert_no_verdict(envoy, &id, "the entry expired and nothing re-added it");
    }

    // A card in a response lists the endpoint again.
    assert_eq!(get(envoy, "/users/8812/cards", "t1-relist").status, 200);
    let v = envoy.verdict("t1-relist");
    assert_field(&v, "detections", Some("cards-out:1"));
    assert_field(&v, "lists+", Some("sensitive-endpoints"));
    assert_eq!(get(envoy, "/users/9999/cards", "t1-relisted").status, 200);
    let v = envoy.verdict("t1-relisted");
    assert_field(&v, "action", Some("monitor"));
    assert_field(&v, "rule", Some("watch-sensitive"));
    assert!(counter(envoy, "list_additions") >= 2, "two exchanges listed the endpoint: {}", counters(envoy));
    envoy.assert_no_critical_wasm();
}

#[test]
fn luhn_invalid_numbers_do_nothing() {
    let stack = stack_with(POLICY);
    let envoy = &stack.envoy;
    let numbers = luhn_invalid_numbers(24);
    let mut formatted: Vec<String> = numbers
        .iter()
        .enumerate()
        .map(|(i, n)| match i % 3 {
            0 => n.clone(),
            1 => [&n[0..4], &n[4..8], &n[8..12], &n[12..16]].join(" "),
            _ => [&n[0..4], &n[4..8], &n[8..12], &n[12..16]].join("-"),
        })
        .collect();
    formatted.push("4111 1111 1111 1112".into());
    formatted.push("4111111111111112".into());
    let invalid = serde_json::json!({ "user": 1, "cards": formatted.iter().map(|n| serde_json::json!({"number": n})).collect::<Vec<_>>() })
        .to_string();
    stack.upstream.set_route("/users/1/cards", Route::json(invalid.clone()));
    stack.upstream.set_route("/users/2/cards", Route::json(card_json(CARD_PLAIN)));

    for i in 0..3 {
        let id = format!("t2-invalid-{i}");
        let response = get(envoy, "/users/1/cards", &id);
        assert_eq!(response.status, 200, "{}", response.text());
        assert_eq!(response.text(), invalid, "the response passes untouched");
        assert_no_verdict(envoy, &id, "numbers that fail the Luhn check are not cards");
    }
    assert_eq!(counter(envoy, "exchanges_with_detections"), 0, "{}", counters(envoy));
    assert_eq!(counter(envoy, "list_additions"), 0, "{}", counters(envoy));

    // The control, in the same stack: a valid number is found, so the invalid ones were refused, not missed.
    let response = get(envoy, "/users/2/cards", "t2-valid");
    assert_eq!(response.status, 200);
    let v = envoy.verdict("t2-valid");
    assert_field(&v, "detections", Some("cards-out:1"));
    assert_field(&v, "lists+", Some("sensitive-endpoints"));
    envoy.assert_no_critical_wasm();
}

#[test]
fn card_in_query_is_blocked() {
    let stack = stack_with(POLICY);
    let envoy = &stack.envoy;
    let upstream_before = stack.upstream.requests();
    for (i, query) in [
        "card=4111111111111111",
        "card=4111+1111+1111+1111",
        "card=4111%201111%201111%201111",
        &format!("amount=12&card={CARD_PLAIN}&currency=EUR"),
    ]
    .iter()
    .enumerate()
    {
        let path = format!("/pay?{query}");
        let id = format!("t3-card-{i}");
        let response = get(envoy, &path, &id);
        assert_blocked(envoy, &response, &id, "cards-in-query", 403);
        assert_eq!(stack.upstream.requests_for(&path), 0, "{path} reached the upstream");
    }
    assert_eq!(stack.upstream.requests(), upstream_before, "no blocked request reached the upstream");

    // What is not a card passes: a Luhn-invalid number, short numbers.
    for (i, path) in ["/pay?card=4111111111111112", "/pay?amount=100&order=12345678&cvc=123"].iter().enumerate() {
        let id = format!("t3-fine-{i}");
        let response = get(envoy, path, &id);
        assert_eq!(response.status, 200, "{path}: {}", response.text());
        assert_eq!(stack.upstream.requests_for(path), 1, "{path}");
        assert_no_verdict(envoy, &id, "not a card");
    }
    assert!(counter(envoy, "requests_blocked") >= 4, "{}", counters(envoy));
    envoy.assert_no_critical_wasm();
}

#[test]
fn card_in_request_body_is_blocked_before_the_upstream() {
    let stack = stack_with(POLICY);
    let envoy = &stack.envoy;
    let addr = envoy.addr();
    let upstream_before = stack.upstream.requests();

    // A card in a JSON body: 422, and the request (held with its headers) never reaches the upstream.
    let body = card_json(CARD_SPACED);
    let response = post(envoy, "/orders", "t4-json", "application/json", body.as_bytes());
    let v = assert_blocked(envoy, &response, "t4-json", "cards-in-body", 422);
    assert_field(&v, "detections", Some("cards-in:1"));
    assert_eq!(stack.upstream.requests(), upstream_before, "the blocked request reached the upstream");
    assert!(stack.upstream.received_for("/orders").is_empty());

    // No card: 200, and the upstream got exactly the body (just under the cap, all of it inspected).
    let mut clean = String::from(r#"{"order":20240611,"items":["#);
    let mut n = 0;
    while clean.len() < 200_000 {
        clean.push_str(&format!(
            r#"{{"sku":"SKU-{n:06}","qty":{},"price_cents":{},"placed":"2024-06-11T10:{:02}:00Z"}},"#,
            n % 7 + 1,
            n * 37 % 100_000,
            n % 60
        ));
        n += 1;
    }
    clean.push_str(r#"{"sku":"END","qty":0}]}"#);
    let response = post(envoy, "/orders-clean", "t4-clean", "application/json", clean.as_bytes());
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.json()["upstream"], "ok");
    assert_eq!(
        stack.upstream.received_for("/orders-clean"),
        vec![digest(clean.as_bytes())],
        "the upstream should receive the exact body"
    );
    assert_no_verdict(envoy, "t4-clean", "a body without a card");

    // A card split across two TCP writes, the split in the middle of its digits, with a pause between them.
    let (front, back) = body.split_at(body.find(CARD_SPACED).unwrap() + 7);
    let head = format!(
        "POST /orders-split HTTP/1.1\r\nhost: {HOST}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         x-request-id: t4-split\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let first = [head.as_bytes(), front.as_bytes()].concat();
    let response = send_in_parts(addr, &[&first, back.as_bytes()], Duration::from_millis(400))
        .unwrap_or_else(|e| panic!("split body: no answer: {e}"));
    let v = assert_blocked(envoy, &response, "t4-split", "cards-in-body", 422);
    assert_field(&v, "detections", Some("cards-in:1"));

    // The same with chunked transfer encoding, one chunk per write.
    let head = format!(
        "POST /orders-chunked HTTP/1.1\r\nhost: {HOST}\r\ncontent-type: application/json\r\n\
         transfer-encoding: chunked\r\nx-request-id: t4-chunked\r\nconnection: close\r\n\r\n"
    );
    let chunk = |s: &str| format!("{:x}\r\n{s}\r\n", s.len());
    let first = format!("{head}{}", chunk(front));
    let second = format!("{}0\r\n\r\n", chunk(back));
    let response = send_in_parts(addr, &[first.as_bytes(), second.as_bytes()], Duration::from_millis(400))
        .unwrap_or_else(|e| panic!("chunked body: no answer: {e}"));
    assert_blocked(envoy, &response, "t4-chunked", "cards-in-body", 422);

    // A form, percent-encoded as browsers send it.
    for (i, form) in
        ["name=A.+Lee&card=4111%201111%201111%201111&exp=12%2F29", "name=A.+Lee&card=4111+1111+1111+1111&exp=12%2F29"]
            .iter()
            .enumerate()
    {
        let id = format!("t4-form-{i}");
        let response = post(envoy, "/checkout", &id, "application/x-www-form-urlencoded", form.as_bytes());
        assert_blocked(envoy, &response, &id, "cards-in-body", 422);
    }

    for path in ["/orders", "/orders-split", "/orders-chunked", "/checkout"] {
        assert_eq!(stack.upstream.requests_for(path), 0, "{path} reached the upstream");
    }
    assert_eq!(stack.upstream.requests(), upstream_before + 1, "only the body without a card reached the upstream");
    assert!(counter(envoy, "requests_blocked") >= 5, "{}", counters(envoy));
    envoy.assert_no_critical_wasm();
}

#[test]
fn fifty_mib_bodies_pass_untouched_with_bounded_memory() {
    const BODY_LEN: u64 = 50 * 1024 * 1024;
    const REQUEST_SEED: u64 = 11;
    const RESPONSE_SEED: u64 = 12;
    // A card well past the cap: never inspected. The body is then uninspectable (`inspection=truncated`), which this
    // test's policy lets pass (`on_uninspectable: pass`) to see it stream through.
    const CARD_OFFSET: u64 = 4 * MAX_BODY_BYTES;
    // The body must never be buffered: holding either one would add 50 MiB. What is allowed is Envoy's own
    // buffers (1 MiB per connection and direction by default), the filter's inspection state (the cap, 256 KiB,
    // at most), allocator slack and V8 heap growth; 32 MiB leaves room for that and none for a body.
    const MEMORY_BOUND_KIB: u64 = 32 * 1024;

    let policy = format!("{POLICY}{WATCH_POSTS_RULE}")
        .replace("    status: 422\n", "    status: 422\n    on_uninspectable: pass\n");
    let stack = stack_with(&policy);
    let envoy = &stack.envoy;
    stack.upstream.set_route("/upload", Route::generated("text/plain", BODY_LEN, RESPONSE_SEED));

    let request_body = |offset: u64, buf: &mut [u8]| {
        fill_generated(REQUEST_SEED, offset, buf);
        // The card's bytes that fall in this chunk, if any.
        let card = CARD_PLAIN.as_bytes();
        let start = CARD_OFFSET.max(offset);
        let end = (CARD_OFFSET + card.len() as u64).min(offset + buf.len() as u64);
        if start < end {
            let (from, to) = ((start - offset) as usize, (end - offset) as usize);
            let card_from = (start - CARD_OFFSET) as usize;
            buf[from..to].copy_from_slice(&card[card_from..card_from + (to - from)]);
        }
    };
    let expected_request = {
        let mut checksum = portcullis_integration_tests::body::Checksum::new();
        let mut buf = vec![0; 1 << 20];
        let mut offset = 0;
        while offset < BODY_LEN {
            request_body(offset, &mut buf);
            checksum.update(&buf);
            offset += buf.len() as u64;
        }
        checksum.finish()
    };
    let expected_response = generated_digest(RESPONSE_SEED, BODY_LEN);

    // Warm both workers up with small bodies in both directions, then take the baseline.
    for i in 0..8 {
        let id = format!("t5-warm-{i}");
        assert_eq!(post(envoy, "/warm", &id, "text/plain", b"warm up").status, 200);
    }
    let pid = envoy.pid();
    let rss_before = memory_kib(pid, "VmRSS");
    let peak_before = memory_kib(pid, "VmHWM");
    let truncated_before = counter(envoy, "bodies_truncated");

    let head = format!(
        "POST /upload HTTP/1.1\r\nhost: {HOST}\r\ncontent-type: text/plain\r\ncontent-length: {BODY_LEN}\r\n\
         x-request-id: t5-big\r\nconnection: close\r\n\r\n"
    );
    let response =
        stream_request(envoy.addr(), head.as_bytes(), BODY_LEN, 64 * 1024, Duration::from_secs(30), request_body)
            .unwrap_or_else(|e| panic!("50 MiB exchange failed: {e}; {}", counters(envoy)));
    let rss_after = memory_kib(pid, "VmRSS");
    let peak_after = memory_kib(pid, "VmHWM");
    eprintln!(
        "50 MiB each way in {:?}; Envoy VmRSS {rss_before} KiB -> {rss_after} KiB, peak (VmHWM) {peak_before} KiB \
         -> {peak_after} KiB",
        response.elapsed
    );

    assert_eq!(response.status, 200, "{:?}", response.headers);
    assert_eq!(response.request_bytes_sent, BODY_LEN);
    assert_eq!(response.body, expected_response, "the client should receive the exact response bytes");
    assert_eq!(
        stack.upstream.received_for("/upload"),
        vec![expected_request],
        "the upstream should receive the exact request bytes"
    );

    let v = envoy.verdict("t5-big");
    assert_field(&v, "action", Some("monitor"));
    assert_field(&v, "rule", Some("watch-posts"));
    assert_field(&v, "truncated", Some("request,response"));
    assert_field(&v, "inspection", Some("truncated"));
    assert_field(&v, "detections", None);
    assert!(
        eventually(Duration::from_secs(5), || counter(envoy, "bodies_truncated") >= truncated_before + 2),
        "bodies_truncated should count both bodies: {truncated_before} before, now {}",
        counters(envoy)
    );

    assert!(
        rss_after < rss_before + MEMORY_BOUND_KIB,
        "Envoy's RSS grew from {rss_before} KiB to {rss_after} KiB over a 50 MiB exchange (bound: +{MEMORY_BOUND_KIB} KiB)"
    );
    // The high-water mark also catches a body buffered and freed before the end (unless start-up peaked higher).
    assert!(
        peak_after <= peak_before.max(rss_before + MEMORY_BOUND_KIB),
        "Envoy's peak RSS reached {peak_after} KiB from {rss_before} KiB (peak {peak_before} KiB before) during a \
         50 MiB exchange (bound: +{MEMORY_BOUND_KIB} KiB): a body was buffered"
    );
    envoy.assert_no_critical_wasm();
}

#[test]
fn binary_bodies_are_skipped_compressed_ones_decoded() {
    let stack = stack_with(POLICY);
    let envoy = &stack.envoy;
    let json = card_json(CARD_SPACED);
    let png = [&b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"[..], json.as_bytes(), b"\0\0IEND\xaeB`\x82"].concat();
    // Protobuf-like bytes (a field tag, a length) before the card.
    let proto = [&b"\x08\x96\x01\x12\x40"[..], json.as_bytes()].concat();
    let gzipped = gzip_stored(json.as_bytes());
    let skipped = [
        ("/files/card.png", Route::bytes("image/png", png.clone())),
        ("/files/card.bin", Route::bytes("application/octet-stream", proto.clone())),
    ];
    for (path, route) in &skipped {
        stack.upstream.set_route(path, route.clone());
    }
    stack.upstream.set_route("/files/cards.json", Route::json(json.clone()));
    // JSON labelled binary: its first bytes are text, so it is inspected.
    stack.upstream.set_route("/files/card.json.bin", Route::bytes("application/octet-stream", json.clone()));

    for (i, (path, route)) in skipped.iter().enumerate() {
        let id = format!("t6-response-{i}");
        let response = get(envoy, path, &id);
        assert_eq!(response.status, 200, "{path}: {}", response.text());
        let portcullis_integration_tests::upstream::RouteBody::Bytes(sent) = &route.body else { unreachable!() };
        assert_eq!(&response.body, sent, "{path}: the body passes untouched");
        assert_no_verdict(envoy, &id, &format!("{path} ({:?}) is not inspected", route.content_type));
    }

    // Request bodies the same way: not inspected, so not blocked, and forwarded as sent.
    for (i, (content_type, body)) in [("application/octet-stream", &proto), ("image/png", &png)].iter().enumerate() {
        let id = format!("t6-request-{i}");
        let path = format!("/upload-{i}");
        let headers = vec![("x-request-id", id.as_str()), ("content-type", *content_type)];
        let body = body.as_slice();
        let response = envoy.client_new_connection_each().request("POST", &path, &headers, body);
        assert_eq!(response.status, 200, "{content_type} request body should not be inspected: {}", response.text());
        assert_eq!(stack.upstream.received_for(&path), vec![digest(body)], "{path}");
        assert_no_verdict(envoy, &id, &format!("{content_type} request body"));
    }
    assert_eq!(counter(envoy, "exchanges_with_detections"), 0, "{}", counters(envoy));
    assert_eq!(counter(envoy, "list_additions"), 0, "{}", counters(envoy));

    // Text labelled binary is sniffed and inspected, both ways.
    let response = get(envoy, "/files/card.json.bin", "t6-sniffed-response");
    assert_eq!(response.status, 200);
    assert_field(&envoy.verdict("t6-sniffed-response"), "detections", Some("cards-out:1"));
    let headers = [("x-request-id", "t6-sniffed-request"), ("content-type", "application/octet-stream")];
    let response = envoy.client_new_connection_each().request("POST", "/upload-sniffed", &headers, json.as_bytes());
    assert_blocked(envoy, &response, "t6-sniffed-request", "cards-in-body", 422);

    // Compressed bodies are decoded: the gzip response lists its endpoint, the gzip request is blocked.
    stack.upstream.set_route("/files/cards.json.gz", Route::json(gzipped.clone()).with_content_encoding("gzip"));
    let response = get(envoy, "/files/cards.json.gz", "t6-gzip-response");
    assert_eq!(response.status, 200);
    assert_eq!(response.body, gzipped, "the body passes untouched");
    assert_field(&envoy.verdict("t6-gzip-response"), "detections", Some("cards-out:1"));
    let headers =
        [("x-request-id", "t6-gzip-request"), ("content-type", "application/json"), ("content-encoding", "gzip")];
    let response = envoy.client_new_connection_each().request("POST", "/upload-gz", &headers, &gzipped);
    assert_blocked(envoy, &response, "t6-gzip-request", "cards-in-body", 422);

    // The control: the same document as plain JSON is found.
    let response = get(envoy, "/files/cards.json", "t6-plain");
    assert_eq!(response.status, 200);
    let v = envoy.verdict("t6-plain");
    assert_field(&v, "detections", Some("cards-out:1"));
    assert_field(&v, "lists+", Some("sensitive-endpoints"));
    envoy.assert_no_critical_wasm();
}
