//! The `propagation` section of `make bench` (see the bench's module doc, "Propagation"): how fast a policy change
//! reaches traffic, from `portcullis push` returning to the first request blocked by the new rule.

// The bench's shared machinery (variants, rounds, tables, settings) and its imports.
use super::*;

/// Pushes timed per propagation mode unless `BENCH_PROPAGATION_PUSHES` says otherwise.
pub(super) const DEFAULT_PROPAGATION_PUSHES: u64 = 20;

/// The bundle name of [`propagation_policy`].
const PROPAGATION_BUNDLE: &str = "propagation";

/// The shortest pause before each timed push: the filter is back in its long poll.
const PROPAGATION_PAUSE: Duration = Duration::from_millis(100);

/// One way the filter fetches bundles, as its plugin configuration says it.
pub(super) struct PropagationMode {
    pub(super) name: &'static str,
    long_poll_seconds: u64,
    poll_interval_ms: u64,
}

/// Long polling (the filter's default), and plain polling every second for comparison.
pub(super) const PROPAGATION_MODES: [PropagationMode; 2] = [
    PropagationMode { name: "long polling (`long_poll_seconds: 30`)", long_poll_seconds: 30, poll_interval_ms: 1000 },
    PropagationMode {
        name: "polling every second (`long_poll_seconds: 0`, `poll_interval_ms: 1000`)",
        long_poll_seconds: 0,
        poll_interval_ms: 1000,
    },
];

/// Revision `revision` of the propagation policy: it blocks `/probe-<revision>` ([`probe_path`]), which no earlier
/// revision blocks, besides the demo's admin rule.
fn propagation_policy(revision: u64) -> String {
    format!(
        r#"version: 1
rules:
  - id: admin-needs-key
    when: request.path.startsWith("/admin") && !("x-admin-key" in request.headers)
    action: block
  - id: probe-{revision}
    when: request.path == "{}"
    action: block
"#,
        probe_path(revision)
    )
}

/// The path only revision `revision` of [`propagation_policy`] blocks.
fn probe_path(revision: u64) -> String {
    format!("/probe-{revision}")
}

/// Times `pushes` pushes with the filter fetching as `mode` says: for each, from `portcullis push` returning to the
/// first request blocked by the new revision's rule.
pub(super) fn measure_propagation(mode: &PropagationMode, pushes: u64) -> Result<Vec<Duration>, String> {
    let control_plane = ControlPlane::start_new();
    let mut plugin = plugin_config(PROPAGATION_BUNDLE, "open");
    plugin["control_plane"]["long_poll_seconds"] = mode.long_poll_seconds.into();
    plugin["control_plane"]["poll_interval_ms"] = mode.poll_interval_ms.into();
    plugin["control_plane"]["max_backoff_ms"] = mode.poll_interval_ms.max(2000).into();
    let envoy = EnvoyConfig::new()
        .concurrency(2)
        .direct_response(true)
        .access_log(false)
        .log_level("warn")
        .control_plane(control_plane.addr())
        .portcullis(&plugin)
        .start();
    // Compiled up front, in parallel: only the push is inside the timing.
    let bundles: Vec<PathBuf> = std::thread::scope(|scope| {
        let compiles: Vec<_> = (1..=pushes + 1)
            .map(|revision| scope.spawn(move || compile(&propagation_policy(revision), PROPAGATION_BUNDLE, revision)))
            .collect();
        compiles.into_iter().map(|c| c.join().unwrap_or_else(|e| std::panic::resume_unwind(e))).collect()
    });
    let log = |envoy: &Envoy| envoy.log_lines_containing("portcullis").join("\n");
    control_plane.push(PROPAGATION_BUNDLE, &bundles[0]);
    if envoy.time_until_status(&probe_path(1), 403, ENFORCE_TIMEOUT).is_none() {
        return Err(format!("revision 1 was not enforced within {ENFORCE_TIMEOUT:?}:\n{}", log(&envoy)));
    }
    let mut times = Vec::new();
    // A random extra pause, so pushes land at random points of the workers' ticks (and of the poll interval when
    // polling) rather than in step with them.
    let spread = if mode.long_poll_seconds > 0 { WORKER_TICK.as_millis() } else { u128::from(mode.poll_interval_ms) };
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ mode.poll_interval_ms ^ mode.long_poll_seconds);
    for (revision, bundle) in (1..).zip(&bundles).skip(1) {
        let extra = rng.below(u64::try_from(spread).unwrap_or(1000).max(1));
        std::thread::sleep(PROPAGATION_PAUSE + Duration::from_millis(extra));
        control_plane.push(PROPAGATION_BUNDLE, bundle);
        match envoy.time_until_status(&probe_path(revision), 403, ENFORCE_TIMEOUT) {
            Some(elapsed) => times.push(elapsed),
            None => {
                return Err(format!(
                    "revision {revision} did not block {} within {ENFORCE_TIMEOUT:?}:\n{}",
                    probe_path(revision),
                    log(&envoy)
                ))
            }
        }
    }
    if envoy.get("/", &[]).status != 200 {
        return Err("GET / was not answered 200 after the pushes".into());
    }
    envoy.assert_no_critical_wasm();
    Ok(times)
}

