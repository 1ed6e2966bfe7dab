//! Undoing what attackers add to slip a value past a filter, into scratch space owned by the caller and reused for
//! every value (nothing is allocated per value).
//!
//! A value arrives decoded once, the way the application reads it (`raw`). The normaliser then runs **rounds** of
//! four passes, each reading one buffer and writing the other, until a round changes nothing (at most
//! [`MAX_ROUNDS`], so the cost stays linear in the value's length):
//!
//! 1. **Percent-decoding**: `%HH`, IIS's `%uXXXX`, and `+` as a space where the place is form-encoded (query, form
//!    field, cookie). A value that is still encoded after the application's own decoding was encoded twice or more.
//! 2. **HTML entities**: named (every one that stands for ASCII punctuation, `nbsp` as a space, and the named
//!    look-alikes step 4 folds: `&lsquo;`, `&lang;`, `&minus;`, `&hellip;`, `&zwj;`…), decimal
//!    (`&#60`) and hex (`&#x3c`), with or without the `;` for numeric ones; named ones without `;` only for the
//!    legacy names a browser accepts that way (`lt`, `gt`, `amp`, `quot`, `nbsp`).
//! 3. **Backslash escapes**: `\xHH` (a byte), `\uHHHH` and `\u{H…}` (a character), `\NNN` (three octal digits, a
//!    byte), `\0`, `\n`, `\r`, `\t` and `\/`. Any other backslash stays, so Windows paths keep theirs (`\b`, `\f`
//!    and `\v` are left alone for that reason: `..\boot.ini`).
//! 4. **Folding**: NULs removed; overlong UTF-8 forms of ASCII (`C0 AF`, `E0 80 AF`, `F0 80 80 AF` → `/`) folded;
//!    fullwidth forms (U+FF01–U+FF5E), small form variants (U+FE50–U+FE6B), the ideographic and typographic spaces,
//!    and look-alikes of ASCII punctuation (fraction and division slashes, typographic quotes and primes, dashes,
//!    angle brackets, dot leaders) folded to ASCII; zero-width characters and soft hyphens removed.
//!
//! Every pass only shrinks a value or keeps its length, so the output is never longer than the input and fits the
//! scratch buffers sized once for the longest value inspected. Finally `lower` is the result in ASCII lower case.
//!
//! # Which decodings apply to which class
//!
//! | Decoding                                  | Applies to                                                        |
//! |-------------------------------------------|-------------------------------------------------------------------|
//! | Once, for the place (`raw`)               | every class: what the application reads                          |
//! | Repeated percent-decoding, `%uXXXX`       | every class, every place                                          |
//! | `+` as a space                            | every class, in form-encoded places only (query, form, cookie)   |
//! | HTML entities                             | every class, every place                                          |
//! | Backslash escapes                         | every class, every place                                          |
//! | NUL removal, overlong UTF-8, fullwidth    | every class, every place                                          |
//! | ASCII lower case (`lower`)                | every class, every place                                          |
//!
//! Every class sees every decoding because an attacker chooses the encoding, not the class: an HTML entity is
//! as good a disguise for a SQL quote as for a `<`. Each detector also has `raw`, so one that must see the value
//! exactly as the application does (XXE reads the document's prolog) still can. A value that needs no decoding
//! (no `%`, `&`, `\`, NUL or non-ASCII byte, and no `+` in a form-encoded place) is not copied at all.

/// The most rounds of the four passes: enough to undo triple encoding; a value still encoded after that keeps
/// its remaining layers (detectors see the signs of encoding in it).
pub const MAX_ROUNDS: usize = 3;

mod byte_set;

pub use byte_set::ByteSet;

/// Scratch space for normalising values up to a fixed length: two buffers the passes alternate between and one for
/// the lower-case copy.
#[derive(Debug)]
pub struct Normalizer {
    a: Box<[u8]>,
    b: Box<[u8]>,
    lower: Box<[u8]>,
}

/// A normalised value: borrowed from the input when nothing needed decoding, otherwise from the scratch space.
#[derive(Clone, Copy, Debug)]
pub struct Normalized<'s> {
    /// The value with evasions undone, case kept.
    pub decoded: &'s [u8],
    /// `decoded` in ASCII lower case, the same length.
    pub lower: &'s [u8],
    /// The kinds of bytes `lower` holds.
    pub bytes: ByteSet,
}

/// Which buffer holds the current text.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Current {
    Raw,
    A,
    B,
}

