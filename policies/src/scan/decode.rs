//! What a body's bytes mean before they are scanned: the content type decides whether a body is read at all and
//! how (as is, percent-decoded, or split into multipart parts). Every decoder streams: its state carries over from
//! one chunk to the next in a few fixed fields, and it never allocates after it is built.

use super::sniff::{Sniff, SNIFF_BYTES};

/// How a body (or a multipart part) is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BodyKind {
    /// Scanned as is: text, JSON, XML, ... and bodies without a content type.
    Text,
    /// `application/x-www-form-urlencoded`: percent-decoded, `+` as a space.
    Form,
    /// `multipart/*` with a boundary: text parts scanned, binary parts skipped.
    Multipart,
    /// Not recognised as text: skipped unless the policy inspects binary.
    Binary,
}

/// Longest media type compared; longer ones are not text we know.
const MAX_MEDIA_TYPE: usize = 96;

/// Classifies a `content-type` value (`None`: absent).
pub(crate) fn classify(content_type: Option<&[u8]>) -> BodyKind {
    let Some(value) = content_type else {
        return BodyKind::Text;
    };
    let media = value.split(|b| *b == b';').next().unwrap_or(&[]).trim_ascii();
    if media.is_empty() {
        return BodyKind::Text;
    }
    let mut lower = [0u8; MAX_MEDIA_TYPE];
    let Some(slot) = lower.get_mut(..media.len()) else {
        return BodyKind::Binary;
    };
    slot.copy_from_slice(media);
    slot.make_ascii_lowercase();
    let media: &[u8] = slot;
    let Some(slash) = media.iter().position(|b| *b == b'/') else {
        return BodyKind::Binary;
    };
    let (kind, subtype) = (media.get(..slash).unwrap_or(&[]), media.get(slash + 1..).unwrap_or(&[]));
    if kind == b"text" {
        return BodyKind::Text;
    }
    if media == b"application/x-www-form-urlencoded" {
        return BodyKind::Form;
    }
    if kind == b"multipart" {
        return BodyKind::Multipart;
    }
    // Structured text whatever its vendor prefix: `application/vnd.api+json`, `application/x-amz-json-1.1`, ...
    const TEXT_SUBTYPES: &[&[u8]] =
        &[b"json", b"xml", b"yaml", b"javascript", b"ecmascript", b"csv", b"graphql", b"html", b"sql", b"x-www-form"];
    if kind == b"application" && TEXT_SUBTYPES.iter().any(|t| subtype.windows(t.len()).any(|w| w == *t)) {
        return BodyKind::Text;
    }
    BodyKind::Binary
}

/// Longest multipart boundary (RFC 2046).
const MAX_BOUNDARY: usize = 70;
/// The delimiter that ends a part: CRLF, `--`, the boundary.
const MAX_DELIMITER: usize = MAX_BOUNDARY + 4;
/// Most part-header bytes kept to find the part's content type; a part with longer headers is scanned as text.
pub(crate) const MAX_PART_HEADER: usize = 1024;

/// The `boundary` parameter of a `multipart/*` content type, unquoted.
pub(crate) fn boundary(content_type: &[u8]) -> Option<&[u8]> {
    for param in content_type.split(|b| *b == b';').skip(1) {
        let param = param.trim_ascii();
        let Some(eq) = param.iter().position(|b| *b == b'=') else {
            continue;
        };
        let (name, value) = (param.get(..eq)?.trim_ascii(), param.get(eq + 1..)?.trim_ascii());
        if !name.eq_ignore_ascii_case(b"boundary") {
            continue;
        }
        let value = value.strip_prefix(b"\"").and_then(|v| v.strip_suffix(b"\"")).unwrap_or(value);
        return (!value.is_empty() && value.len() <= MAX_BOUNDARY).then_some(value);
    }
    None
}

