//! Counters, dynamic and static lists, and the over-time actions (`add_to_list`, `throttle`), from YAML to a
//! verdict. The filter's shared data is stood in for by tables in a `RefCell`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
#![cfg(feature = "compiler")]

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};

use portcullis_policies::compiler::{compile, compile_to_bytes, CompileOptions};
use portcullis_policies::detect::CounterKind;
use portcullis_policies::engine::{CounterEvent, CounterInput, Request};
use portcullis_policies::program::Phase;
use portcullis_policies::token::TokenField;
use portcullis_policies::{Action, Attribute, Bundle};

const OVER_TIME: &str = include_str!("../../envoy-examples/policies/over-time.yaml");

/// The issue's headline, as written there.
const HEADLINE: &str = r#"
version: 1
tokens:
  sources: [{ header: authorization, scheme: Bearer }]
lists:
  - { id: sensitive-endpoints, key: endpoint, ttl: 24h }
  - { id: abusive-tokens, key: token, ttl: 1h }
counters:
  - id: errors-by-token
    kind: distinct
    per: token.id
    of: endpoint
    when: response.code >= 400
    window: 5m
rules:
  - id: list-abusive-tokens
    when: distinct_count("errors-by-token", token.id) > 20
    action: add_to_list
    list: abusive-tokens
    ttl: 1h
  - id: protect-sensitive
    when: endpoint in lists["sensitive-endpoints"] && token.id in lists["abusive-tokens"]
    action: block
    status: 403
"#;

fn options(file_name: &str) -> CompileOptions {
    CompileOptions { policy_name: "t".into(), revision: 1, file_name: file_name.into() }
}

fn load(source: &str) -> Bundle {
    Bundle::from_bytes(&compile_to_bytes(source, &options("t.yaml")).unwrap()).unwrap()
}

fn error(source: &str) -> String {
    compile(source, &options("t.yaml")).unwrap_err().to_string()
}

/// One exchange, with the gateway's state (counters and dynamic lists) behind it.
#[derive(Default)]
struct Exchange {
    endpoint: String,
    token: Option<String>,
    source_ip: String,
    response_code: Option<i64>,
    /// Counter values by (counter, key).
    counters: HashMap<(u16, Vec<u8>), i64>,
    /// Dynamic list entries: (list, key).
    lists: RefCell<HashSet<(u16, Vec<u8>)>>,
    /// `add_to_list` calls: (list, ttl).
    added: RefCell<Vec<(u16, u64)>>,
}

impl Request for Exchange {
    fn attribute(&self, attribute: Attribute) -> Option<Cow<'_, [u8]>> {
        match attribute {
            Attribute::Endpoint => Some(Cow::Borrowed(self.endpoint.as_bytes())),
            Attribute::SourceIp => Some(Cow::Borrowed(self.source_ip.as_bytes())),
            _ => None,
        }
    }
    fn header(&self, _: &[u8]) -> Option<Cow<'_, [u8]>> {
        None
    }
    fn token_present(&self) -> bool {
        self.token.is_some()
    }
    fn token_field(&self, field: TokenField) -> Option<Cow<'_, [u8]>> {
        match field {
            TokenField::Id => self.token.as_deref().map(|t| Cow::Borrowed(t.as_bytes())),
            TokenField::Kind => Some(Cow::Borrowed(b"opaque")),
        }
    }
    fn in_list(&self, list: u16, key: &[u8]) -> Option<bool> {
        Some(self.lists.borrow().contains(&(list, key.to_vec())))
    }
    fn counter_value(&self, counter: u16, key: &[u8]) -> Option<i64> {
        Some(self.counters.get(&(counter, key.to_vec())).copied().unwrap_or(0))
    }
    fn response_code(&self) -> Option<i64> {
        self.response_code
    }
    fn add_to_list(&self, list: u16, ttl_seconds: u64) -> bool {
        self.added.borrow_mut().push((list, ttl_seconds));
        // Lists of this test are keyed by token.
        let Some(token) = &self.token else { return false };
        self.lists.borrow_mut().insert((list, token.as_bytes().to_vec()));
        true
    }
}