impl Normalizer {
    /// Scratch space for values of up to `max_value_bytes` bytes (longer inputs are cut there).
    pub fn new(max_value_bytes: usize) -> Normalizer {
        Normalizer {
            a: vec![0; max_value_bytes].into_boxed_slice(),
            b: vec![0; max_value_bytes].into_boxed_slice(),
            lower: vec![0; max_value_bytes].into_boxed_slice(),
        }
    }

    /// The longest value normalised whole.
    pub fn capacity(&self) -> usize {
        self.a.len()
    }

    /// Normalises `raw` (cut to [`Normalizer::capacity`]); `form` turns `+` into a space. Never allocates.
    pub fn normalize<'s>(&'s mut self, raw: &'s [u8], form: bool) -> Normalized<'s> {
        let raw = raw.get(..self.a.len()).unwrap_or(raw);
        // One branch-free pass tells which bytes the value holds: whether anything needs decoding, and whether it has
        // upper case.
        let raw_bytes = ByteSet::of(raw);
        let flags = raw_bytes.flags();
        let needs = flags & DECODE != 0 || (form && flags & PLUS != 0);
        let (current, len, bytes) =
            if needs { self.decode(raw, form, raw_bytes) } else { (Current::Raw, raw.len(), raw_bytes) };
        let bytes = bytes.lowered();
        let decoded: &'s [u8] = match current {
            Current::Raw => raw,
            Current::A => self.a.get(..len).unwrap_or_default(),
            Current::B => self.b.get(..len).unwrap_or_default(),
        };
        if current == Current::Raw && flags & UPPER == 0 {
            return Normalized { decoded, lower: decoded, bytes };
        }
        let lower = self.lower.get_mut(..decoded.len()).unwrap_or_default();
        if !lower_case(decoded, lower) {
            // Nothing was upper case: the decoded text is its own lower case.
            return Normalized { decoded, lower: decoded, bytes };
        }
        Normalized { decoded, lower, bytes }
    }

    /// Runs the rounds on `raw`, which holds `bytes`; returns where the result is, its length and its bytes.
    fn decode(&mut self, raw: &[u8], form: bool, bytes: ByteSet) -> (Current, usize, ByteSet) {
        let mut current = Current::Raw;
        let mut len = raw.len();
        // The bytes the current text holds: a pass none of whose bytes are there would change nothing.
        let mut bytes = bytes;
        let mut flags = bytes.flags();
        for _ in 0..MAX_ROUNDS {
            let mut changed = false;
            for pass in [Pass::Percent, Pass::Entities, Pass::Backslash, Pass::Fold] {
                if flags & pass.trigger(form) == 0 {
                    continue;
                }
                let (src, dst, next): (&[u8], &mut [u8], Current) = match current {
                    Current::Raw => (raw, &mut self.a, Current::A),
                    Current::A => (self.a.get(..len).unwrap_or_default(), &mut self.b, Current::B),
                    Current::B => (self.b.get(..len).unwrap_or_default(), &mut self.a, Current::A),
                };
                if let Some(written) = pass.run(src, dst, form) {
                    current = next;
                    len = written;
                    changed = true;
                    bytes = ByteSet::of(match current {
                        Current::A => self.a.get(..len).unwrap_or_default(),
                        _ => self.b.get(..len).unwrap_or_default(),
                    });
                    flags = bytes.flags();
                }
            }
            if !changed {
                break;
            }
        }
        (current, len, bytes)
    }
}

/// `%`, which the percent pass decodes.
const PERCENT: u8 = 1;
/// `&`, which the entity pass decodes.
const AMPERSAND: u8 = 2;
/// `\`, which the backslash pass decodes.
const BACKSLASH: u8 = 4;
/// A NUL or a non-ASCII byte, which the fold looks at.
const FOLD: u8 = 8;
/// A byte some pass would change.
const DECODE: u8 = PERCENT | AMPERSAND | BACKSLASH | FOLD;
/// `+`, which a pass changes in form-encoded places.
const PLUS: u8 = 16;
/// An ASCII capital.
const UPPER: u8 = 32;

/// A 1 in every byte of a word.
const LO: u64 = 0x0101_0101_0101_0101;
/// The high bit of every byte of a word.
const HI: u64 = 0x8080_8080_8080_8080;

/// The words of eight bytes of `s` (little-endian), and the bytes left over.
fn words(s: &[u8]) -> (impl Iterator<Item = u64> + '_, &[u8]) {
    let chunks = s.chunks_exact(8);
    let tail = chunks.remainder();
    (chunks.map(|c| u64::from_le_bytes(<[u8; 8]>::try_from(c).unwrap_or_default())), tail)
}