/// Where decoded bytes go.
pub(crate) trait Sink {
    /// The next decoded bytes.
    fn bytes(&mut self, bytes: &[u8]);
    /// The end of an independent piece (a multipart part): a match does not span two.
    fn segment_end(&mut self);
}

/// Decoded bytes are collected here and handed to the sink in runs, not one call per byte.
struct Out<'s, S: Sink> {
    buf: [u8; 256],
    len: usize,
    sink: &'s mut S,
}

impl<'s, S: Sink> Out<'s, S> {
    fn new(sink: &'s mut S) -> Self {
        Out { buf: [0; 256], len: 0, sink }
    }

    #[inline]
    fn push(&mut self, b: u8) {
        if self.len == self.buf.len() {
            self.flush();
        }
        if let Some(slot) = self.buf.get_mut(self.len) {
            *slot = b;
            self.len += 1;
        }
    }

    fn extend(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.push(*b);
        }
    }

    fn flush(&mut self) {
        if let Some(run) = self.buf.get(..self.len) {
            if !run.is_empty() {
                self.sink.bytes(run);
            }
        }
        self.len = 0;
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Streaming `application/x-www-form-urlencoded` (and query string) decoding: `%XX` and `+`. A `%4` at the end of a
/// chunk is completed by the next chunk.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct FormDecoder {
    /// 0: plain; 1: after `%`; 2: after `%` and one hex digit (kept in `high`).
    pending: u8,
    high: u8,
}

impl FormDecoder {
    /// Decodes `input` into `sink`.
    pub(crate) fn feed(&mut self, input: &[u8], sink: &mut impl Sink) {
        let mut out = Out::new(sink);
        for &b in input {
            match self.pending {
                1 => match hex(b) {
                    Some(h) => {
                        self.high = h;
                        self.pending = 2;
                    }
                    None => {
                        // Not an escape: keep the bytes as they were.
                        out.push(b'%');
                        self.pending = 0;
                        self.plain(b, &mut out);
                    }
                },
                2 => {
                    self.pending = 0;
                    match hex(b) {
                        Some(low) => out.push(self.high << 4 | low),
                        None => {
                            out.push(b'%');
                            out.push(hex_digit(self.high));
                            self.plain(b, &mut out);
                        }
                    }
                }
                _ => self.plain(b, &mut out),
            }
        }
        out.flush();
    }

    fn plain<S: Sink>(&mut self, b: u8, out: &mut Out<'_, S>) {
        match b {
            b'%' => self.pending = 1,
            b'+' => out.push(b' '),
            _ => out.push(b),
        }
    }

    /// Ends the input: an unfinished escape is passed on as it was.
    pub(crate) fn finish(&mut self, sink: &mut impl Sink) {
        let mut out = Out::new(sink);
        match self.pending {
            1 => out.push(b'%'),
            2 => {
                out.push(b'%');
                out.push(hex_digit(self.high));
            }
            _ => {}
        }
        self.pending = 0;
        out.flush();
    }
}

fn hex_digit(v: u8) -> u8 {
    match v {
        0..=9 => b'0' + v,
        _ => b'A' + (v - 10),
    }
}

/// Where the multipart reader is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Part {
    /// Before the first delimiter: ignored.
    Preamble,
    /// Right after a delimiter: `--` ends the body, anything else up to LF is padding before the headers.
    AfterDelimiter { first: bool, dash: bool },
    /// The part's headers, up to the blank line.
    Headers,
    /// The part's content, up to the next delimiter.
    Body,
    /// After the closing delimiter: ignored.
    Epilogue,
}

