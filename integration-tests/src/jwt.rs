//! JWTs for the token tests and the benchmark: signing keys, their public JWKS for a policy (or Envoy's
//! `jwt_authn`), valid tokens, and forgeries built by hand.
//!
//! # Overview
//!
//! [`TokenKeys`] holds an ES256 key pair, generated afresh, and an RS256 key pair read from a test-only fixture
//! (`integration-tests/fixtures/rsa-2048-test-key.pem`: generating 2048-bit RSA keys in pure Rust takes long in a
//! debug build). [`TokenKeys::jwks`] is their public half as a JWKS document, each key with its `kid` and `alg`.
//!
//! Valid tokens are signed over exactly the header and claims given ([`TokenKeys::es256`], [`TokenKeys::rs256`]);
//! forgeries are assembled from parts with [`compact`], [`hs256`] (any secret, the empty one included) and
//! [`es256_signed_by`] (any header, any EC key: an attacker's embedded JWK, say). [`claims`] builds the usual
//! claims for [`ISSUER`] and [`AUDIENCE`].
//!
//! # Example
//!
//! ```no_run
//! use portcullis_integration_tests::jwt::{claims, unix_now, TokenKeys};
//!
//! let keys = TokenKeys::new();
//! let token = keys.es256(&claims("alice", "t-1", unix_now(), 3600));
//! assert_eq!(token.split('.').count(), 3);
//! println!("{}", keys.jwks());
//! ```

use std::time::{SystemTime, UNIX_EPOCH};

use jwt_simple::prelude::*;
use p256::ecdsa::signature::Signer as _;
use serde_json::Value;

/// The issuer of every token minted here, and the one policies accept.
pub const ISSUER: &str = "https://auth.example.com";

/// The audience of every token minted here, and the one policies accept.
pub const AUDIENCE: &str = "orders-api";

/// The `kid` of the ES256 key.
pub const ES256_KID: &str = "es256-test";

/// The `kid` of the RS256 key.
pub const RS256_KID: &str = "rs256-test";

/// A 2048-bit RSA private key for tests only (PKCS#8 PEM), never used anywhere else.
const TEST_RSA_KEY_PEM: &str = include_str!("../fixtures/rsa-2048-test-key.pem");

/// The signing keys tokens are minted with, and their public JWKS.
pub struct TokenKeys {
    es256: ES256KeyPair,
    rs256: RS256KeyPair,
}

impl Default for TokenKeys {
    fn default() -> Self {
        Self::new()
    }
}

impl TokenKeys {
    /// A fresh ES256 key pair ([`ES256_KID`]) and the fixture RS256 key pair ([`RS256_KID`]).
    ///
    /// # Panics
    ///
    /// If the RSA fixture does not load.
    pub fn new() -> Self {
        let rs256 = RS256KeyPair::from_pem(TEST_RSA_KEY_PEM)
            .unwrap_or_else(|e| panic!("the RSA test key fixture does not load: {e}"))
            .with_key_id(RS256_KID);
        Self { es256: ES256KeyPair::generate().with_key_id(ES256_KID), rs256 }
    }

    /// The public ES256 key as a JWK (`kty: EC`, `crv: P-256`, `kid`, `alg: ES256`).
    pub fn es256_public_jwk(&self) -> Value {
        public_jwk(&self.es256.public_key().to_jwk())
    }

    /// The public RS256 key as a JWK (`kty: RSA`, `n`, `e`, `kid`, `alg: RS256`).
    pub fn rs256_public_jwk(&self) -> Value {
        public_jwk(&self.rs256.public_key().to_jwk())
    }

    /// `{"keys": [ES256 public JWK, RS256 public JWK]}`.
    pub fn jwks(&self) -> Value {
        serde_json::json!({ "keys": [self.es256_public_jwk(), self.rs256_public_jwk()] })
    }

