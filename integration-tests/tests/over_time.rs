//! Over time, end to end through real Envoy with two workers: counters in shared data, lists filled by rules,
//! throttles, static lists, and shared data that stays within its budget under a flood of distinct tokens.
//!
//! Each test starts its own stack and publishes its policy; a `canary` rule (no token, no counter) tells when every
//! worker enforces it. Tokens are opaque `x-api-key` values made up by the tests.

use std::time::{Duration, Instant};

use portcullis_integration_tests::load::{get_request, get_requests, run, run_rotating};
use portcullis_integration_tests::upstream::Route;
use portcullis_integration_tests::{
    assert_field, compile, eventually, plugin_config, Envoy, EnvoyConfig, HttpResponse, Stack,
};

/// How long a pushed bundle may take to be enforced by every worker.
const ENFORCEMENT_TIMEOUT: Duration = Duration::from_secs(15);

/// The host the harness's client sends; endpoint templates start with it.
const HOST: &str = "portcullis.test";

/// A Luhn-valid test card, in the body of a sensitive endpoint's response.
const CARD: &str = "4111 1111 1111 1111";

/// Publishes `policy` on `stack` and waits until every worker enforces it (its `canary` rule answers 403).
fn publish(stack: &Stack, policy: &str, revision: u64) {
    let bundle = compile(policy, "demo", revision);
    stack.control_plane.push("demo", &bundle);
    stack.wait_for_status_on_every_worker("/canary", &[], 403, ENFORCEMENT_TIMEOUT);
}

/// `GET path` on a new connection with token `token` (if any) and `x-request-id: id`.
fn get(envoy: &Envoy, path: &str, token: Option<&str>, id: &str) -> HttpResponse {
    let mut headers = vec![("x-request-id", id)];
    if let Some(token) = token {
        headers.push(("x-api-key", token));
    }
    envoy.get(path, &headers)
}

/// A Portcullis metric (counter or gauge), 0 when not defined yet.
fn metric(envoy: &Envoy, name: &str) -> u64 {
    envoy.wasm_stat(&format!("portcullis.{name}")).unwrap_or(0)
}

/// `VmRSS` of process `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/<envoy>/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/<envoy>/status")
}

/// The issue's headline rules, with the windows and ttls shortened for the test.
const HEADLINE_POLICY: &str = r#"version: 1
tokens:
  sources:
    - { header: x-api-key }
detections:
  - id: cards-out
    classifier: credit_card
    in: response.body
lists:
  - id: sensitive-endpoints
    key: endpoint
    add_when: detected("cards-out")
    ttl: 1h
  - id: abusive-tokens
    key: token
    ttl: 1h
counters:
  - id: errors-by-token
    kind: distinct
    per: token.id
    of: endpoint
    when: response.code >= 400 && response.code < 500
    window: 6s
rules:
  - id: canary
    when: request.path == "/canary"
    action: block
  - id: list-abusive-tokens
    when: distinct_count("errors-by-token", token.id) > 20
    action: add_to_list
    list: abusive-tokens
    ttl: 6s
  - id: protect-sensitive
    when: endpoint in lists["sensitive-endpoints"] && token.id in lists["abusive-tokens"]
    action: block
    status: 403
"#;

/// The list ttl of `list-abusive-tokens` and the counter window in [`HEADLINE_POLICY`].
const HEADLINE_TTL: Duration = Duration::from_secs(6);

