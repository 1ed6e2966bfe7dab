//! The caller's token for one exchange: found, named by a keyed hash, and (for JWTs) judged once per token.
//!
//! Analysis (signature verification above all) is expensive in wasm, so each VM keeps a bounded cache of analyses
//! keyed by a keyed 128-bit hash of the whole token: a repeat request costs a hash and a lookup, and a different
//! token with the same claims is a different key, so the cache cannot be poisoned. Time-dependent checks (expiry,
//! not before, lifetime) are re-done on every request from the cached claims. A new token costs a verification only
//! within the VM's budget (`jwt_verifications_per_second`); past it, it is judged `jwt.unverified` and not cached.
//!
//! The token's identity (an HMAC-SHA-256, about two thirds of what a simple policy costs per request in the VM) is
//! cached too, per bundle, by a keyed 128-bit hash of the token: [`IdCache`].

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::rc::Rc;

use siphasher::sip128::{Hasher128, SipHasher13};

use portcullis_policies::token::{JwtFinding, JwtFindings, TokenField};
use portcullis_policies::token_analysis::{
    extract_token, identity, identity_hex, AnalysisCache, JwtVerifier, TokenAnalysis, TokenKind, VerificationBudget,
};
use portcullis_policies::{Attribute, Bundle, Request};

use crate::hashed::HashedMap;
use crate::host::HostRequest;

/// Analyses kept per VM: bounds memory whatever number of distinct tokens arrives.
pub const CACHE_CAPACITY: usize = 1024;

/// What a VM knows about the tokens it has judged: the analyses, and the budget of verifications for new ones.
pub struct TokenCache {
    /// Analyses by token.
    pub analyses: AnalysisCache,
    /// Signature verifications left this second (`jwt_verifications_per_second`).
    pub budget: VerificationBudget,
}

/// The per-VM token cache, shared by the root and request contexts of one VM.
pub type SharedCache = Rc<RefCell<TokenCache>>;

/// A new, empty cache with a full budget of `verifications_per_second`.
pub fn new_cache(verifications_per_second: u32) -> SharedCache {
    let analyses = AnalysisCache::new(CACHE_CAPACITY);
    Rc::new(RefCell::new(TokenCache { analyses, budget: VerificationBudget::new(verifications_per_second) }))
}

/// Token identities kept per VM and bundle: bounds memory whatever number of distinct tokens arrives.
pub const ID_CACHE_CAPACITY: usize = 4096;

/// The `token.id` of tokens this VM has seen under one bundle (ids depend on the bundle's identity rule and key).
///
/// Entries are found by a 128-bit SipHash of the token under a random per-VM key: the raw token is not kept, two
/// tokens share an entry with odds of about 2⁻¹²⁸ per pair, and nobody can aim tokens at each other offline. When
/// full it is emptied, so a flood of one-off tokens costs only the hashes it would have cost without a cache.
pub struct IdCache {
    key: (u64, u64),
    ids: HashedMap<u128, Rc<str>>,
}

impl std::fmt::Debug for IdCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdCache").field("entries", &self.ids.len()).finish_non_exhaustive()
    }
}

impl Default for IdCache {
    fn default() -> Self {
        // Two outputs of a randomly keyed hasher (seeded from WASI) make the key.
        let random = RandomState::new();
        IdCache { key: (random.hash_one(0u8), random.hash_one(1u8)), ids: HashedMap::default() }
    }
}

impl IdCache {
    /// The id of `token`, computed by `compute` the first time.
    pub fn get_or_insert(&mut self, token: &[u8], compute: impl FnOnce() -> String) -> Rc<str> {
        let mut hasher = SipHasher13::new_with_keys(self.key.0, self.key.1);
        hasher.write(token);
        let fingerprint = hasher.finish128().as_u128();
        if let Some(id) = self.ids.get(&fingerprint) {
            return Rc::clone(id);
        }
        if self.ids.len() >= ID_CACHE_CAPACITY {
            self.ids.clear();
        }
        let id: Rc<str> = compute().into();
        self.ids.insert(fingerprint, Rc::clone(&id));
        id
    }

