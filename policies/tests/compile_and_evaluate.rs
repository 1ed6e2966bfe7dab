//! Policies compiled, loaded from bytes and evaluated: the whole path a rule takes from YAML to a verdict.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
#![cfg(feature = "compiler")]

use std::borrow::Cow;

use portcullis_policies::bundle::{self, BundleContent};
use portcullis_policies::compiler::{compile, compile_to_bytes, CompileOptions, COMPILER_VERSION};
use portcullis_policies::detect::{ListKey, Location};
use portcullis_policies::engine::{Request, TableRequest};
use portcullis_policies::program::{Node, Phase};
use portcullis_policies::token::{JwtFinding, TokenField, TokenIdentity, TokenSource};
use portcullis_policies::{Action, Attribute, Bundle, Verdict};
use sha2::{Digest, Sha256};

const DEMO: &str = include_str!("fixtures/golden/demo.yaml");
/// Classifiers, layered detections, an implicit detection, a list and rules of every phase.
const SENSITIVE: &str = include_str!("fixtures/policies/sensitive.yaml");

fn options(file_name: &str) -> CompileOptions {
    CompileOptions { policy_name: "demo".into(), revision: 1, file_name: file_name.into() }
}

fn demo_bytes() -> Vec<u8> {
    compile_to_bytes(DEMO, &options("demo.yaml")).unwrap()
}

fn demo() -> Bundle {
    Bundle::from_bytes(&demo_bytes()).unwrap()
}

/// Compiles a one-rule block policy with condition `when`.
fn single(when: &str) -> Bundle {
    let source =
        format!("version: 1\nrules:\n  - id: r\n    when: '{}'\n    action: block\n", when.replace('\'', "''"));
    Bundle::from_bytes(&compile_to_bytes(&source, &options("single.yaml")).unwrap()).unwrap()
}

/// The id of the rule that decided, if any.
fn decided_by(bundle: &Bundle, verdict: &Verdict) -> Option<String> {
    verdict.rule.and_then(|i| bundle.rule_id(i)).map(str::to_owned)
}

#[test]
fn admin_without_key_is_blocked_with_its_status() {
    let bundle = demo();
    let v = bundle.evaluate(&TableRequest::new("GET", "/admin/users"));
    assert_eq!(v.action, Some(Action::Block));
    assert_eq!(v.status, 403);
    assert_eq!(decided_by(&bundle, &v).as_deref(), Some("admin-needs-key"));
}

#[test]
fn admin_with_key_is_allowed() {
    let bundle = demo();
    let v = bundle.evaluate(&TableRequest::new("GET", "/admin/users").header("X-Admin-Key", "secret"));
    assert_eq!(v.action, None);
    assert_eq!(v.matched, 0);
}

#[test]
fn scanner_user_agent_is_blocked_with_the_default_status() {
    let bundle = demo();
    let v = bundle.evaluate(&TableRequest::new("GET", "/").header("user-agent", "SQLMap/1.7"));
    assert_eq!(v.action, Some(Action::Block));
    assert_eq!(v.status, 403);
    assert_eq!(decided_by(&bundle, &v).as_deref(), Some("scanner-user-agent"));
    let v = bundle.evaluate(&TableRequest::new("GET", "/").header("user-agent", "Mozilla/5.0 (nuclei)"));
    assert!(v.is_block());
    let v = bundle.evaluate(&TableRequest::new("GET", "/").header("user-agent", "curl/8.5"));
    assert_eq!(v.action, None);
}

#[test]
fn exports_are_monitored_and_posts_pass() {
    let bundle = demo();
    let v = bundle.evaluate(&TableRequest::new("GET", "/api/v2/export?x=1").header("user-agent", "curl/8.5"));
    assert_eq!(v.action, Some(Action::Monitor));
    assert_eq!(decided_by(&bundle, &v).as_deref(), Some("watch-exports"));
    assert_eq!(v.matched, 1);
    let v = bundle.evaluate(&TableRequest::new("POST", "/api/v2/export?x=1").header("user-agent", "curl/8.5"));
    assert_eq!(v, Verdict::ALLOW);
}

