//! Token analysis end to end: tokens minted with jwt-simple (and forged by hand), extraction, identity, the cache,
//! and arbitrary input. Runs natively and on wasm32-wasip1 under Wasmtime, so it mints no RSA key: the RSA token
//! was signed once, offline, with a throwaway key whose public half is below.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::borrow::Cow;
use std::rc::Rc;

use jwt_simple::prelude::*;
use jwt_simple::reexports::ct_codecs::{Base64UrlSafeNoPadding, Encoder};
use p256::ecdsa::signature::Signer as _;
use portcullis_policies::token::{JwtFinding, JwtPolicy, TokenIdentity, TokenPolicy, TokenSource};
use portcullis_policies::token_analysis::{
    extract_token, identity, identity_hex, AnalysisCache, JwtVerifier, TokenAnalysis, TokenKind, VerificationBudget,
    BUILTIN_WEAK_SECRETS, MAX_TOKEN_BYTES,
};

/// "Now" for every test: tokens carry fixed times around it.
const NOW: i64 = 1_700_000_000;

const HS_SECRET: &[u8] = b"a-strong-secret-of-more-than-32-bytes-for-hs256";

const RSA_PUBLIC_PEM: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA9wcGZBqCFofwfdOxy3QI
9aDRAiMl4m7/ImZooYxRZrzSPv3H4odjkFvEZpJi1nMOIQrobJ+UOG7l9tULbsyo
VHBCBrXhwjObqGtJ9WB3Hp8igpkj26h5OdENg2z/Vq5otNCUoZ9om2HpsFFHJMPH
Ns0eDMP2psDaIc7qrzQ2z/NNwLct2uORMqpwuqdOQZroVKHnPs6DaIc0GDrSVeDC
Mlp5m0LVk1ImcNzC8tht3aO2fHbiOxqfstMwmT2Rmkvo97v100MNwROk6IHyxYUY
qPo4gFLzLbhPRB/L+8PdHB+ntzEXq5XJeL6yGKT8Xd5ykc5iqdihQwY0kPUFKq22
fQIDAQAB
-----END PUBLIC KEY-----";

/// RS256, kid `rs`, claims {iss, sub: user-42, aud: api, iat: NOW-60, exp: NOW+600}, signed by the key above.
const RS256_TOKEN: &str = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6InJzIn0.eyJpc3MiOiJodHRwczovL2lzc3Vlci5leGFtcGxlIiwic3ViIjoidXNlci00MiIsImF1ZCI6ImFwaSIsImlhdCI6MTY5OTk5OTk0MCwiZXhwIjoxNzAwMDAwNjAwfQ.uUvMaUfClwkC25JzNuPGrnaVgDxbPeejCWr5afYqYKerYMeAKIFSSnhasuTQMPKxYLxJfnpzJd7pTV9K8Y31OJUXgqUYcHr2nCB5vVOM4Yp75KpTY-DGxfl35-QT05lO7CZ2sXBx9xFJkdTtocdsLB-kGKWqcZJaRbuyZAGkjO30PKedZx-cVMAg-76dfjdnQ-tQavUuMUDHk5-2FcrlIGi8BMMpZEcQGHyRDGzOHj8qxg_XO3zVQdb38PRuyJBz4jwtqa-xEVNt_dFNM102ojuukblZorKZLWKEM3sKcewZoM-fLiVkneSFgXMAyVi1XKnz0fcBSGqFoOrnSOgrnw";

fn b64(bytes: &[u8]) -> String {
    Base64UrlSafeNoPadding::encode_to_string(bytes).unwrap()
}

struct Keys {
    es: ES256KeyPair,
    ed: Ed25519KeyPair,
    hs: HS256Key,
    rsa: RS256PublicKey,
}

fn keys() -> Keys {
    let es = ES256KeyPair::from_bytes(&[0x5a; 32]).unwrap().with_key_id("es");
    let ed_kp = ed25519_compact::KeyPair::from_seed(ed25519_compact::Seed::new([7; 32]));
    let ed = Ed25519KeyPair::from_bytes(&ed_kp[..]).unwrap().with_key_id("ed");
    let hs = HS256Key::from_bytes(HS_SECRET).with_key_id("hs");
    let rsa = RS256PublicKey::from_pem(RSA_PUBLIC_PEM).unwrap();
    Keys { es, ed, hs, rsa }
}

