//! The caller's token for one exchange: found, named by a keyed hash, and (for JWTs) judged once per token.
//!
//! Analysis (signature verification above all) is expensive in wasm, so each VM keeps a bounded cache of analyses
//! keyed by the SHA-256 of the whole token: a repeat request costs a hash and a lookup, and a different token with
//! the same claims is a different key, so the cache cannot be poisoned. Time-dependent checks (expiry, not before,
//! lifetime) are re-done on every request from the cached claims.

use std::borrow::Cow;
use std::cell::RefCell;
use std::rc::Rc;

use portcullis_policies::token::{JwtFinding, JwtFindings, TokenField};
use portcullis_policies::token_analysis::{
    extract_token, identity, identity_hex, AnalysisCache, JwtVerifier, TokenAnalysis, TokenKind,
};
use portcullis_policies::{Attribute, Bundle, Request};

use crate::host::HostRequest;

/// Analyses kept per VM: bounds memory whatever number of distinct tokens arrives.
pub const CACHE_CAPACITY: usize = 1024;

/// The per-VM analysis cache, shared by the root and request contexts of one VM.
pub type SharedCache = Rc<RefCell<AnalysisCache>>;

/// A new, empty cache.
pub fn new_cache() -> SharedCache {
    Rc::new(RefCell::new(AnalysisCache::new(CACHE_CAPACITY)))
}

/// The token of one exchange, as rules see it.
#[derive(Debug, Clone)]
pub struct CallerToken {
    /// `token.id`: 32 hex digits of the keyed hash.
    pub id: String,
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
        let id = identity_hex(&identity(policy, hash_key, &token, analysis.as_deref()));
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
