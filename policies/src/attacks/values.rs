//! Taking a request apart into values, and running the enabled checks on each.
//!
//! Every part of the request is split into values the way the application will read them, each value normalised
//! ([`super::normalize`]) into the inspector's scratch space, and each enabled [`Check`] run on it. Nothing is
//! allocated per value: the scratch buffers are sized once, by [`Limits`].
//!
//! # What is a value, and what is its name
//!
//! | Part                  | Values (`raw`: decoded once, as the application reads it)           | Name reported      |
//! |-----------------------|---------------------------------------------------------------------|--------------------|
//! | Path                  | each segment between `/`, percent-decoded; the whole path too when  | `1`, `2`… (the     |
//! |                       | it holds `..` (a climb spans segments)                              | segment), `""`     |
//! | Query, form body      | each `&`-separated name and value, percent-decoded, `+` a space;    | the parameter name |
//! |                       | a piece without `=` is one value                                    |                    |
//! | Headers               | the values of the chosen headers ([`DEFAULT_HEADERS`], or the list  | the header name    |
//! |                       | given to [`Inspector::with_headers`]), as sent                      |                    |
//! | Cookies               | each cookie's name and value (`Cookie:` split on `;`), value        | the cookie name    |
//! |                       | percent-decoded                                                     |                    |
//! | Multipart form body   | each field name; the content of a field without a file name, or of | the field name;    |
//! |                       | a text file (`text/*`, JSON, XML...); the file name of other files  | under it for JSON  |
//! |                       | (never their bytes); JSON and XML parts read as JSON and XML        | and XML parts      |
//! | JSON body             | every object key (as a name) and every leaf string (JSON escapes    | the dotted path:   |
//! |                       | removed, by the decoder the sensitive-data scanner uses) and number | `user.name`,       |
//! |                       |                                                                     | `items[].sku`      |
//! | XML body              | the document once, for the XXE check only (it reads the prolog);    | `""`; the element  |
//! |                       | every text node and CDATA section; every attribute value            | path `order.item`; |
//! |                       |                                                                     | `order.item[@id]`  |
//! | Other text bodies     | the whole body, one value                                           | `""`               |
//!
//! Array elements share one name (`items[].sku`), so one exclusion covers them all. The query is split on `&`
//! only: splitting on `;` too would cut `x;cat /etc/passwd` into two harmless values, while a value that keeps its
//! `;` still shows whatever follows it. Binary bodies (by content type) are not inspected.
//!
//! # Exclusions
//!
//! A check's `skip` list holds parameter names as reported, prefixed with their place as evidence names it:
//! `path.3`, `query.q`, `header.user-agent`, `cookie.session`, and `body.user.name` for any body (form, multipart,
//! JSON, XML, other text); the internal place names (`json.user.name`, `form.comment`) are accepted too. A bare name
//! never matches, so a query parameter an attacker names `body.html` is not taken for the body field `html`.
//!
//! # Bounds
//!
//! A value (or name) longer than [`Limits::max_value_bytes`] after its first decoding is inspected up to there and
//! the request marked uninspectable; past [`Limits::max_values`] values (names and values together, counted across
//! the parts of one request in [`Findings::values`]) the request is marked uninspectable and inspection stops. JSON
//! and XML nested deeper than [`MAX_DEPTH`] are marked uninspectable and not read further; so is an XML document
//! whose prolog (where XXE lives) is longer than the value cap. A JSON key seen again at the same path (the keys of
//! every record in an array) is inspected once per body while it finds nothing: the same bytes, name and place give
//! the same answer, and a large list of records stays within the value cap. A JSON body that is not JSON is
//! inspected as one text value as well, so a wrong content type hides nothing. Every parser reads its input once,
//! so the cost of a part is linear in its length.

mod body;

use super::normalize::Normalizer;
use super::{AttackClass, Place, Sensitivity, Subject};

/// Bounds that make the cost of one request predictable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The most bytes of one value inspected; a longer value is inspected up to here and reported uninspectable.
    pub max_value_bytes: usize,
    /// The most values of one request inspected (names and values together); past it, the request is reported
    /// uninspectable.
    pub max_values: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits { max_value_bytes: 8 * 1024, max_values: 16 * 1024 }
    }
}

