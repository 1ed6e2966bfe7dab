//! The over-time sections of `make bench` (see the bench's module doc, "Over time"): counters and lists per
//! request ([`measure_counters`]) and memory after a flood of one-off tokens ([`measure_flood`]), each with Envoys of
//! two workers and a control plane of their own.

// The bench's shared machinery (variants, rounds, tables, settings) and its imports.
use super::*;
use portcullis_integration_tests::over_time_policies::{
    counters_by_address_policy, counters_exact_policy, COUNTERS_POLICY,
};

/// N of the over-time counters variants unless `BENCH_COUNTER_REQUESTS` says otherwise.
pub(super) const DEFAULT_COUNTER_REQUESTS: u64 = 20_000;

/// Requests per second of the over-time counters variants unless `BENCH_COUNTER_RATE` says otherwise (`None`:
/// closed loop, as fast as Envoy answers).
pub(super) const DEFAULT_COUNTER_RATE: Option<f64> = None;

/// Workers of every over-time Envoy: two VMs updating the same shared-data buckets.
pub(super) const OVER_TIME_WORKERS: u32 = 2;

/// The header the over-time policies find the caller's token in.
const API_KEY_HEADER: &str = "x-api-key";

/// Distinct API keys the counters load rotates over: few enough that both workers keep hitting the same buckets.
pub(super) const COUNTER_KEYS: usize = 64;

/// The path every over-time policy blocks: a 403 from each worker proves the bundle is enforced there.
const CANARY_PATH: &str = "/bench-canary";

/// The bundle name of [`COUNTERS_POLICY`].
const COUNTERS_BUNDLE: &str = "counters";

/// The bundle name of [`counters_exact_policy`].
const COUNTERS_EXACT_BUNDLE: &str = "counters-exact";

/// Counter updates [`COUNTERS_POLICY`], [`counters_by_address_policy`] and [`counters_exact_policy`] make per
/// request: their three counters, all updated with the request headers. The filter's `counter_updates` counts them in both modes.
const COUNTER_UPDATES_PER_REQUEST: u64 = 3;

/// The over-time issue's aim for counters and lists together, in added Envoy CPU µs per request.
const COUNTERS_AIM_US: f64 = 10.0;

/// The bundle name of [`counters_by_address_policy`].
const COUNTERS_BY_ADDRESS_BUNDLE: &str = "counters-by-address";

/// The bundle name of [`IDENTITY_POLICY`].
const IDENTITY_BUNDLE: &str = "identity";

/// [`COUNTERS_POLICY`] without its counters and lists: the same tokens section (the token's keyed hash on every
/// request) and a rule reading `token.id`, so the difference between the two is what counters and lists cost.
const IDENTITY_POLICY: &str = r#"version: 1
tokens:
  sources: [ { header: x-api-key } ]
rules:
  - id: canary
    when: request.path == "/bench-canary"
    action: block
  - id: known-caller
    when: token.id == "0"
    action: block
"#;

/// The bundle name of [`FLOOR_POLICY`].
const FLOOR_BUNDLE: &str = "floor";

/// One rule on the request path and nothing else: what any bundle costs (the request headers read into the VM,
/// one rule evaluated, the exchange's bookkeeping), the floor under [`IDENTITY_POLICY`] and the counters.
const FLOOR_POLICY: &str = r#"version: 1
rules:
  - id: canary
    when: request.path == "/bench-canary"
    action: block
"#;

/// Where the no-op wasm filter is among the counters variants (plain Envoy first, as [`comparison_table`] has it).
const OT_NOOP: usize = 1;
/// Where Portcullis with [`FLOOR_POLICY`] is.
const OT_FLOOR: usize = 2;
/// Where Portcullis with [`IDENTITY_POLICY`] is.
const OT_IDENTITY: usize = 3;
/// Where Portcullis with [`COUNTERS_POLICY`] (batched counters) is.
const OT_COUNTERS: usize = 4;
/// Where Portcullis with [`counters_by_address_policy`] (batched counters, one keyed by the client address) is.
const OT_BY_ADDRESS: usize = 5;
/// Where Portcullis with [`counters_exact_policy`] (exact counters) is.
const OT_EXACT: usize = 6;
/// The counters variants, each with what the report calls it.
const OT_COUNTERS_VARIANTS: [(usize, &str); 3] = [
    (OT_COUNTERS, "batched counters"),
    (OT_BY_ADDRESS, "batched counters keyed by the client address"),
    (OT_EXACT, "exact counters"),
];

/// One-off tokens of the flood unless `BENCH_FLOOD_TOKENS` says otherwise.
pub(super) const DEFAULT_FLOOD_TOKENS: u64 = 1_000_000;

/// The bundle name of [`flood_policy`].
const FLOOD_BUNDLE: &str = "flood";

/// Keys the flood's counter tracks at once.
const FLOOD_MAX_KEYS: u64 = 100_000;

/// Keys per shared-data bucket of a counter (`portcullis_shared_state::SlidingCounter::WAYS`).
const COUNTER_WAYS: u64 = 8;

/// `shared_data_budget_bytes` of the flood's Envoy: above what [`flood_policy`] needs, so the bundle is accepted.
const FLOOD_BUDGET_BYTES: u64 = 8 * 1024 * 1024;

/// Heavy hitters among the flood's one-off tokens.
pub(super) const HEAVY_HITTERS: u64 = 5;

/// In every block of this many flood requests, each heavy hitter sends one.
const FLOOD_BLOCK: u64 = 100;

/// Flood requests built and sent at a time, to bound the generator's memory.
const FLOOD_CHUNK: u64 = 100_000;

/// The path [`flood_policy`] monitors: its verdict logs the caller's count.
const WHOAMI_PATH: &str = "/whoami";

/// Buckets the filter's sweep reads per tick (the filter's `SWEEP_READS_PER_TICK`).
const SWEEP_BUCKETS_PER_TICK: u64 = 1024;

/// How long the `shared_data_bytes` gauge may take to settle after the flood.
const SWEEP_TIMEOUT: Duration = Duration::from_secs(90);