#[test]
fn absent_user_agent_is_an_error_not_a_match() {
    // The scanner rule reads a header the request does not carry: CEL says error, Portcullis says no match.
    let v = demo().evaluate(&TableRequest::new("GET", "/"));
    assert_eq!((v.action, v.errors), (None, 1));
}

#[test]
fn non_utf8_header_bytes_never_panic() {
    let bundle = demo();
    let nasty: Vec<Vec<u8>> = vec![
        vec![0xff, 0xfe, 0xfd],
        b"sqlmap\xff".to_vec(),
        b"\xc3\x28 nikto".to_vec(),
        vec![0x80; 4096],
        (0..=255u8).collect(),
    ];
    for value in nasty {
        let request =
            TableRequest::new("GET", "/admin").header("user-agent", value.clone()).header("x-admin-key", value.clone());
        let _ = bundle.evaluate(&request);
    }
    let v = bundle.evaluate(&TableRequest::new("GET", "/").header("user-agent", b"\xffSQLMAP\xfe".to_vec()));
    assert!(v.is_block(), "ASCII inside invalid UTF-8 still matches");
}

#[test]
fn cel_error_semantics() {
    let absent = single(r#"request.headers["x"] == "y""#);
    let v = absent.evaluate(&TableRequest::new("GET", "/"));
    assert_eq!((v.action, v.errors), (None, 1));
    let v = absent.evaluate(&TableRequest::new("GET", "/").header("X", "y"));
    assert_eq!((v.action, v.errors), (Some(Action::Block), 0));

    let absorbed = single(r#"false && request.headers["absent"] == "a""#);
    assert_eq!(absorbed.evaluate(&TableRequest::new("GET", "/")), Verdict::ALLOW);
    let absorbed = single(r#"request.headers["absent"] == "a" || true"#);
    assert!(absorbed.evaluate(&TableRequest::new("GET", "/")).is_block());
    let negated = single(r#"!(request.headers["absent"] == "a")"#);
    assert_eq!(negated.evaluate(&TableRequest::new("GET", "/")).errors, 1);
}

#[test]
fn language_features_evaluate() {
    let get = TableRequest::new("GET", "/a/b.php?q=1").header("Content-Length", "12").header("accept", "x");
    let cases: &[(&str, bool)] = &[
        (r#"request.url_path.endsWith(".php")"#, true),
        (r#"request.query == "q=1""#, true),
        (r#"request.path.contains("/b")"#, true),
        (r#"request.path.contains("")"#, true),
        ("size(request.path) == 12 && request.path.size() >= 12", true),
        ("size(request.path) < 12", false),
        (r#""accept" in request.headers && !("cookie" in request.headers)"#, true),
        // Strings compare bytewise, as CEL does: "12" > "100".
        (r#"request.headers["content-length"] > "100""#, true),
        ("request.headers.accept == 'x'", true),
        (r#"request.method != "GET" || request.path <= "/b""#, true),
        (r#"request.path.matches("(?i)B\\.PHP")"#, true),
        (r#"request.path.matches(r"^/a/b\.php$")"#, false),
        (r#"matches(request.path, "q=[0-9]")"#, true),
        ("-1 < 0 && 0x10 == 16 && true != false", true),
        (r#""\u00e9" == "é" && 'a' < "b" && """x""" == "x""#, true),
    ];
    for &(when, expected) in cases {
        assert_eq!(single(when).evaluate(&get).is_block(), expected, "{when}");
    }
}

#[test]
fn identical_patterns_share_a_dfa() {
    let source = r#"version: 1
rules:
  - id: a
    when: request.path.matches("x+")
    action: monitor
  - id: b
    when: request.query.matches("x+") || request.path.matches("y")
    action: monitor
"#;
    let content = compile(source, &options("p.yaml")).unwrap();
    assert_eq!(content.dfas.len(), 2);
}

#[test]
fn bundle_round_trips_with_its_metadata() {
    let bytes = demo_bytes();
    let bundle = Bundle::from_bytes(&bytes).unwrap();
    assert_eq!(bundle.policy_name(), "demo");
    assert_eq!(bundle.revision(), 1);
    assert_eq!(bundle.digest(), &bundle::peek_digest(&bytes).unwrap());
    let ids: Vec<&str> = bundle.rules().iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["admin-needs-key", "scanner-user-agent", "watch-exports"]);
    let content: BundleContent = compile(DEMO, &options("demo.yaml")).unwrap();
    assert_eq!(content.compiler_version, COMPILER_VERSION);
    assert_eq!(bundle::encode(&content).unwrap(), bytes);
    assert_eq!(content.rules[2].status, 403);
    assert_eq!(content.rules[0].condition[0], portcullis_policies::program::Node::Attribute(Attribute::RequestPath));
}

#[test]
fn compile_is_deterministic() {
    assert_eq!(demo_bytes(), demo_bytes());
}

#[test]
fn every_truncation_is_refused() {
    let bytes = demo_bytes();
    for len in 0..bytes.len() {
        assert!(Bundle::from_bytes(&bytes[..len]).is_err(), "prefix of {len} bytes loaded");
    }
}

#[test]
fn every_flipped_byte_is_refused() {
    let bytes = demo_bytes();
    for i in 0..bytes.len() {
        let mut corrupt = bytes.clone();
        corrupt[i] ^= 0x5a;
        assert!(Bundle::from_bytes(&corrupt).is_err(), "byte {i} flipped and loaded");
    }
}

/// A deterministic pseudo-random sequence (xorshift64*), so fuzz failures replay.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(n.max(1)).unwrap()).unwrap()
    }
}

/// `payload` with one to four bytes changed, cut short one round in eight, in a valid header with a matching
/// digest.
fn mutated(payload: &[u8], rng: &mut XorShift, round: usize) -> Vec<u8> {
    let mut p = payload.to_vec();
    for _ in 0..1 + rng.below(4) {
        let i = rng.below(p.len());
        p[i] = rng.next() as u8;
    }
    if round % 8 == 3 {
        p.truncate(rng.below(p.len()));
    }
    with_header(&p)
}

/// Wraps `payload` in a valid header with a matching digest, so the fuzz reaches postcard and validation.
fn with_header(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(42 + payload.len());
    out.extend_from_slice(&bundle::MAGIC);
    out.extend_from_slice(&bundle::FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&Sha256::digest(payload));
    out.extend_from_slice(payload);
    out
}

#[test]
fn random_bytes_never_panic() {
    let real = demo_bytes();
    let payload = &real[42..];
    let requests = [
        TableRequest::new("GET", "/admin").header("user-agent", "sqlmap"),
        TableRequest::new("POST", "/api/v1/export").header("x-admin-key", b"\xff".to_vec()),
    ];
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut loaded = 0;
    for round in 0..20_000 {
        let input = match round % 4 {
            // Pure noise, sometimes behind the magic.
            0 => (0..rng.below(256)).map(|_| rng.next() as u8).collect::<Vec<u8>>(),
            1 => {
                let mut v = bundle::MAGIC.to_vec();
                v.extend((0..rng.below(512)).map(|_| rng.next() as u8));
                v
            }
            // A real payload with a few bytes changed or cut, re-hashed so it gets past the digest.
            _ => mutated(payload, &mut rng, round),
        };
        if let Ok(bundle) = Bundle::from_bytes(&input) {
            loaded += 1;
            for request in &requests {
                let _ = bundle.evaluate(request);
            }
        }
    }
    // Some mutations (e.g. of a string literal) are valid bundles: the evaluator ran on those too.
    assert!(loaded > 0);
}

#[test]
fn golden_bundle_is_up_to_date() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/golden");
    let source = std::fs::read_to_string(format!("{dir}/demo.yaml")).unwrap();
    let bytes = compile_to_bytes(&source, &options("demo.yaml")).unwrap();
    let golden = format!("{dir}/demo.bundle");
    if std::env::var("UPDATE_GOLDEN").as_deref() == Ok("1") {
        std::fs::write(&golden, &bytes).unwrap();
        return;
    }
    let committed = std::fs::read(&golden).expect("missing golden bundle: run with UPDATE_GOLDEN=1");
    assert!(committed == bytes, "tests/fixtures/golden/demo.bundle is stale: rerun this test with UPDATE_GOLDEN=1");
    let bundle = Bundle::from_bytes(&committed).unwrap();
    assert!(bundle.evaluate(&TableRequest::new("GET", "/admin")).is_block());
}

/// Compiles `rounds` random mutations of `source`: the compiler never panics, every error has a position inside
/// the file, and every bundle it builds loads. Returns how many mutations compiled.
fn fuzz_compiler(source: &str, seed: u64, rounds: usize) -> usize {
    const ALPHABET: &[char] = &[
        '"', '\'', '\\', '(', ')', '[', ']', '!', '&', '|', '=', '<', '>', '.', ':', '-', ' ', '\n', '\t', '#', '{',
        'é', '0', 'x', 'r',
    ];
    let source: Vec<char> = source.chars().collect();
    let mut rng = XorShift(seed);
    let mut compiled = 0;
    for _ in 0..rounds {
        let mut mutated = source.clone();
        for _ in 0..1 + rng.below(3) {
            let i = rng.below(mutated.len());
            let c = ALPHABET[rng.below(ALPHABET.len())];
            match rng.below(3) {
                0 => mutated[i] = c,
                1 => mutated.insert(i, c),
                _ => {
                    mutated.remove(i);
                }
            }
        }
        let text: String = mutated.into_iter().collect();
        match compile_to_bytes(&text, &options("m.yaml")) {
            Ok(bytes) => {
                compiled += 1;
                Bundle::from_bytes(&bytes).expect("a compiled bundle always loads");
            }
            Err(e) => {
                assert!(e.line >= 1 && e.column >= 1, "{e}");
                assert!(e.line <= text.lines().count() + 1, "{e}");
            }
        }
    }
    compiled
}

#[test]
fn mutated_policies_never_panic_the_compiler() {
    assert!(fuzz_compiler(DEMO, 0x0123_4567_89ab_cdef, 3_000) > 0);
}

#[test]
fn mutated_sensitive_policies_never_panic_the_compiler() {
    // Fewer rounds: each compile that gets through builds three scan-set DFAs.
    assert!(fuzz_compiler(SENSITIVE, 0xfeed_face_cafe_beef, 300) > 0);
}

/// Counters, static and dynamic lists, every over-time action.
const OVER_TIME: &str = include_str!("../../envoy-examples/policies/over-time.yaml");

#[test]
fn mutated_over_time_policies_never_panic_the_compiler() {
    // Few rounds: the policy has a card detection, so each compile that gets through builds a scan-set DFA.
    assert!(fuzz_compiler(OVER_TIME, 0x0b5e_55ed_c0ff_ee00, 200) > 0);
}

#[test]
fn mutated_over_time_bundles_never_panic_the_loader_or_the_engine() {
    let real = compile_to_bytes(OVER_TIME, &options("over-time.yaml")).unwrap();
    let payload = &real[42..];
    let request = TableRequest::new("POST", "/login").header("x-api-key", "t").header("x-client-country", "DE");
    let mut rng = XorShift(0x7157_0000_0000_0005);
    let mut loaded = 0;
    for round in 0..3_000 {
        if let Ok(bundle) = Bundle::from_bytes(&mutated(payload, &mut rng, round)) {
            loaded += 1;
            let _ = bundle.evaluate(&request);
            for counter in 0..bundle.counters().len() {
                let _ = bundle.counter_event(u16::try_from(counter).unwrap(), &request);
            }
        }
    }
    assert!(loaded > 0);
}

#[test]
fn mutated_token_policies_never_panic_the_compiler() {
    // Every bundle the compiler accepts loads: the JWT keys it let through are keys the verifier can use.
    assert!(fuzz_compiler(TOKENS, 0x5eed_70ce_c0de_0001, 2_000) > 0);
}

/// A request with what inspection found and what the lists hold, as the filter would supply them.
struct Exchange {
    request: TableRequest,
    /// Findings per detection index.
    counts: Vec<(u16, u32)>,
    /// Live entries per list index.
    entries: Vec<(u16, Vec<u8>)>,
}

impl Exchange {
    fn new(method: &str, path: &str) -> Exchange {
        let mut request = TableRequest::new(method, path);
        let endpoint = format!("{method} api.example{path}");
        request.attributes.push((Attribute::Endpoint, endpoint.into_bytes()));
        Exchange { request, counts: Vec::new(), entries: Vec::new() }
    }

    fn found(mut self, detection: u16, count: u32) -> Exchange {
        self.counts.push((detection, count));
        self
    }

    fn listed(mut self, list: u16, key: &str) -> Exchange {
        self.entries.push((list, key.as_bytes().to_vec()));
        self
    }
}

impl Request for Exchange {
    fn attribute(&self, attribute: Attribute) -> Option<Cow<'_, [u8]>> {
        Request::attribute(&self.request, attribute)
    }

    fn header(&self, name: &[u8]) -> Option<Cow<'_, [u8]>> {
        Request::header(&self.request, name)
    }

    fn detection_count(&self, detection: u16) -> u32 {
        self.counts.iter().find(|(d, _)| *d == detection).map_or(0, |&(_, n)| n)
    }

    fn in_list(&self, list: u16, key: &[u8]) -> Option<bool> {
        Some(self.entries.iter().any(|(l, k)| *l == list && k == key))
    }
}

// The tests below compile detections, so they need `scan_set::build_scan_set`: while it is a stub they fail with
// "scan sets are not implemented yet".

fn sensitive() -> (BundleContent, Bundle) {
    let content = compile(SENSITIVE, &options("sensitive.yaml")).unwrap();
    let bundle = Bundle::from_bytes(&compile_to_bytes(SENSITIVE, &options("sensitive.yaml")).unwrap()).unwrap();
    (content, bundle)
}

/// The index of detection `id`.
fn detection(bundle: &Bundle, id: &str) -> u16 {
    let index = bundle.detections().iter().position(|d| d.id == id).unwrap();
    u16::try_from(index).unwrap()
}

#[test]
fn sensitive_policy_compiles_to_tables_and_phases() {
    let (content, bundle) = sensitive();
    let ids: Vec<&str> = content.detections.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, ["cards-out", "expiry-out", "staff-in", "credit_card@request.query"]);
    assert_eq!(content.detections[1].requires, Some(0));
    assert_eq!(content.detections[3].location, Location::RequestQuery);
    let classifiers: Vec<&str> = content.classifiers.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(classifiers, ["credit_card", "card_expiry", "employee-id"]);
    assert_eq!(content.classifiers[2].max_len, 10);
    assert_eq!(content.classifiers[2].context, ["employee", "staff"]);
    for location in Location::ALL {
        let (set, _) = bundle.scan_set(location).unwrap();
        let expected: &[u16] = match location {
            Location::RequestQuery => &[0],
            Location::RequestBody => &[2],
            Location::ResponseBody => &[0, 1],
        };
        let mut classifiers = set.patterns.clone();
        classifiers.dedup();
        assert_eq!(classifiers, expected, "{}", location.name());
    }
    let phases: Vec<(&str, Phase)> = bundle.rules().iter().map(|r| (r.id.as_str(), r.phase)).collect();
    assert_eq!(
        phases,
        [
            ("cards-in-query", Phase::RequestHeaders),
            ("watch-sensitive", Phase::RequestHeaders),
            ("staff-ids-uploaded", Phase::RequestBody),
            ("card-data-leaving", Phase::Response),
        ]
    );
    let list = &bundle.lists()[0];
    assert_eq!((list.key, list.ttl_seconds, list.max_entries), (ListKey::Endpoint, 86_400, 10_000));
    assert_eq!(list.add_when, [Node::Detected(0)]);
    assert_eq!(bundle.inspection().max_body_bytes, 256 * 1024);
}

#[test]
fn detected_rules_fire_only_when_their_detection_found_something() {
    let (_, bundle) = sensitive();
    let query = detection(&bundle, "credit_card@request.query");
    let quiet = Exchange::new("GET", "/search?q=4111");
    assert_eq!(bundle.evaluate(&quiet), Verdict::ALLOW);

    let card = Exchange::new("GET", "/search?q=4111").found(query, 1);
    let v = bundle.evaluate_phase(Phase::RequestHeaders, &card);
    assert!(v.is_block());
    assert_eq!(decided_by(&bundle, &v).as_deref(), Some("cards-in-query"));
    let zero = Exchange::new("GET", "/search").found(query, 0);
    assert_eq!(bundle.evaluate_phase(Phase::RequestHeaders, &zero), Verdict::ALLOW);

    let staff = detection(&bundle, "staff-in");
    let upload = Exchange::new("POST", "/hr/upload").found(staff, 3);
    assert_eq!(bundle.evaluate_phase(Phase::RequestHeaders, &upload), Verdict::ALLOW);
    let v = bundle.evaluate_phase(Phase::RequestBody, &upload);
    assert_eq!(decided_by(&bundle, &v).as_deref(), Some("staff-ids-uploaded"));
    assert!(v.is_block());

    // Both layers are needed for the response rule; it can only monitor.
    let cards = Exchange::new("GET", "/orders/1").found(0, 2);
    assert_eq!(bundle.evaluate_phase(Phase::Response, &cards), Verdict::ALLOW);
    let both = Exchange::new("GET", "/orders/1").found(0, 2).found(1, 1);
    let v = bundle.evaluate_phase(Phase::Response, &both);
    assert_eq!(v.action, Some(Action::Monitor));
    assert_eq!(decided_by(&bundle, &v).as_deref(), Some("card-data-leaving"));
}

#[test]
fn response_findings_add_the_endpoint_to_the_list() {
    let (_, bundle) = sensitive();
    assert!(bundle.lists_to_add(&Exchange::new("GET", "/orders/1")).is_empty());
    assert_eq!(bundle.lists_to_add(&Exchange::new("GET", "/orders/1").found(0, 1)), [0]);

    let later = Exchange::new("GET", "/orders/1").listed(0, "GET api.example/orders/1");
    let v = bundle.evaluate_phase(Phase::RequestHeaders, &later);
    assert_eq!(v.action, Some(Action::Monitor));
    assert_eq!(decided_by(&bundle, &v).as_deref(), Some("watch-sensitive"));
    let other = Exchange::new("GET", "/orders/2").listed(0, "GET api.example/orders/1");
    assert_eq!(bundle.evaluate_phase(Phase::RequestHeaders, &other), Verdict::ALLOW);
}

// Lists alone need no scan set: these run whatever the state of the scanner.

const LISTS_ONLY: &str = r#"version: 1
lists:
  - id: exporters
    key: source_ip
    add_when: request.method == "GET" && request.path.startsWith("/export")
    ttl: 1h30m
  - id: admin-endpoints
    key: endpoint
    ttl: 7d
    max_entries: 64
rules:
  - id: exporter-on-admin
    when: endpoint in lists["admin-endpoints"] && "10.0.0.7" in lists["exporters"]
    action: block
    status: 429
  - id: watch-admin
    when: endpoint in lists["admin-endpoints"]
    action: monitor
"#;

#[test]
fn lists_compile_and_evaluate_through_in_list() {
    let content = compile(LISTS_ONLY, &options("lists.yaml")).unwrap();
    assert!(content.detections.is_empty() && content.classifiers.is_empty());
    assert_eq!(content.scan_sets, [None, None, None]);
    assert_eq!((content.lists[0].key, content.lists[0].ttl_seconds), (ListKey::SourceIp, 5_400));
    assert_eq!((content.lists[1].ttl_seconds, content.lists[1].max_entries), (604_800, 64));
    assert!(content.lists[1].add_when.is_empty());
    assert!(content.rules.iter().all(|r| r.phase == Phase::RequestHeaders));
    let bundle = Bundle::from_bytes(&compile_to_bytes(LISTS_ONLY, &options("lists.yaml")).unwrap()).unwrap();

    let admin = "GET api.example/admin";
    let v = bundle.evaluate(&Exchange::new("GET", "/admin").listed(1, admin));
    assert_eq!((v.action, decided_by(&bundle, &v).as_deref()), (Some(Action::Monitor), Some("watch-admin")));
    let v = bundle.evaluate(&Exchange::new("GET", "/admin").listed(1, admin).listed(0, "10.0.0.7"));
    assert_eq!((v.action, v.status), (Some(Action::Block), 429));
    assert_eq!(bundle.evaluate(&Exchange::new("GET", "/admin")), Verdict::ALLOW);
    // A failed lookup is an error: the rule does not match.
    let v = bundle.evaluate(&TableRequest::new("GET", "/admin"));
    assert_eq!((v.action, v.errors), (None, 2));

    assert_eq!(bundle.lists_to_add(&Exchange::new("GET", "/export/all")), [0]);
    assert!(bundle.lists_to_add(&Exchange::new("POST", "/export/all")).is_empty());
}

// Tokens: the engine reads what the filter's token analysis found through `Request`; here a table stands in for it.

/// Token sources, identity, JWT checks, and rules on findings, claims and a token list.
const TOKENS: &str = include_str!("fixtures/policies/tokens.yaml");

/// A request with a token (or none): its identity, kind, claims, header fields and JWT findings.
#[derive(Default)]
struct TokenExchange {
    path: &'static str,
    /// `None`: the request carries no token.
    id: Option<&'static str>,
    claims: Vec<(&'static str, &'static str)>,
    header: Vec<(&'static str, &'static str)>,
    findings: Vec<JwtFinding>,
    /// Live entries of the token list.
    listed: Vec<&'static str>,
}

impl TokenExchange {
    fn jwt(path: &'static str, claims: &[(&'static str, &'static str)], findings: &[JwtFinding]) -> TokenExchange {
        TokenExchange {
            path,
            id: Some("5f2c"),
            claims: claims.to_vec(),
            header: vec![("alg", "ES256"), ("kid", "k1")],
            findings: findings.to_vec(),
            listed: Vec::new(),
        }
    }
}

impl Request for TokenExchange {
    fn attribute(&self, attribute: Attribute) -> Option<Cow<'_, [u8]>> {
        match attribute {
            Attribute::RequestPath => Some(Cow::Borrowed(self.path.as_bytes())),
            _ => None,
        }
    }

    fn header(&self, _: &[u8]) -> Option<Cow<'_, [u8]>> {
        None
    }

    fn in_list(&self, list: u16, key: &[u8]) -> Option<bool> {
        assert_eq!(list, 0);
        Some(self.listed.iter().any(|k| k.as_bytes() == key))
    }

    fn token_present(&self) -> bool {
        self.id.is_some()
    }

    fn token_field(&self, field: TokenField) -> Option<Cow<'_, [u8]>> {
        let id = self.id?;
        Some(Cow::Borrowed(match field {
            TokenField::Id => id.as_bytes(),
            TokenField::Kind => b"jwt",
        }))
    }

    fn token_claim(&self, name: &str) -> Option<Cow<'_, [u8]>> {
        let (_, value) = self.claims.iter().find(|(n, _)| *n == name)?;
        Some(Cow::Borrowed(value.as_bytes()))
    }

    fn token_header(&self, name: &str) -> Option<Cow<'_, [u8]>> {
        let (_, value) = self.header.iter().find(|(n, _)| *n == name)?;
        Some(Cow::Borrowed(value.as_bytes()))
    }

    fn jwt_finding(&self, finding: JwtFinding) -> bool {
        self.findings.contains(&finding)
    }
}

fn tokens() -> (BundleContent, Bundle) {
    let content = compile(TOKENS, &options("tokens.yaml")).unwrap();
    let bundle = Bundle::from_bytes(&compile_to_bytes(TOKENS, &options("tokens.yaml")).unwrap()).unwrap();
    (content, bundle)
}

#[test]
fn token_section_compiles_to_the_token_policy() {
    let (content, bundle) = tokens();
    let policy = content.tokens.as_ref().unwrap();
    assert_eq!(bundle.tokens(), Some(policy));
    assert_eq!(
        policy.sources,
        [
            TokenSource::Header { name: "authorization".into(), scheme: Some("Bearer".into()) },
            TokenSource::Header { name: "x-api-key".into(), scheme: None },
            TokenSource::Cookie { name: "session".into() },
            TokenSource::Query { name: "api_key".into() },
        ]
    );
    assert_eq!(policy.identity, TokenIdentity::Claims(vec!["iss".into(), "sub".into()]));
    assert_eq!(policy.hash_key, Some((0..16).collect::<Vec<u8>>()));
    let jwt = policy.jwt.as_ref().unwrap();
    assert_eq!(jwt.allowed_algs, ["ES256", "RS256"]);
    assert_eq!(jwt.issuers, ["https://auth.example.com"]);
    assert_eq!(jwt.audiences, ["orders-api"]);
    assert_eq!((jwt.max_lifetime_seconds, jwt.clock_skew_seconds, jwt.require_exp), (Some(86_400), 60, true));
    // The JWKS travels as JSON, members as written.
    let jwks: serde_json::Value = serde_json::from_str(&jwt.jwks).unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(
        keys[0],
        serde_json::json!({
            "kty": "EC",
            "crv": "P-256",
            "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
            "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
            "kid": "k1",
            "alg": "ES256",
            "use": "sig"
        })
    );
    assert_eq!((keys[1]["kty"].as_str(), keys[1]["e"].as_str()), (Some("RSA"), Some("AQAB")));

    assert_eq!(content.lists[0].key, ListKey::Token);
    assert_eq!(
        content.lists[0].add_when,
        [Node::JwtFinding(JwtFinding::BadSignature), Node::JwtFinding(JwtFinding::WeakSecret), Node::Or(0, 1)]
    );
    assert_eq!(content.rules[1].condition, [Node::TokenField(TokenField::Id), Node::InList { list: 0, key: 0 }]);
    assert!(content.rules.iter().all(|r| r.phase == Phase::RequestHeaders));
}

#[test]
fn forged_tokens_are_refused_with_401_only_when_a_finding_says_so() {
    let (_, bundle) = tokens();
    let alice = [("sub", "alice"), ("iss", "https://auth.example.com")];
    let clean = TokenExchange::jwt("/orders/1", &alice, &[]);
    let v = bundle.evaluate(&clean);
    assert!(!v.is_block());

    for finding in [JwtFinding::AlgNone, JwtFinding::BadSignature, JwtFinding::KeyConfusion] {
        let forged = TokenExchange::jwt("/orders/1", &alice, &[finding]);
        let v = bundle.evaluate_phase(Phase::RequestHeaders, &forged);
        assert_eq!((v.action, v.status), (Some(Action::Block), 401), "{}", finding.name());
        assert_eq!(decided_by(&bundle, &v).as_deref(), Some("forged-token"));
    }
    // Findings the rule does not name do not block.
    let expired = TokenExchange::jwt("/orders/1", &alice, &[JwtFinding::Expired, JwtFinding::MissingExp]);
    assert!(!bundle.evaluate(&expired).is_block());

    assert_eq!(bundle.lists_to_add(&TokenExchange::jwt("/", &alice, &[JwtFinding::BadSignature])), [0]);
    assert!(bundle.lists_to_add(&clean).is_empty());
    let mut listed = TokenExchange::jwt("/", &alice, &[]);
    listed.listed.push("5f2c");
    let v = bundle.evaluate(&listed);
    assert_eq!((v.action, v.status), (Some(Action::Block), 429));
    assert_eq!(decided_by(&bundle, &v).as_deref(), Some("abusive-token"));
}

#[test]
fn claims_header_fields_and_presence_evaluate() {
    let (_, bundle) = tokens();
    let v = bundle.evaluate(&TokenExchange::jwt("/admin", &[("sub", "alice")], &[]));
    assert_eq!(
        (v.action, decided_by(&bundle, &v).as_deref(), v.errors),
        (Some(Action::Monitor), Some("alice-on-admin"), 0)
    );
    let v = bundle.evaluate(&TokenExchange::jwt("/admin", &[("sub", "bob")], &[]));
    assert_eq!((v.action, v.errors), (None, 0));

    // An absent claim is an error: the rule does not match, and the verdict counts it.
    let v = bundle.evaluate(&TokenExchange::jwt("/admin", &[("iss", "x")], &[]));
    assert_eq!((v.action, v.errors), (None, 1));

    // No token: `token.present` is false, and every rule reading the token is an error, never a match.
    let anonymous = TokenExchange { path: "/orders/7", ..TokenExchange::default() };
    let v = bundle.evaluate(&anonymous);
    assert_eq!((v.action, v.status), (Some(Action::Block), 401));
    assert_eq!(decided_by(&bundle, &v).as_deref(), Some("orders-need-a-token"));
    let v = bundle.evaluate(&TokenExchange { path: "/", ..TokenExchange::default() });
    assert_eq!((v.action, v.errors), (None, 2), "token.id and token.claims are errors without a token");
}