/// One part of a request, as the filter has it.
#[derive(Clone, Copy, Debug)]
pub enum Part<'a> {
    /// The URL path, raw (percent-encoded), without the query (anything from a `?` on is ignored).
    Path(&'a [u8]),
    /// The query string, raw, without the `?`.
    Query(&'a [u8]),
    /// Request headers (names in lower case): the chosen headers are inspected, and `cookie` split into cookies.
    Headers(&'a [(&'a [u8], &'a [u8])]),
    /// The request body (content coding removed), up to the inspection cap, with its `content-type`.
    Body { content_type: &'a [u8], body: &'a [u8] },
}

/// One detection's check, as the engine hands it to the inspector for this request.
#[derive(Clone, Copy, Debug)]
pub struct Check<'a> {
    /// What to look for.
    pub class: AttackClass,
    /// How eagerly.
    pub sensitivity: Sensitivity,
    /// Where: a bit per [`Place`] (`1 << place as u8`).
    pub places: u8,
    /// Parameter names excluded on this request's endpoint (see the module doc for the forms accepted).
    pub skip: &'a [&'a [u8]],
}

/// The most findings one request records (further ones are counted, not named).
pub const MAX_FINDINGS: usize = 8;
/// The number of attack classes, for per-class tables.
const CLASSES: usize = AttackClass::ALL.len();
/// The longest parameter name kept in a finding (longer names are cut, and marked so in evidence).
pub const MAX_NAME: usize = 48;
/// The deepest JSON or XML nesting read; deeper documents are reported uninspectable.
pub const MAX_DEPTH: usize = 64;

/// Headers inspected when no list is configured: those that carry user input to applications and their logs.
/// `cookie` is always split into cookies and inspected, whatever the list.
pub const DEFAULT_HEADERS: &[&[u8]] = &[
    b"user-agent",
    b"referer",
    b"origin",
    b"x-forwarded-for",
    b"x-forwarded-host",
    b"forwarded",
    b"x-real-ip",
    b"x-client-ip",
    b"true-client-ip",
    b"x-original-url",
    b"x-rewrite-url",
    // The header Log4Shell scanners spray, after the vulnerable demo application that logged it.
    b"x-api-version",
    // Upload APIs take the file's name in a header: a name the server writes to disk.
    b"x-filename",
    b"x-file-name",
];

/// One attack found: which check, where, and the parameter's name (never the value).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Finding {
    /// Index of the check (in the slice given to [`Inspector::inspect`]) that fired.
    pub check: u16,
    /// The class it found.
    pub class: AttackClass,
    /// Where.
    pub place: Place,
    /// The parameter's name as the application sees it (`q`, `user.name` for a JSON path, a header name), cut to
    /// [`MAX_NAME`] bytes (a name of exactly [`MAX_NAME`] bytes may have been cut): attacker-controlled, escape
    /// before logging.
    pub name: [u8; MAX_NAME],
    /// How many bytes of `name` are used.
    pub name_len: u8,
}

impl Finding {
    /// The parameter's name (cut to [`MAX_NAME`]): attacker-controlled, escape before logging.
    pub fn name(&self) -> &[u8] {
        self.name.get(..usize::from(self.name_len)).unwrap_or_default()
    }
}

/// What the inspection of one request found: fixed size, no allocation.
#[derive(Clone, Copy, Debug, Default)]
pub struct Findings {
    /// The first findings, in the order found.
    pub items: [Option<Finding>; MAX_FINDINGS],
    /// Every finding, including those past [`MAX_FINDINGS`].
    pub total: u32,
    /// A bit per check that fired (checks past 64 share bit 63).
    pub fired: u64,
    /// Whether some value or part could not be inspected (over a cap): a finding the policy decides on.
    pub uninspectable: bool,
    /// How many values (names and values) of the request were inspected so far: the count [`Limits::max_values`]
    /// bounds across the parts of one request.
    pub values: u32,
}

/// The inspector: scratch space sized once, reused for every value of every request.
#[derive(Debug)]
pub struct Inspector {
    limits: Limits,
    headers: Vec<Box<[u8]>>,
    normalizer: Normalizer,
    /// A value decoded once.
    value: Box<[u8]>,
    /// A name decoded once, or a JSON or XML path.
    name: Box<[u8]>,
    /// JSON keys already inspected clean in this body.
    keys: Box<body::KeyCache>,
}