    /// How many ids are cached.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// The token of one exchange, as rules see it.
#[derive(Debug, Clone)]
pub struct CallerToken {
    /// `token.id`: 32 hex digits of the keyed hash.
    pub id: Rc<str>,
    /// `token.kind`.
    pub kind: TokenKind,
    /// The JWT analysis, when the policy judges JWTs.
    pub analysis: Option<Rc<TokenAnalysis>>,
    /// Static and time-dependent findings at the time of the request.
    pub findings: JwtFindings,
}

impl CallerToken {
    /// Finds and judges the token of `request` under `bundle`; `None` without a token section or a token.
    pub fn of(
        bundle: &Bundle,
        verifier: Option<&JwtVerifier>,
        hash_key: &[u8],
        cache: &SharedCache,
        ids: &RefCell<IdCache>,
        request: &HostRequest,
        now_ms: u64,
    ) -> Option<CallerToken> {
        let now_unix = i64::try_from(now_ms / 1_000).unwrap_or(i64::MAX);
        let policy = bundle.tokens()?;
        let query = request.attribute(Attribute::RequestQuery);
        let token = extract_token(&policy.sources, |name| request.header(name), query.as_deref())?;
        let (analysis, findings) = match (verifier, policy.jwt.as_ref()) {
            (Some(verifier), Some(jwt)) => {
                let analysis = cached_analysis(cache, verifier, &token, now_ms);
                let findings = analysis.findings_at(jwt, now_unix);
                (Some(analysis), findings)
            }
            _ => (None, JwtFindings::default()),
        };
        let kind = analysis.as_ref().map_or_else(|| guess_kind(&token), |a| a.kind);
        let compute = || identity_hex(&identity(policy, hash_key, &token, analysis.as_deref()));
        // Only borrowed here, never across a hostcall or callback; should it be busy, the id is computed anyway.
        let id = match ids.try_borrow_mut() {
            Ok(mut ids) => ids.get_or_insert(&token, compute),
            Err(_) => compute().into(),
        };
        Some(CallerToken { id, kind, analysis, findings })
    }

    /// `token.id` / `token.kind` as bytes.
    pub fn field(&self, field: TokenField) -> Cow<'_, [u8]> {
        match field {
            TokenField::Id => Cow::Borrowed(self.id.as_bytes()),
            TokenField::Kind => Cow::Borrowed(self.kind.name().as_bytes()),
        }
    }

    /// A claim of the JWT, as a string.
    pub fn claim(&self, name: &str) -> Option<Cow<'_, [u8]>> {
        self.analysis.as_ref()?.claim(name).map(|v| Cow::Borrowed(v.as_bytes()))
    }

    /// A JOSE header field of the JWT, as a string.
    pub fn header(&self, name: &str) -> Option<Cow<'_, [u8]>> {
        self.analysis.as_ref()?.header(name).map(|v| Cow::Borrowed(v.as_bytes()))
    }

    /// True when the analysis found `finding`.
    pub fn has(&self, finding: JwtFinding) -> bool {
        self.findings.contains(finding)
    }
}

/// The analysis of `token`, from the cache or computed once (within the VM's verification budget) and cached.
fn cached_analysis(cache: &SharedCache, verifier: &JwtVerifier, token: &[u8], now_ms: u64) -> Rc<TokenAnalysis> {
    // The RefCell is only borrowed here, never across a hostcall or a callback; should it be busy, the token is
    // judged without a signature rather than outside the budget.
    let Ok(mut cache) = cache.try_borrow_mut() else {
        return Rc::new(verifier.analyze_within(token, now_ms, &mut VerificationBudget::new(0)));
    };
    let TokenCache { analyses, budget } = &mut *cache;
    judge(analyses, budget, verifier, token, now_ms)
}

/// The cached analysis of `token`, or a new one within `budget`. An unverified one is not cached: the same token
/// is verified once the budget allows (or its validity window opens).
fn judge(
    analyses: &mut AnalysisCache,
    budget: &mut VerificationBudget,
    verifier: &JwtVerifier,
    token: &[u8],
    now_ms: u64,
) -> Rc<TokenAnalysis> {
    if let Some(hit) = analyses.get(token) {
        return hit;
    }
    let analysis = verifier.analyze_within(token, now_ms, budget);
    if analysis.findings.contains(JwtFinding::Unverified) {
        return Rc::new(analysis);
    }
    analyses.insert(token, analysis)
}

