//! Verification keys: the JWKS parsed into jwt-simple keys, and signature-only verification with them.
//!
//! jwt-simple's `verify_token` judges a whole token (claims, times, `typ`, `crit`, minimum HMAC key length) and
//! reports the first problem. The analysis reports each problem as its own detection, so it verifies only the
//! signature, on the primitives under the keys jwt-simple built: a valid signature on an expired token is
//! `jwt.expired`, never `jwt.bad_signature`.

use std::fmt;

use ed25519_compact::Signature as Ed25519Signature;
use jwt_simple::algorithms::{
    ECDSAP256PublicKeyLike, ECDSAP384PublicKeyLike, ES256PublicKey, ES384PublicKey, Ed25519PublicKey,
    EdDSAPublicKeyLike, HS256Key, HS384Key, HS512Key, MACLike, RS256PublicKey, RSAPublicKeyLike,
};
use p256::ecdsa::signature::Verifier as _;
use serde_json::Value;
use superboring::hash::MessageDigest;
use superboring::pkey::{PKey, Public};
use superboring::rsa::Padding;

use super::codec::base64url_decode;
use super::p256_tables::P256Key;
use super::rsa::RsaKey;

/// A JWS algorithm the analysis can verify.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Alg {
    HS256,
    HS384,
    HS512,
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    EdDSA,
}

impl Alg {
    pub(crate) const ALL: [Alg; 12] = [
        Alg::HS256,
        Alg::HS384,
        Alg::HS512,
        Alg::RS256,
        Alg::RS384,
        Alg::RS512,
        Alg::PS256,
        Alg::PS384,
        Alg::PS512,
        Alg::ES256,
        Alg::ES384,
        Alg::EdDSA,
    ];

    /// The `alg` header value. `Ed25519` (RFC 9864's fully specified name) is read as `EdDSA`.
    pub(crate) fn from_name(name: &str) -> Option<Alg> {
        if name == "Ed25519" {
            return Some(Alg::EdDSA);
        }
        Alg::ALL.iter().copied().find(|a| a.name() == name)
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Alg::HS256 => "HS256",
            Alg::HS384 => "HS384",
            Alg::HS512 => "HS512",
            Alg::RS256 => "RS256",
            Alg::RS384 => "RS384",
            Alg::RS512 => "RS512",
            Alg::PS256 => "PS256",
            Alg::PS384 => "PS384",
            Alg::PS512 => "PS512",
            Alg::ES256 => "ES256",
            Alg::ES384 => "ES384",
            Alg::EdDSA => "EdDSA",
        }
    }

    pub(crate) fn is_hmac(self) -> bool {
        matches!(self, Alg::HS256 | Alg::HS384 | Alg::HS512)
    }

    fn bit(self) -> u16 {
        1 << (self as u8)
    }
}

/// A set of [`Alg`]s.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct AlgSet(u16);

impl AlgSet {
    pub(crate) fn of(algs: &[Alg]) -> AlgSet {
        AlgSet(algs.iter().fold(0, |acc, a| acc | a.bit()))
    }

    pub(crate) fn contains(self, alg: Alg) -> bool {
        self.0 & alg.bit() != 0
    }

    pub(crate) fn union(self, other: AlgSet) -> AlgSet {
        AlgSet(self.0 | other.0)
    }
}

const HMAC_ALGS: [Alg; 3] = [Alg::HS256, Alg::HS384, Alg::HS512];
const RSA_ALGS: [Alg; 6] = [Alg::RS256, Alg::RS384, Alg::RS512, Alg::PS256, Alg::PS384, Alg::PS512];

/// Why a JWKS was refused. The message names the key (position and `kid`) and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JwksError {
    message: String,
}

impl JwksError {
    fn document(reason: &str) -> JwksError {
        JwksError { message: format!("invalid JWKS: {reason}") }
    }

    fn key(index: usize, kid: Option<&str>, reason: &str) -> JwksError {
        let message = match kid {
            Some(kid) => format!("invalid JWKS: key {index} (kid {kid:?}): {reason}"),
            None => format!("invalid JWKS: key {index}: {reason}"),
        };
        JwksError { message }
    }
}

impl JwksError {
    pub(crate) fn unsupported_alg(name: &str) -> JwksError {
        let reason = if name.eq_ignore_ascii_case("none") { "is never allowed" } else { "is not supported" };
        JwksError {
            message: format!("allowed_algs: {name:?} {reason} (supported: {})", super::SUPPORTED_ALGS.join(", ")),
        }
    }
}

impl fmt::Display for JwksError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for JwksError {}

