//! The bundle: a compiled policy as it travels from `portcullis compile` to every Envoy.
//!
//! # Wire format (format version 5)
//!
//! | bytes | what |
//! |---|---|
//! | 8 | magic `PCLSBNDL` |
//! | 2 | format version, little-endian `u16` |
//! | 32 | SHA-256 of the payload |
//! | rest | payload: a postcard-encoded [`BundleContent`] |
//!
//! The header is read before postcard is asked anything, so a bundle from a newer compiler is refused with a
//! message that says so, and a corrupt one is refused by its hash before any decoding.
//!
//! # Example
//!
//! ```
//! use portcullis_policies::{Bundle, BundleError};
//! // Any bytes at all: loading validates and never panics.
//! assert!(matches!(Bundle::from_bytes(b"not a bundle"), Err(BundleError { .. })));
//! ```

use core::fmt;

use regex_automata::dfa::dense::DFA;
use regex_automata::dfa::Automaton;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::detect::{
    ClassifierDef, CounterDef, CounterKind, DetectionDef, InspectionDef, ListDef, Location, ScanSetDef,
};
use crate::program::{Action, Node, Phase, Rule, Type};
use crate::token::TokenPolicy;

/// The first eight bytes of every bundle.
pub const MAGIC: [u8; 8] = *b"PCLSBNDL";
/// The bundle format this crate writes and reads.
pub const FORMAT_VERSION: u16 = 5;
/// The most exclusions one attack detection may carry.
pub const MAX_ATTACK_EXCLUSIONS: usize = 256;
/// Largest bundle accepted, in bytes: a bound on what a control plane can make every worker hold.
pub const MAX_BUNDLE_BYTES: usize = 16 * 1024 * 1024;
/// Most rules in one bundle.
pub const MAX_RULES: usize = 4096;
/// Most nodes in one rule condition.
pub const MAX_NODES_PER_RULE: usize = 4096;
/// Deepest operand nesting in a condition; bounds the evaluator's recursion.
pub const MAX_CONDITION_DEPTH: u16 = 64;
/// Most DFAs in one bundle.
pub const MAX_DFAS: usize = 4096;
/// Most classifiers, detections or lists in one bundle (indices are `u16`, and per-request state is sized by them).
pub const MAX_DETECTION_ITEMS: usize = 256;
/// Longest classifier match the scanner keeps for validation, in bytes.
pub const MAX_CLASSIFIER_MATCH: u16 = 256;
/// Most entries a list may be configured with, and most keys a counter may track.
pub const MAX_LIST_ENTRIES: u32 = 1 << 20;
/// Most static entries (exact keys plus networks) one list may carry.
pub const MAX_STATIC_ENTRIES: usize = 65_536;
/// Most parts in a counter's key (`per: [token.id, endpoint]`).
pub const MAX_KEY_PARTS: usize = 4;
/// The longest counter window and list ttl: 30 days.
pub const MAX_WINDOW_SECONDS: u64 = 30 * 86_400;
/// The most distinct values a `distinct` counter tracks per key.
pub const MAX_DISTINCT: u32 = 64;

const HEADER_LEN: usize = 8 + 2 + 32;

/// The payload of a bundle: everything the engine needs, plus where it came from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleContent {
    /// The policy's name (the bundle name it is published under).
    pub policy_name: String,
    /// Revision id: increases with every compile of a policy (seconds since the epoch unless set explicitly).
    pub revision: u64,
    /// Version of the compiler that built the bundle, for support.
    pub compiler_version: String,
    /// The rules, in policy order.
    pub rules: Vec<Rule>,
    /// Serialized dense DFAs (little-endian, as `regex-automata` writes them), indexed by `Node::Matches::dfa`
    /// and [`ScanSetDef::dfa`].
    pub dfas: Vec<Vec<u8>>,
    /// Classifiers used by the detections.
    pub classifiers: Vec<ClassifierDef>,
    /// Detections, indexed by `Node::Detected`.
    pub detections: Vec<DetectionDef>,
    /// What each [`Location`] scans for, indexed by [`Location::index`] (`None`: nothing to look for there).
    pub scan_sets: [Option<ScanSetDef>; 3],
    /// Dynamic lists, indexed by `Node::InList::list`.
    pub lists: Vec<ListDef>,
    /// Body inspection limits.
    pub inspection: InspectionDef,
    /// Token sources, identity and JWT checks; `None` when the policy has no `tokens:` section.
    pub tokens: Option<TokenPolicy>,
    /// Counters over time, indexed by `Node::Counter::counter`.
    pub counters: Vec<CounterDef>,
}

