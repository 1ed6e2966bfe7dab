//! Measures the JWT analysis against Wycheproof's JSON Web Signature vectors.
//!
//! ```text
//! cargo run --release -p portcullis-policies --example eval_jwt -- [PATH]
//! ```
//!
//! PATH defaults to `../shared/corpora/wycheproof/json_web_signature_test.json` from the repository root. Each
//! test group carries one JWK; the evaluation builds a [`JwtPolicy`] with that key alone (allowed algorithms: the
//! key's `alg`, or every algorithm of its type; no issuer, audience, lifetime or `exp` requirement; no weak
//! secrets) and runs `analyze` + `findings_at` on every `jws`.
//!
//! A valid case passes when the analysis has no finding. Wycheproof signs JWS payloads such as `foo`, which are
//! not JWT claims sets, so `jwt.malformed` alone on a token whose payload is well-formed base64url but not a JSON
//! object counts as accepted ("JWS, not a JWT"): the signature verified. An invalid case is caught by a named
//! finding, by being judged an opaque token (not a JWT at all), or by the verifier refusing the group's key.
//! Exit code 2 when the file is missing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use portcullis_policies::token::{JwtFinding, JwtFindings, JwtPolicy};
use portcullis_policies::token_analysis::{JwtVerifier, TokenKind};
use serde_json::Value;

/// Any fixed time: the vectors carry no `exp`.
const NOW: i64 = 1_700_000_000;

enum Outcome {
    Accepted,
    AcceptedJws,
    Findings(JwtFindings),
    Opaque,
    Refused(String),
}

impl Outcome {
    fn accepted(&self) -> bool {
        matches!(self, Outcome::Accepted | Outcome::AcceptedJws)
    }

    fn describe(&self) -> String {
        match self {
            Outcome::Accepted => "accepted".into(),
            Outcome::AcceptedJws => "accepted (JWS, payload not a claims set)".into(),
            Outcome::Findings(f) => f.iter().map(JwtFinding::name).collect::<Vec<_>>().join(", "),
            Outcome::Opaque => "opaque token (not a JWT)".into(),
            Outcome::Refused(e) => format!("key refused: {e}"),
        }
    }
}

#[derive(Default)]
struct Row {
    cases: usize,
    valid: usize,
    valid_passed: usize,
    invalid: usize,
    caught_by_finding: usize,
    caught_as_opaque: usize,
    caught_by_refusal: usize,
    disagreements: usize,
}

