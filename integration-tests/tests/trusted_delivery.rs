//! Trusted delivery, end to end: bundles signed with keys from `portcullis keygen`, filters that trust some keys
//! and refuse everything else (unsigned, signed by another key, tampered with, replayed), an inline bundle for a
//! gateway that starts while the control plane is down, replicas of the control plane sharing one data directory,
//! fleet status, and long polling.
//!
//! Each test starts its own Envoys (two workers each), control plane(s) and upstream on free ports. Waits are polls
//! with generous deadlines; the only sleeps pace traffic or let time pass (a status report going stale).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use portcullis_integration_tests::signing::{self, replace_served_file, tamper_payload_fixing_digest, trusted_keys};
use portcullis_integration_tests::{
    compile, compile_signed, eventually, plugin_config, ControlPlane, Envoy, EnvoyConfig, SigningKey, Stack, Upstream,
};
use serde_json::Value;

/// The bundle every test publishes.
const BUNDLE: &str = "demo";

/// How long a pushed (or served) bundle may take to be enforced or refused: a poll, plus a backoff after
/// failures, with a wide margin.
const ENFORCEMENT_TIMEOUT: Duration = Duration::from_secs(15);

/// What "within a few seconds" means for propagation that the tests time (the plugin backs off at most 2 s).
const FEW_SECONDS: Duration = Duration::from_secs(10);

/// What Envoy's log says (through the plugin) when a bundle is refused.
const REFUSED_LOG: &str = "portcullis: refused bundle";

/// The filter's counter of refused bundles.
const BUNDLE_REFUSED: &str = "portcullis.bundle_refused";

/// A policy tagged `tag` (`v1`, `v2`, ...): every revision blocks `/admin` (rule `admin-<tag>`, so a block names
/// the revision that made it) and `/<tag>-only` (rule `only-<tag>`), which no other revision blocks.
fn policy(tag: &str) -> String {
    format!(
        r#"version: 1
rules:
  - id: admin-{tag}
    when: request.path.startsWith("/admin")
    action: block
    status: 403
  - id: only-{tag}
    when: request.path.startsWith("/{tag}-only")
    action: block
    status: 403
"#
    )
}

/// `/<tag>-only`: the path only the revision tagged `tag` blocks.
fn only(tag: &str) -> String {
    format!("/{tag}-only")
}

/// The harness's plugin configuration (bundle [`BUNDLE`], fail open, polls every 500 ms, long polling at the
/// filter's default of 30 s) trusting `keys`.
fn plugin_trusting(keys: &[&SigningKey]) -> Value {
    let mut plugin = plugin_config(BUNDLE, "open");
    if !keys.is_empty() {
        plugin["trusted_keys"] = trusted_keys(keys);
    }
    plugin
}

/// Waits until `envoy` has refused `count` bundles in all (counter and log), and checks the last refusal's log line:
/// at warn, naming `reason`.
fn wait_for_refusals(envoy: &Envoy, count: usize, reason: &str) {
    let refused = || envoy.wasm_stat(BUNDLE_REFUSED).unwrap_or(0);
    let logged = || envoy.log_lines_containing(REFUSED_LOG);
    assert!(
        eventually(ENFORCEMENT_TIMEOUT, || refused() >= count as u64 && logged().len() >= count),
        "expected {count} refusals ({BUNDLE_REFUSED} = {}); portcullis log lines:\n{}",
        refused(),
        envoy.log_lines_containing("portcullis").join("\n")
    );
    let lines = logged();
    assert_eq!(refused(), count as u64, "{BUNDLE_REFUSED}; refusals logged:\n{}", lines.join("\n"));
    assert_eq!(lines.len(), count, "each refusal logged once:\n{}", lines.join("\n"));
    let last = &lines[count - 1];
    assert!(last.contains(reason), "the refusal should say `{reason}`:\n{last}");
    assert!(last.contains("[warning]"), "refusals are logged at warn: {last}");
}