/// Why a bundle was refused. The message is static: safe to log, never echoes the bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BundleError {
    kind: BundleErrorKind,
}

/// The kinds of [`BundleError`], for callers that count refusals by reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BundleErrorKind {
    /// Shorter than the header, or not starting with the magic.
    NotABundle,
    /// Larger than [`MAX_BUNDLE_BYTES`].
    TooLarge,
    /// Written by a newer (or unknown) format version.
    UnsupportedVersion,
    /// The payload does not match the SHA-256 in the header.
    DigestMismatch,
    /// The payload is not a valid postcard [`BundleContent`].
    Malformed,
    /// Decoded, but its rules break an invariant (bad operand, type, depth, limit, duplicate id).
    InvalidRules,
    /// A DFA failed `regex-automata`'s validation.
    InvalidDfa,
    /// The token section's JWKS cannot be loaded as verification keys.
    InvalidKeys,
}

impl BundleError {
    const fn new(kind: BundleErrorKind) -> Self {
        BundleError { kind }
    }

    /// What went wrong, as a kind.
    pub fn kind(&self) -> BundleErrorKind {
        self.kind
    }

    /// A short, static, log-safe description.
    pub fn message(&self) -> &'static str {
        match self.kind {
            BundleErrorKind::NotABundle => "not a Portcullis bundle (bad magic or truncated header)",
            BundleErrorKind::TooLarge => "bundle larger than the 16 MiB limit",
            BundleErrorKind::UnsupportedVersion => "bundle format version not supported by this filter",
            BundleErrorKind::DigestMismatch => "bundle content does not match its SHA-256 (corrupt or tampered)",
            BundleErrorKind::Malformed => "bundle payload is malformed",
            BundleErrorKind::InvalidRules => "bundle rules are invalid",
            BundleErrorKind::InvalidDfa => "bundle carries an invalid DFA",
            BundleErrorKind::InvalidKeys => "bundle carries JWT keys that cannot be loaded",
        }
    }
}

impl fmt::Display for BundleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for BundleError {}

/// Encodes `content` as bundle bytes (header, hash, payload).
///
/// # Errors
///
/// Only if postcard cannot serialize the content, which does not happen for well-formed values.
pub fn encode(content: &BundleContent) -> Result<Vec<u8>, BundleError> {
    let payload = postcard::to_allocvec(content).map_err(|_| BundleError::new(BundleErrorKind::Malformed))?;
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&Sha256::digest(&payload));
    out.extend_from_slice(&payload);
    Ok(out)
}

/// The SHA-256 of a bundle's payload, read from its header without validating anything else.
pub fn peek_digest(bytes: &[u8]) -> Option<[u8; 32]> {
    bytes.get(10..HEADER_LEN)?.try_into().ok()
}

/// Lower-case hex of a digest (bundle ids in logs, ETags).
pub fn hex(digest: &[u8]) -> String {
    let mut s = String::with_capacity(digest.len() * 2);
    for b in digest {
        for nibble in [b >> 4, b & 0x0f] {
            s.push(char::from_digit(u32::from(nibble), 16).unwrap_or('0'));
        }
    }
    s
}

