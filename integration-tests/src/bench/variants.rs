//! The `variants` section of `make bench` (see the bench's module doc, "What runs"): eleven Envoys in interleaved
//! rounds, measuring the rules on request headers (the demo policy), sensitive-data inspection of a 16 KiB JSON
//! response, and JWT verification against Envoy's `jwt_authn`.

// The bench's shared machinery (variants, rounds, tables, settings) and its imports.
use super::*;

/// The policy Portcullis enforces, relative to the repository root.
const POLICY: &str = "envoy-examples/policies/demo.yaml";

/// The bundle name the filter fetches.
const BUNDLE: &str = "demo";

/// The filter counters that must not move while measuring: the load request is neither blocked nor monitored,
/// and a bundle is active throughout.
const PORTCULLIS_COUNTERS: [&str; 3] =
    ["portcullis.requests_blocked", "portcullis.requests_monitored", "portcullis.requests_without_bundle"];

/// N of the JSON pair unless `BENCH_SENSITIVE_REQUESTS` says otherwise: each of its requests costs several times
/// one of the others, so fewer keep a round short.
pub(super) const DEFAULT_SENSITIVE_REQUESTS: u64 = 8_000;

/// The bundle name of [`SENSITIVE_POLICY`].
const SENSITIVE_BUNDLE: &str = "sensitive";

/// Every built-in classifier (`policies/src/scan/builtin.rs`, `BUILTINS`) on `response.body`; `card_expiry` is
/// layered on the card detection, as the compiler requires. A card number going out lists the endpoint, and requests
/// to a listed endpoint are monitored: after the first response, every request runs scan, list addition, list
/// lookup and verdict. A unit test keeps the detections in step with `BUILTINS`.
pub(super) const SENSITIVE_POLICY: &str = r#"version: 1
detections:
  - id: cards-out
    classifier: credit_card
    in: response.body
  - id: expiry-out
    classifier: card_expiry
    in: response.body
    requires: cards-out
  - id: ssn-out
    classifier: us_ssn
    in: response.body
  - id: iban-out
    classifier: iban
    in: response.body
  - id: email-out
    classifier: email
    in: response.body
  - id: phone-out
    classifier: phone
    in: response.body
  - id: ipv4-out
    classifier: ipv4
    in: response.body
  - id: ipv6-out
    classifier: ipv6
    in: response.body
  - id: aws-key-out
    classifier: aws_access_key_id
    in: response.body
  - id: github-token-out
    classifier: github_token
    in: response.body
  - id: slack-token-out
    classifier: slack_token
    in: response.body
  - id: stripe-key-out
    classifier: stripe_secret_key
    in: response.body
  - id: private-key-out
    classifier: private_key
    in: response.body
  - id: jwt-out
    classifier: jwt
    in: response.body
lists:
  - id: sensitive-endpoints
    key: endpoint
    add_when: detected("cards-out")
    ttl: 1h
rules:
  - id: watch-sensitive
    when: endpoint in lists["sensitive-endpoints"]
    action: monitor
"#;

/// The content type of the JSON pair's response.
pub(super) const JSON: &str = "application/json";

/// The size the generated orders page stays within.
const DOCUMENT_MAX_BYTES: usize = 16 * 1024;

/// The Luhn-valid test card numbers the orders page leaks (Visa and Mastercard), with their expiry dates.
pub(super) const TEST_CARDS: [(&str, &str); 2] = [("4111 1111 1111 1111", "12/29"), ("5555 5555 5555 4444", "08/27")];

/// Which order (by position on the page) carries which of [`TEST_CARDS`].
const CARD_ORDERS: [usize; 2] = [3, 14];

/// Every how many orders the customer left a phone number.
const PHONE_EVERY: usize = 4;

/// The counters of Portcullis with [`SENSITIVE_POLICY`] that every measured request bumps by one: its response was
/// inspected and held a card number, the endpoint was listed (again), and the request was monitored.
const SENSITIVE_COUNTERS_PER_REQUEST: [&str; 3] =
    ["portcullis.exchanges_with_detections", "portcullis.list_additions", "portcullis.requests_monitored"];

/// The counters of Portcullis with [`SENSITIVE_POLICY`] that must not move while measuring.
const SENSITIVE_COUNTERS_STILL: [&str; 4] = [
    "portcullis.requests_blocked",
    "portcullis.requests_without_bundle",
    "portcullis.bodies_truncated",
    "portcullis.list_contention",
];

/// N of `jwt_authn` and cached Portcullis unless `BENCH_TOKEN_REQUESTS` says otherwise.
pub(super) const DEFAULT_TOKEN_REQUESTS: u64 = 10_000;

/// Distinct tokens per key (and N) of uncached Portcullis unless `BENCH_UNCACHED_TOKENS` says otherwise: more than
/// twice the filter's per-VM cache of 1024 analyses, so that a round-robin pass never hits it.
pub(super) const DEFAULT_UNCACHED_TOKENS: u64 = 3_000;

/// The bundle name of [`tokens_policy`].
const TOKENS_BUNDLE: &str = "tokens";

/// How long the minted tokens are valid: longer than any bench run, inside the policy's `max_lifetime`.
const TOKEN_LIFETIME_SECONDS: i64 = 4 * 3600;

