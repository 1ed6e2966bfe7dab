//! Proves the harness itself against Envoy with only the router: no filter, no control plane.

use std::time::Duration;

use portcullis_integration_tests::{eventually, EnvoyConfig, Upstream, WasmFilter};

#[test]
fn harness_smoke() {
    let upstream = Upstream::start();
    let envoy = EnvoyConfig::new().upstream(upstream.addr()).start();

    let response = envoy.get("/hello?x=1", &[("x-request-id", "smoke-1"), ("user-agent", "smoke/1.0")]);
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.json()["upstream"], "ok");
    assert_eq!(upstream.requests_for("/hello?x=1"), 1);

    let mut client = envoy.client();
    for _ in 0..5 {
        assert_eq!(client.get("/keepalive", &[]).status, 200);
    }
    assert_eq!(upstream.requests_for("/keepalive"), 5);

    let entry = envoy.wait_access_log_entry("smoke-1");
    assert_eq!(entry["method"], "GET");
    assert_eq!(entry["path"], "/hello?x=1");
    assert_eq!(entry["status"], 200);
    assert_eq!(entry["user_agent"], "smoke/1.0");
    assert_eq!(entry["upstream_host"], upstream.addr().to_string());
    assert!(entry["portcullis"].is_null() || entry["portcullis"] == "-", "no filter, no verdict: {entry}");
    assert!(eventually(Duration::from_secs(5), || envoy.access_log_lines().len() == 6));

    // Both workers accept connections, and their stats are readable by name.
    let mut seen = [0u64; 2];
    assert!(
        eventually(Duration::from_secs(10), || {
            envoy.get("/spread", &[]);
            seen = [envoy.worker_stat(0, "downstream_cx_total"), envoy.worker_stat(1, "downstream_cx_total")];
            seen[0] > 0 && seen[1] > 0
        }),
        "connections never reached both workers: {seen:?}"
    );
    assert!(envoy.stat("http.ingress.downstream_rq_completed").unwrap() >= 6);
    envoy.assert_no_critical_wasm();
}

#[test]
fn harness_direct_response_without_upstream() {
    let envoy = EnvoyConfig::new().concurrency(1).direct_response(true).access_log(false).start();
    let mut client = envoy.client();
    for _ in 0..3 {
        let response = client.get("/anything", &[]);
        assert_eq!(response.status, 200);
        assert_eq!(response.json()["direct"], "ok");
    }
    assert_eq!(envoy.concurrency(), 1);
    assert_eq!(envoy.worker_connections(), vec![1]);
    assert!(envoy.access_log_lines().is_empty());
    assert!(envoy.is_running());
}

#[test]
fn harness_direct_response_with_a_large_json_body() {
    // Past Envoy's default 4 KiB limit on direct response bodies, with characters JSON and YAML must escape.
    let body = format!(r#"{{"note":"it's \"quoted\"","items":[{}]}}"#, vec!["1234567890"; 1000].join(","));
    let envoy = EnvoyConfig::new()
        .concurrency(1)
        .direct_response_body(body.clone(), "application/json")
        .access_log(false)
        .start();
    let response = envoy.get("/api/v1/orders?page=2", &[]);
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.header("content-type"), Some("application/json"));
    assert_eq!(response.text(), body);
    assert_eq!(response.json()["note"], r#"it's "quoted""#);
}

#[test]
fn harness_loads_a_wasm_filter_in_v8() {
    let upstream = Upstream::start();
    let envoy = EnvoyConfig::new().upstream(upstream.addr()).wasm_filter(WasmFilter::noop()).start();
    let mut client = envoy.client_new_connection_each();
    for _ in 0..10 {
        assert_eq!(client.get("/through-wasm", &[]).status, 200);
    }
    assert_eq!(upstream.requests_for("/through-wasm"), 10);
    assert!(envoy.stats().contains("wasm"), "wasm stats exist once a VM is loaded");
    envoy.assert_no_critical_wasm();
}