    /// The RSA public key as PEM: what an RS256→HS256 key-confusion attacker uses as the HMAC secret.
    ///
    /// # Panics
    ///
    /// If jwt-simple cannot encode it.
    pub fn rsa_public_pem(&self) -> String {
        self.rs256.public_key().to_pem().unwrap_or_else(|e| panic!("RSA public key to PEM: {e}"))
    }

    /// `claims` signed with the ES256 key, header `{"alg":"ES256","typ":"JWT","kid":ES256_KID}`.
    pub fn es256(&self, claims: &Value) -> String {
        let header = serde_json::json!({ "alg": "ES256", "typ": "JWT", "kid": ES256_KID });
        es256_signed_by(&self.es256, &header, claims)
    }

    /// `claims` signed with the ES256 key under any `header` (which should say `ES256`).
    pub fn es256_with_header(&self, header: &Value, claims: &Value) -> String {
        es256_signed_by(&self.es256, header, claims)
    }

    /// `claims` signed with the RS256 key, header `{"typ":"JWT","alg":"RS256","kid":RS256_KID}` (as jwt-simple
    /// writes it).
    ///
    /// # Panics
    ///
    /// If `claims` is not an object of valid claims (`iat`, `exp`, `nbf` numbers; `aud` a string or strings), or
    /// signing fails.
    pub fn rs256(&self, claims: &Value) -> String {
        let claims: JWTClaims<serde_json::Map<String, Value>> =
            serde_json::from_value(claims.clone()).unwrap_or_else(|e| panic!("claims for jwt-simple: {e}: {claims}"));
        self.rs256.sign(claims).unwrap_or_else(|e| panic!("RS256 signing: {e}"))
    }
}

/// A public JWK exported by jwt-simple, as JSON.
fn public_jwk(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("jwt-simple exported a JWK that is not JSON ({e}): {text}"))
}

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The claims of a token for `subject` from [`ISSUER`] to [`AUDIENCE`], issued at `issued_at` and valid for
/// `lifetime` seconds, with `jti` `token_id` (distinct ids make distinct tokens).
pub fn claims(subject: &str, token_id: &str, issued_at: i64, lifetime: i64) -> Value {
    serde_json::json!({
        "iss": ISSUER,
        "sub": subject,
        "aud": AUDIENCE,
        "iat": issued_at,
        "nbf": issued_at,
        "exp": issued_at + lifetime,
        "jti": token_id,
    })
}

/// Unpadded base64url (RFC 4648 §5), the encoding of every JWS segment.
pub fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
        }
    }
    out
}

/// The signing input of a compact JWS: `base64url(header) "." base64url(claims)`.
pub fn signing_input(header: &Value, claims: &Value) -> String {
    format!("{}.{}", base64url(header.to_string().as_bytes()), base64url(claims.to_string().as_bytes()))
}

/// A compact JWS from its parts: `base64url(header) "." base64url(claims) "." base64url(signature)`.
pub fn compact(header: &Value, claims: &Value, signature: &[u8]) -> String {
    format!("{}.{}", signing_input(header, claims), base64url(signature))
}

/// `header` and `claims` signed with HMAC-SHA256 under `secret`, whatever it is (the empty secret, a weak one, a
/// public key's PEM): the header should say `HS256`.
pub fn hs256(header: &Value, claims: &Value, secret: &[u8]) -> String {
    let input = signing_input(header, claims);
    let mac = hmac_sha256::HMAC::mac(input.as_bytes(), secret);
    format!("{input}.{}", base64url(&mac))
}

/// `header` and `claims` signed with ES256 by `key` (the header should say `ES256`).
///
/// # Panics
///
/// If the key's bytes are not a P-256 scalar (they always are for a generated key).
pub fn es256_signed_by(key: &ES256KeyPair, header: &Value, claims: &Value) -> String {
    let input = signing_input(header, claims);
    let signing_key = p256::ecdsa::SigningKey::from_slice(&key.to_bytes())
        .unwrap_or_else(|e| panic!("ES256 key pair to a P-256 signing key: {e}"));
    let signature: p256::ecdsa::Signature = signing_key.sign(input.as_bytes());
    format!("{input}.{}", base64url(&signature.to_bytes()))
}