/// Where plain Envoy is in the list of variants.
const PLAIN: usize = 0;
/// Where the no-op wasm filter is.
const NOOP: usize = 1;
/// Where Portcullis with the demo policy is.
const PORTCULLIS: usize = 2;
/// Where the no-op wasm filter with the JSON response is.
const NOOP_JSON: usize = 3;
/// Where Portcullis with every classifier and the JSON response is.
const PORTCULLIS_JSON: usize = 4;
/// `jwt_verifications_per_second` of the Portcullis JWT variants: the filter's largest, so the uncached variants
/// verify every token instead of judging most `jwt.unverified` past the default budget.
const UNBOUNDED_VERIFICATIONS: u32 = 1_000_000;

/// Where Envoy's `jwt_authn` verifying an ES256 token is.
const JWT_AUTHN_ES256: usize = 5;
/// Where Envoy's `jwt_authn` verifying an RS256 token is.
const JWT_AUTHN_RS256: usize = 6;
/// Where Portcullis with one ES256 token on every request is.
const PORTCULLIS_ES256_CACHED: usize = 7;
/// Where Portcullis with a different ES256 token on every request is.
const PORTCULLIS_ES256_UNCACHED: usize = 8;
/// Where Portcullis with one RS256 token on every request is.
const PORTCULLIS_RS256_CACHED: usize = 9;
/// Where Portcullis with a different RS256 token on every request is.
const PORTCULLIS_RS256_UNCACHED: usize = 10;
/// The Portcullis variants that verify tokens.
const PORTCULLIS_TOKENS: [usize; 4] =
    [PORTCULLIS_ES256_CACHED, PORTCULLIS_ES256_UNCACHED, PORTCULLIS_RS256_CACHED, PORTCULLIS_RS256_UNCACHED];

/// The policy of the JWT variants: the keys of `jwks`, the checks of the token issue, and rules blocking forged
/// (401), stale (401) and misaddressed (403) tokens. A valid token matches no rule.
fn tokens_policy(jwks: &serde_json::Value) -> String {
    format!(
        r#"version: 1
tokens:
  sources: [ {{ header: authorization, scheme: Bearer }} ]
  identity: claims(iss, sub)
  jwt:
    keys: {{ jwks: {jwks} }}
    allowed_algs: [ES256, RS256]
    issuers: [{ISSUER}]
    audiences: [{AUDIENCE}]
    max_lifetime: 24h
    clock_skew: 60s
    weak_secrets: builtin
rules:
  - id: forged-token
    when: detected("jwt.alg_none") || detected("jwt.bad_signature") || detected("jwt.key_confusion") || detected("jwt.embedded_key") || detected("jwt.empty_signature") || detected("jwt.malformed") || detected("jwt.alg_not_allowed") || detected("jwt.weak_secret")
    action: block
    status: 401
  - id: stale-token
    when: detected("jwt.expired") || detected("jwt.not_yet_valid") || detected("jwt.missing_exp") || detected("jwt.lifetime_too_long")
    action: block
    status: 401
  - id: wrong-audience
    when: detected("jwt.audience_mismatch") || detected("jwt.issuer_mismatch")
    action: block
    status: 403
"#
    )
}

