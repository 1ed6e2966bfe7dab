//! Token analysis: who is calling, and whether their JWT is forged, tampered with or misused.
//!
//! # Overview
//!
//! The filter finds a request's token with [`extract_token`], names the caller with [`identity`], and judges a JWT
//! with a [`JwtVerifier`] built once per bundle from the bundle's [`JwtPolicy`]:
//!
//! 1. [`JwtVerifier::analyze`] does everything that does not depend on the clock: it decodes the token, keeps a
//!    bounded copy of its header and claims, verifies the signature with the configured keys and runs the forgery
//!    checks. It costs a signature verification (and one HMAC per weak secret for an HS-signed token), so the
//!    filter keeps the result in an [`AnalysisCache`] keyed by the token's SHA-256.
//! 2. [`TokenAnalysis::findings_at`] adds the time-dependent findings (expired, not yet valid, no `exp`, lifetime)
//!    for the current time: cheap, once per request.
//!
//! ```
//! use portcullis_policies::token::{JwtFinding, JwtPolicy};
//! use portcullis_policies::token_analysis::{JwtVerifier, TokenKind};
//!
//! let policy = JwtPolicy {
//!     jwks: r#"{"keys":[{"kty":"oct","kid":"k1","k":"c3Ryb25nLXNlY3JldC1vZi0zMi1ieXRlcy0wMTIzNDU2Nzg"}]}"#.into(),
//!     allowed_algs: vec!["HS256".into()],
//!     issuers: vec![],
//!     audiences: vec![],
//!     max_lifetime_seconds: None,
//!     clock_skew_seconds: 60,
//!     require_exp: true,
//!     weak_secrets: vec![],
//! };
//! let verifier = JwtVerifier::new(&policy).unwrap();
//! // {"alg":"none"}.{"sub":"admin"}. : an unsigned token.
//! let analysis = verifier.analyze(b"eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9.");
//! assert_eq!(analysis.kind, TokenKind::Jwt);
//! assert_eq!(analysis.claim("sub"), Some("admin"));
//! let findings = analysis.findings_at(&policy, 1_700_000_000);
//! assert!(findings.contains(JwtFinding::AlgNone));
//! assert!(findings.contains(JwtFinding::MissingExp));
//! assert!(verifier.analyze(b"sk_live_51H8").findings.is_empty()); // an opaque API key
//! ```
//!
//! # What each detection means here
//!
//! `jwt.bad_signature` is set whenever no configured key verified the signature, alongside the more specific
//! reason when there is one (`jwt.alg_none`, `jwt.empty_signature`, `jwt.unknown_key`, `jwt.key_confusion`,
//! `jwt.psychic_signature`, `jwt.malformed`): a rule naming only `jwt.bad_signature` catches every token that is
//! not authentic. `jwt.suspicious_kid` is not raised for a `kid` that names a configured key, so identity
//! providers whose key ids contain `/` or `+` (standard base64) are not flagged. A payload that is not a JSON
//! object is `jwt.malformed` (a JWS, but not a JWT); the signature is still checked. JWS JSON serialization and
//! JWE (five segments) are `jwt.malformed` too: a JWT is a compact JWS.
//!
//! Signature work is the expensive part, so it comes last and only when needed: a token already refused by a
//! cheap check (undecodable, disallowed `alg`, unknown `kid`, key confusion, psychic signature) gets
//! `jwt.bad_signature` without any key being tried (an HMAC token refused so is still checked against the weak
//! secrets, within the budget). The filter analyzes a new token with
//! [`JwtVerifier::analyze_within`], which also skips the signature of a token outside its validity window and
//! spends a per-VM [`VerificationBudget`]: past it, a new token is `jwt.unverified` (never believed, not cached)
//! instead of costing a verification. A JWT over [`MAX_TOKEN_BYTES`] is `jwt.too_large`, never read.
//!
//! The raw token is never logged or kept: the analysis keeps decoded header and claim values (at most
//! [`MAX_ENTRIES`] of each, values up to [`MAX_VALUE_BYTES`]), the cache keeps the token's SHA-256.