#[test]
fn the_headline_compiles_to_a_response_counter_and_two_header_rules() {
    let bundle = load(HEADLINE);
    let counter = &bundle.counters()[0];
    assert_eq!((counter.kind, counter.window_seconds, counter.max_distinct), (CounterKind::Distinct, 300, 32));
    // It reads response.code, so it counts at the end of the exchange; the rules read it with the headers.
    assert_eq!(counter.phase, Phase::Response);
    assert!(bundle.rules().iter().all(|r| r.phase == Phase::RequestHeaders));
    assert_eq!(
        (bundle.rules()[0].action, bundle.rules()[0].list, bundle.rules()[0].ttl_seconds),
        (Action::AddToList, Some(1), 3600)
    );
}

#[test]
fn an_abusive_token_is_listed_and_blocked_on_sensitive_endpoints_only() {
    let bundle = load(HEADLINE);
    let mut ex =
        Exchange { endpoint: "GET api/accounts/{id}".into(), token: Some("t-abuser".into()), ..Exchange::default() };
    ex.counters.insert((0, b"t-abuser".to_vec()), 25);
    ex.lists.borrow_mut().insert((0, b"GET api/accounts/{id}".to_vec()));

    // The add happens at once, so the next rule of the same request already sees the token listed.
    let v = bundle.evaluate(&ex);
    assert_eq!((v.action, v.status, v.matched), (Some(Action::Block), 403, 2));
    assert_eq!(bundle.rule_id(v.rule.unwrap()), Some("protect-sensitive"));
    assert_eq!(*ex.added.borrow(), [(1, 3600)]);

    // Same token, endpoint not sensitive: listed again, not blocked.
    ex.endpoint = "GET api/health".into();
    let v = bundle.evaluate(&ex);
    assert_eq!(v.action, Some(Action::AddToList));

    // Another token on the sensitive endpoint: nothing.
    let other =
        Exchange { endpoint: "GET api/accounts/{id}".into(), token: Some("t-ok".into()), ..Exchange::default() };
    other.lists.borrow_mut().insert((0, b"GET api/accounts/{id}".to_vec()));
    assert_eq!(bundle.evaluate(&other).action, None);

    // At 20 distinct errors the token is not listed.
    ex.counters.insert((0, b"t-abuser".to_vec()), 20);
    ex.lists.borrow_mut().clear();
    assert_eq!(bundle.evaluate(&ex).action, None);
}

#[test]
fn counter_events_need_their_condition_and_key() {
    let bundle = load(HEADLINE);
    let mut ex = Exchange { endpoint: "GET api/x/{id}".into(), token: Some("t1".into()), ..Exchange::default() };
    // No response yet: `when` cannot be decided, nothing is counted.
    assert_eq!(bundle.counter_event(0, &ex), None);
    ex.response_code = Some(200);
    assert_eq!(bundle.counter_event(0, &ex), None);
    ex.response_code = Some(404);
    assert_eq!(
        bundle.counter_event(0, &ex),
        Some(CounterEvent { key: b"t1".to_vec(), input: CounterInput::Value(b"GET api/x/{id}".to_vec()) })
    );
    // Without a token there is no key.
    ex.token = None;
    assert_eq!(bundle.counter_event(0, &ex), None);
}

#[test]
fn combined_keys_sums_and_throttles() {
    let bundle = load(
        r#"
version: 1
counters:
  - { id: per-ip-endpoint, kind: requests, per: [source.ip, endpoint], window: 10s }
  - { id: bytes, kind: sum, per: source.ip, of: response.code, window: 1h }
rules:
  - id: slow-down
    when: count("per-ip-endpoint") > 100
    action: throttle
    retry_after: 2m
"#,
    );
    assert_eq!(bundle.counters()[0].phase, Phase::RequestHeaders);
    let mut ex = Exchange { endpoint: "GET h/a".into(), source_ip: "10.0.0.9".into(), ..Exchange::default() };
    let event = bundle.counter_event(0, &ex).unwrap();
    assert_eq!((event.key.as_slice(), event.input), (b"10.0.0.9\x1fGET h/a".as_slice(), CounterInput::One));
    ex.response_code = Some(512);
    assert_eq!(bundle.counter_event(1, &ex).unwrap().input, CounterInput::Amount(512));

    ex.counters.insert((0, b"10.0.0.9\x1fGET h/a".to_vec()), 101);
    let v = bundle.evaluate(&ex);
    assert_eq!((v.action, v.status, v.retry_after), (Some(Action::Throttle), 429, 120));
    assert!(v.is_block(), "a throttle is answered by the filter");
}

