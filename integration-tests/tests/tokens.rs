//! Tokens, end to end: JWTs minted by the tests themselves (ES256 and RS256 keys made at start, their public JWKS in
//! the policy), valid ones passing with a stable caller identity, and forgeries, stale and misaddressed tokens
//! blocked with the rule's status and the analysis' findings in the access log.
//!
//! Each test starts its own stack (two workers) and publishes [`policy`] (or the HS256 variant). A `canary` rule
//! that needs no token tells when every worker enforces the bundle. Every test ends by checking that no token it
//! sent (nor its signature segment) shows up in Envoy's log or the access log: the verdict names a token by a keyed
//! hash only.

use std::time::Duration;

use jwt_simple::prelude::ES256KeyPair;
use portcullis_integration_tests::jwt::{
    base64url, claims, compact, es256_signed_by, hs256, signature_segment, tamper_signature, unix_now, TokenKeys,
    AUDIENCE, ES256_KID, ISSUER, RS256_KID,
};
use portcullis_integration_tests::{
    assert_field, compile, plugin_config, Envoy, EnvoyConfig, HttpResponse, Stack, Verdict,
};
use serde_json::{json, Value};

/// The revision every test publishes.
const REVISION: u64 = 5;

/// How long a pushed bundle may take to be enforced by every worker (a poll, plus a backoff, with margin).
const ENFORCEMENT_TIMEOUT: Duration = Duration::from_secs(15);

/// A token lifetime well inside the policy's `max_lifetime` (24h).
const HOUR: i64 = 3600;

/// The HMAC key of the HS256 policy: strong, and in no weak-secret list.
const STRONG_SECRET: &[u8] = b"portcullis-hs256-test-secret-0123456789abcdef";

/// The `kid` of the HS256 policy's key.
const HS256_KID: &str = "hs256-test";

/// The identity key the HS256 stack gives the filter in its plugin configuration (`token_hash_key`).
const TOKEN_HASH_KEY: &str = "token-hash-key-for-the-tests-0001";

/// The rules of the issue, after a `canary`, with two monitors at the end so that a valid token (`seen-token`) and
/// a request without one (`no-token`) leave a verdict line to read.
const RULES: &str = r#"rules:
  - id: canary
    when: request.path == "/canary"
    action: block
    status: 403
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
  - id: seen-token
    when: token.present
    action: monitor
  - id: no-token
    when: "!token.present && request.path.startsWith(\"/anon\")"
    action: monitor
"#;

/// The policy of the issue with `keys` (a JWKS document) as its keys.
fn policy(jwks: &Value) -> String {
    format!(
        r#"version: 1
tokens:
  sources: [ {{ header: authorization, scheme: Bearer }}, {{ cookie: session }} ]
  identity: claims(iss, sub)
  jwt:
    keys: {{ jwks: {jwks} }}
    allowed_algs: [ES256, RS256]
    issuers: [{ISSUER}]
    audiences: [{AUDIENCE}]
    max_lifetime: 24h
    clock_skew: 60s
    weak_secrets: builtin
{RULES}"#
    )
}

/// The same rules with one strong HS256 key: what an HMAC-signed token with a weak secret is judged against.
fn hs256_policy() -> String {
    let jwks = json!({ "keys": [{ "kty": "oct", "kid": HS256_KID, "alg": "HS256", "k": base64url(STRONG_SECRET) }] });
    format!(
        r#"version: 1
tokens:
  sources: [ {{ header: authorization, scheme: Bearer }}, {{ cookie: session }} ]
  identity: claims(iss, sub)
  jwt:
    keys: {{ jwks: {jwks} }}
    allowed_algs: [HS256]
    issuers: [{ISSUER}]
    audiences: [{AUDIENCE}]
    max_lifetime: 24h
    clock_skew: 60s
    weak_secrets: builtin
{RULES}"#
    )
}

/// Publishes `policy` on a fresh stack started with `plugin` and waits until every worker enforces it.
fn stack_with(policy: &str, plugin: Value) -> Stack {
    let stack = Stack::start_with(EnvoyConfig::new(), plugin);
    let bundle = compile(policy, "demo", REVISION);
    stack.control_plane.push("demo", &bundle);
    stack.wait_for_status_on_every_worker("/canary", &[], 403, ENFORCEMENT_TIMEOUT);
    stack
}

/// Every token a test sent, to look for in the logs at the end.
#[derive(Default)]
struct Sent(Vec<String>);

