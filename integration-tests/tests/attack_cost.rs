//! What a hostile request can make the attack inspection cost, in wasm instructions (Wasmtime fuel, counted by
//! `scripts/vm-cost.py` on the filter with `envoy-examples/policies/owasp.yaml`): counts, not timings, so the bound
//! holds on every machine. Each case is a pathological request of its kind at the size Envoy lets through (60 KiB
//! of headers) or the inspection cap (256 KiB of body); the bound is stated in README.md ("Attacks").

use std::process::Command;

use portcullis_integration_tests::artifacts::{filter_wasm, repo_root};
use portcullis_integration_tests::compile;

/// The ready policy: every class, at medium (block) and high (watch), everywhere in the request.
const OWASP: &str = include_str!("../../envoy-examples/policies/owasp.yaml");

/// The most wasm instructions one request may cost with a pathological path, query or headers (60 KiB). Measured
/// worst (2026-12-08): 254 M, for a 48 KiB query of about 6,100 tiny parameters `a=${${` (about 40,000
/// instructions per parameter with every class on; one 8 KiB value of the same costs 14 M). Far above what it
/// should be (an ordinary GET costs 0.4 M): see README.md, "Known limits".
const HEADERS_BOUND: u64 = 320_000_000;
/// The most wasm instructions one request may cost with a pathological 256 KiB body. Measured worst (2026-12-08):
/// 438 M, for `${${` repeated.
const BODY_BOUND: u64 = 550_000_000;

/// The median and the largest instruction count of `requests` identical requests (after a warm-up).
fn instructions(path: &str, headers: &[(&str, String)], body: Option<&[u8]>) -> (u64, u64) {
    let python = repo_root().join(".venv/bin/python");
    assert!(python.exists(), "{} is missing: run `make setup` (it installs Wasmtime for Python)", python.display());
    let dir = tempfile::tempdir().expect("temp dir");
    let bundle = compile(OWASP, "owasp", 1);
    let mut command = Command::new(&python);
    command.arg(repo_root().join("scripts/vm-cost.py")).arg(filter_wasm()).arg(&bundle).args([
        "--name",
        "owasp",
        "--requests",
        "3",
        "--warmup",
        "1",
        "--json",
        "--path",
        path,
    ]);
    for (name, value) in headers {
        command.arg("--header").arg(format!("{name}:{value}"));
    }
    if let Some(body) = body {
        let file = dir.path().join("body");
        std::fs::write(&file, body).expect("write the body");
        command.arg("--body").arg(&file);
    }
    let output = command.output().expect("run scripts/vm-cost.py");
    assert!(output.status.success(), "vm-cost.py failed:\n{}", String::from_utf8_lossy(&output.stderr));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("vm-cost.py prints JSON");
    let errors = report["errors"].as_array().expect("errors");
    assert!(errors.is_empty(), "the filter logged errors: {errors:?}");
    (report["instructions_median"].as_u64().expect("median"), report["instructions_max"].as_u64().expect("max"))
}

/// `unit` repeated to `len` bytes.
fn repeat(unit: &str, len: usize) -> String {
    unit.repeat(len / unit.len().max(1) + 1).chars().take(len).collect()
}

/// Units that make tokenizers, decoders and lookahead work hardest: quotes and comments (SQL), tags and entities
/// (HTML), lookups (Log4j), escapes (percent, `%u`, backslash), traversal, and shell metacharacters.
const UNITS: &[&str] = &["'/**/OR/**/", "<a ", "&#x", "${${", "%25", "\\x", "../", ";|&`"];

#[test]
fn a_pathological_query_path_or_header_stays_under_the_bound() {
    let baseline = instructions("/api/v1/orders?page=2", &[], None).0;
    let mut worst = (0, "");
    for unit in UNITS {
        // One 16 KiB value, and many short parameters: both shapes of a 48 KiB query.
        let one = format!("/search?q={}", repeat(unit, 16 * 1024));
        let many = format!("/search?{}", repeat(&format!("a={unit}&"), 48 * 1024));
        let path = format!("/{}", repeat(&format!("{unit}/"), 16 * 1024));
        let header = vec![("x-forwarded-for", repeat(unit, 16 * 1024))];
        for (what, cost) in [
            ("one value", instructions(&one, &[], None).1),
            ("many params", instructions(&many, &[], None).1),
            ("path", instructions(&path, &[], None).1),
            ("header", instructions("/search", &header, None).1),
        ] {
            assert!(cost <= HEADERS_BOUND, "{what} of {unit:?} costs {cost} instructions (bound {HEADERS_BOUND})");
            if cost > worst.0 {
                worst = (cost, unit);
            }
        }
    }
    eprintln!("worst headers case: {} instructions ({:?}); an ordinary GET: {baseline}", worst.0, worst.1);
}

#[test]
fn a_pathological_body_stays_under_the_bound() {
    let cap = 256 * 1024;
    let mut worst = (0, "");
    for unit in UNITS {
        let value = repeat(unit, cap - 64);
        let json = format!("{{\"q\":{}}}", serde_json::Value::String(value.clone()));
        let form = format!("q={}", value.replace('%', "%25").replace('&', "%26").replace('+', "%2B"));
        let many = repeat(&format!("{{\"{unit}\":\"{unit}\"}},"), cap - 64);
        let many = format!("[{}1]", many.get(..many.rfind(',').unwrap_or(0) + 1).unwrap_or_default());
        for (what, content_type, body) in [
            ("json value", "application/json", json),
            ("form value", "application/x-www-form-urlencoded", form),
            ("json objects", "application/json", many),
            ("text", "text/plain", value.clone()),
        ] {
            let headers = vec![("content-type", content_type.to_owned())];
            let cost = instructions("/comments", &headers, Some(body.as_bytes())).1;
            assert!(cost <= BODY_BOUND, "{what} of {unit:?} costs {cost} instructions (bound {BODY_BOUND})");
            if cost > worst.0 {
                worst = (cost, unit);
            }
        }
    }
    eprintln!("worst body case: {} instructions ({:?})", worst.0, worst.1);
}