/// The key material, in the form jwt-simple parsed and validated it.
enum Material {
    Hmac(Vec<u8>),
    /// RS* on [`RsaKey`] (prepared once), PS* on superboring.
    Rsa(Box<RsaKey>, Box<PKey<Public>>),
    /// With its fixed-base table, built at load.
    P256(Box<P256Key>),
    P384(ES384PublicKey),
    Ed25519(Ed25519PublicKey),
}

/// One signature verification key from the JWKS.
pub(crate) struct Key {
    pub(crate) kid: Option<String>,
    /// The algorithms this key verifies: its JWK `alg` when given, else every algorithm of its type.
    pub(crate) algs: AlgSet,
    material: Material,
}

impl Key {
    /// The secret of an HMAC key.
    pub(crate) fn hmac_secret(&self) -> Option<&[u8]> {
        match &self.material {
            Material::Hmac(secret) => Some(secret),
            _ => None,
        }
    }

    /// True for RSA, EC and OKP keys: public keys that must never serve as an HMAC secret.
    pub(crate) fn is_asymmetric(&self) -> bool {
        !matches!(self.material, Material::Hmac(_))
    }

    /// Verifies `signature` over `signing_input` with `alg`. Only the signature: nothing about the claims.
    pub(crate) fn verify(&self, alg: Alg, signing_input: &[u8], signature: &[u8]) -> bool {
        if !self.algs.contains(alg) {
            return false;
        }
        match &self.material {
            Material::Hmac(secret) => hmac_verifies(alg, secret, signing_input, signature),
            Material::Rsa(key, _) if matches!(alg, Alg::RS256 | Alg::RS384 | Alg::RS512) => {
                key.verify_pkcs1(alg, signing_input, signature)
            }
            Material::Rsa(_, pkey) => rsa_verifies(pkey, alg, signing_input, signature),
            Material::P256(key) => key.verify(signing_input, signature),
            Material::P384(key) => {
                let Ok(sig) = p384::ecdsa::Signature::from_slice(signature) else { return false };
                key.public_key().as_ref().verify(signing_input, &sig).is_ok()
            }
            Material::Ed25519(key) => {
                let Ok(sig) = Ed25519Signature::from_slice(signature) else { return false };
                key.public_key().as_ref().verify(signing_input, &sig).is_ok()
            }
        }
    }
}

/// The HMAC tag of `signing_input` under `secret` equals `tag` (constant time).
pub(crate) fn hmac_verifies(alg: Alg, secret: &[u8], signing_input: &[u8], tag: &[u8]) -> bool {
    // jwt-simple's own verification refuses keys under 12 bytes; computing the tag directly lets weak secrets
    // (and a configured key of any length) be checked.
    let expected = match alg {
        Alg::HS256 => HS256Key::from_bytes(secret).authentication_tag(signing_input),
        Alg::HS384 => HS384Key::from_bytes(secret).authentication_tag(signing_input),
        Alg::HS512 => HS512Key::from_bytes(secret).authentication_tag(signing_input),
        _ => return false,
    };
    jwt_simple::reexports::ct_codecs::verify(&expected, tag)
}

fn rsa_verifies(pkey: &PKey<Public>, alg: Alg, signing_input: &[u8], signature: &[u8]) -> bool {
    let (digest, padding) = match alg {
        Alg::RS256 => (MessageDigest::sha256(), Padding::PKCS1),
        Alg::RS384 => (MessageDigest::sha384(), Padding::PKCS1),
        Alg::RS512 => (MessageDigest::sha512(), Padding::PKCS1),
        // Salt length = digest length (superboring's default), as RFC 7518 §3.5 requires.
        Alg::PS256 => (MessageDigest::sha256(), Padding::PKCS1_PSS),
        Alg::PS384 => (MessageDigest::sha384(), Padding::PKCS1_PSS),
        Alg::PS512 => (MessageDigest::sha512(), Padding::PKCS1_PSS),
        _ => return false,
    };
    let Ok(mut verifier) = superboring::sign::Verifier::new(digest, pkey) else { return false };
    if verifier.set_rsa_padding(padding).is_err() || verifier.update(signing_input).is_err() {
        return false;
    }
    verifier.verify(signature).unwrap_or(false)
}

/// The order n of P-256, big-endian.
const P256_ORDER: [u8; 32] = [
    0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xBC, 0xE6, 0xFA,
    0xAD, 0xA7, 0x17, 0x9E, 0x84, 0xF3, 0xB9, 0xCA, 0xC2, 0xFC, 0x63, 0x25, 0x51,
];