/// The high bit of every byte of `w` that is zero, and maybe of bytes above one that is (as a whole: non-zero
/// exactly when some byte is zero).
#[inline]
fn zero_bytes(w: u64) -> u64 {
    w.wrapping_sub(LO) & !w & HI
}

/// The high bit of every ASCII capital in `w`, exactly.
#[inline]
fn upper_bytes(w: u64) -> u64 {
    let ascii = w & !HI;
    // Seven-bit bytes plus 0x3f or 0x25 never carry into the next byte: the high bit then says `>= A`, `> Z`.
    ascii.wrapping_add(0x3f * LO) & !ascii.wrapping_add(0x25 * LO) & !w & HI
}

/// Writes `text` in ASCII lower case into `lower` (as long); whether any byte was upper case.
fn lower_case(text: &[u8], lower: &mut [u8]) -> bool {
    let mut upper = 0u64;
    let (words, tail) = words(text);
    let mut out = lower.chunks_exact_mut(8);
    for (w, to) in words.zip(&mut out) {
        let capitals = upper_bytes(w);
        upper |= capitals;
        // 0x80 >> 2 is 0x20, the bit that makes a capital small.
        to.copy_from_slice(&(w | capitals >> 2).to_le_bytes());
    }
    let mut tail_upper = false;
    for (l, &d) in out.into_remainder().iter_mut().zip(tail) {
        tail_upper |= d.is_ascii_uppercase();
        *l = d.to_ascii_lowercase();
    }
    upper != 0 || tail_upper
}

/// Where the next byte the fold looks at (a NUL or a non-ASCII byte) is in `s`.
fn next_fold(s: &[u8]) -> Option<usize> {
    let mut at = 0;
    let (words, _) = words(s);
    for w in words {
        if (w | zero_bytes(w)) & HI != 0 {
            break;
        }
        at += 8;
    }
    s.get(at..)?.iter().position(|&b| b == 0 || b >= 0x80).map(|p| at + p)
}

/// One pass over a value.
#[derive(Clone, Copy)]
enum Pass {
    Percent,
    Entities,
    Backslash,
    Fold,
}

impl Pass {
    /// The [`flags`] of the bytes the pass may change.
    fn trigger(self, form: bool) -> u8 {
        match self {
            Pass::Percent if form => PERCENT | PLUS,
            Pass::Percent => PERCENT,
            Pass::Entities => AMPERSAND,
            Pass::Backslash => BACKSLASH,
            Pass::Fold => FOLD,
        }
    }

    /// Runs the pass from `src` into `dst` (at least as long); `None` when it changed nothing (`dst` is then junk).
    /// Each pass jumps from one byte it may change to the next and copies what lies between in one piece, only once
    /// it changed something: a value it leaves alone is read, never copied.
    fn run(self, src: &[u8], dst: &mut [u8], form: bool) -> Option<usize> {
        let mut out = Out { src, buf: dst, len: 0, kept: 0, at: 0, changed: false };
        match self {
            Pass::Percent => percent(src, form, &mut out),
            Pass::Entities => entities(src, &mut out),
            Pass::Backslash => backslashes(src, &mut out),
            Pass::Fold => fold(src, &mut out),
        }
        out.finish()
    }
}

/// Where a pass writes: never past the buffer (the passes only shrink, so nothing is lost in practice). The source
/// is copied lazily: `src[kept..at]` goes out unchanged just before the replacement of what starts at `at`.
struct Out<'s, 'b> {
    src: &'s [u8],
    buf: &'b mut [u8],
    len: usize,
    /// The source up to here is written (copied or replaced).
    kept: usize,
    /// Where in the source the replacement being written starts.
    at: usize,
    changed: bool,
}

impl Out<'_, '_> {
    /// Copies `bytes`, cut at the end of the buffer.
    fn copy(&mut self, bytes: &[u8]) {
        let take = bytes.len().min(self.buf.len().saturating_sub(self.len));
        if let (Some(to), Some(from)) = (self.buf.get_mut(self.len..self.len + take), bytes.get(..take)) {
            to.copy_from_slice(from);
            self.len += take;
        }
    }

    /// Copies the source unchanged up to where the replacement starts.
    fn flush(&mut self) {
        if self.kept < self.at {
            let src = self.src;
            self.copy(src.get(self.kept..self.at).unwrap_or_default());
            self.kept = self.at;
        }
    }

    /// The source from `at` up to `to` is replaced by what was written since (perhaps nothing).
    fn replaced(&mut self, to: usize) {
        self.flush();
        self.kept = to;
    }

    fn push(&mut self, b: u8) {
        self.flush();
        self.copy(&[b]);
    }

