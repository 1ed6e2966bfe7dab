//! JSON string escapes removed before text is scanned, so `"\u0034111 1111 1111 1111"` is a card like any other.
//!
//! Applied to every text body, whatever its declared content type: an upstream may parse JSON that arrives as
//! `text/plain`, and a backslash escape outside JSON is rare enough that decoding it costs nothing in accuracy.
//! `\uXXXX` becomes the character's UTF-8 (a surrogate pair one 4-byte character, a lone surrogate U+FFFD);
//! `\"`, `\\`, `\/`, `\b`, `\f`, `\n`, `\r` and `\t` their byte; an invalid escape stays as it was. Runs without a
//! backslash go to the scanner untouched (found with `memchr`), so text without escapes costs one search; state
//! carries across chunks in a few bytes and nothing is allocated.

use super::decode::Sink;

/// Where the decoder stands inside an escape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Escape {
    /// Not in an escape.
    None,
    /// After a `\`.
    Backslash,
    /// After `\u` and `digits` hex digits of `value`; `high` is a preceding high surrogate.
    Unicode { digits: u8, value: u16, high: Option<u16> },
    /// After a high surrogate's `\uXXXX`: a `\u` with the low surrogate should follow.
    AfterHigh(u16),
    /// After a high surrogate and a `\`.
    AfterHighBackslash(u16),
}

/// Streaming JSON-escape decoder.
#[derive(Debug)]
pub(crate) struct JsonUnescape {
    escape: Escape,
    /// The raw bytes of the escape being read, given back as they were if it turns out invalid.
    raw: [u8; 12],
    raw_len: usize,
}

impl Default for JsonUnescape {
    fn default() -> Self {
        JsonUnescape { escape: Escape::None, raw: [0; 12], raw_len: 0 }
    }
}

impl JsonUnescape {
    /// Decodes the next bytes into `sink`.
    pub(crate) fn feed(&mut self, mut input: &[u8], sink: &mut impl Sink) {
        while !input.is_empty() {
            if self.escape == Escape::None {
                let Some(at) = memchr::memchr(b'\\', input) else {
                    sink.bytes(input);
                    return;
                };
                let (run, rest) = input.split_at(at);
                if !run.is_empty() {
                    sink.bytes(run);
                }
                input = rest.get(1..).unwrap_or_default();
                self.escape = Escape::Backslash;
                self.raw_len = 0;
                self.keep(b'\\');
                continue;
            }
            let Some((&b, rest)) = input.split_first() else { return };
            input = rest;
            self.step(b, sink);
        }
    }

    /// The end of the input: an unfinished escape is given back as it was.
    pub(crate) fn finish(&mut self, sink: &mut impl Sink) {
        if self.escape != Escape::None {
            self.give_back(sink);
        }
    }

    fn keep(&mut self, b: u8) {
        if let Some(slot) = self.raw.get_mut(self.raw_len) {
            *slot = b;
            self.raw_len += 1;
        }
    }

    fn give_back(&mut self, sink: &mut impl Sink) {
        sink.bytes(self.raw.get(..self.raw_len).unwrap_or_default());
        self.escape = Escape::None;
        self.raw_len = 0;
    }

    fn step(&mut self, b: u8, sink: &mut impl Sink) {
        self.keep(b);
        self.escape = match self.escape {
            Escape::None => Escape::None,
            Escape::Backslash => {
                let byte = match b {
                    b'"' | b'\\' | b'/' => b,
                    b'b' => 0x08,
                    b'f' => 0x0c,
                    b'n' => b'\n',
                    b'r' => b'\r',
                    b't' => b'\t',
                    b'u' => {
                        self.escape = Escape::Unicode { digits: 0, value: 0, high: None };
                        return;
                    }
                    _ => return self.invalid(sink),
                };
                self.emit(&[byte], sink);
                Escape::None
            }
            Escape::Unicode { digits, value, high } => {
                let Some(d) = char::from(b).to_digit(16) else {
                    return self.invalid(sink);
                };
                let value = value << 4 | d as u16;
                if digits < 3 {
                    Escape::Unicode { digits: digits + 1, value, high }
                } else {
                    return self.code_unit(value, high, sink);
                }
            }
            Escape::AfterHigh(high) if b == b'\\' => Escape::AfterHighBackslash(high),
            Escape::AfterHighBackslash(high) if b == b'u' => Escape::Unicode { digits: 0, value: 0, high: Some(high) },
            Escape::AfterHigh(_) | Escape::AfterHighBackslash(_) => {
                // A high surrogate without its low half: U+FFFD, then what followed, read afresh.
                self.emit_char('\u{fffd}', sink);
                let (raw, len) = (self.raw, self.raw_len);
                self.escape = Escape::None;
                self.raw_len = 0;
                self.feed(raw.get(6.min(len)..len).unwrap_or_default(), sink);
                return;
            }
        };
    }

