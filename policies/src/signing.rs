//! Signed bundles: an Ed25519 signature over a bundle's SHA-256, in an envelope around the bundle bytes.
//!
//! # Envelope
//!
//! | bytes | what |
//! |---|---|
//! | 8 | magic `PCLSSIGN` |
//! | 1 | length of the key id, 1 to 64 |
//! | n | key id (`[A-Za-z0-9._-]`) |
//! | 64 | Ed25519 signature of `"portcullis-bundle-signature-v1\0" ‖ digest` |
//! | rest | the bundle, exactly as [`crate::Bundle::from_bytes`] reads it |
//!
//! The signature covers the digest in the bundle's header, and loading the bundle checks that digest against the
//! payload, so the signature covers every byte the engine uses. A bundle without the envelope is *unsigned*: a
//! filter that trusts keys refuses it.
//!
//! Key files are text: `portcullis-ed25519-public:<key id>:<64 hex>` and
//! `portcullis-ed25519-secret:<key id>:<128 hex>` (seed and public key, as `ed25519-compact` stores a secret key).

use core::fmt;

use ed25519_compact::{PublicKey, SecretKey, Signature};

use crate::bundle::{self, peek_digest};

/// The envelope's first eight bytes.
pub const MAGIC: [u8; 8] = *b"PCLSSIGN";
/// Domain separation: a signature made for anything else never verifies as a bundle signature.
const CONTEXT: &[u8] = b"portcullis-bundle-signature-v1\0";

/// A public key the filter trusts, by key id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustedKey {
    /// The key id bundles name in their envelope.
    pub key_id: String,
    /// The Ed25519 public key.
    pub public_key: [u8; 32],
}

/// Why a bundle's signature was not accepted. Static messages: safe to log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignatureError {
    /// No envelope while keys are trusted.
    Unsigned,
    /// Signed by a key id that is not trusted.
    UnknownKey,
    /// The signature does not match the bundle (tampered, or signed with another key under the same id).
    BadSignature,
    /// The envelope itself is malformed.
    Malformed,
}

impl SignatureError {
    /// A short, static description.
    pub fn message(self) -> &'static str {
        match self {
            SignatureError::Unsigned => "bundle is not signed and this filter trusts signing keys",
            SignatureError::UnknownKey => "bundle is signed by a key this filter does not trust",
            SignatureError::BadSignature => "bundle signature does not match its content (tampered or wrong key)",
            SignatureError::Malformed => "bundle signature envelope is malformed",
        }
    }
}

impl fmt::Display for SignatureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for SignatureError {}

/// A bundle as it arrived: its signature, if any, and the bundle bytes inside.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Envelope<'a> {
    /// The signer's key id (`None`: unsigned).
    pub key_id: Option<&'a str>,
    signature: Option<[u8; 64]>,
    /// The bundle bytes.
    pub bundle: &'a [u8],
}

/// Splits bytes into signature and bundle. Bytes without the envelope magic are an unsigned bundle.
///
/// # Errors
///
/// [`SignatureError::Malformed`] for an envelope with a bad key id or a truncated signature.
pub fn open(bytes: &[u8]) -> Result<Envelope<'_>, SignatureError> {
    let Some(rest) = bytes.strip_prefix(&MAGIC) else {
        return Ok(Envelope { key_id: None, signature: None, bundle: bytes });
    };
    let (&len, rest) = rest.split_first().ok_or(SignatureError::Malformed)?;
    let (key_id, rest) = rest.split_at_checked(usize::from(len)).ok_or(SignatureError::Malformed)?;
    let key_id = core::str::from_utf8(key_id).map_err(|_| SignatureError::Malformed)?;
    if !is_key_id(key_id) {
        return Err(SignatureError::Malformed);
    }
    let (signature, bundle) = rest.split_at_checked(64).ok_or(SignatureError::Malformed)?;
    let signature: [u8; 64] = signature.try_into().map_err(|_| SignatureError::Malformed)?;
    Ok(Envelope { key_id: Some(key_id), signature: Some(signature), bundle })
}