    fn extend(&mut self, bytes: &[u8]) {
        self.flush();
        self.copy(bytes);
    }

    /// A decoded character (an invalid code point is written as U+FFFD).
    fn char(&mut self, code: u32) {
        let c = char::from_u32(code).unwrap_or('\u{fffd}');
        let mut utf8 = [0u8; 4];
        self.extend(c.encode_utf8(&mut utf8).as_bytes());
        self.changed = true;
    }

    fn decoded(&mut self, b: u8) {
        self.push(b);
        self.changed = true;
    }

    /// The length written, the rest of the source copied, if anything changed.
    fn finish(mut self) -> Option<usize> {
        if !self.changed {
            return None;
        }
        self.at = self.src.len();
        self.flush();
        Some(self.len)
    }
}

fn hex(b: u8) -> Option<u32> {
    char::from(b).to_digit(16)
}

/// The value of `digits` hex digits at the start of `s`, if they are all there.
fn hex_run(s: &[u8], digits: usize) -> Option<u32> {
    let run = s.get(..digits)?;
    run.iter().try_fold(0u32, |v, &b| Some(v << 4 | hex(b)?))
}

fn percent(src: &[u8], form: bool, out: &mut Out<'_, '_>) {
    let mut i = 0;
    loop {
        let rest = src.get(i..).unwrap_or_default();
        let next = if form { memchr::memchr2(b'%', b'+', rest) } else { memchr::memchr(b'%', rest) };
        let Some(skip) = next else { return };
        i += skip;
        out.at = i;
        let rest = src.get(i + 1..).unwrap_or_default();
        if src.get(i) == Some(&b'%') {
            if let Some(v) = hex_run(rest, 2) {
                out.decoded(v as u8);
                i += 3;
                out.replaced(i);
                continue;
            }
            if matches!(rest.first(), Some(b'u' | b'U')) {
                if let Some(v) = hex_run(rest.get(1..).unwrap_or_default(), 4) {
                    out.char(v);
                    i += 6;
                    out.replaced(i);
                    continue;
                }
            }
        } else {
            // A `+`, searched for only in form-encoded places.
            out.decoded(b' ');
            i += 1;
            out.replaced(i);
            continue;
        }
        i += 1;
    }
}

/// Named entities that stand for ASCII (and `nbsp`, a space), and those for characters the fold turns into ASCII
/// (typographic quotes, angle brackets, dashes, spaces; zero-width ones to nothing); names are case-sensitive, as in
/// HTML. Sorted by name (bytes), for a binary search: a value full of `&` costs a few comparisons per `&`.
const ENTITIES: &[(&[u8], &[u8])] = &[
    (b"AMP", b"&"),
    (b"DiacriticalGrave", b"`"),
    (b"GT", b">"),
    (b"Hat", b"^"),
    (b"LT", b"<"),
    (b"LeftAngleBracket", b"<"),
    (b"MediumSpace", b" "),
    (b"NewLine", b"\n"),
    (b"NonBreakingSpace", b" "),
    (b"Prime", b"\""),
    (b"QUOT", b"\""),
    (b"RightAngleBracket", b">"),
    (b"Tab", b"\t"),
    (b"ThinSpace", b" "),
    (b"UnderBar", b"_"),
    (b"VerticalLine", b"|"),
    (b"ZeroWidthSpace", b""),
    (b"amp", b"&"),
    (b"apos", b"'"),
    (b"ast", b"*"),
    (b"bsol", b"\\"),
    (b"colon", b":"),
    (b"comma", b","),
    (b"commat", b"@"),
    (b"dash", b"-"),
    (b"dollar", b"$"),
    (b"emsp", b" "),
    (b"ensp", b" "),
    (b"equals", b"="),
    (b"excl", b"!"),
    (b"frasl", b"/"),
    (b"grave", b"`"),
    (b"gt", b">"),
    (b"hairsp", b" "),
    (b"hellip", b"..."),
    (b"hyphen", b"-"),
    (b"lang", b"<"),
    (b"langle", b"<"),
    (b"lbrace", b"{"),
    (b"lbrack", b"["),
    (b"lcub", b"{"),
    (b"ldquo", b"\""),
    (b"lowbar", b"_"),
    (b"lpar", b"("),
    (b"lsaquo", b"<"),
    (b"lsqb", b"["),
    (b"lsquo", b"'"),
    (b"lt", b"<"),
    (b"mdash", b"-"),
    (b"midast", b"*"),
    (b"minus", b"-"),
    (b"mldr", b"..."),
    (b"nbsp", b" "),
    (b"ndash", b"-"),
    (b"nldr", b".."),
    (b"num", b"#"),
    (b"percnt", b"%"),
    (b"period", b"."),
    (b"plus", b"+"),
    (b"prime", b"'"),
    (b"quest", b"?"),
    (b"quot", b"\""),
    (b"rang", b">"),
    (b"rangle", b">"),
    (b"rbrace", b"}"),
    (b"rbrack", b"]"),
    (b"rcub", b"}"),
    (b"rdquo", b"\""),
    (b"rdquor", b"\""),
    (b"rpar", b")"),
    (b"rsaquo", b">"),
    (b"rsqb", b"]"),
    (b"rsquo", b"'"),
    (b"rsquor", b"'"),
    (b"semi", b";"),
    (b"setminus", b"\\"),
    (b"shy", b""),
    (b"smallsetminus", b"\\"),
    (b"sol", b"/"),
    (b"thinsp", b" "),
    (b"verbar", b"|"),
    (b"vert", b"|"),
    (b"zwj", b""),
    (b"zwnj", b""),
];

