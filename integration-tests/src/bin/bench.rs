//! `make bench`: what Portcullis costs Envoy, against Envoy alone and Envoy with a wasm filter that does nothing.
//!
//! # What runs
//!
//! Three Envoys at once, each with one worker (`--concurrency 1`), no access log, and a route answering
//! `200 {"direct":"ok"}` by itself, so no upstream takes part:
//!
//! - **plain**: no wasm filter;
//! - **no-op wasm**: `dist/noop.wasm`, the cost of the V8 runtime and the proxy-wasm calls alone;
//! - **Portcullis**: `dist/portcullis.wasm` enforcing `envoy-examples/policies/demo.yaml`, compiled and pushed to
//!   a control plane the bench starts; measuring begins once `GET /admin` is refused with 403.
//!
//! # How it measures
//!
//! A closed-loop generator ([`portcullis_integration_tests::load`]) sends one realistic allowed request
//! (`GET /api/v1/orders?page=2` with browser headers, a bearer token and cookies; every demo rule has to be
//! evaluated to let it through) over 8 keep-alive connections. After one warm-up run of N per variant, each of R
//! rounds runs the three variants in rotated order, N requests each, recording wall time and the CPU time the Envoy
//! process spent (summed over its threads from `/proc/<pid>/task/*/schedstat`). Interleaving spreads machine noise
//! over all three variants alike. The report gives medians over the rounds, and how much CPU other processes took
//! meanwhile, so a noisy run says so.
//!
//! `BENCH_REQUESTS` (N, default 20000), `BENCH_ROUNDS` (R, default 5) and `BENCH_CONNECTIONS` (default 8)
//! override the defaults. `BENCH_PIN=1` pins the Envoys to the last CPU and the generator to the others, so the
//! worker under load has a core to itself; not the default, because on a busy machine Envoy then cannot move away
//! from other work. The report goes to stdout and `target/bench/report.md`. Timings are never asserted: the exit
//! status is non-zero only when something broke (a process did not start, a response was not 200, Portcullis did
//! not enforce the policy).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use portcullis_integration_tests::artifacts::{envoy_binary, repo_root};
use portcullis_integration_tests::load::{self, LoadReport};
use portcullis_integration_tests::{compile, eventually, plugin_config, ControlPlane, Envoy, EnvoyConfig, WasmFilter};

/// The command the report says it came from.
const COMMAND: &str = "make bench  (cargo run --release -p portcullis-integration-tests --bin bench)";

/// The policy Portcullis enforces, relative to the repository root.
const POLICY: &str = "envoy-examples/policies/demo.yaml";

/// The bundle name the filter fetches.
const BUNDLE: &str = "demo";

/// The request every connection sends: allowed by the demo policy, after all three rules were evaluated.
const PATH: &str = "/api/v1/orders?page=2";

/// How long Portcullis may take to fetch and enforce the policy after it was pushed.
const ENFORCE_TIMEOUT: Duration = Duration::from_secs(30);

/// Above this many cores' worth of other work during a run, the report warns that its numbers are noisy.
const NOISY_OTHER_CORES: f64 = 0.2;

/// The filter counters that must not move while measuring: the load request is neither blocked nor monitored,
/// and a bundle is active throughout.
const PORTCULLIS_COUNTERS: [&str; 3] = [
    "portcullis.requests_blocked",
    "portcullis.requests_monitored",
    "portcullis.requests_without_bundle",
];

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
    rounds: usize,
    connections: usize,
    pin: bool,
}

impl Settings {
    fn from_env() -> Result<Self, String> {
        Ok(Self {
            requests: env_number("BENCH_REQUESTS", 20_000)?,
            rounds: env_number("BENCH_ROUNDS", 5)?,
            connections: env_number("BENCH_CONNECTIONS", 8)?,
            pin: std::env::var("BENCH_PIN").is_ok_and(|v| v.trim() == "1"),
        })
    }
}

fn env_number<T: std::str::FromStr + PartialOrd + From<u8>>(var: &str, default: T) -> Result<T, String> {
    let value = match std::env::var(var) {
        Ok(text) if !text.trim().is_empty() => text
            .trim()
            .parse::<T>()
            .map_err(|_| format!("{var}={text:?} is not a number"))?,
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
            Some(last) if !cpus.is_empty() => Ok(Self::Pinned {
                envoy: vec![last],
                generator: cpus,
            }),
            _ => Ok(Self::Unpinned("one CPU")),
        }
    }

    /// Pins the running Envoys, then this thread, whose affinity the load threads inherit. Envoys must be started
    /// first: they would inherit the generator's CPUs otherwise.
    fn apply(&self, variants: &[Variant]) -> Result<(), String> {
        let Self::Pinned { envoy, generator } = self else {
            return Ok(());
        };
        for variant in variants {
            load::pin(variant.envoy.pid(), envoy).map_err(|e| format!("pin {} to {envoy:?}: {e}", variant.name))?;
        }
        load::pin(0, generator).map_err(|e| format!("pin the load generator to {generator:?}: {e}"))
    }
}

