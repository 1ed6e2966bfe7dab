//! Streaming inspection of bodies and values for sensitive data.
//!
//! # Overview
//!
//! A location's scan set is one unanchored, overlapping (`MatchKind::All`) dense DFA holding the pattern of every
//! classifier the location looks for, so a body is read once whatever the number of classifiers. The scanner steps
//! that DFA by hand, one byte at a time, and keeps its state from one chunk to the next: a match that spans two
//! chunks is found like any other. The last [`RING`] bytes are kept in a ring buffer; when a pattern matches, the
//! classifier's validator walks back from the match end over the ring to find the candidate, confirms it (Luhn,
//! mod-97, area rules, ...; see [`builtin`]) and checks its context keywords. Only counts per classifier are kept,
//! never values.
//!
//! Before the scanner, a `content-encoding` the inspector can remove (gzip, deflate, br) is decoded (see
//! [`encoding`]); a body in any other encoding, or one that does not decode, is not scanned and is reported
//! uninspectable ([`SkipReason::Encoded`]), which rules decide on. Then the content type picks a decoder: text and
//! JSON with their JSON string escapes decoded, form bodies percent-decoded, multipart bodies split into parts
//! (binary parts skipped). A body labelled binary is not inspected unless the policy says so, or unless its first
//! bytes are text (see [`sniff`]): the sender chooses the label, and upstream parsers often ignore it.
//!
//! A body longer than the inspection cap is inspected up to the cap; what was found there counts, and the rest is
//! uninspectable (`inspection=truncated`), which rules decide on like an undecodable body.
//!
//! All per-body state is allocated once in [`BodyInspector::new`]; [`BodyInspector::feed`] never allocates (the
//! `scan_allocations` test counts).
//!
//! # Contract
//!
//! The inspector owns its state and does not borrow the bundle (the filter keeps it next to an `Rc<Bundle>` for the
//! whole exchange); the bundle is passed to `feed` and `finish`, like regex-automata's separate caches. A different
//! bundle than the one the inspector was made for is ignored.
//!
//! ```text
//! let mut inspector = BodyInspector::new(&bundle, Location::ResponseBody, content_type, content_encoding)?;
//! inspector.feed(&bundle, chunk);  // any number of times; never allocates; stops at the inspection cap
//! inspector.finish(&bundle);       // end of stream
//! findings.absorb(&bundle, Location::ResponseBody, inspector.classifier_counts());
//! ```

pub mod builtin;
pub(crate) mod decode;
mod encoding;
pub(crate) mod json;
mod sniff;

use core::fmt;

use regex_automata::dfa::dense::DFA;
use regex_automata::dfa::Automaton;
use regex_automata::util::primitives::StateID;
use regex_automata::util::start;
use regex_automata::Anchored;

use crate::bundle::{Bundle, MAX_CLASSIFIER_MATCH};
use crate::detect::{ClassifierDef, Location, ScanSetDef, Validator};
use decode::{BodyKind, FormDecoder, Multipart, Sink};
use encoding::{Decompressor, Encoding, Halt};
use json::JsonUnescape;
use sniff::Sniff;
pub use sniff::SNIFF_BYTES;

/// Bytes of the stream the scanner keeps for validation and context: the longest match plus the context window.
pub const RING: usize = 1024;
/// Widest context window honoured: what the ring holds beyond the longest match and a terminator.
pub const MAX_CONTEXT_WINDOW: usize = RING - MAX_CLASSIFIER_MATCH as usize - 16;
/// Match ends of a classifier without a validator that are at most this far apart are one finding: an overlapping
/// DFA reports every end of `[0-9]{12,18}` in a 20-digit run, and the run is one thing.
const RUN_GAP: u64 = 2;

/// Why a body was not inspected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SkipReason {
    /// The content type is binary (images, archives, protobuf, ...), the first bytes are not text, and the policy
    /// does not inspect binary.
    Binary,
    /// The body is in a `content-encoding` that cannot be decoded (unknown, stacked, `zstd`, corrupt or cut): it is
    /// uninspectable, and rules reading it are decided by their `on_uninspectable`.
    Encoded,
}

/// What one location scans with, borrowed from the bundle for one call.
struct Ctx<'a> {
    set: &'a ScanSetDef,
    dfa: &'a DFA<Vec<u32>>,
    classifiers: &'a [ClassifierDef],
}