/// Streaming `multipart/*` reader: splits the body at the boundary from the content type, reads each part's
/// headers (at most [`MAX_PART_HEADER`] bytes) and passes the content of text parts on, one segment per part.
#[derive(Clone, Debug)]
pub(crate) struct Multipart {
    delimiter: [u8; MAX_DELIMITER],
    delimiter_len: usize,
    /// How many bytes of the delimiter the input has matched so far (held back from the sink until decided).
    matched: usize,
    state: Part,
    header: [u8; MAX_PART_HEADER],
    header_len: usize,
    header_overflow: bool,
    /// The last four header bytes, to find the blank line.
    header_tail: u32,
    /// Whether the current part is scanned.
    scan_part: bool,
    /// Set while a part labelled binary is sniffed: its first bytes are held until they show it is text.
    sniff: Option<Sniff>,
    held: [u8; SNIFF_BYTES as usize],
    held_len: usize,
    inspect_binary: bool,
    /// A part was base64 (`Content-Transfer-Encoding`): its content was not read, so the body is uninspectable.
    encoded_part: bool,
}

impl Multipart {
    /// A reader for parts delimited by `boundary` (at most 70 bytes).
    pub(crate) fn new(boundary: &[u8], inspect_binary: bool) -> Option<Multipart> {
        let mut delimiter = [0u8; MAX_DELIMITER];
        let len = boundary.len().checked_add(4)?;
        let slot = delimiter.get_mut(..len)?;
        slot.get_mut(..4)?.copy_from_slice(b"\r\n--");
        slot.get_mut(4..)?.copy_from_slice(boundary);
        Some(Multipart {
            delimiter,
            delimiter_len: len,
            // The first delimiter may open the body, with no CRLF before it.
            matched: 2,
            state: Part::Preamble,
            header: [0; MAX_PART_HEADER],
            header_len: 0,
            header_overflow: false,
            header_tail: 0,
            scan_part: false,
            sniff: None,
            held: [0; SNIFF_BYTES as usize],
            held_len: 0,
            inspect_binary,
            encoded_part: false,
        })
    }

    fn delimiter(&self) -> &[u8] {
        self.delimiter.get(..self.delimiter_len).unwrap_or(&[])
    }

    /// True once a part in a transfer encoding the scanner cannot read through (base64) was passed over.
    pub(crate) fn saw_encoded_part(&self) -> bool {
        self.encoded_part
    }

    /// Reads the next chunk of the body.
    pub(crate) fn feed(&mut self, input: &[u8], sink: &mut impl Sink) {
        let mut out = Out::new(sink);
        for &b in input {
            match self.state {
                Part::Preamble | Part::Body => self.content_byte(b, &mut out),
                Part::AfterDelimiter { first, dash } => {
                    self.state = if first && b == b'-' {
                        Part::AfterDelimiter { first: false, dash: true }
                    } else if dash && b == b'-' {
                        Part::Epilogue
                    } else if b == b'\n' {
                        self.start_headers();
                        Part::Headers
                    } else {
                        Part::AfterDelimiter { first: false, dash: false }
                    };
                }
                Part::Headers => self.header_byte(b),
                Part::Epilogue => {}
            }
        }
        out.flush();
    }

    /// Ends the body: a partly matched delimiter in a text part was content after all.
    pub(crate) fn finish(&mut self, sink: &mut impl Sink) {
        let mut out = Out::new(sink);
        if self.state == Part::Body && self.scan_part {
            for i in 0..self.matched {
                if let Some(d) = self.delimiter.get(i).copied() {
                    self.emit(d, &mut out);
                }
            }
            self.release(&mut out);
        }
        self.matched = 0;
        out.flush();
    }

    /// Passes on a byte of a scanned part; while the part is sniffed, holds it, and drops the part at the first
    /// byte that shows it is binary.
    fn emit<S: Sink>(&mut self, b: u8, out: &mut Out<'_, S>) {
        if !self.scan_part {
            return;
        }
        let Some(sniff) = self.sniff.as_mut() else {
            out.push(b);
            return;
        };
        if !sniff.text(&[b]) {
            // Binary after all: the part is skipped, with what was held of it.
            self.sniff = None;
            self.held_len = 0;
            self.scan_part = false;
            return;
        }
        if let Some(slot) = self.held.get_mut(self.held_len) {
            *slot = b;
            self.held_len += 1;
        }
        if self.held_len >= self.held.len() {
            self.release(out);
        }
    }