    /// A complete `\uXXXX` code unit.
    fn code_unit(&mut self, unit: u16, high: Option<u16>, sink: &mut impl Sink) {
        match (high, unit) {
            (None, 0xd800..=0xdbff) => {
                self.escape = Escape::AfterHigh(unit);
            }
            (Some(h), 0xdc00..=0xdfff) => {
                let c = 0x10000 + ((u32::from(h) - 0xd800) << 10) + (u32::from(unit) - 0xdc00);
                self.emit_char(char::from_u32(c).unwrap_or('\u{fffd}'), sink);
                self.escape = Escape::None;
                self.raw_len = 0;
            }
            (Some(_), _) => {
                // The high surrogate had no low half; this unit stands alone.
                self.emit_char('\u{fffd}', sink);
                self.escape = Escape::None;
                self.raw_len = 0;
                self.code_unit(unit, None, sink);
            }
            (None, _) => {
                self.emit_char(char::from_u32(u32::from(unit)).unwrap_or('\u{fffd}'), sink);
                self.escape = Escape::None;
                self.raw_len = 0;
            }
        }
    }

    fn invalid(&mut self, sink: &mut impl Sink) {
        // Not an escape after all: the bytes as they were, except a trailing backslash, which may start one.
        if self.raw_len > 1 && self.raw.get(self.raw_len - 1) == Some(&b'\\') {
            self.raw_len -= 1;
            self.give_back(sink);
            self.escape = Escape::Backslash;
            self.keep(b'\\');
            return;
        }
        if let Escape::Unicode { high: Some(_), .. } = self.escape {
            // The high surrogate before stays replaced; the rest goes out as it was.
            self.emit_char('\u{fffd}', sink);
            let raw = self.raw;
            let len = self.raw_len;
            self.raw_len = 0;
            sink.bytes(raw.get(6.min(len)..len).unwrap_or_default());
            self.escape = Escape::None;
            return;
        }
        self.give_back(sink);
    }

    fn emit(&mut self, bytes: &[u8], sink: &mut impl Sink) {
        self.raw_len = 0;
        sink.bytes(bytes);
    }

    fn emit_char(&mut self, c: char, sink: &mut impl Sink) {
        let mut buf = [0u8; 4];
        sink.bytes(c.encode_utf8(&mut buf).as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Collect(Vec<u8>);

    impl Sink for Collect {
        fn bytes(&mut self, bytes: &[u8]) {
            self.0.extend_from_slice(bytes);
        }
        fn segment_end(&mut self) {}
    }

    fn decode_split(input: &[u8], split: usize) -> Vec<u8> {
        let mut d = JsonUnescape::default();
        let mut out = Collect::default();
        let (a, b) = input.split_at(split);
        d.feed(a, &mut out);
        d.feed(b, &mut out);
        d.finish(&mut out);
        out.0
    }

    fn decoded(input: &str) -> String {
        let bytes = input.as_bytes();
        let whole = decode_split(bytes, 0);
        for split in 0..=bytes.len() {
            assert_eq!(decode_split(bytes, split), whole, "{input:?} split at {split}");
        }
        String::from_utf8(whole).unwrap()
    }

    #[test]
    fn escapes() {
        assert_eq!(decoded(r#""\u0034111 1111 1111 1111""#), "\"4111 1111 1111 1111\"");
        assert_eq!(decoded(r#"a\/b\"c\\d\n\t"#), "a/b\"c\\d\n\t");
        assert_eq!(decoded(r#"\\u0034"#), "\\u0034", "an escaped backslash is not an escape");
        assert_eq!(decoded(r#"\ud83d\ude00!"#), "😀!");
        assert_eq!(decoded(r#"\u00e9"#), "é");
        assert_eq!(decoded(r#"\u004"#), "\\u004", "cut short at the end");
        assert_eq!(decoded(r#"\uzz12"#), "\\uzz12");
        assert_eq!(decoded(r#"\q"#), "\\q");
        assert_eq!(decoded(r#"\u12\u0034"#), "\\u124");
        assert_eq!(decoded(r#"\ud83dx"#), "\u{fffd}x", "a lone high surrogate");
        assert_eq!(decoded(r#"\ud83d\u0034"#), "\u{fffd}4");
        assert_eq!(decoded(r#"\ud83d\n"#), "\u{fffd}\n");
        assert_eq!(decoded(r#"\udc00"#), "\u{fffd}", "a lone low surrogate");
        assert_eq!(decoded("plain text 4111"), "plain text 4111");
    }
}