impl Envelope<'_> {
    /// Checks the signature against `trusted` keys and returns the key id that signed.
    ///
    /// # Errors
    ///
    /// [`SignatureError`] naming why the bundle cannot be trusted.
    pub fn verify(&self, trusted: &[TrustedKey]) -> Result<&str, SignatureError> {
        let (Some(key_id), Some(signature)) = (self.key_id, self.signature) else {
            return Err(SignatureError::Unsigned);
        };
        let key = trusted.iter().find(|k| k.key_id == key_id).ok_or(SignatureError::UnknownKey)?;
        let digest = peek_digest(self.bundle).ok_or(SignatureError::BadSignature)?;
        let public = PublicKey::from_slice(&key.public_key).map_err(|_| SignatureError::BadSignature)?;
        let signature = Signature::from_slice(&signature).map_err(|_| SignatureError::BadSignature)?;
        public.verify(message(&digest), &signature).map_err(|_| SignatureError::BadSignature)?;
        Ok(key_id)
    }
}

/// Wraps `bundle` in an envelope signed with `secret_key` (64 bytes: seed and public key) under `key_id`.
///
/// # Errors
///
/// [`SignatureError::Malformed`] when the key id is invalid, the secret key is not 64 bytes, or `bundle` has no
/// bundle header to sign.
pub fn seal(bundle: &[u8], key_id: &str, secret_key: &[u8]) -> Result<Vec<u8>, SignatureError> {
    if !is_key_id(key_id) {
        return Err(SignatureError::Malformed);
    }
    let digest = peek_digest(bundle).ok_or(SignatureError::Malformed)?;
    let secret = SecretKey::from_slice(secret_key).map_err(|_| SignatureError::Malformed)?;
    let signature = secret.sign(message(&digest), None);
    let len = u8::try_from(key_id.len()).map_err(|_| SignatureError::Malformed)?;
    let mut out = Vec::with_capacity(MAGIC.len() + 1 + key_id.len() + 64 + bundle.len());
    out.extend_from_slice(&MAGIC);
    out.push(len);
    out.extend_from_slice(key_id.as_bytes());
    out.extend_from_slice(signature.as_ref());
    out.extend_from_slice(bundle);
    Ok(out)
}

/// Key ids are short and plain, so they can sit in file names, logs and JSON without escaping.
pub fn is_key_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn message(digest: &[u8; 32]) -> Vec<u8> {
    let mut m = Vec::with_capacity(CONTEXT.len() + 32);
    m.extend_from_slice(CONTEXT);
    m.extend_from_slice(digest);
    m
}

/// The text form of a public key file: `portcullis-ed25519-public:<key id>:<hex>`.
pub fn public_key_text(key_id: &str, public_key: &[u8; 32]) -> String {
    format!("portcullis-ed25519-public:{key_id}:{}", bundle::hex(public_key))
}

/// The text form of a secret key file: `portcullis-ed25519-secret:<key id>:<hex>`.
pub fn secret_key_text(key_id: &str, secret_key: &[u8]) -> String {
    format!("portcullis-ed25519-secret:{key_id}:{}", bundle::hex(secret_key))
}

/// Parses a key file's text (either kind): `(kind, key id, key bytes)` where kind is `public` or `secret`.
pub fn parse_key_text(text: &str) -> Option<(&str, &str, Vec<u8>)> {
    let mut parts = text.trim().splitn(3, ':');
    let kind = parts.next()?.strip_prefix("portcullis-ed25519-")?;
    let key_id = parts.next()?;
    let key = decode_hex(parts.next()?)?;
    let expected = match kind {
        "public" => 32,
        "secret" => 64,
        _ => return None,
    };
    (is_key_id(key_id) && key.len() == expected).then_some((kind, key_id, key))
}

/// Lower- or upper-case hex to bytes.
pub fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    text.as_bytes()
        .chunks_exact(2)
        .map(|pair| {
            let hi = char::from(*pair.first()?).to_digit(16)?;
            let lo = char::from(*pair.get(1)?).to_digit(16)?;
            u8::try_from(hi * 16 + lo).ok()
        })
        .collect()
}