impl std::fmt::Display for Placement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unpinned(why) => write!(f, "nothing pinned ({why})"),
            Self::Pinned { envoy, generator } => {
                write!(
                    f,
                    "Envoys pinned to CPU {envoy:?}, load generator to {generator:?} (`BENCH_PIN=1`)"
                )
            }
        }
    }
}

/// One Envoy under test.
struct Variant {
    name: &'static str,
    envoy: Envoy,
    runs: Vec<Run>,
    totals: LoadReport,
}

/// One measured run of one variant.
#[derive(Clone, Copy)]
struct Run {
    round: usize,
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
    let preamble = preamble(&settings, &envoy_version, cores, &placement);
    println!("# Portcullis benchmark\n\n{preamble}");

    let started = Instant::now();
    let policy = std::fs::read_to_string(repo_root().join(POLICY)).map_err(|e| format!("read {POLICY}: {e}"))?;
    let control_plane = ControlPlane::start_new();
    control_plane.push(BUNDLE, &compile(&policy, BUNDLE, 1));
    let config = || {
        EnvoyConfig::new()
            .concurrency(1)
            .direct_response(true)
            .access_log(false)
            .log_level("warn")
    };
    // "open" so that a 403 for /admin proves the bundle is loaded rather than the filter failing closed.
    let portcullis_filter = WasmFilter::portcullis(&plugin_config(BUNDLE, "open"));
    let mut variants = vec![
        Variant::new("plain Envoy", config().start()),
        Variant::new("+ no-op wasm", config().wasm_filter(WasmFilter::noop()).start()),
        Variant::new(
            "+ Portcullis (demo policy)",
            config()
                .control_plane(control_plane.addr())
                .wasm_filter(portcullis_filter)
                .start(),
        ),
    ];
    placement.apply(&variants)?;
    let headers = request_headers();
    wait_until_enforcing(&variants[2].envoy, &headers)?;
    let request = load::get_request(PATH, &headers);
    eprintln!(
        "bench: three Envoys up, Portcullis enforcing ({:.1} s)",
        started.elapsed().as_secs_f64()
    );

    // A full run each, uncounted: V8 tiers the modules up to optimised code in the background meanwhile.
    for variant in &mut variants {
        variant.measure(&request, settings.connections, settings.requests, None)?;
    }
    let counters_before = portcullis_counters(&variants[2].envoy);
    for round in 0..settings.rounds {
        for i in 0..variants.len() {
            let variant = &mut variants[(round + i) % 3];
            variant.measure(&request, settings.connections, settings.requests, Some(round))?;
        }
        eprintln!(
            "bench: round {}/{} done ({:.1} s)",
            round + 1,
            settings.rounds,
            started.elapsed().as_secs_f64()
        );
    }
    let counters_after = portcullis_counters(&variants[2].envoy);

    let tables = tables(&variants);
    println!("{tables}");
    let path = write_report(&format!("# Portcullis benchmark\n\n{preamble}\n{tables}"))?;
    eprintln!(
        "bench: report written to {} ({:.1} s in all)",
        path.display(),
        started.elapsed().as_secs_f64()
    );

    let broken: Vec<String> = variants
        .iter()
        .filter(|v| v.totals.errors() > 0)
        .map(|v| format!("{}: {}", v.name, describe_errors(&v.totals)))
        .collect();
    if !broken.is_empty() {
        return Err(format!("responses other than 200: {}", broken.join("; ")));
    }
    if counters_before != counters_after {
        return Err(format!(
            "Portcullis blocked, monitored or passed without a bundle some load requests: \
             {PORTCULLIS_COUNTERS:?} went from {counters_before:?} to {counters_after:?}"
        ));
    }
    for variant in &variants {
        variant.envoy.assert_no_critical_wasm();
    }
    Ok(())
}

impl Variant {
    fn new(name: &'static str, envoy: Envoy) -> Self {
        Self {
            name,
            envoy,
            runs: Vec::new(),
            totals: LoadReport::default(),
        }
    }

