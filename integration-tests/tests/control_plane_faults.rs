//! A control plane that fails after the response headers, or answers 200 forever, must cost the filter nothing
//! but a few log lines: the last good bundle keeps enforcing, no VM dies, fetches stay paced, memory stays flat.
//!
//! Each test starts a [`FaultyControlPlane`] serving a good bundle, waits until every worker enforces it, then
//! switches the server to one fault for [`FAULT_WINDOW`] while a loop sends traffic through Envoy (`/admin`, which
//! the good bundle blocks, and `/`, which it passes). It then checks:
//! - every request got the good bundle's answer (so no 503 from a dead VM, and no lapse in enforcement);
//! - no `[critical]` line in Envoy's log;
//! - the filter wrote at most a handful of log lines over the window;
//! - the server saw at most one fetch per poll interval (backoff only makes it fewer);
//! - Envoy's resident memory grew by less than [`MAX_RSS_GROWTH`];
//! - once the server behaves again, a new revision is enforced: the fetch loop is still alive.
//!
//! The plugin polls every 500 ms (Envoy's tick is 250 ms, so a filter that ignores the interval shows), waits at
//! most 1 s per fetch, and long-polls for 1 s, so a stalled long poll times out within the window.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use portcullis_integration_tests::faulty_control_plane::{FaultyControlPlane, Mode, MIB};
use portcullis_integration_tests::signing::trusted_keys;
use portcullis_integration_tests::{compile, compile_signed, plugin_config, Envoy, EnvoyConfig, SigningKey, Upstream};
use serde_json::Value;

/// The bundle every test serves.
const BUNDLE: &str = "demo";

/// How long each fault lasts, with traffic throughout.
const FAULT_WINDOW: Duration = Duration::from_secs(12);

/// The plugin's `poll_interval_ms`.
const POLL_INTERVAL_MS: u64 = 500;

/// The plugin's `timeout_ms`: a fetch that has not completed by then (plus the long poll's wait) fails.
const TIMEOUT_MS: u64 = 1000;

/// The plugin's `long_poll_seconds`: short, so a stalled long poll times out well inside [`FAULT_WINDOW`].
const LONG_POLL_SECONDS: u64 = 1;

/// The plugin's `max_backoff_ms`.
const MAX_BACKOFF_MS: u64 = 4000;

/// Most log lines the filter may write over one fault window: a warning when the fault starts, perhaps a second
/// one for the kind of fault, and "reachable again" (a handful; a line per fetch would be ~24).
const MAX_LOG_LINES: usize = 6;

/// Most Envoy's resident memory may grow over one fault window.
const MAX_RSS_GROWTH: u64 = 64 * MIB;

/// How long a bundle may take to be enforced on every worker (a poll, a backoff after failures, a margin).
const ENFORCEMENT_TIMEOUT: Duration = Duration::from_secs(20);

/// What marks a line of Envoy's log as the filter's own (`wasm log portcullis ...`).
const FILTER_LOG: &str = "wasm log portcullis";

/// A policy tagged `tag`: blocks `/admin` (rule `admin-<tag>`) and `/<tag>-only`, which no other revision blocks.
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

/// The plugin configuration of every test, trusting `keys` when there are any.
fn plugin(keys: &[&SigningKey]) -> Value {
    let mut plugin = plugin_config(BUNDLE, "open");
    plugin["control_plane"]["poll_interval_ms"] = POLL_INTERVAL_MS.into();
    plugin["control_plane"]["timeout_ms"] = TIMEOUT_MS.into();
    plugin["control_plane"]["long_poll_seconds"] = LONG_POLL_SECONDS.into();
    plugin["control_plane"]["max_backoff_ms"] = MAX_BACKOFF_MS.into();
    if !keys.is_empty() {
        plugin["trusted_keys"] = trusted_keys(keys);
    }
    plugin
}

/// Most fetches a filter that honours `poll_interval_ms` can make in `window`: one per interval, plus the one in
/// flight when the window opened and one for rounding.
fn poll_ceiling(window: Duration) -> usize {
    (window.as_millis() / u128::from(POLL_INTERVAL_MS)) as usize + 2
}

