//! Attack inspector throughput, native: values/s and MB/s of [`Inspector::inspect`] with all 13 attack classes at
//! medium sensitivity, everywhere, as the filter runs them on one request.
//!
//! `cargo bench -p portcullis-policies --bench attacks` measures three inputs, each twice (criterion prints one
//! throughput per benchmark: `values/…` in values/s, `bytes/…` in MB/s, 10^6 bytes):
//!
//! - `query_5_params`: a search query of five benign parameters (`q=running+shoes&page=2&…`): 10 values (names and
//!   values);
//! - `json_16k_benign`: a ~16 KiB JSON order with the customer's profile, addresses, items and notes (names with
//!   apostrophes, URLs, prices, dates, free text): its values are every object key, string and number;
//! - `json_16k_pathological`: one JSON string of 16 KiB of `'<${../` repeated, the worst kind of value for the
//!   lexers (every byte starts a candidate); inspected up to the per-value cap ([`Limits::max_value_bytes`], 8 KiB by
//!   default) like the filter does, and again as `json_16k_pathological_whole` with the cap raised above the
//!   value, so that all of it is inspected.
//!
//! The inspector is made once and reused, as the filter's per-VM one is; the findings are fresh per request.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use portcullis_policies::attacks::values::{Check, Findings, Inspector, Limits, Part};
use portcullis_policies::attacks::{AttackClass, Place, Sensitivity};

/// The query of the integration bench's GET (`integration-tests/src/bench/attacks.rs`).
const QUERY: &[u8] = b"q=running+shoes&page=2&size=24&sort=price_asc&lang=en-GB";

/// The size the generated bodies stay within.
const BODY_BYTES: usize = 16 * 1024;

/// The content type of the bodies.
const JSON: &[u8] = b"application/json";

/// Every class at medium, in every place.
fn checks() -> Vec<Check<'static>> {
    let everywhere = Place::ALL.iter().fold(0_u8, |places, p| places | p.bit());
    AttackClass::ALL
        .iter()
        .map(|&class| Check { class, sensitivity: Sensitivity::Medium, places: everywhere, skip: &[] })
        .collect()
}