impl<'a> Ctx<'a> {
    fn of(bundle: &'a Bundle, location: Location) -> Option<Ctx<'a>> {
        let (set, dfa) = bundle.scan_set(location)?;
        Some(Ctx { set, dfa, classifiers: bundle.classifiers() })
    }
}

/// Steps the DFA over `bytes` until a special state: `(index of the byte that led to it, that state)`, or
/// `(bytes.len(), state)` when there was none.
#[inline]
fn run(dfa: &DFA<Vec<u32>>, mut state: StateID, bytes: &[u8]) -> (usize, StateID) {
    // Four steps at a time, one test for all four: a special state among them is found in order below, and the
    // steps after it (taken from a special state, which is a valid one) are discarded.
    let mut quads = bytes.chunks_exact(4);
    let mut at = 0usize;
    for quad in &mut quads {
        if let &[b0, b1, b2, b3] = quad {
            let s0 = dfa.next_state(state, b0);
            let s1 = dfa.next_state(s0, b1);
            let s2 = dfa.next_state(s1, b2);
            let s3 = dfa.next_state(s2, b3);
            if dfa.is_special_state(s0) | dfa.is_special_state(s1) | dfa.is_special_state(s2) | dfa.is_special_state(s3)
            {
                return if dfa.is_special_state(s0) {
                    (at, s0)
                } else if dfa.is_special_state(s1) {
                    (at + 1, s1)
                } else if dfa.is_special_state(s2) {
                    (at + 2, s2)
                } else {
                    (at + 3, s3)
                };
            }
            state = s3;
        }
        at += 4;
    }
    for &b in quads.remainder() {
        state = dfa.next_state(state, b);
        if dfa.is_special_state(state) {
            return (at, state);
        }
        at += 1;
    }
    (bytes.len(), state)
}

/// The unanchored start state, given the byte before (for `(?-u:\b)` at a restart).
fn start_state(dfa: &DFA<Vec<u32>>, look_behind: Option<u8>) -> Option<StateID> {
    let config = start::Config::new().anchored(Anchored::No).look_behind(look_behind);
    dfa.start_state(&config).ok()
}

/// The DFA walk, the ring of recent bytes and the counts: everything that crosses chunk boundaries.
struct Scanner {
    /// `None` when the DFA has no unanchored start state (not one the compiler built): nothing is scanned.
    state: Option<StateID>,
    /// The last `RING` bytes before the current chunk, each written at `i` and `i + RING` (see [`Scanner::tail`]).
    ring: Box<[u8; 2 * RING]>,
    /// Where a candidate straddling the ring and the current chunk is put together.
    scratch: Box<[u8; RING]>,
    /// Bytes scanned so far (decoded), i.e. the absolute offset of the next byte.
    pos: u64,
    /// Validators do not walk back before this offset (the start of the current multipart part).
    floor: u64,
    /// Per classifier: the end of the last counted candidate (overlap deduplication), or the last match end of a
    /// classifier without a validator.
    last_end: Vec<u64>,
    counts: Vec<u32>,
    /// Per classifier: whether its pattern starts a tracked token (see [`builtin::Track`]).
    tracks: Vec<Option<builtin::Track>>,
    /// Tokens being followed; a fixed array, as the hot loop must not allocate.
    trackers: [Option<Tracker>; MAX_TRACKERS],
    /// How many of `trackers` are in use: the hot loop looks at them only when some are.
    active: usize,
}

/// The chunk being scanned and the stream offset of its first byte; the bytes before it are in the ring.
#[derive(Clone, Copy)]
struct Here<'c> {
    chunk: &'c [u8],
    base: u64,
}

impl Here<'_> {
    /// Outside a chunk (end of input): everything is in the ring.
    fn committed(pos: u64) -> Here<'static> {
        Here { chunk: &[], base: pos }
    }
}

/// Tokens followed at once (one per tracked classifier); a start when all are busy is dropped.
const MAX_TRACKERS: usize = 8;

/// A token being followed from its start pattern to its end.
#[derive(Clone, Copy, Debug)]
struct Tracker {
    classifier: usize,
    track: builtin::Track,
    /// Stream offset where tracking began.
    since: u64,
    /// The last byte was a space inside the token (a second one ends it).
    after_space: bool,
}

