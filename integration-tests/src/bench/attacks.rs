//! The `attacks` section of `make bench`: what inspecting requests for injection attacks costs Envoy.
//!
//! Four Envoys (one worker each, access log off) measured in interleaved rounds like the variants, each pair against
//! the no-op wasm filter sending the same request:
//!
//! - **GET with five query parameters**: [`GET_PATH`] (`?q=running+shoes&page=2&size=24&sort=price_asc&lang=en-GB`)
//!   with the bench's usual browser headers, answered by the route itself (direct response), through Portcullis
//!   enforcing `envoy-examples/policies/owasp.yaml` as
//!   shipped: every attack class at medium on the path, query and headers (blocking), the same on the body
//!   (blocking), and every class at high everywhere (monitoring). The issue's aim: at most [`GET_AIM_US`] µs added.
//! - **16 KiB JSON POST**: [`order_document`] (a benign checkout order with the customer's profile, addresses,
//!   items and notes) to [`POST_PATH`], proxied to an in-process [`Upstream`] (a direct response would answer with
//!   the request headers, before the filter has the body: the filter lets headers continue and holds the body chunk
//!   by chunk, so only a router waiting for an upstream lets it inspect the body first), through Portcullis
//!   enforcing [`body_policy`]: owasp.yaml plus one detection
//!   per built-in sensitive-data classifier on `request.body` and a rule monitoring requests whose body holds an
//!   email address (the order has one). The aim: at most [`POST_AIM_US`] µs added.
//!
//! Checked from the filter's stats, between just before the rounds and just after: neither Portcullis blocked a
//! measured request or saw one without a bundle, every measured POST had its body inspected with a finding
//! (`exchanges_with_detections`) and was monitored (`requests_monitored`), none was truncated; every measured POST
//! of both reached the upstream; and every request of all four was answered 200. The attack findings counted meanwhile (`portcullis.attacks_<class>`, false positives
//! on benign requests, expected at most from the high-sensitivity watch) are reported. After the rounds, one GET with
//! a script in a query parameter and one POST with SQL in a JSON string must be blocked (403): the detections are
//! live, so the rounds measured them at work.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use portcullis_integration_tests::artifacts::repo_root;
use portcullis_integration_tests::load;
use portcullis_integration_tests::{
    compile, eventually, plugin_config, ControlPlane, Envoy, EnvoyConfig, Upstream, WasmFilter,
};

use super::{
    counters, describe_errors, measure_rounds, other_work, paired_cpu, request_headers, runs_table, Placement, Run,
    Section, Settings, Variant, ENFORCE_TIMEOUT, JSON, SENSITIVE_POLICY,
};

/// The policy of both Portcullis Envoys, relative to the repository root.
pub const OWASP_POLICY: &str = "envoy-examples/policies/owasp.yaml";

/// The bundle name of owasp.yaml as shipped (the GET).
const OWASP_BUNDLE: &str = "owasp";

/// The bundle name of [`body_policy`] (the POST).
const BODY_BUNDLE: &str = "owasp-and-sensitive";

/// The GET: a product search with five benign query parameters.
pub const GET_PATH: &str = "/api/v1/products?q=running+shoes&page=2&size=24&sort=price_asc&lang=en-GB";

/// Where the POST goes.
pub const POST_PATH: &str = "/api/v1/orders";

/// The issue's aim for the GET, in µs of Envoy CPU added per request.
pub const GET_AIM_US: f64 = 10.0;

/// The issue's aim for the POST, in µs of Envoy CPU added per request.
pub const POST_AIM_US: f64 = 60.0;

/// The size [`order_document`] stays within.
const BODY_MAX_BYTES: usize = 16 * 1024;

/// The customer's email address in [`order_document`]: what [`MONITOR_RULE`] monitors.
const CUSTOMER_EMAIL: &str = "siobhan.obrien@example.com";

/// Added to owasp.yaml's rules in [`body_policy`]: every POST of the bench is monitored, so the stats prove that its
/// body went through the whole inspection and a rule was decided on it.
const MONITOR_RULE: &str = r#"  - id: watch-personal-data
    when: detected("email-in")
    action: monitor
"#;

/// Every attack class, as owasp.yaml and the stats (`portcullis.attacks_<class>`) name them.
pub const ATTACK_CLASSES: [&str; 13] = [
    "sqli",
    "xss",
    "command_injection",
    "path_traversal",
    "file_inclusion",
    "log4shell",
    "ssrf",
    "xxe",
    "nosql_injection",
    "template_injection",
    "crlf_injection",
    "ldap_injection",
    "prototype_pollution",
];