/// A validated bundle, ready to evaluate. Cheap to share behind an `Rc`/`Arc`: evaluation takes `&self`.
#[derive(Clone, Debug)]
pub struct Bundle {
    pub(crate) policy_name: String,
    pub(crate) revision: u64,
    pub(crate) digest: [u8; 32],
    pub(crate) rules: Vec<Rule>,
    pub(crate) dfas: Vec<DFA<Vec<u32>>>,
    pub(crate) classifiers: Vec<ClassifierDef>,
    pub(crate) detections: Vec<DetectionDef>,
    pub(crate) scan_sets: [Option<ScanSetDef>; 3],
    pub(crate) lists: Vec<ListDef>,
    pub(crate) inspection: InspectionDef,
    pub(crate) tokens: Option<TokenPolicy>,
    pub(crate) counters: Vec<CounterDef>,
}

impl Bundle {
    /// Validates `bytes` and loads the bundle they hold.
    ///
    /// Everything is checked: the magic and format version, the size limit, the SHA-256 of the payload, the
    /// postcard decoding, every rule's operands, types and depth, unique rule ids, and every DFA through
    /// `regex-automata`'s own validating deserializer.
    ///
    /// # Errors
    ///
    /// A [`BundleError`] naming the first check that failed.
    ///
    /// # Panics
    ///
    /// Never, for any input.
    pub fn from_bytes(bytes: &[u8]) -> Result<Bundle, BundleError> {
        let (content, digest) = decode_unchecked(bytes)?;
        Bundle::from_content(content, digest)
    }

    fn from_content(content: BundleContent, digest: [u8; 32]) -> Result<Bundle, BundleError> {
        let invalid = BundleError::new(BundleErrorKind::InvalidRules);
        if content.rules.len() > MAX_RULES || content.dfas.len() > MAX_DFAS {
            return Err(invalid);
        }
        let counts = Counts {
            dfas: content.dfas.len(),
            detections: content.detections.len(),
            lists: content.lists.len(),
            counters: &content.counters,
        };
        for (i, rule) in content.rules.iter().enumerate() {
            if rule.id.is_empty() || content.rules.iter().take(i).any(|r| r.id == rule.id) {
                return Err(invalid);
            }
            if !(100..=599).contains(&rule.status) {
                return Err(invalid);
            }
            check_condition(&rule.condition, &counts)?;
            // A rule may not be decided before the data it reads exists, nor answer once the response is flowing.
            let phase = phase_of(&rule.condition, &content.detections, &content.counters);
            if phase > rule.phase || (rule.action.answers() && rule.phase == Phase::Response) {
                return Err(invalid);
            }
            let target = rule.list.and_then(|l| content.lists.get(usize::from(l)));
            match (rule.action, target) {
                (Action::AddToList, Some(list)) if list.is_dynamic() => {
                    if rule.ttl_seconds == 0 || rule.ttl_seconds > MAX_WINDOW_SECONDS {
                        return Err(invalid);
                    }
                }
                (Action::AddToList, _) => return Err(invalid),
                (_, Some(_)) => return Err(invalid),
                (_, None) => {}
            }
        }
        check_detections(&content)?;
        for list in &content.lists {
            if list.id.is_empty() || list.max_entries == 0 || list.max_entries > MAX_LIST_ENTRIES {
                return Err(invalid);
            }
            if list.ttl_seconds > MAX_WINDOW_SECONDS
                || list.entries.len().saturating_add(list.networks.len()) > MAX_STATIC_ENTRIES
                || !list.entries.is_sorted()
                || (!list.is_dynamic() && !list.add_when.is_empty())
            {
                return Err(invalid);
            }
            if !list.add_when.is_empty() {
                check_condition(&list.add_when, &counts)?;
            }
        }
        check_counters(&content, &counts)?;
        if content.inspection.max_body_bytes == 0 {
            return Err(invalid);
        }
        if let Some(tokens) = &content.tokens {
            check_tokens(tokens)?;
        }
        let mut dfas = Vec::with_capacity(content.dfas.len());
        for bytes in &content.dfas {
            dfas.push(load_dfa(bytes)?);
        }
        for set in content.scan_sets.iter().flatten() {
            let dfa = usize::try_from(set.dfa).ok().and_then(|i| dfas.get(i)).ok_or(invalid)?;
            if dfa.pattern_len() != set.patterns.len() {
                return Err(invalid);
            }
        }
        Ok(Bundle {
            policy_name: content.policy_name,
            revision: content.revision,
            digest,
            rules: content.rules,
            dfas,
            classifiers: content.classifiers,
            detections: content.detections,
            scan_sets: content.scan_sets,
            lists: content.lists,
            inspection: content.inspection,
            tokens: content.tokens,
            counters: content.counters,
        })
    }

