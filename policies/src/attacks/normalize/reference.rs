//! The normaliser as it was before its passes copied lazily: the reference the differential test holds the new one to.

const MAX_ROUNDS: usize = 3;

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

    /// Normalises `raw` (cut to [`Normalizer::capacity`]); `form` turns `+` into a space. Never allocates.
    pub fn normalize<'s>(&'s mut self, raw: &'s [u8], form: bool) -> Normalized<'s> {
        let raw = raw.get(..self.a.len()).unwrap_or(raw);
        // One branch-free pass tells whether anything needs decoding, and whether the value has upper case.
        let flags = raw.iter().fold(0u8, |flags, &b| flags | class(b));
        let needs = flags & DECODE != 0 || (form && flags & PLUS != 0);
        let (current, len) = if needs { self.decode(raw, form) } else { (Current::Raw, raw.len()) };
        let decoded: &'s [u8] = match current {
            Current::Raw => raw,
            Current::A => self.a.get(..len).unwrap_or_default(),
            Current::B => self.b.get(..len).unwrap_or_default(),
        };
        let upper =
            if current == Current::Raw { flags & UPPER != 0 } else { decoded.iter().any(u8::is_ascii_uppercase) };
        if !upper {
            return Normalized { decoded, lower: decoded };
        }
        let lower = self.lower.get_mut(..decoded.len()).unwrap_or_default();
        for (l, d) in lower.iter_mut().zip(decoded) {
            *l = d.to_ascii_lowercase();
        }
        Normalized { decoded, lower }
    }

    /// Runs the rounds; returns where the result is and its length.
    fn decode(&mut self, raw: &[u8], form: bool) -> (Current, usize) {
        let mut current = Current::Raw;
        let mut len = raw.len();
        for _ in 0..MAX_ROUNDS {
            let mut changed = false;
            for pass in [Pass::Percent, Pass::Entities, Pass::Backslash, Pass::Fold] {
                let (src, dst, next): (&[u8], &mut [u8], Current) = match current {
                    Current::Raw => (raw, &mut self.a, Current::A),
                    Current::A => (self.a.get(..len).unwrap_or_default(), &mut self.b, Current::B),
                    Current::B => (self.b.get(..len).unwrap_or_default(), &mut self.a, Current::A),
                };
                if let Some(written) = pass.run(src, dst, form) {
                    current = next;
                    len = written;
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        (current, len)
    }
}

/// A byte some pass would change.
const DECODE: u8 = 1;
/// `+`, which a pass changes in form-encoded places.
const PLUS: u8 = 2;
/// An ASCII capital.
const UPPER: u8 = 4;

/// What a byte tells about its value.
#[inline]
fn class(b: u8) -> u8 {
    match b {
        b'%' | b'&' | b'\\' | 0 | 0x80..=0xff => DECODE,
        b'+' => PLUS,
        b'A'..=b'Z' => UPPER,
        _ => 0,
    }
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
    /// Runs the pass from `src` into `dst` (at least as long); `None` when it changed nothing (`dst` is then junk).
    fn run(self, src: &[u8], dst: &mut [u8], form: bool) -> Option<usize> {
        let trigger = match self {
            Pass::Percent => memchr::memchr(b'%', src).is_some() || (form && memchr::memchr(b'+', src).is_some()),
            Pass::Entities => memchr::memchr(b'&', src).is_some(),
            Pass::Backslash => memchr::memchr(b'\\', src).is_some(),
            Pass::Fold => src.iter().any(|&b| b == 0 || b >= 0x80),
        };
        if !trigger {
            return None;
        }
        let mut out = Out { buf: dst, len: 0, changed: false };
        match self {
            Pass::Percent => percent(src, form, &mut out),
            Pass::Entities => entities(src, &mut out),
            Pass::Backslash => backslashes(src, &mut out),
            Pass::Fold => fold(src, &mut out),
        }
        out.changed.then_some(out.len)
    }
}

/// Where a pass writes: never past the buffer (the passes only shrink, so nothing is lost in practice).
struct Out<'b> {
    buf: &'b mut [u8],
    len: usize,
    changed: bool,
}

impl Out<'_> {
    #[inline]
    fn push(&mut self, b: u8) {
        if let Some(slot) = self.buf.get_mut(self.len) {
            *slot = b;
            self.len += 1;
        }
    }

    fn extend(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.push(b);
        }
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
}

fn hex(b: u8) -> Option<u32> {
    char::from(b).to_digit(16)
}

/// The value of `digits` hex digits at the start of `s`, if they are all there.
fn hex_run(s: &[u8], digits: usize) -> Option<u32> {
    let run = s.get(..digits)?;
    run.iter().try_fold(0u32, |v, &b| Some(v << 4 | hex(b)?))
}

fn percent(src: &[u8], form: bool, out: &mut Out<'_>) {
    let mut i = 0;
    while let Some(&b) = src.get(i) {
        let rest = src.get(i + 1..).unwrap_or_default();
        if b == b'%' {
            if let Some(v) = hex_run(rest, 2) {
                out.decoded(v as u8);
                i += 3;
                continue;
            }
            if matches!(rest.first(), Some(b'u' | b'U')) {
                if let Some(v) = hex_run(rest.get(1..).unwrap_or_default(), 4) {
                    out.char(v);
                    i += 6;
                    continue;
                }
            }
        } else if b == b'+' && form {
            out.decoded(b' ');
            i += 1;
            continue;
        }
        out.push(b);
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

fn entities(src: &[u8], out: &mut Out<'_>) {
    let mut i = 0;
    while let Some(&b) = src.get(i) {
        if b == b'&' {
            if let Some(used) = entity(src.get(i + 1..).unwrap_or_default(), out) {
                i += 1 + used;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
}

/// Decodes the entity after a `&`; returns the bytes it used, or `None` (nothing written) if it is not one.
fn entity(s: &[u8], out: &mut Out<'_>) -> Option<usize> {
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

fn backslashes(src: &[u8], out: &mut Out<'_>) {
    let mut i = 0;
    while let Some(&b) = src.get(i) {
        if b == b'\\' {
            if let Some(used) = backslash(src.get(i + 1..).unwrap_or_default(), out) {
                i += 1 + used;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
}

/// Decodes the escape after a `\`; returns the bytes it used, or `None` (nothing written) if it is not one.
fn backslash(s: &[u8], out: &mut Out<'_>) -> Option<usize> {
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

fn fold(src: &[u8], out: &mut Out<'_>) {
    let mut i = 0;
    while let Some(&b) = src.get(i) {
        if b == 0 {
            out.changed = true;
            i += 1;
            continue;
        }
        if b < 0x80 {
            out.push(b);
            i += 1;
            continue;
        }
        let rest = src.get(i..).unwrap_or_default();
        match fold_char(rest) {
            Some((used, replacement)) => {
                match replacement {
                    Fold::Byte(b) => out.push(b),
                    Fold::Bytes(bytes) => out.extend(bytes),
                }
                out.changed = true;
                i += used;
            }
            None => {
                out.push(b);
                i += 1;
            }
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