impl Sent {
    /// `GET path` with `authorization: Bearer token` and `x-request-id: id`.
    fn bearer(&mut self, envoy: &Envoy, path: &str, id: &str, token: &str) -> HttpResponse {
        self.0.push(token.to_string());
        envoy.get(path, &[("x-request-id", id), ("authorization", &format!("Bearer {token}"))])
    }

    /// `GET path` with the token in cookie `session`, among others.
    fn cookie(&mut self, envoy: &Envoy, path: &str, id: &str, token: &str) -> HttpResponse {
        self.0.push(token.to_string());
        let cookie = format!("theme=dark; session={token}; consent=0");
        envoy.get(path, &[("x-request-id", id), ("cookie", &cookie)])
    }

    /// Asserts that no token sent (nor its signature segment, when it has one of some length) appears in Envoy's
    /// log or the access log.
    fn assert_never_logged(&self, envoy: &Envoy) {
        let logs = [
            ("envoy.log", envoy.log_text()),
            ("access.log", std::fs::read_to_string(envoy.dir().join("access.log")).unwrap_or_default()),
        ];
        assert!(!logs[1].1.is_empty(), "the access log should have lines");
        for token in &self.0 {
            let signature = signature_segment(token);
            for (name, text) in &logs {
                assert!(!text.contains(token.as_str()), "{name} contains a raw token");
                if signature.len() >= 16 {
                    assert!(!text.contains(signature), "{name} contains a token's signature segment");
                }
            }
        }
    }
}

/// The verdict's `token=`: present, 32 lower-case hex digits.
fn token_id(verdict: &Verdict) -> String {
    let id = verdict.get("token").cloned().unwrap_or_default();
    assert!(
        id.len() == 32 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "token= should be 32 lower-case hex digits: {verdict:?}"
    );
    id
}

/// Asserts a pass: 200 from the upstream, verdict `action=monitor rule=seen-token` without JWT findings. Returns
/// the token id.
fn assert_accepted(envoy: &Envoy, response: &HttpResponse, id: &str) -> String {
    assert_eq!(response.status, 200, "{id}: {} (verdict: {:?})", response.text(), envoy.verdict_for(id));
    assert_eq!(response.json()["upstream"], "ok", "{id}");
    let v = envoy.verdict(id);
    assert_field(&v, "action", Some("monitor"));
    assert_field(&v, "rule", Some("seen-token"));
    assert_field(&v, "jwt", None);
    assert_field(&v, "revision", Some(&REVISION.to_string()));
    token_id(&v)
}

/// Asserts a block by `rule` with `status`, the JSON error naming the rule and the request id, and exactly the JWT
/// findings `jwt` (names without the `jwt.` prefix, in the filter's order). Returns the token id.
fn assert_blocked(envoy: &Envoy, response: &HttpResponse, id: &str, rule: &str, status: u16, jwt: &str) -> String {
    assert_eq!(response.status, status, "{id}: {} (verdict: {:?})", response.text(), envoy.verdict_for(id));
    let body = response.json();
    assert_eq!(body["error"], "request blocked by policy", "{id}: {body}");
    assert_eq!(body["rule"], rule, "{id}: {body}");
    assert_eq!(body["request_id"], id, "{id}: {body}");
    let v = envoy.verdict(id);
    assert_field(&v, "action", Some("block"));
    assert_field(&v, "rule", Some(rule));
    assert_field(&v, "status", Some(&status.to_string()));
    assert_field(&v, "jwt", Some(jwt));
    assert_field(&v, "revision", Some(&REVISION.to_string()));
    token_id(&v)
}

/// The standard header of an ES256 token signed with the policy's key.
fn es256_header() -> Value {
    json!({ "alg": "ES256", "typ": "JWT", "kid": ES256_KID })
}

