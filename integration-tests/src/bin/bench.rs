//! `make bench`: what Portcullis costs Envoy, against Envoy alone and Envoy with a wasm filter that does nothing.
//!
//! # What runs
//!
//! Each section lives in a module of its own under `src/bench/`: `variants.rs` (this part), `attacks.rs`,
//! `propagation.rs` and `over_time.rs`; this file has what they share (settings, rounds, tables, the report).
//!
//! Eleven Envoys at once, each with one worker (`--concurrency 1`), no access log, and a route answering by itself
//! (Envoy's direct response), so no upstream takes part. Three answer `200 {"direct":"ok"}` and measure the rules on
//! request headers:
//!
//! - **plain**: no wasm filter;
//! - **no-op wasm**: `dist/noop.wasm`, the cost of the V8 runtime and the proxy-wasm calls alone;
//! - **Portcullis**: `dist/portcullis.wasm` enforcing `envoy-examples/policies/demo.yaml`, compiled and pushed to
//!   a control plane the bench starts; measuring begins once `GET /admin` is refused with 403.
//!
//! Two answer with a realistic ~16 KiB JSON page of orders ([`orders_document`]: names, addresses, emails, phone
//! numbers, order ids, amounts, timestamps and two test card numbers) and measure sensitive-data inspection:
//!
//! - **no-op wasm + JSON**: the baseline, the no-op filter passing the same response;
//! - **Portcullis + JSON**: [`SENSITIVE_POLICY`], which puts every built-in classifier on `response.body`, adds the
//!   endpoint to a list when a card number goes out and monitors requests to listed endpoints, so every request runs
//!   the whole path: scan, list addition, list lookup, verdict. Measuring begins once a response was seen to be
//!   inspected (`exchanges_with_detections` grew) and the next request was monitored (`requests_monitored` grew);
//!   afterwards every measured request must have counted in both.
//!
//! The pair's result is the CPU time Portcullis adds per request, and the response bytes divided by it: an estimate
//! of the MB/s scanned inside the VM that charges all added time to the scan. That Portcullis also runs with
//! `time_inspection: true`, so the filter times the scan itself with the host's clock: the MB/s of the scan alone.
//!
//! Six verify JWTs, minted by the bench with an ES256 and an RS256 key ([`portcullis_integration_tests::jwt`]) and
//! sent as `Authorization: Bearer` in place of the opaque token:
//!
//! - **jwt_authn ES256 / RS256**: Envoy's native `jwt_authn` filter with the two public keys as an inline JWKS
//!   (`local_jwks`, `forward: true`, required on every path), one token on every request (`jwt_authn` keeps no
//!   cache of verified tokens unless configured to, so each request is verified); compared with plain Envoy;
//! - **Portcullis ES256 / RS256, cached**: `tokens_policy` (the same keys, issuer, audience, lifetime checks and
//!   blocking rules for forged, stale and misaddressed tokens), the same token on every request: after the first,
//!   each request costs a SHA-256 and a lookup in the filter's per-VM analysis cache;
//! - **Portcullis ES256 / RS256, uncached**: a different token on every request, from `BENCH_UNCACHED_TOKENS`
//!   tokens (distinct `jti`) sent round-robin, one pass per run: more than twice the filter's cache (1024 analyses,
//!   CLOCK eviction), so a cyclic pass never finds a token still cached and every request verifies a signature.
//!
//! Portcullis is compared with the no-op wasm filter. Before measuring, each of the six must answer 200 to its
//! token and 401 to the same token with its signature tampered with, and Portcullis must not block any measured
//! request (`requests_blocked` unchanged).
//!
//! # Propagation
//!
//! After the rounds, the bench times how fast a policy change reaches traffic: from `portcullis push` returning to
//! the first request blocked by the new rule, over `BENCH_PROPAGATION_PUSHES` pushes (default
//! [`DEFAULT_PROPAGATION_PUSHES`]) per way of fetching ([`PROPAGATION_MODES`]: long polling, and plain polling every
//! second for comparison). Each mode gets its own control plane and an Envoy with two workers; each push is a new
//! revision whose new rule blocks a path no earlier revision blocked, probed back to back on new connections. The
//! report gives the median, p90 and max.
//!
//! # Over time
//!
//! Two sections measure counters and lists in shared data, each with Envoys of two workers (so that both update
//! the same buckets, which is where compare-and-swap contention comes from) and their own control plane. They live
//! in `src/bench/over_time.rs` (module `over_time`), with the policies and constants named here:
//!
//! - **Counters and lists per request** (`measure_counters`): plain Envoy, the no-op wasm filter, Portcullis with
//!   one rule (`FLOOR_POLICY`: what any bundle costs), Portcullis with the token identity only
//!   (`IDENTITY_POLICY`), Portcullis with `COUNTERS_POLICY` (three counters keyed by the token and the endpoint,
//!   updated with the request headers, two dynamic lists looked up, a rule reading a counter) with its counters
//!   batched, the same keyed by the client address (`counters_by_address_policy`), and `COUNTERS_POLICY` exact
//!   (`counters_exact_policy`), in rounds like the variants above, `BENCH_COUNTER_REQUESTS` requests each
//!   (default [`DEFAULT_COUNTER_REQUESTS`]) rotating over [`COUNTER_KEYS`] API keys, as fast as Envoy answers or
//!   paced at `BENCH_COUNTER_RATE` requests per second. Batched (`batched: true`), a worker writes its counts to shared data once per key per 250 ms tick
//!   and reads them cached per tick, so other workers' counts show within a tick; exact, every request reads and
//!   writes shared data for each counter. Reports for both the added CPU per request against the issue's aim, and
//!   from the filter's stats the compare-and-swap retries per shared-data write and the writes per request; every
//!   measured request must have counted exactly `COUNTER_UPDATES_PER_REQUEST` counter updates, none may have
//!   failed, and the exact counters must have written once per update, the batched ones less often.
//! - **Memory after a flood of one-off tokens** (`measure_flood`): Portcullis with one per-token counter
//!   (`flood_policy`) under `shared_data_budget_bytes` `FLOOD_BUDGET_BYTES`, sent `BENCH_FLOOD_TOKENS` distinct
//!   tokens (default [`DEFAULT_FLOOD_TOKENS`]) with [`HEAVY_HITTERS`] heavy hitters mixed in, in chunks of
//!   `FLOOD_CHUNK` requests. Reports the `shared_data_bytes` gauge once a whole sweep after the flood agrees with
//!   the next, its limit, the budget, Envoy's RSS before and after, and the heavy hitters' counts as the filter
//!   logs them for one `GET /whoami` each, against the counts sent.
//!
//! # Attacks
//!
//! Four more Envoys in rounds of their own ([`attacks::measure_attacks`], in `src/bench/attacks.rs`): a GET with
//! five query parameters through Portcullis enforcing `envoy-examples/policies/owasp.yaml` (every attack detection
//! on), and a 16 KiB JSON POST through Portcullis with owasp.yaml plus every built-in sensitive-data classifier on
//! `request.body`, each against the no-op wasm filter sending the same request, with the issue's aims (at most
//! 10 µs and 60 µs added). N is `BENCH_REQUESTS` for the GETs and `BENCH_SENSITIVE_REQUESTS` for the POSTs. The
//! filter's stats must show every measured POST inspected and monitored, and nothing blocked; an attack in the
//! query and one in the body must be blocked after the rounds.
//!
//! `BENCH_ONLY` runs some sections only: a comma-separated list of `variants` (the eleven Envoys in rounds: rules
//! on headers, sensitive data, JWTs), `attacks`, `propagation`, `counters`, `flood`, or `over_time` (both over-time
//! sections). Unset, everything runs. For a quick check of the attacks section:
//! `BENCH_ONLY=attacks BENCH_REQUESTS=2000 BENCH_SENSITIVE_REQUESTS=2000 BENCH_ROUNDS=2 make bench`. For a quick check of the over-time sections:
//! `BENCH_ONLY=over_time BENCH_COUNTER_REQUESTS=2000 BENCH_ROUNDS=2 BENCH_FLOOD_TOKENS=20000 make bench`.
//!
//! # How it measures
//!
//! A closed-loop generator ([`portcullis_integration_tests::load`]) sends one realistic allowed request
//! (`GET /api/v1/orders?page=2` with browser headers, a bearer token and cookies; every demo rule has to be
//! evaluated to let it through) over 8 keep-alive connections. After one warm-up run of N per variant, each of R
//! rounds runs the variants in rotated order, N requests each, recording wall time and the CPU time the Envoy
//! process spent (summed over its threads from `/proc/<pid>/task/*/schedstat`). Interleaving spreads machine noise
//! over all variants alike. The report gives medians over the rounds, and how much CPU other processes took
//! meanwhile, so a noisy run says so. The JSON pair and the JWT variants take part in the same rounds and rotation
//! (eleven variants), each with its own request count.
//!
//! `BENCH_REQUESTS` (N, default 20000), `BENCH_SENSITIVE_REQUESTS` (N of the JSON pair, default
//! [`DEFAULT_SENSITIVE_REQUESTS`]), `BENCH_TOKEN_REQUESTS` (N of `jwt_authn` and cached Portcullis, default
//! [`DEFAULT_TOKEN_REQUESTS`]), `BENCH_UNCACHED_TOKENS` (tokens per key, and N, of uncached Portcullis, default
//! [`DEFAULT_UNCACHED_TOKENS`]), `BENCH_ROUNDS` (R, default 5) and `BENCH_CONNECTIONS` (default 8) override the
//! defaults. `BENCH_PIN=1` pins the Envoys to the last CPU and the generator to the others, so the
//! worker under load has a core to itself; not the default, because on a busy machine Envoy then cannot move away
//! from other work. The report goes to stdout and `target/bench/report.md`, rewritten as each section ends. Timings
//! are never asserted: the exit status is non-zero only when something broke (a process did not start, a response
//! was not 200, Portcullis did not enforce the policy, a filter stat disagreed with the requests sent).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use portcullis_integration_tests::artifacts::{envoy_binary, repo_root};
use portcullis_integration_tests::envoy::{parse_stat, WASM_STAT_PREFIX};
use portcullis_integration_tests::jwt::{self, TokenKeys, AUDIENCE, ISSUER};
use portcullis_integration_tests::load::{self, LoadReport};
use portcullis_integration_tests::{
    compile, eventually, plugin_config, verdict_of, ControlPlane, Envoy, EnvoyConfig, Upstream, WasmFilter,
};

