//! The real Envoy: a generated bootstrap, the process, and what it reports (admin stats, its log, the access log).
//!
//! Everything listens on 127.0.0.1 port 0; the admin address comes from `--admin-address-path` and the listener
//! port from the admin `/listeners` endpoint, so any number of Envoys can run side by side.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use tempfile::TempDir;

use crate::artifacts::{envoy_binary, filter_wasm, noop_wasm};
use crate::eventually;
use crate::http::{self, HttpClient, HttpResponse};
use crate::process::{terminate, unique_base_id};

/// The filter-state key the Portcullis filter writes its verdict to (logfmt, for requests that matched a rule).
pub const VERDICT_FILTER_STATE: &str = "wasm.portcullis.verdict";

/// The access-log field that carries [`VERDICT_FILTER_STATE`].
pub const VERDICT_FIELD: &str = "portcullis";

/// The prefix Envoy puts before metrics a wasm module defines.
pub const WASM_STAT_PREFIX: &str = "wasmcustom.";

/// A line in Envoy's log that means a wasm VM panicked or failed: never acceptable.
pub const CRITICAL_WASM: &str = "[critical][wasm]";

/// The cluster name the plugin configuration uses for the control plane.
pub const CONTROL_PLANE_CLUSTER: &str = "portcullis_control_plane";

/// The listener's stat prefix: its stats are `listener.ingress.*`, per worker `listener.ingress.worker_N.*`.
pub const LISTENER_STAT_PREFIX: &str = "ingress";

/// Set (to anything) to keep every Envoy's directory (config, logs, access log) after the test; a failing
/// test keeps it regardless.
pub const KEEP_FILES_ENV: &str = "PORTCULLIS_KEEP_FILES";

/// The body of a [`EnvoyConfig::direct_response`] answer.
pub const DIRECT_RESPONSE_BODY: &str = r#"{"direct":"ok"}"#;

/// The name of the provider of [`EnvoyConfig::jwt_authn`].
pub const JWT_PROVIDER: &str = "portcullis_bench";

/// Envoy's default limit on a direct response body (`max_direct_response_body_size_bytes`), in bytes.
const DEFAULT_MAX_DIRECT_RESPONSE_BODY: usize = 4096;

/// How long Envoy may take to start (V8 compiles the module once per worker).
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The plugin configuration the tests use: bundle `bundle` from the control-plane cluster, polled every 500 ms,
/// with `failure_mode` (`"open"` or `"closed"`) before any bundle is loaded.
pub fn plugin_config(bundle: &str, failure_mode: &str) -> serde_json::Value {
    serde_json::json!({
        "control_plane": {
            "cluster": CONTROL_PLANE_CLUSTER,
            "bundle": bundle,
            "poll_interval_ms": 500,
            "timeout_ms": 2000,
            "max_backoff_ms": 2000,
        },
        "failure_mode": failure_mode,
    })
}

/// A proxy-wasm HTTP filter to put before the router.
#[derive(Clone, Debug)]
pub struct WasmFilter {
    /// The module, as an absolute path.
    pub wasm: PathBuf,
    /// The plugin configuration, passed to the module as a string.
    pub configuration: String,
    /// The plugin name, root id and VM id.
    pub name: String,
}

impl WasmFilter {
    /// The Portcullis filter from [`filter_wasm`] with `configuration`.
    ///
    /// # Panics
    ///
    /// If the module has not been built.
    pub fn portcullis(configuration: &serde_json::Value) -> Self {
        Self { wasm: filter_wasm(), configuration: configuration.to_string(), name: "portcullis".into() }
    }

    /// The no-op baseline filter from [`noop_wasm`]: the cost of the wasm runtime alone.
    ///
    /// # Panics
    ///
    /// If the module has not been built.
    pub fn noop() -> Self {
        Self { wasm: noop_wasm(), configuration: String::new(), name: "noop".into() }
    }
}

/// What to start Envoy with; [`EnvoyConfig::start`] runs it.
#[derive(Clone, Debug)]
pub struct EnvoyConfig {
    upstream: Option<SocketAddr>,
    /// The endpoints of [`CONTROL_PLANE_CLUSTER`]: one control plane, or replicas.
    control_plane: Vec<SocketAddr>,
    filter: Option<WasmFilter>,
    concurrency: u32,
    direct_response: bool,
    /// The body and content type of a direct response other than [`DIRECT_RESPONSE_BODY`].
    direct_body: Option<(String, String)>,
    access_log: bool,
    log_level: String,
    /// The inline JWKS of a `jwt_authn` filter before the wasm filter, when there is one.
    jwt_authn: Option<String>,
}