mod budget;
mod cache;
mod codec;
mod extract;
mod identity;
mod keys;
mod montgomery;
mod p256_tables;
mod rsa;
#[cfg(test)]
pub(crate) mod test_rng;
mod weak_secrets;

use std::fmt;

use serde_json::Value;

pub use budget::{VerificationBudget, DEFAULT_VERIFICATIONS_PER_SECOND};
pub use cache::AnalysisCache;
pub use extract::extract_token;
pub use identity::{identity, identity_hex};
pub use keys::JwksError;
pub use weak_secrets::BUILTIN_WEAK_SECRETS;

use crate::token::{JwtFinding, JwtFindings, JwtPolicy};
use codec::{base64url_decode, Members};
use keys::{hmac_verifies, is_psychic, parse_jwks, Alg, AlgSet, Key};

/// The `alg` values the analysis verifies (`Ed25519` is also read as `EdDSA`). The compiler refuses others in
/// `allowed_algs`.
pub const SUPPORTED_ALGS: &[&str] =
    &["HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"];

/// Longest token analyzed, in bytes. A longer one that looks like a JWT is `jwt.too_large` (never verified, never
/// believed); any other is opaque.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Most header members and most claims kept from one token.
pub const MAX_ENTRIES: usize = 32;

/// Longest name or value kept, in bytes; a longer member is left out (not cut: a cut value could match a rule
/// the whole value would not).
pub const MAX_VALUE_BYTES: usize = 256;

/// What a token is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TokenKind {
    /// A JWT, or something built like one (possibly malformed).
    Jwt,
    /// Anything else: an API key, a session id.
    Opaque,
}

impl TokenKind {
    /// `jwt` or `opaque`, the value of `token.kind`.
    pub fn name(self) -> &'static str {
        match self {
            TokenKind::Jwt => "jwt",
            TokenKind::Opaque => "opaque",
        }
    }
}

/// Judges JWTs against one [`JwtPolicy`]: its keys, algorithms, issuers, audiences and weak secrets.
pub struct JwtVerifier {
    keys: Vec<Key>,
    allowed: AlgSet,
    issuers: Vec<String>,
    audiences: Vec<String>,
    weak_secrets: Vec<Vec<u8>>,
    clock_skew: i64,
}

impl JwtVerifier {
    /// Parses the policy's JWKS into verification keys and checks its algorithm list.
    ///
    /// An empty `allowed_algs` allows the algorithms of the configured keys (a key's JWK `alg`, or every algorithm
    /// of its type). `weak_secrets` is used as given: the compiler puts [`BUILTIN_WEAK_SECRETS`] in it.
    ///
    /// # Errors
    ///
    /// A JWKS that is not JSON, has no signature verification key, or holds a key that is malformed, unsupported
    /// (a curve other than P-256, P-384 and Ed25519; RSA under 2048 bits) or private; an `allowed_algs` entry
    /// that is not in [`SUPPORTED_ALGS`]. The message names the key and the problem.
    pub fn new(policy: &JwtPolicy) -> Result<JwtVerifier, JwksError> {
        let keys = parse_jwks(&policy.jwks)?;
        let allowed = if policy.allowed_algs.is_empty() {
            keys.iter().fold(AlgSet::default(), |acc, k| acc.union(k.algs))
        } else {
            let mut algs = Vec::new();
            for name in &policy.allowed_algs {
                algs.push(Alg::from_name(name).ok_or_else(|| JwksError::unsupported_alg(name))?);
            }
            AlgSet::of(&algs)
        };
        Ok(JwtVerifier {
            keys,
            allowed,
            issuers: policy.issuers.clone(),
            audiences: policy.audiences.clone(),
            weak_secrets: policy.weak_secrets.iter().map(|s| s.as_bytes().to_vec()).collect(),
            clock_skew: i64::try_from(policy.clock_skew_seconds).unwrap_or(i64::MAX),
        })
    }

    /// Everything about `token` that does not depend on the current time: its kind, header and claims, and the
    /// static findings (signature, algorithm, key, `kid`, issuer, audience, weak secret). Never panics, whatever
    /// the bytes. Costs a signature verification (unbounded: the filter uses [`JwtVerifier::analyze_within`]):
    /// cache the result.
    pub fn analyze(&self, token: &[u8]) -> TokenAnalysis {
        self.analyze_with(token, None, &mut || true)
    }