    /// The policy's name.
    pub fn policy_name(&self) -> &str {
        &self.policy_name
    }

    /// The revision id the compiler gave this bundle.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// The SHA-256 of the payload: the bundle's identity.
    pub fn digest(&self) -> &[u8; 32] {
        &self.digest
    }

    /// The rules, in policy order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The classifiers the detections use.
    pub fn classifiers(&self) -> &[ClassifierDef] {
        &self.classifiers
    }

    /// The detections, in policy order (`Node::Detected` indexes this).
    pub fn detections(&self) -> &[DetectionDef] {
        &self.detections
    }

    /// The dynamic lists (`Node::InList` indexes this).
    pub fn lists(&self) -> &[ListDef] {
        &self.lists
    }

    /// The counters over time (`Node::Counter` indexes this).
    pub fn counters(&self) -> &[CounterDef] {
        &self.counters
    }

    /// The token section, if the policy has one.
    pub fn tokens(&self) -> Option<&TokenPolicy> {
        self.tokens.as_ref()
    }

    /// Body inspection limits.
    pub fn inspection(&self) -> &InspectionDef {
        &self.inspection
    }

    /// What `location` scans for, with its DFA; `None` when no detection looks there.
    pub fn scan_set(&self, location: Location) -> Option<(&ScanSetDef, &DFA<Vec<u32>>)> {
        let set = self.scan_sets.get(location.index())?.as_ref()?;
        let dfa = self.dfas.get(usize::try_from(set.dfa).ok()?)?;
        Some((set, dfa))
    }

    /// The id of rule number `index`, if there is one.
    pub fn rule_id(&self, index: u16) -> Option<&str> {
        self.rules.get(usize::from(index)).map(|r| r.id.as_str())
    }
}

/// The content of a valid bundle, for tools that rebuild one (`portcullis rollback` re-encodes an old bundle's
/// content under a new revision).
///
/// # Errors
///
/// A [`BundleError`] for any bundle [`Bundle::from_bytes`] refuses: the content is validated in full first.
pub fn decode_content(bytes: &[u8]) -> Result<BundleContent, BundleError> {
    let (content, digest) = decode_unchecked(bytes)?;
    Bundle::from_content(content.clone(), digest)?;
    Ok(content)
}

/// Checks the header, the size and the SHA-256, and decodes the payload; the content is not yet validated.
fn decode_unchecked(bytes: &[u8]) -> Result<(BundleContent, [u8; 32]), BundleError> {
    if bytes.len() > MAX_BUNDLE_BYTES {
        return Err(BundleError::new(BundleErrorKind::TooLarge));
    }
    let (magic, rest) = bytes.split_at_checked(8).ok_or(BundleError::new(BundleErrorKind::NotABundle))?;
    if magic != MAGIC {
        return Err(BundleError::new(BundleErrorKind::NotABundle));
    }
    let (version, rest) = rest.split_at_checked(2).ok_or(BundleError::new(BundleErrorKind::NotABundle))?;
    if version != FORMAT_VERSION.to_le_bytes() {
        return Err(BundleError::new(BundleErrorKind::UnsupportedVersion));
    }
    let (digest, payload) = rest.split_at_checked(32).ok_or(BundleError::new(BundleErrorKind::NotABundle))?;
    let digest: [u8; 32] = digest.try_into().map_err(|_| BundleError::new(BundleErrorKind::NotABundle))?;
    if Sha256::digest(payload).as_slice() != digest {
        return Err(BundleError::new(BundleErrorKind::DigestMismatch));
    }
    let (content, rest): (BundleContent, &[u8]) =
        postcard::take_from_bytes(payload).map_err(|_| BundleError::new(BundleErrorKind::Malformed))?;
    // Trailing bytes mean the payload is not what its writer encoded.
    if !rest.is_empty() {
        return Err(BundleError::new(BundleErrorKind::Malformed));
    }
    Ok((content, digest))
}