impl Default for EnvoyConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl EnvoyConfig {
    /// Two workers, router only, access log on, log level `info`.
    pub fn new() -> Self {
        Self {
            upstream: None,
            control_plane: Vec::new(),
            filter: None,
            concurrency: 2,
            direct_response: false,
            direct_body: None,
            access_log: true,
            log_level: "info".into(),
            jwt_authn: None,
        }
    }

    /// Routes every request to `addr` (cluster `upstream`).
    pub fn upstream(mut self, addr: SocketAddr) -> Self {
        self.upstream = Some(addr);
        self
    }

    /// Defines cluster [`CONTROL_PLANE_CLUSTER`] pointing at `addr`.
    pub fn control_plane(mut self, addr: SocketAddr) -> Self {
        self.control_plane = vec![addr];
        self
    }

    /// Defines cluster [`CONTROL_PLANE_CLUSTER`] over several control-plane replicas (sharing a data directory),
    /// balanced round-robin. So that fetches move to the live replicas when one dies, the cluster health-checks
    /// its endpoints over TCP every second (one failure marks a replica down, one success brings it back) and
    /// ejects an endpoint after a connection failure (outlier detection on local-origin errors, at most half of
    /// them). A single address gives the same cluster as [`EnvoyConfig::control_plane`].
    pub fn control_plane_replicas(mut self, addrs: &[SocketAddr]) -> Self {
        self.control_plane = addrs.to_vec();
        self
    }

    /// Adds the Portcullis filter with plugin configuration `plugin`.
    ///
    /// # Panics
    ///
    /// If the module has not been built.
    pub fn portcullis(self, plugin: &serde_json::Value) -> Self {
        self.wasm_filter(WasmFilter::portcullis(plugin))
    }

    /// Adds any wasm HTTP filter (a benchmark's no-op baseline, for instance).
    pub fn wasm_filter(mut self, filter: WasmFilter) -> Self {
        self.filter = Some(filter);
        self
    }

    /// Worker threads (`--concurrency`).
    pub fn concurrency(mut self, workers: u32) -> Self {
        self.concurrency = workers;
        self
    }

    /// Answers `200 {"direct":"ok"}` from the route itself instead of proxying: measures Envoy and the filter
    /// without an upstream.
    pub fn direct_response(mut self, on: bool) -> Self {
        self.direct_response = on;
        self
    }

    /// Answers `200` with `body` and `content-type: content_type` from the route itself, like
    /// [`EnvoyConfig::direct_response`] but with a body of any size: the route configuration's
    /// `max_direct_response_body_size_bytes` (4 KiB by default) is raised to fit it. The response passes through
    /// the wasm filter's response callbacks like an upstream's would.
    pub fn direct_response_body(mut self, body: impl Into<String>, content_type: &str) -> Self {
        self.direct_response = true;
        self.direct_body = Some((body.into(), content_type.into()));
        self
    }

    /// Writes the JSON access log (on by default).
    pub fn access_log(mut self, on: bool) -> Self {
        self.access_log = on;
        self
    }

    /// Adds Envoy's native `jwt_authn` filter (before the wasm filter, if any) with one provider, [`JWT_PROVIDER`]:
    /// the keys of `jwks` (a JWKS document, inline as `local_jwks`), tokens from `Authorization: Bearer`, forwarded
    /// upstream (`forward: true`), and required on every path. A request without a valid token gets 401 from Envoy
    /// itself; the provider accepts any issuer and audience.
    pub fn jwt_authn(mut self, jwks: &serde_json::Value) -> Self {
        self.jwt_authn = Some(jwks.to_string());
        self
    }

    /// Envoy's `--log-level`.
    pub fn log_level(mut self, level: &str) -> Self {
        self.log_level = level.into();
        self
    }

    /// Starts Envoy and waits until it is ready and its listener is bound.
    ///
    /// # Panics
    ///
    /// If Envoy is missing, exits, or is not ready within 30 s; the message carries its log.
    pub fn start(self) -> Envoy {
        Envoy::start(&self)
    }