fn jwks(k: &Keys) -> String {
    let point = k.es.public_key().public_key().to_bytes_uncompressed();
    let rsa = k.rsa.to_components();
    serde_json::json!({ "keys": [
        { "kty": "EC", "crv": "P-256", "kid": "es", "use": "sig", "x": b64(&point[1..33]), "y": b64(&point[33..]) },
        { "kty": "RSA", "kid": "rs", "alg": "RS256", "n": b64(&rsa.n), "e": b64(&rsa.e) },
        { "kty": "OKP", "crv": "Ed25519", "kid": "ed", "x": b64(&k.ed.public_key().to_bytes()) },
        { "kty": "oct", "kid": "hs", "alg": "HS256", "k": b64(HS_SECRET) },
        { "kty": "RSA", "kid": "enc", "use": "enc", "n": b64(&rsa.n), "e": b64(&rsa.e) },
    ]})
    .to_string()
}

fn policy(k: &Keys) -> JwtPolicy {
    JwtPolicy {
        jwks: jwks(k),
        allowed_algs: vec![],
        issuers: vec!["https://issuer.example".into()],
        audiences: vec!["api".into()],
        max_lifetime_seconds: Some(3600),
        clock_skew_seconds: 60,
        require_exp: true,
        weak_secrets: BUILTIN_WEAK_SECRETS.iter().map(|s| s.to_string()).collect(),
    }
}

/// Claims valid at [`NOW`] for the policy above.
fn good_claims() -> JWTClaims<NoCustomClaims> {
    let mut claims = Claims::create(Duration::from_secs(600)).with_issuer("https://issuer.example");
    claims = claims.with_audience("api").with_subject("user-42");
    claims.issued_at = Some(UnixTimeStamp::from_secs(NOW as u64 - 60));
    claims.invalid_before = None;
    claims.expires_at = Some(UnixTimeStamp::from_secs(NOW as u64 + 600));
    claims
}

fn claims_json(extra: &str) -> String {
    let base = r#""iss":"https://issuer.example","sub":"user-42","aud":"api","iat":1699999940,"exp":1700000600"#;
    if extra.is_empty() {
        format!("{{{base}}}")
    } else {
        format!("{{{base},{extra}}}")
    }
}

/// A compact token with this header and payload JSON, signed by `sign` over the signing input.
fn mint(header: &str, payload: &str, sign: impl Fn(&[u8]) -> Vec<u8>) -> String {
    let input = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
    let signature = sign(input.as_bytes());
    format!("{input}.{}", b64(&signature))
}

fn es_sign(k: &Keys) -> impl Fn(&[u8]) -> Vec<u8> + '_ {
    |input| {
        let sig: p256::ecdsa::Signature = k.es.key_pair().as_ref().sign(input);
        sig.to_bytes().to_vec()
    }
}

fn hs_sign(secret: &[u8]) -> impl Fn(&[u8]) -> Vec<u8> + '_ {
    move |input| HS256Key::from_bytes(secret).authentication_tag(input)
}

struct Fixture {
    keys: Keys,
    policy: JwtPolicy,
    verifier: JwtVerifier,
}

fn fixture() -> Fixture {
    let keys = keys();
    let policy = policy(&keys);
    let verifier = JwtVerifier::new(&policy).unwrap();
    Fixture { keys, policy, verifier }
}

impl Fixture {
    fn findings(&self, token: &str) -> Vec<JwtFinding> {
        let analysis = self.verifier.analyze(token.as_bytes());
        analysis.findings_at(&self.policy, NOW).iter().collect()
    }
}

use JwtFinding::*;

#[test]
fn valid_tokens_of_every_key_type_have_no_findings() {
    let f = fixture();
    let es = f.keys.es.sign(good_claims()).unwrap();
    let ed = f.keys.ed.sign(good_claims()).unwrap();
    let hs = f.keys.hs.authenticate(good_claims()).unwrap();
    for token in [&es, &ed, &hs, &RS256_TOKEN.to_string()] {
        let analysis = f.verifier.analyze(token.as_bytes());
        assert_eq!(analysis.kind, TokenKind::Jwt);
        assert_eq!(f.findings(token), vec![], "{:?}", analysis);
        assert!(analysis.is_authentic());
        assert_eq!(analysis.claim("sub"), Some("user-42"));
        assert_eq!(analysis.claim("exp"), Some("1700000600"));
        assert_eq!(analysis.exp, Some(NOW + 600));
        assert_eq!(analysis.iat, Some(NOW - 60));
    }
    assert_eq!(f.verifier.analyze(es.as_bytes()).header("kid"), Some("es"));
    assert_eq!(f.verifier.analyze(es.as_bytes()).header("alg"), Some("ES256"));
    assert_eq!(f.verifier.analyze(ed.as_bytes()).header("alg"), Some("EdDSA"));
}