/// Without JWT checks: a token shaped like a JWT (`eyJ…` with two dots) is called one.
fn guess_kind(token: &[u8]) -> TokenKind {
    if token.starts_with(b"eyJ") && token.iter().filter(|b| **b == b'.').count() == 2 {
        TokenKind::Jwt
    } else {
        TokenKind::Opaque
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ES256-only policy and a verifier for it, and a token signer (throwaway key from a fixed seed).
    fn es256() -> (JwtVerifier, impl Fn(&str) -> String) {
        use jwt_simple::prelude::*;
        let pair = ES256KeyPair::from_bytes(&[0x42; 32]).unwrap().with_key_id("k1");
        let point = pair.public_key().public_key().to_bytes_uncompressed();
        let b64 = |b: &[u8]| {
            use jwt_simple::reexports::ct_codecs::{Base64UrlSafeNoPadding, Encoder};
            Base64UrlSafeNoPadding::encode_to_string(b).unwrap()
        };
        let policy = portcullis_policies::token::JwtPolicy {
            jwks: format!(
                r#"{{"keys":[{{"kty":"EC","crv":"P-256","kid":"k1","x":"{}","y":"{}"}}]}}"#,
                b64(&point[1..33]),
                b64(&point[33..])
            ),
            allowed_algs: vec!["ES256".into()],
            issuers: vec![],
            audiences: vec![],
            max_lifetime_seconds: None,
            clock_skew_seconds: 0,
            require_exp: false,
            weak_secrets: vec![],
        };
        let sign = move |jti: &str| {
            let claims = Claims::create(Duration::from_hours(1)).with_jwt_id(jti);
            pair.sign(claims).unwrap()
        };
        (JwtVerifier::new(&policy).unwrap(), sign)
    }

    #[test]
    fn past_the_budget_new_tokens_are_unverified_and_not_cached() {
        let (verifier, sign) = es256();
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
        let mut analyses = AnalysisCache::new(64);
        let mut budget = VerificationBudget::new(3);
        let good = sign("good");
        assert!(judge(&mut analyses, &mut budget, &verifier, good.as_bytes(), now).is_authentic());
        // Forged tokens: the same claims under another key's signature.
        let forged: Vec<String> = (0..10)
            .map(|i| {
                let token = sign(&format!("forged-{i}"));
                let cut = token.rfind('.').unwrap();
                format!("{}.{}", &token[..cut], &sign("other")[cut + 1..])
            })
            .collect();
        let judged: Vec<_> =
            forged.iter().map(|t| judge(&mut analyses, &mut budget, &verifier, t.as_bytes(), now)).collect();
        let bad = judged.iter().filter(|a| a.findings.contains(JwtFinding::BadSignature)).count();
        let unverified = judged.iter().filter(|a| a.findings.contains(JwtFinding::Unverified)).count();
        assert_eq!((bad, unverified), (2, 8), "three verifications a second: the good token and two forged ones");
        assert!(judged.iter().all(|a| !a.is_authentic()));
        // The good token is cached: it still passes while the budget is spent; a new good token does not.
        assert!(judge(&mut analyses, &mut budget, &verifier, good.as_bytes(), now).is_authentic());
        let fresh = sign("fresh");
        let a = judge(&mut analyses, &mut budget, &verifier, fresh.as_bytes(), now);
        assert!(a.findings.contains(JwtFinding::Unverified) && !a.is_authentic());
        assert_eq!(analyses.len(), 3, "unverified analyses are not cached");
        // A second later (fake clock) the budget is back and the same new token verifies.
        assert!(judge(&mut analyses, &mut budget, &verifier, fresh.as_bytes(), now + 1_000).is_authentic());
    }

    #[test]
    fn expired_tokens_cost_no_verification() {
        let (verifier, sign) = es256();
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
        let mut analyses = AnalysisCache::new(64);
        let mut budget = VerificationBudget::new(1);
        let token = sign("soon-expired");
        let later = now + 2 * 3_600_000;
        let a = judge(&mut analyses, &mut budget, &verifier, token.as_bytes(), later);
        assert!(a.findings.contains(JwtFinding::Unverified) && !a.is_authentic());
        assert!(budget.try_spend(later), "the budget was not touched");
    }

    #[test]
    fn ids_are_computed_once_per_token_and_bounded() {
        let mut cache = IdCache::default();
        let computed = std::cell::Cell::new(0);
        let id = |cache: &mut IdCache, token: &[u8]| {
            cache.get_or_insert(token, || {
                computed.set(computed.get() + 1);
                format!("id-{}", token.len())
            })
        };
        assert_eq!(&*id(&mut cache, b"abc"), "id-3");
        assert_eq!(&*id(&mut cache, b"abc"), "id-3");
        assert_eq!(&*id(&mut cache, b"abcd"), "id-4");
        assert_eq!(computed.get(), 2, "a repeated token is not hashed again");
        for n in 0..ID_CACHE_CAPACITY * 2 {
            cache.get_or_insert(format!("token-{n}").as_bytes(), || n.to_string());
            assert!(cache.len() <= ID_CACHE_CAPACITY);
        }
    }
}