    /// The sniffed part is text (its window is full, or it ended): what was held goes on.
    fn release<S: Sink>(&mut self, out: &mut Out<'_, S>) {
        if self.sniff.take().is_some() {
            out.extend(self.held.get(..self.held_len).unwrap_or(&[]));
        }
        self.held_len = 0;
    }

    fn content_byte<S: Sink>(&mut self, b: u8, out: &mut Out<'_, S>) {
        let emit = self.state == Part::Body && self.scan_part;
        if self.delimiter().get(self.matched) == Some(&b) {
            self.matched += 1;
            if self.matched == self.delimiter_len {
                self.matched = 0;
                if self.state == Part::Body && self.scan_part {
                    self.release(out);
                    out.flush();
                    out.sink.segment_end();
                }
                self.state = Part::AfterDelimiter { first: true, dash: false };
            }
            return;
        }
        if self.matched > 0 {
            if emit {
                let held = self.matched;
                for i in 0..held {
                    if let Some(d) = self.delimiter.get(i).copied() {
                        self.emit(d, out);
                    }
                }
            }
            // CR appears only first in the delimiter (a boundary has no CR), so a restart can only be at `b`.
            self.matched = 0;
            if self.delimiter().first() == Some(&b) {
                self.matched = 1;
                return;
            }
        }
        if emit {
            self.emit(b, out);
        }
    }

    fn start_headers(&mut self) {
        self.header_len = 0;
        self.header_overflow = false;
        self.sniff = None;
        self.held_len = 0;
        // As if a line had just ended, so an empty header block (CRLF right away) ends at once.
        self.header_tail = u32::from_be_bytes([0, 0, b'\r', b'\n']);
    }

    fn header_byte(&mut self, b: u8) {
        match self.header.get_mut(self.header_len) {
            Some(slot) => {
                *slot = b;
                self.header_len += 1;
            }
            None => self.header_overflow = true,
        }
        self.header_tail = self.header_tail << 8 | u32::from(b);
        let crlf2 = self.header_tail == u32::from_be_bytes(*b"\r\n\r\n");
        let lf2 = self.header_tail & 0xffff == u32::from(u16::from_be_bytes(*b"\n\n"));
        if crlf2 || lf2 {
            let scan = if self.header_overflow { PartScan::Text } else { self.part_scan() };
            self.encoded_part |= scan == PartScan::Encoded;
            self.scan_part = scan != PartScan::Encoded;
            self.sniff = (scan == PartScan::Sniff).then(Sniff::default);
            self.held_len = 0;
            self.state = Part::Body;
            self.matched = 0;
        }
    }

    /// How the part whose headers were just read is scanned: as text, sniffed when labelled binary (unless the
    /// policy inspects binary), not at all when base64 (an encoding the scanner cannot read through; RFC 7578
    /// forbids it in form data, so only a client hiding something sends it).
    fn part_scan(&self) -> PartScan {
        let headers = self.header.get(..self.header_len).unwrap_or(&[]);
        let mut content_type = None;
        for line in headers.split(|b| *b == b'\n') {
            let Some(colon) = line.iter().position(|b| *b == b':') else {
                continue;
            };
            let (name, value) = (line.get(..colon).unwrap_or(&[]).trim_ascii(), line.get(colon + 1..).unwrap_or(&[]));
            if name.eq_ignore_ascii_case(b"content-type") {
                content_type = Some(value.trim_ascii());
            } else if name.eq_ignore_ascii_case(b"content-transfer-encoding")
                && value.trim_ascii().eq_ignore_ascii_case(b"base64")
            {
                return PartScan::Encoded;
            }
        }
        // RFC 7578: a part without a content type is text/plain.
        if self.inspect_binary || classify(content_type) != BodyKind::Binary {
            PartScan::Text
        } else {
            PartScan::Sniff
        }
    }
}