impl Scanner {
    fn new(ctx: &Ctx<'_>) -> Scanner {
        let n = ctx.classifiers.len();
        Scanner {
            state: start_state(ctx.dfa, None),
            ring: Box::new([0; 2 * RING]),
            scratch: Box::new([0; RING]),
            pos: 0,
            floor: 0,
            last_end: vec![0; n],
            counts: vec![0; n],
            tracks: ctx.classifiers.iter().map(|c| builtin::Track::for_id(&c.id)).collect(),
            trackers: [None; MAX_TRACKERS],
            active: 0,
        }
    }

    /// Scans the next decoded bytes.
    fn scan(&mut self, ctx: &Ctx<'_>, bytes: &[u8]) {
        let Some(mut state) = self.state else {
            return;
        };
        let dfa = ctx.dfa;
        let here = Here { chunk: bytes, base: self.pos };
        let mut i = 0usize;
        while let Some(rest) = bytes.get(i..).filter(|r| !r.is_empty()) {
            // The fast path: no call and nothing but the DFA and locals until a state is special. The ring is
            // refreshed once per chunk, below, so the loop does not write memory the DFA table might alias.
            let (stop, next_state) = if self.active == 0 {
                run(dfa, state, rest)
            } else {
                (0, dfa.next_state(state, rest.first().copied().unwrap_or(0)))
            };
            state = next_state;
            let at = i + stop;
            let Some(&b) = bytes.get(at) else {
                break;
            };
            self.pos = here.base + at as u64 + 1;
            if dfa.is_special_state(state) {
                // Matches are reported one byte late: this state is for a match that ends before `b`.
                state = self.special(ctx, here, state, self.pos - 1, Some(b));
            }
            if self.active != 0 {
                self.track(ctx, here, b);
            }
            i = at + 1;
        }
        self.pos = here.base + bytes.len() as u64;
        self.remember(bytes);
        self.state = Some(state);
    }

    /// Keeps the last `RING` bytes of `bytes` (which end at `self.pos`) in the ring, each written twice.
    fn remember(&mut self, bytes: &[u8]) {
        let k = bytes.len().min(RING);
        let Some(src) = bytes.get(bytes.len() - k..) else {
            return;
        };
        let start = (self.pos - k as u64) as usize & (RING - 1);
        let first = k.min(RING - start);
        let (head, wrapped) = src.split_at(first);
        for offset in [0, RING] {
            if let Some(dst) = self.ring.get_mut(start + offset..start + offset + first) {
                dst.copy_from_slice(head);
            }
            if let Some(dst) = self.ring.get_mut(offset..offset + wrapped.len()) {
                dst.copy_from_slice(wrapped);
            }
        }
    }

    /// Follows the tracked tokens over `b` (already in the ring); a byte that does not continue a token ends it.
    fn track(&mut self, ctx: &Ctx<'_>, here: Here<'_>, b: u8) {
        for slot in 0..MAX_TRACKERS {
            let Some(Some(mut t)) = self.trackers.get(slot).copied() else {
                continue;
            };
            let keep = if t.track.continues(b) && self.pos - t.since <= t.track.max_span() {
                t.after_space = false;
                true
            } else if t.after_space {
                false // two spaces: the token ended at the first, which was confirmed then
            } else {
                self.confirm(ctx, here, t.classifier, self.pos - 1, Some(b));
                t.track.spaced() && b == b' ' && self.pos - t.since <= t.track.max_span() && {
                    t.after_space = true;
                    true
                }
            };
            if let Some(entry) = self.trackers.get_mut(slot) {
                if keep {
                    *entry = Some(t);
                } else {
                    *entry = None;
                    self.active -= 1;
                }
            }
        }
    }

    /// Ends every tracked token at the end of the input.
    fn end_tracks(&mut self, ctx: &Ctx<'_>, flush: bool) {
        let here = Here::committed(self.pos);
        for slot in 0..MAX_TRACKERS {
            if let Some(t) = self.trackers.get_mut(slot).and_then(Option::take) {
                self.active -= 1;
                if flush && !t.after_space {
                    self.confirm(ctx, here, t.classifier, self.pos, None);
                }
            }
        }
    }

    /// A tracked classifier's start pattern matched: follow its token, unless it is followed already.
    fn start_tracking(&mut self, classifier: usize, track: builtin::Track) {
        if self.trackers.iter().flatten().any(|t| t.classifier == classifier) {
            return;
        }
        if let Some(free) = self.trackers.iter_mut().find(|t| t.is_none()) {
            *free = Some(Tracker { classifier, track, since: self.pos, after_space: false });
            self.active += 1;
        }
    }