fn main() -> ExitCode {
    let path = std::env::args().nth(1).map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpora/wycheproof/json_web_signature_test.json")
    });
    let Ok(text) = std::fs::read_to_string(&path) else {
        eprintln!(
            "eval_jwt: {} not found: the Wycheproof corpus lives beside the project in ../shared/corpora \
             (pass another path as the first argument)",
            path.display()
        );
        return ExitCode::from(2);
    };
    let doc: Value = serde_json::from_str(&text).expect("the corpus is JSON");
    let mut rows: Vec<(String, Row)> = Vec::new();
    let mut disagreements = Vec::new();
    let mut by_finding: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut total = Row::default();

    for group in doc["testGroups"].as_array().expect("testGroups") {
        let jwk = group.get("public").or_else(|| group.get("private")).expect("a key");
        let alg = jwk.get("alg").and_then(Value::as_str);
        let label = format!("{} ({})", group["comment"].as_str().unwrap_or("?"), describe_key(jwk));
        let policy = JwtPolicy {
            jwks: serde_json::json!({ "keys": [jwk] }).to_string(),
            allowed_algs: alg.map(|a| vec![a.to_string()]).unwrap_or_default(),
            issuers: vec![],
            audiences: vec![],
            max_lifetime_seconds: None,
            clock_skew_seconds: 0,
            require_exp: false,
            weak_secrets: vec![],
        };
        let verifier = JwtVerifier::new(&policy);
        let mut row = Row::default();
        for test in group["tests"].as_array().expect("tests") {
            let jws = match &test["jws"] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let outcome = match &verifier {
                Err(e) => Outcome::Refused(e.to_string()),
                Ok(v) => {
                    let analysis = v.analyze(jws.as_bytes());
                    let findings = analysis.findings_at(&policy, NOW);
                    if analysis.kind == TokenKind::Opaque {
                        Outcome::Opaque
                    } else if findings.is_empty() {
                        Outcome::Accepted
                    } else if findings == only(JwtFinding::Malformed) && payload_is_not_claims(&jws) {
                        Outcome::AcceptedJws
                    } else {
                        Outcome::Findings(findings)
                    }
                }
            };
            let valid = test["result"].as_str() == Some("valid");
            row.cases += 1;
            let agrees = valid == outcome.accepted();
            if valid {
                row.valid += 1;
                row.valid_passed += usize::from(agrees);
            } else {
                row.invalid += 1;
                match &outcome {
                    Outcome::Findings(f) => {
                        row.caught_by_finding += 1;
                        for finding in f.iter() {
                            *by_finding.entry(finding.name()).or_default() += 1;
                        }
                    }
                    Outcome::Opaque => row.caught_as_opaque += 1,
                    Outcome::Refused(_) => row.caught_by_refusal += 1,
                    Outcome::Accepted | Outcome::AcceptedJws => {}
                }
            }
            if !agrees {
                row.disagreements += 1;
                disagreements.push(format!(
                    "  tcId {:>3}  {:<55} expected {:<7} got {}",
                    test["tcId"],
                    test["comment"].as_str().unwrap_or(""),
                    if valid { "valid" } else { "invalid" },
                    outcome.describe()
                ));
            }
        }
        for (t, r) in [
            (&mut total.cases, row.cases),
            (&mut total.valid, row.valid),
            (&mut total.valid_passed, row.valid_passed),
            (&mut total.invalid, row.invalid),
            (&mut total.caught_by_finding, row.caught_by_finding),
            (&mut total.caught_as_opaque, row.caught_as_opaque),
            (&mut total.caught_by_refusal, row.caught_by_refusal),
            (&mut total.disagreements, row.disagreements),
        ] {
            *t += r;
        }
        rows.push((label, row));
    }

    println!("Wycheproof JSON Web Signature vectors: {}", path.display());
    println!();
    println!(
        "{:<44} {:>5} {:>12} {:>8} {:>9} {:>7} {:>8} {:>8}",
        "group (key)", "cases", "valid ok", "invalid", "finding", "opaque", "refused", "disagree"
    );
    rows.push(("TOTAL".into(), total));
    for (label, r) in &rows {
        println!(
            "{:<44} {:>5} {:>5} of {:>3} {:>8} {:>9} {:>7} {:>8} {:>8}",
            label,
            r.cases,
            r.valid_passed,
            r.valid,
            r.invalid,
            r.caught_by_finding,
            r.caught_as_opaque,
            r.caught_by_refusal,
            r.disagreements
        );
    }
    println!();
    println!("Detections on invalid cases (a case may carry several):");
    for (name, count) in &by_finding {
        println!("  {name:<24} {count}");
    }
    println!();
    println!("Disagreements ({}):", disagreements.len());
    for line in &disagreements {
        println!("{line}");
    }
    ExitCode::SUCCESS
}

fn only(finding: JwtFinding) -> JwtFindings {
    let mut set = JwtFindings::default();
    set.insert(finding);
    set
}

fn describe_key(jwk: &Value) -> String {
    let kty = jwk["kty"].as_str().unwrap_or("?");
    let detail = jwk.get("alg").or_else(|| jwk.get("crv")).and_then(Value::as_str).unwrap_or("-");
    let usage = match (jwk.get("use"), jwk.get("key_ops")) {
        (Some(u), _) => format!(" use={}", u.as_str().unwrap_or("?")),
        (None, Some(ops)) => format!(" key_ops={ops}"),
        _ => String::new(),
    };
    format!("{kty} {detail}{usage}")
}

/// Compact serialization whose payload segment is strict base64url but not a JSON object: a JWS, not a JWT.
fn payload_is_not_claims(jws: &str) -> bool {
    let parts: Vec<&str> = jws.split('.').collect();
    if parts.len() != 3 {
        return false;
    }
    match strict_base64url(parts[1]) {
        Some(payload) => !matches!(serde_json::from_slice::<Value>(&payload), Ok(Value::Object(_))),
        None => false,
    }
}

fn strict_base64url(s: &str) -> Option<Vec<u8>> {
    const ALPHABET: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    if s.len() % 4 == 1 {
        return None;
    }
    let (mut acc, mut bits, mut out) = (0u32, 0u32, Vec::new());
    for c in s.chars() {
        acc = (acc << 6) | ALPHABET.find(c)? as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    (acc == 0).then_some(out)
}