/// A benign order as a shop's checkout API receives it: the customer's profile, two addresses, items until the
/// document is just under `BODY_BYTES`, and notes with everyday punctuation.
fn benign_order() -> Vec<u8> {
    let mut doc = String::from(
        r#"{"order_id":"ord_7Hq2Lm9xK4","created_at":"2026-12-07T18:42:11Z","currency":"GBP","channel":"web","customer":{"id":"cus_48213","first_name":"Siobhán","last_name":"O'Brien","email":"siobhan.obrien@example.com","phone":"+44 20 7946 0958","date_of_birth":"1987-03-14","marketing_opt_in":false,"loyalty":{"tier":"gold","points":18240,"member_since":"2019-06-01"},"preferences":{"language":"en-GB","newsletter":"weekly","sizes":{"shoes":"UK 7","tops":"M"}}},"shipping_address":{"name":"Siobhán O'Brien","line1":"Flat 3, 27 St John's Road","line2":"Clapham Junction","city":"London","postcode":"SW11 1QN","country":"GB","instructions":"Please leave with the concierge (ground floor) if nobody's home; don't ring after 9 pm."},"billing_address":{"name":"S. O'Brien","line1":"27 St John's Road","city":"London","postcode":"SW11 1QN","country":"GB"},"items":["#,
    );
    let names = [
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
    let mut i = 0_usize;
    loop {
        let (name, description) = names[i % names.len()];
        let item = format!(
            r#"{{"line":{},"sku":"SKU-{:05}-{}","product_id":{},"name":"{name}","description":"{description}","quantity":{},"unit_price":{}.{:02},"discount":{{"code":"WINTER{}","percent":10}},"image_url":"https://cdn.example-shop.co.uk/img/products/{}/main.jpg?w=640&fit=crop","options":{{"colour":"{}","size":"{}"}},"gift":{},"tags":["running","outdoor","sale"]}}"#,
            i + 1,
            10_000 + i * 37,
            ["BLK", "NVY", "RED", "GRN"][i % 4],
            900_000 + i * 131,
            i % 3 + 1,
            19 + i * 7 % 120,
            i * 13 % 100,
            24 + i % 3,
            900_000 + i * 131,
            ["black", "navy", "red", "green"][i % 4],
            ["S", "M", "L", "UK 9"][i % 4],
            i % 5 == 0,
        );
        let tail = r#"],"payment":{"method":"card","brand":"visa","last4":"4242","three_ds":"authenticated"},"notes":"Gift for my brother - could you wrap the socks separately? Thanks! :)","totals":{"subtotal":412.50,"shipping":4.99,"tax":82.50,"grand_total":499.99}}"#;
        if doc.len() + item.len() + 1 + tail.len() > BODY_BYTES {
            doc.push_str(tail);
            break;
        }
        if i > 0 {
            doc.push(',');
        }
        doc.push_str(&item);
        i += 1;
    }
    doc.into_bytes()
}

/// One JSON string of `BODY_BYTES` bytes of quote, angle bracket, template and traversal starts.
fn pathological() -> Vec<u8> {
    let prefix = br#"{"comment":""#;
    let mut doc = prefix.to_vec();
    let pattern = b"'<${../";
    doc.extend(pattern.iter().cycle().take(BODY_BYTES - prefix.len() - 2));
    doc.extend_from_slice(b"\"}");
    doc
}

/// The values the inspector sees in a JSON document: every key, string and number.
fn json_values(body: &[u8]) -> u64 {
    fn count(value: &serde_json::Value) -> u64 {
        match value {
            serde_json::Value::Object(map) => map.values().map(|v| 1 + count(v)).sum(),
            serde_json::Value::Array(items) => items.iter().map(count).sum(),
            serde_json::Value::String(_) | serde_json::Value::Number(_) => 1,
            serde_json::Value::Bool(_) | serde_json::Value::Null => 0,
        }
    }
    count(&serde_json::from_slice(body).expect("the bench's JSON parses"))
}

fn attacks(c: &mut Criterion) {
    let checks = checks();
    let body = benign_order();
    let worst = pathological();
    assert!(body.len() <= BODY_BYTES && body.len() > BODY_BYTES - 1024, "{} bytes", body.len());
    assert_eq!(worst.len(), BODY_BYTES);
    let whole = Limits { max_value_bytes: 2 * BODY_BYTES, ..Limits::default() };
    let query_values = 2 * QUERY.split(|b| *b == b'&').count() as u64;
    let inputs: [(&str, Part<'_>, u64, Limits); 4] = [
        ("query_5_params", Part::Query(QUERY), query_values, Limits::default()),
        ("json_16k_benign", Part::Body { content_type: JSON, body: &body }, json_values(&body), Limits::default()),
        ("json_16k_pathological", Part::Body { content_type: JSON, body: &worst }, 2, Limits::default()),
        ("json_16k_pathological_whole", Part::Body { content_type: JSON, body: &worst }, 2, whole),
    ];
    let mut group = c.benchmark_group("attacks");
    group.measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    for (name, part, values, limits) in inputs {
        let bytes = match part {
            Part::Query(query) => query.len(),
            Part::Body { body, .. } => body.len(),
            Part::Path(path) => path.len(),
            Part::Headers(_) => 0,
        } as u64;
        let mut inspector = Inspector::new(limits);
        println!("attacks/{name}: {bytes} bytes, {values} values, all {} classes at medium", checks.len());
        for (unit, throughput) in [("values", Throughput::Elements(values)), ("bytes", Throughput::BytesDecimal(bytes))]
        {
            group.throughput(throughput);
            group.bench_function(BenchmarkId::new(unit, name), |b| {
                b.iter(|| {
                    let mut findings = Findings::default();
                    inspector.inspect(criterion::black_box(part), &checks, &mut findings);
                    criterion::black_box(findings.total)
                });
            });
        }
    }
    group.finish();
}

criterion_group!(benches, attacks);
criterion_main!(benches);