#[test]
fn alg_none_in_any_case() {
    let f = fixture();
    for alg in ["none", "None", "NONE", "nOnE"] {
        let token = format!("{}.{}.", b64(format!(r#"{{"alg":"{alg}"}}"#).as_bytes()), b64(claims_json("").as_bytes()));
        let found = f.findings(&token);
        assert!(found.contains(&AlgNone), "{alg}: {found:?}");
        assert!(found.contains(&EmptySignature) && found.contains(&BadSignature));
        // The claims are still readable, for rules and logs.
        assert_eq!(f.verifier.analyze(token.as_bytes()).claim("sub"), Some("user-42"));
    }
    // alg none with a (meaningless) signature.
    let token = mint(r#"{"alg":"none"}"#, &claims_json(""), |_| b"sig".to_vec());
    assert!(f.findings(&token).contains(&AlgNone));
}

#[test]
fn empty_signature() {
    let f = fixture();
    let token = f.keys.es.sign(good_claims()).unwrap();
    let stripped = &token[..token.rfind('.').unwrap() + 1];
    assert_eq!(f.findings(stripped), vec![EmptySignature, BadSignature]);
}

#[test]
fn weak_secrets_blank_and_common() {
    let f = fixture();
    for secret in ["", "secret", "your-256-bit-secret"] {
        let token = mint(r#"{"alg":"HS256","typ":"JWT"}"#, &claims_json(""), hs_sign(secret.as_bytes()));
        let found = f.findings(&token);
        assert!(found.contains(&WeakSecret), "{secret:?}: {found:?}");
        assert!(found.contains(&BadSignature), "not our key either");
    }
    // A configured key that is itself weak: the signature verifies, the secret is still flagged.
    let mut weak = f.policy.clone();
    weak.jwks = format!(r#"{{"keys":[{{"kty":"oct","k":"{}"}}]}}"#, b64(b"changeme"));
    let verifier = JwtVerifier::new(&weak).unwrap();
    let token = mint(r#"{"alg":"HS256"}"#, &claims_json(""), hs_sign(b"changeme"));
    let analysis = verifier.analyze(token.as_bytes());
    assert_eq!(analysis.findings.iter().collect::<Vec<_>>(), vec![WeakSecret]);
    assert!(!analysis.is_authentic());
}

#[test]
fn rsa_public_key_as_hmac_secret_is_key_confusion() {
    let f = fixture();
    let rsa = f.keys.rsa.to_components();
    let pem = RSA_PUBLIC_PEM.to_string();
    let pem_nl = format!("{pem}\n");
    let der = f.keys.rsa.to_der().unwrap();
    for secret in [pem.as_bytes(), pem_nl.as_bytes(), &der, &rsa.n] {
        let token = mint(r#"{"alg":"HS256","kid":"rs"}"#, &claims_json(""), hs_sign(secret));
        let found = f.findings(&token);
        assert!(found.contains(&KeyConfusion) && found.contains(&BadSignature), "{found:?}");
    }
    // Without a kid, against a JWKS of asymmetric keys only.
    let mut only_rsa = f.policy.clone();
    only_rsa.jwks = format!(r#"{{"keys":[{{"kty":"RSA","n":"{}","e":"{}"}}]}}"#, b64(&rsa.n), b64(&rsa.e));
    let verifier = JwtVerifier::new(&only_rsa).unwrap();
    let token = mint(r#"{"alg":"HS256"}"#, &claims_json(""), hs_sign(pem.as_bytes()));
    let found: Vec<_> = verifier.analyze(token.as_bytes()).findings.iter().collect();
    assert_eq!(found, vec![AlgNotAllowed, BadSignature, KeyConfusion]);
}

#[test]
fn embedded_keys() {
    let f = fixture();
    let jwk = r#"{"kty":"oct","k":"AAAA"}"#;
    for header in [
        format!(r#"{{"alg":"ES256","kid":"es","jwk":{jwk}}}"#),
        r#"{"alg":"ES256","kid":"es","jku":"https://attacker.example/jwks.json"}"#.to_string(),
        r#"{"alg":"ES256","kid":"es","x5u":"https://attacker.example/cert.pem"}"#.to_string(),
        r#"{"alg":"ES256","kid":"es","x5c":["MIIB"]}"#.to_string(),
    ] {
        // Validly signed by our key: the embedded key is the only finding.
        let token = mint(&header, &claims_json(""), es_sign(&f.keys));
        assert_eq!(f.findings(&token), vec![EmbeddedKey], "{header}");
    }
}

#[test]
fn suspicious_and_unknown_kids() {
    let f = fixture();
    for kid in ["../../dev/null", "x' OR '1'='1", "key|id", "a;b", "$(id)", "k\u{0}", "a b", "x--", "/*"] {
        let header = serde_json::json!({ "alg": "HS256", "kid": kid }).to_string();
        let token = mint(&header, &claims_json(""), hs_sign(b""));
        let found = f.findings(&token);
        assert!(found.contains(&SuspiciousKid) && found.contains(&UnknownKey), "{kid:?}: {found:?}");
    }
    let token = mint(r#"{"alg":"ES256","kid":"nope"}"#, &claims_json(""), es_sign(&f.keys));
    assert_eq!(f.findings(&token), vec![BadSignature, UnknownKey]);
    // A kid for another use (an encryption key) is unknown for signatures.
    let token = mint(r#"{"alg":"RS256","kid":"enc"}"#, &claims_json(""), |_| vec![1; 256]);
    assert!(f.findings(&token).contains(&UnknownKey));
}

#[test]
fn psychic_signature() {
    let f = fixture();
    let token = mint(r#"{"alg":"ES256","kid":"es"}"#, &claims_json(""), |_| vec![0; 64]);
    assert_eq!(f.findings(&token), vec![BadSignature, PsychicSignature]);
}

#[test]
fn time_checks() {
    let f = fixture();
    let at = |iat: Option<u64>, nbf: Option<u64>, exp: Option<u64>| {
        let mut claims = good_claims();
        claims.issued_at = iat.map(UnixTimeStamp::from_secs);
        claims.invalid_before = nbf.map(UnixTimeStamp::from_secs);
        claims.expires_at = exp.map(UnixTimeStamp::from_secs);
        f.keys.es.sign(claims).unwrap()
    };
    let now = NOW as u64;
    // Expired: the signature is fine (no bad_signature), only the time is wrong.
    let expired = at(Some(now - 7200), None, Some(now - 3600));
    assert_eq!(f.verifier.analyze(expired.as_bytes()).findings.iter().count(), 0);
    assert_eq!(f.findings(&expired), vec![Expired]);
    // Within the skew is fine.
    assert_eq!(f.findings(&at(Some(now - 600), None, Some(now - 30))), vec![]);
    assert_eq!(f.findings(&at(Some(now), Some(now + 3600), Some(now + 3600))), vec![NotYetValid]);
    assert_eq!(f.findings(&at(Some(now + 3600), None, Some(now + 3700))), vec![NotYetValid]);
    assert_eq!(f.findings(&at(Some(now), None, None)), vec![MissingExp, LifetimeTooLong]);
    assert_eq!(f.findings(&at(Some(now), None, Some(now + 7200))), vec![LifetimeTooLong]);
    assert_eq!(f.findings(&at(None, Some(now), Some(now + 7200))), vec![LifetimeTooLong]);
    assert_eq!(f.findings(&at(None, None, Some(now + 7200))), vec![LifetimeTooLong]);
    assert_eq!(f.findings(&at(None, None, Some(now + 600))), vec![]);
}

#[test]
fn issuer_and_audience() {
    let f = fixture();
    let sign = |claims: JWTClaims<NoCustomClaims>| f.keys.es.sign(claims).unwrap();
    let mut wrong_iss = good_claims();
    wrong_iss.issuer = Some("https://evil.example".into());
    assert_eq!(f.findings(&sign(wrong_iss)), vec![IssuerMismatch]);
    let mut no_iss = good_claims();
    no_iss.issuer = None;
    assert_eq!(f.findings(&sign(no_iss)), vec![IssuerMismatch]);
    assert_eq!(f.findings(&sign(good_claims().with_audience("other"))), vec![AudienceMismatch]);
    let several = good_claims().with_audiences(HashSet::from_strings(&["other", "api"]));
    let token = sign(several);
    assert_eq!(f.findings(&token), vec![]);
    assert!(f.verifier.analyze(token.as_bytes()).claim("aud").unwrap().starts_with('['));
    let token = mint(
        r#"{"alg":"ES256","kid":"es"}"#,
        &claims_json("").replace(r#""aud":"api""#, r#""aud":["x"]"#),
        es_sign(&f.keys),
    );
    assert_eq!(f.findings(&token), vec![AudienceMismatch]);
}

#[test]
fn tampered_payload_is_a_bad_signature() {
    let f = fixture();
    for token in
        [f.keys.es.sign(good_claims()).unwrap(), RS256_TOKEN.to_string(), f.keys.ed.sign(good_claims()).unwrap()]
    {
        let parts: Vec<&str> = token.split('.').collect();
        let forged_claims = claims_json("").replace("user-42", "admin");
        let forged = format!("{}.{}.{}", parts[0], b64(forged_claims.as_bytes()), parts[2]);
        assert_eq!(f.findings(&forged), vec![BadSignature]);
        let analysis = f.verifier.analyze(forged.as_bytes());
        assert_eq!(analysis.claim("sub"), Some("admin"));
        assert!(!analysis.is_authentic());
    }
    // A signature made for another algorithm the key also fits: RS256 header, but only RS256 is in the JWK.
    let parts: Vec<&str> = RS256_TOKEN.split('.').collect();
    let ps = format!("{}.{}.{}", b64(br#"{"alg":"PS256","kid":"rs"}"#), parts[1], parts[2]);
    assert!(f.findings(&ps).contains(&BadSignature));
}

#[test]
fn malformed_forms() {
    let f = fixture();
    let good = f.keys.es.sign(good_claims()).unwrap();
    let parts: Vec<&str> = good.split('.').collect();
    let cases = [
        format!("{}.{}", parts[0], parts[1]),
        format!("{}.{}.{}.{}", parts[0], parts[1], parts[2], parts[2]),
        format!("eyJhbGciOiJIUzI1NiJ9.{}.{}", parts[1], parts[2]).replace("eyJhbGciOiJIUzI1NiJ9", "eyJhbGciOi"),
        format!("{}.{}!.{}", parts[0], parts[1], parts[2]),
        format!("{}.{}.{}=", parts[0], parts[1], parts[2]),
        format!("{}.{}.{}", parts[0], b64(b"not json"), parts[2]),
        format!("{}.{}.{}", parts[0], b64(b"[1,2]"), parts[2]),
        format!("{}.{}.{}", parts[0], b64(br#"{"sub":"a","sub":"b"}"#), parts[2]),
        format!("{}.{}.{}", parts[0], b64(br#"{"exp":"tomorrow"}"#), parts[2]),
        format!("{}.{}.{}", b64(br#"{"alg":"ES256","alg":"none"}"#), parts[1], parts[2]),
        format!("{}.{}.{}", b64(br#"{"alg":5}"#), parts[1], parts[2]),
        format!("{}.{}.{}", b64(br#"{"alg":"ES256","kid":7}"#), parts[1], parts[2]),
        "eyJ.x.y".to_string(),
        "eyJhbGciOiJSUzI1NiJ9.a.b.c.d".to_string(),
        format!(
            r#"{{"payload":"{}","signatures":[{{"protected":"{}","signature":"{}"}}]}}"#,
            parts[1], parts[0], parts[2]
        ),
    ];
    for token in &cases {
        let analysis = f.verifier.analyze(token.as_bytes());
        assert_eq!(analysis.kind, TokenKind::Jwt, "{token}");
        let found = f.findings(token);
        assert!(found.contains(&Malformed), "{token}: {found:?}");
        assert!(!analysis.is_authentic());
    }
}

#[test]
fn opaque_tokens_have_no_findings() {
    let f = fixture();
    for token in [
        "sk_live_51H8abcdefghijklmnopqrstuvwx",
        "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
        "3f1c2b7e-9d4a-4c1e-8f2b-6a5d4c3b2a10",
        "abc.def",
        "Zm9v.YmFy.YmF6",
        "eyJhbGciOiJIUzI1NiJ9",
        "",
        "{not json",
        r#"{"a":1}"#,
    ] {
        let analysis = f.verifier.analyze(token.as_bytes());
        assert_eq!(analysis.kind, TokenKind::Opaque, "{token}");
        assert!(analysis.findings_at(&f.policy, NOW).is_empty(), "{token}");
        assert_eq!(analysis.claim("sub"), None);
    }
}

#[test]
fn header_and_claims_are_bounded() {
    let f = fixture();
    let many: Vec<String> = (0..100).map(|i| format!(r#""c{i:03}":{i}"#)).collect();
    let long = format!(r#""long":"{}""#, "x".repeat(300));
    let payload = claims_json(&format!("{},{long}", many.join(",")));
    let token = mint(r#"{"alg":"ES256","kid":"es"}"#, &payload, es_sign(&f.keys));
    let analysis = f.verifier.analyze(token.as_bytes());
    assert_eq!(f.findings(&token), vec![]);
    // The registered claims come first and survive; the rest is cut at 32 entries; long values are left out.
    for name in ["iss", "sub", "aud", "exp", "iat"] {
        assert!(analysis.claim(name).is_some(), "{name}");
    }
    assert_eq!(analysis.claim("c000"), Some("0"));
    assert_eq!(analysis.claim("c026"), Some("26"));
    assert_eq!(analysis.claim("c027"), None);
    assert_eq!(analysis.claim("long"), None);
    // Debug shows names, never values.
    let debug = format!("{analysis:?}");
    assert!(debug.contains("\"sub\"") && !debug.contains("user-42"));
}

#[test]
fn jwks_errors_are_clear() {
    let f = fixture();
    let mut p = f.policy.clone();
    p.jwks = r#"{"keys":[{"kty":"EC","crv":"P-521","x":"AA","y":"AA","kid":"k"}]}"#.into();
    let err = JwtVerifier::new(&p).unwrap_err().to_string();
    assert!(err.contains("kid \"k\"") && err.contains("P-521"), "{err}");
    p.jwks = jwks(&f.keys);
    p.allowed_algs = vec!["none".into()];
    assert!(JwtVerifier::new(&p).unwrap_err().to_string().contains("never allowed"));
    p.allowed_algs = vec!["ES256".into()];
    let only_es = JwtVerifier::new(&p).unwrap();
    let found: Vec<_> = only_es.analyze(RS256_TOKEN.as_bytes()).findings.iter().collect();
    assert_eq!(found, vec![AlgNotAllowed, BadSignature], "refused before any key is tried");
}

fn sources() -> Vec<TokenSource> {
    vec![
        TokenSource::Header { name: "authorization".into(), scheme: Some("Bearer".into()) },
        TokenSource::Header { name: "x-api-key".into(), scheme: None },
        TokenSource::Cookie { name: "session".into() },
        TokenSource::Query { name: "access_token".into() },
    ]
}

fn headers(list: &'static [(&'static str, &'static str)]) -> impl Fn(&[u8]) -> Option<Cow<'static, [u8]>> {
    move |name| list.iter().find(|(n, _)| n.as_bytes() == name).map(|(_, v)| Cow::Borrowed(v.as_bytes()))
}

#[test]
fn extraction() {
    let s = sources();
    let get = |h: &'static [(&'static str, &'static str)], q: Option<&[u8]>| {
        extract_token(&s, headers(h), q).map(|t| String::from_utf8(t.into_owned()).unwrap())
    };
    assert_eq!(get(&[("authorization", "bEaReR tok1")], None).as_deref(), Some("tok1"));
    assert_eq!(get(&[("authorization", "Basic dXNlcg=="), ("x-api-key", "k2")], None).as_deref(), Some("k2"));
    assert_eq!(get(&[("cookie", "theme=dark; lang=en; session=tok3; other=1")], None).as_deref(), Some("tok3"));
    assert_eq!(get(&[], Some(b"page=2&access_token=a%2Eb%2Ec")).as_deref(), Some("a.b.c"));
    // The first source present wins.
    assert_eq!(
        get(&[("cookie", "session=c"), ("authorization", "Bearer h")], Some(b"access_token=q")).as_deref(),
        Some("h")
    );
    assert_eq!(get(&[("cookie", "session=c")], Some(b"access_token=q")).as_deref(), Some("c"));
    assert_eq!(get(&[("authorization", "Bearer ")], None), None);
    assert_eq!(get(&[], None), None);
}

fn token_policy(identity: TokenIdentity) -> TokenPolicy {
    TokenPolicy { sources: sources(), identity, hash_key: None, jwt: None }
}

#[test]
fn identities() {
    let f = fixture();
    let by_token = token_policy(TokenIdentity::Token);
    let by_claims = token_policy(TokenIdentity::Claims(vec!["iss".into(), "sub".into()]));
    let key = b"per-envoy identity key";
    let t1 = f.keys.es.sign(good_claims()).unwrap();
    let mut refreshed = good_claims();
    refreshed.issued_at = Some(UnixTimeStamp::from_secs(NOW as u64));
    refreshed.expires_at = Some(UnixTimeStamp::from_secs(NOW as u64 + 900));
    let t2 = f.keys.es.sign(refreshed).unwrap();
    let (a1, a2) = (f.verifier.analyze(t1.as_bytes()), f.verifier.analyze(t2.as_bytes()));

    let id = identity(&by_token, key, t1.as_bytes(), Some(&a1));
    assert_eq!(id, identity(&by_token, key, t1.as_bytes(), Some(&a1)), "stable");
    assert_ne!(id, identity(&by_token, b"another key", t1.as_bytes(), Some(&a1)), "keyed");
    assert_ne!(id, identity(&by_token, key, t2.as_bytes(), Some(&a2)), "a refresh is a new token");
    assert_eq!(identity_hex(&id).len(), 32);

    let c1 = identity(&by_claims, key, t1.as_bytes(), Some(&a1));
    assert_eq!(c1, identity(&by_claims, key, t2.as_bytes(), Some(&a2)), "claims survive a refresh");
    assert_ne!(c1, id);
    // A forged token with the same iss/sub does not get that identity.
    let forged = mint(r#"{"alg":"none"}"#, &claims_json(""), |_| vec![]);
    let af = f.verifier.analyze(forged.as_bytes());
    assert_eq!(af.claim("sub"), Some("user-42"));
    assert_ne!(c1, identity(&by_claims, key, forged.as_bytes(), Some(&af)));
    assert_eq!(
        identity(&by_claims, key, forged.as_bytes(), Some(&af)),
        identity(&by_token, key, forged.as_bytes(), Some(&af))
    );
    // A missing claim, or no analysis, falls back to the token.
    let by_email = token_policy(TokenIdentity::Claims(vec!["email".into()]));
    assert_eq!(identity(&by_email, key, t1.as_bytes(), Some(&a1)), id);
    assert_eq!(identity(&by_claims, key, t1.as_bytes(), None), id);
}

#[test]
fn cache_is_bounded_and_keyed_by_the_whole_token() {
    let f = fixture();
    let t1 = f.keys.es.sign(good_claims()).unwrap();
    let a1 = f.verifier.analyze(t1.as_bytes());
    let mut cache = AnalysisCache::new(1024);
    assert!(cache.get(t1.as_bytes()).is_none());
    let stored = cache.insert(t1.as_bytes(), a1.clone());
    let hit = cache.get(t1.as_bytes()).unwrap();
    assert!(Rc::ptr_eq(&stored, &hit));
    assert_eq!(*hit, a1);
    // Same claims, another signature: another token, a miss (a forged copy cannot borrow a good analysis).
    let parts: Vec<&str> = t1.split('.').collect();
    let forged = format!("{}.{}.{}", parts[0], parts[1], b64(&[1; 64]));
    assert!(cache.get(forged.as_bytes()).is_none());

    let filler: TokenAnalysis = f.verifier.analyze(b"opaque");
    for i in 0..100_000u32 {
        cache.insert(&i.to_le_bytes(), filler.clone());
        if i == 500 {
            // Read often, the first token survives the flood (CLOCK gives it a second chance each round).
            assert!(cache.get(t1.as_bytes()).is_some());
        }
        assert!(cache.len() <= 1024);
    }
    assert_eq!(cache.len(), 1024);
    assert_eq!(cache.capacity(), 1024);
    let mut off = AnalysisCache::new(0);
    off.insert(b"x", filler);
    assert!(off.is_empty() && off.get(b"x").is_none());
}

/// xorshift64*: a fixed sequence, the same on every target.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn arbitrary_bytes_never_panic() {
    let f = fixture();
    // HMAC keys only and a short weak list keep 10k analyses fast under Wasmtime.
    let mut p = f.policy.clone();
    p.jwks = format!(r#"{{"keys":[{{"kty":"oct","kid":"hs","k":"{}"}}]}}"#, b64(HS_SECRET));
    p.weak_secrets = vec!["secret".into()];
    let verifier = JwtVerifier::new(&p).unwrap();
    let seed = f.keys.hs.authenticate(good_claims()).unwrap().into_bytes();
    let alphabet = b"eyJ.-_=%; \"{}[]:,aAzZ09\0\xff";
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let s = sources();
    for i in 0..10_000 {
        let mut input = if i % 2 == 0 { seed.clone() } else { Vec::new() };
        for _ in 0..rng.below(8) {
            let byte = if rng.below(2) == 0 { alphabet[rng.below(alphabet.len())] } else { rng.next() as u8 };
            match rng.below(3) {
                0 if !input.is_empty() => {
                    let at = rng.below(input.len());
                    input[at] = byte;
                }
                1 => input.insert(rng.below(input.len() + 1), byte),
                _ => input.truncate(rng.below(input.len() + 1)),
            }
        }
        if i % 2 == 1 {
            input.extend((0..rng.below(64)).map(|_| alphabet[rng.below(alphabet.len())]));
        }
        let analysis = verifier.analyze(&input);
        let _ = analysis.findings_at(&p, rng.next() as i64);
        let _ = analysis.claim("sub");
        let header = |name: &[u8]| {
            (name == b"authorization" || name == b"cookie" || name == b"x-api-key").then(|| Cow::Borrowed(&input[..]))
        };
        let _ = extract_token(&s, header, Some(&input));
    }
}

#[test]
fn a_correctly_signed_jwt_over_16_kib_is_too_large_not_forged() {
    let f = fixture();
    let padding = format!(r#""pad":"{}""#, "x".repeat(MAX_TOKEN_BYTES));
    let token = mint(r#"{"alg":"ES256","kid":"es"}"#, &claims_json(&padding), es_sign(&f.keys));
    assert!(token.len() > MAX_TOKEN_BYTES);
    let analysis = f.verifier.analyze(token.as_bytes());
    assert_eq!(analysis.kind, TokenKind::Jwt);
    assert_eq!(f.findings(&token), vec![TooLarge], "neither malformed nor a bad signature");
    assert!(!analysis.is_authentic(), "never read, so never believed");
    // Just under the limit, the same kind of token is read and verified.
    let fits = format!(r#""pad":"{}""#, "x".repeat(MAX_TOKEN_BYTES / 2));
    let token = mint(r#"{"alg":"ES256","kid":"es"}"#, &claims_json(&fits), es_sign(&f.keys));
    assert!(token.len() <= MAX_TOKEN_BYTES);
    assert_eq!(f.findings(&token), vec![]);
    // Not JWT-shaped and long: opaque, as before.
    assert_eq!(f.verifier.analyze("A".repeat(20_000).as_bytes()).kind, TokenKind::Opaque);
}

#[test]
fn cheap_checks_decide_before_any_signature_work() {
    let f = fixture();
    let now_ms = NOW as u64 * 1_000;
    // A budget of nothing: only tokens that need a signature are affected.
    let mut spent = VerificationBudget::new(0);
    let good = f.keys.es.sign(good_claims()).unwrap();
    let unverified = f.verifier.analyze_within(good.as_bytes(), now_ms, &mut spent);
    assert_eq!(unverified.findings.iter().collect::<Vec<_>>(), vec![Unverified]);
    assert!(!unverified.is_authentic());
    let parts: Vec<&str> = good.split('.').collect();
    let decided = [
        (format!("{}.{}.{}", b64(br#"{"alg":"ES256","kid":"nope"}"#), parts[1], parts[2]), UnknownKey),
        (format!("{}.{}.{}", b64(br#"{"alg":"PS256","kid":"rs"}"#), parts[1], parts[2]), AlgNotAllowed),
        (format!("{}.{}.{}", parts[0], parts[1], &parts[2][1..]), Malformed),
        (format!("{}.{}.{}", parts[0], parts[1], b64(&[0; 64])), PsychicSignature),
    ];
    let mut only_es = f.policy.clone();
    only_es.allowed_algs = vec!["ES256".into(), "RS256".into()];
    let verifier = JwtVerifier::new(&only_es).unwrap();
    for (token, reason) in &decided {
        let analysis = verifier.analyze_within(token.as_bytes(), now_ms, &mut spent);
        let found: Vec<_> = analysis.findings.iter().collect();
        assert!(found.contains(reason) && found.contains(&BadSignature), "{reason:?}: {found:?}");
        assert!(!found.contains(&Unverified), "decided without the budget: {found:?}");
    }
    // Outside the validity window: no signature work, whatever the budget.
    let mut full = VerificationBudget::new(1);
    let expired_at = (NOW as u64 + 3_600) * 1_000;
    let analysis = f.verifier.analyze_within(good.as_bytes(), expired_at, &mut full);
    assert!(analysis.findings.contains(Unverified) && analysis.findings_at(&f.policy, NOW + 3_600).contains(Expired));
    let early = (NOW as u64 - 3_600) * 1_000;
    assert!(f.verifier.analyze_within(good.as_bytes(), early, &mut full).findings.contains(Unverified));
    assert!(full.try_spend(expired_at), "neither spent the budget");
    // Within the window and the budget, the same token verifies.
    let mut one = VerificationBudget::new(1);
    assert!(f.verifier.analyze_within(good.as_bytes(), now_ms, &mut one).is_authentic());
}