/// A new key pair from 32 bytes of seed: `(public key, secret key)`. The caller supplies the randomness
/// (`portcullis keygen` uses the operating system's).
pub fn keypair_from_seed(seed: [u8; 32]) -> ([u8; 32], Vec<u8>) {
    let pair = ed25519_compact::KeyPair::from_seed(ed25519_compact::Seed::new(seed));
    (*pair.pk, pair.sk.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::{encode, BundleContent};

    fn bundle_bytes(revision: u64) -> Vec<u8> {
        encode(&BundleContent { policy_name: "demo".into(), revision, ..Default::default() }).unwrap()
    }

    fn key(id: &str, seed: u8) -> (TrustedKey, Vec<u8>) {
        let (public_key, secret) = keypair_from_seed([seed; 32]);
        (TrustedKey { key_id: id.into(), public_key }, secret)
    }

    #[test]
    fn signed_bundles_verify_and_everything_else_is_refused() {
        let bundle = bundle_bytes(7);
        let (k1, s1) = key("k1", 1);
        let (k2, s2) = key("k2", 2);
        let sealed = seal(&bundle, "k1", &s1).unwrap();
        let env = open(&sealed).unwrap();
        assert_eq!(env.bundle, &bundle[..]);
        assert_eq!(env.verify(&[k1.clone(), k2.clone()]), Ok("k1"));
        assert_eq!(env.verify(std::slice::from_ref(&k2)), Err(SignatureError::UnknownKey));
        assert_eq!(open(&bundle).unwrap().verify(std::slice::from_ref(&k1)), Err(SignatureError::Unsigned));
        // Same id, other key: a stolen id does not help.
        let forged = seal(&bundle, "k1", &s2).unwrap();
        assert_eq!(open(&forged).unwrap().verify(std::slice::from_ref(&k1)), Err(SignatureError::BadSignature));
        // Swapping the bundle under a valid signature is caught (its digest differs).
        let mut swapped = sealed.clone();
        let tail = swapped.len() - bundle.len();
        swapped.truncate(tail);
        swapped.extend_from_slice(&bundle_bytes(8));
        assert_eq!(open(&swapped).unwrap().verify(&[k1]), Err(SignatureError::BadSignature));
    }

    #[test]
    fn every_truncation_and_flip_of_an_envelope_is_handled() {
        let (k1, s1) = key("k1", 1);
        let sealed = seal(&bundle_bytes(1), "k1", &s1).unwrap();
        for len in 0..sealed.len() {
            if let Ok(env) = open(&sealed[..len]) {
                assert!(
                    env.verify(std::slice::from_ref(&k1)).is_err() || crate::Bundle::from_bytes(env.bundle).is_err()
                );
            }
        }
        for i in 0..sealed.len() {
            let mut bytes = sealed.clone();
            bytes[i] ^= 0x40;
            let accepted = open(&bytes)
                .ok()
                .filter(|env| env.verify(std::slice::from_ref(&k1)).is_ok())
                .map(|env| crate::Bundle::from_bytes(env.bundle));
            assert!(!matches!(accepted, Some(Ok(_))), "flip at {i} accepted");
        }
    }

    #[test]
    fn key_texts_round_trip() {
        let (k, secret) = key("prod-2026", 9);
        let public = public_key_text(&k.key_id, &k.public_key);
        let (kind, id, bytes) = parse_key_text(&public).unwrap();
        assert_eq!((kind, id, bytes.as_slice()), ("public", "prod-2026", &k.public_key[..]));
        let text = secret_key_text("prod-2026", &secret);
        let (kind, _, bytes) = parse_key_text(&text).unwrap();
        assert_eq!((kind, bytes), ("secret", secret));
        assert!(parse_key_text("portcullis-ed25519-public:bad id:00").is_none());
        assert!(!is_key_id("a/b") && !is_key_id("") && is_key_id("k_1.2-x"));
    }
}