/// The order n of P-384, big-endian.
const P384_ORDER: [u8; 48] = [
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xC7, 0x63, 0x4D, 0x81, 0xF4, 0x37, 0x2D, 0xDF, 0x58, 0x1A, 0x0D, 0xB2, 0x48, 0xB0,
    0xA7, 0x7A, 0xEC, 0xEC, 0x19, 0x6A, 0xCC, 0xC5, 0x29, 0x73,
];

/// An ES256/ES384 signature (`r || s`, RFC 7518 §3.4) with r or s zero or not below the curve order: the shape of
/// CVE-2022-21449 ("psychic signatures"), which a broken verifier accepts for any message.
pub(crate) fn is_psychic(alg: Alg, signature: &[u8]) -> bool {
    let order: &[u8] = match alg {
        Alg::ES256 => &P256_ORDER,
        Alg::ES384 => &P384_ORDER,
        _ => return false,
    };
    if signature.len() != 2 * order.len() {
        return false;
    }
    let (r, s) = signature.split_at(order.len());
    let bad = |x: &[u8]| x.iter().all(|&b| b == 0) || x >= order;
    bad(r) || bad(s)
}

/// Parses a JWKS document (`{"keys": [...]}`, or a single JWK) into verification keys. Keys marked for another
/// use (`use` other than `sig`, `key_ops` without `verify`) are skipped; anything else that is not a usable public
/// verification key is an error, as is a document left with no key at all.
pub(crate) fn parse_jwks(jwks: &str) -> Result<Vec<Key>, JwksError> {
    let doc: Value = serde_json::from_str(jwks).map_err(|e| JwksError::document(&format!("not JSON ({e})")))?;
    let Value::Object(members) = &doc else { return Err(JwksError::document("not a JSON object")) };
    let jwks: Vec<&Value> = match members.get("keys") {
        Some(Value::Array(keys)) => keys.iter().collect(),
        Some(_) => return Err(JwksError::document("\"keys\" is not an array")),
        None if members.contains_key("kty") => vec![&doc],
        None => return Err(JwksError::document("no \"keys\" array (and not a single JWK)")),
    };
    let mut keys = Vec::new();
    for (index, jwk) in jwks.into_iter().enumerate() {
        let Value::Object(jwk) = jwk else { return Err(JwksError::key(index, None, "not a JSON object")) };
        let kid = match jwk.get("kid") {
            None => None,
            Some(Value::String(kid)) => Some(kid.clone()),
            Some(_) => return Err(JwksError::key(index, None, "\"kid\" is not a string")),
        };
        let fail = |reason: &str| JwksError::key(index, kid.as_deref(), reason);
        if !for_verification(jwk).map_err(&fail)? {
            continue;
        }
        keys.push(parse_jwk(jwk, kid.clone()).map_err(|r| fail(&r))?);
    }
    if keys.is_empty() {
        return Err(JwksError::document("no signature verification key (every key is for another use)"));
    }
    Ok(keys)
}

/// False for a key its JWK marks for something else than verifying signatures.
fn for_verification(jwk: &serde_json::Map<String, Value>) -> Result<bool, &'static str> {
    match jwk.get("use") {
        None => {}
        Some(Value::String(u)) if u == "sig" => {}
        Some(Value::String(_)) => return Ok(false),
        Some(_) => return Err("\"use\" is not a string"),
    }
    match jwk.get("key_ops") {
        None => Ok(true),
        Some(Value::Array(ops)) => Ok(ops.iter().any(|op| op.as_str() == Some("verify"))),
        Some(_) => Err("\"key_ops\" is not an array"),
    }
}