impl Inspector {
    /// An inspector with scratch space for `limits`, inspecting the [`DEFAULT_HEADERS`].
    pub fn new(limits: Limits) -> Inspector {
        Inspector::with_headers(limits, DEFAULT_HEADERS)
    }

    /// An inspector with scratch space for `limits`, inspecting the headers named in `headers` (any case) besides
    /// the cookies.
    pub fn with_headers(limits: Limits, headers: &[&[u8]]) -> Inspector {
        Inspector {
            limits,
            headers: headers.iter().map(|h| h.to_ascii_lowercase().into_boxed_slice()).collect(),
            normalizer: Normalizer::new(limits.max_value_bytes),
            value: vec![0; limits.max_value_bytes].into_boxed_slice(),
            name: vec![0; limits.max_value_bytes].into_boxed_slice(),
            keys: Box::default(),
        }
    }

    /// The limits it was made with.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Inspects one part of a request with `checks`, adding to `findings`. Never allocates per value; never panics.
    pub fn inspect(&mut self, part: Part<'_>, checks: &[Check<'_>], findings: &mut Findings) {
        self.inspect_with(part, checks, findings, &AttackClass::detect);
    }

    /// [`Inspector::inspect`] with the detectors given by `detect` (tests use stand-ins).
    fn inspect_with<D>(&mut self, part: Part<'_>, checks: &[Check<'_>], findings: &mut Findings, detect: &D)
    where
        D: Fn(AttackClass, &Subject<'_>, Sensitivity) -> bool,
    {
        let Inspector { limits, headers, normalizer, value, name, keys } = self;
        let mut run = Run { checks, findings, normalizer, keys, limits: *limits, detect, stopped: false };
        match part {
            Part::Path(path) => run.path(path, value, name),
            Part::Query(query) => run.pairs(query, Place::Query, value, name),
            Part::Headers(list) => run.headers(list, headers, value, name),
            Part::Body { content_type, body } => run.body(content_type, body, value, name),
        }
    }
}

/// One value to inspect.
struct Value<'v> {
    /// Decoded once; cut to the value cap by [`Run::value`].
    raw: &'v [u8],
    /// Whether `raw` was already cut (decoding it once overflowed the scratch space).
    cut: bool,
    name: &'v [u8],
    is_name: bool,
    place: Place,
    /// Whether the place is form-encoded (`+` is a space).
    form: bool,
    /// Only this class looks at it (the XML document as a whole, for XXE).
    only: Option<AttackClass>,
}

impl<'v> Value<'v> {
    fn new(raw: &'v [u8], name: &'v [u8], place: Place) -> Value<'v> {
        let form = matches!(place, Place::Query | Place::Form | Place::Cookie);
        Value { raw, cut: false, name, is_name: false, place, form, only: None }
    }
}

/// One inspection of one part: the checks, where findings go, and the scratch space.
struct Run<'r, 'k, D> {
    checks: &'r [Check<'k>],
    findings: &'r mut Findings,
    normalizer: &'r mut Normalizer,
    keys: &'r mut body::KeyCache,
    limits: Limits,
    detect: &'r D,
    /// The request's value cap was reached: nothing more is inspected.
    stopped: bool,
}