/// Names a browser also reads without the closing `;`.
const LEGACY: &[(&[u8], u8)] = &[
    (b"AMP", b'&'),
    (b"GT", b'>'),
    (b"LT", b'<'),
    (b"QUOT", b'"'),
    (b"amp", b'&'),
    (b"gt", b'>'),
    (b"lt", b'<'),
    (b"nbsp", b' '),
    (b"quot", b'"'),
];

/// The longest entity name in [`ENTITIES`].
const MAX_ENTITY: usize = 17;

fn entities(src: &[u8], out: &mut Out<'_, '_>) {
    let mut i = 0;
    while let Some(skip) = memchr::memchr(b'&', src.get(i..).unwrap_or_default()) {
        i += skip;
        out.at = i;
        match entity(src.get(i + 1..).unwrap_or_default(), out) {
            Some(used) => {
                i += 1 + used;
                out.replaced(i);
            }
            None => i += 1,
        }
    }
}

/// Decodes the entity after a `&`; returns the bytes it used, or `None` (nothing written) if it is not one.
fn entity(s: &[u8], out: &mut Out<'_, '_>) -> Option<usize> {
    if s.first() == Some(&b'#') {
        let hex_form = matches!(s.get(1), Some(b'x' | b'X'));
        let start = if hex_form { 2 } else { 1 };
        let radix = if hex_form { 16 } else { 10 };
        let mut value: u32 = 0;
        let mut end = start;
        while let Some(d) = s.get(end).and_then(|&b| char::from(b).to_digit(radix)) {
            // Saturates past the last code point: leading zeros and huge numbers cost nothing extra.
            value = value.saturating_mul(radix).saturating_add(d).min(0x11_0000);
            end += 1;
        }
        if end == start {
            return None;
        }
        out.char(value);
        return Some(end + usize::from(s.get(end) == Some(&b';')));
    }
    let name_len = s.iter().take(MAX_ENTITY + 1).take_while(|b| b.is_ascii_alphanumeric()).count();
    if name_len < 2 {
        // Every name is two letters or more: a lone `&` (`AT&T`, `a & b`) costs nothing more.
        return None;
    }
    let name = s.get(..name_len)?;
    if s.get(name_len) == Some(&b';') {
        if let Some(&(_, bytes)) = ENTITIES.binary_search_by(|(n, _)| n.cmp(&name)).ok().and_then(|at| ENTITIES.get(at))
        {
            out.extend(bytes);
            out.changed = true;
            return Some(name_len + 1);
        }
    }
    // Without `;`, a browser reads the legacy names even when letters follow (`&ltscript`).
    let (legacy, byte) = LEGACY.iter().find(|(n, _)| s.starts_with(n))?;
    out.decoded(*byte);
    Some(legacy.len())
}

fn backslashes(src: &[u8], out: &mut Out<'_, '_>) {
    let mut i = 0;
    while let Some(skip) = memchr::memchr(b'\\', src.get(i..).unwrap_or_default()) {
        i += skip;
        out.at = i;
        match backslash(src.get(i + 1..).unwrap_or_default(), out) {
            Some(used) => {
                i += 1 + used;
                out.replaced(i);
            }
            None => i += 1,
        }
    }
}