/// The `attacks` section: kept in its own file, the bench being long enough already.
#[path = "../bench/attacks.rs"]
mod attacks;

/// The eleven Envoys in rounds: rules on request headers, sensitive data, JWTs.
#[path = "../bench/variants.rs"]
mod variants;

/// How fast a pushed policy reaches traffic.
#[path = "../bench/propagation.rs"]
mod propagation;

use propagation::{
    measure_propagation, propagation_table, PropagationMode, DEFAULT_PROPAGATION_PUSHES, PROPAGATION_MODES,
};
use variants::{
    measure_variants, orders_document, OrdersDocument, DEFAULT_SENSITIVE_REQUESTS, DEFAULT_TOKEN_REQUESTS,
    DEFAULT_UNCACHED_TOKENS, JSON, SENSITIVE_POLICY, TEST_CARDS,
};

/// The over-time sections: counters and lists per request, and the flood.
#[path = "../bench/over_time.rs"]
mod over_time;

use over_time::{
    flood_size, measure_counters, measure_flood, COUNTER_KEYS, DEFAULT_COUNTER_RATE, DEFAULT_COUNTER_REQUESTS,
    DEFAULT_FLOOD_TOKENS, HEAVY_HITTERS, OVER_TIME_WORKERS,
};

/// The command the report says it came from.
const COMMAND: &str = "make bench  (cargo run --release -p portcullis-integration-tests --bin bench)";