    /// Matches ending at the end of the input (or of a part), then a fresh start for what follows.
    fn end_segment(&mut self, ctx: &Ctx<'_>, flush: bool) {
        if let (Some(state), true) = (self.state, flush) {
            let eoi = ctx.dfa.next_eoi_state(state);
            if ctx.dfa.is_match_state(eoi) {
                self.special(ctx, Here::committed(self.pos), eoi, self.pos, None);
            }
        }
        self.end_tracks(ctx, flush);
        self.state = start_state(ctx.dfa, None);
        self.floor = self.pos;
    }

    fn special(&mut self, ctx: &Ctx<'_>, here: Here<'_>, state: StateID, end: u64, next: Option<u8>) -> StateID {
        let dfa = ctx.dfa;
        if dfa.is_match_state(state) {
            for i in 0..dfa.match_len(state) {
                let pattern = dfa.match_pattern(state, i);
                if let Some(&classifier) = ctx.set.patterns.get(pattern.as_usize()) {
                    self.candidate(ctx, here, usize::from(classifier), end, next);
                }
            }
            state
        } else if dfa.is_dead_state(state) || dfa.is_quit_state(state) {
            // An unanchored scan set never dies; if a foreign DFA does, start over rather than stop looking.
            start_state(dfa, next).unwrap_or(state)
        } else {
            state
        }
    }

    /// The bytes before `end` (at most `want`, within what is kept and the current part), as one slice: from the
    /// current chunk when they are all in it, from the ring (every byte is written twice, `RING` apart, so any
    /// window of it is contiguous) when they all came before it, and assembled in `scratch` when they straddle.
    fn tail<'a>(&'a mut self, here: Here<'a>, end: u64, want: usize) -> &'a [u8] {
        // Kept: the ring's [base - RING, base), then the chunk's [base, base + chunk.len()).
        let oldest = here.base.saturating_sub(RING as u64).max(self.floor);
        let n = end.saturating_sub(oldest).min(want as u64).min(RING as u64 - 1);
        let from = end - n;
        if from >= here.base {
            let (a, b) = ((from - here.base) as usize, (end - here.base) as usize);
            return here.chunk.get(a..b).unwrap_or(&[]);
        }
        let ring_end = end.min(here.base);
        let ring_base = (ring_end as usize & (RING - 1)) + RING;
        let ring_part = self.ring.get(ring_base - (ring_end - from) as usize..ring_base).unwrap_or(&[]);
        if end <= here.base {
            return ring_part;
        }
        let chunk_part = here.chunk.get(..(end - here.base) as usize).unwrap_or(&[]);
        let total = ring_part.len() + chunk_part.len();
        if let Some(dst) = self.scratch.get_mut(..ring_part.len()) {
            dst.copy_from_slice(ring_part);
        }
        if let Some(dst) = self.scratch.get_mut(ring_part.len()..total) {
            dst.copy_from_slice(chunk_part);
        }
        self.scratch.get(..total).unwrap_or(&[])
    }

    /// A match of `classifier` ends at `end`: start following its token, or confirm it now.
    fn candidate(&mut self, ctx: &Ctx<'_>, here: Here<'_>, classifier: usize, end: u64, next: Option<u8>) {
        match self.tracks.get(classifier).copied().flatten() {
            Some(track) if next.is_some() => self.start_tracking(classifier, track),
            // At the end of the input the token ends where its start pattern did.
            _ => self.confirm(ctx, here, classifier, end, next),
        }
    }