    /// The bootstrap YAML for a run whose files live in `dir`.
    pub fn bootstrap_yaml(&self, dir: &Path) -> String {
        let q = |s: &str| serde_json::Value::from(s).to_string();
        let mut yaml = String::new();
        yaml.push_str("admin:\n  address: { socket_address: { address: 127.0.0.1, port_value: 0 } }\n");
        yaml.push_str("static_resources:\n  listeners:\n  - name: ingress\n");
        yaml.push_str("    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }\n");
        // Otherwise listener stats are named after the configured address, `127.0.0.1_0`, not the bound port.
        yaml.push_str(&format!("    stat_prefix: {LISTENER_STAT_PREFIX}\n"));
        yaml.push_str("    filter_chains:\n    - filters:\n");
        yaml.push_str("      - name: envoy.filters.network.http_connection_manager\n        typed_config:\n");
        yaml.push_str(concat!(
            "          \"@type\": type.googleapis.com/",
            "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager\n",
            "          stat_prefix: ingress\n",
            "          codec_type: AUTO\n",
            // Tests choose request ids to find their requests in the access log and the block response.
            "          preserve_external_request_id: true\n",
        ));
        if self.access_log {
            let path = dir.join("access.log");
            yaml.push_str(
                "          access_log:\n          - name: envoy.access_loggers.file\n            typed_config:\n",
            );
            yaml.push_str(
                "              \"@type\": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog\n",
            );
            yaml.push_str(&format!("              path: {}\n", q(&path.to_string_lossy())));
            yaml.push_str("              log_format:\n                json_format:\n");
            for (field, operator) in [
                ("method", "%REQ(:METHOD)%".to_string()),
                ("path", "%REQ(:PATH)%".to_string()),
                ("status", "%RESPONSE_CODE%".to_string()),
                ("request_id", "%REQ(X-REQUEST-ID)%".to_string()),
                ("user_agent", "%REQ(USER-AGENT)%".to_string()),
                ("upstream_host", "%UPSTREAM_HOST%".to_string()),
                ("response_flags", "%RESPONSE_FLAGS%".to_string()),
                ("details", "%RESPONSE_CODE_DETAILS%".to_string()),
                ("duration_ms", "%DURATION%".to_string()),
                (VERDICT_FIELD, format!("%FILTER_STATE({VERDICT_FILTER_STATE}:PLAIN)%")),
            ] {
                yaml.push_str(&format!("                  {field}: {}\n", q(&operator)));
            }
        }
        yaml.push_str("          route_config:\n            name: local\n");
        let direct_body = self.direct_body.as_ref().filter(|_| self.direct_response);
        if let Some((body, _)) = direct_body.filter(|(body, _)| body.len() > DEFAULT_MAX_DIRECT_RESPONSE_BODY) {
            yaml.push_str(&format!("            max_direct_response_body_size_bytes: {}\n", body.len()));
        }
        yaml.push_str("            virtual_hosts:\n");
        yaml.push_str("            - name: all\n              domains: [\"*\"]\n              routes:\n");
        yaml.push_str("              - match: { prefix: \"/\" }\n");
        if let Some((body, content_type)) = direct_body {
            yaml.push_str(&format!(
                "                direct_response: {{ status: 200, body: {{ inline_string: {} }} }}\n",
                q(body)
            ));
            // Envoy would answer `text/plain`; a header the route adds is set before that default applies.
            yaml.push_str("                response_headers_to_add:\n");
            yaml.push_str(&format!("                - header: {{ key: content-type, value: {} }}\n", q(content_type)));
            yaml.push_str("                  append_action: OVERWRITE_IF_EXISTS_OR_ADD\n");
        } else if self.direct_response {
            yaml.push_str(&format!(
                "                direct_response: {{ status: 200, body: {{ inline_string: {} }} }}\n",
                q(DIRECT_RESPONSE_BODY)
            ));
        } else {
            yaml.push_str("                route: { cluster: upstream, timeout: 10s }\n");
        }
        yaml.push_str("          http_filters:\n");
        if let Some(jwks) = &self.jwt_authn {
            yaml.push_str("          - name: envoy.filters.http.jwt_authn\n            typed_config:\n");
            yaml.push_str(concat!(
                "              \"@type\": type.googleapis.com/",
                "envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication\n",
            ));
            yaml.push_str(&format!("              providers:\n                {JWT_PROVIDER}:\n"));
            yaml.push_str(&format!("                  local_jwks: {{ inline_string: {} }}\n", q(jwks)));
            yaml.push_str("                  forward: true\n");
            yaml.push_str("              rules:\n              - match: { prefix: \"/\" }\n");
            yaml.push_str(&format!("                requires: {{ provider_name: {JWT_PROVIDER} }}\n"));
        }
        if let Some(filter) = &self.filter {
            let name = q(&filter.name);
            yaml.push_str(&format!("          - name: {name}\n            typed_config:\n"));
            yaml.push_str("              \"@type\": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm\n");
            yaml.push_str(&format!("              config:\n                name: {name}\n"));
            yaml.push_str(&format!("                root_id: {name}\n"));
            yaml.push_str("                configuration:\n");
            yaml.push_str("                  \"@type\": type.googleapis.com/google.protobuf.StringValue\n");
            yaml.push_str(&format!("                  value: {}\n", q(&filter.configuration)));
            // As in envoy-examples/envoy.yaml: a VM that fails at run time is replaced for the next request.
            yaml.push_str("                failure_policy: FAIL_RELOAD\n");
            yaml.push_str("                reload_config: { backoff: { base_interval: 1s, max_interval: 30s } }\n");
            yaml.push_str(&format!("                vm_config:\n                  vm_id: {name}\n"));
            yaml.push_str("                  runtime: envoy.wasm.runtime.v8\n");
            yaml.push_str(&format!(
                "                  code: {{ local: {{ filename: {} }} }}\n",
                q(&filter.wasm.to_string_lossy())
            ));
        }
        yaml.push_str("          - name: envoy.filters.http.router\n            typed_config:\n");
        yaml.push_str("              \"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router\n");
        yaml.push_str("  clusters:\n");
        let mut any_cluster = false;
        let upstream: Vec<SocketAddr> = self.upstream.into_iter().collect();
        for (name, addrs) in [("upstream", &upstream), (CONTROL_PLANE_CLUSTER, &self.control_plane)] {
            if addrs.is_empty() {
                continue;
            }
            any_cluster = true;
            yaml.push_str(&format!("  - name: {name}\n    type: STATIC\n    connect_timeout: 1s\n"));
            if addrs.len() > 1 {
                yaml.push_str("    lb_policy: ROUND_ROBIN\n");
                yaml.push_str(concat!(
                    "    health_checks:\n",
                    "    - { timeout: 1s, interval: 1s, no_traffic_interval: 1s, unhealthy_threshold: 1, ",
                    "healthy_threshold: 1, tcp_health_check: {} }\n",
                    "    outlier_detection: { split_external_local_origin_errors: true, ",
                    "consecutive_local_origin_failure: 1, interval: 1s, base_ejection_time: 5s, ",
                    "max_ejection_percent: 50 }\n",
                ));
            }
            yaml.push_str(&format!(
                "    load_assignment:\n      cluster_name: {name}\n      endpoints:\n      - lb_endpoints:\n"
            ));
            for addr in addrs {
                yaml.push_str(&format!(
                    "        - endpoint: {{ address: {{ socket_address: {{ address: {}, port_value: {} }} }} }}\n",
                    addr.ip(),
                    addr.port()
                ));
            }
        }
        if !any_cluster {
            yaml.push_str("  []\n");
        }
        yaml
    }
}