impl<D> Run<'_, '_, D>
where
    D: Fn(AttackClass, &Subject<'_>, Sensitivity) -> bool,
{
    /// Normalises one value and runs the checks on it; `false` once the request's value cap is reached.
    fn value(&mut self, v: Value<'_>) -> bool {
        let bit = 1u8 << (v.place as u8);
        if !self.stopped && !self.checks.iter().any(|c| c.places & bit != 0) {
            // Nothing looks here: not inspected, so not counted either.
            return true;
        }
        if self.stopped || self.findings.values as usize >= self.limits.max_values {
            self.findings.uninspectable = true;
            self.stopped = true;
            return false;
        }
        self.findings.values = self.findings.values.saturating_add(1);
        let raw = v.raw.get(..self.limits.max_value_bytes).unwrap_or(v.raw);
        if v.cut || raw.len() < v.raw.len() {
            self.findings.uninspectable = true;
        }
        let normalized = self.normalizer.normalize(raw, v.form);
        let subject = Subject {
            raw,
            decoded: normalized.decoded,
            lower: normalized.lower,
            bytes: normalized.bytes,
            is_name: v.is_name,
            place: v.place,
        };
        let applies = |check: &Check<'_>| {
            check.places & bit != 0
                && v.only.is_none_or(|only| only == check.class)
                && !skipped(check.skip, v.place, v.name)
        };
        // Each level finds everything the level below finds, so a class is run once at the highest level any check
        // asks of it, and at a lower level only when that found something (a policy that blocks at medium and
        // watches at high pays for one run per class on a clean value).
        let mut highest: [Option<Sensitivity>; CLASSES] = [None; CLASSES];
        for check in self.checks.iter().filter(|c| applies(c)) {
            if let Some(slot) = highest.get_mut(check.class as usize) {
                *slot = (*slot).max(Some(check.sensitivity));
            }
        }
        let mut known: [[Option<bool>; 3]; CLASSES] = [[None; 3]; CLASSES];
        for (index, check) in self.checks.iter().enumerate() {
            if !applies(check) {
                continue;
            }
            let class = check.class as usize;
            let Some(levels) = known.get_mut(class) else { continue };
            let run = |level: Sensitivity, levels: &mut [Option<bool>; 3]| -> bool {
                if let Some(found) = levels.get(level as usize).copied().flatten() {
                    return found;
                }
                let found = (self.detect)(check.class, &subject, level);
                if let Some(slot) = levels.get_mut(level as usize) {
                    *slot = Some(found);
                }
                found
            };
            let top = highest.get(class).copied().flatten().unwrap_or(check.sensitivity);
            let found =
                if top > check.sensitivity && !run(top, levels) { false } else { run(check.sensitivity, levels) };
            if found {
                record(self.findings, index, check.class, v.place, v.name);
            }
        }
        true
    }

    /// Path segments, and the whole path when it climbs.
    fn path(&mut self, path: &[u8], value: &mut [u8], name: &mut [u8]) {
        let path = path.split(|b| *b == b'?' || *b == b'#').next().unwrap_or_default();
        let (len, cut) = percent_once(path, false, value);
        let whole = value.get(..len).unwrap_or_default();
        if whole.windows(2).any(|w| w == b"..") {
            let mut v = Value::new(whole, b"", Place::Path);
            v.cut = cut;
            if !self.value(v) {
                return;
            }
        }
        for (index, segment) in path.split(|b| *b == b'/').filter(|s| !s.is_empty()).enumerate() {
            let (len, cut) = percent_once(segment, false, value);
            let digits = decimal(index + 1, name);
            let mut v =
                Value::new(value.get(..len).unwrap_or_default(), name.get(..digits).unwrap_or_default(), Place::Path);
            v.cut = cut;
            if !self.value(v) {
                return;
            }
        }
    }

    /// `name=value` pairs separated by `&`: a query string or a form body.
    fn pairs(&mut self, text: &[u8], place: Place, value: &mut [u8], name: &mut [u8]) {
        for piece in text.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
            let Some(eq) = memchr::memchr(b'=', piece) else {
                // A piece without `=`: one value, named by itself.
                let (len, cut) = percent_once(piece, true, value);
                let decoded = value.get(..len).unwrap_or_default();
                let mut v = Value::new(decoded, decoded, place);
                v.cut = cut;
                if !self.value(v) {
                    return;
                }
                continue;
            };
            let (name_len, name_cut) = percent_once(piece.get(..eq).unwrap_or_default(), true, name);
            let (value_len, value_cut) = percent_once(piece.get(eq + 1..).unwrap_or_default(), true, value);
            let name = name.get(..name_len).unwrap_or_default();
            let mut n = Value::new(name, name, place);
            n.is_name = true;
            n.cut = name_cut;
            let mut v = Value::new(value.get(..value_len).unwrap_or_default(), name, place);
            v.cut = value_cut;
            if !self.value(n) || !self.value(v) {
                return;
            }
        }
    }

    /// The chosen headers, and the cookies.
    fn headers(&mut self, list: &[(&[u8], &[u8])], chosen: &[Box<[u8]>], value: &mut [u8], name: &mut [u8]) {
        for &(header, content) in list {
            if header.eq_ignore_ascii_case(b"cookie") {
                self.cookies(content, value, name);
            } else if chosen.iter().any(|c| header.eq_ignore_ascii_case(c)) {
                self.value(Value::new(content, header, Place::Header));
            }
            if self.stopped {
                return;
            }
        }
    }

    /// One `Cookie:` header: `name=value` pairs separated by `;`.
    fn cookies(&mut self, header: &[u8], value: &mut [u8], name: &mut [u8]) {
        for piece in header.split(|b| *b == b';').map(<[u8]>::trim_ascii).filter(|p| !p.is_empty()) {
            let (cookie, content) = match memchr::memchr(b'=', piece) {
                Some(eq) => (piece.get(..eq).unwrap_or_default(), piece.get(eq + 1..).unwrap_or_default()),
                None => (piece, &b""[..]),
            };
            let (name_len, name_cut) = percent_once(cookie.trim_ascii(), false, name);
            let (value_len, value_cut) = percent_once(content.trim_ascii(), false, value);
            let name = name.get(..name_len).unwrap_or_default();
            let mut n = Value::new(name, name, Place::Cookie);
            n.is_name = true;
            n.cut = name_cut;
            let mut v = Value::new(value.get(..value_len).unwrap_or_default(), name, Place::Cookie);
            v.cut = value_cut;
            if !self.value(n) || !self.value(v) {
                return;
            }
        }
    }
}

