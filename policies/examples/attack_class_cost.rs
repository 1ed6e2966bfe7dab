//! Time per class of the attack inspector on benign input, natively: which detectors a request pays for most. A
//! diagnostic for tuning (`make bench` measures inside Envoy): `cargo run --release -p portcullis-policies --example
//! attack_class_cost [BODY.json]` (default: a generated 16 KiB order).
//!
//! `attack_class_cost --one CLASS get|post` inspects that request once with that class at medium (`none`: no
//! check; `all`: every class): built for wasm32-wasip1 and run with `WASI_RUN_FUEL=1 scripts/wasi-run.py`, it gives
//! the wasm instructions it costs, which unlike a timing do not depend on what else the machine is doing.

#![allow(clippy::expect_used)] // a diagnostic tool: a wrong argument ends it with a message

use std::time::Instant;

use portcullis_policies::attacks::values::{Check, Findings, Inspector, Limits, Part};
use portcullis_policies::attacks::{AttackClass, Place, Sensitivity};

/// The five-parameter query of the bench.
const QUERY: &[u8] = b"q=running+shoes&page=2&size=24&sort=price_asc&lang=en-GB";
/// Request headers a browser sends.
const HEADERS: &[(&[u8], &[u8])] = &[
    (
        b"user-agent",
        b"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
    ),
    (b"referer", b"https://shop.example.com/account/orders?page=2"),
    (b"cookie", b"session=6f1c2a9d8e7b4c3a; theme=dark; consent=analytics:0,ads:0"),
    (b"x-forwarded-for", b"203.0.113.7, 10.0.0.12"),
];

fn order() -> Vec<u8> {
    let mut doc = String::from(
        r#"{"order_id":"ord_7Hq2Lm9xK4","customer":{"first_name":"Siobhán","last_name":"O'Brien","email":"siobhan.obrien@example.com","notes":"Please leave with the concierge (ground floor) if nobody's home; don't ring after 9 pm."},"items":["#,
    );
    let mut n = 0;
    while doc.len() < 16 * 1024 - 300 {
        doc.push_str(&format!(
            r#"{{"sku":"TR2-{n:04}","name":"Trail Runner 2 – Men's","qty":{},"price":"{}.99","url":"https://shop.example.com/p/trail-runner-2?colour=blue&size=9","description":"Lightweight trail shoe with a grippy outsole & 8 mm drop; great for wet, rocky paths (UK 7–12)."}},"#,
            n % 3 + 1,
            40 + n
        ));
        n += 1;
    }
    doc.push_str(r#"{"sku":"END","qty":1}]}"#);
    doc.into_bytes()
}

fn time(inspector: &mut Inspector, parts: &[Part<'_>], checks: &[Check<'_>], rounds: u32) -> f64 {
    let start = Instant::now();
    for _ in 0..rounds {
        let mut findings = Findings::default();
        for part in parts {
            inspector.inspect(*part, checks, &mut findings);
        }
        std::hint::black_box(findings);
    }
    start.elapsed().as_secs_f64() * 1e6 / f64::from(rounds)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let everywhere = Place::ALL.iter().fold(0u8, |bits, p| bits | p.bit());
    let mut inspector = Inspector::new(Limits::default());
    if let [flag, class, request] = args.as_slice() {
        if flag == "--one" {
            let body = order();
            let get = [Part::Path(b"/api/v1/products"), Part::Query(QUERY), Part::Headers(HEADERS)];
            let post = [Part::Body { content_type: b"application/json", body: &body }];
            let classes: Vec<AttackClass> = match class.as_str() {
                "none" => vec![],
                "all" => AttackClass::ALL.to_vec(),
                name => vec![AttackClass::from_name(name).expect("a class name, none or all")],
            };
            let checks: Vec<Check<'_>> = classes
                .into_iter()
                .map(|class| Check { class, sensitivity: Sensitivity::Medium, places: everywhere, skip: &[] })
                .collect();
            time(&mut inspector, if request == "get" { &get } else { &post }, &checks, 1);
            return;
        }
    }
    let body = args.first().map(|p| std::fs::read(p).expect("read the body")).unwrap_or_else(order);
    let get = [Part::Path(b"/api/v1/products"), Part::Query(QUERY), Part::Headers(HEADERS)];
    let post = [Part::Body { content_type: b"application/json", body: &body }];
    println!("{:<22} {:>12} {:>12} {:>12}", "class (medium)", "GET µs", "POST µs", "POST high µs");
    let none: Vec<Check<'_>> = vec![];
    println!(
        "{:<22} {:>12.2} {:>12.1}",
        "(no checks)",
        time(&mut inspector, &get, &none, 2000),
        time(&mut inspector, &post, &none, 50)
    );
    for class in AttackClass::ALL {
        let medium = [Check { class, sensitivity: Sensitivity::Medium, places: everywhere, skip: &[] }];
        let high = [Check { class, sensitivity: Sensitivity::High, places: everywhere, skip: &[] }];
        println!(
            "{:<22} {:>12.2} {:>12.1} {:>12.1}",
            class.name(),
            time(&mut inspector, &get, &medium, 2000),
            time(&mut inspector, &post, &medium, 50),
            time(&mut inspector, &post, &high, 50)
        );
    }
    let all: Vec<Check<'_>> = AttackClass::ALL
        .iter()
        .map(|&class| Check { class, sensitivity: Sensitivity::Medium, places: everywhere, skip: &[] })
        .collect();
    println!(
        "{:<22} {:>12.2} {:>12.1}",
        "all 13",
        time(&mut inspector, &get, &all, 2000),
        time(&mut inspector, &post, &all, 50)
    );
}