/// The eleven Envoys measured in interleaved rounds: plain, no-op wasm and Portcullis on request headers, the JSON
/// pair, and the JWT variants.
pub(super) fn measure_variants(
    settings: &Settings,
    placement: &Placement,
    document: &OrdersDocument,
    started: Instant,
) -> Result<Section, String> {
    let policy = std::fs::read_to_string(repo_root().join(POLICY)).map_err(|e| format!("read {POLICY}: {e}"))?;
    let control_plane = ControlPlane::start_new();
    control_plane.push(BUNDLE, &compile(&policy, BUNDLE, 1));
    control_plane.push(SENSITIVE_BUNDLE, &compile(SENSITIVE_POLICY, SENSITIVE_BUNDLE, 1));
    let config = || EnvoyConfig::new().concurrency(1).direct_response(true).access_log(false).log_level("warn");
    let json_config = || config().direct_response_body(document.json.clone(), JSON);
    // "open" so that a 403 for /admin proves the bundle is loaded rather than the filter failing closed.
    let portcullis_filter = WasmFilter::portcullis(&plugin_config(BUNDLE, "open"));
    // The filter times its own scan with the host's clock (two readings per body chunk), for the in-VM MB/s.
    let mut sensitive_plugin = plugin_config(SENSITIVE_BUNDLE, "open");
    sensitive_plugin["time_inspection"] = serde_json::json!(true);
    let sensitive_filter = WasmFilter::portcullis(&sensitive_plugin);
    let (n, n_json) = (settings.requests, settings.sensitive_requests);
    let keys = TokenKeys::new();
    let minting = Instant::now();
    let tokens = MintedTokens::mint(&keys, settings.uncached_tokens);
    eprintln!(
        "bench: minted {} ES256 and {} RS256 tokens ({:.1} s)",
        tokens.es256.len() + 1,
        tokens.rs256.len() + 1,
        minting.elapsed().as_secs_f64()
    );
    control_plane.push(TOKENS_BUNDLE, &compile(&tokens_policy(&keys.jwks()), TOKENS_BUNDLE, 1));
    // The verification budget is lifted so that "uncached" measures verifications, not the budget's refusals.
    let mut tokens_plugin = plugin_config(TOKENS_BUNDLE, "open");
    tokens_plugin["jwt_verifications_per_second"] = serde_json::json!(UNBOUNDED_VERIFICATIONS);
    let portcullis_tokens =
        || config().control_plane(control_plane.addr()).wasm_filter(WasmFilter::portcullis(&tokens_plugin)).start();
    let jwt_authn = || config().jwt_authn(&keys.jwks()).start();
    let (n_tokens, n_uncached) = (settings.token_requests, settings.uncached_tokens);
    let one = |token: &str| vec![load::get_request(PATH, &pairs(&token_headers(token)))];
    let many = |all: &[String]| {
        let bearers: Vec<String> = all.iter().map(|t| format!("Bearer {t}")).collect();
        load::get_requests(PATH, &pairs(&token_headers("")), "authorization", &bearers)
    };
    let mut variants = vec![
        Variant::new("plain Envoy", config().start(), n),
        Variant::new("+ no-op wasm", config().wasm_filter(WasmFilter::noop()).start(), n),
        Variant::new(
            "+ Portcullis (demo policy)",
            config().control_plane(control_plane.addr()).wasm_filter(portcullis_filter).start(),
            n,
        ),
        Variant::new(
            "+ no-op wasm, 16 KiB JSON response",
            json_config().wasm_filter(WasmFilter::noop()).start(),
            n_json,
        ),
        Variant::new(
            "+ Portcullis (all classifiers), 16 KiB JSON response",
            json_config().control_plane(control_plane.addr()).wasm_filter(sensitive_filter).start(),
            n_json,
        ),
        Variant::new("jwt_authn ES256", jwt_authn(), n_tokens).with_requests(one(&tokens.es256_cached)),
        Variant::new("jwt_authn RS256", jwt_authn(), n_tokens).with_requests(one(&tokens.rs256_cached)),
        Variant::new("Portcullis ES256 cached", portcullis_tokens(), n_tokens).with_requests(one(&tokens.es256_cached)),
        Variant::new("Portcullis ES256 uncached", portcullis_tokens(), n_uncached).with_requests(many(&tokens.es256)),
        Variant::new("Portcullis RS256 cached", portcullis_tokens(), n_tokens).with_requests(one(&tokens.rs256_cached)),
        Variant::new("Portcullis RS256 uncached", portcullis_tokens(), n_uncached).with_requests(many(&tokens.rs256)),
    ];
    placement.apply(variants.iter().map(|v| (v.name, &v.envoy)))?;
    let headers = request_headers();
    wait_until_enforcing(&variants[PORTCULLIS].envoy, &headers)?;
    check_json_response(&variants[NOOP_JSON].envoy, &headers, &document.json)?;
    wait_until_inspecting(&variants[PORTCULLIS_JSON].envoy, &headers, &document.json)?;
    for (at, token, last) in [
        (JWT_AUTHN_ES256, &tokens.es256_cached, None),
        (JWT_AUTHN_RS256, &tokens.rs256_cached, None),
        (PORTCULLIS_ES256_CACHED, &tokens.es256_cached, None),
        (PORTCULLIS_ES256_UNCACHED, &tokens.es256[0], tokens.es256.last()),
        (PORTCULLIS_RS256_CACHED, &tokens.rs256_cached, None),
        (PORTCULLIS_RS256_UNCACHED, &tokens.rs256[0], tokens.rs256.last()),
    ] {
        check_token_verification(&variants[at], token, last)?;
    }
    let request = load::get_request(PATH, &headers);
    eprintln!(
        "bench: {} Envoys up, Portcullis enforcing and inspecting ({:.1} s)",
        variants.len(),
        started.elapsed().as_secs_f64()
    );

    // A full run each, uncounted: V8 tiers the modules up to optimised code in the background meanwhile.
    for variant in &mut variants {
        variant.measure(&request, settings.connections, None)?;
    }
    let counters_before = counters(&variants[PORTCULLIS].envoy, &PORTCULLIS_COUNTERS);
    let token_counters = |variants: &[Variant]| -> Vec<Vec<Option<u64>>> {
        PORTCULLIS_TOKENS.iter().map(|&at| counters(&variants[at].envoy, &PORTCULLIS_COUNTERS)).collect()
    };
    let tokens_before = token_counters(&variants);
    // The filter publishes its scan timing on its 250 ms tick: let the warm-up's settle first.
    std::thread::sleep(Duration::from_millis(600));
    let timing_before = ScanTiming::read(&variants[PORTCULLIS_JSON].envoy);
    let sensitive_before = SensitiveCounters::read(&variants[PORTCULLIS_JSON].envoy);
    measure_rounds(&mut variants, &request, settings, started, "")?;
    let counters_after = counters(&variants[PORTCULLIS].envoy, &PORTCULLIS_COUNTERS);
    let tokens_after = token_counters(&variants);
    let measured_json: u64 = variants[PORTCULLIS_JSON].runs.iter().map(|r| r.completed).sum();
    std::thread::sleep(Duration::from_millis(600));
    let timing = ScanTiming::read(&variants[PORTCULLIS_JSON].envoy).since(&timing_before);
    let inspected = check_inspected(&variants[PORTCULLIS_JSON].envoy, &sensitive_before, measured_json);

    let checked = (|| {
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
        inspected.clone()?;
        if tokens_before != tokens_after {
            return Err(format!(
                "Portcullis verifying JWTs blocked, monitored or passed without a bundle some load requests: \
                 {PORTCULLIS_COUNTERS:?} of the four went from {tokens_before:?} to {tokens_after:?}"
            ));
        }
        Ok(())
    })();
    Ok(Section {
        text: tables(&variants, document, &inspected, &timing),
        checked,
        envoys: variants.into_iter().map(|v| v.envoy).collect(),
        _control_planes: vec![control_plane],
        _upstreams: Vec::new(),
    })
}

/// The filter's own timing of its body scans (`time_inspection: true`): nanoseconds and bytes, summed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct ScanTiming {
    /// `portcullis.inspection_ns`.
    ns: u64,
    /// `portcullis.inspected_bytes`.
    bytes: u64,
}