/// How a multipart part is scanned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PartScan {
    Text,
    /// Labelled binary: scanned if its first bytes are text.
    Sniff,
    /// In a transfer encoding the scanner cannot read through: not scanned, and the body is uninspectable.
    Encoded,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Collect {
        out: Vec<u8>,
        segments: usize,
    }

    impl Sink for Collect {
        fn bytes(&mut self, bytes: &[u8]) {
            self.out.extend_from_slice(bytes);
        }
        fn segment_end(&mut self) {
            self.segments += 1;
            self.out.push(b'|');
        }
    }

    #[test]
    fn content_types() {
        assert_eq!(classify(None), BodyKind::Text);
        assert_eq!(classify(Some(b"")), BodyKind::Text);
        assert_eq!(classify(Some(b"text/plain; charset=utf-8")), BodyKind::Text);
        assert_eq!(classify(Some(b"Application/JSON")), BodyKind::Text);
        assert_eq!(classify(Some(b"application/vnd.api+json")), BodyKind::Text);
        assert_eq!(classify(Some(b"application/problem+xml")), BodyKind::Text);
        assert_eq!(classify(Some(b"application/x-www-form-urlencoded")), BodyKind::Form);
        assert_eq!(classify(Some(b"multipart/form-data; boundary=x")), BodyKind::Multipart);
        for binary in [
            "image/png",
            "audio/mpeg",
            "video/mp4",
            "font/woff2",
            "application/octet-stream",
            "application/pdf",
            "application/zip",
            "application/gzip",
            "application/x-protobuf",
            "application/grpc",
            "application/grpc+proto",
            "nonsense",
        ] {
            assert_eq!(classify(Some(binary.as_bytes())), BodyKind::Binary, "{binary}");
        }
    }

    #[test]
    fn boundaries() {
        assert_eq!(boundary(b"multipart/form-data; boundary=abc"), Some(&b"abc"[..]));
        assert_eq!(boundary(b"multipart/form-data; charset=x; BOUNDARY=\"a b\""), Some(&b"a b"[..]));
        assert_eq!(boundary(b"multipart/form-data"), None);
        assert_eq!(boundary(&[b"multipart/form-data; boundary=".as_slice(), &[b'x'; 71]].concat()), None);
    }

    fn form(chunks: &[&[u8]]) -> Vec<u8> {
        let mut d = FormDecoder::default();
        let mut c = Collect::default();
        for chunk in chunks {
            d.feed(chunk, &mut c);
        }
        d.finish(&mut c);
        c.out
    }

    #[test]
    fn form_decoding_streams() {
        let whole = b"email=a%40b.com&name=J+Doe&x=%zz&y=%4";
        let expected = b"email=a@b.com&name=J Doe&x=%zz&y=%4".to_vec();
        for split in 0..=whole.len() {
            let (a, b) = whole.split_at(split);
            assert_eq!(form(&[a, b]), expected, "split at {split}");
        }
        assert_eq!(form(&[b"%4", b"1%", b"42"]), b"AB");
        assert_eq!(form(&[b"%4g"]), b"%4g");
    }

    const BODY: &[u8] = b"preamble\r\n--XyZ\r\ncontent-disposition: form-data; name=\"a\"\r\n\r\nhello\r\n--XyZ\r\n\
Content-Type: image/png\r\n\r\n\x89PNG secret\r\n--XyZ\r\nContent-Type: application/json\r\n\r\n{\"k\":\"v\r\n--Xy\"}\r\n--XyZ--\r\nepilogue";

    fn multipart(chunks: &[&[u8]], inspect_binary: bool) -> Collect {
        let mut m = Multipart::new(b"XyZ", inspect_binary).unwrap();
        let mut c = Collect::default();
        for chunk in chunks {
            m.feed(chunk, &mut c);
        }
        m.finish(&mut c);
        c
    }

    #[test]
    fn multipart_parts_at_every_split() {
        for split in 0..=BODY.len() {
            let (a, b) = BODY.split_at(split);
            let c = multipart(&[a, b], false);
            assert_eq!(c.out, b"hello|{\"k\":\"v\r\n--Xy\"}|", "split at {split}");
            assert_eq!(c.segments, 2);
        }
        let c = multipart(&[BODY], true);
        assert_eq!(c.out, b"hello|\x89PNG secret|{\"k\":\"v\r\n--Xy\"}|".to_vec());
    }

    #[test]
    fn multipart_edge_cases() {
        // No headers at all, LF-only line ends, base64 parts not read but reported.
        let body = b"--b\r\n\r\nplain\r\n--b\nContent-Transfer-Encoding: base64\n\nc2VjcmV0\r\n--b--";
        assert_eq!(multipart_with(b"b", body).out, b"plain|");
        let mut m = Multipart::new(b"b", false).unwrap();
        m.feed(body, &mut Collect::default());
        assert!(m.saw_encoded_part(), "a base64 part makes the body uninspectable");
        let mut m = Multipart::new(b"b", false).unwrap();
        m.feed(b"--b\r\n\r\nplain\r\n--b--", &mut Collect::default());
        assert!(!m.saw_encoded_part());
        // Over-long part headers: the part is scanned rather than trusted blind.
        let mut long = b"--b\r\nX-Pad: ".to_vec();
        long.extend(std::iter::repeat_n(b'a', MAX_PART_HEADER + 10));
        long.extend(b"\r\nContent-Type: image/png\r\n\r\nbody\r\n--b--");
        assert_eq!(multipart_with(b"b", &long).out, b"body|");
        // A body ending inside a would-be delimiter keeps those bytes.
        assert_eq!(multipart_with(b"b", b"--b\r\n\r\ntext\r\n-").out, b"text\r\n-");
    }

    #[test]
    fn binary_parts_are_sniffed() {
        let long_text = "x".repeat(SNIFF_BYTES as usize + 100);
        let body = format!(
            "--b\r\nContent-Type: image/png\r\n\r\n\0PNG\r\n--b\r\nContent-Type: application/octet-stream\r\n\r\n\
             {{\"a\":1}}\r\n--b\r\nContent-Type: application/octet-stream\r\n\r\n{long_text}\r\n--b\r\n\
             Content-Type: image/png\r\n\r\ntext then \0 binary\r\n--b\r\nContent-Type: image/png\r\n\r\nend"
        );
        // Kept: the JSON part, the long text part (past the sniff window), the text part cut by the end. Dropped:
        // the PNG-like part, and the part whose NUL comes after some text (what was held of it too).
        let expected = format!("{{\"a\":1}}|{long_text}|end");
        for split in 0..=body.len() {
            let (a, b) = body.as_bytes().split_at(split);
            let mut m = Multipart::new(b"b", false).unwrap();
            let mut c = Collect::default();
            m.feed(a, &mut c);
            m.feed(b, &mut c);
            m.finish(&mut c);
            assert_eq!(String::from_utf8_lossy(&c.out), expected, "split at {split}");
        }
        // The policy inspects binary: every part is scanned as it is.
        let mut m = Multipart::new(b"b", true).unwrap();
        let mut c = Collect::default();
        m.feed(b"--b\r\nContent-Type: image/png\r\n\r\n\0png\r\n--b--", &mut c);
        m.finish(&mut c);
        assert_eq!(c.out, b"\0png|");
    }

    fn multipart_with(boundary: &[u8], body: &[u8]) -> Collect {
        let mut m = Multipart::new(boundary, false).unwrap();
        let mut c = Collect::default();
        m.feed(body, &mut c);
        m.finish(&mut c);
        c
    }
}