/// The flood's policy: one counter of requests per token, a window long enough that the whole flood falls in one
/// sub-window (counts are then exact unless a key was evicted), a rule monitoring [`WHOAMI_PATH`] so that its verdict
/// carries `counters=requests-per-token:N`, and the canary.
fn flood_policy() -> String {
    format!(
        r#"version: 1
tokens:
  sources: [ {{ header: {API_KEY_HEADER} }} ]
counters:
  - id: requests-per-token
    kind: requests
    per: token.id
    window: 30d
    max_keys: {FLOOD_MAX_KEYS}
rules:
  - id: canary
    when: request.path == "{CANARY_PATH}"
    action: block
  - id: whoami
    when: request.path == "{WHOAMI_PATH}"
    action: monitor
"#
    )
}

/// Characters of the bench's API keys.
const KEY_ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The filter's over-time stats, read together.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct OverTimeStats {
    counter_updates: u64,
    counter_writes: u64,
    counter_cas_retries: u64,
    counter_failures: u64,
    list_contention: u64,
    requests_blocked: u64,
    requests_throttled: u64,
    requests_without_bundle: u64,
}

impl OverTimeStats {
    fn read(envoy: &Envoy) -> Self {
        let stats = envoy.stats();
        let stat = |name: &str| parse_stat(&stats, &format!("{WASM_STAT_PREFIX}portcullis.{name}")).unwrap_or(0);
        Self {
            counter_updates: stat("counter_updates"),
            counter_writes: stat("counter_writes"),
            counter_cas_retries: stat("counter_cas_retries"),
            counter_failures: stat("counter_failures"),
            list_contention: stat("list_contention"),
            requests_blocked: stat("requests_blocked"),
            requests_throttled: stat("requests_throttled"),
            requests_without_bundle: stat("requests_without_bundle"),
        }
    }

    /// `envoy`'s stats once two reads [`STATS_SETTLE`] apart agree (at most [`SETTLE_READS`] reads after the
    /// first). The filter adds its counter stats up per VM and flushes them on its 250 ms tick, and a worker writes
    /// its batched adds at its tick, or at the next one when the other worker held the flush lease: once two ticks
    /// and more passed without a change, nothing is left to arrive.
    fn settled(envoy: &Envoy) -> Self {
        let mut stats = Self::read(envoy);
        for _ in 0..SETTLE_READS {
            std::thread::sleep(STATS_SETTLE);
            let again = Self::read(envoy);
            if again == stats {
                break;
            }
            stats = again;
        }
        stats
    }

    /// How much each stat grew since `before`.
    fn since(&self, before: &Self) -> Self {
        Self {
            counter_updates: self.counter_updates.saturating_sub(before.counter_updates),
            counter_writes: self.counter_writes.saturating_sub(before.counter_writes),
            counter_cas_retries: self.counter_cas_retries.saturating_sub(before.counter_cas_retries),
            counter_failures: self.counter_failures.saturating_sub(before.counter_failures),
            list_contention: self.list_contention.saturating_sub(before.list_contention),
            requests_blocked: self.requests_blocked.saturating_sub(before.requests_blocked),
            requests_throttled: self.requests_throttled.saturating_sub(before.requests_throttled),
            requests_without_bundle: self.requests_without_bundle.saturating_sub(before.requests_without_bundle),
        }
    }
}

/// How far apart two reads of [`OverTimeStats::settled`] are: more than two of the filter's 250 ms ticks.
const STATS_SETTLE: Duration = Duration::from_millis(600);

/// Reads of [`OverTimeStats::settled`] after the first, at most.
const SETTLE_READS: usize = 8;

/// What the filter's stats say about one counters variant's measured runs.
struct CountersStats {
    /// Where the variant is: [`OT_COUNTERS`] or [`OT_EXACT`].
    at: usize,
    /// What the report calls it.
    label: &'static str,
    /// Requests of its measured runs.
    measured: u64,
    /// How much its filter's stats grew over them.
    grown: OverTimeStats,
    /// Connections each of its workers accepted during them.
    connections: Vec<u64>,
}

impl CountersStats {
    /// Whether its counters are `batched: true`.
    fn batched(&self) -> bool {
        self.at != OT_EXACT
    }

    /// The counter updates its measured requests made: [`COUNTER_UPDATES_PER_REQUEST`] each.
    fn expected_updates(&self) -> u64 {
        COUNTER_UPDATES_PER_REQUEST * self.measured
    }
}