/// Copies DFA bytes to a 4-byte aligned buffer (regex-automata requires it) and validates them.
fn load_dfa(bytes: &[u8]) -> Result<DFA<Vec<u32>>, BundleError> {
    let invalid = BundleError::new(BundleErrorKind::InvalidDfa);
    let mut buf = vec![0u8; bytes.len() + 3];
    let offset = buf.as_ptr().align_offset(4);
    let aligned = buf.get_mut(offset..offset.saturating_add(bytes.len())).ok_or(invalid)?;
    aligned.copy_from_slice(bytes);
    let (dfa, _) = DFA::from_bytes(aligned).map_err(|_| invalid)?;
    Ok(dfa.to_owned())
}

/// Sizes of the tables conditions index into.
struct Counts<'c> {
    dfas: usize,
    detections: usize,
    lists: usize,
    /// Counters a condition may read; empty inside a counter's own expressions (counters do not read counters).
    counters: &'c [CounterDef],
}

/// The phase a condition needs: the latest part of the exchange it reads. Attributes, lists and counter values
/// need only the request headers; detections need their location; `response.*` needs the response;
/// `seen_elsewhere` needs its counter's update.
pub fn phase_of(nodes: &[Node], detections: &[DetectionDef], counters: &[CounterDef]) -> Phase {
    nodes
        .iter()
        .filter_map(|n| match n {
            Node::Detected(d) => detections.get(usize::from(*d)).map(|d| match d.location {
                Location::RequestQuery => Phase::RequestHeaders,
                Location::RequestBody => Phase::RequestBody,
                Location::ResponseBody => Phase::Response,
            }),
            Node::ResponseCode | Node::ResponseBytes => Some(Phase::Response),
            Node::BodyField(_) => Some(Phase::RequestBody),
            Node::SeenElsewhere(c) => counters.get(usize::from(*c)).map(|c| c.phase),
            // This exchange's own key is known once the counter's `per` can be evaluated.
            Node::Counter { counter, key: None } => counters
                .get(usize::from(*counter))
                .and_then(|c| c.per.iter().map(|part| phase_of(part, detections, &[])).max()),
            _ => None,
        })
        .max()
        .unwrap_or(Phase::RequestHeaders)
}

/// Checks the counters: ids, key parts (strings), the value each kind counts, the condition, bounds, and a phase
/// no earlier than what the counter reads.
fn check_counters(content: &BundleContent, counts: &Counts<'_>) -> Result<(), BundleError> {
    let invalid = BundleError::new(BundleErrorKind::InvalidRules);
    if content.counters.len() > MAX_DETECTION_ITEMS {
        return Err(invalid);
    }
    let own = Counts { counters: &[], ..*counts };
    for (i, c) in content.counters.iter().enumerate() {
        if c.id.is_empty() || content.counters.iter().take(i).any(|o| o.id == c.id) {
            return Err(invalid);
        }
        if c.per.is_empty() || c.per.len() > MAX_KEY_PARTS {
            return Err(invalid);
        }
        for part in &c.per {
            if check_nodes(part, &own)? != Type::String {
                return Err(invalid);
            }
        }
        let of = match c.kind {
            CounterKind::Requests => None,
            CounterKind::Sum => Some(Type::Int),
            CounterKind::Distinct | CounterKind::LastSeen => Some(Type::String),
        };
        match of {
            None if !c.of.is_empty() => return Err(invalid),
            Some(want) if check_nodes(&c.of, &own)? != want => return Err(invalid),
            _ => {}
        }
        if !c.when.is_empty() && check_nodes(&c.when, &own)? != Type::Bool {
            return Err(invalid);
        }
        if c.window_seconds == 0 || c.window_seconds > MAX_WINDOW_SECONDS {
            return Err(invalid);
        }
        if c.max_keys == 0 || c.max_keys > MAX_LIST_ENTRIES {
            return Err(invalid);
        }
        if c.kind == CounterKind::Distinct && !(1..=MAX_DISTINCT).contains(&c.max_distinct) {
            return Err(invalid);
        }
        let reads = c.per.iter().chain([&c.of, &c.when]);
        let needed = reads.map(|nodes| phase_of(nodes, &content.detections, &[])).max().unwrap_or_default();
        // Updates happen with the request headers or at the end of the exchange (`Response`), nothing between.
        if needed > c.phase || c.phase == Phase::RequestBody {
            return Err(invalid);
        }
        // `seen_elsewhere` is read by rules: its counter must be updated before the rules that can block.
        if c.kind == CounterKind::LastSeen && (c.phase != Phase::RequestHeaders || c.batched) {
            return Err(invalid);
        }
    }
    Ok(())
}