/// The `p`th percentile (0 to 100) of `sorted` by nearest rank.
fn percentile(sorted: &[Duration], p: usize) -> Duration {
    let rank = (sorted.len() * p).div_ceil(100).max(1);
    sorted.get(rank - 1).copied().unwrap_or_default()
}

/// Median, p90 and max per propagation mode, and every time measured.
pub(super) fn propagation_table(results: &[(&PropagationMode, Result<Vec<Duration>, String>)], pushes: u64) -> String {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mut text = String::from(
        "\n## Propagation: from `portcullis push` returning to the first request blocked by the new rule\n\n\
         | Filter fetching by | pushes | median ms | p90 ms | max ms |\n|---|---:|---:|---:|---:|\n",
    );
    let mut all = String::new();
    for (mode, result) in results {
        match result {
            Ok(times) => {
                let mut sorted = times.clone();
                sorted.sort();
                let median = median(times.iter().map(|t| ms(*t)).collect());
                let _ = writeln!(
                    text,
                    "| {} | {} | {median:.0} | {:.0} | {:.0} |",
                    mode.name,
                    times.len(),
                    ms(percentile(&sorted, 90)),
                    ms(sorted.last().copied().unwrap_or_default()),
                );
                let list: Vec<String> = times.iter().map(|t| format!("{:.0}", ms(*t))).collect();
                let _ = writeln!(all, "- {}: {} ms", mode.name, list.join(", "));
            }
            Err(e) => {
                let first = e.lines().next().unwrap_or("");
                let _ = writeln!(text, "| {} | failed: {first} | | | |", mode.name);
            }
        }
    }
    let _ = writeln!(
        text,
        "\n- {pushes} pushes per mode, each a new revision whose new rule blocks a path no earlier one blocked, \
         sent {} ms plus a random part of the {} ms worker tick (long polling) or of the poll interval (polling) \
         after the previous one was enforced; timed from `portcullis push` returning (the server has stored the \
         bundle) until a `GET` of that path, sent back to back on new connections 2 ms apart, is answered 403.\n\
         - Envoy with two workers and its own control plane per mode. The VM holding the fetch lease receives the \
         bundle, enforces it at once and publishes it to shared data; every other VM swaps it in at its next tick. \
         The holder can be Envoy's main-thread VM, which serves no requests (the plugin's timers run there too): \
         then a push reaches traffic up to one tick after the filter receives it, however fast the control plane \
         answers.\n\
         - Each push, in the order sent:\n{all}",
        PROPAGATION_PAUSE.as_millis(),
        WORKER_TICK.as_millis(),
    );
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_by_nearest_rank() {
        let ms = |n: u64| Duration::from_millis(n);
        let sorted: Vec<Duration> = (1..=20).map(ms).collect();
        assert_eq!(percentile(&sorted, 90), ms(18));
        assert_eq!(percentile(&sorted, 50), ms(10));
        assert_eq!(percentile(&sorted, 100), ms(20));
        assert_eq!(percentile(&sorted[..1], 90), ms(1));
        assert_eq!(percentile(&[], 90), Duration::ZERO);
        assert!(propagation_policy(7).contains("request.path == \"/probe-7\""));
    }
}