/// Decodes the escape after a `\`; returns the bytes it used, or `None` (nothing written) if it is not one.
fn backslash(s: &[u8], out: &mut Out<'_, '_>) -> Option<usize> {
    let &first = s.first()?;
    let simple = match first {
        b'n' => Some(b'\n'),
        b'r' => Some(b'\r'),
        b't' => Some(b'\t'),
        b'/' => Some(b'/'),
        _ => None,
    };
    if let Some(byte) = simple {
        out.decoded(byte);
        return Some(1);
    }
    match first {
        b'x' | b'X' => {
            let v = hex_run(s.get(1..)?, 2)?;
            out.decoded(v as u8);
            Some(3)
        }
        b'u' | b'U' if s.get(1) == Some(&b'{') => {
            let digits = s.get(2..)?.iter().take(7).take_while(|b| b.is_ascii_hexdigit()).count();
            if digits == 0 || digits > 6 || s.get(2 + digits) != Some(&b'}') {
                return None;
            }
            out.char(hex_run(s.get(2..)?, digits)?);
            Some(digits + 3)
        }
        b'u' | b'U' => {
            out.char(hex_run(s.get(1..)?, 4)?);
            Some(5)
        }
        b'0'..=b'3' => {
            let octal = s.get(..3).filter(|d| d.iter().all(|b| matches!(b, b'0'..=b'7')));
            match octal {
                Some(d) => {
                    let v = d.iter().fold(0u8, |v, &b| v << 3 | (b - b'0'));
                    out.decoded(v);
                    Some(3)
                }
                // A lone `\0` is C's NUL (removed by the fold); other short digit runs are not escapes.
                None if first == b'0' => {
                    out.decoded(0);
                    Some(1)
                }
                None => None,
            }
        }
        _ => None,
    }
}

fn fold(src: &[u8], out: &mut Out<'_, '_>) {
    let mut i = 0;
    while let Some(skip) = next_fold(src.get(i..).unwrap_or_default()) {
        i += skip;
        out.at = i;
        if src.get(i) == Some(&0) {
            out.changed = true;
            i += 1;
            out.replaced(i);
            continue;
        }
        match fold_char(src.get(i..).unwrap_or_default()) {
            Some((used, replacement)) => {
                match replacement {
                    Fold::Byte(b) => out.push(b),
                    Fold::Bytes(bytes) => out.extend(bytes),
                }
                out.changed = true;
                i += used;
                out.replaced(i);
            }
            None => i += 1,
        }
    }
}

fn continuation(b: Option<&u8>) -> Option<u32> {
    b.filter(|b| (0x80..=0xbf).contains(*b)).map(|b| u32::from(b & 0x3f))
}

/// What the non-ASCII sequence at the start of `s` folds to: `(bytes used, replacement)`, or `None` to keep it.
fn fold_char(s: &[u8]) -> Option<(usize, Fold)> {
    let &lead = s.first()?;
    let (len, code) = match lead {
        0xc0..=0xdf => (2, u32::from(lead & 0x1f) << 6 | continuation(s.get(1))?),
        0xe0..=0xef => (3, u32::from(lead & 0x0f) << 12 | continuation(s.get(1))? << 6 | continuation(s.get(2))?),
        0xf0..=0xf7 => (
            4,
            u32::from(lead & 0x07) << 18
                | continuation(s.get(1))? << 12
                | continuation(s.get(2))? << 6
                | continuation(s.get(3))?,
        ),
        _ => return None,
    };
    if code < 0x80 {
        // An overlong form of ASCII (`C0 AF` for `/`): what a lax decoder reads.
        return Some((len, Fold::Byte(code as u8)));
    }
    let replacement: &'static [u8] = match code {
        // Fullwidth ASCII.
        0xff01..=0xff5e => return Some((len, Fold::Byte((code - 0xff01 + 0x21) as u8))),
        0x00a0 | 0x1680 | 0x2000..=0x200a | 0x202f | 0x205f | 0x3000 => b" ",
        0x00ad | 0x200b..=0x200d | 0x2060 | 0xfeff => b"",
        0x2010..=0x2015 | 0x2212 | 0xfe58 | 0xfe63 => b"-",
        0x2018 | 0x2019 | 0x201b | 0x2032 | 0x02bc | 0x02b9 => b"'",
        0x201c | 0x201d | 0x201f | 0x2033 => b"\"",
        0x2039 | 0x2329 | 0x27e8 | 0x3008 | 0xfe64 => b"<",
        0x203a | 0x232a | 0x27e9 | 0x3009 | 0xfe65 => b">",
        0x2024 | 0xfe52 => b".",
        0x2025 => b"..",
        0x2026 => b"...",
        0x2044 | 0x2215 => b"/",
        0x2216 | 0xfe68 => b"\\",
        0x2217 | 0xfe61 => b"*",
        0xfe50 => b",",
        0xfe54 => b";",
        0xfe55 => b":",
        0xfe56 => b"?",
        0xfe57 => b"!",
        0xfe59 => b"(",
        0xfe5a => b")",
        0xfe5b => b"{",
        0xfe5c => b"}",
        0xfe5f => b"#",
        0xfe60 => b"&",
        0xfe62 => b"+",
        0xfe66 => b"=",
        0xfe69 => b"$",
        0xfe6a => b"%",
        0xfe6b => b"@",
        _ => return None,
    };
    Some((len, Fold::Bytes(replacement)))
}