/// A running Envoy. Killed on drop, after checking its log for [`CRITICAL_WASM`] (unless already panicking).
pub struct Envoy {
    dir: TempDir,
    child: Mutex<Child>,
    pid: u32,
    admin: SocketAddr,
    listener: SocketAddr,
    concurrency: u32,
}

impl Envoy {
    fn start(config: &EnvoyConfig) -> Self {
        let envoy = envoy_binary();
        let dir = tempfile::Builder::new().prefix("portcullis-envoy-").tempdir().expect("envoy temp dir");
        let config_path = dir.path().join("envoy.yaml");
        std::fs::write(&config_path, config.bootstrap_yaml(dir.path())).expect("write envoy.yaml");
        let admin_path = dir.path().join("admin.txt");
        let stdout = std::fs::File::create(dir.path().join("stdout.log")).expect("create envoy stdout file");
        let stderr = std::fs::File::create(dir.path().join("stderr.log")).expect("create envoy stderr file");
        let child = Command::new(envoy)
            .arg("-c")
            .arg(&config_path)
            .args(["--concurrency", &config.concurrency.to_string()])
            .args(["--base-id", &unique_base_id().to_string()])
            // No shared memory or domain sockets: nothing for parallel runs (or a killed one) to collide on.
            .arg("--disable-hot-restart")
            .args(["--log-level", &config.log_level])
            .arg("--log-path")
            .arg(dir.path().join("envoy.log"))
            .arg("--admin-address-path")
            .arg(&admin_path)
            // Access log lines within 100 ms rather than Envoy's default 10 s.
            .args(["--file-flush-interval-msec", "100"])
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .expect("spawn envoy");
        let mut envoy = Self {
            dir,
            pid: child.id(),
            child: Mutex::new(child),
            admin: SocketAddr::from(([127, 0, 0, 1], 0)),
            listener: SocketAddr::from(([127, 0, 0, 1], 0)),
            concurrency: config.concurrency,
        };
        envoy.wait_until_ready(&admin_path);
        envoy
    }