/// Checks the token section: sources to look in, a usable identity key, and JWKS keys the verifier can load.
fn check_tokens(tokens: &TokenPolicy) -> Result<(), BundleError> {
    let invalid = BundleError::new(BundleErrorKind::InvalidRules);
    if tokens.sources.is_empty() || tokens.sources.len() > 8 {
        return Err(invalid);
    }
    if tokens.hash_key.as_ref().is_some_and(|k| k.len() < 16) {
        return Err(invalid);
    }
    if let Some(jwt) = &tokens.jwt {
        // The same construction the filter does at activation: a key it cannot load is refused here, once.
        crate::token_analysis::JwtVerifier::new(jwt).map_err(|_| BundleError::new(BundleErrorKind::InvalidKeys))?;
    }
    Ok(())
}

/// Checks classifier, detection and scan-set tables: indices in range, layering within one location, sane sizes.
fn check_detections(content: &BundleContent) -> Result<(), BundleError> {
    let invalid = BundleError::new(BundleErrorKind::InvalidRules);
    if content.classifiers.len() > MAX_DETECTION_ITEMS
        || content.detections.len() > MAX_DETECTION_ITEMS
        || content.lists.len() > MAX_DETECTION_ITEMS
    {
        return Err(invalid);
    }
    for c in &content.classifiers {
        if c.id.is_empty() || c.max_len == 0 || c.max_len > MAX_CLASSIFIER_MATCH || c.confidence > 100 {
            return Err(invalid);
        }
    }
    for (i, d) in content.detections.iter().enumerate() {
        match &d.attack {
            None if usize::from(d.classifier) >= content.classifiers.len() => return Err(invalid),
            // An attack detection is decided with the request: its places exist, its exclusions are bounded.
            Some(attack)
                if d.location == Location::ResponseBody
                    || attack.places == 0
                    || d.requires.is_some()
                    || attack.exclude.len() > MAX_ATTACK_EXCLUSIONS =>
            {
                return Err(invalid)
            }
            _ => {}
        }
        if let Some(r) = d.requires {
            // Layering points backwards, to a detection in the same location: no cycles, one pass decides.
            let required = content.detections.get(usize::from(r)).ok_or(invalid)?;
            if usize::from(r) >= i || required.location != d.location {
                return Err(invalid);
            }
        }
    }
    for set in content.scan_sets.iter().flatten() {
        if set.patterns.iter().any(|p| usize::from(*p) >= content.classifiers.len()) {
            return Err(invalid);
        }
    }
    Ok(())
}

/// Checks operand order, types and depth of one condition; the root must be a `bool`.
fn check_condition(nodes: &[Node], counts: &Counts<'_>) -> Result<(), BundleError> {
    match check_nodes(nodes, counts)? {
        Type::Bool => Ok(()),
        _ => Err(BundleError::new(BundleErrorKind::InvalidRules)),
    }
}