/// Over time, part 1: what three counters and two list lookups on every request cost, batched and exact, and how
/// often the counters' compare-and-swap retried, with two workers updating the same buckets. Plain Envoy, the no-op
/// filter, Portcullis with the token identity only, Portcullis with [`COUNTERS_POLICY`] (batched counters) and
/// Portcullis with [`counters_exact_policy`] (exact counters), measured in rounds like the variants.
pub(super) fn measure_counters(
    settings: &Settings,
    placement: &Placement,
    started: Instant,
) -> Result<Section, String> {
    let control_plane = ControlPlane::start_new();
    control_plane.push(COUNTERS_BUNDLE, &compile(COUNTERS_POLICY, COUNTERS_BUNDLE, 1));
    control_plane.push(COUNTERS_EXACT_BUNDLE, &compile(&counters_exact_policy(), COUNTERS_EXACT_BUNDLE, 1));
    control_plane.push(IDENTITY_BUNDLE, &compile(IDENTITY_POLICY, IDENTITY_BUNDLE, 1));
    control_plane.push(FLOOR_BUNDLE, &compile(FLOOR_POLICY, FLOOR_BUNDLE, 1));
    let by_address = compile(&counters_by_address_policy(), COUNTERS_BY_ADDRESS_BUNDLE, 1);
    control_plane.push(COUNTERS_BY_ADDRESS_BUNDLE, &by_address);
    let config =
        || EnvoyConfig::new().concurrency(OVER_TIME_WORKERS).direct_response(true).access_log(false).log_level("warn");
    let portcullis =
        |bundle: &str| config().control_plane(control_plane.addr()).portcullis(&plugin_config(bundle, "open")).start();
    let mut rng = Rng(0x6b65_7973_0000_0040);
    let keys: Vec<String> = (0..COUNTER_KEYS).map(|_| rng.token(KEY_ALPHABET, 40)).collect();
    let headers = api_key_headers();
    let requests = load::get_requests(PATH, &headers, API_KEY_HEADER, &keys);
    let n = settings.counter_requests;
    let mut variants = vec![
        Variant::new("plain Envoy, 2 workers", config().start(), n),
        Variant::new("+ no-op wasm, 2 workers", config().wasm_filter(WasmFilter::noop()).start(), n),
        Variant::new("+ Portcullis, one rule (no token, counters or lists)", portcullis(FLOOR_BUNDLE), n),
        Variant::new("+ Portcullis, token identity only", portcullis(IDENTITY_BUNDLE), n),
        Variant::new("+ Portcullis, 3 batched counters and 2 list lookups", portcullis(COUNTERS_BUNDLE), n),
        Variant::new(
            "+ Portcullis, the same keyed by client address (source.ip)",
            portcullis(COUNTERS_BY_ADDRESS_BUNDLE),
            n,
        ),
        Variant::new("+ Portcullis, 3 exact counters and 2 list lookups", portcullis(COUNTERS_EXACT_BUNDLE), n),
    ];
    for variant in &mut variants {
        variant.own_requests = Some(requests.clone());
        variant.pace = settings.counter_rate;
    }
    placement.apply(variants.iter().map(|v| (v.name, &v.envoy)))?;
    for at in [OT_FLOOR, OT_IDENTITY, OT_COUNTERS, OT_BY_ADDRESS, OT_EXACT] {
        wait_on_every_worker(&variants[at].envoy, CANARY_PATH, 403)?;
    }
    let mut first: Vec<(&str, &str)> = headers.clone();
    first.push((API_KEY_HEADER, &keys[0]));
    for variant in &variants {
        let status = variant.envoy.get(PATH, &first).status;
        if status != 200 {
            return Err(format!("{} answered the load request GET {PATH} with {status}, not 200", variant.name));
        }
    }
    eprintln!(
        "bench: over time, counters: {} Envoys up, Portcullis enforcing ({:.1} s)",
        variants.len(),
        started.elapsed().as_secs_f64()
    );

    // A full run each, uncounted, as for the variants.
    for variant in &mut variants {
        variant.measure(&[], settings.connections, None)?;
    }
    // The warm-up's counter stats, and its batched adds, arrive on the filter's next ticks.
    let before: Vec<(OverTimeStats, Vec<u64>)> = OT_COUNTERS_VARIANTS
        .iter()
        .map(|&(at, _)| (OverTimeStats::settled(&variants[at].envoy), variants[at].envoy.worker_connections()))
        .collect();
    measure_rounds(&mut variants, &[], settings, started, "over time, counters: ")?;
    let stats: Vec<CountersStats> = OT_COUNTERS_VARIANTS
        .iter()
        .zip(&before)
        .map(|(&(at, label), (stats_before, connections_before))| {
            let envoy = &variants[at].envoy;
            let measured: u64 = variants[at].runs.iter().map(|r| r.completed).sum();
            let connections: Vec<u64> = envoy
                .worker_connections()
                .iter()
                .zip(connections_before)
                .map(|(after, before)| after - before)
                .collect();
            // Update counts reach the stats on the filter's next tick, batched writes within a tick or two.
            eventually(Duration::from_secs(2), || {
                let grown = OverTimeStats::read(envoy).since(stats_before);
                grown.counter_updates + grown.counter_failures >= COUNTER_UPDATES_PER_REQUEST * measured
            });
            let grown = OverTimeStats::settled(envoy).since(stats_before);
            CountersStats { at, label, measured, grown, connections }
        })
        .collect();
    let checked = check_counters(&variants, &stats);
    Ok(Section {
        text: counters_table(&variants, settings, &stats, &checked),
        checked,
        envoys: variants.into_iter().map(|v| v.envoy).collect(),
        _control_planes: vec![control_plane],
        _upstreams: Vec::new(),
    })
}