    /// [`JwtVerifier::analyze`] as the filter runs it on a token it has not seen: the signature is checked only
    /// when nothing cheaper decided the token, and only within `budget`.
    ///
    /// Decided without a signature (no signature work at all): an undecodable token, a disallowed `alg`, a `kid` that
    /// names no key, a psychic or empty signature, key confusion (`jwt.bad_signature` with the reason, as
    /// [`JwtVerifier::analyze`] reports them), and a token outside its validity window at `now_ms` (Unix
    /// milliseconds), which gets `jwt.unverified`. A token that needs a verification when the budget is spent gets
    /// `jwt.unverified` too. An analysis with `jwt.unverified` depends on the time: do not cache it.
    pub fn analyze_within(&self, token: &[u8], now_ms: u64, budget: &mut VerificationBudget) -> TokenAnalysis {
        let now_unix = i64::try_from(now_ms / 1_000).unwrap_or(i64::MAX);
        self.analyze_with(token, Some(now_unix), &mut || budget.try_spend(now_ms))
    }

    /// The analysis; `now_unix` (when given) skips the signature of a token outside its window, and `spend` is
    /// asked once before any signature work.
    fn analyze_with(&self, token: &[u8], now_unix: Option<i64>, spend: &mut dyn FnMut() -> bool) -> TokenAnalysis {
        let mut analysis = TokenAnalysis::opaque();
        let looks_like_jwt = token.starts_with(b"eyJ") && token.contains(&b'.');
        if token.len() > MAX_TOKEN_BYTES {
            if looks_like_jwt {
                // Not read, so neither believed nor called forged: the policy decides on `jwt.too_large`.
                analysis.kind = TokenKind::Jwt;
                analysis.findings.insert(JwtFinding::TooLarge);
            }
            return analysis;
        }
        if token.first() == Some(&b'{') {
            // JWS JSON serialization (RFC 7515 §7.2): a JWS, but not a JWT.
            let jws = Members::parse(token).is_some_and(|m| {
                m.get("payload").is_some() && (m.get("signature").is_some() || m.get("signatures").is_some())
            });
            if jws {
                analysis.malformed();
            }
            return analysis;
        }
        let segments: Vec<&[u8]> = token.split(|&b| b == b'.').collect();
        let header = segments.first().and_then(|h| base64url_decode(h)).and_then(|h| Members::parse(&h));
        let has_alg = header.as_ref().is_some_and(|h| h.get("alg").is_some());
        if segments.len() < 2 || !(has_alg || looks_like_jwt) {
            return analysis;
        }
        analysis.kind = TokenKind::Jwt;
        let Some(header) = header else {
            analysis.malformed();
            return analysis;
        };
        analysis.header = keep(&header, &[]);
        let alg_name = match header.get("alg") {
            Some(Value::String(alg)) => Some(alg.as_str()),
            _ => None,
        };
        let kid = match header.get("kid") {
            None => None,
            Some(Value::String(kid)) => Some(kid.as_str()),
            Some(_) => {
                analysis.findings.insert(JwtFinding::Malformed);
                None
            }
        };
        let alg = alg_name.and_then(Alg::from_name);
        if alg_name.is_none() {
            analysis.findings.insert(JwtFinding::Malformed);
        }
        if alg_name.is_some_and(|a| a.eq_ignore_ascii_case("none")) {
            analysis.findings.insert(JwtFinding::AlgNone);
        }
        if !alg.is_some_and(|a| self.allowed.contains(a)) {
            analysis.findings.insert(JwtFinding::AlgNotAllowed);
        }
        if ["jwk", "jku", "x5u", "x5c"].iter().any(|m| header.get(m).is_some()) {
            analysis.findings.insert(JwtFinding::EmbeddedKey);
        }
        let kid_keys: Vec<&Key> = match kid {
            Some(kid) => self.keys.iter().filter(|k| k.kid.as_deref() == Some(kid)).collect(),
            None => self.keys.iter().collect(),
        };
        if let Some(kid) = kid {
            if kid_keys.is_empty() {
                analysis.findings.insert(JwtFinding::UnknownKey);
                if is_suspicious_kid(kid) {
                    analysis.findings.insert(JwtFinding::SuspiciousKid);
                }
            }
        }
        let [_, payload, signature] = segments.as_slice() else {
            analysis.malformed();
            return analysis;
        };
        match base64url_decode(payload).as_deref().and_then(Members::parse) {
            Some(claims) => self.read_claims(&mut analysis, &claims),
            None => analysis.findings.insert(JwtFinding::Malformed),
        }
        let signing_input = token.get(..segments.first().map_or(0, |h| h.len()) + 1 + payload.len());
        let verified = match (alg, base64url_decode(signature), signing_input) {
            _ if signature.is_empty() => {
                analysis.findings.insert(JwtFinding::EmptySignature);
                false
            }
            (_, None, _) | (_, _, None) => {
                analysis.findings.insert(JwtFinding::Malformed);
                false
            }
            (None, _, _) => false,
            (Some(alg), Some(signature), Some(input)) => {
                if self.refused_unsigned(&mut analysis, alg, &kid_keys, &signature) {
                    // Already refused: naming a weak secret too is worth its HMACs only within the budget.
                    if alg.is_hmac() && !self.weak_secrets.is_empty() && spend() {
                        self.check_weak_secrets(&mut analysis, alg, input, &signature);
                    }
                    false
                } else if now_unix.is_some_and(|now| analysis.outside_window(now, self.clock_skew)) || !spend() {
                    analysis.findings.insert(JwtFinding::Unverified);
                    return analysis;
                } else {
                    self.verify(&mut analysis, alg, &kid_keys, input, &signature)
                }
            }
        };
        if !verified {
            analysis.findings.insert(JwtFinding::BadSignature);
        }
        analysis
    }

