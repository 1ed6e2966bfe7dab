//! End to end: the real Envoy with the Portcullis filter, the `portcullis` control plane and an upstream.
//!
//! Each test starts its own stack on free ports, so they run in parallel. Waits are polls with generous
//! deadlines; the only sleeps pace traffic while time has to pass (poll intervals, an outage).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use portcullis_integration_tests::http::send_raw;
use portcullis_integration_tests::{compile, eventually, Envoy, Stack};

/// The demo policy: two blocking rules and one monitoring rule.
const DEMO_POLICY: &str = r#"version: 1
rules:
  - id: admin-needs-key
    when: request.path.startsWith("/admin") && !("x-admin-key" in request.headers)
    action: block
    status: 403
  - id: scanner-user-agent
    when: request.headers["user-agent"].matches("(?i)(sqlmap|nikto|nuclei)")
    action: block
  - id: watch-exports
    when: request.method == "GET" && request.path.matches("^/api/v[0-9]+/export")
    action: monitor
"#;

/// The rule only the second revision has.
const NEWLY_BLOCKED_RULE: &str = r#"  - id: newly-blocked
    when: request.path.startsWith("/newly-blocked")
    action: block
"#;

/// The plugin polls every 500 ms; "several poll intervals" in these tests is this long.
const SEVERAL_POLLS: Duration = Duration::from_secs(3);

/// How long a pushed bundle may take to be enforced (a poll, plus a backoff after failures, with margin).
const ENFORCEMENT_TIMEOUT: Duration = Duration::from_secs(15);

/// What Envoy's log says (through the plugin) when a bundle is refused.
const REFUSED_LOG: &str = "portcullis: refused bundle";

/// What Envoy's log says (through the plugin) when the control plane cannot be reached.
const FETCH_FAILED_LOG: &str = "fetch failed";

fn demo_v2() -> String {
    format!("{DEMO_POLICY}{NEWLY_BLOCKED_RULE}")
}

/// Pushes the demo policy at `revision` and waits until every worker blocks `/admin`.
fn push_demo_and_wait(stack: &Stack, revision: u64) {
    let bundle = compile(DEMO_POLICY, "demo", revision);
    stack.control_plane.push("demo", &bundle);
    stack.wait_for_status_on_every_worker("/admin", &[], 403, ENFORCEMENT_TIMEOUT);
}

/// Asserts the JSON body of a block: the message, the rule and the request id.
fn assert_block_body(response: &portcullis_integration_tests::HttpResponse, rule: &str, request_id: &str) {
    let body = response.json();
    assert_eq!(body["error"], "request blocked by policy", "{body}");
    assert_eq!(body["rule"], rule, "{body}");
    assert_eq!(body["request_id"], request_id, "{body}");
}

fn assert_block_verdict(envoy: &Envoy, request_id: &str, rule: &str, revision: u64) {
    let verdict = envoy.verdict_for(request_id).unwrap_or_else(|| panic!("no verdict logged for {request_id}"));
    assert_eq!(verdict.get("action").map(String::as_str), Some("block"), "{verdict:?}");
    assert_eq!(verdict.get("rule").map(String::as_str), Some(rule), "{verdict:?}");
    assert_eq!(verdict.get("status").map(String::as_str), Some("403"), "{verdict:?}");
    assert_eq!(verdict.get("revision"), Some(&revision.to_string()), "{verdict:?}");
    let digest = verdict.get("bundle").map(String::as_str).unwrap_or("");
    assert!(
        digest.len() == 8 && digest.bytes().all(|b| b.is_ascii_hexdigit()),
        "bundle should be 8 hex digits: {verdict:?}"
    );
}