/// Checks that every variant answered 200 and that over the measured requests of each counters variant the filter
/// counted exactly [`COUNTER_UPDATES_PER_REQUEST`] counter updates per request, none failed, no list update
/// contended and nothing was blocked, throttled or passed without a bundle; and that the exact counters wrote
/// shared data once per update, the batched ones at least once but less often than they were updated.
fn check_counters(variants: &[Variant], stats: &[CountersStats]) -> Result<(), String> {
    let broken: Vec<String> = variants
        .iter()
        .filter(|v| v.totals.errors() > 0)
        .map(|v| format!("{}: {}", v.name, describe_errors(&v.totals)))
        .collect();
    if !broken.is_empty() {
        return Err(format!("over time, counters: responses other than 200: {}", broken.join("; ")));
    }
    let mut problems = Vec::new();
    for s in stats {
        let (grown, updates) = (&s.grown, s.expected_updates());
        let expected = OverTimeStats {
            counter_updates: updates,
            counter_writes: if s.batched() { grown.counter_writes } else { updates },
            counter_cas_retries: grown.counter_cas_retries,
            ..OverTimeStats::default()
        };
        if *grown != expected {
            problems.push(format!(
                "{}: over {} measured requests the filter's stats grew by {grown:?}, expected {expected:?} \
                 ({COUNTER_UPDATES_PER_REQUEST} counter updates per request{}, and no failure, list contention, \
                 block, throttle or request without a bundle)",
                s.label,
                s.measured,
                if s.batched() { "" } else { ", each one shared-data write" },
            ));
        } else if s.batched() && !(1..updates).contains(&grown.counter_writes) {
            problems.push(format!(
                "{}: {} counter writes to shared data for {updates} counter updates: batched counters should have \
                 written at least once, and less often than they were updated",
                s.label, grown.counter_writes,
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("over time, counters: {}", problems.join("; ")))
    }
}

/// The counters variants: the comparison table, the added CPU of batched and exact counters against the aim, the
/// CAS retry rates and writes per request, and the checks.
fn counters_table(
    variants: &[Variant],
    settings: &Settings,
    stats: &[CountersStats],
    checked: &Result<(), String>,
) -> String {
    let cpu = |r: &Run| r.cpu_us_per_request;
    let mut text = format!(
        "\n## Over time: three counters and two list lookups on every request, batched and exact \
         ({OVER_TIME_WORKERS} workers)\n\n"
    );
    text.push_str(&comparison_table(variants));
    text.push('\n');
    let (noop, identity) = (&variants[OT_NOOP], &variants[OT_IDENTITY]);
    let aim = |added: f64| {
        if added < COUNTERS_AIM_US {
            format!("**met** (under {COUNTERS_AIM_US:.0} µs)")
        } else {
            format!("**missed** (not under {COUNTERS_AIM_US:.0} µs)")
        }
    };
    for s in stats {
        let counters = &variants[s.at];
        let added = counters.median(cpu) - noop.median(cpu);
        let (paired, lo, hi) = paired_cpu(counters, noop);
        let alone = counters.median(cpu) - identity.median(cpu);
        let (paired_alone, lo_alone, hi_alone) = paired_cpu(counters, identity);
        let _ = writeln!(
            text,
            "- **Added CPU per request, {label}** (Portcullis with {label} and lists − no-op, difference of \
             medians): **{added:.1} µs**; per round {paired:.1} µs (median), {lo:.1}–{hi:.1} µs. The issue's aim \
             for counters and lists together: {}. **Counters and lists alone** (− Portcullis with the token \
             identity only): **{alone:.1} µs**; per round {paired_alone:.1} µs (median), \
             {lo_alone:.1}–{hi_alone:.1} µs. Against the aim: {}.",
            aim(added),
            aim(alone),
            label = s.label,
        );
    }
    let (batched, exact) = (&variants[OT_COUNTERS], &variants[OT_EXACT]);
    let saved = exact.median(cpu) - batched.median(cpu);
    let (paired, lo, hi) = paired_cpu(exact, batched);
    let _ = writeln!(
        text,
        "- **What batching saves** (exact − batched counters): **{saved:.1} µs** per request; per round {paired:.1} \
         µs (median), {lo:.1}–{hi:.1} µs. The added CPU includes everything Portcullis does per request (the \
         token's keyed hash, the rule evaluation, the proxy-wasm calls); counters and lists alone take the token \
         identity's share out."
    );
    let floor = &variants[OT_FLOOR];
    let floor_added = floor.median(cpu) - noop.median(cpu);
    let (floor_paired, floor_lo, floor_hi) = paired_cpu(floor, noop);
    let token = identity.median(cpu) - floor.median(cpu);
    let (token_paired, token_lo, token_hi) = paired_cpu(identity, floor);
    let _ = writeln!(
        text,
        "- **Where the added CPU goes.** Any bundle (one rule on the path, no token section − no-op): \
         **{floor_added:.1} µs**; per round {floor_paired:.1} µs (median), {floor_lo:.1}–{floor_hi:.1} µs: the \
         request headers read into the VM (one proxy-wasm call, which Envoy answers through a call back into the VM \
         to allocate the copy), one rule, the exchange's bookkeeping. The token identity on top (token identity only − \
         one rule): **{token:.1} µs**; per round {token_paired:.1} µs (median), {token_lo:.1}–{token_hi:.1} µs. \
         Counters and lists on top of that: the \"alone\" figures above."
    );
    let by_address = &variants[OT_BY_ADDRESS];
    let address = by_address.median(cpu) - batched.median(cpu);
    let (paired, lo, hi) = paired_cpu(by_address, batched);
    let _ = writeln!(
        text,
        "- **What keying by the client address costs** (the same policy with `source.ip` in place of the endpoint \
         for one counter and one list − batched counters): **{address:.1} µs** per request; per round {paired:.1} µs \
         (median), {lo:.1}–{hi:.1} µs. Reading `source.ip` is one more proxy-wasm call per request (Envoy's \
         `source.address` property, whose answer Envoy copies into the VM through a call back into it), and all \
         requests of the load share one address, so both workers flush the same key."
    );
    for s in stats {
        let grown = &s.grown;
        let rate = grown.counter_cas_retries as f64 / grown.counter_writes.max(1) as f64;
        let per_request = grown.counter_writes as f64 / s.measured.max(1) as f64;
        let _ = writeln!(
            text,
            "- **CAS retry rate, {}**: `counter_cas_retries` / `counter_writes` over the measured runs = {} / {} = \
             **{rate:.4} retries per write** ({:.2} %); **{per_request:.3} shared-data counter writes per request** \
             ({} writes for {} requests, which made {} counter updates). `counter_failures` (retries exhausted, or \
             a refused write: the update was not counted): +{}.",
            s.label,
            grown.counter_cas_retries,
            grown.counter_writes,
            rate * 100.0,
            grown.counter_writes,
            s.measured,
            grown.counter_updates,
            grown.counter_failures,
        );
    }
    let _ = writeln!(
        text,
        "- Each counter write is a compare-and-swap of one shared-data bucket, retried when another VM wrote the \
         bucket in between. Exact counters write on every update, {COUNTER_UPDATES_PER_REQUEST} per request; \
         batched `requests` counters once per key, worker and 250 ms tick, with all of the tick's adds; the batched \
         `distinct` counter only an item the worker has not recorded for the key in the key's window (the load has \
         one endpoint, so after the warm-up hardly ever)."
    );
    match checked {
        Ok(()) => {
            let counted: Vec<String> = stats
                .iter()
                .map(|s| {
                    format!("{} {} = {COUNTER_UPDATES_PER_REQUEST} × {}", s.label, s.grown.counter_updates, s.measured)
                })
                .collect();
            let _ = writeln!(
                text,
                "- Checked from the filter's stats: `counter_updates` grew by exactly {COUNTER_UPDATES_PER_REQUEST} \
                 × the measured requests ({}); the exact counters' `counter_writes` grew by as much as their \
                 updates, the batched counters' by at least one and fewer than their updates; no counter update \
                 failed, no list update contended, and no request was blocked, throttled or passed without a bundle.",
                counted.join("; ")
            );
        }
        Err(problem) => {
            let _ = writeln!(text, "- **FAILED**: {problem}");
        }
    }
    let connections: Vec<String> = stats.iter().map(|s| format!("{} {:?}", s.label, s.connections)).collect();
    let both = stats.iter().all(|s| s.connections.iter().filter(|c| **c > 0).count() >= 2);
    let _ = writeln!(
        text,
        "- Connections each worker accepted during the measured runs: {}{}",
        connections.join(", "),
        if both {
            ": both workers updated the same buckets."
        } else {
            ". **Only one worker took connections** somewhere: its retry rate shows no contention between workers."
        }
    );
    let _ = writeln!(
        text,
        "- What runs: {} requests per variant and round, {} rounds in rotated order after one uncounted warm-up run \
         each, {} connections; every Envoy with {OVER_TIME_WORKERS} workers, direct response, no access log. The \
         request is the first section's `GET {PATH}` with its bearer token replaced by `{API_KEY_HEADER}`, rotating \
         over {COUNTER_KEYS} keys. Portcullis with counters and lists: counters `requests-per-token` (requests, 1m), \
         `requests-per-token-endpoint` (requests per token and endpoint, 1m) and `endpoints-per-token` (distinct \
         endpoints, 5m), all updated with the request headers; a rule looking the token up in `abusive-tokens` and \
         the endpoint in `denied-endpoints` (dynamic lists, empty, so `||` looks up both); a rule reading \
         `count(\"requests-per-token\")`; no rule matches. Keyed by the client address: `requests-per-ip` in place \
         of `requests-per-token-endpoint`, and `denied-ips` (by `source.ip`) in place of `denied-endpoints`. **Batched** (`batched: true` on each counter and list): a worker adds up its `requests` updates \
         and writes them to shared data once per key per 250 ms tick, and a rule reads the shared value, cached per \
         key and tick, plus the worker's unwritten adds, so the other worker's counts become visible within a tick; \
         the `distinct` counter skips an item the worker already recorded; a list lookup's answer is remembered \
         until the worker's next tick (its own additions at once). **Exact** (the same policy without `batched`): \
         every update reads and writes shared data (three read-modify-writes per request) and every lookup reads \
         it, so every count and membership is current. Every request comes from 127.0.0.1, so `requests-per-ip` is \
         one key that both workers write: the most contended case. The token-identity variant has the same `tokens:` section (the key's keyed \
         hash on every request) and a rule reading `token.id`, without counters or lists.",
        settings.counter_requests, settings.rounds, settings.connections,
    );
    text.push_str(&other_work(variants));
    text.push_str("\n### Runs, in the order they ran\n\n");
    text.push_str(&runs_table(variants));
    text
}

/// The load request's headers without its bearer token: the over-time policies find the caller in
/// [`API_KEY_HEADER`], added per request.
fn api_key_headers() -> Vec<(&'static str, &'static str)> {
    request_headers().into_iter().filter(|(name, _)| *name != "authorization").collect()
}

/// Waits until every worker of `envoy` answers `GET path` with `status` (each VM swaps a bundle in at its own
/// tick). Tells workers apart by their connection counters, so nothing else may connect meanwhile.
fn wait_on_every_worker(envoy: &Envoy, path: &str, status: u16) -> Result<(), String> {
    let mut confirmed = vec![false; envoy.concurrency() as usize];
    let mut last = 0;
    let reached = eventually(ENFORCE_TIMEOUT, || {
        let (response, worker) = envoy.get_on_some_worker(path, &[]);
        last = response.status;
        if let Some(seen) = worker.filter(|_| last == status).and_then(|w| confirmed.get_mut(w as usize)) {
            *seen = true;
        }
        confirmed.iter().all(|c| *c)
    });
    if !reached {
        return Err(format!(
            "GET {path} did not answer {status} on every worker within {ENFORCE_TIMEOUT:?} (confirmed: {confirmed:?}, \
             last: {last}).\nEnvoy's portcullis log lines:\n{}",
            envoy.log_lines_containing("portcullis").join("\n")
        ));
    }
    Ok(())
}

/// What request `k` of the flood carries: in every block of [`FLOOD_BLOCK`] requests, the first [`HEAVY_HITTERS`]
/// go to the heavy hitters (one each), the others to one-off tokens, numbered in the order sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FloodSlot {
    Heavy(u64),
    OneOff(u64),
}

fn flood_slot(k: u64) -> FloodSlot {
    let (block, at) = (k / FLOOD_BLOCK, k % FLOOD_BLOCK);
    if at < HEAVY_HITTERS {
        FloodSlot::Heavy(at)
    } else {
        FloodSlot::OneOff(block * (FLOOD_BLOCK - HEAVY_HITTERS) + at - HEAVY_HITTERS)
    }
}

/// The flood of `one_off` tokens: its requests in all, and the requests each heavy hitter sends (one per block,
/// the last block included however short).
pub(super) fn flood_size(one_off: u64) -> (u64, u64) {
    let blocks = one_off.div_ceil(FLOOD_BLOCK - HEAVY_HITTERS);
    (one_off + blocks * HEAVY_HITTERS, blocks)
}

/// One-off token `j` of the flood: random characters, then `j`, so no two are the same.
fn one_off_token(rng: &mut Rng, j: u64) -> String {
    format!("{}{j:07}", rng.token(KEY_ALPHABET, 25))
}

/// What the flood measured.
struct Flood {
    one_off: u64,
    requests: u64,
    heavy_sent: u64,
    load: LoadReport,
    /// Sending time, summed over the chunks.
    sending: Duration,
    envoy_cpu_ns: u64,
    rss_before: u64,
    rss_after: u64,
    swept: Result<Swept, String>,
    /// Each heavy hitter's count as logged for its `/whoami` request, when logged.
    logged: Vec<Option<u64>>,
}

/// The `shared_data_bytes` gauge once settled, with its limit.
struct Swept {
    bytes: u64,
    limit: u64,
    /// From the end of the flood (and the `/whoami` requests) until the gauge settled.
    waited: Duration,
}

/// Over time, part 2: the shared data and memory a per-token counter holds after a flood of one-off tokens, and
/// whether heavy hitters keep their counts through it.
pub(super) fn measure_flood(settings: &Settings, placement: &Placement, started: Instant) -> Result<Section, String> {
    let control_plane = ControlPlane::start_new();
    control_plane.push(FLOOD_BUNDLE, &compile(&flood_policy(), FLOOD_BUNDLE, 1));
    let mut plugin = plugin_config(FLOOD_BUNDLE, "open");
    plugin["shared_data_budget_bytes"] = FLOOD_BUDGET_BYTES.into();
    // The access log stays on: the heavy hitters' counts are read from their `/whoami` verdicts.
    let envoy = EnvoyConfig::new()
        .concurrency(OVER_TIME_WORKERS)
        .direct_response(true)
        .log_level("warn")
        .control_plane(control_plane.addr())
        .portcullis(&plugin)
        .start();
    placement.apply([("the flood's Envoy", &envoy)])?;
    wait_on_every_worker(&envoy, CANARY_PATH, 403)?;
    let pid = envoy.pid();
    let cpu = || load::process_cpu_ns(pid).map_err(|e| format!("CPU time of the flood's Envoy (pid {pid}): {e}"));
    let rss_before = rss_bytes(pid)?;
    let mut rng = Rng(0x666c_6f6f_6400_0001);
    let heavy: Vec<String> = (0..HEAVY_HITTERS).map(|i| format!("heavy-{i}-{}", rng.token(KEY_ALPHABET, 32))).collect();
    let headers = api_key_headers();
    let with_key = |key: &str| {
        let mut all = headers.clone();
        all.push((API_KEY_HEADER, key));
        load::get_request(PATH, &all)
    };
    let heavy_requests: Vec<Vec<u8>> = heavy.iter().map(|key| with_key(key)).collect();
    let (requests, heavy_sent) = flood_size(settings.flood_tokens);
    eprintln!("bench: over time, flood: {requests} requests ({:.1} s)", started.elapsed().as_secs_f64());

    let cpu_before = cpu()?;
    let (mut flood, mut sending, mut next) = (LoadReport::default(), Duration::ZERO, 0);
    while next < requests {
        let end = requests.min(next + FLOOD_CHUNK);
        let chunk: Vec<Vec<u8>> = (next..end)
            .map(|k| match flood_slot(k) {
                FloodSlot::Heavy(i) => heavy_requests.get(i as usize).cloned().unwrap_or_default(),
                FloodSlot::OneOff(j) => with_key(&one_off_token(&mut rng, j)),
            })
            .collect();
        let result = load::run_rotating(envoy.addr(), &chunk, settings.connections, end - next);
        sending += result.elapsed;
        flood.merge(result);
        if !envoy.is_running() {
            return Err(format!("the flood's Envoy exited during the flood:\n{}", envoy.log_text()));
        }
        next = end;
        eprintln!("bench: over time, flood: {next}/{requests} sent ({:.1} s)", started.elapsed().as_secs_f64());
    }
    let envoy_cpu_ns = cpu()?.saturating_sub(cpu_before);

    let ids: Vec<String> = (0..HEAVY_HITTERS).map(|i| format!("bench-whoami-{i}")).collect();
    for (key, id) in heavy.iter().zip(&ids) {
        let mut all = headers.clone();
        all.extend([(API_KEY_HEADER, key.as_str()), ("x-request-id", id.as_str())]);
        let status = envoy.get(WHOAMI_PATH, &all).status;
        if status != 200 {
            return Err(format!("the flood's Envoy answered GET {WHOAMI_PATH} with {status}, not 200"));
        }
    }
    let logged = logged_counts(&envoy, &ids, "requests-per-token");
    let swept = settled_shared_data(&envoy, FLOOD_MAX_KEYS.div_ceil(COUNTER_WAYS));
    let rss_after = rss_bytes(pid)?;
    let result = Flood {
        one_off: settings.flood_tokens,
        requests,
        heavy_sent,
        load: flood,
        sending,
        envoy_cpu_ns,
        rss_before,
        rss_after,
        swept,
        logged,
    };
    let checked = check_flood(&result);
    Ok(Section {
        text: flood_table(&result, settings, &checked),
        checked,
        envoys: vec![envoy],
        _control_planes: vec![control_plane],
        _upstreams: Vec::new(),
    })
}

/// Checks that every flood request was answered 200, each heavy hitter's count was logged, and the gauge settled
/// within its limit and the budget.
fn check_flood(flood: &Flood) -> Result<(), String> {
    if flood.load.errors() > 0 {
        return Err(format!("over time, flood: {}", describe_errors(&flood.load)));
    }
    if flood.logged.iter().any(Option::is_none) {
        return Err(format!(
            "over time, flood: no `counters=requests-per-token:N` in the access log for some `GET {WHOAMI_PATH}` of \
             a heavy hitter: {:?}",
            flood.logged
        ));
    }
    let swept = flood.swept.as_ref().map_err(|e| format!("over time, flood: {e}"))?;
    if swept.bytes > swept.limit || swept.limit > FLOOD_BUDGET_BYTES {
        return Err(format!(
            "over time, flood: shared data over its bounds: {} bytes used, limit {}, budget {FLOOD_BUDGET_BYTES}",
            swept.bytes, swept.limit
        ));
    }
    Ok(())
}

/// The flood's measures, the heavy hitters' counts against what they sent, and how to read them.
fn flood_table(flood: &Flood, settings: &Settings, checked: &Result<(), String>) -> String {
    let mib = |bytes: u64| format!("{:.2} MiB", bytes as f64 / (1024.0 * 1024.0));
    let completed = flood.load.completed().max(1);
    let mut text = format!(
        "\n## Over time: shared data and memory after a flood of {} one-off tokens ({OVER_TIME_WORKERS} workers)\n\n\
         | Measure | Value |\n|---|---:|\n",
        flood.one_off
    );
    let mut row = |measure: &str, value: String| {
        let _ = writeln!(text, "| {measure} | {value} |");
    };
    row(
        &format!(
            "Flood: requests ({} one-off tokens, {HEAVY_HITTERS} heavy hitters × {})",
            flood.one_off, flood.heavy_sent
        ),
        flood.requests.to_string(),
    );
    row("Flood: throughput", format!("{:.0} req/s", completed as f64 / flood.sending.as_secs_f64().max(1e-9)));
    row(
        "Flood: Envoy CPU per request (access log on)",
        format!("{:.1} µs", flood.envoy_cpu_ns as f64 / 1000.0 / completed as f64),
    );
    row("Flood: non-200", flood.load.errors().to_string());
    match &flood.swept {
        Ok(swept) => {
            row(
                &format!(
                    "`portcullis.shared_data_bytes` after the flood (settled {:.1} s after it)",
                    swept.waited.as_secs_f64()
                ),
                format!("{} B ({})", swept.bytes, mib(swept.bytes)),
            );
            row(
                "`portcullis.shared_data_bytes_limit` (the most the bundle can ever use)",
                format!("{} B ({})", swept.limit, mib(swept.limit)),
            );
        }
        Err(e) => row("`portcullis.shared_data_bytes` after the flood", format!("not settled: {e}")),
    }
    row(
        "`shared_data_budget_bytes` (plugin configuration)",
        format!("{FLOOD_BUDGET_BYTES} B ({})", mib(FLOOD_BUDGET_BYTES)),
    );
    row("Envoy RSS (`VmRSS`) before the flood", mib(flood.rss_before));
    let grew = flood.rss_after as f64 - flood.rss_before as f64;
    row(
        "Envoy RSS after the flood and the sweep",
        format!("{} ({:+.2} MiB)", mib(flood.rss_after), grew / (1024.0 * 1024.0)),
    );
    text.push_str(
        "\n| Heavy hitter | requests sent in the flood | count logged at `GET /whoami` | minus that request | \
         difference |\n|---:|---:|---:|---:|---:|\n",
    );
    for (i, logged) in flood.logged.iter().enumerate() {
        match logged {
            Some(count) => {
                let flood_count = count.saturating_sub(1);
                let difference = flood_count as i128 - i128::from(flood.heavy_sent);
                let _ = writeln!(
                    text,
                    "| {} | {} | {count} | {flood_count} | {} |",
                    i + 1,
                    flood.heavy_sent,
                    if difference == 0 { "0 (exact)".to_string() } else { format!("{difference:+}") }
                );
            }
            None => {
                let _ = writeln!(text, "| {} | {} | not logged | | |", i + 1, flood.heavy_sent);
            }
        }
    }
    let buckets = FLOOD_MAX_KEYS.div_ceil(COUNTER_WAYS);
    let _ = writeln!(
        text,
        "\n- What runs: Portcullis with one counter, `requests-per-token` (requests per `token.id`, window 30d, \
         `max_keys: {FLOOD_MAX_KEYS}`: {buckets} buckets of {COUNTER_WAYS} keys), a rule monitoring `GET \
         {WHOAMI_PATH}`, and `shared_data_budget_bytes: {FLOOD_BUDGET_BYTES}`; Envoy with {OVER_TIME_WORKERS} \
         workers, direct response, access log on. The flood sends `GET {PATH}` with a new `{API_KEY_HEADER}` on \
         every request, except that in every {FLOOD_BLOCK} requests each of the {HEAVY_HITTERS} heavy hitters sends \
         one; over {} connections, in chunks of {FLOOD_CHUNK} requests built between sends (the throughput counts \
         sending time only).",
        settings.connections
    );
    let _ = writeln!(
        text,
        "- The gauge: one VM sweeps the bundle's lists and counters, {SWEEP_BUCKETS_PER_TICK} buckets per {} ms \
         tick, a whole pass over {buckets} buckets every {:.1} s or so. It is read once two readings a pass apart \
         agree, after at least two passes since the flood ended. Bucket values have a fixed size and a counter \
         never uses more keys than buckets, so the bytes stay at or under the limit however many tokens arrive.",
        WORKER_TICK.as_millis(),
        (buckets.div_ceil(SWEEP_BUCKETS_PER_TICK) + 1) as f64 * WORKER_TICK.as_secs_f64(),
    );
    let _ = writeln!(
        text,
        "- Heavy hitters: each sends one request per {FLOOD_BLOCK}, so in a bucket shared with one-off tokens they \
         have the higher estimate and the one-off tokens are evicted instead. The logged count includes the `GET \
         {WHOAMI_PATH}` request itself. The 30d window (sub-windows aligned on multiples of 30 days) holds the whole \
         flood, so the count is exact unless the heavy hitter was evicted (which only lowers it), or the flood \
         straddled a sub-window boundary (the previous sub-window then counts in proportion to its overlap with the \
         window: a few parts per million less)."
    );
    match checked {
        Ok(()) => {
            let _ = writeln!(
                text,
                "- Checked: every flood request answered 200, each heavy hitter's count was logged, and the gauge \
                 settled at or under its limit, itself under the budget."
            );
        }
        Err(problem) => {
            let _ = writeln!(text, "- **FAILED**: {problem}");
        }
    }
    text
}

/// The value of `counter` in the verdicts logged for `request_ids` (`counters=<counter>:N`), in order; waits up to
/// 10 s for their lines. Reads only the end of the access log: the requests are the last Envoy served, and the
/// flood's lines before them are many.
fn logged_counts(envoy: &Envoy, request_ids: &[String], counter: &str) -> Vec<Option<u64>> {
    const TAIL_BYTES: u64 = 256 * 1024;
    let mut counts = vec![None; request_ids.len()];
    eventually(Duration::from_secs(10), || {
        let tail = file_tail(&envoy.dir().join("access.log"), TAIL_BYTES);
        for line in tail.lines().filter(|line| request_ids.iter().any(|id| line.contains(id.as_str()))) {
            // The first line of the tail may be cut: it does not parse.
            let Ok(entry) = serde_json::from_str::<serde_json::Value>(line) else { continue };
            if let Some(at) = request_ids.iter().position(|id| entry["request_id"] == id.as_str()) {
                counts[at] = verdict_of(&entry).and_then(|verdict| logged_count(&verdict, counter));
            }
        }
        counts.iter().all(Option::is_some)
    });
    counts
}

/// `N` of `counter:N` in a verdict's `counters` field.
fn logged_count(verdict: &BTreeMap<String, String>, counter: &str) -> Option<u64> {
    verdict.get("counters")?.split(',').find_map(|pair| pair.strip_prefix(counter)?.strip_prefix(':')?.parse().ok())
}

/// The last `bytes` bytes of the file at `path` (all of a shorter one; empty if unreadable).
fn file_tail(path: &Path, bytes: u64) -> String {
    let Ok(mut file) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = file.metadata().map_or(0, |m| m.len());
    let mut tail = Vec::new();
    if file.seek(SeekFrom::Start(len.saturating_sub(bytes))).is_ok() {
        let _ = file.read_to_end(&mut tail);
    }
    String::from_utf8_lossy(&tail).into_owned()
}

/// Waits until the `portcullis.shared_data_bytes` gauge holds a whole sweep that began after now, and reads it
/// with its limit: two passes over `buckets` buckets first, then until two readings a pass apart agree (and are not
/// zero).
fn settled_shared_data(envoy: &Envoy, buckets: u64) -> Result<Swept, String> {
    let ticks = buckets.div_ceil(SWEEP_BUCKETS_PER_TICK) + 1;
    let pass = WORKER_TICK * u32::try_from(ticks).unwrap_or(u32::MAX);
    let start = Instant::now();
    let read = || {
        let stats = envoy.stats();
        let gauge = |name: &str| parse_stat(&stats, &format!("{WASM_STAT_PREFIX}portcullis.{name}")).unwrap_or(0);
        (gauge("shared_data_bytes"), gauge("shared_data_bytes_limit"))
    };
    // A pass under way now may have begun before the flood ended; the one after it began after.
    std::thread::sleep(pass * 2);
    let mut last = read();
    loop {
        std::thread::sleep(pass + Duration::from_secs(1));
        let now = read();
        if now == last && now.0 > 0 {
            return Ok(Swept { bytes: now.0, limit: now.1, waited: start.elapsed() });
        }
        if start.elapsed() > SWEEP_TIMEOUT {
            return Err(format!(
                "the shared_data_bytes gauge did not settle within {SWEEP_TIMEOUT:?}: (bytes, limit) read {last:?}, \
                 then {now:?} a pass later"
            ));
        }
        last = now;
    }
}

/// The resident set size of process `pid` (`VmRSS` in `/proc/<pid>/status`), in bytes.
fn rss_bytes(pid: u32) -> Result<u64, String> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).map_err(|e| format!("read {path}: {e}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:")?.trim().strip_suffix("kB")?.trim().parse::<u64>().ok())
        .map(|kib| kib * 1024)
        .ok_or_else(|| format!("no VmRSS in {path}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flood_sends_every_one_off_token_once_and_each_heavy_hitter_once_per_block() {
        for one_off in [1, 94, 95, 96, 190, 20_000] {
            let (requests, heavy_sent) = flood_size(one_off);
            let mut one_offs = vec![0_u64; one_off as usize];
            let mut heavy = [0_u64; HEAVY_HITTERS as usize];
            for k in 0..requests {
                match flood_slot(k) {
                    FloodSlot::Heavy(i) => heavy[i as usize] += 1,
                    FloodSlot::OneOff(j) => one_offs[j as usize] += 1,
                }
            }
            assert!(one_offs.iter().all(|n| *n == 1), "{one_off} one-off tokens");
            assert_eq!(heavy, [heavy_sent; HEAVY_HITTERS as usize], "{one_off} one-off tokens");
        }
        assert_eq!(flood_size(1_000_000), (1_052_635, 10_527));
        let mut rng = Rng(1);
        assert_ne!(one_off_token(&mut rng, 7), one_off_token(&mut rng, 8));
        assert!(one_off_token(&mut rng, 7).ends_with("0000007"));
    }

    #[test]
    fn heavy_hitter_counts_are_read_from_the_verdict() {
        let verdict = portcullis_integration_tests::envoy::parse_logfmt(
            "action=monitor rule=whoami counters=requests-per-token-2:9,requests-per-token:42 endpoint=\"GET h/w\"",
        );
        assert_eq!(logged_count(&verdict, "requests-per-token"), Some(42));
        assert_eq!(logged_count(&verdict, "requests-per-ip"), None);
    }

    #[test]
    fn the_over_time_policies_use_the_bench_constants() {
        for policy in [COUNTERS_POLICY, &counters_exact_policy(), IDENTITY_POLICY, &flood_policy()] {
            assert!(policy.contains(&format!("sources: [ {{ header: {API_KEY_HEADER} }} ]")), "{policy}");
            assert!(policy.contains(&format!("when: request.path == \"{CANARY_PATH}\"\n    action: block")));
        }
        assert!(flood_policy().contains(&format!("when: request.path == \"{WHOAMI_PATH}\"\n    action: monitor")));
        let counters = COUNTERS_POLICY.split_once("counters:\n").unwrap().1.split_once("rules:").unwrap().0;
        assert_eq!(counters.matches("kind:").count() as u64, COUNTER_UPDATES_PER_REQUEST);
        assert!(!counters.contains("when:"), "every counter is updated with the request headers");
        assert_eq!(counters.matches(", batched: true }").count() as u64, COUNTER_UPDATES_PER_REQUEST);
        let exact = counters_exact_policy();
        assert!(!exact.contains("batched"), "{exact}");
        assert_eq!(
            exact
                .replace(", window: 1m }", ", window: 1m, batched: true }")
                .replace(", window: 5m }", ", window: 5m, batched: true }")
                .replace(", ttl: 1h }", ", ttl: 1h, batched: true }"),
            COUNTERS_POLICY
        );
    }
}