    /// The cheap checks that refuse a token before any signature work: records key confusion and psychic
    /// signatures, and is true when the token is already refused (disallowed `alg`, no key for its `kid`, key
    /// confusion, psychic signature): no configured key is then tried.
    fn refused_unsigned(&self, analysis: &mut TokenAnalysis, alg: Alg, keys: &[&Key], signature: &[u8]) -> bool {
        if alg.is_hmac() && !keys.is_empty() && keys.iter().all(|k| k.is_asymmetric()) {
            analysis.findings.insert(JwtFinding::KeyConfusion);
        }
        if is_psychic(alg, signature) {
            analysis.findings.insert(JwtFinding::PsychicSignature);
        }
        // A malformed payload is not among them: a JWS whose payload is not a JWT is still checked (it could be
        // authentic, and says so); what cannot be decoded never reaches here.
        const REFUSED: [JwtFinding; 4] =
            [JwtFinding::AlgNotAllowed, JwtFinding::UnknownKey, JwtFinding::KeyConfusion, JwtFinding::PsychicSignature];
        keys.is_empty() || REFUSED.iter().any(|f| analysis.findings.contains(*f))
    }

    /// Verifies the signature with the keys the `kid` selects, and checks an HMAC token against the weak secrets.
    /// True when a configured key verified it.
    fn verify(&self, analysis: &mut TokenAnalysis, alg: Alg, keys: &[&Key], input: &[u8], signature: &[u8]) -> bool {
        let Some(key) = keys.iter().find(|k| k.verify(alg, input, signature)) else {
            self.check_weak_secrets(analysis, alg, input, signature);
            return false;
        };
        // Signed with a configured key: a weak secret verifies it too only if it is that key, so comparing the key
        // with the list replaces an HMAC per entry.
        if key.hmac_secret().is_some_and(|secret| self.weak_secrets.iter().any(|w| w.as_slice() == secret)) {
            analysis.findings.insert(JwtFinding::WeakSecret);
        }
        true
    }

    /// `jwt.weak_secret` when an HMAC token verifies with a secret of the weak list (one HMAC per entry).
    fn check_weak_secrets(&self, analysis: &mut TokenAnalysis, alg: Alg, input: &[u8], signature: &[u8]) {
        if alg.is_hmac() && self.weak_secrets.iter().any(|s| hmac_verifies(alg, s, input, signature)) {
            analysis.findings.insert(JwtFinding::WeakSecret);
        }
    }