    /// A candidate of `classifier` ends at `end`: confirm it, check its context, count it once.
    fn confirm(&mut self, ctx: &Ctx<'_>, here: Here<'_>, classifier: usize, end: u64, next: Option<u8>) {
        let track = self.tracks.get(classifier).copied().flatten();
        let Some(def) = ctx.classifiers.get(classifier) else {
            return;
        };
        let (Some(last_end), Some(count)) =
            (self.last_end.get(classifier).copied(), self.counts.get(classifier).copied())
        else {
            return;
        };
        let configured = usize::from(def.context_window).min(MAX_CONTEXT_WINDOW);
        let max_len = usize::from(def.max_len.min(MAX_CLASSIFIER_MATCH));
        let keywords = || def.context.iter().map(|k| k.as_bytes());
        if def.validator == Validator::None && track.is_none() {
            // No validator, no start: a run of nearby ends is one finding.
            let fresh = count == 0 || end > last_end + RUN_GAP;
            self.set_last_end(classifier, end);
            if !fresh {
                return;
            }
            if !def.context.is_empty() {
                let tail = self.tail(here, end, max_len + configured);
                if !builtin::has_keyword(tail, keywords()) {
                    return;
                }
            }
        } else {
            let window = if configured == 0 { usize::from(builtin::DEFAULT_CONTEXT_WINDOW) } else { configured };
            // A terminator (up to 3 bytes) may follow the candidate inside the match.
            let tail = self.tail(here, end, max_len + 4 + window);
            let found = match track {
                Some(track) => track.confirm(tail, next),
                None => builtin::confirm(def.validator, tail, next, window),
            };
            let Some((s, e)) = found else {
                return;
            };
            if !def.context.is_empty() {
                let before = tail.get(s.saturating_sub(configured)..s).unwrap_or(&[]);
                if !builtin::has_keyword(before, keywords()) {
                    return;
                }
            }
            let base = end - tail.len() as u64;
            let (start, stop) = (base + s as u64, base + e as u64);
            // Overlapping candidates (`a@b.co` then `a@b.co.uk`, a card seen at several ends) are one finding.
            self.set_last_end(classifier, last_end.max(stop));
            if start < last_end && count > 0 {
                return;
            }
        }
        if let Some(count) = self.counts.get_mut(classifier) {
            *count = count.saturating_add(1);
        }
    }

    /// Drops every count and followed token (a body that turned out to be binary), without allocating.
    fn forget(&mut self) {
        self.counts.fill(0);
        self.last_end.fill(0);
        self.trackers = [None; MAX_TRACKERS];
        self.active = 0;
    }

    fn set_last_end(&mut self, classifier: usize, end: u64) {
        if let Some(slot) = self.last_end.get_mut(classifier) {
            *slot = end;
        }
    }
}

/// Hands decoded bytes to the scanner.
struct ScanSink<'s, 'c> {
    scanner: &'s mut Scanner,
    ctx: &'s Ctx<'c>,
}

impl Sink for ScanSink<'_, '_> {
    fn bytes(&mut self, bytes: &[u8]) {
        self.scanner.scan(self.ctx, bytes);
    }

    fn segment_end(&mut self) {
        self.scanner.end_segment(self.ctx, true);
    }
}

/// How a body's bytes reach the scanner.
enum Decoder {
    /// As they are (binary, when the policy inspects it).
    Plain,
    /// Text: JSON string escapes decoded.
    Text(JsonUnescape),
    Form(FormDecoder),
    /// Multipart: parts split, and JSON string escapes decoded in the text parts.
    Multipart(Box<(Multipart, JsonUnescape)>),
    /// Labelled binary: read as text while its first bytes are text, dropped from the first one that is not.
    Sniffed(Box<(Sniff, JsonUnescape)>),
}

/// A sink that decodes JSON string escapes before the scanner; a part's end flushes an unfinished escape.
struct Unescaping<'u, 's, 'c> {
    json: &'u mut JsonUnescape,
    inner: &'u mut ScanSink<'s, 'c>,
}

impl Sink for Unescaping<'_, '_, '_> {
    fn bytes(&mut self, bytes: &[u8]) {
        self.json.feed(bytes, self.inner);
    }

    fn segment_end(&mut self) {
        self.json.finish(self.inner);
        self.inner.segment_end();
    }
}

impl Decoder {
    fn feed(&mut self, bytes: &[u8], sink: &mut ScanSink<'_, '_>) {
        match self {
            Decoder::Plain => sink.bytes(bytes),
            Decoder::Text(d) => d.feed(bytes, sink),
            Decoder::Form(d) => d.feed(bytes, sink),
            Decoder::Multipart(m) => {
                let (parts, json) = &mut **m;
                parts.feed(bytes, &mut Unescaping { json, inner: sink });
            }
            Decoder::Sniffed(s) => {
                let (sniff, json) = &mut **s;
                if sniff.text(bytes) {
                    json.feed(bytes, sink);
                }
            }
        }
    }

    /// True when a body labelled binary turned out to be binary.
    fn found_binary(&self) -> bool {
        matches!(self, Decoder::Sniffed(s) if s.0.is_binary())
    }