    fn wait_until_ready(&mut self, admin_path: &Path) {
        let mut admin = None;
        let found = eventually(START_TIMEOUT, || {
            if !self.is_running() {
                return true;
            }
            admin = std::fs::read_to_string(admin_path).ok().and_then(|s| s.trim().parse::<SocketAddr>().ok());
            admin.is_some()
        });
        let Some(admin) = admin.filter(|_| found) else { self.fail_start("did not write its admin address") };
        self.admin = admin;
        let ready = eventually(START_TIMEOUT, || {
            !self.is_running() || self.try_admin_get("/ready").is_ok_and(|r| r.status == 200)
        });
        if !ready || !self.is_running() {
            self.fail_start("did not become ready");
        }
        let listeners = self.admin_get("/listeners?format=json").json();
        let port = listeners["listener_statuses"]
            .as_array()
            .and_then(|all| all.iter().find(|l| l["name"] == "ingress"))
            .and_then(|l| l["local_address"]["socket_address"]["port_value"].as_u64())
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or_else(|| panic!("no bound port for listener `ingress` in {listeners}"));
        self.listener = SocketAddr::from(([127, 0, 0, 1], port));
    }

    fn fail_start(&mut self, what: &str) -> ! {
        let child = self.child.get_mut().unwrap_or_else(|e| e.into_inner());
        let exited = child.try_wait().ok().flatten();
        terminate(child, Duration::from_secs(1));
        panic!(
            "Envoy {what} (exit: {exited:?}).\nstderr:\n{}\nenvoy.log (tail):\n{}",
            self.read_file("stderr.log"),
            tail(&self.log_text(), 60)
        );
    }

    /// The listener's address.
    pub fn addr(&self) -> SocketAddr {
        self.listener
    }