/// `token.id` as the filter computes it for `identity: claims(iss, sub)` under `key`: HMAC-SHA256 of a domain
/// string and the length-prefixed parts, cut to 16 bytes (`policies/src/token_analysis/identity.rs`).
fn expected_claims_identity(key: &[u8], iss: &str, sub: &str) -> String {
    let mut message = b"portcullis token identity v1\0".to_vec();
    for part in ["claims", "iss", iss, "sub", sub] {
        message.extend_from_slice(&(part.len() as u64).to_be_bytes());
        message.extend_from_slice(part.as_bytes());
    }
    let mac = hmac_sha256::HMAC::mac(&message, key);
    mac[..16].iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn valid_tokens_pass_with_a_stable_caller_identity() {
    let keys = TokenKeys::new();
    let stack = stack_with(&policy(&keys.jwks()), plugin_config("demo", "open"));
    let envoy = &stack.envoy;
    let mut sent = Sent::default();
    let now = unix_now();

    // ES256, twice (new connections, so possibly on both workers): accepted, and named alike.
    let alice = keys.es256(&claims("alice", "a-1", now, HOUR));
    let first = sent.bearer(envoy, "/orders", "v-es-1", &alice);
    let alice_id = assert_accepted(envoy, &first, "v-es-1");
    let again = sent.bearer(envoy, "/orders", "v-es-2", &alice);
    assert_eq!(assert_accepted(envoy, &again, "v-es-2"), alice_id, "the same token, the same id");

    // A refreshed token (new jti, iat, exp) for the same iss/sub keeps the id: identity is claims(iss, sub).
    let refreshed = keys.es256(&claims("alice", "a-2", now - 30, 2 * HOUR));
    assert_ne!(refreshed, alice);
    let response = sent.bearer(envoy, "/orders", "v-es-refreshed", &refreshed);
    assert_eq!(assert_accepted(envoy, &response, "v-es-refreshed"), alice_id, "a refresh keeps the caller");

    // RS256: accepted; the same iss/sub, the same caller, whatever the key.
    let alice_rs = keys.rs256(&claims("alice", "a-3", now, HOUR));
    let response = sent.bearer(envoy, "/orders", "v-rs-1", &alice_rs);
    assert_eq!(assert_accepted(envoy, &response, "v-rs-1"), alice_id, "RS256 with the same iss/sub");
    let bob_rs = keys.rs256(&claims("bob", "b-1", now, HOUR));
    let response = sent.bearer(envoy, "/orders", "v-rs-bob", &bob_rs);
    let bob_id = assert_accepted(envoy, &response, "v-rs-bob");
    assert_ne!(bob_id, alice_id, "another subject is another caller");

    // In a cookie, the same token works like in the header (the first source present wins).
    let response = sent.cookie(envoy, "/orders", "v-cookie", &alice);
    assert_eq!(assert_accepted(envoy, &response, "v-cookie"), alice_id, "cookie-carried token");

    // A forged token claiming alice's iss/sub does not get her identity: unverified claims name nobody.
    let forged = compact(&json!({ "alg": "none" }), &claims("alice", "a-x", now, HOUR), b"");
    let response = sent.bearer(envoy, "/orders", "v-forged-alice", &forged);
    let forged_id = assert_blocked(
        envoy,
        &response,
        "v-forged-alice",
        "forged-token",
        401,
        "alg_none,empty_signature,alg_not_allowed,bad_signature",
    );
    assert_ne!(forged_id, alice_id, "a forged token must not take its claimed subject's identity");

    // No token: token.present is false and the request passes.
    let response = envoy.get("/anon/catalog", &[("x-request-id", "v-none")]);
    assert_eq!(response.status, 200, "{}", response.text());
    let v = envoy.verdict("v-none");
    assert_field(&v, "action", Some("monitor"));
    assert_field(&v, "rule", Some("no-token"));
    assert_field(&v, "token", None);
    assert_field(&v, "jwt", None);
    let response = envoy.get("/orders", &[("x-request-id", "v-none-quiet")]);
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(envoy.verdict_for("v-none-quiet"), None, "no token, no rule matched: no verdict");

    // 200 requests with one token, on keep-alive connections: all pass (the per-VM cache answers all but the first
    // of each worker; the filter exposes no cache stat to prove it).
    let mut client = envoy.client();
    let bearer = format!("Bearer {alice}");
    for i in 0..200 {
        let response = client.get("/orders", &[("authorization", &bearer)]);
        assert_eq!(response.status, 200, "request {i}: {}", response.text());
    }
    assert_eq!(stack.upstream.requests_for("/orders"), 207);

    sent.assert_never_logged(envoy);
    envoy.assert_no_critical_wasm();
}

#[test]
fn forged_tokens_are_blocked() {
    let keys = TokenKeys::new();
    let stack = stack_with(&policy(&keys.jwks()), plugin_config("demo", "open"));
    let envoy = &stack.envoy;
    let mut sent = Sent::default();
    let now = unix_now();
    let good = claims("mallory", "f-1", now, HOUR);
    let upstream_before = stack.upstream.requests();

    // (request id, token, expected findings): all blocked by `forged-token` with 401.
    let attacker = ES256KeyPair::generate();
    let attacker_jwk: Value = serde_json::from_str(&attacker.public_key().to_jwk()).unwrap();
    let genuine = keys.es256(&good);
    let mut tampered_claims = good.clone();
    tampered_claims["sub"] = json!("admin");
    let genuine_head = genuine.split('.').next().unwrap();
    let genuine_signature = signature_segment(&genuine);
    let tampered = format!("{genuine_head}.{}.{genuine_signature}", base64url(tampered_claims.to_string().as_bytes()));
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "f-alg-none",
            compact(&json!({ "alg": "none", "typ": "JWT" }), &good, b""),
            "alg_none,empty_signature,alg_not_allowed,bad_signature",
        ),
        (
            "f-alg-None",
            compact(&json!({ "alg": "None", "typ": "JWT" }), &good, b""),
            "alg_none,empty_signature,alg_not_allowed,bad_signature",
        ),
        ("f-empty-signature", compact(&es256_header(), &good, b""), "empty_signature,bad_signature"),
        (
            // HS256 with the empty secret, no kid: every configured key is asymmetric, so also key confusion.
            "f-blank-hmac",
            hs256(&json!({ "alg": "HS256", "typ": "JWT" }), &good, b""),
            "alg_not_allowed,bad_signature,key_confusion,weak_secret",
        ),
        (
            // RS256 -> HS256: the RSA public key's PEM as the HMAC secret, under the RSA key's kid.
            "f-key-confusion",
            hs256(&json!({ "alg": "HS256", "typ": "JWT", "kid": RS256_KID }), &good, keys.rsa_public_pem().as_bytes()),
            "alg_not_allowed,bad_signature,key_confusion",
        ),
        (
            // The attacker's own EC key embedded in the header, and the token signed with it.
            "f-embedded-jwk",
            es256_signed_by(&attacker, &json!({ "alg": "ES256", "typ": "JWT", "jwk": attacker_jwk }), &good),
            "bad_signature,embedded_key",
        ),
        (
            // CVE-2022-21449: r = s = 0.
            "f-psychic",
            compact(&es256_header(), &good, &[0; 64]),
            "bad_signature,psychic_signature",
        ),
        ("f-tampered-claims", tampered, "bad_signature"),
        ("f-tampered-signature", tamper_signature(&genuine), "bad_signature"),
        (
            // Claims that are not JSON: malformed; with no `exp` to read, the time checks fire too.
            "f-garbage",
            "eyJhbGciOiJFUzI1NiJ9.bm90IGpzb24.AAAA".to_string(),
            "malformed,bad_signature,missing_exp,lifetime_too_long",
        ),
    ];
    let mut ids = Vec::new();
    for (id, token, findings) in &cases {
        let response = sent.bearer(envoy, "/orders", id, token);
        ids.push(assert_blocked(envoy, &response, id, "forged-token", 401, findings));
    }
    // The same forgery in a cookie is blocked alike.
    let response = sent.cookie(envoy, "/orders", "f-alg-none-cookie", &cases[0].1);
    let cookie_id = assert_blocked(envoy, &response, "f-alg-none-cookie", "forged-token", 401, cases[0].2);
    assert_eq!(cookie_id, ids[0], "the same token, from the header or the cookie, has the same id");
    assert_eq!(stack.upstream.requests(), upstream_before, "no forged token reached the upstream");

    // The genuine token the forgeries started from passes.
    let response = sent.bearer(envoy, "/orders", "f-genuine", &genuine);
    assert_accepted(envoy, &response, "f-genuine");

    sent.assert_never_logged(envoy);
    envoy.assert_no_critical_wasm();
}