/// The request every connection sends: allowed by the demo policy, after all three rules were evaluated.
const PATH: &str = "/api/v1/orders?page=2";

/// How long Portcullis may take to fetch and enforce the policy after it was pushed.
const ENFORCE_TIMEOUT: Duration = Duration::from_secs(30);

/// How often every worker looks for a newer bundle in shared data (the filter's `TICK`).
const WORKER_TICK: Duration = Duration::from_millis(250);

/// Above this many cores' worth of other work during a run, the report warns that its numbers are noisy.
const NOISY_OTHER_CORES: f64 = 0.2;

fn main() -> ExitCode {
    stop_children_on_panic();
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("bench: FAILED: {message}");
            ExitCode::FAILURE
        }
    }
}

/// N, R, the connection count and whether to pin CPUs, from the environment or the defaults.
struct Settings {
    requests: u64,
    sensitive_requests: u64,
    token_requests: u64,
    uncached_tokens: u64,
    rounds: usize,
    connections: usize,
    pin: bool,
    propagation_pushes: u64,
    counter_requests: u64,
    /// Requests per second the counters variants are paced at (`None`: as fast as they answer).
    counter_rate: Option<f64>,
    flood_tokens: u64,
    sections: Sections,
}

impl Settings {
    fn from_env() -> Result<Self, String> {
        Ok(Self {
            requests: env_number("BENCH_REQUESTS", 20_000)?,
            sensitive_requests: env_number("BENCH_SENSITIVE_REQUESTS", DEFAULT_SENSITIVE_REQUESTS)?,
            token_requests: env_number("BENCH_TOKEN_REQUESTS", DEFAULT_TOKEN_REQUESTS)?,
            uncached_tokens: env_number("BENCH_UNCACHED_TOKENS", DEFAULT_UNCACHED_TOKENS)?,
            rounds: env_number("BENCH_ROUNDS", 5)?,
            connections: env_number("BENCH_CONNECTIONS", 8)?,
            pin: std::env::var("BENCH_PIN").is_ok_and(|v| v.trim() == "1"),
            propagation_pushes: env_number("BENCH_PROPAGATION_PUSHES", DEFAULT_PROPAGATION_PUSHES)?,
            counter_requests: env_number("BENCH_COUNTER_REQUESTS", DEFAULT_COUNTER_REQUESTS)?,
            counter_rate: match std::env::var("BENCH_COUNTER_RATE") {
                Ok(_) => Some(env_number("BENCH_COUNTER_RATE", 1.0)?),
                Err(_) => DEFAULT_COUNTER_RATE,
            },
            flood_tokens: env_number("BENCH_FLOOD_TOKENS", DEFAULT_FLOOD_TOKENS)?,
            sections: Sections::parse(&std::env::var("BENCH_ONLY").unwrap_or_default())?,
        })
    }
}