    fn read_claims(&self, analysis: &mut TokenAnalysis, claims: &Members) {
        analysis.claims = keep(claims, &["iss", "sub", "aud", "exp", "nbf", "iat", "jti"]);
        let mut time = |name: &str| match claims.get(name) {
            None => None,
            Some(Value::Number(n)) => match n.as_i64() {
                Some(t) => Some(t),
                // Fractional or huge NumericDate: the `as` conversion floors and saturates.
                None => n.as_f64().map(|f| f.floor() as i64),
            },
            Some(_) => {
                analysis.findings.insert(JwtFinding::Malformed);
                None
            }
        };
        let (exp, nbf, iat) = (time("exp"), time("nbf"), time("iat"));
        (analysis.exp, analysis.nbf, analysis.iat) = (exp, nbf, iat);
        if !self.issuers.is_empty() {
            let ok = matches!(claims.get("iss"), Some(Value::String(iss)) if self.issuers.contains(iss));
            if !ok {
                analysis.findings.insert(JwtFinding::IssuerMismatch);
            }
        }
        if !self.audiences.is_empty() {
            let accepted = |v: &Value| v.as_str().is_some_and(|a| self.audiences.iter().any(|x| x == a));
            let ok = match claims.get("aud") {
                Some(Value::Array(auds)) => auds.iter().any(accepted),
                Some(aud) => accepted(aud),
                None => false,
            };
            if !ok {
                analysis.findings.insert(JwtFinding::AudienceMismatch);
            }
        }
    }
}

impl fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key material nor the weak secrets.
        f.debug_struct("JwtVerifier")
            .field("keys", &self.keys.len())
            .field("allowed", &self.allowed)
            .field("issuers", &self.issuers)
            .field("audiences", &self.audiences)
            .field("weak_secrets", &self.weak_secrets.len())
            .finish()
    }
}

/// A `kid` that tries path traversal, SQL, or shell and header injection.
fn is_suspicious_kid(kid: &str) -> bool {
    kid.len() > MAX_VALUE_BYTES
        || ["..", "--", "/*"].iter().any(|s| kid.contains(s))
        || kid.chars().any(|c| {
            matches!(c, '/' | '\\' | '\'' | '"' | ';' | '|' | '&' | '$' | '`') || c.is_whitespace() || c.is_control()
        })
}

/// The members of a header or claims object as strings, bounded: the `first` names (when present), then the rest
/// in document order, at most [`MAX_ENTRIES`], leaving out any over [`MAX_VALUE_BYTES`].
fn keep(members: &Members, first: &[&str]) -> Vec<(String, String)> {
    let ordered = first
        .iter()
        .filter_map(|name| members.0.iter().find(|(k, _)| k == name))
        .chain(members.0.iter().filter(|(k, _)| !first.contains(&k.as_str())));
    ordered
        .filter_map(|(name, value)| {
            let value = match value {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                other => serde_json::to_string(other).ok()?,
            };
            (name.len() <= MAX_VALUE_BYTES && value.len() <= MAX_VALUE_BYTES).then(|| (name.clone(), value))
        })
        .take(MAX_ENTRIES)
        .collect()
}

/// What [`JwtVerifier::analyze`] found out about one token. Holds no raw token; bounded in size.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenAnalysis {
    /// JWT or opaque.
    pub kind: TokenKind,
    /// The findings that do not depend on the time; [`TokenAnalysis::findings_at`] adds the others.
    pub findings: JwtFindings,
    /// `exp`, when a number (fractions floored).
    pub exp: Option<i64>,
    /// `nbf`, when a number.
    pub nbf: Option<i64>,
    /// `iat`, when a number.
    pub iat: Option<i64>,
    claims: Vec<(String, String)>,
    header: Vec<(String, String)>,
}

impl TokenAnalysis {
    fn opaque() -> TokenAnalysis {
        TokenAnalysis {
            kind: TokenKind::Opaque,
            findings: JwtFindings::default(),
            exp: None,
            nbf: None,
            iat: None,
            claims: Vec::new(),
            header: Vec::new(),
        }
    }