/// Most fetches a filter can make in `window` if every fetch fails (or brings a bundle it refuses) and it backs
/// off as `filter/src/schedule.rs` does: after the k-th failure in a row it waits at least half of
/// `min(max_backoff_ms, poll_interval_ms * 2^k)` (equal jitter). Plus one for the fetch in flight when the window
/// opened.
fn backoff_ceiling(window: Duration) -> usize {
    let window_ms = window.as_millis() as u64;
    let (mut at_ms, mut fetches) = (0u64, 0usize);
    while at_ms <= window_ms {
        fetches += 1;
        let backoff = POLL_INTERVAL_MS.saturating_mul(1 << fetches.min(20)).min(MAX_BACKOFF_MS);
        at_ms += backoff / 2;
    }
    fetches + 1
}

/// Envoy's resident set size (`VmRSS` of `/proc/PID/status`), in bytes.
fn rss_bytes(envoy: &Envoy) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", envoy.pid())).expect("read /proc/PID/status");
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no VmRSS in /proc/{}/status:\n{status}", envoy.pid()));
    kib * 1024
}

/// Traffic over new connections until stopped: `/` must answer 200 and `/admin` 403 from the good bundle's rule.
/// Envoy's RSS is sampled as it goes.
struct Traffic {
    stop: AtomicBool,
    problems: Mutex<Vec<String>>,
    sent: Mutex<u64>,
    max_rss: Mutex<u64>,
}

impl Traffic {
    fn new() -> Self {
        Self {
            stop: AtomicBool::new(false),
            problems: Mutex::new(Vec::new()),
            sent: Mutex::new(0),
            max_rss: Mutex::new(0),
        }
    }