/// The parts of the bench that run: all of them, or those `BENCH_ONLY` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Sections {
    /// The eleven Envoys measured in rounds (rules on headers, sensitive data, JWTs).
    variants: bool,
    /// Attack detections on a GET and a JSON POST, in rounds of their own.
    attacks: bool,
    propagation: bool,
    /// Over time: counters and lists per request.
    counters: bool,
    /// Over time: memory after a flood of one-off tokens.
    flood: bool,
}

impl Sections {
    const ALL: Sections = Sections { variants: true, attacks: true, propagation: true, counters: true, flood: true };
    const NONE: Sections =
        Sections { variants: false, attacks: false, propagation: false, counters: false, flood: false };

    /// Parses `BENCH_ONLY`: empty for all, else a comma-separated list of section names.
    fn parse(text: &str) -> Result<Self, String> {
        if text.trim().is_empty() {
            return Ok(Self::ALL);
        }
        let mut only = Self::NONE;
        for name in text.split(',').map(str::trim).filter(|name| !name.is_empty()) {
            match name {
                "variants" => only.variants = true,
                "attacks" => only.attacks = true,
                "propagation" => only.propagation = true,
                "counters" => only.counters = true,
                "flood" => only.flood = true,
                "over_time" => (only.counters, only.flood) = (true, true),
                other => {
                    return Err(format!(
                        "BENCH_ONLY: unknown section {other:?} (expected a comma-separated list of variants, \
                         attacks, propagation, counters, flood, over_time)"
                    ))
                }
            }
        }
        if only == Self::NONE {
            return Err(format!("BENCH_ONLY={text:?} names no section"));
        }
        Ok(only)
    }

    /// The sections that run, by name.
    fn names(&self) -> String {
        let all = [
            (self.variants, "variants"),
            (self.attacks, "attacks"),
            (self.propagation, "propagation"),
            (self.counters, "counters"),
            (self.flood, "flood"),
        ];
        all.iter().filter(|(on, _)| *on).map(|(_, name)| *name).collect::<Vec<_>>().join(", ")
    }
}

fn env_number<T: std::str::FromStr + PartialOrd + From<u8>>(var: &str, default: T) -> Result<T, String> {
    let value = match std::env::var(var) {
        Ok(text) if !text.trim().is_empty() => {
            text.trim().parse::<T>().map_err(|_| format!("{var}={text:?} is not a number"))?
        }
        _ => default,
    };
    if value < T::from(1) {
        return Err(format!("{var} must be at least 1"));
    }
    Ok(value)
}

/// Which CPUs the Envoys and the load generator run on: with `BENCH_PIN=1`, apart, so that the worker under load
/// has a core to itself and neither steals the other's cache or time slices.
enum Placement {
    /// Without `BENCH_PIN=1`, or with a single CPU.
    Unpinned(&'static str),
    /// Every Envoy on `envoy`, this process's threads on `generator`.
    Pinned { envoy: Vec<usize>, generator: Vec<usize> },
}

impl Placement {
    fn plan(pin: bool) -> Result<Self, String> {
        if !pin {
            return Ok(Self::Unpinned("`BENCH_PIN=1` to pin Envoys and generator apart"));
        }
        let mut cpus = load::allowed_cpus().map_err(|e| format!("CPU affinity: {e}"))?;
        // The last allowed CPU for Envoy; the generator keeps the rest.
        match cpus.pop() {
            Some(last) if !cpus.is_empty() => Ok(Self::Pinned { envoy: vec![last], generator: cpus }),
            _ => Ok(Self::Unpinned("one CPU")),
        }
    }

    /// Pins the running Envoys, then this thread, whose affinity the load threads inherit. Envoys must be started
    /// first: they would inherit the generator's CPUs otherwise.
    fn apply<'a>(&self, envoys: impl IntoIterator<Item = (&'a str, &'a Envoy)>) -> Result<(), String> {
        let Self::Pinned { envoy: cpus, generator } = self else {
            return Ok(());
        };
        for (name, envoy) in envoys {
            load::pin(envoy.pid(), cpus).map_err(|e| format!("pin {name} to {cpus:?}: {e}"))?;
        }
        load::pin(0, generator).map_err(|e| format!("pin the load generator to {generator:?}: {e}"))
    }
}

impl std::fmt::Display for Placement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unpinned(why) => write!(f, "nothing pinned ({why})"),
            Self::Pinned { envoy, generator } => {
                write!(f, "Envoys pinned to CPU {envoy:?}, load generator to {generator:?} (`BENCH_PIN=1`)")
            }
        }
    }
}

/// One Envoy under test.
struct Variant {
    name: &'static str,
    envoy: Envoy,
    /// Requests per run.
    requests: u64,
    /// Requests of its own, sent round-robin, instead of the shared load request.
    own_requests: Option<Vec<Vec<u8>>>,
    /// Requests per second its own requests are paced at (`None`: closed loop).
    pace: Option<f64>,
    runs: Vec<Run>,
    totals: LoadReport,
}