/// Checks over `requests` new connections (so both workers answer) that revision `revision`, tagged `tag`, is the
/// one enforced: `/admin` blocked by its rule with its revision in the verdict, its own path blocked, and the
/// paths of `not` (other revisions' tags) let through.
fn assert_enforcing(envoy: &Envoy, tag: &str, revision: u64, not: &[&str], requests: usize) {
    let mut client = envoy.client_new_connection_each();
    for i in 0..requests {
        let id = format!("{tag}-check-{}-{i}", envoy.pid());
        let admin = client.get("/admin", &[("x-request-id", &id)]);
        assert_eq!(admin.status, 403, "/admin under revision {revision}: {}", admin.text());
        assert_eq!(admin.json()["rule"], format!("admin-{tag}"), "/admin blocked by revision {revision}'s rule");
        let own = client.get(&only(tag), &[]);
        assert_eq!(own.status, 403, "{} under revision {revision}: {}", only(tag), own.text());
        for other in not {
            let r = client.get(&only(other), &[]);
            assert_eq!(r.status, 200, "{} is not blocked by revision {revision}: {}", only(other), r.text());
        }
        if i == 0 {
            let verdict = envoy.verdict_for(&id).expect("a verdict for /admin");
            assert_eq!(verdict.get("revision"), Some(&revision.to_string()), "{verdict:?}");
        }
    }
}

/// Traffic over new connections from a scoped thread until `stop`: `/` must answer 200 and `/admin` 403 (every
/// revision blocks it), with the blocking rule recorded in order of appearance. Anything else is a problem.
struct Traffic {
    stop: AtomicBool,
    problems: Mutex<Vec<String>>,
    /// The rules that blocked `/admin`, each at its first appearance.
    admin_rules: Mutex<Vec<String>>,
    sent: Mutex<u64>,
}

impl Traffic {
    fn new() -> Self {
        Self {
            stop: AtomicBool::new(false),
            problems: Mutex::new(Vec::new()),
            admin_rules: Mutex::new(Vec::new()),
            sent: Mutex::new(0),
        }
    }