/// What a character folds to.
#[derive(Clone, Copy)]
enum Fold {
    Byte(u8),
    Bytes(&'static [u8]),
}

#[cfg(test)]
mod reference;

#[cfg(test)]
mod tests {
    use super::*;

    use crate::token_analysis::test_rng::Rng;

    fn norm(raw: &[u8], form: bool) -> (Vec<u8>, Vec<u8>) {
        let mut n = Normalizer::new(1024);
        let r = n.normalize(raw, form);
        (r.decoded.to_vec(), r.lower.to_vec())
    }

    fn decoded(raw: &str) -> String {
        String::from_utf8_lossy(&norm(raw.as_bytes(), false).0).into_owned()
    }

    #[test]
    fn percent_decoding_repeats_up_to_three_rounds() {
        assert_eq!(decoded("%27%20OR%201%3D1"), "' OR 1=1");
        assert_eq!(decoded("%252e%252e%252f"), "../");
        assert_eq!(decoded("%25252e"), ".");
        // A fourth layer stays.
        assert_eq!(decoded("%2525252e"), "%2e");
        assert_eq!(decoded("%u003cscript%u003E"), "<script>");
        assert_eq!(decoded("100%"), "100%");
        assert_eq!(decoded("%zz%4"), "%zz%4");
        assert_eq!(norm(b"a+b", true).0, b"a b");
        assert_eq!(norm(b"a+b", false).0, b"a+b");
    }

    #[test]
    fn html_entities() {
        assert_eq!(decoded("&lt;script&gt;"), "<script>");
        assert_eq!(decoded("&#60;&#x3C;&#X3c;&#0000060"), "<<<<");
        assert_eq!(decoded("javascript&colon;alert&lpar;1&rpar;"), "javascript:alert(1)");
        assert_eq!(decoded("&ltscript&gt"), "<script>");
        // Non-legacy names need their `;`, unknown names stay.
        assert_eq!(decoded("&colon x &copy; AT&T"), "&colon x &copy; AT&T");
        assert_eq!(decoded("&#99999999999;"), "\u{fffd}");
        assert_eq!(decoded("&#;&#x;"), "&#;&#x;");
        assert_eq!(decoded("&amp;lt;"), "<", "entities inside entities take a second round");
        assert_eq!(decoded("&#x27; or 1=1"), "' or 1=1");
        assert_eq!(decoded("&rsquo; or 1&equals;1&lang;svg&rang;&hellip;&sol;"), "' or 1=1<svg>.../");
        assert_eq!(decoded("sel&shy;ect&NonBreakingSpace;&DiacriticalGrave;"), "select `");
    }