#[test]
fn body_fields_key_counters_and_wait_for_the_body() {
    let bundle = load(
        r#"
version: 1
counters:
  - id: failed-logins-by-user
    kind: requests
    per: request.body["username"]
    when: endpoint == "POST h/login" && response.code == 401
    window: 1h
rules:
  - id: stuffing
    when: endpoint == "POST h/login" && count("failed-logins-by-user") >= 5
    action: throttle
  - id: admin-login
    when: request.body["user.role"] == "admin"
    action: monitor
"#,
    );
    assert_eq!(bundle.counters()[0].phase, Phase::Response);
    // The rule reads this exchange's own key, which is in the body: it is decided with the body.
    let phases: Vec<Phase> = bundle.rules().iter().map(|r| r.phase).collect();
    assert_eq!(phases, [Phase::RequestBody, Phase::RequestBody]);
    assert!(error("version: 1\nrules:\n  - { id: r, when: 'request.body[\"a..b\"] == \"x\"', action: block }\n")
        .ends_with("a body field is a name or a dotted path (user.name)"));
}

#[test]
fn static_lists_hold_addresses_networks_and_exact_keys() {
    let bundle = load(
        r#"
version: 1
lists:
  - id: denied
    key: source_ip
    entries: ["192.0.2.0/24", "198.51.100.7", "2001:db8::/32"]
  - id: internal
    key: endpoint
    entries: ["POST h/internal/reindex"]
rules:
  - { id: deny, when: 'source.ip in lists["denied"]', action: block }
  - { id: internal, when: 'endpoint in lists["internal"]', action: block, status: 404 }
"#,
    );
    let decide = |ip: &str, endpoint: &str| {
        let ex = Exchange { endpoint: endpoint.into(), source_ip: ip.into(), ..Exchange::default() };
        let v = bundle.evaluate(&ex);
        v.rule.and_then(|r| bundle.rule_id(r)).map(str::to_owned)
    };
    for ip in ["192.0.2.1", "192.0.2.255", "198.51.100.7", "2001:db8::1", "2001:db8:ffff::9", "::ffff:192.0.2.9"] {
        assert_eq!(decide(ip, "GET h/"), Some("deny".into()), "{ip}");
    }
    for ip in ["192.0.3.1", "198.51.100.8", "2001:db9::1", "not an address", ""] {
        assert_eq!(decide(ip, "GET h/"), None, "{ip}");
    }
    assert_eq!(decide("10.0.0.1", "POST h/internal/reindex"), Some("internal".into()));
    assert_eq!(decide("10.0.0.1", "POST h/internal/other"), None);
}

#[test]
fn the_example_policy_instantiates_every_template() {
    let bundle = load(OVER_TIME);
    let kinds: Vec<(&str, CounterKind, Phase)> =
        bundle.counters().iter().map(|c| (c.id.as_str(), c.kind, c.phase)).collect();
    assert_eq!(
        kinds,
        [
            ("requests-per-token", CounterKind::Requests, Phase::RequestHeaders),
            ("errors-by-token", CounterKind::Distinct, Phase::Response),
            ("token-country", CounterKind::LastSeen, Phase::RequestHeaders),
            ("failed-logins-by-ip", CounterKind::Requests, Phase::Response),
            ("failed-logins-by-user", CounterKind::Requests, Phase::Response),
            ("bytes-per-token", CounterKind::Sum, Phase::Response),
            ("card-responses-per-token", CounterKind::Requests, Phase::Response),
        ]
    );
}