/// Positions of the four variants.
const NOOP_GET: usize = 0;
const PORTCULLIS_GET: usize = 1;
const NOOP_POST: usize = 2;
const PORTCULLIS_POST: usize = 3;

/// Counters of the GET's Portcullis that must not move while measuring.
const GET_STILL: [&str; 2] = ["portcullis.requests_blocked", "portcullis.requests_without_bundle"];

/// Counters of the POST's Portcullis that every measured request bumps by one: its body had a finding (the email
/// address) and the request was monitored.
const POST_PER_REQUEST: [&str; 2] = ["portcullis.exchanges_with_detections", "portcullis.requests_monitored"];

/// Counters of the POST's Portcullis that must not move while measuring.
const POST_STILL: [&str; 3] =
    ["portcullis.requests_blocked", "portcullis.requests_without_bundle", "portcullis.bodies_truncated"];

/// An attack in a query parameter, which owasp.yaml blocks with the request headers.
const GET_PROBE: &str = "/api/v1/products?q=%3Cscript%3Ealert(document.cookie)%3C%2Fscript%3E&page=2";

/// An attack in a JSON string, which owasp.yaml blocks once the body is read.
const POST_PROBE: &str = r#"{"customer":{"last_name":"x' UNION SELECT username, password FROM users--"},"items":[]}"#;

/// owasp.yaml with one detection per built-in sensitive-data classifier on `request.body` (those of
/// [`SENSITIVE_POLICY`], moved from the response to the request: `cards-out` becomes `cards-in`) and
/// [`MONITOR_RULE`].
pub fn body_policy(owasp: &str) -> Result<String, String> {
    let (detections, rules) =
        owasp.split_once("\nrules:\n").ok_or_else(|| format!("{OWASP_POLICY} has no top-level `rules:`"))?;
    let sensitive = SENSITIVE_POLICY
        .split_once("detections:\n")
        .and_then(|(_, rest)| rest.split_once("\nlists:"))
        .map(|(sensitive, _)| sensitive)
        .ok_or("SENSITIVE_POLICY has no `detections:` followed by `lists:`")?;
    let sensitive = sensitive.replace("response.body", "request.body").replace("-out\n", "-in\n");
    let rules = rules.trim_end();
    Ok(format!("{detections}\n{sensitive}\nrules:\n{rules}\n{MONITOR_RULE}"))
}