    fn finish(&mut self, sink: &mut ScanSink<'_, '_>) {
        match self {
            Decoder::Plain => {}
            Decoder::Text(d) => d.finish(sink),
            Decoder::Form(d) => d.finish(sink),
            Decoder::Multipart(m) => {
                let (parts, json) = &mut **m;
                parts.finish(&mut Unescaping { json, inner: sink });
                json.finish(sink);
            }
            Decoder::Sniffed(s) => {
                let (sniff, json) = &mut **s;
                if !sniff.is_binary() {
                    json.finish(sink);
                }
            }
        }
    }
}

/// Streams one body through the scan set of its location, chunk by chunk, up to the inspection cap.
pub struct BodyInspector {
    location: Location,
    /// The bundle this inspector was made for: its DFA states mean nothing to another bundle's DFA.
    digest: [u8; 32],
    scanner: Scanner,
    /// The `content-encoding` being removed, if any.
    encoding: Option<Box<Decompressor>>,
    decoder: Decoder,
    cap: u64,
    inspected: u64,
    truncated: bool,
    skipped: Option<SkipReason>,
    finished: bool,
}

impl fmt::Debug for BodyInspector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the ring: it holds body bytes.
        f.debug_struct("BodyInspector")
            .field("location", &self.location)
            .field("inspected", &self.inspected)
            .field("truncated", &self.truncated)
            .field("skipped", &self.skipped)
            .field("counts", &self.scanner.counts)
            .finish_non_exhaustive()
    }
}

impl BodyInspector {
    /// An inspector for a body in `location`; `None` when the bundle looks for nothing there.
    ///
    /// `content_type` and `content_encoding` are the header values (`None`: absent). A body in `gzip`, `deflate` or
    /// `br` is decoded as it streams; one in any other encoding is skipped as [`SkipReason::Encoded`] (uninspectable,
    /// see [`BodyInspector::uninspectable`]); a content type not recognised as text is skipped as
    /// [`SkipReason::Binary`] (as soon as its first [`SNIFF_BYTES`] bytes show it is not text) unless the bundle
    /// inspects binary. Text (and no content type), JSON, XML, form-urlencoded and multipart bodies are inspected.
    pub fn new(
        bundle: &Bundle,
        location: Location,
        content_type: Option<&[u8]>,
        content_encoding: Option<&[u8]>,
    ) -> Option<BodyInspector> {
        let ctx = Ctx::of(bundle, location)?;
        let inspect_binary = bundle.inspection().inspect_binary;
        let cap = u64::from(bundle.inspection().max_body_bytes);
        let mut skipped = None;
        let encoding = match encoding::parse(content_encoding) {
            Encoding::Identity => None,
            Encoding::Decode(coding) => Some(Box::new(Decompressor::new(coding, cap))),
            Encoding::Unsupported => {
                skipped = Some(SkipReason::Encoded);
                None
            }
        };
        let decoder = match decode::classify(content_type) {
            _ if skipped.is_some() => Decoder::Plain,
            BodyKind::Text => Decoder::Text(JsonUnescape::default()),
            BodyKind::Form => Decoder::Form(FormDecoder::default()),
            BodyKind::Multipart => content_type
                .and_then(decode::boundary)
                .and_then(|b| Multipart::new(b, inspect_binary))
                // Without a usable boundary the parts cannot be told apart: read it all as text.
                .map_or(Decoder::Text(JsonUnescape::default()), |m| {
                    Decoder::Multipart(Box::new((m, JsonUnescape::default())))
                }),
            BodyKind::Binary if inspect_binary => Decoder::Plain,
            // Labelled binary: whether it is depends on its first bytes, whoever chose the label.
            BodyKind::Binary => Decoder::Sniffed(Box::default()),
        };
        Some(BodyInspector {
            location,
            digest: *bundle.digest(),
            scanner: Scanner::new(&ctx),
            encoding,
            decoder,
            cap,
            inspected: 0,
            truncated: false,
            skipped,
            finished: false,
        })
    }

