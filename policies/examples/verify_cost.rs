//! Time per first-time JWT analysis (RS256 and ES256), natively or under wasm32-wasip1 (`scripts/wasi-run.py`):
//! a diagnostic for the signature path, not a benchmark (`make bench` measures inside Envoy).

use std::time::Instant;

use jwt_simple::prelude::*;
use jwt_simple::reexports::ct_codecs::{Base64UrlSafeNoPadding, Encoder};
use portcullis_policies::token::JwtPolicy;
use portcullis_policies::token_analysis::JwtVerifier;

const RSA_N: &str = "9wcGZBqCFofwfdOxy3QI9aDRAiMl4m7_ImZooYxRZrzSPv3H4odjkFvEZpJi1nMOIQrobJ-UOG7l9tULbsyoVHBCBrXhwjObqGtJ9WB3Hp8igpkj26h5OdENg2z_Vq5otNCUoZ9om2HpsFFHJMPHNs0eDMP2psDaIc7qrzQ2z_NNwLct2uORMqpwuqdOQZroVKHnPs6DaIc0GDrSVeDCMlp5m0LVk1ImcNzC8tht3aO2fHbiOxqfstMwmT2Rmkvo97v100MNwROk6IHyxYUYqPo4gFLzLbhPRB_L-8PdHB-ntzEXq5XJeL6yGKT8Xd5ykc5iqdihQwY0kPUFKq22fQ";
const RS256_TOKEN: &str = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6InJzIn0.eyJpc3MiOiJodHRwczovL2lzc3Vlci5leGFtcGxlIiwic3ViIjoidXNlci00MiIsImF1ZCI6ImFwaSIsImlhdCI6MTY5OTk5OTk0MCwiZXhwIjoxNzAwMDAwNjAwfQ.uUvMaUfClwkC25JzNuPGrnaVgDxbPeejCWr5afYqYKerYMeAKIFSSnhasuTQMPKxYLxJfnpzJd7pTV9K8Y31OJUXgqUYcHr2nCB5vVOM4Yp75KpTY-DGxfl35-QT05lO7CZ2sXBx9xFJkdTtocdsLB-kGKWqcZJaRbuyZAGkjO30PKedZx-cVMAg-76dfjdnQ-tQavUuMUDHk5-2FcrlIGi8BMMpZEcQGHyRDGzOHj8qxg_XO3zVQdb38PRuyJBz4jwtqa-xEVNt_dFNM102ojuukblZorKZLWKEM3sKcewZoM-fLiVkneSFgXMAyVi1XKnz0fcBSGqFoOrnSOgrnw";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rounds: u32 = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(200);
    let es = ES256KeyPair::from_bytes(&[0x5a; 32])?.with_key_id("es");
    let point = es.public_key().public_key().to_bytes_uncompressed();
    let b64 = |b: &[u8]| Base64UrlSafeNoPadding::encode_to_string(b).unwrap_or_default();
    let x = b64(point.get(1..33).unwrap_or_default());
    let y = b64(point.get(33..).unwrap_or_default());
    let policy = JwtPolicy {
        jwks: format!(
            r#"{{"keys":[{{"kty":"EC","crv":"P-256","kid":"es","x":"{x}","y":"{y}"}},{{"kty":"RSA","kid":"rs","n":"{RSA_N}","e":"AQAB"}}]}}"#
        ),
        allowed_algs: vec!["ES256".into(), "RS256".into()],
        issuers: vec![],
        audiences: vec![],
        max_lifetime_seconds: None,
        clock_skew_seconds: 60,
        require_exp: true,
        weak_secrets: vec![],
    };
    let verifier = JwtVerifier::new(&policy)?;
    let es_token = es.sign(Claims::create(Duration::from_hours(1)).with_subject("user-42"))?;
    // The same RS256 token naming an unknown key: everything but the signature.
    let unknown_kid = RS256_TOKEN.replacen(
        "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6InJzIn0",
        &b64(br#"{"alg":"RS256","typ":"JWT","kid":"zz"}"#),
        1,
    );
    for (name, token) in
        [("RS256", RS256_TOKEN), ("ES256", es_token.as_str()), ("no signature (unknown kid)", unknown_kid.as_str())]
    {
        if std::env::args().nth(2).is_some_and(|only| !name.starts_with(&only)) {
            continue;
        }
        let first = verifier.analyze(token.as_bytes());
        assert!(first.is_authentic() || name.starts_with("no"), "{name}: {first:?}");
        let start = Instant::now();
        for _ in 0..rounds {
            std::hint::black_box(verifier.analyze(std::hint::black_box(token.as_bytes())));
        }
        println!("{name}: {:.1} µs per analysis", start.elapsed().as_secs_f64() * 1e6 / f64::from(rounds));
    }
    Ok(())
}
