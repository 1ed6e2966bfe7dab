//! The proxy-wasm calls one request costs, counted by `scripts/vm-cost.py` (the filter under Wasmtime with a small
//! host): in Envoy's V8 each call that returns data also costs a call back into the VM to allocate the copy, a few
//! µs per request each, so this is the budget that keeps Portcullis cheap. Counts, not timings: they are the same on
//! every machine. (`make bench` measures the time in Envoy.)

use std::collections::BTreeMap;
use std::process::Command;

use portcullis_integration_tests::artifacts::{filter_wasm, repo_root};
use portcullis_integration_tests::compile;
use portcullis_integration_tests::over_time_policies::{
    counters_by_address_policy, counters_exact_policy, COUNTERS_POLICY,
};

/// What `vm-cost.py --json` says of one bundle: proxy-wasm calls per request (by the request's own callbacks) and
/// per tick (the root's timer: flushes, the sweep), and anything the filter logged at error level or above.
struct Cost {
    calls: BTreeMap<String, f64>,
    tick_calls: BTreeMap<String, f64>,
    errors: Vec<String>,
}

impl Cost {
    fn per_request(&self, call: &str) -> f64 {
        self.calls.get(call).copied().unwrap_or(0.0)
    }

    fn per_tick(&self, call: &str) -> f64 {
        self.tick_calls.get(call).copied().unwrap_or(0.0)
    }
}

fn rates(report: &serde_json::Value, field: &str) -> BTreeMap<String, f64> {
    let rates = report[field].as_object().unwrap_or_else(|| panic!("vm-cost.py reports {field}"));
    rates.iter().map(|(name, n)| (name.clone(), n.as_f64().expect("a number"))).collect()
}

/// Runs `scripts/vm-cost.py` on `policy`, compiled: 64 rotating tokens, a tick every 500 requests, 3,000 measured
/// requests after a warm-up.
fn cost_of(policy: &str, name: &str) -> Cost {
    let python = repo_root().join(".venv/bin/python");
    assert!(python.exists(), "{} is missing: run `make setup` (it installs Wasmtime for Python)", python.display());
    let bundle = compile(policy, name, 1);
    let output = Command::new(&python)
        .arg(repo_root().join("scripts/vm-cost.py"))
        .arg(filter_wasm())
        .arg(&bundle)
        .args(["--name", name])
        .args(["--requests", "3000", "--warmup", "300", "--tick", "500", "--keys", "64", "--json"])
        .output()
        .expect("run scripts/vm-cost.py");
    assert!(output.status.success(), "vm-cost.py failed:\n{}", String::from_utf8_lossy(&output.stderr));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("vm-cost.py prints JSON");
    let errors = report["errors"].as_array().expect("errors").iter().map(|m| m.to_string()).collect();
    Cost { calls: rates(&report, "calls_per_request"), tick_calls: rates(&report, "calls_per_tick"), errors }
}

#[test]
fn batched_counters_and_lists_read_the_headers_and_little_else() {
    let cost = cost_of(COUNTERS_POLICY, "vm-cost-batched");
    assert!(cost.errors.is_empty(), "the filter logged errors: {:?}", cost.errors);
    assert_eq!(
        cost.per_request("proxy_get_header_map_pairs"),
        1.0,
        "one read of the request headers: {:?}",
        cost.calls
    );
    for call in ["proxy_get_property", "proxy_get_header_map_value", "proxy_set_property", "proxy_send_local_response"]
    {
        assert_eq!(cost.per_request(call), 0.0, "{call} on an allowed request: {:?}", cost.calls);
    }
    // The tick's time serves fully batched policies: the clock is read by the tick, not by requests.
    assert_eq!(cost.per_request("proxy_get_current_time_nanoseconds"), 0.0, "the clock per request: {:?}", cost.calls);
    // A batched list is read once per key and tick (64 tokens, one endpoint; a counter's value comes back with its
    // flush): at 500 requests a tick, about 0.13 reads per request. Envoy's workers see thousands a tick.
    assert!(cost.per_request("proxy_get_shared_data") < 0.2, "shared-data reads per request: {:?}", cost.calls);
    // Counts are written by the tick, once per key and counter (64 tokens × 2 `requests` counters), not by requests.
    assert_eq!(cost.per_request("proxy_set_shared_data"), 0.0, "shared-data writes per request: {:?}", cost.calls);
    assert!(cost.per_tick("proxy_set_shared_data") <= 140.0, "shared-data writes per tick: {:?}", cost.tick_calls);
    // Stats are added up and flushed on the tick.
    assert_eq!(cost.per_request("proxy_increment_metric"), 0.0, "stat updates per request: {:?}", cost.calls);
}

#[test]
fn the_client_address_is_one_property_read_and_exact_counters_read_and_write_shared_data() {
    let cost = cost_of(&counters_by_address_policy(), "vm-cost-by-address");
    assert_eq!(cost.per_request("proxy_get_property"), 1.0, "source.ip is read once per request: {:?}", cost.calls);
    assert_eq!(cost.per_request("proxy_get_header_map_pairs"), 1.0, "{:?}", cost.calls);

    let exact = cost_of(&counters_exact_policy(), "vm-cost-exact");
    assert_eq!(cost.errors.len() + exact.errors.len(), 0, "errors: {:?} {:?}", cost.errors, exact.errors);
    assert_eq!(exact.per_request("proxy_get_current_time_nanoseconds").round(), 1.0, "one clock per request");
    // Two `requests` counters write on every request; the distinct one only for an endpoint it has not seen.
    let writes = exact.per_request("proxy_set_shared_data");
    assert!((2.0..2.1).contains(&writes), "exact counters write their buckets per request: {:?}", exact.calls);
    // Each write reads its bucket first, each list lookup reads its bucket, the distinct counter reads its own.
    let reads = exact.per_request("proxy_get_shared_data");
    assert!((4.9..7.2).contains(&reads), "shared-data reads per request: {:?}", exact.calls);
}