/// `token` with one character in the middle of its signature changed: the same header and claims, a signature
/// that no longer verifies.
///
/// # Panics
///
/// If `token` has no signature segment of at least two characters.
pub fn tamper_signature(token: &str) -> String {
    let at = token.rfind('.').unwrap_or_else(|| panic!("not a compact JWS: {token}")) + 1;
    let middle = at + (token.len() - at) / 2;
    assert!(middle < token.len(), "no signature to tamper with: {token}");
    let mut bytes = token.as_bytes().to_vec();
    bytes[middle] = if bytes[middle] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).unwrap_or_else(|_| unreachable!("base64url is ASCII"))
}

/// The last segment of a compact JWS (its signature, as sent).
pub fn signature_segment(token: &str) -> &str {
    token.rsplit('.').next().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_is_unpadded_rfc_4648() {
        assert_eq!(base64url(b""), "");
        assert_eq!(base64url(b"f"), "Zg");
        assert_eq!(base64url(b"fo"), "Zm8");
        assert_eq!(base64url(b"foo"), "Zm9v");
        assert_eq!(base64url(b"foob"), "Zm9vYg");
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
        assert_eq!(base64url(br#"{"alg":"none"}"#), "eyJhbGciOiJub25lIn0");
    }

    #[test]
    fn minted_tokens_verify_with_jwt_simple() {
        let keys = TokenKeys::new();
        let now = unix_now();
        let claims = claims("alice", "t-1", now, 600);
        let es = keys.es256(&claims);
        let rs = keys.rs256(&claims);
        let options = VerificationOptions {
            allowed_issuers: Some(HashSet::from_strings(&[ISSUER])),
            allowed_audiences: Some(HashSet::from_strings(&[AUDIENCE])),
            ..Default::default()
        };
        let es_pk = ES256PublicKey::from_jwk(&keys.es256_public_jwk().to_string()).unwrap();
        let decoded = es_pk.verify_token::<NoCustomClaims>(&es, Some(options.clone())).unwrap();
        assert_eq!(decoded.subject.as_deref(), Some("alice"));
        let rs_pk = RS256PublicKey::from_jwk(&keys.rs256_public_jwk().to_string()).unwrap();
        let decoded = rs_pk.verify_token::<NoCustomClaims>(&rs, Some(options.clone())).unwrap();
        assert_eq!(decoded.jwt_id.as_deref(), Some("t-1"));
        assert!(es_pk.verify_token::<NoCustomClaims>(&tamper_signature(&es), Some(options.clone())).is_err());
        assert!(rs_pk.verify_token::<NoCustomClaims>(&tamper_signature(&rs), Some(options)).is_err());
        let jwks = keys.jwks();
        assert_eq!(jwks["keys"][0]["kid"], ES256_KID);
        assert_eq!(jwks["keys"][0]["alg"], "ES256");
        assert_eq!(jwks["keys"][1]["kid"], RS256_KID);
        assert_eq!(jwks["keys"][1]["alg"], "RS256");
        assert!(jwks["keys"][1].get("d").is_none(), "public keys only: {jwks}");
    }

    #[test]
    fn hs256_matches_jwt_simple() {
        let secret = b"a-strong-secret-of-32-bytes-long!";
        let header = serde_json::json!({ "alg": "HS256", "typ": "JWT" });
        let claims = claims("bob", "t-2", unix_now(), 600);
        let token = hs256(&header, &claims, secret);
        let key = HS256Key::from_bytes(secret);
        let decoded = key.verify_token::<NoCustomClaims>(&token, None).unwrap();
        assert_eq!(decoded.subject.as_deref(), Some("bob"));
        assert_eq!(signature_segment(&token).len(), 43);
    }
}