/// The POST's body: a checkout order as a shop's API receives it, with the customer's profile (a name with an
/// apostrophe, an email address, a phone number), two addresses, free-text instructions with everyday punctuation,
/// items (descriptions, URLs with query strings, prices) until it is just under [`BODY_MAX_BYTES`], the payment
/// summary and totals. Benign for every attack class.
pub fn order_document() -> String {
    let mut doc = format!(
        r#"{{"order_id":"ord_7Hq2Lm9xK4","created_at":"2026-12-07T18:42:11Z","currency":"GBP","channel":"web","customer":{{"id":"cus_48213","first_name":"Siobhán","last_name":"O'Brien","email":"{CUSTOMER_EMAIL}","phone":"+44 20 7946 0958","date_of_birth":"1987-03-14","marketing_opt_in":false,"loyalty":{{"tier":"gold","points":18240,"member_since":"2019-06-01"}},"preferences":{{"language":"en-GB","newsletter":"weekly","sizes":{{"shoes":"UK 7","tops":"M"}}}}}},"shipping_address":{{"name":"Siobhán O'Brien","line1":"Flat 3, 27 St John's Road","line2":"Clapham Junction","city":"London","postcode":"SW11 1QN","country":"GB","instructions":"Please leave with the concierge (ground floor) if nobody's home; don't ring after 9 pm."}},"billing_address":{{"name":"S. O'Brien","line1":"27 St John's Road","city":"London","postcode":"SW11 1QN","country":"GB"}},"items":["#
    );
    const PRODUCTS: [(&str, &str); 5] = [
        (
            "Trail Runner 2 – Men's",
            "Lightweight trail shoe with a grippy outsole & 8 mm drop; great for wet, rocky paths.",
        ),
        ("Merino Crew Socks (3-pack)", "Soft, breathable merino blend. Machine washable at 30 °C."),
        (
            "Rain Shell Jacket",
            r#"Waterproof (20,000 mm), taped seams, packs into its own pocket — \"perfect for commutes\"."#,
        ),
        ("Insulated Bottle 750 ml", "Keeps drinks cold for 24 h / hot for 12 h. BPA-free; dishwasher-safe lid."),
        ("Running Cap", "Quick-dry fabric, reflective trim, one size fits most (adjustable strap)."),
    ];
    const COLOURS: [(&str, &str); 4] = [("BLK", "black"), ("NVY", "navy"), ("RED", "red"), ("GRN", "green")];
    const SIZES: [&str; 4] = ["S", "M", "L", "UK 9"];
    let tail = r#"],"payment":{"method":"card","brand":"visa","last4":"4242","three_ds":"authenticated"},"notes":"Gift for my brother - could you wrap the socks separately? Thanks! :)","totals":{"subtotal":412.50,"shipping":4.99,"tax":82.50,"grand_total":499.99}}"#;
    for i in 0.. {
        let (name, description) = PRODUCTS[i % PRODUCTS.len()];
        let (colour_code, colour) = COLOURS[i % COLOURS.len()];
        let product = 900_000 + i * 131;
        let item = format!(
            r#"{{"line":{},"sku":"SKU-{:05}-{colour_code}","product_id":{product},"name":"{name}","description":"{description}","quantity":{},"unit_price":{}.{:02},"discount":{{"code":"WINTER{}","percent":10}},"image_url":"https://cdn.example-shop.co.uk/img/products/{product}/main.jpg?w=640&fit=crop","options":{{"colour":"{colour}","size":"{}"}},"gift":{},"tags":["running","outdoor","sale"]}}"#,
            i + 1,
            10_000 + i * 37,
            i % 3 + 1,
            19 + i * 7 % 120,
            i * 13 % 100,
            24 + i % 3,
            SIZES[i % SIZES.len()],
            i % 5 == 0,
        );
        if doc.len() + 1 + item.len() + tail.len() > BODY_MAX_BYTES {
            break;
        }
        if i > 0 {
            doc.push(',');
        }
        doc.push_str(&item);
    }
    doc.push_str(tail);
    doc
}

/// The bytes of `POST path HTTP/1.1` with `headers`, then `body` as `content_type` with its length.
pub fn post_request(path: &str, headers: &[(&str, &str)], content_type: &str, body: &str) -> Vec<u8> {
    let mut request = format!("POST {path} HTTP/1.1\r\n");
    for (name, value) in headers {
        let _ = write!(request, "{name}: {value}\r\n");
    }
    let _ = write!(request, "content-type: {content_type}\r\ncontent-length: {}\r\n\r\n{body}", body.len());
    request.into_bytes()
}

/// The filter's counters of one Portcullis Envoy, read together: `checked` (those the checks look at, in order) and
/// the attack findings per class ([`ATTACK_CLASSES`]).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Stats {
    checked: Vec<u64>,
    attacks: Vec<u64>,
}

impl Stats {
    fn read(envoy: &Envoy, checked: &[&str]) -> Self {
        let attack_names: Vec<String> = ATTACK_CLASSES.iter().map(|c| format!("portcullis.attacks_{c}")).collect();
        let attack_names: Vec<&str> = attack_names.iter().map(String::as_str).collect();
        let read =
            |names: &[&str]| -> Vec<u64> { counters(envoy, names).into_iter().map(|c| c.unwrap_or(0)).collect() };
        Self { checked: read(checked), attacks: read(&attack_names) }
    }

    /// What grew since `before`.
    fn since(&self, before: &Self) -> Self {
        let minus = |a: &[u64], b: &[u64]| a.iter().zip(b).map(|(a, b)| a.saturating_sub(*b)).collect();
        Self { checked: minus(&self.checked, &before.checked), attacks: minus(&self.attacks, &before.attacks) }
    }

    /// `class: n` for every class with findings, or "none".
    fn findings(&self) -> String {
        let found: Vec<String> = ATTACK_CLASSES
            .iter()
            .zip(&self.attacks)
            .filter(|(_, n)| **n > 0)
            .map(|(class, n)| format!("{class} {n}"))
            .collect();
        if found.is_empty() {
            "none".into()
        } else {
            found.join(", ")
        }
    }
}