#[test]
fn errors_name_the_place_and_the_fix() {
    let cases: &[(&str, &str)] = &[
        (
            "version: 1\nrules:\n  - { id: r, when: 'count(\"nope\") > 1', action: block }\n",
            "t.yaml:3:27: unknown counter 'nope' (no counters are declared)",
        ),
        (
            "version: 1\ncounters:\n  - { id: c, kind: distinct, per: endpoint, of: source.ip, window: 1m }\n\
             rules:\n  - { id: r, when: 'count(\"c\") > 1', action: block }\n",
            "t.yaml:5:21: counter 'c' is a distinct counter: read it with distinct_count(\"c\")",
        ),
        (
            "version: 1\ncounters:\n  - { id: c, kind: requests, per: [source.ip, endpoint], window: 1m }\n\
             rules:\n  - { id: r, when: 'count(\"c\", endpoint) > 1', action: block }\n",
            "t.yaml:5:32: counter 'c' is keyed by 2 values: read this exchange's own key with count(\"c\")",
        ),
        (
            "version: 1\ncounters:\n  - { id: c, kind: requests, per: source.ip, of: endpoint, window: 1m }\nrules: []\n",
            "t.yaml:3:50: a requests counter counts exchanges: it takes no 'of' (use kind: sum)",
        ),
        (
            "version: 1\ncounters:\n  - { id: c, kind: sum, per: source.ip, window: 1m }\nrules: []\n",
            "t.yaml:3:5: missing required field 'of' in counter 'c' (the amount to add)",
        ),
        (
            "version: 1\ncounters:\n  - { id: c, kind: last_seen, per: source.ip, of: endpoint, when: 'response.code > 0', window: 1m }\nrules: []\n",
            "t.yaml:3:67: counter 'c' is read by seen_elsewhere() before the rules that can block: it may only use \
             what the request headers carry (no bodies, no response)",
        ),
        (
            "version: 1\ncounters:\n  - { id: c, kind: requests, per: response.code, window: 1m }\nrules: []\n",
            "t.yaml:3:35: type error: a counter key must be a string, found int",
        ),
        (
            "version: 1\ncounters:\n  - { id: c, kind: requests, per: source.ip, window: 1y }\nrules: []\n",
            "t.yaml:3:54: invalid window '1y' (expected a duration such as 90s, 15m, 24h, 7d or 1h30m)",
        ),
        (
            "version: 1\nrules:\n  - { id: r, when: 'true', action: add_to_list, list: nope }\n",
            "t.yaml:3:55: unknown list 'nope' (no lists are declared)",
        ),
        (
            "version: 1\nlists:\n  - { id: l, key: endpoint, entries: [a] }\n\
             rules:\n  - { id: r, when: 'true', action: add_to_list, list: l }\n",
            "t.yaml:5:55: list 'l' is static (no ttl): add_to_list needs a list with a ttl",
        ),
        (
            "version: 1\nrules:\n  - { id: r, when: 'true', action: add_to_list }\n",
            "t.yaml:3:5: missing required field 'list' in rule 'r'",
        ),
        (
            "version: 1\nrules:\n  - { id: r, when: 'true', action: block, ttl: 1h }\n",
            "t.yaml:3:43: 'ttl' only applies to action: add_to_list",
        ),
        (
            "version: 1\nrules:\n  - { id: r, when: 'true', action: monitor, retry_after: 1m }\n",
            "t.yaml:3:58: 'retry_after' only applies to action: throttle",
        ),
        (
            "version: 1\nrules:\n  - { id: r, when: 'response.code == 500', action: throttle }\n",
            "t.yaml:3:52: rule 'r' reads the response, which has already reached the client when it is decided: use \
             action: monitor or add_to_list, or a list whose add_when uses the detection",
        ),
        (
            "version: 1\nlists:\n  - { id: l, key: source_ip, entries: ['10.0.0.1/8'] }\nrules: []\n",
            "t.yaml:3:40: invalid address or network '10.0.0.1/8' (expected 192.0.2.7, 10.0.0.0/8 or 2001:db8::/32, \
             with no host bits past the prefix)",
        ),
        (
            "version: 1\nlists:\n  - { id: l, key: endpoint }\nrules: []\n",
            "t.yaml:3:5: list 'l' needs a ttl (dynamic entries), entries (static), or both",
        ),
        (
            "version: 1\ncounters:\n  - { id: c, kind: last_seen, per: source.ip, of: endpoint, window: 1m, batched: true }\nrules: []\n",
            "t.yaml:3:82: 'batched' does not apply to kind: last_seen (it compares every exchange)",
        ),
        (
            "version: 1\nrules:\n  - { id: r, when: 'seen_elsewhere(\"x\", endpoint)', action: block }\n",
            "t.yaml:3:21: 'seen_elsewhere' takes 1 argument, found 2",
        ),
    ];
    let mut wrong = Vec::new();
    for (source, expected) in cases {
        let got = error(source);
        if &got != expected {
            wrong.push(format!("{source}\n  got:  {got}\n  want: {expected}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
}