fn parse_jwk(jwk: &serde_json::Map<String, Value>, kid: Option<String>) -> Result<Key, String> {
    let member = |name: &str| -> Result<Vec<u8>, String> {
        match jwk.get(name) {
            Some(Value::String(s)) => {
                base64url_decode(s.as_bytes()).ok_or_else(|| format!("\"{name}\" is not unpadded base64url"))
            }
            Some(_) => Err(format!("\"{name}\" is not a string")),
            None => Err(format!("missing \"{name}\"")),
        }
    };
    let kty = jwk.get("kty").and_then(Value::as_str).ok_or("missing \"kty\"")?;
    let crv = jwk.get("crv").and_then(Value::as_str);
    let private = ["d", "p", "q", "dp", "dq", "qi", "oth"].iter().find(|m| jwk.contains_key(**m));
    if let (Some(m), true) = (private, kty != "oct") {
        return Err(format!("holds private key material (\"{m}\"); publish only the public key"));
    }
    let (material, family): (Material, &[Alg]) = match (kty, crv) {
        ("oct", _) => (Material::Hmac(member("k")?), &HMAC_ALGS),
        ("RSA", _) => {
            let (n, e) = (member("n")?, member("e")?);
            let key = RS256PublicKey::from_components(&n, &e)
                .map_err(|_| "RSA key refused: the modulus must be 2048 to 4096 bits and e = 65537".to_string())?;
            let pkey = PKey::from_rsa(key.public_key().as_ref().clone()).map_err(|_| "RSA key refused".to_string())?;
            let fast = RsaKey::new(&n, &e).ok_or_else(|| "RSA key refused: the modulus must be odd".to_string())?;
            (Material::Rsa(Box::new(fast), Box::new(pkey)), &RSA_ALGS)
        }
        ("EC", Some("P-256")) => {
            let key = ec_key(&member("x")?, &member("y")?, 32, ES256PublicKey::from_bytes)?;
            let point = p256::ProjectivePoint::from(*key.public_key().as_ref().as_affine());
            (Material::P256(Box::new(P256Key::new(point))), &[Alg::ES256])
        }
        ("EC", Some("P-384")) => {
            (Material::P384(ec_key(&member("x")?, &member("y")?, 48, ES384PublicKey::from_bytes)?), &[Alg::ES384])
        }
        ("OKP", Some("Ed25519")) => {
            let key =
                Ed25519PublicKey::from_bytes(&member("x")?).map_err(|_| "invalid Ed25519 public key".to_string())?;
            (Material::Ed25519(key), &[Alg::EdDSA])
        }
        ("EC" | "OKP", Some(crv)) => return Err(format!("curve {crv:?} is not supported (P-256, P-384, Ed25519 are)")),
        ("EC" | "OKP", None) => return Err("missing \"crv\"".to_string()),
        (kty, _) => return Err(format!("key type {kty:?} is not supported (RSA, EC, OKP, oct are)")),
    };
    let algs = match jwk.get("alg") {
        None => AlgSet::of(family),
        Some(Value::String(name)) => match Alg::from_name(name) {
            Some(alg) if family.contains(&alg) => AlgSet::of(&[alg]),
            _ => return Err(format!("\"alg\" {name:?} does not fit a {kty} key or is not supported")),
        },
        Some(_) => return Err("\"alg\" is not a string".to_string()),
    };
    Ok(Key { kid, algs, material })
}

fn ec_key<K>(
    x: &[u8],
    y: &[u8],
    len: usize,
    from_bytes: impl Fn(&[u8]) -> Result<K, jwt_simple::Error>,
) -> Result<K, String> {
    if x.len() != len || y.len() != len {
        return Err(format!("\"x\" and \"y\" must be {len} bytes each"));
    }
    let mut point = Vec::with_capacity(1 + 2 * len);
    point.push(0x04);
    point.extend_from_slice(x);
    point.extend_from_slice(y);
    from_bytes(&point).map_err(|_| "not a point on the curve".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psychic_signature_shapes() {
        assert!(is_psychic(Alg::ES256, &[0; 64]));
        let mut r_is_n = [1u8; 64];
        r_is_n[..32].copy_from_slice(&P256_ORDER);
        assert!(is_psychic(Alg::ES256, &r_is_n));
        let mut below = [1u8; 64];
        below[..32].copy_from_slice(&P256_ORDER);
        below[31] -= 1;
        assert!(!is_psychic(Alg::ES256, &below));
        assert!(!is_psychic(Alg::ES256, &[0; 63]), "wrong length is a bad signature, not a psychic one");
        assert!(is_psychic(Alg::ES384, &[0xFF; 96]));
        assert!(!is_psychic(Alg::RS256, &[0; 64]));
    }

    #[test]
    fn jwks_errors_name_the_key() {
        let err = |doc: &str| parse_jwks(doc).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err("nope").contains("not JSON"));
        assert!(err(r#"{"keys":[{"kty":"EC","crv":"P-521","x":"AA","y":"AA","kid":"k1"}]}"#)
            .contains("key 0 (kid \"k1\"): curve \"P-521\""));
        assert!(err(r#"{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"}]}"#).contains("2048"));
        assert!(err(r#"{"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA","d":"AA"}]}"#).contains("private key"));
        assert!(err(r#"{"keys":[{"kty":"oct","k":"c2VjcmV0","use":"enc"}]}"#).contains("no signature verification key"));
        assert!(err(r#"{"keys":[{"kty":"oct","k":"c2VjcmV0","alg":"RS256"}]}"#).contains("does not fit"));
        assert!(parse_jwks(r#"{"kty":"oct","k":"c2VjcmV0"}"#).is_ok(), "a single JWK is accepted");
    }
}