/// One measured run of one variant.
#[derive(Clone, Copy)]
struct Run {
    round: usize,
    /// Requests sent (and answered or failed).
    completed: u64,
    requests_per_second: f64,
    /// Envoy's CPU time per request.
    cpu_us_per_request: f64,
    /// The load generator's (this process's) CPU time per request.
    generator_us_per_request: f64,
    /// Cores' worth of CPU that neither Envoy nor the generator used: other work disturbing the run.
    other_cores: f64,
}

/// CPU time consumed so far, in nanoseconds, by the Envoy under test, by this process, and by the whole machine.
struct CpuSnapshot {
    envoy: u64,
    generator: u64,
    machine: u64,
}

impl CpuSnapshot {
    fn take(variant: &Variant) -> Result<Self, String> {
        let pid = variant.envoy.pid();
        Ok(Self {
            envoy: load::process_cpu_ns(pid).map_err(|e| format!("CPU time of {} (pid {pid}): {e}", variant.name))?,
            generator: load::own_cpu_ns().map_err(|e| format!("own CPU time: {e}"))?,
            machine: load::machine_busy_ns().map_err(|e| format!("machine CPU time: {e}"))?,
        })
    }
}

fn run() -> Result<(), String> {
    let settings = Settings::from_env()?;
    let envoy_version = envoy_version();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let placement = Placement::plan(settings.pin)?;
    let document = orders_document();
    let mut report = Report::new(&preamble(&settings, &envoy_version, cores, &placement, &document));
    let started = Instant::now();
    let sections = settings.sections;
    if sections.variants {
        report.add(measure_variants(&settings, &placement, &document, started)?)?;
    }
    if sections.attacks {
        report.add(attacks::measure_attacks(&settings, &placement, started)?)?;
    }
    if sections.propagation {
        let propagation: Vec<(&PropagationMode, Result<Vec<Duration>, String>)> = PROPAGATION_MODES
            .iter()
            .map(|mode| {
                let result = measure_propagation(mode, settings.propagation_pushes);
                eprintln!("bench: propagation, {} done ({:.1} s)", mode.name, started.elapsed().as_secs_f64());
                (mode, result)
            })
            .collect();
        let failed = propagation
            .iter()
            .find_map(|(mode, result)| result.as_ref().err().map(|e| format!("propagation with {}: {e}", mode.name)));
        report.add(Section {
            text: propagation_table(&propagation, settings.propagation_pushes),
            checked: failed.map_or(Ok(()), Err),
            envoys: Vec::new(),
            _control_planes: Vec::new(),
            _upstreams: Vec::new(),
        })?;
    }
    if sections.counters {
        report.add(measure_counters(&settings, &placement, started)?)?;
    }
    if sections.flood {
        report.add(measure_flood(&settings, &placement, started)?)?;
    }
    eprintln!("bench: report written to {} ({:.1} s in all)", report.path.display(), started.elapsed().as_secs_f64());
    match report.problems.is_empty() {
        true => Ok(()),
        false => Err(report.problems.join("\n")),
    }
}

/// One measured part of the bench: its report text, whether its checks passed, and what it ran, kept until the
/// text is written (Envoys first, so that none sees its control plane vanish).
struct Section {
    text: String,
    checked: Result<(), String>,
    envoys: Vec<Envoy>,
    /// Held, never read: dropped after the Envoys.
    _control_planes: Vec<ControlPlane>,
    /// Held, never read: dropped after the Envoys.
    _upstreams: Vec<Upstream>,
}

/// The report: printed and written to `target/bench/report.md` section by section, so that a run that fails late
/// keeps what it measured.
struct Report {
    text: String,
    path: PathBuf,
    /// What failed the checks of the sections so far.
    problems: Vec<String>,
}

impl Report {
    /// Prints the title and `preamble`.
    fn new(preamble: &str) -> Self {
        let text = format!("# Portcullis benchmark\n\n{preamble}");
        println!("{text}");
        Self { text, path: PathBuf::new(), problems: Vec::new() }
    }

    /// Prints and writes `section`, records its failed checks, then stops its processes: an Envoy whose log has a
    /// critical wasm line panics here, after the report is written.
    fn add(&mut self, section: Section) -> Result<(), String> {
        let text = section.text.trim_start_matches('\n');
        println!("{text}");
        self.text.push('\n');
        self.text.push_str(text);
        self.path = write_report(&self.text)?;
        if let Err(problem) = section.checked {
            self.problems.push(problem);
        }
        for envoy in &section.envoys {
            envoy.assert_no_critical_wasm();
        }
        Ok(())
    }
}