    /// Sends `requests` and records the run under `round` (a warm-up when `None`); statuses are counted either way.
    fn measure(
        &mut self,
        request: &[u8],
        connections: usize,
        requests: u64,
        round: Option<usize>,
    ) -> Result<(), String> {
        let before = CpuSnapshot::take(self)?;
        let result = load::run(self.envoy.addr(), request, connections, requests);
        let after = CpuSnapshot::take(self)?;
        if !self.envoy.is_running() {
            return Err(format!("{} exited during a run:\n{}", self.name, self.envoy.log_text()));
        }
        if let Some(round) = round {
            let per_request = |ns: u64| ns as f64 / 1000.0 / result.completed().max(1) as f64;
            let envoy = after.envoy.saturating_sub(before.envoy);
            let generator = after.generator.saturating_sub(before.generator);
            let others = after
                .machine
                .saturating_sub(before.machine)
                .saturating_sub(envoy + generator);
            self.runs.push(Run {
                round,
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
        self.runs
            .iter()
            .map(of)
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)))
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

/// Waits until Portcullis refuses `GET /admin` (rule `admin-needs-key`) and lets the load request through.
fn wait_until_enforcing(envoy: &Envoy, headers: &[(&str, &str)]) -> Result<(), String> {
    let mut last = 0;
    let enforcing = eventually(ENFORCE_TIMEOUT, || {
        last = envoy.get("/admin", headers).status;
        last == 403
    });
    if !enforcing {
        return Err(format!(
            "Portcullis did not enforce {POLICY} within {ENFORCE_TIMEOUT:?}: GET /admin answered {last}, not 403.\n\
             Envoy's portcullis log lines:\n{}",
            envoy.log_lines_containing("portcullis").join("\n")
        ));
    }
    let allowed = envoy.get(PATH, headers).status;
    if allowed != 200 {
        return Err(format!(
            "Portcullis answered the load request GET {PATH} with {allowed}, not 200"
        ));
    }
    Ok(())
}

fn portcullis_counters(envoy: &Envoy) -> Vec<Option<u64>> {
    PORTCULLIS_COUNTERS.iter().map(|name| envoy.wasm_stat(name)).collect()
}

fn envoy_version() -> String {
    let output = Command::new(envoy_binary()).arg("--version").output();
    let text = output
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    text.split_once("version:")
        .map_or(text.as_str(), |(_, version)| version)
        .trim()
        .to_string()
}

fn cpu_model() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    cpuinfo
        .lines()
        .find_map(|line| {
            line.strip_prefix("model name")?
                .split_once(':')
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

fn preamble(settings: &Settings, envoy_version: &str, cores: usize, placement: &Placement) -> String {
    let mut text = String::new();
    let _ = writeln!(text, "- Command: `{COMMAND}`");
    let _ = writeln!(
        text,
        "- N = {} requests per variant and round, R = {} rounds (rotated order, after one uncounted warm-up \
         run each), {} keep-alive connections",
        settings.requests, settings.rounds, settings.connections
    );
    let _ = writeln!(
        text,
        "- Request: `GET {PATH}` with 8 headers (browser UA, 200-char bearer token, cookies)"
    );
    let _ = writeln!(
        text,
        "- Envoy: {envoy_version}; one worker each, direct response, access log off, log level warn"
    );
    let _ = writeln!(text, "- Machine: {cores} cores ({}); {placement}", cpu_model());
    text
}

/// The summary table, a note on how to read it, and every run.
fn tables(variants: &[Variant]) -> String {
    let rps = |r: &Run| r.requests_per_second;
    let cpu = |r: &Run| r.cpu_us_per_request;
    let (plain, noop) = (&variants[0], &variants[1]);
    let (plain_rps, plain_cpu, noop_cpu) = (plain.median(rps), plain.median(cpu), noop.median(cpu));
    let mut text = String::from(
        "| Variant | req/s (median) | × plain | Envoy CPU µs/req (median) | (min–max) | × plain \
         | added CPU µs/req vs plain | vs no-op | non-200 |\n",
    );
    text.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (i, variant) in variants.iter().enumerate() {
        let (v_rps, v_cpu) = (variant.median(rps), variant.median(cpu));
        let (lo, hi) = variant.range(cpu);
        let vs_noop = if i >= 1 {
            format!("{:+.1}", v_cpu - noop_cpu)
        } else {
            "–".into()
        };
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
    let all_runs = || variants.iter().flat_map(|v| v.runs.iter());
    let generator = median(all_runs().map(|r| r.generator_us_per_request).collect());
    let others = median(all_runs().map(|r| r.other_cores).collect());
    let others_max = all_runs().map(|r| r.other_cores).fold(0.0, f64::max);
    let _ = write!(
        text,
        "\nEnvoy CPU is the Envoy process's time on a CPU (all threads, from schedstat) during a run, divided by its \
         requests. \"Added\" is the difference of medians. Throughput is closed-loop on a shared machine (the load \
         generator, median {generator:.1} µs CPU/request, competes with Envoy for cores), so the CPU columns are the \
         steadier measure of cost. Other processes used a median {others:.2} cores during runs (max {others_max:.2})",
    );
    text.push_str(if others_max > NOISY_OTHER_CORES {
        ": the machine was not idle, expect noise.\n"
    } else {
        ".\n"
    });
    text.push_str(
        "\n## Runs, in the order they ran\n\n\
         | Round | Variant | req/s | Envoy CPU µs/req | generator CPU µs/req | other cores |\n\
         |---:|---|---:|---:|---:|---:|\n",
    );
    let mut runs: Vec<(usize, &str, Run)> = variants
        .iter()
        .enumerate()
        .flat_map(|(i, v)| v.runs.iter().map(move |r| (i, v.name, *r)))
        .collect();
    // Round r ran variant r mod 3 first (see `run`).
    runs.sort_by_key(|(i, _, r)| {
        (
            r.round,
            (i + variants.len() - r.round % variants.len()) % variants.len(),
        )
    });
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
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(Vec::new()).is_nan());
    }
}