    /// The admin interface's address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
    }

    /// The process id (constant for the life of this value: Envoy is never restarted under it).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Whether the process is still running.
    pub fn is_running(&self) -> bool {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        matches!(child.try_wait(), Ok(None))
    }

    /// The temporary directory holding `envoy.yaml`, `envoy.log` and `access.log`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `GET path` through the listener on a new connection.
    ///
    /// # Panics
    ///
    /// On an I/O error.
    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
        http::get(self.listener, path, headers)
    }

    /// A keep-alive client for the listener.
    pub fn client(&self) -> HttpClient {
        HttpClient::new(self.listener)
    }

    /// A client for the listener that opens a new connection for every request.
    pub fn client_new_connection_each(&self) -> HttpClient {
        HttpClient::new_connection_each(self.listener)
    }

    /// `GET path` on the admin interface.
    ///
    /// # Panics
    ///
    /// On an I/O error.
    pub fn admin_get(&self, path: &str) -> HttpResponse {
        self.try_admin_get(path).unwrap_or_else(|e| panic!("admin GET {path}: {e}"))
    }

    fn try_admin_get(&self, path: &str) -> std::io::Result<HttpResponse> {
        HttpClient::new_connection_each(self.admin).with_timeout(Duration::from_secs(5)).try_request(
            "GET",
            path,
            &[],
            b"",
        )
    }

    /// All stats, as the admin `/stats` text (`name: value` lines).
    pub fn stats(&self) -> String {
        self.admin_get("/stats").text()
    }

    /// The value of counter or gauge `name`, if Envoy has it.
    pub fn stat(&self, name: &str) -> Option<u64> {
        parse_stat(&self.stats(), name)
    }

    /// The value of metric `name` defined by a wasm module (Envoy prefixes it with [`WASM_STAT_PREFIX`]).
    pub fn wasm_stat(&self, name: &str) -> Option<u64> {
        self.stat(&format!("{WASM_STAT_PREFIX}{name}"))
    }

    /// Listener stat `stat` of worker `worker`, e.g. `downstream_cx_total` (0 if the worker has none yet).
    pub fn worker_stat(&self, worker: u32, stat: &str) -> u64 {
        let name = format!("listener.{LISTENER_STAT_PREFIX}.worker_{worker}.{stat}");
        self.stat(&name).unwrap_or(0)
    }

    /// Connections each worker has accepted so far (`listener.ingress.worker_N.downstream_cx_total`), indexed by
    /// worker.
    pub fn worker_connections(&self) -> Vec<u64> {
        let stats = self.admin_get(&format!("/stats?filter=listener.{LISTENER_STAT_PREFIX}.worker_")).text();
        (0..self.concurrency)
            .map(|w| {
                let name = format!("listener.{LISTENER_STAT_PREFIX}.worker_{w}.downstream_cx_total");
                parse_stat(&stats, &name).unwrap_or(0)
            })
            .collect()
    }

    /// `GET path` on a new connection, and the worker that accepted it (told by its connection counter, so only
    /// meaningful while nothing else connects).
    ///
    /// # Panics
    ///
    /// On an I/O error.
    pub fn get_on_some_worker(&self, path: &str, headers: &[(&str, &str)]) -> (HttpResponse, Option<u32>) {
        let before = self.worker_connections();
        let response = self.get(path, headers);
        let after = self.worker_connections();
        let worker = (0..self.concurrency).find(|&w| after[w as usize] > before[w as usize]);
        (response, worker)
    }

    /// Waits up to `timeout` until every worker has answered `GET path` with `status` (like
    /// [`crate::Stack::wait_for_status_on_every_worker`], for an Envoy outside a [`crate::Stack`]). Needs the listener
    /// to itself: it tells workers apart by their connection counters.
    ///
    /// # Panics
    ///
    /// If some worker never does, with the last answer and Envoy's `portcullis` log lines.
    pub fn wait_for_status_on_every_worker(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        status: u16,
        timeout: Duration,
    ) {
        let mut confirmed = vec![false; self.concurrency as usize];
        let mut last = None;
        let reached = eventually(timeout, || {
            let (response, worker) = self.get_on_some_worker(path, headers);
            if let Some(worker) = worker.filter(|_| response.status == status) {
                confirmed[worker as usize] = true;
            }
            last = Some(response);
            confirmed.iter().all(|c| *c)
        });
        if !reached {
            let last = last.map(|r| format!("{} {}", r.status, r.text())).unwrap_or_default();
            panic!(
                "GET {path} never answered {status} on every worker within {timeout:?} (confirmed: {confirmed:?}, \
                 last: {last}).\nEnvoy's portcullis log lines:\n{}",
                self.log_lines_containing("portcullis").join("\n")
            );
        }
    }

    /// Sends `GET path` on new connections, back to back (2 ms apart), until one answers `status`, and returns how
    /// long that took from the call; `None` if none did within `timeout`. For measuring how fast a pushed bundle
    /// reaches the first worker.
    pub fn time_until_status(&self, path: &str, status: u16, timeout: Duration) -> Option<Duration> {
        let start = std::time::Instant::now();
        let mut client = self.client_new_connection_each().with_timeout(Duration::from_secs(5));
        while start.elapsed() < timeout {
            if client.try_request("GET", path, &[], b"").is_ok_and(|r| r.status == status) {
                return Some(start.elapsed());
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        None
    }

    /// Worker threads Envoy runs (`--concurrency`).
    pub fn concurrency(&self) -> u32 {
        self.concurrency
    }

    /// Envoy's own log (`--log-path`).
    pub fn log_text(&self) -> String {
        self.read_file("envoy.log")
    }

    /// Lines of Envoy's log containing `needle`.
    pub fn log_lines_containing(&self, needle: &str) -> Vec<String> {
        self.log_text().lines().filter(|l| l.contains(needle)).map(str::to_string).collect()
    }

    /// The access log, one JSON object per request, in the order written. Lines flush within ~100 ms of the
    /// request ending: poll with [`eventually`].
    ///
    /// # Panics
    ///
    /// If a line is not JSON.
    pub fn access_log_lines(&self) -> Vec<serde_json::Value> {
        self.read_file("access.log")
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("access log line is not JSON ({e}): {l}")))
            .collect()
    }

    /// The access log entry for the request whose `x-request-id` was `request_id`, once it has been written.
    pub fn access_log_entry(&self, request_id: &str) -> Option<serde_json::Value> {
        self.access_log_lines().into_iter().find(|l| l["request_id"] == request_id)
    }

    /// The Portcullis verdict logged for `request_id` (see [`verdict_of`]), waiting for its access log entry.
    ///
    /// # Panics
    ///
    /// If the entry does not appear within 5 s.
    pub fn verdict_for(&self, request_id: &str) -> Option<BTreeMap<String, String>> {
        verdict_of(&self.wait_access_log_entry(request_id))
    }

    /// The verdict of `request_id`, which must have one.
    ///
    /// # Panics
    ///
    /// If the request left no verdict (the message shows its access-log entry), or no entry within 5 s.
    pub fn verdict(&self, request_id: &str) -> Verdict {
        self.verdict_for(request_id).unwrap_or_else(|| {
            panic!("no verdict logged for {request_id}; access log entry: {}", self.wait_access_log_entry(request_id))
        })
    }

    /// Waits up to 5 s for the access log entry of `request_id`.
    ///
    /// # Panics
    ///
    /// If it does not appear.
    pub fn wait_access_log_entry(&self, request_id: &str) -> serde_json::Value {
        let mut entry = None;
        eventually(Duration::from_secs(5), || {
            entry = self.access_log_entry(request_id);
            entry.is_some()
        });
        entry.unwrap_or_else(|| panic!("no access log line for request id {request_id}"))
    }

    /// Panics if Envoy's log has a [`CRITICAL_WASM`] line (a panicked or failed VM), quoting them.
    pub fn assert_no_critical_wasm(&self) {
        let critical = self.log_lines_containing(CRITICAL_WASM);
        assert!(critical.is_empty(), "Envoy logged {CRITICAL_WASM}:\n{}", critical.join("\n"));
    }

    fn read_file(&self, name: &str) -> String {
        std::fs::read(self.dir.path().join(name)).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        terminate(self.child.get_mut().unwrap_or_else(|e| e.into_inner()), Duration::from_secs(5));
        let panicking = std::thread::panicking();
        let critical = self.log_lines_containing(CRITICAL_WASM);
        if panicking {
            // The test already failed: leave its evidence behind rather than a second panic.
            eprintln!("envoy.log (tail):\n{}", tail(&self.log_text(), 40));
        }
        if panicking || !critical.is_empty() || std::env::var_os(KEEP_FILES_ENV).is_some() {
            let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("temp dir"));
            eprintln!("kept Envoy's files in {}", dir.keep().display());
        }
        if !panicking {
            assert!(critical.is_empty(), "Envoy logged {CRITICAL_WASM}:\n{}", critical.join("\n"));
        }
    }
}