    /// Sends until [`Traffic::stop`] is set, or 120 s at most.
    fn run(&self, envoy: &Envoy) {
        let mut client = envoy.client_new_connection_each();
        let deadline = Instant::now() + Duration::from_secs(120);
        while !self.stop.load(Ordering::SeqCst) && Instant::now() < deadline {
            for (path, expected) in [("/", 200), ("/admin", 403)] {
                let at = Instant::now();
                match client.try_request("GET", path, &[], b"") {
                    Ok(r) if r.status == expected => {
                        if path == "/admin" {
                            let rule = r.json()["rule"].as_str().unwrap_or("?").to_string();
                            let mut rules = self.admin_rules.lock().unwrap();
                            if !rules.contains(&rule) {
                                rules.push(rule);
                            }
                        }
                    }
                    Ok(r) => self.problem(format!("{path}: {} {} after {:?}", r.status, r.text(), at.elapsed())),
                    Err(e) => self.problem(format!("{path}: {e} after {:?}", at.elapsed())),
                }
                *self.sent.lock().unwrap() += 1;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn problem(&self, what: String) {
        self.problems.lock().unwrap().push(what);
    }

    /// Stops the traffic (the scope joins the thread).
    fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    fn assert_clean(&self) {
        let problems = self.problems.lock().unwrap();
        let sent = *self.sent.lock().unwrap();
        assert!(sent > 20, "too little traffic to prove anything: {sent} requests");
        assert!(problems.is_empty(), "{} of {sent} requests went wrong:\n{}", problems.len(), problems.join("\n"));
    }

    fn admin_rules(&self) -> Vec<String> {
        self.admin_rules.lock().unwrap().clone()
    }
}

#[test]
fn unsigned_wrong_key_and_tampered_bundles_are_refused_while_the_last_good_one_enforces() {
    let k1 = SigningKey::generate("k1");
    let k2 = SigningKey::generate("k2");
    assert_ne!(k1.public_hex(), k2.public_hex());
    let stack = Stack::start_with(EnvoyConfig::new(), plugin_trusting(&[&k1]));

    // Revision 1, signed with the trusted key at compile time: enforced by every worker.
    let v1 = compile_signed(&policy("v1"), BUNDLE, 1, &k1);
    assert_eq!(signing::envelope_key_id(&std::fs::read(&v1).unwrap()).as_deref(), Some("k1"));
    stack.control_plane.push(BUNDLE, &v1);
    stack.wait_for_status_on_every_worker(&only("v1"), &[], 403, ENFORCEMENT_TIMEOUT);
    assert_enforcing(&stack.envoy, "v1", 1, &["v2"], 6);
    assert_eq!(stack.envoy.wasm_stat(BUNDLE_REFUSED).unwrap_or(0), 0);

    // Three revision-2 bundles the filter must not enforce, each served in turn.
    let v2_unsigned = compile(&policy("v2"), BUNDLE, 2);
    let v2_by_k2 = k2.sign(&v2_unsigned);
    let v2_by_k1 = std::fs::read(k1.sign(&v2_unsigned)).unwrap();
    let v2_tampered = tamper_payload_fixing_digest(&v2_by_k1);
    let served = stack.control_plane.bundle_path(BUNDLE);
    assert!(served.is_file(), "the pushed bundle should be served from {}", served.display());
    let refusals: [(&str, Vec<u8>, &str); 3] = [
        ("unsigned", std::fs::read(&v2_unsigned).unwrap(), "bundle is not signed and this filter trusts signing keys"),
        ("signed by k2", std::fs::read(&v2_by_k2).unwrap(), "bundle is signed by a key this filter does not trust"),
        ("signed by k1, then tampered with", v2_tampered, "bundle signature does not match its content"),
    ];
    for (n, (what, bytes, reason)) in refusals.into_iter().enumerate() {
        eprintln!("serving revision 2 {what}");
        replace_served_file(&served, &bytes);
        wait_for_refusals(&stack.envoy, n + 1, reason);
        assert_enforcing(&stack.envoy, "v1", 1, &["v2"], 6);
    }

    // Polls later, still revision 1, and still one log line and one count per served bundle.
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        assert_enforcing(&stack.envoy, "v1", 1, &["v2"], 1);
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(stack.envoy.wasm_stat(BUNDLE_REFUSED), Some(3));
    assert_eq!(stack.envoy.log_lines_containing(REFUSED_LOG).len(), 3);

    // The genuine revision 2 from the trusted key is then enforced.
    replace_served_file(&served, &v2_by_k1);
    stack.wait_for_status_on_every_worker(&only("v2"), &[], 403, ENFORCEMENT_TIMEOUT);
    assert_enforcing(&stack.envoy, "v2", 2, &["v1"], 6);
    stack.envoy.assert_no_critical_wasm();
}

/// A bundle signed for another policy name, or with a revision far ahead of the clock, is refused even when a
/// control plane serves it under this bundle's name (the file is replaced behind the server's checks, as a
/// compromised or older control plane would serve it).
#[test]
fn misnamed_and_far_future_bundles_are_refused() {
    let k1 = SigningKey::generate("k1");
    let stack = Stack::start_with(EnvoyConfig::new(), plugin_trusting(&[&k1]));
    stack.control_plane.push(BUNDLE, &compile_signed(&policy("v1"), BUNDLE, 1, &k1));
    stack.wait_for_status_on_every_worker(&only("v1"), &[], 403, ENFORCEMENT_TIMEOUT);
    let served = stack.control_plane.bundle_path(BUNDLE);

    // Correctly signed by the trusted key, but for the policy `staging`: a signature cannot be replayed elsewhere.
    let staging = std::fs::read(compile_signed(&policy("v2"), "staging", 2, &k1)).unwrap();
    replace_served_file(&served, &staging);
    wait_for_refusals(&stack.envoy, 1, "it is bundle 'staging', not 'demo' (control_plane.bundle)");
    assert_enforcing(&stack.envoy, "v1", 1, &["v2"], 6);

    // Revision 2^64 - 1 would freeze the fleet: refused, and revision 1 stays.
    let far = std::fs::read(compile_signed(&policy("v3"), BUNDLE, u64::MAX, &k1)).unwrap();
    replace_served_file(&served, &far);
    wait_for_refusals(&stack.envoy, 2, "ahead of this Envoy's clock");
    assert_enforcing(&stack.envoy, "v1", 1, &["v3"], 6);

    // A correct revision 2 is then enforced: nothing got stuck.
    replace_served_file(&served, &std::fs::read(compile_signed(&policy("v2"), BUNDLE, 2, &k1)).unwrap());
    stack.wait_for_status_on_every_worker(&only("v2"), &[], 403, ENFORCEMENT_TIMEOUT);
    assert_enforcing(&stack.envoy, "v2", 2, &["v1", "v3"], 6);
    stack.envoy.assert_no_critical_wasm();
}

#[test]
fn key_rotation_without_a_gap() {
    let k1 = SigningKey::generate("k1");
    let k2 = SigningKey::generate("k2");
    // `gw-rotating` trusts the old and the new key while the signer changes; `gw-new` was configured after the
    // rotation and trusts only the new key.
    let stack = Stack::start_with(EnvoyConfig::new(), plugin_trusting(&[&k1, &k2]));
    let new_only = EnvoyConfig::new()
        .upstream(stack.upstream.addr())
        .control_plane(stack.control_plane.addr())
        .portcullis(&plugin_trusting(&[&k2]))
        .start();

    stack.control_plane.push(BUNDLE, &compile_signed(&policy("v1"), BUNDLE, 1, &k1));
    stack.wait_for_status_on_every_worker(&only("v1"), &[], 403, ENFORCEMENT_TIMEOUT);
    assert_enforcing(&stack.envoy, "v1", 1, &["v2"], 4);
    // The filter that no longer trusts k1 refuses revision 1 (and, failing open, has nothing to enforce).
    wait_for_refusals(&new_only, 1, "bundle is signed by a key this filter does not trust");
    assert_eq!(new_only.get(&only("v1"), &[]).status, 200);
    assert_eq!(new_only.get("/admin", &[]).status, 200);

    // The switch from k1 to k2 under continuous traffic: /admin is blocked by one revision or the other, always.
    let v2 = compile_signed(&policy("v2"), BUNDLE, 2, &k2);
    let traffic = Traffic::new();
    let switched = std::thread::scope(|scope| {
        scope.spawn(|| traffic.run(&stack.envoy));
        std::thread::sleep(Duration::from_millis(500));
        stack.control_plane.push(BUNDLE, &v2);
        let pushed = Instant::now();
        let reached = eventually(ENFORCEMENT_TIMEOUT, || {
            traffic.admin_rules().contains(&"admin-v2".to_string()) && stack.envoy.get(&only("v1"), &[]).status == 200
        });
        // A little more traffic under revision 2 alone.
        std::thread::sleep(Duration::from_millis(500));
        traffic.stop();
        reached.then(|| pushed.elapsed())
    });
    traffic.assert_clean();
    let switched = switched.unwrap_or_else(|| {
        panic!(
            "revision 2 (k2) never took over; /admin rules seen: {:?}\n{}",
            traffic.admin_rules(),
            stack.envoy.log_lines_containing("portcullis").join("\n")
        )
    });
    eprintln!(
        "k1 -> k2: revision 2 enforced {switched:?} after the push; /admin rules seen {:?}",
        traffic.admin_rules()
    );
    assert_eq!(traffic.admin_rules(), ["admin-v1", "admin-v2"], "blocked by revision 1, then by revision 2");

    stack.wait_for_status_on_every_worker(&only("v2"), &[], 403, ENFORCEMENT_TIMEOUT);
    assert_enforcing(&stack.envoy, "v2", 2, &["v1"], 4);
    // The gateway that trusts only the new key enforces revision 2 as well.
    new_only.wait_for_status_on_every_worker(&only("v2"), &[], 403, ENFORCEMENT_TIMEOUT);
    assert_enforcing(&new_only, "v2", 2, &["v1"], 4);
    assert_eq!(new_only.wasm_stat(BUNDLE_REFUSED), Some(1));
    assert_eq!(stack.envoy.wasm_stat(BUNDLE_REFUSED).unwrap_or(0), 0);
    new_only.assert_no_critical_wasm();
    stack.envoy.assert_no_critical_wasm();
}

#[test]
fn replayed_old_revision_is_refused() {
    let k1 = SigningKey::generate("k1");
    let stack = Stack::start_with(EnvoyConfig::new(), plugin_trusting(&[&k1]));
    let v4 = compile_signed(&policy("v4"), BUNDLE, 4, &k1);
    let v5 = compile_signed(&policy("v5"), BUNDLE, 5, &k1);
    stack.control_plane.push(BUNDLE, &v4);
    stack.wait_for_status_on_every_worker(&only("v4"), &[], 403, ENFORCEMENT_TIMEOUT);
    stack.control_plane.push(BUNDLE, &v5);
    stack.wait_for_status_on_every_worker(&only("v5"), &[], 403, ENFORCEMENT_TIMEOUT);
    assert_enforcing(&stack.envoy, "v5", 5, &["v4"], 4);

    // The control plane refuses to go back a revision on an ordinary push ...
    let push = stack.control_plane.try_push(BUNDLE, &v4);
    let said = format!("{}{}", String::from_utf8_lossy(&push.stdout), String::from_utf8_lossy(&push.stderr));
    assert!(!push.status.success(), "pushing revision 4 over 5 should fail: {said}");
    assert!(said.contains("409"), "the server answers 409 Conflict: {said}");

    // ... so the replay comes from whoever can write the served file: validly signed, once enforced, but older.
    replace_served_file(&stack.control_plane.bundle_path(BUNDLE), &std::fs::read(&v4).unwrap());
    wait_for_refusals(&stack.envoy, 1, "revision 4 is not newer than the active revision 5");
    assert_enforcing(&stack.envoy, "v5", 5, &["v4"], 6);
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        assert_enforcing(&stack.envoy, "v5", 5, &["v4"], 1);
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(stack.envoy.wasm_stat(BUNDLE_REFUSED), Some(1));

    // Going back on purpose is a rollback: revision 4's content, signed again, under the new revision 6.
    let url = stack.control_plane.url();
    let key = k1.secret_path();
    let key = key.to_str().unwrap();
    let rollback = stack.control_plane.run(&[
        "rollback",
        "--server",
        &url,
        "--name",
        BUNDLE,
        "--to",
        "4",
        "--revision",
        "6",
        "--sign",
        key,
        "--actor",
        "replay-test",
    ]);
    assert!(
        rollback.status.success(),
        "`portcullis rollback --to 4` failed:\nstdout: {}\nstderr: {}\nserver stderr: {}",
        String::from_utf8_lossy(&rollback.stdout),
        String::from_utf8_lossy(&rollback.stderr),
        stack.control_plane.stderr()
    );
    stack.wait_for_status_on_every_worker(&only("v5"), &[], 200, ENFORCEMENT_TIMEOUT);
    assert_enforcing(&stack.envoy, "v4", 6, &["v5"], 4);
    assert_eq!(stack.envoy.wasm_stat(BUNDLE_REFUSED), Some(1));
    let history = stack.control_plane.run(&["history", "--server", &url, "--name", BUNDLE]);
    let history = String::from_utf8_lossy(&history.stdout).into_owned();
    eprintln!("portcullis history:\n{history}");
    for revision in ["4", "5", "6"] {
        assert!(history.lines().any(|l| has_word(l, revision)), "revision {revision} in the history:\n{history}");
    }
    let six = history.lines().find(|l| l.split_whitespace().next() == Some("6")).unwrap_or_default();
    assert!(six.contains("replay-test"), "the rollback's actor in the history:\n{history}");
    assert_eq!(six.split_whitespace().last(), Some("4"), "revision 6 is a rollback of 4:\n{history}");
    stack.envoy.assert_no_critical_wasm();
}

#[test]
fn control_plane_down_at_start_uses_the_inline_bundle() {
    let k1 = SigningKey::generate("k1");
    let mut control_plane = ControlPlane::start_new();
    control_plane.stop();
    let upstream = Upstream::start();
    let v1 = std::fs::read(compile_signed(&policy("v1"), BUNDLE, 1, &k1)).unwrap();
    let mut plugin = plugin_trusting(&[&k1]);
    plugin["bundle_base64"] = signing::base64(&v1).into();
    let envoy =
        EnvoyConfig::new().upstream(upstream.addr()).control_plane(control_plane.addr()).portcullis(&plugin).start();
    let mut stack = Stack { envoy, control_plane, upstream };

    // From the very first request, on both workers: no waiting for a control plane that is not there.
    let mut client = stack.envoy.client_new_connection_each();
    let mut workers = BTreeSet::new();
    for i in 0..20 {
        let (response, worker) = stack.envoy.get_on_some_worker(&only("v1"), &[]);
        assert_eq!(response.status, 403, "request {i} right after start: {}", response.text());
        workers.extend(worker);
        assert_eq!(client.get("/", &[]).status, 200);
    }
    assert_eq!(workers.len(), 2, "both workers answered (and blocked): {workers:?}");
    assert_enforcing(&stack.envoy, "v1", 1, &["v2"], 4);
    assert!(
        eventually(ENFORCEMENT_TIMEOUT, || stack.envoy.wasm_stat("portcullis.fetch_failed").unwrap_or(0) > 0),
        "the control plane is down: fetches should fail"
    );
    assert_eq!(stack.upstream.requests_for(&only("v1")), 0);

    // The control plane comes up with revision 2: enforced within a few seconds.
    stack.control_plane.start();
    stack.control_plane.push(BUNDLE, &compile_signed(&policy("v2"), BUNDLE, 2, &k1));
    let pushed = Instant::now();
    stack.wait_for_status(&only("v2"), &[], 403, FEW_SECONDS);
    eprintln!("revision 2 enforced {:?} after the control plane came back with it", pushed.elapsed());
    stack.wait_for_status_on_every_worker(&only("v2"), &[], 403, ENFORCEMENT_TIMEOUT);
    assert_enforcing(&stack.envoy, "v2", 2, &["v1"], 4);
    stack.envoy.assert_no_critical_wasm();
}

#[test]
fn one_replica_killed_mid_traffic_the_other_keeps_serving() {
    let mut replica_a = ControlPlane::start_new();
    let replica_b = replica_a.replica();
    assert_eq!(replica_a.data_dir(), replica_b.data_dir());
    let upstream = Upstream::start();
    let envoy = EnvoyConfig::new()
        .upstream(upstream.addr())
        .control_plane_replicas(&[replica_a.addr(), replica_b.addr()])
        .portcullis(&plugin_trusting(&[]))
        .start();

    replica_a.push(BUNDLE, &compile(&policy("v1"), BUNDLE, 1));
    envoy.wait_for_status_on_every_worker(&only("v1"), &[], 403, ENFORCEMENT_TIMEOUT);
    assert_enforcing(&envoy, "v1", 1, &["v2"], 4);

    let v2 = compile(&policy("v2"), BUNDLE, 2);
    let traffic = Traffic::new();
    let enforced_after = std::thread::scope(|scope| {
        scope.spawn(|| traffic.run(&envoy));
        std::thread::sleep(Duration::from_millis(500));
        replica_a.kill();
        assert!(!replica_a.is_running());
        // Pushed through the survivor right away, while Envoy may still think replica A is alive.
        replica_b.push(BUNDLE, &v2);
        let pushed = Instant::now();
        let blocked = eventually(ENFORCEMENT_TIMEOUT, || envoy.get(&only("v2"), &[]).status == 403);
        let elapsed = pushed.elapsed();
        std::thread::sleep(Duration::from_millis(500));
        traffic.stop();
        blocked.then_some(elapsed)
    });
    traffic.assert_clean();
    let enforced_after = enforced_after.unwrap_or_else(|| {
        panic!(
            "revision 2 never enforced after replica A died; portcullis log lines:\n{}\nreplica B stderr:\n{}",
            envoy.log_lines_containing("portcullis").join("\n"),
            replica_b.stderr()
        )
    });
    eprintln!("revision 2 enforced {enforced_after:?} after the push to replica B (replica A killed)");
    assert!(enforced_after < FEW_SECONDS, "took {enforced_after:?}");
    assert_eq!(traffic.admin_rules().last().map(String::as_str), Some("admin-v2"), "{:?}", traffic.admin_rules());
    envoy.wait_for_status_on_every_worker(&only("v2"), &[], 403, ENFORCEMENT_TIMEOUT);
    assert_enforcing(&envoy, "v2", 2, &["v1"], 4);

    // Still fetching from the survivor: a third revision arrives too.
    replica_b.push(BUNDLE, &compile(&policy("v3"), BUNDLE, 3));
    envoy.wait_for_status_on_every_worker(&only("v3"), &[], 403, ENFORCEMENT_TIMEOUT);
    assert_enforcing(&envoy, "v3", 3, &["v1", "v2"], 2);
    envoy.assert_no_critical_wasm();
}

/// The lines of `portcullis status` output that mention `node`.
fn status_lines<'a>(output: &'a str, node: &str) -> Vec<&'a str> {
    output.lines().filter(|l| l.split_whitespace().any(|word| word == node)).collect()
}

/// Whether `line` has `revision` as a word of its own (a column).
fn has_word(line: &str, word: &str) -> bool {
    line.split(|c: char| c.is_whitespace() || c == ',' || c == '|' || c == '=').any(|w| w == word)
}

#[test]
fn fleet_status_shows_two_envoys() {
    const REVISION: u64 = 41;
    let control_plane = ControlPlane::start_new();
    let upstream = Upstream::start();
    let start_gateway = |node: &str| {
        let mut plugin = plugin_trusting(&[]);
        plugin["node"] = node.into();
        plugin["control_plane"]["status_interval_ms"] = 1000.into();
        EnvoyConfig::new().upstream(upstream.addr()).control_plane(control_plane.addr()).portcullis(&plugin).start()
    };
    let gw_a = start_gateway("gw-a");
    let gw_b = start_gateway("gw-b");

    control_plane.push(BUNDLE, &compile(&policy("v1"), BUNDLE, REVISION));
    for gw in [&gw_a, &gw_b] {
        gw.wait_for_status_on_every_worker(&only("v1"), &[], 403, ENFORCEMENT_TIMEOUT);
    }

    // Both gateways report within a couple of status intervals, with the revision they enforce.
    let revision = REVISION.to_string();
    let mut output = String::new();
    let listed = eventually(ENFORCEMENT_TIMEOUT, || {
        output = control_plane.status(&[]);
        ["gw-a", "gw-b"].iter().all(|node| {
            let lines = status_lines(&output, node);
            lines.len() == 1 && has_word(lines[0], &revision)
        })
    });
    assert!(listed, "`portcullis status` should list gw-a and gw-b at revision {REVISION}:\n{output}");
    eprintln!("portcullis status:\n{output}");
    for node in ["gw-a", "gw-b"] {
        assert!(!status_lines(&output, node)[0].to_lowercase().contains("stale"), "{output}");
    }

    // The JSON behind it names both too.
    let json = portcullis_integration_tests::http::get(control_plane.addr(), "/v1/status", &[]);
    assert_eq!(json.status, 200, "{}", json.text());
    let text = json.text();
    assert!(text.contains("\"gw-a\"") && text.contains("\"gw-b\""), "GET /v1/status: {text}");

    // gw-b stops; three seconds on it is stale, and gw-a, still reporting every second, is not.
    drop(gw_b);
    let stale = eventually(ENFORCEMENT_TIMEOUT, || {
        output = control_plane.status(&["--stale-after", "3s"]);
        let (a, b) = (status_lines(&output, "gw-a"), status_lines(&output, "gw-b"));
        a.len() == 1
            && b.len() == 1
            && b[0].to_lowercase().contains("stale")
            && !a[0].to_lowercase().contains("stale")
            && has_word(a[0], &revision)
    });
    assert!(stale, "gw-b should show as stale and gw-a not, with --stale-after 3s:\n{output}");
    eprintln!("portcullis status --stale-after 3s, gw-b stopped:\n{output}");
    gw_a.assert_no_critical_wasm();
}

#[test]
fn long_polling_propagates_a_push_within_about_a_second() {
    const PUSHES: u64 = 5;
    let mut plugin = plugin_trusting(&[]);
    plugin["control_plane"]["long_poll_seconds"] = 30.into();
    let stack = Stack::start_with(EnvoyConfig::new(), plugin);
    stack.control_plane.push(BUNDLE, &compile(&policy("r1"), BUNDLE, 1));
    stack.wait_for_status_on_every_worker(&only("r1"), &[], 403, ENFORCEMENT_TIMEOUT);

    let mut times = Vec::new();
    for revision in 2..2 + PUSHES {
        let tag = format!("r{revision}");
        let bundle = compile(&policy(&tag), BUNDLE, revision);
        // Warm: the filter is back in its long poll, waiting on the previous revision.
        std::thread::sleep(Duration::from_millis(300));
        stack.control_plane.push(BUNDLE, &bundle);
        let elapsed = stack.envoy.time_until_status(&only(&tag), 403, ENFORCEMENT_TIMEOUT).unwrap_or_else(|| {
            panic!(
                "revision {revision} never blocked {}; portcullis log lines:\n{}",
                only(&tag),
                stack.envoy.log_lines_containing("portcullis").join("\n")
            )
        });
        eprintln!("revision {revision}: first blocked request {elapsed:?} after `portcullis push` returned");
        times.push(elapsed);
    }
    let mut sorted = times.clone();
    sorted.sort();
    eprintln!(
        "push to first block over {PUSHES} pushes: median {:?}, max {:?}",
        sorted[sorted.len() / 2],
        sorted[sorted.len() - 1]
    );
    for (i, t) in times.iter().enumerate() {
        assert!(*t < Duration::from_secs(5), "push {} took {t:?} to be enforced (all: {times:?})", i + 1);
    }
    stack.envoy.assert_no_critical_wasm();
}