/// The issue's aim for the scan inside the VM, in MB/s.
const SCAN_AIM_MB_S: f64 = 200.0;

impl ScanTiming {
    fn read(envoy: &Envoy) -> Self {
        let stat = |name: &str| envoy.wasm_stat(name).unwrap_or(0);
        Self { ns: stat("portcullis.inspection_ns"), bytes: stat("portcullis.inspected_bytes") }
    }

    fn since(&self, before: &Self) -> Self {
        Self { ns: self.ns.saturating_sub(before.ns), bytes: self.bytes.saturating_sub(before.bytes) }
    }

    /// The report line: bytes over nanoseconds, against the aim.
    fn describe(&self) -> String {
        if self.ns == 0 || self.bytes == 0 {
            return "**Scan timed inside the VM**: no timing published (is `time_inspection` on?)".to_string();
        }
        // Bytes per nanosecond are 10^3 MB/s.
        let rate = self.bytes as f64 / self.ns as f64 * 1000.0;
        let verdict = if rate > SCAN_AIM_MB_S { "met" } else { "missed" };
        format!(
            "**Scan timed inside the VM** (`time_inspection: true`: the filter reads the host's clock around the \
             scan of each body chunk): {} bytes in {:.1} ms = **{rate:.0} MB/s**; the issue's aim (above \
             {SCAN_AIM_MB_S:.0} MB/s): **{verdict}**. This times the scan alone (decoding, the DFA, validation, \
             context), not the copy of the body into the VM or the rest of the exchange.",
            self.bytes,
            self.ns as f64 / 1e6,
        )
    }
}

/// The counters of Portcullis with [`SENSITIVE_POLICY`], read together.
#[derive(Clone, Debug, PartialEq, Eq)]
struct SensitiveCounters {
    /// [`SENSITIVE_COUNTERS_PER_REQUEST`], in order.
    per_request: Vec<u64>,
    /// [`SENSITIVE_COUNTERS_STILL`], in order.
    still: Vec<u64>,
}

impl SensitiveCounters {
    fn read(envoy: &Envoy) -> Self {
        let read =
            |names: &[&str]| -> Vec<u64> { counters(envoy, names).into_iter().map(|c| c.unwrap_or(0)).collect() };
        Self { per_request: read(&SENSITIVE_COUNTERS_PER_REQUEST), still: read(&SENSITIVE_COUNTERS_STILL) }
    }