    fn run(&self, envoy: &Envoy, admin_rule: &str) {
        let mut client = envoy.client_new_connection_each().with_timeout(Duration::from_secs(5));
        let mut last_sample = Instant::now();
        while !self.stop.load(Ordering::SeqCst) {
            for (path, expected) in [("/", 200), ("/admin", 403)] {
                let at = Instant::now();
                match client.try_request("GET", path, &[], b"") {
                    Ok(r) if r.status == expected => {
                        let rule = if path == "/admin" { r.json()["rule"].as_str().map(str::to_owned) } else { None };
                        if path == "/admin" && rule.as_deref() != Some(admin_rule) {
                            self.problem(format!("/admin blocked by {rule:?}, not {admin_rule}: {}", r.text()));
                        }
                    }
                    Ok(r) => self.problem(format!("{path}: {} {} after {:?}", r.status, r.text(), at.elapsed())),
                    Err(e) => self.problem(format!("{path}: {e} after {:?}", at.elapsed())),
                }
                *self.sent.lock().unwrap() += 1;
            }
            if last_sample.elapsed() >= Duration::from_millis(250) {
                let mut max = self.max_rss.lock().unwrap();
                *max = (*max).max(rss_bytes(envoy));
                last_sample = Instant::now();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn problem(&self, what: String) {
        let mut problems = self.problems.lock().unwrap();
        // Enough to see what went wrong; a dead VM would otherwise fill memory with the same line.
        if problems.len() < 1000 {
            problems.push(what);
        }
    }
}

/// The world of one test: the faulty control plane, an upstream and Envoy, with the good bundle (revision 1)
/// enforced on every worker.
struct Setup {
    envoy: Envoy,
    control_plane: FaultyControlPlane,
    _upstream: Upstream,
    /// Signs every good bundle when the filter trusts keys.
    key: Option<SigningKey>,
    /// The bytes of revision 1, as first served.
    good: Vec<u8>,
}

impl Setup {
    fn start(key: Option<SigningKey>) -> Self {
        let good = read(&compile_good(&policy("v1"), 1, key.as_ref()));
        let control_plane = FaultyControlPlane::start(BUNDLE, Mode::serve(good.clone()));
        let upstream = Upstream::start();
        let keys: Vec<&SigningKey> = key.iter().collect();
        let envoy = EnvoyConfig::new()
            .upstream(upstream.addr())
            .control_plane(control_plane.addr())
            .portcullis(&plugin(&keys))
            .start();
        envoy.wait_for_status_on_every_worker("/v1-only", &[], 403, ENFORCEMENT_TIMEOUT);
        Self { envoy, control_plane, _upstream: upstream, key, good }
    }

    /// A bundle as the control plane would serve it (signed with the trusted key, if there is one).
    fn good_bundle(&self, tag: &str, revision: u64) -> Vec<u8> {
        read(&compile_good(&policy(tag), revision, self.key.as_ref()))
    }

    /// Serves `fault` (called `name` in messages) for [`FAULT_WINDOW`] under traffic, checks everything the module
    /// doc lists, then serves revision 2 and waits for it. `max_fetches` and `max_log_lines` bound the fetches the server sees and the
    /// filter's log lines over the window.
    fn survive(&self, name: &str, fault: Mode, max_fetches: usize, max_log_lines: usize) {
        let log_before = self.filter_log_lines().len();
        let rss_before = rss_bytes(&self.envoy);
        let traffic = Traffic::new();
        let start = Instant::now();
        std::thread::scope(|scope| {
            scope.spawn(|| traffic.run(&self.envoy, "admin-v1"));
            self.control_plane.set_mode(fault);
            std::thread::sleep(FAULT_WINDOW);
            traffic.stop.store(true, Ordering::SeqCst);
        });
        let window = start.elapsed();
        let fetches = self.control_plane.bundle_requests_since(start);
        let lines: Vec<String> = self.filter_log_lines().into_iter().skip(log_before).collect();
        let rss_after = (*traffic.max_rss.lock().unwrap()).max(rss_bytes(&self.envoy));
        let growth = rss_after.saturating_sub(rss_before);
        let sent = *traffic.sent.lock().unwrap();
        let problems = traffic.problems.lock().unwrap().clone();
        eprintln!(
            "{name}: {sent} requests, {} wrong; {fetches} fetches in {window:?}; {} filter log lines; RSS {} -> {} MiB",
            problems.len(),
            lines.len(),
            rss_before / MIB,
            rss_after / MIB
        );

        let context = || {
            format!(
                "fault `{name}`.\nfilter log lines over the window:\n{}\nfetches (path, If-None-Match, mode):\n{}",
                lines.join("\n"),
                self.fetch_summary(start)
            )
        };
        let critical = self.envoy.log_lines_containing("[critical]");
        assert!(critical.is_empty(), "Envoy logged [critical] lines:\n{}\n{}", critical.join("\n"), context());
        assert!(sent > 100, "too little traffic to prove anything: {sent} requests; {}", context());
        assert!(
            problems.is_empty(),
            "{} of {sent} requests did not get the good bundle's answer:\n{}\n{}",
            problems.len(),
            problems.iter().take(20).cloned().collect::<Vec<_>>().join("\n"),
            context()
        );
        assert!(
            lines.len() <= max_log_lines,
            "{} filter log lines over {window:?} (at most {max_log_lines}): {}",
            lines.len(),
            context()
        );
        assert!(fetches <= max_fetches, "{fetches} fetches over {window:?} (at most {max_fetches}): {}", context());
        assert!(
            growth < MAX_RSS_GROWTH,
            "Envoy's RSS grew by {} MiB ({} -> {} MiB; at most {} MiB): {}",
            growth / MIB,
            rss_before / MIB,
            rss_after / MIB,
            MAX_RSS_GROWTH / MIB,
            context()
        );

        // The fetch loop survived: a well-behaved server's next revision is enforced.
        self.control_plane.set_mode(Mode::serve(self.good_bundle("v2", 2)));
        self.envoy.wait_for_status_on_every_worker("/v2-only", &[], 403, ENFORCEMENT_TIMEOUT);
        let admin = self.envoy.get("/admin", &[]);
        assert_eq!(admin.json()["rule"], "admin-v2", "{}", admin.text());
        let critical = self.envoy.log_lines_containing("[critical]");
        assert!(critical.is_empty(), "Envoy logged [critical] lines:\n{}", critical.join("\n"));
    }

    fn filter_log_lines(&self) -> Vec<String> {
        self.envoy.log_lines_containing(FILTER_LOG)
    }

    fn fetch_summary(&self, since: Instant) -> String {
        self.control_plane
            .bundle_requests()
            .iter()
            .filter(|r| r.at >= since)
            .map(|r| {
                let at = r.at.duration_since(since).as_millis();
                format!("  +{at} ms {} {:?} {}", r.path, r.if_none_match, r.mode)
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn compile_good(policy: &str, revision: u64, key: Option<&SigningKey>) -> std::path::PathBuf {
    match key {
        Some(key) => compile_signed(policy, BUNDLE, revision, key),
        None => compile(policy, BUNDLE, revision),
    }
}

fn read(path: &std::path::Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

#[test]
fn the_ceilings_are_what_the_docs_say() {
    assert_eq!(poll_ceiling(FAULT_WINDOW), 26);
    // Fetches at 0, 0.5, 1.5, 3.5, 5.5, 7.5, 9.5 and 11.5 s, and one in flight.
    assert_eq!(backoff_ceiling(FAULT_WINDOW), 9);
}

#[test]
fn headers_then_a_stall() {
    let setup = Setup::start(None);
    let body = setup.good_bundle("v9", 9);
    setup.survive("headers then a stall", Mode::StallAfterHeaders { body }, poll_ceiling(FAULT_WINDOW), MAX_LOG_LINES);
}

#[test]
fn a_reset_mid_body() {
    let setup = Setup::start(None);
    let body = setup.good_bundle("v9", 9);
    setup.survive("a reset mid-body", Mode::ResetMidBody { body }, poll_ceiling(FAULT_WINDOW), MAX_LOG_LINES);
}

#[test]
fn one_byte_per_second() {
    let setup = Setup::start(None);
    let body = setup.good_bundle("v9", 9);
    let mode = Mode::Trickle { body, interval: Duration::from_secs(1) };
    setup.survive("one byte per second", mode, poll_ceiling(FAULT_WINDOW), MAX_LOG_LINES);
}

#[test]
fn a_200_mib_body_declared_by_content_length() {
    let setup = Setup::start(None);
    setup.survive(
        "200 MiB with content-length",
        Mode::Huge { len: 200 * MIB, chunked: false },
        poll_ceiling(FAULT_WINDOW),
        MAX_LOG_LINES,
    );
}

#[test]
fn a_200_mib_chunked_body_without_a_length() {
    let setup = Setup::start(None);
    setup.survive(
        "200 MiB chunked",
        Mode::Huge { len: 200 * MIB, chunked: true },
        poll_ceiling(FAULT_WINDOW),
        MAX_LOG_LINES,
    );
}

#[test]
fn random_bytes_with_a_fresh_etag_each_time() {
    // Each fetch brings a bundle never seen before, so each may be refused with a warning of its own; refusals
    // back off like failures, which bounds those warnings (9 here, a warning per 250 ms tick would be 48).
    let setup = Setup::start(None);
    setup.survive(
        "random bytes, fresh ETag",
        Mode::RandomBytes { len: 4096 },
        poll_ceiling(FAULT_WINDOW),
        backoff_ceiling(FAULT_WINDOW),
    );
}

#[test]
fn a_200_that_ignores_if_none_match() {
    let setup = Setup::start(None);
    let same = setup.good.clone();
    setup.survive(
        "200 ignoring If-None-Match",
        Mode::serve_ignoring_if_none_match(same),
        poll_ceiling(FAULT_WINDOW),
        MAX_LOG_LINES,
    );
}

#[test]
fn a_bundle_signed_by_an_untrusted_key_served_forever() {
    let trusted = SigningKey::generate("trusted");
    let untrusted = SigningKey::generate("untrusted");
    let setup = Setup::start(Some(trusted));
    let refused = read(&compile_signed(&policy("v9"), BUNDLE, 9, &untrusted));
    setup.survive(
        "an untrusted signer forever",
        Mode::serve_ignoring_if_none_match(refused),
        poll_ceiling(FAULT_WINDOW),
        MAX_LOG_LINES,
    );
}
