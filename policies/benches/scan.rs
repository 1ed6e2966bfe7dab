//! Scanner throughput: a 16 KiB JSON response through every built-in classifier, as the filter inspects it.
//!
//! `cargo bench -p portcullis-policies --features compiler --bench scan` prints MiB/s (criterion's throughput). The
//! allocation side (none per chunk) is asserted by `tests/scan_allocations.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use portcullis_policies::compiler::{compile_to_bytes, CompileOptions};
use portcullis_policies::scan::builtin::detections_yaml;
use portcullis_policies::scan::BodyInspector;
use portcullis_policies::{Bundle, Location};

fn bundle() -> Bundle {
    let mut yaml = format!("version: 1\n{}", detections_yaml("response.body"));
    yaml.push_str("rules:\n  - id: r\n    when: request.method == \"X\"\n    action: monitor\n");
    let options = CompileOptions { policy_name: "bench".into(), revision: 1, file_name: "bench.yaml".into() };
    Bundle::from_bytes(&compile_to_bytes(&yaml, &options).unwrap()).unwrap()
}

/// A typical API response: records with ids, names, timestamps, prices, addresses, and now and then PII.
fn response(with_pii: bool) -> Vec<u8> {
    let mut out = String::from("{\"orders\":[");
    let mut i: u64 = 0;
    while out.len() < 16 * 1024 - 400 {
        out.push_str(&format!(
            "{{\"id\":{},\"created_at\":\"2024-05-{:02}T10:{:02}:00Z\",\"customer\":{{\"name\":\"Customer {i}\",\
             \"city\":\"Springfield\",\"zip\":\"{:05}\"}},\"items\":[{{\"sku\":\"SKU-{}\",\"qty\":{},\"price\":{}.99}}],\
             \"status\":\"shipped\",\"note\":\"left at the front door\"",
            1_000_000 + i * 7919,
            i % 28 + 1,
            i % 60,
            10_000 + i * 13 % 89_999,
            i * 31 % 10_000,
            i % 5 + 1,
            i % 300
        ));
        if with_pii && i % 8 == 0 {
            out.push_str(
                ",\"email\":\"jane.doe@example.com\",\"card\":\"4111 1111 1111 1111\",\"phone\":\"+1 415 555 2671\"",
            );
        }
        out.push_str("},");
        i += 1;
    }
    out.push_str("{}]}");
    out.into_bytes()
}

fn scan(c: &mut Criterion) {
    let bundle = bundle();
    let mut group = c.benchmark_group("scan");
    for (name, body) in [("json_16k_clean", response(false)), ("json_16k_pii", response(true))] {
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut inspector =
                    BodyInspector::new(&bundle, Location::ResponseBody, Some(b"application/json"), None).unwrap();
                for chunk in body.chunks(4096) {
                    inspector.feed(&bundle, chunk);
                }
                inspector.finish(&bundle);
                criterion::black_box(inspector.classifier_counts().iter().sum::<u32>())
            });
        });
    }
    group.finish();
}

criterion_group!(benches, scan);
criterion_main!(benches);