#[test]
fn stale_and_misaddressed_tokens_are_blocked() {
    let keys = TokenKeys::new();
    let stack = stack_with(&policy(&keys.jwks()), plugin_config("demo", "open"));
    let envoy = &stack.envoy;
    let mut sent = Sent::default();
    let now = unix_now();

    // Expired an hour ago, well past the 60 s skew.
    let expired = keys.es256(&claims("carol", "s-1", now - 3 * HOUR, HOUR));
    let response = sent.bearer(envoy, "/orders", "s-expired", &expired);
    // Outside its window, a token's signature is not checked: `unverified` says so (and costs nothing).
    assert_blocked(envoy, &response, "s-expired", "stale-token", 401, "expired,unverified");
    let expired_rs = keys.rs256(&claims("carol", "s-2", now - 3 * HOUR, HOUR));
    let response = sent.bearer(envoy, "/orders", "s-expired-rs", &expired_rs);
    assert_blocked(envoy, &response, "s-expired-rs", "stale-token", 401, "expired,unverified");

    // Expired 30 s ago: within the skew, accepted.
    let just = keys.es256(&claims("carol", "s-3", now - HOUR - 30, HOUR));
    let response = sent.bearer(envoy, "/orders", "s-within-skew", &just);
    assert_accepted(envoy, &response, "s-within-skew");

    // No exp at all; a lifetime of two days.
    let mut no_exp = claims("carol", "s-4", now, HOUR);
    no_exp.as_object_mut().unwrap().remove("exp");
    let response = sent.bearer(envoy, "/orders", "s-no-exp", &keys.es256(&no_exp));
    assert_blocked(envoy, &response, "s-no-exp", "stale-token", 401, "missing_exp,lifetime_too_long");
    let long = keys.es256(&claims("carol", "s-5", now, 48 * HOUR));
    let response = sent.bearer(envoy, "/orders", "s-too-long", &long);
    assert_blocked(envoy, &response, "s-too-long", "stale-token", 401, "lifetime_too_long");

    // Valid signature, wrong audience or issuer: 403.
    let mut other_audience = claims("carol", "s-6", now, HOUR);
    other_audience["aud"] = json!("billing-api");
    let response = sent.bearer(envoy, "/orders", "s-audience", &keys.es256(&other_audience));
    assert_blocked(envoy, &response, "s-audience", "wrong-audience", 403, "audience_mismatch");
    let mut audiences = other_audience.clone();
    audiences["aud"] = json!(["billing-api", AUDIENCE]);
    let response = sent.bearer(envoy, "/orders", "s-audiences", &keys.es256(&audiences));
    assert_accepted(envoy, &response, "s-audiences");
    let mut other_issuer = claims("carol", "s-7", now, HOUR);
    other_issuer["iss"] = json!("https://evil.example.com");
    let response = sent.bearer(envoy, "/orders", "s-issuer", &keys.rs256(&other_issuer));
    assert_blocked(envoy, &response, "s-issuer", "wrong-audience", 403, "issuer_mismatch");

    // A forged and expired token is judged forged first (rules in order).
    let forged_expired = compact(&json!({ "alg": "none" }), &claims("carol", "s-8", now - 3 * HOUR, HOUR), b"");
    let response = sent.bearer(envoy, "/orders", "s-forged-expired", &forged_expired);
    assert_blocked(
        envoy,
        &response,
        "s-forged-expired",
        "forged-token",
        401,
        "alg_none,empty_signature,alg_not_allowed,bad_signature,expired",
    );

    sent.assert_never_logged(envoy);
    envoy.assert_no_critical_wasm();
}