/// `name=value` for each of `names`.
fn describe(names: &[&str], values: &[u64]) -> String {
    names
        .iter()
        .zip(values)
        .map(|(name, value)| format!("{}={value}", name.trim_start_matches("portcullis.")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Sends one of the load requests to `envoy` and checks the answer is 200.
fn check_ok(variant: &Variant, what: &str, send: impl FnOnce(&Envoy) -> u16) -> Result<(), String> {
    match send(&variant.envoy) {
        200 => Ok(()),
        status => Err(format!("{} answered the load {what} with {status}, not 200", variant.name)),
    }
}

/// The four Envoys measured in interleaved rounds: the GET pair and the POST pair.
pub fn measure_attacks(settings: &Settings, placement: &Placement, started: Instant) -> Result<Section, String> {
    let owasp =
        std::fs::read_to_string(repo_root().join(OWASP_POLICY)).map_err(|e| format!("read {OWASP_POLICY}: {e}"))?;
    let control_plane = ControlPlane::start_new();
    control_plane.push(OWASP_BUNDLE, &compile(&owasp, OWASP_BUNDLE, 1));
    control_plane.push(BODY_BUNDLE, &compile(&body_policy(&owasp)?, BODY_BUNDLE, 1));
    let upstream = Upstream::start();
    let config = || EnvoyConfig::new().concurrency(1).access_log(false).log_level("warn");
    let direct = || config().direct_response(true);
    let proxied = || config().upstream(upstream.addr());
    let portcullis = |config: EnvoyConfig, bundle: &str| {
        config.control_plane(control_plane.addr()).wasm_filter(WasmFilter::portcullis(&plugin_config(bundle, "open")))
    };
    let headers = request_headers();
    let document = order_document();
    let get = load::get_request(GET_PATH, &headers);
    let post = post_request(POST_PATH, &headers, JSON, &document);
    let (n_get, n_post) = (settings.requests, settings.sensitive_requests);
    let mut variants = vec![
        Variant::new(
            "+ no-op wasm, GET with 5 query parameters",
            direct().wasm_filter(WasmFilter::noop()).start(),
            n_get,
        )
        .with_requests(vec![get.clone()]),
        Variant::new(
            "+ Portcullis (owasp.yaml), GET with 5 query parameters",
            portcullis(direct(), OWASP_BUNDLE).start(),
            n_get,
        )
        .with_requests(vec![get]),
        Variant::new(
            "+ no-op wasm, 16 KiB JSON POST (upstream)",
            proxied().wasm_filter(WasmFilter::noop()).start(),
            n_post,
        )
        .with_requests(vec![post.clone()]),
        Variant::new(
            "+ Portcullis (owasp.yaml + all classifiers on the body), 16 KiB JSON POST (upstream)",
            portcullis(proxied(), BODY_BUNDLE).start(),
            n_post,
        )
        .with_requests(vec![post]),
    ];
    placement.apply(variants.iter().map(|v| (v.name, &v.envoy)))?;
    let send_get = |envoy: &Envoy| envoy.get(GET_PATH, &headers).status;
    let post_headers: Vec<(&str, &str)> = headers.iter().copied().chain([("content-type", JSON)]).collect();
    let send_post =
        |envoy: &Envoy| envoy.client().request("POST", POST_PATH, &post_headers, document.as_bytes()).status;
    check_ok(&variants[NOOP_GET], "GET", send_get)?;
    check_ok(&variants[NOOP_POST], "POST", send_post)?;
    wait_for_bundle(&variants[PORTCULLIS_GET], send_get)?;
    wait_until_monitoring(&variants[PORTCULLIS_POST], send_post)?;
    eprintln!(
        "bench: attacks: {} Envoys up, Portcullis enforcing ({:.1} s)",
        variants.len(),
        started.elapsed().as_secs_f64()
    );

    // A full run each, uncounted, as for the variants.
    for variant in &mut variants {
        variant.measure(&[], settings.connections, None)?;
    }
    // Attack findings are counted on the filter's 250 ms tick: let the warm-up's settle first.
    std::thread::sleep(Duration::from_millis(600));
    let get_before = Stats::read(&variants[PORTCULLIS_GET].envoy, &GET_STILL);
    let post_names: Vec<&str> = POST_PER_REQUEST.iter().chain(&POST_STILL).copied().collect();
    let post_before = Stats::read(&variants[PORTCULLIS_POST].envoy, &post_names);
    let upstream_before = upstream.requests();
    measure_rounds(&mut variants, &[], settings, started, "attacks: ")?;
    let upstream_grown = upstream.requests() - upstream_before;
    let measured = |at: usize| -> u64 { variants[at].runs.iter().map(|r: &Run| r.completed).sum() };
    let (measured_get, measured_post) = (measured(PORTCULLIS_GET), measured(PORTCULLIS_POST));
    let posts = measured(NOOP_POST) + measured_post;
    // Counters bumped on a request are visible at once; the findings per class on the next tick.
    std::thread::sleep(Duration::from_millis(600));
    let get_grown = Stats::read(&variants[PORTCULLIS_GET].envoy, &GET_STILL).since(&get_before);
    let post_grown = Stats::read(&variants[PORTCULLIS_POST].envoy, &post_names).since(&post_before);

    let mut problems = Vec::new();
    let broken: Vec<String> = variants
        .iter()
        .filter(|v| v.totals.errors() > 0)
        .map(|v| format!("{}: {}", v.name, describe_errors(&v.totals)))
        .collect();
    if !broken.is_empty() {
        problems.push(format!("responses other than 200: {}", broken.join("; ")));
    }
    if get_grown.checked.iter().any(|n| *n > 0) {
        problems.push(format!(
            "Portcullis blocked, or passed without a bundle, some of the {measured_get} measured GETs: {}",
            describe(&GET_STILL, &get_grown.checked)
        ));
    }
    let post_expected: Vec<u64> =
        POST_PER_REQUEST.iter().map(|_| measured_post).chain(POST_STILL.iter().map(|_| 0)).collect();
    if post_grown.checked != post_expected {
        problems.push(format!(
            "Portcullis did not inspect and monitor each of the {measured_post} measured POSTs (and nothing else): \
             its counters grew by {}, expected {}",
            describe(&post_names, &post_grown.checked),
            describe(&post_names, &post_expected)
        ));
    }
    if upstream_grown != posts {
        problems.push(format!(
            "the upstream answered {upstream_grown} requests during the rounds, not the {posts} POSTs measured"
        ));
    }
    let upstream_before_probe = upstream.requests();
    let probes = [
        probe(&variants[PORTCULLIS_GET], "GET with a script in `q`", |envoy| envoy.get(GET_PROBE, &headers).status),
        probe(&variants[PORTCULLIS_POST], "POST with SQL in `customer.last_name`", |envoy| {
            envoy.client().request("POST", POST_PATH, &post_headers, POST_PROBE.as_bytes()).status
        }),
    ];
    if upstream.requests() != upstream_before_probe {
        problems.push("the POST probe reached the upstream".into());
    }
    for (what, status, _) in &probes {
        if *status != 403 {
            problems.push(format!("the {what} was answered {status}, not blocked with 403"));
        }
    }
    let checked = if problems.is_empty() { Ok(()) } else { Err(format!("attacks: {}", problems.join("; "))) };
    let mut text = attacks_table(&variants, document.len());
    let _ = writeln!(
        text,
        "- Checked from the filter's stats over the rounds: the GET's Portcullis grew {} over {measured_get} \
         measured requests (must stay 0); the POST's grew {} over {measured_post} (must be +{measured_post}, \
         +{measured_post}, 0, 0, 0: every body inspected with a finding, the email address, and monitored; none \
         blocked, without a bundle or truncated). The upstream answered {upstream_grown} requests during the \
         rounds, for {posts} POSTs measured through both POST Envoys.",
        describe(&GET_STILL, &get_grown.checked),
        describe(&post_names, &post_grown.checked),
    );
    let _ = writeln!(
        text,
        "- Attack findings on these benign requests while measuring (`portcullis.attacks_<class>`: false positives, \
         tolerable only from the high-sensitivity watch, which monitors): GET {}; POST {}.",
        get_grown.findings(),
        post_grown.findings()
    );
    for (_, _, line) in &probes {
        let _ = writeln!(text, "- Probe after the rounds: {line}");
    }
    match &checked {
        Ok(()) => {
            let _ = writeln!(text, "- Checks: passed.");
        }
        Err(problem) => {
            let _ = writeln!(text, "- **FAILED**: {problem}");
        }
    }
    text.push_str(&other_work(&variants));
    text.push_str("\n### Runs, in the order they ran\n\n");
    text.push_str(&runs_table(&variants));
    Ok(Section {
        text,
        checked,
        envoys: variants.into_iter().map(|v| v.envoy).collect(),
        _control_planes: vec![control_plane],
        _upstreams: vec![upstream],
    })
}

/// Waits until `variant`'s Portcullis has a bundle: a load request answered 200 without counting in
/// `requests_without_bundle` (owasp.yaml blocks nothing a benign request carries, so no status tells).
fn wait_for_bundle(variant: &Variant, send: impl Fn(&Envoy) -> u16) -> Result<(), String> {
    let envoy = &variant.envoy;
    let without = || envoy.wasm_stat("portcullis.requests_without_bundle").unwrap_or(0);
    let mut last = 0;
    let loaded = eventually(ENFORCE_TIMEOUT, || {
        let before = without();
        last = send(envoy);
        last == 200 && without() == before
    });
    if !loaded {
        return Err(format!(
            "{} had no bundle within {ENFORCE_TIMEOUT:?} (last load request: {last}).\nEnvoy's portcullis log \
             lines:\n{}",
            variant.name,
            envoy.log_lines_containing("portcullis").join("\n")
        ));
    }
    Ok(())
}

/// Waits until `variant`'s Portcullis monitors the POST ([`MONITOR_RULE`]): the bundle is active and the body is
/// inspected.
fn wait_until_monitoring(variant: &Variant, send: impl Fn(&Envoy) -> u16) -> Result<(), String> {
    let envoy = &variant.envoy;
    let monitored = || envoy.wasm_stat("portcullis.requests_monitored").unwrap_or(0);
    let mut last = 0;
    let monitoring = eventually(ENFORCE_TIMEOUT, || {
        let before = monitored();
        last = send(envoy);
        last == 200 && monitored() > before
    });
    if !monitoring {
        return Err(format!(
            "{} did not monitor the POST (rule `watch-personal-data`) within {ENFORCE_TIMEOUT:?} (last: {last}).\n\
             Envoy's portcullis log lines:\n{}",
            variant.name,
            envoy.log_lines_containing("portcullis").join("\n")
        ));
    }
    Ok(())
}

/// Sends one attack to `variant`: what it was, the status, and a report line with the findings it added to the
/// stats.
fn probe<'a>(variant: &Variant, what: &'a str, send: impl FnOnce(&Envoy) -> u16) -> (&'a str, u16, String) {
    let envoy = &variant.envoy;
    let before = Stats::read(envoy, &[]);
    let status = send(envoy);
    // Findings per class reach the stats on the filter's next tick.
    eventually(Duration::from_secs(1), || Stats::read(envoy, &[]) != before);
    let grown = Stats::read(envoy, &[]).since(&before);
    let verdict = if status == 403 { "blocked" } else { "**not blocked**" };
    (what, status, format!("{what} to \"{}\": {status}, {verdict} (findings: {}).", variant.name, grown.findings()))
}

/// The two pairs: Envoy CPU of each, what Portcullis adds against the no-op filter, and the aims.
fn attacks_table(variants: &[Variant], body_bytes: usize) -> String {
    let rps = |r: &Run| r.requests_per_second;
    let cpu = |r: &Run| r.cpu_us_per_request;
    let mut text = String::from(
        "## Attacks: every attack detection on (owasp.yaml), a GET with five query parameters and a 16 KiB JSON \
         POST\n\n\
         | Variant | requests/run | req/s (median) | Envoy CPU µs/req (median) | (min–max) | added CPU µs/req vs \
         no-op | non-200 |\n\
         |---|---:|---:|---:|---:|---:|---:|\n",
    );
    for (at, variant) in variants.iter().enumerate() {
        let noop = &variants[at - at % 2];
        let (lo, hi) = variant.range(cpu);
        let added =
            if at % 2 == 0 { "–".to_string() } else { format!("{:+.1}", variant.median(cpu) - noop.median(cpu)) };
        let _ = writeln!(
            text,
            "| {} | {} | {:.0} | {:.1} | {:.1}–{:.1} | {added} | {} |",
            variant.name,
            variant.requests,
            variant.median(rps),
            variant.median(cpu),
            lo,
            hi,
            variant.totals.errors(),
        );
    }
    text.push('\n');
    for (what, portcullis, noop, aim) in [
        (
            format!("**GET with five query parameters** (`GET {GET_PATH}`, the bench's 8 browser headers), owasp.yaml"),
            PORTCULLIS_GET,
            NOOP_GET,
            GET_AIM_US,
        ),
        (
            format!(
                "**16 KiB JSON POST** (`POST {POST_PATH}`, a {body_bytes}-byte benign order, the same headers), \
                 owasp.yaml + every built-in sensitive-data classifier on `request.body` + a monitor rule"
            ),
            PORTCULLIS_POST,
            NOOP_POST,
            POST_AIM_US,
        ),
    ] {
        let (portcullis, noop) = (&variants[portcullis], &variants[noop]);
        let added = portcullis.median(cpu) - noop.median(cpu);
        let (paired, lo, hi) = paired_cpu(portcullis, noop);
        let verdict = if added <= aim { "met" } else { "not met" };
        let _ = writeln!(
            text,
            "- {what}: Portcullis adds **{added:.1} µs** of Envoy CPU per request against the no-op filter \
             (difference of medians; per round: median {paired:.1} µs, range {lo:.1}–{hi:.1} µs). The issue's aim, \
             at most {aim:.0} µs: **{verdict}**."
        );
    }
    let _ = writeln!(
        text,
        "- owasp.yaml: the 13 attack classes at medium on the path, query and headers and again on the body \
         (blocking), and at high everywhere (monitoring): 39 attack detections. The POST's policy adds {} \
         sensitive-data detections on `request.body`.",
        SENSITIVE_POLICY.matches("classifier:").count()
    );
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_order_is_just_under_16_kib_of_valid_json_with_the_email() {
        let document = order_document();
        assert!(document.len() <= BODY_MAX_BYTES && document.len() > BODY_MAX_BYTES - 1024, "{}", document.len());
        let json: serde_json::Value = serde_json::from_str(&document).unwrap();
        assert_eq!(json["customer"]["email"], CUSTOMER_EMAIL);
        assert_eq!(json["customer"]["last_name"], "O'Brien");
        assert!(json["items"].as_array().unwrap().len() > 20);
        assert_eq!(document.matches(CUSTOMER_EMAIL).count(), 1);
    }

    #[test]
    fn the_get_has_five_query_parameters() {
        let (_, query) = GET_PATH.split_once('?').unwrap();
        assert_eq!(query.split('&').count(), 5);
        assert!(serde_json::from_str::<serde_json::Value>(POST_PROBE).is_ok());
    }

    #[test]
    fn the_post_request_carries_its_length() {
        let request = post_request("/p", &[("host", "h")], JSON, "{}");
        assert_eq!(
            request,
            b"POST /p HTTP/1.1\r\nhost: h\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}".to_vec()
        );
    }

    #[test]
    fn the_attack_classes_are_those_of_owasp_yaml() {
        let owasp = std::fs::read_to_string(repo_root().join(OWASP_POLICY)).unwrap();
        let mut named: Vec<&str> = owasp.lines().filter_map(|line| line.trim().strip_prefix("classifier: ")).collect();
        named.sort_unstable();
        named.dedup();
        let mut classes = ATTACK_CLASSES.to_vec();
        classes.sort_unstable();
        assert_eq!(named, classes);
    }

    #[test]
    fn the_body_policy_is_owasp_yaml_plus_every_classifier_on_the_request_body() {
        let owasp = std::fs::read_to_string(repo_root().join(OWASP_POLICY)).unwrap();
        let policy = body_policy(&owasp).unwrap();
        let sensitive = SENSITIVE_POLICY.matches("classifier:").count();
        assert_eq!(policy.matches("classifier:").count(), owasp.matches("classifier:").count() + sensitive);
        assert_eq!(
            policy.matches("in: request.body\n").count(),
            owasp.matches("in: request.body\n").count() + sensitive
        );
        assert!(!policy.contains("response.body") && !policy.contains("-out"));
        assert!(policy.contains("    requires: cards-in\n"));
        assert!(policy.contains("  - id: email-in\n    classifier: email\n"));
        assert_eq!(policy.matches("\nrules:\n").count(), 1);
        assert!(policy.ends_with(MONITOR_RULE));
        // Everything owasp.yaml has is still there, in order.
        let (owasp_detections, owasp_rules) = owasp.split_once("\nrules:\n").unwrap();
        assert!(policy.starts_with(owasp_detections));
        assert!(policy.contains(owasp_rules.trim_end()));
    }

    #[test]
    fn the_body_policy_compiles() {
        let owasp = std::fs::read_to_string(repo_root().join(OWASP_POLICY)).unwrap();
        assert!(compile(&body_policy(&owasp).unwrap(), BODY_BUNDLE, 1).exists());
    }
}