    fn malformed(&mut self) {
        self.kind = TokenKind::Jwt;
        self.findings.insert(JwtFinding::Malformed);
        self.findings.insert(JwtFinding::BadSignature);
    }

    /// A claim's value as text: strings as they are, numbers in decimal, anything else (arrays such as `aud`,
    /// objects, booleans) as compact JSON.
    pub fn claim(&self, name: &str) -> Option<&str> {
        self.claims.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// A header member's value as text, like [`TokenAnalysis::claim`].
    pub fn header(&self, name: &str) -> Option<&str> {
        self.header.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// True for a JWT whose signature a configured key verified, with an allowed algorithm and no weak secret:
    /// its claims can be believed (and name the caller, see [`identity`]).
    pub fn is_authentic(&self) -> bool {
        const FORGED: [JwtFinding; 7] = [
            JwtFinding::Malformed,
            JwtFinding::AlgNone,
            JwtFinding::AlgNotAllowed,
            JwtFinding::BadSignature,
            JwtFinding::WeakSecret,
            JwtFinding::TooLarge,
            JwtFinding::Unverified,
        ];
        self.kind == TokenKind::Jwt && !FORGED.iter().any(|f| self.findings.contains(*f))
    }

    /// True when the token is expired or not yet valid at `now_unix`: its signature need not be checked.
    fn outside_window(&self, now_unix: i64, skew: i64) -> bool {
        let expired = self.exp.is_some_and(|exp| exp <= now_unix.saturating_sub(skew));
        let future = |t: Option<i64>| t.is_some_and(|t| t > now_unix.saturating_add(skew));
        expired || future(self.nbf) || future(self.iat)
    }

    /// The static findings plus those that depend on the time `now_unix` (seconds): `jwt.expired` (`now` is at or
    /// past `exp` + skew), `jwt.not_yet_valid` (`nbf` or `iat` after `now` + skew), `jwt.missing_exp`, and
    /// `jwt.lifetime_too_long` (`exp` − `iat`, or − `nbf`, or − `now` when neither is given, over the maximum; no
    /// `exp` at all is an unbounded lifetime). Cheap: call it per request. Opaque tokens have no findings.
    pub fn findings_at(&self, policy: &JwtPolicy, now_unix: i64) -> JwtFindings {
        let mut findings = self.findings;
        // A token too large to read has no claims to judge: its one finding says so.
        if self.kind != TokenKind::Jwt || findings.contains(JwtFinding::TooLarge) {
            return findings;
        }
        let skew = i64::try_from(policy.clock_skew_seconds).unwrap_or(i64::MAX);
        match self.exp {
            Some(exp) if exp <= now_unix.saturating_sub(skew) => findings.insert(JwtFinding::Expired),
            Some(_) => {}
            None if policy.require_exp => findings.insert(JwtFinding::MissingExp),
            None => {}
        }
        let future = |t: Option<i64>| t.is_some_and(|t| t > now_unix.saturating_add(skew));
        if future(self.nbf) || future(self.iat) {
            findings.insert(JwtFinding::NotYetValid);
        }
        if let Some(max) = policy.max_lifetime_seconds {
            let max = i64::try_from(max).unwrap_or(i64::MAX);
            let too_long = match self.exp {
                None => true,
                Some(exp) => exp.saturating_sub(self.iat.or(self.nbf).unwrap_or(now_unix)) > max,
            };
            if too_long {
                findings.insert(JwtFinding::LifetimeTooLong);
            }
        }
        findings
    }
}

impl fmt::Debug for TokenAnalysis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Claim and header names only: values can be personal data.
        let names = |entries: &[(String, String)]| entries.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
        f.debug_struct("TokenAnalysis")
            .field("kind", &self.kind)
            .field("findings", &self.findings.iter().map(JwtFinding::name).collect::<Vec<_>>())
            .field("exp", &self.exp)
            .field("nbf", &self.nbf)
            .field("iat", &self.iat)
            .field("claims", &names(&self.claims))
            .field("header", &names(&self.header))
            .finish()
    }
}