/// A verdict line's fields, by name (`action`, `rule`, `counters`, ...).
pub type Verdict = BTreeMap<String, String>;

/// Asserts `verdict[key] == expected` (`None`: the key is absent), showing the whole verdict when it is not.
///
/// # Panics
///
/// When it is not.
pub fn assert_field(verdict: &Verdict, key: &str, expected: Option<&str>) {
    assert_eq!(verdict.get(key).map(String::as_str), expected, "`{key}` in {verdict:?}");
}

/// The verdict in an access log entry, as logfmt pairs (`action`, `rule`, `status`, `revision`, `bundle`), or
/// `None` when no rule matched (the field is `null` or `-`).
pub fn verdict_of(entry: &serde_json::Value) -> Option<BTreeMap<String, String>> {
    let text = entry[VERDICT_FIELD].as_str().filter(|s| !s.is_empty() && *s != "-")?;
    Some(parse_logfmt(text))
}

/// Parses `key=value key2="quoted value"` pairs; a bare key maps to an empty value.
pub fn parse_logfmt(text: &str) -> BTreeMap<String, String> {
    let mut pairs = BTreeMap::new();
    let mut rest = text.trim_start();
    while !rest.is_empty() {
        let key_end = rest.find(['=', ' ']).unwrap_or(rest.len());
        let key = &rest[..key_end];
        rest = &rest[key_end..];
        let value = if let Some(after) = rest.strip_prefix("=\"") {
            let end = after.find('"').unwrap_or(after.len());
            rest = after.get(end + 1..).unwrap_or("");
            &after[..end]
        } else if let Some(after) = rest.strip_prefix('=') {
            let end = after.find(' ').unwrap_or(after.len());
            rest = &after[end..];
            &after[..end]
        } else {
            ""
        };
        if !key.is_empty() {
            pairs.insert(key.to_string(), value.to_string());
        }
        rest = rest.trim_start();
    }
    pairs
}

