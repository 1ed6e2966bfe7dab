//! The engine on a bundle built natively by the compiler — the way the filter meets bundles in Envoy.
//!
//! `make wasm-test` runs this file compiled to `wasm32-wasip1` under Wasmtime: 32-bit `usize`, DFA bytes realigned
//! from an arbitrary offset, no threads. It also runs natively with `cargo test`. The golden bundle is kept in
//! `fixtures/golden/` and checked against the compiler's current output by `compile_and_evaluate.rs`.

#![allow(clippy::expect_used, clippy::indexing_slicing, clippy::unwrap_used)]

use portcullis_policies::bundle::BundleErrorKind;
use portcullis_policies::engine::TableRequest;
use portcullis_policies::{Action, Bundle};

const GOLDEN: &[u8] = include_bytes!("fixtures/golden/demo.bundle");

fn golden() -> Bundle {
    Bundle::from_bytes(GOLDEN).expect("the golden bundle loads")
}

fn decide<'b>(bundle: &'b Bundle, request: &TableRequest) -> (Option<Action>, Option<&'b str>, u16) {
    let v = bundle.evaluate(request);
    (v.action, v.rule.and_then(|i| bundle.rule_id(i)), v.status)
}

#[test]
fn golden_bundle_loads_with_its_identity() {
    let bundle = golden();
    assert_eq!(bundle.policy_name(), "demo");
    assert_eq!(bundle.revision(), 1);
    let ids: Vec<&str> = bundle.rules().iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["admin-needs-key", "scanner-user-agent", "watch-exports"]);
}

#[test]
fn demo_policy_decisions() {
    let b = golden();
    assert_eq!(
        decide(&b, &TableRequest::new("GET", "/admin/users")),
        (Some(Action::Block), Some("admin-needs-key"), 403)
    );
    assert_eq!(decide(&b, &TableRequest::new("GET", "/admin").header("x-admin-key", "k")).0, None);
    let scanner = TableRequest::new("GET", "/").header("user-agent", "Mozilla/5.0 NUCLEI/3");
    assert_eq!(decide(&b, &scanner), (Some(Action::Block), Some("scanner-user-agent"), 403));
    assert_eq!(decide(&b, &TableRequest::new("GET", "/api/v12/export?all")).1, Some("watch-exports"));
    assert_eq!(decide(&b, &TableRequest::new("GET", "/api/vX/export")).0, None);
    assert_eq!(decide(&b, &TableRequest::new("POST", "/api/v1/export")).0, None);
}

#[test]
fn hostile_header_bytes_are_evaluated_not_trusted() {
    let b = golden();
    let bytes = TableRequest::new("GET", "/").header("user-agent", b"\xff\xfe sqlmap \x80".to_vec());
    assert_eq!(decide(&b, &bytes).1, Some("scanner-user-agent"), "a match survives invalid UTF-8 around it");
    let long = TableRequest::new("GET", "/").header("user-agent", vec![b'a'; 1 << 20]);
    assert_eq!(decide(&b, &long).0, None);
    // A repeated header is joined, so a scanner cannot hide behind a first, innocent value.
    let repeated = TableRequest::new("GET", "/").header("user-agent", "curl/8").header("user-agent", "Nikto");
    assert_eq!(decide(&b, &repeated).1, Some("scanner-user-agent"));
}

#[test]
fn every_truncation_and_bit_flip_is_refused_without_panic() {
    for len in 0..GOLDEN.len() {
        assert!(Bundle::from_bytes(&GOLDEN[..len]).is_err(), "prefix of {len} bytes");
    }
    for i in 0..GOLDEN.len() {
        let mut bytes = GOLDEN.to_vec();
        bytes[i] ^= 0x01;
        let err = Bundle::from_bytes(&bytes).expect_err("a flipped byte is caught");
        assert!(
            matches!(
                err.kind(),
                BundleErrorKind::DigestMismatch | BundleErrorKind::NotABundle | BundleErrorKind::UnsupportedVersion
            ),
            "byte {i}: {err}"
        );
    }
}

#[test]
fn arbitrary_bytes_never_panic() {
    // xorshift64*: deterministic, no dependency, covers short and long inputs with and without a valid header.
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    for round in 0..3000 {
        let len = usize::try_from(next() % 512).unwrap();
        let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if round % 2 == 0 {
            // Keep a valid header so decoding reaches the hash check and beyond.
            let header_len = 42.min(bytes.len());
            bytes[..header_len].copy_from_slice(&GOLDEN[..header_len]);
        }
        let _ = Bundle::from_bytes(&bytes);
    }
}

/// Re-hashes a payload so the bytes get past the SHA-256 check and exercise decoding and validation.
fn with_valid_digest(payload: &[u8]) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let mut out = GOLDEN[..10].to_vec();
    out.extend_from_slice(&Sha256::digest(payload));
    out.extend_from_slice(payload);
    out
}

#[test]
fn mutated_payloads_with_valid_digests_never_panic() {
    let payload = &GOLDEN[42..];
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x9E37_79B9_7F4A_7C15)
    };
    let mut refused = 0;
    for _ in 0..2000 {
        let mut bytes = payload.to_vec();
        // One to four byte edits, anywhere: lengths, enum tags, operand indices, DFA internals.
        for _ in 0..=(next() % 4) {
            let i = usize::try_from(next() % payload.len() as u64).unwrap();
            bytes[i] = next() as u8;
        }
        match Bundle::from_bytes(&with_valid_digest(&bytes)) {
            // Whatever validation lets through must evaluate without panicking.
            Ok(b) => {
                let _ = b.evaluate(&TableRequest::new("GET", "/admin").header("user-agent", "sqlmap"));
            }
            Err(_) => refused += 1,
        }
    }
    assert!(refused > 0, "mutations reach the validators");
    for len in 0..payload.len() {
        assert!(Bundle::from_bytes(&with_valid_digest(&payload[..len])).is_err(), "payload prefix {len}");
    }
}