/// Checks operand order, types and depth of one expression; returns the type of its root.
fn check_nodes(nodes: &[Node], counts: &Counts<'_>) -> Result<Type, BundleError> {
    let dfa_count = counts.dfas;
    let invalid = BundleError::new(BundleErrorKind::InvalidRules);
    if nodes.is_empty() || nodes.len() > MAX_NODES_PER_RULE {
        return Err(invalid);
    }
    // (type, depth) of each node seen so far; operands must already be in here.
    let mut seen: Vec<(Type, u16)> = Vec::with_capacity(nodes.len());
    for node in nodes {
        let operand = |i: u32| -> Result<(Type, u16), BundleError> {
            seen.get(usize::try_from(i).map_err(|_| invalid)?).copied().ok_or(invalid)
        };
        let unary = |i: u32, want: Type, out: Type| -> Result<(Type, u16), BundleError> {
            let (t, d) = operand(i)?;
            if t != want {
                return Err(invalid);
            }
            Ok((out, d + 1))
        };
        let binary = |a: u32, b: u32, want: Option<Type>, out: Type| -> Result<(Type, u16), BundleError> {
            let (ta, da) = operand(a)?;
            let (tb, db) = operand(b)?;
            if ta != tb || want.is_some_and(|w| w != ta) {
                return Err(invalid);
            }
            Ok((out, da.max(db) + 1))
        };
        let typed = match node {
            Node::Bool(_) => (Type::Bool, 0),
            Node::Int(_) => (Type::Int, 0),
            Node::String(_) | Node::Attribute(_) | Node::Header(_) => (Type::String, 0),
            Node::HasHeader(_) => (Type::Bool, 0),
            Node::Not(a) => unary(*a, Type::Bool, Type::Bool)?,
            Node::And(a, b) | Node::Or(a, b) => binary(*a, *b, Some(Type::Bool), Type::Bool)?,
            Node::Eq(a, b) | Node::Ne(a, b) => binary(*a, *b, None, Type::Bool)?,
            Node::Lt(a, b) | Node::Le(a, b) | Node::Gt(a, b) | Node::Ge(a, b) => {
                let (t, d) = binary(*a, *b, None, Type::Bool)?;
                if operand(*a)?.0 == Type::Bool {
                    return Err(invalid);
                }
                (t, d)
            }
            Node::StartsWith(a, b) | Node::EndsWith(a, b) | Node::Contains(a, b) => {
                binary(*a, *b, Some(Type::String), Type::Bool)?
            }
            Node::Matches { subject, dfa } => {
                if usize::try_from(*dfa).map_err(|_| invalid)? >= dfa_count {
                    return Err(invalid);
                }
                unary(*subject, Type::String, Type::Bool)?
            }
            Node::Size(a) => unary(*a, Type::String, Type::Int)?,
            Node::Detected(d) => {
                if usize::from(*d) >= counts.detections {
                    return Err(invalid);
                }
                (Type::Bool, 0)
            }
            Node::TokenPresent | Node::JwtFinding(_) => (Type::Bool, 0),
            Node::TokenField(_) | Node::TokenClaim(_) | Node::TokenHeader(_) => (Type::String, 0),
            Node::InList { list, key } => {
                if usize::from(*list) >= counts.lists {
                    return Err(invalid);
                }
                unary(*key, Type::String, Type::Bool)?
            }
            Node::Counter { counter, key } => {
                let def = counts.counters.get(usize::from(*counter)).ok_or(invalid)?;
                if def.kind == CounterKind::LastSeen {
                    return Err(invalid);
                }
                match key {
                    Some(key) if def.per.len() == 1 => unary(*key, Type::String, Type::Int)?,
                    Some(_) => return Err(invalid),
                    None => (Type::Int, 0),
                }
            }
            Node::SeenElsewhere(c) => match counts.counters.get(usize::from(*c)) {
                Some(def) if def.kind == CounterKind::LastSeen => (Type::Bool, 0),
                _ => return Err(invalid),
            },
            Node::ResponseCode | Node::ResponseBytes => (Type::Int, 0),
            Node::BodyField(_) => (Type::String, 0),
        };
        if typed.1 > MAX_CONDITION_DEPTH {
            return Err(invalid);
        }
        seen.push(typed);
    }
    seen.last().map(|(t, _)| *t).ok_or(invalid)
}