#[test]
fn weak_hmac_secrets_are_found() {
    let mut plugin = plugin_config("demo", "open");
    plugin["token_hash_key"] = json!(TOKEN_HASH_KEY);
    let stack = stack_with(&hs256_policy(), plugin);
    let envoy = &stack.envoy;
    let mut sent = Sent::default();
    let now = unix_now();
    let header = json!({ "alg": "HS256", "typ": "JWT", "kid": HS256_KID });

    // Signed with the policy's strong secret: accepted, and named by the plugin configuration's key.
    let dave = hs256(&header, &claims("dave", "w-1", now, HOUR), STRONG_SECRET);
    let response = sent.bearer(envoy, "/orders", "w-strong", &dave);
    let id = assert_accepted(envoy, &response, "w-strong");
    assert_eq!(
        id,
        expected_claims_identity(TOKEN_HASH_KEY.as_bytes(), ISSUER, "dave"),
        "token.id should be the claims' HMAC under the plugin's token_hash_key"
    );

    // Signed with "secret" (and with "your-256-bit-secret"): a weak secret, and not the configured key.
    for (i, secret) in ["secret", "your-256-bit-secret"].iter().enumerate() {
        let token = hs256(&header, &claims("dave", &format!("w-weak-{i}"), now, HOUR), secret.as_bytes());
        let request_id = format!("w-weak-{i}");
        let response = sent.bearer(envoy, "/orders", &request_id, &token);
        assert_blocked(envoy, &response, &request_id, "forged-token", 401, "bad_signature,weak_secret");
    }

    // An ES256 token against an HS256-only policy: an algorithm not allowed, with no key to verify it.
    let keys = TokenKeys::new();
    let es = keys.es256(&claims("dave", "w-es", now, HOUR));
    let response = sent.bearer(envoy, "/orders", "w-es256", &es);
    assert_blocked(envoy, &response, "w-es256", "forged-token", 401, "alg_not_allowed,bad_signature,unknown_key");

    sent.assert_never_logged(envoy);
    envoy.assert_no_critical_wasm();
}