/// The value of `name` in admin `/stats` text.
pub fn parse_stat(stats: &str, name: &str) -> Option<u64> {
    stats.lines().find_map(|line| {
        let (n, value) = line.split_once(": ")?;
        if n == name {
            value.trim().parse().ok()
        } else {
            None
        }
    })
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_are_parsed_from_logfmt() {
        let entry = serde_json::json!({
            "portcullis": "action=block rule=admin-needs-key status=403 revision=7 bundle=3f2a9c1d note=\"a b\" flag"
        });
        let verdict = verdict_of(&entry).unwrap();
        assert_eq!(verdict["action"], "block");
        assert_eq!(verdict["rule"], "admin-needs-key");
        assert_eq!(verdict["status"], "403");
        assert_eq!(verdict["revision"], "7");
        assert_eq!(verdict["bundle"], "3f2a9c1d");
        assert_eq!(verdict["note"], "a b");
        assert_eq!(verdict["flag"], "");
        assert_eq!(verdict_of(&serde_json::json!({"portcullis": null})), None);
        assert_eq!(verdict_of(&serde_json::json!({"portcullis": "-"})), None);
    }

    #[test]
    fn direct_response_bodies_past_4_kib_raise_the_limit() {
        let dir = Path::new("/tmp");
        let default = EnvoyConfig::new().direct_response(true).bootstrap_yaml(dir);
        assert!(default.contains(r#"inline_string: "{\"direct\":\"ok\"}""#), "{default}");
        assert!(!default.contains("max_direct_response_body_size_bytes"));
        assert!(!default.contains("response_headers_to_add"));

        let small = EnvoyConfig::new().direct_response_body("{}", "application/json").bootstrap_yaml(dir);
        assert!(!small.contains("max_direct_response_body_size_bytes"), "{small}");
        assert!(small.contains(r#"key: content-type, value: "application/json""#), "{small}");

        let large = EnvoyConfig::new().direct_response_body("x".repeat(20_000), "text/csv").bootstrap_yaml(dir);
        assert!(large.contains("max_direct_response_body_size_bytes: 20000\n"), "{large}");
        let off = EnvoyConfig::new()
            .direct_response_body("{}", "application/json")
            .direct_response(false)
            .bootstrap_yaml(dir);
        assert!(off.contains("route: { cluster: upstream"), "{off}");
    }

    #[test]
    fn jwt_authn_comes_first_and_requires_its_provider() {
        let dir = Path::new("/tmp");
        let jwks = serde_json::json!({ "keys": [{ "kty": "EC", "crv": "P-256", "x": "AA", "y": "AA", "kid": "k" }] });
        let yaml = EnvoyConfig::new()
            .direct_response(true)
            .wasm_filter(WasmFilter {
                wasm: PathBuf::from("/x.wasm"),
                configuration: String::new(),
                name: "noop".into(),
            })
            .jwt_authn(&jwks)
            .bootstrap_yaml(dir);
        let jwt = yaml.find("envoy.filters.http.jwt_authn").unwrap();
        assert!(jwt < yaml.find("name: \"noop\"").unwrap(), "{yaml}");
        assert!(
            yaml.contains(&format!("local_jwks: {{ inline_string: {} }}", serde_json::Value::from(jwks.to_string())))
        );
        assert!(yaml.contains("requires: { provider_name: portcullis_bench }"), "{yaml}");
        assert!(!EnvoyConfig::new().bootstrap_yaml(dir).contains("jwt_authn"));
    }

    #[test]
    fn control_plane_replicas_are_balanced_and_health_checked() {
        let dir = Path::new("/tmp");
        let a = SocketAddr::from(([127, 0, 0, 1], 9001));
        let b = SocketAddr::from(([127, 0, 0, 1], 9002));
        let single = EnvoyConfig::new().control_plane(a).bootstrap_yaml(dir);
        assert_eq!(single, EnvoyConfig::new().control_plane_replicas(&[a]).bootstrap_yaml(dir));
        assert!(!single.contains("health_checks") && !single.contains("outlier_detection"), "{single}");
        let both = EnvoyConfig::new().control_plane_replicas(&[a, b]).bootstrap_yaml(dir);
        let cluster = &both[both.find(&format!("name: {CONTROL_PLANE_CLUSTER}")).unwrap()..];
        for needle in
            ["lb_policy: ROUND_ROBIN", "tcp_health_check", "outlier_detection", "port_value: 9001", "port_value: 9002"]
        {
            assert!(cluster.contains(needle), "{needle} missing:\n{both}");
        }
    }

    #[test]
    fn stats_are_parsed_by_exact_name() {
        let stats = "a.b: 3\na.b.c: 4\nwasmcustom.portcullis.bundle_loaded: 1\nh: P0(nan,1)\n";
        assert_eq!(parse_stat(stats, "a.b"), Some(3));
        assert_eq!(parse_stat(stats, "a.b.c"), Some(4));
        assert_eq!(parse_stat(stats, "wasmcustom.portcullis.bundle_loaded"), Some(1));
        assert_eq!(parse_stat(stats, "h"), None);
        assert_eq!(parse_stat(stats, "missing"), None);
    }
}
