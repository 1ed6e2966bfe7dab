//! End-to-end harness: the real Envoy binary, the Portcullis filter, the `portcullis` control plane and an
//! in-process upstream, all on 127.0.0.1.
//!
//! # Overview
//!
//! Every piece starts on port 0 in its own temporary directory, so tests (and benchmarks) can run in parallel:
//!
//! - [`Upstream`]: a tiny HTTP/1.1 server that answers `200 {"upstream":"ok"}` (or a [`upstream::Route`] set for
//!   the path) and counts what reached it.
//! - [`body`]: generated bodies and running checksums, for bodies too large to hold.
//! - [`ControlPlane`]: `portcullis serve` on a temporary data directory; [`ControlPlane::push`] publishes bundles,
//!   [`ControlPlane::stop`] and [`ControlPlane::start`] take it down and bring it back on the same port.
//!   [`ControlPlane::replica`] starts another server on the same data directory, [`ControlPlane::kill`] crashes one.
//! - [`faulty_control_plane`]: a control plane that stalls, resets, trickles, floods or answers 200 forever.
//! - [`compile`]: `portcullis compile` of a policy written inline in a test; [`compile_signed`] signs it too.
//! - [`signing`]: keys from `portcullis keygen`, `portcullis sign`, the filter's `trusted_keys`, tampered bundles.
//! - [`Envoy`]: a generated bootstrap (wasm filter optional, JSON access log), started and waited for until ready;
//!   stats, logs and the access log are read back through it.
//! - [`jwt`]: signing keys, their JWKS, valid JWTs and hand-built forgeries, for the token tests and the benchmark.
//! - [`http`]: a raw-TCP HTTP/1.1 client, able to send the malformed requests a real client library refuses to.
//! - [`Stack`]: the three processes wired together the way most tests want them.
//! - [`eventually`]: polling with a generous deadline instead of fixed sleeps.
//!
//! Missing artifacts are a failure, never a skip: [`artifacts`] panics with the command that builds them.
//!
//! # Running
//!
//! ```text
//! make setup build                          # Envoy into .venv/, the filter into dist/
//! cargo build -p portcullis-control-plane  # target/debug/portcullis
//! cargo test -p portcullis-integration-tests
//! ```
//!
//! `PORTCULLIS_ENVOY`, `PORTCULLIS_WASM` and `PORTCULLIS_BIN` point at other binaries; `PORTCULLIS_KEEP_FILES=1`
//! keeps every Envoy's directory (config, `envoy.log`, `access.log`), which a failing test does anyway.
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//! use portcullis_integration_tests::{compile, eventually, Stack};
//!
//! let stack = Stack::start("open");
//! let bundle = compile("version: 1\nrules: []\n", "demo", 1);
//! stack.control_plane.push("demo", &bundle);
//! let response = stack.envoy.get("/", &[]);
//! assert_eq!(response.status, 200);
//! assert!(eventually(Duration::from_secs(5), || stack.upstream.requests() > 0));
//! stack.envoy.assert_no_critical_wasm();
//! ```

#![warn(missing_docs)]

pub mod artifacts;
pub mod body;
pub mod control_plane;
pub mod envoy;
pub mod faulty_control_plane;
pub mod http;
pub mod jwt;
pub mod load;
pub mod over_time_policies;
mod process;
pub mod signing;
pub mod upstream;

use std::time::{Duration, Instant};

pub use control_plane::{compile, compile_signed, ControlPlane};
pub use envoy::{assert_field, plugin_config, verdict_of, Envoy, EnvoyConfig, Verdict, WasmFilter};
pub use http::{HttpClient, HttpResponse};
pub use signing::SigningKey;
pub use upstream::Upstream;

/// Polls `condition` until it returns `true` or `timeout` has passed; returns whether it ever held.
///
/// The deadline is a ceiling, not a wait: a condition that already holds returns at once.
///
/// ```
/// use std::time::Duration;
/// assert!(portcullis_integration_tests::eventually(Duration::from_secs(1), || true));
/// ```
pub fn eventually(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An upstream, a control plane and an Envoy running the Portcullis filter, wired together.
///
/// The filter pulls bundle `demo` from the control plane every 500 ms (see [`plugin_config`]). Fields drop in
/// reverse order of start: Envoy first, so it never sees the others vanish under it during teardown.
pub struct Stack {
    /// Envoy with the Portcullis filter in front of [`Stack::upstream`].
    pub envoy: Envoy,
    /// The control plane the filter polls.
    pub control_plane: ControlPlane,
    /// Where allowed requests end up.
    pub upstream: Upstream,
}

impl Stack {
    /// Starts the stack with the given `failure_mode` (`"open"` or `"closed"`) and no bundle published.
    ///
    /// # Panics
    ///
    /// If an artifact is missing (see [`artifacts`]) or a process fails to start.
    pub fn start(failure_mode: &str) -> Self {
        Self::start_with(EnvoyConfig::new(), plugin_config("demo", failure_mode))
    }

    /// Starts the stack from `config` (its upstream, control plane and filter are filled in) and the plugin
    /// configuration `plugin`.
    ///
    /// # Panics
    ///
    /// As [`Stack::start`].
    pub fn start_with(config: EnvoyConfig, plugin: serde_json::Value) -> Self {
        let upstream = Upstream::start();
        let control_plane = ControlPlane::start_new();
        let envoy = config.upstream(upstream.addr()).control_plane(control_plane.addr()).portcullis(&plugin).start();
        Self { envoy, control_plane, upstream }
    }
    /// Waits up to `timeout` until every worker has answered `GET path` with `status` (each VM swaps bundles on
    /// its own tick, so the first answer only proves one). Needs the listener to itself: it tells workers apart by
    /// their connection counters.
    ///
    /// # Panics
    ///
    /// If some worker never does, with the last status and Envoy's `portcullis` log lines.
    pub fn wait_for_status_on_every_worker(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        status: u16,
        timeout: Duration,
    ) {
        let mut confirmed = vec![false; self.envoy.concurrency() as usize];
        let mut last = None;
        let reached = eventually(timeout, || {
            let (response, worker) = self.envoy.get_on_some_worker(path, headers);
            if let Some(worker) = worker.filter(|_| response.status == status) {
                confirmed[worker as usize] = true;
            }
            last = Some(response);
            confirmed.iter().all(|c| *c)
        });
        if !reached {
            self.wait_failed(path, status, timeout, last, &format!(" on every worker (confirmed: {confirmed:?})"));
        }
    }

    /// Waits up to `timeout` until `GET path` with `headers` on a new connection answers `status`.
    ///
    /// # Panics
    ///
    /// If it never does, with the last status and Envoy's `portcullis` log lines.
    pub fn wait_for_status(&self, path: &str, headers: &[(&str, &str)], status: u16, timeout: Duration) {
        let mut last = None;
        let reached = eventually(timeout, || {
            let response = self.envoy.get(path, headers);
            let done = response.status == status;
            last = Some(response);
            done
        });
        if !reached {
            self.wait_failed(path, status, timeout, last, "");
        }
    }

    fn wait_failed(&self, path: &str, status: u16, timeout: Duration, last: Option<HttpResponse>, what: &str) -> ! {
        let last = last.map(|r| format!("{} {}", r.status, r.text())).unwrap_or_default();
        panic!(
            "GET {path} never answered {status}{what} within {timeout:?} (last: {last}).\n\
             Envoy's portcullis log lines:\n{}\ncontrol plane stderr:\n{}",
            self.envoy.log_lines_containing("portcullis").join("\n"),
            self.control_plane.stderr()
        );
    }
}
