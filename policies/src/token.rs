//! API tokens in a bundle: where to find the caller's token, how to name it, and how to judge a JWT.
//!
//! The engine sees a request's token through [`crate::Request`]: whether one is present, its stable identity
//! (a keyed hash, never the token), its kind, JWT claims and header fields, and the [`JwtFinding`]s the filter's
//! analysis produced. Analysis itself (decoding, signature verification with `jwt-simple`, the forgery checks, the
//! per-VM cache) lives in the `token_analysis` module.

use serde::{Deserialize, Serialize};

/// Where a token may be carried. A policy lists several; the first one present wins.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TokenSource {
    /// A request header (lower-case name), optionally with an auth scheme prefix (`Authorization: Bearer x`;
    /// the scheme matches case-insensitively).
    Header {
        /// Header name, lower-case.
        name: String,
        /// The scheme before the token, e.g. `Bearer`.
        scheme: Option<String>,
    },
    /// A cookie by name.
    Cookie {
        /// Cookie name.
        name: String,
    },
    /// A query-string parameter by name.
    Query {
        /// Parameter name.
        name: String,
    },
}

/// What makes two requests "the same caller".
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TokenIdentity {
    /// The token itself (keyed hash of its bytes): a refreshed token is a new caller.
    Token,
    /// These JWT claims, in order (keyed hash of their values): a caller keeps its identity across refreshes.
    /// Falls back to the token when a claim is missing or the token is not a JWT.
    Claims(Vec<String>),
}

/// How JWTs are judged.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwtPolicy {
    /// The verification keys as a JWKS document (JSON text), validated by the compiler and at bundle load.
    pub jwks: String,
    /// Accepted `alg` values (e.g. `ES256`, `RS256`); anything else is `jwt.alg_not_allowed`.
    pub allowed_algs: Vec<String>,
    /// Accepted `iss` values; empty accepts any issuer.
    pub issuers: Vec<String>,
    /// Accepted `aud` values (a token needs one of them); empty accepts any audience.
    pub audiences: Vec<String>,
    /// Longest accepted `exp - iat` (or `exp - nbf`), in seconds.
    pub max_lifetime_seconds: Option<u64>,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds.
    pub clock_skew_seconds: u64,
    /// A token without `exp` is `jwt.missing_exp`.
    pub require_exp: bool,
    /// HMAC secrets known to be weak: an HS-signed token verifying with one is `jwt.weak_secret`.
    pub weak_secrets: Vec<String>,
}

/// The token section of a bundle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenPolicy {
    /// Where to look, in order.
    pub sources: Vec<TokenSource>,
    /// What identifies a caller.
    pub identity: TokenIdentity,
    /// Key for token identities when the plugin configuration gives none (`token_hash_key`); when neither does,
    /// each Envoy makes a random one and keeps it in shared data.
    pub hash_key: Option<Vec<u8>>,
    /// JWT checks; `None`: tokens are identified but not judged.
    pub jwt: Option<JwtPolicy>,
}

/// `token.id` and `token.kind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TokenField {
    /// `token.id`: the keyed hash naming the caller (hex).
    Id,
    /// `token.kind`: `jwt` or `opaque`.
    Kind,
}

macro_rules! jwt_findings {
    ($($variant:ident => $name:literal, $doc:literal;)*) => {
        /// A reason a JWT should not be accepted. Each is a detection a rule can name: `detected("jwt.alg_none")`.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[repr(u8)]
        pub enum JwtFinding {
            $(#[doc = $doc] $variant,)*
        }

        impl JwtFinding {
            /// Every finding, in bit order.
            pub const ALL: &'static [JwtFinding] = &[$(JwtFinding::$variant,)*];

            /// The detection name, e.g. `jwt.alg_none`.
            pub fn name(self) -> &'static str {
                match self {
                    $(JwtFinding::$variant => $name,)*
                }
            }
        }
    };
}

jwt_findings! {
    Malformed => "jwt.malformed", "Not three base64url segments, or a header/claims segment that is not a JSON object.";
    AlgNone => "jwt.alg_none", "`alg` is `none` in any letter case: an unsigned token.";
    EmptySignature => "jwt.empty_signature", "The signature segment is empty.";
    AlgNotAllowed => "jwt.alg_not_allowed", "`alg` is not in the policy's allowed list.";
    BadSignature => "jwt.bad_signature", "The signature does not verify with the configured keys.";
    KeyConfusion => "jwt.key_confusion", "HMAC-signed while the configured key is asymmetric (RS/ES/EdDSA public key used as an HMAC secret).";
    EmbeddedKey => "jwt.embedded_key", "The header tries to supply its own key (`jwk`, `jku`, `x5u`, `x5c`).";
    SuspiciousKid => "jwt.suspicious_kid", "`kid` carries path traversal, SQL or shell metacharacters.";
    PsychicSignature => "jwt.psychic_signature", "An ECDSA signature with r or s zero or not below the curve order.";
    Expired => "jwt.expired", "`exp` is past (beyond the clock skew).";
    NotYetValid => "jwt.not_yet_valid", "`nbf` or `iat` is in the future (beyond the clock skew).";
    MissingExp => "jwt.missing_exp", "No `exp` claim while the policy requires one.";
    LifetimeTooLong => "jwt.lifetime_too_long", "`exp - iat` exceeds the policy's maximum lifetime.";
    IssuerMismatch => "jwt.issuer_mismatch", "`iss` is not an accepted issuer.";
    AudienceMismatch => "jwt.audience_mismatch", "No `aud` value is an accepted audience.";
    WeakSecret => "jwt.weak_secret", "HMAC-signed with a secret from the weak-secret list.";
    UnknownKey => "jwt.unknown_key", "`kid` names no configured key.";
    TooLarge => "jwt.too_large", "A JWT longer than the analysis reads (16 KiB): neither verified nor refused as forged.";
    Unverified => "jwt.unverified", "The signature was not checked: this VM's budget of signature verifications per second was spent, or the token was already refused on its validity window.";
}

impl JwtFinding {
    /// Looks a finding up by its detection name.
    pub fn from_name(name: &str) -> Option<JwtFinding> {
        JwtFinding::ALL.iter().copied().find(|f| f.name() == name)
    }

    /// The finding's bit in a [`JwtFindings`] set.
    pub fn bit(self) -> u32 {
        1 << (self as u8)
    }
}

/// A set of [`JwtFinding`]s, as a bit set (cheap to cache and copy).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct JwtFindings(pub u32);

impl JwtFindings {
    /// Adds a finding.
    pub fn insert(&mut self, finding: JwtFinding) {
        self.0 |= finding.bit();
    }

    /// True when `finding` is in the set.
    pub fn contains(self, finding: JwtFinding) -> bool {
        self.0 & finding.bit() != 0
    }

    /// True when nothing was found.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The findings in the set, in bit order.
    pub fn iter(self) -> impl Iterator<Item = JwtFinding> {
        JwtFinding::ALL.iter().copied().filter(move |f| self.contains(*f))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_bits_are_distinct() {
        let mut all = JwtFindings::default();
        for f in JwtFinding::ALL {
            assert_eq!(JwtFinding::from_name(f.name()), Some(*f));
            assert!(!all.contains(*f));
            all.insert(*f);
        }
        assert_eq!(all.iter().count(), JwtFinding::ALL.len());
        assert!(JwtFinding::ALL.len() <= 32);
    }
}