/// Runs `settings.rounds` rounds of `variants`, each round in rotated order (round r starts with variant r mod
/// their number), so that machine noise spreads over all of them alike.
fn measure_rounds(
    variants: &mut [Variant],
    request: &[u8],
    settings: &Settings,
    started: Instant,
    what: &str,
) -> Result<(), String> {
    for round in 0..settings.rounds {
        let count = variants.len();
        for i in 0..count {
            variants[(round + i) % count].measure(request, settings.connections, Some(round))?;
        }
        eprintln!(
            "bench: {what}round {}/{} done ({:.1} s)",
            round + 1,
            settings.rounds,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// Per round, `a`'s Envoy CPU per request minus `b`'s in the same round (both ran within seconds of each other,
/// under the same machine noise): the median, min and max of those differences.
fn paired_cpu(a: &Variant, b: &Variant) -> (f64, f64, f64) {
    let paired: Vec<f64> = a
        .runs
        .iter()
        .filter_map(|p| {
            let n = b.runs.iter().find(|n| n.round == p.round)?;
            Some(p.cpu_us_per_request - n.cpu_us_per_request)
        })
        .collect();
    let (lo, hi) = paired.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
    (median(paired), lo, hi)
}

impl Variant {
    fn new(name: &'static str, envoy: Envoy, requests: u64) -> Self {
        Self { name, envoy, requests, own_requests: None, pace: None, runs: Vec::new(), totals: LoadReport::default() }
    }

    /// Sends `requests` round-robin instead of the shared load request.
    fn with_requests(mut self, requests: Vec<Vec<u8>>) -> Self {
        self.own_requests = Some(requests);
        self
    }

    /// Sends its number of requests and records the run under `round` (a warm-up when `None`); statuses are
    /// counted either way.
    fn measure(&mut self, request: &[u8], connections: usize, round: Option<usize>) -> Result<(), String> {
        let before = CpuSnapshot::take(self)?;
        let result = match &self.own_requests {
            Some(own) => load::run_paced(self.envoy.addr(), own, connections, self.requests, self.pace),
            None => load::run(self.envoy.addr(), request, connections, self.requests),
        };
        let after = CpuSnapshot::take(self)?;
        if !self.envoy.is_running() {
            return Err(format!("{} exited during a run:\n{}", self.name, self.envoy.log_text()));
        }
        if let Some(round) = round {
            let per_request = |ns: u64| ns as f64 / 1000.0 / result.completed().max(1) as f64;
            let envoy = after.envoy.saturating_sub(before.envoy);
            let generator = after.generator.saturating_sub(before.generator);
            let others = after.machine.saturating_sub(before.machine).saturating_sub(envoy + generator);
            self.runs.push(Run {
                round,
                completed: result.completed(),
                requests_per_second: result.throughput(),
                cpu_us_per_request: per_request(envoy),
                generator_us_per_request: per_request(generator),
                other_cores: others as f64 / result.elapsed.as_nanos().max(1) as f64,
            });
        }
        self.totals.merge(result);
        Ok(())
    }

    fn median(&self, of: impl Fn(&Run) -> f64) -> f64 {
        median(self.runs.iter().map(of).collect())
    }

    fn range(&self, of: impl Fn(&Run) -> f64) -> (f64, f64) {
        self.runs.iter().map(of).fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)))
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// Browser-like headers with a bearer token and cookies: what an API behind Envoy typically receives.
fn request_headers() -> Vec<(&'static str, &'static str)> {
    // A 200-character opaque token: the size of a typical access token, not a JWT (nothing to decode).
    const TOKEN: &str = "Bearer \
        tX9kQ2vLm8Rz4Wb7Yc1Nd6Pf3Hg5Js0KaUeVoIiBnMlZxCyTrEwQ9uA2sD4fG6hJ8kL1zX3cV5bN7mQ0wE2rT4yU6iO8pA1sD3fG\
        5hJ7kL9zX2cV4bN6mQ8wE0rT1yU3iO5pA7sD9fG2hJ4kL6zX8cV0bN1mQ3wE5rT7yU9iO2pA4sD6fG8hJ0kL3zX5cV7bN9mQ1wE4";
    const COOKIE: &str = "session=8f14e45fceea167a5a36dedd4bea2543; theme=dark; consent=analytics:0,ads:0; \
        _ga=GA1.2.1234567890.1700000000";
    vec![
        ("host", "shop.example.com"),
        (
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
        ),
        ("accept", "application/json, text/plain, */*"),
        ("accept-language", "en-GB,en;q=0.9,de;q=0.8"),
        ("accept-encoding", "gzip, deflate, br, zstd"),
        ("referer", "https://shop.example.com/account/orders"),
        ("authorization", TOKEN),
        ("cookie", COOKIE),
    ]
}

/// A small deterministic generator (xorshift64*), so that every run scans the same bytes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.below(from.len() as u64) as usize]
    }

    /// `len` characters from `alphabet`.
    fn token(&mut self, alphabet: &[u8], len: usize) -> String {
        (0..len).map(|_| char::from(alphabet[self.below(alphabet.len() as u64) as usize])).collect()
    }
}

fn counters(envoy: &Envoy, names: &[&str]) -> Vec<Option<u64>> {
    let stats = envoy.stats();
    names.iter().map(|name| parse_stat(&stats, &format!("{WASM_STAT_PREFIX}{name}"))).collect()
}

fn envoy_version() -> String {
    let output = Command::new(envoy_binary()).arg("--version").output();
    let text = output.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
    text.split_once("version:").map_or(text.as_str(), |(_, version)| version).trim().to_string()
}