/// [`policy`] with two more rules before the monitors: new tokens the VM had no budget to verify are answered 429
/// (retry later), and JWTs over 16 KiB 431.
fn bounded_policy(jwks: &Value) -> String {
    let rules = RULES.replace(
        "  - id: seen-token\n",
        "  - id: unverified-token
    when: detected(\"jwt.unverified\")
    action: block
    status: 429
  - id: oversized-token
    when: detected(\"jwt.too_large\")
    action: block
    status: 431
  - id: seen-token\n",
    );
    policy(jwks).replace(RULES, &rules)
}

#[test]
fn past_the_verification_budget_new_tokens_are_unverified_and_cached_ones_pass() {
    let keys = TokenKeys::new();
    // One worker, one verification a second: a burst of new tokens runs past the budget whatever the machine's
    // speed (it would have to last about as many seconds as it has tokens not to).
    let mut plugin = plugin_config("demo", "open");
    plugin["jwt_verifications_per_second"] = json!(1);
    let stack = Stack::start_with(EnvoyConfig::new().concurrency(1), plugin);
    stack.control_plane.push("demo", &compile(&bounded_policy(&keys.jwks()), "demo", REVISION));
    stack.wait_for_status_on_every_worker("/canary", &[], 403, ENFORCEMENT_TIMEOUT);
    let envoy = &stack.envoy;
    let mut sent = Sent::default();
    let now = unix_now();

    // A good token, verified once (within the budget, retried should a canary probe have spent it) and cached.
    let alice = keys.es256(&claims("alice", "a-1", now, HOUR));
    let mut attempt = 0;
    let first = loop {
        attempt += 1;
        let response = sent.bearer(envoy, "/orders", &format!("b-alice-{attempt}"), &alice);
        if response.status != 429 || attempt == 20 {
            break (response, format!("b-alice-{attempt}"));
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let alice_id = assert_accepted(envoy, &first.0, &first.1);

    // A burst of distinct well-formed tokens with bad signatures: a few are verified (bad_signature, 401), the
    // rest are judged without a signature (unverified, 429). None passes.
    let (mut verified, mut unverified) = (0, 0);
    for n in 0..30 {
        let forged = tamper_signature(&keys.es256(&claims("mallory", &format!("m-{n}"), now, HOUR)));
        let id = format!("b-forged-{n}");
        let response = sent.bearer(envoy, "/orders", &id, &forged);
        match response.status {
            401 => {
                assert_blocked(envoy, &response, &id, "forged-token", 401, "bad_signature");
                verified += 1;
            }
            429 => {
                assert_blocked(envoy, &response, &id, "unverified-token", 429, "unverified");
                unverified += 1;
            }
            other => panic!("{id}: a forged token got {other}: {}", response.text()),
        }
    }
    assert!(unverified > 0, "the budget should have run out: {verified} verified, {unverified} unverified");

    // The cached good token still passes with its identity, budget or not.
    let response = sent.bearer(envoy, "/orders", "b-alice-after", &alice);
    assert_eq!(assert_accepted(envoy, &response, "b-alice-after"), alice_id);
    sent.assert_never_logged(envoy);
}

#[test]
fn a_correctly_signed_jwt_over_16_kib_is_too_large_not_forged() {
    let keys = TokenKeys::new();
    let stack = stack_with(&bounded_policy(&keys.jwks()), plugin_config("demo", "open"));
    let envoy = &stack.envoy;
    let mut sent = Sent::default();
    let now = unix_now();
    let mut big = claims("alice", "big-1", now, HOUR);
    big["roles"] = json!("r".repeat(17 * 1024));
    let token = keys.es256(&big);
    assert!(token.len() > 16 * 1024);
    let response = sent.bearer(envoy, "/orders", "big-1", &token);
    assert_blocked(envoy, &response, "big-1", "oversized-token", 431, "too_large");
    // The same claims without the padding: accepted, so the size alone decided.
    let small = keys.es256(&claims("alice", "big-2", now, HOUR));
    let response = sent.bearer(envoy, "/orders", "big-2", &small);
    assert_accepted(envoy, &response, "big-2");
    sent.assert_never_logged(envoy);
}