/// Whether `name` at `place` is on a check's exclusion list.
fn skipped(skip: &[&[u8]], place: Place, name: &[u8]) -> bool {
    skip.iter().any(|s| {
        let Some((prefix, rest)) =
            s.iter().position(|b| *b == b'.').and_then(|dot| Some((s.get(..dot)?, s.get(dot + 1..)?)))
        else {
            return false;
        };
        rest == name
            && (prefix == place.name().as_bytes()
                || (prefix == b"body" && matches!(place, Place::Form | Place::Json | Place::Xml | Place::Body)))
    })
}

/// Adds a finding of check `index`.
fn record(findings: &mut Findings, index: usize, class: AttackClass, place: Place, name: &[u8]) {
    findings.total = findings.total.saturating_add(1);
    findings.fired |= 1u64 << index.min(63);
    let Some(slot) = findings.items.iter_mut().find(|s| s.is_none()) else {
        return;
    };
    let mut kept = [0u8; MAX_NAME];
    let len = name.len().min(MAX_NAME);
    if let (Some(to), Some(from)) = (kept.get_mut(..len), name.get(..len)) {
        to.copy_from_slice(from);
    }
    *slot = Some(Finding {
        check: u16::try_from(index).unwrap_or(u16::MAX),
        class,
        place,
        name: kept,
        name_len: len as u8,
    });
}

fn hex(b: u8) -> Option<u8> {
    char::from(b).to_digit(16).map(|d| d as u8)
}

/// Percent-decodes `src` once (and `+` as a space when `form`) into `dst`: the bytes written, and whether `dst`
/// was too short (the value is cut there).
fn percent_once(src: &[u8], form: bool, dst: &mut [u8]) -> (usize, bool) {
    let mut len = 0;
    let mut i = 0;
    while let Some(&b) = src.get(i) {
        let (byte, used) = match b {
            b'%' => match (src.get(i + 1).and_then(|&h| hex(h)), src.get(i + 2).and_then(|&l| hex(l))) {
                (Some(h), Some(l)) => (h << 4 | l, 3),
                _ => (b'%', 1),
            },
            b'+' if form => (b' ', 1),
            _ => (b, 1),
        };
        let Some(slot) = dst.get_mut(len) else {
            return (len, true);
        };
        *slot = byte;
        len += 1;
        i += used;
    }
    (len, false)
}

/// Writes `n` in decimal at the start of `dst`; returns the digits written.
fn decimal(n: usize, dst: &mut [u8]) -> usize {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut n = n;
    loop {
        at -= 1;
        if let Some(d) = digits.get_mut(at) {
            *d = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || at == 0 {
            break;
        }
    }
    let used = digits.get(at..).unwrap_or_default();
    match dst.get_mut(..used.len()) {
        Some(to) => {
            to.copy_from_slice(used);
            used.len()
        }
        None => 0,
    }
}

#[cfg(test)]
mod tests;