    /// Inspects the next chunk. Never allocates for an identity body; past the cap (of bytes received, or of bytes
    /// decoded) it only records that the body was truncated.
    pub fn feed(&mut self, bundle: &Bundle, chunk: &[u8]) {
        let undecodable = self.skipped == Some(SkipReason::Encoded);
        if self.finished || (self.skipped.is_some() && !undecodable) || chunk.is_empty() {
            return;
        }
        if bundle.digest() != &self.digest {
            return;
        }
        let room = self.cap.saturating_sub(self.inspected);
        let len = chunk.len() as u64;
        if len > room {
            self.truncated = true;
        }
        let take = len.min(room) as usize;
        let Some(part) = chunk.get(..take).filter(|p| !p.is_empty()) else {
            return;
        };
        // An undecodable body is still counted, so that the filter knows when it passed the cap.
        self.inspected += take as u64;
        if undecodable {
            return;
        }
        let Some(ctx) = Ctx::of(bundle, self.location) else {
            return;
        };
        let mut sink = ScanSink { scanner: &mut self.scanner, ctx: &ctx };
        let decoder = &mut self.decoder;
        match self.encoding.as_mut() {
            None => decoder.feed(part, &mut sink),
            Some(encoding) => match encoding.feed(part, &mut |bytes| decoder.feed(bytes, &mut sink)) {
                Ok(()) => {}
                Err(Halt::Full) => {
                    // Decoded bytes count against the cap like received ones: inspection stops here.
                    self.truncated = true;
                    self.inspected = self.cap;
                }
                Err(Halt::Undecodable) => self.skipped = Some(SkipReason::Encoded),
            },
        }
        if self.decoder.found_binary() {
            // Not text after all: skipped like a binary body, and what its first bytes seemed to hold is dropped.
            self.skipped = Some(SkipReason::Binary);
            self.truncated = false;
            self.scanner.forget();
        }
    }

    /// Ends the stream (flushes matches that end at the last byte). A truncated body is not flushed: what the cap
    /// cut in two is not a candidate. Idempotent.
    pub fn finish(&mut self, bundle: &Bundle) {
        if self.finished || self.skipped.is_some() || bundle.digest() != &self.digest {
            return;
        }
        self.finished = true;
        let Some(ctx) = Ctx::of(bundle, self.location) else {
            return;
        };
        // A compressed stream that stops short was cut or is corrupt (unless the cap stopped it).
        if !self.truncated && self.encoding.as_ref().is_some_and(|e| e.finish().is_err()) {
            self.skipped = Some(SkipReason::Encoded);
        }
        let mut sink = ScanSink { scanner: &mut self.scanner, ctx: &ctx };
        self.decoder.finish(&mut sink);
        let flush = !self.truncated;
        self.scanner.end_segment(&ctx, flush);
    }

    /// True when the body was longer than the inspection cap.
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// Why the body was not inspected (at all, or from some point on), if it was not.
    pub fn skipped(&self) -> Option<SkipReason> {
        self.skipped
    }

    /// True when the body could not be inspected in full: its encoding cannot be decoded, it did not decode
    /// (`inspection=encoded`), or it is longer than the inspection cap, as received or decoded
    /// (`inspection=truncated`). Findings up to that point still count; what was not read is the finding, which rules
    /// decide on by their `on_uninspectable`. A binary body the policy does not inspect is not uninspectable.
    pub fn uninspectable(&self) -> bool {
        self.encoded() || (self.truncated && self.skipped.is_none())
    }

    /// True when the body, or a multipart part of it, is in an encoding the scanner cannot read through
    /// (`inspection=encoded`).
    pub fn encoded(&self) -> bool {
        self.skipped == Some(SkipReason::Encoded)
            || matches!(&self.decoder, Decoder::Multipart(m) if m.0.saw_encoded_part())
    }

    /// Bytes inspected so far (as received, before any decoding).
    pub fn inspected_bytes(&self) -> u64 {
        self.inspected
    }

    /// Confirmed findings so far, per classifier index.
    pub fn classifier_counts(&self) -> &[u32] {
        &self.scanner.counts
    }
}

/// A complete body with its `content-encoding` removed, for reading its fields: `None` when the encoding cannot
/// be decoded, the stream is corrupt or cut, or the decoded body is longer than `cap` bytes. An identity body is
/// returned as it is.
pub fn decode_body<'b>(
    content_encoding: Option<&[u8]>,
    body: &'b [u8],
    cap: usize,
) -> Option<std::borrow::Cow<'b, [u8]>> {
    let coding = match encoding::parse(content_encoding) {
        Encoding::Identity => return (body.len() <= cap).then_some(std::borrow::Cow::Borrowed(body)),
        Encoding::Decode(coding) => coding,
        Encoding::Unsupported => return None,
    };
    let mut decoder = Decompressor::new(coding, u64::try_from(cap).unwrap_or(u64::MAX));
    let mut out = Vec::new();
    decoder.feed(body, &mut |bytes| out.extend_from_slice(bytes)).ok()?;
    decoder.finish().ok()?;
    Some(std::borrow::Cow::Owned(out))
}