    /// `name=value` for every counter.
    fn describe(&self) -> String {
        let names = SENSITIVE_COUNTERS_PER_REQUEST.iter().chain(&SENSITIVE_COUNTERS_STILL);
        let values = self.per_request.iter().chain(&self.still);
        names
            .zip(values)
            .map(|(name, value)| format!("{}={value}", name.trim_start_matches("portcullis.")))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Checks that each of the `measured` requests since `before` was inspected, found a card, listed the endpoint and
/// was monitored, and nothing else happened. Returns a sentence for the report, or what went wrong.
fn check_inspected(envoy: &Envoy, before: &SensitiveCounters, measured: u64) -> Result<String, String> {
    let expected = SensitiveCounters {
        per_request: before.per_request.iter().map(|c| c + measured).collect(),
        still: before.still.clone(),
    };
    let mut after = SensitiveCounters::read(envoy);
    // Counters are bumped before the response is sent; the wait only covers a slow admin read.
    eventually(Duration::from_secs(2), || {
        after = SensitiveCounters::read(envoy);
        after == expected
    });
    if after != expected {
        return Err(format!(
            "Portcullis with all classifiers did not inspect and monitor each of the {measured} measured requests \
             (and nothing else): counters went from {} to {}, expected {}",
            before.describe(),
            after.describe(),
            expected.describe()
        ));
    }
    Ok(format!(
        "Checked from the filter's stats: each of the {measured} measured requests had its response inspected with a \
         detection (`exchanges_with_detections` +{measured}), listed its endpoint (`list_additions` +{measured}) and \
         was monitored (`requests_monitored` +{measured}); none was blocked, truncated or without a bundle."
    ))
}

/// The JSON pair's response: a page of orders as an e-commerce API returns it.
pub(super) struct OrdersDocument {
    /// The compact JSON text.
    pub(super) json: String,
    /// Orders on the page.
    pub(super) orders: usize,
    /// Customers' phone numbers on the page.
    pub(super) phones: usize,
}

/// Page 2 of `GET /api/v1/orders`: as many orders as fit in [`DOCUMENT_MAX_BYTES`], each with an id, timestamps, the
/// customer's name and email (every [`PHONE_EVERY`]th with a phone number), a shipping address, items, amounts and
/// the payment, which for the orders at [`CARD_ORDERS`] leaks a full test card number and its expiry date.
pub(super) fn orders_document() -> OrdersDocument {
    const FIRST: &[&str] = &[
        "Olivia", "Liam", "Emma", "Noah", "Amelia", "Mateo", "Sofia", "Lucas", "Priya", "Kenji", "Amara", "Jonas",
        "Chloe", "Diego", "Hannah", "Omar",
    ];
    const LAST: &[&str] = &[
        "Martin",
        "Nguyen",
        "Garcia",
        "Okafor",
        "Schmidt",
        "Tanaka",
        "Rossi",
        "Kowalski",
        "Patel",
        "Johansson",
        "Dubois",
        "Murphy",
        "Silva",
        "Cohen",
    ];
    const STREETS: &[&str] = &[
        "Maple Avenue",
        "Oak Street",
        "Sunset Boulevard",
        "Harbor Road",
        "Elm Court",
        "Mission Street",
        "Lakeview Drive",
        "Cedar Lane",
    ];
    const CITIES: &[(&str, &str, &str)] = &[
        ("San Francisco", "CA", "941"),
        ("Portland", "OR", "972"),
        ("Austin", "TX", "787"),
        ("Chicago", "IL", "606"),
        ("Brooklyn", "NY", "112"),
        ("Denver", "CO", "802"),
    ];
    const PRODUCTS: &[(&str, u64)] = &[
        ("Espresso beans, 1 kg", 2490),
        ("Ceramic pour-over dripper", 3200),
        ("Merino wool socks, 3 pairs", 2750),
        ("USB-C charging cable, 2 m", 1299),
        ("Cast iron skillet, 26 cm", 4599),
        ("Noise-cancelling headphones", 19900),
        ("Paperback: The Left Hand of Darkness", 1150),
        ("Yoga mat, 6 mm", 3800),
    ];
    const STATUSES: &[&str] = &["pending", "paid", "shipped", "shipped", "delivered", "delivered", "refunded"];
    const BRANDS: &[(&str, &str)] = &[("visa", "4242"), ("mastercard", "4444"), ("amex", "8431"), ("visa", "1881")];
    const ALNUM: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let money = |cents: u64| format!("{}.{:02}", cents / 100, cents % 100);

    let mut rng = Rng(0x0b5e_55ed_c0ff_ee00);
    let mut orders: Vec<String> = Vec::new();
    let mut phones = 0;
    let mut body_len = 0;
    for i in 0.. {
        let (first, last) = (rng.pick(FIRST), rng.pick(LAST));
        let (city, state, zip) = CITIES[rng.below(CITIES.len() as u64) as usize];
        let day = 1 + rng.below(28);
        let (hour, minute, second) = (rng.below(24), rng.below(60), rng.below(60));
        let created = format!("2024-05-{day:02}T{hour:02}:{minute:02}:{second:02}Z");
        let updated = format!("2024-05-{:02}T{:02}:{minute:02}:{second:02}Z", day + 2, rng.below(24));
        let email = format!(
            "{}.{}{}@{}",
            first.to_lowercase(),
            last.to_lowercase(),
            rng.below(100),
            rng.pick(&["example.com", "mail.example.org", "example.net"])
        );
        let has_phone = i % PHONE_EVERY == 1;
        let phone = if has_phone {
            format!(r#","phone":"+1 {}-555-{:04}""#, rng.pick(&["415", "503", "512", "312"]), rng.below(10_000))
        } else {
            String::new()
        };
        let mut items = Vec::new();
        let mut subtotal = 0;
        for _ in 0..1 + rng.below(3) {
            let (name, price) = PRODUCTS[rng.below(PRODUCTS.len() as u64) as usize];
            let quantity = 1 + rng.below(3);
            subtotal += price * quantity;
            items.push(format!(
                r#"{{"sku":"SKU-{:05}","name":"{name}","quantity":{quantity},"unit_price":"{}"}}"#,
                10_000 + rng.below(90_000),
                money(price)
            ));
        }
        let shipping = if subtotal > 5000 { 0 } else { 499 };
        let tax = subtotal * 8 / 100;
        let payment = match CARD_ORDERS.iter().position(|&at| at == i) {
            Some(card) => {
                let (number, expiry) = TEST_CARDS[card];
                format!(r#"{{"method":"card","card_number":"{number}","expiry":"{expiry}","holder":"{first} {last}"}}"#)
            }
            None => {
                let (brand, last4) = BRANDS[rng.below(BRANDS.len() as u64) as usize];
                format!(r#"{{"method":"card","brand":"{brand}","last4":"{last4}","status":"captured"}}"#)
            }
        };
        let order = format!(
            concat!(
                r#"{{"id":"ord_{id}","number":"A-{number}","status":"{status}","created_at":"{created}","#,
                r#""updated_at":"{updated}","customer":{{"id":"cus_{customer}","name":"{first} {last}","#,
                r#""email":"{email}"{phone}}},"shipping_address":{{"name":"{first} {last}","#,
                r#""line1":"{house} {street}","line2":null,"city":"{city}","state":"{state}","#,
                r#""postal_code":"{zip}{zip_tail:02}","country":"US"}},"items":[{items}],"#,
                r#""subtotal":"{subtotal}","shipping":"{shipping}","tax":"{tax}","total":"{total}","#,
                r#""currency":"USD","payment":{payment}}}"#
            ),
            id = rng.token(ALNUM, 16),
            number = 100_000 + 20 + i,
            status = rng.pick(STATUSES),
            customer = rng.token(ALNUM, 10),
            house = 1 + rng.below(2400),
            street = rng.pick(STREETS),
            zip_tail = rng.below(100),
            items = items.join(","),
            subtotal = money(subtotal),
            shipping = money(shipping),
            tax = money(tax),
            total = money(subtotal + shipping + tax),
            // Named explicitly: a format string built by `concat!` cannot capture variables.
            created = created,
            updated = updated,
            first = first,
            last = last,
            email = email,
            phone = phone,
            city = city,
            state = state,
            zip = zip,
            payment = payment,
        );
        // The envelope (with a two-digit `per_page`), the orders so far, this one, and a comma before each but the
        // first.
        if envelope(99).len() + body_len + order.len() + orders.len() > DOCUMENT_MAX_BYTES {
            break;
        }
        body_len += order.len();
        orders.push(order);
        phones += usize::from(has_phone);
    }
    let envelope = envelope(orders.len());
    let (head, tail) = envelope.split_at(envelope.len() - "]}".len());
    OrdersDocument { json: format!("{head}{}{tail}", orders.join(",")), orders: orders.len(), phones }
}

/// The orders page without its orders, `per_page` being their number: it ends with `[]}`, and the orders go between
/// the brackets.
fn envelope(per_page: usize) -> String {
    format!(r#"{{"page":2,"per_page":{per_page},"total_count":1342,"has_more":true,"orders":[]}}"#)
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
        return Err(format!("Portcullis answered the load request GET {PATH} with {allowed}, not 200"));
    }
    Ok(())
}

/// Checks that `envoy` answers the load request with `document` as `application/json`.
fn check_json_response(envoy: &Envoy, headers: &[(&str, &str)], document: &str) -> Result<(), String> {
    let response = envoy.get(PATH, headers);
    if response.status != 200 || response.header("content-type") != Some(JSON) || response.body != document.as_bytes() {
        return Err(format!(
            "GET {PATH} did not answer 200 with the {}-byte orders page as {JSON}: {} {:?}, {} bytes",
            document.len(),
            response.status,
            response.header("content-type"),
            response.body.len()
        ));
    }
    Ok(())
}

/// Waits until Portcullis with [`SENSITIVE_POLICY`] inspects the response to the load request (a response counts in
/// `exchanges_with_detections`), then checks that the endpoint is listed: the next request is monitored.
fn wait_until_inspecting(envoy: &Envoy, headers: &[(&str, &str)], document: &str) -> Result<(), String> {
    let stat = |name: &str| envoy.wasm_stat(&format!("portcullis.{name}")).unwrap_or(0);
    let mut last = Ok(());
    let inspecting = eventually(ENFORCE_TIMEOUT, || {
        let before = stat("exchanges_with_detections");
        last = check_json_response(envoy, headers, document);
        last.is_ok() && eventually(Duration::from_millis(500), || stat("exchanges_with_detections") > before)
    });
    last?;
    let describe = || SensitiveCounters::read(envoy).describe();
    if !inspecting {
        return Err(format!(
            "Portcullis with all classifiers on response.body did not report a detection in the orders page within \
             {ENFORCE_TIMEOUT:?} ({}).\nEnvoy's portcullis log lines:\n{}",
            describe(),
            envoy.log_lines_containing("portcullis").join("\n")
        ));
    }
    let monitored = stat("requests_monitored");
    check_json_response(envoy, headers, document)?;
    if !eventually(Duration::from_secs(2), || stat("requests_monitored") > monitored) {
        return Err(format!(
            "the card number in the orders page did not get GET {PATH} monitored: rule `watch-sensitive` did not \
             match after list `sensitive-endpoints` should have listed the endpoint ({})",
            describe()
        ));
    }
    Ok(())
}

/// The JWTs the bench sends: one per key for the cached variants and `jwt_authn`, and a list per key of distinct
/// ones (distinct `jti`) for the uncached variants.
struct MintedTokens {
    es256_cached: String,
    rs256_cached: String,
    es256: Vec<String>,
    rs256: Vec<String>,
}

impl MintedTokens {
    /// Mints `count` tokens per key besides the cached ones, RS256 signing (the slow part) spread over the cores.
    fn mint(keys: &TokenKeys, count: u64) -> Self {
        let now = jwt::unix_now();
        let claims = |id: &str| jwt::claims("bench-user", id, now, TOKEN_LIFETIME_SECONDS);
        let ids: Vec<String> = (0..count).map(|i| format!("bench-{i:06}")).collect();
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let chunk = ids.len().div_ceil(threads).max(1);
        let rs256 = std::thread::scope(|scope| {
            let workers: Vec<_> = ids
                .chunks(chunk)
                .map(|ids| scope.spawn(move || ids.iter().map(|id| keys.rs256(&claims(id))).collect::<Vec<_>>()))
                .collect();
            workers.into_iter().flat_map(|w| w.join().unwrap_or_else(|e| std::panic::resume_unwind(e))).collect()
        });
        Self {
            es256_cached: keys.es256(&claims("bench-cached")),
            rs256_cached: keys.rs256(&claims("bench-cached")),
            es256: ids.iter().map(|id| keys.es256(&claims(id))).collect(),
            rs256,
        }
    }
}

/// The load request's headers with `Authorization: Bearer token` in place of the opaque token (none when `token`
/// is empty).
fn token_headers(token: &str) -> Vec<(&'static str, String)> {
    request_headers()
        .into_iter()
        .filter(|(name, _)| *name != "authorization")
        .map(|(name, value)| (name, value.to_string()))
        .chain((!token.is_empty()).then(|| ("authorization", format!("Bearer {token}"))))
        .collect()
}

/// Headers as the harness takes them.
fn pairs<'a>(headers: &'a [(&'a str, String)]) -> Vec<(&'a str, &'a str)> {
    headers.iter().map(|(name, value)| (*name, value.as_str())).collect()
}

/// Checks that `variant` verifies tokens: `token` with its signature tampered with is refused with 401 (waiting
/// for Portcullis to load its bundle), `token` itself (and `last`, if given) answers 200.
fn check_token_verification(variant: &Variant, token: &str, last: Option<&String>) -> Result<(), String> {
    let envoy = &variant.envoy;
    let status = |token: &str| envoy.get(PATH, &pairs(&token_headers(token))).status;
    let tampered = jwt::tamper_signature(token);
    let mut refused = 0;
    if !eventually(ENFORCE_TIMEOUT, || {
        refused = status(&tampered);
        refused == 401
    }) {
        return Err(format!(
            "{} did not refuse a token with a tampered signature within {ENFORCE_TIMEOUT:?}: GET {PATH} answered \
             {refused}, not 401.\nEnvoy's portcullis log lines:\n{}",
            variant.name,
            envoy.log_lines_containing("portcullis").join("\n")
        ));
    }
    for token in std::iter::once(token).chain(last.map(String::as_str)) {
        let accepted = status(token);
        if accepted != 200 {
            return Err(format!("{} answered a valid token with {accepted}, not 200", variant.name));
        }
    }
    Ok(())
}

/// The summary tables, notes on how to read them, and every run.
fn tables(
    variants: &[Variant],
    document: &OrdersDocument,
    inspected: &Result<String, String>,
    timing: &ScanTiming,
) -> String {
    let mut text = String::from("## Rules on request headers (demo policy), `{\"direct\":\"ok\"}` response\n\n");
    text.push_str(&headers_table(variants));
    text.push_str(&sensitive_table(&variants[NOOP_JSON], &variants[PORTCULLIS_JSON], document, inspected, timing));
    text.push_str(&tokens_table(variants));
    text.push_str(&other_work(variants));
    text.push_str("\n## Runs, in the order they ran\n\n");
    text.push_str(&runs_table(variants));
    text
}

/// Plain Envoy, no-op wasm and Portcullis with the demo policy: ratios and added CPU against the first two.
fn headers_table(variants: &[Variant]) -> String {
    let variants = &variants[PLAIN..=PORTCULLIS];
    let mut text = comparison_table(variants);
    let generator = median(variants.iter().flat_map(|v| v.runs.iter().map(|r| r.generator_us_per_request)).collect());
    let _ = writeln!(
        text,
        "\nEnvoy CPU is the Envoy process's time on a CPU (all threads, from schedstat) during a run, divided by its \
         requests. \"Added\" is the difference of medians. Throughput is closed-loop on a shared machine (the load \
         generator, median {generator:.1} µs CPU/request, competes with Envoy for cores), so the CPU columns are the \
         steadier measure of cost.",
    );
    text
}

/// The JSON pair: Envoy CPU of each, what Portcullis adds, and the scan rate that implies.
fn sensitive_table(
    noop: &Variant,
    portcullis: &Variant,
    document: &OrdersDocument,
    inspected: &Result<String, String>,
    timing: &ScanTiming,
) -> String {
    let rps = |r: &Run| r.requests_per_second;
    let cpu = |r: &Run| r.cpu_us_per_request;
    let bytes = document.json.len();
    let mut text = format!(
        "\n## Sensitive data: Portcullis inspecting a {:.1} KiB JSON response with every built-in classifier\n\n",
        bytes as f64 / 1024.0
    );
    text.push_str(
        "| Variant | req/s (median) | Envoy CPU µs/req (median) | (min–max) | added CPU µs/req vs no-op | non-200 |\n\
         |---|---:|---:|---:|---:|---:|\n",
    );
    let noop_cpu = noop.median(cpu);
    for variant in [noop, portcullis] {
        let v_cpu = variant.median(cpu);
        let (lo, hi) = variant.range(cpu);
        let added = if std::ptr::eq(variant, noop) { "–".to_string() } else { format!("{:+.1}", v_cpu - noop_cpu) };
        let _ = writeln!(
            text,
            "| {} | {:.0} | {:.1} | {:.1}–{:.1} | {} | {} |",
            variant.name,
            variant.median(rps),
            v_cpu,
            lo,
            hi,
            added,
            variant.totals.errors(),
        );
    }
    let added = portcullis.median(cpu) - noop_cpu;
    let (paired_median, paired_lo, paired_hi) = paired_cpu(portcullis, noop);
    let rate = |added_us: f64| {
        if added_us > 0.0 {
            // Bytes per microsecond are 10^6 bytes per second.
            format!("{:.0} MB/s", bytes as f64 / added_us)
        } else {
            "n/a (no added CPU measured)".to_string()
        }
    };
    let _ = writeln!(
        text,
        "\n- **Added CPU per request** (Portcullis − no-op, difference of medians): **{added:.1} µs**. Per round \
         (the pair's runs of the same round): median {paired_median:.1} µs, range {paired_lo:.1}–{paired_hi:.1} µs."
    );
    let _ = writeln!(
        text,
        "- **MB/s scanned inside the VM**: {bytes} response bytes / {added:.1} µs = **{}** (MB = 10^6 bytes; {} from \
         the per-round median). An upper-bound-style estimate of the scan's cost: all of the added time is charged \
         to the scan, although it also pays for copying the body into the VM, evaluating the rule, the list \
         addition and lookup and the verdict. The scan alone runs at least this fast.",
        rate(added),
        rate(paired_median),
    );
    let _ = writeln!(
        text,
        "- The no-op filter passes the same response through the same proxy-wasm body callbacks, so the difference is \
         Portcullis' own work."
    );
    let _ = writeln!(text, "- {}", timing.describe());
    match inspected {
        Ok(check) => {
            let _ = writeln!(text, "- {check}");
        }
        Err(problem) => {
            let _ = writeln!(text, "- **FAILED**: {problem}");
        }
    }
    text
}

/// `jwt_authn` against plain Envoy, Portcullis verifying JWTs against the no-op filter.
fn tokens_table(variants: &[Variant]) -> String {
    let rps = |r: &Run| r.requests_per_second;
    let cpu = |r: &Run| r.cpu_us_per_request;
    let mut text = String::from(
        "\n## JWT verification: Envoy's `jwt_authn` and Portcullis, ES256 and RS256\n\n\
         | Variant | requests/run | req/s (median) | Envoy CPU µs/req (median) | (min–max) | added CPU µs/req | \
         compared with | non-200 |\n\
         |---|---:|---:|---:|---:|---:|---|---:|\n",
    );
    for at in JWT_AUTHN_ES256..=PORTCULLIS_RS256_UNCACHED {
        let variant = &variants[at];
        let baseline = if at <= JWT_AUTHN_RS256 { &variants[PLAIN] } else { &variants[NOOP] };
        let (lo, hi) = variant.range(cpu);
        let _ = writeln!(
            text,
            "| {} | {} | {:.0} | {:.1} | {:.1}–{:.1} | {:+.1} | {} | {} |",
            variant.name,
            variant.requests,
            variant.median(rps),
            variant.median(cpu),
            lo,
            hi,
            variant.median(cpu) - baseline.median(cpu),
            baseline.name,
            variant.totals.errors(),
        );
    }
    let _ = writeln!(
        text,
        "\n- Tokens: ES256 (P-256) and RS256 (2048-bit) JWTs from the bench's own keys, with `iss`, `sub`, `aud`, \
         `iat`, `nbf`, `exp` and `jti` claims, as `Authorization: Bearer` (the other headers as above; the \
         baselines send the 200-character opaque token). Each of the six refused the same token with a tampered \
         signature with 401 and accepted the token with 200 before measuring; Portcullis blocked no measured request."
    );
    let _ = writeln!(
        text,
        "- \"Cached\": the same token on every request; Portcullis verifies it once per VM and then looks its analysis \
         up by SHA-256 (time checks are redone per request). \"Uncached\": each run sends its {} tokens once, \
         round-robin: more than the 1024 analyses the filter caches, so every request verifies a signature. \
         `jwt_authn` has no cache configured and verifies every request. The Portcullis JWT variants set \
         `jwt_verifications_per_second` to {UNBOUNDED_VERIFICATIONS} so that none is judged `jwt.unverified`.",
        variants[PORTCULLIS_ES256_UNCACHED].requests
    );
    let added = |at: usize, baseline: usize| variants[at].median(cpu) - variants[baseline].median(cpu);
    let _ = writeln!(
        text,
        "- Uncached Portcullis against `jwt_authn`, added CPU per request: ES256 {:.1}×, RS256 {:.1}× (cached: \
         {:.2}×, {:.2}×).",
        added(PORTCULLIS_ES256_UNCACHED, NOOP) / added(JWT_AUTHN_ES256, PLAIN),
        added(PORTCULLIS_RS256_UNCACHED, NOOP) / added(JWT_AUTHN_RS256, PLAIN),
        added(PORTCULLIS_ES256_CACHED, NOOP) / added(JWT_AUTHN_ES256, PLAIN),
        added(PORTCULLIS_RS256_CACHED, NOOP) / added(JWT_AUTHN_RS256, PLAIN),
    );
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_orders_page_is_about_16_kib_of_json_with_the_test_cards() {
        let document = orders_document();
        let json = &document.json;
        assert!((DOCUMENT_MAX_BYTES - 1024..=DOCUMENT_MAX_BYTES).contains(&json.len()), "{} bytes", json.len());
        let value: serde_json::Value = serde_json::from_str(json).unwrap();
        let orders = value["orders"].as_array().unwrap();
        assert_eq!(orders.len(), document.orders);
        assert_eq!(value["per_page"], document.orders);
        assert!(document.orders >= 15, "{} orders", document.orders);
        for ((number, expiry), at) in TEST_CARDS.iter().zip(CARD_ORDERS) {
            assert_eq!(orders[at]["payment"]["card_number"], *number);
            assert_eq!(orders[at]["payment"]["expiry"], *expiry);
            let digits: Vec<u32> = number.chars().filter_map(|c| c.to_digit(10)).collect();
            let luhn: u32 = digits
                .iter()
                .rev()
                .enumerate()
                .map(|(i, &d)| match (i % 2, d * 2) {
                    (1, doubled) if doubled > 9 => doubled - 9,
                    (1, doubled) => doubled,
                    _ => d,
                })
                .sum();
            assert_eq!(luhn % 10, 0, "{number} passes Luhn");
        }
        let card_numbers = orders.iter().filter(|o| o["payment"]["card_number"].is_string()).count();
        assert_eq!(card_numbers, TEST_CARDS.len());
        let phones = orders.iter().filter(|o| o["customer"]["phone"].is_string()).count();
        assert_eq!(phones, document.phones);
        assert!(phones >= 3);
        assert!(orders.iter().all(|o| o["customer"]["email"].as_str().unwrap().contains('@')));
        assert_eq!(orders_document().json, *json, "deterministic");
    }

    #[test]
    fn the_sensitive_policy_puts_every_builtin_classifier_on_the_response_body() {
        let builtins = std::fs::read_to_string(repo_root().join("policies/src/scan/builtin.rs")).unwrap();
        let table = builtins.split_once("pub const BUILTINS").unwrap().1;
        let table = table.split_once("\n];").unwrap().0;
        let ids: Vec<&str> =
            table.lines().filter_map(|line| line.trim().strip_prefix("id: \"")?.strip_suffix("\",")).collect();
        assert!(ids.len() >= 14, "{ids:?}");
        for id in &ids {
            assert!(
                SENSITIVE_POLICY.contains(&format!("    classifier: {id}\n    in: response.body\n")),
                "built-in `{id}` missing from SENSITIVE_POLICY"
            );
        }
        assert_eq!(SENSITIVE_POLICY.matches("classifier:").count(), ids.len());
    }
}
