//! The caller's token for one exchange: found, named by a keyed hash, and (for JWTs) judged once per token.
//!
//! Analysis (signature verification above all) is expensive in wasm, so each VM keeps a bounded cache of analyses
//! keyed by a keyed 128-bit hash of the whole token: a repeat request costs a hash and a lookup, and a different
//! token with the same claims is a different key, so the cache cannot be poisoned. Time-dependent checks (expiry,
//! not before, lifetime) are re-done on every request from the cached claims.
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
    extract_token, identity, identity_hex, AnalysisCache, JwtVerifier, TokenAnalysis, TokenKind,
};
use portcullis_policies::{Attribute, Bundle, Request};

use crate::hashed::HashedMap;
use crate::host::HostRequest;

/// Analyses kept per VM: bounds memory whatever number of distinct tokens arrives.
pub const CACHE_CAPACITY: usize = 1024;

/// The per-VM analysis cache, shared by the root and request contexts of one VM.
pub type SharedCache = Rc<RefCell<AnalysisCache>>;

/// A new, empty cache.
pub fn new_cache() -> SharedCache {
    Rc::new(RefCell::new(AnalysisCache::new(CACHE_CAPACITY)))
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
        now_unix: i64,
    ) -> Option<CallerToken> {
        let policy = bundle.tokens()?;
        let query = request.attribute(Attribute::RequestQuery);
        let token = extract_token(&policy.sources, |name| request.header(name), query.as_deref())?;
        let (analysis, findings) = match (verifier, policy.jwt.as_ref()) {
            (Some(verifier), Some(jwt)) => {
                let analysis = cached_analysis(cache, verifier, &token);
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

/// The analysis of `token`, from the cache or computed once and cached.
fn cached_analysis(cache: &SharedCache, verifier: &JwtVerifier, token: &[u8]) -> Rc<TokenAnalysis> {
    // The RefCell is only borrowed here, never across a hostcall or a callback, so it cannot be borrowed twice.
    let Ok(mut cache) = cache.try_borrow_mut() else {
        return Rc::new(verifier.analyze(token));
    };
    if let Some(hit) = cache.get(token) {
        return hit;
    }
    cache.insert(token, verifier.analyze(token))
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