/// The headline: a token that probes 25 endpoints with 404s lands on `abusive-tokens`; its next request to an
/// endpoint on `sensitive-endpoints` is blocked with both memberships and the counter in the verdict; the same token
/// elsewhere, and another token on the sensitive endpoint, pass; after the ttl the token passes again.
#[test]
fn a_token_probing_for_errors_is_blocked_on_sensitive_endpoints_until_its_ttl_passes() {
    let stack = Stack::start("open");
    stack.upstream.set_route("/accounts/7", Route::json(format!(r#"{{"id":7,"card":"{CARD}"}}"#)));
    for route in ["/accounts/8", "/accounts/9", "/accounts/10"] {
        stack.upstream.set_route(route, Route::json(r#"{"id":8,"card":"on file"}"#));
    }
    // Letters only: numeric segments would fold into one `{id}` endpoint.
    let probes: Vec<String> = (0..25u8).map(|i| format!("/probe-{}", char::from(b'a' + i))).collect();
    for probe in &probes {
        stack.upstream.set_route(probe, Route::json(r#"{"error":"not found"}"#).with_status(404));
    }
    publish(&stack, HEADLINE_POLICY, 1);
    let envoy = &stack.envoy;

    // A well-behaved caller reads an account: its response carries a card, so the endpoint becomes sensitive.
    assert_eq!(get(envoy, "/accounts/7", Some("good-token"), "sensitive-1").status, 200);
    let v = envoy.verdict("sensitive-1");
    assert_field(&v, "lists+", Some("sensitive-endpoints"));
    let endpoint = format!("GET {HOST}/accounts/{{id}}");
    assert_field(&v, "endpoint", Some(&endpoint));

    // The abuser probes 25 endpoints, each answered 404 by the upstream (so nothing is blocked while probing).
    let started = Instant::now();
    for (i, probe) in probes.iter().enumerate() {
        let response = get(envoy, probe, Some("abuser-token"), &format!("probe-{i}"));
        assert_eq!(response.status, 404, "{probe}");
    }
    // The 22nd probe found 21 distinct errors before it: it listed the token, with the counter as evidence.
    let v = envoy.verdict("probe-21");
    assert_field(&v, "action", Some("add_to_list"));
    assert_field(&v, "rule", Some("list-abusive-tokens"));
    assert_field(&v, "lists+", Some("abusive-tokens"));
    assert_field(&v, "counters", Some("errors-by-token:21"));

    // Its next request to the sensitive endpoint (another account id, same template) is blocked.
    let response = get(envoy, "/accounts/8", Some("abuser-token"), "blocked-1");
    assert_eq!(response.status, 403, "{}", response.text());
    assert_eq!(response.json()["rule"], "protect-sensitive");
    let v = envoy.verdict("blocked-1");
    assert_field(&v, "action", Some("block"));
    assert_field(&v, "rule", Some("protect-sensitive"));
    assert_field(&v, "lists", Some("sensitive-endpoints,abusive-tokens"));
    assert_field(&v, "counters", Some("errors-by-token:25"));
    assert_field(&v, "endpoint", Some(&endpoint));
    let abuser_id = v.get("token").cloned().expect("the verdict names the token by its keyed hash");
    assert!(abuser_id.len() == 32 && abuser_id.bytes().all(|b| b.is_ascii_hexdigit()), "{abuser_id}");
    assert!(!envoy.log_text().contains("abuser-token"), "a raw token reached Envoy's log");
    assert!(
        started.elapsed() < HEADLINE_TTL,
        "probing took {:?}, longer than the {HEADLINE_TTL:?} window: the test cannot tell expiry from blocking",
        started.elapsed()
    );

    // The same token on an endpoint that is not sensitive passes (and is listed again, the counter still high).
    assert_eq!(get(envoy, "/health", Some("abuser-token"), "elsewhere-1").status, 200);
    assert_field(&envoy.verdict("elsewhere-1"), "action", Some("add_to_list"));
    // Another token on the sensitive endpoint passes: it is monitored by nothing, so it leaves no block.
    let response = get(envoy, "/accounts/9", Some("good-token"), "other-token-1");
    assert_eq!(response.status, 200, "{}", response.text());
    assert_ne!(envoy.verdict_for("other-token-1").and_then(|v| v.get("action").cloned()).as_deref(), Some("block"));

    // After the window and the ttl have passed, the token passes again.
    let last_listed = Instant::now();
    std::thread::sleep(HEADLINE_TTL + Duration::from_millis(500));
    let response = get(envoy, "/accounts/10", Some("abuser-token"), "after-ttl-1");
    assert_eq!(response.status, 200, "{} after {:?}", response.text(), last_listed.elapsed());
    assert_eq!(metric(envoy, "counter_failures"), 0);
    envoy.assert_no_critical_wasm();
}

/// Counts every request of every token, exactly: with a window far longer than the test, the sliding estimate is
/// the plain count.
const COUNTING_POLICY: &str = r#"version: 1
tokens:
  sources:
    - { header: x-api-key }
counters:
  - id: requests-per-token
    kind: requests
    per: token.id
    window: 30d
  - id: batched-per-token
    kind: requests
    per: token.id
    window: 30d
    batched: true
  - id: endpoints-per-token
    kind: distinct
    per: token.id
    of: endpoint
    window: 30d
    batched: true
lists:
  - { id: seen-tokens, key: token, ttl: 1h, batched: true }
rules:
  - id: canary
    when: request.path == "/canary"
    action: block
  - id: remember-token
    when: request.path == "/work" && !(token.id in lists["seen-tokens"])
    action: add_to_list
    list: seen-tokens
  - id: report-count
    when: >-
      request.path == "/count" && count("requests-per-token") > 0 && count("batched-per-token") > 0
      && distinct_count("endpoints-per-token") > 0 && token.id in lists["seen-tokens"]
    action: monitor
"#;

/// With two workers and parallel load on one token, N requests count N: every update is a compare-and-swap whose
/// retries are bounded and counted, and none gives up. A batched counter counts the same once the workers have
/// flushed (every 250 ms tick), with one shared-data write per worker and tick instead of one per request.
#[test]
fn two_workers_under_parallel_load_count_every_request_exactly() {
    const N: u64 = 4_000;
    let stack = Stack::start("open");
    publish(&stack, COUNTING_POLICY, 1);
    let envoy = &stack.envoy;
    let before = envoy.worker_connections();
    let request = get_request("/work", &[("host", HOST), ("x-api-key", "busy-token")]);
    let report = run(envoy.addr(), &request, 16, N);
    assert_eq!((report.ok, report.completed()), (N, N), "{report:?}");
    let after = envoy.worker_connections();
    assert!(
        before.iter().zip(&after).all(|(b, a)| a > b),
        "both workers must have taken connections: {before:?} -> {after:?}"
    );

    // Both workers flush their batched adds within a tick; two ticks later no worker holds a stale reading.
    std::thread::sleep(Duration::from_millis(750));
    // The next request reads its own count: N earlier requests plus itself. Two endpoints: /work and /count.
    assert_eq!(get(envoy, "/count", Some("busy-token"), "count-1").status, 200);
    let v = envoy.verdict("count-1");
    assert_field(&v, "action", Some("monitor"));
    let expected = format!("requests-per-token:{0},batched-per-token:{0},endpoints-per-token:2", N + 1);
    assert_field(&v, "counters", Some(&expected));
    assert_field(&v, "lists", Some("seen-tokens"));
    // A batched list is looked up once per key and tick by each worker: a handful of additions, not one per request.
    let additions = metric(envoy, "list_additions");
    assert!((1..=40).contains(&additions), "list_additions {additions}");
    // Stats are flushed on the filter's tick: three counters count every exchange; the batched ones write rarely.
    let exchanges = 3 * (N + 1);
    assert!(
        eventually(Duration::from_secs(5), || metric(envoy, "counter_updates") == exchanges),
        "counter_updates {} after {} requests",
        metric(envoy, "counter_updates"),
        N + 1
    );
    let (updates, writes, retries, failures) = (
        metric(envoy, "counter_updates"),
        metric(envoy, "counter_writes"),
        metric(envoy, "counter_cas_retries"),
        metric(envoy, "counter_failures"),
    );
    assert_eq!(failures, 0, "no update may give up");
    // Exact: one write per request. Batched: a few per tick and worker, plus one per new distinct item.
    assert!((N + 1..N + 1 + N / 4).contains(&writes), "counter_writes {writes} for {} requests", N + 1);
    eprintln!(
        "{N} requests over 16 connections and two workers: {updates} counted, {writes} writes, {retries} CAS retries \
         ({:.4} per write)",
        retries as f64 / writes as f64
    );
    envoy.assert_no_critical_wasm();
}

/// Throttles, failed logins counted when the response says so, token sharing across countries, static lists.
const ACTIONS_POLICY: &str = r#"version: 1
tokens:
  sources:
    - { header: x-api-key }
lists:
  - id: loopback
    key: source_ip
    entries: ["127.0.0.0/8", "::1"]
  - id: documentation-nets
    key: source_ip
    entries: ["192.0.2.0/24"]
  - id: internal-endpoints
    key: endpoint
    entries: ["GET portcullis.test/internal/reindex"]
counters:
  - id: requests-per-token
    kind: requests
    per: token.id
    window: 30d
  - id: failed-logins-by-ip
    kind: requests
    per: source.ip
    when: endpoint == "POST portcullis.test/login" && response.code == 401
    window: 30d
  - id: token-country
    kind: last_seen
    per: token.id
    of: request.headers["x-client-country"]
    window: 10m
rules:
  - id: canary
    when: request.path == "/canary"
    action: block
  - id: documentation-net
    when: source.ip in lists["documentation-nets"]
    action: block
  - id: internal-from-loopback
    when: endpoint in lists["internal-endpoints"] && source.ip in lists["loopback"]
    action: block
    status: 404
  - id: slow-down
    when: request.path == "/metered" && count("requests-per-token") > 3
    action: throttle
    retry_after: 7s
  - id: credential-stuffing
    when: endpoint == "POST portcullis.test/login" && count("failed-logins-by-ip") >= 3
    action: throttle
    retry_after: 5m
  - id: token-shared
    when: token.present && seen_elsewhere("token-country")
    action: monitor
"#;

/// `throttle` answers 429 with `Retry-After`; counters fed by the response act on later requests; `last_seen` tells
/// a token that moved; static lists match addresses by network and endpoints exactly.
#[test]
fn throttles_failed_logins_token_sharing_and_static_lists() {
    let stack = Stack::start("open");
    stack.upstream.set_route("/login", Route::json(r#"{"error":"bad credentials"}"#).with_status(401));
    publish(&stack, ACTIONS_POLICY, 1);
    let envoy = &stack.envoy;

    // Three metered requests pass; the fourth is throttled with the rule's Retry-After.
    for i in 0..3 {
        assert_eq!(get(envoy, "/metered", Some("metered-token"), &format!("metered-{i}")).status, 200);
    }
    let response = get(envoy, "/metered", Some("metered-token"), "metered-3");
    assert_eq!(response.status, 429, "{}", response.text());
    assert_eq!(response.header("retry-after"), Some("7"));
    assert_eq!(response.json()["rule"], "slow-down");
    let v = envoy.verdict("metered-3");
    assert_field(&v, "action", Some("throttle"));
    assert_field(&v, "status", Some("429"));
    assert_field(&v, "retry_after", Some("7"));
    assert_field(&v, "counters", Some("requests-per-token:4"));
    assert_eq!(metric(envoy, "requests_throttled"), 1);

    // Failed logins are counted when the upstream answers 401; the fourth attempt is throttled before it.
    let mut login = envoy.client_new_connection_each();
    for i in 0..3 {
        let response = login.request("POST", "/login", &[("x-request-id", &format!("login-{i}"))], b"user=a&pw=b");
        assert_eq!(response.status, 401, "login {i}");
    }
    let response = login.request("POST", "/login", &[("x-request-id", "login-3")], b"user=a&pw=c");
    assert_eq!(response.status, 429, "{}", response.text());
    assert_eq!(response.header("retry-after"), Some("300"));
    assert_field(&envoy.verdict("login-3"), "counters", Some("failed-logins-by-ip:3"));
    assert_eq!(stack.upstream.requests_for("/login"), 3, "the throttled login never reached the upstream");

    // A token seen from DE, then FR: the second request is flagged; back in FR it is not.
    let travel = |country: &str, id: &str| {
        envoy.get("/travel", &[("x-request-id", id), ("x-api-key", "travel-token"), ("x-client-country", country)])
    };
    assert_eq!(travel("DE", "travel-0").status, 200);
    assert_eq!(envoy.verdict_for("travel-0"), None, "a first sighting is not a move");
    assert_eq!(travel("FR", "travel-1").status, 200);
    let v = envoy.verdict("travel-1");
    assert_field(&v, "action", Some("monitor"));
    assert_field(&v, "rule", Some("token-shared"));
    assert_eq!(travel("FR", "travel-2").status, 200);
    assert_eq!(envoy.verdict_for("travel-2"), None, "same country again");

    // Static lists: the client (loopback) is in 127.0.0.0/8 but not in 192.0.2.0/24.
    let response = get(envoy, "/internal/reindex", None, "internal-1");
    assert_eq!(response.status, 404, "{}", response.text());
    let v = envoy.verdict("internal-1");
    assert_field(&v, "rule", Some("internal-from-loopback"));
    assert_field(&v, "lists", Some("internal-endpoints,loopback"));
    assert_eq!(get(envoy, "/internal/other", None, "internal-2").status, 200);
    envoy.assert_no_critical_wasm();
}

/// Failed logins per username, read from the JSON login body.
const LOGIN_POLICY: &str = r#"version: 1
counters:
  - id: failed-logins-by-user
    kind: requests
    per: request.body["username"]
    when: endpoint == "POST portcullis.test/login" && response.code == 401
    window: 30d
rules:
  - id: canary
    when: request.path == "/canary"
    action: block
  - id: user-stuffing
    when: endpoint == "POST portcullis.test/login" && count("failed-logins-by-user") >= 3
    action: throttle
    retry_after: 1m
"#;

/// Brute force against one account: its failed logins are counted by the username in the body (whatever address
/// they come from), and the fourth attempt is throttled before it reaches the upstream; another user is not.
#[test]
fn failed_logins_are_counted_per_username_from_the_login_body() {
    let stack = Stack::start("open");
    stack.upstream.set_route("/login", Route::json(r#"{"error":"bad credentials"}"#).with_status(401));
    publish(&stack, LOGIN_POLICY, 1);
    let envoy = &stack.envoy;
    let mut client = envoy.client_new_connection_each();
    let mut login = |user: &str, id: &str| {
        let body = format!(r#"{{"username":"{user}","password":"guess-{id}"}}"#);
        client.request("POST", "/login", &[("x-request-id", id), ("content-type", "application/json")], body.as_bytes())
    };
    for i in 0..3 {
        assert_eq!(login("alice", &format!("alice-{i}")).status, 401, "attempt {i} reaches the upstream");
    }
    let response = login("alice", "alice-3");
    assert_eq!(response.status, 429, "{}", response.text());
    assert_eq!(response.header("retry-after"), Some("60"));
    let v = envoy.verdict("alice-3");
    assert_field(&v, "rule", Some("user-stuffing"));
    assert_field(&v, "counters", Some("failed-logins-by-user:3"));
    assert_eq!(login("bob", "bob-0").status, 401, "another account is not throttled");
    assert_eq!(stack.upstream.requests_for("/login"), 4, "the throttled attempt never reached the upstream");
    assert!(!envoy.log_text().contains("guess-"), "a login body reached Envoy's log");
    envoy.assert_no_critical_wasm();
}

/// A counter with room for 1,024 keys and a list of 1,024 entries, flooded with far more distinct tokens.
const FLOOD_POLICY: &str = r#"version: 1
tokens:
  sources:
    - { header: x-api-key }
lists:
  - id: seen-tokens
    key: token
    ttl: 1h
    max_entries: 1024
counters:
  - id: requests-per-token
    kind: requests
    per: token.id
    window: 30d
    max_keys: 1024
rules:
  - id: canary
    when: request.path == "/canary"
    action: block
  - id: remember-token
    when: token.present && request.path == "/flood"
    action: add_to_list
    list: seen-tokens
  - id: report-count
    when: request.path == "/count" && count("requests-per-token") > 0
    action: monitor
"#;

/// The same with a counter a hundred times larger: more than the test's budget allows.
fn over_budget_policy() -> String {
    FLOOD_POLICY.replace("max_keys: 1024", "max_keys: 102400").replace("path == \"/canary\"", "path == \"/canary2\"")
}

/// The shared-data budget the flood test configures.
const FLOOD_BUDGET_BYTES: u64 = 1024 * 1024;

/// Distinct tokens in the flood, and how often the heavy hitter comes back.
const FLOOD_TOKENS: u64 = 40_000;
const HEAVY_EVERY: u64 = 20;

/// A flood of distinct random tokens keeps shared data within the structures' fixed budget, which is within the
/// configured `shared_data_budget_bytes`; the heavy hitter's count survives; a bundle needing more than the budget
/// is refused while the last good one stays.
#[test]
fn a_flood_of_distinct_tokens_stays_within_the_shared_data_budget() {
    let mut plugin = plugin_config("demo", "open");
    plugin["shared_data_budget_bytes"] = serde_json::json!(FLOOD_BUDGET_BYTES);
    let stack = Stack::start_with(EnvoyConfig::new(), plugin);
    publish(&stack, FLOOD_POLICY, 1);
    let envoy = &stack.envoy;
    let rss_before = rss_kib(envoy.pid());

    // Every 20th request is the heavy hitter; the rest are distinct tokens never seen again.
    let tokens: Vec<String> = (0..FLOOD_TOKENS)
        .map(|i| if i % HEAVY_EVERY == 0 { "heavy-hitter".to_owned() } else { format!("flood-{i:08x}-{}", i * 7919) })
        .collect();
    let requests = get_requests("/flood", &[("host", HOST)], "x-api-key", &tokens);
    let started = Instant::now();
    let report = run_rotating(envoy.addr(), &requests, 8, FLOOD_TOKENS);
    let took = started.elapsed();
    assert_eq!(report.ok, FLOOD_TOKENS, "{report:?}");
    let heavy_sent = FLOOD_TOKENS.div_ceil(HEAVY_EVERY);

    // The heavy hitter kept its count (lowest-count eviction only ever evicts one-off keys here).
    assert_eq!(get(envoy, "/count", Some("heavy-hitter"), "heavy-1").status, 200);
    let v = envoy.verdict("heavy-1");
    let counted: u64 = v
        .get("counters")
        .and_then(|c| c.strip_prefix("requests-per-token:"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {v:?}"));
    assert!(counted * 1000 >= (heavy_sent + 1) * 995, "heavy hitter counted {counted} of {} requests", heavy_sent + 1);

    // The sweep (one VM) measures what the lists and counters hold: never more than their fixed budget.
    let limit = 128 * (1 + 24 * 8) + 128 * (1 + 32 * 8);
    let mut measured = 0;
    let swept = eventually(Duration::from_secs(20), || {
        measured = metric(envoy, "shared_data_bytes");
        // Every bucket of both structures has been written by the flood.
        measured == limit
    });
    assert!(swept, "shared_data_bytes {measured}, expected the full fixed budget {limit} after the flood");
    assert_eq!(metric(envoy, "shared_data_bytes_limit"), limit);
    let rss_after = rss_kib(envoy.pid());
    eprintln!(
        "flood: {FLOOD_TOKENS} requests, {} distinct tokens, in {took:?}; shared data {measured} bytes (limit {limit}, \
         budget {FLOOD_BUDGET_BYTES}); Envoy VmRSS {rss_before} KiB -> {rss_after} KiB; heavy hitter {counted}/{}",
        FLOOD_TOKENS - heavy_sent + 1,
        heavy_sent + 1
    );
    assert!(limit <= FLOOD_BUDGET_BYTES);
    assert!(rss_after < rss_before + 64 * 1024, "Envoy grew from {rss_before} KiB to {rss_after} KiB");

    // A bundle whose structures need more than the budget is refused, logged and counted; the last good one stays.
    let bundle = compile(&over_budget_policy(), "demo", 2);
    stack.control_plane.push("demo", &bundle);
    assert!(
        eventually(ENFORCEMENT_TIMEOUT, || metric(envoy, "bundle_over_budget") >= 1),
        "the over-budget bundle was not refused"
    );
    assert!(
        eventually(Duration::from_secs(5), || envoy.log_text().contains("over shared_data_budget_bytes (1048576)")),
        "the refusal is logged with the budget"
    );
    assert_eq!(get(envoy, "/canary", None, "still-1").status, 403, "revision 1 still enforced");
    assert_eq!(get(envoy, "/canary2", None, "still-2").status, 200, "revision 2 never enforced");
    envoy.assert_no_critical_wasm();
}