#[test]
fn allowed_blocked_and_monitored_requests_with_access_log_verdict() {
    let stack = Stack::start("open");
    push_demo_and_wait(&stack, 7);
    let envoy = &stack.envoy;
    assert!(envoy.wasm_stat("portcullis.bundle_loaded").unwrap_or(0) > 0, "bundle_loaded stat");
    let upstream_before = stack.upstream.requests();

    let blocked = envoy.get("/admin/users", &[("x-request-id", "t1-admin")]);
    assert_eq!(blocked.status, 403, "{}", blocked.text());
    assert_block_body(&blocked, "admin-needs-key", "t1-admin");

    let keyed = envoy.get("/admin/users", &[("x-admin-key", "k"), ("x-request-id", "t1-admin-key")]);
    assert_eq!(keyed.status, 200, "{}", keyed.text());
    assert_eq!(keyed.json()["upstream"], "ok");

    let scanner = envoy.get("/search?q=1", &[("user-agent", "sqlmap/1.7.2#stable"), ("x-request-id", "t1-scanner")]);
    assert_eq!(scanner.status, 403, "{}", scanner.text());
    assert_block_body(&scanner, "scanner-user-agent", "t1-scanner");
    assert!(scanner.header("content-type").is_some_and(|v| v.contains("json")), "{:?}", scanner.headers);

    let export = envoy.get("/api/v1/export?format=csv", &[("x-request-id", "t1-export")]);
    assert_eq!(export.status, 200, "{}", export.text());
    assert_eq!(export.json()["upstream"], "ok");

    let plain = envoy.get("/", &[("x-request-id", "t1-plain"), ("user-agent", "curl/8.0")]);
    assert_eq!(plain.status, 200, "{}", plain.text());

    // The access log carries the verdict for matched requests only.
    let monitor = envoy.verdict_for("t1-export").expect("monitor verdict for the export");
    assert_eq!(monitor.get("action").map(String::as_str), Some("monitor"), "{monitor:?}");
    assert_eq!(monitor.get("rule").map(String::as_str), Some("watch-exports"), "{monitor:?}");
    let raw = envoy.wait_access_log_entry("t1-export")["portcullis"].as_str().unwrap_or("").to_string();
    assert!(raw.contains("action=monitor rule=watch-exports"), "{raw}");
    assert_block_verdict(envoy, "t1-admin", "admin-needs-key", 7);
    assert_block_verdict(envoy, "t1-scanner", "scanner-user-agent", 7);
    assert_eq!(envoy.verdict_for("t1-plain"), None);
    assert_eq!(envoy.verdict_for("t1-admin-key"), None);
    let blocked_entry = envoy.wait_access_log_entry("t1-admin");
    assert_eq!(blocked_entry["status"], 403);
    assert!(
        blocked_entry["upstream_host"].is_null() || blocked_entry["upstream_host"] == "-",
        "a blocked request has no upstream host: {blocked_entry}"
    );

    // Blocked requests never reached the upstream; the other three did.
    assert_eq!(stack.upstream.requests_for("/admin/users"), 1, "only the keyed /admin request");
    assert_eq!(stack.upstream.requests_for("/search?q=1"), 0);
    assert_eq!(stack.upstream.requests() - upstream_before, 3);
    assert!(envoy.wasm_stat("portcullis.requests_blocked").unwrap_or(0) >= 2);
    assert!(envoy.wasm_stat("portcullis.requests_monitored").unwrap_or(0) >= 1);
    envoy.assert_no_critical_wasm();
}

#[test]
fn new_bundle_pushed_during_traffic_is_enforced_by_both_workers() {
    let stack = Arc::new(Stack::start("open"));
    push_demo_and_wait(&stack, 1);
    let pid = stack.envoy.pid();
    assert_eq!(stack.envoy.get("/newly-blocked", &[]).status, 200, "not blocked by revision 1");

    // Background traffic over new connections while the bundle changes; bounded in time.
    let stop = Arc::new(AtomicBool::new(false));
    let problems = Arc::new(Mutex::new(Vec::<String>::new()));
    let background = {
        let (stack, stop, problems) = (Arc::clone(&stack), Arc::clone(&stop), Arc::clone(&problems));
        std::thread::spawn(move || {
            let mut client = stack.envoy.client_new_connection_each();
            let deadline = Instant::now() + Duration::from_secs(60);
            let mut sent = 0u64;
            while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                for (path, allowed) in [("/", &[200][..]), ("/admin", &[403]), ("/newly-blocked", &[200, 403])] {
                    match client.try_request("GET", path, &[], b"") {
                        Ok(r) if allowed.contains(&r.status) => {}
                        Ok(r) => problems.lock().unwrap().push(format!("{path}: {} {}", r.status, r.text())),
                        Err(e) => problems.lock().unwrap().push(format!("{path}: {e}")),
                    }
                    sent += 1;
                }
            }
            sent
        })
    };

    let v2 = compile(&demo_v2(), "demo", 2);
    stack.control_plane.push("demo", &v2);
    let pushed = Instant::now();
    stack.wait_for_status("/newly-blocked", &[], 403, Duration::from_secs(10));

    stop.store(true, Ordering::SeqCst);
    let sent = background.join().unwrap();
    assert!(sent > 0);
    let problems = problems.lock().unwrap().clone();
    assert!(problems.is_empty(), "background traffic saw {} problems: {problems:#?}", problems.len());

    // Every worker swaps on its own tick: within the 10 s, each of them blocks.
    let remaining = Duration::from_secs(10).saturating_sub(pushed.elapsed());
    stack.wait_for_status_on_every_worker("/newly-blocked", &[], 403, remaining.max(Duration::from_secs(1)));

    // A burst of blocked-only requests: both workers take some of them, and block all of them.
    let worker_cx = |w| stack.envoy.worker_stat(w, "downstream_cx_total");
    let before = (worker_cx(0), worker_cx(1));
    let upstream_before = stack.upstream.requests_for("/newly-blocked");
    let mut client = stack.envoy.client_new_connection_each();
    for i in 0..40 {
        let id = format!("t2-burst-{i}");
        let response = client.get("/newly-blocked", &[("x-request-id", &id)]);
        assert_eq!(response.status, 403, "burst request {i}: {}", response.text());
        assert_block_body(&response, "newly-blocked", &id);
    }
    let after = (worker_cx(0), worker_cx(1));
    assert!(
        after.0 > before.0 && after.1 > before.1,
        "both workers should have taken burst connections: worker_0 {before:?} -> {after:?}"
    );
    assert_eq!(stack.upstream.requests_for("/newly-blocked"), upstream_before);
    assert_block_verdict(&stack.envoy, "t2-burst-39", "newly-blocked", 2);

    // Same process throughout: the bundle changed without an Envoy restart.
    assert_eq!(stack.envoy.pid(), pid);
    assert!(stack.envoy.is_running());
    assert_eq!(stack.envoy.admin_get("/ready").status, 200);
    stack.envoy.assert_no_critical_wasm();
}