    #[test]
    fn entity_names_are_sorted_for_the_binary_search() {
        assert!(ENTITIES.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(ENTITIES.iter().all(|(n, _)| n.len() <= MAX_ENTITY));
    }

    #[test]
    fn backslash_escapes() {
        assert_eq!(decoded(r"\x3cscript\x3e"), "<script>");
        assert_eq!(decoded(r"\u003cimg\u{3e}"), "<img>");
        assert_eq!(decoded(r"\101\102"), "AB");
        assert_eq!(decoded(r"a\nb\tc\/d"), "a\nb\tc/d");
        assert_eq!(decoded(r"a\0b"), "ab");
        // Windows paths keep their backslashes.
        assert_eq!(decoded(r"C:\Windows\win.ini"), r"C:\Windows\win.ini");
        assert_eq!(decoded(r"..\..\boot.ini"), r"..\..\boot.ini");
        assert_eq!(decoded(r"..\..\temp"), "..\\..\temp", "the climb survives even where a target is mangled");
        assert_eq!(decoded(r"\x4"), r"\x4");
        assert_eq!(decoded(r"\u{110000}"), "\u{fffd}");
        assert_eq!(decoded(r"\u{}"), r"\u{}");
        assert_eq!(decoded("\\"), "\\");
    }

    #[test]
    fn folding() {
        assert_eq!(decoded("a\0b%00c"), "abc");
        assert_eq!(norm(b"..\xc0\xaf..\xe0\x80\xaf\xf0\x80\x80\xafetc", false).0, b"../..//etc");
        assert_eq!(decoded("%c0%ae%c0%ae%c0%af"), "../");
        assert_eq!(decoded("＜ｓｃｒｉｐｔ＞"), "<script>");
        assert_eq!(decoded("１＝１"), "1=1");
        assert_eq!(decoded("％２７"), "'", "a fullwidth percent is decoded in the next round");
        assert_eq!(decoded("O’Brien"), "O'Brien");
        assert_eq!(decoded("sel\u{200b}ect\u{3000}a\u{2215}b"), "select a/b");
        assert_eq!(decoded("﹤script﹥"), "<script>");
        assert_eq!(decoded("café ü 日本"), "café ü 日本", "other characters stay");
        assert_eq!(norm(b"\xff\xfe\xc0", false).0, b"\xff\xfe\xc0", "invalid UTF-8 stays");
    }

    #[test]
    fn lower_case_and_borrowing() {
        let mut n = Normalizer::new(64);
        let raw = b"plain value 123";
        let r = n.normalize(raw, true);
        assert_eq!(r.decoded.as_ptr(), raw.as_ptr(), "nothing to decode: borrowed, not copied");
        assert_eq!(r.lower.as_ptr(), raw.as_ptr());
        let r = n.normalize(b"SeLeCt %41", false);
        assert_eq!(r.decoded, b"SeLeCt A");
        assert_eq!(r.lower, b"select a");
        // Longer than the scratch space: cut.
        let mut n = Normalizer::new(4);
        assert_eq!(n.normalize(b"ABCDEF", false).lower, b"abcd");
    }

    #[test]
    fn fuzz_never_panics_and_never_grows() {
        let mut rng = Rng(0x6e6f_726d);
        let mut n = Normalizer::new(256);
        let alphabet = b"%&#;\\xu{}0123456789abcdefABCDEF+<>'\"./lgtamp \0\xc0\xaf\xe0\x80\xef\xbc\xbd\xff\xe2\x80";
        for i in 0..20_000 {
            let len = (rng.next() % 80) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    let r = rng.next();
                    if i % 3 == 0 {
                        r as u8
                    } else {
                        alphabet[(r % alphabet.len() as u64) as usize]
                    }
                })
                .collect();
            let form = i % 2 == 0;
            let r = n.normalize(&bytes, form);
            assert!(r.decoded.len() <= bytes.len(), "{bytes:?}");
            assert_eq!(r.lower.len(), r.decoded.len());
            assert_eq!(r.lower, r.decoded.to_ascii_lowercase().as_slice());
        }
    }

    /// The normaliser gives exactly what the byte-by-byte one before it gave, on every kind of value: plain text,
    /// text with capitals, every encoding, invalid UTF-8, values longer than the scratch space.
    #[test]
    fn same_output_as_the_byte_by_byte_reference() {
        let mut rng = Rng(0x1a2_7c09);
        let mut n = Normalizer::new(96);
        let mut old = reference::Normalizer::new(96);
        let alphabet: &[u8] =
            b"%&#;\\xu{}0123456789abcdefABCDEFZz@[`+<>'\"./lgtamp \0\xc0\xaf\xe0\x80\xef\xbc\xbd\xff\xe2\x80\x93";
        let pieces: &[&[u8]] = &[
            b"%2525",
            b"%u003C",
            b"&amp;lt;",
            b"&#x3c;",
            b"&#60",
            b"\\x3c",
            b"\\u{3e}",
            b"\\101",
            "\u{ff05}\u{ff12}\u{ff17}".as_bytes(),
            "O\u{2019}Brien \u{2013} Men's".as_bytes(),
            b"Plain ASCII Words 123 ",
        ];
        for i in 0..30_000 {
            let len = (rng.next() % 120) as usize;
            let mut bytes = Vec::with_capacity(len);
            while bytes.len() < len {
                let r = rng.next();
                match i % 4 {
                    0 => bytes.push(r as u8),
                    1 => bytes.push(alphabet[(r % alphabet.len() as u64) as usize]),
                    _ if r % 3 == 0 => bytes.extend_from_slice(pieces[(r >> 8) as usize % pieces.len()]),
                    _ => bytes.push(alphabet[(r % alphabet.len() as u64) as usize]),
                }
            }
            let form = i % 2 == 0;
            let new = n.normalize(&bytes, form);
            let was = old.normalize(&bytes, form);
            assert_eq!((new.decoded, new.lower), (was.decoded, was.lower), "{bytes:?} form {form}");
            assert_eq!(new.bytes, ByteSet::of(new.lower), "{bytes:?} form {form}");
        }
    }
}
