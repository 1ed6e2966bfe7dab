//! The over-time policies that `make bench` measures and `tests/vm_cost.rs` holds to a budget of proxy-wasm calls:
//! one definition, so the figures and the budget speak of the same policy.

/// Three `batched: true` counters updated with the request headers, two dynamic lists looked up by one rule (`||`
/// looks up both when the token is not listed), and a rule reading a counter: the shape of the issue's headline
/// (abusive tokens on sensitive endpoints), keyed by the token (`x-api-key`) and the endpoint. No rule matches an
/// ordinary request; the canary rule (`GET /bench-canary` is blocked) shows the bundle is enforced.
///
/// Batched, each worker VM adds up its `requests` updates and writes them to shared data once per key per 250 ms
/// tick (one compare-and-swap per key and tick instead of one per request); a rule reads the shared value, cached
/// per key and tick, plus the worker's unwritten adds. The batched `distinct` counter skips an item this worker
/// already recorded for the key in its window, and the batched lists remember each lookup's answer until the
/// worker's next tick. [`counters_exact_policy`] is the same policy unbatched; [`counters_by_address_policy`] keys
/// one counter and one list by the client address instead of the endpoint.
pub const COUNTERS_POLICY: &str = r#"version: 1
tokens:
  sources: [ { header: x-api-key } ]
lists:
  - { id: abusive-tokens, key: token, ttl: 1h, batched: true }
  - { id: denied-endpoints, key: endpoint, ttl: 1h, batched: true }
counters:
  - { id: requests-per-token, kind: requests, per: token.id, window: 1m, batched: true }
  - { id: requests-per-token-endpoint, kind: requests, per: [token.id, endpoint], window: 1m, batched: true }
  - { id: endpoints-per-token, kind: distinct, per: token.id, of: endpoint, window: 5m, batched: true }
rules:
  - id: canary
    when: request.path == "/bench-canary"
    action: block
  - id: listed-caller
    when: token.id in lists["abusive-tokens"] || endpoint in lists["denied-endpoints"]
    action: block
  - id: too-many-requests
    when: count("requests-per-token") > 100000000
    action: throttle
    retry_after: 30s
"#;

/// [`COUNTERS_POLICY`] with the client address in place of the endpoint: requests per address, and the address
/// looked up in a list. Reading `source.ip` costs one more proxy-wasm call per request (Envoy's `source.address`
/// property); when every request comes from one address, `requests-per-ip` is one key that every worker writes,
/// the most contended case.
pub fn counters_by_address_policy() -> String {
    COUNTERS_POLICY
        .replace(
            "{ id: denied-endpoints, key: endpoint, ttl: 1h, batched: true }",
            "{ id: denied-ips, key: source_ip, ttl: 1h, batched: true }",
        )
        .replace(
            "{ id: requests-per-token-endpoint, kind: requests, per: [token.id, endpoint], window: 1m, batched: true }",
            "{ id: requests-per-ip, kind: requests, per: source.ip, window: 1m, batched: true }",
        )
        .replace(r#"endpoint in lists["denied-endpoints"]"#, r#"source.ip in lists["denied-ips"]"#)
}

/// [`COUNTERS_POLICY`] without `batched`: exact counters, each update a read-modify-write (compare-and-swap) of a
/// shared-data bucket on every request.
pub fn counters_exact_policy() -> String {
    COUNTERS_POLICY.replace(", batched: true", "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_variants_differ_only_where_they_say() {
        let by_address = counters_by_address_policy();
        assert!(!by_address.contains("endpoint in lists") && !by_address.contains("denied-endpoints"), "{by_address}");
        assert!(by_address.contains("per: source.ip") && by_address.contains("key: source_ip"), "{by_address}");
        assert_eq!(by_address.matches("source.ip").count(), 2, "{by_address}");
        assert!(!counters_exact_policy().contains("batched"));
    }
}