/// Scans a complete value (e.g. the query string, percent-decoded) and returns confirmed findings per classifier.
///
/// The value is percent-decoded here, `+` as a space, as a query string is: the filter passes `request.query` raw.
pub fn scan_value(bundle: &Bundle, location: Location, value: &[u8]) -> Vec<u32> {
    let Some(ctx) = Ctx::of(bundle, location) else {
        return vec![0; bundle.classifiers().len()];
    };
    let mut scanner = Scanner::new(&ctx);
    let mut decoder = FormDecoder::default();
    let mut sink = ScanSink { scanner: &mut scanner, ctx: &ctx };
    decoder.feed(value, &mut sink);
    decoder.finish(&mut sink);
    scanner.end_segment(&ctx, true);
    scanner.counts
}

/// Findings per detection for one exchange.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Findings {
    counts: Vec<u32>,
    /// Per location (see [`Location::index`]): the body there could not be inspected.
    uninspectable: [bool; 3],
}

impl Findings {
    /// No findings yet, sized for `bundle`'s detections.
    pub fn new(bundle: &Bundle) -> Findings {
        Findings { counts: vec![0; bundle.detections().len()], uninspectable: [false; 3] }
    }

    /// Records whether the body in `location` could be inspected (see [`BodyInspector::uninspectable`]).
    pub fn set_uninspectable(&mut self, location: Location, uninspectable: bool) {
        if let Some(slot) = self.uninspectable.get_mut(location.index()) {
            *slot = uninspectable;
        }
    }

    /// True when the body in `location` could not be inspected.
    pub fn uninspectable(&self, location: Location) -> bool {
        self.uninspectable.get(location.index()).copied().unwrap_or(false)
    }

    /// True when some body of the exchange could not be inspected.
    pub fn any_uninspectable(&self) -> bool {
        self.uninspectable.iter().any(|u| *u)
    }

    /// Sets the counts of the detections in `location` from that location's classifier counts, applying layering
    /// (`requires`): a layered detection counts only if the detection it requires fired too.
    pub fn absorb(&mut self, bundle: &Bundle, location: Location, classifier_counts: &[u32]) {
        for (i, d) in bundle.detections().iter().enumerate() {
            // Attack detections are counted by the attack inspector (`set_count`).
            if d.location != location || !d.scans() {
                continue;
            }
            let mut n = classifier_counts.get(usize::from(d.classifier)).copied().unwrap_or(0);
            if let Some(r) = d.requires {
                if self.counts.get(usize::from(r)).copied().unwrap_or(0) == 0 {
                    n = 0;
                }
            }
            if let Some(slot) = self.counts.get_mut(i) {
                *slot = n;
            }
        }
    }

    /// Sets the findings of detection number `detection` (an attack detection, counted outside the scan).
    pub fn set_count(&mut self, detection: u16, count: u32) {
        if let Some(slot) = self.counts.get_mut(usize::from(detection)) {
            *slot = count;
        }
    }

    /// Findings of detection number `detection`.
    pub fn count(&self, detection: u16) -> u32 {
        self.counts.get(usize::from(detection)).copied().unwrap_or(0)
    }

    /// `(detection index, count)` for every detection that found something.
    pub fn nonzero(&self) -> impl Iterator<Item = (u16, u32)> + '_ {
        self.counts.iter().enumerate().filter(|(_, c)| **c > 0).filter_map(|(i, c)| Some((u16::try_from(i).ok()?, *c)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::{encode, BundleContent};

    #[test]
    fn nothing_to_look_for() {
        let bundle = Bundle::from_bytes(&encode(&BundleContent::default()).unwrap()).unwrap();
        assert!(BodyInspector::new(&bundle, Location::RequestBody, None, None).is_none());
        assert_eq!(scan_value(&bundle, Location::RequestQuery, b"a=4111111111111111"), Vec::<u32>::new());
    }
}

/// Scanner tests against a bundle with every built-in, built by the compiler.
#[cfg(all(test, feature = "compiler"))]
mod scanner_tests;