fn cpu_model() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name")?.split_once(':').map(|(_, m)| m.trim().to_string()))
        .unwrap_or_else(|| "unknown CPU".into())
}

fn preamble(
    settings: &Settings,
    envoy_version: &str,
    cores: usize,
    placement: &Placement,
    document: &OrdersDocument,
) -> String {
    let sections = settings.sections;
    let mut text = String::new();
    let _ = writeln!(text, "- Command: `{COMMAND}`");
    if sections != Sections::ALL {
        let _ = writeln!(text, "- Sections: only {} (`BENCH_ONLY`)", sections.names());
    }
    if sections.variants {
        let _ = writeln!(
            text,
            "- N = {} requests per variant and round ({} for the two JSON-response variants, {} for `jwt_authn` and \
             cached Portcullis, {} distinct tokens for uncached Portcullis), R = {} rounds (eleven variants in \
             rotated order, after one uncounted warm-up run each), {} keep-alive connections",
            settings.requests,
            settings.sensitive_requests,
            settings.token_requests,
            settings.uncached_tokens,
            settings.rounds,
            settings.connections
        );
        let _ = writeln!(text, "- Request: `GET {PATH}` with 8 headers (browser UA, 200-char bearer token, cookies)");
        let _ = writeln!(
            text,
            "- Envoy: {envoy_version}; one worker each, direct response, access log off, log level warn"
        );
        let _ = writeln!(
            text,
            "- JSON response: {} bytes of `{JSON}`, page 2 of an orders API: {} orders with ids, timestamps, names, \
             emails, {} phone numbers, shipping addresses, items, amounts, and {} leaked test card numbers with \
             expiry dates; Portcullis has {} detections on `response.body`, one per built-in classifier",
            document.json.len(),
            document.orders,
            document.phones,
            TEST_CARDS.len(),
            SENSITIVE_POLICY.matches("classifier:").count(),
        );
    } else {
        let _ = writeln!(text, "- Envoy: {envoy_version}");
    }
    if sections.attacks {
        let _ = writeln!(
            text,
            "- Attacks: N = {} GETs and {} POSTs per variant and round, R = {} rounds (four variants in rotated \
             order, after one uncounted warm-up run each), {} keep-alive connections; `{}` (see its section)",
            settings.requests,
            settings.sensitive_requests,
            settings.rounds,
            settings.connections,
            attacks::OWASP_POLICY,
        );
    }
    if sections.propagation {
        let _ = writeln!(
            text,
            "- Propagation: {} pushes per way of fetching, after the rounds (see its section)",
            settings.propagation_pushes
        );
    }
    if sections.counters {
        let _ = writeln!(
            text,
            "- Over time, counters: N = {} requests per variant and round, R = {} rounds (five variants, {} workers \
             each), {} keep-alive connections, {COUNTER_KEYS} API keys",
            settings.counter_requests, settings.rounds, OVER_TIME_WORKERS, settings.connections
        );
    }
    if sections.flood {
        let (requests, _) = flood_size(settings.flood_tokens);
        let _ = writeln!(
            text,
            "- Over time, flood: {} one-off tokens and {HEAVY_HITTERS} heavy hitters, {requests} requests, {} \
             keep-alive connections",
            settings.flood_tokens, settings.connections
        );
    }
    let _ = writeln!(text, "- Machine: {cores} cores ({}); {placement}", cpu_model());
    text
}

/// How much CPU other processes took during the runs of `variants`, with a warning when the machine was busy.
fn other_work(variants: &[Variant]) -> String {
    let all_runs = || variants.iter().flat_map(|v| v.runs.iter());
    let others = median(all_runs().map(|r| r.other_cores).collect());
    let others_max = all_runs().map(|r| r.other_cores).fold(0.0, f64::max);
    let mut text = format!("\nOther processes used a median {others:.2} cores during runs (max {others_max:.2})");
    text.push_str(if others_max > NOISY_OTHER_CORES { ": the machine was not idle, expect noise.\n" } else { ".\n" });
    text
}

/// Every run of `variants` (measured together by [`measure_rounds`]) in the order it ran, and their errors.
fn runs_table(variants: &[Variant]) -> String {
    let mut text = String::from(
        "| Round | Variant | req/s | Envoy CPU µs/req | generator CPU µs/req | other cores |\n\
         |---:|---|---:|---:|---:|---:|\n",
    );
    let mut runs: Vec<(usize, &str, Run)> =
        variants.iter().enumerate().flat_map(|(i, v)| v.runs.iter().map(move |r| (i, v.name, *r))).collect();
    // Round r ran variant r mod (number of variants) first (see `measure_rounds`).
    runs.sort_by_key(|(i, _, r)| (r.round, (i + variants.len() - r.round % variants.len()) % variants.len()));
    for (_, name, run) in runs {
        let _ = writeln!(
            text,
            "| {} | {} | {:.0} | {:.1} | {:.1} | {:.2} |",
            run.round + 1,
            name,
            run.requests_per_second,
            run.cpu_us_per_request,
            run.generator_us_per_request,
            run.other_cores,
        );
    }
    for variant in variants.iter().filter(|v| v.totals.errors() > 0) {
        let _ = writeln!(text, "\n{}: {}", variant.name, describe_errors(&variant.totals));
    }
    text
}