#[test]
fn control_plane_down_enforcement_continues() {
    let mut stack = Stack::start("open");
    push_demo_and_wait(&stack, 1);
    let failed_before = stack.envoy.wasm_stat("portcullis.fetch_failed").unwrap_or(0);

    stack.control_plane.stop();
    let outage_end = Instant::now() + SEVERAL_POLLS;
    let mut checked = 0;
    while Instant::now() < outage_end {
        assert_eq!(stack.envoy.get("/admin", &[]).status, 403, "enforcement lapsed during the outage");
        assert_eq!(stack.envoy.get("/", &[]).status, 200);
        checked += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(checked > 5);
    assert!(
        eventually(Duration::from_secs(5), || {
            stack.envoy.wasm_stat("portcullis.fetch_failed").unwrap_or(0) > failed_before
        }),
        "fetch_failed did not increase while the control plane was down"
    );
    assert!(
        eventually(Duration::from_secs(5), || !stack.envoy.log_lines_containing(FETCH_FAILED_LOG).is_empty()),
        "no `{FETCH_FAILED_LOG}` line in Envoy's log; portcullis lines:\n{}",
        stack.envoy.log_lines_containing("portcullis").join("\n")
    );
    stack.envoy.assert_no_critical_wasm();

    // Back on the same port: the filter reconnects by itself and picks up a new revision.
    stack.control_plane.start();
    for _ in 0..10 {
        assert_eq!(stack.envoy.get("/admin", &[]).status, 403);
    }
    let v2 = compile(&demo_v2(), "demo", 2);
    stack.control_plane.push("demo", &v2);
    stack.wait_for_status("/newly-blocked", &[], 403, ENFORCEMENT_TIMEOUT);
    assert_eq!(stack.envoy.get("/admin", &[]).status, 403);
    stack.envoy.assert_no_critical_wasm();
}

#[test]
fn corrupt_bundle_is_refused_previous_stays_active() {
    let stack = Stack::start("open");
    push_demo_and_wait(&stack, 1);

    // Revision 2 with its last payload byte flipped: the SHA-256 in its header no longer matches.
    let mut corrupt = std::fs::read(compile(&demo_v2(), "demo", 2)).unwrap();
    *corrupt.last_mut().unwrap() ^= 0x5a;
    let served = stack.control_plane.bundle_path("demo");
    assert!(served.is_file(), "the pushed bundle should be served from {}", served.display());
    // Written beside and renamed over: the server never reads a half-written file.
    let staging = served.with_extension("staging");
    std::fs::write(&staging, &corrupt).unwrap();
    std::fs::rename(&staging, &served).unwrap();

    assert!(
        eventually(ENFORCEMENT_TIMEOUT, || { stack.envoy.wasm_stat("portcullis.bundle_refused").unwrap_or(0) > 0 }),
        "bundle_refused never increased; portcullis log lines:\n{}",
        stack.envoy.log_lines_containing("portcullis").join("\n")
    );
    assert_eq!(stack.envoy.get("/admin", &[]).status, 403, "revision 1 still enforced");
    assert_eq!(stack.envoy.get("/newly-blocked", &[]).status, 200, "the corrupt revision's rule is not");

    // Many polls later: still the same, and the refusal was logged once, not once per poll.
    let until = Instant::now() + SEVERAL_POLLS;
    while Instant::now() < until {
        assert_eq!(stack.envoy.get("/admin", &[]).status, 403);
        assert_eq!(stack.envoy.get("/newly-blocked", &[]).status, 200);
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(eventually(Duration::from_secs(2), || !stack.envoy.log_lines_containing(REFUSED_LOG).is_empty()));
    let refusals = stack.envoy.log_lines_containing(REFUSED_LOG);
    assert_eq!(refusals.len(), 1, "the refusal should be logged exactly once:\n{}", refusals.join("\n"));
    assert!(refusals[0].contains("[warning]"), "logged at warn: {}", refusals[0]);
    stack.envoy.assert_no_critical_wasm();
}

#[test]
fn hostile_requests_are_answered_normally() {
    let stack = Stack::start("open");
    push_demo_and_wait(&stack, 1);
    let addr = stack.envoy.addr();
    let answer =
        |what: &str, request: &[u8]| send_raw(addr, request).unwrap_or_else(|e| panic!("{what}: no answer: {e}"));

    // Non-UTF-8 bytes (obs-text) reach the filter: Envoy accepts them, so they must be evaluated and passed.
    let r =
        answer("binary header", b"GET /bin HTTP/1.1\r\nhost: x\r\nx-bin: \xff\xfe\x80\r\nconnection: close\r\n\r\n");
    assert_eq!(r.status, 200, "binary header value: {}", r.text());
    let r = answer(
        "binary user-agent",
        b"GET /ua HTTP/1.1\r\nhost: x\r\nuser-agent: Mozilla\xc3\x28/5.0 \xff\r\nconnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200, "binary user-agent: {}", r.text());
    let r = answer(
        "binary admin key",
        b"GET /admin HTTP/1.1\r\nhost: x\r\nx-admin-key: \xff\xfe\r\nconnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200, "present (if binary) admin key: {}", r.text());
    let r = answer(
        "binary user-agent on a blocked path",
        b"GET /admin HTTP/1.1\r\nhost: x\r\nuser-agent: \xff\xfe\x80\r\nconnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 403, "binary user-agent, no admin key: {}", r.text());

    // Headers near Envoy's 60 KiB limit: a normal answer or Envoy's own 431, never a failure.
    let big = |kib: usize| {
        format!("GET /big HTTP/1.1\r\nhost: x\r\nx-big: {}\r\nconnection: close\r\n\r\n", "a".repeat(kib * 1024))
    };
    let r = answer("30 KiB header", big(30).as_bytes());
    assert_eq!(r.status, 200, "30 KiB header: {}", r.text());
    let r = answer("60 KiB header", big(60).as_bytes());
    assert!(r.status == 200 || r.status == 431, "60 KiB header: {} {}", r.status, r.text());

    // Odd methods: the codec may refuse some (400), nothing may fail.
    for method in ["PROPFIND", "FOO", "M-SEARCH", "get", "OPTIONS", "DELETE"] {
        let request = format!("{method} /odd HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
        let r = answer(method, request.as_bytes());
        assert!(r.status < 500, "{method}: {} {}", r.status, r.text());
    }
    let r = answer("odd method on /admin", b"PROPFIND /admin HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    assert_eq!(r.status, 403, "the rule does not depend on the method: {}", r.text());
    let r = answer("non-UTF-8 path", b"GET /caf\xe9 HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    assert!(r.status < 500, "non-UTF-8 path: {} {}", r.status, r.text());

    // Still healthy, and still enforcing on every worker (a dead VM would stop blocking).
    assert!(stack.envoy.is_running());
    assert_eq!(stack.envoy.admin_get("/ready").status, 200);
    let mut client = stack.envoy.client_new_connection_each();
    for _ in 0..20 {
        assert_eq!(client.get("/admin", &[]).status, 403);
        assert_eq!(client.get("/", &[]).status, 200);
    }
    stack.envoy.assert_no_critical_wasm();
}

#[test]
fn failure_mode_before_first_bundle() {
    // Both modes side by side; neither control plane has a bundle yet.
    let closed = std::thread::spawn(|| Stack::start("closed"));
    let open = Stack::start("open");
    let closed = closed.join().unwrap();

    // Open: traffic passes, even what the demo policy would block.
    for path in ["/", "/admin"] {
        let r = open.envoy.get(path, &[]);
        assert_eq!(r.status, 200, "open, {path}: {}", r.text());
        assert_eq!(r.json()["upstream"], "ok");
    }

    // Closed: every request is refused with a JSON error, and none reaches the upstream.
    for path in ["/", "/admin"] {
        let r = closed.envoy.get(path, &[]);
        assert_eq!(r.status, 503, "closed, {path}: {}", r.text());
        assert!(r.json()["error"].is_string(), "closed, {path}: {}", r.text());
    }
    assert_eq!(closed.upstream.requests(), 0);

    // Once a bundle arrives, closed mode serves normally.
    push_demo_and_wait(&closed, 1);
    assert_eq!(closed.envoy.get("/", &[]).status, 200);
    open.envoy.assert_no_critical_wasm();
    closed.envoy.assert_no_critical_wasm();
}