/// Plain Envoy (first), the no-op wasm filter (second) and filters compared with both: throughput and CPU ratios
/// and added CPU, from the medians over the rounds.
fn comparison_table(variants: &[Variant]) -> String {
    const PLAIN: usize = 0;
    const NOOP: usize = 1;
    let rps = |r: &Run| r.requests_per_second;
    let cpu = |r: &Run| r.cpu_us_per_request;
    let (plain, noop) = (&variants[PLAIN], &variants[NOOP]);
    let (plain_rps, plain_cpu, noop_cpu) = (plain.median(rps), plain.median(cpu), noop.median(cpu));
    let mut text = String::from(
        "| Variant | req/s (median) | × plain | Envoy CPU µs/req (median) | (min–max) | × plain \
         | added CPU µs/req vs plain | vs no-op | non-200 |\n",
    );
    text.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (i, variant) in variants.iter().enumerate() {
        let (v_rps, v_cpu) = (variant.median(rps), variant.median(cpu));
        let (lo, hi) = variant.range(cpu);
        let vs_noop = if i >= NOOP { format!("{:+.1}", v_cpu - noop_cpu) } else { "–".into() };
        let _ = writeln!(
            text,
            "| {} | {:.0} | {:.2} | {:.1} | {:.1}–{:.1} | {:.2} | {:+.1} | {} | {} |",
            variant.name,
            v_rps,
            v_rps / plain_rps,
            v_cpu,
            lo,
            hi,
            v_cpu / plain_cpu,
            v_cpu - plain_cpu,
            vs_noop,
            variant.totals.errors(),
        );
    }
    text
}

fn describe_errors(errors: &LoadReport) -> String {
    format!(
        "{} non-200 (statuses {:?}, {} I/O errors, first: {})",
        errors.errors(),
        errors.other_statuses,
        errors.io_errors,
        errors.first_error.as_deref().unwrap_or("none")
    )
}

fn write_report(report: &str) -> Result<PathBuf, String> {
    let dir = repo_root().join("target/bench");
    std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let path = dir.join("report.md");
    std::fs::write(&path, report).map_err(|e| format!("write {}: {e}", path.display()))?;
    Ok(path)
}

/// The release profile aborts on panic, so no destructor would stop the Envoys and the control plane a harness
/// panic leaves behind: the hook sends SIGTERM to this process's children, by pid, before the abort.
fn stop_children_on_panic() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default(info);
        let mut children = children();
        for &pid in &children {
            // SAFETY: kill has no memory-safety preconditions; `pid` is a child of ours not yet reaped (only this
            // hook reaps now), so it cannot name an unrelated process.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        // Reaped here, or they would linger as zombies once we are gone; SIGKILL for any that ignore SIGTERM.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !children.is_empty() && Instant::now() < deadline {
            // SAFETY: waitpid with WNOHANG on our own child writes nothing when the status pointer is null.
            children.retain(|&pid| unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) } == 0);
            std::thread::sleep(Duration::from_millis(20));
        }
        for pid in children {
            // SAFETY: as above; still our unreaped child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }));
}

/// Process ids whose parent is this process, from `/proc/*/stat`.
fn children() -> Vec<libc::pid_t> {
    let me = std::process::id().to_string();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| {
            let pid: libc::pid_t = entry.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // Fields after the command name (which may hold spaces and parentheses): state, then the parent's pid.
            let parent = stat.rsplit_once(')')?.1.split_whitespace().nth(1)?;
            (parent == me).then_some(pid)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_load_request_looks_like_a_browser_call_with_a_200_character_token() {
        let headers = request_headers();
        assert_eq!(headers.len(), 8);
        let token = headers.iter().find(|(n, _)| *n == "authorization").unwrap().1;
        assert_eq!(token.strip_prefix("Bearer ").unwrap().len(), 200);
    }

    #[test]
    fn bench_only_selects_sections() {
        assert_eq!(Sections::parse("").unwrap(), Sections::ALL);
        assert_eq!(Sections::ALL.names(), "variants, attacks, propagation, counters, flood");
        let attacks = Sections::parse("attacks").unwrap();
        assert_eq!(attacks, Sections { attacks: true, ..Sections::NONE });
        let over_time = Sections::parse(" over_time ").unwrap();
        assert!(over_time.counters && over_time.flood && !over_time.variants && !over_time.propagation);
        assert_eq!(Sections::parse("flood,variants").unwrap().names(), "variants, flood");
        assert!(Sections::parse("counter").unwrap_err().contains("unknown section \"counter\""));
        assert!(Sections::parse(",").is_err());
    }

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(Vec::new()).is_nan());
    }
}
